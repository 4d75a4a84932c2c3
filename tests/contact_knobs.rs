//! Issue 23 end to end: the knobs operators use in Kamailio's topos and
//! OpenSIPS's topology_hiding, in a real Kamailio with the built module
//! (tests/cfg/contact_knobs.cfg: the example's routing, driven by headers
//! the test peers send).
//!
//! - `contact_mode` 0 and 1 (`contact_param`): the exact Contact each side
//!   sees, and routing by the parameter when a peer rewrote the user part;
//! - `topos_set_contact(side, user, host)` on UDP and on TLS (`sips:` or
//!   `;transport=tls`), and the values it refuses;
//! - one-way hiding (`trusted_socket`, `topos_trust()`): the trusted side
//!   sees the other side's Vias, Record-Routes and Contact; every message
//!   the untrusted side receives (the test peers are the only receivers:
//!   what they read is the capture) holds no address of the trusted side;
//!   in-dialog requests route both ways whichever side sends them;
//! - start-up stops on bad parameters.
//!
//! Tokens are opaque here: whatever `dialog::token` makes, as long as a URI
//! can carry it as it is (letters, digits, `-`, `_`).

#[path = "real_ua/cert.rs"]
#[allow(dead_code)]
mod cert;
mod common;

use common::kamailio::{
    free_port, free_tcp_port, kamailio_bin, module_path, repo_root, scratch_dir, Kamailio,
};
use common::sip::{Msg, Peer};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const CFG: &str = "tests/cfg/contact_knobs.cfg";

/// One side of a call: its socket, tag, a proxy that record-routes for it
/// and an upstream hop below its own Via; the other side must see none of
/// them unless it is trusted.
struct Party {
    peer: Peer,
    name: &'static str,
    /// An address of this side's network, in its upstream Via.
    upstream_ip: &'static str,
}

impl Party {
    fn new(name: &'static str, upstream_ip: &'static str) -> Party {
        Party {
            peer: Peer::new(),
            name,
            upstream_ip,
        }
    }
    fn tag(&self) -> String {
        format!("{}-tag", self.name)
    }
    fn contact(&self) -> String {
        format!(
            "sip:{}@{};marker={}-contact",
            self.name, self.peer.addr, self.name
        )
    }
    fn proxy_rr(&self) -> String {
        format!("<sip:{};lr;side={}-proxy>", self.peer.addr, self.name)
    }
    fn upstream_via(&self) -> String {
        format!(
            "SIP/2.0/UDP {}:5060;branch=z9hG4bK-{}-upstream",
            self.upstream_ip, self.name
        )
    }
    /// What the other side must never see of this one, unless trusted.
    fn secrets(&self) -> Vec<String> {
        vec![
            format!(":{}", self.peer.port()),
            format!("{}-contact", self.name),
            format!("{}-proxy", self.name),
            format!("{}-upstream", self.name),
            self.upstream_ip.to_string(),
        ]
    }
}

/// `m` holds nothing of `of`.
fn assert_no_leak(m: &Msg, of: &Party) {
    for s in of.secrets() {
        assert!(
            !m.text.contains(&s),
            "{s:?} of the {} side leaked:\n{}",
            of.name,
            m.text
        );
    }
}

/// A request from `p` to Kamailio at `to`: its own Via and its upstream
/// one, Route lines, and `extra` header lines.
#[allow(clippy::too_many_arguments)]
fn request(
    p: &Party,
    method: &str,
    ruri: &str,
    routes: &[String],
    from_tag: &str,
    to_tag: Option<&str>,
    call_id: &str,
    cseq: u32,
    contact: Option<&str>,
    extra: &str,
) -> String {
    let mut out = format!("{method} {ruri} SIP/2.0\r\n");
    out += &format!(
        "Via: SIP/2.0/UDP {};branch=z9hG4bK-{}-{method}-{cseq}-{call_id};rport\r\n",
        p.peer.addr, p.name
    );
    out += &format!("Via: {}\r\n", p.upstream_via());
    for r in routes {
        out += &format!("Route: {r}\r\n");
    }
    if method == "INVITE" && to_tag.is_none() {
        out += &format!("Record-Route: {}\r\n", p.proxy_rr());
    }
    out += "Max-Forwards: 70\r\n";
    out += &format!("From: <sip:{}@example.com>;tag={from_tag}\r\n", p.name);
    match to_tag {
        Some(t) => out += &format!("To: <sip:other@example.com>;tag={t}\r\n"),
        None => out += "To: <sip:other@example.com>\r\n",
    }
    out += &format!("Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n");
    if let Some(c) = contact {
        out += &format!("Contact: <{c}>\r\n");
    }
    out += extra;
    out += "Content-Length: 0\r\n\r\n";
    out
}

/// `replier`'s reply to `req` (as it received it): Vias and Record-Routes
/// copied (a dialog-creating reply gets its side's proxy on top), a To-tag,
/// `contact` if any and `extra` header lines.
fn reply(replier: &Party, req: &Msg, code: u32, contact: Option<&str>, extra: &str) -> String {
    let mut out = format!("SIP/2.0 {code} Whatever\r\n");
    for v in req.headers("via") {
        out += &format!("Via: {v}\r\n");
    }
    if req.method() == Some("INVITE") && !req.header("to").unwrap().contains(";tag=") {
        out += &format!("Record-Route: {}\r\n", replier.proxy_rr());
        for rr in req.headers("record-route") {
            out += &format!("Record-Route: {rr}\r\n");
        }
    }
    out += &format!("From: {}\r\n", req.header("from").unwrap());
    let to = req.header("to").unwrap();
    if to.contains(";tag=") {
        out += &format!("To: {to}\r\n");
    } else {
        out += &format!("To: {to};tag={}\r\n", replier.tag());
    }
    out += &format!("Call-ID: {}\r\n", req.header("call-id").unwrap());
    out += &format!("CSeq: {}\r\n", req.header("cseq").unwrap());
    if let Some(c) = contact {
        out += &format!("Contact: <{c}>\r\n");
    }
    out += extra;
    out += "Content-Length: 0\r\n\r\n";
    out
}

