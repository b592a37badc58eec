//! The command robot's reading of a mail: Subject prefix stripping, line
//! classification, command extraction and HTML reduction, on text decoded
//! from arbitrary bytes and on whatever mail-parser makes of them.
//!
//! Invariants: nothing panics; `strip_subject_prefixes` returns a suffix
//! of its (trimmed) input and is idempotent; a classified line re-classifies to
//! itself; extracted lines are short, free of control characters, and the
//! Subject's command (if any) comes first.

use crate::robot::parse::{self, Stop, MAX_ECHO};
use mail_parser::MessageParser;

/// Bytes as the robot could see them: lossily decoded text (the Subject,
/// a body, HTML), and the same bytes as a whole mail.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_subject(&text);
    let (subject, body) = text.split_once('\n').unwrap_or((&text, ""));
    check_extract(Some(subject), Some(body), 1 + data.len() as u32 % 30);
    let _ = parse::html_to_text(&text);
    if let Some(msg) = MessageParser::default().parse(data) {
        let (subject, body) = parse::subject_and_body(&msg);
        check_extract(subject.as_deref(), body.as_deref(), 25);
    }
}

/// Prefix stripping: a suffix of the trimmed input, and a fixed point.
pub fn check_subject(subject: &str) {
    let once = parse::strip_subject_prefixes(subject);
    let trimmed = subject.trim_end();
    assert!(
        trimmed.ends_with(once),
        "not a suffix: {subject:?} -> {once:?}"
    );
    let twice = parse::strip_subject_prefixes(once);
    assert_eq!(once, twice, "not idempotent on {subject:?}");
}

/// Extraction, and each line re-read on its own.
pub fn check_extract(subject: Option<&str>, body: Option<&str>, max_bad: u32) {
    if let Some(s) = subject {
        check_subject(s);
    }
    let e = parse::extract(subject, body, max_bad);
    let mut bad = 0;
    for (i, l) in e.lines.iter().enumerate() {
        assert!(!l.text.is_empty());
        assert!(l.text.chars().count() <= MAX_ECHO + 1, "echo too long");
        assert!(!l.text.chars().any(char::is_control), "control char kept");
        assert!(!l.from_subject || i == 0, "Subject command not first");
        let again = parse::parse_line(&l.text).expect("a kept line is not blank");
        assert_eq!((again.verb, &again.args), (l.verb, &l.args), "{:?}", l.text);
        bad += u32::from(l.verb.is_none());
    }
    if let Stop::TooManyBadLines(n) = e.stop {
        assert_eq!(n, bad, "bad-line count");
        assert!(n >= max_bad.max(1));
    }
}
