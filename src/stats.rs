//! The module's counters. They live in one block of memory that every
//! Kamailio process shares (allocated in shared memory before the fork,
//! see `ffi::exports`), updated with atomics.
//!
//! `COUNTERS` declares each number once (name, doc, what it reads): the
//! `topos_rs.stats` RPC answer and the Kamailio counters (group
//! `topos_rs`, so `cnt.*`, `stats.*` and xhttp_prom) are both built from
//! it, so they always show the same names and the same values. A new field
//! of `Stats` must be named in `COUNTERS` (or `NOT_COUNTERS`): a unit test
//! below fails until it is.

use crate::config::{Storage, TokenMode};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;

#[repr(C)]
#[derive(Default, Debug)]
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
    /// Dialogs kept in the store in sealed mode because their state would
    /// not fit a token of the size bound.
    pub dialogs_stored_too_large: AtomicU64,
    /// Billing events waiting in this node's billing journal for the store
    /// (a gauge: set from the journal itself after each change).
    pub billing_journal_pending: AtomicU64,
    /// Billing events (answers, BYEs) kept in the journal because the
    /// store was unavailable.
    pub billing_journaled: AtomicU64,
    /// Journaled billing events written to the store once it was back.
    pub billing_journal_replayed: AtomicU64,
}

/// Where a counter's value comes from.
#[derive(Clone, Copy)]
pub enum Source {
    /// A field of the shared block, as it is.
    Field(fn(&Stats) -> &AtomicU64),
    /// A signed field of the shared block, as it is.
    Signed(fn(&Stats) -> &AtomicI64),
    /// Computed from fields of the shared block.
    Derived(fn(&Stats) -> i64),
}

/// One number of `topos_rs.stats`, also the Kamailio counter
/// `topos_rs.<name>` (xhttp_prom: `kamailio_topos_rs_<name>`).
pub struct Counter {
    /// The RPC field and counter name: lower case, digits and `_` only
    /// (a Prometheus metric name once prefixed).
    pub name: &'static str,
    /// The counter's description (`kamcmd cnt.help topos_rs <name>`).
    pub doc: &'static str,
    pub source: Source,
    /// Shown only where this node sees every dialog end: with LMDB. Redis
    /// expires records itself, unseen, and the nodes sharing it end each
    /// other's dialogs, so there only the store can tell
    /// (`topos_rs.records`) and a guess would mislead.
    pub lmdb_only: bool,
}

impl Counter {
    /// The counter's value in `s`.
    pub fn value(&self, s: &Stats) -> i64 {
        match self.source {
            Source::Field(f) => i64::try_from(f(s).load(Ordering::Relaxed)).unwrap_or(i64::MAX),
            Source::Signed(f) => f(s).load(Ordering::Relaxed),
            Source::Derived(f) => f(s),
        }
    }
}

/// Dialogs confirmed and not yet ended or expired.
fn dialogs_active(s: &Stats) -> i64 {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let gone = load(&s.dialogs_ended).saturating_add(load(&s.dialogs_expired));
    i64::try_from(load(&s.dialogs_created).saturating_sub(gone)).unwrap_or(i64::MAX)
}

