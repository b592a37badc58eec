//! Line ends in mail text: finding a line's end, splitting text into lines,
//! rewriting every line end as one kind, and the SMTP line-length check.
//!
//! Trusts nothing: any bytes; a `\n` ends a line and a `\r` before it
//! belongs to the line end; only ASCII positions are ever sliced at.

/// Longest line SMTP carries (RFC 5321 §4.5.3.1.6, without the CRLF).
pub const MAX_LINE: usize = 998;

/// The end of the line starting at `pos`: (end of its content, just past
/// its line end); both are `b.len()` for a last line without a line end.
pub fn line_end(b: &[u8], pos: usize) -> (usize, usize) {
    match memchr::memchr(b'\n', &b[pos..]) {
        Some(i) => {
            let nl = pos + i;
            let content_end = if nl > pos && b[nl - 1] == b'\r' {
                nl - 1
            } else {
                nl
            };
            (content_end, nl + 1)
        }
        None => (b.len(), b.len()),
    }
}

/// The lines of `text` without their line ends, each with whether it had
/// one (only the last may not).
pub fn lines(text: &[u8]) -> Vec<(&[u8], bool)> {
    let mut v = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        let (content_end, next) = line_end(text, pos);
        v.push((&text[pos..content_end], next > content_end));
        pos = next;
    }
    v
}

/// `text` with every line end (`\n`, `\r\n` or a lone `\r`) written as `eol`.
pub fn with_eol(text: &str, eol: &str) -> String {
    let out = with_eol_bytes(text.as_bytes(), eol.as_bytes());
    // only ASCII line-end bytes were replaced by ASCII: still UTF-8
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// `b` with every line end (`\n`, `\r\n` or a lone `\r`) written as `eol`.
pub fn with_eol_bytes(b: &[u8], eol: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + b.len() / 32);
    let mut start = 0;
    while let Some(off) = memchr::memchr2(b'\r', b'\n', &b[start..]) {
        let i = start + off;
        out.extend_from_slice(&b[start..i]);
        out.extend_from_slice(eol);
        start = if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
            i + 2
        } else {
            i + 1
        };
    }
    out.extend_from_slice(&b[start..]);
    out
}

/// Any mix of `\n`, `\r\n` and lone `\r` line ends as CRLF.
pub fn crlf(text: &str) -> String {
    with_eol(text, "\r\n")
}

/// Any mix of `\n`, `\r\n` and lone `\r` line ends as `\n`.
pub fn lf(text: &str) -> String {
    with_eol(text, "\n")
}

/// Whether any line of `b` (without its line end) is longer than `max`.
pub fn has_long_line(b: &[u8], max: usize) -> bool {
    let mut pos = 0;
    while pos < b.len() {
        let (content_end, next) = line_end(b, pos);
        if content_end - pos > max {
            return true;
        }
        pos = next;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_and_lines() {
        assert_eq!(line_end(b"ab\r\ncd", 0), (2, 4));
        assert_eq!(line_end(b"ab\r\ncd", 4), (6, 6));
        assert_eq!(line_end(b"\n", 0), (0, 1));
        let l = lines(b"a\r\n\nb\rc\r");
        assert_eq!(
            l,
            vec![(&b"a"[..], true), (&b""[..], true), (&b"b\rc\r"[..], false)]
        );
        assert!(lines(b"").is_empty());
    }

    #[test]
    fn line_ends_normalise() {
        assert_eq!(crlf("a\nb\r\nc\rd"), "a\r\nb\r\nc\r\nd");
        assert_eq!(crlf("ü\r\r\n\n"), "ü\r\n\r\n\r\n");
        assert_eq!(lf("a\r\nb\rc\n"), "a\nb\nc\n");
        assert_eq!(lf(""), "");
    }

    #[test]
    fn long_lines_are_found() {
        assert!(!has_long_line(b"abc\r\nde", 3));
        assert!(has_long_line(b"abcd\r\nde", 3));
        assert!(has_long_line(b"ab\nabcd", 3));
        assert!(!has_long_line(b"", 0));
    }
}
