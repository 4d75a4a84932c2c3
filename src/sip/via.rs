//! Via header values (RFC 3261 20.42 / 25.1): one header field may carry
//! several comma-separated via-parms. Parsing yields byte ranges into the
//! message so callers can splice text exactly where Kamailio's core would.

use std::ops::Range;

/// One `;name[=value]` parameter of a via-parm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaParam {
    pub name: Range<usize>,
    pub value: Option<Range<usize>>,
    /// From the name through the value: what Kamailio's `param->start` and
    /// `param->size` cover (the `;` is just before, possibly with blanks).
    pub span: Range<usize>,
    /// Offset of the `;` that introduces the parameter.
    pub semicolon: usize,
}

/// One via-parm: `SIP/2.0/UDP host:port;params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaBody {
    /// The whole via-parm, without surrounding blanks or the comma.
    pub span: Range<usize>,
    pub transport: Range<usize>,
    /// The host as written: IPv6 references keep their brackets.
    pub host: Range<usize>,
    pub port: Option<u16>,
    /// Just past host[:port]: where Kamailio inserts `;received=`/`;rport=`.
    pub sent_by_end: usize,
    pub params: Vec<ViaParam>,
}

/// Why a Via value could not be parsed; the offset is into the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViaError {
    Empty(usize),
    BadProtocol(usize),
    BadHost(usize),
    BadPort(usize),
    BadParam(usize),
    Trailing(usize),
}

impl std::fmt::Display for ViaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, at) = match self {
            ViaError::Empty(a) => ("empty via-parm", a),
            ViaError::BadProtocol(a) => ("bad sent-protocol", a),
            ViaError::BadHost(a) => ("bad sent-by host", a),
            ViaError::BadPort(a) => ("bad sent-by port", a),
            ViaError::BadParam(a) => ("bad Via parameter", a),
            ViaError::Trailing(a) => ("unexpected text after via-parm", a),
        };
        write!(f, "{what} at byte {at}")
    }
}

impl std::error::Error for ViaError {}

