//! Rebuilds the Via stack a reply must carry upstream, from the request that
//! arrived at Kamailio (the transaction keeps a copy of it).
//!
//! When Kamailio relays a request it updates the sender's top Via with
//! `;received=` and `;rport=` (RFC 3261 18.2.1, RFC 3581); the callee echoes
//! them back and they steer the reply home. topos_rs keeps the core from
//! writing them into a request whose Via stack it removes, so the restored
//! stack must carry exactly what the core would have written, where it would
//! have written it.

use super::headers::{HeaderField, Headers};
use super::via::{parse_via_value, ViaBody, ViaError};

/// What the core would change in the top Via of the forwarded request: the
/// full parameter texts it builds, e.g. `;received=127.0.0.1` and `;rport=5062`.
#[derive(Debug, Default, Clone, Copy)]
pub struct TopViaUpdate<'a> {
    pub received: Option<&'a [u8]>,
    pub rport: Option<&'a [u8]>,
}

/// Why the Via stack could not be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreError {
    Via(ViaError),
    NoVia,
}

impl std::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestoreError::Via(e) => write!(f, "request top Via: {e}"),
            RestoreError::NoVia => write!(f, "request has no Via header"),
        }
    }
}

impl std::error::Error for RestoreError {}

impl From<ViaError> for RestoreError {
    fn from(e: ViaError) -> Self {
        RestoreError::Via(e)
    }
}

/// An edit of the first Via line: replace `del` bytes at `at` with `ins`.
struct Edit<'a> {
    at: usize,
    del: usize,
    ins: &'a [u8],
}

/// The top via-parm of a request, as the reply path reads it.
fn top_via(headers: Headers<'_>) -> Result<(&HeaderField, ViaBody), RestoreError> {
    let first = headers.vias().next().ok_or(RestoreError::NoVia)?;
    let mut bodies = parse_via_value(headers.msg, first.value.clone())?;
    Ok((first, bodies.swap_remove(0)))
}

/// Fails if `restored_via_block` could not give this request's Via stack
/// back to its replies. Checked before a request is hidden: a request whose
/// stack could not be restored is never relayed without it (fail closed).
pub fn check_restorable(headers: Headers<'_>) -> Result<(), RestoreError> {
    top_via(headers).map(|_| ())
}

