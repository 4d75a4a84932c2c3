//! The identifiers of a dialog as a message carries them: Call-ID, the
//! From and To tags and users, the CSeq method (RFC 3261 8.1.1, 12).

use super::headers::{scan_headers, Headers, ScanError};
use super::name_addr::entry_uri;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialogError {
    Scan(ScanError),
    Missing(&'static str),
    Malformed(&'static str),
}

impl fmt::Display for DialogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialogError::Scan(e) => write!(f, "{e}"),
            DialogError::Missing(h) => write!(f, "no {h} header"),
            DialogError::Malformed(h) => write!(f, "malformed {h} header"),
        }
    }
}

impl std::error::Error for DialogError {}

impl From<ScanError> for DialogError {
    fn from(e: ScanError) -> Self {
        DialogError::Scan(e)
    }
}

/// From or To: the URI's user part and the tag parameter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Party {
    pub user: String,
    pub tag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogIds {
    pub call_id: String,
    pub from: Party,
    pub to: Party,
    pub cseq_method: String,
}

fn header_is(name: &[u8], long: &str, compact: Option<&str>) -> bool {
    name.eq_ignore_ascii_case(long.as_bytes())
        || compact.is_some_and(|c| name.eq_ignore_ascii_case(c.as_bytes()))
}

impl DialogIds {
    /// Scans `msg` and reads its dialog ids (for a message read once).
    pub fn from_message(msg: &[u8]) -> Result<DialogIds, DialogError> {
        let fields = scan_headers(msg)?;
        Self::from_headers(Headers::new(msg, &fields))
    }

    /// The dialog ids of an already scanned message.
    pub fn from_headers(h: Headers<'_>) -> Result<DialogIds, DialogError> {
        let mut call_id = None;
        let mut from = None;
        let mut to = None;
        let mut cseq = None;
        for f in h.fields {
            let name = h.name(f);
            // Each name is compared once; only the first field of each of
            // the four headers is decoded, every other value never is.
            let value = || h.value(f);
            if header_is(name, "call-id", Some("i")) {
                if call_id.is_none() {
                    call_id = Some(value().trim().to_string());
                }
            } else if header_is(name, "from", Some("f")) {
                if from.is_none() {
                    from = Some(parse_party(&value()).ok_or(DialogError::Malformed("From"))?);
                }
            } else if header_is(name, "to", Some("t")) {
                if to.is_none() {
                    to = Some(parse_party(&value()).ok_or(DialogError::Malformed("To"))?);
                }
            } else if header_is(name, "cseq", None) && cseq.is_none() {
                let value = value();
                let method = value
                    .split_whitespace()
                    .nth(1)
                    .ok_or(DialogError::Malformed("CSeq"))?;
                cseq = Some(method.to_string());
            }
        }
        let call_id = call_id.ok_or(DialogError::Missing("Call-ID"))?;
        if call_id.is_empty() {
            return Err(DialogError::Malformed("Call-ID"));
        }
        Ok(DialogIds {
            call_id,
            from: from.ok_or(DialogError::Missing("From"))?,
            to: to.ok_or(DialogError::Missing("To"))?,
            cseq_method: cseq.ok_or(DialogError::Missing("CSeq"))?,
        })
    }
}

/// `"Name" <sip:user@host;uri-params>;tag=x` or `sip:user@host;tag=x`.
fn parse_party(value: &str) -> Option<Party> {
    let value = value.trim();
    let uri = entry_uri(value);
    // Header parameters follow the URI: after `>` for a name-addr, after
    // the first ';' for an addr-spec (RFC 3261 20.10).
    let params = if value.contains('<') {
        let close = value.rfind('>')?;
        if close < value.find('<')? {
            return None;
        }
        &value[close + 1..]
    } else {
        value.find(';').map_or("", |i| &value[i..])
    };
    let tag = params
        .split(';')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("tag"))
        .map(|(_, v)| v.trim().to_string())
        .filter(|t| !t.is_empty());
    Some(Party {
        user: uri_user(uri).to_string(),
        tag,
    })
}

/// The user part of a SIP/SIPS/TEL URI ("" if it has none).
fn uri_user(uri: &str) -> &str {
    let uri = uri.trim();
    let rest = match uri.split_once(':') {
        Some((scheme, rest))
            if !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphabetic()) =>
        {
            rest
        }
        _ => return "",
    };
    if uri[..uri.len() - rest.len()].eq_ignore_ascii_case("tel:") {
        return rest.split(';').next().unwrap_or("");
    }
    match rest.find('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            userinfo.split(':').next().unwrap_or("")
        }
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(headers: &str) -> Result<DialogIds, DialogError> {
        DialogIds::from_message(format!("BYE sip:x SIP/2.0\r\n{headers}\r\n").as_bytes())
    }

    #[test]
    fn requirement_call() {
        let d = ids("From: <sip:01089672389@10.0.0.1>;tag=abc\r\n\
                     To: \"Callee\" <sip:13545769997@222.223.190.118;user=phone>;tag=xyz\r\n\
                     Call-ID: c12345abcd\r\nCSeq: 2 BYE\r\n")
        .unwrap();
        assert_eq!(d.call_id, "c12345abcd");
        assert_eq!(d.from.user, "01089672389");
        assert_eq!(d.from.tag.as_deref(), Some("abc"));
        assert_eq!(d.to.user, "13545769997");
        assert_eq!(d.to.tag.as_deref(), Some("xyz"));
        assert_eq!(d.cseq_method, "BYE");
    }

    #[test]
    fn compact_forms_addr_spec_and_odd_spacing() {
        let d = ids("f: sip:alice@h ; TAG = t1\r\nt:<sips:bob:secret@h>\r\ni:  id-1@h \r\ncseq: 1   INVITE\r\n")
            .unwrap();
        assert_eq!(d.from.user, "alice");
        assert_eq!(d.from.tag.as_deref(), Some("t1"));
        assert_eq!(d.to.user, "bob");
        assert_eq!(d.to.tag, None);
        assert_eq!(d.call_id, "id-1@h");
        assert_eq!(d.cseq_method, "INVITE");
    }

    #[test]
    fn quoted_display_names_and_tel_uris() {
        let d = ids(
            "From: \"a <b> \\\"c\" <tel:+8613545769997;phone-context=x>;tag=q\r\n\
                     To: <sip:host.only>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n",
        )
        .unwrap();
        assert_eq!(d.from.user, "+8613545769997");
        assert_eq!(d.from.tag.as_deref(), Some("q"));
        assert_eq!(d.to.user, "");
    }

    #[test]
    fn missing_or_broken_headers_are_errors() {
        assert_eq!(
            ids("To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 BYE\r\n"),
            Err(DialogError::Missing("From"))
        );
        assert_eq!(
            ids("From: <sip:a@b>\r\nTo: <sip:a@b>\r\nCSeq: 1 BYE\r\n"),
            Err(DialogError::Missing("Call-ID"))
        );
        assert_eq!(
            ids("From: <sip:a@b\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 BYE\r\n"),
            Err(DialogError::Malformed("From"))
        );
        assert_eq!(
            ids("From: <sip:a@b>\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1\r\n"),
            Err(DialogError::Malformed("CSeq"))
        );
    }
}
