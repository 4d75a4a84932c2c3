//! What the egress gate reads of a message Kamailio is about to send: is it
//! a request, does it carry more than Kamailio's own Via, and which
//! transaction it names. Lenient on purpose: the gate sees every message
//! Kamailio sends, including ones topos_rs never hid (and may refuse to
//! scan), so it reads lines and never fails; what it cannot read it
//! reports as absent.

/// The facts of an outgoing request the gate decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRequest<'a> {
    pub method: &'a [u8],
    pub request_uri: &'a [u8],
    /// Via header fields (lines), counted up to 2: Kamailio puts its own
    /// Via on a line of its own, so a request that left with any other
    /// has two or more.
    pub via_lines: usize,
    pub call_id: Option<&'a [u8]>,
    /// The CSeq number (without the method).
    pub cseq_number: Option<&'a [u8]>,
}

impl OutgoingRequest<'_> {
    /// True if the request carries Vias other than Kamailio's own.
    pub fn carries_sender_vias(&self) -> bool {
        self.via_lines > 1
    }

    pub fn is_method(&self, name: &str) -> bool {
        self.method.eq_ignore_ascii_case(name.as_bytes())
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r' | b'\n', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r' | b'\n'] = s {
        s = rest;
    }
    s
}

/// Reads `buf` if it is a request (None for a reply or a buffer without a
/// request line). Header fields are read up to the empty line; folded
/// continuation lines belong to the field before them.
pub fn read_request(buf: &[u8]) -> Option<OutgoingRequest<'_>> {
    if buf.starts_with(b"SIP/") {
        return None;
    }
    let first_end = memchr::memchr(b'\n', buf)?;
    let mut parts = trim(&buf[..first_end]).split(|&b| b == b' ');
    let method = parts.next().filter(|m| !m.is_empty())?;
    let request_uri = parts.next().filter(|u| !u.is_empty())?;
    let mut out = OutgoingRequest {
        method,
        request_uri,
        via_lines: 0,
        call_id: None,
        cseq_number: None,
    };
    let mut pos = first_end + 1;
    while pos < buf.len() {
        let end = memchr::memchr(b'\n', &buf[pos..]).map_or(buf.len(), |p| pos + p + 1);
        let line = &buf[pos..end];
        pos = end;
        if trim(line).is_empty() {
            break; // end of the header section
        }
        if matches!(line[0], b' ' | b'\t') {
            continue; // continuation of the field before
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = trim(&line[..colon]);
        let value = trim(&line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"via") || name.eq_ignore_ascii_case(b"v") {
            out.via_lines = (out.via_lines + 1).min(2);
        } else if name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i") {
            out.call_id.get_or_insert(value);
        } else if name.eq_ignore_ascii_case(b"cseq") {
            let number = value.split(|&b| b == b' ' || b == b'\t').next();
            out.cseq_number = out.cseq_number.or(number.filter(|n| !n.is_empty()));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hidden_request_has_one_via_line() {
        let r = read_request(
            b"ACK sip:b@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\n\
              Call-ID: abc\r\nCSeq: 1 ACK\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.method, b"ACK");
        assert_eq!(r.request_uri, b"sip:b@10.0.0.2");
        assert!(!r.carries_sender_vias());
        assert_eq!(r.call_id, Some(&b"abc"[..]));
        assert_eq!(r.cseq_number, Some(&b"1"[..]));
    }

    #[test]
    fn a_relayed_stack_counts_in_any_form() {
        for extra in [
            "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa\r\n",
            "v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa\r\n",
            "VIA  :SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa\r\n",
        ] {
            let msg = format!(
                "CANCEL sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP k;branch=z9hG4bKk\r\n{extra}\
                 i: id\r\nCSeq:  7 CANCEL\r\n\r\n"
            );
            let r = read_request(msg.as_bytes()).unwrap();
            assert!(r.carries_sender_vias(), "{extra}");
            assert_eq!(r.call_id, Some(&b"id"[..]));
            assert_eq!(r.cseq_number, Some(&b"7"[..]));
            assert!(r.is_method("cancel"));
        }
    }

    #[test]
    fn folded_lines_and_the_body_are_not_fields() {
        let r = read_request(
            b"BYE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP k\r\nSubject: a\r\n Via: folded\r\n\r\n\
              Via: in the body\r\n",
        )
        .unwrap();
        assert_eq!(r.via_lines, 1);
    }

    #[test]
    fn replies_and_junk_are_not_requests() {
        assert_eq!(
            read_request(b"SIP/2.0 200 OK\r\nVia: a\r\nVia: b\r\n\r\n"),
            None
        );
        assert_eq!(read_request(b""), None);
        assert_eq!(read_request(b"INVITE\r\n\r\n"), None);
        assert_eq!(read_request(b"no line break"), None);
    }
}
