//! Dialog topology hiding end to end: real Kamailio, both storage
//! backends. Every message each peer receives is checked for the other
//! side's addresses (leak check), and in-dialog requests for where they
//! arrive (Request-URI, Route).
//!
//! Each side has a "proxy" that record-routes (its Record-Route points at
//! that side's peer socket), a Contact with a marker, and its own port; the
//! other side must never see any of them.

mod common;

use common::kamailio::{free_port, scratch_dir, Kamailio};
use common::redis::RedisServer;
use common::sip::{Msg, Peer};
use std::time::Duration;

const ROUTING: &str = "tests/cfg/routing.cfg";
const UPSTREAM_VIA: &str = "SIP/2.0/UDP 192.168.1.100:5060;branch=z9hG4bK111111";

/// One side of a call: its socket, Contact, proxy Record-Route and tag.
struct Party {
    peer: Peer,
    name: &'static str,
    tag: String,
}

impl Party {
    fn new(name: &'static str) -> Party {
        Party {
            peer: Peer::new(),
            name,
            tag: format!("{name}-tag"),
        }
    }
    fn contact_uri(&self, version: u32) -> String {
        format!(
            "sip:{}@{};secret={}-contact{version}",
            self.name, self.peer.addr, self.name
        )
    }
    fn proxy_rr(&self) -> String {
        format!("<sip:{};lr;side={}-proxy>", self.peer.addr, self.name)
    }
    /// What the other side must never see of this one.
    fn secrets(&self) -> Vec<String> {
        vec![
            format!(":{}", self.peer.port()),
            format!("{}-contact", self.name),
            format!("{}-proxy", self.name),
        ]
    }
}

fn assert_no_leak(m: &Msg, of: &Party, extra: &[&str]) {
    for s in of
        .secrets()
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
    {
        assert!(
            !m.text.contains(s),
            "{s:?} of the {} side leaked:\n{}",
            of.name,
            m.text
        );
    }
}

/// Kamailio's masked Contact: `<sip:TOKEN@kamailio>`, a stored-mode token
/// (65 hex characters with the side letter) or a sealed one (base64url
/// with `.` for `C`).
fn masked_contact(m: &Msg, k: &Kamailio) -> String {
    let c = m.header("contact").expect("a Contact");
    let uri = c.trim_start_matches('<').trim_end_matches('>').to_string();
    let user = uri
        .strip_prefix("sip:")
        .and_then(|u| u.split('@').next())
        .unwrap_or("");
    assert!(common::sip::is_token(user), "not a token: {c}");
    assert!(
        uri.ends_with(&format!("@{}", k.addr)),
        "Contact not at Kamailio: {c}"
    );
    uri
}

struct Req<'a> {
    method: &'a str,
    ruri: &'a str,
    branch: String,
    routes: Vec<String>,
    from: String,
    to: String,
    call_id: &'a str,
    cseq: u32,
    contact: Option<String>,
    extra: &'a str,
    vias_below: Vec<String>,
}

fn request(sender: &Peer, r: &Req) -> String {
    let mut out = format!("{} {} SIP/2.0\r\n", r.method, r.ruri);
    out += &format!(
        "Via: SIP/2.0/UDP {};branch={};rport\r\n",
        sender.addr, r.branch
    );
    for v in &r.vias_below {
        out += &format!("Via: {v}\r\n");
    }
    for rt in &r.routes {
        out += &format!("Route: {rt}\r\n");
    }
    out += &format!(
        "Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {}\r\n",
        r.from,
        r.to,
        r.call_id,
        r.cseq,
        if r.method == "ACK" && r.cseq == 0 {
            "ACK"
        } else {
            r.method
        }
    );
    if let Some(c) = &r.contact {
        out += &format!("Contact: <{c}>\r\n");
    }
    out += r.extra;
    out += "Content-Length: 0\r\n\r\n";
    out
}