/// A URI can carry a token as it is.
fn assert_token(t: &str) -> String {
    assert!(
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')),
        "not a token: {t:?}"
    );
    t.to_string()
}

/// The first Contact line's URI, `<...>` stripped.
fn contact_uri(m: &Msg) -> String {
    m.contact_uri()
}

/// The token in `uri`'s parameter `param`.
fn param_token(uri: &str, param: &str) -> String {
    let v = uri
        .split(';')
        .skip(1)
        .find_map(|p| p.strip_prefix(&format!("{param}=")))
        .unwrap_or_else(|| panic!("no {param}= in {uri}"));
    assert_token(v)
}

/// The token that is the user part of `uri` (`sip:TOKEN@...`).
fn user_token(uri: &str) -> String {
    let user = uri
        .split_once(':')
        .and_then(|(_, r)| r.split_once('@'))
        .map(|(u, _)| u)
        .unwrap_or_else(|| panic!("no user part in {uri}"));
    assert_token(user)
}

/// The caller's route set from Kamailio on: the 2xx's Record-Routes,
/// reversed, without the caller's own proxy (which it is).
fn caller_route_set(ok: &Msg) -> Vec<String> {
    let mut rr = ok.values("record-route");
    rr.reverse();
    rr.retain(|r| !r.contains("caller-proxy"));
    rr
}

/// `m`'s Contact value, with its token (the `param` value, else the user
/// part) taken out of `expected`'s `{T}`: each message's own token, for
/// tokens may be refreshed between messages.
fn assert_contact(m: &Msg, param: &str, expected: &str) {
    let uri = contact_uri(m);
    let t = if uri.contains(&format!(";{param}=")) {
        param_token(&uri, param)
    } else {
        user_token(&uri)
    };
    assert_eq!(
        m.header("contact").unwrap(),
        expected.replace("{T}", &t),
        "{}",
        m.text
    );
}

// ---------------------------------------------------------------- modes

/// Both token modes: sealed (the default) and stored.
const TOKEN_MODES: [&str; 2] = ["TOKEN_MODE=\"sealed\"", "TOKEN_MODE=\"stored\""];

#[test]
fn contact_mode_0_puts_the_token_in_the_user_part() {
    for mode in TOKEN_MODES {
        contact_mode_0(mode);
    }
}

fn contact_mode_0(mode: &str) {
    let k = Kamailio::start(CFG, &[mode]);
    let (caller, callee) = (
        Party::new("caller", "192.0.2.11"),
        Party::new("callee", "198.51.100.11"),
    );
    let call = "mode0";
    caller.peer.send(
        k.addr,
        &request(
            &caller,
            "INVITE",
            &format!("sip:bob@{}", callee.peer.addr),
            &[],
            &caller.tag(),
            None,
            call,
            1,
            Some(&caller.contact()),
            "",
        ),
    );
    let inv = callee.peer.expect_request("INVITE");
    let shown = inv.header("contact").unwrap();
    let t = user_token(&contact_uri(&inv));
    assert_eq!(shown, format!("<sip:{t}@{}>", k.addr));
    assert_no_leak(&inv, &caller);
    callee.peer.send(
        inv.from,
        &reply(&callee, &inv, 200, Some(&callee.contact()), ""),
    );
    let ok = caller.peer.expect_reply(200, "INVITE");
    let t2 = user_token(&contact_uri(&ok));
    assert_eq!(
        ok.header("contact").unwrap(),
        format!("<sip:{t2}@{}>", k.addr)
    );
    assert_no_leak(&ok, &callee);
}

#[test]
fn contact_mode_1_keeps_each_partys_user_and_routes_by_the_parameter() {
    for mode in TOKEN_MODES {
        contact_mode_1(mode);
    }
}

fn contact_mode_1(mode: &str) {
    let k = Kamailio::start(CFG, &[mode, "CONTACT_MODE=1", "CONTACT_PARAM=\"xyz\""]);
    let (caller, callee) = (
        Party::new("caller", "192.0.2.12"),
        Party::new("callee", "198.51.100.12"),
    );
    let call = "mode1";
    caller.peer.send(
        k.addr,
        &request(
            &caller,
            "INVITE",
            &format!("sip:bob@{}", callee.peer.addr),
            &[],
            &caller.tag(),
            None,
            call,
            1,
            Some(&caller.contact()),
            "",
        ),
    );
    let inv = callee.peer.expect_request("INVITE");
    let to_caller = param_token(&contact_uri(&inv), "xyz");
    assert_eq!(
        inv.header("contact").unwrap(),
        format!("<sip:caller@{};xyz={to_caller}>", k.addr)
    );
    assert_no_leak(&inv, &caller);
    callee.peer.send(
        inv.from,
        &reply(&callee, &inv, 200, Some(&callee.contact()), ""),
    );
    let ok = caller.peer.expect_reply(200, "INVITE");
    let to_callee = param_token(&contact_uri(&ok), "xyz");
    assert_eq!(
        ok.header("contact").unwrap(),
        format!("<sip:callee@{};xyz={to_callee}>", k.addr)
    );
    assert_no_leak(&ok, &callee);
    // The caller's ACK to the masked Contact as shown.
    let route = caller_route_set(&ok);
    caller.peer.send(
        k.addr,
        &request(
            &caller,
            "ACK",
            &contact_uri(&ok),
            &route,
            &caller.tag(),
            Some(&callee.tag()),
            call,
            1,
            None,
            "",
        ),
    );
    let ack = callee.peer.expect_request("ACK");
    assert_eq!(
        ack.first_line(),
        format!("ACK {} SIP/2.0", callee.contact())
    );
    // The callee hangs up through a Request-URI whose user part it
    // rewrote: the parameter still names the dialog.
    let rewritten = format!("sip:+4930123456@{};xyz={to_caller}", k.addr);
    callee.peer.send(
        k.addr,
        &request(
            &callee,
            "BYE",
            &rewritten,
            &inv.values("record-route"),
            &callee.tag(),
            Some(&caller.tag()),
            call,
            1,
            None,
            "",
        ),
    );
    let bye = caller.peer.expect_request("BYE");
    assert_eq!(
        bye.first_line(),
        format!("BYE {} SIP/2.0", caller.contact())
    );
    assert_no_leak(&bye, &callee);
    caller
        .peer
        .send(bye.from, &reply(&caller, &bye, 200, None, ""));
    assert_no_leak(&callee.peer.expect_reply(200, "BYE"), &caller);

    // A party whose Contact has no user part: none is shown.
    let call = "mode1-nouser";
    caller.peer.send(
        k.addr,
        &request(
            &caller,
            "INVITE",
            &format!("sip:bob@{}", callee.peer.addr),
            &[],
            &caller.tag(),
            None,
            call,
            1,
            Some(&format!("sip:{}", caller.peer.addr)),
            "",
        ),
    );
    let inv = callee.peer.expect_request("INVITE");
    let t = param_token(&contact_uri(&inv), "xyz");
    assert_eq!(
        inv.header("contact").unwrap(),
        format!("<sip:{};xyz={t}>", k.addr)
    );
}

