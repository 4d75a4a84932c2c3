//! Issue 22 point 3: cfg-examples/kamailio-edge.cfg, the edge configuration
//! operators start from, driven end to end by real clients with media
//! through a real rtpengine (Debian's rtpengine-daemon, userspace).
//!
//! Addresses, so that a leak is unambiguous: Kamailio 127.0.0.1 (UDP, TCP,
//! TLS, WS and WSS sockets), the baresip caller 127.0.0.2 (TLS), the
//! baresip callee 127.0.0.3 (UDP; the config's UPSTREAM), rtpengine's
//! media 127.0.0.4, the WebSocket client 127.0.0.5 (tests/edge_config/
//! ws_client.py: Python `websockets`, RFC 7118, plain RTP/AVP).
//!
//! What each side received, and how it is read:
//! - the UDP callee: from a capture on `lo` (tcpdump, tests/real_ua/pcap.rs);
//! - the TLS caller: from its own SIP trace (baresip -s prints each message
//!   it received, after TLS): a capture cannot read TLS, and Kamailio's own
//!   log shows what it meant to send, not what arrived;
//! - the WebSocket client: what it took out of the WebSocket frames (its
//!   own record, one JSON line per message; on wss:// a capture shows
//!   nothing, and on ws:// the client's record is the same bytes, deframed).
//!
//! Checked for every message a side received: no address, SIP port, RTP
//! port or Contact user of the other side anywhere in it; every c= and o=
//! line names rtpengine's address and every m= port is in rtpengine's
//! port range. RTP (from the capture): each side sends to and receives
//! from rtpengine only, in both directions, and never talks to the other
//! side directly; rtpengine's own counters (ng `query`) agree. Each call is
//! billed once. The control runs the same config without topos_rs
//! (WITHOUT_TOPOS) and must trip the SIP checks.

#[path = "real_ua/baresip.rs"]
mod baresip;
#[path = "real_ua/cert.rs"]
mod cert;
mod common;
#[path = "real_ua/pcap.rs"]
mod pcap;
#[path = "edge_config/rtpengine.rs"]
mod rtpengine;

use baresip::{free_sip_port, Ua};
use cert::{make_cert, Cert};
use common::kamailio::{free_tcp_port, repo_root, scratch_dir, Kamailio};
use pcap::{Capture, Proto};
use rtpengine::Rtpengine;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const EDGE: &str = "cfg-examples/kamailio-edge.cfg";
const CALLER_IP: &str = "127.0.0.2";
const CALLEE_IP: &str = "127.0.0.3";
const MEDIA_IP: &str = "127.0.0.4";
const WS_IP: &str = "127.0.0.5";
const DEBIAN_PYTHON: &str = "/usr/bin/python3";
const FROM_USER: &str = "01089672389";
const TO_USER: &str = "13545769997";

/// The tests share the loopback addresses and the CPU.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn require(tools: &[&str]) {
    for &tool in tools {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
            .unwrap_or(false);
        assert!(
            found,
            "{tool} is not installed: `make test` installs it (make deps: APT_PACKAGES)"
        );
    }
}

/// Kamailio with the edge config, rtpengine, the capture and the UDP callee.
struct Edge {
    k: Kamailio,
    rtp: Rtpengine,
    cap: Capture,
    callee: Ua,
    cert: Cert,
    dir: PathBuf,
    tls: u16,
    ws: u16,
    wss: u16,
}

