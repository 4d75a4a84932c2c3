//! Issue 15 (points 2, 4, 5, 6): topos_rs next to the modules an edge
//! deployment loads around it: nathelper (NATed caller and callee),
//! dialog + acc (states, CDRs, dlg.terminate_dlg through callee-side
//! proxies, mask_callid), serial forking (topos_request() again in
//! failure_route) and uac_auth() towards an authenticating carrier.
//!
//! NAT is simulated on loopback: a "NATed" peer sends from its socket
//! 127.0.0.1:<port> (its public address) but advertises a private address,
//! 127.0.0.77:<port> (caller) or 127.0.0.88:<port> (callee), in its Contact
//! and Via. A socket bound there (that the NAT would never let through)
//! shows what Kamailio sent to the private address instead. Each test
//! asserts the exact bytes the peers receive.

mod common;

use common::kamailio::{scratch_dir, Kamailio};
use common::sip::{Call, Msg, Peer};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const EDGE: &str = "tests/cfg/edge.cfg";
const ROUTING: &str = "tests/cfg/routing.cfg";
const CALLER_PRIVATE: &str = "127.0.0.77";
const CALLEE_PRIVATE: &str = "127.0.0.88";

// ---------------------------------------------------------------- helpers

struct Node {
    k: Kamailio,
    ctl: PathBuf,
}

