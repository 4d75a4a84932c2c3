//! Billing end to end: real Kamailio, real calls over loopback, the exact
//! log line, the CDR, exactly-once billing across retransmissions, both
//! hang-up sides, a restart and two nodes.

mod common;

use common::calls::{answer, caller_bye, Parties};
use common::kamailio::{free_port, scratch_dir, Kamailio};
use common::redis::RedisServer;
use common::sip::{Call, Msg};
use std::time::{Duration, Instant};

const EXAMPLE: &str = "cfg-examples/kamailio.cfg";
const ROUTING: &str = "tests/cfg/routing.cfg";

fn billing_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.find("CALL BILLING - ").map(|i| l[i..].to_string()))
        .collect()
}

/// Waits (bounded) until the log holds `n` billing lines.
fn wait_for_lines(k: &Kamailio, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines = billing_lines(&k.log_text());
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_second_call_is_billed_once_with_the_exact_line() {
    let k = Kamailio::start(EXAMPLE, &[]);
    let p = Parties::new();
    let (call, invite, _) = answer(&k, &p, "c12345abcd");
    std::thread::sleep(Duration::from_millis(2200));
    let (bye_text, _) = caller_bye(&k, &p, &call);

    // The same BYE again (a retransmission) and a BYE from the callee.
    p.caller.send(k.addr, &bye_text);
    let _ = p.caller.recv_within(Duration::from_millis(300));
    let _ = p.callee.recv_within(Duration::from_millis(300));
    let callee_side = format!(
        "BYE sip:01089672389@{} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-late\r\n\
         Route: {}\r\nMax-Forwards: 70\r\nFrom: <sip:13545769997@127.0.0.1>;tag=callee-tag\r\n\
         To: <sip:01089672389@127.0.0.1>;tag={}\r\nCall-ID: c12345abcd\r\nCSeq: 9 BYE\r\n\
         Content-Length: 0\r\n\r\n",
        p.caller.addr,
        p.callee.addr,
        invite.header("record-route").unwrap(),
        call.from_tag
    );
    p.callee.send(k.addr, &callee_side);
    let _ = p.caller.recv_within(Duration::from_millis(500));

    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        billing_lines(&k.log_text()),
        vec!["CALL BILLING - Call-ID: c12345abcd, From: 01089672389, To: 13545769997, Duration: 2 sec, Cost: 0.10 元"]
    );
}