impl Edge {
    fn start(extra: &[&str]) -> Edge {
        require(&["baresip", "tcpdump", "openssl", "rtpengine"]);
        assert!(
            std::path::Path::new(DEBIAN_PYTHON).exists(),
            "{DEBIAN_PYTHON} is missing: `make test` installs python3-websockets"
        );
        let dir = scratch_dir("edge-config");
        let cert = make_cert(&dir);
        let rtp = Rtpengine::start(&dir, MEDIA_IP);
        let q = free_sip_port(CALLEE_IP);
        let mut tcp_ports = BTreeSet::new();
        while tcp_ports.len() < 4 {
            tcp_ports.insert(free_tcp_port());
        }
        let p: Vec<u16> = tcp_ports.into_iter().collect();
        let (tcp, tls, ws, wss) = (p[0], p[1], p[2], p[3]);
        let defines = [
            format!("LISTEN_TCP=tcp:127.0.0.1:{tcp}"),
            format!("LISTEN_TLS=tls:127.0.0.1:{tls}"),
            format!("WS_PORT={ws}"),
            format!("WSS_PORT={wss}"),
            format!("TLS_CERT=\"{}\"", cert.cert.display()),
            format!("TLS_KEY=\"{}\"", cert.key.display()),
            format!("RTPENGINE_SOCK=\"udp:{}\"", rtp.ng),
            format!("UPSTREAM=\"{CALLEE_IP}:{q}\""),
            format!("CTL_SOCKET=\"unix:{}\"", dir.join("ctl.sock").display()),
        ];
        let mut refs: Vec<&str> = defines.iter().map(String::as_str).collect();
        refs.extend_from_slice(extra);
        let k = Kamailio::start(EDGE, &refs);
        // Every packet of the clients and of rtpengine's media address.
        let cap = Capture::start_filter(
            &dir,
            &format!("host {CALLER_IP} or host {CALLEE_IP} or host {MEDIA_IP} or host {WS_IP}"),
        );
        let callee = Ua::start(
            "callee",
            CALLEE_IP,
            q,
            &format!("<sip:{TO_USER}@example.com>;regint=0;answermode=auto"),
            &cert.both,
            &dir,
        );
        Edge {
            k,
            rtp,
            cap,
            callee,
            cert,
            dir,
            tls,
            ws,
            wss,
        }
    }

    /// Kamailio's SIP ports (messages from them come from Kamailio).
    fn k_ports(&self) -> Vec<u16> {
        let udp = self.k.addr.port();
        vec![udp, self.tls, self.ws, self.wss]
    }

    /// Keeps the evidence of a failed run under target/edge_config/<name>.
    fn keep(&self, name: &str, log: &str) -> PathBuf {
        let keep = repo_root().join("target/edge_config").join(name);
        let _ = std::fs::remove_dir_all(&keep);
        std::fs::create_dir_all(&keep).unwrap();
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if e.path().is_file() {
                let _ = std::fs::copy(e.path(), keep.join(e.file_name()));
            }
        }
        std::fs::write(keep.join("kamailio.log"), log).unwrap();
        keep
    }
}

/// What one side must never see of the other: its IP, its SIP and RTP
/// ports, its Contact user and host.
#[derive(Debug, Default)]
struct Secrets {
    words: Vec<String>,
    ports: Vec<u16>,
}

/// A baresip's secrets: its IP, SIP ports, RTP ports (its config's range)
/// and the Contact users of what it sent to Kamailio (from its trace).
fn baresip_secrets(ua: &Ua, k_ports: &[u16]) -> Secrets {
    let mut s = Secrets {
        words: vec![ua.ip.to_string()],
        ports: vec![ua.sip_port, ua.sip_port + 1],
    };
    let (lo, hi) = baresip::rtp_ports(ua.sip_port);
    s.ports.extend(lo..=hi);
    for t in baresip::trace(&ua.log_text()) {
        if !to_kamailio(&t.dst, k_ports) {
            continue;
        }
        if let Some(user) = header(&t.text, "contact").as_deref().and_then(contact_user) {
            if !s.words.contains(&user) {
                s.words.push(user);
            }
        }
    }
    s
}

fn to_kamailio(addr: &str, k_ports: &[u16]) -> bool {
    addr.strip_prefix("127.0.0.1:")
        .and_then(|p| p.parse::<u16>().ok())
        .is_some_and(|p| k_ports.contains(&p))
}

