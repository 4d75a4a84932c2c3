//! The Redis store behind Sentinel and on a Redis Cluster, against real
//! servers on loopback: a failover is followed without a new client, every
//! wait stays within its bound when servers freeze, and a cluster's
//! MOVED and ASK redirects are followed.

mod common;

use common::redis_ha::{query, wait_until, ClusterSet, SentinelSet};
use common::redis_tls::TlsFiles;
use std::time::{Duration, Instant};
use topos_rs::config::{RedisTls, Storage};
use topos_rs::store::redis::RedisStore;
use topos_rs::store::{Store, StoreError};

const LONG: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_millis(250);

fn kill(pid: i32) {
    // SAFETY: signals a process this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

#[test]
fn sentinel_store_follows_a_failover_and_bounds_the_wait_with_every_sentinel_frozen() {
    let set = SentinelSet::start();
    let mut s = RedisStore::new(&set.url(), TIMEOUT).unwrap();
    s.set_retry_after(Duration::from_millis(300));
    s.put(b"topos_rs:{x}:bill:1", b"answered", LONG).unwrap();
    // Replicated before the master dies (async replication: a write in
    // the last instant before a crash could be lost, see docs/design.md).
    let acked: i64 = query(set.master.port, redis::cmd("WAIT").arg(1).arg(2000)).unwrap();
    assert_eq!(acked, 1);

    // Master killed while every sentinel is frozen: no one can name a
    // master. The worker's wait is bounded all the same.
    for sentinel in &set.sentinels {
        sentinel.freeze();
    }
    kill(set.master.pid());
    let t = Instant::now();
    let err = s.get(b"topos_rs:{x}:bill:1").unwrap_err();
    let waited = t.elapsed();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("no master \"topos\" from 3 sentinels (sentinel 127.0.0.1:"),
        "{err}"
    );
    assert!(
        waited < TIMEOUT * 3 + Duration::from_millis(200),
        "asking three frozen sentinels took {waited:?}: {err}"
    );
    // Then the store fails fast until its retry time.
    let t = Instant::now();
    let err = s.get(b"topos_rs:{x}:bill:1").unwrap_err();
    assert!(err.to_string().contains("next attempt in"), "{err}");
    assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());

    // The sentinels wake up and promote the replica; the same store finds
    // it and the record written before the failover.
    for sentinel in &set.sentinels {
        sentinel.thaw();
    }
    set.wait_for_promotion(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(350));
    assert_eq!(
        s.get(b"topos_rs:{x}:bill:1").unwrap().as_deref(),
        Some(&b"answered"[..])
    );
    s.put(b"topos_rs:{x}:bill:2", b"after", LONG).unwrap();
    let on_new_master: Option<String> = query(
        set.replica.port,
        redis::cmd("GET").arg("topos_rs:{x}:bill:2"),
    )
    .unwrap();
    assert_eq!(on_new_master.as_deref(), Some("after"));
}

#[test]
fn all_sentinels_down_is_an_unavailable_store_at_once() {
    let set = SentinelSet::start();
    let mut s = RedisStore::new(&set.url(), TIMEOUT).unwrap();
    for sentinel in &set.sentinels {
        kill(sentinel.pid());
    }
    let t = Instant::now();
    let err = s.ensure_available().unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("no master \"topos\" from 3 sentinels"),
        "{err}"
    );
    assert!(t.elapsed() < TIMEOUT, "{:?}", t.elapsed());
}

/// The node of `set` that owns `key`'s slot (the others answer MOVED).
fn owner(set: &ClusterSet, key: &str) -> usize {
    (0..set.nodes.len())
        .find(|&i| query::<Option<String>>(set.nodes[i].port, redis::cmd("GET").arg(key)).is_ok())
        .expect("a node owns every slot")
}

fn node_id(port: u16) -> String {
    query(port, redis::cmd("CLUSTER").arg("MYID")).unwrap()
}

fn set_slot(port: u16, slot: i64, how: &str, id: &str) {
    let _: () = query(
        port,
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(how)
            .arg(id),
    )
    .unwrap();
}