/// The counters, in the order `topos_rs.stats` shows them.
pub const COUNTERS: &[Counter] = &[
    Counter {
        name: "requests_hidden",
        doc: "Requests topos_request() hid.",
        source: Source::Field(|s| &s.requests_hidden),
        lmdb_only: false,
    },
    Counter {
        name: "replies_restored",
        doc: "Replies of hidden transactions that got their Via stack back.",
        source: Source::Field(|s| &s.replies_restored),
        lmdb_only: false,
    },
    Counter {
        name: "replies_reduced",
        doc: "Replies of hidden transactions that could not be hidden and went out reduced.",
        source: Source::Field(|s| &s.replies_reduced),
        lmdb_only: false,
    },
    Counter {
        name: "dialogs_created",
        doc: "Dialogs a 2xx confirmed (once per dialog).",
        source: Source::Field(|s| &s.dialogs_created),
        lmdb_only: false,
    },
    Counter {
        name: "dialogs_active",
        doc: "Dialogs created and not yet ended or expired (LMDB only).",
        source: Source::Derived(dialogs_active),
        lmdb_only: true,
    },
    Counter {
        name: "dialogs_ended",
        doc: "Dialogs a BYE ended (once per dialog).",
        source: Source::Field(|s| &s.dialogs_ended),
        lmdb_only: false,
    },
    Counter {
        name: "dialogs_expired",
        doc: "Dialogs whose record expired while still active (LMDB only).",
        source: Source::Field(|s| &s.dialogs_expired),
        lmdb_only: true,
    },
    Counter {
        name: "token_misses",
        doc: "Requests refused for their token (unknown, expired, forged or misused: in-dialog, transfer INVITE or REFER).",
        source: Source::Field(|s| &s.token_misses),
        lmdb_only: false,
    },
    Counter {
        name: "dropped_token_requests",
        doc: "Requests with a topos_rs token in the Request-URI the egress gate stopped (relayed unhidden).",
        source: Source::Field(|s| &s.dropped_token_requests),
        lmdb_only: false,
    },
    Counter {
        name: "dropped_ack_cancel",
        doc: "ACKs and CANCELs of hidden INVITE transactions the egress gate stopped (relayed unhidden).",
        source: Source::Field(|s| &s.dropped_ack_cancel),
        lmdb_only: false,
    },
    Counter {
        name: "dropped_refused_requests",
        doc: "Requests topos_request() refused that the script relayed anyway, stopped by the egress gate.",
        source: Source::Field(|s| &s.dropped_refused_requests),
        lmdb_only: false,
    },
    Counter {
        name: "dialogs_stored_too_large",
        doc: "Dialogs kept in the store in sealed mode: their state would not fit a token of the size bound.",
        source: Source::Field(|s| &s.dialogs_stored_too_large),
        lmdb_only: false,
    },
    Counter {
        name: "storage_errors",
        doc: "Store operations that failed.",
        source: Source::Field(|s| &s.storage_errors),
        lmdb_only: false,
    },
    Counter {
        name: "billing_journal_pending",
        doc: "Billing events waiting in this node's billing journal until the store is back (a gauge).",
        source: Source::Field(|s| &s.billing_journal_pending),
        lmdb_only: false,
    },
    Counter {
        name: "billing_journaled",
        doc: "Billing events (answers, BYEs) kept in the billing journal because the store was unavailable.",
        source: Source::Field(|s| &s.billing_journaled),
        lmdb_only: false,
    },
    Counter {
        name: "billing_journal_replayed",
        doc: "Journaled billing events written to the store once it was back.",
        source: Source::Field(|s| &s.billing_journal_replayed),
        lmdb_only: false,
    },
    Counter {
        name: "calls_billed",
        doc: "Calls billed (one CALL BILLING line each).",
        source: Source::Field(|s| &s.calls_billed),
        lmdb_only: false,
    },
    Counter {
        name: "billed_minor_units",
        doc: "Sum of billed costs in units of 10^-billing_decimals (cents with 2 decimals).",
        source: Source::Signed(|s| &s.billed_minor_units),
        lmdb_only: false,
    },
];

/// Fields of `Stats` that are shared state, not numbers for operators.
pub const NOT_COUNTERS: &[&str] = &["rates_generation"];

/// Whether the lmdb_only counters mean something: only a node that keeps
/// every dialog in its own store sees every dialog end (stored tokens on
/// LMDB). On Redis other nodes end this node's dialogs and Redis expires
/// records unseen; sealed tokens keep no record at all, and a token of an
/// ended dialog can bring a second BYE.
pub fn sees_every_dialog_end(storage: Option<&Storage>, tokens: TokenMode) -> bool {
    matches!(storage, Some(Storage::Lmdb { .. })) && tokens == TokenMode::Stored
}

