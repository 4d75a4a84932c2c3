//! End to end: the built topos_rs.so inside a real kamailio, SIP peers on
//! 127.0.0.1, assertions on the exact messages each peer receives.

mod common;

use common::kamailio::Kamailio;
use common::sip::{requirement_vias, via_key, Call, Msg, Peer};
use std::time::Duration;

const EXAMPLE: &str = "cfg-examples/kamailio.cfg";
const ROUTING: &str = "tests/cfg/routing.cfg";

/// The caller, the callee and a second callee (for forking).
struct Net {
    caller: Peer,
    callee: Peer,
    callee2: Peer,
}

impl Net {
    fn new() -> Net {
        Net {
            caller: Peer::new(),
            callee: Peer::new(),
            callee2: Peer::new(),
        }
    }
    fn callee2_define(&self) -> String {
        format!("CALLEE2=\"sip:second@{}\"", self.callee2.addr)
    }
}

/// A request relayed by Kamailio carries exactly one Via, Kamailio's own,
/// and nothing of the caller's side topology.
fn assert_hidden(m: &Msg, k: &Kamailio) {
    let vias = m.vias();
    assert_eq!(vias.len(), 1, "expected exactly one Via in:\n{}", m.text);
    assert!(
        vias[0].starts_with(&format!("SIP/2.0/UDP {};branch=z9hG4bK", k.addr)),
        "the only Via is not Kamailio's:\n{}",
        m.text
    );
    // Nothing of the caller's Via stack, not even the received/rport values
    // the core computes from the caller's address, reaches the callee.
    for leak in [
        "192.168.1.100",
        "10.10.10.1",
        "222.211.75.75",
        "z9hG4bK111111",
        "z9hG4bK-",
        "received=",
        "rport",
    ] {
        assert!(
            !m.text.contains(leak),
            "{leak} leaked to the callee:\n{}",
            m.text
        );
    }
    // And the message is still well-formed: every header line is name: value.
    for line in m.header_lines() {
        let name = line.split(':').next().unwrap_or("");
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "malformed header line {line:?} in:\n{}",
            m.text
        );
    }
}

/// The Via values a reply carries at the caller, reduced for comparison.
fn via_keys(m: &Msg) -> Vec<(String, Vec<String>)> {
    m.vias().iter().map(|v| via_key(v)).collect()
}

fn new_call(id: &str, user: &str, callee: &Peer) -> Call {
    let mut c = Call::new(id, &format!("sip:{user}@{}", callee.addr));
    c.upstream_vias = requirement_vias();
    c
}

/// INVITE, 100, 180, 200, ACK, BYE, 200. Returns what the caller received.
fn flow_answered(k: &Kamailio, n: &Net, id: &str, extra: &str, hidden: bool) -> Vec<Msg> {
    let mut call = new_call(id, "13545769997", &n.callee);
    call.extra_headers = extra.to_string();
    n.caller.send(k.addr, &call.invite(&n.caller));
    let inv = n.callee.expect_request("INVITE");
    if hidden {
        assert_hidden(&inv, k);
    }
    let mut seen = vec![n.caller.expect_reply(100, "INVITE")];
    n.callee.reply(&inv, 180, "Ringing", "tt1");
    seen.push(n.caller.expect_reply(180, "INVITE"));
    n.callee.reply(&inv, 200, "OK", "tt1");
    let ok = n.caller.expect_reply(200, "INVITE");
    call.confirm(&ok);
    seen.push(ok);
    n.caller.send(k.addr, &call.in_dialog(&n.caller, "ACK", 1));
    let ack = n.callee.expect_request("ACK");
    n.caller.send(k.addr, &call.in_dialog(&n.caller, "BYE", 2));
    let bye = n.callee.expect_request("BYE");
    if hidden {
        assert_hidden(&ack, k);
        assert_hidden(&bye, k);
    }
    n.callee.reply(&bye, 200, "OK", "tt1");
    seen.push(n.caller.expect_reply(200, "BYE"));
    seen
}

/// INVITE answered 486: Kamailio ACKs the callee, relays the 486, absorbs
/// the caller's ACK.
fn flow_busy(k: &Kamailio, n: &Net, id: &str, hidden: bool) -> Vec<Msg> {
    let call = new_call(id, "13545769997", &n.callee);
    n.caller.send(k.addr, &call.invite(&n.caller));
    let inv = n.callee.expect_request("INVITE");
    let mut seen = vec![n.caller.expect_reply(100, "INVITE")];
    n.callee.reply(&inv, 486, "Busy Here", "tt2");
    let ack = n.callee.expect_request("ACK");
    assert_eq!(
        ack.vias()[0],
        inv.vias()[0],
        "Kamailio's ACK for the 486 reuses the INVITE's Via"
    );
    if hidden {
        assert_hidden(&ack, k);
    }
    seen.push(n.caller.expect_reply(486, "INVITE"));
    n.caller.send(k.addr, &call.ack_negative(&n.caller));
    n.callee.expect_silence(Duration::from_millis(300));
    seen
}