#[test]
fn cdr_file_gets_exactly_one_record_and_the_script_reads_the_bill() {
    let dir = scratch_dir("cdr");
    let cdr = dir.join("cdr.jsonl");
    let k = Kamailio::start(
        ROUTING,
        &[&format!("BILLING_CDR=\"file:{}\"", cdr.display())],
    );
    let p = Parties::new();
    let (call, invite, _) = answer(&k, &p, "cdr-call-1");
    std::thread::sleep(Duration::from_millis(1100));
    let (_, bye) = caller_bye(&k, &p, &call);
    // $billing(...) as the script appended it to the BYE.
    assert_eq!(
        bye.header("x-billed").as_deref(),
        Some("1 1 0.05 元 0.05 caller")
    );

    // A late BYE from the callee bills nothing ($rc -2).
    let late = callee_bye_raw(&k, &p, &invite);
    let got = p.caller.expect_request("BYE");
    assert_eq!(got.header("x-billed").as_deref(), Some("none -2"), "{late}");

    let lines = wait_for_lines(&k, 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let text = std::fs::read_to_string(&cdr).expect("CDR file");
    let records: Vec<&str> = text.lines().collect();
    assert_eq!(records.len(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(records[0]).unwrap();
    assert_eq!(v["call_id"], "cdr-call-1");
    assert_eq!(v["from"], "01089672389");
    assert_eq!(v["to"], "13545769997");
    assert_eq!(v["duration"], 1);
    assert_eq!(v["billed_seconds"], 1);
    assert_eq!(v["rate"], "0.05");
    assert_eq!(v["connect_fee"], "0");
    assert_eq!(v["currency"], "元");
    assert_eq!(v["cost"], "0.05");
    assert_eq!(v["hangup"], "caller");
    assert_eq!(v["node"], 0);
    let answered = v["answer_time_ms"].as_u64().unwrap();
    let ended = v["end_time_ms"].as_u64().unwrap();
    assert!(
        (1000..2000).contains(&(ended - answered)),
        "{answered} {ended}"
    );
}

/// Sends a BYE from the callee without waiting for anything.
fn callee_bye_raw(k: &Kamailio, p: &Parties, invite: &Msg) -> String {
    let caller_contact = invite.contact_uri();
    let bye = format!(
        "BYE {caller_contact} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-callee-bye\r\n\
         Route: {}\r\nMax-Forwards: 70\r\nFrom: {};tag=callee-tag\r\nTo: {}\r\n\
         Call-ID: {}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        p.callee.addr,
        invite.header("record-route").unwrap(),
        invite.header("to").unwrap(),
        invite.header("from").unwrap(),
        invite.header("call-id").unwrap()
    );
    p.callee.send(k.addr, &bye);
    bye
}

#[test]
fn callee_hanging_up_is_billed_as_callee() {
    let dir = scratch_dir("cdr-callee");
    let cdr = dir.join("cdr.jsonl");
    let k = Kamailio::start(
        ROUTING,
        &[&format!("BILLING_CDR=\"file:{}\"", cdr.display())],
    );
    let p = Parties::new();
    let (_, invite, _) = answer(&k, &p, "callee-hangs-up");
    callee_bye_raw(&k, &p, &invite);
    let got = p.caller.expect_request("BYE");
    assert_eq!(
        got.header("x-billed").as_deref(),
        Some("0 0 0.00 元 0.05 callee")
    );
    wait_for_lines(&k, 1);
    let v: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&cdr).unwrap().trim()).unwrap();
    assert_eq!(v["hangup"], "callee");
}

#[test]
fn increment_60_60_bills_the_same_call_3_00() {
    let k = Kamailio::start(ROUTING, &["BILLING_INCREMENT=\"60/60\""]);
    let p = Parties::new();
    let (call, _, _) = answer(&k, &p, "inc-60");
    std::thread::sleep(Duration::from_millis(2200));
    caller_bye(&k, &p, &call);
    assert_eq!(
        wait_for_lines(&k, 1),
        vec!["CALL BILLING - Call-ID: inc-60, From: 01089672389, To: 13545769997, Duration: 2 sec, Cost: 3.00 元"]
    );
}

#[test]
fn rates_file_prices_by_longest_prefix() {
    let dir = scratch_dir("rates");
    let rates = dir.join("rates.csv");
    std::fs::write(
        &rates,
        "prefix,rate,increment,connect_fee\n135,0.10,1/1,0\n13545,1.005,1/1,0\n",
    )
    .unwrap();
    let k = Kamailio::start(
        ROUTING,
        &[&format!("BILLING_RATES=\"{}\"", rates.display())],
    );
    let p = Parties::new();
    let (call, _, _) = answer(&k, &p, "rates-1");
    std::thread::sleep(Duration::from_millis(1100));
    caller_bye(&k, &p, &call);
    assert_eq!(
        wait_for_lines(&k, 1),
        vec!["CALL BILLING - Call-ID: rates-1, From: 01089672389, To: 13545769997, Duration: 1 sec, Cost: 1.01 元"]
    );
}

#[test]
fn unanswered_call_produces_no_billing_line() {
    let k = Kamailio::start(EXAMPLE, &[]);
    let p = Parties::new();
    let call = Call::new("busy-1", &format!("sip:13545769997@{}", p.callee.addr));
    p.caller.send(k.addr, &call.invite(&p.caller));
    let inv = p.callee.expect_request("INVITE");
    p.callee.reply(&inv, 180, "Ringing", "b");
    p.callee.reply(&inv, 486, "Busy Here", "b");
    p.caller.expect_reply(486, "INVITE");
    p.caller.send(k.addr, &call.ack_negative(&p.caller));
    std::thread::sleep(Duration::from_millis(300));
    assert!(billing_lines(&k.log_text()).is_empty(), "{}", k.log_text());
}

/// Restart Kamailio between answer and BYE; the call is billed once with
/// its real duration.
fn restart_mid_call(defines: &[&str]) {
    let dir = scratch_dir("restart");
    let port = free_port();
    let p = Parties::new();
    let mut k = Kamailio::start_on(ROUTING, defines, dir.clone(), port);
    let (call, _, answered) = answer(&k, &p, "restart-1");
    let before = k.stop();
    assert!(billing_lines(&before).is_empty());
    let k = Kamailio::start_on(ROUTING, defines, dir.clone(), port);
    std::thread::sleep(Duration::from_millis(1000));
    let bye_sent = Instant::now();
    caller_bye(&k, &p, &call);
    let lines = wait_for_lines(&k, 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let real = bye_sent.duration_since(answered).as_secs();
    let billed: u64 = lines[0]
        .split("Duration: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|d| d.parse().ok())
        .unwrap();
    assert!(
        billed == real || billed + 1 == real || billed == real + 1,
        "billed {billed} s, call lasted {real} s: {}",
        lines[0]
    );
    assert!(billed >= 1, "{}", lines[0]);
    drop(k);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn lmdb_call_answered_before_a_restart_is_billed_once() {
    restart_mid_call(&[]);
}

#[test]
fn redis_call_answered_before_a_restart_is_billed_once() {
    let redis = RedisServer::start();
    restart_mid_call(&[&format!("STORAGE=\"{}\"", redis.url())]);
}

#[test]
fn redis_answer_on_one_node_bye_on_another_bills_once() {
    let redis = RedisServer::start();
    let storage = format!("STORAGE=\"{}\"", redis.url());
    // The nodes of a cluster share the key file (sealed tokens).
    let keys = scratch_dir("two-node-keys").join("topos_rs.keys");
    std::fs::write(&keys, format!("{}\n", "5a".repeat(32))).unwrap();
    let keys = format!("TOKEN_KEY_FILE=\"{}\"", keys.display());
    let node1 = Kamailio::start(ROUTING, &[&storage, &keys]);
    let node2 = Kamailio::start(ROUTING, &[&storage, &keys]);
    let p = Parties::new();
    let (call, _, _) = answer(&node1, &p, "two-nodes");
    std::thread::sleep(Duration::from_millis(1100));
    // Node 1 went away; the caller's BYE reaches node 2, which finds the
    // dialog and the bill in the shared Redis.
    let bye_text = call.in_dialog(&p.caller, "BYE", 2);
    p.caller.send(node2.addr, &bye_text);
    let bye = p.callee.expect_request("BYE");
    assert_eq!(bye.headers("x-billed"), vec!["1 1 0.05 元 0.05 caller"]);
    p.callee.reply(&bye, 200, "OK", "callee-tag");
    // The same BYE through node 1 finds nothing left to bill.
    p.caller.send(node1.addr, &bye_text);
    let again = p.callee.expect_request("BYE");
    assert_eq!(again.headers("x-billed"), vec!["none -2"]);
    let lines1 = billing_lines(&node1.log_text());
    let lines2 = wait_for_lines(&node2, 1);
    assert!(lines1.is_empty(), "{lines1:?}");
    assert_eq!(
        lines2,
        vec!["CALL BILLING - Call-ID: two-nodes, From: 01089672389, To: 13545769997, Duration: 1 sec, Cost: 0.05 元"]
    );
}

#[test]
fn redis_cdr_stream_gets_one_entry() {
    let redis = RedisServer::start();
    let k = Kamailio::start(
        ROUTING,
        &[
            &format!("STORAGE=\"{}\"", redis.url()),
            "BILLING_CDR=\"redis:topos_rs:cdr\"",
        ],
    );
    let p = Parties::new();
    let (call, _, _) = answer(&k, &p, "stream-1");
    caller_bye(&k, &p, &call);
    wait_for_lines(&k, 1);
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("topos_rs:cdr")
        .arg("-")
        .arg("+")
        .query(&mut con)
        .unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let fields = &entries[0].1;
    assert_eq!(fields[0], ("call_id".to_string(), "stream-1".to_string()));
    let cdr: serde_json::Value = serde_json::from_str(&fields[1].1).unwrap();
    assert_eq!(cdr["cost"], "0.00");
    assert_eq!(cdr["hangup"], "caller");
}
