//! Dialog tokens: what the masked Contacts carry instead of an address.
//!
//! A dialog gets 128 random bits (its id) and each of its two sides 128
//! random bits of its own (its secret). The Contact Kamailio shows the
//! callee carries `<id>a<caller secret>` (requests to it go to the caller
//! side), the one it shows the caller `<id>b<callee secret>`. Both tokens
//! name the same dialog, but neither can be derived from the other: a
//! party that knows its own token cannot address its own side with the
//! other one. Tokens are lowercase hex with the side letter: 65 characters.
//!
//! A request is bound to the side it goes to by `binding`: the secret of
//! that side with the Call-ID and tags the other side's requests carry. The
//! store compares it before it changes anything, so a forged token, a token
//! used with another Call-ID or with the tags swapped (a party addressing
//! its own side) is refused and changes nothing.

use crate::hex::hex_digits;
use sha2::{Digest, Sha256};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DialogId(pub [u8; 16]);

/// A side's secret (in the token that addresses that side).
pub type Secret = [u8; 16];

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

/// Both sides' secrets of one dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Secrets {
    pub caller: Secret,
    pub callee: Secret,
}

impl Secrets {
    pub fn from_random(bytes: [u8; 32]) -> Secrets {
        let mut s = Secrets::default();
        s.caller.copy_from_slice(&bytes[..16]);
        s.callee.copy_from_slice(&bytes[16..]);
        s
    }

    pub fn of(&self, side: Side) -> &Secret {
        match side {
            Side::Caller => &self.caller,
            Side::Callee => &self.callee,
        }
    }
}

impl DialogId {
    pub fn from_random(bytes: [u8; 16]) -> DialogId {
        DialogId(bytes)
    }

    pub fn hex(&self) -> String {
        // Room for the side letter and the secret a token adds.
        let mut out = String::with_capacity(65);
        out.extend(hex_digits(&self.0).map(char::from));
        out
    }

    /// The token whose requests go to `side`.
    pub fn token(&self, side: Side, secrets: &Secrets) -> String {
        let mut t = self.hex();
        t.push(side.letter());
        t.extend(hex_digits(secrets.of(side)).map(char::from));
        t
    }
}

impl fmt::Display for DialogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

fn parse_hex(text: &[u8], out: &mut [u8]) -> Option<()> {
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    for (i, o) in out.iter_mut().enumerate() {
        *o = nibble(text[2 * i])? << 4 | nibble(text[2 * i + 1])?;
    }
    Some(())
}

/// Parses `<id hex><letter><secret hex>` whose letter is `caller` or
/// `callee` (the side it names); None for anything else.
fn parse_lettered(s: &str, caller: u8, callee: u8) -> Option<(DialogId, Side, Secret)> {
    let b = s.as_bytes();
    if b.len() != 65 {
        return None;
    }
    let side = match b[32] {
        l if l == caller => Side::Caller,
        l if l == callee => Side::Callee,
        _ => return None,
    };
    let mut id = [0u8; 16];
    let mut secret = [0u8; 16];
    parse_hex(&b[..32], &mut id)?;
    parse_hex(&b[33..], &mut secret)?;
    Some((DialogId(id), side, secret))
}

/// Parses a token; None for anything that is not exactly one.
pub fn parse_token(s: &str) -> Option<(DialogId, Side, Secret)> {
    parse_lettered(s, b'a', b'b')
}

/// A stored dialog's transfer token for `side` (issue 21): what a Refer-To
/// carries in place of that side's token, `<id>c<x>` (to the caller side)
/// or `<id>d<x>` (to the callee side), where `x` is derived one way from
/// the side's secret (`transfer_secret`). It opens only the INVITE that
/// replaces its dialog: `parse_token` does not read it, so it routes no
/// in-dialog request, and it does not give the side's own token back.
pub fn transfer_token(id: &DialogId, side: Side, secret: &Secret) -> String {
    let mut t = id.hex();
    t.push(match side {
        Side::Caller => 'c',
        Side::Callee => 'd',
    });
    t.extend(hex_digits(&transfer_secret(secret)).map(char::from));
    t
}

