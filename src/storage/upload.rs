//! Streaming an uploaded file into object storage.
//!
//! The file part is read chunk by chunk: its first bytes decide the type (before anything is
//! stored), the bytes go to a multipart upload of the store as they arrive (memory stays at a
//! few part buffers whatever the file size), SHA-256 is computed on the way, and a blocking
//! task walks the whole file's structure as it passes ([`crate::imaging::check`]). If anything
//! fails, or the client goes away, [`PendingObject`] removes what was written.

use std::sync::Arc;

use actix_multipart::Field;
use futures_util::StreamExt as _;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, WriteMultipart};
use sha2::{Digest, Sha256};

use actix_web::web::Bytes;
use tokio::sync::mpsc;

use super::bridge::ChannelReader;
use crate::imaging::dicom::DicomHeader;
use crate::imaging::{self, Dimensions, ImageError, ImageKind, Inspected};

/// Why an upload was not stored (mapped to problems in `error.rs`).
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The request body broke off or is not a valid multipart body (400).
    #[error("the upload could not be read: {0}")]
    Unreadable(String),
    /// More than the configured maximum (413).
    #[error("the file is larger than {0} bytes")]
    TooLarge(u64),
    /// No bytes (422 on `file`).
    #[error("the file is empty")]
    Empty,
    /// Not PNG, JPEG or DICOM (415), or not a well-formed one (422 on `file`).
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The object store failed (503).
    #[error(transparent)]
    Store(#[from] object_store::Error),
}

/// Part size of the multipart upload (S3's minimum is 5 MiB), and parts in flight at once.
const PART_BYTES: usize = 5 << 20;
const PARTS_IN_FLIGHT: usize = 2;
/// Chunks queued for the checker before the upload waits for it.
const CHECK_CHUNKS_IN_FLIGHT: usize = 16;
/// Files up to this size are checked from memory when they end; larger ones by a blocking
/// task while they stream.
const INLINE_CHECK_BYTES: usize = 1 << 20;

/// What a stored upload turned out to be.
#[derive(Debug)]
pub struct StoredFile {
    pub kind: ImageKind,
    pub size: u64,
    pub sha256: String,
    pub dimensions: Dimensions,
    /// The DICOM header (patient, study, series, instance), for a DICOM file.
    pub dicom: Option<DicomHeader>,
}

/// An object being written: removed again unless [`PendingObject::keep`] is called, also when
/// the request is dropped half-way (the client disconnected).
pub struct PendingObject {
    store: Arc<dyn ObjectStore>,
    key: Path,
    writer: Option<WriteMultipart>,
    written: bool,
    kept: bool,
}

impl PendingObject {
    pub fn key(&self) -> &Path {
        &self.key
    }

    /// The object is referenced by a committed row now: leave it.
    pub fn keep(mut self) {
        self.kept = true;
    }

    /// Removes what was written, and waits for it.
    pub async fn discard(mut self) {
        if let Some(writer) = self.writer.take() {
            let _ = writer.abort().await;
        }
        if self.written {
            let _ = self.store.delete(&self.key).await;
        }
        self.kept = true;
    }
}

impl Drop for PendingObject {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let (store, key, writer, written) = (
            self.store.clone(),
            self.key.clone(),
            self.writer.take(),
            self.written,
        );
        actix_web::rt::spawn(async move {
            if let Some(writer) = writer {
                let _ = writer.abort().await;
            }
            if written {
                let _ = store.delete(&key).await;
            }
        });
    }
}

