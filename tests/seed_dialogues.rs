//! The seeds' conformance dialogues, T1 to T17 of
//! `seeds-requirements.md` §7, each as a test over real TCP against the
//! daemon (or, for T6, the daemon's relay client against a server that
//! speaks the seed's malformed reply), with §8's corrections applied where
//! the seed text is broken: angle brackets restored (D7, D10), multi-line
//! replies ordered (D5, D6), one hostname throughout (D6), MIME boundaries
//! with two dashes (D1) and numeric zones (D2). The single-dash T10 text is
//! also sent as the seed wrote it, and must pass through unharmed.
//!
//! T15 (POP3) and T16 (IMAP) run against the archive's POP3 and IMAP
//! listeners.

mod common;
mod reader_support;

use common::sink::{Sink, Transaction};
use common::*;
use listd::daemon::DaemonHandle;
use mail_parser::{MessageParser, MimeHeaders, PartType};
use reader_support::{imap_posts, pop3_posts, tagged, uids, Archive, LineClient, ANN};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const READER: &str = "reader@example.org";

/// A daemon with list `dev` (`yaml`) and one member, relaying to a sink
/// that `tweak` sets up first.
struct ListSite {
    sink: Sink,
    env: TestEnv,
    daemon: DaemonHandle,
}

async fn list_site(yaml: &str, tweak: impl FnOnce(&Sink)) -> ListSite {
    let sink = Sink::start();
    tweak(&sink);
    // the seeds' messages are addressed to their own people, not the list
    let yaml = format!("require_explicit_destination: false\n{yaml}");
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list("dev", &yaml)
        .build();
    env.add_members("dev", &[READER]);
    let daemon = env.start().await;
    ListSite { sink, env, daemon }
}

impl ListSite {
    /// Posts `message` from ann@ over SMTP (EHLO) and returns the member's copy.
    async fn post(&self, message: &str) -> Transaction {
        let mut c = SmtpClient::connect_ehlo(self.daemon.smtp_addr()).await;
        c.send_mail("ann@example.org", &[&format!("dev@{DOMAIN}")], message)
            .await
            .expect(250);
        c.quit().await;
        let sink = &self.sink;
        assert!(
            wait_until(WAIT, || sink
                .transactions()
                .iter()
                .any(|t| t.rcpts.iter().any(|r| r == READER)))
            .await,
            "the post reached the member"
        );
        sink.transactions()
            .into_iter()
            .find(|t| t.rcpts.iter().any(|r| r == READER))
            .unwrap()
    }