/// A reply from the callee side: Vias copied, the callee proxy's
/// Record-Route on top of the received ones (1xx/2xx to INVITE).
fn respond(from: &Party, req: &Msg, code: u32, contact: Option<String>, extra: &str) {
    let mut out = format!("SIP/2.0 {code} Reason\r\n");
    for v in req.headers("via") {
        out += &format!("Via: {v}\r\n");
    }
    let dialog_creating =
        req.method() == Some("INVITE") && !req.header("to").unwrap().contains("tag=");
    if dialog_creating && (101..300).contains(&code) {
        out += &format!("Record-Route: {}\r\n", from.proxy_rr());
        for rr in req.headers("record-route") {
            out += &format!("Record-Route: {rr}\r\n");
        }
    }
    out += &format!("From: {}\r\n", req.header("from").unwrap());
    let to = req.header("to").unwrap();
    if to.contains("tag=") {
        out += &format!("To: {to}\r\n");
    } else {
        out += &format!("To: {to};tag={}\r\n", from.tag);
    }
    out += &format!(
        "Call-ID: {}\r\nCSeq: {}\r\n",
        req.header("call-id").unwrap(),
        req.header("cseq").unwrap()
    );
    if let Some(c) = contact {
        out += &format!("Contact: <{c}>\r\n");
    }
    out += extra;
    out += "Content-Length: 0\r\n\r\n";
    from.peer.send(req.from, &out);
}

/// An established (or early) dialog as both sides see it.
struct Dialog {
    call_id: String,
    /// The Call-ID the callee sees (differs with mask_callid).
    callee_call_id: String,
    /// The caller's view: the callee's masked Contact and the route set
    /// (its own proxy already passed, so Kamailio's entry only).
    caller_target: String,
    caller_route: Vec<String>,
    /// The callee's view.
    callee_target: String,
    callee_route: Vec<String>,
    caller_from: String,
    caller_to: String,
}

/// Sends the INVITE and checks what the callee gets; returns it.
fn invite(k: &Kamailio, a: &Party, b: &Party, call_id: &str, user: &str, extra: &str) -> Msg {
    let inv = request(
        &a.peer,
        &Req {
            method: "INVITE",
            ruri: &format!("sip:{user}@{}", b.peer.addr),
            branch: format!("z9hG4bK-{call_id}-inv"),
            routes: vec![],
            from: format!("<sip:01089672389@example.com>;tag={}", a.tag),
            to: "<sip:13545769997@example.com>".into(),
            call_id,
            cseq: 1,
            contact: Some(a.contact_uri(1)),
            extra: &format!("Record-Route: {}\r\n{extra}", a.proxy_rr()),
            vias_below: vec![UPSTREAM_VIA.into()],
        },
    );
    a.peer.send(k.addr, &inv);
    let got = b.peer.expect_request("INVITE");
    assert_no_leak(&got, a, &["192.168.1.100"]);
    assert_eq!(got.vias().len(), 1);
    // The callee sees only Kamailio's Record-Route.
    let rr = got.headers("record-route");
    assert_eq!(rr.len(), 1, "{}", got.text);
    assert!(rr[0].contains(&k.addr.to_string()));
    masked_contact(&got, k);
    got
}

/// INVITE / 180 / 200 / ACK: an established dialog.
fn establish(k: &Kamailio, a: &Party, b: &Party, call_id: &str, mask: bool) -> Dialog {
    let inv = invite(k, a, b, call_id, "13545769997", "");
    let callee_call_id = inv.header("call-id").unwrap();
    if mask {
        assert_ne!(
            callee_call_id, call_id,
            "the callee saw the caller's Call-ID"
        );
        assert!(!inv.text.contains(call_id));
    } else {
        assert_eq!(callee_call_id, call_id);
    }
    a.peer.expect_reply(100, "INVITE");
    respond(b, &inv, 180, Some(b.contact_uri(1)), "");
    let ringing = a.peer.expect_reply(180, "INVITE");
    check_reply_to_caller(&ringing, k, a, b, call_id);
    respond(b, &inv, 200, Some(b.contact_uri(1)), "");
    let ok = a.peer.expect_reply(200, "INVITE");
    check_reply_to_caller(&ok, k, a, b, call_id);

    let d = Dialog {
        call_id: call_id.to_string(),
        callee_call_id,
        caller_target: masked_contact(&ok, k),
        caller_route: vec![ok.headers("record-route")[0].clone()],
        callee_target: masked_contact(&inv, k),
        callee_route: inv.headers("record-route"),
        caller_from: format!("<sip:01089672389@example.com>;tag={}", a.tag),
        caller_to: format!("<sip:13545769997@example.com>;tag={}", b.tag),
    };
    let ack = caller_request(k, a, &d, "ACK", 1, None, "");
    let got = b.peer.expect_request("ACK");
    check_at_callee(&got, b, a, &ack);
    d
}