/// INVITE, 180, then the caller cancels: 200 to CANCEL, 487.
fn flow_cancelled(k: &Kamailio, n: &Net, id: &str, hidden: bool) -> Vec<Msg> {
    let call = new_call(id, "13545769997", &n.callee);
    n.caller.send(k.addr, &call.invite(&n.caller));
    let inv = n.callee.expect_request("INVITE");
    let mut seen = vec![n.caller.expect_reply(100, "INVITE")];
    n.callee.reply(&inv, 180, "Ringing", "tt3");
    seen.push(n.caller.expect_reply(180, "INVITE"));
    n.caller.send(k.addr, &call.cancel(&n.caller));
    seen.push(n.caller.expect_reply(200, "CANCEL"));
    let cancel = n.callee.expect_request("CANCEL");
    if hidden {
        assert_hidden(&cancel, k);
    }
    assert_eq!(
        cancel.vias()[0],
        inv.vias()[0],
        "CANCEL matches the INVITE's branch"
    );
    n.callee.reply(&cancel, 200, "OK", "tt3");
    n.callee.reply(&inv, 487, "Request Terminated", "tt3");
    let ack = n.callee.expect_request("ACK");
    if hidden {
        assert_hidden(&ack, k);
    }
    seen.push(n.caller.expect_reply(487, "INVITE"));
    n.caller.send(k.addr, &call.ack_negative(&n.caller));
    seen
}

/// A callee that never answers: Kamailio's own 408 (tm fr_timer).
fn flow_timeout(k: &Kamailio, n: &Net, id: &str) -> Vec<Msg> {
    let silent = Peer::new();
    let call = new_call(id, "13545769997", &silent);
    n.caller.send(k.addr, &call.invite(&n.caller));
    let _ = silent.expect_request("INVITE");
    let seen = vec![
        n.caller.expect_reply(100, "INVITE"),
        n.caller.expect_reply(408, "INVITE"),
    ];
    n.caller.send(k.addr, &call.ack_negative(&n.caller));
    seen
}

/// Parallel forking: both callees ring, the first answers, the second is
/// cancelled by Kamailio.
fn flow_parallel(k: &Kamailio, n: &Net, id: &str, hidden: bool) -> Vec<Msg> {
    let call = new_call(id, "fork", &n.callee);
    n.caller.send(k.addr, &call.invite(&n.caller));
    let inv1 = n.callee.expect_request("INVITE");
    let inv2 = n.callee2.expect_request("INVITE");
    if hidden {
        assert_hidden(&inv1, k);
        assert_hidden(&inv2, k);
    }
    assert_ne!(
        inv1.vias()[0],
        inv2.vias()[0],
        "each branch has its own Via branch"
    );
    let mut seen = vec![n.caller.expect_reply(100, "INVITE")];
    n.callee2.reply(&inv2, 180, "Ringing", "b2");
    seen.push(n.caller.expect_reply(180, "INVITE"));
    n.callee.reply(&inv1, 200, "OK", "b1");
    seen.push(n.caller.expect_reply(200, "INVITE"));
    let cancel = n.callee2.expect_request("CANCEL");
    if hidden {
        assert_hidden(&cancel, k);
    }
    n.callee2.reply(&cancel, 200, "OK", "b2");
    n.callee2.reply(&inv2, 487, "Request Terminated", "b2");
    let ack2 = n.callee2.expect_request("ACK");
    if hidden {
        assert_hidden(&ack2, k);
    }
    seen
}

/// Serial forking: the first callee is busy, failure_route tries the second.
fn flow_serial(k: &Kamailio, n: &Net, id: &str, hidden: bool) -> Vec<Msg> {
    let call = new_call(id, "serial", &n.callee);
    n.caller.send(k.addr, &call.invite(&n.caller));
    let inv1 = n.callee.expect_request("INVITE");
    let mut seen = vec![n.caller.expect_reply(100, "INVITE")];
    n.callee.reply(&inv1, 486, "Busy Here", "s1");
    let ack1 = n.callee.expect_request("ACK");
    let inv2 = n.callee2.expect_request("INVITE");
    if hidden {
        assert_hidden(&inv1, k);
        assert_hidden(&ack1, k);
        assert_hidden(&inv2, k);
    }
    n.callee2.reply(&inv2, 200, "OK", "s2");
    seen.push(n.caller.expect_reply(200, "INVITE"));
    seen
}

#[test]
fn requirement_example_callee_sees_only_kamailios_via() {
    let k = Kamailio::start(EXAMPLE, &[]);
    let n = Net::new();
    let call = new_call("c12345abcd", "13545769997", &n.callee);
    let invite = call.invite(&n.caller);
    assert_eq!(invite.matches("\r\nVia: ").count(), 4);
    n.caller.send(k.addr, &invite);
    let inv = n.callee.expect_request("INVITE");
    assert_hidden(&inv, &k);
    assert_eq!(inv.headers("via").len(), 1);
    // Everything else arrives as Kamailio relays it without hiding.
    assert_eq!(inv.header("call-id").as_deref(), Some("c12345abcd"));
    assert_eq!(inv.header("max-forwards").as_deref(), Some("69"));
    assert!(inv
        .header("record-route")
        .unwrap()
        .contains(&k.addr.to_string()));
}