fn node(cfg: &str, defines: &[&str]) -> Node {
    let dir = scratch_dir("edge");
    let ctl = dir.join("ctl.sock");
    let mut d = vec![format!("CTL_SOCKET=\"unix:{}\"", ctl.display())];
    d.extend(defines.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = d.iter().map(String::as_str).collect();
    Node {
        k: Kamailio::start(cfg, &refs),
        ctl,
    }
}

fn kamcmd(socket: &Path, args: &[&str]) -> String {
    let out = Command::new(common::kamailio::kamcmd_bin())
        .arg("-s")
        .arg(format!("unix:{}", socket.display()))
        .args(args)
        .output()
        .expect("running kamcmd");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One party: its socket (public address), the sent-by it writes in its
/// Via and the Contact it advertises (private when NATed).
struct Ua {
    peer: Peer,
    name: &'static str,
    sent_by: String,
    contact: String,
    /// The advertised private address, when NATed.
    private: Option<Peer>,
}

impl Ua {
    fn plain(name: &'static str) -> Ua {
        let peer = Peer::new();
        let sent_by = peer.addr.to_string();
        let contact = format!("sip:{name}@{}", peer.addr);
        Ua {
            peer,
            name,
            sent_by,
            contact,
            private: None,
        }
    }
    fn nated(name: &'static str, private_ip: &str) -> Ua {
        let peer = Peer::new();
        // Replies are recognised as NATed by their Contact's port alone
        // (nat_uac_test 128): the private port must differ from the public
        // one, which two random ports do not always.
        let (sock, addr) = loop {
            let sock =
                std::net::UdpSocket::bind((private_ip, 0)).expect("binding a private address");
            let addr = sock.local_addr().unwrap();
            if addr.port() != peer.port() {
                break (sock, addr);
            }
        };
        let private = Peer { sock, addr };
        Ua {
            peer,
            name,
            sent_by: addr.to_string(),
            contact: format!("sip:{name}@{addr}"),
            private: Some(private),
        }
    }
    /// The next `method` at this party's public address; if it does not
    /// come, what reached its private address instead.
    fn expect_public(&self, method: &str, what: &str) -> Msg {
        if let Some(m) = self.peer.recv_within(Duration::from_secs(3)) {
            assert_eq!(m.method(), Some(method), "{what}: got instead\n{}", m.text);
            return m;
        }
        let lost = self
            .private
            .as_ref()
            .and_then(|p| p.recv_within(Duration::from_millis(200)));
        panic!(
            "{what}: nothing at the public address {}; at the private address {}: {}",
            self.peer.addr,
            self.sent_by,
            lost.map(|m| format!("\n{}", m.text))
                .unwrap_or_else(|| "nothing".into())
        );
    }
    fn tag(&self) -> String {
        format!("{}-tag", self.name)
    }
    /// What the far side must never see of this party.
    fn secrets(&self) -> Vec<String> {
        let mut s = vec![format!(":{}", self.peer.port()), "alias=".to_string()];
        if self.sent_by != self.peer.addr.to_string() {
            s.push(self.sent_by.split(':').next().unwrap().to_string());
            s.push(format!(":{}", self.sent_by.split(':').nth(1).unwrap()));
        }
        s
    }
}

/// One side's view of the dialog.
#[derive(Clone, Debug)]
struct Leg {
    target: String,
    route: Vec<String>,
    from: String,
    to: String,
    call_id: String,
}

fn uri_of(nameaddr: &str) -> String {
    nameaddr
        .trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_string()
}

/// The callee's leg, learnt from the INVITE it received.
fn callee_leg(inv: &Msg, tag: &str) -> Leg {
    Leg {
        target: uri_of(&inv.header("contact").expect("INVITE without Contact")),
        route: inv.values("record-route"),
        from: format!("{};tag={tag}", inv.header("to").unwrap()),
        to: inv.header("from").unwrap(),
        call_id: inv.header("call-id").unwrap(),
    }
}

/// The caller's leg, learnt from the 2xx it received.
fn caller_leg(ok: &Msg) -> Leg {
    let mut route = ok.values("record-route");
    route.reverse();
    Leg {
        target: uri_of(&ok.header("contact").expect("2xx without Contact")),
        route,
        from: ok.header("from").unwrap(),
        to: ok.header("to").unwrap(),
        call_id: ok.header("call-id").unwrap(),
    }
}

fn request(ua: &Ua, leg: &Leg, method: &str, cseq: u32, contact: bool, extra: &str) -> String {
    let mut out = format!("{method} {} SIP/2.0\r\n", leg.target);
    out += &format!(
        "Via: SIP/2.0/UDP {};branch=z9hG4bK-{}-{method}-{cseq};rport\r\n",
        ua.sent_by, ua.name
    );
    for r in &leg.route {
        out += &format!("Route: {r}\r\n");
    }
    out += &format!(
        "Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n",
        leg.from, leg.to, leg.call_id
    );
    if contact {
        out += &format!("Contact: <{}>\r\n", ua.contact);
    }
    out += extra;
    out += "Content-Length: 0\r\n\r\n";
    out
}

fn invite(ua: &Ua, ruri: &str, call_id: &str, extra: &str) -> String {
    let leg = Leg {
        target: ruri.to_string(),
        route: vec![],
        from: format!("<sip:01089672389@example.com>;tag={}", ua.tag()),
        to: "<sip:13545769997@example.com>".into(),
        call_id: call_id.to_string(),
    };
    request(ua, &leg, "INVITE", 1, true, extra)
}

/// A reply of `ua` to `req`: Vias copied; for 1xx/2xx to an INVITE the
/// Record-Routes copied (with `extra_rr` on top) and `ua`'s Contact.
fn reply_text(ua: &Ua, req: &Msg, code: u32, extra_rr: Option<&str>, extra: &str) -> String {
    let mut out = format!("SIP/2.0 {code} Reason\r\n");
    for v in req.headers("via") {
        out += &format!("Via: {v}\r\n");
    }
    let invite_ok = req.method() == Some("INVITE") && (101..300).contains(&code);
    let new_dialog = !req.header("to").unwrap().contains("tag=");
    if invite_ok && new_dialog {
        if let Some(rr) = extra_rr {
            out += &format!("Record-Route: {rr}\r\n");
        }
        for rr in req.headers("record-route") {
            out += &format!("Record-Route: {rr}\r\n");
        }
    }
    out += &format!("From: {}\r\n", req.header("from").unwrap());
    let to = req.header("to").unwrap();
    if new_dialog && code > 100 {
        out += &format!("To: {to};tag={}\r\n", ua.tag());
    } else {
        out += &format!("To: {to}\r\n");
    }
    out += &format!(
        "Call-ID: {}\r\nCSeq: {}\r\n",
        req.header("call-id").unwrap(),
        req.header("cseq").unwrap()
    );
    if invite_ok {
        out += &format!("Contact: <{}>\r\n", ua.contact);
    }
    out += extra;
    out += "Content-Length: 0\r\n\r\n";
    out
}

fn reply(ua: &Ua, req: &Msg, code: u32) {
    ua.peer.send(req.from, &reply_text(ua, req, code, None, ""));
}

/// Every header line is `Name: value` and `Content-Length: 0` is there,
/// once: no lump landed on a deleted header.
fn assert_intact(m: &Msg) {
    let lines = m.header_lines();
    for l in &lines {
        let name = l.split(':').next().unwrap_or("");
        assert!(
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && l[name.len()..].starts_with(": "),
            "damaged header line {l:?} in:\n{}",
            m.text
        );
    }
    assert_eq!(
        lines.iter().filter(|l| **l == "Content-Length: 0").count(),
        1,
        "Content-Length damaged or gone:\n{}",
        m.text
    );
    assert_eq!(m.text.matches("Content-Length").count(), 1, "{}", m.text);
}

fn assert_no_leak(m: &Msg, of: &Ua) {
    for s in of.secrets() {
        assert!(
            !m.text.contains(&s),
            "{s:?} of {} leaked to the other side:\n{}",
            of.name,
            m.text
        );
    }
}

/// Exactly one Contact, exactly `<sip:TOKEN@kamailio>`; returns the URI.
fn assert_masked_contact(m: &Msg, k: &Kamailio) -> String {
    let cs = m.headers("contact");
    assert_eq!(cs.len(), 1, "not exactly one Contact:\n{}", m.text);
    let c = &cs[0];
    let uri = c
        .strip_prefix('<')
        .and_then(|c| c.strip_suffix('>'))
        .unwrap_or_else(|| panic!("Contact {c:?} is not <uri>:\n{}", m.text));
    let user = uri
        .strip_prefix("sip:")
        .and_then(|u| u.split_once('@'))
        .unwrap_or(("", ""));
    assert!(
        common::sip::is_token(user.0) && user.1 == k.addr.to_string(),
        "Contact is not a masked Kamailio Contact: {c:?} in:\n{}",
        m.text
    );
    uri.to_string()
}

/// A hidden message from the other side of `of`.
fn assert_hidden(m: &Msg, k: &Kamailio, of: &Ua) {
    assert_intact(m);
    assert_no_leak(m, of);
    if m.header("contact").is_some() {
        assert_masked_contact(m, k);
    }
}

fn billing_lines(log: &str, call_id: &str) -> Vec<String> {
    let want = format!("CALL BILLING - Call-ID: {call_id},");
    log.lines()
        .filter_map(|l| l.find(&want).map(|i| l[i..].to_string()))
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<String>) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ------------------------------------------------------------ 2. nathelper

/// A NATed caller (Contact and Via sent-by 127.0.0.77:5060) calls a plain
/// callee; re-INVITEs both ways, then the callee hangs up.
fn topos_or_not(define: &str, hidden: bool) -> Vec<&str> {
    if hidden {
        vec![define]
    } else {
        vec![define, "WITHOUT_TOPOS"]
    }
}

/// Hidden (with topos_rs): intact, no leak, masked Contact; without:
/// intact only. A failed check is collected (the call goes on, so one run
/// also shows whether the in-dialog requests still reach the NATed party).
fn check(errs: &mut Vec<String>, what: &str, m: &Msg, k: &Kamailio, of: &Ua, hidden: bool) {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if hidden {
            assert_hidden(m, k, of);
        } else {
            assert_intact(m);
        }
    }));
    if let Err(e) = r {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        eprintln!("CHECK FAILED ({what}): {msg}");
        errs.push(format!("{what}: {msg}"));
    }
}

