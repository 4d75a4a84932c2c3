//! Whole calls through a Kamailio under test, between a caller and a
//! callee peer on 127.0.0.1 (billing and fault tests).

use super::kamailio::Kamailio;
use super::sip::{Call, Msg, Peer};
use std::time::Instant;

pub struct Parties {
    pub caller: Peer,
    pub callee: Peer,
}

impl Parties {
    pub fn new() -> Parties {
        Parties {
            caller: Peer::new(),
            callee: Peer::new(),
        }
    }
}

/// An answered call: INVITE, 200, ACK through `k`. Returns the caller's
/// dialog, the INVITE as the callee got it, and when the 200 arrived.
pub fn answer(k: &Kamailio, p: &Parties, call_id: &str) -> (Call, Msg, Instant) {
    let mut call = Call::new(call_id, &format!("sip:13545769997@{}", p.callee.addr));
    p.caller.send(k.addr, &call.invite(&p.caller));
    let inv = p.callee.expect_request("INVITE");
    p.callee.reply(&inv, 200, "OK", "callee-tag");
    let ok = p.caller.expect_reply(200, "INVITE");
    let answered = Instant::now();
    call.confirm(&ok);
    p.caller.send(k.addr, &call.in_dialog(&p.caller, "ACK", 1));
    p.callee.expect_request("ACK");
    (call, inv, answered)
}

/// The caller hangs up through `k`; returns the BYE as the callee got it.
pub fn caller_bye(k: &Kamailio, p: &Parties, call: &Call) -> (String, Msg) {
    let bye_text = call.in_dialog(&p.caller, "BYE", 2);
    p.caller.send(k.addr, &bye_text);
    let bye = p.callee.expect_request("BYE");
    p.callee.reply(&bye, 200, "OK", "callee-tag");
    p.caller.expect_reply(200, "BYE");
    (bye_text, bye)
}

/// A request of the callee side in the dialog of `inv` (the INVITE as the
/// callee got it): the masked Contact it got as Request-URI, the INVITE's
/// Record-Route entries as Route set, From and To the callee's way round,
/// and a Contact when `contact` is given (a target refresh).
pub fn callee_request(
    p: &Parties,
    inv: &Msg,
    method: &str,
    cseq: u32,
    contact: Option<&str>,
) -> String {
    let mut out = format!("{method} {} SIP/2.0\r\n", inv.contact_uri());
    out += &format!(
        "Via: SIP/2.0/UDP {};branch=z9hG4bK-callee-{method}-{cseq}\r\nMax-Forwards: 70\r\n",
        p.callee.addr
    );
    for r in inv.headers("record-route") {
        out += &format!("Route: {r}\r\n");
    }
    out += &format!(
        "From: {};tag=callee-tag\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n",
        inv.header("to").unwrap(),
        inv.header("from").unwrap(),
        inv.header("call-id").unwrap()
    );
    if let Some(c) = contact {
        out += &format!("Contact: <{c}>\r\n");
    }
    out += "Content-Length: 0\r\n\r\n";
    out
}
