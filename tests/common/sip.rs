//! A minimal SIP peer for end-to-end tests: a UDP socket on 127.0.0.1 that
//! sends hand-written messages and returns exactly the bytes it receives.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// A received SIP message, kept as the exact bytes that arrived.
#[derive(Clone, Debug)]
pub struct Msg {
    pub text: String,
    pub from: SocketAddr,
}

fn long_name(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "v" => "via".into(),
        "f" => "from".into(),
        "t" => "to".into(),
        "i" => "call-id".into(),
        "m" => "contact".into(),
        "l" => "content-length".into(),
        other => other.into(),
    }
}

impl Msg {
    pub fn first_line(&self) -> &str {
        self.text.split("\r\n").next().unwrap_or("")
    }

    /// Header lines (name: value) up to the blank line.
    pub fn header_lines(&self) -> Vec<&str> {
        let head = self.text.split("\r\n\r\n").next().unwrap_or("");
        head.split("\r\n").skip(1).collect()
    }

    /// Values of every header called `name` (long or compact form), in order.
    pub fn headers(&self, name: &str) -> Vec<String> {
        let want = long_name(name);
        self.header_lines()
            .iter()
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                (long_name(n.trim()) == want).then(|| v.trim().to_string())
            })
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers(name).into_iter().next()
    }

    /// Every value of header `name`, comma-joined values split apart (the
    /// test messages carry no quoted commas in these headers).
    pub fn values(&self, name: &str) -> Vec<String> {
        self.headers(name)
            .iter()
            .flat_map(|v| {
                v.split(',')
                    .map(|b| b.trim().to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Every Via value, comma-joined bodies split apart.
    pub fn vias(&self) -> Vec<String> {
        self.values("via")
    }

    pub fn status(&self) -> Option<u32> {
        let l = self.first_line();
        l.strip_prefix("SIP/2.0 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
    }

    pub fn method(&self) -> Option<&str> {
        let l = self.first_line();
        (!l.starts_with("SIP/2.0")).then(|| l.split(' ').next().unwrap_or(""))
    }

    /// The URI of the first Contact (`<...>` stripped).
    pub fn contact_uri(&self) -> String {
        let c = self.header("contact").expect("a Contact");
        c.trim_start_matches('<')
            .split('>')
            .next()
            .unwrap()
            .to_string()
    }

    pub fn cseq_method(&self) -> String {
        self.header("cseq")
            .and_then(|c| c.split_whitespace().nth(1).map(str::to_string))
            .unwrap_or_default()
    }
}

/// A Via value reduced to what the differential test compares: sent-protocol
/// and sent-by (blanks removed, case kept) and the set of parameters.
pub fn via_key(via: &str) -> (String, Vec<String>) {
    let mut parts = via.split(';');
    let sent = parts
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut params: Vec<String> = parts.map(|p| p.trim().to_string()).collect();
    params.sort();
    (sent, params)
}

pub struct Peer {
    pub sock: UdpSocket,
    pub addr: SocketAddr,
}

impl Peer {
    pub fn new() -> Peer {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("binding a peer socket");
        let addr = sock.local_addr().unwrap();
        Peer { sock, addr }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn send(&self, to: SocketAddr, text: &str) {
        self.sock.send_to(text.as_bytes(), to).expect("sending SIP");
    }

    /// The next message within `timeout`, or None.
    pub fn recv_within(&self, timeout: Duration) -> Option<Msg> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.sock.set_read_timeout(Some(left)).unwrap();
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    return Some(Msg {
                        text: String::from_utf8_lossy(&buf[..n]).into_owned(),
                        from,
                    })
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    continue
                }
                Err(e) => panic!("receiving SIP: {e}"),
            }
        }
    }

    /// The next message that satisfies `pred` within 5 s (others are skipped).
    pub fn expect(&self, what: &str, pred: impl Fn(&Msg) -> bool) -> Msg {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut skipped = Vec::new();
        while let Some(m) = self.recv_within(deadline.saturating_duration_since(Instant::now())) {
            if pred(&m) {
                return m;
            }
            skipped.push(m.first_line().to_string());
        }
        panic!(
            "peer {} never received {what}; got instead: {skipped:?}",
            self.addr
        );
    }

    pub fn expect_request(&self, method: &str) -> Msg {
        self.expect(&format!("a {method}"), |m| m.method() == Some(method))
    }

    pub fn expect_reply(&self, status: u32, cseq_method: &str) -> Msg {
        self.expect(&format!("a {status} to {cseq_method}"), |m| {
            m.status() == Some(status) && m.cseq_method() == cseq_method
        })
    }

    /// Nothing but the listed kinds arrives within `d`.
    pub fn expect_silence(&self, d: Duration) {
        if let Some(m) = self.recv_within(d) {
            panic!(
                "peer {} received an unexpected message:\n{}",
                self.addr, m.text
            );
        }
    }

    /// Answers request `req` with `code`: Vias and Record-Routes copied, a
    /// To-tag and a Contact added (RFC 3261 8.2.6).
    pub fn reply(&self, req: &Msg, code: u32, reason: &str, to_tag: &str) {
        let mut out = format!("SIP/2.0 {code} {reason}\r\n");
        for v in req.headers("via") {
            out += &format!("Via: {v}\r\n");
        }
        if (101..300).contains(&code) {
            for rr in req.headers("record-route") {
                out += &format!("Record-Route: {rr}\r\n");
            }
        }
        out += &format!("From: {}\r\n", req.header("from").unwrap());
        let to = req.header("to").unwrap();
        if code > 100 && !to.contains(";tag=") {
            out += &format!("To: {to};tag={to_tag}\r\n");
        } else {
            out += &format!("To: {to}\r\n");
        }
        out += &format!("Call-ID: {}\r\n", req.header("call-id").unwrap());
        out += &format!("CSeq: {}\r\n", req.header("cseq").unwrap());
        if (101..300).contains(&code) && req.method() == Some("INVITE") {
            out += &format!("Contact: <sip:callee@{}>\r\n", self.addr);
        }
        out += "Content-Length: 0\r\n\r\n";
        self.send(req.from, &out);
    }
}

/// The caller side of one call: builds requests with the caller's own Via on
/// top of the upstream Vias it pretends to have received.
#[derive(Clone)]
pub struct Call {
    pub call_id: String,
    pub from_tag: String,
    pub ruri: String,
    pub upstream_vias: Vec<String>,
    pub extra_headers: String,
    pub to_tag: Option<String>,
    pub route: Vec<String>,
    pub remote_target: Option<String>,
}

impl Call {
    pub fn new(call_id: &str, ruri: &str) -> Call {
        Call {
            call_id: call_id.to_string(),
            from_tag: format!("ft-{call_id}"),
            ruri: ruri.to_string(),
            upstream_vias: Vec::new(),
            extra_headers: String::new(),
            to_tag: None,
            route: Vec::new(),
            remote_target: None,
        }
    }

    /// `end_to_end`: the request travels the whole upstream path (it carries
    /// the upstream Vias and the route set); CANCEL and the ACK for a
    /// negative reply are hop-by-hop and carry the top Via only.
    fn request(
        &self,
        caller: &Peer,
        method: &str,
        uri: &str,
        branch: &str,
        cseq: u32,
        end_to_end: bool,
    ) -> String {
        let mut out = format!("{method} {uri} SIP/2.0\r\n");
        out += &format!("Via: SIP/2.0/UDP {};branch={branch};rport\r\n", caller.addr);
        if end_to_end {
            for v in &self.upstream_vias {
                out += &format!("Via: {v}\r\n");
            }
            for r in &self.route {
                out += &format!("Route: {r}\r\n");
            }
        }
        out += "Max-Forwards: 70\r\n";
        out += &format!(
            "From: <sip:01089672389@127.0.0.1>;tag={}\r\n",
            self.from_tag
        );
        match &self.to_tag {
            Some(t) => out += &format!("To: <sip:13545769997@127.0.0.1>;tag={t}\r\n"),
            None => out += "To: <sip:13545769997@127.0.0.1>\r\n",
        }
        out += &format!("Call-ID: {}\r\n", self.call_id);
        out += &format!("CSeq: {cseq} {method}\r\n");
        if method == "INVITE" {
            out += &format!("Contact: <sip:01089672389@{}>\r\n", caller.addr);
        }
        out += &self.extra_headers;
        out += "Content-Length: 0\r\n\r\n";
        out
    }

    pub fn invite_branch(&self) -> String {
        format!("z9hG4bK-inv-{}", self.call_id)
    }

    pub fn invite(&self, caller: &Peer) -> String {
        self.request(caller, "INVITE", &self.ruri, &self.invite_branch(), 1, true)
    }

    /// CANCEL: same branch and Request-URI as the INVITE, the top Via only.
    pub fn cancel(&self, caller: &Peer) -> String {
        let mut c = Call {
            to_tag: None,
            ..self.clone()
        };
        c.extra_headers.clear();
        c.request(
            caller,
            "CANCEL",
            &self.ruri,
            &self.invite_branch(),
            1,
            false,
        )
    }

    /// ACK for a negative final reply: same branch as the INVITE.
    pub fn ack_negative(&self, caller: &Peer) -> String {
        let mut c = self.clone();
        c.extra_headers.clear();
        c.request(caller, "ACK", &self.ruri, &self.invite_branch(), 1, false)
    }

    /// Learns the dialog from a 2xx: To-tag, route set (reversed
    /// Record-Route), remote target (Contact).
    pub fn confirm(&mut self, ok: &Msg) {
        let to = ok.header("to").unwrap();
        self.to_tag = to
            .split(";tag=")
            .nth(1)
            .map(|t| t.split(';').next().unwrap().to_string());
        let mut rr = ok.values("record-route");
        rr.reverse();
        self.route = rr;
        self.remote_target = ok.header("contact").map(|c| {
            c.trim_start_matches('<')
                .split('>')
                .next()
                .unwrap()
                .to_string()
        });
    }

    /// An in-dialog request (ACK for 2xx, BYE) along the route set.
    pub fn in_dialog(&self, caller: &Peer, method: &str, cseq: u32) -> String {
        let target = self.remote_target.clone().expect("dialog not confirmed");
        let mut c = self.clone();
        c.extra_headers.clear();
        c.request(
            caller,
            method,
            &target,
            &format!("z9hG4bK-{}-{method}-{cseq}", self.call_id),
            cseq,
            true,
        )
    }
}

/// The upstream Vias of the requirement's example (below the sender's own).
pub fn requirement_vias() -> Vec<String> {
    vec![
        "SIP/2.0/UDP 192.168.1.100:5060;branch=z9hG4bK111111".into(),
        "SIP/2.0/UDP 10.10.10.1:5060;branch=z9hG4bK222222".into(),
        "SIP/2.0/UDP 222.211.75.75:5060;branch=z9hG4bK333333".into(),
    ]
}

/// True if `user` (a masked Contact's user part) is a topos_rs token: a
/// stored-mode one (65 hex characters with the side letter) or a sealed
/// one (base64url with `.` for `C`, longer).
pub fn is_token(user: &str) -> bool {
    let stored = user.len() == 65 && user.bytes().all(|b| b.is_ascii_hexdigit());
    let sealed = user.len() > 65
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    stored || sealed
}
