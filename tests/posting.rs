//! Posting over real SMTP: the in-process daemon on 127.0.0.1, posts sent by
//! a raw SMTP client, the capturing sink playing the relay, and every message
//! that comes out parsed with mail-parser. Covers each posting policy, each
//! loop case, decoration (List-* headers, the prefix that is never doubled,
//! an RFC 2047 subject, Reply-To, envelope senders), footer placement, owner
//! forwarding, bounce recording, and an archive export/import round trip
//! through the real `listd` binary.

mod common;

use common::sink::{Sink, Transaction};
use common::{send, wait_until, Listd, TestEnv, DOMAIN};
use mail_parser::{MessageParser, MimeHeaders, PartType};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Waits until the incoming queue is worked off and every outbound job is done.
async fn settle(env: &TestEnv) {
    let ok = wait_until(WAIT, || {
        env.count("incoming", "state = 'incoming'") == 0
            && env.count("jobs", "state <> 'done'") == 0
    })
    .await;
    assert!(
        ok,
        "the queues settle: {} incoming, {} jobs not done",
        env.count("incoming", "state = 'incoming'"),
        env.count("jobs", "state <> 'done'")
    );
}

fn subject_of(t: &Transaction) -> String {
    MessageParser::default()
        .parse(&t.data)
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_default()
}

/// Transactions whose Subject contains `needle`.
fn with_subject(sink: &Sink, needle: &str) -> Vec<Transaction> {
    sink.transactions()
        .into_iter()
        .filter(|t| subject_of(t).contains(needle))
        .collect()
}

/// Recipients of the transactions whose Subject contains `needle`, sorted.
fn rcpts_of(sink: &Sink, needle: &str) -> Vec<String> {
    let mut v: Vec<String> = with_subject(sink, needle)
        .into_iter()
        .flat_map(|t| t.rcpts)
        .collect();
    v.sort();
    v
}

fn post(from: &str, list: &str, subject: &str, extra_headers: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: {list}@{DOMAIN}\r\nSubject: {subject}\r\nMessage-ID: <{}@test.example>\r\n\
Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n{extra_headers}\r\n{body}",
        common::rand_token()
    )
}

fn header(data: &[u8], name: &str) -> Option<String> {
    let m = MessageParser::default().parse(data)?;
    m.header_raw(name).map(|v| v.trim().to_string())
}

