//! What the operator chose for each side of one dialog: the user part and
//! host its masked Contact shows the other side (`topos_set_contact()`),
//! and whether it is trusted (`topos_trust()`, `trusted_socket`: messages
//! towards it leave unhidden). Pure: the checks of the script's values and
//! the compact forms the transaction state and the dialog record keep.
//!
//! A dialog that uses none of this has `DialogKnobs::default()`, which
//! costs nothing to keep (no text, flags 0).

use crate::dialog::token::Side;

/// The longest user part or host `topos_set_contact()` takes.
pub const MAX_PART: usize = 255;

/// What one side's masked Contact shows instead of the defaults (empty:
/// the default: the token as user part, `contact_host` or the socket).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShownContact {
    pub user: String,
    /// `host[:port]` (an IPv6 address in brackets).
    pub host: String,
}

/// The operator's choices for one side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SideKnobs {
    /// This side's masked Contact as the other side sees it.
    pub contact: ShownContact,
    /// Messages towards this side leave unhidden.
    pub trusted: bool,
    /// Trusted, and Kamailio is in this side's route set, so its in-dialog
    /// requests come back through Kamailio whatever they are sent to: it
    /// is shown the other side's Record-Routes and real Contact (with the
    /// token as a URI parameter) too.
    pub sees_contacts: bool,
}

/// The operator's choices for both sides of a dialog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DialogKnobs {
    pub caller: SideKnobs,
    pub callee: SideKnobs,
}

const CALLER_TRUSTED: u8 = 1;
const CALLEE_TRUSTED: u8 = 2;
const CALLER_SEES_CONTACTS: u8 = 4;
const CALLEE_SEES_CONTACTS: u8 = 8;

impl DialogKnobs {
    pub fn of(&self, side: Side) -> &SideKnobs {
        match side {
            Side::Caller => &self.caller,
            Side::Callee => &self.callee,
        }
    }

    pub fn of_mut(&mut self, side: Side) -> &mut SideKnobs {
        match side {
            Side::Caller => &mut self.caller,
            Side::Callee => &mut self.callee,
        }
    }

    /// The trust bits (0 for a dialog without trusted sides).
    pub fn flags(&self) -> u8 {
        let mut f = 0;
        for (on, bit) in [
            (self.caller.trusted, CALLER_TRUSTED),
            (self.callee.trusted, CALLEE_TRUSTED),
            (self.caller.sees_contacts, CALLER_SEES_CONTACTS),
            (self.callee.sees_contacts, CALLEE_SEES_CONTACTS),
        ] {
            if on {
                f |= bit;
            }
        }
        f
    }

    /// Sets the trust bits from `flags` (unknown bits are ignored).
    pub fn set_flags(&mut self, f: u8) {
        self.caller.trusted = f & CALLER_TRUSTED != 0;
        self.callee.trusted = f & CALLEE_TRUSTED != 0;
        self.caller.sees_contacts = f & CALLER_SEES_CONTACTS != 0;
        self.callee.sees_contacts = f & CALLEE_SEES_CONTACTS != 0;
    }

    /// The four texts (caller user, caller host, callee user, callee
    /// host), each a length byte and its bytes; empty when all are
    /// empty. Each text is at most `MAX_PART` bytes (checked when set).
    pub fn encode_texts(&self) -> Vec<u8> {
        let texts = self.texts();
        if texts.iter().all(|t| t.is_empty()) {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(4 + texts.iter().map(|t| t.len()).sum::<usize>());
        for t in texts {
            let t = &t.as_bytes()[..t.len().min(MAX_PART)];
            out.push(t.len() as u8);
            out.extend_from_slice(t);
        }
        out
    }

    /// Reads what `encode_texts` wrote (empty: all empty). False if the
    /// bytes are not that form (nothing is changed then).
    pub fn decode_texts(&mut self, mut bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return true;
        }
        let mut texts: [String; 4] = Default::default();
        for t in &mut texts {
            let Some((&n, rest)) = bytes.split_first() else {
                return false;
            };
            let Some(text) = rest.get(..n as usize) else {
                return false;
            };
            let Ok(text) = std::str::from_utf8(text) else {
                return false;
            };
            *t = text.to_string();
            bytes = &rest[n as usize..];
        }
        if !bytes.is_empty() {
            return false;
        }
        let [cu, ch, eu, eh] = texts;
        self.caller.contact = ShownContact { user: cu, host: ch };
        self.callee.contact = ShownContact { user: eu, host: eh };
        true
    }

    fn texts(&self) -> [&str; 4] {
        [
            &self.caller.contact.user,
            &self.caller.contact.host,
            &self.callee.contact.user,
            &self.callee.contact.host,
        ]
    }
}

