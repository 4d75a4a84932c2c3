//! One backend-agnostic suite for the `Store` interface, run against the
//! embedded LMDB store and a real redis-server, plus each backend's own
//! failure cases.

mod common;

use common::kamailio::scratch_dir;
use common::redis::RedisServer;
use std::path::Path;
use std::time::{Duration, Instant};
use topos_rs::store::lmdb::LmdbStore;
use topos_rs::store::redis::RedisStore;
use topos_rs::store::{Guard, Lifecycle, Lived, Store, StoreError};

const LONG: Duration = Duration::from_secs(60);

fn suite(s: &mut dyn Store) {
    lifecycle(s);
    // put / get / replace
    s.put(b"k1", b"v1", LONG).unwrap();
    assert_eq!(s.get(b"k1").unwrap().as_deref(), Some(&b"v1"[..]));
    s.put(b"k1", b"v2", LONG).unwrap();
    assert_eq!(s.get(b"k1").unwrap().as_deref(), Some(&b"v2"[..]));
    assert_eq!(s.get(b"missing").unwrap(), None);

    // put_new creates only if absent
    assert!(!s.put_new(b"k1", b"other", LONG).unwrap());
    assert_eq!(s.get(b"k1").unwrap().as_deref(), Some(&b"v2"[..]));
    assert!(s.put_new(b"k2", b"first", LONG).unwrap());
    assert_eq!(s.get(b"k2").unwrap().as_deref(), Some(&b"first"[..]));

    // take = get + delete
    assert_eq!(s.take(b"k2").unwrap().as_deref(), Some(&b"first"[..]));
    assert_eq!(s.take(b"k2").unwrap(), None);
    assert_eq!(s.get(b"k2").unwrap(), None);

    // touch, get_touch
    assert!(s.touch(b"k1", LONG).unwrap());
    assert_eq!(
        s.get_touch(b"k1", LONG).unwrap().as_deref(),
        Some(&b"v2"[..])
    );
    assert_eq!(s.get_touch(b"missing", LONG).unwrap(), None);
    assert!(!s.touch(b"missing", LONG).unwrap());

    // delete
    assert!(s.delete(b"k1").unwrap());
    assert!(!s.delete(b"k1").unwrap());
    assert_eq!(s.get(b"k1").unwrap(), None);

    // scan finds live records by kind
    s.put(b"topos_rs:{a}:dlg:1", b"d1", LONG).unwrap();
    s.put(b"topos_rs:{a}:bill:1", b"b1", LONG).unwrap();
    let found = s.scan(b":dlg:", 100).unwrap();
    assert_eq!(
        found,
        vec![(b"topos_rs:{a}:dlg:1".to_vec(), b"d1".to_vec())]
    );
    assert!(s.delete(b"topos_rs:{a}:dlg:1").unwrap());

    // binary keys and values, empty value
    let key = [0u8, 255, b'{', b'}', 10, 13];
    s.put(&key, &[0, 1, 2, 255], LONG).unwrap();
    assert_eq!(s.get(&key).unwrap().as_deref(), Some(&[0u8, 1, 2, 255][..]));
    s.put(b"empty", b"", LONG).unwrap();
    assert_eq!(s.get(b"empty").unwrap().as_deref(), Some(&b""[..]));

    // TTL expiry: reads never return an expired record, and an expired
    // record counts as absent for every operation.
    let short = Duration::from_millis(100);
    s.put(b"t1", b"x", short).unwrap();
    s.put(b"t2", b"x", short).unwrap();
    s.put(b"t3", b"x", short).unwrap();
    s.put(b"t4", b"x", Duration::from_millis(400)).unwrap();
    assert!(s.touch(b"t4", LONG).unwrap(), "touch extends a live record");
    s.put(b"t5", b"y", LONG).unwrap();
    assert_eq!(
        s.get_touch(b"t5", short).unwrap().as_deref(),
        Some(&b"y"[..]),
        "get_touch shortens"
    );
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(s.get(b"t1").unwrap(), None);
    assert_eq!(s.take(b"t2").unwrap(), None);
    assert!(!s.touch(b"t3", LONG).unwrap());
    assert!(s.put_new(b"t1", b"new", LONG).unwrap());
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(
        s.get(b"t4").unwrap().as_deref(),
        Some(&b"x"[..]),
        "touched record lives on"
    );
    s.sweep().unwrap();
    assert_eq!(s.get(b"t1").unwrap().as_deref(), Some(&b"new"[..]));
}

