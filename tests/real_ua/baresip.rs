//! baresip (Debian package baresip-core) as a headless SIP user agent:
//! its own config directory, no sound device (a sine source, no player),
//! commands and events over its ctrl_tcp module (JSON in netstrings), its
//! SIP trace (-s) in a log file.
// Shared by tests/real_ua.rs and tests/edge_config.rs; each uses a part.
#![allow(dead_code)]

use serde_json::Value;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const MODULES: &str = "/usr/lib/baresip/modules";

/// A SIP port on `ip` whose UDP and TCP ports, and the next one (baresip
/// listens for TLS on its SIP port + 1), are free.
pub fn free_sip_port(ip: &str) -> u16 {
    for _ in 0..200 {
        let Ok(u) = UdpSocket::bind(format!("{ip}:0")) else {
            continue;
        };
        let p = u.local_addr().unwrap().port();
        drop(u);
        if p > 65000 {
            continue;
        }
        let ok = [p, p + 1].iter().all(|q| {
            UdpSocket::bind(format!("{ip}:{q}")).is_ok()
                && TcpListener::bind(format!("{ip}:{q}")).is_ok()
        });
        if ok {
            return p;
        }
    }
    panic!("no free SIP port pair on {ip}");
}

/// The RTP (and RTCP) ports of the baresip on `sip_port`, inclusive:
/// ten of its own, so a capture tells whose media a packet is.
pub fn rtp_ports(sip_port: u16) -> (u16, u16) {
    let min = 20000 + (sip_port % 2000) * 10;
    (min, min + 9)
}

pub fn free_tcp_port_on(ip: &str) -> u16 {
    TcpListener::bind(format!("{ip}:0"))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free TCP port")
}

pub struct Ua {
    pub name: &'static str,
    pub ip: &'static str,
    /// UDP and TCP; TLS on sip_port + 1.
    pub sip_port: u16,
    pub log: PathBuf,
    child: Option<Child>,
    ctl: TcpStream,
    inbox: Arc<(Mutex<Vec<Value>>, Condvar)>,
    seq: u32,
}

