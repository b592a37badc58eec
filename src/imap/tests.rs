//! Session and message tests that need no socket, against a real store:
//! LOGINDISABLED off loopback, sections and body structures of a MIME
//! message.

use super::message;
use super::{ImapPeer, ImapSession};
use imap_codec::imap_types::fetch::{Part, Section};
use std::num::NonZeroU32;

fn run(s: &mut ImapSession, db: &crate::reader::ArchiveDb, line: &str) -> String {
    s.receive(format!("{line}\r\n").as_bytes());
    s.advance(db, 1_763_780_000);
    String::from_utf8(s.take_output()).unwrap()
}

#[test]
fn off_loopback_login_is_disabled_but_anonymous_works() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::reader::sample::fixture(&dir.path().join("site"));
    let peer = ImapPeer {
        ip: Some("203.0.113.9".parse().unwrap()),
        login_ok: false,
        starttls: false,
    };
    let mut s = ImapSession::new("h", peer);
    let greeting = String::from_utf8(s.take_output()).unwrap();
    assert!(greeting.contains("LOGINDISABLED"), "{greeting}");
    let r = run(&mut s, &db, "a1 CAPABILITY");
    assert!(
        r.contains("* CAPABILITY IMAP4REV1") && r.contains("LOGINDISABLED"),
        "{r}"
    );
    let pw = crate::reader::sample::PASSWORD;
    let r = run(&mut s, &db, &format!("a2 LOGIN ann@example.org {pw}"));
    assert!(
        r.starts_with("a2 NO LOGIN with a password is disabled here"),
        "{r}"
    );
    let r = run(&mut s, &db, "a3 LOGIN anonymous x");
    assert!(
        r.starts_with("a3 OK LOGIN completed: 1 list archive"),
        "{r}"
    );
    let r = run(&mut s, &db, "a4 SELECT dev");
    assert!(r.starts_with("a4 NO no such mailbox"), "{r}");
    // on loopback the same password works
    let mut t = ImapSession::new(
        "h",
        ImapPeer {
            login_ok: true,
            ..peer
        },
    );
    assert!(!String::from_utf8(t.take_output())
        .unwrap()
        .contains("LOGINDISABLED"));
    let r = run(&mut t, &db, &format!("b1 LOGIN ann@example.org {pw}"));
    assert!(
        r.starts_with("b1 OK LOGIN completed: 2 list archives"),
        "{r}"
    );
}

#[test]
fn the_autologout_timer_says_bye() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::reader::sample::fixture(&dir.path().join("site"));
    let mut s = ImapSession::new(
        "h",
        ImapPeer {
            ip: None,
            login_ok: true,
            starttls: false,
        },
    );
    s.take_output();
    s.timeout();
    assert!(s.is_closed());
    assert_eq!(
        String::from_utf8(s.take_output()).unwrap(),
        "* BYE autologout: idle for too long\r\n"
    );
    assert_eq!(run(&mut s, &db, "a1 NOOP"), "");
}

const MIME: &str = "From: Ann <ann@example.org>\r\nTo: dev@lists.example.org\r\nSubject: =?utf-8?q?Caf=C3=A9?=\r\nMessage-ID: <m@x>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\nworld\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\nFrom: Bob <bob@example.net>\r\nSubject: inner\r\n\r\ninner body\r\n--b1\r\nContent-Type: application/pdf; name=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--b1--\r\n";

fn part(p: &[u32]) -> Part {
    let v: Vec<NonZeroU32> = p.iter().map(|n| NonZeroU32::new(*n).unwrap()).collect();
    Part(v.try_into().unwrap())
}

