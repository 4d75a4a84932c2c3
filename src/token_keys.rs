//! The keys that seal tokens, in each Kamailio process.
//!
//! Read at start-up (mod_init, before the fork: a missing or bad file stops
//! Kamailio), from `token_key_file` or, without it, from a key file the
//! module makes in its runtime directory on first start (mode 0600) and
//! keeps across restarts. `topos_rs.keys_reload` rereads the file in the
//! RPC process and, if it is good, bumps a generation counter in shared
//! memory; each worker rereads the file at its next use of a key. A file
//! that turned bad meanwhile is refused there too (logged once), and the
//! worker keeps the keys it has.

use crate::crypto::keys::{key_file_text, parse_key_file, KeyRing, KEY_LEN};
use crate::error::{Error, Result};
use crate::stats;
use std::cell::RefCell;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

/// File name of the key the module makes without `token_key_file`.
pub const DEFAULT_FILE: &str = "topos_rs.keys";

struct StartKeys {
    path: PathBuf,
    ring: KeyRing,
}

/// Set once in mod_init; every process inherits it.
static AT_START: OnceLock<StartKeys> = OnceLock::new();

thread_local! {
    /// This process's ring and the generation it was read at.
    static IN_USE: RefCell<Option<(u64, Rc<KeyRing>)>> = const { RefCell::new(None) };
}

fn generation() -> u64 {
    stats::get().map_or(0, |s| s.keys_generation.load(Ordering::Acquire))
}

/// Reads and checks a key file; the error names the file and the line.
pub fn read(path: &Path) -> std::result::Result<KeyRing, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let keys = parse_key_file(&text).map_err(|e| format!("{} {e}", path.display()))?;
    KeyRing::new(&keys).ok_or_else(|| format!("{}: no key", path.display()))
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

/// Loads the keys at start-up: `configured` (the parameter) or the
/// default file under `runtime_dir`, made if it is not there.
pub fn load_at_start(configured: Option<&Path>, runtime_dir: &Path) -> Result<()> {
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
    let ring = read(&path).map_err(bad)?;
    log::info!(
        "token keys: {} from {} (the first seals)",
        ring.len(),
        path.display()
    );
    let _ = AT_START.set(StartKeys { path, ring });
    Ok(())
}

/// `f` of this process's keys, reread first if `topos_rs.keys_reload`
/// asked for it since.
pub fn with_ring<T>(f: impl FnOnce(&KeyRing) -> T) -> Result<T> {
    let start = AT_START.get().ok_or(Error::NotInitialized)?;
    let now = generation();
    let ring = IN_USE.with_borrow_mut(|in_use| match in_use {
        Some((seen, ring)) if *seen == now => Rc::clone(ring),
        _ => {
            let previous = in_use.as_ref().map(|(_, r)| Rc::clone(r));
            let ring = if now == 0 {
                Rc::new(start.ring.clone())
            } else {
                match read(&start.path) {
                    Ok(r) => Rc::new(r),
                    Err(e) => {
                        log::error!("token keys not reloaded, the keys in use stay: {e}");
                        previous.unwrap_or_else(|| Rc::new(start.ring.clone()))
                    }
                }
            };
            *in_use = Some((now, Rc::clone(&ring)));
            ring
        }
    });
    Ok(f(&ring))
}

/// `topos_rs.keys_reload`: rereads the key file; if it is good, every
/// process takes it at its next use. Returns how many keys it holds; a bad
/// file changes nothing and the error says why.
pub fn reload() -> std::result::Result<usize, String> {
    let start = AT_START.get().ok_or("token keys not loaded")?;
    let ring = read(&start.path)?;
    let n = ring.len();
    if let Some(s) = stats::get() {
        s.keys_generation.fetch_add(1, Ordering::AcqRel);
    }
    log::info!(
        "token keys reloaded: {n} from {} (the first seals)",
        start.path.display()
    );
    Ok(n)
}