    /// The list's archive, every month's mbox as one text.
    fn archive(&self) -> String {
        let dir = self.env.config().data_dir.join("archive/dev");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned())
            .collect()
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// T1 (001:L82-96): HELO, MAIL FROM: <…> with a space after the colon, a
/// body with no headers at all. The 250 follows the commit.
#[tokio::test]
async fn t1_basic_dialogue() {
    let env = site_named("hamburger.edu", &[("bob", "posting: anyone\n")], true);
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
    let env = site_named(
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
    let env = site_named(
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

/// T4 (002:L109-133): a body submitted with no header at all is stored
/// with the fields the seed's stored message shows: an mbox `From ` line,
/// `Date:` and `Message-ID:` (listd adds the last two when it distributes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t4_headerless_message_is_stored_with_date_and_message_id() {
    let s = list_site("posting: anyone\n", |_| {}).await;
    let got = s.post("Here goes the message.\r\n").await;
    let m = MessageParser::default().parse(&got.data).unwrap();
    assert!(m.date().is_some(), "Date: added");
    let id = m.message_id().expect("Message-ID: added").to_string();
    assert!(got.data.ends_with(b"\r\n\r\nHere goes the message.\r\n"));
    let mbox = s.archive();
    assert!(mbox.starts_with("From "), "an mbox From_ line: {mbox}");
    assert!(mbox.contains(&format!("<{id}>")), "{mbox}");
    assert!(mbox.contains("\nDate: "), "{mbox}");
    assert!(mbox.contains("\n\nHere goes the message.\n"), "{mbox}");
    s.daemon.shutdown().await;
}

/// T5 (002:L238-252): EHLO gets a correctly ordered multi-line 250 whose
/// last line is `250 HELP`, with the extensions listd implements.
#[tokio::test]
async fn t5_ehlo_sample() {
    let env = site_named("esmtpdomain.com", &[], true);
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

/// The seed's T6 EHLO reply (003:L221-239), mis-ordered as printed: the
/// final-line form `250 HELP` comes before six more `250-` lines (§8 D6).
const T6_EHLO: &str = "250-crab.wrotethebook.com Hello localhost [127.0.0.1], pleased to meet you\r\n\
250-EXPN\r\n250 HELP\r\n250-8BITMIME\r\n250-SIZE\r\n250-DSN\r\n250-ETRN\r\n250-VERB\r\n250-ONEX\r\n250-XUSR\r\n";

/// T6 (003:L221-239): listd's relay client meets the seed's malformed EHLO
/// reply. It stops at the first `250 ` line, so it believes only EXPN and
/// HELP (no 8BITMIME: the 8-bit post goes as quoted-printable), reads the
/// stray lines as part of the next reply, and the post is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t6_malformed_ehlo_reply_from_a_relay_is_survived() {
    let s = list_site("posting: anyone\n", |sink| sink.answer_ehlo_raw(T6_EHLO)).await;
    let got = s
        .post("From: ann@example.org\r\nSubject: t6\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße\r\n")
        .await;
    assert!(
        !got.mail_params.contains("8BITMIME"),
        "8BITMIME came after the final line: {:?}",
        got.mail_params
    );
    assert!(got.data.iter().all(|b| b.is_ascii()), "sent as 7-bit");
    let m = MessageParser::default().parse(&got.data).unwrap();
    assert_eq!(m.body_text(0).unwrap().trim_end(), "Grüße");
    s.daemon.shutdown().await;
}

/// T7 (000:L657¶124-134, reconstructed): HELO and EHLO with the seed's
/// trailing dot on the domain are accepted; EHLO's reply is a well-formed
/// multi-line 250 that offers SIZE and PIPELINING and ends with `250 `.
#[tokio::test]
async fn t7_helo_and_ehlo_exchange() {
    let env = site_named("mail.receiversplace.com", &[], true);
    let d = env.start().await;
    let mut c = SmtpClient::connect(d.smtp_addr()).await;
    c.greeting.expect(220);
    let r = c.cmd("HELO smtp.sendersite.org.").await;
    r.expect(250);
    assert!(
        r.text()
            .starts_with("mail.receiversplace.com Hello smtp.sendersite.org"),
        "{r:?}"
    );
    c.quit().await;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut raw = tokio::net::TcpStream::connect(d.smtp_addr()).await.unwrap();
    raw.write_all(b"EHLO smtp.sendersite.org\r\nQUIT\r\n")
        .await
        .unwrap();
    let mut all = Vec::new();
    raw.read_to_end(&mut all).await.unwrap();
    let all = String::from_utf8(all).unwrap();
    let lines: Vec<&str> = all.split("\r\n").collect();
    let ehlo: Vec<&str> = lines[1..]
        .iter()
        .copied()
        .take_while(|l| l.starts_with("250"))
        .collect();
    assert!(ehlo[0].starts_with("250-mail.receiversplace.com Hello smtp.sendersite.org"));
    let (last, rest) = ehlo.split_last().unwrap();
    assert!(last.starts_with("250 "), "{all}");
    assert!(rest.iter().all(|l| l.starts_with("250-")), "{all}");
    assert!(ehlo.iter().any(|l| l[4..].starts_with("SIZE")), "{all}");
    assert!(ehlo.iter().any(|l| &l[4..] == "PIPELINING"), "{all}");
    d.shutdown().await;
}

/// T8 (Example 77-1, reconstructed with the zone `-0800`, §8 D2): the mail
/// transaction's replies, and the message reaches the list's member with
/// its header fields and body lines as Joe wrote them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t8_mail_transaction() {
    let s = list_site("posting: anyone\n", |_| {}).await;
    let mut c = SmtpClient::connect_ehlo(s.daemon.smtp_addr()).await;
    let r = c.cmd("MAIL FROM:<joe@someplace.org>").await;
    r.expect(250);
    assert!(r.text().contains("<joe@someplace.org>"), "{r:?}");
    let r = c.cmd(&format!("RCPT TO:<dev@{DOMAIN}>")).await;
    r.expect(250);
    c.cmd("DATA").await.expect(354);
    let body = "From: Joe Sender <joe@someplace.org>\r\n\
To: Jane Receiver <jane@somewhereelse.com>\r\n\
Date: Sun, 1 Jun 2003 14:17:31 -0800\r\n\
Subject: Lunch tomorrow\r\n\
\r\n\
Hey Jane,\r\n\
\r\n\
It's my turn for lunch tomorrow. I was thinking we could\r\n\
[rest of message]\r\n\
Hope you are free. Send me a reply back when you get a chance.\r\n\
Joe.\r\n";
    c.send_raw(body.as_bytes()).await;
    c.send_raw(b".\r\n").await;
    c.read_reply().await.expect(250);
    c.quit().await;
    let sink = &s.sink;
    assert!(wait_until(WAIT, || sink.delivered_count() >= 1).await);
    let got = &sink.transactions()[0];
    assert_eq!(got.rcpts, [READER]);
    assert!(contains(
        &got.data,
        "Date: Sun, 1 Jun 2003 14:17:31 -0800\r\n"
    ));
    assert!(contains(
        &got.data,
        "From: Joe Sender <joe@someplace.org>\r\n"
    ));
    assert!(got
        .data
        .ends_with(&body.as_bytes()[body.find("\r\n\r\n").unwrap() + 4..]));
    let m = MessageParser::default().parse(&got.data).unwrap();
    assert_eq!(m.date().unwrap().to_rfc3339(), "2003-06-01T14:17:31-08:00");
    s.daemon.shutdown().await;
}

/// T9 (002:L287-297, with the stripped addresses restored, §8 D7): listd's
/// own Received: goes on top, in the seed's `from X by Y with ESMTP id Z
/// for <rcpt>; date` shape with folded continuation lines, and the older
/// trace fields stay below it in their order, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t9_received_trace() {
    let s = list_site("posting: anyone\n", |_| {}).await;
    let trace = "Received: from host1.mydomain.com by host2.mydomain.com (8.8.8+Sun/8.8.8)\r\n  \
with ESMTP id LAA21968 for <jamisonn@host2.mydomain.com>; \r\n  \
Sat, 31 Jul 1999 11:33:00 -0400 (EDT)\r\n\
Received: by host1.mydomain.com with Internet Mail Service (5.0.1460.8) \r\n  \
id <01BEDB4D.2C4F6B40@host1.mydomain.com>; Sat, 31 Jul 1999 11:34:39 -0400\r\n";
    let msg = format!(
        "{trace}Message-ID: <t9@host1.mydomain.com>\r\nFrom: \"Your Friend\" <ann@example.org>\r\n\
To: \"'jamisonn@host2.mydomain.com'\" <jamisonn@host2.mydomain.com>\r\n\
Subject: Hello There\r\nDate: Sat, 31 Jul 1999 11:34:36 -0400\r\n\r\nhi\r\n"
    );
    let got = s.post(&msg).await;
    let text = String::from_utf8_lossy(&got.data);
    let ours = text
        .find("Received: from client.example")
        .expect("our Received");
    let theirs = text.find(trace).expect("their trace fields, unchanged");
    assert!(ours < theirs, "the newest Received is on top:\n{text}");
    // our field: its first line and the continuation lines after it
    let mut end = ours + text[ours..].find("\r\n").unwrap() + 2;
    while text[end..].starts_with(['\t', ' ']) {
        end += text[end..].find("\r\n").unwrap() + 2;
    }
    let field = &text[ours..end];
    assert!(
        field.contains(&format!("\r\n\tby {DOMAIN} (listd) with ESMTP id ")),
        "{field}"
    );
    assert!(
        field.contains(&format!("\r\n\tfor <dev@{DOMAIN}>; ")),
        "{field}"
    );
    assert!(field.lines().all(|l| l.len() <= 78), "{field}");
    s.daemon.shutdown().await;
}

const T10_RECONSTRUCTED: &str = "From: Joe Sender <joe@someplace.org>\r\n\
To: Jane Receiver <jane@somewhereelse.com>\r\n\
Date: Sun, 1 Jun 2003 13:28:19 -0800\r\n\
Subject: Photo and discussion\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"exampledelimtext123\"\r\n\
\r\n\
This is a multipart message in MIME format\r\n\
\r\n\
--exampledelimtext123\r\n\
Content-Type: text/plain\r\n\
\r\n\
Jane, here is the photo you wanted from me for the new client. Here are\r\n\
some notes on how it was processed. (Blah blah blah...) Talk to you soon, Joe.\r\n\
\r\n\
--exampledelimtext123\r\n\
Content-Type: image/jpeg; name=\"clientphoto.jpg\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
SDc9Pjv/2wBDAQoLCw4NDhwQEBw7KCIoOzs7Ozs7Ozs\r\n\
zv/wAARCADIARoDASIAAhEBAxEB/8QAHAAAAQUBA\r\n\
--exampledelimtext123--\r\n\
\r\n\
(Epilogue)\r\n";

/// T10 (Example 76-1): the reconstructed multipart/mixed reaches members
/// with its preamble, both parts and epilogue intact and the list footer as
/// one more text/plain part; the seed's single-dash text (§8 D1), which has
/// no real boundary, is delivered byte for byte with no part invented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_multipart_mixed() {
    let s = list_site("posting: anyone\nfooter: true\n", |_| {}).await;
    let got = s.post(T10_RECONSTRUCTED).await;
    let m = MessageParser::default().parse(&got.data).unwrap();
    let PartType::Multipart(children) = &m.parts[0].body else {
        panic!("still multipart/mixed")
    };
    assert_eq!(children.len(), 3, "text, image and the footer part");
    let text = &m.parts[children[0] as usize];
    assert_eq!(text.content_type().map(|c| c.ctype()), Some("text"));
    assert!(text
        .text_contents()
        .unwrap()
        .starts_with("Jane, here is the photo"));
    let image = &m.parts[children[1] as usize];
    let ct = image.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("image", Some("jpeg")));
    assert_eq!(image.attachment_name(), Some("clientphoto.jpg"));
    let footer = &m.parts[children[2] as usize];
    assert!(footer.text_contents().unwrap().contains("To unsubscribe"));
    assert!(contains(
        &got.data,
        "This is a multipart message in MIME format\r\n"
    ));
    assert!(contains(
        &got.data,
        "SDc9Pjv/2wBDAQoLCw4NDhwQEBw7KCIoOzs7Ozs7Ozs\r\nzv/wAARCADIARoDASIAAhEBAxEB/8QAHAAAAQUBA\r\n"
    ));
    s.daemon.shutdown().await;

    // the seed as printed: single dashes, no close delimiter
    let s = list_site("posting: anyone\nfooter: true\n", |_| {}).await;
    let seed = T10_RECONSTRUCTED
        .replace("--exampledelimtext123--\r\n", "-exampledelimtext123\r\n")
        .replace("--exampledelimtext123\r\n", "-exampledelimtext123\r\n")
        .replace("-0800", "\u{2014}0800");
    let got = s.post(&seed).await;
    let body = &seed[seed.find("\r\n\r\n").unwrap() + 4..];
    assert!(
        contains(&got.data, body),
        "the body passes byte for byte:\n{}",
        String::from_utf8_lossy(&got.data)
    );
    s.daemon.shutdown().await;
}