impl Ua {
    /// Starts baresip on `ip:sip_port` with account `aor_params` (e.g.
    /// `<sip:123@example.com>;regint=0;answermode=auto`).
    pub fn start(
        name: &'static str,
        ip: &'static str,
        sip_port: u16,
        account: &str,
        cert: &Path,
        dir: &Path,
    ) -> Ua {
        let home = dir.join(format!("baresip-{name}"));
        fs::create_dir_all(&home).unwrap();
        let ctrl_port = free_tcp_port_on(ip);
        let (rtp, rtp_max) = rtp_ports(sip_port);
        // Media on `ip` too (net_interface; else baresip offers the
        // address of the default interface, off loopback).
        // Sound: ausine (48 kHz stereo only) as the source, no player;
        // G.711 is enough for an offer/answer.
        let config = format!(
            "poll_method\t\tepoll\n\
             net_interface\t\t{ip}\n\
             sip_listen\t\t{ip}:{sip_port}\n\
             sip_certificate\t\t{cert}\n\
             audio_source\t\tausine,440\n\
             audio_level\t\tno\n\
             ausrc_srate\t\t48000\n\
             auplay_srate\t\t48000\n\
             ausrc_channels\t\t2\n\
             auplay_channels\t\t2\n\
             rtp_ports\t\t{rtp}-{}\n\
             module_path\t\t{MODULES}\n\
             module\t\t\tg711.so\n\
             module\t\t\tausine.so\n\
             module_app\t\taccount.so\n\
             module_app\t\tmenu.so\n\
             module_app\t\tctrl_tcp.so\n\
             ctrl_tcp_listen\t\t{ip}:{ctrl_port}\n",
            rtp_max,
            cert = cert.display()
        );
        fs::write(home.join("config"), config).unwrap();
        fs::write(home.join("accounts"), format!("{account}\n")).unwrap();
        let log = dir.join(format!("baresip-{name}.log"));
        let mut cmd = Command::new("baresip");
        cmd.arg("-f")
            .arg(&home)
            .arg("-s")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd
            .spawn()
            .expect("starting baresip (package baresip-core; `make deps` installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr: SocketAddr = format!("{ip}:{ctrl_port}").parse().unwrap();
        let ctl = loop {
            if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                break s;
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "baresip {name} exited ({st}); log:\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "baresip {name}: ctrl_tcp not listening on {addr} within 10 s; log:\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let inbox = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let mut reader = ctl.try_clone().unwrap();
        let ib = inbox.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                let n = match reader.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                // Netstrings: <len>:<json>,
                while let Some(colon) = buf.iter().position(|&b| b == b':') {
                    let Ok(len) = std::str::from_utf8(&buf[..colon])
                        .unwrap_or("x")
                        .parse::<usize>()
                    else {
                        buf.clear();
                        break;
                    };
                    if buf.len() < colon + 1 + len + 1 {
                        break;
                    }
                    let json = &buf[colon + 1..colon + 1 + len];
                    if let Ok(v) = serde_json::from_slice::<Value>(json) {
                        let (m, c) = &*ib;
                        m.lock().unwrap().push(v);
                        c.notify_all();
                    }
                    buf.drain(..colon + 1 + len + 1);
                }
            }
        });
        Ua {
            name,
            ip,
            sip_port,
            log,
            child: Some(child),
            ctl,
            inbox,
            seq: 0,
        }
    }

    /// Sends a command (menu's dial, hangup, hold, resume ...) and returns
    /// whether baresip accepted it.
    pub fn cmd(&mut self, command: &str, params: &str) -> Result<String, String> {
        self.seq += 1;
        let token = format!("{}-{}", self.name, self.seq);
        let j =
            serde_json::json!({"command": command, "params": params, "token": token}).to_string();
        self.ctl
            .write_all(format!("{}:{j},", j.len()).as_bytes())
            .unwrap();
        let r = self
            .wait_for(Duration::from_secs(5), |v| {
                v["response"] == true && v["token"] == token.as_str()
            })
            .ok_or_else(|| format!("{}: no response to {command}", self.name))?;
        if r["ok"] == true {
            Ok(r["data"].as_str().unwrap_or("").to_string())
        } else {
            Err(format!("{}: {command} {params}: {}", self.name, r["data"]))
        }
    }

    /// Waits for a message matching `pred` and removes it from the inbox.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let (m, c) = &*self.inbox;
        let deadline = Instant::now() + timeout;
        let mut g = m.lock().unwrap();
        loop {
            if let Some(i) = g.iter().position(&pred) {
                return Some(g.remove(i));
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            g = c.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// Waits for an event of `kind` (CALL_ESTABLISHED, CALL_CLOSED, ...).
    pub fn event(&self, kind: &str, timeout: Duration) -> Option<Value> {
        self.wait_for(timeout, |v| v["event"] == true && v["type"] == kind)
    }

    /// Events seen and not yet taken (for failure reports).
    pub fn pending_events(&self) -> Vec<String> {
        self.inbox
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|v| format!("{} {}", v["type"], v["param"]))
            .collect()
    }

    pub fn clear_events(&self) {
        self.inbox.0.lock().unwrap().clear();
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

impl Drop for Ua {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A message of baresip's SIP trace (-s): what it sent and received, as
/// libre printed it (also over TLS, which a capture cannot read).
#[derive(Clone, Debug)]
pub struct TraceMsg {
    pub transport: String,
    pub src: String,
    pub dst: String,
    pub text: String,
}

pub fn trace(log: &str) -> Vec<TraceMsg> {
    // Blocks: ESC[36;1m#\n<PROTO> <src> -> <dst>\n<message>ESC[;m
    let mut out = Vec::new();
    for block in log.split("\x1b[36;1m#\n").skip(1) {
        let block = block.split("\x1b[;m").next().unwrap_or("");
        let Some((first, rest)) = block.split_once('\n') else {
            continue;
        };
        let mut it = first.split_whitespace();
        let (Some(t), Some(src), Some("->"), Some(dst)) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        // libre prints the message with \r\n line ends.
        out.push(TraceMsg {
            transport: t.to_string(),
            src: src.to_string(),
            dst: dst.to_string(),
            text: rest.to_string(),
        });
    }
    out
}