/// Runs a check; a failure is collected (and printed), not raised.
fn soft(errs: &mut Vec<String>, what: &str, f: impl FnOnce()) {
    if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        eprintln!("CHECK FAILED ({what}): {msg}");
        errs.push(format!("{what}: {msg}"));
    }
}

fn no_errors(errs: Vec<String>) {
    assert!(
        errs.is_empty(),
        "{} failed check(s):\n\n{}",
        errs.len(),
        errs.join("\n\n")
    );
}

fn nated_caller_call(define: &str, hidden: bool) {
    let n = node(EDGE, &topos_or_not(define, hidden));
    let k = &n.k;
    let mut errs = Vec::new();
    let alice = Ua::nated("alice", CALLER_PRIVATE);
    let bob = Ua::plain("bob");
    let id = format!("nat-{}", define.to_lowercase());

    alice.peer.send(
        k.addr,
        &invite(&alice, &format!("sip:bob@{}", bob.peer.addr), &id, ""),
    );
    let inv = bob.peer.expect_request("INVITE");
    check(&mut errs, "inv", &inv, k, &alice, hidden);
    if hidden && inv.vias().len() != 1 {
        errs.push(format!("inv: not one Via:\n{}", inv.text));
    }

    bob.peer
        .send(inv.from, &reply_text(&bob, &inv, 200, None, ""));
    let ok = alice.peer.expect_reply(200, "INVITE");
    check(&mut errs, "ok", &ok, k, &bob, hidden);
    let mut a_leg = caller_leg(&ok);
    let mut b_leg = callee_leg(&inv, &bob.tag());

    alice
        .peer
        .send(k.addr, &request(&alice, &a_leg, "ACK", 1, false, ""));
    let ack = bob.peer.expect_request("ACK");
    check(&mut errs, "ack", &ack, k, &alice, hidden);

    // The callee's re-INVITE reaches the NATed caller at its public
    // source address (not 127.0.0.77:5060, where nobody listens).
    bob.peer
        .send(k.addr, &request(&bob, &b_leg, "INVITE", 2, true, ""));
    let reinv = alice.expect_public("INVITE", "the callee's re-INVITE to the NATed caller");
    check(&mut errs, "reinv", &reinv, k, &bob, hidden);
    alice
        .peer
        .send(reinv.from, &reply_text(&alice, &reinv, 200, None, ""));
    let ok2 = bob.peer.expect_reply(200, "INVITE");
    check(&mut errs, "ok2", &ok2, k, &alice, hidden);
    // A 2xx to a re-INVITE refreshes the remote target (RFC 3261 12.2.1.2).
    b_leg.target = uri_of(&ok2.header("contact").unwrap());
    bob.peer
        .send(k.addr, &request(&bob, &b_leg, "ACK", 2, false, ""));
    alice.expect_public("ACK", "the callee's ACK to the NATed caller's 200");

    // The caller's own re-INVITE (its NATed Contact again) reaches the
    // callee hidden and intact.
    alice
        .peer
        .send(k.addr, &request(&alice, &a_leg, "INVITE", 2, true, ""));
    let reinv_b = bob.peer.expect_request("INVITE");
    check(&mut errs, "reinv_b", &reinv_b, k, &alice, hidden);
    bob.peer
        .send(reinv_b.from, &reply_text(&bob, &reinv_b, 200, None, ""));
    let ok3 = alice.peer.expect_reply(200, "INVITE");
    check(&mut errs, "ok3", &ok3, k, &bob, hidden);
    a_leg.target = uri_of(&ok3.header("contact").unwrap());
    alice
        .peer
        .send(k.addr, &request(&alice, &a_leg, "ACK", 2, false, ""));
    bob.peer.expect_request("ACK");

    // The callee hangs up: the BYE reaches the caller's public address.
    bob.peer
        .send(k.addr, &request(&bob, &b_leg, "BYE", 3, false, ""));
    let bye = alice.expect_public("BYE", "the callee's BYE to the NATed caller");
    check(&mut errs, "bye", &bye, k, &bob, hidden);
    reply(&alice, &bye, 200);
    let bye_ok = bob.peer.expect_reply(200, "BYE");
    check(&mut errs, "bye_ok", &bye_ok, k, &alice, hidden);
    no_errors(errs);
}

