//! A packet capture of this test's loopback traffic (tcpdump on `lo`) and
//! the SIP messages in it: UDP datagrams, and TCP streams reassembled per
//! direction and cut at Content-Length (a message on a stream without
//! Content-Length is kept, flagged, up to the next start line).
// Shared by tests/real_ua.rs and tests/edge_config.rs; each uses a part.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Capture {
    child: Option<Child>,
    pub file: PathBuf,
}

impl Capture {
    /// Starts tcpdump on `lo` for packets to or from any of `ports`, and
    /// waits until it is listening.
    pub fn start(dir: &Path, ports: &[u16]) -> Capture {
        let filter = ports
            .iter()
            .map(|p| format!("port {p}"))
            .collect::<Vec<_>>()
            .join(" or ");
        Self::start_filter(dir, &filter)
    }

    /// As `start`, for TCP and UDP packets matching a tcpdump `filter`
    /// (e.g. `host 127.0.0.2 or port 5060`).
    pub fn start_filter(dir: &Path, filter: &str) -> Capture {
        let file = dir.join("lo.pcap");
        let mut cmd = Command::new("tcpdump");
        cmd.args(["-i", "lo", "-n", "--immediate-mode", "-U", "-s", "0", "-w"])
            .arg(&file)
            .arg(format!("(tcp or udp) and ({filter})"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().expect(
            "starting tcpdump (make deps installs it; capturing on lo needs root or CAP_NET_RAW)",
        );
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stderr).lines();
            let mut first = Vec::new();
            for l in lines.by_ref().map_while(Result::ok) {
                let ready = l.contains("listening on");
                first.push(l);
                if ready {
                    let _ = tx.send(Ok(()));
                    break;
                }
            }
            if !first.last().is_some_and(|l| l.contains("listening on")) {
                let _ = tx.send(Err(first.join("\n")));
            }
            for _ in lines {}
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("tcpdump did not start: {e}"),
            Err(_) => panic!("tcpdump did not say it was listening within 10 s"),
        }
        Capture {
            child: Some(child),
            file,
        }
    }