/// `side` as the script names it: `caller` or `callee`.
pub fn parse_side(text: &str) -> Option<Side> {
    match text.trim().to_ascii_lowercase().as_str() {
        "caller" => Some(Side::Caller),
        "callee" => Some(Side::Callee),
        _ => None,
    }
}

/// A user part a URI can carry as it is (RFC 3261 25.1: unreserved,
/// escaped and user-unreserved characters), at most `MAX_PART` bytes.
pub fn check_user(user: &str) -> Result<(), String> {
    if user.len() > MAX_PART {
        return Err(format!("is {} bytes long (at most {MAX_PART})", user.len()));
    }
    let b = user.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
                {
                    return Err("has a % that is not followed by two hex digits".into());
                }
                i += 3;
                continue;
            }
            c if c.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&c) => {}
            c => {
                return Err(format!(
                    "has a character a URI user part cannot hold ({:?})",
                    c as char
                ))
            }
        }
        i += 1;
    }
    Ok(())
}

/// `host[:port]`: a host name, an IPv4 address or an IPv6 address in
/// brackets, then an optional port 1-65535; at most `MAX_PART` bytes.
pub fn check_host(host: &str) -> Result<(), String> {
    if host.len() > MAX_PART {
        return Err(format!("is {} bytes long (at most {MAX_PART})", host.len()));
    }
    let (name, port) = if let Some(v6) = host.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| "has an IPv6 address without its closing ]".to_string())?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("has no IPv6 address between the brackets".into());
        }
        match after {
            "" => (None, None),
            p => (None, Some(p.strip_prefix(':').ok_or("has text after ]")?)),
        }
    } else {
        match host.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(name) = name {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        let labels = name.strip_suffix('.').unwrap_or(name);
        if !labels.split('.').all(label_ok) {
            return Err("is not a host name or an IP address".into());
        }
    }
    if let Some(p) = port {
        if !p.bytes().all(|c| c.is_ascii_digit()) || !matches!(p.parse::<u32>(), Ok(1..=65535)) {
            return Err("has a port that is not 1-65535".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_by_name() {
        assert_eq!(parse_side("caller"), Some(Side::Caller));
        assert_eq!(parse_side(" Callee "), Some(Side::Callee));
        assert_eq!(parse_side("both"), None);
        assert_eq!(parse_side(""), None);
    }

    #[test]
    fn users_a_uri_can_hold() {
        for ok in [
            "",
            "alice",
            "+4930123456",
            "a.b-c_d!~*'()",
            "x%20y",
            "a;b?c&d=e+f$g,h/i",
        ] {
            assert_eq!(check_user(ok), Ok(()), "{ok}");
        }
        for bad in [
            "a b", "a@b", "a>b", "a<b", "a\r\nb", "a\"b", "%2", "%zz", "é", "a:b", "a\0",
        ] {
            assert!(check_user(bad).is_err(), "{bad:?}");
        }
        assert!(check_user(&"a".repeat(255)).is_ok());
        assert_eq!(
            check_user(&"a".repeat(256)),
            Err("is 256 bytes long (at most 255)".into())
        );
    }

    #[test]
    fn hosts_with_optional_ports() {
        for ok in [
            "sbc.example.com",
            "sbc.example.com.",
            "sbc.example.com:5061",
            "203.0.113.7",
            "203.0.113.7:5060",
            "[2001:db8::1]",
            "[2001:db8::1]:5061",
            "localhost",
        ] {
            assert_eq!(check_host(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "a@b",
            "host>",
            "host\r\n",
            "host;transport=tls",
            "host:0",
            "host:65536",
            "host:",
            "host:x",
            "-host",
            "a..b",
            "2001:db8::1",
            "[2001:db8::1",
            "[nope]",
            "[2001:db8::1]5061",
        ] {
            assert!(check_host(bad).is_err(), "{bad:?}");
        }
        assert!(check_host(&format!("{}.com", "a".repeat(252))).is_err());
    }

    #[test]
    fn flags_and_texts_round_trip() {
        let mut k = DialogKnobs::default();
        assert_eq!(k.flags(), 0);
        assert!(k.encode_texts().is_empty());
        k.caller.trusted = true;
        k.callee.sees_contacts = true;
        k.callee.contact.user = "bob".into();
        k.caller.contact.host = "sbc.example.com:5061".into();
        let mut back = DialogKnobs::default();
        back.set_flags(k.flags());
        assert!(back.decode_texts(&k.encode_texts()));
        assert_eq!(back, k);
        assert!(!back.decode_texts(&[3, b'a']));
        assert!(!back.decode_texts(&[0, 0, 0, 0, 9]));
        assert_eq!(back, k, "a bad form changes nothing");
    }
}
