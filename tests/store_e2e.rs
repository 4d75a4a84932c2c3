//! The store inside a real Kamailio: shared between worker processes, kept
//! across a restart (LMDB), shared between nodes (Redis), and Kamailio's
//! behaviour while Redis is down.

mod common;

use common::kamailio::{free_tcp_port, scratch_dir, Kamailio};
use common::redis::RedisServer;
use common::sip::{Msg, Peer};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const STORE_CFG: &str = "tests/cfg/store.cfg";

fn message(peer: &Peer, seq: usize, headers: &str) -> String {
    format!(
        "MESSAGE sip:store@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKs{seq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=s{seq}\r\nTo: <sip:store@127.0.0.1>\r\n\
         Call-ID: store-{seq}-{}@test\r\nCSeq: 1 MESSAGE\r\n{headers}Content-Length: 0\r\n\r\n",
        peer.addr,
        peer.port()
    )
}

fn put(k: &Kamailio, peer: &Peer, key: &str, value: &str) -> Msg {
    peer.send(
        k.addr,
        &message(peer, 0, &format!("X-Key: {key}\r\nX-Put: {value}\r\n")),
    );
    peer.expect("a reply to the store MESSAGE", |m| m.status().is_some())
}

/// Sends `n` reads at once (so several workers pick them up) and returns
/// the replies.
fn get_burst(k: &Kamailio, peer: &Peer, key: &str, n: usize) -> Vec<Msg> {
    for i in 0..n {
        peer.send(k.addr, &message(peer, i + 1, &format!("X-Key: {key}\r\n")));
    }
    (0..n)
        .map(|_| peer.expect("a reply to a read", |m| m.status().is_some()))
        .collect()
}

#[test]
fn lmdb_value_written_by_one_worker_is_read_by_others() {
    let k = Kamailio::start(STORE_CFG, &[]);
    let peer = Peer::new();
    let stored = put(&k, &peer, "shared", "from-one-worker");
    assert_eq!(stored.status(), Some(200), "{}", stored.text);
    let writer = stored.header("x-worker").unwrap();

    let mut readers = BTreeSet::new();
    for _ in 0..10 {
        for r in get_burst(&k, &peer, "shared", 16) {
            assert_eq!(r.status(), Some(200), "{}", r.text);
            assert_eq!(r.header("x-value").as_deref(), Some("from-one-worker"));
            readers.insert(r.header("x-worker").unwrap());
        }
        if readers.iter().any(|w| *w != writer) {
            break;
        }
    }
    assert!(
        readers.iter().any(|w| *w != writer),
        "every read was served by the writer {writer}: {readers:?}"
    );
}

#[test]
fn lmdb_data_survives_a_kamailio_restart() {
    let dir = scratch_dir("lmdb-restart");
    let peer = Peer::new();
    {
        let k = Kamailio::start_in(STORE_CFG, &[], dir.clone());
        assert_eq!(put(&k, &peer, "call-1", "answered").status(), Some(200));
    }
    let k = Kamailio::start_in(STORE_CFG, &[], dir.clone());
    let r = &get_burst(&k, &peer, "call-1", 1)[0];
    assert_eq!(r.status(), Some(200), "{}", r.text);
    assert_eq!(r.header("x-value").as_deref(), Some("answered"));
    assert!(
        dir.join("topos_rs/data.mdb").exists(),
        "the default store lives under the runtime directory"
    );
    drop(k);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn redis_is_shared_between_two_kamailio_nodes() {
    let redis = RedisServer::start();
    let storage = format!("STORAGE=\"{}\"", redis.url());
    let node1 = Kamailio::start(STORE_CFG, &[&storage]);
    let node2 = Kamailio::start(STORE_CFG, &[&storage]);
    let peer = Peer::new();
    assert_eq!(
        put(&node1, &peer, "cluster", "written-on-node-1").status(),
        Some(200)
    );
    let r = &get_burst(&node2, &peer, "cluster", 1)[0];
    assert_eq!(r.status(), Some(200), "{}", r.text);
    assert_eq!(r.header("x-value").as_deref(), Some("written-on-node-1"));
}

#[test]
fn kamailio_starts_with_redis_down_fails_fast_and_recovers() {
    let port = free_tcp_port();
    let storage = format!("STORAGE=\"redis://127.0.0.1:{port}/0\"");
    let k = Kamailio::start(STORE_CFG, &[&storage]);
    let log = k.log_text();
    assert!(
        log.contains(&format!(
            "Redis at 127.0.0.1:{port} is not reachable at start-up"
        )),
        "{log}"
    );
    let peer = Peer::new();

    // While Redis is down: every request is answered, quickly, with failure.
    let t = Instant::now();
    let replies = get_burst(&k, &peer, "any", 40);
    assert!(replies.iter().all(|r| r.status() == Some(404)));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "40 reads took {:?}",
        t.elapsed()
    );
    let errors = k
        .log_text()
        .matches("topos_store_get: storage unavailable")
        .count();
    assert!(
        (1..=4).contains(&errors),
        "expected one rate-limited line per worker at most, got {errors}:\n{}",
        k.log_text()
    );

    // Redis comes up: the same Kamailio recovers by itself.
    let _redis = RedisServer::start_on(port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = put(&k, &peer, "after", "recovered");
        if r.status() == Some(200) {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {}", r.text);
        std::thread::sleep(Duration::from_millis(200));
    }
    // Each worker retries on its own after its fail-fast window (1 s).
    loop {
        let found = get_burst(&k, &peer, "after", 8);
        if found
            .iter()
            .all(|r| r.header("x-value").as_deref() == Some("recovered"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "some workers never recovered");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn redis_example_config_uses_redis_storage() {
    let k = Kamailio::start("cfg-examples/kamailio-redis.cfg", &[]);
    assert!(
        k.log_text()
            .contains("topos_rs: initialized; storage: redis://127.0.0.1:6379/0 (timeout 250 ms)"),
        "{}",
        k.log_text()
    );
}
