//! Hostile SIP end to end: Kamailio stays up, each message is refused or
//! handled with a clear line, nothing goes to an address that came only
//! from the attacker's message, and a call in flight is unaffected.

mod common;

use common::ctl::still_alive;
use common::kamailio::Kamailio;
use common::sip::{requirement_vias, Call, Peer};
use std::time::Duration;

const EXAMPLE: &str = "cfg-examples/kamailio.cfg";

/// A call set up before the attack and hung up after it must still work.
struct CallInFlight {
    caller: Peer,
    callee: Peer,
    call: Call,
}

impl CallInFlight {
    fn start(k: &Kamailio) -> CallInFlight {
        let (caller, callee) = (Peer::new(), Peer::new());
        let mut call = Call::new("in-flight-1", &format!("sip:13545769997@{}", callee.addr));
        call.upstream_vias = requirement_vias();
        caller.send(k.addr, &call.invite(&caller));
        let inv = callee.expect_request("INVITE");
        callee.reply(&inv, 200, "OK", "t1");
        let ok = caller.expect_reply(200, "INVITE");
        call.confirm(&ok);
        caller.send(k.addr, &call.in_dialog(&caller, "ACK", 1));
        callee.expect_request("ACK");
        CallInFlight {
            caller,
            callee,
            call,
        }
    }

    fn finish(self, k: &Kamailio) {
        self.caller
            .send(k.addr, &self.call.in_dialog(&self.caller, "BYE", 2));
        let bye = self.callee.expect_request("BYE");
        self.callee.reply(&bye, 200, "OK", "t1");
        self.caller.expect_reply(200, "BYE");
    }
}

fn invite_with(
    attacker: &Peer,
    target: &Peer,
    call_id: &str,
    extra_headers: &str,
    vias: &str,
) -> String {
    format!(
        "INVITE sip:bob@{} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-{call_id};rport\r\n{vias}\
         Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=x1\r\nTo: <sip:b@example.com>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\n{extra_headers}Content-Length: 0\r\n\r\n",
        target.addr, attacker.addr
    )
}

#[test]
fn two_hundred_vias_are_all_hidden_and_all_restored() {
    let k = Kamailio::start(EXAMPLE, &[]);
    let (a, b) = (Peer::new(), Peer::new());
    let vias: String = (0..199)
        .map(|i| {
            format!(
                "Via: SIP/2.0/UDP 10.{}.{}.1:5060;branch=z9hG4bKdeep{i}\r\n",
                i / 256,
                i % 256
            )
        })
        .collect();
    a.send(
        k.addr,
        &invite_with(
            &a,
            &b,
            "deep-1",
            &format!("Contact: <sip:a@{}>\r\n", a.addr),
            &vias,
        ),
    );
    let inv = b.expect_request("INVITE");
    assert_eq!(inv.vias().len(), 1);
    assert!(!inv.text.contains("z9hG4bKdeep"));
    b.reply(&inv, 486, "Busy Here", "t");
    let busy = a.expect_reply(486, "INVITE");
    assert_eq!(busy.vias().len(), 200, "every Via came back");
    still_alive(&k);
}

#[test]
fn a_60kb_header_is_handled_without_crash() {
    let k = Kamailio::start(EXAMPLE, &[]);
    let flight = CallInFlight::start(&k);
    let (a, b) = (Peer::new(), Peer::new());
    let big = format!(
        "X-Big: {}\r\nContact: <sip:a@{}>\r\n",
        "x".repeat(60_000),
        a.addr
    );
    a.send(k.addr, &invite_with(&a, &b, "big-1", &big, ""));
    // Either relayed hidden or refused; never a crash, never a leak.
    if let Some(m) = b.recv_within(Duration::from_secs(2)) {
        assert_eq!(m.vias().len(), 1);
        assert!(!m.text.contains(&a.addr.to_string()));
    }
    still_alive(&k);
    flight.finish(&k);
}