/// The counters a node with this storage and token mode shows (RPC and
/// Kamailio counters).
pub fn shown(
    storage: Option<&Storage>,
    tokens: TokenMode,
) -> impl Iterator<Item = &'static Counter> {
    let all = sees_every_dialog_end(storage, tokens);
    COUNTERS.iter().filter(move |c| all || !c.lmdb_only)
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
    use std::path::PathBuf;

    #[test]
    fn counters_count_once_installed() {
        bump(|s| &s.calls_billed); // not installed yet: no effect, no panic
        let block: &'static Stats = Box::leak(Box::default());
        install(block);
        bump(|s| &s.calls_billed);
        bump(|s| &s.calls_billed);
        assert_eq!(get().unwrap().calls_billed.load(Ordering::Relaxed), 2);
    }

    /// `name: value` pairs of a Stats, as its Debug output lists them.
    fn debug_fields(s: &Stats) -> Vec<(String, String)> {
        let text = format!("{s:?}");
        let inner = text
            .strip_prefix("Stats {")
            .and_then(|t| t.strip_suffix('}'))
            .expect("Debug of a struct");
        inner
            .split(',')
            .filter(|f| !f.trim().is_empty())
            .map(|f| {
                let (name, value) = f.split_once(':').expect("name: value");
                (name.trim().to_string(), value.trim().to_string())
            })
            .collect()
    }

    /// Every field of Stats is a counter (or named as not one), and each
    /// field counter reads the field of its own name.
    #[test]
    fn every_field_is_a_counter_of_its_own_name() {
        let fields = debug_fields(&Stats::default());
        assert!(fields.len() >= 11, "{fields:?}");
        for (field, _) in &fields {
            let counters = COUNTERS.iter().filter(|c| c.name == field).count();
            let internal = NOT_COUNTERS.contains(&field.as_str());
            assert!(
                counters == 1 || internal,
                "Stats field {field} is in no counter: add it to stats::COUNTERS \
                 (or to NOT_COUNTERS if operators must not see it)"
            );
            assert!(!(counters > 0 && internal), "{field} is both");
        }
        for c in COUNTERS {
            let s = Stats::default();
            match c.source {
                Source::Field(f) => f(&s).store(7, Ordering::Relaxed),
                Source::Signed(f) => f(&s).store(7, Ordering::Relaxed),
                Source::Derived(_) => {
                    assert!(
                        !fields.iter().any(|(n, _)| n == c.name),
                        "{} is a field: read it as one",
                        c.name
                    );
                    continue;
                }
            }
            let set: Vec<_> = debug_fields(&s)
                .into_iter()
                .filter(|(_, v)| v == "7")
                .map(|(n, _)| n)
                .collect();
            assert_eq!(set, [c.name], "counter {} reads another field", c.name);
            assert_eq!(c.value(&s), 7, "{}", c.name);
        }
    }

    #[test]
    fn names_are_unique_metric_names_with_a_doc() {
        for (i, c) in COUNTERS.iter().enumerate() {
            assert!(
                !c.name.is_empty()
                    && c.name
                        .bytes()
                        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_')),
                "{}",
                c.name
            );
            assert!(
                c.doc.ends_with('.') && c.doc.len() > 10 && !c.doc.contains('\0'),
                "{}",
                c.name
            );
            assert!(
                !COUNTERS[i + 1..].iter().any(|d| d.name == c.name),
                "{} twice",
                c.name
            );
        }
    }

    #[test]
    fn active_dialogs_are_created_minus_gone_never_negative() {
        let active = COUNTERS
            .iter()
            .find(|c| c.name == "dialogs_active")
            .unwrap();
        let s = Stats::default();
        s.dialogs_created.store(5, Ordering::Relaxed);
        s.dialogs_ended.store(2, Ordering::Relaxed);
        s.dialogs_expired.store(1, Ordering::Relaxed);
        assert_eq!(active.value(&s), 2);
        s.dialogs_ended.store(9, Ordering::Relaxed);
        assert_eq!(active.value(&s), 0);
    }

    #[test]
    fn a_count_beyond_i64_reads_as_the_largest() {
        let c = COUNTERS
            .iter()
            .find(|c| c.name == "requests_hidden")
            .unwrap();
        let s = Stats::default();
        s.requests_hidden.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(c.value(&s), i64::MAX);
    }

    #[test]
    fn redis_nodes_leave_out_what_only_the_store_knows() {
        let lmdb = Storage::Lmdb {
            dir: PathBuf::from("/tmp/x"),
        };
        let names = |s: Option<&Storage>| {
            shown(s, TokenMode::Stored)
                .map(|c| c.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(Some(&lmdb)).len(), COUNTERS.len());
        let sealed: Vec<_> = shown(Some(&lmdb), TokenMode::Sealed)
            .map(|c| c.name)
            .collect();
        assert!(!sealed.contains(&"dialogs_active"), "{sealed:?}");
        let redis = crate::config::Storage::parse("redis://127.0.0.1:6379/0").unwrap();
        let on_redis = names(Some(&redis));
        assert!(!on_redis.contains(&"dialogs_active"), "{on_redis:?}");
        assert!(!on_redis.contains(&"dialogs_expired"), "{on_redis:?}");
        assert!(on_redis.contains(&"dialogs_created"), "{on_redis:?}");
        assert_eq!(on_redis.len(), COUNTERS.len() - 2);
    }

    /// README's list of metrics (section "Metrics") names exactly these
    /// counters, in order.
    #[test]
    fn readme_lists_every_counter() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        let listed: Vec<&str> = readme
            .lines()
            .filter_map(|l| l.strip_prefix("| `kamailio_topos_rs_"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let declared: Vec<&str> = COUNTERS.iter().map(|c| c.name).collect();
        assert_eq!(
            listed, declared,
            "README's metrics table and stats::COUNTERS"
        );
    }
}
