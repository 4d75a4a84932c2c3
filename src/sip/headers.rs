//! Header-field scanning over a raw SIP message (RFC 3261 7.3): finds each
//! header field's name, value and full extent, folded continuation lines
//! included, without allocating. Offsets are byte offsets into the message,
//! so the FFI layer can turn them into Kamailio lumps directly.

use std::borrow::Cow;
use std::ops::Range;

/// One header field as it appears in the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderField {
    /// The field name, without the colon or surrounding whitespace.
    pub name: Range<usize>,
    /// The value, from the first non-blank byte after the colon up to (not
    /// including) the final line break; may contain folded line breaks.
    pub value: Range<usize>,
    /// The whole field: name through the final CRLF (or LF).
    pub line: Range<usize>,
}

/// Why a message could not be scanned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    /// No line break after the start line.
    NoStartLine,
    /// A header line without a colon, at this byte offset.
    MissingColon(usize),
    /// A header line whose name is empty or not a token, at this offset.
    BadName(usize),
    /// The header section is not terminated by an empty line.
    Unterminated,
    /// A control byte (NUL, a CR not followed by LF, ...) in the header
    /// section, at this byte offset. Parsers disagree on what such a byte
    /// means (Kamailio may end a line where this scanner would not), so a
    /// message that carries one is never hidden "as far as we understood
    /// it": it is refused.
    ControlByte(usize),
    /// A bare LF in a message whose lines end with CRLF, at this offset:
    /// parsers disagree on whether it ends the line or the header section.
    MixedLineEnds(usize),
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::NoStartLine => write!(f, "no line break after the start line"),
            ScanError::MissingColon(at) => write!(f, "header line without ':' at byte {at}"),
            ScanError::BadName(at) => write!(f, "invalid header name at byte {at}"),
            ScanError::Unterminated => write!(f, "header section not terminated"),
            ScanError::ControlByte(at) => {
                write!(f, "control byte in the header section at byte {at}")
            }
            ScanError::MixedLineEnds(at) => write!(f, "bare LF among CRLF line ends at byte {at}"),
        }
    }
}

impl std::error::Error for ScanError {}

/// RFC 3261 token characters (header names are tokens), as a table: every
/// byte of every header name of every message goes through it.
const TOKEN_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        b += 1;
    }
    t
};

fn is_token_byte(b: u8) -> bool {
    TOKEN_BYTES[b as usize]
}

/// True if `text` is a non-empty RFC 3261 token (a tag, a method).
pub fn is_token(text: &[u8]) -> bool {
    !text.is_empty() && text.iter().all(|&b| is_token_byte(b))
}

/// Offset just past the line break that ends the line starting at `from`,
/// or None if there is none.
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    memchr::memchr(b'\n', &buf[from..]).map(|p| from + p + 1)
}

/// Bytes that may not appear in a header section: C0 controls other than
/// HTAB, LF and CR (checked separately: only as part of CRLF), and DEL.
const CONTROL_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 32 {
        t[b] = b != 9 && b != 10 && b != 13;
        b += 1;
    }
    t[127] = true;
    t
};

/// The first control byte of `head` (a CR counts unless an LF follows it).
fn first_control_byte(head: &[u8]) -> Option<usize> {
    head.iter().enumerate().position(|(i, &b)| {
        CONTROL_BYTES[b as usize] || (b == b'\r' && head.get(i + 1) != Some(&b'\n'))
    })
}

