//! Issue 15, points 1, 3 and 5, end to end: a caller on TCP and a callee on
//! UDP through Kamailio with topos_rs. Each side's masked Contact names the
//! socket and transport that side talks to; a UDP callee's replies without
//! Content-Length reach the TCP caller with one (a strict user agent drops
//! a stream message without it); serial forking hides the second branch's
//! INVITE once (one Contact).

mod common;

use common::kamailio::{free_tcp_port, Kamailio};
use common::sip::{Msg, Peer};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const ROUTING: &str = "tests/cfg/routing.cfg";

/// A SIP peer on a TCP connection to Kamailio.
struct TcpPeer {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl TcpPeer {
    fn connect(to: SocketAddr) -> TcpPeer {
        let stream = TcpStream::connect(to).expect("connecting to Kamailio over TCP");
        TcpPeer {
            stream,
            pending: Vec::new(),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).unwrap();
    }

    /// The next whole message: the header section, then exactly
    /// Content-Length bytes of body. A message without Content-Length
    /// cannot be framed on a stream: the test fails, as a strict user
    /// agent drops the connection.
    fn recv(&mut self) -> Msg {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 8192];
        loop {
            if let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.pending[..end + 4]).into_owned();
                let msg = Msg {
                    text: head.clone(),
                    from: self.stream.peer_addr().unwrap(),
                };
                let clen: usize = msg
                    .header("content-length")
                    .unwrap_or_else(|| panic!("a message on TCP without Content-Length:\n{head}"))
                    .parse()
                    .unwrap();
                let total = end + 4 + clen;
                while self.pending.len() < total {
                    self.read_some(&mut buf, deadline);
                }
                let text = String::from_utf8_lossy(&self.pending[..total]).into_owned();
                self.pending.drain(..total);
                return Msg { text, ..msg };
            }
            self.read_some(&mut buf, deadline);
        }
    }

    fn read_some(&mut self, buf: &mut [u8], deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "nothing more on TCP within 5 s");
        self.stream.set_read_timeout(Some(left)).unwrap();
        let n = self.stream.read(buf).expect("reading from Kamailio");
        assert!(n > 0, "Kamailio closed the TCP connection");
        self.pending.extend_from_slice(&buf[..n]);
    }

    fn expect_reply(&mut self, status: u32) -> Msg {
        loop {
            let m = self.recv();
            if m.status() == Some(status) {
                return m;
            }
        }
    }
}

/// `m` shows its receiver Kamailio's socket `hostport` (with transport) as
/// the other side's Contact, and nothing of the other side at `hidden`.
fn assert_leg(m: &Msg, hostport: &str, hidden: &str) {
    assert_eq!(
        m.contact_uri().split('@').nth(1),
        Some(hostport),
        "{}",
        m.text
    );
    assert!(!m.text.contains(hidden), "{}", m.text);
}

/// A UDP callee's reply without Content-Length (legal on UDP).
fn reply_without_clen(callee: &Peer, req: &Msg, status: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for v in req.headers("via") {
        out += &format!("Via: {v}\r\n");
    }
    for rr in req.headers("record-route") {
        out += &format!("Record-Route: {rr}\r\n");
    }
    out += &format!("From: {}\r\n", req.header("from").unwrap());
    out += &format!("To: {};tag=udp-callee\r\n", req.header("to").unwrap());
    out += &format!("Call-ID: {}\r\n", req.header("call-id").unwrap());
    out += &format!("CSeq: {}\r\n", req.header("cseq").unwrap());
    out += &format!("Contact: <sip:callee@{}>\r\n\r\n", callee.addr);
    out
}

#[test]
fn a_tcp_caller_and_a_udp_callee_each_get_their_own_leg_and_framed_replies() {
    let tcp_port = free_tcp_port();
    let k = Kamailio::start(
        ROUTING,
        &[
            &format!("LISTEN_TCP=tcp:127.0.0.1:{tcp_port}"),
            "NO_BILLING",
        ],
    );
    let tcp_addr = SocketAddr::from(([127, 0, 0, 1], tcp_port));
    let mut caller = TcpPeer::connect(tcp_addr);
    let callee = Peer::new();
    let me = caller.addr();
    caller.send(&format!(
        "INVITE sip:bob@{} SIP/2.0\r\nVia: SIP/2.0/TCP {me};branch=z9hG4bK-tcp-inv\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=tcp-caller\r\n\
         To: <sip:bob@example.com>\r\nCall-ID: tcp-leg-1\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:alice@{me};transport=tcp>\r\nContent-Length: 0\r\n\r\n",
        callee.addr
    ));
    let inv = callee.expect_request("INVITE");
    // The UDP callee is shown Kamailio's UDP socket, without a transport.
    assert_eq!(
        inv.contact_uri().split('@').nth(1),
        Some(k.addr.to_string().as_str()),
        "{}",
        inv.text
    );
    for status in ["180 Ringing", "200 OK"] {
        callee.send(k.addr, &reply_without_clen(&callee, &inv, status));
        let got = caller.expect_reply(status[..3].parse().unwrap());
        assert_eq!(
            got.header("content-length").as_deref(),
            Some("0"),
            "{}",
            got.text
        );
        // The TCP caller is shown Kamailio's TCP socket.
        assert_leg(
            &got,
            &format!("{tcp_addr};transport=tcp"),
            &callee.addr.to_string(),
        );
    }
}

