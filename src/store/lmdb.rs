//! The embedded store: LMDB through `heed`. One memory-mapped file shared by
//! every Kamailio process on the host; LMDB serialises writers across
//! processes with its own lock, so `put_new` and `take` are atomic.
//!
//! Each value carries its expiry (wall-clock milliseconds), so every process
//! and a restarted Kamailio agree on it: `[1][expires_at: u64 LE][payload]`.
//! Reads never return an expired record; `sweep` deletes them.
//!
//! Durability: the environment runs with NO_SYNC: a commit is in the shared
//! memory map (and so in the OS page cache) when it returns, so a crash or
//! restart of Kamailio loses nothing. `sweep` (every few seconds) flushes to
//! disk; an OS crash or power loss can lose the writes since the last flush
//! and, on file systems that reorder writes, damage the file (delete it: it
//! holds only the state of calls in progress).

use super::{
    replaced, state, ttl_ms, Guard, Lifecycle, Lived, Store, StoreError, StoreResult, Sweep,
};
use crate::clock::now_ms;
use crate::ffi::lmdb_env;
use heed::types::Bytes;
use heed::{Database, Env, EnvOpenOptions, MdbError, WithoutTls};
use std::path::Path;
use std::time::Duration;

const VALUE_FORMAT: u8 = 1;
const HEADER: usize = 9;

pub(super) fn map_err(e: heed::Error) -> StoreError {
    match e {
        heed::Error::Mdb(MdbError::MapFull) => {
            StoreError::Full("the LMDB map is full; raise modparam lmdb_map_size (MiB)".to_string())
        }
        heed::Error::Mdb(MdbError::BadValSize) => {
            StoreError::Backend("key too long for LMDB".to_string())
        }
        other => StoreError::Backend(format!("LMDB: {other}")),
    }
}

/// Decodes a stored value: Some(payload) while it is live.
fn live(raw: &[u8], now: u64) -> Option<&[u8]> {
    if raw.len() < HEADER || raw[0] != VALUE_FORMAT {
        return None;
    }
    let expires = u64::from_le_bytes(raw[1..HEADER].try_into().ok()?);
    (expires > now).then(|| &raw[HEADER..])
}

/// True if the stored expiry is already within 1% of the lifetime (at
/// most one second) below `now + ttl`: a touch then writes nothing, so a
/// record touched often expires at most that much earlier than an exact
/// touch would make it. A touch that shortens the lifetime (a BYE's grace
/// time) always writes.
fn fresh_enough(raw: &[u8], now: u64, ttl: Duration) -> bool {
    let Some(expires) = raw
        .get(1..HEADER)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
    else {
        return false;
    };
    let want = now.saturating_add(ttl_ms(ttl));
    let slack = (ttl_ms(ttl) / 100).min(1000);
    expires <= want && expires >= want - slack
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fn encode(value: &[u8], ttl: Duration) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER + value.len());
    v.push(VALUE_FORMAT);
    v.extend_from_slice(&(now_ms().saturating_add(ttl_ms(ttl))).to_le_bytes());
    v.extend_from_slice(value);
    v
}

pub struct LmdbStore {
    env: Env<WithoutTls>,
    db: Database<Bytes, Bytes>,
}

impl LmdbStore {
    /// Creates `dir` if needed and checks that this process may write there,
    /// without opening LMDB (mod_init runs before Kamailio forks).
    pub fn check_dir(dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let probe = dir.join(format!(".topos_rs-write-check-{}", std::process::id()));
        std::fs::write(&probe, b"")
            .map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
        let _ = std::fs::remove_file(probe);
        Ok(())
    }

    /// Opens (or creates) the environment in `dir`. Call once per process,
    /// after the fork: an LMDB environment must not cross a fork.
    pub fn open(dir: &Path, map_size_mib: usize) -> StoreResult<LmdbStore> {
        Self::check_dir(dir).map_err(StoreError::Backend)?;
        let mut opts = EnvOpenOptions::new().read_txn_without_tls();
        opts.map_size(map_size_mib.max(1) * 1024 * 1024)
            .max_dbs(1)
            .max_readers(1024);
        let env = lmdb_env::open(opts, dir).map_err(map_err)?;
        let mut wtxn = env.write_txn().map_err(map_err)?;
        let db = env
            .create_database::<Bytes, Bytes>(&mut wtxn, None)
            .map_err(map_err)?;
        wtxn.commit().map_err(map_err)?;
        Ok(LmdbStore { env, db })
    }

    /// Runs `f` in one write transaction and commits if it succeeded.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut heed::RwTxn, Database<Bytes, Bytes>) -> heed::Result<T>,
    ) -> StoreResult<T> {
        let mut wtxn = self.env.write_txn().map_err(map_err)?;
        let out = f(&mut wtxn, self.db).map_err(map_err)?;
        wtxn.commit().map_err(map_err)?;
        Ok(out)
    }
}