#[test]
fn sections_of_a_mime_message() {
    let raw = MIME.as_bytes();
    let sec = |s: Section<'_>| String::from_utf8(message::section(raw, Some(&s))).unwrap();
    assert_eq!(message::section(raw, None), raw);
    let header = sec(Section::Header(None));
    assert!(
        header.starts_with("From: Ann") && header.ends_with("\"b1\"\r\n\r\n"),
        "{header:?}"
    );
    assert!(sec(Section::Text(None)).starts_with("preamble\r\n--b1"));
    assert_eq!(sec(Section::Part(part(&[1]))), "hello\r\nworld");
    assert_eq!(
        sec(Section::Mime(part(&[1]))),
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    );
    assert_eq!(sec(Section::Part(part(&[3]))), "JVBERg==");
    assert_eq!(
        sec(Section::Header(Some(part(&[2])))),
        "From: Bob <bob@example.net>\r\nSubject: inner\r\n\r\n"
    );
    assert!(sec(Section::Text(Some(part(&[2])))).starts_with("inner body"));
    assert!(sec(Section::Part(part(&[2, 1]))).starts_with("inner body"));
    assert_eq!(sec(Section::Part(part(&[4]))), "", "no such part");
    assert_eq!(
        sec(Section::Part(part(&[1, 1]))),
        "",
        "a leaf has no sub-part"
    );
    assert_eq!(
        sec(Section::Header(Some(part(&[1])))),
        "",
        "not a message/rfc822 part"
    );
    let fields = vec!["SUBJECT".try_into().unwrap(), "to".try_into().unwrap()];
    assert_eq!(
        sec(Section::HeaderFields(
            None,
            fields.clone().try_into().unwrap()
        )),
        "To: dev@lists.example.org\r\nSubject: =?utf-8?q?Caf=C3=A9?=\r\n\r\n"
    );
    let not = sec(Section::HeaderFieldsNot(None, fields.try_into().unwrap()));
    assert!(
        not.starts_with("From: Ann") && !not.contains("Subject") && !not.contains("To:"),
        "{not}"
    );
    // a plain message: part 1 is its body
    let plain = b"Subject: x\r\n\r\nbody\r\n";
    assert_eq!(
        message::section(plain, Some(&Section::Part(part(&[1])))),
        b"body\r\n"
    );
}

#[test]
fn envelope_and_body_structure_of_a_mime_message() {
    use imap_codec::imap_types::body::{BodyStructure, SpecificFields};
    let m = message::parse(MIME.as_bytes()).unwrap();
    let env = message::envelope(&m);
    assert_eq!(
        env.subject.into_option().unwrap().as_ref(),
        b"=?utf-8?q?Caf=C3=A9?="
    );
    assert_eq!(
        env.from[0].host.clone().into_option().unwrap().as_ref(),
        b"example.org"
    );
    assert_eq!(env.sender, env.from, "Sender defaults to From");
    let BodyStructure::Multi {
        bodies, subtype, ..
    } = message::body_structure(&m)
    else {
        panic!("multipart");
    };
    assert_eq!(subtype.as_ref(), b"MIXED");
    let kinds: Vec<&str> = bodies
        .as_ref()
        .iter()
        .map(|b| match b {
            BodyStructure::Single { body, .. } => match &body.specific {
                SpecificFields::Text {
                    number_of_lines, ..
                } => {
                    assert_eq!(*number_of_lines, 1);
                    "text"
                }
                SpecificFields::Message { .. } => "message",
                SpecificFields::Basic { .. } => "basic",
            },
            BodyStructure::Multi { .. } => "multi",
        })
        .collect();
    assert_eq!(kinds, ["text", "message", "basic"]);
    // no parse at all still gives a text/plain structure
    let odd = message::parse(b"no header line at all").unwrap();
    assert!(matches!(
        message::body_structure(&odd),
        BodyStructure::Single { .. }
    ));
}

