//! Issue 14, end to end against the real Kamailio, on LMDB and on Redis:
//! one bill per answered call, whatever happens in the call and whoever
//! tries to cheat. Each test asserts the exact CALL BILLING lines (how
//! many, From, To, Duration, Cost) and that the CDR file agrees with them.

mod common;

use common::calls::{answer, callee_request, caller_bye, Parties};
use common::ctl::kamcmd;
use common::kamailio::{scratch_dir, Kamailio};
use common::redis::RedisServer;
use common::sip::Peer;
use common::sip::{Call, Msg};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const ROUTING: &str = "tests/cfg/routing.cfg";

/// A Kamailio with a CDR file and a ctl socket, on LMDB or on Redis.
struct Node {
    k: Kamailio,
    cdr: PathBuf,
    ctl: PathBuf,
    _redis: Option<RedisServer>,
}

fn node(redis: bool, more: &[&str]) -> Node {
    let dir = scratch_dir("bill-once");
    let cdr = dir.join("cdr.jsonl");
    let ctl = dir.join("ctl.sock");
    let redis = redis.then(RedisServer::start);
    let mut d = vec![
        format!("BILLING_CDR=\"file:{}\"", cdr.display()),
        format!("CTL_SOCKET=\"unix:{}\"", ctl.display()),
    ];
    if let Some(r) = &redis {
        d.push(format!("STORAGE=\"{}\"", r.url()));
    }
    d.extend(more.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = d.iter().map(String::as_str).collect();
    Node {
        k: Kamailio::start(ROUTING, &refs),
        cdr,
        ctl,
        _redis: redis,
    }
}

fn billing_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.find("CALL BILLING - ").map(|i| l[i..].to_string()))
        .collect()
}

impl Node {
    /// The billing lines once `n` are there (bounded wait), after a
    /// moment for any extra line that should not come.
    fn lines(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while billing_lines(&self.k.log_text()).len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(400));
        billing_lines(&self.k.log_text())
    }

    /// The CDRs, checked against the log lines field by field.
    fn cdrs_agree_with(&self, lines: &[String]) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.cdr).unwrap_or_default();
        let cdrs: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(cdrs.len(), lines.len(), "CDRs:\n{text}\nlines: {lines:?}");
        for (cdr, line) in cdrs.iter().zip(lines) {
            let expected = format!(
                "CALL BILLING - Call-ID: {}, From: {}, To: {}, Duration: {} sec, Cost: {} 元",
                cdr["call_id"].as_str().unwrap(),
                cdr["from"].as_str().unwrap(),
                cdr["to"].as_str().unwrap(),
                cdr["duration"],
                cdr["cost"].as_str().unwrap()
            );
            assert_eq!(&expected, line);
        }
        cdrs
    }

    fn open_bills(&self) -> String {
        let r = kamcmd(&self.ctl, &["topos_rs.records"]).1;
        r.lines()
            .find_map(|l| l.trim().strip_prefix("bills: "))
            .unwrap_or_else(|| panic!("no bills in {r}"))
            .to_string()
    }
}

fn line(call_id: &str, secs: u32, cost: &str) -> String {
    format!(
        "CALL BILLING - Call-ID: {call_id}, From: 01089672389, To: 13545769997, Duration: {secs} sec, Cost: {cost} 元"
    )
}

/// An in-dialog request of the callee, built from the INVITE it received
/// (its remote target is the caller's masked Contact, its route set the
/// INVITE's Record-Route).
fn callee_send(k: &Kamailio, p: &Parties, invite: &Msg, method: &str, cseq: u32) -> String {
    let own = format!("sip:callee@{}", p.callee.addr);
    let text = callee_request(p, invite, method, cseq, Some(&own));
    p.callee.send(k.addr, &text);
    text
}

fn both_backends(f: impl Fn(bool)) {
    for redis in [false, true] {
        f(redis);
    }
}

#[test]
fn a_callee_reinvite_neither_starts_a_second_bill_nor_changes_the_first() {
    both_backends(|redis| {
        let n = node(redis, &[]);
        let p = Parties::new();
        let id = format!("reinv-{redis}");
        let (call, invite, _) = answer(&n.k, &p, &id);
        std::thread::sleep(Duration::from_millis(1100));
        // The callee refreshes the session (hold, session timer): its
        // re-INVITE's 200 passes billing_start() in onreply_route.
        callee_send(&n.k, &p, &invite, "INVITE", 2);
        let reinvite = p.caller.expect_request("INVITE");
        p.caller.reply(&reinvite, 200, "OK", "unused");
        p.callee.expect_reply(200, "INVITE");
        assert_eq!(n.open_bills(), "1");
        std::thread::sleep(Duration::from_millis(1000));
        // Both hang up at the same time: one bill, in the call's direction.
        callee_send(&n.k, &p, &invite, "BYE", 3);
        p.caller
            .send(n.k.addr, &call.in_dialog(&p.caller, "BYE", 3));
        let lines = n.lines(1);
        assert_eq!(lines, vec![line(&id, 2, "0.10")], "{}", n.k.log_text());
        let cdrs = n.cdrs_agree_with(&lines);
        // Whichever BYE a worker took first: the bill is the same.
        assert!(["caller", "callee"].contains(&cdrs[0]["hangup"].as_str().unwrap()));
        assert_eq!(n.open_bills(), "0");
    });
}

