//! This instance's code search index ([`crate::search`]) kept current:
//! - built in the background when the server starts (searches use the database meanwhile:
//!   [`CodeIndex::search`] answers `None`);
//! - this instance's own code changes reach it the moment they commit, through the overlay
//!   ([`CodeIndex::apply`], registered with [`crate::db::on_commit`]);
//! - other instances' changes and imports move the codes' generation
//!   ([`codes::generation`]), which a thread polls (every `MEDLABEL_CODE_INDEX_POLL_MS`,
//!   1 s by default), rebuilding the index when it moved, and when the overlay grows large.
//!
//! The thread stops once the application that owns the index is gone.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::db::Db;
use crate::models::codes::{self, Code};
use crate::search::{Entry, Hit, Index, Overlay};

/// The overlay is folded into a rebuild beyond this many changed codes.
const MAX_OVERLAY: usize = 256;

/// Cheap to clone; every clone is the same index.
#[derive(Clone)]
pub struct CodeIndex {
    inner: Arc<Inner>,
}

struct Inner {
    enabled: bool,
    base: RwLock<Option<Arc<Index>>>,
    overlay: RwLock<Overlay>,
    /// The codes' generation the base was built at (-1: none yet).
    generation: AtomicI64,
    /// One rebuild at a time.
    rebuilding: Mutex<()>,
    builds: AtomicU64,
    last_build_ms: AtomicU64,
}

/// What `/health` and operators see of the index.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct IndexStatus {
    pub ready: bool,
    pub codes: usize,
    pub builds: u64,
    pub last_build_ms: u64,
}

/// The entry of a committed change of a code.
fn entry(code: &Code) -> Entry {
    owned_entry(code.clone())
}

/// The entry of a row read for a build (its strings moved, not copied).
fn owned_entry(code: Code) -> Entry {
    Entry {
        id: code.id,
        uuid: code.uuid,
        version: code.version,
        system: code.system_id,
        code: code.code,
        description: code.description,
        billable: code.billable,
        is_active: code.is_active,
    }
}

impl CodeIndex {
    /// An index that is built once [`CodeIndex::start`] or [`CodeIndex::refresh`] runs;
    /// `enabled: false` (`MEDLABEL_CODE_INDEX=off`) leaves every search to the database.
    pub fn new(enabled: bool) -> Self {
        CodeIndex {
            inner: Arc::new(Inner {
                enabled,
                base: RwLock::new(None),
                overlay: RwLock::new(Overlay::default()),
                generation: AtomicI64::new(-1),
                rebuilding: Mutex::new(()),
                builds: AtomicU64::new(0),
                last_build_ms: AtomicU64::new(0),
            }),
        }
    }

    /// Starts the thread that builds the index, then polls the generation every `poll`.
    pub fn start(&self, db: Db, poll: Duration) {
        if !self.inner.enabled {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("code-index".into())
            .spawn(move || {
                while let Some(inner) = weak.upgrade() {
                    let index = CodeIndex { inner };
                    if let Err(err) = index.refresh_if_stale(&db) {
                        tracing::warn!(error = %err, "the code search index could not be refreshed");
                    }
                    drop(index);
                    std::thread::sleep(poll);
                }
            });
        if let Err(err) = spawned {
            tracing::error!(error = %err, "cannot start the code index thread; searches use the database");
        }
    }

    /// Catches up when the codes' generation moved since the index last caught up: the codes
    /// whose version differs from the index's (and the overlay's) are read into the overlay;
    /// the index is rebuilt instead when there is none yet or the overlay would grow large.
    fn refresh_if_stale(&self, db: &Db) -> anyhow::Result<()> {
        let mut conn = db.get_within(Duration::from_secs(5))?;
        let generation = codes::generation(&mut conn)?;
        if generation == self.inner.generation.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(base) = self.inner.base.read().clone() else {
            drop(conn);
            return self.refresh(db);
        };
        let changed: Vec<i64> = {
            let overlay = self.inner.overlay.read();
            codes::all_versions(&mut conn)?
                .into_iter()
                .filter(|&(id, version)| {
                    base.version_of(id).is_none_or(|v| v < version)
                        && overlay.version_of(id).is_none_or(|v| v < version)
                })
                .map(|(id, _)| id)
                .collect()
        };
        if changed.len() + self.inner.overlay.read().len() > MAX_OVERLAY {
            drop(conn);
            return self.refresh(db);
        }
        let mut rows = Vec::with_capacity(changed.len());
        for chunk in changed.chunks(500) {
            rows.extend(codes::find_codes_by_ids(&mut conn, chunk)?);
        }
        {
            let mut overlay = self.inner.overlay.write();
            for row in &rows {
                overlay.apply(entry(row));
            }
        }
        self.inner.generation.store(generation, Ordering::Release);
        if !rows.is_empty() {
            tracing::debug!(
                codes = rows.len(),
                generation,
                "code search index caught up"
            );
        }
        Ok(())
    }

    /// Builds the index from the codes now in the database and puts it in place (tests and
    /// imports call it to search at once).
    pub fn refresh(&self, db: &Db) -> anyhow::Result<()> {
        if !self.inner.enabled {
            return Ok(());
        }
        let _one = self.inner.rebuilding.lock();
        let started = Instant::now();
        let (generation, rows) = {
            let mut conn = db.get_within(Duration::from_secs(5))?;
            // The generation first: a change after it is seen at the next poll.
            let generation = codes::generation(&mut conn)?;
            (generation, codes::all_codes(&mut conn)?)
        };
        let index = Arc::new(Index::build(rows.into_iter().map(owned_entry).collect()));
        release_freed_memory();
        {
            let mut overlay = self.inner.overlay.write();
            *self.inner.base.write() = Some(Arc::clone(&index));
            overlay.prune(&index);
        }
        self.inner.generation.store(generation, Ordering::Release);
        let took = started.elapsed().as_millis() as u64;
        self.inner.builds.fetch_add(1, Ordering::Relaxed);
        self.inner.last_build_ms.store(took, Ordering::Relaxed);
        tracing::info!(
            codes = index.len(),
            generation,
            took_ms = took,
            "code search index built"
        );
        Ok(())
    }

    /// The codes at `offset..offset + limit` of the ranking of `query` ([`Index::search`]),
    /// from memory; `None` while the index is not built (or is off).
    pub fn search(
        &self,
        query: &str,
        system: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> Option<Vec<Hit>> {
        let base = self.inner.base.read().clone()?;
        let overlay = self.inner.overlay.read();
        Some(base.search(&overlay, query, system, offset, limit))
    }

    /// Takes a committed change of a code into account at once.
    pub fn apply(&self, code: &Code) {
        if !self.inner.enabled {
            return;
        }
        let base = self.inner.base.read().clone();
        if base.is_some_and(|b| b.version_of(code.id).is_some_and(|v| v >= code.version)) {
            return;
        }
        self.inner.overlay.write().apply(entry(code));
    }

    pub fn status(&self) -> IndexStatus {
        let base = self.inner.base.read().clone();
        IndexStatus {
            ready: base.is_some(),
            codes: base.map_or(0, |b| b.len()),
            builds: self.inner.builds.load(Ordering::Relaxed),
            last_build_ms: self.inner.last_build_ms.load(Ordering::Relaxed),
        }
    }
}

/// Hands memory freed by a large one-off job (loading 112k codes, building their index) back
/// to the system: glibc keeps freed heap pages in its arenas, which left a first start 25 MiB
/// larger than a later one.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's own arenas to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