#[test]
fn example_config_hides_ack_bye_cancel_and_generated_ack() {
    let k = Kamailio::start(EXAMPLE, &[]);
    let n = Net::new();
    let seen = flow_answered(&k, &n, "ex-answered", "", true);
    // The caller gets back its whole stack with received/rport filled in.
    let ok = &seen[2];
    assert_eq!(
        ok.vias(),
        vec![
            // The core puts received= right after sent-by and updates the
            // rport the caller sent in place.
            format!(
                "SIP/2.0/UDP {};received=127.0.0.1;branch=z9hG4bK-inv-ex-answered;rport={}",
                n.caller.addr,
                n.caller.port()
            ),
            "SIP/2.0/UDP 192.168.1.100:5060;branch=z9hG4bK111111".to_string(),
            "SIP/2.0/UDP 10.10.10.1:5060;branch=z9hG4bK222222".to_string(),
            "SIP/2.0/UDP 222.211.75.75:5060;branch=z9hG4bK333333".to_string(),
        ]
    );
    flow_busy(&k, &n, "ex-busy", true);
    flow_cancelled(&k, &n, "ex-cancel", true);
}

#[test]
fn replies_carry_the_same_vias_as_without_topos() {
    let n = Net::new();
    let callee2 = n.callee2_define();
    let plain = Kamailio::start(ROUTING, &["WITHOUT_TOPOS", &callee2]);
    let hidden = Kamailio::start(ROUTING, &[&callee2]);

    type Flow = fn(&Kamailio, &Net, &str, bool) -> Vec<Msg>;
    let flows: [(&str, Flow); 6] = [
        ("answered", |k, n, id, h| flow_answered(k, n, id, "", h)),
        ("busy", flow_busy),
        ("cancelled", flow_cancelled),
        ("timeout", |k, n, id, _| flow_timeout(k, n, id)),
        ("parallel", flow_parallel),
        ("serial", flow_serial),
    ];
    let mut compared = Vec::new();
    for (name, flow) in flows {
        let without = flow(&plain, &n, &format!("diff-{name}"), false);
        let with = flow(&hidden, &n, &format!("diff-{name}"), true);
        assert_eq!(without.len(), with.len(), "{name}: same number of replies");
        for (a, b) in without.iter().zip(&with) {
            assert_eq!(a.first_line(), b.first_line(), "{name}");
            assert_eq!(
                via_keys(a),
                via_keys(b),
                "{name}: {} differs\nwithout topos_rs:\n{}\nwith topos_rs:\n{}",
                a.first_line(),
                a.text,
                b.text
            );
            // A reply to the caller's CANCEL carries the CANCEL's one Via.
            let expected = if b.cseq_method() == "CANCEL" { 1 } else { 4 };
            assert_eq!(
                b.vias().len(),
                expected,
                "{name}: the caller's stack is complete"
            );
            compared.push(format!("{name} {}", b.first_line()));
        }
    }
    // Every reply kind the issue names was compared.
    for kind in ["100", "180", "200 OK", "486", "487", "408"] {
        assert!(
            compared
                .iter()
                .any(|c| c.contains(&format!("SIP/2.0 {kind}"))),
            "{kind} not compared: {compared:?}"
        );
    }
}

#[test]
fn core_and_named_reply_routes_both_restore() {
    let n = Net::new();
    let k = Kamailio::start(ROUTING, &[&n.callee2_define()]);
    // Each route appends X-Topos-Reply when topos_reply() returned true.
    let core = flow_answered(&k, &n, "route-core", "", true);
    for m in &core[1..3] {
        assert_eq!(m.headers("x-topos-reply"), vec!["core"], "{}", m.text);
        assert_eq!(m.vias().len(), 4);
    }
    let named = flow_answered(&k, &n, "route-named", "X-Named-Reply: 1\r\n", true);
    for m in &named[1..3] {
        assert_eq!(
            m.headers("x-topos-reply"),
            vec!["core", "named"],
            "{}",
            m.text
        );
        assert_eq!(via_keys(m)[1..], via_keys(&core[1])[1..]);
        assert_eq!(m.vias().len(), 4);
    }
}

#[test]
fn topos_reply_for_an_unhidden_transaction_is_a_no_op() {
    let n = Net::new();
    let k = Kamailio::start(ROUTING, &[&n.callee2_define()]);
    let mut call = new_call("unhidden", "13545769997", &n.callee);
    call.extra_headers = "X-No-Hide: 1\r\n".into();
    n.caller.send(k.addr, &call.invite(&n.caller));
    let inv = n.callee.expect_request("INVITE");
    assert_eq!(inv.vias().len(), 5, "not hidden: Kamailio's Via plus four");
    n.callee.reply(&inv, 180, "Ringing", "u1");
    let ringing = n.caller.expect_reply(180, "INVITE");
    assert_eq!(ringing.header("x-topos-reply").as_deref(), Some("core"));
    assert_eq!(ringing.vias().len(), 4);
    assert_eq!(ringing.text.matches("z9hG4bK111111").count(), 1);
}