#[test]
fn starttls_is_offered_before_login_and_drops_what_was_pipelined() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::reader::sample::fixture(&dir.path().join("site"));
    let peer = ImapPeer {
        ip: Some("203.0.113.9".parse().unwrap()),
        login_ok: false,
        starttls: true,
    };
    let mut s = ImapSession::new("h", peer);
    let greeting = String::from_utf8(s.take_output()).unwrap();
    assert!(
        greeting.contains("STARTTLS") && greeting.contains("LOGINDISABLED"),
        "{greeting}"
    );
    // a command pipelined behind STARTTLS is never run
    let r = run(&mut s, &db, "a1 STARTTLS\r\na2 LOGIN anonymous x");
    assert_eq!(r, "a1 OK Begin TLS negotiation now\r\n");
    assert!(s.wants_tls());
    assert_eq!(
        run(&mut s, &db, "a3 NOOP"),
        "",
        "nothing is read before TLS"
    );
    let mut t = ImapSession::after_starttls("h", peer);
    assert_eq!(t.take_output(), b"", "no second greeting");
    let r = run(&mut t, &db, "b1 CAPABILITY");
    assert!(
        !r.contains("STARTTLS") && !r.contains("LOGINDISABLED"),
        "{r}"
    );
    let r = run(
        &mut t,
        &db,
        &format!(
            "b2 LOGIN ann@example.org {}",
            crate::reader::sample::PASSWORD
        ),
    );
    assert!(r.starts_with("b2 OK LOGIN completed"), "{r}");
    assert_eq!(
        run(&mut t, &db, "b3 STARTTLS"),
        "b3 BAD STARTTLS is for before LOGIN\r\n"
    );
    // without a certificate there is no STARTTLS
    let mut u = ImapSession::new(
        "h",
        ImapPeer {
            starttls: false,
            ..peer
        },
    );
    assert_eq!(
        run(&mut u, &db, "c1 STARTTLS").lines().last().unwrap(),
        "c1 BAD STARTTLS is not offered here"
    );
}

#[test]
fn refusals_of_the_protocol_flows() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::reader::sample::fixture(&dir.path().join("site"));
    let peer = ImapPeer {
        ip: None,
        login_ok: true,
        starttls: false,
    };
    let mut s = ImapSession::new("h", peer);
    s.take_output();
    assert_eq!(run(&mut s, &db, "a1 IDLE"), "a1 BAD log in first\r\n");
    assert_eq!(
        run(&mut s, &db, "a2 AUTHENTICATE PLAIN"),
        "a2 NO no SASL mechanism here: use LOGIN\r\n"
    );
    // a literal over the limit is refused without being read
    let r = run(&mut s, &db, "a3 LOGIN {999999}");
    assert_eq!(
        r,
        "a3 BAD literal too long: nothing here takes more than 64 KiB\r\n"
    );
    let r = run(&mut s, &db, "a4 NOOP");
    assert_eq!(r, "a4 OK NOOP completed\r\n", "the session goes on");
    let long = format!("a5 LOGIN {} x", "u".repeat(70_000));
    assert_eq!(run(&mut s, &db, &long), "a5 BAD command too long\r\n");
}

#[test]
fn a_month_file_that_is_gone_is_an_answer_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::reader::sample::fixture(&dir.path().join("site"));
    let mut s = ImapSession::new(
        "h",
        ImapPeer {
            ip: None,
            login_ok: true,
            starttls: false,
        },
    );
    s.take_output();
    run(&mut s, &db, "a1 LOGIN anonymous x");
    run(&mut s, &db, "a2 SELECT pub");
    std::fs::remove_dir_all(crate::archive::root(&db.config().data_dir).join("pub")).unwrap();
    let r = run(&mut s, &db, "a3 FETCH 1 BODY[]");
    assert_eq!(r, "a3 NO 1 message(s) cannot be read just now\r\n");
    let r = run(&mut s, &db, "a4 FETCH 1:* (UID FLAGS)");
    assert!(
        r.ends_with("a4 OK FETCH completed\r\n"),
        "flags need no file: {r}"
    );
    let r = run(&mut s, &db, "a5 SEARCH LARGER 1");
    assert_eq!(
        r,
        "a5 NO the archive cannot be searched just now, try later\r\n"
    );
}