// ---------------------------------------------------- topos_set_contact

#[test]
fn set_contact_on_udp_shows_the_chosen_user_and_host_to_the_other_side() {
    let k = Kamailio::start(CFG, &[]);
    let (caller, callee) = (
        Party::new("caller", "192.0.2.13"),
        Party::new("callee", "198.51.100.13"),
    );
    let call = "set-udp";
    caller.peer.send(
        k.addr,
        &request(
            &caller, "INVITE", &format!("sip:bob@{}", callee.peer.addr), &[], &caller.tag(), None, call, 1,
            Some(&caller.contact()),
            "X-Caller-User: alice-shown\r\nX-Caller-Host: edge.example.net:5099\r\nX-Callee-User: +4930999\r\n",
        ),
    );
    let inv = callee.peer.expect_request("INVITE");
    let to_caller = param_token(&contact_uri(&inv), "tps");
    // In over UDP, out over UDP: no transport parameter.
    assert_eq!(
        inv.header("contact").unwrap(),
        format!("<sip:alice-shown@edge.example.net:5099;tps={to_caller}>")
    );
    assert_no_leak(&inv, &caller);
    // The callee side's host, chosen in the core onreply_route for this
    // reply; its user was chosen on the INVITE.
    callee.peer.send(
        inv.from,
        &reply(
            &callee,
            &inv,
            200,
            Some(&callee.contact()),
            "X-Callee-Host: [2001:db8::7]:5070\r\n",
        ),
    );
    let ok = caller.peer.expect_reply(200, "INVITE");
    let to_callee = param_token(&contact_uri(&ok), "tps");
    assert_eq!(
        ok.header("contact").unwrap(),
        format!("<sip:+4930999@[2001:db8::7]:5070;tps={to_callee}>")
    );
    assert_no_leak(&ok, &callee);
    // In-dialog requests go to those Contacts and route by the token; the
    // dialog keeps showing what was chosen when it was set up.
    let route = caller_route_set(&ok);
    caller.peer.send(
        k.addr,
        &request(
            &caller,
            "ACK",
            &contact_uri(&ok),
            &route,
            &caller.tag(),
            Some(&callee.tag()),
            call,
            1,
            None,
            "",
        ),
    );
    assert_eq!(
        callee.peer.expect_request("ACK").first_line(),
        format!("ACK {} SIP/2.0", callee.contact())
    );
    let callee_route = inv.values("record-route");
    callee.peer.send(
        k.addr,
        &request(
            &callee,
            "INVITE",
            &contact_uri(&inv),
            &callee_route,
            &callee.tag(),
            Some(&caller.tag()),
            call,
            2,
            Some(&callee.contact()),
            "",
        ),
    );
    let reinv = caller.peer.expect_request("INVITE");
    assert_contact(&reinv, "tps", "<sip:+4930999@[2001:db8::7]:5070;tps={T}>");
    assert_no_leak(&reinv, &callee);
    caller.peer.send(
        reinv.from,
        &reply(&caller, &reinv, 200, Some(&caller.contact()), ""),
    );
    let ok2 = callee.peer.expect_reply(200, "INVITE");
    assert_contact(
        &ok2,
        "tps",
        "<sip:alice-shown@edge.example.net:5099;tps={T}>",
    );
    assert_no_leak(&ok2, &caller);
    caller.peer.send(
        k.addr,
        &request(
            &caller,
            "BYE",
            &contact_uri(&ok),
            &route,
            &caller.tag(),
            Some(&callee.tag()),
            call,
            3,
            None,
            "",
        ),
    );
    let bye = callee.peer.expect_request("BYE");
    assert_no_leak(&bye, &caller);
    assert!(
        bye.header("x-billed").is_some(),
        "billing unchanged:\n{}",
        bye.text
    );

    // Only a user part: the host stays the socket's.
    let call = "set-udp-user";
    caller.peer.send(
        k.addr,
        &request(
            &caller,
            "INVITE",
            &format!("sip:bob@{}", callee.peer.addr),
            &[],
            &caller.tag(),
            None,
            call,
            1,
            Some(&caller.contact()),
            "X-Caller-User: alice\r\n",
        ),
    );
    let inv = callee.peer.expect_request("INVITE");
    let t = param_token(&contact_uri(&inv), "tps");
    assert_eq!(
        inv.header("contact").unwrap(),
        format!("<sip:alice@{};tps={t}>", k.addr)
    );
}

