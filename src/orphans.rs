//! Sweeping storage that no row references. An upload writes its object before its row, and a
//! process killed in between (or while a multipart upload is staged) leaves bytes that nothing
//! points at: patient images kept forever. [`sweep`] removes, once they are older than a grace
//! period (so that an upload still being written, on this instance or another, is never
//! touched):
//! - objects under `images/` that no image row (deleted images included: a revert restores
//!   them) names;
//! - de-identified copies under `deidentified/` whose original no row names, and those no
//!   longer served: builds a crash cut short, copies made under an older profile version;
//! - probe objects under `health/` left by an interrupted health check;
//! - on a `file://` store, the staging files of interrupted multipart uploads
//!   (`<key>#<n>`, which the object listing does not show).
//!
//! On S3, parts of interrupted multipart uploads are not objects; a bucket lifecycle rule
//! (`AbortIncompleteMultipartUpload`) removes them (see the README).
//!
//! `serve` sweeps at start and then every [`SWEEP_INTERVAL`].

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use futures_util::TryStreamExt as _;
use object_store::path::Path;
use object_store::{ObjectStore as _, ObjectStoreExt as _};

use crate::db::Db;
use crate::imaging::confidentiality::PROFILE_VERSION;
use crate::storage::Storage;

/// How often a running server sweeps.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub objects: usize,
    pub staging_files: usize,
    pub bytes: u64,
}

/// Removes unreferenced objects and staging files older than `grace`.
pub async fn sweep(db: &Db, storage: &Storage, grace: Duration) -> anyhow::Result<Swept> {
    let cutoff =
        chrono::Utc::now() - chrono::TimeDelta::from_std(grace).unwrap_or(chrono::TimeDelta::MAX);
    let store = storage.store();
    let mut candidates = Vec::new();
    for prefix in ["images", "deidentified", "health"] {
        let listed: Vec<_> = store.list(Some(&Path::from(prefix))).try_collect().await?;
        candidates.extend(
            listed
                .into_iter()
                .filter(|meta| meta.last_modified < cutoff),
        );
    }
    let originals: Vec<String> = candidates
        .iter()
        .filter_map(|meta| original_key(&meta.location))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let referenced: HashSet<String> = db
        .run(move |conn| {
            let mut found = Vec::new();
            for chunk in originals.chunks(500) {
                found.extend(crate::models::images::referenced_keys(conn, chunk)?);
            }
            Ok::<_, crate::db::DbError>(found)
        })
        .await
        .map_err(|e| anyhow::anyhow!("reading image keys: {e}"))?
        .into_iter()
        .collect();
    let mut swept = Swept::default();
    for meta in candidates {
        let keep = original_key(&meta.location).is_some_and(|key| referenced.contains(&key))
            && !abandoned_copy(&meta.location);
        if keep {
            continue;
        }
        // On a `file://` store the listing follows symbolic links; what lies behind one is
        // not ours to remove (it may be outside the storage folder).
        if let Some(root) = storage.local_root() {
            if through_symlink(root, &meta.location) {
                tracing::warn!(key = %meta.location, "not sweeping a path through a symbolic link");
                continue;
            }
        }
        match store.delete(&meta.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                swept.objects += 1;
                swept.bytes += meta.size;
            }
            Err(err) => {
                tracing::warn!(key = %meta.location, error = %err, "could not remove an unreferenced object")
            }
        }
    }
    if let Some(root) = storage.local_root().map(std::path::Path::to_path_buf) {
        let (files, bytes) =
            tokio::task::spawn_blocking(move || remove_staging_files(&root, grace))
                .await
                .map_err(|e| anyhow::anyhow!("staging sweep: {e}"))?;
        swept.staging_files = files;
        swept.bytes += bytes;
    }
    if swept != Swept::default() {
        tracing::info!(
            objects = swept.objects,
            staging_files = swept.staging_files,
            bytes = swept.bytes,
            "removed unreferenced storage"
        );
    }
    Ok(swept)
}

/// The image key an object belongs to: `images/<id>` itself, or the original of a
/// de-identified copy `deidentified/<id>/<sha256>`; `None` for anything else (health probes,
/// stray keys), which no row can reference.
fn original_key(location: &Path) -> Option<String> {
    let mut parts = location.parts();
    let first = parts.next()?;
    let id = parts.next()?;
    match first.as_ref() {
        "images" | "deidentified" => Some(format!("images/{}", id.as_ref())),
        _ => None,
    }
}

/// A de-identified copy that is no longer served although its original is: a build a crash
/// cut short (`deidentified/<id>/building/...`), or a copy made under other rules than
/// [`PROFILE_VERSION`] (`deidentified/<id>/r<n>/...`).
fn abandoned_copy(location: &Path) -> bool {
    let parts: Vec<_> = location.parts().collect();
    match parts.as_slice() {
        [first, _, folder, ..] if first.as_ref() == "deidentified" => {
            folder.as_ref() != format!("r{PROFILE_VERSION}")
        }
        _ => false,
    }
}

/// True when some component of `location` below `root` is a symbolic link (or cannot be read).
fn through_symlink(root: &std::path::Path, location: &Path) -> bool {
    let mut path = root.to_path_buf();
    for part in location.parts() {
        path.push(part.as_ref());
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if !meta.file_type().is_symlink() => {}
            _ => return true,
        }
    }
    false
}

/// Staging files of interrupted multipart uploads (`<name>#<digits>`) older than `grace`,
/// anywhere under `root`; returns how many were removed and their bytes.
fn remove_staging_files(root: &std::path::Path, grace: Duration) -> (usize, u64) {
    let mut removed = (0, 0);
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            // `DirEntry::metadata` does not follow symbolic links: a linked folder is not entered.
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                folders.push(entry.path());
                continue;
            }
            let name = entry.file_name();
            let staging = name
                .to_str()
                .and_then(|n| n.rsplit_once('#'))
                .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            let old = meta
                .modified()
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age >= grace);
            if staging && old && std::fs::remove_file(entry.path()).is_ok() {
                removed.0 += 1;
                removed.1 += meta.len();
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_map_to_the_image_key_they_belong_to() {
        let key = |s: &str| original_key(&Path::from(s));
        assert_eq!(key("images/0193").as_deref(), Some("images/0193"));
        assert_eq!(
            key("deidentified/0193/ab12").as_deref(),
            Some("images/0193")
        );
        assert_eq!(key("health/probe-1"), None);
        assert_eq!(key("images"), None);
    }

    #[test]
    fn copies_that_are_not_served_are_abandoned() {
        let current = format!("deidentified/0193/r{PROFILE_VERSION}/ab12");
        assert!(!abandoned_copy(&Path::from(current.as_str())));
        assert!(abandoned_copy(&Path::from(
            "deidentified/0193/building/0194"
        )));
        assert!(abandoned_copy(&Path::from("deidentified/0193/r1/ab12")));
        assert!(!abandoned_copy(&Path::from("images/0193")));
    }
}