/// Streams the `file` part into the store under `key`. On error the caller gets the error and
/// nothing stays stored; on success the caller must `keep()` the object once a row names it.
/// While the bytes stream, a blocking task checks the whole file ([`imaging::check`]).
pub async fn store_file_part(
    store: Arc<dyn ObjectStore>,
    key: Path,
    field: &mut Field,
    max_bytes: u64,
    max_dicom_header_bytes: u64,
) -> Result<(StoredFile, PendingObject), UploadError> {
    let mut pending = PendingObject {
        store: store.clone(),
        key: key.clone(),
        writer: None,
        written: false,
        kept: false,
    };
    // The bytes not yet handed to a checker: a file that ends within INLINE_CHECK_BYTES is
    // checked from memory at the end, without a blocking thread (most uploads).
    let mut buffered: Vec<u8> = Vec::new();
    let mut kind: Option<ImageKind> = None;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut checker: Option<Checker> = None;

    let outcome: Result<(), UploadError> = async {
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| UploadError::Unreadable(e.to_string()))?;
            size += chunk.len() as u64;
            if size > max_bytes {
                return Err(UploadError::TooLarge(max_bytes));
            }
            hasher.update(&chunk);
            if kind.is_none() {
                buffered.extend_from_slice(&chunk);
                if buffered.len() < imaging::SNIFF_BYTES {
                    continue;
                }
                // The type is known: start storing, with what was read.
                kind = Some(imaging::sniff(&buffered).ok_or(ImageError::Unsupported)?);
                let mut writer = start_upload(&store, &key).await?;
                writer.write(&buffered);
                pending.writer = Some(writer);
            } else {
                if let Some(writer) = pending.writer.as_mut() {
                    writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                    writer.write(&chunk);
                }
                match checker.as_mut() {
                    Some(checker) => checker.send(chunk).await?,
                    None => buffered.extend_from_slice(&chunk),
                }
            }
            if let (None, Some(kind)) = (&checker, kind) {
                if buffered.len() >= INLINE_CHECK_BYTES {
                    // A larger file: checked by a blocking task while it streams.
                    let mut started = Checker::start(kind, max_dicom_header_bytes);
                    started
                        .send(Bytes::from(std::mem::take(&mut buffered)))
                        .await?;
                    checker = Some(started);
                }
            }
        }
        Ok(())
    }
    .await;
    if let Err(err) = outcome {
        pending.discard().await;
        return Err(err);
    }

    let kind = match kind {
        Some(kind) => kind,
        None => {
            // A file shorter than the sniffing window: decide now.
            if size == 0 {
                return Err(UploadError::Empty);
            }
            let kind = imaging::sniff(&buffered).ok_or(ImageError::Unsupported)?;
            let mut writer = start_upload(&store, &key).await?;
            writer.write(&buffered);
            pending.writer = Some(writer);
            kind
        }
    };
    let checked = match checker {
        Some(checker) => checker.finish().await,
        None => imaging::check(kind, buffered.as_slice(), max_dicom_header_bytes)
            .map_err(UploadError::from),
    };
    let inspected = match checked {
        Ok(d) => d,
        Err(err) => {
            pending.discard().await;
            return Err(err);
        }
    };
    if let Some(writer) = pending.writer.take() {
        pending.written = true;
        if let Err(err) = writer.finish().await {
            pending.discard().await;
            return Err(err.into());
        }
    }
    let stored = StoredFile {
        kind,
        size,
        sha256: hex::encode(hasher.finalize()),
        dimensions: inspected.dimensions,
        dicom: inspected.dicom,
    };
    Ok((stored, pending))
}

/// The blocking task that checks an upload while it streams ([`imaging::check`]).
struct Checker {
    chunks: Option<mpsc::Sender<Bytes>>,
    task: Option<tokio::task::JoinHandle<Result<Inspected, ImageError>>>,
}

impl Checker {
    fn start(kind: ImageKind, max_dicom_header_bytes: u64) -> Checker {
        let (chunks, receiver) = mpsc::channel(CHECK_CHUNKS_IN_FLIGHT);
        let task = tokio::task::spawn_blocking(move || {
            imaging::check(kind, ChannelReader::new(receiver), max_dicom_header_bytes)
        });
        Checker {
            chunks: Some(chunks),
            task: Some(task),
        }
    }

    /// Hands the checker the next chunk. When it has stopped early (the file is refused),
    /// its error.
    async fn send(&mut self, chunk: Bytes) -> Result<(), UploadError> {
        let Some(chunks) = self.chunks.as_ref() else {
            return Ok(());
        };
        if chunks.send(chunk).await.is_ok() {
            return Ok(());
        }
        // The checker stopped reading: it refused the file.
        match self.outcome().await {
            Err(err) => Err(err),
            Ok(_) => Err(UploadError::Unreadable(
                "the file check stopped early".into(),
            )),
        }
    }

    /// The end of the file: what the check found.
    async fn finish(mut self) -> Result<Inspected, UploadError> {
        self.outcome().await
    }

    async fn outcome(&mut self) -> Result<Inspected, UploadError> {
        self.chunks = None;
        let task = self
            .task
            .take()
            .ok_or_else(|| UploadError::Unreadable("the file check has already ended".into()))?;
        match task.await {
            Ok(result) => result.map_err(UploadError::from),
            Err(err) => Err(UploadError::Unreadable(err.to_string())),
        }
    }
}

async fn start_upload(
    store: &Arc<dyn ObjectStore>,
    key: &Path,
) -> Result<WriteMultipart, UploadError> {
    let upload = store.put_multipart(key).await?;
    Ok(WriteMultipart::new_with_chunk_size(upload, PART_BYTES))
}