/// Forks `n` processes that each open their own store and run `op` at the
/// same instant; returns how many reported success.
/// A dialog-style record: refreshed while live, ended exactly once, never
/// renewed once ended (the grace time is the last lifetime it gets).
fn lifecycle(s: &mut dyn Store) {
    let grace = Duration::from_millis(400);
    assert_eq!(
        s.get_lifecycle(b"d1", Lifecycle::Refresh(LONG), None)
            .unwrap(),
        Lived::Missing
    );
    s.put(b"d1", b"Apayload", LONG).unwrap();
    // A guard that does not match changes nothing, whatever the op.
    let wrong = Guard {
        offset: 1,
        expect: b"pay!",
    };
    for op in [Lifecycle::End(grace), Lifecycle::Refresh(LONG)] {
        assert_eq!(
            s.get_lifecycle(b"d1", op, Some(wrong)).unwrap(),
            Lived::Mismatch
        );
    }
    let right = Guard {
        offset: 1,
        expect: b"payl",
    };
    assert_eq!(
        s.get_lifecycle(b"d1", Lifecycle::Refresh(LONG), Some(right))
            .unwrap(),
        Lived::Live(b"Apayload".to_vec())
    );
    assert_eq!(
        s.get_lifecycle(b"d1", Lifecycle::Refresh(LONG), None)
            .unwrap(),
        Lived::Live(b"Apayload".to_vec())
    );
    assert_eq!(
        s.get_lifecycle(b"d1", Lifecycle::End(grace), None).unwrap(),
        Lived::EndedNow(b"Apayload".to_vec())
    );
    for op in [Lifecycle::End(LONG), Lifecycle::Refresh(LONG)] {
        assert_eq!(
            s.get_lifecycle(b"d1", op, None).unwrap(),
            Lived::Ended(b"Epayload".to_vec())
        );
    }
    // A target refresh writes its value with the state byte the record
    // has now (what it read, 'C' here, is not written back); after the
    // end it changes nothing: the dialog is not revived.
    s.put(b"d2", b"Apayload", LONG).unwrap();
    assert_eq!(
        s.get_lifecycle(b"d2", Lifecycle::Replace(b"Cnewload", LONG), None)
            .unwrap(),
        Lived::Live(b"Apayload".to_vec())
    );
    assert_eq!(s.get(b"d2").unwrap(), Some(b"Anewload".to_vec()));
    s.get_lifecycle(b"d2", Lifecycle::End(grace), None).unwrap();
    assert_eq!(
        s.get_lifecycle(b"d2", Lifecycle::Replace(b"Alateval", LONG), None)
            .unwrap(),
        Lived::Ended(b"Enewload".to_vec())
    );
    // Neither the second BYE nor a request after it renewed the record
    // (nor, for d2, the late target refresh).
    std::thread::sleep(grace + Duration::from_millis(300));
    assert_eq!(s.get(b"d2").unwrap(), None);
    assert_eq!(
        s.get_lifecycle(b"d1", Lifecycle::Refresh(LONG), None)
            .unwrap(),
        Lived::Missing
    );
}

fn race(n: usize, open: &dyn Fn() -> Box<dyn Store>, op: &dyn Fn(&mut dyn Store) -> bool) -> usize {
    let start = Instant::now() + Duration::from_millis(300);
    let mut pids = Vec::new();
    for _ in 0..n {
        // SAFETY: the child only opens its own store, runs `op` and leaves
        // with _exit; this test binary runs no other test thread meanwhile
        // (the race tests take a lock).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut s = open();
                std::thread::sleep(start.saturating_duration_since(Instant::now()));
                if op(&mut *s) {
                    10
                } else {
                    11
                }
            }))
            .unwrap_or(12);
            // SAFETY: leaves the forked child without running the parent's
            // destructors or test harness.
            unsafe { libc::_exit(code) };
        }
        pids.push(pid);
    }
    let mut winners = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    for pid in pids {
        let mut status = 0;
        loop {
            // SAFETY: polls a child this test forked.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break;
            }
            if Instant::now() > deadline {
                // SAFETY: stops a child this test forked.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("race child {pid} did not finish in 20 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let code = libc::WEXITSTATUS(status);
        assert!(code == 10 || code == 11, "race child failed (exit {code})");
        winners += (code == 10) as usize;
    }
    winners
}

static RACE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `put_new` and `take` under concurrent processes: exactly one wins.
fn atomicity(open: &dyn Fn() -> Box<dyn Store>) {
    let _serial = RACE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for round in 0..4 {
        let key = format!("race-new-{round}");
        let winners = race(6, open, &|s| s.put_new(key.as_bytes(), b"v", LONG).unwrap());
        assert_eq!(
            winners, 1,
            "put_new round {round}: {winners} processes created the record"
        );

        let key = format!("race-take-{round}");
        open().put(key.as_bytes(), b"bill-me-once", LONG).unwrap();
        let winners = race(6, open, &|s| s.take(key.as_bytes()).unwrap().is_some());
        assert_eq!(
            winners, 1,
            "take round {round}: {winners} processes got the value"
        );
    }
}

