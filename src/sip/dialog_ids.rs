//! The identifiers of a dialog as a message carries them: Call-ID, the
//! From and To tags and users, the CSeq method (RFC 3261 8.1.1, 12).

use super::headers::{map_cow, name_is, scan_headers, Headers, ScanError};
use super::name_addr::entry_uri;
use std::borrow::Cow;
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

/// From or To: the header value and its tag parameter. The URI's user
/// part is read on demand (`user`): billing needs it, hiding does not.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Party<'a> {
    value: Cow<'a, str>,
    pub tag: Option<Cow<'a, str>>,
}

impl Party<'_> {
    pub fn into_owned(self) -> Party<'static> {
        Party {
            value: Cow::Owned(self.value.into_owned()),
            tag: self.tag.map(|t| Cow::Owned(t.into_owned())),
        }
    }

    /// The user part of the URI ("" if it has none).
    pub fn user(&self) -> &str {
        user_or_number(entry_uri(&self.value))
    }
}

/// The dialog identifiers of a message, borrowed from its text (no copy
/// unless a value was not UTF-8); `into_owned` keeps them longer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogIds<'a> {
    pub call_id: Cow<'a, str>,
    pub from: Party<'a>,
    pub to: Party<'a>,
    pub cseq_method: Cow<'a, str>,
}

impl DialogIds<'_> {
    /// Scans `msg` and reads its dialog ids (for a message read once).
    pub fn from_message(msg: &[u8]) -> Result<DialogIds<'static>, DialogError> {
        let fields = scan_headers(msg)?;
        Ok(DialogIds::from_headers(Headers::new(msg, &fields))?.into_owned())
    }

    pub fn into_owned(self) -> DialogIds<'static> {
        DialogIds {
            call_id: Cow::Owned(self.call_id.into_owned()),
            from: self.from.into_owned(),
            to: self.to.into_owned(),
            cseq_method: Cow::Owned(self.cseq_method.into_owned()),
        }
    }
}

impl<'a> DialogIds<'a> {
    /// The dialog ids of an already scanned message.
    pub fn from_headers(h: Headers<'a>) -> Result<DialogIds<'a>, DialogError> {
        let mut call_id = None;
        let mut from = None;
        let mut to = None;
        let mut cseq = None;
        for f in h.fields {
            let name = h.name(f);
            // Each name is compared once; only the first field of each of
            // the four headers is decoded, every other value never is.
            if name_is(name, "call-id", Some("i")) {
                if call_id.is_none() {
                    call_id = map_cow(h.value(f), |v| Some(v.trim()));
                }
            } else if name_is(name, "from", Some("f")) {
                if from.is_none() {
                    from = Some(parse_party(h.value(f)).ok_or(DialogError::Malformed("From"))?);
                }
            } else if name_is(name, "to", Some("t")) {
                if to.is_none() {
                    to = Some(parse_party(h.value(f)).ok_or(DialogError::Malformed("To"))?);
                }
            } else if name_is(name, "cseq", None) && cseq.is_none() {
                let method = map_cow(h.value(f), |v| v.split_whitespace().nth(1))
                    .ok_or(DialogError::Malformed("CSeq"))?;
                cseq = Some(method);
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
fn parse_party(value: Cow<'_, str>) -> Option<Party<'_>> {
    match value {
        Cow::Borrowed(v) => parse_party_str(v),
        Cow::Owned(v) => parse_party_str(&v).map(Party::into_owned),
    }
}

fn parse_party_str(value: &str) -> Option<Party<'_>> {
    let value = value.trim();
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
        .map(|(_, v)| v.trim())
        .filter(|t| !t.is_empty())
        .map(Cow::Borrowed);
    Some(Party {
        value: Cow::Borrowed(value),
        tag,
    })
}

/// Who a From or To URI names, for billing: the user part of a SIP/SIPS
/// URI, the number of a TEL URI ("" if it names neither).
fn user_or_number(uri: &str) -> &str {
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

    fn ids(headers: &str) -> Result<DialogIds<'static>, DialogError> {
        DialogIds::from_message(format!("BYE sip:x SIP/2.0\r\n{headers}\r\n").as_bytes())
    }

    #[test]
    fn requirement_call() {
        let d = ids("From: <sip:01089672389@10.0.0.1>;tag=abc\r\n\
                     To: \"Callee\" <sip:13545769997@222.223.190.118;user=phone>;tag=xyz\r\n\
                     Call-ID: c12345abcd\r\nCSeq: 2 BYE\r\n")
        .unwrap();
        assert_eq!(d.call_id, "c12345abcd");
        assert_eq!(d.from.user(), "01089672389");
        assert_eq!(d.from.tag.as_deref(), Some("abc"));
        assert_eq!(d.to.user(), "13545769997");
        assert_eq!(d.to.tag.as_deref(), Some("xyz"));
        assert_eq!(d.cseq_method, "BYE");
    }

    #[test]
    fn compact_forms_addr_spec_and_odd_spacing() {
        let d = ids("f: sip:alice@h ; TAG = t1\r\nt:<sips:bob:secret@h>\r\ni:  id-1@h \r\ncseq: 1   INVITE\r\n")
            .unwrap();
        assert_eq!(d.from.user(), "alice");
        assert_eq!(d.from.tag.as_deref(), Some("t1"));
        assert_eq!(d.to.user(), "bob");
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
        assert_eq!(d.from.user(), "+8613545769997");
        assert_eq!(d.from.tag.as_deref(), Some("q"));
        assert_eq!(d.to.user(), "");
    }

    #[test]
    fn values_that_are_not_utf8_still_yield_ids() {
        let msg = b"BYE sip:x SIP/2.0\r\nFrom: \"\xff\" <sip:alice@h>;tag=a1\r\n\
To: <sip:bob@h>;tag=b1\r\nCall-ID: c\xfe1\r\nCSeq: 2 BYE\r\n\r\n";
        let d = DialogIds::from_message(msg).unwrap();
        assert_eq!(d.from.user(), "alice");
        assert_eq!(d.from.tag.as_deref(), Some("a1"));
        assert_eq!(d.call_id, "c\u{fffd}1");
        let fields = scan_headers(msg).unwrap();
        let borrowed = DialogIds::from_headers(Headers::new(msg, &fields)).unwrap();
        assert!(matches!(borrowed.to.tag, Some(Cow::Borrowed("b1"))));
        assert!(matches!(borrowed.from.value, Cow::Owned(_)));
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
