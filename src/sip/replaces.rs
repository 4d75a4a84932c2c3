//! Call transfer's two headers, read without Kamailio: Replaces (RFC 3891:
//! `Replaces: call-id;to-tag=x;from-tag=y[;early-only]`) and the target
//! URI of a Refer-To (RFC 3515), with the Replaces a transferor embeds in
//! it (`<sip:user@host?Replaces=call-id%3Bto-tag%3Dx%3Bfrom-tag%3Dy>`).
//!
//! Both come from peers: every length is bounded and every malformed input
//! is an error value, never a panic.

use super::headers::is_token;
use std::fmt;
use std::ops::Range;

/// The longest Call-ID a Replaces may name (a Call-ID this module would
/// map is far shorter; longer is refused, not cut).
pub const MAX_CALL_ID: usize = 512;

/// The longest Refer-To value read: a topos_rs token (at most 1024
/// characters) with a Replaces fits easily; anything longer is not parsed.
pub const MAX_REFER_TO: usize = 4096;

/// A Replaces header's dialog: the Call-ID and both tags, from the
/// perspective of the user agent that receives the INVITE (its own tag is
/// the to-tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces<'a> {
    pub call_id: &'a str,
    pub to_tag: &'a str,
    pub from_tag: &'a str,
    /// Where the Call-ID sits in the value parsed.
    pub call_id_at: Range<usize>,
}

/// Why a Replaces value was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplacesError {
    /// No Call-ID, or one with a blank or control byte, or too long.
    BadCallId,
    /// No to-tag (or an empty one, or one that is not a token).
    NoToTag,
    NoFromTag,
    /// A tag given twice.
    DuplicateTag,
}

impl fmt::Display for ReplacesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplacesError::BadCallId => "a Replaces without a usable Call-ID",
            ReplacesError::NoToTag => "a Replaces without a to-tag",
            ReplacesError::NoFromTag => "a Replaces without a from-tag",
            ReplacesError::DuplicateTag => "a Replaces with a tag given twice",
        })
    }
}

/// Reads a Replaces header value.
pub fn parse_replaces(value: &str) -> Result<Replaces<'_>, ReplacesError> {
    let id_end = value.find(';').unwrap_or(value.len());
    let raw_id = &value[..id_end];
    let lead = raw_id.len() - raw_id.trim_start().len();
    let call_id = raw_id.trim();
    // RFC 3261 callid = word ["@" word]: printable, no blanks.
    if call_id.is_empty()
        || call_id.len() > MAX_CALL_ID
        || !call_id.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ReplacesError::BadCallId);
    }
    let (mut to_tag, mut from_tag) = (None, None);
    for param in value[id_end..].split(';').skip(1) {
        let Some((name, tag)) = param.split_once('=') else {
            continue;
        };
        let slot = match name.trim() {
            n if n.eq_ignore_ascii_case("to-tag") => &mut to_tag,
            n if n.eq_ignore_ascii_case("from-tag") => &mut from_tag,
            _ => continue,
        };
        if slot.is_some() {
            return Err(ReplacesError::DuplicateTag);
        }
        *slot = Some(tag.trim());
    }
    fn tag(t: Option<&str>, missing: ReplacesError) -> Result<&str, ReplacesError> {
        match t {
            Some(t) if is_token(t.as_bytes()) => Ok(t),
            _ => Err(missing),
        }
    }
    Ok(Replaces {
        call_id,
        to_tag: tag(to_tag, ReplacesError::NoToTag)?,
        from_tag: tag(from_tag, ReplacesError::NoFromTag)?,
        call_id_at: lead..lead + call_id.len(),
    })
}

/// The target of a Refer-To: the URI's user part (where a topos_rs token
/// would be), the URI without its headers (to ask whether it names this
/// server), and the Replaces embedded in it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferTarget<'a> {
    pub user: &'a str,
    /// Where the user part sits in the value parsed.
    pub user_at: Range<usize>,
    /// `sip:user@host:port;params`, the headers (`?...`) left out.
    pub uri: &'a str,
    /// The embedded Replaces, percent-decoded (None if there is none; a
    /// value that does not decode is `Some(Err(..))`).
    pub replaces: Option<Result<String, ()>>,
}

/// Reads the target URI of a Refer-To value (`<uri>` with or without a
/// display name and header parameters, or a bare URI); None if it is no
/// SIP or SIPS URI with a user part, or longer than `MAX_REFER_TO`.
pub fn refer_target(value: &str) -> Option<ReferTarget<'_>> {
    if value.len() > MAX_REFER_TO {
        return None;
    }
    parse_refer_target(value)
}

