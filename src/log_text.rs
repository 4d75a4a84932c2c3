//! Log text of bytes a peer sent: a log line must stay one line whatever
//! the peer put in a header (control characters become `?`).

/// `s` on one line, whole (the billing line keeps the full Call-ID).
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `s` on one line, at most 128 characters (refusal and error lines).
pub fn printable(s: &str) -> String {
    one_line(&s.chars().take(128).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_break_the_line() {
        assert_eq!(one_line("a\r\nb\x01c"), "a??b?c");
        let long = "x".repeat(300) + "\n";
        assert_eq!(one_line(&long).len(), 301);
        assert_eq!(printable(&long), "x".repeat(128));
        assert_eq!(printable("ok\u{7f}"), "ok?");
    }
}
