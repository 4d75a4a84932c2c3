//! Issue 13, end to end against the real Kamailio: hostile input never
//! stops the server, never makes a message leave unhidden, and never
//! creates state for what Kamailio did not create itself. Every peer sends
//! IP literals on 127.0.0.1 only. Each test failed on the code before the
//! fixes it covers.

mod common;

use common::calls::{answer, Parties};
use common::ctl::{field, kamcmd, still_alive};
use common::kamailio::{scratch_dir, Kamailio};
use common::sip::{requirement_vias, Call, Msg, Peer};
use std::time::{Duration, Instant};

const EXAMPLE: &str = "cfg-examples/kamailio.cfg";
const ROUTING: &str = "tests/cfg/routing.cfg";
/// token_mode "stored", for what only stored tokens do.
const STORED: &str = "TOKEN_MODE=\"stored\"";
/// A callee-side proxy that must never be shown to the caller side.
const CALLEE_PROXY: &str = "10.88.0.1";

/// Nothing of the callee side (its address, its proxy) in what the caller got.
fn assert_callee_hidden(m: &Msg, callee: &Peer) {
    assert!(
        !m.text.contains(&callee.addr.to_string()) && !m.text.contains(CALLEE_PROXY),
        "the caller saw the callee side:\n{}",
        m.text
    );
}

/// A reply of the callee to `req` with its real Contact and its proxy's
/// Record-Route; `extra` (which may be broken) ends the header section.
fn callee_reply(req: &Msg, status: &str, to_tag: Option<&str>, extra: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for v in req.headers("via") {
        out += &format!("Via: {v}\r\n");
    }
    out += &format!("Record-Route: <sip:{CALLEE_PROXY};lr>\r\n");
    for rr in req.headers("record-route") {
        out += &format!("Record-Route: {rr}\r\n");
    }
    out += &format!("From: {}\r\n", req.header("from").unwrap());
    match to_tag {
        Some(t) => out += &format!("To: {};tag={t}\r\n", req.header("to").unwrap()),
        None => out += &format!("To: {}\r\n", req.header("to").unwrap()),
    }
    out += &format!("Call-ID: {}\r\n", req.header("call-id").unwrap());
    out += &format!("CSeq: {}\r\n", req.header("cseq").unwrap());
    out += extra;
    out
}