#[test]
fn a_party_cannot_address_its_own_side_nor_shorten_the_dialog_with_a_refused_bye() {
    for mode in ["TOKEN_MODE=\"stored\"", "TOKEN_MODE=\"sealed\""] {
        both_backends(|redis| own_side_and_refused_byes(redis, mode));
    }
}

/// The caller's token changed to address the caller's own side: the side
/// letter of a stored token, the side bit of a sealed token's clear byte.
fn own_side_token(target: &str) -> String {
    use base64::Engine;
    let at = target.find('@').unwrap();
    let user_start = "sip:".len();
    let user = &target[user_start..at];
    let changed = if user.len() == 65 {
        assert_eq!(&user[32..33], "b", "{target}");
        format!("{}a{}", &user[..32], &user[33..])
    } else {
        // Tokens are base64url with `.` for `C` (src/crypto/text.rs).
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut bytes = engine.decode(user.replace('.', "C")).unwrap();
        bytes[2] ^= 1;
        engine.encode(bytes).replace('C', ".")
    };
    format!("sip:{changed}{}", &target[at..])
}

fn own_side_and_refused_byes(redis: bool, mode: &str) {
    {
        let n = node(redis, &[mode]);
        let p = Parties::new();
        let id = format!("fraud-{redis}-{}", mode.len());
        let (call, _, _) = answer(&n.k, &p, &id);
        let target = call.remote_target.clone().unwrap();
        // The caller changes its token to reach its own side.
        let mut own_side = call.clone();
        own_side.remote_target = Some(own_side_token(&target));
        p.caller
            .send(n.k.addr, &own_side.in_dialog(&p.caller, "BYE", 2));
        p.caller.expect_reply(404, "BYE");
        // Its own token with the tags swapped, and a BYE with a valid
        // token and tags but another Call-ID: refused too.
        let mut swapped = call.clone();
        swapped.from_tag = call.to_tag.clone().unwrap();
        swapped.to_tag = Some(call.from_tag.clone());
        p.caller
            .send(n.k.addr, &swapped.in_dialog(&p.caller, "BYE", 3));
        p.caller.expect_reply(404, "BYE");
        let mut other_call = call.clone();
        other_call.call_id = format!("{id}-other");
        p.caller
            .send(n.k.addr, &other_call.in_dialog(&p.caller, "BYE", 4));
        p.caller.expect_reply(404, "BYE");
        p.callee.expect_silence(Duration::from_millis(300));
        assert_eq!(n.open_bills(), "1");
        assert!(billing_lines(&n.k.log_text()).is_empty());
        // The refused BYEs changed nothing: the real one, 2 s in, bills.
        std::thread::sleep(Duration::from_millis(1800));
        let mut real = call.clone();
        real.extra_headers.clear();
        caller_bye(&n.k, &p, &real);
        let lines = n.lines(1);
        assert_eq!(lines, vec![line(&id, 2, "0.10")]);
        n.cdrs_agree_with(&lines);
    }
}

#[test]
fn forged_200s_neither_start_nor_repeat_a_bill() {
    both_backends(|redis| {
        let n = node(redis, &[]);
        let p = Parties::new();
        // A call answered 486, then a 200 with no transaction behind it
        // (it reaches the core onreply_route only), then a BYE.
        let id = format!("busy-{redis}");
        let mut busy = Call::new(&id, &format!("sip:13545769997@{}", p.callee.addr));
        p.caller.send(n.k.addr, &busy.invite(&p.caller));
        let inv = p.callee.expect_request("INVITE");
        p.callee.reply(&inv, 486, "Busy Here", "bt");
        p.caller.expect_reply(486, "INVITE");
        p.caller.send(n.k.addr, &busy.ack_negative(&p.caller));
        let forger = Peer::new();
        let forged = |call_id: &str, from_tag: &str, to_tag: &str| {
            format!(
                "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-forged\r\n\
                 From: <sip:01089672389@127.0.0.1>;tag={from_tag}\r\n\
                 To: <sip:13545769997@127.0.0.1>;tag={to_tag}\r\nCall-ID: {call_id}\r\n\
                 CSeq: 1 INVITE\r\nContact: <sip:x@127.0.0.1:9>\r\nContent-Length: 0\r\n\r\n",
                n.k.addr
            )
        };
        forger.send(n.k.addr, &forged(&id, &busy.from_tag, "bt"));
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(n.open_bills(), "0");
        busy.to_tag = Some("bt".into());
        // A completed call, then the callee's 200 again (it matches the
        // INVITE transaction while tm still keeps it) and a forged one.
        let id2 = format!("done-{redis}");
        let (call, invite, _) = answer(&n.k, &p, &id2);
        std::thread::sleep(Duration::from_millis(1100));
        caller_bye(&n.k, &p, &call);
        p.callee.reply(&invite, 200, "OK", "callee-tag");
        forger.send(n.k.addr, &forged(&id2, &call.from_tag, "callee-tag"));
        std::thread::sleep(Duration::from_millis(300));
        while p.caller.recv_within(Duration::from_millis(100)).is_some() {}
        assert_eq!(n.open_bills(), "0");
        // A second BYE finds nothing to bill.
        callee_send(&n.k, &p, &invite, "BYE", 7);
        let lines = n.lines(1);
        assert_eq!(lines, vec![line(&id2, 1, "0.05")]);
        n.cdrs_agree_with(&lines);
    });
}

