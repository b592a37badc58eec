//! Byte-exact access to a raw header block: where each field starts and
//! ends, a rewriter that removes, replaces and appends fields while every
//! other byte of the message passes through untouched, and the unfolding
//! and folding of field values. The one header-block parser of listd.
//!
//! Trusts nothing in the input: any byte sequence splits into fields and a
//! body. As in RFC 5322 and mail-parser, the header block ends at the first
//! line that is neither a field (`name:`) nor the continuation of one: at an
//! empty line, which is then skipped, or at a line of text, which is then
//! the body's first line (a rewrite puts the missing empty line before it).
//! A continuation line before any field is no field either: the body starts
//! there (mail-parser reads a blank-looking line there as the end of the
//! header block). Never panics.

use super::lines::line_end;
use std::ops::Range;

/// One field of a raw header block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Where the field starts (its name).
    pub start: usize,
    /// The name, without the colon; empty for a line that has no colon.
    pub name: Range<usize>,
    /// The value: after the colon up to (not including) the final line end.
    pub value: Range<usize>,
    /// Just past the field's final line end.
    pub end: usize,
}

/// A message split into its header fields and its body.
#[derive(Debug, Clone)]
pub struct Split {
    pub fields: Vec<Field>,
    /// Where the empty line that ends the header block starts (the body's
    /// first line when there is none; the input length when there is no body).
    pub header_end: usize,
    /// Where the body starts (past the empty line, if there is one).
    pub body_start: usize,
    /// The line end the message uses: `\r\n` unless its first line ends in a bare `\n`.
    pub eol: &'static str,
}

/// Splits `b` into header fields and body.
pub fn split(b: &[u8]) -> Split {
    let eol = match b.iter().position(|&c| c == b'\n') {
        Some(i) if i == 0 || b[i - 1] != b'\r' => "\n",
        _ => "\r\n",
    };
    let mut fields = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let (content_end, next) = line_end(b, pos);
        if content_end == pos {
            // the empty line ending the header block
            return Split {
                fields,
                header_end: pos,
                body_start: next,
                eol,
            };
        }
        let line = &b[pos..content_end];
        let colon = line
            .iter()
            .position(|&c| c == b':')
            .filter(|&i| i > 0 && !line[..i].iter().any(|c| *c == b' ' || *c == b'\t'));
        let (name, value_start) = match colon {
            Some(i) => (pos..pos + i, pos + i + 1),
            // a line of text: the body starts here, with no empty line
            None => {
                return Split {
                    fields,
                    header_end: pos,
                    body_start: pos,
                    eol,
                }
            }
        };
        // extend over continuation lines
        let mut value_end = content_end;
        let mut end = next;
        while end < b.len() && (b[end] == b' ' || b[end] == b'\t') {
            let (ce, nx) = line_end(b, end);
            value_end = ce;
            end = nx;
        }
        fields.push(Field {
            start: pos,
            name,
            value: value_start..value_end.max(value_start),
            end,
        });
        pos = end;
    }
    Split {
        fields,
        header_end: b.len(),
        body_start: b.len(),
        eol,
    }
}

impl Split {
    /// Indexes of the fields named `name` (case-insensitive).
    pub fn find<'a>(&'a self, b: &'a [u8], name: &'a str) -> impl Iterator<Item = usize> + 'a {
        self.fields
            .iter()
            .enumerate()
            .filter(move |(_, f)| b[f.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .map(|(i, _)| i)
    }

    /// The raw value of the first field named `name`.
    pub fn raw_value<'a>(&self, b: &'a [u8], name: &str) -> Option<&'a [u8]> {
        self.find(b, name)
            .next()
            .map(|i| &b[self.fields[i].value.clone()])
    }

    /// Every raw value of the fields named `name`, in order.
    pub fn raw_values<'a>(&'a self, b: &'a [u8], name: &'a str) -> Vec<&'a [u8]> {
        self.find(b, name)
            .map(|i| &b[self.fields[i].value.clone()])
            .collect()
    }
}

/// Unfolds a raw header value: line ends before whitespace are removed, and
/// leading/trailing whitespace trimmed.
pub fn unfold(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'\r' if v.get(i + 1) == Some(&b'\n') => i += 2,
            b'\n' => i += 1,
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out.trim_ascii().to_vec()
}

/// [`unfold`] as text (invalid UTF-8 replaced), for values that are compared.
pub fn unfold_text(v: &[u8]) -> String {
    String::from_utf8_lossy(&unfold(v)).into_owned()
}

/// A rewrite of a message's header block: fields removed, replaced or added.
/// The body and every untouched field are copied byte for byte.
#[derive(Debug, Default)]
pub struct Rewrite {
    /// Field index -> replacement bytes (complete lines, line ends included; empty: remove).
    replace: Vec<(usize, Vec<u8>)>,
    /// Complete lines appended at the end of the header block.
    append: Vec<u8>,
    /// Complete lines put at the top of the header block.
    prepend: Vec<u8>,
}

