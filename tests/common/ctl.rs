//! Kamailio's RPC through `kamcmd` on a test's ctl socket, and the probes
//! tests use to see that a Kamailio is still up and sane.

use super::kamailio::{kamcmd_bin, Kamailio};
use super::sip::Peer;
use std::path::Path;
use std::process::Command;

/// Runs `kamcmd -s unix:<socket> args...`: (succeeded, stdout + stderr).
pub fn kamcmd(socket: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(kamcmd_bin())
        .arg("-s")
        .arg(format!("unix:{}", socket.display()))
        .args(args)
        .output()
        .expect("running kamcmd");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && !text.contains("error:"), text)
}

/// `name: value` of a kamcmd struct reply.
pub fn field(reply: &str, name: &str) -> String {
    reply
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in:\n{reply}"))
        .trim()
        .to_string()
}

/// Kamailio still answers an OPTIONS and its log shows no crash of a
/// worker and no module panic.
pub fn still_alive(k: &Kamailio) {
    let p = Peer::new();
    p.send(
        k.addr,
        &format!(
            "OPTIONS sip:{} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKalive\r\nMax-Forwards: 70\r\n\
             From: <sip:p@example.com>;tag=p\r\nTo: <sip:{}>\r\nCall-ID: alive\r\nCSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            k.addr, p.addr, k.addr
        ),
    );
    p.expect_reply(200, "OPTIONS");
    let log = k.log_text();
    assert!(!log.contains("stack smashing"), "{log}");
    assert!(!log.contains("internal error"), "{log}");
}
