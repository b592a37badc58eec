//! Content-Transfer-Encoding helpers for text listd adds to a message:
//! quoted-printable encoding, base64 decoding of an existing part, base64
//! encoding wrapped at 76 columns, and conversion of text to a part's charset.
//!
//! Trusts nothing in encoded input: a base64 body that does not decode is an
//! error the caller handles (it then leaves the part alone).

use base64::Engine;

/// Quoted-printable (RFC 2045 §6.7) for text: line ends become `eol` hard
/// breaks, `=`, control and 8-bit bytes are escaped, trailing white space is
/// escaped, and lines are soft-broken before 76 columns.
pub fn qp_encode(text: &[u8], eol: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 8 + 8);
    let lines = split_lines(text);
    for (i, (line, has_eol)) in lines.iter().enumerate() {
        let mut col = 0;
        for (j, &c) in line.iter().enumerate() {
            let last = j + 1 == line.len();
            let plain = (c == b' ' || c == b'\t') && !last || (33..=126).contains(&c) && c != b'=';
            let piece_len = if plain { 1 } else { 3 };
            if col + piece_len > 75 {
                out.extend_from_slice(b"=");
                out.extend_from_slice(eol.as_bytes());
                col = 0;
            }
            if plain {
                out.push(c);
            } else {
                out.extend_from_slice(format!("={c:02X}").as_bytes());
            }
            col += piece_len;
        }
        if *has_eol || i + 1 < lines.len() {
            out.extend_from_slice(eol.as_bytes());
        }
    }
    out
}

/// Splits text into lines at `\n` (dropping a `\r` before it); the flag says
/// whether the line had a line end.
fn split_lines(text: &[u8]) -> Vec<(&[u8], bool)> {
    let mut v = Vec::new();
    let mut start = 0;
    for (i, &c) in text.iter().enumerate() {
        if c == b'\n' {
            let end = if i > start && text[i - 1] == b'\r' {
                i - 1
            } else {
                i
            };
            v.push((&text[start..end], true));
            start = i + 1;
        }
    }
    if start < text.len() {
        v.push((&text[start..], false));
    }
    v
}

/// Decodes a base64 body, ignoring line ends and other white space.
pub fn base64_decode(body: &[u8]) -> Result<Vec<u8>, String> {
    let clean: Vec<u8> = body
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(&clean)
        .map_err(|e| format!("base64 body does not decode: {e}"))
}

/// Encodes base64 in lines of 76 characters, each ended by `eol`.
pub fn base64_encode_lines(data: &[u8], eol: &str) -> Vec<u8> {
    let enc = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = Vec::with_capacity(enc.len() + enc.len() / 76 * eol.len() + eol.len());
    for chunk in enc.as_bytes().chunks(76) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(eol.as_bytes());
    }
    out
}

/// Converts UTF-8 `text` to the bytes of `charset`, if listd can do so
/// exactly: UTF-8 always, ASCII text into any ASCII-compatible charset, and
/// Latin-1 text into ISO-8859-1 (and windows-1252 outside 0x80-0x9F).
/// `None` when the text cannot be written in that charset.
pub fn to_charset(text: &str, charset: &str) -> Option<Vec<u8>> {
    let cs = charset.trim().trim_matches('"').to_ascii_lowercase();
    if cs == "utf-8" || cs == "utf8" {
        return Some(text.as_bytes().to_vec());
    }
    let ascii_incompatible = [
        "utf-16", "utf-32", "ucs-2", "ucs-4", "utf-7", "iso-2022", "hz-gb",
    ]
    .iter()
    .any(|p| cs.starts_with(p));
    if ascii_incompatible {
        return None;
    }
    if text.is_ascii() {
        return Some(text.as_bytes().to_vec());
    }
    let latin1 = matches!(
        cs.as_str(),
        "iso-8859-1" | "iso8859-1" | "latin1" | "latin-1" | "l1" | "windows-1252" | "cp1252"
    );
    if latin1 {
        return text
            .chars()
            .map(|c| match c as u32 {
                n @ 0..=0x7f | n @ 0xa0..=0xff => Some(n as u8),
                _ => None,
            })
            .collect();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qp_decode(s: &[u8]) -> Vec<u8> {
        let m = format!(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}",
            String::from_utf8_lossy(s)
        );
        let p = mail_parser::MessageParser::default()
            .parse(m.as_bytes())
            .unwrap();
        p.body_text(0).unwrap().as_bytes().to_vec()
    }

    #[test]
    fn qp_round_trips_and_keeps_lines_short() {
        let text = "-- \r\ncafé = crème\r\n".to_string() + &"x".repeat(200) + "\r\nend ";
        let enc = qp_encode(text.as_bytes(), "\r\n");
        let s = String::from_utf8(enc.clone()).unwrap();
        assert!(
            s.starts_with("--=20\r\ncaf=C3=A9 =3D cr=C3=A8me\r\n"),
            "{s}"
        );
        assert!(s.split("\r\n").all(|l| l.len() <= 76), "{s}");
        assert!(s.ends_with("end=20"), "{s}");
        assert_eq!(qp_decode(&enc), text.as_bytes());
    }

    #[test]
    fn base64_round_trip_and_errors() {
        let data = vec![7u8; 200];
        let enc = base64_encode_lines(&data, "\r\n");
        assert!(enc.split(|c| *c == b'\n').all(|l| l.len() <= 77));
        assert_eq!(base64_decode(&enc).unwrap(), data);
        assert!(base64_decode(b"@@@not base64").is_err());
    }

    #[test]
    fn charsets() {
        assert_eq!(to_charset("é", "UTF-8").unwrap(), "é".as_bytes());
        assert_eq!(to_charset("é", "iso-8859-1").unwrap(), vec![0xe9]);
        assert_eq!(to_charset("abc", "koi8-r").unwrap(), b"abc");
        assert!(to_charset("é", "us-ascii").is_none());
        assert!(to_charset("€", "iso-8859-1").is_none());
        assert!(to_charset("abc", "utf-16").is_none());
        assert!(to_charset("abc", "ISO-2022-JP").is_none());
    }
}