/// T11 (000:L657¶74): a GB2312 encoded-word Subject is read as 欢迎参加美国展会
/// behind the list's prefix (in the members' copy and the archive index);
/// the prefix is added without breaking the encoded word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t11_encoded_word_subject() {
    let s = list_site("posting: anyone\nsubject_prefix: \"[dev]\"\n", |_| {}).await;
    let got = s
        .post(
            "From: ann@example.org\r\nSubject: =?GB2312?B?u7bTrbLOvNPDwLn61bm74Q==?=\r\n\r\nhi\r\n",
        )
        .await;
    let m = MessageParser::default().parse(&got.data).unwrap();
    assert_eq!(m.subject(), Some("[dev] 欢迎参加美国展会"));
    let indexed: String = s
        .env
        .store()
        .query_row("SELECT subject FROM archive_index", [], |r| r.get(0))
        .unwrap();
    assert_eq!(indexed, "[dev] 欢迎参加美国展会");
    assert!(
        contains(
            &got.data,
            "Subject: [dev] =?GB2312?B?u7bTrbLOvNPDwLn61bm74Q==?=\r\n"
        ),
        "the encoded word is kept whole"
    );
    s.daemon.shutdown().await;
}

/// A part whose 8-bit content a 7-bit relay must not get raw.
fn eight_bit_part(ctype: &str, content: &[u8]) -> Vec<u8> {
    let mut m = b"From: ann@example.org\r\nSubject: enc\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"
        .to_vec();
    m.extend_from_slice(
        format!("Content-Type: {ctype}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n").as_bytes(),
    );
    m.extend_from_slice(content);
    m.extend_from_slice(b"\r\n--b--\r\n");
    m
}

