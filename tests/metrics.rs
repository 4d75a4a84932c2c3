//! topos_rs's numbers as Kamailio counters: `kamcmd cnt.get_vars topos_rs`,
//! `cnt.get`, `stats.get_statistics topos_rs:` and xhttp_prom's `/metrics`
//! show what `topos_rs.stats` shows, with the same values, whichever
//! process answers (ctl's for kamcmd, a TCP worker's for HTTP).

mod common;

use common::calls::{answer, caller_bye, Parties};
use common::ctl::{field, kamcmd};
use common::kamailio::{free_tcp_port, scratch_dir, Kamailio};
use common::redis::RedisServer;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use topos_rs::stats::COUNTERS;

const ROUTING: &str = "tests/cfg/routing.cfg";

/// A Kamailio with ctl (kamcmd), counters, xhttp and xhttp_prom loaded.
struct Metered {
    k: Kamailio,
    socket: PathBuf,
    http_port: u16,
}

fn start(extra: &[&str]) -> Metered {
    let dir = scratch_dir("metrics");
    let socket = dir.join("ctl.sock");
    let http_port = free_tcp_port();
    let ctl = format!("CTL_SOCKET=\"unix:{}\"", socket.display());
    let tcp = format!("LISTEN_TCP=tcp:127.0.0.1:{http_port}");
    let mut defines = vec![ctl.as_str(), tcp.as_str(), "METRICS"];
    defines.extend_from_slice(extra);
    let k = Kamailio::start(ROUTING, &defines);
    Metered {
        k,
        socket,
        http_port,
    }
}

/// The body of an HTTP GET of `path` on 127.0.0.1:`port` (5 s at most).
fn http_get(port: u16, path: &str) -> (u32, String) {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(5))
        .expect("connecting to xhttp");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .expect("a Content-Length in xhttp's reply");
            if body.len() >= len {
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .expect("a status line");
                return (status, body[..len].to_string());
            }
        }
        assert!(Instant::now() < deadline, "no whole reply in 5 s: {text}");
        match s.read(&mut buf) {
            Ok(0) => panic!("connection closed before the whole reply: {text}"),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading the reply: {e}; so far: {text}"),
        }
    }
}

/// `kamailio_topos_rs_<name> <value> [timestamp]` lines of a /metrics body.
fn prometheus(body: &str) -> BTreeMap<String, String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("kamailio_topos_rs_"))
        .map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next().unwrap().to_string();
            (name, words.next().expect("a value").to_string())
        })
        .collect()
}

/// `name: value` lines of a kamcmd struct reply.
fn struct_fields(reply: &str) -> BTreeMap<String, String> {
    reply
        .lines()
        .filter_map(|l| l.trim().split_once(": "))
        .map(|(n, v)| (n.to_string(), v.trim().to_string()))
        .collect()
}

/// `topos_rs:<name> = <value>` lines of `stats.get_statistics topos_rs:`.
fn statistics(reply: &str) -> BTreeMap<String, String> {
    reply
        .lines()
        .filter_map(|l| l.trim().strip_prefix("topos_rs:"))
        .filter_map(|l| l.split_once(" = "))
        .map(|(n, v)| (n.to_string(), v.trim().to_string()))
        .collect()
}

fn ok_kamcmd(socket: &Path, args: &[&str]) -> String {
    let (ok, out) = kamcmd(socket, args);
    assert!(ok, "kamcmd {args:?}: {out}");
    out
}

/// All four views of one Kamailio: topos_rs.stats (without billed_total,
/// which is text), cnt.get_vars, stats.get_statistics, /metrics. Asserts
/// they list the same names with the same values and returns them.
fn same_in_every_view(m: &Metered) -> BTreeMap<String, String> {
    let mut rpc = struct_fields(&ok_kamcmd(&m.socket, &["topos_rs.stats"]));
    rpc.remove("billed_total")
        .expect("billed_total in topos_rs.stats");
    let cnt = struct_fields(&ok_kamcmd(&m.socket, &["cnt.get_vars", "topos_rs"]));
    let stats = statistics(&ok_kamcmd(
        &m.socket,
        &["stats.get_statistics", "topos_rs:"],
    ));
    let (status, body) = http_get(m.http_port, "/metrics");
    assert_eq!(status, 200, "{body}");
    let prom = prometheus(&body);
    assert_eq!(cnt, rpc, "cnt.get_vars topos_rs vs topos_rs.stats");
    assert_eq!(
        stats, rpc,
        "stats.get_statistics topos_rs: vs topos_rs.stats"
    );
    assert_eq!(prom, rpc, "/metrics vs topos_rs.stats:\n{body}");
    for (name, value) in &rpc {
        let one = ok_kamcmd(&m.socket, &["cnt.get", "topos_rs", name]);
        assert_eq!(one.trim(), value, "cnt.get topos_rs {name}");
    }
    rpc
}

