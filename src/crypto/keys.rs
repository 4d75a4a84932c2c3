//! Keys: a key file holds one 256-bit key per line as 64 hex digits; the
//! first line seals, every line opens, so keys can be rotated (put the new
//! key first, drop the old one once nothing sealed with it is alive).
//! Each master key gives, through HKDF-SHA-256, one AEAD key per purpose,
//! and a one-byte fingerprint that tells which key sealed something.
//! A key never appears in a log line or an error text: `Debug` shows the
//! fingerprint only.

use aes_gcm_siv::aead::KeyInit;
use aes_gcm_siv::Aes256GcmSiv;
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use std::fmt;

/// Bytes of a master key.
pub const KEY_LEN: usize = 32;

/// What a key is used for: each purpose has a key of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Dialog tokens and the route sets Kamailio's Record-Route carries.
    Seal,
    /// The deterministic mask of the Call-ID the callee side sees.
    CallIdMask,
}

impl Purpose {
    fn info(self) -> &'static [u8] {
        match self {
            Purpose::Seal => b"topos_rs seal v1",
            Purpose::CallIdMask => b"topos_rs call-id mask v1",
        }
    }
}

/// One master key, ready to use: its fingerprint and one cipher per purpose.
#[derive(Clone)]
pub struct Key {
    fingerprint: u8,
    seal: Aes256GcmSiv,
    mask: Aes256GcmSiv,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(fingerprint {:02x})", self.fingerprint)
    }
}

fn derive(master: &[u8; KEY_LEN], purpose: Purpose) -> Aes256GcmSiv {
    let hk = Hkdf::<Sha256>::new(None, master);
    let mut okm = [0u8; KEY_LEN];
    // 32 bytes is far below HKDF-SHA-256's limit of 255 * 32.
    hk.expand(purpose.info(), &mut okm)
        .expect("HKDF output length within bounds");
    let cipher = Aes256GcmSiv::new_from_slice(&okm).expect("a 32-byte AES-256 key");
    okm.fill(0);
    cipher
}

impl Key {
    pub fn new(master: &[u8; KEY_LEN]) -> Key {
        // The fingerprint is a hash of the key, never the key itself; one
        // byte only says which of a few keys to try first.
        let fingerprint = Sha256::new()
            .chain_update(b"topos_rs key id")
            .chain_update(master)
            .finalize()[0];
        Key {
            fingerprint,
            seal: derive(master, Purpose::Seal),
            mask: derive(master, Purpose::CallIdMask),
        }
    }

    pub fn fingerprint(&self) -> u8 {
        self.fingerprint
    }

    pub fn cipher(&self, purpose: Purpose) -> &Aes256GcmSiv {
        match purpose {
            Purpose::Seal => &self.seal,
            Purpose::CallIdMask => &self.mask,
        }
    }
}

/// The keys in use: the first seals, all open.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<Key>,
}

impl KeyRing {
    /// A ring of `masters` (at least one).
    pub fn new(masters: &[[u8; KEY_LEN]]) -> Option<KeyRing> {
        if masters.is_empty() {
            return None;
        }
        Some(KeyRing {
            keys: masters.iter().map(Key::new).collect(),
        })
    }

    /// The key that seals.
    pub fn sealing(&self) -> &Key {
        &self.keys[0]
    }

    /// The keys that may have sealed something marked `fingerprint`, the
    /// sealing key first.
    pub fn candidates(&self, fingerprint: u8) -> impl Iterator<Item = &Key> {
        self.keys
            .iter()
            .filter(move |k| k.fingerprint == fingerprint)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Why a key file was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFileError {
    /// A line that is not 64 hex digits (1-based line number).
    BadLine { line: usize, why: &'static str },
    /// No key at all.
    Empty,
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFileError::BadLine { line, why } => write!(f, "line {line}: {why}"),
            KeyFileError::Empty => write!(f, "no key in the file"),
        }
    }
}

impl std::error::Error for KeyFileError {}

/// The keys of a key file's text: one per line, 64 hex digits (either
/// case), surrounding blanks ignored; blank lines and `#` comments are
/// skipped. The error names the line, never its content.
pub fn parse_key_file(text: &str) -> Result<Vec<[u8; KEY_LEN]>, KeyFileError> {
    let mut keys = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why| KeyFileError::BadLine { line: i + 1, why };
        if line.len() != 2 * KEY_LEN {
            return Err(bad("a key is 64 hex digits (256 bits)"));
        }
        let mut key = [0u8; KEY_LEN];
        for (k, pair) in key.iter_mut().zip(line.as_bytes().chunks(2)) {
            let digit = |c: u8| (c as char).to_digit(16);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(h), Some(l)) => *k = (h * 16 + l) as u8,
                _ => return Err(bad("not a hex digit")),
            }
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(KeyFileError::Empty);
    }
    Ok(keys)
}

/// A key file's text for `key` (a new key file made by the module).
pub fn key_file_text(key: &[u8; KEY_LEN]) -> String {
    let mut out: String = crate::hex::hex_digits(key).map(char::from).collect();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn a_key_file_in_order_with_comments() {
        let text = format!(
            "# rotated 12-07\n{}\n\n  {K1}  \n",
            K1.to_uppercase().replace("00", "ff")
        );
        let keys = parse_key_file(&text).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1][..4], [0, 1, 2, 3]);
        assert_eq!(keys[0][0], 0xff);
        assert_eq!(
            parse_key_file(&key_file_text(&keys[1])).unwrap(),
            vec![keys[1]]
        );
    }

    #[test]
    fn a_bad_line_is_named_and_never_shown() {
        for (text, line) in [
            (format!("{K1}\n{}\n", &K1[..63]), 2),
            (format!("{}g\n", &K1[..63]), 1),
            (format!("#\n\n{K1}0\n"), 3),
        ] {
            let e = parse_key_file(&text).unwrap_err();
            assert!(
                matches!(e, KeyFileError::BadLine { line: l, .. } if l == line),
                "{e}"
            );
            assert!(!e.to_string().contains(&K1[..16]));
        }
        assert_eq!(parse_key_file("# none\n\n"), Err(KeyFileError::Empty));
    }

    #[test]
    fn the_first_key_seals_and_debug_shows_no_key() {
        let a = [7u8; KEY_LEN];
        let b = [9u8; KEY_LEN];
        let ring = KeyRing::new(&[a, b]).unwrap();
        assert_eq!(ring.sealing().fingerprint(), Key::new(&a).fingerprint());
        let shown = format!("{ring:?}");
        assert!(
            !shown.contains("07, 07") && !shown.contains("0707"),
            "{shown}"
        );
        assert!(KeyRing::new(&[]).is_none());
        let fp = Key::new(&b).fingerprint();
        assert!(ring.candidates(fp).any(|k| k.fingerprint() == fp));
    }
}