/// Sends raw bytes (8-bit) to the list and returns the member's copy.
async fn post_bytes(s: &ListSite, bytes: &[u8]) -> Transaction {
    let mut c = SmtpClient::connect_ehlo(s.daemon.smtp_addr()).await;
    c.cmd("MAIL FROM:<ann@example.org> BODY=8BITMIME")
        .await
        .expect(250);
    c.cmd(&format!("RCPT TO:<dev@{DOMAIN}>")).await.expect(250);
    c.cmd("DATA").await.expect(354);
    c.send_raw(bytes).await;
    c.send_raw(b".\r\n").await;
    c.read_reply().await.expect(250);
    c.quit().await;
    let sink = &s.sink;
    assert!(wait_until(WAIT, || sink.delivered_count() >= 1).await);
    sink.transactions().remove(0)
}

/// T12 (000:L657¶44-54; ¶51's "214" is 212, §8 D3): bytes 212, 39, 247
/// go to a 7-bit relay as base64 `1Cf3`, in lines of at most 76.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t12_base64_vector_and_line_length() {
    let s = list_site("posting: anyone\n", |sink| sink.without_8bitmime()).await;
    let mut content = vec![212u8, 39, 247];
    content.extend(std::iter::repeat_n(0xffu8, 297));
    let got = post_bytes(&s, &eight_bit_part("application/octet-stream", &content)).await;
    let text = String::from_utf8(got.data.clone()).expect("7-bit");
    assert!(text.contains("\r\n1Cf3"), "{text}");
    let m = MessageParser::default().parse(&got.data).unwrap();
    assert_eq!(m.attachment(0).unwrap().contents(), &content[..]);
    let encoded = &text[text.find("\r\n1Cf3").unwrap() + 2..];
    let encoded = &encoded[..encoded.find("\r\n--b").unwrap()];
    assert!(encoded.lines().count() > 1);
    assert!(encoded.lines().all(|l| l.len() <= 76), "{encoded}");
    s.daemon.shutdown().await;
}

