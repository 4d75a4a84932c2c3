//! The wall clock every process agrees on: store expiry times and billing
//! answer and hang-up times are compared across processes, nodes and
//! restarts, so they are wall-clock milliseconds, not a monotonic clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