#[test]
fn an_ack_with_a_3kb_call_id_or_cseq_does_not_stop_kamailio() {
    let k = Kamailio::start(EXAMPLE, &[]);
    let a = Peer::new();
    let long_id = "c".repeat(3000);
    let long_cseq = "9".repeat(3000);
    for (call_id, cseq) in [(long_id.as_str(), "1"), ("short", long_cseq.as_str())] {
        for to in ["<sip:b@127.0.0.1>;tag=t1", "<sip:b@127.0.0.1>"] {
            a.send(
                k.addr,
                &format!(
                    "ACK sip:b@127.0.0.1:9 SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKack\r\n\
                     Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=f1\r\nTo: {to}\r\n\
                     Call-ID: {call_id}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n",
                    a.addr
                ),
            );
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    still_alive(&k);
}

#[test]
fn a_request_whose_vias_kamailio_accepts_gets_its_stack_back_and_sees_no_callee() {
    let k = Kamailio::start(EXAMPLE, &[]);
    let p = Parties::new();
    let branches: [&[u8]; 2] = [b"z9hG4bK-gt>1", b"z9hG4bK-ff\xff1"];
    for (i, branch) in branches.iter().enumerate() {
        let mut call = Call::new(
            &format!("odd-via-{i}"),
            &format!("sip:13545769997@{}", p.callee.addr),
        );
        call.upstream_vias = requirement_vias();
        let text = call.invite(&p.caller);
        let mut bytes = text
            .replacen(&call.invite_branch(), "BRANCH", 1)
            .into_bytes();
        let at = bytes.windows(6).position(|w| w == b"BRANCH").unwrap();
        bytes.splice(at..at + 6, branch.iter().copied());
        p.caller.sock.send_to(&bytes, k.addr).unwrap();
        let inv = p.callee.expect_request("INVITE");
        assert_eq!(inv.vias().len(), 1, "{}", inv.text);
        let ok = callee_reply(
            &inv,
            "200 OK",
            Some("t1"),
            &format!(
                "Contact: <sip:callee@{}>\r\nContent-Length: 0\r\n\r\n",
                p.callee.addr
            ),
        );
        p.callee.send(k.addr, &ok);
        let got = p.caller.expect_reply(200, "INVITE");
        assert_callee_hidden(&got, &p.callee);
        assert_eq!(
            got.vias().len(),
            4,
            "the caller's own stack came back:\n{}",
            got.text
        );
    }
}

#[test]
fn malformed_replies_never_reach_the_caller_unhidden() {
    let k = Kamailio::start(EXAMPLE, &[]);
    let p = Parties::new();
    let contact = format!("<sip:callee@{}>", p.callee.addr);
    let cases: Vec<(&str, Option<&str>, String)> = vec![
        ("no-colon", Some("t1"), format!("Contact: {contact}\r\nThis line has no colon\r\nContent-Length: 0\r\n\r\n")),
        ("bare-cr", Some("t1"), format!("Contact: {contact}\rRecord-Route: <sip:{CALLEE_PROXY};lr>\r\nContent-Length: 0\r\n\r\n")),
        ("no-to-tag", None, format!("Contact: {contact}\r\nContent-Length: 0\r\n\r\n")),
        ("empty-contact", Some("t1"), format!("Contact: <>, {contact}\r\nContent-Length: 0\r\n\r\n")),
        ("star-contact", Some("t1"), format!("Contact: *, {contact}\r\nContent-Length: 0\r\n\r\n")),
        ("no-blank-line", Some("t1"), format!("Contact: {contact}\r\nContent-Length: 0\r\n")),
        // A bare LF among CRLF lines: the end of the headers for one
        // parser (what follows is a body), a mere line end for another.
        ("bare-lf-blank", Some("t1"), format!("\nContact: {contact}\r\nContent-Length: 0\r\n\r\n")),
    ];
    for (name, tag, extra) in &cases {
        let mut call = Call::new(
            &format!("bad-reply-{name}"),
            &format!("sip:13545769997@{}", p.callee.addr),
        );
        call.upstream_vias = requirement_vias();
        p.caller.send(k.addr, &call.invite(&p.caller));
        let inv = p.callee.expect_request("INVITE");
        p.callee
            .send(k.addr, &callee_reply(&inv, "200 OK", *tag, extra));
        // Whatever reaches the caller (a hidden or reduced 200, or nothing)
        // carries nothing of the callee side.
        while let Some(m) = p.caller.recv_within(Duration::from_millis(500)) {
            assert_callee_hidden(&m, &p.callee);
        }
    }
    still_alive(&k);
}

#[test]
fn final_failures_and_replies_outside_dialogs_show_nothing_of_the_callee_side() {
    let k = Kamailio::start(EXAMPLE, &[]);
    let p = Parties::new();
    let contact = format!(
        "Contact: <sip:callee@{}>\r\nContent-Length: 0\r\n\r\n",
        p.callee.addr
    );
    for status in ["302 Moved Temporarily", "486 Busy Here", "603 Decline"] {
        let mut call = Call::new(
            &format!("fail-{}", &status[..3]),
            &format!("sip:13545769997@{}", p.callee.addr),
        );
        call.upstream_vias = requirement_vias();
        p.caller.send(k.addr, &call.invite(&p.caller));
        let inv = p.callee.expect_request("INVITE");
        p.callee
            .send(k.addr, &callee_reply(&inv, status, Some("t1"), &contact));
        let got = p.caller.expect(&format!("a {status}"), |m| {
            m.status() == status[..3].parse().ok()
        });
        assert_callee_hidden(&got, &p.callee);
        assert!(got.header("contact").is_none(), "{}", got.text);
        p.caller.send(k.addr, &call.ack_negative(&p.caller));
    }
    // 487 after CANCEL.
    let mut call = Call::new("fail-487", &format!("sip:13545769997@{}", p.callee.addr));
    call.upstream_vias = requirement_vias();
    p.caller.send(k.addr, &call.invite(&p.caller));
    let inv = p.callee.expect_request("INVITE");
    // tm sends CANCEL downstream only after a provisional reply.
    p.callee.send(
        k.addr,
        &callee_reply(&inv, "180 Ringing", Some("t1"), &contact),
    );
    let ringing = p.caller.expect_reply(180, "INVITE");
    assert_callee_hidden(&ringing, &p.callee);
    p.caller.send(k.addr, &call.cancel(&p.caller));
    let cancel = p.callee.expect_request("CANCEL");
    p.callee.reply(&cancel, 200, "OK", "t1");
    p.callee.send(
        k.addr,
        &callee_reply(&inv, "487 Request Terminated", Some("t1"), &contact),
    );
    let got = p.caller.expect_reply(487, "INVITE");
    assert_callee_hidden(&got, &p.callee);
    // OPTIONS outside a dialog: the reply shows no Record-Route or Contact
    // of the callee side.
    let options = format!(
        "OPTIONS sip:bob@{} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKopt1\r\nMax-Forwards: 70\r\n\
         From: <sip:a@example.com>;tag=o1\r\nTo: <sip:bob@example.com>\r\nCall-ID: opt-1\r\n\
         CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        p.callee.addr, p.caller.addr
    );
    p.caller.send(k.addr, &options);
    let req = p.callee.expect_request("OPTIONS");
    p.callee
        .send(k.addr, &callee_reply(&req, "200 OK", Some("o2"), &contact));
    let got = p.caller.expect_reply(200, "OPTIONS");
    assert_callee_hidden(&got, &p.callee);
}

fn with_ctl(tag: &str, extra: &[&str]) -> (Kamailio, std::path::PathBuf) {
    let socket = scratch_dir(tag).join("ctl.sock");
    let mut defines = vec![format!("CTL_SOCKET=\"unix:{}\"", socket.display())];
    defines.extend(extra.iter().map(|d| d.to_string()));
    let refs: Vec<&str> = defines.iter().map(String::as_str).collect();
    (Kamailio::start(ROUTING, &refs), socket)
}

#[test]
fn stray_and_forged_200s_create_no_record() {
    let (k, socket) = with_ctl("strays", &[]);
    let attacker = Peer::new();
    let big_from = format!("<sip:{}@example.com>;tag=f", "9".repeat(30_000));
    for i in 0..300 {
        let from = if i % 10 == 0 {
            big_from.clone()
        } else {
            format!("<sip:a{i}@example.com>;tag=f{i}")
        };
        attacker.send(
            k.addr,
            &format!(
                "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKstray{i}\r\nFrom: {from}\r\n\
                 To: <sip:b@example.com>;tag=t{i}\r\nCall-ID: stray-{i}\r\nCSeq: 1 INVITE\r\n\
                 Contact: <sip:b@127.0.0.1:9>\r\nContent-Length: 0\r\n\r\n",
                k.addr
            ),
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let records = kamcmd(&socket, &["topos_rs.records"]).1;
    assert_eq!(field(&records, "bills"), "0", "{records}");
    assert_eq!(field(&records, "dialogs"), "0", "{records}");
    // A real call is still answered and billed.
    let p = Parties::new();
    let (call, _, _) = answer(&k, &p, "after-strays");
    let records = kamcmd(&socket, &["topos_rs.records"]).1;
    assert_eq!(field(&records, "bills"), "1", "{records}");
    drop(call);
}

/// An in-dialog request of the caller along the dialog it learned.
fn caller_sends(k: &Kamailio, p: &Parties, call: &Call, method: &str, cseq: u32) {
    p.caller
        .send(k.addr, &call.in_dialog(&p.caller, method, cseq));
}

#[test]
fn an_ended_dialog_stays_ended_and_is_counted_once() {
    // Stored tokens: a sealed token routes until it expires.
    let (k, socket) = with_ctl("ended", &["NO_BILLING", STORED]);
    let p = Parties::new();
    let (call, _, _) = answer(&k, &p, "ends-once");
    caller_sends(&k, &p, &call, "BYE", 2);
    let bye = p.callee.expect_request("BYE");
    p.callee.reply(&bye, 200, "OK", "callee-tag");
    p.caller.expect_reply(200, "BYE");
    // Another BYE in the grace time (re-sent, e.g. with credentials) still
    // reaches the callee ...
    for cseq in 3..8 {
        caller_sends(&k, &p, &call, "BYE", cseq);
        let again = p.callee.expect_request("BYE");
        p.callee.reply(&again, 200, "OK", "callee-tag");
        p.caller.expect_reply(200, "BYE");
    }
    // ... but nothing else does: the dialog is over.
    let started = Instant::now();
    caller_sends(&k, &p, &call, "INFO", 9);
    p.caller.expect_reply(404, "INFO");
    p.callee.expect_silence(Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(k.log_text().contains("has ended"), "{}", k.log_text());
    let stats = kamcmd(&socket, &["topos_rs.stats"]).1;
    assert_eq!(field(&stats, "dialogs_created"), "1", "{stats}");
    assert_eq!(field(&stats, "dialogs_ended"), "1", "{stats}");
    assert_eq!(field(&stats, "dialogs_active"), "0", "{stats}");
}

#[test]
fn a_full_store_refuses_new_dialogs_and_keeps_routing_the_others() {
    // Stored tokens: sealed dialogs need no store to be set up.
    let k = Kamailio::start(
        ROUTING,
        &["LMDB_MAP_SIZE=1", "FILL_STORE", "NO_BILLING", STORED],
    );
    let p = Parties::new();
    let (call, _, _) = answer(&k, &p, "before-full");
    // Fill the 1 MiB map with diagnostic records until a write fails.
    let filler = Peer::new();
    let value = "v".repeat(4000);
    let mut stored = 0;
    for i in 0..600 {
        filler.send(
            k.addr,
            &format!(
                "MESSAGE sip:{} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKfill{i}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:f@example.com>;tag=f{i}\r\nTo: <sip:s@example.com>\r\n\
                 Call-ID: fill-{i}\r\nCSeq: 1 MESSAGE\r\nX-Key: k{i}\r\nX-Fill: {value}\r\n\
                 Content-Length: 0\r\n\r\n",
                k.addr, filler.addr
            ),
        );
        let reply = filler.expect("a reply to MESSAGE", |m| m.cseq_method() == "MESSAGE");
        if reply.status() != Some(200) {
            break;
        }
        stored += 1;
    }
    assert!(
        stored > 10 && stored < 600,
        "{stored} records filled the map"
    );
    // A new call is refused at once, with a clear line; nothing reaches the callee.
    let mut new_call = Call::new("after-full", &format!("sip:13545769997@{}", p.callee.addr));
    new_call.upstream_vias = requirement_vias();
    p.caller.send(k.addr, &new_call.invite(&p.caller));
    p.caller.expect_reply(500, "INVITE");
    p.callee.expect_silence(Duration::from_millis(300));
    let log = k.log_text();
    assert!(log.contains("refused a new dialog"), "{log}");
    assert!(log.contains("storage full"), "{log}");
    // The call set up before still routes: an INFO, then the BYE.
    caller_sends(&k, &p, &call, "INFO", 2);
    let info = p.callee.expect_request("INFO");
    p.callee.reply(&info, 200, "OK", "callee-tag");
    p.caller.expect_reply(200, "INFO");
    caller_sends(&k, &p, &call, "BYE", 3);
    let bye = p.callee.expect_request("BYE");
    p.callee.reply(&bye, 200, "OK", "callee-tag");
    p.caller.expect_reply(200, "BYE");
    still_alive(&k);
}

/// A reply the tm callback could only reduce is done with: the
/// transaction's own reply route calling topos_reply() (routing.cfg's
/// onreply_route[NAMED]) must not hide it a second time (no error, no
/// second Via stack, nothing of the callee side).
#[test]
fn a_reduced_reply_is_not_hidden_again_in_the_named_reply_route() {
    let k = Kamailio::start(ROUTING, &[]);
    let p = Parties::new();
    let mut call = Call::new(
        "reduced-named",
        &format!("sip:13545769997@{}", p.callee.addr),
    );
    call.upstream_vias = requirement_vias();
    call.extra_headers = "X-Named-Reply: 1\r\n".into();
    p.caller.send(k.addr, &call.invite(&p.caller));
    let inv = p.callee.expect_request("INVITE");
    // A control byte in a header value: the reply cannot be scanned, so it
    // cannot be hidden, only reduced.
    let ok = callee_reply(
        &inv,
        "200 OK",
        Some("t1"),
        &format!(
            "Contact: <sip:callee@{}>\r\nX-Ctl: a\x01b\r\nContent-Length: 0\r\n\r\n",
            p.callee.addr
        ),
    );
    p.callee.send(k.addr, &ok);
    let got = p.caller.expect_reply(200, "INVITE");
    assert_callee_hidden(&got, &p.callee);
    assert!(got.header("contact").is_none(), "{}", got.text);
    assert_eq!(
        got.vias().len(),
        4,
        "the caller's stack, once:\n{}",
        got.text
    );
    let log = k.log_text();
    assert!(log.contains("could not be hidden"), "{log}");
    assert!(
        !log.contains("topos_reply: "),
        "topos_reply() failed:\n{log}"
    );
}

// ---------------------------------------------------------------------
// Issue 24: no request of a hidden transaction or dialog leaves unhidden,
// whatever path the script takes to the relay.

/// A test config that reaches t_relay() / forward() without
/// topos_request() on purpose (see its header).
const CARELESS: &str = "tests/cfg/careless.cfg";

/// A peer on a loopback address no call uses (a "third address"):
/// anything Kamailio sends it was relayed where no call goes.
fn third_party() -> Peer {
    let sock = std::net::UdpSocket::bind("127.0.0.9:0").expect("binding 127.0.0.9");
    let addr = sock.local_addr().unwrap();
    Peer { sock, addr }
}

/// Neither peer receives anything within `d` (the first waits, the others
/// are checked right after).
fn nothing_reaches(peers: &[&Peer], d: Duration) {
    for (i, p) in peers.iter().enumerate() {
        p.expect_silence(if i == 0 { d } else { Duration::from_millis(50) });
    }
}

/// The To-tag of a message.
fn to_tag(m: &Msg) -> String {
    let to = m.header("to").unwrap();
    let tag = to.split(";tag=").nth(1).expect("a To-tag");
    tag.split(';').next().unwrap().to_string()
}

/// A call the callee refuses: INVITE (with the requirement's upstream
/// Vias), 180, 486. The caller has the 486; the callee has Kamailio's own
/// ACK for it (one Via). The returned call knows the To-tag.
fn refused_call(k: &Kamailio, p: &Parties, id: &str) -> Call {
    let mut call = Call::new(id, &format!("sip:13545769997@{}", p.callee.addr));
    call.upstream_vias = requirement_vias();
    p.caller.send(k.addr, &call.invite(&p.caller));
    let inv = p.callee.expect_request("INVITE");
    p.callee.reply(&inv, 180, "Ringing", "callee-tag");
    p.caller.expect_reply(180, "INVITE");
    p.callee.reply(&inv, 486, "Busy Here", "callee-tag");
    let busy = p.caller.expect_reply(486, "INVITE");
    let ack = p.callee.expect_request("ACK");
    assert_eq!(ack.vias().len(), 1, "Kamailio's own ACK:\n{}", ack.text);
    call.to_tag = Some(to_tag(&busy));
    call
}

/// An answered call (INVITE with the requirement's upstream Vias, 200); the
/// caller has learned the dialog, nobody has ACKed yet.
fn answered_call(k: &Kamailio, p: &Parties, id: &str) -> Call {
    let mut call = Call::new(id, &format!("sip:13545769997@{}", p.callee.addr));
    call.upstream_vias = requirement_vias();
    p.caller.send(k.addr, &call.invite(&p.caller));
    let inv = p.callee.expect_request("INVITE");
    p.callee.reply(&inv, 200, "OK", "callee-tag");
    let ok = p.caller.expect_reply(200, "INVITE");
    call.confirm(&ok);
    call
}

/// A request of the caller's side in `call`'s dialog (Call-ID, tags) as an
/// attacker builds it: its own branch, any Request-URI, the caller's whole
/// Via stack, the Route given (none if empty).
fn crafted(call: &Call, caller: &Peer, method: &str, cseq: u32, ruri: &str, extra: &str) -> String {
    let mut out = format!("{method} {ruri} SIP/2.0\r\n");
    out += &format!(
        "Via: SIP/2.0/UDP {};branch=z9hG4bK-crafted-{method}-{ruri};rport\r\n",
        caller.addr
    );
    for v in &call.upstream_vias {
        out += &format!("Via: {v}\r\n");
    }
    out += "Max-Forwards: 70\r\n";
    out += &format!(
        "From: <sip:01089672389@127.0.0.1>;tag={}\r\n",
        call.from_tag
    );
    match &call.to_tag {
        Some(t) => out += &format!("To: <sip:13545769997@127.0.0.1>;tag={t}\r\n"),
        None => out += "To: <sip:13545769997@127.0.0.1>\r\n",
    }
    out += &format!("Call-ID: {}\r\nCSeq: {cseq} {method}\r\n", call.call_id);
    out += extra;
    out += "Content-Length: 0\r\n\r\n";
    out
}

/// The issue's attack, one packet: after a refused call the caller sends
/// an ACK with the call's Call-ID, tags and CSeq but another branch, to the
/// callee's address or to a third one, without Route. Before the fix it
/// left with the caller's whole Via stack; now it goes nowhere.
#[test]
fn an_ack_after_a_refused_call_with_another_branch_is_never_relayed() {
    let k = Kamailio::start(EXAMPLE, &[]);
    let p = Parties::new();
    let third = third_party();
    let call = refused_call(&k, &p, "refused-ack");
    for ruri in [
        format!("sip:13545769997@{}", p.callee.addr),
        format!("sip:anyone@{}", third.addr),
    ] {
        p.caller
            .send(k.addr, &crafted(&call, &p.caller, "ACK", 1, &ruri, ""));
    }
    nothing_reaches(&[&p.callee, &third], Duration::from_millis(1000));
    let log = k.log_text();
    assert!(
        log.contains("topos_request: refused: in-dialog request without a topos_rs token"),
        "{log}"
    );
    still_alive(&k);
}

/// The ACK a refused call's caller sends with the INVITE's own branch is
/// absorbed by tm as before: it reaches nobody and tm stops retransmitting
/// the 486 (the first retransmission is due 0.5 s after it).
#[test]
fn the_same_branch_ack_after_a_refused_call_is_still_absorbed() {
    let k = Kamailio::start(EXAMPLE, &[]);
    let p = Parties::new();
    let call = refused_call(&k, &p, "absorbed-ack");
    p.caller.send(k.addr, &call.ack_negative(&p.caller));
    nothing_reaches(&[&p.caller, &p.callee], Duration::from_millis(1800));
}

/// A script that relays without topos_request() (tests/cfg/careless.cfg):
/// acc's report_ack makes t_check_trans() match an ACK for the 2xx end to
/// end, whatever its branch and Request-URI, and the script t_relay()s it
/// at once. The module's egress check stops it.
#[test]
fn an_ack_matched_end_to_end_never_leaves_unhidden_whatever_the_script() {
    let socket = scratch_dir("careless-ack").join("ctl.sock");
    let define = format!("CTL_SOCKET=\"unix:{}\"", socket.display());
    let k = Kamailio::start(CARELESS, &[&define]);
    let p = Parties::new();
    let third = third_party();
    let call = answered_call(&k, &p, "careless-e2e-ack");
    for ruri in [
        format!("sip:anyone@{}", third.addr),
        format!("sip:13545769997@{}", p.callee.addr),
    ] {
        p.caller
            .send(k.addr, &crafted(&call, &p.caller, "ACK", 1, &ruri, ""));
    }
    nothing_reaches(&[&p.callee, &third], Duration::from_millis(1000));
    let stats = kamcmd(&socket, &["topos_rs.stats"]).1;
    assert_eq!(field(&stats, "dropped_ack_cancel"), "2", "{stats}");
    let log = k.log_text();
    assert!(
        log.contains("dropped: an ACK or CANCEL of a hidden INVITE transaction was about to leave"),
        "{log}"
    );
    still_alive(&k);
}

/// The same script ignores topos_request()'s -1 for forged or tokenless
/// in-dialog requests and relays them (t_relay(), forward()), to a third
/// address by Route or by Request-URI: none leaves; each cause is counted,
/// and logged once per process.
#[test]
fn a_refused_in_dialog_request_relayed_anyway_never_leaves() {
    let socket = scratch_dir("careless-bye").join("ctl.sock");
    let define = format!("CTL_SOCKET=\"unix:{}\"", socket.display());
    let k = Kamailio::start(CARELESS, &[&define]);
    let p = Parties::new();
    let third = third_party();
    let call = answered_call(&k, &p, "careless-bye");
    let target = call.remote_target.clone().unwrap();
    // The callee's token with a character in its middle changed: a
    // forged one.
    let at = target.find('@').unwrap() / 2 + 2;
    let ch = &target[at..at + 1];
    let forged = format!(
        "{}{}{}",
        &target[..at],
        if ch == "A" { "B" } else { "A" },
        &target[at + 1..]
    );
    let to_third = format!("Route: <sip:{};lr>\r\n", third.addr);
    let tokenless = format!("sip:anyone@{}", third.addr);
    let sent = [
        crafted(&call, &p.caller, "BYE", 2, &forged, &to_third),
        crafted(&call, &p.caller, "INFO", 3, &forged, &to_third),
        crafted(&call, &p.caller, "BYE", 4, &tokenless, ""),
        crafted(&call, &p.caller, "BYE", 5, &tokenless, "X-Forward: 1\r\n"),
    ];
    for m in &sent {
        p.caller.send(k.addr, m);
        // One at a time: the refusal each leaves behind is its own.
        std::thread::sleep(Duration::from_millis(100));
    }
    nothing_reaches(&[&p.callee, &third], Duration::from_millis(1000));
    let stats = kamcmd(&socket, &["topos_rs.stats"]).1;
    assert_eq!(field(&stats, "dropped_token_requests"), "2", "{stats}");
    assert_eq!(field(&stats, "dropped_refused_requests"), "2", "{stats}");
    let log = k.log_text();
    let lines = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    let token_lines = lines("dropped: a request with a topos_rs token in its Request-URI");
    let refused_lines = lines("dropped: a request topos_request() refused was about to be relayed");
    assert!((1..=2).contains(&token_lines), "{log}");
    assert!((1..=2).contains(&refused_lines), "{log}");
    still_alive(&k);
}

/// The same script relays every CANCEL, also one with another branch than
/// the INVITE's (which no transaction here matches) to a third address:
/// it does not leave with the caller's Vias.
#[test]
fn a_cancel_of_a_hidden_invite_never_leaves_unhidden_whatever_the_script() {
    let k = Kamailio::start(CARELESS, &[]);
    let p = Parties::new();
    let third = third_party();
    let mut call = Call::new(
        "careless-cancel",
        &format!("sip:13545769997@{}", p.callee.addr),
    );
    call.upstream_vias = requirement_vias();
    p.caller.send(k.addr, &call.invite(&p.caller));
    let inv = p.callee.expect_request("INVITE");
    p.callee.reply(&inv, 180, "Ringing", "callee-tag");
    p.caller.expect_reply(180, "INVITE");
    let ruri = format!("sip:anyone@{}", third.addr);
    p.caller
        .send(k.addr, &crafted(&call, &p.caller, "CANCEL", 1, &ruri, ""));
    nothing_reaches(&[&p.callee, &third], Duration::from_millis(1000));
    still_alive(&k);
}

/// Route is a request header: one a peer puts in a reply (provisional,
/// final, failure, in-dialog) never reaches the other side.
#[test]
fn a_route_header_in_a_reply_never_reaches_the_other_side() {
    let k = Kamailio::start(EXAMPLE, &[]);
    let p = Parties::new();
    let route = format!(
        "Route: <sip:{};lr>\r\nRoute: <sip:127.0.0.77:5060;lr>\r\n",
        p.callee.addr
    );
    let reply = |req: &Msg, status: &str, extra: &str| {
        let mut out = format!("SIP/2.0 {status}\r\n");
        for v in req.headers("via") {
            out += &format!("Via: {v}\r\n");
        }
        for rr in req.headers("record-route") {
            out += &format!("Record-Route: {rr}\r\n");
        }
        out += &route;
        out += &format!("From: {}\r\n", req.header("from").unwrap());
        let to = req.header("to").unwrap();
        if to.contains(";tag=") {
            out += &format!("To: {to}\r\n");
        } else {
            out += &format!("To: {to};tag=callee-tag\r\n");
        }
        out += &format!("Call-ID: {}\r\n", req.header("call-id").unwrap());
        out += &format!("CSeq: {}\r\n", req.header("cseq").unwrap());
        out += extra;
        out += "Content-Length: 0\r\n\r\n";
        p.callee.send(k.addr, &out);
    };
    let contact = format!("Contact: <sip:callee@{}>\r\n", p.callee.addr);
    let check = |m: &Msg| {
        assert!(m.header("route").is_none(), "{}", m.text);
        assert!(!m.text.contains("127.0.0.77"), "{}", m.text);
        assert_callee_hidden(m, &p.callee);
    };
    // A refused call.
    let mut call = Call::new("route-486", &format!("sip:13545769997@{}", p.callee.addr));
    p.caller.send(k.addr, &call.invite(&p.caller));
    let inv = p.callee.expect_request("INVITE");
    reply(&inv, "486 Busy Here", "");
    check(&p.caller.expect_reply(486, "INVITE"));
    p.caller.send(k.addr, &call.ack_negative(&p.caller));
    // An answered call and its BYE.
    call = Call::new("route-200", &format!("sip:13545769997@{}", p.callee.addr));
    p.caller.send(k.addr, &call.invite(&p.caller));
    let inv = p.callee.expect_request("INVITE");
    reply(&inv, "180 Ringing", &contact);
    check(&p.caller.expect_reply(180, "INVITE"));
    reply(&inv, "200 OK", &contact);
    let ok = p.caller.expect_reply(200, "INVITE");
    check(&ok);
    call.confirm(&ok);
    p.caller.send(k.addr, &call.in_dialog(&p.caller, "ACK", 1));
    p.callee.expect_request("ACK");
    p.caller.send(k.addr, &call.in_dialog(&p.caller, "BYE", 2));
    let bye = p.callee.expect_request("BYE");
    reply(&bye, "200 OK", "");
    check(&p.caller.expect_reply(200, "BYE"));
}

/// Kamailio's parser takes `SIP/2.0` followed by anything as the version
/// and relays those bytes as they came: topos_request() refuses such a
/// request (-1, an error line; the example config answers 500).
#[test]
fn a_request_whose_sip_version_is_not_sip_2_0_is_refused() {
    let k = Kamailio::start(EXAMPLE, &[]);
    let p = Parties::new();
    for (i, version) in ["SIP/2.0127.0.0.1:5060", "SIP/2.0x"].iter().enumerate() {
        let mut call = Call::new(
            &format!("bad-version-{i}"),
            &format!("sip:13545769997@{}", p.callee.addr),
        );
        call.upstream_vias = requirement_vias();
        let invite = call
            .invite(&p.caller)
            .replacen(" SIP/2.0\r\n", &format!(" {version}\r\n"), 1);
        p.caller.send(k.addr, &invite);
        // Kamailio's reply repeats the request's version bytes.
        p.caller.expect(&format!("a 500 for {version}"), |m| {
            m.first_line().starts_with(&format!("{version} 500 "))
        });
    }
    p.callee.expect_silence(Duration::from_millis(300));
    let log = k.log_text();
    assert!(
        log.contains("topos_request: request line: the SIP-Version is not SIP/2.0"),
        "{log}"
    );
}

/// Found by `make attack` after issue 24's fix: a Route a caller puts in a
/// dialog-creating or out-of-dialog request (here naming its own side),
/// which the script does not route by, reached the callee. It goes; a
/// preloaded route the script does route by (loose_route()) stays.
#[test]
fn a_route_the_script_does_not_route_by_never_reaches_the_callee() {
    let k = Kamailio::start(EXAMPLE, &[]);
    let p = Parties::new();
    let own = format!(
        "Route: <sip:{};lr>\r\nRoute: <sip:10.10.10.1;lr>\r\n",
        p.caller.addr
    );
    let mut call = Call::new(
        "route-in-invite",
        &format!("sip:13545769997@{}", p.callee.addr),
    );
    call.upstream_vias = requirement_vias();
    call.extra_headers = own.clone();
    p.caller.send(k.addr, &call.invite(&p.caller));
    let inv = p.callee.expect_request("INVITE");
    assert!(inv.header("route").is_none(), "{}", inv.text);
    assert!(
        !inv.text.contains(&p.caller.addr.to_string()),
        "{}",
        inv.text
    );
    p.callee.reply(&inv, 486, "Busy Here", "t1");
    p.caller.expect_reply(486, "INVITE");
    p.caller.send(k.addr, &call.ack_negative(&p.caller));
    let options = format!(
        "OPTIONS sip:bob@{} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKroute1\r\n{own}\
         Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=o1\r\nTo: <sip:bob@example.com>\r\n\
         Call-ID: route-in-options\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        p.callee.addr, p.caller.addr
    );
    p.caller.send(k.addr, &options);
    let got = p.callee.expect_request("OPTIONS");
    assert!(got.header("route").is_none(), "{}", got.text);
    assert!(
        !got.text.contains(&p.caller.addr.to_string()),
        "{}",
        got.text
    );
}