/// T13 (003:L203 and the composite vector): in quoted-printable, `=`
/// becomes `=3D` and a form feed `=0C`; the line ends are not encoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t13_quoted_printable_vectors() {
    let s = list_site("posting: anyone\n", |sink| sink.without_8bitmime()).await;
    let got = post_bytes(
        &s,
        &eight_bit_part(
            "text/plain; charset=utf-8",
            "a=b\x0cc caf\u{e9}\r\nline two".as_bytes(),
        ),
    )
    .await;
    let text = String::from_utf8(got.data.clone()).expect("7-bit");
    assert!(
        text.contains("Content-Transfer-Encoding: quoted-printable"),
        "{text}"
    );
    assert!(text.contains("a=3Db=0Cc caf=C3=A9\r\nline two"), "{text}");
    let m = MessageParser::default().parse(&got.data).unwrap();
    assert_eq!(
        m.body_text(0).unwrap().replace("\r\n", "\n"),
        "a=b\x0cc caf\u{e9}\nline two"
    );
    s.daemon.shutdown().await;
}

/// T14 (001:L196-198, 000:L310-312, 000:L528): the minimal header is a
/// post; a To: folded with tabs passes byte for byte; a `Content-type:`
/// field name in another case is still read (the footer joins its text).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t14_header_syntax_samples() {
    let s = list_site("posting: anyone\nfooter: true\n", |_| {}).await;
    let folded = "To:\tperson1@domain1.org, person2@domain2.com,\r\n\tperson3@domain3.net, person4@domain4.edu\r\n";
    let msg = format!(
        "From: alice@crepes.fr\r\n{folded}Subject: Searching for the meaning of life.\r\n\
Content-type: text/plain; charset=\"us-ascii\"\r\n\r\nForty-two.\r\n"
    );
    let got = s.post(&msg).await;
    assert!(contains(&got.data, folded));
    let m = MessageParser::default().parse(&got.data).unwrap();
    assert_eq!(m.subject(), Some("Searching for the meaning of life."));
    assert_eq!(m.parts.len(), 1, "the footer is appended, not a new part");
    let body = m.body_text(0).unwrap();
    assert!(body.starts_with("Forty-two.\r\n"), "{body}");
    assert!(body.contains("To unsubscribe"), "{body}");
    s.daemon.shutdown().await;
}

