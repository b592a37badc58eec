//! Conformance over real TCP: the seeds' §7 dialogues T1, T2, T3 and T5,
//! corrected as §8 says (angle brackets, multi-line reply ordering, one
//! hostname throughout), and every command with its reply code.

mod common;

use common::*;
use mail_parser::MessageParser;

/// A daemon whose domain and hostname are `domain`, with these lists.
fn site(domain: &str, lists: &[(&str, &str)], trusted: bool) -> TestEnv {
    let mut b = TestEnv::builder()
        .global("domain", domain)
        .set("smtp", "hostname", domain);
    if !trusted {
        b = b.set("smtp", "trusted_networks", "[]");
    }
    for (name, yaml) in lists {
        b = b.list(name, yaml);
    }
    b.build()
}

/// T1 (001:L82-96): HELO, MAIL FROM: <…> with a space after the colon, a
/// body with no headers at all. The 250 follows the commit.
#[tokio::test]
async fn t1_basic_dialogue() {
    let env = site("hamburger.edu", &[("bob", "posting: anyone\n")], true);
    let d = env.start().await;
    let mut c = SmtpClient::connect(d.smtp_addr()).await;
    c.greeting.expect(220);
    assert!(c.greeting.text().starts_with("hamburger.edu "));
    let r = c.cmd("HELO crepes.fr").await;
    r.expect(250);
    assert!(
        r.text().starts_with("hamburger.edu Hello crepes.fr"),
        "{r:?}"
    );
    c.cmd("MAIL FROM: <alice@crepes.fr>").await.expect(250);
    c.cmd("RCPT TO: <bob@hamburger.edu>").await.expect(250);
    c.cmd("DATA").await.expect(354);
    c.send_raw(b"Do you like ketchup?\r\nHow about pickles?\r\n.\r\n")
        .await;
    c.read_reply().await.expect(250);
    let r = c.cmd("QUIT").await;
    r.expect(221);
    assert!(r.text().contains("hamburger.edu closing connection"));
    assert!(c.closed().await);
    d.shutdown().await;

    let msgs = env.inbound_messages();
    assert_eq!(msgs.len(), 1);
    let text = String::from_utf8(msgs[0].1.clone()).unwrap();
    let (trace, body) = text.split_at(text.find("Do you").unwrap());
    assert!(
        trace.starts_with(
            "Received: from crepes.fr ([127.0.0.1])\r\n\tby hamburger.edu (listd) with SMTP id "
        ),
        "{trace}"
    );
    assert!(trace.contains("\tfor <bob@hamburger.edu>; "));
    assert_eq!(body, "Do you like ketchup?\r\nHow about pickles?\r\n");
    // a headerless body still parses (as a message whose only header is ours)
    let p = MessageParser::default().parse(&msgs[0].1).unwrap();
    assert!(p.header_raw("Received").is_some());
}

