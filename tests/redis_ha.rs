//! Calls through Kamailio with topos_rs on Redis as production runs it:
//! behind Sentinel, through a failover (the master SIGKILLed between two
//! calls), and on a three-master Redis Cluster. Every server is on
//! loopback and started by the test; each call ends with exactly one
//! CALL BILLING line with its real duration.

mod common;

use common::calls::{answer, caller_bye, Parties};
use common::kamailio::Kamailio;
use common::redis_ha::{query, ClusterSet, SentinelSet};
use common::redis_tls::TlsFiles;
use std::time::{Duration, Instant};

const ROUTING: &str = "tests/cfg/routing.cfg";

fn billing_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.find("CALL BILLING - ").map(|i| l[i..].to_string()))
        .collect()
}

/// The billing lines once `n` are there (bounded wait), after a moment for
/// any extra line that should not come.
fn lines(k: &Kamailio, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while billing_lines(&k.log_text()).len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(400));
    billing_lines(&k.log_text())
}

/// The one line of `call_id` among `lines`, checked to the byte with a
/// duration within a second of `lasted` (0.05 per second by default).
fn assert_billed_once(lines: &[String], call_id: &str, lasted: Duration) {
    let mine: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with(&format!("CALL BILLING - Call-ID: {call_id},")))
        .collect();
    assert_eq!(mine.len(), 1, "{call_id}: {lines:#?}");
    let secs: u64 = mine[0]
        .split("Duration: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no duration in {}", mine[0]));
    let real = lasted.as_secs();
    assert!(
        secs == real || secs + 1 == real || secs == real + 1,
        "{call_id}: billed {secs} s, the call lasted {lasted:?}"
    );
    assert_eq!(
        *mine[0],
        format!(
            "CALL BILLING - Call-ID: {call_id}, From: 01089672389, To: 13545769997, \
             Duration: {secs} sec, Cost: {}.{:02} 元",
            secs * 5 / 100,
            secs * 5 % 100
        )
    );
}

#[test]
fn a_sentinel_failover_between_two_calls_bills_each_once() {
    let set = SentinelSet::start();
    let storage = format!("STORAGE=\"{}\"", set.url());
    let k = Kamailio::start(ROUTING, &[&storage]);
    let described = set.url().replacen("redis+sentinel://", "", 1);
    assert!(
        k.log_text().contains(&format!(
            "topos_rs: initialized; storage: redis+sentinel://{described} (timeout 250 ms)"
        )),
        "{}",
        k.log_text()
    );
    let p = Parties::new();
    let (call1, _, answered1) = answer(&k, &p, "sentinel-call-1");
    // Call 1's dialog and bill reached the replica before the master dies
    // (replication is asynchronous: see docs/design.md, Storage).
    let acked: i64 = query(set.master.port, redis::cmd("WAIT").arg(1).arg(2000)).unwrap();
    assert_eq!(acked, 1, "the replica did not acknowledge call 1's records");

    // SAFETY: kills the redis-server this test started.
    unsafe { libc::kill(set.master.pid(), libc::SIGKILL) };
    let took = set.wait_for_promotion(Duration::from_secs(30));
    eprintln!("the sentinels promoted the replica {took:?} after the kill");

    // A new call after the failover, on the same Kamailio (no restart).
    let (call2, _, answered2) = answer(&k, &p, "sentinel-call-2");
    std::thread::sleep(Duration::from_millis(1100));
    let bye1 = Instant::now();
    caller_bye(&k, &p, &call1);
    let bye2 = Instant::now();
    caller_bye(&k, &p, &call2);

    let lines = lines(&k, 2);
    assert_eq!(lines.len(), 2, "{lines:#?}\n{}", k.log_text());
    assert_billed_once(&lines, "sentinel-call-1", bye1 - answered1);
    assert_billed_once(&lines, "sentinel-call-2", bye2 - answered2);
    // Both calls' records went to the new master.
    let on_new_master: i64 = query(set.replica.port, &redis::cmd("DBSIZE")).unwrap();
    assert!(on_new_master > 0);
}

#[test]
fn twenty_calls_on_a_redis_cluster_are_billed_once_each_with_records_on_every_master() {
    let set = ClusterSet::start();
    let storage = format!("STORAGE=\"{}\"", set.url());
    // Stored tokens: dialog records as well as bills spread over the nodes.
    let k = Kamailio::start(ROUTING, &[&storage, "TOKEN_MODE=\"stored\""]);
    let p = Parties::new();
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let id = format!("cluster-call-{i}");
            let (call, _, answered) = answer(&k, &p, &id);
            (id, call, answered)
        })
        .collect();

    // During the calls: each call's bill is on the master of its slot, and
    // the twenty spread over all three masters.
    let bills = set.keys_per_node("topos_rs:*:bill:*");
    let dialogs = set.keys_per_node("topos_rs:*:dlg:*");
    assert_eq!(bills.iter().map(Vec::len).sum::<usize>(), 20, "{bills:?}");
    assert!(
        bills.iter().all(|b| !b.is_empty()),
        "bills per master: {:?}",
        bills.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(
        dialogs.iter().filter(|d| !d.is_empty()).count() >= 2,
        "dialog records per master: {:?}",
        dialogs.iter().map(Vec::len).collect::<Vec<_>>()
    );

    std::thread::sleep(Duration::from_millis(1100));
    let mut ended = Vec::new();
    for (id, call, answered) in &calls {
        let bye = Instant::now();
        caller_bye(&k, &p, call);
        ended.push((id.clone(), bye - *answered));
    }
    let lines = lines(&k, 20);
    assert_eq!(lines.len(), 20, "{lines:#?}");
    for (id, lasted) in &ended {
        assert_billed_once(&lines, id, *lasted);
    }
}

#[test]
fn a_call_on_redis_over_tls_is_billed_once() {
    let tls = TlsFiles::make();
    let redis = tls.server();
    let defines = [
        format!("STORAGE=\"rediss://127.0.0.1:{}/0\"", redis.port),
        format!("REDIS_TLS_CA=\"{}\"", tls.ca.display()),
        format!("REDIS_TLS_CERT=\"{}\"", tls.client_cert.display()),
        format!("REDIS_TLS_KEY=\"{}\"", tls.client_key.display()),
    ];
    let defines: Vec<&str> = defines.iter().map(String::as_str).collect();
    let k = Kamailio::start(ROUTING, &defines);
    assert!(
        k.log_text().contains(&format!(
            "topos_rs: initialized; storage: rediss://127.0.0.1:{}/0 (timeout 250 ms)",
            redis.port
        )),
        "{}",
        k.log_text()
    );
    assert!(
        !k.log_text().contains("not reachable at start-up"),
        "{}",
        k.log_text()
    );
    let p = Parties::new();
    let (call, _, answered) = answer(&k, &p, "tls-call-1");
    std::thread::sleep(Duration::from_millis(1100));
    let bye = Instant::now();
    caller_bye(&k, &p, &call);
    let lines = lines(&k, 1);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_billed_once(&lines, "tls-call-1", bye - answered);
}
