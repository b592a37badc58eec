//! Decoration and the parser agree on where the header block ends: a line
//! that is neither a field nor a continuation starts the body (RFC 5322, as
//! mail-parser reads it), and every path that adds fields (decoration, the
//! owners' forward) puts them above it with the empty line it lacked. The
//! receivers' parse is checked with mail-parser.

mod common;

use common::sink::Sink;
use common::*;
use mail_parser::MessageParser;
use std::time::Duration;

const D: &str = "lists.example.org";
const WAIT: Duration = Duration::from_secs(20);

/// The body text mail-parser finds in `raw`.
fn body_text(raw: &[u8]) -> String {
    let m = MessageParser::default().parse(raw).expect("parses");
    m.body_text(0).map(|b| b.into_owned()).unwrap_or_default()
}

#[tokio::test]
async fn fields_are_added_above_a_body_that_had_no_empty_line_before_it() {
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list(
            "dev",
            "owners: [owner@example.org]\nposting: anyone\nfooter: true\n",
        )
        .build();
    env.add_members("dev", &["member@example.org"]);
    let d = env.start().await;
    let list = format!("dev@{D}");
    // (what, the message, the body a receiver must see: from the first
    // line that is no field on, byte for byte, as RFC 5322 and Python's
    // email package read it)
    let cases: [(&str, String, &str); 2] = [
        (
            "a line without a colon in the header block",
            format!("From: a@example.org\r\nTo: {list}\r\nSubject: odd one\r\nX-Odd\r\nMessage-ID: <odd@example.org>\r\n\r\nreal body\r\n"),
            "X-Odd\r\nMessage-ID: <odd@example.org>\r\n\r\nreal body\r\n",
        ),
        (
            "a line of body text right after the first field",
            format!("To: {list}\r\nno header at all\r\nsecond: line\r\n"),
            "no header at all\r\nsecond: line\r\n",
        ),
    ];
    for (i, (what, raw, want)) in cases.iter().enumerate() {
        send(d.smtp_addr(), "a@example.org", &[&list], raw)
            .await
            .expect(250);
        assert!(
            wait_until(WAIT, || sink.delivered_count() > i).await,
            "{what}: not delivered"
        );
        let got = &sink.transactions()[i].data;
        let m = MessageParser::default().parse(got).unwrap();
        assert!(
            m.header("List-Id").is_some(),
            "{what}: List-Id is not a field:\n{}",
            String::from_utf8_lossy(got)
        );
        assert!(m.header("List-Unsubscribe").is_some(), "{what}");
        // the header block ends at an empty line, and the body follows it
        // byte for byte, then the footer
        let sep = memchr::memmem::find(got, b"\r\n\r\n").unwrap() + 4;
        assert!(
            got[sep..].starts_with(want.as_bytes()),
            "{what}: body changed:\n{}",
            String::from_utf8_lossy(got)
        );
        let text = body_text(got);
        assert!(
            !text.contains("List-Id"),
            "{what}: fields in the body: {text}"
        );
        assert!(
            text.contains("dev@lists.example.org mailing list"),
            "{what}: {text}"
        );
    }

    // the owners' forward of a message with no header block of its own
    send(
        d.smtp_addr(),
        "a@example.org",
        &[&format!("dev-owner@{D}")],
        "just text for the owner\r\nwith: a colon line\r\n",
    )
    .await
    .expect(250);
    assert!(wait_until(WAIT, || sink.delivered_count() > 2).await);
    let fwd = &sink.transactions()[2].data;
    let m = MessageParser::default().parse(fwd).unwrap();
    assert!(m.header("X-Loop").is_some());
    assert!(
        body_text(fwd).starts_with("just text for the owner"),
        "{}",
        body_text(fwd)
    );
    d.shutdown().await;
}