/// The first value of header `name` (long form, case-insensitive).
fn header(text: &str, name: &str) -> Option<String> {
    head(text).split("\r\n").skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn contact_user(c: &str) -> Option<String> {
    let uri = c.trim_start_matches('<');
    let rest = uri.strip_prefix("sip:").or(uri.strip_prefix("sips:"))?;
    let user = rest.split_once('@')?.0;
    (!user.is_empty()).then(|| user.to_string())
}

fn head(text: &str) -> &str {
    text.split("\r\n\r\n").next().unwrap_or(text)
}

fn body(text: &str) -> &str {
    text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("")
}

fn first_line(text: &str) -> &str {
    text.split("\r\n").next().unwrap_or("")
}

/// `:PORT` or ` PORT` (SDP) not followed by another digit.
fn has_port(text: &str, port: u16) -> bool {
    [format!(":{port}"), format!(" {port}")].iter().any(|pat| {
        text.match_indices(pat.as_str()).any(|(i, _)| {
            !text[i + pat.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
    })
}

/// The checks on what `receiver` got: nothing of the far side in SIP or
/// SDP, and SDP that names only rtpengine. Returns the failures (one per
/// kind of message) and how many SDP bodies were checked.
fn check_received(
    receiver: &str,
    far: &str,
    got: &[String],
    secrets: &Secrets,
    rtp: &Rtpengine,
) -> (Vec<String>, usize) {
    let mut f = Vec::new();
    let mut reported = BTreeSet::new();
    let mut sdps = 0;
    for m in got {
        let mut why = Vec::new();
        for w in &secrets.words {
            if m.contains(w.as_str()) {
                why.push(format!("{w:?}"));
            }
        }
        // SIP ports of the far side in the headers (Via, Contact,
        // Record-Route, Route ...); in SDP every port is checked below.
        for p in &secrets.ports {
            if has_port(head(m), *p) {
                why.push(format!("port {p}"));
            }
        }
        let sdp = body(m);
        if sdp.contains("v=0") {
            sdps += 1;
            for l in sdp.lines() {
                let bad = if let Some(c) = l.strip_prefix("c=") {
                    c != format!("IN IP4 {MEDIA_IP}")
                } else if let Some(o) = l.strip_prefix("o=") {
                    !o.ends_with(&format!("IN IP4 {MEDIA_IP}"))
                } else if let Some(m) = l.strip_prefix("m=") {
                    let port: u32 = m
                        .split_whitespace()
                        .nth(1)
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(0);
                    port != 0 && !(rtp.ports.0 as u32..=rtp.ports.1 as u32).contains(&port)
                } else {
                    false
                };
                if bad {
                    why.push(format!(
                        "SDP line {l:?} (rtpengine is {MEDIA_IP}, ports {}-{})",
                        rtp.ports.0, rtp.ports.1
                    ));
                }
            }
        }
        if !why.is_empty() && reported.insert(first_line(m).to_string()) {
            f.push(format!(
                "LEAK: the {receiver} received {} of the {far} in:\n{}",
                why.join(", "),
                m.replace("\r\n", "\n")
            ));
        }
    }
    (f, sdps)
}

/// The masked Contact in every message `receiver` got names the Kamailio
/// socket and transport it talks to (`want`: `127.0.0.1:PORT`, transport).
fn check_contacts(receiver: &str, got: &[String], want: (&str, &str)) -> Vec<String> {
    let mut f = Vec::new();
    let mut n = 0;
    for m in got {
        let Some(c) = header(m, "contact") else {
            continue;
        };
        n += 1;
        let uri = c.trim_start_matches('<').split('>').next().unwrap_or("");
        let hostport = uri
            .split('@')
            .nth(1)
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("");
        let transport = uri
            .split(';')
            .skip(1)
            .find_map(|p| p.strip_prefix("transport="))
            .unwrap_or("udp")
            .to_ascii_lowercase();
        if hostport != want.0 || transport != want.1 {
            f.push(format!(
                "CONTACT: the {receiver} talks {} to {}, but received Contact: {c} in {:?}",
                want.1,
                want.0,
                first_line(m)
            ));
        }
    }
    if n == 0 {
        f.push(format!(
            "CONTACT: the {receiver} received no Contact at all"
        ));
    }
    f
}

/// SIP messages the UDP callee received (capture).
fn callee_received(packets: &[pcap::Packet], callee: &Ua) -> Vec<String> {
    pcap::sip_messages(packets)
        .into_iter()
        .filter(|m| {
            m.proto == Proto::Udp
                && m.dst.ip().to_string() == callee.ip
                && m.dst.port() == callee.sip_port
        })
        .map(|m| m.text)
        .collect()
}

/// Messages a baresip received from Kamailio, from its own trace.
fn trace_received(ua: &Ua, k_ports: &[u16]) -> Vec<String> {
    baresip::trace(&ua.log_text())
        .into_iter()
        .filter(|t| to_kamailio(&t.src, k_ports))
        .map(|t| t.text)
        .collect()
}

/// Whose media endpoint an address is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Party {
    Rtpengine,
    /// A UA, known by its IP (the WebSocket client binds it) or by its
    /// RTP ports (baresip sends from a wildcard socket).
    Ua(&'static str),
    Other,
}

/// A UA's media endpoints: its IP, or any loopback address with a port in
/// its RTP range.
struct MediaOf {
    name: &'static str,
    ip: Option<&'static str>,
    ports: Option<(u16, u16)>,
}

/// RTP packets (version 2, at least a header) per (sender, receiver) in
/// the capture.
fn rtp_flows(packets: &[pcap::Packet], uas: &[MediaOf]) -> BTreeMap<(Party, Party), usize> {
    let who = |a: std::net::SocketAddrV4| -> Party {
        if a.ip().to_string() == MEDIA_IP {
            return Party::Rtpengine;
        }
        for u in uas {
            let by_ip = u.ip.is_some_and(|ip| a.ip().to_string() == ip);
            let by_port = u
                .ports
                .is_some_and(|(lo, hi)| (lo..=hi).contains(&a.port()));
            if by_ip || by_port {
                return Party::Ua(u.name);
            }
        }
        Party::Other
    };
    let mut flows = BTreeMap::new();
    for p in packets {
        // SIP over UDP starts with a letter (0x41..0x7a: version bits 01);
        // RTCP has payload types 72..76 (200..204 without the marker bit).
        if p.proto == Proto::Udp
            && p.payload.len() >= 12
            && p.payload[0] >> 6 == 2
            && (p.payload[1] & 0x7f) < 35
        {
            *flows.entry((who(p.src), who(p.dst))).or_insert(0) += 1;
        }
    }
    flows
}

/// Media went through rtpengine both ways on both legs, never directly.
/// `min` packets per direction and leg.
fn check_rtp(
    flows: &BTreeMap<(Party, Party), usize>,
    a: &'static str,
    b: &'static str,
    min: usize,
) -> Vec<String> {
    let n = |s: Party, d: Party| flows.get(&(s, d)).copied().unwrap_or(0);
    let (a, b, r) = (Party::Ua(a), Party::Ua(b), Party::Rtpengine);
    let mut f = Vec::new();
    for (s, d) in [(a, r), (r, a), (b, r), (r, b)] {
        if n(s, d) < min {
            f.push(format!(
                "RTP: {} packet(s) from {s:?} to {d:?}, expected at least {min}; all flows: {flows:?}",
                n(s, d)
            ));
        }
    }
    if n(a, b) + n(b, a) > 0 {
        f.push(format!(
            "RTP: {} packet(s) went directly between {a:?} and {b:?}, around rtpengine: {flows:?}",
            n(a, b) + n(b, a)
        ));
    }
    f
}

/// rtpengine's own counters for the call: every stream it relays has
/// counted packets (asked while the call is up).
fn check_rtpengine_counters(rtp: &Rtpengine, call_id: &str) -> (Vec<String>, Vec<i64>) {
    let q = match rtp.command("query", &[("call-id", rtpengine::B::Str(call_id.into()))]) {
        Ok(q) => q,
        Err(e) => return (vec![format!("rtpengine query {call_id}: {e}")], vec![]),
    };
    if q.get("result").and_then(rtpengine::B::str) != Some("ok") {
        return (
            vec![format!("rtpengine does not know the call {call_id}: {q:?}")],
            vec![],
        );
    }
    let mut counts = Vec::new();
    if let Some(tags) = q.get("tags") {
        rtpengine::packet_counters(tags, &mut counts);
    }
    // Two parties, an RTP stream each with packets received from it.
    let busy = counts.iter().filter(|&&n| n >= 20).count();
    let f = if busy < 2 {
        vec![format!(
            "rtpengine counted {counts:?} packets on the call's streams: expected two streams \
             with 20 or more"
        )]
    } else {
        vec![]
    };
    (f, counts)
}

/// Kamailio logged no error: a module that fails (rtpengine unreachable,
/// a refused handshake, a CDR not written) shows here first.
fn check_log_clean(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(" ERROR: ") || l.contains(" CRITICAL: "))
        .map(|l| format!("KAMAILIO LOG: {l}"))
        .collect()
}

/// Exactly one CALL BILLING line for the call, From/To as dialed.
fn check_bill(log: &str, call_id: &str) -> Vec<String> {
    let bills: Vec<&str> = log
        .lines()
        .filter_map(|l| l.find("CALL BILLING - ").map(|i| &l[i..]))
        .filter(|b| b.contains(&format!("Call-ID: {call_id},")))
        .collect();
    let head = format!("CALL BILLING - Call-ID: {call_id}, From: {FROM_USER}, To: {TO_USER}, ");
    if bills.len() != 1 || !bills[0].starts_with(&head) {
        vec![format!(
            "billing: expected one line starting {head:?}, got {bills:?}"
        )]
    } else {
        vec![]
    }
}

// ------------------------------------------------------------ TLS caller

struct Outcome {
    failures: Vec<String>,
    summary: String,
}

/// baresip over TLS calls baresip over UDP through the edge config; the
/// call stays up `up` with RTP flowing, then the caller hangs up.
fn tls_to_udp(extra: &[&str], name: &str) -> Outcome {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let mut e = Edge::start(extra);
    let p = loop {
        let p = free_sip_port(CALLER_IP);
        if p.abs_diff(e.callee.sip_port) > 1 {
            break p;
        }
    };
    let mut caller = Ua::start(
        "caller",
        CALLER_IP,
        p,
        &format!("<sip:{FROM_USER}@example.com>;regint=0"),
        &e.cert.both,
        &e.dir,
    );
    let mut f = Vec::new();
    let uri = format!("sip:{TO_USER}@127.0.0.1:{};transport=tls", e.tls);
    let mut call_id = String::new();
    let mut counters = Vec::new();
    match caller.cmd("dial", &uri) {
        Err(x) => f.push(format!("dial {uri}: {x}")),
        Ok(_) => {
            let est = caller.event("CALL_ESTABLISHED", Duration::from_secs(10));
            let est_callee = e.callee.event("CALL_ESTABLISHED", Duration::from_secs(3));
            call_id = est
                .as_ref()
                .and_then(|v| v["id"].as_str())
                .unwrap_or("")
                .to_string();
            if est.is_none() || est_callee.is_none() {
                f.push(format!(
                    "call not established (caller {}, callee {}); events: caller {:?}, callee {:?}",
                    est.is_some(),
                    est_callee.is_some(),
                    caller.pending_events(),
                    e.callee.pending_events()
                ));
            } else {
                std::thread::sleep(Duration::from_millis(2500));
                let (cf, counts) = check_rtpengine_counters(&e.rtp, &call_id);
                f.extend(cf);
                counters = counts;
            }
            let _ = caller.cmd("hangup", "");
            let t = Duration::from_secs(5);
            if caller.event("CALL_CLOSED", t).is_none()
                || e.callee.event("CALL_CLOSED", t).is_none()
            {
                f.push(format!(
                    "the call did not end on both sides; events: caller {:?}, callee {:?}",
                    caller.pending_events(),
                    e.callee.pending_events()
                ));
            }
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let packets = e.cap.stop();
    let log = e.k.log_text();
    let kp = e.k_ports();
    let to_callee = callee_received(&packets, &e.callee);
    let to_caller = trace_received(&caller, &kp);
    let (f1, sdp_callee) = check_received(
        "UDP callee",
        "TLS caller",
        &to_callee,
        &baresip_secrets(&caller, &kp),
        &e.rtp,
    );
    let (f2, sdp_caller) = check_received(
        "TLS caller",
        "UDP callee",
        &to_caller,
        &baresip_secrets(&e.callee, &kp),
        &e.rtp,
    );
    f.extend(f1);
    f.extend(f2);
    let udp = format!("127.0.0.1:{}", e.k.addr.port());
    let tls = format!("127.0.0.1:{}", e.tls);
    f.extend(check_contacts("UDP callee", &to_callee, (&udp, "udp")));
    f.extend(check_contacts("TLS caller", &to_caller, (&tls, "tls")));
    if sdp_callee == 0 || sdp_caller == 0 {
        f.push(format!(
            "SDP bodies received: callee {sdp_callee}, caller {sdp_caller}: the offer and the \
             answer must each have reached the other side"
        ));
    }
    let flows = rtp_flows(
        &packets,
        &[
            MediaOf {
                name: "caller",
                ip: None,
                ports: Some(baresip::rtp_ports(caller.sip_port)),
            },
            MediaOf {
                name: "callee",
                ip: None,
                ports: Some(baresip::rtp_ports(e.callee.sip_port)),
            },
        ],
    );
    f.extend(check_rtp(&flows, "caller", "callee", 50));
    if !call_id.is_empty() {
        f.extend(check_bill(&log, &call_id));
    }
    f.extend(check_log_clean(&log));
    let summary = format!(
        "edge_config [{name}]: {} packets, {} SIP messages to the callee, {} to the caller, RTP \
         flows {flows:?}, rtpengine counters {counters:?}, {:.1} s",
        packets.len(),
        to_callee.len(),
        to_caller.len(),
        started.elapsed().as_secs_f64()
    );
    caller.stop();
    e.callee.stop();
    if !f.is_empty() {
        let kept = e.keep(name, &log);
        f.insert(0, format!("[{name}] evidence kept in {}", kept.display()));
    }
    Outcome {
        failures: f,
        summary,
    }
}

#[test]
fn tls_baresip_calls_udp_baresip_media_through_rtpengine() {
    let o = tls_to_udp(&[], "tls-udp");
    eprintln!("{}", o.summary);
    assert!(o.failures.is_empty(), "{}", o.failures.join("\n\n"));
}

/// The same call through the same config without topos_rs: the checks
/// must see the caller's address reach the callee (and the other way),
/// so they see what they claim to see.
#[test]
fn control_without_topos_the_checks_see_the_leaks() {
    let o = tls_to_udp(&["WITHOUT_TOPOS"], "tls-udp-control");
    eprintln!("{}", o.summary);
    let all = o.failures.join("\n\n");
    for want in [
        "LEAK: the UDP callee received",
        "LEAK: the TLS caller received",
    ] {
        assert!(
            all.contains(want),
            "the checks missed {want:?} without topos_rs:\n{all}"
        );
    }
    // The media checks pass either way: rtpengine does not need topos_rs.
    assert!(!all.contains("RTP: "), "{all}");
}

// ------------------------------------------------------- WebSocket caller

/// What the WebSocket client reported.
struct WsRun {
    events: Vec<Value>,
    ok: bool,
    stderr: String,
}

impl WsRun {
    fn received(&self) -> Vec<String> {
        self.texts("recv")
    }
    fn texts(&self, kind: &str) -> Vec<String> {
        self.events
            .iter()
            .filter(|v| v["event"] == kind)
            .filter_map(|v| v["text"].as_str().map(String::from))
            .collect()
    }
    fn event(&self, kind: &str) -> Option<&Value> {
        self.events.iter().find(|v| v["event"] == kind)
    }
}

/// A free UDP port on `ip` (the WebSocket client's RTP port).
fn free_udp_port_on(ip: &str) -> u16 {
    UdpSocket::bind(format!("{ip}:0"))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

/// The WebSocket client's secrets: its IP, its made-up host and Contact
/// user (from what it sent), its RTP port.
fn ws_secrets(run: &WsRun, rtp_port: u16) -> Secrets {
    let mut s = Secrets {
        words: vec![WS_IP.to_string()],
        ports: vec![rtp_port],
    };
    for m in run.texts("sent") {
        if let Some(c) = header(&m, "contact") {
            if let Some(user) = contact_user(&c) {
                if !s.words.contains(&user) {
                    s.words.push(user);
                }
            }
            if let Some(host) = c.split('@').nth(1).and_then(|h| h.split([';', '>']).next()) {
                if !s.words.contains(&host.to_string()) {
                    s.words.push(host.to_string());
                }
            }
        }
    }
    s
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Hangup {
    /// The WebSocket client sends the BYE.
    Client,
    /// The UDP callee (baresip) hangs up: its BYE reaches the client
    /// through its token and its ;alias (handle_ruri_alias()).
    Callee,
    /// Nobody: the dialog module ends the call at MAX_CALL_SECONDS and
    /// sends BYE both ways (event_route[tm:local-request]).
    MaxDuration,
}

fn ws_to_udp(secure: bool, hangup: Hangup, extra: &[&str], name: &str) -> Outcome {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let mut defines = extra.to_vec();
    if hangup == Hangup::MaxDuration {
        defines.push("MAX_CALL_SECONDS=3");
    }
    let mut e = Edge::start(&defines);
    let rtp_port = free_udp_port_on(WS_IP);
    let url = if secure {
        format!("wss://127.0.0.1:{}/", e.wss)
    } else {
        format!("ws://127.0.0.1:{}/", e.ws)
    };
    let script = repo_root().join("tests/edge_config/ws_client.py");
    // Debian's interpreter, where python3-websockets is installed (a
    // python3 earlier in PATH, e.g. pyenv's, does not have it).
    let mut cmd = Command::new(DEBIAN_PYTHON);
    cmd.arg(&script)
        .args(["--url", &url, "--local-ip", WS_IP])
        .args(["--rtp-port", &rtp_port.to_string()])
        .args(["--from-user", FROM_USER, "--to-user", TO_USER])
        .args(["--timeout", "8"])
        .args(match hangup {
            Hangup::Client => ["--hangup", "us"],
            _ => ["--hangup", "them"],
        })
        .args(["--seconds", "2.5"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .expect("starting /usr/bin/python3 (ws_client.py)");
    let mut f = Vec::new();
    // The callee answers by itself; it hangs up after 2.5 s when it is its turn.
    let est = e.callee.event("CALL_ESTABLISHED", Duration::from_secs(10));
    let call_id_callee = est
        .as_ref()
        .and_then(|v| v["id"].as_str())
        .unwrap_or("")
        .to_string();
    let mut counters = Vec::new();
    if est.is_none() {
        f.push(format!(
            "the callee never answered; its events: {:?}",
            e.callee.pending_events()
        ));
    } else {
        std::thread::sleep(Duration::from_millis(1500));
        let (cf, counts) = check_rtpengine_counters(&e.rtp, &call_id_callee);
        f.extend(cf);
        counters = counts;
        if hangup == Hangup::Callee {
            std::thread::sleep(Duration::from_millis(1000));
            if let Err(x) = e.callee.cmd("hangup", "") {
                f.push(format!("callee hangup: {x}"));
            }
        }
        if e.callee
            .event("CALL_CLOSED", Duration::from_secs(8))
            .is_none()
        {
            f.push(format!(
                "the callee never saw the call end; events: {:?}",
                e.callee.pending_events()
            ));
        }
    }
    // The client ends within its own bounded waits (8 s a step).
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    common::kamailio::stop_process_group(&mut child, Duration::from_secs(1));
    let out = child.wait_with_output().expect("ws_client.py output");
    let run = WsRun {
        events: String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
        ok: out.status.success(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    if !run.ok {
        f.push(format!(
            "ws_client.py failed ({}): {:?}; stderr:\n{}",
            out.status,
            run.events
                .iter()
                .filter(|v| v["event"] == "error")
                .collect::<Vec<_>>(),
            run.stderr
        ));
    }
    let want_by = if hangup == Hangup::Client {
        "us"
    } else {
        "them"
    };
    if run
        .event("ended")
        .map(|v| v["by"] != want_by)
        .unwrap_or(true)
    {
        f.push(format!(
            "the WebSocket client did not see the call end ({want_by} hanging up): {:?}",
            run.event("ended")
        ));
    }
    std::thread::sleep(Duration::from_millis(300));
    let packets = e.cap.stop();
    let log = e.k.log_text();
    let kp = e.k_ports();
    let to_callee = callee_received(&packets, &e.callee);
    let to_client = run.received();
    let (f1, sdp_callee) = check_received(
        "UDP callee",
        "WebSocket client",
        &to_callee,
        &ws_secrets(&run, rtp_port),
        &e.rtp,
    );
    let (f2, sdp_client) = check_received(
        "WebSocket client",
        "UDP callee",
        &to_client,
        &baresip_secrets(&e.callee, &kp),
        &e.rtp,
    );
    f.extend(f1);
    f.extend(f2);
    let udp = format!("127.0.0.1:{}", e.k.addr.port());
    let ws = format!("127.0.0.1:{}", if secure { e.wss } else { e.ws });
    f.extend(check_contacts("UDP callee", &to_callee, (&udp, "udp")));
    f.extend(check_contacts(
        "WebSocket client",
        &to_client,
        (&ws, if secure { "wss" } else { "ws" }),
    ));
    if sdp_callee == 0 || sdp_client == 0 {
        f.push(format!(
            "SDP bodies received: callee {sdp_callee}, WebSocket client {sdp_client}"
        ));
    }
    let flows = rtp_flows(
        &packets,
        &[
            MediaOf {
                name: "WebSocket client",
                ip: Some(WS_IP),
                ports: None,
            },
            MediaOf {
                name: "callee",
                ip: None,
                ports: Some(baresip::rtp_ports(e.callee.sip_port)),
            },
        ],
    );
    f.extend(check_rtp(&flows, "WebSocket client", "callee", 50));
    // The client's own count: RTP came back, from rtpengine only.
    if let Some(r) = run.event("rtp") {
        let from: Vec<&str> = r["from"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if r["received"].as_u64().unwrap_or(0) < 50
            || from.is_empty()
            || from.iter().any(|a| !a.starts_with(&format!("{MEDIA_IP}:")))
        {
            f.push(format!(
                "the WebSocket client's RTP: {r} (expected 50 or more packets, from {MEDIA_IP} only)"
            ));
        }
    } else {
        f.push("the WebSocket client sent no RTP (no answer?)".to_string());
    }
    f.extend(check_log_clean(&log));
    if !call_id_callee.is_empty() {
        f.extend(check_bill(&log, &call_id_callee));
        if hangup == Hangup::MaxDuration {
            // The dialog module's BYEs went through tm:local-request.
            let bill = log
                .lines()
                .find(|l| l.contains(&format!("Call-ID: {call_id_callee},")))
                .unwrap_or("");
            let d: Option<u64> = bill
                .split("Duration: ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|d| d.parse().ok());
            if !d.is_some_and(|d| (2..=4).contains(&d)) {
                f.push(format!(
                    "MAX_CALL_SECONDS=3: the dialog module should end the call 2-4 s after the \
                     answer (its timer ticks once a second); billed: {bill:?}"
                ));
            }
        }
    }
    let summary = format!(
        "edge_config [{name}]: {} packets, {} SIP messages to the callee, {} to the WebSocket \
         client, RTP flows {flows:?}, client {:?}, rtpengine counters {counters:?}, {:.1} s",
        packets.len(),
        to_callee.len(),
        to_client.len(),
        run.event("rtp"),
        started.elapsed().as_secs_f64()
    );
    e.callee.stop();
    if !f.is_empty() {
        let mut log_ws = String::from_utf8_lossy(&out.stdout).into_owned();
        log_ws.push_str(&run.stderr);
        std::fs::write(e.dir.join("ws_client.log"), log_ws).unwrap();
        let kept = e.keep(name, &log);
        f.insert(0, format!("[{name}] evidence kept in {}", kept.display()));
    }
    Outcome {
        failures: f,
        summary,
    }
}

#[test]
fn ws_client_calls_udp_baresip_and_hangs_up() {
    let o = ws_to_udp(false, Hangup::Client, &[], "ws-udp");
    eprintln!("{}", o.summary);
    assert!(o.failures.is_empty(), "{}", o.failures.join("\n\n"));
}

#[test]
fn wss_client_calls_udp_baresip_which_hangs_up() {
    let o = ws_to_udp(true, Hangup::Callee, &[], "wss-udp");
    eprintln!("{}", o.summary);
    assert!(o.failures.is_empty(), "{}", o.failures.join("\n\n"));
}

#[test]
fn ws_call_ended_by_the_max_duration_is_billed_once() {
    let o = ws_to_udp(false, Hangup::MaxDuration, &[], "ws-udp-max-duration");
    eprintln!("{}", o.summary);
    assert!(o.failures.is_empty(), "{}", o.failures.join("\n\n"));
}

/// The WebSocket call without topos_rs: the client's made-up host and
/// Contact reach the callee, the callee's address reaches the client.
#[test]
fn control_ws_without_topos_the_checks_see_the_leaks() {
    let o = ws_to_udp(false, Hangup::Client, &["WITHOUT_TOPOS"], "ws-udp-control");
    eprintln!("{}", o.summary);
    let all = o.failures.join("\n\n");
    for want in [
        "LEAK: the UDP callee received",
        "LEAK: the WebSocket client received",
    ] {
        assert!(
            all.contains(want),
            "the checks missed {want:?} without topos_rs:\n{all}"
        );
    }
    assert!(!all.contains("RTP: "), "{all}");
}

/// README's "Deploying at the edge" explains the config line by line: each
/// line it quotes is a line of cfg-examples/kamailio-edge.cfg, so the two
/// cannot drift apart.
#[test]
fn readme_edge_section_quotes_lines_of_the_config() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme
        .find("Deploying at the edge\n")
        .expect("README.md has a section \"Deploying at the edge\"");
    let section = &readme[start..];
    let section = &section[..section[1..].find("\n## ").map_or(section.len(), |i| i + 1)];
    let cfg = std::fs::read_to_string(repo_root().join(EDGE)).unwrap();
    let lines: BTreeSet<&str> = cfg.lines().map(str::trim).collect();
    let mut quoted = 0;
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cell = row.split('|').nth(1).unwrap().trim();
        let line = cell.trim_matches('`');
        assert!(
            lines.contains(line),
            "README quotes `{line}`, which is no line of {EDGE}"
        );
        quoted += 1;
    }
    assert!(
        quoted >= 20,
        "only {quoted} config lines explained in the README"
    );
}
