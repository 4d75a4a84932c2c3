//! The keys that seal tokens, in each Kamailio process.
//!
//! Read at start-up (mod_init, before the fork: a missing or bad file stops
//! Kamailio), from `token_key_file` or, without it, from a key file the
//! module makes in its runtime directory on first start (mode 0600) and
//! keeps across restarts. `topos_rs.keys_reload` rereads the file in the
//! RPC process and, if it is good, publishes the keys in a block of shared
//! memory (a sequence counter guards it); each worker takes them at its
//! next use of a key. Workers never read the file themselves: one that
//! handled no message for a while still gets the keys the RPC checked,
//! not whatever the file holds by then.

use crate::crypto::keys::{key_file_text, parse_key_file, KeyRing, KEY_LEN};
use crate::error::{Error, Result};
use std::cell::RefCell;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// File name of the key the module makes without `token_key_file`.
pub const DEFAULT_FILE: &str = "topos_rs.keys";
/// The most keys a key file may hold.
pub const MAX_KEYS: usize = 16;
const WORDS: usize = KEY_LEN / 8;

/// The keys in use, in shared memory (allocated before the fork): written
/// by start-up and `topos_rs.keys_reload`, read by every process. `seq` is
/// odd while a writer is at work; a reader that sees it change reads again.
#[repr(C)]
#[derive(Default)]
pub struct SharedKeys {
    seq: AtomicU64,
    count: AtomicU64,
    words: [[AtomicU64; WORDS]; MAX_KEYS],
}

impl SharedKeys {
    fn publish(&self, keys: &[[u8; KEY_LEN]]) {
        self.seq.fetch_add(1, Ordering::AcqRel);
        self.count.store(keys.len() as u64, Ordering::Relaxed);
        for (slot, key) in self.words.iter().zip(keys) {
            for (w, chunk) in slot.iter().zip(key.chunks(8)) {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                w.store(u64::from_le_bytes(word), Ordering::Relaxed);
            }
        }
        self.seq.fetch_add(1, Ordering::AcqRel);
    }

    /// The keys and the sequence number they were published at (None
    /// while a writer is at work, after a few tries).
    fn read(&self) -> Option<(u64, Vec<[u8; KEY_LEN]>)> {
        for _ in 0..100 {
            let before = self.seq.load(Ordering::Acquire);
            if before % 2 == 1 {
                std::thread::yield_now();
                continue;
            }
            let n = (self.count.load(Ordering::Relaxed) as usize).min(MAX_KEYS);
            let keys: Vec<[u8; KEY_LEN]> = self.words[..n]
                .iter()
                .map(|slot| {
                    let mut key = [0u8; KEY_LEN];
                    for (chunk, w) in key.chunks_mut(8).zip(slot) {
                        chunk.copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
                    }
                    key
                })
                .collect();
            std::sync::atomic::fence(Ordering::Acquire);
            if self.seq.load(Ordering::Acquire) == before {
                return Some((before, keys));
            }
        }
        None
    }
}

/// Set once in mod_init, before the fork: every process inherits them.
static SHARED: OnceLock<&'static SharedKeys> = OnceLock::new();
static PATH: OnceLock<PathBuf> = OnceLock::new();

thread_local! {
    /// This process's ring and the sequence number it was read at.
    static IN_USE: RefCell<Option<(u64, Rc<KeyRing>)>> = const { RefCell::new(None) };
}

/// Reads and checks a key file; the error names the file and the line,
/// never a key.
pub fn read(path: &Path) -> std::result::Result<Vec<[u8; KEY_LEN]>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let keys = parse_key_file(&text).map_err(|e| format!("{} {e}", path.display()))?;
    if keys.len() > MAX_KEYS {
        return Err(format!("{}: more than {MAX_KEYS} keys", path.display()));
    }
    Ok(keys)
}

/// Makes a key file with one fresh random key, readable by its owner only;
/// an existing file is never written over.
fn create(path: &Path) -> std::result::Result<(), String> {
    let mut key = [0u8; KEY_LEN];
    getrandom::getrandom(&mut key).map_err(|e| format!("no randomness for a key: {e}"))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let text = key_file_text(&key);
    key.fill(0);
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Loads the keys at start-up into `shared` (the block every process will
/// read): `configured` (the parameter) or the default file under
/// `runtime_dir`, made if it is not there.
pub fn load_at_start(
    configured: Option<&Path>,
    runtime_dir: &Path,
    shared: &'static SharedKeys,
) -> Result<()> {
    let bad = |message: String| {
        Error::Param(crate::config::ParamError {
            param: "token_key_file",
            message,
        })
    };
    let path = match configured {
        Some(p) => p.to_path_buf(),
        None => {
            let p = runtime_dir.join(DEFAULT_FILE);
            if !p.exists() {
                create(&p).map_err(bad)?;
                log::info!("made a token key in {} (mode 0600)", p.display());
            }
            p
        }
    };
    let keys = read(&path).map_err(bad)?;
    shared.publish(&keys);
    log::info!(
        "token keys: {} from {} (the first seals)",
        keys.len(),
        path.display()
    );
    let _ = SHARED.set(shared);
    let _ = PATH.set(path);
    Ok(())
}

/// `f` of this process's keys, taken again first if `topos_rs.keys_reload`
/// published others since.
pub fn with_ring<T>(f: impl FnOnce(&KeyRing) -> T) -> Result<T> {
    let shared = SHARED.get().ok_or(Error::NotInitialized)?;
    let ring = IN_USE.with_borrow_mut(|in_use| -> Result<Rc<KeyRing>> {
        let now = shared.seq.load(Ordering::Acquire);
        if let Some((seen, ring)) = in_use.as_ref() {
            if *seen == now {
                return Ok(Rc::clone(ring));
            }
        }
        match shared
            .read()
            .and_then(|(seq, keys)| Some((seq, KeyRing::new(&keys)?)))
        {
            Some((seq, ring)) => {
                let ring = Rc::new(ring);
                *in_use = Some((seq, Rc::clone(&ring)));
                Ok(ring)
            }
            // A writer at work for long: the keys this process has.
            None => in_use
                .as_ref()
                .map(|(_, r)| Rc::clone(r))
                .ok_or(Error::NotInitialized),
        }
    })?;
    Ok(f(&ring))
}

/// `topos_rs.keys_reload`: rereads the key file; if it is good, every
/// process takes its keys at its next use. Returns how many keys it holds;
/// a bad file changes nothing and the error says why.
pub fn reload() -> std::result::Result<usize, String> {
    let (Some(shared), Some(path)) = (SHARED.get(), PATH.get()) else {
        return Err("token keys not loaded (token_mode stored)".into());
    };
    let keys = read(path)?;
    shared.publish(&keys);
    log::info!(
        "token keys reloaded: {} from {} (the first seals)",
        keys.len(),
        path.display()
    );
    Ok(keys.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_keys_are_read_back_whole() {
        let shared: &'static SharedKeys = Box::leak(Box::default());
        shared.publish(&[[1; KEY_LEN], [2; KEY_LEN]]);
        let (seq, keys) = shared.read().unwrap();
        assert_eq!(keys, vec![[1; KEY_LEN], [2; KEY_LEN]]);
        shared.publish(&[[3; KEY_LEN]]);
        let (seq2, keys) = shared.read().unwrap();
        assert!(seq2 > seq && seq2 % 2 == 0);
        assert_eq!(keys, vec![[3; KEY_LEN]]);
    }
}