/// Every header field of `msg` in order. Stops at the empty line that ends the
/// header section; the body is never looked at. The start line and the
/// header section must be free of control bytes (see `ScanError::ControlByte`).
pub fn scan_headers(msg: &[u8]) -> Result<Vec<HeaderField>, ScanError> {
    // Room for a typical message's header count: no regrowth per field.
    let mut fields = Vec::with_capacity(24);
    let mut pos = line_end(msg, 0).ok_or(ScanError::NoStartLine)?;
    if let Some(at) = first_control_byte(&msg[..pos]) {
        return Err(ScanError::ControlByte(at));
    }
    // A message is scanned with the line ends its start line uses: LF-only
    // messages are accepted, but in a CRLF message a bare LF (a line, or
    // the empty line that would end the headers early) is refused.
    let crlf = pos >= 2 && msg[pos - 2] == b'\r';
    let bare_lf = |from: usize, to: usize| {
        memchr::memchr_iter(b'\n', &msg[from..to])
            .map(|i| from + i)
            .find(|&i| i == 0 || msg[i - 1] != b'\r')
    };
    loop {
        if pos >= msg.len() {
            return Err(ScanError::Unterminated);
        }
        // Empty line: end of the header section.
        if msg[pos] == b'\n' || msg[pos..].starts_with(b"\r\n") {
            if crlf && msg[pos] == b'\n' {
                return Err(ScanError::MixedLineEnds(pos));
            }
            return Ok(fields);
        }
        let start = pos;
        let mut end = line_end(msg, pos).ok_or(ScanError::Unterminated)?;
        // Folded continuation lines start with a space or a tab.
        while end < msg.len() && (msg[end] == b' ' || msg[end] == b'\t') {
            end = line_end(msg, end).ok_or(ScanError::Unterminated)?;
        }
        let line = &msg[start..end];
        if let Some(at) = first_control_byte(line) {
            return Err(ScanError::ControlByte(start + at));
        }
        if crlf {
            if let Some(at) = bare_lf(start, end) {
                return Err(ScanError::MixedLineEnds(at));
            }
        }
        let colon = memchr::memchr(b':', line).ok_or(ScanError::MissingColon(start))?;
        let name_end = start
            + line[..colon]
                .iter()
                .rposition(|&b| b != b' ' && b != b'\t')
                .map(|p| p + 1)
                .unwrap_or(0);
        if name_end == start || !msg[start..name_end].iter().all(|&b| is_token_byte(b)) {
            return Err(ScanError::BadName(start));
        }
        let mut value_start = start + colon + 1;
        while value_start < end && matches!(msg[value_start], b' ' | b'\t') {
            value_start += 1;
        }
        let mut value_end = end;
        while value_end > value_start && matches!(msg[value_end - 1], b'\r' | b'\n') {
            value_end -= 1;
        }
        fields.push(HeaderField {
            name: start..name_end,
            value: value_start.max(start + colon + 1).min(value_end)..value_end,
            line: start..end,
        });
        pos = end;
    }
}

/// True if the field name is Via in its long or compact form, any case.
pub fn is_via_name(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"via") || name.eq_ignore_ascii_case(b"v")
}

/// True if a field name is `long` or its compact form, any case.
pub fn name_is(name: &[u8], long: &str, compact: Option<&str>) -> bool {
    name.eq_ignore_ascii_case(long.as_bytes())
        || compact.is_some_and(|c| name.eq_ignore_ascii_case(c.as_bytes()))
}

/// `f(text)`, borrowed from `text` when `text` is (header values are
/// borrowed from the message unless they were not UTF-8), owned otherwise.
pub fn map_cow<'a>(
    text: Cow<'a, str>,
    f: impl for<'t> Fn(&'t str) -> Option<&'t str>,
) -> Option<Cow<'a, str>> {
    match text {
        Cow::Borrowed(t) => f(t).map(Cow::Borrowed),
        Cow::Owned(t) => f(&t).map(|v| Cow::Owned(v.to_string())),
    }
}

/// A message with its header fields found once (`scan_headers`): every step
/// that reads the message (Via hiding, dialog plans, dialog ids) works on the
/// same index instead of scanning the message again.
#[derive(Clone, Copy)]
pub struct Headers<'a> {
    pub msg: &'a [u8],
    pub fields: &'a [HeaderField],
}

impl<'a> Headers<'a> {
    pub fn new(msg: &'a [u8], fields: &'a [HeaderField]) -> Self {
        Headers { msg, fields }
    }

    /// The field's name as written.
    pub fn name(self, f: &HeaderField) -> &'a [u8] {
        &self.msg[f.name.clone()]
    }

    /// The field's value as text: borrowed when it is UTF-8 (SIP header
    /// values practically always are), a lossy copy otherwise.
    pub fn value(self, f: &HeaderField) -> Cow<'a, str> {
        String::from_utf8_lossy(&self.msg[f.value.clone()])
    }

    /// The fields called `long` or its compact form, any case, in order.
    pub fn named(
        self,
        long: &'static str,
        compact: Option<&'static str>,
    ) -> impl Iterator<Item = &'a HeaderField> {
        self.fields
            .iter()
            .filter(move |f| name_is(self.name(f), long, compact))
    }

    /// The Via header fields, in order.
    pub fn vias(self) -> impl Iterator<Item = &'a HeaderField> {
        self.fields
            .iter()
            .filter(move |f| is_via_name(self.name(f)))
    }

    /// End of the header section (where a header goes that the message has
    /// none of): after the last field, or after the start line.
    pub fn end_of_headers(self) -> usize {
        self.fields
            .last()
            .map(|f| f.line.end)
            .unwrap_or_else(|| memchr::memchr(b'\n', self.msg).map_or(self.msg.len(), |p| p + 1))
    }
}

/// A scanned copy of a message, for unit tests of the functions that take
/// `Headers`.
#[cfg(test)]
pub(crate) struct Scanned {
    msg: Vec<u8>,
    fields: Vec<HeaderField>,
}