/// As `refer_target`, whatever the length (to tell whether an over-long
/// Refer-To names a token; linear in the value's length).
pub fn parse_refer_target(value: &str) -> Option<ReferTarget<'_>> {
    let (start, end) = uri_bounds(value)?;
    let uri = &value[start..end];
    let scheme_len = if uri.len() >= 4 && uri[..4].eq_ignore_ascii_case("sip:") {
        4
    } else if uri.len() >= 5 && uri[..5].eq_ignore_ascii_case("sips:") {
        5
    } else {
        return None;
    };
    let (no_headers, headers) = match uri.find('?') {
        Some(q) => (&uri[..q], Some(&uri[q + 1..])),
        None => (uri, None),
    };
    let at = no_headers.find('@')?;
    let userinfo = &no_headers[scheme_len..at];
    let user = userinfo.split(':').next().unwrap_or("");
    let user_start = start + scheme_len;
    let replaces = headers.and_then(|h| {
        h.split('&').find_map(|pair| {
            let (name, v) = pair.split_once('=')?;
            name.eq_ignore_ascii_case("replaces")
                .then(|| percent_decode(v).ok_or(()))
        })
    });
    Some(ReferTarget {
        user,
        user_at: user_start..user_start + user.len(),
        uri: no_headers,
        replaces,
    })
}

/// Where the URI of a name-addr (`"x" <uri>;p`) or addr-spec (`uri;p`)
/// starts and ends in `value`.
fn uri_bounds(value: &str) -> Option<(usize, usize)> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => {
                let close = value[i + 1..].find('>')? + i + 1;
                return Some((i + 1, close));
            }
            _ => {}
        }
    }
    // A bare URI has no '?' or ';' of its own (RFC 3261 20.10): its
    // header parameters follow the first ';'.
    let lead = value.len() - value.trim_start().len();
    let end = value.find(';').unwrap_or(value.len());
    Some((lead, value[..end].trim_end().len()))
}

/// `%XX` escapes decoded (RFC 3986); None for a malformed escape or a
/// result that is not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaces_names_its_dialog() {
        let v = "98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff;early-only";
        let r = parse_replaces(v).unwrap();
        assert_eq!(r.call_id, "98732@sip.example.com");
        assert_eq!(r.to_tag, "ff87ff");
        assert_eq!(r.from_tag, "r33th4x0r");
        assert_eq!(&v[r.call_id_at.clone()], r.call_id);
        let spaced = " abc ; TO-TAG = t ;From-Tag=f";
        let r = parse_replaces(spaced).unwrap();
        assert_eq!((r.call_id, r.to_tag, r.from_tag), ("abc", "t", "f"));
        assert_eq!(&spaced[r.call_id_at], "abc");
    }

    #[test]
    fn a_replaces_without_its_tags_or_call_id_is_refused() {
        for (v, e) in [
            ("abc;to-tag=t", ReplacesError::NoFromTag),
            ("abc;from-tag=f", ReplacesError::NoToTag),
            ("abc;to-tag=;from-tag=f", ReplacesError::NoToTag),
            ("abc;to-tag=a b;from-tag=f", ReplacesError::NoToTag),
            (";to-tag=t;from-tag=f", ReplacesError::BadCallId),
            ("a b;to-tag=t;from-tag=f", ReplacesError::BadCallId),
            (
                "abc;to-tag=t;to-tag=u;from-tag=f",
                ReplacesError::DuplicateTag,
            ),
            ("", ReplacesError::BadCallId),
        ] {
            assert_eq!(parse_replaces(v), Err(e), "{v}");
        }
        let long = format!("{};to-tag=t;from-tag=f", "a".repeat(MAX_CALL_ID + 1));
        assert_eq!(parse_replaces(&long), Err(ReplacesError::BadCallId));
    }

    #[test]
    fn the_target_of_a_refer_to_with_its_replaces() {
        let v = "\"C\" <sip:TOKEN@127.0.0.1:5060;transport=udp?Replaces=call%40h%3Bto-tag%3Dt%3Bfrom-tag%3Df&X=1>;p=1";
        let t = refer_target(v).unwrap();
        assert_eq!(t.user, "TOKEN");
        assert_eq!(&v[t.user_at.clone()], "TOKEN");
        assert_eq!(t.uri, "sip:TOKEN@127.0.0.1:5060;transport=udp");
        assert_eq!(
            t.replaces,
            Some(Ok("call@h;to-tag=t;from-tag=f".to_string()))
        );
        let bare = "sip:carol@example.com;x=y";
        let t = refer_target(bare).unwrap();
        assert_eq!(
            (t.user, t.uri, t.replaces),
            ("carol", "sip:carol@example.com", None)
        );
        assert_eq!(
            refer_target("<sip:a@b?Replaces=%zz>").unwrap().replaces,
            Some(Err(()))
        );
    }

    #[test]
    fn a_refer_to_that_is_not_a_sip_uri_with_a_user_is_no_target() {
        for v in [
            "",
            "<tel:+123>",
            "<sip:example.com>",
            "<sip:a@b",
            "<http://a@b>",
            "garbage",
        ] {
            assert!(refer_target(v).is_none(), "{v}");
        }
        assert!(refer_target(&format!("<sip:a@b?x={}>", "y".repeat(MAX_REFER_TO))).is_none());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%3Bb%3db").as_deref(), Some("a;b=b"));
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
