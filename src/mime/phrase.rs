//! RFC 5322 phrases (display names, the List-Id description): a run of
//! atoms as it is, anything else as a quoted string, and on the wire
//! non-ASCII text as RFC 2047 encoded words.
//!
//! Trusts nothing in the text: quotes and backslashes are escaped, so the
//! result is always one phrase.

use super::encoded_word;

/// Whether `c` may stand in a phrase unquoted: atext, a space, or (RFC 6532)
/// any non-ASCII character.
fn bare(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~ ".contains(c) || !c.is_ascii()
}

/// `text` as a phrase of UTF-8 text: as it is when it is atoms and spaces,
/// else a quoted string.
pub fn quote(text: &str) -> String {
    if text.chars().all(bare) {
        text.to_string()
    } else {
        format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// `text` as a phrase on the wire (7-bit): [`encoded_word::encode`]d when
/// it is not ASCII (`used`: the width already on the line), else [`quote`]d.
pub fn encode(text: &str, used: usize) -> String {
    if text.is_ascii() {
        quote(text)
    } else {
        encoded_word::encode(text, used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoms_stay_specials_are_quoted_non_ascii_is_encoded_on_the_wire() {
        assert_eq!(quote("Dev talk"), "Dev talk");
        assert_eq!(quote("Jürgen Groß"), "Jürgen Groß");
        assert_eq!(quote("Smith, Ann"), "\"Smith, Ann\"");
        assert_eq!(quote("A. \"Q\" \\ B"), "\"A. \\\"Q\\\" \\\\ B\"");
        assert_eq!(encode("Smith, Ann", 0), "\"Smith, Ann\"");
        assert_eq!(encode("Jürgen", 9), encoded_word::encode("Jürgen", 9));
        // every form reads back as the text
        for t in ["Dev talk", "Smith, Ann", "A. \"Q\" \\ B", "Jürgen, Groß"] {
            let raw = format!("From: {} <a@example.org>\r\n\r\n", encode(t, 6));
            let p = mail_parser::MessageParser::default()
                .parse_headers(raw.as_bytes())
                .unwrap();
            let from = p.from().and_then(|a| a.first()).unwrap();
            assert_eq!(from.name(), Some(t), "{raw}");
        }
    }
}