#[test]
fn nat_fix_nated_contact_before_topos_request() {
    nated_caller_call("NAT_FIX_BEFORE", true);
}

#[test]
fn nat_fix_nated_contact_after_topos_request() {
    nated_caller_call("NAT_FIX_AFTER", true);
}

#[test]
fn nat_set_contact_alias_before_topos_request() {
    nated_caller_call("NAT_SET_BEFORE", true);
}

#[test]
fn nat_set_contact_alias_after_topos_request() {
    nated_caller_call("NAT_SET_AFTER", true);
}

#[test]
fn nat_add_contact_alias_and_handle_ruri_alias_before_topos_request() {
    nated_caller_call("NAT_ADD_BEFORE", true);
}

#[test]
fn nat_add_contact_alias_and_handle_ruri_alias_after_topos_request() {
    nated_caller_call("NAT_ADD_AFTER", true);
}

/// A NATed callee (its 180 and 200 advertise 127.0.0.88:5060), fixed in
/// onreply_route with fix_nated_contact().
fn nated_callee_call(define: &str, hidden: bool) {
    let n = node(EDGE, &topos_or_not(define, hidden));
    let k = &n.k;
    let mut errs = Vec::new();
    let alice = Ua::plain("alice");
    let bob = Ua::nated("bob", CALLEE_PRIVATE);
    let id = format!("natb-{}", define.to_lowercase());

    alice.peer.send(
        k.addr,
        &invite(&alice, &format!("sip:bob@{}", bob.peer.addr), &id, ""),
    );
    let inv = bob.peer.expect_request("INVITE");
    check(&mut errs, "inv", &inv, k, &alice, hidden);
    bob.peer
        .send(inv.from, &reply_text(&bob, &inv, 180, None, ""));
    let ringing = alice.peer.expect_reply(180, "INVITE");
    check(&mut errs, "ringing", &ringing, k, &bob, hidden);
    bob.peer
        .send(inv.from, &reply_text(&bob, &inv, 200, None, ""));
    let ok = alice.peer.expect_reply(200, "INVITE");
    check(&mut errs, "ok", &ok, k, &bob, hidden);
    let mut a_leg = caller_leg(&ok);
    let b_leg = callee_leg(&inv, &bob.tag());

    alice
        .peer
        .send(k.addr, &request(&alice, &a_leg, "ACK", 1, false, ""));
    let ack = bob.expect_public("ACK", "the caller's ACK to the NATed callee");
    check(&mut errs, "ack", &ack, k, &alice, hidden);

    alice
        .peer
        .send(k.addr, &request(&alice, &a_leg, "INVITE", 2, true, ""));
    let reinv = bob.expect_public("INVITE", "the caller's re-INVITE to the NATed callee");
    check(&mut errs, "reinv", &reinv, k, &alice, hidden);
    bob.peer
        .send(reinv.from, &reply_text(&bob, &reinv, 200, None, ""));
    let ok2 = alice.peer.expect_reply(200, "INVITE");
    check(&mut errs, "ok2", &ok2, k, &bob, hidden);
    a_leg.target = uri_of(&ok2.header("contact").unwrap());
    alice
        .peer
        .send(k.addr, &request(&alice, &a_leg, "ACK", 2, false, ""));
    bob.peer.expect_request("ACK");

    alice
        .peer
        .send(k.addr, &request(&alice, &a_leg, "BYE", 3, false, ""));
    let bye = bob.expect_public("BYE", "the caller's BYE to the NATed callee");
    check(&mut errs, "bye", &bye, k, &alice, hidden);
    reply(&bob, &bye, 200);
    let bye_ok = alice.peer.expect_reply(200, "BYE");
    check(&mut errs, "bye_ok", &bye_ok, k, &bob, hidden);
    let _ = b_leg;
    no_errors(errs);
}

