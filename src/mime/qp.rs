//! Quoted-printable (RFC 2045 §6.7) for text: the one encoder listd uses
//! for every text it writes or re-encodes (footers, parts edited by
//! pre-approval, long-lined digest parts). Decoding is mail-parser's.
//!
//! Trusts nothing in the input: any bytes encode, and the output is 7-bit
//! with every line at most 76 characters.

use super::lines;

/// The longest encoded line, the soft break's `=` included (RFC 2045 §6.7 rule 5).
pub const MAX_ENCODED_LINE: usize = 76;

/// Encodes text: each line end (`\n` or `\r\n`) becomes an `eol` hard
/// break; `=`, control and 8-bit bytes and white space at a line's end are
/// escaped; lines are soft-broken (`=` + `eol`) so none is longer than
/// [`MAX_ENCODED_LINE`].
pub fn encode(text: &[u8], eol: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 8 + 8);
    let lines = lines::lines(text);
    for (i, (line, has_eol)) in lines.iter().enumerate() {
        let mut col = 0;
        for (j, &c) in line.iter().enumerate() {
            let last = j + 1 == line.len();
            let plain = (c == b' ' || c == b'\t') && !last || (33..=126).contains(&c) && c != b'=';
            let piece_len = if plain { 1 } else { 3 };
            // keep room for the soft break's `=`
            if col + piece_len > MAX_ENCODED_LINE - 1 {
                out.push(b'=');
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

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(enc: &[u8]) -> Vec<u8> {
        mail_parser::decoders::quoted_printable::quoted_printable_decode(enc).unwrap()
    }

    #[test]
    fn round_trips_with_soft_breaks_at_76() {
        let text = "-- \r\ncafé = crème\r\n".to_string() + &"x".repeat(200) + "\r\nend ";
        let enc = encode(text.as_bytes(), "\r\n");
        let s = String::from_utf8(enc.clone()).unwrap();
        assert!(
            s.starts_with("--=20\r\ncaf=C3=A9 =3D cr=C3=A8me\r\n"),
            "{s}"
        );
        // 200 x: two full soft-broken lines of 75 + `=`, then the rest
        let x: Vec<&str> = s.split("\r\n").skip(2).take(3).collect();
        assert_eq!(x[0], format!("{}=", "x".repeat(75)));
        assert_eq!(x[1], format!("{}=", "x".repeat(75)));
        assert_eq!(x[2], "x".repeat(50));
        assert!(s.split("\r\n").all(|l| l.len() <= MAX_ENCODED_LINE), "{s}");
        assert!(s.ends_with("end=20"), "{s}");
        assert_eq!(decode(&enc), text.as_bytes());
        // an escape is never cut by a soft break
        let e = encode("é".repeat(40).as_bytes(), "\n");
        let s = String::from_utf8(e.clone()).unwrap();
        for l in s.split('\n') {
            assert!(l.len() <= MAX_ENCODED_LINE, "{s}");
            let body = l.strip_suffix('=').unwrap_or(l).as_bytes();
            for (i, _) in body.iter().enumerate().filter(|(_, c)| **c == b'=') {
                let hex = body.get(i + 1..i + 3).unwrap_or_default();
                assert!(
                    hex.len() == 2 && hex.iter().all(u8::is_ascii_hexdigit),
                    "{l}"
                );
            }
        }
        assert_eq!(decode(&e), "é".repeat(40).as_bytes());
    }

    #[test]
    fn escapes_equals_trailing_space_and_lone_cr() {
        assert_eq!(encode(b"a=b \r\nc\t", "\r\n"), b"a=3Db=20\r\nc=09".to_vec());
        // a bare `\n` is a line end too; a `\r` not before `\n` is data
        assert_eq!(encode(b"a\nb\rc\r", "\r\n"), b"a\r\nb=0Dc=0D".to_vec());
        assert_eq!(encode(b"x\n", "\n"), b"x\n".to_vec());
        assert!(encode(b"", "\r\n").is_empty());
    }
}