/// A reply the caller got: its own Via stack, Kamailio's Record-Route and
/// its own proxy's, a masked Contact, its own Call-ID, nothing of the callee.
fn check_reply_to_caller(m: &Msg, k: &Kamailio, a: &Party, b: &Party, call_id: &str) {
    assert_no_leak(m, b, &[]);
    assert_eq!(m.header("call-id").as_deref(), Some(call_id));
    assert_eq!(m.vias().len(), 2, "{}", m.text);
    let rr = m.headers("record-route");
    assert_eq!(rr.len(), 2, "{}", m.text);
    assert!(rr[0].contains(&k.addr.to_string()));
    assert_eq!(rr[1], a.proxy_rr());
    masked_contact(m, k);
}

/// An in-dialog request from the caller (its proxy already passed).
fn caller_request(
    k: &Kamailio,
    a: &Party,
    d: &Dialog,
    method: &str,
    cseq: u32,
    contact: Option<String>,
    extra: &str,
) -> String {
    let text = request(
        &a.peer,
        &Req {
            method,
            ruri: &d.caller_target,
            branch: format!("z9hG4bK-{}-{method}-{cseq}-a", d.call_id),
            routes: d.caller_route.clone(),
            from: d.caller_from.clone(),
            to: d.caller_to.clone(),
            call_id: &d.call_id,
            cseq,
            contact,
            extra,
            vias_below: vec![UPSTREAM_VIA.into()],
        },
    );
    a.peer.send(k.addr, &text);
    text
}

/// An in-dialog request from the callee.
fn callee_request(
    k: &Kamailio,
    b: &Party,
    d: &Dialog,
    method: &str,
    cseq: u32,
    contact: Option<String>,
) -> String {
    let text = request(
        &b.peer,
        &Req {
            method,
            ruri: &d.callee_target,
            branch: format!("z9hG4bK-{}-{method}-{cseq}-b", d.callee_call_id),
            routes: d.callee_route.clone(),
            from: d.caller_to.clone(),
            to: d.caller_from.clone(),
            call_id: &d.callee_call_id,
            cseq,
            contact,
            extra: "",
            vias_below: vec![],
        },
    );
    b.peer.send(k.addr, &text);
    text
}

/// A request from the caller as the callee got it: at the callee's real
/// Contact, through the callee's proxy, nothing of the caller.
fn check_at_callee(got: &Msg, b: &Party, a: &Party, _sent: &str) {
    check_at(got, b, 1, a);
}

fn check_at(got: &Msg, to: &Party, contact_version: u32, other: &Party) {
    assert_no_leak(got, other, &["192.168.1.100"]);
    let ruri = got.first_line().split(' ').nth(1).unwrap();
    assert_eq!(ruri, to.contact_uri(contact_version), "{}", got.text);
    assert_eq!(got.headers("route"), vec![to.proxy_rr()], "{}", got.text);
    assert_eq!(got.vias().len(), 1);
}

/// token_mode "stored" (the default is sealed).
const STORED: &str = "TOKEN_MODE=\"stored\"";

