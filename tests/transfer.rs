//! Issue 21, end to end against the real Kamailio: call transfer across
//! the hiding boundary. A transferor A in call 1 with B and call 2 with C
//! (both through Kamailio) sends B a REFER whose Refer-To is C's masked
//! Contact with a Replaces of call 2; B's INVITE to it reaches C through
//! C's route set, as a new hidden dialog with its own bill, naming call 2
//! as C knows it. A token is a capability for that INVITE only; a
//! Replaces from outside that names a masked Call-ID is mapped back;
//! NOTIFY sipfrag bodies are cut to their status line.
//!
//! Each party has its own socket, a Contact and a "proxy" Record-Route
//! with markers (see tests/dialog_hiding.rs); no party may ever see
//! another side's.

mod common;

use common::ctl::{field, kamcmd};
use common::kamailio::{scratch_dir, Kamailio};
use common::sip::{Msg, Peer};
use std::time::Duration;

const ROUTING: &str = "tests/cfg/routing.cfg";
const STORED: &str = "TOKEN_MODE=\"stored\"";

struct Party {
    peer: Peer,
    name: &'static str,
}

impl Party {
    fn new(name: &'static str) -> Party {
        Party {
            peer: Peer::new(),
            name,
        }
    }
    fn tag(&self, call: &str) -> String {
        format!("{}-{call}", self.name)
    }
    fn aor(&self) -> String {
        format!("sip:{}@example.com", self.name)
    }
    fn contact(&self) -> String {
        format!(
            "sip:{}@{};secret={}-contact",
            self.name, self.peer.addr, self.name
        )
    }
    fn proxy_rr(&self) -> String {
        format!("<sip:{};lr;side={}-proxy>", self.peer.addr, self.name)
    }
    /// What no other party may ever see of this one.
    fn secrets(&self) -> Vec<String> {
        vec![
            format!(":{}", self.peer.port()),
            format!("{}-contact", self.name),
            format!("{}-proxy", self.name),
        ]
    }
}

fn assert_no_leak(m: &Msg, of: &Party) {
    for s in of.secrets() {
        assert!(
            !m.text.contains(&s),
            "{s:?} of {} leaked:\n{}",
            of.name,
            m.text
        );
    }
}

/// The token of a masked Contact URI: its `tps` parameter (contact_mode
/// 1), else its user part.
fn token_of_uri(uri: &str) -> &str {
    match uri.split(";tps=").nth(1) {
        Some(p) => p.split([';', '?', '>']).next().unwrap_or(""),
        None => uri
            .strip_prefix("sip:")
            .and_then(|u| u.split('@').next())
            .unwrap_or(""),
    }
}

/// The URI of a masked Contact at Kamailio (with a token).
fn masked_contact(m: &Msg, k: &Kamailio) -> String {
    let uri = m.contact_uri();
    assert!(
        common::sip::is_token(token_of_uri(&uri)),
        "not a token: {uri}"
    );
    assert!(
        uri.contains(&format!("@{}", k.addr)),
        "not at Kamailio: {uri}"
    );
    uri
}

