//! The billing journal's file: an LMDB environment of its own in
//! Kamailio's runtime directory, shared by every process of the node, that
//! keeps the billing events the store could not take, oldest first, until
//! they are written to it. Bytes only; what the events mean is in
//! `crate::billing::journal`, what is done with them in
//! `crate::billing_journal`.
//!
//! Why LMDB and not an append-only file: the processes of a node write to
//! it at the same time (LMDB serialises them with its own lock, an append
//! file would need one of ours), an entry leaves it only once its store
//! operation succeeded (an LMDB delete of that entry; a file would need
//! rewriting or a separate "done" log), `billing_stop()` must find the
//! answer of one call among thousands (an LMDB index; a file would be read
//! through) and a crash at any point leaves either the old or the new
//! state (LMDB commits are atomic; a torn line in a file is not).
//!
//! Two databases: `events` (sequence number, big-endian so that LMDB's
//! order is the order of arrival → the index entry's length and bytes, then
//! the event) and `index` (index entry → sequence number). An index entry
//! names one event ("the answer of this bill", "the end of this dialog"):
//! a second event with the same index entry is not added (the first answer
//! and the first end are the ones that count).
//!
//! Durability as the LMDB store's (NO_SYNC): a commit is in the shared map
//! when it returns, so a crash or restart of Kamailio loses nothing;
//! `flush` (every replay tick while entries wait) writes it to disk.

use super::lmdb::map_err;
use super::StoreResult;
use crate::ffi::lmdb_env;
use heed::types::Bytes;
use heed::{Database, Env, EnvOpenOptions, RwTxn, WithoutTls};
use std::path::Path;

/// One journaled event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its place in the order of arrival.
    pub seq: u64,
    /// Its index entry.
    pub index: Vec<u8>,
    pub payload: Vec<u8>,
}

/// What `append` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Added; this many entries wait now.
    New { pending: u64 },
    /// An entry with the same index entry waits already: nothing added.
    AlreadyThere,
}

pub struct Journal {
    env: Env<WithoutTls>,
    events: Database<Bytes, Bytes>,
    index: Database<Bytes, Bytes>,
    /// Told how many events wait, by every write transaction before it
    /// commits, so while holding LMDB's writer lock: the last number told
    /// is the last transaction's, whichever process ran it (a number told
    /// after the commit could be overtaken by an older one and say 0 while
    /// events wait). A commit that then fails leaves a number too high for
    /// a moment (`publish_len` corrects it); never one too low.
    on_len: fn(u64),
}

fn encode(index: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(2 + index.len() + payload.len());
    v.extend_from_slice(&(index.len() as u16).to_be_bytes());
    v.extend_from_slice(index);
    v.extend_from_slice(payload);
    v
}

fn decode(seq: &[u8], value: &[u8]) -> Option<Entry> {
    let seq = u64::from_be_bytes(seq.try_into().ok()?);
    let len = u16::from_be_bytes(value.get(..2)?.try_into().ok()?) as usize;
    Some(Entry {
        seq,
        index: value.get(2..2 + len)?.to_vec(),
        payload: value.get(2 + len..)?.to_vec(),
    })
}

/// Longest index entry (LMDB bounds key sizes).
pub const MAX_INDEX: usize = 400;

impl Journal {
    /// Opens (or creates) the journal in `dir`. Once per process, after
    /// the fork (an LMDB environment must not cross one).
    pub fn open(dir: &Path, map_size_mib: usize, on_len: fn(u64)) -> StoreResult<Journal> {
        super::lmdb::LmdbStore::check_dir(dir).map_err(super::StoreError::Backend)?;
        let mut opts = EnvOpenOptions::new().read_txn_without_tls();
        opts.map_size(map_size_mib.max(1) * 1024 * 1024)
            .max_dbs(2)
            .max_readers(1024);
        let env = lmdb_env::open(opts, dir).map_err(map_err)?;
        let mut wtxn = env.write_txn().map_err(map_err)?;
        let events = env
            .create_database::<Bytes, Bytes>(&mut wtxn, Some("events"))
            .map_err(map_err)?;
        let index = env
            .create_database::<Bytes, Bytes>(&mut wtxn, Some("index"))
            .map_err(map_err)?;
        wtxn.commit().map_err(map_err)?;
        Ok(Journal {
            env,
            events,
            index,
            on_len,
        })
    }

