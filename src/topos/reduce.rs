//! The fail-closed path for replies: a reply of a hidden transaction that
//! cannot be hidden (its header section cannot be read, a header of it
//! cannot be rewritten, ...) is cut down to what is safe instead of going
//! out as it came: its status line, the caller's own Via stack, the
//! caller's From, To (with the reply's To-tag when it is a plain token),
//! Call-ID and CSeq, and no body. Nothing the far side wrote passes but the
//! status line and the tag.

use crate::error::Result;
use crate::ffi::msg::SipMsg;
use crate::ffi::tm::Transaction;
use crate::sip::edit::Edit;
use crate::sip::headers::{is_token, scan_headers, Headers};
use crate::sip::restore::restored_via_block;

/// Longest To-tag copied into a reduced reply.
const MAX_TAG: usize = 128;

fn is_plain_token(tag: &[u8]) -> bool {
    tag.len() <= MAX_TAG && is_token(tag)
}

/// The header line `f` of `h` without its line break.
fn line_text<'a>(
    h: Headers<'a>,
    long: &'static str,
    compact: Option<&'static str>,
) -> Option<&'a [u8]> {
    let f = h.named(long, compact).next()?;
    let mut line = &h.msg[f.line.clone()];
    while let [rest @ .., b'\r' | b'\n'] = line {
        line = rest;
    }
    Some(line)
}

/// The safe header section: what the request gives back, plus the tag.
fn safe_block(t: &Transaction, to_tag: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let Some(request) = t.request() else {
        return out;
    };
    let Ok(fields) = scan_headers(request.buf()) else {
        return out;
    };
    let h = Headers::new(request.buf(), &fields);
    // Without its Via stack the reply reaches no one upstream: that is
    // still safe, so a failure here only leaves the stack out.
    if let Ok(update) = request.top_via_update() {
        if let Ok(vias) = restored_via_block(h, update.as_update()) {
            out.extend_from_slice(&vias);
        }
    }
    for (long, compact) in [
        ("from", Some("f")),
        ("to", Some("t")),
        ("call-id", Some("i")),
        ("cseq", None),
    ] {
        let Some(line) = line_text(h, long, compact) else {
            continue;
        };
        out.extend_from_slice(line);
        if long == "to" && !line.windows(5).any(|w| w.eq_ignore_ascii_case(b";tag=")) {
            if let Some(tag) = to_tag.filter(|t| is_plain_token(t)) {
                out.extend_from_slice(b";tag=");
                out.extend_from_slice(tag);
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Replaces everything after the status line of `reply` with the safe
/// header section and an empty body.
pub fn reduce_reply(t: &Transaction, reply: &mut SipMsg) -> Result<()> {
    let buf = reply.buf();
    let eol = memchr::memchr(b'\n', buf).map_or(buf.len(), |p| p + 1);
    let to_tag = reply.parsed_to_tag();
    let mut block = safe_block(t, to_tag);
    block.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    reply.apply(vec![Edit::Delete(eol..buf.len()), Edit::Insert(eol, block)])?;
    reply.commit()
}