fn body(m: &Msg) -> &str {
    m.text.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// One party's view of a dialog.
#[derive(Clone, Debug)]
struct Leg {
    call_id: String,
    local_tag: String,
    remote_tag: String,
    local_uri: String,
    remote_uri: String,
    remote_target: String,
    route: Vec<String>,
    cseq: u32,
}

/// A request of `from` in its dialog `leg`, sent to Kamailio.
fn send_in(k: &Kamailio, from: &Party, leg: &mut Leg, method: &str, extra: &str, body: &str) {
    leg.cseq += 1;
    let mut out = format!("{method} {} SIP/2.0\r\n", leg.remote_target);
    out += &format!(
        "Via: SIP/2.0/UDP {};branch=z9hG4bK-{}-{method}-{}-{};rport\r\n",
        from.peer.addr, leg.call_id, leg.cseq, from.name
    );
    for r in &leg.route {
        out += &format!("Route: {r}\r\n");
    }
    out += &format!(
        "Max-Forwards: 70\r\nFrom: <{}>;tag={}\r\nTo: <{}>;tag={}\r\nCall-ID: {}\r\nCSeq: {} {method}\r\n",
        leg.local_uri, leg.local_tag, leg.remote_uri, leg.remote_tag, leg.call_id, leg.cseq
    );
    if method != "BYE" && method != "ACK" {
        out += &format!("Contact: <{}>\r\n", from.contact());
    }
    out += extra;
    out += &format!("Content-Length: {}\r\n\r\n{body}", body.len());
    from.peer.send(k.addr, &out);
}

/// A reply of `from` to `req`: its Vias, `from`'s proxy Record-Route above
/// the request's own (dialog-creating INVITE), a To-tag, a Contact.
fn respond(from: &Party, req: &Msg, code: &str, to_tag: &str) {
    let mut out = format!("SIP/2.0 {code}\r\n");
    for v in req.headers("via") {
        out += &format!("Via: {v}\r\n");
    }
    let to = req.header("to").unwrap();
    let creating = req.method() == Some("INVITE") && !to.contains("tag=");
    if creating && code.starts_with('2') {
        out += &format!("Record-Route: {}\r\n", from.proxy_rr());
        for rr in req.headers("record-route") {
            out += &format!("Record-Route: {rr}\r\n");
        }
    }
    out += &format!("From: {}\r\n", req.header("from").unwrap());
    if to.contains("tag=") {
        out += &format!("To: {to}\r\n");
    } else {
        out += &format!("To: {to};tag={to_tag}\r\n");
    }
    out += &format!(
        "Call-ID: {}\r\nCSeq: {}\r\n",
        req.header("call-id").unwrap(),
        req.header("cseq").unwrap()
    );
    if req.method() == Some("INVITE") && code.starts_with('2') {
        out += &format!("Contact: <{}>\r\n", from.contact());
    }
    out += "Content-Length: 0\r\n\r\n";
    from.peer.send(req.from, &out);
}

/// Caller `x` calls `y` through Kamailio (INVITE, 200, ACK): the dialog as
/// each of them sees it.
fn call(k: &Kamailio, x: &Party, y: &Party, call_id: &str) -> (Leg, Leg) {
    let invite = format!(
        "INVITE sip:{}@{} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-{call_id}-inv;rport\r\n\
         Record-Route: {}\r\nMax-Forwards: 70\r\nFrom: <{}>;tag={}\r\nTo: <{}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <{}>\r\nContent-Length: 0\r\n\r\n",
        y.name,
        y.peer.addr,
        x.peer.addr,
        x.proxy_rr(),
        x.aor(),
        x.tag(call_id),
        y.aor(),
        x.contact()
    );
    x.peer.send(k.addr, &invite);
    let inv = y.peer.expect_request("INVITE");
    assert_no_leak(&inv, x);
    respond(y, &inv, "200 OK", &y.tag(call_id));
    let ok = x.peer.expect_reply(200, "INVITE");
    assert_no_leak(&ok, y);
    let mut x_leg = Leg {
        call_id: call_id.to_string(),
        local_tag: x.tag(call_id),
        remote_tag: y.tag(call_id),
        local_uri: x.aor(),
        remote_uri: y.aor(),
        remote_target: masked_contact(&ok, k),
        route: vec![ok.headers("record-route")[0].clone()],
        // The ACK below takes the INVITE's CSeq (1).
        cseq: 0,
    };
    let y_leg = Leg {
        call_id: inv.header("call-id").unwrap(),
        local_tag: y.tag(call_id),
        remote_tag: x.tag(call_id),
        local_uri: y.aor(),
        remote_uri: x.aor(),
        remote_target: masked_contact(&inv, k),
        route: inv.headers("record-route"),
        cseq: 0,
    };
    send_in(k, x, &mut x_leg, "ACK", "", "");
    y.peer.expect_request("ACK");
    (x_leg, y_leg)
}

/// `Replaces=` for a Refer-To: the dialog as the target (its own tag the
/// to-tag) knows it, percent-encoded.
fn replaces_param(call_id: &str, to_tag: &str, from_tag: &str) -> String {
    format!("{call_id}%3Bto-tag%3D{to_tag}%3Bfrom-tag%3D{from_tag}").replace('@', "%40")
}

/// The URI of a Refer-To value and its decoded Replaces.
fn refer_to_parts(refer_to: &str) -> (String, Option<String>) {
    let uri = refer_to
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_string();
    match uri.split_once('?') {
        Some((u, h)) => {
            let rep = h.strip_prefix("Replaces=").map(|r| {
                r.replace("%3B", ";")
                    .replace("%3D", "=")
                    .replace("%40", "@")
            });
            (u.to_string(), rep)
        }
        None => (uri, None),
    }
}

/// B's INVITE to the URI a Refer-To gave it, with that Replaces.
fn transferee_invite(k: &Kamailio, b: &Party, call_id: &str, uri: &str, replaces: Option<&str>) {
    let mut out = format!(
        "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-{call_id}-inv;rport\r\n\
         Record-Route: {}\r\nMax-Forwards: 70\r\nFrom: <{}>;tag={}\r\nTo: <{uri}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <{}>\r\n",
        b.peer.addr,
        b.proxy_rr(),
        b.aor(),
        b.tag(call_id),
        b.contact()
    );
    if let Some(r) = replaces {
        out += &format!("Replaces: {r}\r\n");
    }
    out += "Content-Length: 0\r\n\r\n";
    b.peer.send(k.addr, &out);
}

fn start(mode: &str, more: &[&str]) -> Kamailio {
    let mut d: Vec<&str> = more.to_vec();
    if mode == "stored" {
        d.push(STORED);
    }
    Kamailio::start(ROUTING, &d)
}

/// Which side of each call the transferor A is on.
#[derive(Clone, Copy, Debug)]
struct Sides {
    a_calls_b: bool,
    a_calls_c: bool,
}

/// Calls 1 (A and B) and 2 (A and C) up: A's legs, B's leg, C's leg.
fn two_calls(k: &Kamailio, a: &Party, b: &Party, c: &Party, id: &str, s: Sides) -> [Leg; 4] {
    let (a1, b1) = if s.a_calls_b {
        call(k, a, b, &format!("call1-{id}"))
    } else {
        let (b1, a1) = call(k, b, a, &format!("call1-{id}"));
        (a1, b1)
    };
    let (a2, c2) = if s.a_calls_c {
        call(k, a, c, &format!("call2-{id}"))
    } else {
        let (c2, a2) = call(k, c, a, &format!("call2-{id}"));
        (a2, c2)
    };
    [a1, b1, a2, c2]
}

/// A sends B the attended transfer's REFER (call 1): Refer-To C's masked
/// Contact with a Replaces of call 2 as A knows it. What B gets.
fn refer(k: &Kamailio, a: &Party, b: &Party, a1: &mut Leg, a2: &Leg) -> Msg {
    let refer_to = format!(
        "<{}?Replaces={}>",
        a2.remote_target,
        replaces_param(&a2.call_id, &a2.remote_tag, &a2.local_tag)
    );
    let extra = format!(
        "Refer-To: {refer_to}\r\nReferred-By: <{}>\r\nEvent: refer\r\n",
        a.aor()
    );
    send_in(k, a, a1, "REFER", &extra, "");
    b.peer.expect_request("REFER")
}

/// Issue 21 point 1: the attended transfer, whichever side of call 1 and
/// of call 2 the transferor is on, mask_callid off and on, sealed and
/// stored tokens. B gets a Refer-To at Kamailio that shows nothing of C;
/// its INVITE reaches C's own Contact through C's proxy with one Via,
/// hidden as a new dialog, with a Replaces naming call 2 as C knows it;
/// C's answer reaches B hidden; the new call is billed on its own; B's
/// NOTIFY reaches A cut to its status line.
#[test]
fn attended_transfer_reaches_the_target_through_its_route_set() {
    for mode in ["sealed", "stored"] {
        for (mask, contact_mode) in [(false, 0), (true, 0), (true, 1)] {
            let mut more: Vec<&str> = if mask { vec!["MASK_CALLID"] } else { vec![] };
            if contact_mode == 1 {
                // The token in a parameter, the user part the party's own.
                more.push("CONTACT_MODE=1");
            }
            let k = start(mode, &more);
            let (a, b, c) = (Party::new("alice"), Party::new("bob"), Party::new("carol"));
            for (n, s) in [(true, true), (false, true), (true, false), (false, false)]
                .into_iter()
                .enumerate()
            {
                let sides = Sides {
                    a_calls_b: s.0,
                    a_calls_c: s.1,
                };
                let what = format!("{mode} mask={mask} contact_mode={contact_mode} {sides:?}");
                let id = format!("{mode}-{mask}-{contact_mode}-{n}");
                let [mut a1, b1, a2, mut c2] = two_calls(&k, &a, &b, &c, &id, sides);
                if mask {
                    // A knows call 2 by the Call-ID of its own side.
                    assert_ne!(a2.call_id, c2.call_id, "{what}");
                }

                let got = refer(&k, &a, &b, &mut a1, &a2);
                assert_no_leak(&got, &a);
                assert_no_leak(&got, &c);
                assert_eq!(
                    got.header("referred-by"),
                    Some(format!("<{}>", a.aor())),
                    "{what}"
                );
                let (uri, rep) = refer_to_parts(&got.header("refer-to").unwrap());
                assert!(common::sip::is_token(token_of_uri(&uri)), "{what}: {uri}");
                assert!(uri.contains(&format!("@{}", k.addr)), "{what}: {uri}");
                // A transfer token in place of C's masked Contact.
                assert_ne!(uri, a2.remote_target, "{what}");
                let a_view = format!(
                    "{};to-tag={};from-tag={}",
                    a2.call_id, a2.remote_tag, a2.local_tag
                );
                assert_eq!(rep.as_deref(), Some(a_view.as_str()), "{what}");
                respond(&b, &got, "202 Accepted", "");
                a.peer.expect_reply(202, "REFER");

                let xfer = format!("xfer-{id}");
                transferee_invite(&k, &b, &xfer, &uri, rep.as_deref());
                let inv = c.peer.expect_request("INVITE");
                assert_no_leak(&inv, &b);
                assert_no_leak(&inv, &a);
                let ruri = inv.first_line().split(' ').nth(1).unwrap().to_string();
                assert_eq!(ruri, c.contact(), "{what}:\n{}", inv.text);
                assert_eq!(inv.headers("route"), vec![c.proxy_rr()], "{what}");
                assert_eq!(inv.vias().len(), 1, "{what}");
                assert_eq!(
                    inv.header("replaces"),
                    Some(format!(
                        "{};to-tag={};from-tag={}",
                        c2.call_id, c2.local_tag, c2.remote_tag
                    )),
                    "{what}:\n{}",
                    inv.text
                );
                // A new dialog: Kamailio's Record-Route and a new token.
                assert_eq!(inv.headers("record-route").len(), 1, "{what}");
                let b_token = masked_contact(&inv, &k);
                assert_ne!(b_token, c2.remote_target, "{what}");
                assert_eq!(inv.header("call-id").unwrap() == xfer, !mask, "{what}");
                b.peer.expect_reply(100, "INVITE");
                respond(&c, &inv, "200 OK", &c.tag(&xfer));
                let ok = b.peer.expect_reply(200, "INVITE");
                assert_no_leak(&ok, &c);
                assert_no_leak(&ok, &a);
                assert_eq!(ok.header("call-id").as_deref(), Some(xfer.as_str()));
                let mut bx = Leg {
                    call_id: xfer.clone(),
                    local_tag: b.tag(&xfer),
                    remote_tag: c.tag(&xfer),
                    local_uri: b.aor(),
                    remote_uri: uri.clone(),
                    remote_target: masked_contact(&ok, &k),
                    route: vec![ok.headers("record-route")[0].clone()],
                    cseq: 0,
                };
                send_in(&k, &b, &mut bx, "ACK", "", "");
                let ack = c.peer.expect_request("ACK");
                assert_no_leak(&ack, &b);

                // B tells A how it went: the sipfrag's Via and Contact (B's
                // side) never reach A.
                let mut b1 = b1;
                let frag = format!(
                    "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKfrag\r\nContact: <{}>\r\n",
                    b.peer.addr,
                    b.contact()
                );
                send_in(
                    &k,
                    &b,
                    &mut b1,
                    "NOTIFY",
                    "Event: refer\r\nSubscription-State: terminated;reason=noresource\r\n\
                     Content-Type: message/sipfrag;version=2.0\r\n",
                    &frag,
                );
                let notify = a.peer.expect_request("NOTIFY");
                assert_no_leak(&notify, &b);
                assert_eq!(body(&notify), "SIP/2.0 200 OK\r\n", "{what}");
                assert_eq!(notify.header("content-length").as_deref(), Some("16"));
                respond(&a, &notify, "200 OK", "");
                b.peer.expect_reply(200, "NOTIFY");

                // C ends call 2 (replaced), A ends call 1.
                send_in(&k, &c, &mut c2, "BYE", "", "");
                let bye = a.peer.expect_request("BYE");
                assert_no_leak(&bye, &c);
                respond(&a, &bye, "200 OK", "");
                c.peer.expect_reply(200, "BYE");
                send_in(&k, &a, &mut a1, "BYE", "", "");
                let bye = b.peer.expect_request("BYE");
                respond(&b, &bye, "200 OK", "");
                a.peer.expect_reply(200, "BYE");
                // The transferred call is a call of its own, billed once.
                send_in(&k, &b, &mut bx, "BYE", "", "");
                let bye = c.peer.expect_request("BYE");
                assert_no_leak(&bye, &b);
                let billed = bye.header("x-billed").unwrap_or_default();
                assert!(
                    !billed.is_empty() && !billed.starts_with("none"),
                    "{what}: the transferred call was not billed: {billed:?}\n{}",
                    k.log_text()
                );
                respond(&c, &bye, "200 OK", "");
                b.peer.expect_reply(200, "BYE");
            }
        }
    }
}

/// Issue 21 points 4 and 5: a blind transfer (Refer-To a plain URI)
/// passes unchanged from either side of call 1, and B's INVITE to it is a
/// new call like any other; NOTIFY sipfrag bodies reach the other side cut
/// to their status line, with a Content-Length that fits it (one that is
/// nothing but a status line passes as it is); Referred-By passes
/// unchanged; a sipfrag without a status line is refused (fail closed).
#[test]
fn blind_transfer_passes_and_notify_sipfrags_are_cut_to_the_status_line() {
    for mode in ["sealed", "stored"] {
        let k = start(mode, &[]);
        let (a, b, carol) = (Party::new("alice"), Party::new("bob"), Party::new("carol"));
        let id = format!("blind-{mode}");
        let (mut a1, mut b1) = call(&k, &a, &b, &id);
        // Either side refers the other to carol.
        for (from, to, leg) in [(&a, &b, &mut a1), (&b, &a, &mut b1)] {
            let refer_to = format!("<sip:carol@{}>", carol.peer.addr);
            let extra = format!(
                "Refer-To: {refer_to}\r\nReferred-By: \"{}\" <{}>;x=1\r\nEvent: refer\r\n",
                from.name,
                from.aor()
            );
            send_in(&k, from, leg, "REFER", &extra, "");
            let got = to.peer.expect_request("REFER");
            assert_no_leak(&got, from);
            assert_eq!(got.header("refer-to"), Some(refer_to));
            assert_eq!(
                got.header("referred-by"),
                Some(format!("\"{}\" <{}>;x=1", from.name, from.aor()))
            );
            respond(to, &got, "202 Accepted", "");
            from.peer.expect_reply(202, "REFER");
        }
        // B follows A's REFER: a new call to carol, hidden as any other.
        let xfer = format!("blind-x-{mode}");
        let carol_uri = format!("sip:carol@{}", carol.peer.addr);
        transferee_invite(&k, &b, &xfer, &carol_uri, None);
        let inv = carol.peer.expect_request("INVITE");
        assert_no_leak(&inv, &b);
        assert_eq!(inv.vias().len(), 1);
        masked_contact(&inv, &k);
        respond(&carol, &inv, "200 OK", "carol-x");
        let ok = b.peer.expect_reply(200, "INVITE");
        // B knows carol's address (A gave it), nothing else of her side.
        for secret in ["carol-contact", "carol-proxy"] {
            assert!(!ok.text.contains(secret), "{}", ok.text);
        }
        masked_contact(&ok, &k);

        // NOTIFYs with sipfrag bodies, in both directions.
        for (b_sends, status) in [
            (true, "SIP/2.0 100 Trying\r\n"),
            (true, "SIP/2.0 200 OK\r\n"),
            (false, "SIP/2.0 486 Busy Here\r\n"),
        ] {
            let (from, to, leg) = if b_sends {
                (&b, &a, &mut b1)
            } else {
                (&a, &b, &mut a1)
            };
            let frag = format!(
                "{status}Via: SIP/2.0/UDP {};branch=z9hG4bKfrag;received=10.1.2.3\r\n\
                 Record-Route: {}\r\nContact: <{}>\r\nContent-Length: 0\r\n\r\n",
                from.peer.addr,
                from.proxy_rr(),
                from.contact()
            );
            let whole = status.starts_with("SIP/2.0 100");
            let sent = if whole { status.to_string() } else { frag };
            send_in(
                &k,
                from,
                leg,
                "NOTIFY",
                "Event: refer\r\nSubscription-State: active;expires=60\r\n\
                 Content-Type: message/sipfrag;version=2.0\r\n",
                &sent,
            );
            let n = to.peer.expect_request("NOTIFY");
            assert_no_leak(&n, from);
            assert!(!n.text.contains("10.1.2.3"), "{}", n.text);
            assert_eq!(body(&n), status, "{mode}:\n{}", n.text);
            assert_eq!(
                n.header("content-length"),
                Some(status.len().to_string()),
                "{}",
                n.text
            );
            respond(to, &n, "200 OK", "");
            from.peer.expect_reply(200, "NOTIFY");
        }
        // A sipfrag that does not start with a status line: refused, and
        // nothing reaches A.
        let frag = format!("Via: SIP/2.0/UDP {};branch=z9hG4bKx\r\n", b.peer.addr);
        send_in(
            &k,
            &b,
            &mut b1,
            "NOTIFY",
            "Event: refer\r\nSubscription-State: terminated\r\nContent-Type: message/sipfrag\r\n",
            &frag,
        );
        b.peer.expect_reply(404, "NOTIFY");
        a.peer.expect_silence(Duration::from_millis(300));
        assert!(
            k.log_text().contains(
                "topos_request: refused: a NOTIFY whose message/sipfrag body does not start \
                 with a status line"
            ),
            "{}",
            k.log_text()
        );
    }
}

/// What a capability test does with the token of call 2.
#[derive(Clone, Copy, Debug)]
enum Misuse {
    /// B's INVITE to the Refer-To's token without a Replaces.
    InviteWithoutReplaces,
    /// The same with C's masked Contact itself (the token A holds).
    DialogTokenWithoutReplaces,
    /// B's INVITE to the Refer-To's token, with a Replaces of call 1.
    OtherDialog,
    /// B uses the Refer-To's token for an in-dialog request of call 2
    /// (with call 2's Call-ID and tags, which the Replaces told it).
    InDialog,
    /// A's REFER names the token without a Replaces.
    ReferWithoutReplaces,
    /// A's REFER names the token with a Replaces of call 1.
    ReferOtherDialog,
}

/// Issue 21 point 2: a token is a capability for exactly one thing, the
/// INVITE that replaces its own dialog. An INVITE with it and no Replaces
/// or another dialog's, an in-dialog request with the Refer-To's token, a
/// REFER that names it without its dialog's Replaces: each refused with a
/// clear line (the example config answers 403 or 404), C never hears of
/// it, and nothing changes (call 2 goes on, the transfer still works).
#[test]
fn a_token_opens_only_the_invite_that_replaces_its_dialog() {
    use Misuse::*;
    for mode in ["sealed", "stored"] {
        for misuse in [
            InviteWithoutReplaces,
            DialogTokenWithoutReplaces,
            OtherDialog,
            InDialog,
            ReferWithoutReplaces,
            ReferOtherDialog,
        ] {
            let what = format!("{mode} {misuse:?}");
            let ctl = scratch_dir("xfer-cap").join("ctl.sock");
            let ctl_define = format!("CTL_SOCKET=\"unix:{}\"", ctl.display());
            let k = start(mode, &[&ctl_define]);
            let (a, b, c) = (Party::new("alice"), Party::new("bob"), Party::new("carol"));
            let sides = Sides {
                a_calls_b: true,
                a_calls_c: true,
            };
            let id = format!("cap-{mode}-{misuse:?}");
            let [mut a1, b1, mut a2, c2] = two_calls(&k, &a, &b, &c, &id, sides);
            let call1 = format!(
                "{};to-tag={};from-tag={}",
                b1.call_id, b1.local_tag, b1.remote_tag
            );
            let call2 = format!(
                "{};to-tag={};from-tag={}",
                a2.call_id, a2.remote_tag, a2.local_tag
            );
            let (line, status) = match misuse {
                ReferWithoutReplaces | ReferOtherDialog => {
                    let refer_to = match misuse {
                        ReferWithoutReplaces => format!("<{}>", a2.remote_target),
                        _ => format!(
                            "<{}?Replaces={}>",
                            a2.remote_target,
                            replaces_param(&b1.call_id, &b1.local_tag, &b1.remote_tag)
                        ),
                    };
                    send_in(
                        &k,
                        &a,
                        &mut a1,
                        "REFER",
                        &format!("Refer-To: {refer_to}\r\n"),
                        "",
                    );
                    a.peer.expect_reply(404, "REFER");
                    b.peer.expect_silence(Duration::from_millis(200));
                    let line = match misuse {
                        ReferWithoutReplaces => {
                            "topos_request: refused: a Refer-To naming a topos_rs token without a \
                             Replaces"
                        }
                        _ if mode == "sealed" => {
                            "topos_request: refused: a Refer-To naming a topos_rs token: it does \
                             not open for the dialog its Replaces names"
                        }
                        _ => {
                            "topos_request: refused: a Refer-To naming a topos_rs token: its dialog"
                        }
                    };
                    (line, 404)
                }
                _ => {
                    let got = refer(&k, &a, &b, &mut a1, &a2);
                    let (uri, _) = refer_to_parts(&got.header("refer-to").unwrap());
                    respond(&b, &got, "202 Accepted", "");
                    a.peer.expect_reply(202, "REFER");
                    match misuse {
                        InviteWithoutReplaces | DialogTokenWithoutReplaces => {
                            let target = match misuse {
                                InviteWithoutReplaces => &uri,
                                _ => &a2.remote_target,
                            };
                            transferee_invite(&k, &b, &format!("new-{id}"), target, None);
                            b.peer.expect_reply(403, "INVITE");
                            (
                                "topos_request: refused: an INVITE to a topos_rs token without a \
                                 Replaces",
                                403,
                            )
                        }
                        OtherDialog => {
                            transferee_invite(&k, &b, &format!("new-{id}"), &uri, Some(&call1));
                            b.peer.expect_reply(403, "INVITE");
                            (
                                if mode == "sealed" {
                                    "topos_request: refused: an INVITE to a topos_rs token: it \
                                     does not open for the dialog its Replaces names"
                                } else {
                                    "topos_request: refused: an INVITE to a topos_rs token: its \
                                     dialog"
                                },
                                403,
                            )
                        }
                        _ => {
                            // B poses as A in call 2, with the Refer-To's token.
                            let mut spoof = a2.clone();
                            spoof.remote_target = uri.clone();
                            send_in(&k, &b, &mut spoof, "INFO", "", "");
                            b.peer.expect_reply(404, "INFO");
                            (
                                if mode == "sealed" {
                                    "topos_request: refused: a transfer token (given in a \
                                     Refer-To) opens only an INVITE that replaces its dialog"
                                } else {
                                    "topos_request: refused: in-dialog request without a \
                                     topos_rs token"
                                },
                                404,
                            )
                        }
                    }
                }
            };
            c.peer.expect_silence(Duration::from_millis(300));
            assert!(
                k.log_text().contains(line),
                "{what}: {line}\n{}",
                k.log_text()
            );
            let (_, stats) = kamcmd(&ctl, &["topos_rs.stats"]);
            assert_eq!(
                field(&stats, "token_misses"),
                "1",
                "{what} ({status}): {stats}"
            );
            // Nothing changed: call 2 goes on, and the transfer works.
            send_in(&k, &a, &mut a2, "INFO", "", "");
            let info = c.peer.expect_request("INFO");
            respond(&c, &info, "200 OK", "");
            a.peer.expect_reply(200, "INFO");
            let got = refer(&k, &a, &b, &mut a1, &a2);
            let (uri, rep) = refer_to_parts(&got.header("refer-to").unwrap());
            assert_eq!(rep.as_deref(), Some(call2.as_str()));
            transferee_invite(&k, &b, &format!("xfer-{id}"), &uri, rep.as_deref());
            let inv = c.peer.expect_request("INVITE");
            assert_eq!(
                inv.header("replaces"),
                Some(format!(
                    "{};to-tag={};from-tag={}",
                    c2.call_id, c2.local_tag, c2.remote_tag
                )),
                "{what}"
            );
        }
    }
}

/// Issue 21 point 3: an INVITE from outside (a pickup from the callee's
/// side, which knows the masked Call-ID) whose Replaces names a Call-ID
/// this Kamailio masked reaches the caller naming the caller's Call-ID:
/// sent to the caller's masked Contact (both modes: the token proves where
/// it goes), or, in stored mode, to the caller's own address (the dialog's
/// record shows it is the caller's side). Sent anywhere else (the callee's
/// side sending it to itself to learn the hidden Call-ID), or naming
/// nothing masked here, its Replaces passes unchanged.
#[test]
fn a_replaces_from_outside_naming_a_masked_call_id_is_mapped_back_toward_the_caller() {
    for mode in ["sealed", "stored"] {
        let k = start(mode, &["MASK_CALLID"]);
        let (p, q, d) = (Party::new("paul"), Party::new("quinn"), Party::new("dora"));
        let id = format!("pickup-{mode}");
        let (p_leg, q_leg) = call(&k, &p, &q, &id);
        assert_ne!(q_leg.call_id, p_leg.call_id);
        let p_view = format!(
            "{};to-tag={};from-tag={}",
            p_leg.call_id, p_leg.local_tag, p_leg.remote_tag
        );
        // Dora, on quinn's side, picks the call up: quinn's view of it.
        let masked = format!(
            "{};to-tag={};from-tag={}",
            q_leg.call_id, q_leg.remote_tag, q_leg.local_tag
        );
        // To the caller's masked Contact (what quinn's side knows of it).
        transferee_invite(
            &k,
            &d,
            &format!("dora-t-{mode}"),
            &q_leg.remote_target,
            Some(&masked),
        );
        let inv = p.peer.expect_request("INVITE");
        assert_eq!(
            inv.header("replaces"),
            Some(p_view.clone()),
            "{mode}:\n{}",
            inv.text
        );
        assert_eq!(
            inv.first_line().split(' ').nth(1),
            Some(p.contact().as_str())
        );
        assert_eq!(inv.headers("route"), vec![p.proxy_rr()], "{mode}");
        assert_no_leak(&inv, &d);
        // To the caller's own address: stored mode maps it back.
        let p_uri = format!("sip:paul@{}", p.peer.addr);
        transferee_invite(&k, &d, &format!("dora-a-{mode}"), &p_uri, Some(&masked));
        let inv = p.peer.expect_request("INVITE");
        let expected = if mode == "stored" { &p_view } else { &masked };
        assert_eq!(inv.header("replaces").as_ref(), Some(expected), "{mode}");
        // Anywhere else: unchanged, never an oracle for the hidden Call-ID.
        let d_uri = format!("sip:dora@{}", d.peer.addr);
        transferee_invite(&k, &d, &format!("dora-o-{mode}"), &d_uri, Some(&masked));
        let inv = d.peer.expect_request("INVITE");
        assert_eq!(inv.header("replaces"), Some(masked.clone()), "{mode}");
        // Replaces that name nothing masked here: unchanged.
        for (n, other) in [
            "nobody-knows-this@example.com;to-tag=x;from-tag=y".to_string(),
            format!("tps1{};to-tag=x;from-tag=y", "A".repeat(40)),
            format!("{};to-tag=x;from-tag=y", "0123456789abcdef".repeat(2)),
            format!("{};to-tag=x;from-tag={}", q_leg.call_id, q_leg.local_tag),
        ]
        .iter()
        .enumerate()
        {
            transferee_invite(&k, &d, &format!("dora-{mode}-{n}"), &p_uri, Some(other));
            let inv = p.peer.expect_request("INVITE");
            assert_eq!(
                inv.header("replaces").as_deref(),
                Some(other.as_str()),
                "{mode}"
            );
        }
    }
}

/// Calls 1 and 2 up, A the caller of both, on a fresh Kamailio.
struct Setup {
    k: Kamailio,
    a: Party,
    b: Party,
    c: Party,
    a1: Leg,
    a2: Leg,
}

fn setup(mode: &str, more: &[&str], id: &str) -> Setup {
    let k = start(mode, more);
    let (a, b, c) = (Party::new("alice"), Party::new("bob"), Party::new("carol"));
    let sides = Sides {
        a_calls_b: true,
        a_calls_c: true,
    };
    let [a1, _, a2, _] = two_calls(&k, &a, &b, &c, id, sides);
    Setup { k, a, b, c, a1, a2 }
}

impl Setup {
    /// Call 2 still routes: nothing was broken or changed.
    fn call2_goes_on(&mut self) {
        send_in(&self.k, &self.a, &mut self.a2, "INFO", "", "");
        let info = self.c.peer.expect_request("INFO");
        respond(&self.c, &info, "200 OK", "");
        self.a.peer.expect_reply(200, "INFO");
    }

    fn log_has(&self, line: &str, what: &str) {
        assert!(
            self.k.log_text().contains(line),
            "{what}: no line {line:?}\n{}",
            self.k.log_text()
        );
    }
}

/// Issue 21, bad input: a Refer-To that does not parse, one whose
/// Replaces lacks a tag or does not decode, an over-long one: passed
/// unchanged when they name no token; refused with a line when they name
/// one (nothing reaches B). An INVITE to a token whose Replaces lacks a
/// tag, or that has two: refused with a line. Never a crash: the calls go
/// on.
#[test]
fn bad_refer_tos_pass_unchanged_without_a_token_and_are_refused_with_one() {
    let pad = "p".repeat(5000);
    for mode in ["sealed", "stored"] {
        // Naming no token: passed as they are.
        let mut s = setup(mode, &[], &format!("bad-none-{mode}"));
        for refer_to in [
            "<sip:carol@example.com?Replaces=abc%3Bto-tag%3Dx>".to_string(),
            "this is <<not a uri".to_string(),
            "<sip:carol@example.com?Replaces=%zz>".to_string(),
            format!("<sip:carol@example.com?X-Pad={pad}>"),
            format!("<sip:{}?Replaces=abc>", s.k.addr),
        ] {
            let extra = format!("Refer-To: {refer_to}\r\n");
            send_in(&s.k, &s.a, &mut s.a1, "REFER", &extra, "");
            let got = s.b.peer.expect_request("REFER");
            assert_eq!(got.header("refer-to"), Some(refer_to.clone()), "{mode}");
            respond(&s.b, &got, "202 Accepted", "");
            s.a.peer.expect_reply(202, "REFER");
        }
        s.call2_goes_on();

        // Naming a token: refused, each with its line.
        for (n, (suffix, line)) in [
            (
                "?Replaces=CALLID%3Bto-tag%3DCTAG".to_string(),
                "a Refer-To naming a topos_rs token with a Replaces without a from-tag",
            ),
            (
                "?Replaces=%zz".to_string(),
                "a Refer-To naming a topos_rs token with a Replaces that does not decode",
            ),
            (
                format!("?Replaces=CALLID%3Bto-tag%3DCTAG%3Bfrom-tag%3DATAG&X-Pad={pad}"),
                "an over-long Refer-To (",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let mut s = setup(mode, &[], &format!("bad-{n}-{mode}"));
            let suffix = suffix
                .replace("CALLID", &s.a2.call_id)
                .replace("CTAG", &s.a2.remote_tag)
                .replace("ATAG", &s.a2.local_tag);
            let extra = format!("Refer-To: <{}{suffix}>\r\n", s.a2.remote_target);
            send_in(&s.k, &s.a, &mut s.a1, "REFER", &extra, "");
            s.a.peer.expect_reply(404, "REFER");
            s.b.peer.expect_silence(Duration::from_millis(200));
            s.log_has(&format!("topos_request: refused: {line}"), mode);
            s.call2_goes_on();
        }

        // An INVITE to the Refer-To's token with a broken Replaces.
        for (n, (replaces, line)) in [
            (
                vec!["CALLID;to-tag=CTAG"],
                "an INVITE to a topos_rs token with a Replaces without a from-tag",
            ),
            (
                vec![
                    "CALLID;to-tag=CTAG;from-tag=ATAG",
                    "CALLID;to-tag=CTAG;from-tag=ATAG",
                ],
                "an INVITE to a topos_rs token with an INVITE with more than one Replaces",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let mut s = setup(mode, &[], &format!("bad-inv-{n}-{mode}"));
            let got = refer(&s.k, &s.a, &s.b, &mut s.a1, &s.a2);
            let (uri, _) = refer_to_parts(&got.header("refer-to").unwrap());
            respond(&s.b, &got, "202 Accepted", "");
            s.a.peer.expect_reply(202, "REFER");
            let fill = |r: &str| {
                r.replace("CALLID", &s.a2.call_id)
                    .replace("CTAG", &s.a2.remote_tag)
                    .replace("ATAG", &s.a2.local_tag)
            };
            let first = fill(replaces[0]);
            let more: String = replaces[1..]
                .iter()
                .map(|r| format!("\r\nReplaces: {}", fill(r)))
                .collect();
            transferee_invite(
                &s.k,
                &s.b,
                &format!("bad-x-{n}"),
                &uri,
                Some(&(first + &more)),
            );
            s.b.peer.expect_reply(403, "INVITE");
            s.c.peer.expect_silence(Duration::from_millis(200));
            s.log_has(&format!("topos_request: refused: {line}"), mode);
            s.call2_goes_on();
        }
    }
}

/// Issue 21, bind_source: a token is bound to the address of the party it
/// was given to, and the transferee is another party. It presents the
/// transfer token this Kamailio put in the Refer-To when A's REFER passed
/// (checked against A's address then): its INVITE reaches C. C's masked
/// Contact itself, presented by B from its own address, is refused.
#[test]
fn with_bind_source_the_transferee_presents_the_refer_tos_transfer_token() {
    for mode in ["sealed", "stored"] {
        let k = start(mode, &["BIND_SOURCE"]);
        let (a, c) = (Party::new("alice"), Party::new("carol"));
        // B on another address than A.
        let sock = std::net::UdpSocket::bind("127.0.0.2:0").expect("binding 127.0.0.2");
        let addr = sock.local_addr().unwrap();
        let b = Party {
            peer: Peer { sock, addr },
            name: "bob",
        };
        let sides = Sides {
            a_calls_b: true,
            a_calls_c: true,
        };
        let id = format!("bind-{mode}");
        let [mut a1, _, a2, c2] = two_calls(&k, &a, &b, &c, &id, sides);
        let got = refer(&k, &a, &b, &mut a1, &a2);
        let (uri, rep) = refer_to_parts(&got.header("refer-to").unwrap());
        respond(&b, &got, "202 Accepted", "");
        a.peer.expect_reply(202, "REFER");
        // C's masked Contact itself, from B's address: refused.
        transferee_invite(
            &k,
            &b,
            &format!("bind-t2-{mode}"),
            &a2.remote_target,
            rep.as_deref(),
        );
        b.peer.expect_reply(403, "INVITE");
        c.peer.expect_silence(Duration::from_millis(300));
        assert!(
            k.log_text()
                .contains("bound to the address of the party it was given to"),
            "{mode}\n{}",
            k.log_text()
        );
        // The Refer-To's transfer token: reaches C.
        transferee_invite(&k, &b, &format!("bind-x-{mode}"), &uri, rep.as_deref());
        let inv = c.peer.expect_request("INVITE");
        assert_no_leak(&inv, &b);
        assert_eq!(
            inv.header("replaces"),
            Some(format!(
                "{};to-tag={};from-tag={}",
                c2.call_id, c2.local_tag, c2.remote_tag
            )),
            "{mode}"
        );
    }
}

/// A sealed token carries the callee's route set only while it fits the
/// Contact's size bound. When it does not, the route set rides only in the
/// Record-Route of the dialog, which the transferee never saw: its INVITE
/// goes to C's target directly (as without topology hiding, where B sends
/// it to the Refer-To URI, C's Contact), with a line that says so.
#[test]
fn a_transfer_to_a_callee_whose_route_set_did_not_fit_its_token_goes_to_its_target() {
    let k = start("sealed", &[]);
    let (a, b, c) = (Party::new("alice"), Party::new("bob"), Party::new("carol"));
    let (mut a1, _) = call(&k, &a, &b, "fit-1");
    // Call 2: C's side has two more proxies than a token has room for.
    let invite = format!(
        "INVITE sip:carol@{} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-fit-2;rport\r\n\
         Max-Forwards: 70\r\nFrom: <{}>;tag=alice-fit-2\r\nTo: <{}>\r\n\
         Call-ID: fit-2\r\nCSeq: 1 INVITE\r\nContact: <{}>\r\nContent-Length: 0\r\n\r\n",
        c.peer.addr,
        a.peer.addr,
        a.aor(),
        c.aor(),
        a.contact()
    );
    a.peer.send(k.addr, &invite);
    let inv = c.peer.expect_request("INVITE");
    let mut ok = "SIP/2.0 200 OK\r\n".to_string();
    for v in inv.headers("via") {
        ok += &format!("Via: {v}\r\n");
    }
    for i in 1..=2 {
        ok += &format!(
            "Record-Route: <sip:proxy-{i}.callee-side.example.com:5060;lr;ftag=abcdefgh{i}>\r\n"
        );
    }
    ok += &format!("Record-Route: {}\r\n", c.proxy_rr());
    for rr in inv.headers("record-route") {
        ok += &format!("Record-Route: {rr}\r\n");
    }
    ok += &format!(
        "From: {}\r\nTo: {};tag=carol-fit-2\r\nCall-ID: {}\r\nCSeq: 1 INVITE\r\n\
         Contact: <{}>\r\nContent-Length: 0\r\n\r\n",
        inv.header("from").unwrap(),
        inv.header("to").unwrap(),
        inv.header("call-id").unwrap(),
        c.contact()
    );
    c.peer.send(inv.from, &ok);
    let ok = a.peer.expect_reply(200, "INVITE");
    let a2 = Leg {
        call_id: "fit-2".into(),
        local_tag: "alice-fit-2".into(),
        remote_tag: "carol-fit-2".into(),
        local_uri: a.aor(),
        remote_uri: c.aor(),
        remote_target: masked_contact(&ok, &k),
        route: vec![ok.headers("record-route")[0].clone()],
        cseq: 1,
    };
    assert!(a2.remote_target.len() <= 300, "{}", a2.remote_target);
    let got = refer(&k, &a, &b, &mut a1, &a2);
    let (uri, rep) = refer_to_parts(&got.header("refer-to").unwrap());
    transferee_invite(&k, &b, "fit-x", &uri, rep.as_deref());
    let inv = c.peer.expect_request("INVITE");
    assert_eq!(
        inv.first_line().split(' ').nth(1),
        Some(c.contact().as_str())
    );
    assert!(inv.headers("route").is_empty(), "{}", inv.text);
    assert_no_leak(&inv, &b);
    assert!(
        k.log_text()
            .contains("its route set rides only in its dialog's Record-Route"),
        "{}",
        k.log_text()
    );
}

#[allow(dead_code)]
#[path = "real_ua/linphone.rs"]
mod linphone;

/// An audio offer or answer (media is out of scope: nothing listens).
fn sdp(rtp_port: u16, direction: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na={direction}\r\n"
    )
}

/// `respond`, with an SDP answer (to an INVITE).
fn respond_sdp(from: &Party, req: &Msg, code: &str, to_tag: &str, rtp_port: u16) {
    let mut out = format!("SIP/2.0 {code}\r\n");
    for v in req.headers("via") {
        out += &format!("Via: {v}\r\n");
    }
    let to = req.header("to").unwrap();
    let creating = !to.contains("tag=");
    if creating {
        out += &format!("Record-Route: {}\r\n", from.proxy_rr());
        for rr in req.headers("record-route") {
            out += &format!("Record-Route: {rr}\r\n");
        }
    }
    out += &format!("From: {}\r\n", req.header("from").unwrap());
    if creating {
        out += &format!("To: {to};tag={to_tag}\r\n");
    } else {
        out += &format!("To: {to}\r\n");
    }
    let dir = if body(req).contains("a=sendonly") {
        "recvonly"
    } else {
        "sendrecv"
    };
    let answer = sdp(rtp_port, dir);
    out += &format!(
        "Call-ID: {}\r\nCSeq: {}\r\nContact: <{}>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{answer}",
        req.header("call-id").unwrap(),
        req.header("cseq").unwrap(),
        from.contact(),
        answer.len()
    );
    from.peer.send(req.from, &out);
}

/// Serves the scripted parties (each with its RTP port) until `want`
/// arrives at party `at`: requests they must answer are answered
/// (re-INVITEs with SDP, the rest 200). Returns the wanted message.
fn until(parties: &[(&Party, u16)], at: usize, what: &str, want: impl Fn(&Msg) -> bool) -> Msg {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    while std::time::Instant::now() < deadline {
        for (i, (p, rtp)) in parties.iter().enumerate() {
            let Some(m) = p.peer.recv_within(Duration::from_millis(20)) else {
                continue;
            };
            eprintln!("{} got: {}", p.name, m.first_line());
            if i == at && want(&m) {
                return m;
            }
            seen.push(format!("{}: {}", p.name, m.first_line()));
            match m.method() {
                Some("INVITE") => respond_sdp(p, &m, "200 OK", "", *rtp),
                Some("ACK") | None => {}
                Some(_) => respond(p, &m, "200 OK", ""),
            }
        }
    }
    panic!("{} never got {what}; got {seen:?}", parties[at].0.name);
}

/// Issue 21 point 5, with a real user agent: linphone (linphonec 5.1) is
/// the transferee B. A (scripted) is in call 1 with it and in call 2 with
/// C (mask_callid on, sealed tokens); A's REFER names C's masked Contact
/// with a Replaces of call 2. Linphone gets a transfer token at Kamailio,
/// sends its INVITE with the Replaces there, and that INVITE reaches C's
/// own Contact through C's proxy naming call 2 as C knows it (its masked
/// Call-ID); linphone's NOTIFYs reach A cut to their status line.
#[test]
fn linphone_follows_an_attended_transfer_through_kamailio() {
    let _turn = ONE_LINPHONE.lock().unwrap_or_else(|e| e.into_inner());
    need_linphone();
    let k = start("sealed", &["MASK_CALLID"]);
    let (a, c) = (Party::new("alice"), Party::new("carol"));
    let dir = scratch_dir("xfer-linphone");
    let lport = common::kamailio::free_port();
    let lin = linphone::Linphone::start("127.0.0.1", lport, "bob", &dir);
    let (a_rtp, c_rtp) = (a.peer.port() + 2, c.peer.port() + 2);
    let parties = [(&a, a_rtp), (&c, c_rtp)];

    // Call 1: A calls linphone, with an offer.
    let offer = sdp(a_rtp, "sendrecv");
    let invite = format!(
        "INVITE sip:bob@127.0.0.1:{lport} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {};branch=z9hG4bK-lin1-inv;rport\r\nRecord-Route: {}\r\n\
         Max-Forwards: 70\r\nFrom: <{}>;tag={}\r\nTo: <sip:bob@example.com>\r\n\
         Call-ID: lin1\r\nCSeq: 1 INVITE\r\nContact: <{}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{offer}",
        a.peer.addr,
        a.proxy_rr(),
        a.aor(),
        a.tag("lin1"),
        a.contact(),
        offer.len()
    );
    a.peer.send(k.addr, &invite);
    let ok = until(&parties, 0, "linphone's 200", |m| {
        m.status() == Some(200) && m.cseq_method() == "INVITE"
    });
    let mut a1 = Leg {
        call_id: "lin1".into(),
        local_tag: a.tag("lin1"),
        remote_tag: ok
            .header("to")
            .unwrap()
            .split("tag=")
            .nth(1)
            .unwrap()
            .into(),
        local_uri: a.aor(),
        remote_uri: "sip:bob@example.com".into(),
        remote_target: masked_contact(&ok, &k),
        route: vec![ok.headers("record-route")[0].clone()],
        cseq: 0,
    };
    send_in(&k, &a, &mut a1, "ACK", "", "");
    assert!(
        lin.established(Duration::from_secs(10)),
        "{}",
        lin.describe()
    );
    // Call 2: A calls C (scripted).
    let (a2, mut c2) = call(&k, &a, &c, "lin2");
    assert_ne!(a2.call_id, c2.call_id);

    // The REFER: linphone accepts it and calls the Refer-To's URI.
    let refer_to = format!(
        "<{}?Replaces={}>",
        a2.remote_target,
        replaces_param(&a2.call_id, &a2.remote_tag, &a2.local_tag)
    );
    send_in(
        &k,
        &a,
        &mut a1,
        "REFER",
        &format!("Refer-To: {refer_to}\r\nReferred-By: <{}>\r\n", a.aor()),
        "",
    );
    // (Its 202 and the re-INVITE that holds call 1 reach A meanwhile.)
    let inv = until(&parties, 1, "linphone's INVITE", |m| {
        m.method() == Some("INVITE")
    });
    assert_eq!(
        inv.first_line().split(' ').nth(1),
        Some(c.contact().as_str()),
        "{}",
        inv.text
    );
    assert_eq!(inv.headers("route"), vec![c.proxy_rr()], "{}", inv.text);
    assert_eq!(inv.vias().len(), 1);
    assert_eq!(
        inv.header("replaces"),
        Some(format!(
            "{};to-tag={};from-tag={}",
            c2.call_id, c2.local_tag, c2.remote_tag
        )),
        "{}",
        inv.text
    );
    assert!(!inv.text.contains(&format!(":{lport}")), "{}", inv.text);
    respond_sdp(&c, &inv, "200 OK", "carol-lin", c_rtp);
    // Linphone's NOTIFYs: each body only a status line when it reaches A.
    let notify = until(&parties, 0, "linphone's NOTIFY 200", |m| {
        m.method() == Some("NOTIFY") && body(m).starts_with("SIP/2.0 200")
    });
    assert_eq!(body(&notify).lines().count(), 1, "{}", notify.text);
    assert!(
        !notify.text.contains(&format!(":{lport}")),
        "{}",
        notify.text
    );
    respond(&a, &notify, "200 OK", "");
    // The transfer succeeded: A ends call 1 (RFC 5589), C ends call 2
    // (replaced); linphone talks to C.
    send_in(&k, &a, &mut a1, "BYE", "", "");
    until(&parties, 0, "linphone's 200 to BYE", |m| {
        m.status() == Some(200) && m.cseq_method() == "BYE"
    });
    send_in(&k, &c, &mut c2, "BYE", "", "");
    until(&parties, 1, "A's 200 to BYE", |m| {
        m.status() == Some(200) && m.cseq_method() == "BYE"
    });
    assert!(
        lin.established(Duration::from_secs(5)),
        "{}",
        lin.describe()
    );
    let calls = lin.command("calls");
    assert_eq!(calls.matches("StreamsRunning").count(), 1, "{calls}");
    // Call 1 (A's) is gone; the one left is the transfer's.
    assert!(!calls.lines().any(|l| l.starts_with("1 ")), "{calls}");
    assert!(calls.contains("?Replaces=lin2"), "{calls}");
}

/// linphonecsh reaches one linphonec per user: the linphone tests take
/// turns.
static ONE_LINPHONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn need_linphone() {
    for tool in ["linphonec", "linphonecsh"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
            .unwrap_or(false);
        assert!(
            found,
            "{tool} is not installed: `make test` installs it (linphone-cli)"
        );
    }
}

/// An INVITE of `from` to linphone at `uri`, with an offer, `from_aor` in
/// its From.
fn invite_with_offer(from: &Party, uri: &str, from_aor: &str, call_id: &str, rtp: u16) -> String {
    let offer = sdp(rtp, "sendrecv");
    format!(
        "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-{call_id}-inv;rport\r\n\
         Record-Route: {}\r\nMax-Forwards: 70\r\nFrom: <{from_aor}>;tag={}\r\n\
         To: <sip:alice@example.com>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
         Contact: <{}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{offer}",
        from.peer.addr,
        from.proxy_rr(),
        from.tag(call_id),
        from.contact(),
        offer.len()
    )
}

/// Issue 21 points 3 and 5, with a real user agent as the transferor:
/// linphone (A) is called by B and by C (stored tokens, mask_callid on:
/// A, the callee of call 2, knows its masked Call-ID) and does the
/// attended transfer itself (`transfer 1 --to-call 2`). Linphone's
/// Refer-To names C by its address of record (not its Contact): it names
/// no token and reaches B unchanged. B's INVITE to that AOR is routed to C
/// by the script (a location lookup), and its Replaces, which names call 2
/// by the masked Call-ID, reaches C naming it by C's own: the dialog's
/// record shows the INVITE goes to call 2's caller.
#[test]
fn linphone_transfers_to_the_aor_of_the_target() {
    let _turn = ONE_LINPHONE.lock().unwrap_or_else(|e| e.into_inner());
    need_linphone();
    let (b, c) = (Party::new("bob"), Party::new("carol"));
    let route_callee = format!("ROUTE_CALLEE=\"{}\"", c.contact());
    let k = start("stored", &["MASK_CALLID", &route_callee]);
    let dir = scratch_dir("xfer-linphone-a");
    let lport = common::kamailio::free_port();
    let lin = linphone::Linphone::start("127.0.0.1", lport, "alice", &dir);
    let alice = format!("sip:alice@127.0.0.1:{lport}");
    let (b_rtp, c_rtp) = (b.peer.port() + 2, c.peer.port() + 2);
    let parties = [(&b, b_rtp), (&c, c_rtp)];
    // C's address of record is at this proxy (where a registrar would be).
    let c_aor = format!("sip:carol@{}", k.addr);
    let mut legs = Vec::new();
    for (n, (p, aor, id, rtp)) in [
        (&b, b.aor(), "lina-1", b_rtp),
        (&c, c_aor.clone(), "lina-2", c_rtp),
    ]
    .into_iter()
    .enumerate()
    {
        p.peer
            .send(k.addr, &invite_with_offer(p, &alice, &aor, id, rtp));
        if n == 1 {
            // linphone rings for a second call: answer it (which puts
            // call 1 on hold).
            until(&parties, n, "linphone's 180", |m| m.status() == Some(180));
            lin.command("answer 2");
        }
        let ok = until(&parties, n, "linphone's 200", |m| {
            m.status() == Some(200) && m.cseq_method() == "INVITE"
        });
        let mut leg = Leg {
            call_id: id.to_string(),
            local_tag: p.tag(id),
            remote_tag: ok
                .header("to")
                .unwrap()
                .split("tag=")
                .nth(1)
                .unwrap()
                .into(),
            local_uri: aor,
            remote_uri: "sip:alice@example.com".into(),
            remote_target: masked_contact(&ok, &k),
            route: vec![ok.headers("record-route")[0].clone()],
            cseq: 0,
        };
        send_in(&k, p, &mut leg, "ACK", "", "");
        legs.push(leg);
        assert!(
            lin.established(Duration::from_secs(10)),
            "{}",
            lin.describe()
        );
    }
    let out = lin.command("transfer 1 --to-call 2");
    assert!(out.contains("attended transfer"), "{out}");
    let refer = until(&parties, 0, "linphone's REFER", |m| {
        m.method() == Some("REFER")
    });
    let refer_to = refer.header("refer-to").unwrap();
    assert!(
        refer_to.starts_with(&format!("<{c_aor}?Replaces=")),
        "{refer_to}"
    );
    assert!(!refer.text.contains(&format!(":{lport}")), "{}", refer.text);
    respond(&b, &refer, "202 Accepted", "");
    let uri = refer_to
        .trim_start_matches('<')
        .split(['?', '>'])
        .next()
        .unwrap()
        .to_string();
    let replaces = refer_to
        .split("?Replaces=")
        .nth(1)
        .unwrap()
        .trim_end_matches('>');
    let replaces = replaces
        .replace("%3b", ";")
        .replace("%3B", ";")
        .replace("%3d", "=")
        .replace("%3D", "=")
        .replace("%40", "@");
    // The masked Call-ID of call 2, which linphone knows.
    let masked = replaces.split(';').next().unwrap().to_string();
    assert_ne!(masked, "lina-2");
    transferee_invite(&k, &b, "lina-x", &uri, Some(&replaces));
    let inv = until(&parties, 1, "B's INVITE", |m| m.method() == Some("INVITE"));
    assert_eq!(
        inv.header("replaces"),
        Some(replaces.replace(&masked, "lina-2")),
        "{}",
        inv.text
    );
    assert_no_leak(&inv, &b);
    respond_sdp(&c, &inv, "200 OK", "carol-x", c_rtp);
    let ok = until(&parties, 0, "C's 200", |m| {
        m.status() == Some(200) && m.header("call-id").as_deref() == Some("lina-x")
    });
    assert_no_leak(&ok, &c);
}

/// A transfer's INVITE that B cancels before C answers: C gets the
/// CANCEL at its own Contact with one Via (tm's, built for the branch the
/// token chose), B the 487; nothing of either side crosses.
#[test]
fn a_transfer_invite_cancelled_before_the_answer() {
    for mode in ["sealed", "stored"] {
        let mut s = setup(mode, &[], &format!("cancel-{mode}"));
        let got = refer(&s.k, &s.a, &s.b, &mut s.a1, &s.a2);
        let (uri, rep) = refer_to_parts(&got.header("refer-to").unwrap());
        respond(&s.b, &got, "202 Accepted", "");
        s.a.peer.expect_reply(202, "REFER");
        let xfer = format!("cancel-x-{mode}");
        transferee_invite(&s.k, &s.b, &xfer, &uri, rep.as_deref());
        let inv = s.c.peer.expect_request("INVITE");
        respond(&s.c, &inv, "180 Ringing", "carol-ring");
        let ringing = s.b.peer.expect_reply(180, "INVITE");
        assert_no_leak(&ringing, &s.c);
        let cancel = format!(
            "CANCEL {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-{xfer}-inv;rport\r\n\
             Max-Forwards: 70\r\nFrom: <{}>;tag={}\r\nTo: <{uri}>\r\nCall-ID: {xfer}\r\n\
             CSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
            s.b.peer.addr,
            s.b.aor(),
            s.b.tag(&xfer)
        );
        s.b.peer.send(s.k.addr, &cancel);
        let got = s.c.peer.expect_request("CANCEL");
        assert_eq!(
            got.first_line().split(' ').nth(1),
            Some(s.c.contact().as_str())
        );
        assert_eq!(got.vias().len(), 1, "{}", got.text);
        assert_no_leak(&got, &s.b);
        respond(&s.c, &got, "200 OK", "");
        respond(&s.c, &inv, "487 Request Terminated", "carol-ring");
        let terminated = s.b.peer.expect_reply(487, "INVITE");
        assert_no_leak(&terminated, &s.c);
        s.call2_goes_on();
    }
}
