//! De-identified copies of stored images, for callers who see images de-identified
//! (researchers). A copy is made once, by [`crate::imaging::deidentify`], and kept under
//! `deidentified/{original id}/r{REVISION}/{sha256 of the copy}`, so later downloads stream it
//! like an original and its ETag is its own digest. When the de-identification rules change,
//! [`REVISION`] goes up: copies made under older rules are never served again, and are deleted
//! when the new copy is made.

use futures_util::StreamExt as _;
use object_store::path::Path;
use object_store::{ObjectStoreExt as _, PutPayload};
use sha2::{Digest as _, Sha256};

use super::Storage;
use crate::imaging::{deidentify, ImageKind};

/// The revision of the de-identification rules copies are made with. 2: PNG and JPEG copies
/// keep only the chunks and segments needed to render (API.md), and end at `IEND` or the
/// first `EOI`; revision 1 dropped only known metadata and kept whatever followed the image
/// (such as an appended second image).
pub const REVISION: u32 = 2;

/// Why no copy could be made (mapped in `error.rs`: storage 503, the rest 500).
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Store(#[from] object_store::Error),
    #[error("de-identification failed: {0}")]
    Deidentify(String),
    #[error("the de-identification task failed: {0}")]
    Task(String),
}

/// A stored copy: where it is, its SHA-256 (hex) and its size in bytes.
#[derive(Debug, Clone)]
pub struct StoredCopy {
    pub location: Path,
    pub sha256: String,
    pub size: u64,
}

/// The de-identified copy of the `kind` image stored under `object_key`, made and stored now
/// if it does not exist yet.
pub async fn deidentified_copy(
    storage: &Storage,
    object_key: &str,
    kind: ImageKind,
) -> Result<StoredCopy, CopyError> {
    let store = storage.store();
    let folder = Storage::deidentified_key(object_key);
    let prefix = folder.clone().join(format!("r{REVISION}").as_str());
    if let Some(meta) = store.list(Some(&prefix)).next().await.transpose()? {
        let sha256 = meta.location.filename().unwrap_or_default().to_owned();
        return Ok(StoredCopy {
            location: meta.location,
            sha256,
            size: meta.size,
        });
    }
    let original = store.get(&Path::from(object_key)).await?;
    let bytes = original.bytes().await?;
    let copy = tokio::task::spawn_blocking(move || deidentify::deidentify(kind, &bytes))
        .await
        .map_err(|e| CopyError::Task(e.to_string()))?
        .map_err(|e| CopyError::Deidentify(e.to_string()))?;
    let sha256 = hex::encode(Sha256::digest(&copy));
    let size = copy.len() as u64;
    let location = prefix.clone().join(sha256.as_str());
    store.put(&location, PutPayload::from(copy)).await?;
    // Copies made under earlier rules: never served again.
    let stale: Vec<Path> = store
        .list(Some(&folder))
        .filter_map(|meta| async move { meta.ok().map(|m| m.location) })
        .filter(|key| std::future::ready(!key.prefix_matches(&prefix)))
        .collect()
        .await;
    for key in stale {
        if let Err(err) = store.delete(&key).await {
            tracing::warn!(error = %err, "a stale de-identified copy was not deleted");
        }
    }
    Ok(StoredCopy {
        location,
        sha256,
        size,
    })
}