/// Every Via header field of `request`, in order, as complete header lines,
/// with the top via-parm updated the way the core updates it on relay.
pub fn restored_via_block<'a>(
    headers: Headers<'_>,
    update: TopViaUpdate<'a>,
) -> Result<Vec<u8>, RestoreError> {
    let request = headers.msg;
    let (first, top) = top_via(headers)?;
    let top = &top;
    let vias = headers.vias().skip(1);

    // The core inserts new parameters right after host[:port] (before the
    // first parameter) and replaces existing ones in place; rport ends up
    // before received when both are inserted at the same spot.
    let anchor = top
        .params
        .first()
        .map(|p| p.semicolon)
        .unwrap_or(top.sent_by_end);
    // Replace the parameter where it stands, or insert it at the anchor.
    let edit = |name: &str, ins: &'a [u8]| match top.param(request, name) {
        Some(p) => Edit {
            at: p.semicolon,
            del: p.span.end - p.semicolon,
            ins,
        },
        None => Edit {
            at: anchor,
            del: 0,
            ins,
        },
    };
    let mut edits: Vec<Edit> = [("rport", update.rport), ("received", update.received)]
        .into_iter()
        .filter_map(|(name, text)| text.map(|t| edit(name, t)))
        .collect();
    // At one offset, a pure insertion comes before a replacement, and two
    // insertions keep rport before received: the order in which the core's
    // lumps at the same offset are applied. The sort is stable.
    edits.sort_by_key(|e| (e.at, e.del != 0));

    let total: usize = headers.vias().map(|f| f.line.len()).sum::<usize>()
        + edits.iter().map(|e| e.ins.len()).sum::<usize>();
    let mut out = Vec::with_capacity(total);
    let mut pos = first.line.start;
    for e in &edits {
        // Edits never overlap (distinct parameters); max() only keeps a
        // malformed input from turning into a panic.
        let at = e.at.max(pos);
        out.extend_from_slice(&request[pos..at]);
        out.extend_from_slice(e.ins);
        pos = (e.at + e.del).max(at);
    }
    out.extend_from_slice(&request[pos..first.line.end]);
    for f in vias {
        out.extend_from_slice(&request[f.line.clone()]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::headers::scan_headers;

    /// Scans `req` and rebuilds its Via block.
    fn restore(req: &[u8], up: TopViaUpdate) -> Result<Vec<u8>, RestoreError> {
        let fields = scan_headers(req).expect("a scannable request");
        restored_via_block(Headers::new(req, &fields), up)
    }

    fn block(req: &str, received: Option<&str>, rport: Option<&str>) -> String {
        let up = TopViaUpdate {
            received: received.map(str::as_bytes),
            rport: rport.map(str::as_bytes),
        };
        String::from_utf8(restore(req.as_bytes(), up).unwrap()).unwrap()
    }

    const REQ: &str = "INVITE sip:13545769997@222.223.190.118 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.168.1.100:5060;branch=z9hG4bK111111\r\n\
Via: SIP/2.0/UDP 10.10.10.1:5060;branch=z9hG4bK222222\r\n\
Max-Forwards: 70\r\n\
v: SIP/2.0/UDP 222.211.75.75:5060;branch=z9hG4bK333333\r\n\
Call-ID: c1\r\n\r\n";

    #[test]
    fn keeps_every_via_in_order_without_update() {
        assert_eq!(
            block(REQ, None, None),
            "Via: SIP/2.0/UDP 192.168.1.100:5060;branch=z9hG4bK111111\r\n\
Via: SIP/2.0/UDP 10.10.10.1:5060;branch=z9hG4bK222222\r\n\
v: SIP/2.0/UDP 222.211.75.75:5060;branch=z9hG4bK333333\r\n"
        );
    }

    #[test]
    fn inserts_received_and_rport_after_sent_by() {
        let b = block(REQ, Some(";received=127.0.0.1"), Some(";rport=5062"));
        assert!(b.starts_with(
            "Via: SIP/2.0/UDP 192.168.1.100:5060;rport=5062;received=127.0.0.1;branch=z9hG4bK111111\r\n"
        ));
    }

    #[test]
    fn replaces_existing_received_and_rport_in_place() {
        let req =
            "INVITE x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1;rport;received=9.9.9.9\r\n\r\n";
        assert_eq!(
            block(req, Some(";received=1.2.3.4"), Some(";rport=7000")),
            "Via: SIP/2.0/UDP h;branch=z9hG4bK1;rport=7000;received=1.2.3.4\r\n"
        );
    }

    #[test]
    fn only_the_top_body_of_a_comma_joined_field_changes() {
        let req = "INVITE x SIP/2.0\r\nVia: SIP/2.0/UDP a:1;rport, SIP/2.0/UDP b;rport\r\n\r\n";
        assert_eq!(
            block(req, Some(";received=[::1]"), Some(";rport=9")),
            "Via: SIP/2.0/UDP a:1;received=[::1];rport=9, SIP/2.0/UDP b;rport\r\n"
        );
    }

    #[test]
    fn no_params_ipv6_sent_by() {
        let req = "INVITE x SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::5]:5060\r\n\r\n";
        assert_eq!(
            block(req, Some(";received=2001:db8::9"), None),
            "Via: SIP/2.0/UDP [2001:db8::5]:5060;received=2001:db8::9\r\n"
        );
    }

    #[test]
    fn two_hundred_vias_and_a_huge_header_are_kept_intact() {
        let mut req = String::from("INVITE x SIP/2.0\r\n");
        for i in 0..200 {
            req += &format!(
                "Via: SIP/2.0/UDP 10.0.{}.{}:5060;branch=z9hG4bK{i}\r\n",
                i / 256,
                i % 256
            );
        }
        req += &format!("X-Big: {}\r\n\r\n", "a".repeat(60_000));
        let b = block(&req, Some(";received=1.1.1.1"), None);
        assert_eq!(b.matches("Via: ").count(), 200);
        assert!(
            b.starts_with("Via: SIP/2.0/UDP 10.0.0.0:5060;received=1.1.1.1;branch=z9hG4bK0\r\n")
        );
        assert!(b.ends_with("branch=z9hG4bK199\r\n"));
        assert!(!b.contains("X-Big"));
    }

    #[test]
    fn errors_instead_of_panics() {
        let up = TopViaUpdate::default();
        assert_eq!(
            restore(b"INVITE x SIP/2.0\r\nTo: a\r\n\r\n", up),
            Err(RestoreError::NoVia)
        );
        assert!(matches!(
            restore(b"INVITE x SIP/2.0\r\nVia: junk\r\n\r\n", up),
            Err(RestoreError::Via(_))
        ));
    }
}