    /// Stops tcpdump (it flushes on SIGINT) and returns the packets.
    pub fn stop(&mut self) -> Vec<Packet> {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signals the tcpdump process this test started.
            unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        parse_pcap(&fs::read(&self.file).unwrap_or_default())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
}

#[derive(Clone, Debug)]
pub struct Packet {
    pub ts: f64,
    pub proto: Proto,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub seq: u32,
    pub syn: bool,
    pub payload: Vec<u8>,
}

fn u16be(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
fn u32be(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

pub fn parse_pcap(data: &[u8]) -> Vec<Packet> {
    let mut out = Vec::new();
    if data.len() < 24 {
        return out;
    }
    let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let (le, nano) = match magic {
        0xa1b2c3d4 => (true, false),
        0xa1b23c4d => (true, true),
        0xd4c3b2a1 => (false, false),
        0x4d3cb2a1 => (false, true),
        _ => panic!("not a pcap file (magic {magic:#x})"),
    };
    let rd = |b: &[u8]| -> u32 {
        let a: [u8; 4] = b[..4].try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let link = rd(&data[20..24]);
    let l2 = match link {
        1 => 14,   // Ethernet (tcpdump on lo)
        113 => 16, // Linux cooked
        276 => 20, // Linux cooked v2
        0 => 4,    // BSD loopback
        _ => panic!("unsupported pcap link type {link}"),
    };
    let mut off = 24;
    while off + 16 <= data.len() {
        let sec = rd(&data[off..]) as f64;
        let frac = rd(&data[off + 4..]) as f64;
        let incl = rd(&data[off + 8..]) as usize;
        off += 16;
        if off + incl > data.len() {
            break;
        }
        let frame = &data[off..off + incl];
        off += incl;
        let ts = sec + if nano { frac / 1e9 } else { frac / 1e6 };
        if frame.len() < l2 + 20 {
            continue;
        }
        let ip = &frame[l2..];
        if ip[0] >> 4 != 4 {
            continue;
        }
        let ihl = ((ip[0] & 0x0f) as usize) * 4;
        let total = (u16be(&ip[2..]) as usize).min(ip.len());
        let proto = ip[9];
        let src_ip = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let dst_ip = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let l4 = &ip[ihl..total];
        match proto {
            17 if l4.len() >= 8 => out.push(Packet {
                ts,
                proto: Proto::Udp,
                src: SocketAddrV4::new(src_ip, u16be(l4)),
                dst: SocketAddrV4::new(dst_ip, u16be(&l4[2..])),
                seq: 0,
                syn: false,
                payload: l4[8..].to_vec(),
            }),
            6 if l4.len() >= 20 => {
                let doff = ((l4[12] >> 4) as usize) * 4;
                out.push(Packet {
                    ts,
                    proto: Proto::Tcp,
                    src: SocketAddrV4::new(src_ip, u16be(l4)),
                    dst: SocketAddrV4::new(dst_ip, u16be(&l4[2..])),
                    seq: u32be(&l4[4..]),
                    syn: l4[13] & 0x02 != 0,
                    payload: l4[doff.min(l4.len())..].to_vec(),
                })
            }
            _ => {}
        }
    }
    out
}

/// One SIP message as it crossed the wire.
#[derive(Clone, Debug)]
pub struct WireMsg {
    pub ts: f64,
    pub proto: Proto,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub text: String,
    /// On a stream: the Content-Length header is missing.
    pub no_content_length: bool,
    /// On a stream: Content-Length disagrees with the body that follows.
    pub bad_content_length: Option<String>,
}

fn content_length(head: &str) -> Option<usize> {
    head.split("\r\n").skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        let n = n.trim().to_ascii_lowercase();
        (n == "content-length" || n == "l").then(|| v.trim().parse().ok())?
    })
}

fn is_start_line(s: &[u8]) -> bool {
    s.starts_with(b"SIP/2.0 ")
        || [
            "INVITE ",
            "ACK ",
            "BYE ",
            "CANCEL ",
            "OPTIONS ",
            "UPDATE ",
            "INFO ",
            "PRACK ",
            "NOTIFY ",
            "REFER ",
            "MESSAGE ",
            "SUBSCRIBE ",
            "REGISTER ",
        ]
        .iter()
        .any(|m| s.starts_with(m.as_bytes()))
}

/// One direction of a TCP connection: its segments (time, bytes) in
/// order, and the next sequence number expected.
type Stream = (
    (SocketAddrV4, SocketAddrV4),
    Vec<(f64, Vec<u8>)>,
    Option<u32>,
);

/// The SIP messages of a capture, in order.
pub fn sip_messages(packets: &[Packet]) -> Vec<WireMsg> {
    let mut out = Vec::new();
    // TCP: per direction, payloads in sequence order (duplicates dropped).
    let mut streams: Vec<Stream> = Vec::new();
    for p in packets {
        match p.proto {
            Proto::Udp => {
                if p.payload.len() < 4 || !is_start_line(&p.payload) {
                    continue; // keep-alives, STUN, RTP
                }
                out.push(WireMsg {
                    ts: p.ts,
                    proto: Proto::Udp,
                    src: p.src,
                    dst: p.dst,
                    text: String::from_utf8_lossy(&p.payload).into_owned(),
                    no_content_length: false,
                    bad_content_length: None,
                })
            }
            Proto::Tcp => {
                let key = (p.src, p.dst);
                let idx = match streams.iter().position(|s| s.0 == key) {
                    Some(i) => i,
                    None => {
                        streams.push((key, Vec::new(), None));
                        streams.len() - 1
                    }
                };
                let s = &mut streams[idx];
                if p.syn {
                    s.2 = Some(p.seq.wrapping_add(1));
                    continue;
                }
                if p.payload.is_empty() {
                    continue;
                }
                let next = s.2.unwrap_or(p.seq);
                let end = p.seq.wrapping_add(p.payload.len() as u32);
                // A retransmission (all of it seen already) is skipped.
                if (end.wrapping_sub(next) as i32) <= 0 {
                    continue;
                }
                let skip = (next.wrapping_sub(p.seq) as i32).max(0) as usize;
                s.1.push((p.ts, p.payload[skip.min(p.payload.len())..].to_vec()));
                s.2 = Some(end);
            }
        }
    }
    for ((src, dst), segs, _) in streams {
        // Byte offset -> timestamp of the segment that carried it.
        let mut buf = Vec::new();
        let mut starts = Vec::new();
        for (ts, d) in segs {
            starts.push((buf.len(), ts));
            buf.extend_from_slice(&d);
        }
        let ts_at = |off: usize| {
            starts
                .iter()
                .rev()
                .find(|(o, _)| *o <= off)
                .map(|x| x.1)
                .unwrap_or(0.0)
        };
        let mut off = 0;
        while off < buf.len() {
            // Keep-alive CRLFs between messages.
            if buf[off] == b'\r' || buf[off] == b'\n' {
                off += 1;
                continue;
            }
            let rest = &buf[off..];
            let Some(hend) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
                out.push(WireMsg {
                    ts: ts_at(off),
                    proto: Proto::Tcp,
                    src,
                    dst,
                    text: String::from_utf8_lossy(rest).into_owned(),
                    no_content_length: true,
                    bad_content_length: Some("message cut off (no end of headers)".into()),
                });
                break;
            };
            let head = String::from_utf8_lossy(&rest[..hend]).into_owned();
            let body_start = hend + 4;
            let (len, no_cl, bad) = match content_length(&head) {
                Some(n) if body_start + n <= rest.len() => {
                    let after = &rest[body_start + n..];
                    let bad =
                        (!after.is_empty() && !after.starts_with(b"\r\n") && !is_start_line(after))
                            .then(|| format!("Content-Length {n} is not followed by a message"));
                    (body_start + n, false, bad)
                }
                Some(n) => (
                    rest.len(),
                    false,
                    Some(format!(
                        "Content-Length {n}, but only {} body bytes follow",
                        rest.len() - body_start
                    )),
                ),
                None => {
                    // Up to the next start line, if any.
                    let mut end = body_start;
                    while end < rest.len() && !is_start_line(&rest[end..]) {
                        end += 1;
                    }
                    (end, true, None)
                }
            };
            out.push(WireMsg {
                ts: ts_at(off),
                proto: Proto::Tcp,
                src,
                dst,
                text: String::from_utf8_lossy(&rest[..len]).into_owned(),
                no_content_length: no_cl,
                bad_content_length: bad,
            });
            off += len;
        }
    }
    out.sort_by(|a, b| a.ts.partial_cmp(&b.ts).unwrap());
    out
}