/// T15 (003:L71-98 and 001:L267-297): a member logs in with USER and
/// PASS, STATs, LISTs, RETRs and DELEs each message and QUITs; the sizes
/// agree (LIST = STAT = the octets RETR announces and sends), and since
/// DELE marks for the session only, the next session finds all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t15_pop3_sessions() {
    let a = Archive::start(|b| b).await;
    pop3_posts(&a).await;
    let pw = a.password(ANN, "dev").await;

    let mut c = LineClient::connect(a.pop3_addr()).await;
    let greeting = c.line().await;
    assert!(
        greeting.starts_with("+OK lists.example.org POP3 server ready"),
        "{greeting}"
    );
    assert!(greeting.contains("the newest 500 posts"), "{greeting}");
    let user = format!("{ANN}+dev");
    assert!(c.cmd(&format!("USER {user}")).await.starts_with("+OK"));
    let r = c.cmd(&format!("PASS {pw}")).await;
    assert!(r.starts_with("+OK dev has 3 messages ("), "{r}");
    let stat = c.cmd("STAT").await;
    let total: u64 = stat
        .strip_prefix("+OK 3 ")
        .unwrap_or_else(|| panic!("{stat}"))
        .parse()
        .unwrap();
    assert!(c.cmd("list").await.starts_with("+OK 3 messages"));
    let listing = String::from_utf8(c.multiline().await).unwrap();
    let sizes: Vec<u64> = listing
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let (n, size) = l.split_once(' ').unwrap();
            assert_eq!(n, (i + 1).to_string());
            size.parse().unwrap()
        })
        .collect();
    assert_eq!(sizes.len(), 3);
    assert_eq!(
        sizes.iter().sum::<u64>(),
        total,
        "146 + 155 + 158 = 459, in kind"
    );
    for n in 1..=3 {
        let r = c.cmd(&format!("RETR {n}")).await;
        assert_eq!(r, format!("+OK {} octets", sizes[n - 1]));
        let msg = c.multiline().await;
        assert_eq!(msg.len() as u64, sizes[n - 1]);
        let parsed = MessageParser::default().parse(&msg).unwrap();
        assert_eq!(parsed.subject(), Some(format!("message {n}").as_str()));
        if n == 2 {
            let body = parsed.body_text(0).unwrap();
            assert!(
                body.contains(".A line that starts with a dot\r\nFrom the start"),
                "{body:?}"
            );
        }
        // the seed's bold/indent artifact: leading spaces before DELE
        let r = c.cmd(&format!("               DELE {n}")).await;
        assert_eq!(
            r,
            format!("+OK message {n} deleted (for this session only: the archive keeps it)")
        );
    }
    let bye = c.cmd("QUIT").await;
    assert!(bye.starts_with("+OK lists.example.org POP3 server signing off (0 dev messages left; 3 marked deleted, none removed from the archive)"), "{bye}");
    assert!(c.closed().await);

    // nothing was deleted from the archive
    assert_eq!(a.archived("dev"), 3);
    let mut c = LineClient::connect(a.pop3_addr()).await;
    c.line().await;
    c.cmd(&format!("USER {user}")).await;
    assert!(c
        .cmd(&format!("PASS {pw}"))
        .await
        .starts_with("+OK dev has 3 messages"));
    assert_eq!(c.cmd("STAT").await, format!("+OK 3 {total}"));
    c.cmd("QUIT").await;
    a.stop().await;
}