/// T2 (003:L13-31): the 250 after DATA carries the queue id, the same id as
/// the stored Received: header; 220 and 221 name the same host (§8 D6).
#[tokio::test]
async fn t2_manual_session_with_queue_id() {
    let env = site(
        "crab.wrotethebook.com",
        &[("tyler", "posting: anyone\n")],
        true,
    );
    let d = env.start().await;
    let mut c = SmtpClient::connect(d.smtp_addr()).await;
    c.greeting.expect(220);
    let host = c.greeting.text().split(' ').next().unwrap().to_string();
    assert_eq!(host, "crab.wrotethebook.com");
    let r = c.cmd("HELO rodent.wrotethebook.com").await;
    r.expect(250);
    assert!(r
        .text()
        .contains("Hello rodent.wrotethebook.com [127.0.0.1]"));
    let r = c.cmd("MAIL FROM:<daniel@rodent.wrotethebook.com>").await;
    r.expect(250);
    assert!(r.text().contains("<daniel@rodent.wrotethebook.com>"));
    let r = c.cmd("RCPT TO:<tyler@crab.wrotethebook.com>").await;
    r.expect(250);
    assert!(r.text().contains("<tyler@crab.wrotethebook.com>"));
    c.cmd("DATA").await.expect(354);
    c.send_raw(b"Hi Tyler!\r\n.\r\n").await;
    let r = c.read_reply().await;
    r.expect(250);
    let queue_id = r.text().rsplit(' ').next().unwrap().to_string();
    assert_eq!(queue_id.len(), 16, "{r:?}");
    let r = c.cmd("QUIT").await;
    r.expect(221);
    assert!(r.text().contains(&format!("{host} closing connection")));
    d.shutdown().await;
    let msgs = env.inbound_messages();
    let text = String::from_utf8_lossy(&msgs[0].1);
    assert!(
        text.contains(&format!("with SMTP id {queue_id}\r\n")),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\nHi Tyler!\r\n") || text.ends_with("Hi Tyler!\r\n"));
}

/// T3 (003:L37-57): HELP as a well-formed 214 multi-line reply, HELP RSET,
/// VRFY, and EXPN of a mailing list as one `250-` line per member with the
/// last line `250 ` (the seed's mis-ordered reply, §8 D5, corrected).
#[tokio::test]
async fn t3_help_vrfy_expn() {
    let env = site(
        "wrotethebook.com",
        &[
            ("admin", "expn: trusted\n"),
            ("jane-list", "expn: nobody\n"),
        ],
        true,
    );
    env.add_members(
        "admin",
        &[
            "sara@horseshoe.wrotethebook.com",
            "david@brazil.wrotethebook.com",
            "tyler@wrotethebook.com",
        ],
    );
    let d = env.start().await;
    let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await;

    let r = c.cmd("HELP").await;
    r.expect(214);
    assert!(r.lines.len() > 3);
    assert!(r.text().contains("HELO") && r.text().contains("EXPN"));
    assert!(r.lines.last().unwrap().ends_with("End of HELP info"));
    let r = c.cmd("HELP RSET").await;
    r.expect(214);
    assert!(r.lines[0].ends_with("RSET"));

    // trusted client: VRFY tells the truth about our addresses
    let r = c.cmd("VRFY <admin>").await;
    r.expect(250);
    assert!(r.text().contains("<admin@wrotethebook.com>"));
    c.cmd("VRFY <jane>").await.expect(550);

    // EXPN: the client's reader rejects any reply whose last line is not `250 `
    c.send_line("EXPN <admin>").await;
    let r = c.read_reply().await;
    r.expect(250);
    assert_eq!(
        r.lines,
        [
            "2.1.5 <david@brazil.wrotethebook.com>",
            "2.1.5 <sara@horseshoe.wrotethebook.com>",
            "2.1.5 <tyler@wrotethebook.com>",
        ]
    );
    let r = c.cmd("EXPN jane-list").await;
    r.expect(550);
    assert_eq!(r.status(), Some("5.7.1"));
    assert!(!r.text().contains('@'), "a refusal leaks nothing: {r:?}");
    c.quit().await;

    // the raw bytes of the multi-line EXPN reply
    let mut raw = tokio::net::TcpStream::connect(d.smtp_addr()).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw.write_all(b"EHLO x\r\nEXPN admin\r\nQUIT\r\n")
        .await
        .unwrap();
    let mut all = Vec::new();
    raw.read_to_end(&mut all).await.unwrap();
    let all = String::from_utf8(all).unwrap();
    assert!(all.contains(
        "250-2.1.5 <david@brazil.wrotethebook.com>\r\n250-2.1.5 <sara@horseshoe.wrotethebook.com>\r\n250 2.1.5 <tyler@wrotethebook.com>\r\n221 "
    ), "{all}");
    d.shutdown().await;
}

/// T5 (002:L238-252): EHLO gets a correctly ordered multi-line 250 whose
/// last line is `250 HELP`, with the extensions listd implements.
#[tokio::test]
async fn t5_ehlo_sample() {
    let env = site("esmtpdomain.com", &[], true);
    let d = env.start().await;
    let mut c = SmtpClient::connect(d.smtp_addr()).await;
    c.greeting.expect(220);
    let r = c.ehlo("host.sendingdomain.com").await;
    r.expect(250);
    assert!(r.lines[0].starts_with("esmtpdomain.com Hello host.sendingdomain.com"));
    assert_eq!(
        &r.lines[1..],
        [
            "PIPELINING",
            "SIZE 10485760",
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
            "HELP"
        ]
    );
    let r = c.cmd("QUIT").await;
    r.expect(221);
    assert!(r.text().starts_with("2.0.0 esmtpdomain.com"));
    d.shutdown().await;
}

/// Every command and its reply code, on one connection.
#[tokio::test]
async fn every_command_and_its_reply_code() {
    let env = site(
        DOMAIN,
        &[("dev", "expn: anyone\n"), ("quiet", "expn: nobody\n")],
        false,
    );
    env.add_members("dev", &["ann@example.org"]);
    let d = env.start().await;
    let mut c = SmtpClient::connect(d.smtp_addr()).await;
    c.greeting.expect(220);
    let steps: &[(&str, u16, Option<&str>)] = &[
        ("MAIL FROM:<a@example.org>", 503, Some("5.5.1")), // before EHLO
        ("EHLO", 501, Some("5.5.4")),
        ("HELO client.example", 250, None),
        ("EHLO client.example", 250, None),
        ("NOOP", 250, Some("2.0.0")),
        ("NOOP anything", 250, Some("2.0.0")),
        ("HELP", 214, Some("2.0.0")),
        ("HELP MAIL", 214, Some("2.0.0")),
        ("HELP FOO", 504, Some("5.5.1")),
        ("VRFY <dev@lists.example.org>", 252, Some("2.5.0")),
        ("VRFY", 501, Some("5.5.4")),
        ("EXPN dev", 250, Some("2.1.5")),
        ("EXPN dev@lists.example.org", 250, Some("2.1.5")),
        ("EXPN quiet", 550, Some("5.7.1")),
        ("EXPN nosuch", 550, Some("5.1.1")),
        ("SEND FROM:<a@example.org>", 502, Some("5.5.1")),
        ("SOML FROM:<a@example.org>", 502, Some("5.5.1")),
        ("SAML FROM:<a@example.org>", 502, Some("5.5.1")),
        ("TURN", 502, Some("5.5.1")),
        ("XYZZY", 500, Some("5.5.1")),
        ("NOOP", 250, Some("2.0.0")), // resets the errors-in-a-row count
        ("RCPT TO:<dev@lists.example.org>", 503, Some("5.5.1")),
        ("DATA", 503, Some("5.5.1")),
        ("MAIL FROM:alice@example.org", 501, Some("5.5.4")),
        ("MAIL FROM:<> SIZE=99999999", 552, Some("5.3.4")),
        ("MAIL FROM:<> BODY=8BITMIME SIZE=100", 250, Some("2.1.0")),
        ("MAIL FROM:<b@example.org>", 503, Some("5.5.1")),
        ("RCPT TO:<somebody@elsewhere.org>", 550, Some("5.7.1")),
        ("RCPT TO:<nobody@lists.example.org>", 550, Some("5.1.1")),
        ("RCPT TO:<dev@lists.example.org>", 250, Some("2.1.5")),
        ("RSET", 250, Some("2.0.0")),
        ("DATA", 503, Some("5.5.1")),
        ("MAIL FROM:<a@example.org>", 250, Some("2.1.0")),
        ("RCPT TO:<dev@lists.example.org>", 250, Some("2.1.5")),
        ("DATA extra", 501, Some("5.5.4")),
        ("DATA", 354, None),
    ];
    for (line, code, status) in steps {
        let r = c.cmd(line).await;
        assert_eq!(r.code, *code, "{line}: {r:?}");
        assert_eq!(r.status(), *status, "{line}: {r:?}");
    }
    c.send_raw(b"Subject: x\r\n\r\nhi\r\n.\r\n").await;
    let r = c.read_reply().await;
    r.expect(250);
    assert_eq!(r.status(), Some("2.0.0"));
    let r = c.cmd("QUIT").await;
    r.expect(221);
    assert_eq!(r.status(), Some("2.0.0"));
    assert!(c.closed().await);
    d.shutdown().await;
    assert_eq!(env.inbound_messages().len(), 1);
}

/// The rest of the reply codes: arguments where none belong (501), LHLO on
/// SMTP (500), the empty and the bare `<Postmaster>` recipient, unsupported
/// MAIL/RCPT parameters (555), a non-ASCII address without SMTPUTF8 (553),
/// and a HELO name with a trailing dot (T7).
#[tokio::test]
async fn arguments_parameters_and_special_recipients() {
    let env = site(DOMAIN, &[("dev", "posting: anyone\n")], true);
    let d = env.start().await;
    let mut c = SmtpClient::connect(d.smtp_addr()).await;
    c.greeting.expect(220);
    let steps: &[(&str, u16, Option<&str>)] = &[
        ("LHLO client.example", 500, Some("5.5.1")),
        ("HELO smtp.sendersite.org.", 250, None),
        ("EHLO smtp.sendersite.org.", 250, None),
        ("RSET now", 501, Some("5.5.4")),
        ("QUIT now", 501, Some("5.5.4")),
        ("NOOP", 250, Some("2.0.0")),
        ("MAIL FROM:<a@example.org> RET=FULL", 555, Some("5.5.4")),
        ("MAIL FROM:<jos\u{e9}@example.org>", 553, Some("5.6.7")),
        ("MAIL FROM:<a@example.org> BODY=7BIT", 250, Some("2.1.0")),
        ("RCPT TO:<>", 501, Some("5.1.3")),
        (
            "RCPT TO:<dev@lists.example.org> NOTIFY=NEVER",
            555,
            Some("5.5.4"),
        ),
        ("RCPT TO:<Postmaster>", 250, Some("2.1.5")),
        ("RCPT TO:<POSTMASTER@LISTS.EXAMPLE.ORG>", 250, Some("2.1.5")),
        ("RSET", 250, Some("2.0.0")),
        (
            "MAIL FROM:<jos\u{e9}@example.org> SMTPUTF8",
            250,
            Some("2.1.0"),
        ),
        ("RCPT TO:<dev@lists.example.org>", 250, Some("2.1.5")),
        ("RSET", 250, Some("2.0.0")),
    ];
    for (line, code, status) in steps {
        let r = c.cmd(line).await;
        assert_eq!(r.code, *code, "{line}: {r:?}");
        assert_eq!(r.status(), *status, "{line}: {r:?}");
    }
    c.quit().await;
    d.shutdown().await;
}
