//! The module's per-process state: the configuration frozen at mod_init and
//! this process's store handle, opened after the fork.
//!
//! Store failures are logged here, rate-limited (one line per process per
//! `LOG_EVERY`, with a count of what was suppressed), so a Redis outage
//! under load does not flood the log; callers get `None` and return false.

use crate::config::{ModuleConfig, ParamError, Storage};
use crate::error::{Error, Result};
use crate::store::lmdb::LmdbStore;
use crate::store::redis::RedisStore;
use crate::store::{Store, StoreError, StoreResult};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static CONFIG: OnceLock<ModuleConfig> = OnceLock::new();

const LOG_EVERY: Duration = Duration::from_secs(10);

/// Bumped in the child of every fork (the FFI layer registers
/// `note_fork` with pthread_atfork at mod_init): a store handle opened
/// before a fork is never used after it, and the check costs an atomic
/// load instead of a getpid(2) per store operation.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// This process was just forked (runs in the child).
pub fn note_fork() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

pub fn fork_generation() -> u64 {
    FORK_GENERATION.load(Ordering::Relaxed)
}

struct ProcessStore {
    /// The fork generation it was opened in.
    generation: u64,
    store: Box<dyn Store>,
}

#[derive(Default)]
struct ErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

thread_local! {
    // One Kamailio process = one thread here.
    static STORE: RefCell<Option<ProcessStore>> = const { RefCell::new(None) };
    static ERRORS: RefCell<ErrorLog> = RefCell::new(ErrorLog::default());
    static REFUSALS: RefCell<ErrorLog> = RefCell::new(ErrorLog::default());
    static JOURNALED: RefCell<ErrorLog> = RefCell::new(ErrorLog::default());
}

/// Logs that billing events go to the journal at WARN, rate-limited like
/// storage errors: an outage under load does not flood the log.
pub fn log_journaled(text: &str) {
    rate_limited(
        &JOURNALED,
        log::Level::Warn,
        "journaled billing events",
        text,
    );
}

/// Logs a refused request at WARN, rate-limited like storage errors: a
/// flood of forged requests cannot flood the log.
pub fn log_refusal(text: &str) {
    rate_limited(&REFUSALS, log::Level::Warn, "refused", text);
}

/// Freezes the configuration (mod_init, before the fork).
pub fn configure(cfg: ModuleConfig) -> Result<&'static ModuleConfig> {
    if cfg.storage.is_none() {
        return Err(Error::Storage("storage not resolved"));
    }
    let _ = CONFIG.set(cfg);
    config()
}

pub fn config() -> Result<&'static ModuleConfig> {
    CONFIG.get().ok_or(Error::NotInitialized)
}

fn open(cfg: &ModuleConfig) -> StoreResult<Box<dyn Store>> {
    match cfg.storage.as_ref().expect("resolved in configure") {
        Storage::Lmdb { dir } => Ok(Box::new(LmdbStore::open(dir, cfg.lmdb_map_size_mib)?)),
        Storage::Redis { redis, .. } => Ok(Box::new(RedisStore::open(
            redis,
            cfg.redis_timeout,
            &cfg.redis_tls,
        )?)),
    }
}

/// Opens this process's store (child_init). LMDB opens its file now;
/// Redis connects on first use.
pub fn open_for_this_process() -> Result<()> {
    let cfg = config()?;
    let store = open(cfg)?;
    STORE.with(|s| {
        *s.borrow_mut() = Some(ProcessStore {
            generation: fork_generation(),
            store,
        })
    });
    Ok(())
}

/// Runs `f` on this process's store, opening it if this process has none
/// yet. `None`: the operation failed and the failure was logged.
pub fn with_store<T>(what: &str, f: impl FnOnce(&mut dyn Store) -> StoreResult<T>) -> Option<T> {
    store_op(what, f).ok()
}

/// As `with_store`, keeping the error for callers that act on its kind
/// (billing journals what an unavailable store could not take). The
/// failure is logged and counted all the same.
pub fn store_op<T>(what: &str, f: impl FnOnce(&mut dyn Store) -> StoreResult<T>) -> StoreResult<T> {
    let result = STORE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let generation = fork_generation();
        if slot.as_ref().is_none_or(|p| p.generation != generation) {
            let cfg = config().map_err(|e| StoreError::Backend(e.to_string()))?;
            let store = open(cfg)?;
            *slot = Some(ProcessStore { generation, store });
        }
        let p = slot.as_mut().expect("opened above");
        f(&mut *p.store)
    });
    if let Err(e) = &result {
        log_store_error(what, &e.to_string());
    }
    result
}

fn log_store_error(what: &str, e: &str) {
    crate::stats::bump(|s| &s.storage_errors);
    rate_limited(
        &ERRORS,
        log::Level::Error,
        "storage errors",
        &format!("{what}: {e}"),
    );
}

/// One line per process per LOG_EVERY, with a count of what was skipped.
fn rate_limited(
    which: &'static std::thread::LocalKey<RefCell<ErrorLog>>,
    level: log::Level,
    kind: &str,
    text: &str,
) {
    which.with(|l| {
        let mut l = l.borrow_mut();
        let now = Instant::now();
        if l.last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            l.suppressed += 1;
            return;
        }
        if l.suppressed > 0 {
            log::log!(
                level,
                "{text} ({} more {kind} in this process since the last report)",
                l.suppressed
            );
        } else {
            log::log!(level, "{text}");
        }
        l.last = Some(now);
        l.suppressed = 0;
    });
}

/// A `storage` modparam that cannot be used.
fn storage_param(message: String) -> Error {
    Error::Param(ParamError {
        param: "storage",
        message,
    })
}

/// Start-up check (mod_init, before the fork): the LMDB directory must be
/// writable; an unreachable Redis is only a warning (it may come up later).
pub fn check_storage(cfg: &ModuleConfig) -> Result<()> {
    match cfg.storage.as_ref() {
        Some(Storage::Lmdb { dir }) => LmdbStore::check_dir(dir).map_err(storage_param),
        Some(Storage::Redis { redis, .. }) => {
            let mut r = RedisStore::open(redis, cfg.redis_timeout, &cfg.redis_tls)
                .map_err(|e| storage_param(e.to_string()))?;
            if let Err(e) = r.ping() {
                log::warn!(
                    "Redis at {} is not reachable at start-up ({e}); \
                     starting anyway, functions that need it return false until it is",
                    redis.describe_servers()
                );
            }
            Ok(())
        }
        None => Err(storage_param("not resolved".into())),
    }
}

/// Periodic maintenance (Kamailio timer process): drop expired LMDB
/// records and flush to disk.
pub fn sweep() {
    if let Some(r) = with_store("storage sweep", |s| s.sweep()) {
        if r.removed > 0 {
            log::debug!("storage sweep removed {} expired records", r.removed);
        }
        if let Some(st) = crate::stats::get() {
            st.dialogs_expired
                .fetch_add(r.dialogs as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }
}