#[test]
fn counters_and_prometheus_show_what_topos_rs_stats_shows() {
    let dir = scratch_dir("metrics-rates");
    let rates = dir.join("rates.csv");
    std::fs::write(&rates, "prefix,rate\n135,0.10\n").unwrap();
    let rates_define = format!("BILLING_RATES=\"{}\"", rates.display());
    // Stored tokens on LMDB: the node that shows every counter.
    let m = start(&[&rates_define, "TOKEN_MODE=\"stored\""]);

    // Before any call: every counter, at 0.
    let before = same_in_every_view(&m);
    let names: Vec<&str> = COUNTERS.iter().map(|c| c.name).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(before.keys().collect::<Vec<_>>(), sorted, "LMDB shows all");
    assert!(before.values().all(|v| v == "0"), "{before:?}");

    // Three answered calls of a little over a second (0.10 each), and one
    // in-dialog request with a forged token.
    let p = Parties::new();
    let calls: Vec<_> = (1..=3)
        .map(|i| answer(&m.k, &p, &format!("metrics-call-{i}")).0)
        .collect();
    std::thread::sleep(Duration::from_millis(1100));
    for c in &calls {
        caller_bye(&m.k, &p, c);
    }
    let mut forged = calls[0].clone();
    forged.remote_target = Some(format!("sip:forged@{}", m.k.addr));
    p.caller
        .send(m.k.addr, &forged.in_dialog(&p.caller, "INFO", 3));
    p.caller.expect_reply(404, "INFO");
    let deadline = Instant::now() + Duration::from_secs(5);
    while m.k.log_text().matches("CALL BILLING").count() < 3 {
        assert!(Instant::now() < deadline, "{}", m.k.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }

    let after = same_in_every_view(&m);
    eprintln!("after three calls: {after:?}");
    let expected = [
        // INVITE, ACK and BYE of each call.
        ("requests_hidden", "9"),
        // The 200 to each INVITE and to each BYE.
        ("replies_restored", "6"),
        ("replies_reduced", "0"),
        ("dialogs_created", "3"),
        ("dialogs_active", "0"),
        ("dialogs_ended", "3"),
        ("dialogs_expired", "0"),
        ("token_misses", "1"),
        // The config answers the refused request: nothing for the gate.
        ("dropped_token_requests", "0"),
        ("dropped_ack_cancel", "0"),
        ("dropped_refused_requests", "0"),
        ("dialogs_stored_too_large", "0"),
        ("storage_errors", "0"),
        // The store never failed: nothing journaled.
        ("billing_journal_pending", "0"),
        ("billing_journaled", "0"),
        ("billing_journal_replayed", "0"),
        ("calls_billed", "3"),
        // 3 x 0.10 in cents.
        ("billed_minor_units", "30"),
    ];
    for (name, value) in expected {
        assert_eq!(after[name], value, "{name}: {after:?}");
    }
    assert_eq!(
        expected.len(),
        names.len(),
        "a counter without an expected value"
    );
    let (_, rpc) = kamcmd(&m.socket, &["topos_rs.stats"]);
    assert_eq!(field(&rpc, "billed_total"), "0.30 元");

    // Exactly as Prometheus reads it.
    let (_, body) = http_get(m.http_port, "/metrics");
    for line in [
        "kamailio_topos_rs_calls_billed 3 ",
        "kamailio_topos_rs_requests_hidden 9 ",
        "kamailio_topos_rs_billed_minor_units 30 ",
    ] {
        assert!(
            body.lines().any(|l| l.starts_with(line)),
            "no {line:?} line in:\n{body}"
        );
    }
    // Each counter's description, from the same table.
    let help = ok_kamcmd(&m.socket, &["cnt.help", "topos_rs", "calls_billed"]);
    assert!(
        help.contains("Calls billed (one CALL BILLING line each)."),
        "{help}"
    );

    // Counters cannot be reset (they read the shared block): a reset
    // leaves every view as it was.
    let _ = kamcmd(&m.socket, &["cnt.reset", "topos_rs", "calls_billed"]);
    let _ = kamcmd(&m.socket, &["stats.reset_statistics", "topos_rs:"]);
    assert_eq!(same_in_every_view(&m), after);
}

#[test]
fn on_redis_the_counters_only_the_store_knows_are_left_out_everywhere() {
    // Sealed tokens keep no dialog record at all: the same on LMDB.
    let m = start(&[]);
    let shown = same_in_every_view(&m);
    assert!(!shown.contains_key("dialogs_active"), "{shown:?}");
    assert!(!shown.contains_key("dialogs_expired"), "{shown:?}");
    drop(m);
    let redis = RedisServer::start();
    let storage = format!("STORAGE=\"{}\"", redis.url());
    let m = start(&[&storage]);
    let p = Parties::new();
    let (call, _, _) = answer(&m.k, &p, "metrics-redis-1");
    caller_bye(&m.k, &p, &call);

    let shown = same_in_every_view(&m);
    assert!(!shown.contains_key("dialogs_active"), "{shown:?}");
    assert!(!shown.contains_key("dialogs_expired"), "{shown:?}");
    assert_eq!(shown.len(), COUNTERS.len() - 2, "{shown:?}");
    assert_eq!(shown["dialogs_created"], "1");
    assert_eq!(shown["dialogs_ended"], "1");
    let (ok, missing) = kamcmd(&m.socket, &["cnt.get", "topos_rs", "dialogs_active"]);
    assert!(!ok, "{missing}");
}