#[test]
fn cluster_store_follows_ask_and_moved_and_bounds_a_frozen_node() {
    let set = ClusterSet::start();
    let mut s = RedisStore::new(&set.url(), TIMEOUT).unwrap();
    // Connected, slot map read.
    s.put(b"topos_rs:{warm}:diag:1", b"x", LONG).unwrap();

    // Move the (empty) slot of `key` to another node the way resharding
    // does; the store's slot map still names the old owner.
    let key = "topos_rs:{0123456789abcdef}:bill:moved";
    let slot: i64 = query(
        set.nodes[0].port,
        redis::cmd("CLUSTER").arg("KEYSLOT").arg(key),
    )
    .unwrap();
    let from = owner(&set, key);
    let to = (from + 1) % 3;
    let (from_id, to_id) = (node_id(set.nodes[from].port), node_id(set.nodes[to].port));
    set_slot(set.nodes[to].port, slot, "IMPORTING", &from_id);
    set_slot(set.nodes[from].port, slot, "MIGRATING", &to_id);
    // Migrating: the old owner does not have the key and answers ASK.
    s.put(key.as_bytes(), b"asked", LONG).unwrap();
    let on_target: Vec<String> =
        query(set.nodes[to].port, redis::cmd("KEYS").arg("*:bill:moved")).unwrap();
    assert_eq!(on_target, vec![key.to_string()], "written through ASK");
    // Done: every node says the slot is the new owner's; the old owner
    // answers MOVED.
    for n in [to, from, (from + 2) % 3] {
        set_slot(set.nodes[n].port, slot, "NODE", &to_id);
    }
    wait_until(
        "the old owner answers MOVED",
        Duration::from_secs(10),
        || {
            query::<Option<String>>(set.nodes[from].port, redis::cmd("GET").arg(key))
                .is_err_and(|e| e.code() == Some("MOVED"))
        },
    );
    assert_eq!(
        s.get(key.as_bytes()).unwrap().as_deref(),
        Some(&b"asked"[..])
    );
    assert_eq!(
        s.get_touch(key.as_bytes(), LONG).unwrap().as_deref(),
        Some(&b"asked"[..])
    );

    // A frozen node: an operation on its slots ends within the cluster
    // budget (2 x redis_timeout), and the store fails fast after that.
    let frozen = &set.nodes[to];
    frozen.freeze();
    let t = Instant::now();
    let err = s.get(key.as_bytes()).unwrap_err();
    let waited = t.elapsed();
    frozen.thaw();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        waited < TIMEOUT * 2 + Duration::from_millis(150),
        "a frozen cluster node held the worker {waited:?}"
    );
}

#[test]
fn cluster_connect_with_every_node_frozen_is_bounded() {
    let set = ClusterSet::start();
    for n in &set.nodes {
        n.freeze();
    }
    let mut s = RedisStore::new(&set.url(), TIMEOUT).unwrap();
    let t = Instant::now();
    let err = s.ensure_available().unwrap_err();
    let waited = t.elapsed();
    for n in &set.nodes {
        n.thaw();
    }
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        waited < TIMEOUT * 2 + Duration::from_millis(150),
        "connecting to a frozen cluster took {waited:?}"
    );
}

fn tls_store(url: &str, tls: &RedisTls) -> RedisStore {
    let Ok(Storage::Redis { redis, .. }) = Storage::parse(url) else {
        panic!("{url}")
    };
    RedisStore::open(&redis, TIMEOUT, tls).unwrap()
}

#[test]
fn tls_store_checks_the_server_certificate_and_presents_its_own() {
    let files = TlsFiles::make();
    let server = files.server();
    let url = format!("rediss://127.0.0.1:{}/0", server.port);
    let ca = std::fs::read(&files.ca).unwrap();
    let client = (
        std::fs::read(&files.client_cert).unwrap(),
        std::fs::read(&files.client_key).unwrap(),
    );
    let mut s = tls_store(
        &url,
        &RedisTls {
            ca: Some(ca.clone()),
            client: Some(client.clone()),
        },
    );
    s.put(b"topos_rs:{t}:diag:tls", b"over TLS", LONG).unwrap();
    assert_eq!(
        s.get(b"topos_rs:{t}:diag:tls").unwrap().as_deref(),
        Some(&b"over TLS"[..])
    );

    // Without our CA the server's certificate is not trusted (the TLS
    // handshake happens with the first command).
    let err = tls_store(
        &url,
        &RedisTls {
            ca: None,
            client: Some(client),
        },
    )
    .ping()
    .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("certificate"), "{err}");

    // Without a client certificate the server refuses us.
    let err = tls_store(
        &url,
        &RedisTls {
            ca: Some(ca),
            client: None,
        },
    )
    .ping()
    .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}
