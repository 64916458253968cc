//! A time limit on a request's database work.
//!
//! PostgreSQL has one: `statement_timeout`, set on every request connection
//! ([`super::ConnectionManager`]). SQLite has none, and diesel does not expose the connection
//! handle, so every SQLite connection this process opens gets a progress handler (through
//! `sqlite3_auto_extension`, SQLite's hook for each new connection) that interrupts the
//! running statement (`SQLITE_INTERRUPT`, "interrupted") once the deadline of the thread
//! running it has passed. [`Db::run`](super::Db::run) sets the deadline around a request's
//! work; other work (the audit writer, commands, migrations) has none.

use std::cell::Cell;
use std::os::raw::{c_char, c_int, c_void};
use std::time::{Duration, Instant};

use libsqlite3_sys as ffi;

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// SQLite virtual-machine steps between two looks at the clock (a few microseconds of work).
const STEPS: c_int = 4_000;

unsafe extern "C" fn past_deadline(_: *mut c_void) -> c_int {
    DEADLINE.with(|d| d.get().is_some_and(|at| Instant::now() >= at)) as c_int
}

unsafe extern "C" fn on_open(
    db: *mut ffi::sqlite3,
    _error: *mut *mut c_char,
    _api: *const ffi::sqlite3_api_routines,
) -> c_int {
    // SAFETY: `db` is the connection SQLite is opening; the handler takes no data.
    unsafe { ffi::sqlite3_progress_handler(db, STEPS, Some(past_deadline), std::ptr::null_mut()) };
    ffi::SQLITE_OK
}

/// Registers the progress handler for every SQLite connection opened from now on (once).
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `on_open` has the entry-point signature SQLite expects and stays valid for
        // the life of the process.
        unsafe { ffi::sqlite3_auto_extension(Some(on_open)) };
    });
}

/// While it lives, SQLite statements on this thread stop at `now + limit` (`None`: no limit).
pub struct Deadline {
    previous: Option<Instant>,
}

impl Deadline {
    pub fn start(limit: Option<Duration>) -> Deadline {
        let at = limit.map(|l| Instant::now() + l);
        Deadline {
            previous: DEADLINE.with(|d| d.replace(at)),
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(self.previous));
    }
}
