//! The one guard every `extern "C"` entry point runs under. A Rust panic
//! must never unwind into Kamailio (that aborts the whole server): it is
//! caught here, logged, and turned into the entry point's error value.

use crate::error::Result;
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
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            log::error!("{entry}: internal error: {}", panic_text(&*payload));
            -1
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

/// What a script function returns to the routing script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    True,
    False,
    /// A documented negative code other than -1 (e.g. "nothing to bill").
    Code(i32),
}

impl From<bool> for Ret {
    fn from(b: bool) -> Ret {
        if b {
            Ret::True
        } else {
            Ret::False
        }
    }
}

/// A script function's result as Kamailio wants it: 1 for true, -1 for
/// false or error, or the function's own code. Never 0, which would stop
/// the routing script.
pub fn script_result<R: Into<Ret>>(entry: &str, r: Result<R>) -> c_int {
    match r.map(Into::into) {
        Ok(Ret::True) => 1,
        Ok(Ret::False) => -1,
        Ok(Ret::Code(c)) if c != 0 => c,
        Ok(Ret::Code(_)) => -1,
        Err(e) => {
            log::error!("{entry}: {e}");
            -1
        }
    }
}

/// Replaces the default panic message on stderr (which Kamailio may have
/// closed) with a log line; the guard then reports the entry point.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        log::error!("panic: {info}");
    }));
}