/// Above this share of the map in use, new dialogs are refused
/// (`ensure_available`): the rest stays for the dialogs already set up
/// (their confirmations, refreshes and ends need pages too).
const NEW_DIALOGS_UP_TO_PERCENT: u64 = 75;

impl Store for LmdbStore {
    fn ensure_available(&mut self) -> StoreResult<()> {
        let rtxn = self.env.read_txn().map_err(map_err)?;
        let st = self.db.stat(&rtxn).map_err(map_err)?;
        let used =
            (st.branch_pages + st.leaf_pages + st.overflow_pages) as u64 * st.page_size as u64;
        let map = self.env.info().map_size as u64;
        if used * 100 > map * NEW_DIALOGS_UP_TO_PERCENT {
            return Err(StoreError::Full(format!(
                "the LMDB map is {}% full ({} of {} KiB); new dialogs are refused above \
                 {NEW_DIALOGS_UP_TO_PERCENT}% until records expire; raise modparam lmdb_map_size (MiB)",
                used * 100 / map.max(1),
                used / 1024,
                map / 1024
            )));
        }
        Ok(())
    }

    fn put(&mut self, key: &[u8], value: &[u8], ttl: Duration) -> StoreResult<()> {
        let v = encode(value, ttl);
        self.write(|txn, db| db.put(txn, key, &v))
    }

    fn put_new(&mut self, key: &[u8], value: &[u8], ttl: Duration) -> StoreResult<bool> {
        let v = encode(value, ttl);
        let now = now_ms();
        self.write(|txn, db| {
            if db.get(txn, key)?.and_then(|raw| live(raw, now)).is_some() {
                return Ok(false);
            }
            db.put(txn, key, &v)?;
            Ok(true)
        })
    }

    fn get(&mut self, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let rtxn = self.env.read_txn().map_err(map_err)?;
        let raw = self.db.get(&rtxn, key).map_err(map_err)?;
        Ok(raw.and_then(|r| live(r, now_ms())).map(<[u8]>::to_vec))
    }

    fn take(&mut self, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let now = now_ms();
        self.write(|txn, db| {
            let value = match db.get(txn, key)? {
                None => return Ok(None),
                Some(raw) => live(raw, now).map(<[u8]>::to_vec),
            };
            db.delete(txn, key)?;
            Ok(value)
        })
    }

    fn get_touch(&mut self, key: &[u8], ttl: Duration) -> StoreResult<Option<Vec<u8>>> {
        let now = now_ms();
        // A write transaction takes the writer lock and copies pages; most
        // touches (the ACK right after the 2xx stored the dialog, requests
        // of a busy dialog) would move the expiry by a hair. A read
        // transaction answers those: see `fresh_enough`.
        {
            let rtxn = self.env.read_txn().map_err(map_err)?;
            match self.db.get(&rtxn, key).map_err(map_err)? {
                None => return Ok(None),
                Some(raw) => match live(raw, now) {
                    None => return Ok(None),
                    Some(payload) if fresh_enough(raw, now, ttl) => {
                        return Ok(Some(payload.to_vec()))
                    }
                    Some(_) => {}
                },
            }
        }
        self.write(|txn, db| {
            let Some(payload) = db
                .get(txn, key)?
                .and_then(|r| live(r, now))
                .map(<[u8]>::to_vec)
            else {
                return Ok(None);
            };
            db.put(txn, key, &encode(&payload, ttl))?;
            Ok(Some(payload))
        })
    }

