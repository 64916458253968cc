//! Rate-limited health probes. `/health` is polled by load balancers, often several times a
//! second per instance; a probe that writes (to storage, to the database) runs at most once per
//! [`PROBE_INTERVAL`], and callers in between, or while a probe runs, get the last outcome
//! (healthy before the first probe has finished) instead of waiting.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a probe really runs.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// The last outcome of one probe. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct ProbeCache {
    last: Arc<parking_lot::Mutex<Option<(Instant, bool)>>>,
    running: Arc<AtomicBool>,
}

impl ProbeCache {
    /// The probe's outcome: `probe` runs when the last outcome is older than
    /// [`PROBE_INTERVAL`] and no other caller is running it.
    pub async fn check<F, Fut>(&self, probe: F) -> bool
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = bool>,
    {
        let last = *self.last.lock();
        if let Some((at, healthy)) = last {
            if at.elapsed() < PROBE_INTERVAL {
                return healthy;
            }
        }
        if self.running.swap(true, Ordering::AcqRel) {
            return last.is_none_or(|(_, healthy)| healthy);
        }
        // Cleared even when this future is dropped mid-probe (the client went away).
        struct Running<'a>(&'a AtomicBool);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _running = Running(&self.running);
        let healthy = probe().await;
        *self.last.lock() = Some((Instant::now(), healthy));
        healthy
    }
}
