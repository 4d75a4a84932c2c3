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
