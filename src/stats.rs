//! Counters for `kamcmd topos_rs.stats`. They live in one block of memory
//! that every Kamailio process shares (allocated in shared memory before
//! the fork, see `ffi::exports`), updated with atomics.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;

#[repr(C)]
#[derive(Default)]
pub struct Stats {
    pub requests_hidden: AtomicU64,
    pub replies_restored: AtomicU64,
    /// Replies of hidden transactions that could not be hidden and went
    /// out reduced (fail closed).
    pub replies_reduced: AtomicU64,
    pub dialogs_created: AtomicU64,
    pub dialogs_ended: AtomicU64,
    pub dialogs_expired: AtomicU64,
    pub token_misses: AtomicU64,
    /// Requests the egress gate stopped (topos::egress): a topos_rs token
    /// in the Request-URI, relayed unhidden.
    pub dropped_token_requests: AtomicU64,
    /// ... an ACK or CANCEL of a hidden INVITE transaction, relayed unhidden.
    pub dropped_ack_cancel: AtomicU64,
    /// ... a request topos_request() refused, relayed anyway.
    pub dropped_refused_requests: AtomicU64,
    pub storage_errors: AtomicU64,
    pub calls_billed: AtomicU64,
    /// Sum of billed costs in units of 10^-billing_decimals.
    pub billed_minor_units: AtomicI64,
    /// Bumped by `topos_rs.rates_reload`: workers reload the rates file.
    pub rates_generation: AtomicU64,
}

/// Set once in mod_init, before Kamailio forks: every process inherits the
/// same reference to the shared block.
static STATS: OnceLock<&'static Stats> = OnceLock::new();

/// Installs the shared block (once, before the fork).
pub fn install(block: &'static Stats) {
    let _ = STATS.set(block);
}

/// The shared counters, if installed.
pub fn get() -> Option<&'static Stats> {
    STATS.get().copied()
}

pub fn bump(f: impl Fn(&Stats) -> &AtomicU64) {
    if let Some(s) = get() {
        f(s).fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_count_once_installed() {
        bump(|s| &s.calls_billed); // not installed yet: no effect, no panic
        let block: &'static Stats = Box::leak(Box::default());
        install(block);
        bump(|s| &s.calls_billed);
        bump(|s| &s.calls_billed);
        assert_eq!(get().unwrap().calls_billed.load(Ordering::Relaxed), 2);
    }
}
