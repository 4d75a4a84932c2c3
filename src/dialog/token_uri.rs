//! Where a Request-URI carries a dialog token: the one place that finds
//! the token text in a URI, for the routing of in-dialog requests and for
//! the egress gate. The token itself is opaque here: `dialog::token`
//! parses it.
//!
//! A masked Contact carries the token either as its user part
//! (`sip:TOKEN@host`, `contact_mode` 0) or in a URI parameter
//! (`sip:alice@host;tps=TOKEN`: `contact_mode` 1, a user part set by
//! `topos_set_contact()`, or a trusted side's real Contact). A request's
//! Request-URI is the Contact it was sent to, so the parameter wins when
//! there is one (a peer that rewrote the user part still reaches its
//! dialog), and the user part counts otherwise, whatever the mode: dialogs
//! set up before a change of `contact_mode` keep routing.

/// Where in the URI the token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPlace {
    /// The user part (`sip:TOKEN@host`).
    User,
    /// The URI parameter named by `contact_param`.
    Param,
}

/// The token text of `uri` and where it was: the value of the URI
/// parameter `contact_param` (case-insensitive name) if the URI has one,
/// else its user part (without a password). None if neither is there.
pub fn find_token<'u>(uri: &'u str, contact_param: &str) -> Option<(&'u str, TokenPlace)> {
    let (_scheme, rest) = uri.trim().split_once(':')?;
    // '@' is not allowed unescaped in URI parameters or headers: the first
    // one ends the user part.
    let (user, after_user) = match rest.find('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    if !contact_param.is_empty() {
        let params = after_user.split('?').next().unwrap_or("");
        for p in params.split(';').skip(1) {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            if name.trim().eq_ignore_ascii_case(contact_param) {
                let value = value.trim();
                return (!value.is_empty()).then_some((value, TokenPlace::Param));
            }
        }
    }
    let user = user?.split(':').next().unwrap_or("");
    (!user.is_empty()).then_some((user, TokenPlace::User))
}

/// The token text of a Request-URI (see `find_token`), for the parser in
/// `dialog::token`.
pub fn token_in_uri<'u>(uri: &'u str, contact_param: &str) -> Option<&'u str> {
    find_token(uri, contact_param).map(|(t, _)| t)
}

/// `uri` without the token parameter Kamailio added to it (a trusted
/// side's real Contact carries one, and Kamailio reads the Contact back
/// with its own changes when it stores the dialog): every `;name=value`
/// whose name is `contact_param` and whose value is a token (stored or
/// sealed). A parameter of that name the party put
/// there itself stays.
pub fn without_token_param(uri: &str, contact_param: &str) -> String {
    let (head, headers) = match uri.find('?') {
        Some(q) => uri.split_at(q),
        None => (uri, ""),
    };
    let mut parts = head.split(';');
    let mut out = String::with_capacity(uri.len());
    out.push_str(parts.next().unwrap_or(""));
    for p in parts {
        let (name, value) = p.split_once('=').unwrap_or((p, ""));
        let value = value.trim();
        let ours = name.trim().eq_ignore_ascii_case(contact_param)
            && (crate::dialog::token::parse_token(value).is_some()
                || crate::dialog::sealed::TokenText::parse(value).is_some());
        if !ours {
            out.push(';');
            out.push_str(p);
        }
    }
    out.push_str(headers);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_kamailio_added_goes_and_nothing_else() {
        let t = crate::dialog::token::DialogId([3; 16])
            .token(crate::dialog::token::Side::Caller, &Default::default());
        assert_eq!(
            without_token_param(&format!("sip:bob@10.2.2.2;tps={t};transport=tcp"), "tps"),
            "sip:bob@10.2.2.2;transport=tcp"
        );
        assert_eq!(
            without_token_param(&format!("sip:bob@10.2.2.2;m=1;TPS={t}?Subject=x"), "tps"),
            "sip:bob@10.2.2.2;m=1?Subject=x"
        );
        // The party's own parameter of that name is not a token: it stays.
        for uri in [
            "sip:bob@10.2.2.2;tps=abc",
            "sip:bob@10.2.2.2",
            "sip:bob@10.2.2.2;lr",
        ] {
            assert_eq!(without_token_param(uri, "tps"), uri);
        }
    }

    #[test]
    fn the_user_part_in_mode_0() {
        assert_eq!(
            find_token("sip:TOKEN@203.0.113.1:5060", "tps"),
            Some(("TOKEN", TokenPlace::User))
        );
        assert_eq!(
            find_token("sips:T-_9@[2001:db8::1]:5061;transport=tls", "tps"),
            Some(("T-_9", TokenPlace::User))
        );
        assert_eq!(token_in_uri("sip:TOKEN:secret@host", "tps"), Some("TOKEN"));
    }

    #[test]
    fn the_parameter_wins_over_the_user_part() {
        assert_eq!(
            find_token("sip:alice@203.0.113.1:5060;tps=TOKEN", "tps"),
            Some(("TOKEN", TokenPlace::Param))
        );
        // A peer that rewrote the user part still names its dialog.
        assert_eq!(
            token_in_uri("sip:+4930123@203.0.113.1;transport=tcp;TPS=TOKEN;lr", "tps"),
            Some("TOKEN")
        );
        assert_eq!(
            token_in_uri("sip:203.0.113.1;xyz=TOKEN?Subject=x", "xyz"),
            Some("TOKEN")
        );
        // A user part with user-unreserved characters (RFC 3261 25.1).
        assert_eq!(
            token_in_uri("sip:a;b?c@host;tps=TOKEN", "tps"),
            Some("TOKEN")
        );
        // A real Contact of a trusted side, with its own parameters.
        assert_eq!(
            token_in_uri("sip:bob@10.2.2.2:5080;tps=TOKEN;transport=udp", "tps"),
            Some("TOKEN")
        );
    }

    #[test]
    fn no_token_anywhere() {
        for uri in [
            "",
            "sip:",
            "sip:host",
            "sip:@host",
            "sip:host;tps=",
            "sip:host;tpsx=T",
            "sip:host?tps=T",
            "no-scheme",
        ] {
            assert_eq!(find_token(uri, "tps"), None, "{uri}");
        }
        // An empty parameter name: only the user part counts.
        assert_eq!(find_token("sip:u@h;=T", ""), Some(("u", TokenPlace::User)));
        // An empty parameter value names no token, even with a user part.
        assert_eq!(find_token("sip:u@h;tps=", "tps"), None);
    }
}