#[test]
fn nat_callee_fix_nated_contact_in_onreply_route_before_topos_reply() {
    nated_callee_call("NAT_REPLY_BEFORE", true);
}

#[test]
fn nat_callee_fix_nated_contact_in_onreply_route_after_topos_reply() {
    nated_callee_call("NAT_REPLY_AFTER", true);
}

/// route_to_source=1 and no nathelper call: each side's in-dialog requests
/// go to the address its messages came from.
#[test]
fn nat_caller_with_route_to_source_and_no_nathelper() {
    nated_caller_call("ROUTE_TO_SOURCE", true);
}

#[test]
fn nat_callee_with_route_to_source_and_no_nathelper() {
    nated_callee_call("ROUTE_TO_SOURCE", true);
}

/// The same calls without topos_rs (same config, -A WITHOUT_TOPOS): the
/// NAT patterns route every in-dialog request to the public address and
/// damage no header. This holds the tests above to what works today.
#[test]
fn nat_reference_without_topos() {
    for d in [
        "NAT_FIX_BEFORE",
        "NAT_FIX_AFTER",
        "NAT_SET_BEFORE",
        "NAT_SET_AFTER",
        "NAT_ADD_BEFORE",
        "NAT_ADD_AFTER",
    ] {
        nated_caller_call(d, false);
    }
    nated_callee_call("NAT_REPLY_BEFORE", false);
    nated_callee_call("NAT_REPLY_AFTER", false);
}

// --------------------------------------------------------- 4. dialog + acc

/// The dialog's state in `kamcmd dlg.list` (None: no such dialog).
fn dlg_state(n: &Node, call_id: &str) -> Option<String> {
    let out = kamcmd(&n.ctl, &["dlg.list"]);
    // One block per dialog: find the one whose call-id is ours.
    let blocks: Vec<&str> = out.split("h_entry:").collect();
    blocks.iter().find(|b| b.contains(call_id)).map(|b| {
        b.lines()
            .find_map(|l| l.trim().strip_prefix("state: ").map(str::to_string))
            .unwrap_or_else(|| format!("? in {b}"))
    })
}

/// A call through the dialog module and acc (`defines` on top of DIALOG
/// and ACC): the dialog is confirmed (state 4) once the ACK passed and gone
/// after the BYE, which comes 1.1 s after the ACK; acc logs the BYE's 200
/// and the call's CDR. Returns Kamailio's log.
fn dialog_and_acc_call(extra: &[&str], id: &str) -> String {
    let defines: Vec<&str> = ["DIALOG", "ACC"].iter().chain(extra).copied().collect();
    let n = node(EDGE, &defines);
    let k = &n.k;
    let alice = Ua::plain("alice");
    let bob = Ua::plain("bob");
    alice.peer.send(
        k.addr,
        &invite(&alice, &format!("sip:bob@{}", bob.peer.addr), id, ""),
    );
    let inv = bob.peer.expect_request("INVITE");
    bob.peer
        .send(inv.from, &reply_text(&bob, &inv, 200, None, ""));
    let ok = alice.peer.expect_reply(200, "INVITE");
    let a_leg = caller_leg(&ok);
    alice
        .peer
        .send(k.addr, &request(&alice, &a_leg, "ACK", 1, false, ""));
    bob.peer.expect_request("ACK");
    // Confirmed (4) once the dialog module saw the ACK.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut state = dlg_state(&n, id);
    while state.as_deref() != Some("4") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        state = dlg_state(&n, id);
    }
    assert_eq!(
        state.as_deref(),
        Some("4"),
        "dialog state after the ACK; dlg.list:\n{}",
        kamcmd(&n.ctl, &["dlg.list"])
    );
    std::thread::sleep(Duration::from_millis(1100));
    alice
        .peer
        .send(k.addr, &request(&alice, &a_leg, "BYE", 2, false, ""));
    let bye = bob.peer.expect_request("BYE");
    reply(&bob, &bye, 200);
    alice.peer.expect_reply(200, "BYE");
    // Deleted after the BYE.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut state = dlg_state(&n, id);
    while state.is_some() && state.as_deref() != Some("5") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        state = dlg_state(&n, id);
    }
    assert!(
        state.is_none() || state.as_deref() == Some("5"),
        "dialog state after the BYE: {state:?}; dlg.list:\n{}",
        kamcmd(&n.ctl, &["dlg.list"])
    );
    // acc: the BYE transaction and the call's CDR in the log.
    let log = wait_for("acc's BYE line and CDR", Duration::from_secs(3), || {
        let log = k.log_text();
        let bye = log.lines().any(|l| {
            l.contains("ACC: transaction answered:")
                && l.contains("method=BYE")
                && l.contains(&format!("call_id={id}"))
                && l.contains("code=200")
        });
        let cdr = log
            .lines()
            .any(|l| l.contains("log_write_cdr()") && l.contains(&format!("call_id={id}")));
        (bye && cdr).then_some(log)
    });
    for l in log
        .lines()
        .filter(|l| l.contains("ACC: ") || l.contains("log_write_cdr()"))
    {
        eprintln!("acc: {l}");
    }
    log
}