#[test]
fn a_2000_byte_call_id_is_billed() {
    both_backends(|redis| {
        let n = node(redis, &[]);
        let p = Parties::new();
        let id = format!("{}-{redis}", "L".repeat(2000));
        let (call, _, _) = answer(&n.k, &p, &id);
        std::thread::sleep(Duration::from_millis(1100));
        caller_bye(&n.k, &p, &call);
        let lines = n.lines(1);
        assert_eq!(lines, vec![line(&id, 1, "0.05")]);
        n.cdrs_agree_with(&lines);
    });
}

/// Answers the BYE Kamailio sends one side, if it comes.
fn answer_local_bye(peer: &Peer) -> Msg {
    let bye = peer.expect_request("BYE");
    peer.reply(&bye, 200, "OK", "x");
    bye
}

#[test]
fn a_call_the_dialog_module_ends_on_timeout_is_billed_once() {
    both_backends(|redis| {
        let n = node(redis, &["DIALOG"]);
        let p = Parties::new();
        let id = format!("prepaid-{redis}");
        let mut call = Call::new(&id, &format!("sip:13545769997@{}", p.callee.addr));
        // Prepaid: this call may last 2 s.
        call.extra_headers = "X-Dlg-Timeout: 2\r\n".into();
        p.caller.send(n.k.addr, &call.invite(&p.caller));
        let inv = p.callee.expect_request("INVITE");
        p.callee.reply(&inv, 200, "OK", "callee-tag");
        let ok = p.caller.expect_reply(200, "INVITE");
        call.confirm(&ok);
        call.extra_headers.clear();
        p.caller
            .send(n.k.addr, &call.in_dialog(&p.caller, "ACK", 1));
        p.callee.expect_request("ACK");
        // Kamailio hangs up both sides when the time is up.
        let to_callee = answer_local_bye(&p.callee);
        let to_caller = answer_local_bye(&p.caller);
        assert_eq!(to_callee.header("call-id").as_deref(), Some(id.as_str()));
        assert_eq!(to_caller.header("call-id").as_deref(), Some(id.as_str()));
        // The dialog module's timer ticks once a second: the call ends
        // between 1 and 2 s after the answer.
        let lines = n.lines(1);
        assert!(
            lines == vec![line(&id, 1, "0.05")] || lines == vec![line(&id, 2, "0.10")],
            "{lines:?}"
        );
        let cdrs = n.cdrs_agree_with(&lines);
        assert_eq!(cdrs[0]["hangup"], "kamailio");
        assert_eq!(n.open_bills(), "0");
    });
}

#[test]
fn a_call_ended_by_dlg_terminate_is_billed_once_in_its_direction() {
    both_backends(|redis| {
        let n = node(redis, &["DIALOG"]);
        let p = Parties::new();
        let id = format!("terminated-{redis}");
        let (call, invite, _) = answer(&n.k, &p, &id);
        // A target refresh from the callee first (it used to start a second
        // bill, billed again by the BYE to the other side).
        callee_send(&n.k, &p, &invite, "INVITE", 2);
        let reinvite = p.caller.expect_request("INVITE");
        p.caller.reply(&reinvite, 200, "OK", "unused");
        p.callee.expect_reply(200, "INVITE");
        std::thread::sleep(Duration::from_millis(1100));
        let (_, out) = kamcmd(
            &n.ctl,
            &["dlg.terminate_dlg", &id, &call.from_tag, "callee-tag"],
        );
        answer_local_bye(&p.callee);
        answer_local_bye(&p.caller);
        let lines = n.lines(1);
        assert_eq!(
            lines,
            vec![line(&id, 1, "0.05")],
            "{out}\n{}",
            n.k.log_text()
        );
        n.cdrs_agree_with(&lines);
        // A late BYE of either party bills nothing more.
        p.caller
            .send(n.k.addr, &call.in_dialog(&p.caller, "BYE", 5));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(billing_lines(&n.k.log_text()).len(), 1);
    });
}

