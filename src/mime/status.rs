//! Enhanced mail system status codes (RFC 3463, `5.1.1`): finding one in
//! a reply or a report's text, and the one a reply's basic code stands for.
//! Used by bounce reading and by the delivery reports listd writes.
//!
//! Trusts nothing: any text in, never panics.

/// The first enhanced status code (`[245].d{1,3}.d{1,3}`) in `text`.
pub fn find_status(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let digits = |mut i: usize| {
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() && i - s < 3 {
            i += 1;
        }
        (i > s).then_some(i)
    };
    for i in 0..b.len() {
        if !matches!(b[i], b'2' | b'4' | b'5') || b.get(i + 1) != Some(&b'.') {
            continue;
        }
        if i > 0 && (b[i - 1].is_ascii_digit() || b[i - 1] == b'.') {
            continue;
        }
        let Some(j) = digits(i + 2) else { continue };
        if b.get(j) != Some(&b'.') {
            continue;
        }
        let Some(k) = digits(j + 1) else { continue };
        let next_is_part = b.get(k).is_some_and(|c| c.is_ascii_digit())
            || (b.get(k) == Some(&b'.') && b.get(k + 1).is_some_and(|c| c.is_ascii_digit()));
        if next_is_part {
            continue;
        }
        // all ASCII: i..k are char boundaries
        return Some(text[i..k].to_string());
    }
    None
}

/// The status a failed recipient's report gives for the relay's `reply`:
/// its own enhanced code when it has one of the reply's class, else
/// `C.0.0` for basic class C (`4` or `5`; `5` when the reply has none).
pub fn of_reply(reply: &str) -> String {
    let class = match reply.trim_start().as_bytes().first() {
        Some(c @ (b'4' | b'5')) => *c as char,
        _ => '5',
    };
    match find_status(reply) {
        Some(s) if s.starts_with(class) => s,
        _ => format!("{class}.0.0"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_found_only_whole() {
        assert_eq!(find_status("550 5.1.1 <a@b.c>").as_deref(), Some("5.1.1"));
        assert_eq!(find_status("(#5.1.10)").as_deref(), Some("5.1.10"));
        assert_eq!(find_status("host 10.5.1.1 said no"), None);
        assert_eq!(find_status("version 5.1.1.2"), None);
        assert_eq!(find_status("ends 4.2.2."), Some("4.2.2".into()));
        assert_eq!(find_status("é5.1.1é").as_deref(), Some("5.1.1"));
        assert_eq!(find_status(""), None);
    }

    #[test]
    fn a_reply_gives_its_own_status_or_its_class() {
        assert_eq!(of_reply("550 5.1.1 no such user"), "5.1.1");
        assert_eq!(of_reply("554 transaction failed"), "5.0.0");
        assert_eq!(of_reply("452 4.2.2 mailbox full"), "4.2.2");
        assert_eq!(of_reply("550 4.2.2 mismatched"), "5.0.0");
        assert_eq!(of_reply("connection reset"), "5.0.0");
        assert_eq!(of_reply("é"), "5.0.0");
    }
}