#[test]
fn dialog_confirmed_after_ack_deleted_after_bye_and_acc_logs_the_call() {
    let id = "dlg-acc-1";
    let log = dialog_and_acc_call(&[], id);
    let cdr = log.lines().find(|l| l.contains("log_write_cdr()")).unwrap();
    assert!(cdr.contains("duration=1."), "CDR duration: {cdr}");
    assert_eq!(billing_lines(&log, id).len(), 1, "{log}");
}

/// Without topos_rs, the same config and call: the reference the test
/// above is held to (the acc and dialog lines exist as asserted).
#[test]
fn dialog_and_acc_reference_without_topos() {
    dialog_and_acc_call(&["WITHOUT_TOPOS"], "dlg-acc-ref");
}

/// A fake callee-side proxy: takes the next request, forwards it to the
/// callee with its own Via on top and its Route removed; returns it as the
/// proxy got it.
fn proxy_forward(proxy: &Peer, callee: &Peer, method: &str) -> Msg {
    let m = proxy.expect(&format!("a {method} through the callee-side proxy"), |m| {
        m.method() == Some(method)
    });
    let mut out = String::new();
    let mut first = true;
    let mut route_dropped = false;
    for l in m.text.split("\r\n") {
        if first {
            out += l;
            out += "\r\n";
            out += &format!(
                "Via: SIP/2.0/UDP {};branch=z9hG4bK-proxy-{method}\r\n",
                proxy.addr
            );
            first = false;
            continue;
        }
        if !route_dropped && l.starts_with("Route:") {
            route_dropped = true;
            continue;
        }
        out += l;
        out += "\r\n";
    }
    out.truncate(out.len() - 2);
    proxy.send(callee.addr, &out);
    m
}

/// The proxy relays the callee's reply back: its own Via removed.
fn proxy_relay_reply(proxy: &Peer, to: std::net::SocketAddr) {
    let r = proxy.expect("a reply at the proxy", |m| m.status().is_some());
    let text = r
        .text
        .split_once("\r\n")
        .map(|(first, rest)| {
            let rest = rest.split_once("\r\n").map(|(_, after)| after).unwrap();
            format!("{first}\r\n{rest}")
        })
        .unwrap();
    proxy.send(to, &text);
}

fn terminate_through_callee_proxy(mask_callid: bool) {
    let mut defines = vec!["DIALOG"];
    if mask_callid {
        defines.push("MASK_CALLID");
    }
    let n = node(EDGE, &defines);
    let k = &n.k;
    let alice = Ua::plain("alice");
    let bob = Ua::plain("bob");
    let proxy = Peer::new();
    let id = format!("dlg-proxy-{mask_callid}");
    alice.peer.send(
        k.addr,
        &invite(&alice, &format!("sip:bob@{}", bob.peer.addr), &id, ""),
    );
    let inv = bob.peer.expect_request("INVITE");
    let callee_call_id = inv.header("call-id").unwrap();
    if mask_callid {
        assert_ne!(
            callee_call_id, id,
            "mask_callid: the callee sees the caller's Call-ID"
        );
    }
    // The callee's 200 carries the Record-Route of its proxy.
    let proxy_rr = format!("<sip:{};lr>", proxy.addr);
    bob.peer
        .send(inv.from, &reply_text(&bob, &inv, 200, Some(&proxy_rr), ""));
    let ok = alice.peer.expect_reply(200, "INVITE");
    assert!(!ok.text.contains(&proxy.port().to_string()), "{}", ok.text);
    let a_leg = caller_leg(&ok);
    alice
        .peer
        .send(k.addr, &request(&alice, &a_leg, "ACK", 1, false, ""));
    // The ACK goes through the proxy.
    proxy_forward(&proxy, &bob.peer, "ACK");
    bob.peer.expect_request("ACK");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        dlg_state(&n, &id).as_deref(),
        Some("4"),
        "dlg.list:\n{}",
        kamcmd(&n.ctl, &["dlg.list"])
    );

    let out = kamcmd(
        &n.ctl,
        &["dlg.terminate_dlg", &id, &alice.tag(), &bob.tag()],
    );
    // Kamailio's BYE to the callee goes through the callee-side proxy.
    let bye_at_proxy = {
        let got = proxy.recv_within(Duration::from_secs(3));
        match got {
            Some(m) if m.method() == Some("BYE") => m,
            other => {
                let direct = bob.peer.recv_within(Duration::from_millis(500));
                panic!(
                    "dlg.terminate_dlg ({out}): no BYE through the callee-side proxy {}; \
                     the proxy got {:?}; the callee got directly:\n{}",
                    proxy.addr,
                    other.map(|m| m.text),
                    direct.map(|m| m.text).unwrap_or_else(|| "nothing".into())
                )
            }
        }
    };
    assert_eq!(
        bye_at_proxy.header("route").as_deref(),
        Some(proxy_rr.as_str()),
        "{}",
        bye_at_proxy.text
    );
    assert_eq!(
        bye_at_proxy.header("call-id").as_deref(),
        Some(callee_call_id.as_str()),
        "the BYE to the callee must carry the callee side's Call-ID:\n{}",
        bye_at_proxy.text
    );
    assert!(!bye_at_proxy
        .text
        .contains(&format!(":{}", alice.peer.port())));
    // Forward it; the callee answers; the caller gets its own BYE.
    let mut forwarded = bye_at_proxy.text.clone();
    forwarded = forwarded.replacen(
        "\r\n",
        &format!(
            "\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-proxy-bye\r\n",
            proxy.addr
        ),
        1,
    );
    proxy.send(bob.peer.addr, &forwarded);
    let bye = bob.peer.expect_request("BYE");
    reply(&bob, &bye, 200);
    proxy_relay_reply(&proxy, k.addr);
    let bye_a = alice.peer.expect_request("BYE");
    assert_eq!(bye_a.header("call-id").as_deref(), Some(id.as_str()));
    reply(&alice, &bye_a, 200);
}

