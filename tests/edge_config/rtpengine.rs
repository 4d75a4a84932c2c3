//! rtpengine (Debian's rtpengine-daemon) for a test: userspace forwarding
//! only (`--table=-1`: no kernel module), media on one loopback address
//! and a port range of its own, the ng control protocol on 127.0.0.1. It
//! runs in its own process group and is stopped by its PID. A minimal ng
//! client (bencode over UDP, RFC-less but documented by rtpengine) asks it
//! for `ping` and `query` (its own packet counters of a call).

use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Rtpengine {
    child: Option<Child>,
    pub ng: SocketAddr,
    /// The media port range, inclusive.
    pub ports: (u16, u16),
    pub log: PathBuf,
}

/// A bencoded value.
#[derive(Clone, Debug, PartialEq)]
pub enum B {
    Int(i64),
    Str(String),
    List(Vec<B>),
    Dict(Vec<(String, B)>),
}

impl B {
    pub fn get(&self, key: &str) -> Option<&B> {
        match self {
            B::Dict(d) => d.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn str(&self) -> Option<&str> {
        match self {
            B::Str(s) => Some(s),
            _ => None,
        }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            B::Int(i) => out.extend(format!("i{i}e").bytes()),
            B::Str(s) => out.extend(format!("{}:{s}", s.len()).bytes()),
            B::List(l) => {
                out.push(b'l');
                l.iter().for_each(|v| v.encode(out));
                out.push(b'e');
            }
            B::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    B::Str(k.clone()).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }
    /// Decodes one value at the start of `s`; returns it and the rest.
    fn decode(s: &[u8]) -> Result<(B, &[u8]), String> {
        let bad = || format!("bad bencode at {:?}", String::from_utf8_lossy(s));
        match s.first().ok_or_else(bad)? {
            b'i' => {
                let end = s.iter().position(|&c| c == b'e').ok_or_else(bad)?;
                let n = std::str::from_utf8(&s[1..end])
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(bad)?;
                Ok((B::Int(n), &s[end + 1..]))
            }
            b'l' => {
                let mut rest = &s[1..];
                let mut l = Vec::new();
                while rest.first() != Some(&b'e') {
                    let (v, r) = B::decode(rest)?;
                    l.push(v);
                    rest = r;
                }
                Ok((B::List(l), &rest[1..]))
            }
            b'd' => {
                let mut rest = &s[1..];
                let mut d = Vec::new();
                while rest.first() != Some(&b'e') {
                    let (k, r) = B::decode(rest)?;
                    let (v, r) = B::decode(r)?;
                    d.push((k.str().ok_or_else(bad)?.to_string(), v));
                    rest = r;
                }
                Ok((B::Dict(d), &rest[1..]))
            }
            b'0'..=b'9' => {
                let colon = s.iter().position(|&c| c == b':').ok_or_else(bad)?;
                let n: usize = std::str::from_utf8(&s[..colon])
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(bad)?;
                let body = s.get(colon + 1..colon + 1 + n).ok_or_else(bad)?;
                Ok((
                    B::Str(String::from_utf8_lossy(body).into_owned()),
                    &s[colon + 1 + n..],
                ))
            }
            _ => Err(bad()),
        }
    }
}

/// Every `"packets"` counter under `v` (rtpengine's per-stream stats).
pub fn packet_counters(v: &B, out: &mut Vec<i64>) {
    match v {
        B::Dict(d) => {
            for (k, x) in d {
                match (k.as_str(), x) {
                    ("packets", B::Int(n)) => out.push(*n),
                    _ => packet_counters(x, out),
                }
            }
        }
        B::List(l) => l.iter().for_each(|x| packet_counters(x, out)),
        _ => {}
    }
}

impl Rtpengine {
    /// Starts rtpengine with media on `media_ip` and waits until it
    /// answers `ping` (10 s at most).
    pub fn start(dir: &Path, media_ip: &'static str) -> Rtpengine {
        let ng_port = crate::common::kamailio::free_port();
        // 200 media ports of their own (rtpengine skips ports in use).
        let min = 40000 + (ng_port % 90) * 200;
        let ports = (min, min + 199);
        let log = dir.join("rtpengine.log");
        let mut cmd = Command::new("rtpengine");
        cmd.arg("--config-file=none")
            .arg("--table=-1")
            .arg(format!("--interface={media_ip}"))
            .arg(format!("--listen-ng=127.0.0.1:{ng_port}"))
            .arg(format!("--port-min={}", ports.0))
            .arg(format!("--port-max={}", ports.1))
            .args(["--foreground", "--log-stderr", "--num-threads=2"])
            .args(["--delete-delay=0", "--log-level=6"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .expect("starting rtpengine (package rtpengine-daemon; `make deps` installs it)");
        let mut r = Rtpengine {
            child: Some(child),
            ng: SocketAddr::from(([127, 0, 0, 1], ng_port)),
            ports,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(v) = r.command("ping", &[]) {
                if v.get("result").and_then(B::str) == Some("pong") {
                    return r;
                }
            }
            if let Some(Ok(Some(st))) = r.child.as_mut().map(Child::try_wait) {
                panic!("rtpengine exited ({st}); log:\n{}", r.log_text());
            }
            if Instant::now() > deadline {
                r.stop();
                panic!(
                    "rtpengine did not answer ping within 10 s; log:\n{}",
                    r.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One ng command (`command` plus `args`), answered within 2 s.
    pub fn command(&self, command: &str, args: &[(&str, B)]) -> Result<B, String> {
        let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        let mut d = vec![("command".to_string(), B::Str(command.into()))];
        d.extend(args.iter().map(|(k, v)| (k.to_string(), v.clone())));
        // rtpengine answers a cookie it has seen with the cached reply
        // (retransmissions): each command has its own.
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cookie = format!("t{}-{n}", std::process::id());
        let mut msg = format!("{cookie} ").into_bytes();
        B::Dict(d).encode(&mut msg);
        sock.send_to(&msg, self.ng).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 65536];
        let (n, _) = sock.recv_from(&mut buf).map_err(|e| e.to_string())?;
        let reply = &buf[..n];
        let body = reply
            .strip_prefix(format!("{cookie} ").as_bytes())
            .ok_or_else(|| {
                format!(
                    "reply without our cookie: {:?}",
                    String::from_utf8_lossy(reply)
                )
            })?;
        B::decode(body).map(|(v, _)| v)
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            crate::common::kamailio::stop_process_group(&mut c, Duration::from_secs(3));
        }
    }
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        self.stop();
    }
}
