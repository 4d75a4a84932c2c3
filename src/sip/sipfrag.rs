//! `message/sipfrag` bodies (RFC 3420), as NOTIFYs of a transfer carry
//! them (RFC 3515: the status line of the reply the transfer target sent).
//! Anything after the status line (Via, Contact, Record-Route of the
//! target's side) is the other side's topology; only the status line may
//! cross.

/// True for a Content-Type value of `message/sipfrag` (any case, with or
/// without parameters).
pub fn is_sipfrag(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("message/sipfrag")
}

/// The length of the status line that starts `body`, its line end
/// included (`SIP/2.0 NNN reason`, then CRLF, LF or the end of the body);
/// None if the body does not start with one.
pub fn status_line_len(body: &[u8]) -> Option<usize> {
    let (line, end) = match memchr::memchr(b'\n', body) {
        Some(lf) => (&body[..lf], lf + 1),
        None => (body, body.len()),
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = line.strip_prefix(b"SIP/2.0 ")?;
    let (code, reason) = (rest.get(..3)?, &rest[3..]);
    if !(code.iter().all(u8::is_ascii_digit) && (b'1'..=b'6').contains(&code[0])) {
        return None;
    }
    // RFC 3261 Reason-Phrase: text, no control bytes but a tab.
    let ok_reason = reason.is_empty()
        || (reason[0] == b' '
            && reason
                .iter()
                .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f)));
    ok_reason.then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert!(is_sipfrag("message/sipfrag"));
        assert!(is_sipfrag("Message/SIPfrag;version=2.0"));
        assert!(!is_sipfrag("message/sip"));
        assert!(!is_sipfrag("application/sdp"));
    }

    #[test]
    fn the_status_line_of_a_sipfrag() {
        let body = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1\r\n";
        assert_eq!(status_line_len(body), Some(16));
        assert_eq!(status_line_len(b"SIP/2.0 100 Trying"), Some(18));
        assert_eq!(status_line_len(b"SIP/2.0 180 Ringing\n"), Some(20));
        assert_eq!(status_line_len(b"SIP/2.0 603"), Some(11));
    }

    #[test]
    fn anything_else_has_no_status_line() {
        for body in [
            &b""[..],
            b"INVITE sip:a@b SIP/2.0\r\n",
            b"SIP/2.0 20 OK\r\n",
            b"SIP/2.0 700 Odd\r\n",
            b"SIP/2.0 200OK\r\n",
            b"SIP/2.0 200 O\x01K\r\n",
            b"Via: SIP/2.0/UDP 10.0.0.5\r\n",
        ] {
            assert_eq!(status_line_len(body), None, "{body:?}");
        }
    }
}