impl ViaBody {
    /// The parameter called `name` (case-insensitive), if present.
    pub fn param(&self, msg: &[u8], name: &str) -> Option<&ViaParam> {
        self.params
            .iter()
            .find(|p| msg[p.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
    }
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// A cursor over `msg[..end]`.
struct Cursor<'a> {
    msg: &'a [u8],
    pos: usize,
    end: usize,
}

impl Cursor<'_> {
    fn skip_blanks(&mut self) {
        while self.pos < self.end && is_blank(self.msg[self.pos]) {
            self.pos += 1;
        }
    }
    fn peek(&self) -> Option<u8> {
        (self.pos < self.end).then(|| self.msg[self.pos])
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> Range<usize> {
        let start = self.pos;
        while self.pos < self.end && f(self.msg[self.pos]) {
            self.pos += 1;
        }
        start..self.pos
    }
}

/// Parses a Via header value (`msg[value]`) into its via-parms.
pub fn parse_via_value(msg: &[u8], value: Range<usize>) -> Result<Vec<ViaBody>, ViaError> {
    let mut c = Cursor {
        msg,
        pos: value.start,
        end: value.end.min(msg.len()),
    };
    let mut bodies = Vec::new();
    loop {
        c.skip_blanks();
        bodies.push(parse_body(&mut c)?);
        c.skip_blanks();
        match c.peek() {
            None => return Ok(bodies),
            Some(b',') => c.pos += 1,
            Some(_) => return Err(ViaError::Trailing(c.pos)),
        }
    }
}

fn parse_body(c: &mut Cursor) -> Result<ViaBody, ViaError> {
    let start = c.pos;
    if c.peek().is_none() || c.peek() == Some(b',') {
        return Err(ViaError::Empty(start));
    }
    // sent-protocol: name SLASH version SLASH transport, blanks around SLASH.
    let mut transport = 0..0;
    for i in 0..3 {
        if i > 0 {
            c.skip_blanks();
            if !c.eat(b'/') {
                return Err(ViaError::BadProtocol(c.pos));
            }
            c.skip_blanks();
        }
        let part = c.take_while(is_token);
        if part.is_empty() {
            return Err(ViaError::BadProtocol(c.pos));
        }
        transport = part;
    }
    let before_host = c.pos;
    c.skip_blanks();
    if c.pos == before_host {
        return Err(ViaError::BadHost(c.pos));
    }
    let host = parse_host(c)?;
    let mut port = None;
    let mut sent_by_end = c.pos;
    let save = c.pos;
    c.skip_blanks();
    if c.eat(b':') {
        c.skip_blanks();
        let digits = c.take_while(|b| b.is_ascii_digit());
        let text = std::str::from_utf8(&c.msg[digits.clone()]).unwrap_or("");
        let n: u32 = text.parse().map_err(|_| ViaError::BadPort(digits.start))?;
        if n == 0 || n > 65535 || digits.len() > 5 {
            return Err(ViaError::BadPort(digits.start));
        }
        port = Some(n as u16);
        sent_by_end = c.pos;
    } else {
        c.pos = save;
    }
    let mut params = Vec::new();
    loop {
        let save = c.pos;
        c.skip_blanks();
        if !c.eat(b';') {
            c.pos = save;
            break;
        }
        let semicolon = c.pos - 1;
        c.skip_blanks();
        let name = c.take_while(is_token);
        if name.is_empty() {
            return Err(ViaError::BadParam(c.pos));
        }
        let mut value = None;
        let after_name = c.pos;
        c.skip_blanks();
        if c.eat(b'=') {
            c.skip_blanks();
            value = Some(parse_param_value(c)?);
        } else {
            c.pos = after_name;
        }
        params.push(ViaParam {
            span: name.start..c.pos,
            name,
            value,
            semicolon,
        });
    }
    Ok(ViaBody {
        span: start..c.pos,
        transport,
        host,
        port,
        sent_by_end,
        params,
    })
}

fn parse_host(c: &mut Cursor) -> Result<Range<usize>, ViaError> {
    let start = c.pos;
    if c.eat(b'[') {
        let inner = c.take_while(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        // An IPv6 zone id (RFC 6874: `%25` then unreserved characters),
        // which Kamailio's parser accepts too.
        if c.peek() == Some(b'%') {
            c.take_while(|b| b == b'%' || b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        }
        if inner.is_empty() || !c.eat(b']') {
            return Err(ViaError::BadHost(start));
        }
        return Ok(start..c.pos);
    }
    let host = c.take_while(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if host.is_empty() {
        return Err(ViaError::BadHost(start));
    }
    // A bare IPv6 address (no brackets) is tolerated by Kamailio's parser:
    // when a ':' follows hex digits and another ':' comes later, keep going.
    if c.peek() == Some(b':') {
        let rest = &c.msg[c.pos + 1..c.end];
        let more_colons = rest
            .iter()
            .take_while(|&&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            .any(|&b| b == b':');
        if more_colons || rest.first() == Some(&b':') {
            c.take_while(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
            return Ok(start..c.pos);
        }
    }
    Ok(host)
}

fn parse_param_value(c: &mut Cursor) -> Result<Range<usize>, ViaError> {
    let start = c.pos;
    if c.eat(b'"') {
        loop {
            match c.peek() {
                None => return Err(ViaError::BadParam(start)),
                Some(b'\\') => c.pos += 2,
                Some(b'"') => {
                    c.pos += 1;
                    return Ok(start..c.pos.min(c.end));
                }
                Some(_) => c.pos += 1,
            }
            if c.pos > c.end {
                return Err(ViaError::BadParam(start));
            }
        }
    }
    if c.eat(b'[') {
        c.take_while(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !c.eat(b']') {
            return Err(ViaError::BadParam(start));
        }
        return Ok(start..c.pos);
    }
    // Any other value runs to the next separator. Kamailio's parser takes
    // more than RFC 3261's token (`>` or a byte above 0x7f in a branch):
    // such a value is kept as it is, so the stack can still be given back.
    let v = c.take_while(|b| !matches!(b, b';' | b',' | b'"' | b'=') && !is_blank(b) && b > b' ');
    if v.is_empty() {
        return Err(ViaError::BadParam(start));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Vec<ViaBody>, ViaError> {
        parse_via_value(s.as_bytes(), 0..s.len())
    }
    fn text<'a>(s: &'a str, r: &Range<usize>) -> &'a str {
        &s[r.clone()]
    }

    #[test]
    fn simple_body() {
        let s = "SIP/2.0/UDP 192.168.1.100:5060;branch=z9hG4bK111111;rport";
        let v = parse(s).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(text(s, &v[0].transport), "UDP");
        assert_eq!(text(s, &v[0].host), "192.168.1.100");
        assert_eq!(v[0].port, Some(5060));
        assert_eq!(v[0].sent_by_end, 30);
        assert_eq!(v[0].params.len(), 2);
        let b = v[0].param(s.as_bytes(), "BRANCH").unwrap();
        assert_eq!(text(s, b.value.as_ref().unwrap()), "z9hG4bK111111");
        let r = v[0].param(s.as_bytes(), "rport").unwrap();
        assert_eq!(r.value, None);
        assert_eq!(text(s, &r.span), "rport");
        assert_eq!(&s[r.semicolon..r.semicolon + 1], ";");
    }

    #[test]
    fn comma_joined_bodies_odd_case_and_whitespace() {
        let s = "sip / 2.0 / tcp  h1.example.com ;BRANCH = z9hG4bKa , SIP/2.0/UDP\r\n 10.0.0.1 : 5070 ;received=1.2.3.4";
        let v = parse(s).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(text(s, &v[0].transport), "tcp");
        assert_eq!(text(s, &v[0].host), "h1.example.com");
        assert_eq!(v[0].port, None);
        assert_eq!(
            text(
                s,
                v[0].param(s.as_bytes(), "branch")
                    .unwrap()
                    .value
                    .as_ref()
                    .unwrap()
            ),
            "z9hG4bKa"
        );
        assert_eq!(text(s, &v[1].host), "10.0.0.1");
        assert_eq!(v[1].port, Some(5070));
        assert_eq!(
            text(s, &v[1].span),
            "SIP/2.0/UDP\r\n 10.0.0.1 : 5070 ;received=1.2.3.4"
        );
    }

    #[test]
    fn ipv6_sent_by_with_and_without_port() {
        let s = "SIP/2.0/UDP [2001:db8::1]:5062;branch=z9hG4bKx;received=[::1], SIP/2.0/UDP [::1]";
        let v = parse(s).unwrap();
        assert_eq!(text(s, &v[0].host), "[2001:db8::1]");
        assert_eq!(v[0].port, Some(5062));
        assert_eq!(
            text(
                s,
                v[0].param(s.as_bytes(), "received")
                    .unwrap()
                    .value
                    .as_ref()
                    .unwrap()
            ),
            "[::1]"
        );
        assert_eq!(text(s, &v[1].host), "[::1]");
        assert_eq!(v[1].port, None);
        assert_eq!(v[1].sent_by_end, s.len());
    }

    #[test]
    fn received_and_rport_values() {
        let s = "SIP/2.0/UDP 10.0.0.1;rport=5062;received=127.0.0.1;branch=z9hG4bK1";
        let v = &parse(s).unwrap()[0];
        let r = v.param(s.as_bytes(), "rport").unwrap();
        assert_eq!(text(s, &r.span), "rport=5062");
        assert_eq!(r.semicolon, 20);
        let rc = v.param(s.as_bytes(), "received").unwrap();
        assert_eq!(text(s, &rc.span), "received=127.0.0.1");
        assert_eq!(v.sent_by_end, 20);
    }

    #[test]
    fn what_kamailio_accepts_is_parsed_too() {
        // A zone id in an IPv6 reference, `>` and 0xff in a branch.
        let s = b"SIP/2.0/UDP [fe80::1%25lo]:5060;branch=z9hG4bK>\xff1;rport";
        let v = &parse_via_value(s, 0..s.len()).unwrap()[0];
        assert_eq!(&s[v.host.clone()], b"[fe80::1%25lo]");
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.params.len(), 2);
        assert_eq!(&s[v.params[0].value.clone().unwrap()], b"z9hG4bK>\xff1");
    }

    #[test]
    fn quoted_param_value() {
        let s = "SIP/2.0/UDP h;x=\"a;b,c\";branch=z9hG4bK1";
        let v = &parse(s).unwrap()[0];
        assert_eq!(v.params.len(), 2);
        assert_eq!(text(s, v.params[0].value.as_ref().unwrap()), "\"a;b,c\"");
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(matches!(parse(""), Err(ViaError::Empty(_))));
        assert!(matches!(parse("SIP/2.0 h"), Err(ViaError::BadProtocol(_))));
        assert!(matches!(parse("SIP/2.0/UDP"), Err(ViaError::BadHost(_))));
        assert!(matches!(
            parse("SIP/2.0/UDP h:99999"),
            Err(ViaError::BadPort(_))
        ));
        assert!(matches!(
            parse("SIP/2.0/UDP h:0"),
            Err(ViaError::BadPort(_))
        ));
        assert!(matches!(
            parse("SIP/2.0/UDP h:x"),
            Err(ViaError::BadPort(_))
        ));
        assert!(matches!(
            parse("SIP/2.0/UDP [::1"),
            Err(ViaError::BadHost(_))
        ));
        assert!(matches!(
            parse("SIP/2.0/UDP h;"),
            Err(ViaError::BadParam(_))
        ));
        assert!(matches!(
            parse("SIP/2.0/UDP h;a=\"open"),
            Err(ViaError::BadParam(_))
        ));
        assert!(matches!(parse("SIP/2.0/UDP h,"), Err(ViaError::Empty(_))));
        assert!(matches!(
            parse("SIP/2.0/UDP h junk"),
            Err(ViaError::Trailing(_))
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let seeds: [&[u8]; 4] = [b"SIP/2.0/UDP [", b";=\"\\", b"\xff\xfe:", b"a/b/c h:1;x=\""];
        for seed in seeds {
            for n in 0..seed.len() * 3 {
                let v: Vec<u8> = seed.iter().cycle().take(n).copied().collect();
                let _ = parse_via_value(&v, 0..v.len());
            }
        }
    }
}