/// T16 (003:L110-139), as this read-only server answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t16_imap4rev1_session() {
    let a = Archive::start(|b| b).await;
    imap_posts(&a).await;
    let pw = a.password(ANN, "dev").await;
    let ids = uids(&a, "dev");

    let mut c = LineClient::connect(a.imap_addr()).await;
    let greeting = c.line().await;
    assert!(
        greeting.starts_with("* OK [CAPABILITY IMAP4REV1"),
        "{greeting}"
    );
    assert!(
        greeting.contains("lists.example.org IMAP4rev1 server ready"),
        "{greeting}"
    );
    assert!(
        !greeting.contains("LOGINDISABLED"),
        "loopback may log in: {greeting}"
    );
    let r = c.imap("a0001", &format!("LOGIN {ANN} {pw}")).await;
    assert!(tagged(&r).starts_with("a0001 OK LOGIN completed"), "{r:?}");
    let r = c.imap("a0002", "SELECT dev").await;
    let validity = listd::reader::mailbox::uid_validity("dev");
    for want in [
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)".to_string(),
        "* 3 EXISTS".into(),
        "* 0 RECENT".into(),
        "* OK [UNSEEN 1] first unseen message".into(),
        format!("* OK [UIDVALIDITY {validity}] UIDs valid"),
        format!("* OK [UIDNEXT {}] predicted next UID", ids[2] + 1),
        "* OK [PERMANENTFLAGS ()] no permanent flags: the archive is read-only".into(),
        "a0002 OK [READ-ONLY] SELECT completed (list archives are read-only)".into(),
    ] {
        assert!(r.contains(&want), "missing {want:?} in {r:#?}");
    }
    let r = c.imap("a0003", "FETCH 1 BODY[TEXT]").await;
    assert_eq!(r.len(), 2, "{r:#?}");
    let (head, rest) = r[0].split_once("\r\n").unwrap();
    let n: usize = head
        .strip_prefix("* 1 FETCH (BODY[TEXT] {")
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or_else(|| panic!("{head}"))
        .parse()
        .unwrap();
    assert_eq!(&rest[..n], "The release is on Friday.\r\nBring cake.\r\n");
    assert_eq!(
        &rest[n..],
        " FLAGS (\\Seen))",
        "D12: the closing parenthesis"
    );
    assert_eq!(tagged(&r), "a0003 OK FETCH completed");
    let r = c.imap("a0004", "STORE 1 +FLAGS \\DELETED").await;
    assert_eq!(
        r,
        ["a0004 NO the list archives are read-only: only \\Seen can be set, for this session"]
    );
    assert_eq!(
        c.imap("a0005", "CLOSE").await,
        ["a0005 OK CLOSE completed (nothing expunged: the archive is read-only)"]
    );
    assert_eq!(
        c.imap("a0006", "LOGOUT").await,
        [
            "* BYE lists.example.org IMAP4rev1 server terminating connection",
            "a0006 OK LOGOUT completed"
        ]
    );
    assert!(c.closed().await);
    // nothing changed, and INBOX (as the seed selects it) is there too
    assert_eq!(uids(&a, "dev"), ids);
    let mut c = LineClient::connect(a.imap_addr()).await;
    c.line().await;
    c.imap("b1", &format!("LOGIN {ANN} {pw}")).await;
    let r = c.imap("b2", "SELECT inbox").await;
    assert!(r.contains(&"* 1 EXISTS".to_string()), "{r:#?}");
    let r = c.imap("b3", "FETCH 1 BODY.PEEK[TEXT]").await;
    assert!(
        r[0].contains("password LIST") && r[0].contains("Your mailboxes: dev, pub."),
        "{r:#?}"
    );
    a.stop().await;
}

/// T17 (000:L657¶268): from a client outside the trusted networks, RCPT to
/// a remote mailbox is refused `550 5.7.1`.
#[tokio::test]
async fn t17_relaying_denied_with_enhanced_status() {
    let env = site_named(DOMAIN, &[("dev", "posting: anyone\n")], false);
    let d = env.start().await;
    let mut c = SmtpClient::connect_ehlo(d.smtp_addr()).await;
    c.cmd("MAIL FROM:<joe@someplace.org>").await.expect(250);
    let r = c.cmd("RCPT TO:<jane@somewhereelse.com>").await;
    r.expect(550);
    assert_eq!(r.status(), Some("5.7.1"), "{r:?}");
    c.cmd(&format!("RCPT TO:<dev@{DOMAIN}>")).await.expect(250);
    c.quit().await;
    d.shutdown().await;
}