    fn get_lifecycle(
        &mut self,
        key: &[u8],
        op: Lifecycle<'_>,
        guard: Option<Guard<'_>>,
    ) -> StoreResult<Lived> {
        let refused = |payload: &[u8]| guard.is_some_and(|g| !g.admits(payload));
        let now = now_ms();
        // As in get_touch: a refresh that would barely move the expiry, or
        // any request to an ended record, is answered by a read
        // transaction.
        {
            let rtxn = self.env.read_txn().map_err(map_err)?;
            let Some(raw) = self.db.get(&rtxn, key).map_err(map_err)? else {
                return Ok(Lived::Missing);
            };
            let Some(payload) = live(raw, now) else {
                return Ok(Lived::Missing);
            };
            if refused(payload) {
                return Ok(Lived::Mismatch);
            }
            if payload.first() == Some(&state::ENDED) {
                return Ok(Lived::Ended(payload.to_vec()));
            }
            if let Lifecycle::Refresh(ttl) = op {
                if fresh_enough(raw, now, ttl) {
                    return Ok(Lived::Live(payload.to_vec()));
                }
            }
        }
        let written = self.write(|txn, db| {
            let Some(payload) = db
                .get(txn, key)?
                .and_then(|r| live(r, now))
                .map(<[u8]>::to_vec)
            else {
                return Ok(Lived::Missing);
            };
            match op {
                _ if refused(&payload) => Ok(Lived::Mismatch),
                _ if payload.first() == Some(&state::ENDED) => Ok(Lived::Ended(payload)),
                Lifecycle::Refresh(ttl) => {
                    db.put(txn, key, &encode(&payload, ttl))?;
                    Ok(Lived::Live(payload))
                }
                Lifecycle::End(grace) => {
                    let mut ended = payload.clone();
                    if let Some(first) = ended.first_mut() {
                        *first = state::ENDED;
                    }
                    db.put(txn, key, &encode(&ended, grace))?;
                    Ok(Lived::EndedNow(payload))
                }
                Lifecycle::Replace(value, ttl) => {
                    db.put(txn, key, &encode(&replaced(&payload, value), ttl))?;
                    Ok(Lived::Live(payload))
                }
            }
        });
        match written {
            // A full map must not stop the dialogs already set up: the
            // request is routed on what was read; the new lifetime, end
            // mark or value is lost (the record expires as it was set), so
            // it is reported live, never as ended by this call.
            Err(StoreError::Full(why)) => {
                log::warn!("dialog record not updated ({why}); routed on the stored record");
                let rtxn = self.env.read_txn().map_err(map_err)?;
                let payload = self
                    .db
                    .get(&rtxn, key)
                    .map_err(map_err)?
                    .and_then(|r| live(r, now))
                    .map(<[u8]>::to_vec);
                Ok(match payload {
                    None => Lived::Missing,
                    Some(p) if refused(&p) => Lived::Mismatch,
                    Some(p) if p.first() == Some(&state::ENDED) => Lived::Ended(p),
                    Some(p) => Lived::Live(p),
                })
            }
            other => other,
        }
    }

    fn touch(&mut self, key: &[u8], ttl: Duration) -> StoreResult<bool> {
        Ok(self.get_touch(key, ttl)?.is_some())
    }

    fn delete(&mut self, key: &[u8]) -> StoreResult<bool> {
        let now = now_ms();
        self.write(|txn, db| {
            let was_live = db.get(txn, key)?.and_then(|r| live(r, now)).is_some();
            db.delete(txn, key)?;
            Ok(was_live)
        })
    }

    fn scan(&mut self, kind: &[u8], limit: usize) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let now = now_ms();
        let rtxn = self.env.read_txn().map_err(map_err)?;
        let mut out = Vec::new();
        for entry in self.db.iter(&rtxn).map_err(map_err)? {
            let (k, raw) = entry.map_err(map_err)?;
            if out.len() >= limit {
                break;
            }
            if contains(k, kind) {
                if let Some(v) = live(raw, now) {
                    out.push((k.to_vec(), v.to_vec()));
                }
            }
        }
        Ok(out)
    }

    fn sweep(&mut self) -> StoreResult<Sweep> {
        let now = now_ms();
        let removed = self.write(|txn, db| {
            let mut removed = Sweep::default();
            lmdb_env::delete_where(
                db,
                txn,
                |key, raw| {
                    // A dialog that expired while active (an ended one was
                    // counted when it ended, an early one never was).
                    live(raw, now)
                        .is_none()
                        .then(|| contains(key, b":dlg:") && raw.get(HEADER) == Some(&state::ACTIVE))
                },
                |dialog| {
                    removed.removed += 1;
                    removed.dialogs += dialog as usize;
                },
            )?;
            Ok(removed)
        })?;
        // Readers left behind by a crashed process would pin old pages.
        let _ = self.env.clear_stale_readers();
        self.env.force_sync().map_err(map_err)?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(expires: u64) -> Vec<u8> {
        let mut v = vec![VALUE_FORMAT];
        v.extend_from_slice(&expires.to_le_bytes());
        v.extend_from_slice(b"payload");
        v
    }

    #[test]
    fn a_touch_writes_unless_the_expiry_would_barely_move() {
        let now = 1_000_000;
        let hour = Duration::from_secs(3600);
        // Stored a moment ago with the same lifetime: nothing to write.
        assert!(fresh_enough(&stored(now + 3_600_000 - 20), now, hour));
        // Older than the one-second slack: refreshed.
        assert!(!fresh_enough(&stored(now + 3_600_000 - 1001), now, hour));
        // Shortening (a BYE's grace time): always written.
        assert!(!fresh_enough(
            &stored(now + 3_600_000),
            now,
            Duration::from_secs(32)
        ));
        // Short lifetimes get 1% of slack, not a second.
        let two_s = Duration::from_secs(2);
        assert!(fresh_enough(&stored(now + 2000 - 20), now, two_s));
        assert!(!fresh_enough(&stored(now + 2000 - 21), now, two_s));
        assert!(!fresh_enough(b"\x01", now, hour));
    }
}