/// The secret of a transfer token, from the side's secret (one way).
pub fn transfer_secret(secret: &Secret) -> Secret {
    let mut h = Sha256::new();
    h.update(b"topos_rs transfer token");
    h.update(secret);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    out
}

/// Parses a stored dialog's transfer token (`transfer_token`).
pub fn parse_transfer_token(s: &str) -> Option<(DialogId, Side, Secret)> {
    parse_lettered(s, b'c', b'd')
}

/// What a request to a side must present: that side's secret bound to the
/// Call-ID, From-tag and To-tag of the request (as the other side sends
/// them) and, where the operator asks for it (`bind_source`), the address
/// the other side was seen from (empty otherwise). Lengths are part of the
/// input, so no two inputs collide by moving bytes from one field to the
/// next.
pub fn binding(
    secret: &Secret,
    call_id: &[u8],
    from_tag: &[u8],
    to_tag: &[u8],
    source: &[u8],
) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(secret);
    for part in [call_id, from_tag, to_tag, source] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        Secrets {
            caller: [0x11; 16],
            callee: [0x22; 16],
        }
    }

    #[test]
    fn round_trip() {
        let id = DialogId([0xab; 16]);
        let t = id.token(Side::Callee, &secrets());
        assert_eq!(t.len(), 65);
        assert_eq!(t, format!("{}b{}", "ab".repeat(16), "22".repeat(16)));
        assert_eq!(parse_token(&t), Some((id, Side::Callee, [0x22; 16])));
        assert_eq!(
            parse_token(&id.token(Side::Caller, &secrets())),
            Some((id, Side::Caller, [0x11; 16]))
        );
    }

    #[test]
    fn the_two_sides_tokens_are_independent() {
        let id = DialogId([7; 16]);
        let a = id.token(Side::Caller, &secrets());
        let b = id.token(Side::Callee, &secrets());
        // Flipping the side letter does not give the other side's token.
        let flipped = format!("{}b{}", &a[..32], &a[33..]);
        assert_ne!(flipped, b);
        let (_, side, secret) = parse_token(&flipped).unwrap();
        assert_eq!(side, Side::Callee);
        assert_ne!(&secret, secrets().of(Side::Callee));
    }

    #[test]
    fn a_binding_changes_with_every_input() {
        let s = [1u8; 16];
        let b = binding(&s, b"call", b"ft", b"tt", b"");
        assert_ne!(b, binding(&[2u8; 16], b"call", b"ft", b"tt", b""));
        assert_ne!(b, binding(&s, b"other", b"ft", b"tt", b""));
        assert_ne!(b, binding(&s, b"call", b"tt", b"ft", b""));
        assert_ne!(b, binding(&s, b"callf", b"t", b"tt", b""));
        assert_ne!(b, binding(&s, b"call", b"ft", b"tt", b"10.0.0.1"));
        assert_eq!(b, binding(&s, b"call", b"ft", b"tt", b""));
    }

    #[test]
    fn a_transfer_token_is_no_dialog_token_and_does_not_give_the_secret() {
        let id = DialogId([9; 16]);
        let t = transfer_token(&id, Side::Callee, &secrets().callee);
        assert_eq!(parse_token(&t), None);
        let (pid, side, x) = parse_transfer_token(&t).unwrap();
        assert_eq!((pid, side), (id, Side::Callee));
        assert_eq!(x, transfer_secret(&secrets().callee));
        assert_ne!(&x, secrets().of(Side::Callee));
        let c = transfer_token(&id, Side::Caller, &secrets().caller);
        assert_eq!(parse_transfer_token(&c).unwrap().1, Side::Caller);
        assert_eq!(
            parse_transfer_token(&id.token(Side::Callee, &secrets())),
            None
        );
    }

    #[test]
    fn anything_else_is_not_a_token() {
        let good = DialogId([1; 16]).token(Side::Caller, &secrets());
        for bad in [
            "",
            &good[..33],
            &good[..64],
            &format!("{good}0"),
            &good.to_uppercase(),
            &format!("{}c{}", &good[..32], &good[33..]),
            &format!("g{}", &good[1..]),
            "alice",
        ] {
            assert_eq!(parse_token(bad), None, "{bad}");
        }
    }
}
