//! Sealing: AES-256-GCM-SIV (an AEAD whose security survives a repeated
//! nonce) under the sealing key, with a fresh random 96-bit nonce.
//!
//! Layout: `version | key fingerprint | clear part | nonce | ciphertext and
//! tag`. The clear part is for what the reader must know before it can
//! open (which associated data to build); it is authenticated with the
//! rest: a changed byte anywhere and nothing opens.

use super::keys::{Key, KeyRing, Purpose};
use aes_gcm_siv::aead::{Aead, Payload};
use aes_gcm_siv::Nonce;

/// Format version of sealed data.
pub const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
/// Bytes sealing adds to the plaintext and the clear part.
pub const OVERHEAD: usize = 2 + NONCE_LEN + 16;

fn associated(version: u8, fingerprint: u8, clear: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + clear.len() + aad.len());
    out.push(version);
    out.push(fingerprint);
    out.extend_from_slice(clear);
    out.extend_from_slice(aad);
    out
}

/// Seals `plaintext` with `key`; `clear` travels readable, `aad` not at
/// all (the reader rebuilds it). None only if the system has no
/// randomness for the nonce.
pub fn seal(key: &Key, clear: &[u8], plaintext: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut nonce).ok()?;
    let ad = associated(VERSION, key.fingerprint(), clear, aad);
    let body = key
        .cipher(Purpose::Seal)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &ad,
            },
        )
        .ok()?;
    let mut out = Vec::with_capacity(OVERHEAD + clear.len() + plaintext.len());
    out.push(VERSION);
    out.push(key.fingerprint());
    out.extend_from_slice(clear);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    Some(out)
}

/// Sealed bytes, split (nothing checked yet but the layout).
pub struct Sealed<'a> {
    fingerprint: u8,
    pub clear: &'a [u8],
    nonce: &'a [u8],
    body: &'a [u8],
}

impl<'a> Sealed<'a> {
    /// Splits `bytes` whose clear part is `clear_len` bytes; None if it is
    /// not laid out so (or of another version).
    pub fn parse(bytes: &'a [u8], clear_len: usize) -> Option<Sealed<'a>> {
        if bytes.len() < OVERHEAD + clear_len || bytes[0] != VERSION {
            return None;
        }
        let rest = &bytes[2..];
        let (clear, rest) = rest.split_at(clear_len);
        let (nonce, body) = rest.split_at(NONCE_LEN);
        Some(Sealed {
            fingerprint: bytes[1],
            clear,
            nonce,
            body,
        })
    }

    /// The plaintext, if one of `ring`'s keys sealed exactly these bytes
    /// with exactly this `aad`.
    pub fn open(&self, ring: &KeyRing, aad: &[u8]) -> Option<Vec<u8>> {
        let ad = associated(VERSION, self.fingerprint, self.clear, aad);
        ring.candidates(self.fingerprint).find_map(|key| {
            key.cipher(Purpose::Seal)
                .decrypt(
                    Nonce::from_slice(self.nonce),
                    Payload {
                        msg: self.body,
                        aad: &ad,
                    },
                )
                .ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(keys: &[[u8; 32]]) -> KeyRing {
        KeyRing::new(keys).unwrap()
    }

    #[test]
    fn what_is_sealed_opens_with_the_same_aad_only() {
        let r = ring(&[[1; 32]]);
        let s = seal(r.sealing(), b"\x05", b"target", b"call-1").unwrap();
        assert_eq!(s.len(), OVERHEAD + 1 + 6);
        let view = Sealed::parse(&s, 1).unwrap();
        assert_eq!(view.clear, b"\x05");
        assert_eq!(view.open(&r, b"call-1").unwrap(), b"target");
        assert_eq!(view.open(&r, b"call-2"), None);
        // A fresh nonce each time: the same input never seals the same.
        assert_ne!(s, seal(r.sealing(), b"\x05", b"target", b"call-1").unwrap());
    }

    #[test]
    fn any_changed_byte_and_nothing_opens() {
        let r = ring(&[[1; 32]]);
        let s = seal(r.sealing(), b"\x05", b"target", b"aad").unwrap();
        for i in 0..s.len() {
            let mut t = s.clone();
            t[i] ^= 0x01;
            let opened = Sealed::parse(&t, 1).and_then(|v| v.open(&r, b"aad"));
            assert_eq!(opened, None, "byte {i}");
        }
        assert!(Sealed::parse(&s[..s.len() - 1], 1)
            .and_then(|v| v.open(&r, b"aad"))
            .is_none());
        assert!(Sealed::parse(&s[..10], 1).is_none());
    }

    #[test]
    fn rotation_old_keys_open_the_first_seals() {
        let old = ring(&[[1; 32]]);
        let sealed_old = seal(old.sealing(), b"", b"x", b"").unwrap();
        let rotated = ring(&[[2; 32], [1; 32]]);
        let sealed_new = seal(rotated.sealing(), b"", b"y", b"").unwrap();
        let open = |r: &KeyRing, s: &[u8]| Sealed::parse(s, 0).and_then(|v| v.open(r, b""));
        assert_eq!(open(&rotated, &sealed_old).unwrap(), b"x");
        assert_eq!(open(&rotated, &sealed_new).unwrap(), b"y");
        // The old key alone cannot open what the new one sealed.
        assert_eq!(open(&old, &sealed_new), None);
        // Once the old key is dropped, what it sealed no longer opens.
        assert_eq!(open(&ring(&[[2; 32]]), &sealed_old), None);
    }
}