#[test]
fn serial_forking_hides_the_second_branch_once() {
    let first = Peer::new();
    let second = Peer::new();
    let k = Kamailio::start(
        ROUTING,
        &[
            "NO_BILLING",
            &format!("CALLEE2=\"sip:second@{}\"", second.addr),
        ],
    );
    let caller = Peer::new();
    caller.send(
        k.addr,
        &format!(
            "INVITE sip:serial@{} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-serial\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=s1\r\nTo: <sip:bob@example.com>\r\n\
             Call-ID: serial-1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{}>\r\nContent-Length: 0\r\n\r\n",
            first.addr, caller.addr, caller.addr
        ),
    );
    let inv1 = first.expect_request("INVITE");
    first.reply(&inv1, 486, "Busy Here", "b1");
    let inv2 = second.expect_request("INVITE");
    assert_eq!(inv2.headers("contact").len(), 1, "{}", inv2.text);
    assert_eq!(inv2.vias().len(), 1, "{}", inv2.text);
    // The second callee answers and hangs up through the masked Contact.
    second.reply(&inv2, 200, "OK", "b2");
    caller.expect_reply(200, "INVITE");
    let target = inv2.contact_uri();
    second.send(
        k.addr,
        &format!(
            "BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-serial-bye\r\n\
             Route: {}\r\nMax-Forwards: 70\r\nFrom: <sip:bob@example.com>;tag=b2\r\n\
             To: <sip:alice@example.com>;tag=s1\r\nCall-ID: serial-1\r\nCSeq: 1 BYE\r\n\
             Content-Length: 0\r\n\r\n",
            second.addr,
            inv2.header("record-route").unwrap()
        ),
    );
    let bye = caller.expect_request("BYE");
    assert_eq!(bye.vias().len(), 1, "{}", bye.text);
}

#[test]
fn an_ipv6_caller_and_an_ipv4_callee_each_get_their_own_leg() {
    let v6_port = common::kamailio::free_port();
    let k = Kamailio::start(
        ROUTING,
        &[&format!("LISTEN_V6=udp:[::1]:{v6_port}"), "NO_BILLING"],
    );
    let k6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, v6_port));
    let caller = std::net::UdpSocket::bind("[::1]:0").expect("an IPv6 loopback socket");
    let me = caller.local_addr().unwrap();
    let callee = Peer::new();
    caller
        .send_to(
            format!(
                "INVITE sip:bob@{} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-v6-inv\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=v6-caller\r\n\
                 To: <sip:bob@example.com>\r\nCall-ID: v6-leg-1\r\nCSeq: 1 INVITE\r\n\
                 Contact: <sip:alice@{me}>\r\nContent-Length: 0\r\n\r\n",
                callee.addr
            )
            .as_bytes(),
            k6,
        )
        .unwrap();
    let inv = callee.expect_request("INVITE");
    // The IPv4 callee is shown Kamailio's IPv4 socket.
    // Nothing of the caller (Kamailio's own double Record-Route names its
    // IPv6 socket, which is fine).
    assert_leg(&inv, &k.addr.to_string(), &me.to_string());
    callee.reply(&inv, 200, "OK", "v4-callee");
    // The IPv6 caller is shown Kamailio's IPv6 socket.
    caller
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let ok = loop {
        let (n, _) = caller.recv_from(&mut buf).expect("a reply on IPv6");
        let m = Msg {
            text: String::from_utf8_lossy(&buf[..n]).into_owned(),
            from: k6,
        };
        if m.status() == Some(200) {
            break m;
        }
    };
    assert_leg(&ok, &format!("[::1]:{v6_port}"), &callee.addr.to_string());
}

#[test]
fn a_180_and_a_200_sent_back_to_back_leave_a_routable_dialog() {
    // Two workers handle the 180 and the 200 of one callee at once: the
    // early record must never replace or remove the confirmed one.
    let k = Kamailio::start(ROUTING, &["NO_BILLING"]);
    let (caller, callee) = (Peer::new(), Peer::new());
    for i in 0..200 {
        let mut call = common::sip::Call::new(
            &format!("race-{i}"),
            &format!("sip:13545769997@{}", callee.addr),
        );
        caller.send(k.addr, &call.invite(&caller));
        let inv = callee.expect_request("INVITE");
        callee.reply(&inv, 180, "Ringing", "race-tag");
        callee.reply(&inv, 200, "OK", "race-tag");
        let ok = caller.expect_reply(200, "INVITE");
        call.confirm(&ok);
        caller.send(k.addr, &call.in_dialog(&caller, "ACK", 1));
        callee.expect_request("ACK");
        caller.send(k.addr, &call.in_dialog(&caller, "BYE", 2));
        let bye = callee.expect_request("BYE");
        callee.reply(&bye, 200, "OK", "race-tag");
        caller.expect_reply(200, "BYE");
    }
}
