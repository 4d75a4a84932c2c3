//! Shared state: one `Store` interface, two backends.
//!
//! - `lmdb` — the embedded default: one memory-mapped file that every
//!   Kamailio process on the host opens after the fork; survives restarts.
//! - `redis` — for clusters: several Kamailio nodes share dialogs and bills;
//!   one Redis server, a master found through Sentinel
//!   (`redis_sentinel`) or a Redis Cluster (`redis_cluster`).
//!
//! Nothing here knows Kamailio; the per-process handle lives in `crate::state`.

pub mod journal;
pub mod key;
pub mod lmdb;
pub mod record;
pub mod redis;
pub mod redis_cluster;
pub mod redis_connect;
pub mod redis_sentinel;

use std::fmt;
use std::time::Duration;

/// Why a store operation failed. Every variant carries the cause as text
/// fit for the operator's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The backend cannot be reached (Redis down, timeout); retried later.
    Unavailable(String),
    /// The LMDB map is full: raise `lmdb_map_size`.
    Full(String),
    /// Any other backend error.
    Backend(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(m) => write!(f, "storage unavailable: {m}"),
            StoreError::Full(m) => write!(f, "storage full: {m}"),
            StoreError::Backend(m) => write!(f, "storage error: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    pub removed: usize,
    /// Of those, dialog records (keys with `:dlg:`): dialogs that expired.
    pub dialogs: usize,
}

/// Records with a lifecycle (dialogs) start with one state byte.
pub mod state {
    /// An early dialog (no 2xx yet).
    pub const EARLY: u8 = b'P';
    /// A confirmed dialog.
    pub const ACTIVE: u8 = b'A';
    /// Ended by a BYE: it stays for the grace time, then expires; nothing
    /// renews it.
    pub const ENDED: u8 = b'E';
    /// A bill key that a BYE ended before any answer reached the store:
    /// the answer is still in another node's billing journal (both
    /// happened during a store outage). The answer, once written, ends it
    /// and the call is billed (`crate::billing::journal::PendingEnd`).
    pub const PENDING_END: u8 = b'B';
}

/// What `get_lifecycle` does to a live record that has not ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle<'a> {
    /// Renew its lifetime (an in-dialog request).
    Refresh(Duration),
    /// Mark it ended and let it live this much longer (a BYE).
    End(Duration),
    /// Write this value and lifetime (a target refresh), keeping the state
    /// byte the record has now: a record that ended or changed state since
    /// it was read is never written back to the state it was read in.
    Replace(&'a [u8], Duration),
}

/// What `Lifecycle::Replace` writes over `current`: the new value with
/// the current state byte.
pub fn replaced(current: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = value.to_vec();
    if let (Some(first), Some(state)) = (out.first_mut(), current.first()) {
        *first = *state;
    }
    out
}

/// Bytes a lifecycle record must hold at `offset` for `get_lifecycle` to
/// change it (a request's proof that it may).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard<'a> {
    pub offset: usize,
    pub expect: &'a [u8],
}

impl Guard<'_> {
    /// True if `value` holds the expected bytes.
    pub fn admits(&self, value: &[u8]) -> bool {
        value.get(self.offset..self.offset + self.expect.len()) == Some(self.expect)
    }
}

/// The outcome of `get_lifecycle`; each carries the value as it was read
/// (state byte included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lived {
    Missing,
    /// The guard did not match: nothing was changed.
    Mismatch,
    /// Refreshed.
    Live(Vec<u8>),
    /// This call ended it (exactly one caller sees this per record).
    EndedNow(Vec<u8>),
    /// It had ended before: nothing was changed.
    Ended(Vec<u8>),
}

/// Key-value storage with expiry. Keys and values are bytes; every record
/// has a time to live (whole milliseconds, at least 1).
pub trait Store {
    /// Creates or replaces the record.
    fn put(&mut self, key: &[u8], value: &[u8], ttl: Duration) -> StoreResult<()>;
    /// Creates the record only if no live record has this key; true if it
    /// did. Atomic: of two concurrent callers exactly one gets true.
    fn put_new(&mut self, key: &[u8], value: &[u8], ttl: Duration) -> StoreResult<bool>;
    /// The live record, if any (never an expired one).
    fn get(&mut self, key: &[u8]) -> StoreResult<Option<Vec<u8>>>;
    /// Gets and deletes the record atomically: of two concurrent takers
    /// exactly one gets the value.
    fn take(&mut self, key: &[u8]) -> StoreResult<Option<Vec<u8>>>;
    /// The live record, if any, with a new time to live set in the same
    /// operation (Redis GETEX).
    fn get_touch(&mut self, key: &[u8], ttl: Duration) -> StoreResult<Option<Vec<u8>>>;
    /// Reads a lifecycle record (first byte: `state::*`) and, in the same
    /// atomic step, refreshes or ends it as `op` says, unless `guard` does
    /// not admit it (nothing changes then) or it has ended already: an
    /// ended record is never renewed and ends only once.
    fn get_lifecycle(
        &mut self,
        key: &[u8],
        op: Lifecycle<'_>,
        guard: Option<Guard<'_>>,
    ) -> StoreResult<Lived>;
    /// Sets a new time to live on a live record; false if there is none.
    fn touch(&mut self, key: &[u8], ttl: Duration) -> StoreResult<bool>;
    /// Deletes the record; false if there was none.
    fn delete(&mut self, key: &[u8]) -> StoreResult<bool>;
    /// Appends an entry to a stream (Redis XADD); other backends have no
    /// streams.
    fn append_to_stream(&mut self, stream: &[u8], fields: &[(&str, &[u8])]) -> StoreResult<()> {
        let _ = (stream, fields);
        Err(StoreError::Backend(
            "streams need Redis storage".to_string(),
        ))
    }
    /// Removes expired records (backends that expire by themselves do
    /// nothing).
    fn sweep(&mut self) -> StoreResult<Sweep> {
        Ok(Sweep::default())
    }
    /// Cheap readiness check before work that will need the store later
    /// (a new dialog): Err while the backend is known down. Costs nothing
    /// while the backend works; a backend that lost its connection tries
    /// to reconnect here (bounded by its timeout).
    fn ensure_available(&mut self) -> StoreResult<()> {
        Ok(())
    }
    /// Every live record whose key contains `kind` (e.g. `:dlg:`), at most
    /// `limit` of them: for operator tools, not for call handling.
    fn scan(&mut self, kind: &[u8], limit: usize) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>>;
}

/// A TTL as whole milliseconds, never 0 (0 would mean "no expiry" or an
/// error to the backends).
pub fn ttl_ms(ttl: Duration) -> u64 {
    (ttl.as_millis().min(u64::MAX as u128) as u64).max(1)
}
