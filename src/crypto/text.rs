//! The text form of sealed bytes (tokens, the route parameter, masked
//! Call-IDs): base64url without padding, with `.` where base64url has `C`.
//!
//! Why not plain base64url: its alphabet can spell `CSeq`, and a token that
//! does (about one call in 10,000 carries one) breaks peers that find the
//! CSeq by a plain substring search of the whole message, as sipp does
//! (`strstr(msg, "CSeq")` to match replies to its transactions): the call
//! fails on a reply that is right. Without `C`, no token can spell it;
//! `.` is a URI `unreserved` and a Call-ID `word` character, so the text
//! still goes anywhere base64url went. Header names are otherwise only
//! looked for with their colon or after a line break, which tokens cannot
//! hold.
//!
//! Reading accepts base64url as well, so tokens issued before this form
//! (a call that spans an upgrade) still open: both spellings name the
//! same sealed bytes, which are authenticated whatever their text.

use base64::alphabet::Alphabet;
use base64::engine::general_purpose::{GeneralPurpose, NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;

/// The 64 characters, in value order (base64url's, `.` for `C`).
pub const CHARACTERS: &str = "AB.DEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const ALPHABET: Alphabet = match Alphabet::new(CHARACTERS) {
    Ok(a) => a,
    Err(_) => panic!("the token alphabet is 64 distinct printable characters"),
};

const ENGINE: GeneralPurpose = GeneralPurpose::new(&ALPHABET, NO_PAD);

/// The text of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    ENGINE.encode(bytes)
}

/// Appends the text of `bytes` to `out`.
pub fn encode_into(bytes: &[u8], out: &mut String) {
    ENGINE.encode_string(bytes, out)
}

/// The bytes of a text `encode` made (or plain base64url); None for
/// anything else, including a text that mixes the two spellings.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    ENGINE
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(text))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_text_spells_cseq_and_every_text_reads_back() {
        // Bytes whose base64url is "CSeq…": the case sipp stumbled on.
        let bytes = URL_SAFE_NO_PAD.decode("xCSeqSAB").unwrap();
        assert!(URL_SAFE_NO_PAD.encode(&bytes).contains("CSeq"));
        let text = encode(&bytes);
        assert_eq!(text, "x.SeqSAB");
        assert_eq!(decode(&text).unwrap(), bytes);
        // Every byte value at every position: no `C`, and a round trip.
        for shift in 0..3 {
            let bytes: Vec<u8> = (0..=255u8).cycle().skip(shift).take(300).collect();
            let text = encode(&bytes);
            assert!(!text.contains('C'), "{text}");
            assert!(text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')));
            assert_eq!(decode(&text).unwrap(), bytes);
        }
    }

    #[test]
    fn base64url_of_earlier_tokens_still_reads() {
        let bytes = b"\x08\x20\x92 any sealed bytes".to_vec();
        let legacy = URL_SAFE_NO_PAD.encode(&bytes);
        assert!(legacy.contains('C'), "{legacy}");
        assert_eq!(decode(&legacy).unwrap(), bytes);
        // Both spellings in one text is neither form.
        assert_eq!(decode("CC.."), None);
        assert_eq!(decode("a b"), None);
    }
}
