//! SMTP conformance over real TCP: every command with its reply code, and
//! arguments, parameters and special recipients. The seeds' §7 dialogues
//! are in `tests/seed_dialogues.rs`.

mod common;

use common::*;

/// Every command and its reply code, on one connection.
#[tokio::test]
async fn every_command_and_its_reply_code() {
    let env = site_named(
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
    let env = site_named(DOMAIN, &[("dev", "posting: anyone\n")], true);
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