#[test]
fn with_bind_source_a_side_must_send_from_where_it_was_seen() {
    both_backends(|redis| {
        let n = node(redis, &["BIND_SOURCE"]);
        let p = Parties::new();
        let id = format!("bound-{redis}");
        let (call, _, _) = answer(&n.k, &p, &id);
        // Someone who learned the caller's token, tags and Call-ID, sending
        // from another address, cannot hang the call up.
        let elsewhere = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
        elsewhere
            .send_to(call.in_dialog(&p.caller, "BYE", 2).as_bytes(), n.k.addr)
            .unwrap();
        p.callee.expect_silence(Duration::from_millis(400));
        assert!(n.k.log_text().contains("does not fit this request"));
        assert_eq!(n.open_bills(), "1");
        // The caller itself can.
        std::thread::sleep(Duration::from_millis(700));
        caller_bye(&n.k, &p, &call);
        let lines = n.lines(1);
        assert_eq!(lines, vec![line(&id, 1, "0.05")]);
        n.cdrs_agree_with(&lines);
    });
}

#[test]
fn with_mask_callid_kamailio_ends_the_call_with_each_sides_own_call_id() {
    both_backends(|redis| {
        let n = node(redis, &["DIALOG", "MASK_CALLID"]);
        let p = Parties::new();
        let id = format!("masked-end-{redis}");
        let (call, invite, _) = answer(&n.k, &p, &id);
        let callee_call_id = invite.header("call-id").unwrap();
        assert_ne!(callee_call_id, id);
        std::thread::sleep(Duration::from_millis(1100));
        kamcmd(
            &n.ctl,
            &["dlg.terminate_dlg", &id, &call.from_tag, "callee-tag"],
        );
        let to_callee = answer_local_bye(&p.callee);
        let to_caller = answer_local_bye(&p.caller);
        assert_eq!(to_callee.header("call-id"), Some(callee_call_id));
        assert_eq!(to_caller.header("call-id").as_deref(), Some(id.as_str()));
        let lines = n.lines(1);
        assert_eq!(lines, vec![line(&id, 1, "0.05")]);
        n.cdrs_agree_with(&lines);
    });
}

/// The hostile twin of the test above: the store is gone when Kamailio
/// ends the call. topos_request() cannot map the BYE to the callee side,
/// so it is not sent (fail closed, the config drops it): the callee side
/// never sees the caller's Call-ID.
#[test]
fn with_mask_callid_and_the_store_down_kamailio_never_sends_the_callers_call_id() {
    // Sealed tokens: the callee's Call-ID is the deterministic mask of the
    // caller's, made without the store: the dialog module's BYE reaches
    // the callee with the Call-ID it knows.
    let mut n = node(true, &["DIALOG", "MASK_CALLID"]);
    let p = Parties::new();
    let id = "masked-end-store-down-sealed";
    let (call, invite, _) = answer(&n.k, &p, id);
    let callee_call_id = invite.header("call-id").unwrap();
    assert_ne!(callee_call_id, id);
    n._redis.as_mut().unwrap().stop();
    kamcmd(
        &n.ctl,
        &["dlg.terminate_dlg", id, &call.from_tag, "callee-tag"],
    );
    let bye = p.callee.expect_request("BYE");
    assert_eq!(bye.header("call-id"), Some(callee_call_id), "{}", bye.text);

    // Stored tokens: the mapping is in the store; with the store down the
    // BYE to the callee is not sent rather than sent with the caller's
    // Call-ID.
    let mut n = node(true, &["DIALOG", "MASK_CALLID", "TOKEN_MODE=\"stored\""]);
    let p = Parties::new();
    let id = "masked-end-store-down";
    let (call, invite, _) = answer(&n.k, &p, id);
    assert_ne!(invite.header("call-id").as_deref(), Some(id));
    n._redis.as_mut().unwrap().stop();
    kamcmd(
        &n.ctl,
        &["dlg.terminate_dlg", id, &call.from_tag, "callee-tag"],
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while let Some(m) = p
        .callee
        .recv_within(deadline.saturating_duration_since(Instant::now()))
    {
        assert_ne!(
            m.header("call-id").as_deref(),
            Some(id),
            "the callee side got the caller's Call-ID:\n{}",
            m.text
        );
    }
    let log = n.k.log_text();
    assert!(
        log.contains("topos_request: dialog storage unavailable"),
        "{log}"
    );
}