    /// Runs `f` in one write transaction, tells `on_len` how many events
    /// wait then, and commits.
    fn write<T>(&self, f: impl FnOnce(&mut RwTxn) -> heed::Result<T>) -> StoreResult<T> {
        let mut wtxn = self.env.write_txn().map_err(map_err)?;
        let out = f(&mut wtxn).map_err(map_err)?;
        (self.on_len)(self.events.len(&wtxn).map_err(map_err)?);
        wtxn.commit().map_err(map_err)?;
        Ok(out)
    }

    /// Tells `on_len` how many events wait (under the writer lock, as
    /// every change does).
    pub fn publish_len(&self) -> StoreResult<()> {
        self.write(|_| Ok(()))
    }

    /// Adds an event at the end, unless one with the same `index` entry
    /// waits already.
    pub fn append(&self, index: &[u8], payload: &[u8]) -> StoreResult<Appended> {
        if index.is_empty() || index.len() > MAX_INDEX {
            return Err(super::StoreError::Backend(format!(
                "journal index entry of {} bytes",
                index.len()
            )));
        }
        let (events, idx) = (self.events, self.index);
        self.write(|txn| {
            if idx.get(txn, index)?.is_some() {
                return Ok(Appended::AlreadyThere);
            }
            // The writer lock is held: no other process takes this number.
            let seq = match events.last(txn)? {
                Some((k, _)) => k
                    .try_into()
                    .map(u64::from_be_bytes)
                    .unwrap_or(0)
                    .saturating_add(1),
                None => 1,
            };
            let k = seq.to_be_bytes();
            events.put(txn, &k, &encode(index, payload))?;
            idx.put(txn, index, &k)?;
            Ok(Appended::New {
                pending: events.len(txn)?,
            })
        })
    }

    /// The waiting event with this index entry, if any.
    pub fn find(&self, index: &[u8]) -> StoreResult<Option<Entry>> {
        if index.is_empty() || index.len() > MAX_INDEX {
            return Ok(None);
        }
        let rtxn = self.env.read_txn().map_err(map_err)?;
        let Some(seq) = self.index.get(&rtxn, index).map_err(map_err)? else {
            return Ok(None);
        };
        let value = self.events.get(&rtxn, seq).map_err(map_err)?;
        Ok(value.and_then(|v| decode(seq, v)))
    }

