//! The LMDB operations heed marks `unsafe`, behind safe functions for
//! `store::lmdb` (the crate allows `unsafe` only under `ffi`). Unlike the
//! rest of `ffi`, this needs no Kamailio and is built in unit tests too.

use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions, RwTxn, WithoutTls};
use std::path::Path;

/// Opens the environment in `dir` with NO_SYNC and WRITE_MAP. Called by
/// `LmdbStore::open`, which the state holder runs once per process, after
/// Kamailio forked.
pub fn open(mut opts: EnvOpenOptions<WithoutTls>, dir: &Path) -> heed::Result<Env<WithoutTls>> {
    // SAFETY: NO_SYNC trades durability against OS crashes for speed (see
    // store::lmdb's module doc); it cannot make LMDB unsound. WRITE_MAP
    // writes pages straight into the shared map instead of through write(2)
    // (about a third of the store's cost per call); it gives up LMDB's
    // protection against stray writes into the map, which safe Rust code
    // cannot make, and this process only maps the file for LMDB.
    unsafe {
        opts.flags(EnvFlags::NO_SYNC | EnvFlags::WRITE_MAP);
    }
    // SAFETY: heed's contract: the same environment is not opened twice in
    // one process, and the handle does not cross a fork. The state holder
    // opens it once per process, after Kamailio forked.
    unsafe { opts.open(dir) }
}

/// Deletes every record for which `pick(key, value)` is `Some`, and hands
/// that value to `deleted` for each record actually removed.
pub fn delete_where<T>(
    db: Database<Bytes, Bytes>,
    txn: &mut RwTxn,
    mut pick: impl FnMut(&[u8], &[u8]) -> Option<T>,
    mut deleted: impl FnMut(T),
) -> heed::Result<()> {
    let mut it = db.iter_mut(txn)?;
    while let Some(entry) = it.next() {
        let (key, value) = entry?;
        if let Some(picked) = pick(key, value) {
            // SAFETY: heed requires that no reference into the database is
            // held across del_current: `key` and `value` were only lent to
            // `pick`, whose result cannot borrow from them, and are not used
            // after this call.
            if unsafe { it.del_current()? } {
                deleted(picked);
            }
        }
    }
    Ok(())
}