#[cfg(test)]
impl Scanned {
    pub(crate) fn new(msg: impl AsRef<[u8]>) -> Self {
        let msg = msg.as_ref().to_vec();
        let fields = scan_headers(&msg).expect("a scannable test message");
        Scanned { msg, fields }
    }

    pub(crate) fn h(&self) -> Headers<'_> {
        Headers::new(&self.msg, &self.fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"INVITE sip:a@b SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n\
v:SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK2 ,\r\n SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK3\r\n\
Max-Forwards: 70\r\n\
VIA :  SIP/2.0/UDP h;branch=z9hG4bK4\r\n\
\r\n\
body: not a header\r\n";

    #[test]
    fn finds_every_field_with_folding() {
        let f = scan_headers(MSG).unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!(&MSG[f[1].name.clone()], b"v");
        assert_eq!(
            &MSG[f[1].value.clone()],
            &b"SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK2 ,\r\n SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK3"[..]
        );
        assert!(MSG[f[1].line.clone()].ends_with(b"z9hG4bK3\r\n"));
        assert_eq!(&MSG[f[3].name.clone()], b"VIA");
        assert_eq!(&MSG[f[3].value.clone()], b"SIP/2.0/UDP h;branch=z9hG4bK4");
    }

    #[test]
    fn vias_match_every_spelling_and_skip_the_body() {
        let v: Vec<_> = Scanned::new(MSG).h().vias().cloned().collect();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].line.start, 24);
    }

    #[test]
    fn lf_only_line_breaks_are_accepted() {
        let m = b"SIP/2.0 200 OK\nVia: SIP/2.0/UDP a\nX: y\n\n";
        let f = scan_headers(m).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(&m[f[0].value.clone()], b"SIP/2.0/UDP a");
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert_eq!(scan_headers(b"INVITE"), Err(ScanError::NoStartLine));
        assert_eq!(
            scan_headers(b"INVITE x SIP/2.0\r\nno colon here\r\n\r\n"),
            Err(ScanError::MissingColon(18))
        );
        assert_eq!(
            scan_headers(b"INVITE x SIP/2.0\r\n: empty\r\n\r\n"),
            Err(ScanError::BadName(18))
        );
        assert_eq!(
            scan_headers(b"INVITE x SIP/2.0\r\nVia: a\r\n"),
            Err(ScanError::Unterminated)
        );
        assert_eq!(
            scan_headers(b"INVITE x SIP/2.0\r\nVi a: b\r\n\r\n"),
            Err(ScanError::BadName(18))
        );
        // A bare CR could end a line for another parser: refused, as are
        // NUL and other control bytes; HTAB and CRLF are fine.
        assert_eq!(
            scan_headers(b"SIP/2.0 200 OK\r\nContact: <sip:a>\rRecord-Route: <sip:b>\r\n\r\n"),
            Err(ScanError::ControlByte(32))
        );
        assert_eq!(
            scan_headers(b"SIP/2.0 200 OK\r\nX: a\0b\r\n\r\n"),
            Err(ScanError::ControlByte(20))
        );
        assert_eq!(
            scan_headers(b"SIP/2.0 200\r OK\r\nX: a\r\n\r\n"),
            Err(ScanError::ControlByte(11))
        );
        assert!(scan_headers(b"SIP/2.0 200 OK\r\nX:\ta\r\n\r\n\0\rbody").is_ok());
        // A bare LF among CRLF lines: an early end of the headers for one
        // parser, a line end for another: refused. LF-only messages pass.
        assert_eq!(
            scan_headers(b"SIP/2.0 200 OK\r\nX: a\r\n\nContact: <sip:b>\r\n\r\n"),
            Err(ScanError::MixedLineEnds(22))
        );
        assert_eq!(
            scan_headers(b"SIP/2.0 200 OK\r\nX: a\nY: b\r\n\r\n"),
            Err(ScanError::MixedLineEnds(20))
        );
        assert!(scan_headers(b"SIP/2.0 200 OK\nX: a\nY: b\n\n").is_ok());
        // Arbitrary bytes never panic.
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let _ = scan_headers(&junk);
        }
    }

    #[test]
    fn tokens() {
        assert!(is_token(b"a1-b.c~"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a;b"));
        assert!(!is_token(b"a\r\nVia: x"));
    }

    #[test]
    fn empty_value_is_allowed() {
        let m = b"OPTIONS x SIP/2.0\r\nSubject:\r\n\r\n";
        let f = scan_headers(m).unwrap();
        assert_eq!(f[0].value.clone().len(), 0);
    }
}
