//! De-identified copies of stored images, for callers who see images de-identified
//! (researchers). A copy is made once, while the original streams from storage through the
//! de-identifier ([`crate::imaging::deidentify`]) into a multipart upload, and kept under
//! `deidentified/{original id}/r{PROFILE_VERSION}/{sha256 of the copy}`, so later downloads
//! stream it like an original and its ETag is its own digest. When the rules change,
//! [`PROFILE_VERSION`] goes up: copies made under older rules are never served again, and are
//! deleted when the new copy is made.
//!
//! Memory stays at a few chunks whatever the file size (bounded channels on both sides of the
//! blocking de-identifier, and the multipart writer's parts). Concurrent first requests for one
//! image in one instance share one build ([`CopyFlights`]); instances that race build
//! identical bytes (the copy is a pure function of the file and the pseudonym key), so they
//! store the same object.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::web::Bytes;
use futures_util::future::{BoxFuture, Shared};
use futures_util::{FutureExt as _, StreamExt as _};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, WriteMultipart};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use super::bridge::{ChannelReader, ChannelWriter};
use super::Storage;
use crate::imaging::confidentiality::{Profile, PROFILE_VERSION};
use crate::imaging::{deidentify, ImageKind};
use crate::pseudonym::PseudonymKey;

/// Why no copy could be made (mapped in `error.rs`: storage 503, the rest 500). Cloned to
/// every request waiting on one build.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CopyError {
    #[error("the object store failed: {0}")]
    Store(String),
    #[error("de-identification failed: {0}")]
    Deidentify(String),
    #[error("the de-identification task failed: {0}")]
    Task(String),
}

impl From<object_store::Error> for CopyError {
    fn from(err: object_store::Error) -> Self {
        CopyError::Store(err.to_string())
    }
}

/// A stored copy: where it is, its SHA-256 (hex) and its size in bytes.
#[derive(Debug, Clone)]
pub struct StoredCopy {
    pub location: Path,
    pub sha256: String,
    pub size: u64,
}

/// What a copy of one image is made from: the stored original and what the profile needs.
#[derive(Debug, Clone)]
pub struct CopySource {
    pub object_key: String,
    pub kind: ImageKind,
    /// The subject pseudonym (Patient's Name and Patient ID of the copy).
    pub subject_id: Option<String>,
    /// What the date shift derives from: the subject pseudonym, else the Study Instance UID.
    pub shift_basis: String,
    /// The SOP Instance UID the image is filed under.
    pub sop_instance_uid: Option<String>,
}

impl CopySource {
    /// The source of image `image_uuid`'s copy: its stored original `object_key` of `kind`,
    /// the subject pseudonym and Study Instance UID it is filed under, its SOP Instance UID.
    /// Dates shift by the subject, else the study, else the SOP Instance UID, else the image
    /// id (API.md "De-identification").
    pub fn of(
        object_key: &str,
        kind: ImageKind,
        image_uuid: &str,
        subject_id: Option<String>,
        study_instance_uid: Option<String>,
        sop_instance_uid: Option<String>,
    ) -> Self {
        CopySource {
            object_key: object_key.to_owned(),
            kind,
            shift_basis: subject_id
                .clone()
                .or(study_instance_uid)
                .or_else(|| sop_instance_uid.clone())
                .unwrap_or_else(|| image_uuid.to_owned()),
            subject_id,
            sop_instance_uid,
        }
    }
}

type Flight = Shared<BoxFuture<'static, Result<StoredCopy, CopyError>>>;

/// The copies being built in this instance, by original object key, so concurrent first
/// requests share one build; and how many builds were started (for tests and benchmarks).
#[derive(Default)]
pub struct CopyFlights {
    building: parking_lot::Mutex<HashMap<String, Flight>>,
    started: AtomicU64,
}

impl CopyFlights {
    /// How many copies this instance has started building.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }
}

/// Part size of the copy's multipart upload, parts in flight, and the chunks between the
/// de-identifier and the async side.
const PART_BYTES: usize = 5 << 20;
const PARTS_IN_FLIGHT: usize = 2;
const CHUNK_BYTES: usize = 1 << 20;
const CHUNKS_IN_FLIGHT: usize = 4;

fn folder(object_key: &str) -> Path {
    Storage::deidentified_key(object_key)
}

fn revision_folder(object_key: &str) -> Path {
    folder(object_key).join(format!("r{PROFILE_VERSION}").as_str())
}

/// The copy of this revision, if stored: the object under the revision folder named by a
/// SHA-256.
async fn existing(
    store: &dyn ObjectStore,
    object_key: &str,
) -> Result<Option<StoredCopy>, CopyError> {
    let prefix = revision_folder(object_key);
    let mut listing = store.list(Some(&prefix));
    while let Some(meta) = listing.next().await.transpose()? {
        let name = meta.location.filename().unwrap_or_default();
        if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Some(StoredCopy {
                sha256: name.to_owned(),
                location: meta.location,
                size: meta.size,
            }));
        }
    }
    Ok(None)
}