impl Rewrite {
    pub fn new() -> Rewrite {
        Rewrite::default()
    }

    /// Removes field `i`.
    pub fn remove(&mut self, i: usize) {
        self.replace.retain(|(j, _)| *j != i);
        self.replace.push((i, Vec::new()));
    }

    /// Removes every field named `name`.
    pub fn remove_all(&mut self, split: &Split, b: &[u8], name: &str) {
        let idx: Vec<usize> = split.find(b, name).collect();
        for i in idx {
            self.remove(i);
        }
    }

    /// Replaces field `i` with `name: value` (value already folded with `eol`).
    pub fn replace(&mut self, i: usize, name: &str, value: &[u8], eol: &str) {
        self.replace.retain(|(j, _)| *j != i);
        self.replace.push((i, field_line(name, value, eol)));
    }

    /// Appends `name: value` at the end of the header block.
    pub fn append(&mut self, name: &str, value: &[u8], eol: &str) {
        self.append.extend_from_slice(&field_line(name, value, eol));
    }

    /// Puts `name: value` at the top of the header block.
    pub fn prepend(&mut self, name: &str, value: &[u8], eol: &str) {
        self.prepend
            .extend_from_slice(&field_line(name, value, eol));
    }

    /// Whether anything changes.
    pub fn is_empty(&self) -> bool {
        self.replace.is_empty() && self.append.is_empty() && self.prepend.is_empty()
    }

    /// The new header block (fields only, without the empty line).
    pub fn header_bytes(&self, split: &Split, b: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(split.header_end + self.append.len() + 64);
        out.extend_from_slice(&self.prepend);
        for (i, f) in split.fields.iter().enumerate() {
            match self.replace.iter().find(|(j, _)| *j == i) {
                Some((_, r)) => out.extend_from_slice(r),
                None => {
                    out.extend_from_slice(&b[f.start..f.end]);
                    // a last field without a line end (no body at all) gets one
                    if f.end == b.len() && !b[f.start..f.end].ends_with(b"\n") {
                        out.extend_from_slice(split.eol.as_bytes());
                    }
                }
            }
        }
        out.extend_from_slice(&self.append);
        out
    }

    /// The whole message with `body` in place of the original body.
    pub fn apply_with_body(&self, split: &Split, b: &[u8], body: &[u8]) -> Vec<u8> {
        let mut out = self.header_bytes(split, b);
        out.reserve(body.len() + 2);
        out.extend_from_slice(split.eol.as_bytes());
        out.extend_from_slice(body);
        out
    }

    /// The whole message with its original body.
    pub fn apply(&self, split: &Split, b: &[u8]) -> Vec<u8> {
        self.apply_with_body(split, b, &b[split.body_start.min(b.len())..])
    }
}

/// `name: value` + line end.
fn field_line(name: &str, value: &[u8], eol: &str) -> Vec<u8> {
    let mut l = Vec::with_capacity(name.len() + value.len() + 4);
    l.extend_from_slice(name.as_bytes());
    l.extend_from_slice(b": ");
    l.extend_from_slice(value);
    l.extend_from_slice(eol.as_bytes());
    l
}

/// The column [`fold`] keeps lines within: RFC 2047's limit for lines with
/// encoded words, inside RFC 5322's 78.
pub const FOLD_WIDTH: usize = 76;

/// Folds a header value at spaces so lines stay within [`FOLD_WIDTH`]
/// columns (`name_len` counts the `Name` already on the first line). Words
/// longer than a line are left whole; unfolding gives back `value` exactly.
pub fn fold(value: &[u8], name_len: usize, eol: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 8);
    let mut col = name_len + 2;
    for (i, word) in value.split(|c| *c == b' ').enumerate() {
        if i > 0 {
            if col + 1 + word.len() > FOLD_WIDTH && col > 1 {
                out.extend_from_slice(eol.as_bytes());
                out.push(b' ');
                col = 1;
            } else {
                out.push(b' ');
                col += 1;
            }
        }
        out.extend_from_slice(word);
        col += word.len();
    }
    out
}

