//! The Call-ID the callee side sees with `mask_callid`, made without any
//! store: a deterministic AES-256-GCM-SIV encryption of the caller's
//! Call-ID (fixed nonce: the same Call-ID always gives the same mask, which
//! is what a Call-ID must do; equal Call-IDs are the only thing it shows),
//! in the tokens' text (`crypto::text`) behind a fixed prefix and the key's fingerprint, so the
//! reverse needs nothing but the key ring.

use super::keys::{Key, KeyRing, Purpose};
use super::text;
use aes_gcm_siv::aead::{Aead, Payload};
use aes_gcm_siv::Nonce;

/// Every masked Call-ID starts so (a Call-ID is a `word`: these are word
/// characters).
pub const PREFIX: &str = "tps1";
const NONCE: [u8; 12] = [0; 12];
const AAD: &[u8] = b"call-id";

/// The masked form of `call_id` under `key`.
pub fn mask(key: &Key, call_id: &[u8]) -> String {
    let body = key
        .cipher(Purpose::CallIdMask)
        .encrypt(
            Nonce::from_slice(&NONCE),
            Payload {
                msg: call_id,
                aad: AAD,
            },
        )
        .expect("AES-GCM-SIV encryption of a Call-ID");
    let mut bytes = Vec::with_capacity(1 + body.len());
    bytes.push(key.fingerprint());
    bytes.extend_from_slice(&body);
    let mut out = String::with_capacity(PREFIX.len() + 4 * bytes.len().div_ceil(3));
    out.push_str(PREFIX);
    text::encode_into(&bytes, &mut out);
    out
}

/// The caller's Call-ID behind a masked one, if one of `ring`'s keys made
/// `masked`; None for anything else (a Call-ID this module never masked).
pub fn unmask(ring: &KeyRing, masked: &str) -> Option<Vec<u8>> {
    let bytes = text::decode(masked.strip_prefix(PREFIX)?)?;
    let (&fingerprint, body) = bytes.split_first()?;
    ring.candidates(fingerprint).find_map(|key| {
        key.cipher(Purpose::CallIdMask)
            .decrypt(
                Nonce::from_slice(&NONCE),
                Payload {
                    msg: body,
                    aad: AAD,
                },
            )
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mask_is_stable_reversible_and_names_nothing() {
        let ring = KeyRing::new(&[[3; 32]]).unwrap();
        let m = mask(ring.sealing(), b"c12345abcd@192.168.1.100");
        assert_eq!(m, mask(ring.sealing(), b"c12345abcd@192.168.1.100"));
        assert!(m.starts_with(PREFIX) && !m.contains("192.168"), "{m}");
        assert!(m
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')));
        assert_eq!(unmask(&ring, &m).unwrap(), b"c12345abcd@192.168.1.100");
        assert_ne!(m, mask(ring.sealing(), b"c12345abcd@192.168.1.101"));
    }

    #[test]
    fn only_masks_of_a_known_key_unmask() {
        let ring = KeyRing::new(&[[3; 32]]).unwrap();
        let other = KeyRing::new(&[[4; 32]]).unwrap();
        let m = mask(other.sealing(), b"abc");
        assert_eq!(unmask(&ring, &m), None);
        assert_eq!(unmask(&ring, "abc"), None);
        assert_eq!(unmask(&ring, "tps1!!"), None);
        let mut tampered = mask(ring.sealing(), b"abc");
        tampered.push('A');
        assert_eq!(unmask(&ring, &tampered), None);
        // A rotated ring still unmasks what the old key masked.
        let rotated = KeyRing::new(&[[5; 32], [3; 32]]).unwrap();
        assert_eq!(
            unmask(&rotated, &mask(ring.sealing(), b"abc")).unwrap(),
            b"abc"
        );
    }
}
