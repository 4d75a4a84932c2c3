//! Lower-case hex text of bytes, without `fmt` (dialog tokens and store
//! keys are built for every call).

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The hex digits of `bytes`, two per byte, most significant first.
pub fn hex_digits(bytes: &[u8]) -> impl Iterator<Item = u8> + '_ {
    bytes
        .iter()
        .flat_map(|&b| [DIGITS[(b >> 4) as usize], DIGITS[(b & 15) as usize]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_format_macro() {
        let v: u64 = 0x00c3_489f_f9ec_4866;
        let text: Vec<u8> = hex_digits(&v.to_be_bytes()).collect();
        assert_eq!(text, format!("{v:016x}").into_bytes());
        assert_eq!(hex_digits(&[0xff, 0x01]).collect::<Vec<_>>(), b"ff01");
    }
}