/// The de-identified copy of `source`, made and stored now if it does not exist yet.
pub async fn deidentified_copy(
    storage: &Storage,
    key: Arc<PseudonymKey>,
    source: CopySource,
    max_header_bytes: u64,
) -> Result<StoredCopy, CopyError> {
    if let Some(found) = existing(storage.store().as_ref(), &source.object_key).await? {
        return Ok(found);
    }
    let flights = storage.copy_flights().clone();
    let flight = {
        let mut building = flights.building.lock();
        building
            .entry(source.object_key.clone())
            .or_insert_with(|| {
                flights.started.fetch_add(1, Ordering::Relaxed);
                let store = storage.store().clone();
                let source = source.clone();
                // A task of its own: the build goes on when the request that started it is
                // dropped, and every waiter gets its outcome.
                let task = tokio::spawn(build(store, key, source, max_header_bytes));
                async move {
                    task.await
                        .unwrap_or_else(|e| Err(CopyError::Task(e.to_string())))
                }
                .boxed()
                .shared()
            })
            .clone()
    };
    let outcome = flight.clone().await;
    let mut building = flights.building.lock();
    if building
        .get(&source.object_key)
        .is_some_and(|f| f.ptr_eq(&flight))
    {
        building.remove(&source.object_key);
    }
    outcome
}

/// Builds and stores the copy (unless another build stored it meanwhile), then removes copies
/// of earlier revisions.
async fn build(
    store: Arc<dyn ObjectStore>,
    key: Arc<PseudonymKey>,
    source: CopySource,
    max_header_bytes: u64,
) -> Result<StoredCopy, CopyError> {
    if let Some(found) = existing(store.as_ref(), &source.object_key).await? {
        return Ok(found);
    }
    let original = store.get(&Path::from(source.object_key.as_str())).await?;
    let mut input = original.into_stream();
    let (input_sender, input_receiver) = mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
    let (output_sender, mut output_receiver) = mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
    let kind = source.kind;
    let (subject_id, shift_basis, sop_instance_uid) = (
        source.subject_id.clone(),
        source.shift_basis.clone(),
        source.sop_instance_uid.clone(),
    );
    let engine = tokio::task::spawn_blocking(move || {
        let profile = Profile {
            key: &key,
            subject_id: subject_id.as_deref(),
            shift_days: crate::imaging::confidentiality::shift_days(&key, &shift_basis),
            sop_instance_uid: sop_instance_uid.as_deref(),
            max_header_bytes,
        };
        deidentify::deidentify(
            kind,
            ChannelReader::new(input_receiver),
            ChannelWriter::new(output_sender, CHUNK_BYTES),
            &profile,
        )
    });

    let building = folder(&source.object_key)
        .join("building")
        .join(uuid::Uuid::now_v7().to_string().as_str());
    let upload = store.put_multipart(&building).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    let feed = async move {
        // Stores hand out small chunks (8 KiB from a local file): gathered into larger ones,
        // the blocking side wakes once per CHUNK_BYTES, not once per chunk.
        let mut gathered = Vec::with_capacity(CHUNK_BYTES);
        loop {
            let next = input.next().await.transpose()?;
            if let Some(chunk) = &next {
                gathered.extend_from_slice(chunk);
            }
            if gathered.len() >= CHUNK_BYTES || (next.is_none() && !gathered.is_empty()) {
                let full = std::mem::replace(&mut gathered, Vec::with_capacity(CHUNK_BYTES));
                if input_sender.send(Bytes::from(full)).await.is_err() {
                    break; // the de-identifier stopped: its error says why
                }
            }
            if next.is_none() {
                break;
            }
        }
        Ok::<(), object_store::Error>(())
    };
    let drain = async {
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = output_receiver.recv().await {
            hasher.update(&chunk);
            size += chunk.len() as u64;
            writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
            writer.write(&chunk);
        }
        Ok::<_, object_store::Error>((hex::encode(hasher.finalize()), size))
    };
    let (fed, drained) = tokio::join!(feed, drain);
    let made = engine.await;
    let outcome = match (fed, drained, made) {
        (Err(e), _, _) | (_, Err(e), _) => Err(CopyError::from(e)),
        (_, _, Err(e)) => Err(CopyError::Task(e.to_string())),
        (_, _, Ok(Err(e))) => Err(CopyError::Deidentify(e)),
        (Ok(()), Ok(digest), Ok(Ok(()))) => Ok(digest),
    };
    let (sha256, size) = match outcome {
        Ok(digest) => digest,
        Err(err) => {
            let _ = writer.abort().await;
            tracing::error!(error = %err, object = %source.object_key, "no de-identified copy was made");
            return Err(err);
        }
    };
    writer.finish().await?;
    let location = revision_folder(&source.object_key).join(sha256.as_str());
    store.rename(&building, &location).await?;
    // `telemetry::DEIDENTIFIED_COPIES` (telemetry shares this module's layer row).
    metrics::counter!("medlabel_deidentified_copies_total").increment(1);
    remove_stale(store.as_ref(), &source.object_key).await;
    Ok(StoredCopy {
        location,
        sha256,
        size,
    })
}

/// Removes copies of other revisions, and builds a crash left behind (older than an hour).
async fn remove_stale(store: &dyn ObjectStore, object_key: &str) {
    let current = revision_folder(object_key);
    let building = folder(object_key).join("building");
    let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let stale: Vec<Path> = store
        .list(Some(&folder(object_key)))
        .filter_map(|meta| async move { meta.ok() })
        .filter(|meta| {
            let keep = meta.location.prefix_matches(&current)
                || (meta.location.prefix_matches(&building) && meta.last_modified > hour_ago);
            std::future::ready(!keep)
        })
        .map(|meta| meta.location)
        .collect()
        .await;
    for key in stale {
        if let Err(err) = store.delete(&key).await {
            tracing::warn!(error = %err, "a stale de-identified copy was not deleted");
        }
    }
}
