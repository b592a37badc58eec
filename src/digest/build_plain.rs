//! The plain-text digest in the RFC 1153 layout, one `text/plain` message:
//!
//! ```text
//! NAME Digest    Mon, 03 Jun 2024    Volume V : Issue I      (masthead)
//!                                                            (blank)
//! <header text>                                              (blank after it)
//! Today's Topics:                                            (the preamble's
//!                                                             table of contents)
//!     1. Subject (Author)
//!                                                            (blank)
//! ---------------------------------------------------------------------- (70)
//!                                                            (blank)
//! Date: / From: / To: / Cc: / Subject: / Message-ID: / Keywords: / Summary:
//!                                                            (blank)
//! <body as text, leading and trailing blank lines removed>
//!                                                            (blank)
//! ------------------------------                             (30; then blank)
//!                                                            (... each post)
//! <footer text>, blank, 30 hyphens, blank                    (when there is a footer)
//! End of NAME Digest, Vol V, Issue I
//! **********************************                         (as long as the line above)
//! ```
//!
//! RFC 1153 keeps the header lines "as-is"; here they are unfolded and
//! decoded to UTF-8 text (the digest is a UTF-8 text/plain body), so
//! non-ASCII subjects and names read correctly. A free-text line that is
//! exactly 30 or 70 hyphens gets its first character replaced by a blank
//! (RFC 1153's rule) so no burster mistakes it for a separator.
//!
//! Trusts nothing in the posts: bodies are decoded by mail-parser, HTML is
//! reduced to text, and other parts become one-line notes.

use super::item::Item;
use super::text::{front_matter, Digest};
use crate::mime::header_block;
use crate::mime::lines::crlf;
use crate::mime::transfer::encode_text;

/// 70 hyphens: ends the preamble.
pub const SEP70: &str = "----------------------------------------------------------------------";
/// 30 hyphens: ends each enclosed message.
pub const SEP30: &str = "------------------------------";

/// Replaces the first character of separator-like lines with a blank.
/// Lines are cut at every line end the digest will write as one (a lone CR
/// included), so no separator appears after `crlf`.
fn escape_separators(text: &str) -> String {
    if !super::encode::contains(text.as_bytes(), SEP30.as_bytes()) {
        return text.to_string();
    }
    crate::mime::lines::lf(text)
        .split('\n')
        .map(|l| {
            if l == SEP30 || l == SEP70 {
                format!(" {}", &l[1..])
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Drops leading and trailing blank lines (RFC 1153).
fn trim_blank_lines(text: &str) -> &str {
    // the first non-blank character, then back to the start of its line
    let Some(first) = text.find(|c: char| !c.is_whitespace()) else {
        return "";
    };
    let start = text[..first].rfind('\n').map_or(0, |i| i + 1);
    // the last non-blank character, then on to the end of its line
    let last = text.rfind(|c: char| !c.is_whitespace()).unwrap_or(first);
    let end = text[last..]
        .find(['\r', '\n'])
        .map_or(text.len(), |i| last + i);
    &text[start..end]
}

/// The digest's body text (`\n` line ends).
pub fn body(d: &Digest<'_>, items: &[Item<'_>]) -> String {
    let mut s = escape_separators(&front_matter(d, items));
    s.push('\n');
    s.push_str(SEP70);
    s.push_str("\n\n");
    for it in items {
        for (name, value) in it.rfc1153_headers() {
            s.push_str(name);
            s.push_str(": ");
            s.push_str(&value);
            s.push('\n');
        }
        s.push('\n');
        let text = it.body_text();
        let text = trim_blank_lines(&text);
        if !text.is_empty() {
            s.push_str(&escape_separators(text));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(SEP30);
        s.push_str("\n\n");
    }
    let footer = trim_blank_lines(d.footer_text);
    if !footer.is_empty() {
        s.push_str(&escape_separators(footer));
        s.push_str("\n\n");
        s.push_str(SEP30);
        s.push_str("\n\n");
    }
    let end = format!("End of {}", d.title());
    s.push_str(&end);
    s.push('\n');
    s.push_str(&"*".repeat(end.chars().count()));
    s.push('\n');
    s
}

/// Builds the whole plain digest message.
pub fn build(d: &Digest<'_>, items: &[Item<'_>]) -> Vec<u8> {
    let enc = encode_text(&crlf(&body(d, items)));
    let mut out = Vec::with_capacity(enc.body.len() + 1024);
    for (name, value) in d.headers {
        let value = header_block::fold_str(value, name.len(), "\r\n");
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset={}\r\nContent-Transfer-Encoding: {}\r\n\r\n",
            enc.charset, enc.cte
        )
        .as_bytes(),
    );
    out.extend_from_slice(&enc.body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_are_escaped_and_blank_lines_trimmed() {
        assert_eq!(
            escape_separators(&format!("a\n{SEP30}\nb")),
            format!("a\n {}\nb", &SEP30[1..])
        );
        assert_eq!(escape_separators("-----"), "-----");
        // found by fuzzing: a lone CR ends a line too once `crlf` has run
        assert_eq!(
            crlf(&escape_separators(&format!("x\r{SEP30}\r\x0e"))),
            format!("x\r\n {}\r\n\x0e", &SEP30[1..])
        );
        assert_eq!(trim_blank_lines("\n\n  \nx\n\ny\n \n\n"), "x\n\ny");
        assert_eq!(trim_blank_lines("\n \n"), "");
        assert_eq!(trim_blank_lines("x"), "x");
    }
}