fn lmdb_dir(tag: &str) -> std::path::PathBuf {
    scratch_dir(tag).join("db")
}

#[test]
fn lmdb_passes_the_suite() {
    let dir = lmdb_dir("lmdb-suite");
    suite(&mut LmdbStore::open(&dir, 16).unwrap());
}

#[test]
fn redis_passes_the_suite() {
    let redis = RedisServer::start();
    suite(&mut RedisStore::new(&redis.url(), Duration::from_millis(250)).unwrap());
}

#[test]
fn redis_behind_sentinel_passes_the_suite() {
    let set = common::redis_ha::SentinelSet::start();
    suite(&mut RedisStore::new(&set.url(), Duration::from_millis(250)).unwrap());
}

/// Every operation and the lifecycle script on a real cluster: a command
/// or script touching keys of two slots would fail there with CROSSSLOT.
#[test]
fn redis_cluster_passes_the_suite() {
    let set = common::redis_ha::ClusterSet::start();
    suite(&mut RedisStore::new(&set.url(), Duration::from_millis(250)).unwrap());
}

/// Behind sentinels that, like the master and its replica, require a
/// password: the URL's credentials serve both.
#[test]
fn redis_behind_password_protected_sentinels_passes_the_suite() {
    let set = common::redis_ha::SentinelSet::start_with(None, Some("s3cret"));
    let url = set.url();
    assert!(url.starts_with("redis+sentinel://:s3cret@"), "{url}");
    suite(&mut RedisStore::new(&url, Duration::from_millis(250)).unwrap());
}

/// Behind sentinels that, like the master and its replica, only speak TLS
/// (`rediss+sentinel://`).
#[test]
fn redis_behind_sentinel_over_tls_passes_the_suite() {
    let files = common::redis_tls::TlsFiles::make();
    let set = common::redis_ha::SentinelSet::start_tls(Some(&files));
    let url = set.url();
    assert!(url.starts_with("rediss+sentinel://"), "{url}");
    let Ok(topos_rs::config::Storage::Redis { redis, .. }) = topos_rs::config::Storage::parse(&url)
    else {
        panic!("{url}")
    };
    suite(&mut RedisStore::open(&redis, Duration::from_millis(250), &files.store_tls()).unwrap());
}

/// The same on a cluster whose nodes only speak TLS (`rediss+cluster://`,
/// the cluster bus on TLS too), with the test's CA and client certificate.
#[test]
fn redis_cluster_over_tls_passes_the_suite() {
    let files = common::redis_tls::TlsFiles::make();
    let set = common::redis_ha::ClusterSet::start_tls(Some(&files));
    let url = set.url();
    assert!(url.starts_with("rediss+cluster://"), "{url}");
    let Ok(topos_rs::config::Storage::Redis { redis, .. }) = topos_rs::config::Storage::parse(&url)
    else {
        panic!("{url}")
    };
    suite(&mut RedisStore::open(&redis, Duration::from_millis(250), &files.store_tls()).unwrap());
}

#[test]
fn a_redis_that_lost_its_scripts_still_answers_lifecycle_operations() {
    let redis = RedisServer::start();
    let mut s = RedisStore::new(&redis.url(), Duration::from_millis(250)).unwrap();
    s.put(b"d", b"Apayload", LONG).unwrap();
    let refresh = Lifecycle::Refresh(LONG);
    assert_eq!(
        s.get_lifecycle(b"d", refresh, None).unwrap(),
        Lived::Live(b"Apayload".to_vec())
    );
    // What a Redis restart without persistence of scripts, or an operator's
    // SCRIPT FLUSH, does: the next operation loads the script again.
    let mut admin = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut admin).unwrap();
    assert_eq!(
        s.get_lifecycle(b"d", refresh, None).unwrap(),
        Lived::Live(b"Apayload".to_vec())
    );
}

#[test]
fn lmdb_put_new_and_take_are_atomic_across_processes() {
    let dir = lmdb_dir("lmdb-race");
    let open =
        move || -> Box<dyn Store> { Box::new(LmdbStore::open(Path::new(&dir), 16).unwrap()) };
    atomicity(&open);
}

#[test]
fn redis_put_new_and_take_are_atomic_across_processes() {
    let redis = RedisServer::start();
    let url = redis.url();
    let open = move || -> Box<dyn Store> {
        Box::new(RedisStore::new(&url, Duration::from_millis(1000)).unwrap())
    };
    atomicity(&open);
}