fn body_bytes(data: &[u8]) -> &[u8] {
    let s = listd::mime::header_block::split(data);
    &data[s.body_start..]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_posting_policy() {
    let sink = Sink::start();
    let owners = "owners: [owner@example.org]\nmoderators: [mod@example.org]\n";
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list("open", &format!("posting: anyone\n{owners}"))
        .list(
            "mhold",
            &format!("posting: members\nnonmember_posts: hold\n{owners}"),
        )
        .list(
            "mreject",
            &format!("posting: members\nnonmember_posts: reject\n{owners}"),
        )
        .list(
            "mdiscard",
            &format!("posting: members\nnonmember_posts: discard\n{owners}"),
        )
        .list("modded", &format!("posting: moderated\n{owners}"))
        .list(
            "news",
            &format!(
                "posting: announce\nnonmember_posts: reject\nmoderator_password: '{}'\n{owners}",
                listd::moderation::hash_password("pw").unwrap()
            ),
        )
        .list(
            "newsh",
            &format!("posting: announce\nnonmember_posts: hold\n{owners}"),
        )
        .build();
    for l in [
        "open", "mhold", "mreject", "mdiscard", "modded", "news", "newsh",
    ] {
        env.add_members(l, &["ann@example.org", "bob@example.net"]);
    }
    let daemon = env.start().await;
    let a = daemon.smtp_addr();
    let eve = "eve@example.com";
    let ann = "ann@example.org";
    // an owner's or moderator's From: is a claim: on an announce list it
    // comes with the moderator password (sender_verification: confirm)
    let proof = "Approved: pw\r\n";
    for (from, list, subject, extra) in [
        (eve, "open", "anyone-nonmember", ""),
        (ann, "mhold", "members-member", ""),
        (eve, "mhold", "members-nonmember-hold", ""),
        (eve, "mreject", "members-nonmember-reject", ""),
        (eve, "mdiscard", "members-nonmember-discard", ""),
        (ann, "modded", "moderated-member", ""),
        ("mod@example.org", "news", "announce-moderator", proof),
        ("owner@example.org", "news", "announce-owner", proof),
        (ann, "news", "announce-member-reject", ""),
        (ann, "newsh", "announce-member-hold", ""),
    ] {
        send(
            a,
            from,
            &[&format!("{list}@{DOMAIN}")],
            &post(from, list, subject, extra, "hi\r\n"),
        )
        .await
        .expect(250);
    }
    settle(&env).await;
    let members = vec!["ann@example.org".to_string(), "bob@example.net".to_string()];
    // distributed to the members, from NAME-bounces@
    for (list, subject) in [
        ("open", "anyone-nonmember"),
        ("mhold", "members-member"),
        ("news", "announce-moderator"),
        ("news", "announce-owner"),
    ] {
        assert_eq!(rcpts_of(&sink, subject), members, "{subject}");
        for t in with_subject(&sink, subject) {
            assert_eq!(t.mail_from, format!("{list}-bounces@{DOMAIN}"));
        }
    }
    // never distributed
    for s in [
        "members-nonmember-hold",
        "members-nonmember-discard",
        "moderated-member",
        "announce-member-hold",
    ] {
        assert!(
            sink.transactions()
                .iter()
                .all(|t| !t.rcpts.contains(&"bob@example.net".to_string())
                    || !subject_of(t).contains(s)),
            "{s} was distributed"
        );
    }
    // held with the reason, and the moderators told
    let conn = env.store();
    let mut held: Vec<(String, String)> = conn
        .prepare("SELECT list, reason FROM held ORDER BY list")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    held.sort();
    assert_eq!(
        held,
        vec![
            ("mhold".into(), "non-member".into()),
            ("modded".into(), "moderated".into()),
            ("newsh".into(), "announce-only".into()),
        ]
    );
    assert!(sink.delivered().iter().any(|r| r == "mod@example.org"));
    // rejections reach the poster as a notice from <>; the post's Subject
    // is quoted to a member (ann) but not to a non-member (eve), whose
    // envelope sender may be forged
    for (poster, list, subject, quoted) in [
        (eve, "mreject", "members-nonmember-reject", false),
        (ann, "news", "announce-member-reject", true),
    ] {
        let notices: Vec<Transaction> = sink
            .transactions()
            .into_iter()
            .filter(|t| t.rcpts == vec![poster.to_string()] && t.mail_from.is_empty())
            .filter(|t| subject_of(t).contains(&format!("{list}@{DOMAIN}")))
            .collect();
        assert_eq!(notices.len(), 1, "one notice for {subject}");
        let m = MessageParser::default().parse(&notices[0].data).unwrap();
        let body = m.body_text(0).unwrap();
        assert!(body.contains("may post"), "{body}");
        assert_eq!(body.contains(subject), quoted, "{body}");
        // a delivery report (RFC 3464) on the list address: the human
        // text, the status, and the post's header block only when quoted
        let ct = m.content_type().unwrap();
        assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        let types: Vec<String> = m.parts[1..]
            .iter()
            .map(|p| {
                let c = p.content_type().unwrap();
                format!("{}/{}", c.ctype(), c.subtype().unwrap_or(""))
            })
            .collect();
        let mut want = vec!["text/plain", "message/delivery-status"];
        if quoted {
            want.push("text/rfc822-headers");
        }
        assert_eq!(types, want);
        let status = String::from_utf8_lossy(m.parts[2].contents()).into_owned();
        assert!(
            status.starts_with(&format!("Reporting-MTA: dns; {DOMAIN}\r\nArrival-Date: "))
                && status.contains(&format!(
                    "\r\n\r\nFinal-Recipient: rfc822; {list}@{DOMAIN}\r\nAction: failed\r\nStatus: 5.7.1\r\nDiagnostic-Code: smtp; 550 5.7.1 "
                )),
            "{status}"
        );
        if quoted {
            let h = String::from_utf8_lossy(m.parts[3].contents()).into_owned();
            assert!(h.contains(subject) && h.contains("Received: "), "{h}");
        }
    }
    // the discard sent nothing to anyone about it
    assert!(sink
        .transactions()
        .iter()
        .all(|t| !String::from_utf8_lossy(&t.data).contains("members-nonmember-discard")));
    assert_eq!(env.count("incoming", "state = 'done'"), 10);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loops_duplicates_and_automatic_mail() {
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list("dev", "posting: anyone\nowners: [owner@example.org]\n")
        .list(
            "strict",
            "posting: members\nnonmember_posts: reject\nowners: [owner@example.org]\n",
        )
        .build();
    env.add_members("dev", &["bob@example.net"]);
    let daemon = env.start().await;
    let a = daemon.smtp_addr();
    let to = [format!("dev@{DOMAIN}")];
    let to: Vec<&str> = to.iter().map(String::as_str).collect();
    let ann = "ann@example.org";
    for (subject, extra) in [
        ("loop-xloop", format!("X-Loop: dev@{DOMAIN}\r\n")),
        ("loop-listid", format!("List-Id: Dev <dev.{DOMAIN}>\r\n")),
        (
            "other-list-id",
            format!("List-Id: <other.{DOMAIN}>\r\nX-Loop: other@{DOMAIN}\r\n"),
        ),
        ("bulk", "Precedence: bulk\r\n".to_string()),
        ("junk", "Precedence: junk\r\n".to_string()),
        ("autoreply", "Auto-Submitted: auto-replied\r\n".to_string()),
        ("auto-no", "Auto-Submitted: no\r\n".to_string()),
    ] {
        send(a, ann, &to, &post(ann, "dev", subject, &extra, "x\r\n"))
            .await
            .expect(250);
    }
    // the same Message-ID twice: the second is a duplicate
    let dup = format!(
        "From: {ann}\r\nTo: dev@{DOMAIN}\r\nSubject: dup-once\r\nMessage-ID: <dup-1@test.example>\r\n\r\nx\r\n"
    );
    send(a, ann, &to, &dup).await.expect(250);
    settle(&env).await;
    send(a, ann, &to, &dup).await.expect(250);
    // a null sender is never sent a rejection
    send(
        a,
        "",
        &[&format!("strict@{DOMAIN}")],
        &post("daemon@example.com", "strict", "null-sender", "", "x\r\n"),
    )
    .await
    .expect(250);
    settle(&env).await;
    let delivered_subjects: Vec<String> = sink
        .transactions()
        .iter()
        .filter(|t| t.rcpts.contains(&"bob@example.net".to_string()))
        .map(subject_of)
        .collect();
    let mut got = delivered_subjects.clone();
    got.sort();
    assert_eq!(got, vec!["auto-no", "dup-once", "other-list-id"]);
    let mut held: Vec<String> = env
        .store()
        .prepare("SELECT reason FROM held ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    held.sort();
    assert_eq!(held, vec!["auto-reply", "bulk", "bulk"]);
    assert!(
        sink.transactions()
            .iter()
            .all(|t| !t.rcpts.iter().any(|r| r == "daemon@example.com")),
        "nothing goes to the poster of a null-sender post"
    );
    assert_eq!(env.count("incoming", "state = 'done'"), 10);
    assert_eq!(env.count("archive_index", "list = 'dev'"), 3);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decoration_headers_prefix_and_envelopes() {
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .set("web", "archive_url", "\"https://lists.example.org/archive\"")
        .set("web", "unsubscribe_url", "\"https://lists.example.org/unsubscribe\"")
        .list(
            "dev",
            "description: Development talk\nposting: anyone\nsubject_prefix: \"[dev]\"\nreply_to: list\nowners: [owner@example.org]\n",
        )
        .list("verp", "posting: anyone\nverp: true\nowners: [owner@example.org]\n")
        .build();
    env.add_members("dev", &["bob@example.net", "carol@example.org"]);
    env.add_members("verp", &["bob@example.net", "carol@example.org"]);
    let daemon = env.start().await;
    let a = daemon.smtp_addr();
    let ann = "ann@example.org";
    let original = post(
        ann,
        "dev",
        "Re: [dev] Re: [dev] =?UTF-8?Q?caf=C3=A9?= talk",
        "X-Unknown:  kept   exactly\r\n\tfolded\r\nReply-To: ann@example.org\r\n",
        "Body line.\r\n",
    );
    send(a, ann, &[&format!("dev@{DOMAIN}")], &original)
        .await
        .expect(250);
    send(
        a,
        ann,
        &[&format!("verp@{DOMAIN}")],
        &post(ann, "verp", "verp-post", "", "v\r\n"),
    )
    .await
    .expect(250);
    settle(&env).await;
    let txs = with_subject(&sink, "café talk");
    assert!(!txs.is_empty());
    let data = &txs[0].data;
    let m = MessageParser::default().parse(data).unwrap();
    assert_eq!(m.subject(), Some("Re: [dev] café talk"));
    // the encoded word itself was not re-encoded
    assert_eq!(
        header(data, "Subject").unwrap(),
        "Re: [dev] =?UTF-8?Q?caf=C3=A9?= talk"
    );
    let h = |n| header(data, n).unwrap_or_else(|| panic!("missing {n}"));
    assert_eq!(h("List-Id"), format!("Development talk <dev.{DOMAIN}>"));
    assert_eq!(
        h("List-Help"),
        format!("<mailto:dev-request@{DOMAIN}?subject=help>")
    );
    assert_eq!(h("List-Subscribe"), format!("<mailto:dev-join@{DOMAIN}>"));
    assert_eq!(
        h("List-Unsubscribe").replace("\r\n", ""),
        format!("<https://lists.example.org/unsubscribe/dev>, <mailto:dev-leave@{DOMAIN}>")
    );
    assert_eq!(h("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");
    assert_eq!(h("List-Post"), format!("<mailto:dev@{DOMAIN}>"));
    assert_eq!(h("List-Owner"), format!("<mailto:dev-owner@{DOMAIN}>"));
    assert_eq!(
        h("List-Archive"),
        "<https://lists.example.org/archive/dev/>"
    );
    assert_eq!(h("Precedence"), "list");
    assert_eq!(h("X-Loop"), format!("dev@{DOMAIN}"));
    assert_eq!(h("Reply-To"), format!("dev@{DOMAIN}"));
    assert_eq!(m.header_values("Reply-To").count(), 1);
    let text = String::from_utf8_lossy(data);
    assert!(
        text.contains("X-Unknown:  kept   exactly\r\n\tfolded\r\n"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\nBody line.\r\n"), "{text}");
    assert_eq!(txs[0].mail_from, format!("dev-bounces@{DOMAIN}"));
    // VERP: one envelope per recipient
    let mut verp: Vec<(String, Vec<String>)> = with_subject(&sink, "verp-post")
        .into_iter()
        .map(|t| (t.mail_from, t.rcpts))
        .collect();
    verp.sort();
    assert_eq!(
        verp,
        vec![
            (
                format!("verp-bounces+bob=example.net@{DOMAIN}"),
                vec!["bob@example.net".to_string()]
            ),
            (
                format!("verp-bounces+carol=example.org@{DOMAIN}"),
                vec!["carol@example.org".to_string()]
            ),
        ]
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn footer_placement() {
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list(
            "dev",
            "description: Dev\nposting: anyone\nfooter: true\nowners: [owner@example.org]\n",
        )
        .build();
    env.add_members("dev", &["bob@example.net"]);
    let daemon = env.start().await;
    let a = daemon.smtp_addr();
    let ann = "ann@example.org";
    let to = format!("dev@{DOMAIN}");
    let mime = "MIME-Version: 1.0\r\n";
    let qp_body = "caf=C3=A9 cr=C3=A8me\r\n";
    send(a, ann, &[&to], &post(ann, "dev", "f-qp", &format!("{mime}Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"), qp_body)).await.expect(250);
    let alt = "--ALT\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain\r\n--ALT\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html</p>\r\n--ALT--\r\n";
    send(
        a,
        ann,
        &[&to],
        &post(
            ann,
            "dev",
            "f-alt",
            &format!("{mime}Content-Type: multipart/alternative; boundary=\"ALT\"\r\n"),
            alt,
        ),
    )
    .await
    .expect(250);
    let signed = "--SIG\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nsigned words\r\n--SIG\r\nContent-Type: application/pgp-signature\r\n\r\n-----BEGIN PGP SIGNATURE-----\r\niQEzBAEBCAAdFiEE\r\n-----END PGP SIGNATURE-----\r\n--SIG--\r\n";
    send(a, ann, &[&to], &post(ann, "dev", "f-signed", &format!("{mime}Content-Type: multipart/signed; micalg=pgp-sha256; protocol=\"application/pgp-signature\"; boundary=\"SIG\"\r\n"), signed)).await.expect(250);
    settle(&env).await;
    let leave = format!("dev-leave@{DOMAIN}");
    // text/plain QP: appended, in QP, original encoded bytes first
    let qp = &with_subject(&sink, "f-qp")[0].data;
    assert!(body_bytes(qp).starts_with(qp_body.as_bytes()));
    let m = MessageParser::default().parse(qp).unwrap();
    assert_eq!(m.parts.len(), 1);
    let text = m.body_text(0).unwrap();
    assert!(text.starts_with("café crème\r\n-- \r\n"), "{text}");
    assert!(text.contains(&leave), "{text}");
    // multipart/alternative: wrapped in multipart/mixed with a text/plain footer part
    let alt_out = &with_subject(&sink, "f-alt")[0].data;
    let m = MessageParser::default().parse(alt_out).unwrap();
    let root = &m.parts[0];
    assert_eq!(root.content_type().unwrap().subtype(), Some("mixed"));
    let PartType::Multipart(kids) = &root.body else {
        panic!("not multipart")
    };
    assert_eq!(kids.len(), 2);
    assert_eq!(
        m.parts[kids[0] as usize].content_type().unwrap().subtype(),
        Some("alternative")
    );
    let foot = &m.parts[kids[1] as usize];
    assert_eq!(foot.content_type().unwrap().ctype(), "text");
    assert!(foot.text_contents().unwrap().contains(&leave));
    assert!(
        String::from_utf8_lossy(alt_out).contains(alt),
        "the alternative is byte-identical inside"
    );
    // multipart/signed: the body is byte-identical, no footer anywhere
    let sig_out = &with_subject(&sink, "f-signed")[0].data;
    assert_eq!(body_bytes(sig_out), signed.as_bytes());
    assert_eq!(
        MessageParser::default().parse(sig_out).unwrap().parts.len(),
        MessageParser::default()
            .parse(
                post(
                    ann,
                    "dev",
                    "x",
                    &format!("{mime}Content-Type: multipart/signed; boundary=\"SIG\"\r\n"),
                    signed
                )
                .as_bytes()
            )
            .unwrap()
            .parts
            .len(),
        "no part added"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_mail_and_bounces() {
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list("dev", "owners: [owner@example.org, second@example.net]\n")
        .build();
    let daemon = env.start().await;
    let a = daemon.smtp_addr();
    let msg = "From: ann@example.org\r\nSubject: to-the-owners\r\nX-Odd:   spacing \r\n\r\nHello owners.\r\n";
    send(a, "ann@example.org", &[&format!("dev-owner@{DOMAIN}")], msg)
        .await
        .expect(250);
    send(
        a,
        "",
        &[&format!("dev-bounces+bob=example.net@{DOMAIN}")],
        "From: MAILER-DAEMON@relay.example\r\nSubject: Undelivered\r\n\r\nsorry\r\n",
    )
    .await
    .expect(250);
    settle(&env).await;
    let fw = with_subject(&sink, "to-the-owners");
    let mut rcpts: Vec<String> = fw.iter().flat_map(|t| t.rcpts.clone()).collect();
    rcpts.sort();
    assert_eq!(rcpts, vec!["owner@example.org", "second@example.net"]);
    assert!(fw
        .iter()
        .all(|t| t.mail_from == format!("dev-bounces@{DOMAIN}")));
    // our X-Loop on top, then the message as received (our Received: first) byte for byte
    let fwd = String::from_utf8(fw[0].data.clone()).unwrap();
    assert!(
        fwd.starts_with(&format!("X-Loop: dev-owner@{DOMAIN}\r\nReceived: ")),
        "{fwd}"
    );
    assert!(fwd.ends_with(msg), "{fwd}");
    // the forwarded copy coming back is not forwarded again
    send(
        a,
        "",
        &[&format!("dev-owner@{DOMAIN}")],
        &String::from_utf8(fw[0].data.clone()).unwrap(),
    )
    .await
    .expect(250);
    settle(&env).await;
    assert_eq!(with_subject(&sink, "to-the-owners").len(), fw.len());
    assert_eq!(
        env.count("bounces", "list = 'dev' AND recipient = 'bob@example.net'"),
        1
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_members_get_each_post_while_digests_are_disabled() {
    use listd::store::members::DeliveryMode;
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list(
            "nodig",
            "posting: anyone\ndigest:\n  enabled: false\nowners: [owner@example.org]\n",
        )
        .list("dig", "posting: anyone\nowners: [owner@example.org]\n")
        .build();
    for l in ["nodig", "dig"] {
        env.add_members(l, &["each@example.org"]);
        env.add_members_mode(l, &["mime@example.org"], DeliveryMode::DigestMime);
        env.add_members_mode(l, &["plain@example.net"], DeliveryMode::DigestPlain);
        env.add_members_mode(l, &["quiet@example.org"], DeliveryMode::NoMail);
    }
    let daemon = env.start().await;
    let a = daemon.smtp_addr();
    let ann = "ann@example.org";
    for l in ["nodig", "dig"] {
        send(
            a,
            ann,
            &[&format!("{l}@{DOMAIN}")],
            &post(ann, l, &format!("to-{l}"), "", "hello\r\n"),
        )
        .await
        .expect(250);
    }
    settle(&env).await;
    assert_eq!(
        rcpts_of(&sink, "to-nodig"),
        vec!["each@example.org", "mime@example.org", "plain@example.net"],
        "digest members get each post like `each` members while digests are disabled"
    );
    for t in with_subject(&sink, "to-nodig") {
        assert_eq!(t.mail_from, format!("nodig-bounces@{DOMAIN}"));
        let m = MessageParser::default().parse(&t.data).unwrap();
        assert_eq!(m.subject(), Some("to-nodig"));
        assert_eq!(
            header(&t.data, "List-Id").as_deref(),
            Some(format!("<nodig.{DOMAIN}>").as_str())
        );
    }
    assert_eq!(
        rcpts_of(&sink, "to-dig"),
        vec!["each@example.org"],
        "with digests enabled, digest members wait for the digest"
    );
    assert_eq!(env.count("digest_entries", "list = 'nodig'"), 0);
    assert_eq!(env.count("digest_entries", "list = 'dig'"), 1);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_list_address_in_any_case_is_expanded_with_a_cycle() {
    let sink = Sink::start();
    let open = "posting: anyone\nowners: [owner@example.org]\n";
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list("all", open)
        .list("dev", open)
        .list("ops", open)
        .build();
    env.add_members(
        "all",
        &[
            "boss@example.org",
            "Dev@LISTS.example.org",
            "OPS@Lists.Example.Org",
        ],
    );
    env.add_members(
        "dev",
        &[
            "anna@example.de",
            "boss@example.org",
            "oPs@lists.example.org",
        ],
    );
    // ops contains all again, in yet another case: a cycle
    env.add_members("ops", &["joe@example.com", "ALL@LISTS.EXAMPLE.ORG"]);
    let daemon = env.start().await;
    let a = daemon.smtp_addr();
    let ann = "ann@example.org";
    send(
        a,
        ann,
        &[&format!("all@{DOMAIN}")],
        &post(ann, "all", "nested-any-case", "", "hi\r\n"),
    )
    .await
    .expect(250);
    settle(&env).await;
    assert_eq!(
        rcpts_of(&sink, "nested-any-case"),
        vec!["anna@example.de", "boss@example.org", "joe@example.com"],
        "each address once, list addresses expanded and never mailed"
    );
    // a post to a nested list itself stops at the cycle too
    send(
        a,
        ann,
        &[&format!("ops@{DOMAIN}")],
        &post(ann, "ops", "from-ops", "", "hi\r\n"),
    )
    .await
    .expect(250);
    settle(&env).await;
    assert_eq!(
        rcpts_of(&sink, "from-ops"),
        vec!["anna@example.de", "boss@example.org", "joe@example.com"]
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_export_import_round_trip() {
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list(
            "dev",
            "posting: anyone\nsubject_prefix: \"[dev]\"\nowners: [owner@example.org]\n",
        )
        .list("old", "posting: anyone\nowners: [owner@example.org]\n")
        .build();
    env.add_members("dev", &["bob@example.net"]);
    let daemon = env.start().await;
    let a = daemon.smtp_addr();
    let ann = "ann@example.org";
    for (i, body) in [
        "first\r\n",
        "From the start, a line that needs quoting\r\n>From already quoted\r\n",
        "third\r\n",
    ]
    .iter()
    .enumerate()
    {
        send(
            a,
            ann,
            &[&format!("dev@{DOMAIN}")],
            &post(ann, "dev", &format!("arch-{i}"), "", body),
        )
        .await
        .expect(250);
    }
    settle(&env).await;
    daemon.shutdown().await;

    let out = Listd::at(&env.config_path).output(&["archive", "export", "dev"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mbox = out.stdout;
    let text = String::from_utf8(mbox.clone()).unwrap();
    assert_eq!(
        text.matches("\nFrom ").count() + usize::from(text.starts_with("From ")),
        3,
        "{text}"
    );
    assert!(text.contains("\n>From the start"), "{text}");
    assert!(text.contains("\n>>From already quoted"), "{text}");
    // each exported message parses, decorated as distributed
    let mut r = listd::archive::MboxReader::new(&mbox[..]);
    let mut subjects = Vec::new();
    while let Some(m) = r.next_message().unwrap() {
        let p = MessageParser::default().parse(&m.bytes).unwrap();
        subjects.push(p.subject().unwrap().to_string());
        assert_eq!(
            p.header_raw("List-Id").map(str::trim),
            Some(format!("<dev.{DOMAIN}>").as_str())
        );
    }
    assert_eq!(
        subjects,
        vec!["[dev] arch-0", "[dev] arch-1", "[dev] arch-2"]
    );
    // what comes back out is, byte for byte, what the members were sent
    // (with the mbox's LF line ends)
    let mut r = listd::archive::MboxReader::new(&mbox[..]);
    let mut i = 0;
    while let Some(m) = r.next_message().unwrap() {
        let sent = with_subject(&sink, &format!("arch-{i}"));
        assert_eq!(sent.len(), 1);
        let sent_lf = String::from_utf8(sent[0].data.clone())
            .unwrap()
            .replace("\r\n", "\n");
        assert_eq!(String::from_utf8(m.bytes).unwrap(), sent_lf, "arch-{i}");
        i += 1;
    }
    assert_eq!(i, 3);

    // import into another list: nothing is distributed, the export is identical
    let file = env.path().join("dev.mbox");
    std::fs::write(&file, &mbox).unwrap();
    let before = sink.transactions().len();
    let out =
        Listd::at(&env.config_path).output(&["archive", "import", "old", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 3 messages"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("indexed 3 messages of old for IMAP SEARCH")
    );
    assert_eq!(env.count("archive_text", "list = 'old'"), 3);
    let out = Listd::at(&env.config_path).output(&["archive", "export", "old"]);
    assert_eq!(out.stdout, mbox);
    // importing again skips what is there
    let out =
        Listd::at(&env.config_path).output(&["archive", "import", "old", file.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("imported 0 messages")
            && String::from_utf8_lossy(&out.stdout).contains("indexed 0 messages"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(sink.transactions().len(), before);
    assert_eq!(env.count("jobs", "list = 'old'"), 0);

    // --since filters by date (the posts are dated 2026-01-01)
    let out =
        Listd::at(&env.config_path).output(&["archive", "export", "dev", "--since", "2100-01-01"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let out =
        Listd::at(&env.config_path).output(&["archive", "export", "dev", "--since", "2026-01-01"]);
    assert!(out.status.success());
    assert_eq!(
        out.stdout, mbox,
        "a post on the --since day itself is included"
    );
    let out =
        Listd::at(&env.config_path).output(&["archive", "export", "dev", "--since", "2026-01-02"]);
    assert!(out.stdout.is_empty());

    // errors: unknown list, bad date, not an mbox, missing file
    let out = Listd::at(&env.config_path).output(&["archive", "export", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such list `nope`"));
    let out =
        Listd::at(&env.config_path).output(&["archive", "export", "dev", "--since", "someday"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD"));
    let bad = env.path().join("bad.mbox");
    std::fs::write(&bad, "Subject: not an mbox\n\nx\n").unwrap();
    let out =
        Listd::at(&env.config_path).output(&["archive", "import", "old", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.mbox") && err.contains("line 1"), "{err}");
    let out =
        Listd::at(&env.config_path).output(&["archive", "import", "old", "/nonexistent/x.mbox"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.mbox"));
}

#[test]
fn check_warns_about_missing_post_templates() {
    let env = TestEnv::builder()
        .global("templates_dir", "tpl")
        .list("dev", "footer: true\n")
        .list("plain", "posting: anyone\n")
        .build();
    std::fs::create_dir_all(env.path().join("tpl")).unwrap();
    std::fs::create_dir_all(env.path().join("lists/plain/templates")).unwrap();
    std::fs::write(
        env.path().join("lists/plain/templates/post-rejected.hbs"),
        "no",
    )
    .unwrap();
    let out = Listd::at(&env.config_path).output(&["check"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("list `dev`: post templates missing (post-rejected, footer)"),
        "{err}"
    );
    assert!(!err.contains("list `plain`"), "{err}");
}

/// A post without `Date:` (RFC 5322 requires one) is distributed and
/// archived with the time listd sent it; a dated post keeps its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_without_a_date_goes_out_and_is_archived_with_one() {
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list("dev", "posting: members\narchive: true\n")
        .build();
    env.add_members("dev", &["ann@example.org"]);
    let d = env.start().await;
    let to = format!("dev@{DOMAIN}");
    let before = listd::store::now();
    send(
        d.smtp_addr(),
        "ann@example.org",
        &[&to],
        &format!("From: ann@example.org\r\nTo: {to}\r\nSubject: undated\r\n\r\nno date\r\n"),
    )
    .await
    .expect(250);
    assert!(wait_until(Duration::from_secs(20), || sink.delivered_count() == 1).await);
    let copy = sink.transactions()[0].data.clone();
    let m = MessageParser::default().parse(&copy).unwrap();
    let date = m.date().expect("a Date: on the copy").to_timestamp();
    assert!(
        (before - 5..=listd::store::now() + 5).contains(&date),
        "{date}"
    );
    let (code, mbox, err) = common::run_cli(&env, &["archive", "export", "dev"]);
    assert_eq!(code, 0, "{err}");
    let archived = mbox
        .split("\nFrom ")
        .find(|p| p.contains("Subject: undated"))
        .unwrap();
    assert!(archived.contains("\nDate: "), "{archived}");
    d.shutdown().await;
}

/// `sender_header: true` gives the members' copies `Sender:` the list's
/// bounce address in place of the post's own; a list without it keeps
/// the post's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_header_names_the_bounce_address_when_the_list_asks() {
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list("dev", "posting: members\nsender_header: true\n")
        .list("plain", "posting: members\n")
        .build();
    env.add_members("dev", &["ann@example.org"]);
    env.add_members("plain", &["ann@example.org"]);
    let d = env.start().await;
    for list in ["dev", "plain"] {
        let to = format!("{list}@{DOMAIN}");
        send(
            d.smtp_addr(),
            "ann@example.org",
            &[&to],
            &format!(
                "From: ann@example.org\r\nSender: secretary@example.org\r\nTo: {to}\r\n\
                 Subject: to {list}\r\n\r\nhello\r\n"
            ),
        )
        .await
        .expect(250);
    }
    assert!(wait_until(Duration::from_secs(20), || sink.delivered_count() == 2).await);
    let sender = |needle: &str| {
        let t = &with_subject(&sink, needle)[0];
        let m = MessageParser::default().parse(&t.data).unwrap();
        m.sender()
            .and_then(|s| s.first())
            .and_then(|a| a.address())
            .map(str::to_string)
    };
    assert_eq!(
        sender("to dev").as_deref(),
        Some(format!("dev-bounces@{DOMAIN}").as_str())
    );
    assert_eq!(sender("to plain").as_deref(), Some("secretary@example.org"));
    d.shutdown().await;
}