    /// The oldest `limit` events, oldest first.
    pub fn oldest(&self, limit: usize) -> StoreResult<Vec<Entry>> {
        let rtxn = self.env.read_txn().map_err(map_err)?;
        let mut out = Vec::new();
        for item in self.events.iter(&rtxn).map_err(map_err)? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(map_err)?;
            match decode(k, v) {
                Some(e) => out.push(e),
                // Unreadable framing: handed on with an empty payload, so
                // the caller reports and removes it instead of it blocking
                // every event behind it.
                None => out.push(Entry {
                    seq: k.try_into().map(u64::from_be_bytes).unwrap_or(0),
                    index: Vec::new(),
                    payload: Vec::new(),
                }),
            }
        }
        Ok(out)
    }

    /// Removes event `seq` and its index entry; returns how many events
    /// wait after that. Removing one that is gone already changes nothing.
    pub fn remove(&self, seq: u64) -> StoreResult<u64> {
        let (events, idx) = (self.events, self.index);
        self.write(|txn| {
            let k = seq.to_be_bytes();
            let index = events
                .get(txn, &k)?
                .and_then(|v| decode(&k, v))
                .map(|e| e.index);
            events.delete(txn, &k)?;
            if let Some(index) = index {
                // Only if it names this event (never another's).
                if idx.get(txn, &index)? == Some(&k[..]) {
                    idx.delete(txn, &index)?;
                }
            }
            events.len(txn)
        })
    }

    /// How many events wait.
    pub fn len(&self) -> StoreResult<u64> {
        let rtxn = self.env.read_txn().map_err(map_err)?;
        self.events.len(&rtxn).map_err(map_err)
    }

    pub fn is_empty(&self) -> StoreResult<bool> {
        Ok(self.len()? == 0)
    }

    /// Writes what was committed to disk.
    pub fn flush(&self) -> StoreResult<()> {
        let _ = self.env.clear_stale_readers();
        self.env.force_sync().map_err(map_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn told(_: u64) {}

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "topos-rs-unit-journal-{}-{tag}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn events_come_out_oldest_first_and_leave_once_removed() {
        let d = dir("order");
        let j = Journal::open(&d, 4, told).unwrap();
        assert!(j.is_empty().unwrap());
        assert_eq!(
            j.append(b"a:1", b"one").unwrap(),
            Appended::New { pending: 1 }
        );
        assert_eq!(
            j.append(b"e:1", b"two").unwrap(),
            Appended::New { pending: 2 }
        );
        assert_eq!(
            j.append(b"a:2", b"three").unwrap(),
            Appended::New { pending: 3 }
        );
        let all = j.oldest(10).unwrap();
        let payloads: Vec<&[u8]> = all.iter().map(|e| &e.payload[..]).collect();
        assert_eq!(payloads, [&b"one"[..], b"two", b"three"]);
        assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(j.oldest(1).unwrap().len(), 1);
        // Found by its index entry until removed; removing twice is harmless.
        let two = j.find(b"e:1").unwrap().unwrap();
        assert_eq!(
            (two.index.as_slice(), two.payload.as_slice()),
            (&b"e:1"[..], &b"two"[..])
        );
        assert_eq!(j.remove(two.seq).unwrap(), 2);
        assert_eq!(j.remove(two.seq).unwrap(), 2);
        assert_eq!(j.find(b"e:1").unwrap(), None);
        assert_eq!(j.len().unwrap(), 2);
        drop(j);
        // What waits survives closing (a Kamailio restart).
        let j = Journal::open(&d, 4, told).unwrap();
        let left: Vec<Vec<u8>> = j
            .oldest(10)
            .unwrap()
            .into_iter()
            .map(|e| e.payload)
            .collect();
        assert_eq!(left, [b"one".to_vec(), b"three".to_vec()]);
        // Numbers keep growing after removals: order stays the order of arrival.
        j.append(b"a:4", b"four").unwrap();
        let last = j.oldest(10).unwrap().pop().unwrap();
        assert_eq!(last.payload, b"four");
        drop(j);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_first_event_of_an_index_entry_is_kept() {
        let d = dir("first");
        let j = Journal::open(&d, 4, told).unwrap();
        j.append(b"a:1", b"first answer").unwrap();
        assert_eq!(
            j.append(b"a:1", b"retransmitted").unwrap(),
            Appended::AlreadyThere
        );
        assert_eq!(j.find(b"a:1").unwrap().unwrap().payload, b"first answer");
        assert_eq!(j.len().unwrap(), 1);
        // Once it left, the same index entry may be journaled again.
        let seq = j.find(b"a:1").unwrap().unwrap().seq;
        j.remove(seq).unwrap();
        assert!(matches!(
            j.append(b"a:1", b"again").unwrap(),
            Appended::New { .. }
        ));
        assert!(j.append(b"", b"x").is_err());
        assert!(j.append(&[b'x'; MAX_INDEX + 1], b"x").is_err());
        assert_eq!(j.find(&[b'x'; MAX_INDEX + 1]).unwrap(), None);
        drop(j);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_full_journal_is_a_clear_error() {
        let d = dir("full");
        let j = Journal::open(&d, 1, told).unwrap();
        let big = vec![7u8; 2000];
        let mut err = None;
        for i in 0..2000u32 {
            if let Err(e) = j.append(format!("a:{i}").as_bytes(), &big) {
                err = Some(e);
                break;
            }
        }
        let err = err.expect("a 1 MiB journal fills up");
        assert!(err.to_string().contains("lmdb_map_size"), "{err}");
        // What was journaled stays readable.
        assert!(j.len().unwrap() > 100);
        drop(j);
        let _ = std::fs::remove_dir_all(&d);
    }

    static COUNT: AtomicU64 = AtomicU64::new(u64::MAX);

    fn count(n: u64) {
        COUNT.store(n, Ordering::SeqCst);
    }

    #[test]
    fn every_change_tells_how_many_events_wait() {
        let d = dir("count");
        let j = Journal::open(&d, 4, count).unwrap();
        assert_eq!(
            COUNT.load(Ordering::SeqCst),
            u64::MAX,
            "opening tells nothing"
        );
        j.publish_len().unwrap();
        assert_eq!(COUNT.load(Ordering::SeqCst), 0);
        j.append(b"a:1", b"x").unwrap();
        j.append(b"a:2", b"y").unwrap();
        assert_eq!(COUNT.load(Ordering::SeqCst), 2);
        assert_eq!(j.append(b"a:2", b"z").unwrap(), Appended::AlreadyThere);
        assert_eq!(COUNT.load(Ordering::SeqCst), 2);
        let first = j.oldest(1).unwrap().remove(0);
        j.remove(first.seq).unwrap();
        assert_eq!(COUNT.load(Ordering::SeqCst), 1);
        drop(j);
        let _ = std::fs::remove_dir_all(&d);
    }
}
