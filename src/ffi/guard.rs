//! The one guard every `extern "C"` entry point runs under. A Rust panic
//! must never unwind into Kamailio (that aborts the whole server): it is
//! caught here, logged, and turned into the entry point's error value.

use std::any::Any;
use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

fn panic_text(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown panic")
}

/// Runs `f`; a panic becomes -1 and an error line naming `entry`.
pub fn guard(entry: &str, f: impl FnOnce() -> c_int) -> c_int {
    guard_or(entry, -1, f)
}

/// Runs `f`; a panic becomes `on_panic` and an error line naming `entry`
/// (for entry points whose error value is not -1).
pub fn guard_or<T>(entry: &str, on_panic: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            log::error!("{entry}: internal error: {}", panic_text(&*payload));
            on_panic
        }
    }
}

/// For entry points without a return value (callbacks, destroy).
pub fn guard_void(entry: &str, f: impl FnOnce()) {
    guard(entry, || {
        f();
        0
    });
}

/// Replaces the default panic message on stderr (which Kamailio may have
/// closed) with a log line; the guard then reports the entry point.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        log::error!("panic: {info}");
    }));
}
