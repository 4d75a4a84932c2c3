//! Dialog tokens: what the masked Contacts carry instead of an address.
//!
//! A dialog gets 128 random bits (its id). The Contact Kamailio shows the
//! callee carries `<id><'a'>` (requests to it go to the caller side), the
//! one it shows the caller `<id><'b'>` (requests go to the callee side).
//! Tokens are lowercase hex plus the side letter: 33 characters.

use crate::hex::hex_digits;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DialogId(pub [u8; 16]);

/// The side a request is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The caller's side (a request from the callee).
    Caller,
    /// The callee's side (a request from the caller).
    Callee,
}

impl Side {
    fn letter(self) -> char {
        match self {
            Side::Caller => 'a',
            Side::Callee => 'b',
        }
    }
}

impl DialogId {
    pub fn from_random(bytes: [u8; 16]) -> DialogId {
        DialogId(bytes)
    }

    pub fn hex(&self) -> String {
        // Room for the side letter a token adds.
        let mut out = String::with_capacity(33);
        out.extend(hex_digits(&self.0).map(char::from));
        out
    }

    /// The token whose requests go to `side`.
    pub fn token(&self, side: Side) -> String {
        let mut t = self.hex();
        t.push(side.letter());
        t
    }
}

impl fmt::Display for DialogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

/// Parses a token; None for anything that is not exactly one.
pub fn parse_token(s: &str) -> Option<(DialogId, Side)> {
    let b = s.as_bytes();
    if b.len() != 33 {
        return None;
    }
    let side = match b[32] {
        b'a' => Side::Caller,
        b'b' => Side::Callee,
        _ => return None,
    };
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut id = [0u8; 16];
    for (i, out) in id.iter_mut().enumerate() {
        *out = nibble(b[2 * i])? << 4 | nibble(b[2 * i + 1])?;
    }
    Some((DialogId(id), side))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let id = DialogId([0xab; 16]);
        let t = id.token(Side::Callee);
        assert_eq!(t.len(), 33);
        assert_eq!(t, format!("{}b", "ab".repeat(16)));
        assert_eq!(parse_token(&t), Some((id, Side::Callee)));
        assert_eq!(
            parse_token(&id.token(Side::Caller)),
            Some((id, Side::Caller))
        );
    }

    #[test]
    fn anything_else_is_not_a_token() {
        let good = DialogId([1; 16]).token(Side::Caller);
        for bad in [
            "",
            &good[..32],
            &format!("{good}0"),
            &good.to_uppercase(),
            &format!("{}c", &good[..32]),
            &format!("g{}", &good[1..]),
            "alice",
        ] {
            assert_eq!(parse_token(bad), None, "{bad}");
        }
    }
}