#[test]
fn dlg_terminate_sends_the_callee_bye_through_its_record_routed_proxy() {
    terminate_through_callee_proxy(false);
}

#[test]
fn dlg_terminate_with_mask_callid_sends_the_callee_its_own_call_id() {
    terminate_through_callee_proxy(true);
}

// ------------------------------------------------------- 5. serial forking

#[test]
fn serial_forking_second_invite_has_one_contact_one_via_and_its_bye_routes() {
    let callee1 = Peer::new();
    let callee2 = Peer::new();
    let n = node(
        ROUTING,
        &[&format!("CALLEE2=\"sip:second@{}\"", callee2.addr)],
    );
    let k = &n.k;
    let caller = Peer::new();
    let mut call = Call::new("serial-1", &format!("sip:serial@{}", callee1.addr));
    caller.send(k.addr, &call.invite(&caller));
    let inv1 = callee1.expect_request("INVITE");
    callee1.reply(&inv1, 486, "Busy Here", "s1");
    callee1.expect_request("ACK");
    let inv2 = callee2.expect_request("INVITE");
    let contacts = inv2.values("contact");
    let vias = inv2.vias();
    callee2.reply(&inv2, 200, "OK", "s2");
    let ok = caller.expect_reply(200, "INVITE");
    call.confirm(&ok);
    caller.send(k.addr, &call.in_dialog(&caller, "ACK", 1));
    callee2.expect_request("ACK");
    let mut errs = Vec::new();
    if contacts.len() != 1 {
        errs.push(format!(
            "the second INVITE carries {} Contacts:\n{}",
            contacts.len(),
            inv2.text
        ));
    }
    if vias.len() != 1 {
        errs.push(format!(
            "the second INVITE carries {} Vias:\n{}",
            vias.len(),
            inv2.text
        ));
    }
    // The second callee hangs up towards the Contact it got (with two,
    // the last one first, then the other).
    let leg = callee_leg(&inv2, "s2");
    let b = Ua {
        sent_by: callee2.addr.to_string(),
        contact: format!("sip:second@{}", callee2.addr),
        peer: callee2,
        name: "second",
        private: None,
    };
    for (i, c) in contacts.iter().rev().enumerate() {
        let leg = Leg {
            target: uri_of(c),
            ..leg.clone()
        };
        b.peer
            .send(k.addr, &request(&b, &leg, "BYE", 2 + i as u32, false, ""));
        let at_caller = caller.recv_within(Duration::from_secs(2));
        if let Some(bye) = at_caller.as_ref().filter(|m| m.method() == Some("BYE")) {
            caller.send(k.addr, &reply_text_plain(bye));
        }
        let r = b.peer.expect("a final reply to the BYE", |m| {
            m.status().is_some_and(|s| s >= 200)
        });
        if r.status() == Some(200) {
            break;
        }
        errs.push(format!(
            "the second callee's BYE to the Contact {} got {:?}; the caller got {:?}",
            leg.target,
            r.first_line(),
            at_caller.map(|m| m.first_line().to_string())
        ));
    }
    no_errors(errs);
}

