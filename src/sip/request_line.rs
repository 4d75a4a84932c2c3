//! The request line (RFC 3261 7.1): `Method SP Request-URI SP SIP-Version
//! CRLF`, as the sender wrote it.

/// The three parts of a request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLine<'a> {
    pub method: &'a [u8],
    pub uri: &'a [u8],
    pub version: &'a [u8],
}

impl RequestLine<'_> {
    /// True if the SIP-Version is exactly `SIP/2.0` (RFC 3261 7.1: case
    /// does not matter). Kamailio's parser accepts a version with bytes
    /// after it (`SIP/2.0127.0.0.1:5060`) and relays them as they came.
    pub fn is_sip_2_0(&self) -> bool {
        self.version.eq_ignore_ascii_case(b"SIP/2.0")
    }
}

/// The request line of `msg`: its first line split at single spaces into
/// exactly three parts (None otherwise).
pub fn request_line(msg: &[u8]) -> Option<RequestLine<'_>> {
    let end = memchr::memchr(b'\n', msg).unwrap_or(msg.len());
    let mut line = &msg[..end];
    if let [rest @ .., b'\r'] = line {
        line = rest;
    }
    let mut parts = line.split(|&b| b == b' ');
    let method = parts.next()?;
    let uri = parts.next()?;
    let version = parts.next()?;
    if method.is_empty() || uri.is_empty() || parts.next().is_some() {
        return None;
    }
    Some(RequestLine {
        method,
        uri,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_line_in_three_parts() {
        let l = request_line(b"INVITE sip:b@x SIP/2.0\r\nVia: a\r\n").unwrap();
        assert_eq!(l.method, b"INVITE");
        assert_eq!(l.uri, b"sip:b@x");
        assert!(l.is_sip_2_0());
        assert!(request_line(b"ACK sip:b@x sip/2.0\n").unwrap().is_sip_2_0());
    }

    #[test]
    fn only_sip_2_0_is_sip_2_0() {
        for bad in [
            &b"INVITE sip:b@x SIP/2.0127.0.0.1:5060\r\n"[..],
            b"INVITE sip:b@x SIP/2.1\r\n",
            b"INVITE sip:b@x SIP/2.0 \r\n",
            b"INVITE sip:b@x SIP/2\r\n",
            b"INVITE sip:b@x \r\n",
        ] {
            assert!(
                !request_line(bad).is_some_and(|l| l.is_sip_2_0()),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(request_line(b"INVITE sip:b@x\r\n"), None);
        assert_eq!(request_line(b"INVITE  sip:b@x SIP/2.0\r\n"), None);
    }
}