#[test]
fn set_contact_refuses_values_that_would_break_the_uri() {
    let k = Kamailio::start(CFG, &[]);
    let (caller, callee) = (
        Party::new("caller", "192.0.2.14"),
        Party::new("callee", "198.51.100.14"),
    );
    let long = "a".repeat(256);
    for (n, (header, line)) in [
        ("X-Caller-User: a b", "topos_set_contact: user \"a b\" has a character a URI user part cannot hold (' '); nothing set"),
        ("X-Caller-User: a@b", "topos_set_contact: user \"a@b\" has a character a URI user part cannot hold ('@'); nothing set"),
        ("X-Caller-User: a>b", "topos_set_contact: user \"a>b\" has a character a URI user part cannot hold ('>'); nothing set"),
        (&format!("X-Caller-User: {long}") as &str, "is 256 bytes long (at most 255); nothing set"),
        ("X-Caller-Host: edge example", "topos_set_contact: host \"edge example\" is not a host name or an IP address; nothing set"),
        ("X-Caller-Host: a@b", "topos_set_contact: host \"a@b\" is not a host name or an IP address; nothing set"),
        ("X-Caller-Host: h>x", "topos_set_contact: host \"h>x\" is not a host name or an IP address; nothing set"),
        ("X-Caller-Host: edge.example.net:70000", "topos_set_contact: host \"edge.example.net:70000\" has a port that is not 1-65535; nothing set"),
        ("X-Trust: nobody", "topos_trust: side \"nobody\" is neither \"caller\" nor \"callee\"; nothing set"),
    ]
    .into_iter()
    .enumerate()
    {
        let call = format!("refused-{n}");
        caller.peer.send(
            k.addr,
            &request(&caller, "INVITE", &format!("sip:bob@{}", callee.peer.addr), &[], &caller.tag(), None, &call, 1, Some(&caller.contact()), &format!("{header}\r\n")),
        );
        let inv = callee.peer.expect_request("INVITE");
        let refused = inv.header("x-set-contact").or(inv.header("x-trust-result"));
        assert_eq!(refused.as_deref(), Some("refused"), "{header}:\n{}", inv.text);
        // Nothing set: the default Contact, the call hidden as ever.
        let t = user_token(&contact_uri(&inv));
        assert_eq!(inv.header("contact").unwrap(), format!("<sip:{t}@{}>", k.addr));
        assert_no_leak(&inv, &caller);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !k.log_text().contains(line) {
            assert!(Instant::now() < deadline, "no {line:?} in the log:\n{}", k.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn kemi_scripts_set_the_contact_and_trust_a_side() {
    let script = repo_root().join("tests/lua/contact_knobs.lua");
    let k = Kamailio::start(
        "tests/cfg/kemi-lua.cfg",
        &[&format!("LUA_SCRIPT=\"{}\"", script.display())],
    );
    let (caller, callee) = (
        Party::new("caller", "192.0.2.16"),
        Party::new("callee", "198.51.100.16"),
    );
    let call = "kemi-knobs";
    caller.peer.send(
        k.addr,
        &request(
            &caller,
            "INVITE",
            &format!("sip:bob@{}", callee.peer.addr),
            &[],
            &caller.tag(),
            None,
            call,
            1,
            Some(&caller.contact()),
            "X-Caller-User: alice\r\nX-Caller-Host: edge.example.net\r\nX-Trust: callee\r\n",
        ),
    );
    let inv = callee.peer.expect_request("INVITE");
    // topos_trust("callee"): the callee sees the caller side; record-routed,
    // with the caller's real Contact (topos_set_contact() shapes the masked
    // Contact, which a record-routed trusted side does not get).
    assert_eq!(inv.vias().len(), 3, "{}", inv.text);
    assert_contact(&inv, "tps", &format!("<{};tps={{T}}>", caller.contact()));
    callee.peer.send(
        inv.from,
        &reply(
            &callee,
            &inv,
            200,
            Some(&callee.contact()),
            "X-Callee-User: bob\r\nX-Callee-Host: sbc.example.org:5080\r\n",
        ),
    );
    let ok = caller.peer.expect_reply(200, "INVITE");
    assert_contact(&ok, "tps", "<sip:bob@sbc.example.org:5080;tps={T}>");
    assert_no_leak(&ok, &callee);
    // Without trust, the callee gets the masked Contact the script chose.
    caller.peer.send(
        k.addr,
        &request(
            &caller,
            "INVITE",
            &format!("sip:bob@{}", callee.peer.addr),
            &[],
            &caller.tag(),
            None,
            "kemi-knobs-2",
            1,
            Some(&caller.contact()),
            "X-Caller-User: alice\r\nX-Caller-Host: edge.example.net\r\n",
        ),
    );
    let inv = callee.peer.expect_request("INVITE");
    assert_contact(&inv, "tps", "<sip:alice@edge.example.net;tps={T}>");
    assert_no_leak(&inv, &caller);
    // A user part with CR LF: -1, an error line, nothing set.
    caller.peer.send(
        k.addr,
        &request(
            &caller,
            "INVITE",
            &format!("sip:bob@{}", callee.peer.addr),
            &[],
            &caller.tag(),
            None,
            "kemi-knobs-3",
            1,
            Some(&caller.contact()),
            "X-Crlf: 1\r\n",
        ),
    );
    let inv = callee.peer.expect_request("INVITE");
    assert_eq!(
        inv.header("x-set-contact").as_deref(),
        Some("refused"),
        "{}",
        inv.text
    );
    assert_contact(&inv, "tps", &format!("<sip:{{T}}@{}>", k.addr));
    let line = "topos_set_contact: user \"a??b\" has a character a URI user part cannot hold ('\\r'); nothing set";
    let deadline = Instant::now() + Duration::from_secs(5);
    while !k.log_text().contains(line) {
        assert!(
            Instant::now() < deadline,
            "no {line:?} in the log:\n{}",
            k.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ------------------------------------------------------------------ TLS

/// A callee on TLS: `openssl s_server` accepts Kamailio's connection; what
/// it reads comes out on its stdout (a thread hands it over), what is
/// written to its stdin goes back over the connection.
struct TlsCallee {
    child: Child,
    stdin: ChildStdin,
    bytes: Receiver<Vec<u8>>,
    pending: Vec<u8>,
    port: u16,
}

impl TlsCallee {
    fn start(cert: &Path, key: &Path) -> TlsCallee {
        let port = free_tcp_port();
        let mut child = Command::new("openssl")
            .args(["s_server", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("starting openssl s_server");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, bytes) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        // Listening once a TCP connect works (a connection without a
        // handshake: s_server drops it and accepts the next one).
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "openssl s_server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        TlsCallee {
            child,
            stdin,
            bytes,
            pending: Vec::new(),
            port,
        }
    }

    /// The next whole message within 5 s (framed by Content-Length).
    fn recv(&mut self) -> Msg {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.pending[..end + 4]).into_owned();
                let m = Msg {
                    text: head,
                    from: SocketAddr::from(([127, 0, 0, 1], self.port)),
                };
                let clen: usize = m.header("content-length").map_or(0, |v| v.parse().unwrap());
                if self.pending.len() >= end + 4 + clen {
                    let text =
                        String::from_utf8_lossy(&self.pending[..end + 4 + clen]).into_owned();
                    self.pending.drain(..end + 4 + clen);
                    return Msg { text, ..m };
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.bytes.recv_timeout(left) {
                Ok(b) => self.pending.extend(b),
                Err(_) => panic!("the TLS callee got nothing within 5 s"),
            }
        }
    }

    fn expect_request(&mut self, method: &str) -> Msg {
        loop {
            let m = self.recv();
            if m.method() == Some(method) {
                return m;
            }
        }
    }

    fn send(&mut self, text: &str) {
        self.stdin.write_all(text.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
    }
}

impl Drop for TlsCallee {
    fn drop(&mut self) {
        common::kamailio::stop_process_group(&mut self.child, Duration::from_millis(200));
    }
}

#[test]
fn set_contact_on_tls_gives_sips_or_transport_tls_as_the_leg_needs() {
    let dir = scratch_dir("knobs-tls");
    let cert::Cert { cert, key, .. } = cert::make_cert(&dir);
    let tls_port = free_tcp_port();
    let k = Kamailio::start(
        CFG,
        &[
            &format!("LISTEN_TLS=tls:127.0.0.1:{tls_port}"),
            &format!("TLS_CERT=\"{}\"", cert.display()),
            &format!("TLS_KEY=\"{}\"", key.display()),
        ],
    );
    let caller = Party::new("caller", "192.0.2.15");
    let callee_party = Party::new("callee", "198.51.100.15");
    for (n, (scheme, ruri_suffix, knobs)) in [
        ("sips", "", true),
        ("sip", ";transport=tls", true),
        // No choices: the default Contact (sealed tokens by default).
        ("sips", "", false),
        ("sip", ";transport=tls", false),
    ]
    .into_iter()
    .enumerate()
    {
        let mut callee = TlsCallee::start(&cert, &key);
        let call = format!("tls-{n}-{scheme}");
        let ruri = format!("{scheme}:bob@127.0.0.1:{}{ruri_suffix}", callee.port);
        let chosen = if knobs {
            "X-Caller-User: alice\r\nX-Caller-Host: edge.example.net\r\n"
        } else {
            ""
        };
        caller.peer.send(
            k.addr,
            &request(
                &caller,
                "INVITE",
                &ruri,
                &[],
                &caller.tag(),
                None,
                &call,
                1,
                Some(&caller.contact()),
                chosen,
            ),
        );
        let inv = callee.expect_request("INVITE");
        // The TLS leg: a sips: Contact for a SIPS Request-URI (TLS
        // implied), else sip: with ;transport=tls.
        let expected = match (knobs, scheme) {
            (true, "sips") => "<sips:alice@edge.example.net;tps={T}>".to_string(),
            (true, _) => "<sip:alice@edge.example.net;transport=tls;tps={T}>".to_string(),
            (false, "sips") => format!("<sips:{{T}}@127.0.0.1:{tls_port}>"),
            (false, _) => format!("<sip:{{T}}@127.0.0.1:{tls_port};transport=tls>"),
        };
        assert_contact(&inv, "tps", &expected);
        assert_no_leak(&inv, &caller);
        // The callee answers over its TLS connection.
        let tls_contact = format!("sip:callee@127.0.0.1:{};transport=tls", callee.port);
        // No proxy of its own: the callee is reached on its connection.
        let ok_text = reply(&callee_party, &inv, 200, Some(&tls_contact), "").replace(
            &format!("Record-Route: {}\r\n", callee_party.proxy_rr()),
            "",
        );
        callee.send(&ok_text);
        let ok = caller.peer.expect_reply(200, "INVITE");
        let to_callee = user_token(&contact_uri(&ok));
        // The caller asked for sips: its dialog's Contacts are sips: too
        // (RFC 3261 12.1.1), its leg is UDP: no transport either way.
        assert_eq!(
            ok.header("contact").unwrap(),
            format!("<{scheme}:{to_callee}@{}>", k.addr),
            "{}",
            ok.text
        );
        // In-dialog requests reach the TLS callee by the token.
        let route = caller_route_set(&ok);
        caller.peer.send(
            k.addr,
            &request(
                &caller,
                "BYE",
                &contact_uri(&ok),
                &route,
                &caller.tag(),
                Some(&callee_party.tag()),
                &call,
                2,
                None,
                "",
            ),
        );
        let bye = callee.expect_request("BYE");
        assert_eq!(
            bye.first_line(),
            format!("BYE {tls_contact} SIP/2.0"),
            "call {n}"
        );
        assert_no_leak(&bye, &caller);
    }
}

// ----------------------------------------------------- one-way hiding

/// Every message the untrusted side got: none holds an address of the
/// trusted side.
fn assert_capture_clean(received: &[Msg], trusted: &Party) {
    assert!(!received.is_empty());
    for m in received {
        assert_no_leak(m, trusted);
    }
}

/// A call from a trusted caller (it came in on `caller_socket`) to an
/// untrusted callee; in-dialog requests both ways. Returns what the
/// callee received.
fn trusted_caller_call(
    k_in: SocketAddr,
    k_out: &str,
    call: &str,
    extra: &str,
) -> (Party, Party, Vec<Msg>) {
    let (caller, callee) = (
        Party::new("caller", "10.1.1.21"),
        Party::new("callee", "203.0.113.21"),
    );
    let mut seen_by_callee = Vec::new();
    caller.peer.send(
        k_in,
        &request(
            &caller,
            "INVITE",
            &format!("sip:bob@{}", callee.peer.addr),
            &[],
            &caller.tag(),
            None,
            call,
            1,
            Some(&caller.contact()),
            &format!("X-Out: {k_out}\r\n{extra}"),
        ),
    );
    let inv = callee.peer.expect_request("INVITE");
    // Hidden towards the untrusted callee: Kamailio's Via only.
    assert_eq!(inv.vias().len(), 1, "{}", inv.text);
    assert_contact(
        &inv,
        "tps",
        &format!("<sip:{{T}}@{}>", k_out.trim_start_matches("udp:")),
    );
    seen_by_callee.push(inv.clone());
    callee.peer.send(
        inv.from,
        &reply(&callee, &inv, 180, Some(&callee.contact()), ""),
    );
    let ringing = caller.peer.expect_reply(180, "INVITE");
    callee.peer.send(
        inv.from,
        &reply(&callee, &inv, 200, Some(&callee.contact()), ""),
    );
    let ok = caller.peer.expect_reply(200, "INVITE");
    for m in [&ringing, &ok] {
        // The trusted caller sees the callee side as a proxy shows it: its
        // own Via stack, the callee side's Record-Route, Kamailio's, its
        // own; the callee's real Contact, with the token as a parameter.
        assert_eq!(m.vias().len(), 2, "{}", m.text);
        let rr = m.values("record-route");
        assert_eq!(rr.first(), Some(&callee.proxy_rr()), "{}", m.text);
        assert_eq!(rr.last(), Some(&caller.proxy_rr()), "{}", m.text);
        let uri = contact_uri(m);
        let t = param_token(&uri, "tps");
        assert_eq!(
            m.header("contact").unwrap(),
            format!("<{};tps={t}>", callee.contact())
        );
    }
    // The caller's ACK, re-INVITE and BYE go to the callee's real Contact
    // through Kamailio (its Route): hidden on the way.
    let route = caller_route_set(&ok);
    assert_eq!(
        route[0].trim_start_matches("<sip:").split(';').next(),
        Some(k_in.to_string().as_str()),
        "the caller's route set goes through Kamailio's trusted socket"
    );
    let target = contact_uri(&ok);
    caller.peer.send(
        k_in,
        &request(
            &caller,
            "ACK",
            &target,
            &route,
            &caller.tag(),
            Some(&callee.tag()),
            call,
            1,
            None,
            "",
        ),
    );
    let ack = callee.peer.expect_request("ACK");
    assert_eq!(
        ack.first_line(),
        format!("ACK {} SIP/2.0", callee.contact())
    );
    assert_eq!(ack.vias().len(), 1, "{}", ack.text);
    seen_by_callee.push(ack);
    // The callee re-INVITEs: the trusted caller sees its Vias and Contact.
    let callee_route = inv.values("record-route");
    callee.peer.send(
        inv.from,
        &request(
            &callee,
            "INVITE",
            &contact_uri(&inv),
            &callee_route,
            &callee.tag(),
            Some(&caller.tag()),
            call,
            2,
            Some(&callee.contact()),
            "",
        ),
    );
    let reinv = caller.peer.expect_request("INVITE");
    assert_eq!(
        reinv.first_line(),
        format!("INVITE {} SIP/2.0", caller.contact())
    );
    assert!(
        reinv.vias().iter().any(|v| v.contains("callee-upstream")),
        "{}",
        reinv.text
    );
    assert_contact(&reinv, "tps", &format!("<{};tps={{T}}>", callee.contact()));
    caller.peer.send(
        reinv.from,
        &reply(&caller, &reinv, 200, Some(&caller.contact()), ""),
    );
    let ok2 = callee.peer.expect_reply(200, "INVITE");
    assert_contact(
        &ok2,
        "tps",
        &format!("<sip:{{T}}@{}>", k_out.trim_start_matches("udp:")),
    );
    seen_by_callee.push(ok2.clone());
    // The callee's ACK to the trusted caller leaves with the callee's Vias,
    // on purpose: the egress gate lets it go.
    callee.peer.send(
        inv.from,
        &request(
            &callee,
            "ACK",
            &contact_uri(&inv),
            &callee_route,
            &callee.tag(),
            Some(&caller.tag()),
            call,
            2,
            None,
            "",
        ),
    );
    let ack2 = caller.peer.expect_request("ACK");
    assert!(ack2.vias().len() >= 3, "{}", ack2.text);
    // The trusted caller hangs up.
    caller.peer.send(
        k_in,
        &request(
            &caller,
            "BYE",
            &target,
            &route,
            &caller.tag(),
            Some(&callee.tag()),
            call,
            3,
            None,
            "",
        ),
    );
    let bye = callee.peer.expect_request("BYE");
    assert_eq!(bye.vias().len(), 1, "{}", bye.text);
    assert!(
        bye.header("x-billed").is_some(),
        "billing unchanged:\n{}",
        bye.text
    );
    seen_by_callee.push(bye.clone());
    callee
        .peer
        .send(bye.from, &reply(&callee, &bye, 200, None, ""));
    let bye_ok = caller.peer.expect_reply(200, "BYE");
    assert_eq!(bye_ok.vias().len(), 2, "{}", bye_ok.text);
    (caller, callee, seen_by_callee)
}

#[test]
fn one_way_hiding_a_caller_on_a_trusted_socket_sees_everything_the_callee_nothing() {
    let trusted_port = free_port();
    let k = Kamailio::start(
        CFG,
        &[
            &format!("LISTEN_TRUSTED=udp:127.0.0.1:{trusted_port}"),
            &format!("TRUSTED_SOCKET=\"udp:127.0.0.1:{trusted_port}\""),
        ],
    );
    let k_trusted = SocketAddr::from(([127, 0, 0, 1], trusted_port));
    let (caller, _callee, seen) = trusted_caller_call(
        k_trusted,
        &format!("udp:{}", k.addr),
        "trusted-socket-caller",
        "",
    );
    assert_capture_clean(&seen, &caller);
}

#[test]
fn one_way_hiding_a_trusted_sides_request_relayed_unhidden_never_reaches_the_other_side() {
    // The trusted caller sees the callee's real Contact with the token; a
    // script path that relays its BYE without topos_request() would send
    // the caller side's Vias to the untrusted callee: the egress gate
    // drops it.
    let trusted_port = free_port();
    let k = Kamailio::start(
        CFG,
        &[
            &format!("LISTEN_TRUSTED=udp:127.0.0.1:{trusted_port}"),
            &format!("TRUSTED_SOCKET=\"udp:127.0.0.1:{trusted_port}\""),
        ],
    );
    let k_in = SocketAddr::from(([127, 0, 0, 1], trusted_port));
    let (caller, callee) = (
        Party::new("caller", "10.1.1.41"),
        Party::new("callee", "203.0.113.41"),
    );
    let call = "careless";
    caller.peer.send(
        k_in,
        &request(
            &caller,
            "INVITE",
            &format!("sip:bob@{}", callee.peer.addr),
            &[],
            &caller.tag(),
            None,
            call,
            1,
            Some(&caller.contact()),
            &format!("X-Out: udp:{}\r\n", k.addr),
        ),
    );
    let inv = callee.peer.expect_request("INVITE");
    callee.peer.send(
        inv.from,
        &reply(&callee, &inv, 200, Some(&callee.contact()), ""),
    );
    let ok = caller.peer.expect_reply(200, "INVITE");
    let target = contact_uri(&ok);
    param_token(&target, "tps");
    caller.peer.send(
        k_in,
        &request(
            &caller,
            "BYE",
            &target,
            &caller_route_set(&ok),
            &caller.tag(),
            Some(&callee.tag()),
            call,
            2,
            None,
            "X-Careless: 1\r\n",
        ),
    );
    if let Some(m) = callee.peer.recv_within(Duration::from_secs(2)) {
        assert!(
            m.method() != Some("BYE"),
            "an unhidden BYE got out:\n{}",
            m.text
        );
    }
    let line = "dropped: a request with a topos_rs token in its Request-URI";
    let deadline = Instant::now() + Duration::from_secs(5);
    while !k.log_text().contains(line) {
        assert!(
            Instant::now() < deadline,
            "no {line:?} in the log:\n{}",
            k.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A call from an untrusted caller to a callee that is trusted (by
/// `extra`'s X-Trust or by the socket the INVITE leaves on); in-dialog
/// requests both ways. `record_routed`: Kamailio is in the dialog's route
/// set. Returns the parties and what the caller received.
fn trusted_callee_call(
    k: &Kamailio,
    call: &str,
    extra: &str,
    record_routed: bool,
) -> (Party, Party, Vec<Msg>) {
    let (caller, callee) = (
        Party::new("caller", "203.0.113.31"),
        Party::new("callee", "10.1.1.31"),
    );
    let mut seen_by_caller = Vec::new();
    caller.peer.send(
        k.addr,
        &request(
            &caller,
            "INVITE",
            &format!("sip:bob@{}", callee.peer.addr),
            &[],
            &caller.tag(),
            None,
            call,
            1,
            Some(&caller.contact()),
            extra,
        ),
    );
    let inv = callee.peer.expect_request("INVITE");
    // The trusted callee sees the caller side's Vias as a proxy passes
    // them.
    let vias = inv.vias();
    assert_eq!(vias.len(), 3, "{}", inv.text);
    assert!(
        vias[1].contains(&caller.peer.addr.to_string()),
        "{}",
        inv.text
    );
    assert!(vias[2].contains("caller-upstream"), "{}", inv.text);
    if record_routed {
        // ... and its Record-Routes and real Contact, with the token.
        assert!(
            inv.values("record-route").contains(&caller.proxy_rr()),
            "{}",
            inv.text
        );
        assert_contact(&inv, "tps", &format!("<{};tps={{T}}>", caller.contact()));
    } else {
        // Not record-routed: its requests would go around Kamailio, so the
        // caller side's Record-Routes and Contact stay hidden.
        assert!(inv.header("record-route").is_none(), "{}", inv.text);
        assert_contact(&inv, "tps", &format!("<sip:{{T}}@{}>", k.addr));
    }
    callee.peer.send(
        inv.from,
        &reply(&callee, &inv, 200, Some(&callee.contact()), ""),
    );
    let ok = caller.peer.expect_reply(200, "INVITE");
    // The untrusted caller: its own Via stack, Kamailio's and its own
    // side's Record-Routes, the masked Contact.
    assert_eq!(ok.vias().len(), 2, "{}", ok.text);
    assert!(
        ok.vias()[0].contains(&caller.peer.addr.to_string()),
        "{}",
        ok.text
    );
    assert_contact(&ok, "tps", &format!("<sip:{{T}}@{}>", k.addr));
    seen_by_caller.push(ok.clone());
    // The caller's ACK to the trusted callee leaves with the caller's
    // Vias, on purpose: the egress gate lets it go.
    let route = caller_route_set(&ok);
    caller.peer.send(
        k.addr,
        &request(
            &caller,
            "ACK",
            &contact_uri(&ok),
            &route,
            &caller.tag(),
            Some(&callee.tag()),
            call,
            1,
            None,
            "",
        ),
    );
    let ack = callee.peer.expect_request("ACK");
    assert_eq!(
        ack.first_line(),
        format!("ACK {} SIP/2.0", callee.contact())
    );
    assert!(
        ack.vias().iter().any(|v| v.contains("caller-upstream")),
        "{}",
        ack.text
    );
    // The trusted callee re-INVITEs the caller: to the Request-URI it was
    // shown (the caller's real Contact with the token, or the masked one),
    // along its route set (the INVITE's Record-Routes), which starts at
    // Kamailio.
    let callee_route = inv.values("record-route");
    let send_to = inv.from;
    callee.peer.send(
        send_to,
        &request(
            &callee,
            "INVITE",
            &contact_uri(&inv),
            &callee_route,
            &callee.tag(),
            Some(&caller.tag()),
            call,
            1,
            Some(&callee.contact()),
            "",
        ),
    );
    let reinv = caller.peer.expect_request("INVITE");
    assert_eq!(
        reinv.first_line(),
        format!("INVITE {} SIP/2.0", caller.contact())
    );
    assert_eq!(reinv.vias().len(), 1, "{}", reinv.text);
    assert_contact(&reinv, "tps", &format!("<sip:{{T}}@{}>", k.addr));
    seen_by_caller.push(reinv.clone());
    caller.peer.send(
        reinv.from,
        &reply(&caller, &reinv, 200, Some(&caller.contact()), ""),
    );
    let ok2 = callee.peer.expect_reply(200, "INVITE");
    assert_eq!(ok2.vias().len(), 2, "{}", ok2.text);
    if record_routed {
        assert_contact(&ok2, "tps", &format!("<{};tps={{T}}>", caller.contact()));
    } else {
        assert_contact(&ok2, "tps", &format!("<sip:{{T}}@{}>", k.addr));
    }
    callee.peer.send(
        send_to,
        &request(
            &callee,
            "ACK",
            &contact_uri(&inv),
            &callee_route,
            &callee.tag(),
            Some(&caller.tag()),
            call,
            1,
            None,
            "",
        ),
    );
    seen_by_caller.push(caller.peer.expect_request("ACK"));
    // The trusted callee hangs up.
    callee.peer.send(
        send_to,
        &request(
            &callee,
            "BYE",
            &contact_uri(&inv),
            &callee_route,
            &callee.tag(),
            Some(&caller.tag()),
            call,
            2,
            None,
            "",
        ),
    );
    let bye = caller.peer.expect_request("BYE");
    assert_eq!(bye.vias().len(), 1, "{}", bye.text);
    assert!(
        bye.header("x-billed").is_some(),
        "billing unchanged:\n{}",
        bye.text
    );
    seen_by_caller.push(bye.clone());
    caller
        .peer
        .send(bye.from, &reply(&caller, &bye, 200, None, ""));
    callee.peer.expect_reply(200, "BYE");
    (caller, callee, seen_by_caller)
}

#[test]
fn one_way_hiding_topos_trust_callee_sees_everything_the_caller_nothing() {
    let k = Kamailio::start(CFG, &[]);
    let (_caller, callee, seen) =
        trusted_callee_call(&k, "trust-callee", "X-Trust: callee\r\n", true);
    assert_capture_clean(&seen, &callee);
    // A gate drop would have been counted and logged.
    assert!(!k.log_text().contains("dropped:"), "{}", k.log_text());
}

#[test]
fn one_way_hiding_a_callee_behind_a_trusted_socket() {
    // The INVITE leaves on the trusted socket (the script forces it, $fs,
    // as a multi-homed config routes the inside): the callee is trusted.
    // Kamailio record-routes both sockets, and rr's double Record-Route
    // sends the in-dialog requests to the caller out of the other one.
    let trusted_port = free_port();
    let k = Kamailio::start(
        CFG,
        &[
            &format!("LISTEN_TRUSTED=udp:127.0.0.1:{trusted_port}"),
            &format!("TRUSTED_SOCKET=\"udp:127.0.0.1:{trusted_port}\""),
        ],
    );
    let (_caller, callee, seen) = trusted_callee_call(
        &k,
        "trusted-socket-callee",
        &format!("X-Out: udp:127.0.0.1:{trusted_port}\r\n"),
        true,
    );
    assert_capture_clean(&seen, &callee);
}

#[test]
fn one_way_hiding_without_record_route_keeps_the_masked_contact() {
    let k = Kamailio::start(CFG, &["NO_RECORD_ROUTE"]);
    let (_caller, callee, seen) =
        trusted_callee_call(&k, "trust-no-rr", "X-Trust: callee\r\n", false);
    assert_capture_clean(&seen, &callee);
}

// ------------------------------------------------------------ bad input

/// Starts Kamailio expecting it to stop; its log.
fn start_expecting_failure(defines: &[&str]) -> String {
    let dir = scratch_dir("knobs-fail");
    let mut cmd = Command::new(kamailio_bin());
    cmd.arg("-DD")
        .arg("-E")
        .arg("-f")
        .arg(repo_root().join(CFG))
        .arg("-L")
        .arg(module_path());
    cmd.arg("-Y")
        .arg(&dir)
        .arg("-A")
        .arg(format!("LISTEN=udp:127.0.0.1:{}", free_port()));
    for d in defines {
        cmd.arg("-A").arg(d);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            common::kamailio::stop_process_group(&mut child, Duration::ZERO);
            panic!("kamailio kept running with {defines:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .as_mut()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success(), "{err}");
    let _ = std::fs::remove_dir_all(dir);
    err
}

#[test]
fn bad_knob_parameters_stop_start_up_with_a_clear_line() {
    for (defines, line) in [
        (
            &["CONTACT_MODE=2"][..],
            "modparam \"contact_mode\": 2 is outside 0..1 (0 or 1)",
        ),
        (
            &["CONTACT_MODE=-1"][..],
            "modparam \"contact_mode\": -1 is outside 0..1 (0 or 1)",
        ),
        (
            &["CONTACT_MODE=1", "CONTACT_PARAM=\"\""][..],
            "modparam \"contact_param\": empty: the token needs a URI parameter name",
        ),
        (
            &["CONTACT_PARAM=\"a;b\""][..],
            "modparam \"contact_param\": \"a;b\" is not a URI parameter name",
        ),
        (
            &["TRUSTED_SOCKET=\"10.0.0.1:5060\""][..],
            "modparam \"trusted_socket\": \"10.0.0.1:5060\" is not proto:ip:port",
        ),
    ] {
        let err = start_expecting_failure(defines);
        assert!(err.contains(line), "{defines:?}: no {line:?} in:\n{err}");
    }
    // A socket Kamailio does not listen on (a second value, after one it
    // does listen on: the parameter repeats).
    let port = free_port();
    let err = start_expecting_failure(&[
        &format!("LISTEN_TRUSTED=udp:127.0.0.1:{port}"),
        &format!("TRUSTED_SOCKET=\"udp:127.0.0.1:{port}\""),
        "TRUSTED_SOCKET2=\"tcp:127.0.0.1:9\"",
    ]);
    assert!(
        err.contains(
            "topos_rs: modparam \"trusted_socket\": tcp:127.0.0.1:9 is not a socket Kamailio listens on"
        ),
        "{err}"
    );
}
