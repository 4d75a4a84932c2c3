//! Header values that list name-addrs: Record-Route, Route, Contact
//! (RFC 3261 20.10, 20.30, 20.34). Splits a value into its entries and finds
//! each entry's URI; commas inside `<...>` or quotes do not split.

/// The comma-separated entries of a header value, trimmed.
pub fn split_entries(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut angle, mut quoted, mut escaped) = (0, false, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' if !angle => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !angle && !quoted => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out.retain(|e| !e.is_empty());
    out
}

/// The URI of a name-addr (`"x" <uri>;params`) or addr-spec (`uri;params`).
pub fn entry_uri(entry: &str) -> &str {
    let entry = entry.trim();
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in entry.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => {
                let rest = &entry[i + 1..];
                return rest.split('>').next().unwrap_or("").trim();
            }
            _ => {}
        }
    }
    entry.split(';').next().unwrap_or("").trim()
}

/// Host and port of a SIP URI (`sip:user@host:port;params`), the host
/// without IPv6 brackets.
pub fn uri_host_port(uri: &str) -> Option<(&str, Option<u16>)> {
    let rest = uri.split_once(':')?.1;
    let hostport = match rest.rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    let hostport = hostport.split([';', '?']).next()?;
    if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None => None,
        };
        return Some((host, port));
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((hostport, None)),
    }
}

/// The user part of a SIP URI, if any.
pub fn uri_user(uri: &str) -> Option<&str> {
    let rest = uri.split_once(':')?.1;
    let at = rest.find('@')?;
    Some(rest[..at].split(':').next().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_record_route_lists() {
        let v = "<sip:p1.example.com;lr>, \"a,b\" <sip:10.0.0.1:5070;lr;x=\"1,2\">,<sip:[2001:db8::1]:5060;lr>";
        let e = split_entries(v);
        assert_eq!(e.len(), 3);
        assert_eq!(entry_uri(e[0]), "sip:p1.example.com;lr");
        assert_eq!(entry_uri(e[1]), "sip:10.0.0.1:5070;lr;x=\"1,2\"");
        assert_eq!(entry_uri(e[2]), "sip:[2001:db8::1]:5060;lr");
        assert!(split_entries("  ").is_empty());
    }

    #[test]
    fn addr_spec_and_display_names() {
        assert_eq!(entry_uri("sip:alice@h:5060;expires=60"), "sip:alice@h:5060");
        assert_eq!(entry_uri("\"<not>\" <sip:x@y>;q=1"), "sip:x@y");
    }

    #[test]
    fn host_port_and_user() {
        assert_eq!(
            uri_host_port("sip:a@10.0.0.1:5070;lr"),
            Some(("10.0.0.1", Some(5070)))
        );
        assert_eq!(
            uri_host_port("sip:proxy.example.com;lr"),
            Some(("proxy.example.com", None))
        );
        assert_eq!(
            uri_host_port("sips:[2001:db8::1]:5061"),
            Some(("2001:db8::1", Some(5061)))
        );
        assert_eq!(uri_host_port("sip:a:pw@h"), Some(("h", None)));
        assert_eq!(uri_host_port("sip:h:port"), None);
        assert_eq!(uri_host_port("nonsense"), None);
        assert_eq!(uri_user("sip:0a1b@127.0.0.1:5060"), Some("0a1b"));
        assert_eq!(uri_user("sip:127.0.0.1"), None);
    }
}