#[test]
fn lmdb_records_survive_reopening() {
    let dir = lmdb_dir("lmdb-reopen");
    {
        let mut s = LmdbStore::open(&dir, 16).unwrap();
        s.put(b"call", b"answered", LONG).unwrap();
    }
    let mut s = LmdbStore::open(&dir, 16).unwrap();
    assert_eq!(s.get(b"call").unwrap().as_deref(), Some(&b"answered"[..]));
}

#[test]
fn lmdb_sweep_removes_expired_records() {
    let dir = lmdb_dir("lmdb-sweep");
    let mut s = LmdbStore::open(&dir, 16).unwrap();
    for i in 0..50 {
        // Fifteen are dialog records: the sweep counts apart those that
        // expired while active ('A'); early ('P') and ended ('E') ones
        // were never counted as active or were counted when they ended.
        let (key, value) = match i {
            0..10 => (format!("topos_rs:{{t}}:dlg:{i}"), &b"Ax"[..]),
            10..15 => (format!("topos_rs:{{t}}:dlg:{i}"), &b"Ex"[..]),
            _ => (format!("old{i}"), &b"x"[..]),
        };
        s.put(key.as_bytes(), value, Duration::from_millis(10))
            .unwrap();
    }
    s.put(b"live", b"x", LONG).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let r = s.sweep().unwrap();
    assert_eq!((r.removed, r.dialogs), (50, 10));
    assert_eq!(s.sweep().unwrap().removed, 0);
    assert!(s.get(b"live").unwrap().is_some());
}

#[test]
fn lmdb_full_map_is_a_clear_error() {
    let dir = lmdb_dir("lmdb-full");
    let mut s = LmdbStore::open(&dir, 1).unwrap();
    let value = vec![7u8; 4000];
    let mut err = None;
    for i in 0..10_000 {
        if let Err(e) = s.put(format!("k{i}").as_bytes(), &value, LONG) {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("a 1 MiB map never filled up");
    assert!(matches!(err, StoreError::Full(_)), "{err:?}");
    assert!(err.to_string().contains("lmdb_map_size"), "{err}");
    // Still usable for reads and deletes.
    assert!(s.get(b"k0").unwrap().is_some());
    assert!(s.delete(b"k0").unwrap());
}

#[test]
fn lmdb_unwritable_directory_is_reported() {
    let err = LmdbStore::check_dir(Path::new("/proc/topos_rs")).unwrap_err();
    assert!(err.contains("/proc/topos_rs"), "{err}");
}

#[test]
fn redis_outage_fails_fast_and_recovers_without_a_new_client() {
    let mut redis = RedisServer::start();
    let port = redis.port;
    let timeout = Duration::from_millis(250);
    let mut s = RedisStore::new(&redis.url(), timeout).unwrap();
    s.set_retry_after(Duration::from_millis(300));
    s.put(b"before", b"1", LONG).unwrap();

    redis.stop();
    let t = Instant::now();
    let err = s.get(b"before").unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        t.elapsed() < timeout * 4,
        "first failure took {:?}",
        t.elapsed()
    );
    // Inside the retry window: no network attempt at all.
    let t = Instant::now();
    let err = s.put(b"during", b"1", LONG).unwrap_err();
    assert!(err.to_string().contains("next attempt in"), "{err}");
    assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());

    let _redis = RedisServer::start_on(port);
    std::thread::sleep(Duration::from_millis(350));
    s.put(b"after", b"2", LONG).unwrap();
    assert_eq!(s.get(b"after").unwrap().as_deref(), Some(&b"2"[..]));
}

#[test]
fn a_frozen_redis_costs_at_most_the_timeout() {
    let redis = RedisServer::start();
    let timeout = Duration::from_millis(250);
    let mut s = RedisStore::new(&redis.url(), timeout).unwrap();
    s.put(b"k", b"v", LONG).unwrap();
    redis.freeze();
    let t = Instant::now();
    let err = s.get(b"k").unwrap_err();
    let waited = t.elapsed();
    redis.thaw();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        waited >= timeout && waited < timeout * 3,
        "blocked {waited:?}"
    );
}

#[test]
fn a_redis_restart_between_two_operations_costs_no_failure() {
    let dir = common::kamailio::scratch_dir("redis-durable");
    let port = common::kamailio::free_tcp_port();
    let mut redis = RedisServer::start_durable(port, &dir);
    let mut s = RedisStore::new(&redis.url(), Duration::from_millis(250)).unwrap();
    s.put(b"bill", b"answered", LONG).unwrap();

    // Restarted with its data while this connection sat idle: the next
    // operation finds the old connection closed, reconnects and succeeds.
    redis.shutdown();
    let _redis = RedisServer::start_durable(port, &dir);
    assert_eq!(s.take(b"bill").unwrap().as_deref(), Some(&b"answered"[..]));
    assert_eq!(s.get(b"bill").unwrap(), None);
    let _ = std::fs::remove_dir_all(&dir);
}