#[test]
fn broken_via_contact_and_record_route_are_refused_cleanly() {
    let k = Kamailio::start(EXAMPLE, &[]);
    let flight = CallInFlight::start(&k);
    let (a, b) = (Peer::new(), Peer::new());
    let cases = [
        (
            "bad-via",
            "".to_string(),
            "Via: SIP/2.0/UDP [::1;branch=x\r\n".to_string(),
        ),
        (
            "bad-contact",
            "Contact: <sip:a@\r\n".to_string(),
            String::new(),
        ),
        (
            "bad-rr",
            format!(
                "Record-Route: <sip:10.9.9.9;lr\r\nContact: <sip:a@{}>\r\n",
                a.addr
            ),
            String::new(),
        ),
        ("no-contact", String::new(), String::new()),
    ];
    for (id, headers, vias) in &cases {
        a.send(k.addr, &invite_with(&a, &b, id, headers, vias));
    }
    // Whatever reaches the callee carries nothing of the attacker's side.
    while let Some(m) = b.recv_within(Duration::from_millis(700)) {
        assert_eq!(m.vias().len(), 1, "{}", m.text);
        assert!(!m.text.contains("10.9.9.9"), "{}", m.text);
        assert!(!m.text.contains(&format!("{}>", a.addr)), "{}", m.text);
    }
    still_alive(&k);
    flight.finish(&k);
}

#[test]
fn non_utf8_bytes_do_not_break_anything() {
    let k = Kamailio::start(EXAMPLE, &[]);
    let (a, b) = (Peer::new(), Peer::new());
    let mut msg = invite_with(
        &a,
        &b,
        "bytes-1",
        &format!("Contact: <sip:a@{}>\r\n", a.addr),
        "",
    )
    .into_bytes();
    let at = msg.windows(4).position(|w| w == b"To: ").unwrap();
    msg.splice(at..at, b"X-Bin: \xff\xfe\x80\xc3\x28\r\n".iter().copied());
    a.sock.send_to(&msg, k.addr).unwrap();
    if let Some(m) = b.recv_within(Duration::from_secs(2)) {
        assert_eq!(m.vias().len(), 1);
    }
    still_alive(&k);
}

#[test]
fn replayed_token_after_the_dialog_ended_and_stray_replies() {
    let k = Kamailio::start(EXAMPLE, &[]);
    let flight = CallInFlight::start(&k);
    let replay = flight.call.in_dialog(&flight.caller, "INFO", 7);
    let (caller, callee) = (Peer::new(), Peer::new());
    // A second call, ended; its token replayed long after is refused once
    // the grace time is over (here: a token of an unknown dialog).
    let mut c = Call::new("ended-1", &format!("sip:13545769997@{}", callee.addr));
    c.upstream_vias = requirement_vias();
    caller.send(k.addr, &c.invite(&caller));
    let inv = callee.expect_request("INVITE");
    callee.reply(&inv, 200, "OK", "t9");
    let ok = caller.expect_reply(200, "INVITE");
    c.confirm(&ok);
    let forged_target =
        c.remote_target
            .clone()
            .unwrap()
            .replacen(|ch: char| ch.is_ascii_hexdigit(), "0", 8);
    c.remote_target = Some(forged_target);
    caller.send(k.addr, &c.in_dialog(&caller, "BYE", 2));
    caller.expect_reply(404, "BYE");
    callee.expect_silence(Duration::from_millis(300));

    // A reply that matches no transaction: dropped, nothing relayed.
    let stray = Peer::new();
    stray.send(
        k.addr,
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKnope\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKnope2\r\nFrom: <sip:a@x>;tag=1\r\n\
         To: <sip:b@x>;tag=2\r\nCall-ID: stray\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    );
    std::thread::sleep(Duration::from_millis(200));
    still_alive(&k);

    // The call in flight is unaffected; its own token still works.
    flight.caller.send(k.addr, &replay);
    let info = flight.callee.expect_request("INFO");
    assert_eq!(info.vias().len(), 1);
    flight.finish(&k);
    // The example config runs sealed tokens: changed bytes make no token
    // (or one that does not open).
    let log = k.log_text();
    assert!(
        log.contains("topos_request: refused: token does not fit this request")
            || log.contains("topos_request: refused: in-dialog request without a topos_rs token"),
        "{log}"
    );
}