/// A 200 to `req` from a party that adds nothing.
fn reply_text_plain(req: &Msg) -> String {
    let mut out = "SIP/2.0 200 OK\r\n".to_string();
    for v in req.headers("via") {
        out += &format!("Via: {v}\r\n");
    }
    for h in ["from", "to", "call-id", "cseq"] {
        out += &format!("{}: {}\r\n", h, req.header(h).unwrap());
    }
    out += "Content-Length: 0\r\n\r\n";
    out
}

// ------------------------------------------------------ 6. uac_auth upstream

fn uac_auth_call(rehide: bool) {
    let mut defines = vec!["UAC_AUTH"];
    if rehide {
        defines.push("UAC_REHIDE");
    }
    let n = node(EDGE, &defines);
    let k = &n.k;
    let alice = Ua::plain("alice");
    let bob = Ua::plain("bob");
    let id = format!("uac-auth-{rehide}");
    // The caller's INVITE passed a caller-side proxy (its Record-Route)
    // and an upstream hop (its Via).
    let caller_rr = format!("<sip:{};lr;side=caller-proxy>", alice.peer.addr);
    let mut inv_text = invite(
        &alice,
        &format!("sip:13545769997@{}", bob.peer.addr),
        &id,
        &format!("Record-Route: {caller_rr}\r\n"),
    );
    inv_text = inv_text.replacen(
        ";rport\r\n",
        ";rport\r\nVia: SIP/2.0/UDP 192.168.1.100:5060;branch=z9hG4bK111111\r\n",
        1,
    );
    alice.peer.send(k.addr, &inv_text);
    let inv1 = bob.peer.expect_request("INVITE");
    assert_eq!(inv1.vias().len(), 1, "{}", inv1.text);
    // The carrier wants credentials.
    bob.peer.send(
        inv1.from,
        &reply_text(
            &bob,
            &inv1,
            407,
            None,
            "Proxy-Authenticate: Digest realm=\"carrier.test\", nonce=\"5f2c1a9e0b\", algorithm=MD5\r\n",
        ),
    );
    bob.peer.expect_request("ACK");
    let inv2 = bob.peer.expect_request("INVITE");
    let secrets = [
        format!(":{}", alice.peer.port()),
        "192.168.1.100".to_string(),
        "caller-proxy".to_string(),
    ];
    for s in &secrets {
        assert!(
            !inv2.text.contains(s.as_str()),
            "{s:?} of the caller side leaked in the authenticated INVITE:\n{}",
            inv2.text
        );
    }
    assert!(
        inv2.header("proxy-authorization")
            .is_some_and(|a| a.contains("username=\"carrieruser\"")),
        "{}",
        inv2.text
    );
    let mut errs = Vec::new();
    soft(&mut errs, "inv2 Via", || {
        assert_eq!(inv2.vias().len(), 1, "{}", inv2.text)
    });
    soft(&mut errs, "inv2 intact", || assert_intact(&inv2));
    soft(&mut errs, "inv2 Contact", || {
        assert_masked_contact(&inv2, k);
    });
    for rr in inv2.values("record-route") {
        soft(&mut errs, "inv2 Record-Route", || {
            assert!(
                rr.contains(&k.addr.to_string()),
                "foreign Record-Route {rr}:\n{}",
                inv2.text
            )
        });
    }
    // The call routes and is billed once.
    bob.peer
        .send(inv2.from, &reply_text(&bob, &inv2, 200, None, ""));
    let ok = alice.peer.expect_reply(200, "INVITE");
    assert_hidden(&ok, k, &bob);
    let mut a_leg = caller_leg(&ok);
    // The caller-side proxy has taken its own Route off already.
    a_leg.route.retain(|r| !r.contains("caller-proxy"));
    alice
        .peer
        .send(k.addr, &request(&alice, &a_leg, "ACK", 1, false, ""));
    let ack = bob.peer.expect_request("ACK");
    assert_hidden(&ack, k, &alice);
    std::thread::sleep(Duration::from_millis(1100));
    alice
        .peer
        .send(k.addr, &request(&alice, &a_leg, "BYE", 2, false, ""));
    let bye = bob.peer.expect_request("BYE");
    assert_hidden(&bye, k, &alice);
    reply(&bob, &bye, 200);
    alice.peer.expect_reply(200, "BYE");
    std::thread::sleep(Duration::from_millis(300));
    let lines = billing_lines(&k.log_text(), &id);
    assert_eq!(lines.len(), 1, "billing lines: {lines:?}");
    assert!(lines[0].contains("Duration: 1 sec"), "{lines:?}");
    no_errors(errs);
}

#[test]
fn uac_auth_reinvite_is_hidden_routed_and_billed_once() {
    uac_auth_call(false);
}

#[test]
fn uac_auth_reinvite_hidden_again_in_failure_route_is_hidden_routed_and_billed_once() {
    uac_auth_call(true);
}