/// [`fold`] for text (folding only adds ASCII at spaces, so text stays text).
pub fn fold_str(value: &str, name_len: usize, eol: &str) -> String {
    String::from_utf8_lossy(&fold(value.as_bytes(), name_len, eol)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_fields_with_continuations_and_keeps_bytes() {
        let m = b"Received: from x\r\n\tby y\r\nSubject: hi\r\n\r\nbody\r\n";
        let s = split(m);
        assert_eq!(s.fields.len(), 2);
        assert_eq!(&m[s.fields[0].name.clone()], b"Received");
        assert_eq!(&m[s.fields[0].value.clone()], b" from x\r\n\tby y");
        assert_eq!(&m[s.fields[1].value.clone()], b" hi");
        assert_eq!(&m[s.body_start..], b"body\r\n");
        assert_eq!(s.eol, "\r\n");
        assert_eq!(Rewrite::new().apply(&s, m), m.to_vec());
    }

    #[test]
    fn a_line_that_is_no_field_starts_the_body_and_a_rewrite_adds_the_empty_line() {
        // a line without a colon inside the header block
        let m = b"Subject: hi\r\nX-Odd\r\nFrom: a@b\r\n\r\nbody\r\n";
        let s = split(m);
        assert_eq!(s.fields.len(), 1);
        assert_eq!(s.header_end, s.body_start);
        assert_eq!(&m[s.body_start..], b"X-Odd\r\nFrom: a@b\r\n\r\nbody\r\n");
        let mut r = Rewrite::new();
        r.append("List-Id", b"<dev.example.org>", s.eol);
        assert_eq!(
            r.apply(&s, m),
            b"Subject: hi\r\nList-Id: <dev.example.org>\r\n\r\nX-Odd\r\nFrom: a@b\r\n\r\nbody\r\n"
                .to_vec()
        );
        // a message whose first line is body text: no fields at all
        let m = b"hello there\r\nsecond: line\r\n";
        let s = split(m);
        assert!(s.fields.is_empty());
        assert_eq!((s.header_end, s.body_start), (0, 0));
        let mut r = Rewrite::new();
        r.prepend("X-Loop", b"dev@example.org", s.eol);
        assert_eq!(
            r.apply(&s, m),
            b"X-Loop: dev@example.org\r\n\r\nhello there\r\nsecond: line\r\n".to_vec()
        );
        // nor is a continuation line before any field (a blank-looking
        // line mail-parser ends the header block at; found by fuzzing)
        let s = split(b"\t");
        assert!(s.fields.is_empty());
        assert_eq!((s.header_end, s.body_start), (0, 0));
        let mut r = Rewrite::new();
        r.append("List-Id", b"<dev.example.org>", s.eol);
        let out = r.apply(&s, b"\t");
        let m = mail_parser::MessageParser::default().parse(&out).unwrap();
        assert!(m.header("List-Id").is_some(), "{out:?}");
        // a field name with a space is no field either
        let s = split(b"Subject: x\nnot a: field\n\nb");
        assert_eq!((s.fields.len(), s.eol), (1, "\n"));
    }

    #[test]
    fn lf_only_and_headers_without_body() {
        let m = b"Subject: a\nFrom: b";
        let s = split(m);
        assert_eq!(s.eol, "\n");
        assert_eq!(s.fields.len(), 2);
        assert_eq!(s.body_start, m.len());
        let mut r = Rewrite::new();
        r.append("X-Loop", b"l@d", s.eol);
        assert_eq!(
            r.apply(&s, m),
            b"Subject: a\nFrom: b\nX-Loop: l@d\n\n".to_vec()
        );
    }

    #[test]
    fn rewrite_removes_replaces_appends() {
        let m = b"A: 1\r\nB: 2\r\nb: 3\r\nC: 4\r\n\r\nx";
        let s = split(m);
        assert_eq!(s.raw_values(m, "b"), vec![&b" 2"[..], &b" 3"[..]]);
        let mut r = Rewrite::new();
        r.remove_all(&s, m, "B");
        r.replace(0, "A", b"one", s.eol);
        r.append("D", b"5", s.eol);
        r.prepend("Z", b"0", s.eol);
        assert_eq!(
            r.apply(&s, m),
            b"Z: 0\r\nA: one\r\nC: 4\r\nD: 5\r\n\r\nx".to_vec()
        );
    }

    #[test]
    fn unfold_and_fold() {
        // RFC 5322 §2.2.3: only the line ends go, the white space after them stays
        assert_eq!(unfold(b" a\r\n b\r\n\tc "), b"a b\tc".to_vec());
        assert_eq!(unfold(b"a\n  b\r\n\r\n c"), b"a  b c".to_vec());
        assert_eq!(unfold_text(b" \xffx\r\n y"), "\u{fffd}x y");
        let long = "word ".repeat(30);
        let f = String::from_utf8(fold(long.trim_end().as_bytes(), 7, "\r\n")).unwrap();
        assert!(f.split("\r\n").all(|l| l.len() <= FOLD_WIDTH), "{f}");
        // the first line counts `Subject: `; a word longer than a line stays whole
        assert!(
            f.split("\r\n").next().unwrap().len() <= FOLD_WIDTH - 9,
            "{f}"
        );
        let w = "y".repeat(90);
        assert_eq!(
            fold(format!("a {w} b").as_bytes(), 7, "\n"),
            format!("a\n {w}\n b").into_bytes()
        );
        assert_eq!(f.replace("\r\n ", " "), long.trim_end());
        assert_eq!(fold_str(long.trim_end(), 7, "\r\n"), f);
    }
}
