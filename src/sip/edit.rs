//! Changes to a message's bytes, as the planners (`dialog::plan`,
//! `topos`) express them and the FFI layer applies them (one Kamailio lump
//! each): deletions of original bytes and insertions at original offsets.
//! `apply` does to bytes what Kamailio does with the lumps, so plans are
//! checked without Kamailio.

use std::ops::Range;

/// One change to a message: the FFI layer applies it as a lump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    Delete(Range<usize>),
    Insert(usize, Vec<u8>),
}

/// In inserted text: the socket the message leaves on, filled in by the
/// core for each copy it sends (the FFI layer turns it into Kamailio's
/// send-socket substitution, as `record_route()` uses). NUL never occurs
/// in a header topos_rs writes or accepts.
pub const SEND_SOCKET: &str = "\0send-socket\0";

/// In inserted text: the address and port of the socket the message
/// leaves on, without a transport (a `sips:` URI: TLS is implied).
pub const SEND_ADDRESS: &str = "\0send-address\0";

/// In inserted text: `;transport=x` for the socket the message leaves on
/// (nothing for UDP when the message came in over UDP: the core cannot
/// tell otherwise, so a message that came in over another transport names
/// UDP too, `;transport=udp`). After an operator's host (`topos_set_contact()`).
pub const SEND_TRANSPORT: &str = "\0send-transport\0";

/// The markers above, for the FFI layer that turns each into lumps.
pub const MARKERS: [&str; 3] = [SEND_SOCKET, SEND_ADDRESS, SEND_TRANSPORT];

/// A piece of inserted text: literal bytes, or one of `MARKERS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a [u8]),
    Marker(&'static str),
}

/// Splits inserted text at its markers, in order. Every marker starts with
/// NUL, which nothing else holds, so text without one (most insertions) is
/// a single piece after one `memchr`: this runs for every lump topos_rs
/// adds. A NUL that starts no marker stays text.
pub fn pieces(text: &[u8]) -> Vec<Piece<'_>> {
    let mut out = Vec::with_capacity(3);
    let mut rest = text;
    let mut from = 0;
    while let Some(p) = memchr::memchr(0, &rest[from..]).map(|p| from + p) {
        match MARKERS.iter().find(|m| rest[p..].starts_with(m.as_bytes())) {
            Some(m) => {
                if p > 0 {
                    out.push(Piece::Text(&rest[..p]));
                }
                out.push(Piece::Marker(m));
                rest = &rest[p + m.len()..];
                from = 0;
            }
            None => from = p + 1,
        }
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

/// Orders edits by position and merges deletions that overlap or touch,
/// so a block of consecutive header lines goes with one lump.
pub fn coalesce(mut edits: Vec<Edit>) -> Vec<Edit> {
    edits.sort_by_key(|e| match e {
        Edit::Delete(r) => (r.start, 1),
        Edit::Insert(at, _) => (*at, 0),
    });
    let mut out: Vec<Edit> = Vec::with_capacity(edits.len());
    for e in edits {
        if let Edit::Delete(r) = &e {
            if let Some(Edit::Delete(last)) =
                out.iter_mut().rev().find(|x| matches!(x, Edit::Delete(_)))
            {
                if r.start <= last.end {
                    last.end = last.end.max(r.end);
                    continue;
                }
            }
        }
        out.push(e);
    }
    out
}

/// Applies edits to bytes the way Kamailio applies lumps (for tests and for
/// checking plans): deletions skip bytes, insertions go in at their offset.
pub fn apply(msg: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut points: Vec<(usize, u8, &Edit)> = edits
        .iter()
        .map(|e| match e {
            Edit::Delete(r) => (r.start, 1, e),
            Edit::Insert(at, _) => (*at, 0, e),
        })
        .collect();
    points.sort_by_key(|(at, kind, _)| (*at, *kind));
    let mut out = Vec::with_capacity(msg.len());
    let mut pos = 0;
    for (at, _, e) in points {
        let at = at.max(pos);
        out.extend_from_slice(&msg[pos..at]);
        pos = at;
        match e {
            Edit::Delete(r) => pos = pos.max(r.end),
            Edit::Insert(_, text) => out.extend_from_slice(text),
        }
    }
    out.extend_from_slice(&msg[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserted_text_splits_at_its_markers_only() {
        assert_eq!(
            pieces(b"Contact: <sip:x@h>\r\n"),
            vec![Piece::Text(b"Contact: <sip:x@h>\r\n")]
        );
        assert_eq!(pieces(b""), vec![]);
        let t = format!("<sip:tok@{SEND_SOCKET}>{SEND_TRANSPORT}{SEND_ADDRESS}");
        assert_eq!(
            pieces(t.as_bytes()),
            vec![
                Piece::Text(b"<sip:tok@"),
                Piece::Marker(SEND_SOCKET),
                Piece::Text(b">"),
                Piece::Marker(SEND_TRANSPORT),
                Piece::Marker(SEND_ADDRESS),
            ]
        );
        // A NUL that starts no marker is text, also right before one.
        let t = format!("a\0b\0{SEND_SOCKET}");
        assert_eq!(
            pieces(t.as_bytes()),
            vec![Piece::Text(b"a\0b\0"), Piece::Marker(SEND_SOCKET)]
        );
        assert_eq!(pieces(b"\0send-"), vec![Piece::Text(b"\0send-")]);
    }

    #[test]
    fn coalescing_merges_touching_deletions_and_keeps_the_result() {
        let msg = "INVITE x SIP/2.0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
        let a = 18..24;
        let b = 24..30;
        let d = 36..42;
        let edits = vec![
            Edit::Delete(d.clone()),
            Edit::Insert(24, b"X: y\r\n".to_vec()),
            Edit::Delete(b.clone()),
            Edit::Delete(a.clone()),
        ];
        let merged = coalesce(edits.clone());
        assert_eq!(
            merged,
            vec![
                Edit::Delete(18..30),
                Edit::Insert(24, b"X: y\r\n".to_vec()),
                Edit::Delete(d)
            ]
        );
        assert_eq!(
            String::from_utf8(apply(msg.as_bytes(), &merged)).unwrap(),
            "INVITE x SIP/2.0\r\nX: y\r\nC: 3\r\n\r\n"
        );
        assert_eq!(
            apply(msg.as_bytes(), &merged),
            apply(msg.as_bytes(), &edits)
        );
    }
}