/// What a routing test runs on: sealed tokens (the default: routing reads
/// no store), and stored tokens on LMDB and on Redis.
fn setups() -> Vec<(&'static str, Option<RedisServer>, &'static [&'static str])> {
    vec![
        ("sealed", None, &[]),
        ("stored-lmdb", None, &[STORED]),
        ("stored-redis", Some(RedisServer::start()), &[STORED]),
    ]
}

fn defines(redis: &Option<RedisServer>, more: &[&str]) -> Vec<String> {
    let mut d: Vec<String> = more.iter().map(|s| s.to_string()).collect();
    if let Some(r) = redis {
        d.push(format!("STORAGE=\"{}\"", r.url()));
    }
    d
}

fn start(redis: &Option<RedisServer>, more: &[&str]) -> Kamailio {
    let d = defines(redis, more);
    let refs: Vec<&str> = d.iter().map(String::as_str).collect();
    Kamailio::start(ROUTING, &refs)
}

#[test]
fn caller_bye_and_callee_bye_on_both_backends() {
    for (backend, redis, mode) in setups() {
        let k = start(&redis, mode);
        let (a, b) = (Party::new("alice"), Party::new("bob"));

        // The caller hangs up.
        let d = establish(&k, &a, &b, &format!("bye-caller-{backend}"), false);
        let sent = caller_request(&k, &a, &d, "BYE", 2, None, "");
        let bye = b.peer.expect_request("BYE");
        check_at_callee(&bye, &b, &a, &sent);
        respond(&b, &bye, 200, None, "");
        let ok = a.peer.expect_reply(200, "BYE");
        assert_no_leak(&ok, &b, &[]);

        // The callee hangs up: the BYE reaches the caller's real Contact
        // through the caller's own Record-Route set.
        let d = establish(&k, &a, &b, &format!("bye-callee-{backend}"), false);
        callee_request(&k, &b, &d, "BYE", 1, None);
        let bye = a.peer.expect_request("BYE");
        check_at(&bye, &a, 1, &b);
        assert_eq!(bye.header("call-id").as_deref(), Some(d.call_id.as_str()));
        respond(&a, &bye, 200, None, "");
        let ok = b.peer.expect_reply(200, "BYE");
        assert_no_leak(&ok, &a, &["192.168.1.100"]);
    }
}

/// A 2xx to a target refresh moves the answering side's target too
/// (RFC 3261 12.2.1.2); a 2xx that comes after the dialog's BYE moves
/// nothing and does not bring the dialog back.
#[test]
fn the_answer_to_a_reinvite_moves_the_answering_side_and_a_late_one_changes_nothing() {
    for (backend, redis, mode) in setups() {
        let k = start(&redis, mode);
        let (a, b) = (Party::new("alice"), Party::new("bob"));
        let mut d = establish(&k, &a, &b, &format!("reinvite-answer-{backend}"), false);

        // The callee answers the caller's re-INVITE from a new Contact; the
        // caller takes the 2xx's Contact as its new remote target (RFC
        // 3261 12.2.1.2; with stored tokens it is the same token).
        caller_request(&k, &a, &d, "INVITE", 2, None, "");
        let re = b.peer.expect_request("INVITE");
        respond(&b, &re, 200, Some(b.contact_uri(2)), "");
        let ok = a.peer.expect_reply(200, "INVITE");
        assert_no_leak(&ok, &b, &[]);
        d.caller_target = masked_contact(&ok, &k);
        caller_request(&k, &a, &d, "ACK", 2, None, "");
        let ack = b.peer.expect_request("ACK");
        check_at(&ack, &b, 2, &a);
        caller_request(&k, &a, &d, "INFO", 3, None, "");
        let info = b.peer.expect_request("INFO");
        check_at(&info, &b, 2, &a);
        respond(&b, &info, 200, None, "");
        a.peer.expect_reply(200, "INFO");

        // Another re-INVITE whose 200 the callee sends only after the
        // caller's BYE went through: with stored tokens the dialog stays
        // ended. Sealed tokens route until they expire (the price of
        // statelessness, as topoh's): the callee answers 481.
        if backend == "sealed" {
            caller_request(&k, &a, &d, "BYE", 4, None, "");
            respond(&b, &b.peer.expect_request("BYE"), 200, None, "");
            a.peer.expect_reply(200, "BYE");
            caller_request(&k, &a, &d, "INFO", 5, None, "");
            let info = b.peer.expect_request("INFO");
            check_at(&info, &b, 2, &a);
            respond(&b, &info, 481, None, "");
            assert_no_leak(&a.peer.expect_reply(481, "INFO"), &b, &[]);
            continue;
        }
        caller_request(&k, &a, &d, "INVITE", 4, None, "");
        let late = b.peer.expect_request("INVITE");
        caller_request(&k, &a, &d, "BYE", 5, None, "");
        let bye = b.peer.expect_request("BYE");
        respond(&b, &bye, 200, None, "");
        a.peer.expect_reply(200, "BYE");
        respond(&b, &late, 200, Some(b.contact_uri(3)), "");
        a.peer.expect_reply(200, "INVITE");
        caller_request(&k, &a, &d, "INFO", 6, None, "");
        a.peer.expect_reply(404, "INFO");
        b.peer.expect_silence(Duration::from_millis(300));
        assert!(k.log_text().contains("has ended"), "{}", k.log_text());
    }
}

#[test]
fn reinvite_from_each_side_moves_the_target() {
    for (backend, redis, mode) in setups() {
        let k = start(&redis, mode);
        let (a, b) = (Party::new("alice"), Party::new("bob"));
        let mut d = establish(&k, &a, &b, &format!("reinvite-{backend}"), false);

        // The caller moves: re-INVITE with a new Contact, 200, ACK. Each
        // side takes the other's Contact of the target refresh as its
        // remote target (stored tokens: the same tokens; sealed: fresh ones).
        caller_request(&k, &a, &d, "INVITE", 2, Some(a.contact_uri(2)), "");
        let re = b.peer.expect_request("INVITE");
        check_at(&re, &b, 1, &a);
        let fresh = masked_contact(&re, &k);
        assert_eq!(
            fresh == d.callee_target,
            backend != "sealed",
            "stored: the same token for the caller side; sealed: a fresh one"
        );
        d.callee_target = fresh;
        respond(&b, &re, 200, Some(b.contact_uri(1)), "");
        let ok = a.peer.expect_reply(200, "INVITE");
        assert_no_leak(&ok, &b, &[]);
        d.caller_target = masked_contact(&ok, &k);
        caller_request(&k, &a, &d, "ACK", 2, None, "");
        b.peer.expect_request("ACK");

        // The callee moves too.
        callee_request(&k, &b, &d, "INVITE", 1, Some(b.contact_uri(2)));
        let re = a.peer.expect_request("INVITE");
        check_at(&re, &a, 2, &b); // already at the caller's new Contact
        d.caller_target = masked_contact(&re, &k);
        respond(&a, &re, 200, Some(a.contact_uri(2)), "");
        let ok = b.peer.expect_reply(200, "INVITE");
        assert_no_leak(&ok, &a, &[]);
        d.callee_target = masked_contact(&ok, &k);

        // Later requests follow the new targets, in both directions.
        caller_request(&k, &a, &d, "INFO", 3, None, "");
        let info = b.peer.expect_request("INFO");
        check_at(&info, &b, 2, &a);
        callee_request(&k, &b, &d, "BYE", 2, None);
        let bye = a.peer.expect_request("BYE");
        check_at(&bye, &a, 2, &b);
    }
}

#[test]
fn rejected_reinvite_keeps_the_old_target() {
    let k = start(&None, &[]);
    let (a, b) = (Party::new("alice"), Party::new("bob"));
    let d = establish(&k, &a, &b, "rejected-reinvite", false);
    caller_request(&k, &a, &d, "INVITE", 2, Some(a.contact_uri(3)), "");
    let re = b.peer.expect_request("INVITE");
    respond(&b, &re, 488, None, "");
    let rejected = a.peer.expect_reply(488, "INVITE");
    assert_no_leak(&rejected, &b, &[]);
    // BYE from the callee: still to the caller's first Contact.
    callee_request(&k, &b, &d, "BYE", 1, None);
    let bye = a.peer.expect_request("BYE");
    check_at(&bye, &a, 1, &b);
}

#[test]
fn reliable_183_prack_and_update_in_the_early_dialog() {
    let k = start(&None, &[]);
    let (a, b) = (Party::new("alice"), Party::new("bob"));
    let inv = invite(
        &k,
        &a,
        &b,
        "early-1",
        "13545769997",
        "Supported: 100rel\r\n",
    );
    a.peer.expect_reply(100, "INVITE");
    respond(
        &b,
        &inv,
        183,
        Some(b.contact_uri(1)),
        "Require: 100rel\r\nRSeq: 1\r\n",
    );
    let progress = a.peer.expect_reply(183, "INVITE");
    check_reply_to_caller(&progress, &k, &a, &b, "early-1");
    let d = Dialog {
        call_id: "early-1".into(),
        callee_call_id: "early-1".into(),
        caller_target: masked_contact(&progress, &k),
        caller_route: vec![progress.headers("record-route")[0].clone()],
        callee_target: masked_contact(&inv, &k),
        callee_route: inv.headers("record-route"),
        caller_from: format!("<sip:01089672389@example.com>;tag={}", a.tag),
        caller_to: format!("<sip:13545769997@example.com>;tag={}", b.tag),
    };
    caller_request(&k, &a, &d, "PRACK", 2, None, "RAck: 1 1 INVITE\r\n");
    let prack = b.peer.expect_request("PRACK");
    check_at(&prack, &b, 1, &a);
    assert_eq!(prack.header("rack").as_deref(), Some("1 1 INVITE"));
    respond(&b, &prack, 200, None, "");
    assert_no_leak(&a.peer.expect_reply(200, "PRACK"), &b, &[]);

    caller_request(&k, &a, &d, "UPDATE", 3, Some(a.contact_uri(1)), "");
    let update = b.peer.expect_request("UPDATE");
    check_at(&update, &b, 1, &a);
    respond(&b, &update, 200, Some(b.contact_uri(1)), "");
    assert_no_leak(&a.peer.expect_reply(200, "UPDATE"), &b, &[]);

    respond(&b, &inv, 200, Some(b.contact_uri(1)), "");
    check_reply_to_caller(&a.peer.expect_reply(200, "INVITE"), &k, &a, &b, "early-1");
    caller_request(&k, &a, &d, "ACK", 1, None, "");
    check_at(&b.peer.expect_request("ACK"), &b, 1, &a);
    caller_request(&k, &a, &d, "BYE", 4, None, "");
    check_at(&b.peer.expect_request("BYE"), &b, 1, &a);
}

#[test]
fn cancelled_call_leaves_no_dialog() {
    // Stored tokens only: a sealed early dialog's token routes until it
    // expires (the callee answers 481).
    let k = start(&None, &[STORED]);
    let (a, b) = (Party::new("alice"), Party::new("bob"));
    let inv = invite(&k, &a, &b, "cancel-1", "13545769997", "");
    respond(&b, &inv, 180, Some(b.contact_uri(1)), "");
    let ringing = a.peer.expect_reply(180, "INVITE");
    let cancel = request(
        &a.peer,
        &Req {
            method: "CANCEL",
            ruri: &format!("sip:13545769997@{}", b.peer.addr),
            branch: "z9hG4bK-cancel-1-inv".into(),
            routes: vec![],
            from: format!("<sip:01089672389@example.com>;tag={}", a.tag),
            to: "<sip:13545769997@example.com>".into(),
            call_id: "cancel-1",
            cseq: 1,
            contact: None,
            extra: "",
            vias_below: vec![],
        },
    );
    a.peer.send(k.addr, &cancel);
    a.peer.expect_reply(200, "CANCEL");
    let c = b.peer.expect_request("CANCEL");
    assert_no_leak(&c, &a, &["192.168.1.100"]);
    respond(&b, &c, 200, None, "");
    respond(&b, &inv, 487, None, "");
    let terminated = a.peer.expect_reply(487, "INVITE");
    assert_no_leak(&terminated, &b, &[]);
    b.peer.expect_request("ACK");
    a.peer.send(
        k.addr,
        &cancel
            .replace("CANCEL sip", "ACK sip")
            .replace("1 CANCEL", "1 ACK")
            .replace(
                "To: <sip:13545769997@example.com>",
                &format!("To: <sip:13545769997@example.com>;tag={}", b.tag),
            ),
    );

    // The early dialog's record is gone: its token is refused now.
    let d = Dialog {
        call_id: "cancel-1".into(),
        callee_call_id: "cancel-1".into(),
        caller_target: masked_contact(&ringing, &k),
        caller_route: vec![ringing.headers("record-route")[0].clone()],
        callee_target: String::new(),
        callee_route: vec![],
        caller_from: format!("<sip:01089672389@example.com>;tag={}", a.tag),
        caller_to: format!("<sip:13545769997@example.com>;tag={}", b.tag),
    };
    std::thread::sleep(Duration::from_millis(200));
    caller_request(&k, &a, &d, "UPDATE", 2, None, "");
    a.peer.expect_reply(404, "UPDATE");
    b.peer.expect_silence(Duration::from_millis(300));
}

#[test]
fn parallel_forking_keeps_each_early_dialog_apart() {
    let (a, b1, b2) = (Party::new("alice"), Party::new("bob"), Party::new("carol"));
    let k = start(&None, &[&format!("CALLEE2=\"sip:carol@{}\"", b2.peer.addr)]);
    let inv1 = invite(&k, &a, &b1, "fork-1", "fork", "");
    let inv2 = b2.peer.expect_request("INVITE");
    assert_no_leak(&inv2, &a, &["192.168.1.100"]);
    a.peer.expect_reply(100, "INVITE");
    respond(&b1, &inv1, 180, Some(b1.contact_uri(1)), "");
    let r1 = a.peer.expect_reply(180, "INVITE");
    respond(&b2, &inv2, 180, Some(b2.contact_uri(1)), "");
    let r2 = a.peer.expect_reply(180, "INVITE");
    for r in [&r1, &r2] {
        assert_no_leak(r, &b1, &[]);
        assert_no_leak(r, &b2, &[]);
    }
    let dialog_with = |callee: &Party, reply: &Msg| Dialog {
        call_id: "fork-1".into(),
        callee_call_id: "fork-1".into(),
        caller_target: masked_contact(reply, &k),
        caller_route: vec![reply.headers("record-route")[0].clone()],
        callee_target: masked_contact(&inv1, &k),
        callee_route: inv1.headers("record-route"),
        caller_from: format!("<sip:01089672389@example.com>;tag={}", a.tag),
        caller_to: format!("<sip:13545769997@example.com>;tag={}", callee.tag),
    };
    let (d1, d2) = (dialog_with(&b1, &r1), dialog_with(&b2, &r2));
    // An UPDATE in each early dialog reaches its own callee.
    caller_request(&k, &a, &d1, "UPDATE", 2, None, "");
    let u1 = b1.peer.expect_request("UPDATE");
    check_at(&u1, &b1, 1, &a);
    respond(&b1, &u1, 200, None, "");
    a.peer.expect_reply(200, "UPDATE");
    caller_request(&k, &a, &d2, "UPDATE", 3, None, "");
    let u2 = b2.peer.expect_request("UPDATE");
    check_at(&u2, &b2, 1, &a);
    respond(&b2, &u2, 200, None, "");
    a.peer.expect_reply(200, "UPDATE");

    // carol answers; bob's branch is cancelled.
    respond(&b2, &inv2, 200, Some(b2.contact_uri(1)), "");
    let ok = a.peer.expect_reply(200, "INVITE");
    assert_no_leak(&ok, &b2, &[]);
    let c = b1.peer.expect_request("CANCEL");
    respond(&b1, &c, 200, None, "");
    respond(&b1, &inv1, 487, None, "");
    b1.peer.expect_request("ACK");
    caller_request(&k, &a, &d2, "ACK", 1, None, "");
    check_at(&b2.peer.expect_request("ACK"), &b2, 1, &a);
    caller_request(&k, &a, &d2, "BYE", 4, None, "");
    check_at(&b2.peer.expect_request("BYE"), &b2, 1, &a);
    b1.peer.expect_silence(Duration::from_millis(200));
}

#[test]
fn forged_tokens_and_tokens_of_another_call_are_refused() {
    for (_, redis, mode) in setups().into_iter().take(2) {
        forged_tokens_are_refused_in(start(&redis, mode));
    }
}

fn forged_tokens_are_refused_in(k: Kamailio) {
    let (a, b) = (Party::new("alice"), Party::new("bob"));
    let d = establish(&k, &a, &b, "victim-1", false);

    // A token nobody issued.
    let mut forged = Dialog { ..clone_dialog(&d) };
    forged.caller_target = format!("sip:{}b{}@{}", "0".repeat(32), "0".repeat(32), k.addr);
    caller_request(&k, &a, &forged, "BYE", 5, None, "");
    a.peer.expect_reply(404, "BYE");
    // A real token with the Call-ID of another call.
    let mut other = clone_dialog(&d);
    other.call_id = "attacker-call".into();
    caller_request(&k, &a, &other, "BYE", 6, None, "");
    a.peer.expect_reply(404, "BYE");
    // A truncated token.
    let mut truncated = clone_dialog(&d);
    let at = truncated.caller_target.find('@').unwrap();
    truncated.caller_target.remove(at - 1);
    caller_request(&k, &a, &truncated, "BYE", 7, None, "");
    a.peer.expect_reply(404, "BYE");
    // Nothing reached either side.
    b.peer.expect_silence(Duration::from_millis(300));
    a.peer.expect_silence(Duration::from_millis(100));
    // The first refusal's line (the others may fall in the same worker's
    // 10 s rate limit).
    let log = k.log_text();
    assert!(
        log.contains("topos_request: refused: unknown or expired dialog"),
        "{log}"
    );
    // The real dialog still works.
    caller_request(&k, &a, &d, "BYE", 8, None, "");
    check_at(&b.peer.expect_request("BYE"), &b, 1, &a);
}

fn clone_dialog(d: &Dialog) -> Dialog {
    Dialog {
        call_id: d.call_id.clone(),
        callee_call_id: d.callee_call_id.clone(),
        caller_target: d.caller_target.clone(),
        caller_route: d.caller_route.clone(),
        callee_target: d.callee_target.clone(),
        callee_route: d.callee_route.clone(),
        caller_from: d.caller_from.clone(),
        caller_to: d.caller_to.clone(),
    }
}

#[test]
fn dialog_survives_a_kamailio_restart_on_both_backends() {
    for (backend, redis, mode) in setups() {
        let dir = scratch_dir("dlg-restart");
        let port = free_port();
        let d_strs = defines(&redis, mode);
        let refs: Vec<&str> = d_strs.iter().map(String::as_str).collect();
        let (a, b) = (Party::new("alice"), Party::new("bob"));
        let mut k = Kamailio::start_on(ROUTING, &refs, dir.clone(), port);
        let d = establish(&k, &a, &b, &format!("restart-{backend}"), false);
        k.stop();
        let k = Kamailio::start_on(ROUTING, &refs, dir.clone(), port);
        callee_request(&k, &b, &d, "BYE", 1, None);
        check_at(&a.peer.expect_request("BYE"), &a, 1, &b);
        drop(k);
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn mask_callid_the_callee_never_sees_the_callers_call_id() {
    for (backend, redis, mode) in setups() {
        let k = start(&redis, &[mode, &["MASK_CALLID"]].concat());
        let (a, b) = (Party::new("alice"), Party::new("bob"));
        let call_id = format!("secret-call-id-{backend}");
        let d = establish(&k, &a, &b, &call_id, true);
        // A re-INVITE from the callee and a BYE from the caller.
        callee_request(&k, &b, &d, "INVITE", 1, Some(b.contact_uri(1)));
        let re = a.peer.expect_request("INVITE");
        assert_eq!(re.header("call-id").as_deref(), Some(call_id.as_str()));
        respond(&a, &re, 200, Some(a.contact_uri(1)), "");
        let ok = b.peer.expect_reply(200, "INVITE");
        assert_eq!(
            ok.header("call-id").as_deref(),
            Some(d.callee_call_id.as_str())
        );
        assert!(!ok.text.contains(&call_id));
        caller_request(&k, &a, &d, "BYE", 2, None, "");
        let bye = b.peer.expect_request("BYE");
        assert_eq!(
            bye.header("call-id").as_deref(),
            Some(d.callee_call_id.as_str())
        );
        assert!(!bye.text.contains(&call_id));
        respond(&b, &bye, 200, None, "");
        let done = a.peer.expect_reply(200, "BYE");
        assert_eq!(done.header("call-id").as_deref(), Some(call_id.as_str()));
        // Billing knows the call by the caller's Call-ID.
        let line = format!("CALL BILLING - Call-ID: {call_id}, From: 01089672389, To: 13545769997");
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while !k.log_text().contains(&line) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(k.log_text().contains(&line), "{}", k.log_text());
    }
}

#[test]
fn basic_call_costs_at_most_four_store_operations() {
    // Stored tokens (sealed ones: tests/sealed_tokens.rs).
    let redis = Some(RedisServer::start());
    let k = start(&redis, &["NO_BILLING", STORED]);
    let (a, b) = (Party::new("alice"), Party::new("bob"));
    let client = redis::Client::open(redis.as_ref().unwrap().url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut con)
        .unwrap();
    let d = establish(&k, &a, &b, "budget-1", false);
    caller_request(&k, &a, &d, "BYE", 2, None, "");
    let bye = b.peer.expect_request("BYE");
    respond(&b, &bye, 200, None, "");
    a.peer.expect_reply(200, "BYE");
    std::thread::sleep(Duration::from_millis(200));
    let (data_commands, info) = common::redis::data_commands(&mut con);
    assert!(
        (1..=4).contains(&data_commands),
        "INVITE/180/200/ACK/BYE used {data_commands} store operations:\n{info}"
    );
}
