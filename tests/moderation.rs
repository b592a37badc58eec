//! Moderation over real SMTP: the in-process daemon on 127.0.0.1, posts and
//! moderators' replies sent by a raw SMTP client, the capturing sink playing
//! the relay, every message that comes out parsed with mail-parser.
//!
//! Covers each hold reason the posting rules produce (policy, automatic mail,
//! bad password, and the message checks: size, suspicious header, implicit
//! destination, too many recipients, administrivia, emergency), the moderator notice
//! with the original attached byte-identical, approve by per-action reply
//! and by `approve TOKEN` to the robot, reject with a reason reaching the
//! poster, discard, approve-and-accept-sender (the next post is not held),
//! ban, a late second moderator, a forged approval, a reused token, the
//! `Approved:` header and body line (good and bad, stripped from the text
//! and HTML parts), expiry and reminders with a faked clock, reject by reply
//! with a reason, tokens bound to their list, an owner acting, the DMARC
//! hook, a null-sender post, `listd held` (approve, accept-sender, ban)
//! acting on a running daemon, and per-member moderation flags
//! (`listd members moderate`, `moderate_new_members`), and sender
//! verification: a forged owner on an announce list waits for the real
//! owner's confirmation.

mod common;

use common::sink::{Sink, Transaction};
use common::{run_cli, send, wait_until, TestEnv, DOMAIN};
use listd::daemon::DaemonHandle;
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use std::collections::HashMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const MODS: &str = "owners: [owner@example.org]\nmoderators: [mod@example.org, mod2@example.org]\n";

struct World {
    sink: Sink,
    env: TestEnv,
    daemon: DaemonHandle,
}

async fn world(lists: &[(&str, &str)]) -> World {
    world_with(lists, |b| b).await
}

/// [`world`], with more settings made on the environment.
async fn world_with(
    lists: &[(&str, &str)],
    tweak: impl FnOnce(common::TestEnvBuilder) -> common::TestEnvBuilder,
) -> World {
    let sink = Sink::start();
    // these tests tell one poster of many posts; the daily limit of poster
    // notices has its own tests (tests/abuse_robot.rs)
    let mut b = tweak(TestEnv::builder().relay_port(sink.port()).set(
        "robot",
        "poster_notices_per_day",
        "1000",
    ));
    for (name, yaml) in lists {
        b = b.list(name, yaml);
    }
    let env = b.build();
    for (name, _) in lists {
        env.add_members(name, &["ann@example.org", "bob@example.net"]);
    }
    let daemon = env.start().await;
    World { sink, env, daemon }
}

impl World {
    async fn send(&self, from: &str, to: &str, message: &str) {
        send(self.daemon.smtp_addr(), from, &[to], message)
            .await
            .expect(250);
        self.settle().await;
    }

    /// Waits until the incoming queue is worked off and every job is done.
    async fn settle(&self) {
        let env = &self.env;
        let ok = wait_until(WAIT, || {
            env.count("incoming", "state = 'incoming'") == 0
                && env.count("jobs", "state <> 'done'") == 0
        })
        .await;
        assert!(
            ok,
            "queues settle: {} incoming, {} jobs not done",
            env.count("incoming", "state = 'incoming'"),
            env.count("jobs", "state <> 'done'")
        );
    }

    /// Sink transactions to `rcpt` whose Subject contains `needle`.
    fn to(&self, rcpt: &str, needle: &str) -> Vec<Transaction> {
        self.sink
            .transactions()
            .into_iter()
            .filter(|t| t.rcpts.iter().any(|r| r == rcpt) && subject(&t.data).contains(needle))
            .collect()
    }

    /// The one moderator notice to `rcpt` about a post whose subject contains `needle`.
    fn notice(&self, rcpt: &str, needle: &str) -> Transaction {
        let v: Vec<Transaction> = self
            .to(rcpt, "Held for approval")
            .into_iter()
            .filter(|t| subject(&t.data).contains(needle))
            .collect();
        assert_eq!(v.len(), 1, "one notice to {rcpt} about {needle}: {v:?}");
        v.into_iter().next().unwrap()
    }

    /// mod@ approves the post about `needle` by replying to its approve
    /// address (with an empty reply); returns the members' copies.
    async fn approve_by_reply(&self, list: &str, needle: &str) -> Vec<Transaction> {
        self.act_by_reply(list, needle, "approve").await
    }

    /// mod@ replies (empty) to the `action` address of the notice about
    /// `needle`; returns the members' copies.
    async fn act_by_reply(&self, list: &str, needle: &str, action: &str) -> Vec<Transaction> {
        let t = tokens(&self.notice("mod@example.org", needle).data, list);
        self.send(
            "mod@example.org",
            &moderate(&t[action], list),
            "From: mod@example.org\r\nSubject: ok\r\n\r\n\r\n",
        )
        .await;
        distributed(self, needle)
    }

    /// Runs the `listd` binary on this world's config: (exit code, stdout, stderr).
    fn held(&self, needle: &str) -> (i64, String, String) {
        let conn = self.env.store();
        conn.query_row(
            "SELECT id, reason, state FROM held WHERE subject LIKE ?1 ORDER BY id DESC LIMIT 1",
            [format!("%{needle}%")],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap_or_else(|e| panic!("no held post about {needle}: {e}"))
    }
}

fn parse(data: &[u8]) -> Message<'_> {
    MessageParser::default().parse(data).expect("parsable mail")
}

fn subject(data: &[u8]) -> String {
    MessageParser::default()
        .parse(data)
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_default()
}

fn text(data: &[u8]) -> String {
    parse(data).body_text(0).unwrap_or_default().into_owned()
}

/// The action tokens in a moderator notice (action -> token), read from
/// the per-action addresses in the order the notice lists them.
fn tokens(notice: &[u8], list: &str) -> HashMap<&'static str, String> {
    let t = text(notice);
    let marker = format!("{list}-moderate+");
    let mut found = Vec::new();
    for line in t.lines() {
        if let Some(rest) = line.trim().strip_prefix(&marker) {
            let tok = rest.split('@').next().unwrap().to_string();
            if !found.contains(&tok) {
                found.push(tok);
            }
        }
    }
    let actions = ["approve", "accept", "reject", "discard", "ban"];
    assert_eq!(found.len(), actions.len(), "five action addresses in\n{t}");
    actions.into_iter().zip(found).collect()
}

fn post(from: &str, list: &str, subject: &str, extra: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: {list}@{DOMAIN}\r\nSubject: {subject}\r\nMessage-ID: <{}@test.example>\r\n\
         Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n{extra}\r\n{body}",
        common::rand_token()
    )
}

fn moderate(token: &str, list: &str) -> String {
    format!("{list}-moderate+{token}@{DOMAIN}")
}

/// The members' copies of a distributed post whose subject contains `needle`.
fn distributed(w: &World, needle: &str) -> Vec<Transaction> {
    w.sink
        .transactions()
        .into_iter()
        .filter(|t| {
            t.rcpts.iter().any(|r| r == "ann@example.org") && subject(&t.data).contains(needle)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hold_reason_reaches_the_moderators() {
    let w = world(&[
        (
            "dev",
            &format!("posting: members\nnonmember_posts: hold\n{MODS}"),
        ),
        ("modded", &format!("posting: moderated\n{MODS}")),
        (
            "news",
            &format!("posting: announce\nnonmember_posts: hold\n{MODS}"),
        ),
        (
            "pw",
            &format!(
                "posting: anyone\nmoderator_password: '{}'\n{MODS}",
                listd::moderation::hash_password("right").unwrap()
            ),
        ),
    ])
    .await;
    let eve = "eve@example.com";
    let cases = [
        (
            "dev",
            "r-nonmember",
            "",
            "non-member",
            "post from a non-member",
        ),
        (
            "modded",
            "r-moderated",
            "",
            "moderated",
            "the list is moderated",
        ),
        (
            "news",
            "r-announce",
            "",
            "announce-only",
            "announce-only list",
        ),
        (
            "dev",
            "r-bulk",
            "Precedence: bulk\r\n",
            "bulk",
            "bulk or junk",
        ),
        (
            "dev",
            "r-auto",
            "Auto-Submitted: auto-replied\r\n",
            "auto-reply",
            "an auto-reply",
        ),
        (
            "pw",
            "r-badpw",
            "Approved: wrong\r\n",
            "bad-approved-password",
            "bad Approved password",
        ),
    ];
    for (list, subj, extra, _, _) in cases {
        // bulk/auto-reply come from a member: the hold is about the automaton
        let from = if extra.starts_with("Precedence") || extra.starts_with("Auto") {
            "ann@example.org"
        } else {
            eve
        };
        w.send(
            from,
            &format!("{list}@{DOMAIN}"),
            &post(from, list, subj, extra, "Hello\r\n"),
        )
        .await;
    }
    for (list, subj, _, code, words) in cases {
        let (_, reason, state) = w.held(subj);
        assert_eq!((reason.as_str(), state.as_str()), (code, "held"), "{subj}");
        for m in ["mod@example.org", "mod2@example.org"] {
            let n = w.notice(m, subj);
            assert_eq!(n.mail_from, format!("{list}-bounces@{DOMAIN}"));
            let t = text(&n.data);
            assert!(t.contains(words), "{subj}: `{words}` not in\n{t}");
        }
        assert!(
            w.to("owner@example.org", subj).is_empty(),
            "owners are not bothered when there are moderators"
        );
    }
    // the poster hears it is held, except automatons; never why for a bad password
    let eve_heard: Vec<String> = w
        .to(eve, "awaits moderator approval")
        .iter()
        .map(|t| text(&t.data))
        .collect();
    assert_eq!(eve_heard.len(), 4, "{eve_heard:?}");
    assert!(eve_heard
        .iter()
        .all(|t| !t.to_ascii_lowercase().contains("password")));
    assert!(eve_heard.iter().any(|t| t.contains("not a member")));
    assert!(w
        .to("ann@example.org", "awaits moderator approval")
        .is_empty());
    // nothing was distributed
    assert!(distributed(&w, "r-").is_empty());
    w.daemon.shutdown().await;
}

/// The checks on the message itself hold a member's post too (Mailman's
/// max-size, header-match, implicit-dest, max-recipients, administrivia,
/// emergency); an oversize post is held, not refused, unless the list says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_checks_hold_members_posts_too() {
    let w = world(&[
        (
            "strict",
            &format!(
                "posting: members\nmax_message_size: 900\nhold_headers:\n  \
                 - header: X-Spam-Flag\n    pattern: '^yes'\n{MODS}"
            ),
        ),
        (
            "urgent",
            &format!("posting: anyone\nemergency: true\n{MODS}"),
        ),
        (
            "refuse",
            &format!("posting: anyone\nmax_message_size: 900\noversize_posts: reject\n{MODS}"),
        ),
    ])
    .await;
    let bob = "bob@example.net";
    let big = "a line of text to make the post larger than the limit\r\n".repeat(20);
    let cc: Vec<String> = (0..11).map(|i| format!("p{i}@example.com")).collect();
    let cases: Vec<(&str, &str, String, &str, &str)> = vec![
        (
            "strict",
            "m-size",
            post(bob, "strict", "m-size", "", &big),
            "size",
            "larger than the list's limit of 900 bytes",
        ),
        (
            "strict",
            "m-header",
            post(bob, "strict", "m-header", "X-Spam-Flag: YES\r\n", "hi\r\n"),
            "suspicious-header",
            "suspicious header: X-Spam-Flag: YES",
        ),
        (
            "strict",
            "m-implicit",
            post(bob, "strict", "m-implicit", "", "hi\r\n")
                .replace(&format!("To: strict@{DOMAIN}"), "To: someone@example.com"),
            "implicit-destination",
            "implicit destination",
        ),
        (
            "strict",
            "m-recipients",
            post(
                bob,
                "strict",
                "m-recipients",
                &format!("Cc: {}\r\n", cc.join(", ")),
                "hi\r\n",
            ),
            "max-recipients",
            "12 addresses in To/Cc",
        ),
        (
            "strict",
            "m-admin",
            post(
                bob,
                "strict",
                "m-admin",
                "",
                "\r\nunsubscribe strict\r\n\r\nthanks\r\n",
            ),
            "administrivia",
            "looks like a command",
        ),
        (
            "urgent",
            "m-emergency",
            post(bob, "urgent", "m-emergency", "", "hi\r\n"),
            "emergency",
            "emergency moderation",
        ),
    ];
    for (list, _, raw, _, _) in &cases {
        w.send(bob, &format!("{list}@{DOMAIN}"), raw).await;
    }
    for (list, subj, _, code, words) in &cases {
        let (_, reason, state) = w.held(subj);
        assert_eq!((reason.as_str(), state.as_str()), (*code, "held"), "{subj}");
        for m in ["mod@example.org", "mod2@example.org"] {
            let n = w.notice(m, subj);
            assert_eq!(n.mail_from, format!("{list}-bounces@{DOMAIN}"));
            let t = text(&n.data);
            assert!(t.contains(words), "{subj}: `{words}` not in\n{t}");
        }
        let heard: Vec<Transaction> = w
            .to(bob, "awaits moderator approval")
            .into_iter()
            .filter(|t| text(&t.data).contains(&format!("Subject: {subj}")))
            .collect();
        assert_eq!(heard.len(), 1, "{subj}: the poster hears it is held");
    }
    assert!(distributed(&w, "m-").is_empty());
    // the administrivia notice points the poster to the robot
    let admin = w
        .to(bob, "awaits moderator approval")
        .into_iter()
        .find(|t| text(&t.data).contains("Subject: m-admin"))
        .unwrap();
    assert!(
        text(&admin.data).contains("-request"),
        "{}",
        text(&admin.data)
    );
    // a list that refuses oversize posts says so at DATA; nothing is stored
    let before = w.env.count("messages", "1 = 1");
    let r = send(
        w.daemon.smtp_addr(),
        bob,
        &[&format!("refuse@{DOMAIN}")],
        &post(bob, "refuse", "m-refused", "", &big),
    )
    .await;
    r.expect(552);
    assert_eq!(r.status(), Some("5.3.4"));
    assert_eq!(w.env.count("messages", "1 = 1"), before);
    // approving the oversize post distributes it whole
    let out = w.approve_by_reply("strict", "m-size").await;
    assert_eq!(out.len(), 1);
    assert!(text(&out[0].data).contains(big.trim_end()));
    w.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notice_attaches_the_original_and_approve_by_reply_distributes_it() {
    let w = world(&[("dev", &format!("subject_prefix: \"[dev]\"\n{MODS}"))]).await;
    let eve = "eve@example.com";
    // 8-bit text, odd header spacing, a dot-leading line
    let body = "Grüße aus Köln\r\n.leading dot\r\nX-Not-A-Header:  kept\r\n";
    w.send(
        eve,
        &format!("dev@{DOMAIN}"),
        &post(eve, "dev", "approve-me", "X-Odd:   spacing\t \r\n", body),
    )
    .await;
    let n = w.notice("mod@example.org", "approve-me");
    // the attachment is the stored original, byte for byte
    let stored: Vec<u8> = w
        .env
        .inbound_messages()
        .into_iter()
        .map(|(_, b)| b)
        .find(|b| String::from_utf8_lossy(b).contains("approve-me"))
        .unwrap();
    let m = parse(&n.data);
    let att = m.attachment(0).expect("the original is attached");
    let ct = att.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("message", Some("rfc822")));
    assert_eq!(
        &n.data[att.offset_body as usize..att.offset_end as usize],
        &stored[..]
    );
    let PartType::Message(inner) = &att.body else {
        panic!("attachment not parsed as a message")
    };
    assert_eq!(inner.raw_message(), &stored[..]);
    let t = text(&n.data);
    for s in [
        "post from a non-member",
        eve,
        "Subject: approve-me",
        "Grüße aus Köln",
        "bytes",
    ] {
        assert!(t.contains(s), "{s} not in the notice:\n{t}");
    }
    let toks = tokens(&n.data, "dev");
    // both moderators got the same tokens
    assert_eq!(
        tokens(&w.notice("mod2@example.org", "approve-me").data, "dev"),
        toks
    );

    // approve by replying to the per-action address
    let reply = format!(
        "From: Mod <mod@example.org>\r\nTo: {}\r\nSubject: Re: {}\r\nMessage-ID: <r1@example.org>\r\n\r\nok\r\n",
        moderate(&toks["approve"], "dev"),
        subject(&n.data)
    );
    w.send(
        "mod@example.org",
        &moderate(&toks["approve"], "dev"),
        &reply,
    )
    .await;
    let out = distributed(&w, "approve-me");
    assert_eq!(out.len(), 1, "distributed once");
    let d = parse(&out[0].data);
    assert_eq!(d.subject(), Some("[dev] approve-me"));
    assert!(d
        .header_raw("List-Id")
        .unwrap()
        .contains(&format!("dev.{DOMAIN}")));
    assert!(
        text(&out[0].data).contains("Grüße aus Köln\r\n.leading dot")
            || text(&out[0].data).contains("Grüße aus Köln\n.leading dot")
    );
    assert!(String::from_utf8_lossy(&out[0].data).contains("X-Odd:   spacing\t \r\n"));
    let mut rcpts: Vec<String> = w
        .sink
        .transactions()
        .into_iter()
        .filter(|t| subject(&t.data) == "[dev] approve-me")
        .flat_map(|t| t.rcpts)
        .collect();
    rcpts.sort();
    assert_eq!(rcpts, ["ann@example.org", "bob@example.net"]);
    // ... and archived, like any accepted post
    assert_eq!(w.env.count("archive_index", "list = 'dev'"), 1);
    let answer = w.to("mod@example.org", "Re: ");
    assert_eq!(answer.len(), 1);
    assert!(
        text(&answer[0].data).contains("approved: held message"),
        "{}",
        text(&answer[0].data)
    );
    assert_eq!(w.held("approve-me").2, "approved");

    // the second moderator, later, with another token
    let late = format!(
        "From: mod2@example.org\r\nTo: {}\r\nSubject: Re: held\r\n\r\nno\r\n",
        moderate(&toks["reject"], "dev")
    );
    w.send("mod2@example.org", &moderate(&toks["reject"], "dev"), &late)
        .await;
    let a = w.to("mod2@example.org", "Re: held");
    assert_eq!(a.len(), 1);
    let t = text(&a[0].data);
    assert!(t.contains("already approved by mod@example.org at "), "{t}");
    assert_eq!(
        distributed(&w, "approve-me").len(),
        1,
        "still distributed once"
    );
    assert!(w.to(eve, "rejected").is_empty());
    w.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robot_commands_reject_discard_ban_accept_forgery_and_reuse() {
    let w = world(&[("dev", MODS)]).await;
    let eve = "eve@example.com";
    let dev = format!("dev@{DOMAIN}");
    let req = format!("dev-request@{DOMAIN}");
    for s in [
        "c-approve",
        "c-reject",
        "c-discard",
        "c-ban",
        "c-accept",
        "c-forged",
    ] {
        w.send(eve, &dev, &post(eve, "dev", s, "", "please post me\r\n"))
            .await;
    }
    let tok = |s: &str| tokens(&w.notice("mod@example.org", s).data, "dev");

    // approve TOKEN to the robot
    let t = tok("c-approve");
    w.send(
        "mod@example.org",
        &req,
        &format!(
            "From: mod@example.org\r\nTo: {req}\r\nSubject: x\r\n\r\napprove {}\r\n",
            t["approve"]
        ),
    )
    .await;
    assert_eq!(distributed(&w, "c-approve").len(), 1);
    let robot: Vec<String> = w
        .sink
        .transactions()
        .into_iter()
        .filter(|x| {
            x.rcpts == ["mod@example.org"]
                && x.mail_from.starts_with("dev-bounces")
                && !subject(&x.data).contains("Held")
        })
        .map(|x| text(&x.data))
        .collect();
    assert!(
        robot.iter().any(|r| r.contains("approved: held message")),
        "{robot:?}"
    );

    // reject TOKEN reason: the poster gets the reason
    let t = tok("c-reject");
    w.send(
        "mod@example.org",
        &req,
        &format!("From: mod@example.org\r\nTo: {req}\r\nSubject: x\r\n\r\nreject {} Please ask on the users list.\r\n", t["reject"]),
    )
    .await;
    assert_eq!(w.held("c-reject").2, "rejected");
    let rej = w.to(eve, "was rejected");
    assert_eq!(rej.len(), 1);
    let rt = text(&rej[0].data);
    // eve is no member: her Subject is not quoted back to her address
    assert!(
        rt.contains("Please ask on the users list.") && !rt.contains("c-reject"),
        "{rt}"
    );
    // a delivery report on the list address, from the null sender; no
    // header block quoted to a non-member
    assert_eq!(rej[0].mail_from, "");
    let m = parse(&rej[0].data);
    let ct = m.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    assert_eq!(m.parts.len(), 3, "text/plain and the status only");
    let status = String::from_utf8_lossy(m.parts[2].contents()).into_owned();
    assert!(
        status.contains(&format!(
            "Final-Recipient: rfc822; dev@{DOMAIN}\r\nAction: failed\r\nStatus: 5.7.1\r\n\
             Diagnostic-Code: smtp; 550 5.7.1 rejected by a moderator: Please ask on the users list.\r\n"
        )),
        "{status}"
    );
    assert!(!status.contains("c-reject"), "{status}");

    // discard by reply: silent
    let t = tok("c-discard");
    w.send(
        "mod@example.org",
        &moderate(&t["discard"], "dev"),
        "From: mod@example.org\r\nSubject: d\r\n\r\n\r\n",
    )
    .await;
    assert_eq!(w.held("c-discard").2, "discarded");
    assert!(distributed(&w, "c-discard").is_empty());
    assert_eq!(
        w.to(eve, "was rejected").len(),
        1,
        "no new mail to the poster"
    );

    // a forged approval: refused, logged, the post stays held
    let t = tok("c-forged");
    w.send(
        "mallory@example.com",
        &moderate(&t["approve"], "dev"),
        "From: Mod <mallory@example.com>\r\nSubject: f\r\n\r\nok\r\n",
    )
    .await;
    assert_eq!(w.held("c-forged").2, "held");
    assert!(distributed(&w, "c-forged").is_empty());
    assert_eq!(
        w.env.count(
            "mod_log",
            "actor = 'mallory@example.com' AND outcome = 'refused'"
        ),
        1
    );
    assert!(text(&w.to("mallory@example.com", "")[0].data).contains("refused"));

    // ban: this post dropped, the next one discarded without a hold
    let t = tok("c-ban");
    w.send(
        "mod2@example.org",
        &moderate(&t["ban"], "dev"),
        "From: mod2@example.org\r\nSubject: b\r\n\r\n\r\n",
    )
    .await;
    assert_eq!(w.held("c-ban").2, "discarded");
    let held_before = w.env.count("held", "");
    w.send(eve, &dev, &post(eve, "dev", "c-after-ban", "", "again\r\n"))
        .await;
    assert_eq!(
        w.env.count("held", ""),
        held_before,
        "a banned sender's post is not held"
    );
    assert!(distributed(&w, "c-after-ban").is_empty());
    // a reused token: nothing happens twice
    w.send(
        "mod2@example.org",
        &moderate(&t["ban"], "dev"),
        "From: mod2@example.org\r\nSubject: again\r\n\r\n\r\n",
    )
    .await;
    let again = w.to("mod2@example.org", "Re: again");
    assert!(text(&again[0].data)
        .contains("already discarded (and the sender banned) by mod2@example.org"));

    // approve and always accept: distributed, and the next post is not held
    let carl = "carl@example.com";
    w.send(carl, &dev, &post(carl, "dev", "c-accept-1", "", "hi\r\n"))
        .await;
    assert_eq!(w.act_by_reply("dev", "c-accept-1", "accept").await.len(), 1);
    w.send(
        carl,
        &dev,
        &post(carl, "dev", "c-accept-2", "", "hi again\r\n"),
    )
    .await;
    assert_eq!(
        distributed(&w, "c-accept-2").len(),
        1,
        "the accepted sender's next post goes straight out"
    );
    assert!(w.to("mod@example.org", "c-accept-2").is_empty());
    w.daemon.shutdown().await;
}

/// Reject by replying with a reason; a token works only for its own list
/// and only for that list's moderators and owners; an owner may act by
/// `discard TOKEN`; the DMARC hook refuses a From: our intake saw fail;
/// a null-sender post is held without telling anyone but the moderators.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_tokens_across_lists_dmarc_hook_and_the_null_sender() {
    // example.org publishes DMARC; its mail comes from 127.0.0.1
    let w = world_with(
        &[
            ("dev", MODS),
            (
                "ops",
                "owners: [opsowner@example.org]\nmoderators: [opsmod@example.org]\n",
            ),
        ],
        |b| {
            b.zone(
                "example.org TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
                 _dmarc.example.org TXT \"v=DMARC1; p=none\"\n",
            )
        },
    )
    .await;
    let eve = "eve@example.com";
    let dev = format!("dev@{DOMAIN}");
    for s in ["x-reject", "x-cross", "x-dmarc"] {
        w.send(eve, &dev, &post(eve, "dev", s, "", "please post me\r\n"))
            .await;
    }
    let tok = |s: &str| tokens(&w.notice("mod@example.org", s).data, "dev");

    // reject by reply: the text above the quote reaches the poster
    let t = tok("x-reject");
    w.send(
        "mod@example.org",
        &moderate(&t["reject"], "dev"),
        "From: mod@example.org\r\nSubject: Re: held\r\n\r\nOff topic here, try the ops list.\r\n\r\n\
         On Monday eve wrote:\r\n> please post me\r\n",
    )
    .await;
    assert_eq!(w.held("x-reject").2, "rejected");
    let rej = w.to(eve, "was rejected");
    assert_eq!(rej.len(), 1);
    let rt = text(&rej[0].data);
    assert!(rt.contains("Off topic here, try the ops list."), "{rt}");
    assert!(!rt.contains("eve wrote"), "the quote stays out: {rt}");

    // another list's moderator: refused with dev's address, unknown with ops'
    let t = tok("x-cross");
    w.send(
        "opsmod@example.org",
        &moderate(&t["approve"], "dev"),
        "From: opsmod@example.org\r\nSubject: c1\r\n\r\n\r\n",
    )
    .await;
    // answers to an unverified sender quote nothing it wrote (no "c1")
    let answer = w.to("opsmod@example.org", "[dev] moderation");
    assert_eq!(answer.len(), 1);
    assert!(text(&answer[0].data).contains("refused"));
    w.send(
        "opsmod@example.org",
        &moderate(&t["approve"], "ops"),
        "From: opsmod@example.org\r\nSubject: c2\r\n\r\n\r\n",
    )
    .await;
    let answer = w.to("opsmod@example.org", "[ops] moderation");
    assert_eq!(answer.len(), 1);
    assert!(text(&answer[0].data).contains("unknown moderation token"));
    assert_eq!(w.held("x-cross").2, "held");
    assert_eq!(
        w.env.count(
            "mod_log",
            "actor = 'opsmod@example.org' AND outcome = 'refused'"
        ),
        1
    );
    assert_eq!(
        w.env.count(
            "mod_log",
            "actor = 'opsmod@example.org' AND outcome = 'unknown-token'"
        ),
        1
    );
    // the list's owner may act too: `discard TOKEN` to the robot
    let req = format!("dev-request@{DOMAIN}");
    w.send(
        "owner@example.org",
        &req,
        &format!(
            "From: owner@example.org\r\nTo: {req}\r\nSubject: x\r\n\r\ndiscard {}\r\n",
            t["discard"]
        ),
    )
    .await;
    let (_, _, st) = w.held("x-cross");
    assert_eq!(st, "discarded");
    assert!(distributed(&w, "x-cross").is_empty());

    // DMARC: a moderator's From: whose domain publishes DMARC counts only
    // when it passed at our intake; a forged Authentication-Results saying
    // it passed is removed at intake and never read
    let host = w.env.config().smtp.hostname;
    let t = tok("x-dmarc");
    w.send(
        "mallory@example.com",
        &moderate(&t["approve"], "dev"),
        &format!(
            "Authentication-Results: {host}; dmarc=pass header.from=example.org\r\n\
             From: mod@example.org\r\nSubject: d\r\n\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(w.held("x-dmarc").2, "held");
    assert!(distributed(&w, "x-dmarc").is_empty());
    assert_eq!(
        w.env.count(
            "mod_log",
            "actor = 'mod@example.org' AND outcome = 'refused'"
        ),
        1
    );

    // a null-sender post: held and shown to the moderators, nobody else hears
    let before = w.sink.transactions().len();
    w.send(
        "",
        &dev,
        &post("daemon@example.com", "dev", "x-null", "", "automatic\r\n"),
    )
    .await;
    assert_eq!(w.held("x-null").2, "held");
    let new: Vec<Transaction> = w.sink.transactions().into_iter().skip(before).collect();
    assert_eq!(new.len(), 1, "only the moderators' notice: {new:?}");
    let mut rcpts = new[0].rcpts.clone();
    rcpts.sort();
    assert_eq!(rcpts, ["mod2@example.org", "mod@example.org"]);
    assert!(w.to("daemon@example.com", "").is_empty());
    w.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_sender_skips_a_moderated_list_too() {
    let w = world(&[("modded", &format!("posting: moderated\n{MODS}"))]).await;
    let to = format!("modded@{DOMAIN}");
    w.send(
        "ann@example.org",
        &to,
        &post("ann@example.org", "modded", "m-1", "", "x\r\n"),
    )
    .await;
    let t = tokens(&w.notice("mod@example.org", "m-1").data, "modded");
    w.send(
        "mod@example.org",
        &moderate(&t["accept"], "modded"),
        "From: mod@example.org\r\nSubject: a\r\n\r\n\r\n",
    )
    .await;
    w.send(
        "ann@example.org",
        &to,
        &post("ann@example.org", "modded", "m-2", "", "y\r\n"),
    )
    .await;
    assert_eq!(distributed(&w, "m-2").len(), 1);
    assert_eq!(w.env.count("held", "subject = 'm-2'"), 0);
    w.daemon.shutdown().await;
}

fn alternative(from: &str, list: &str, subj: &str, first_line: &str, html_first: &str) -> String {
    post(
        from,
        list,
        subj,
        "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"ALT\"\r\n",
        &format!(
            "--ALT\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{first_line}\r\nThe real text.\r\n\
             --ALT\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>{html_first}</p><p>The real text.</p>\r\n--ALT--\r\n"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_header_and_body_line_good_and_bad() {
    let hash = listd::moderation::hash_password("s3cret pw").unwrap();
    let w = world(&[(
        "dev",
        &format!("posting: moderated\nmoderator_password: '{hash}'\n{MODS}"),
    )])
    .await;
    let eve = "eve@example.com";
    let dev = format!("dev@{DOMAIN}");

    // good header: straight out, header gone
    w.send(
        eve,
        &dev,
        &post(
            eve,
            "dev",
            "a-header-good",
            "Approved: s3cret pw\r\n",
            "body\r\n",
        ),
    )
    .await;
    let out = distributed(&w, "a-header-good");
    assert_eq!(out.len(), 1);
    assert!(parse(&out[0].data).header_raw("Approved").is_none());
    assert!(!String::from_utf8_lossy(&out[0].data).contains("s3cret"));

    // good body line in text and its HTML twin: both stripped
    w.send(
        eve,
        &dev,
        &alternative(
            eve,
            "dev",
            "a-body-good",
            "Approved: s3cret pw",
            "Approved:&nbsp;s3cret pw",
        ),
    )
    .await;
    let out = distributed(&w, "a-body-good");
    assert_eq!(out.len(), 1);
    let raw = String::from_utf8_lossy(&out[0].data).into_owned();
    assert!(!raw.contains("s3cret"), "{raw}");
    let m = parse(&out[0].data);
    assert_eq!(m.body_text(0).unwrap().trim(), "The real text.");
    assert_eq!(
        m.body_html(0).unwrap().trim(),
        "<p></p><p>The real text.</p>"
    );

    // bad header and bad body line: held as "bad Approved password"; the
    // poster is never told why; approval later strips the line
    w.send(
        eve,
        &dev,
        &post(
            eve,
            "dev",
            "a-header-bad",
            "Approved: guess\r\n",
            "body\r\n",
        ),
    )
    .await;
    w.send(
        eve,
        &dev,
        &alternative(
            eve,
            "dev",
            "a-body-bad",
            "Approved: guess",
            "Approved: guess",
        ),
    )
    .await;
    for s in ["a-header-bad", "a-body-bad"] {
        let (_, reason, state) = w.held(s);
        assert_eq!(
            (reason.as_str(), state.as_str()),
            ("bad-approved-password", "held")
        );
        assert!(text(&w.notice("mod@example.org", s).data).contains("bad Approved password"));
    }
    for t in w.to(eve, "awaits moderator approval") {
        let t = text(&t.data).to_ascii_lowercase();
        assert!(!t.contains("password") && !t.contains("approved:"), "{t}");
    }
    let out = w.approve_by_reply("dev", "a-body-bad").await;
    assert_eq!(out.len(), 1);
    assert!(!String::from_utf8_lossy(&out[0].data).contains("guess"));
    assert_eq!(
        parse(&out[0].data).body_text(0).unwrap().trim(),
        "The real text."
    );
    w.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_and_reminders_with_a_faked_clock() {
    let w = world(&[("dev", &format!("hold_days: 3\n{MODS}"))]).await;
    let eve = "eve@example.com";
    w.send(
        eve,
        &format!("dev@{DOMAIN}"),
        &post(eve, "dev", "e-old", "", "x\r\n"),
    )
    .await;
    let toks = tokens(&w.notice("mod@example.org", "e-old").data, "dev");
    let now = listd::store::now();
    let ctx = w.env.ctx();
    let mut conn = w.env.store();
    // a day and a bit later: a reminder, no expiry
    assert_eq!(
        listd::moderation::remind(&ctx, &mut conn, now + 86_400 + 60).unwrap(),
        1
    );
    assert_eq!(
        listd::moderation::expire(&ctx, &mut conn, now + 86_400 + 60).unwrap(),
        0
    );
    w.daemon.wakers.delivery.notify_one();
    w.settle().await;
    let rem = w.to("mod@example.org", "await moderation");
    assert_eq!(rem.len(), 1);
    assert!(text(&rem[0].data).contains("e-old"));
    // after hold_days: expired, the poster told, the tokens dead
    assert_eq!(
        listd::moderation::expire(&ctx, &mut conn, now + 3 * 86_400 + 60).unwrap(),
        1
    );
    w.daemon.wakers.delivery.notify_one();
    w.settle().await;
    assert_eq!(w.held("e-old").2, "expired");
    let exp = w.to(eve, "expired");
    assert_eq!(exp.len(), 1);
    assert!(text(&exp[0].data).contains("3 days"));
    w.send(
        "mod@example.org",
        &moderate(&toks["approve"], "dev"),
        "From: mod@example.org\r\nSubject: late\r\n\r\n\r\n",
    )
    .await;
    assert!(text(&w.to("mod@example.org", "Re: late")[0].data).contains("already expired"));
    assert!(distributed(&w, "e-old").is_empty());
    w.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listd_held_approves_accepts_and_bans_on_a_running_daemon() {
    let w = world(&[("dev", MODS)]).await;
    let eve = "eve@example.com";
    w.send(
        eve,
        &format!("dev@{DOMAIN}"),
        &post(eve, "dev", "cli-approve", "", "x\r\n"),
    )
    .await;
    let (id, _, _) = w.held("cli-approve");
    let (_, queue, _) = run_cli(&w.env, &["queue"]);
    assert!(
        queue
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["hold", "1"])),
        "listd queue counts the held post: {queue}"
    );
    let listd = |args: &[&str]| {
        let (code, _, err) = run_cli(&w.env, args);
        assert_eq!(code, 0, "{err}");
    };
    listd(&["held", "approve", &id.to_string()]);
    w.daemon.wakers.delivery.notify_one();
    w.settle().await;
    assert_eq!(distributed(&w, "cli-approve").len(), 1);
    // accept-sender: the next post of that non-member goes straight out
    let carl = "carl@example.com";
    listd(&["held", "accept-sender", "dev", carl]);
    w.send(
        carl,
        &format!("dev@{DOMAIN}"),
        &post(carl, "dev", "cli-accepted", "", "x\r\n"),
    )
    .await;
    assert_eq!(distributed(&w, "cli-accepted").len(), 1);
    assert_eq!(w.env.count("held", "subject = 'cli-accepted'"), 0);
    // ban: the next post of that sender is dropped, neither held nor sent
    listd(&["held", "ban", "dev", eve]);
    w.send(
        eve,
        &format!("dev@{DOMAIN}"),
        &post(eve, "dev", "cli-banned", "", "x\r\n"),
    )
    .await;
    assert_eq!(w.env.count("held", "subject = 'cli-banned'"), 0);
    assert!(distributed(&w, "cli-banned").is_empty());
    assert!(w.to("mod@example.org", "cli-banned").is_empty());
    w.daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_expires_and_reminds_by_itself() {
    let sink = Sink::start();
    let env = TestEnv::builder()
        .relay_port(sink.port())
        .list("dev", &format!("hold_days: 2\n{MODS}"))
        .build();
    // a post held three days ago, and one held a day and a half ago, before the daemon starts
    let ctx = env.ctx();
    let now = listd::store::now();
    let mut conn = env.store();
    for (subj, age) in [("d-old", 3 * 86_400), ("d-pending", 36 * 3600)] {
        let bytes = post("eve@example.com", "dev", subj, "", "x\r\n").into_bytes();
        let tx = conn.transaction().unwrap();
        let e = listd::store::spool::Envelope {
            mail_from: "eve@example.com".into(),
            rcpts: vec![],
            client_ip: None,
            helo: "x".into(),
            protocol: "ESMTP".into(),
        };
        let mid = listd::store::spool::insert_inbound(&tx, &e, &bytes, now - age).unwrap();
        let msg = listd::handler::Inbound {
            incoming_id: 0,
            message_id: mid,
            rcpt: format!("dev@{DOMAIN}"),
            route: listd::routing::route(&ctx.config, &format!("dev@{DOMAIN}")).unwrap(),
            env_from: "eve@example.com".into(),
            client_ip: None,
            received_at: now - age,
            bytes,
            now: now - age,
        };
        listd::moderation::hold(
            &ctx,
            &tx,
            "dev",
            &msg,
            listd::moderation::HoldReason::NonMember,
            now - age,
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let daemon = env.start().await;
    let w = World { sink, env, daemon };
    let ok = wait_until(WAIT, || {
        !w.to("eve@example.com", "expired").is_empty()
            && !w.to("mod@example.org", "await moderation").is_empty()
    })
    .await;
    assert!(
        ok,
        "the daemon's moderation worker expired the old post and reminded the moderators"
    );
    assert_eq!(w.held("d-old").2, "expired");
    assert_eq!(w.held("d-pending").2, "held");
    let rem = text(&w.to("mod@example.org", "await moderation")[0].data);
    assert!(rem.contains("d-pending") && !rem.contains("d-old"), "{rem}");
    w.daemon.shutdown().await;
}

/// Per-member moderation flags (Mailman's member `moderate` bit), set with
/// `listd members moderate` on a running daemon: hold (then "approve and
/// always accept" clears it), reject with a notice, discard silently, accept
/// on a moderated list; `moderate_new_members` flags members who join by
/// the robot or the CLI; bad input gets a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_moderation_flags() {
    let w = world(&[
        ("dev", MODS),
        ("mod", &format!("{MODS}posting: moderated\n")),
        (
            "newbies",
            &format!("{MODS}subscription: open\nmoderate_new_members: true\n"),
        ),
    ])
    .await;
    let listd = |args: &[&str]| run_cli(&w.env, args);
    let flag = |list: &str, addr: &str| -> Option<String> {
        w.env
            .store()
            .query_row(
                "SELECT moderation FROM members WHERE list = ?1 AND address = ?2",
                [list, addr],
                |r| r.get(0),
            )
            .unwrap()
    };
    let bob = "bob@example.net";
    let dev = format!("dev@{DOMAIN}");

    // hold: held with its own reason, the moderators are told
    let (code, out, _) = listd(&["members", "moderate", "dev", "hold", bob]);
    assert_eq!(code, 0);
    assert!(out.contains("1 set to hold"), "{out}");
    let (_, out, _) = listd(&["members", "list", "dev"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with(bob) && l.contains("moderation=hold")),
        "{out}"
    );
    w.send(bob, &dev, &post(bob, "dev", "mm-hold", "", "x\r\n"))
        .await;
    let (_, reason, state) = w.held("mm-hold");
    assert_eq!(
        (reason.as_str(), state.as_str()),
        ("member-moderated", "held")
    );
    assert!(distributed(&w, "mm-hold").is_empty());
    // "approve and always accept": distributed, and the flag is cleared
    assert_eq!(w.act_by_reply("dev", "mm-hold", "accept").await.len(), 1);
    assert_eq!(flag("dev", bob), None);
    w.send(bob, &dev, &post(bob, "dev", "mm-after", "", "x\r\n"))
        .await;
    assert_eq!(distributed(&w, "mm-after").len(), 1);
    assert_eq!(w.env.count("held", "subject = 'mm-after'"), 0);

    // reject: not held, not sent; the poster gets the reason
    listd(&["members", "moderate", "dev", "reject", bob]);
    w.send(bob, &dev, &post(bob, "dev", "mm-reject", "", "x\r\n"))
        .await;
    assert_eq!(w.env.count("held", "subject = 'mm-reject'"), 0);
    assert!(distributed(&w, "mm-reject").is_empty());
    let notices = w.to(bob, "was not accepted");
    assert_eq!(notices.len(), 1, "one rejection notice");
    let nt = text(&notices[0].data);
    assert!(
        nt.contains("mm-reject") && nt.contains("do not accept posts from you"),
        "{nt}"
    );

    // discard: nothing at all
    listd(&["members", "moderate", "dev", "discard", bob]);
    let before = w.sink.transactions().len();
    w.send(bob, &dev, &post(bob, "dev", "mm-discard", "", "x\r\n"))
        .await;
    assert_eq!(w.env.count("held", "subject = 'mm-discard'"), 0);
    assert_eq!(w.sink.transactions().len(), before, "silently dropped");

    // default: the list's policy again (members may post)
    listd(&["members", "moderate", "dev", "default", bob]);
    assert_eq!(flag("dev", bob), None);
    w.send(bob, &dev, &post(bob, "dev", "mm-default", "", "x\r\n"))
        .await;
    assert_eq!(distributed(&w, "mm-default").len(), 1);

    // accept: a moderated list lets this member through, not the others
    listd(&["members", "moderate", "mod", "accept", "ann@example.org"]);
    let m = format!("mod@{DOMAIN}");
    w.send(
        "ann@example.org",
        &m,
        &post("ann@example.org", "mod", "mm-accepted", "", "x\r\n"),
    )
    .await;
    assert_eq!(distributed(&w, "mm-accepted").len(), 1);
    w.send(bob, &m, &post(bob, "mod", "mm-moderated", "", "x\r\n"))
        .await;
    assert_eq!(w.held("mm-moderated").1, "moderated");

    // moderate_new_members: a robot subscription and a CLI add start held
    let carl = "carl@example.com";
    w.send(
        carl,
        &format!("newbies-request@{DOMAIN}"),
        &format!("From: {carl}\r\nSubject: subscribe\r\n\r\nsubscribe\r\n"),
    )
    .await;
    assert_eq!(flag("newbies", carl).as_deref(), Some("hold"));
    listd(&["members", "add", "newbies", "dora@example.com"]);
    assert_eq!(flag("newbies", "dora@example.com").as_deref(), Some("hold"));
    w.send(
        carl,
        &format!("newbies@{DOMAIN}"),
        &post(carl, "newbies", "mm-newbie", "", "x\r\n"),
    )
    .await;
    assert_eq!(w.held("mm-newbie").1, "member-moderated");

    // bad input: a clear error and exit 1
    let (code, _, err) = listd(&["members", "moderate", "dev", "sometimes", bob]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown moderation `sometimes`"), "{err}");
    let (code, out, err) = listd(&["members", "moderate", "dev", "hold", "zed@example.com"]);
    assert_eq!(code, 1);
    assert!(out.contains("1 not members"), "{out}");
    assert!(err.contains("zed@example.com is not a member"), "{err}");
    w.daemon.shutdown().await;
}

/// The confirmation request about a post whose subject contains `needle`.
fn confirmation(w: &World, rcpt: &str, needle: &str) -> Vec<Transaction> {
    w.to(rcpt, "Did you send this?")
        .into_iter()
        .filter(|t| String::from_utf8_lossy(&t.data).contains(needle))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_owner_on_an_announce_list_waits_for_the_real_owner() {
    let hash = listd::moderation::hash_password("s3cret pw").unwrap();
    let w = world_with(
        &[
            (
                "news",
                &format!(
                    "posting: announce\nnonmember_posts: hold\nmoderator_password: '{hash}'\n{MODS}"
                ),
            ),
            ("dev", &format!("posting: members\n{MODS}")),
        ],
        |b| b.set("robot", "replies_per_hour", "3"),
    )
    .await;
    let owner = "owner@example.org";
    let news = format!("news@{DOMAIN}");
    // eve forges the owner's address, in From: and in the envelope
    w.send(
        owner,
        &news,
        &post(owner, "news", "forged-one", "", "buy now\r\n"),
    )
    .await;
    assert!(distributed(&w, "forged-one").is_empty(), "not distributed");
    let (id, reason, state) = w.held("forged-one");
    assert_eq!(
        (reason.as_str(), state.as_str()),
        ("sender-unverified", "held")
    );
    // the real owner is asked, with the post attached; nobody else hears of it
    let c = confirmation(&w, owner, "forged-one");
    assert_eq!(c.len(), 1, "one confirmation to the owner");
    assert_eq!(c[0].rcpts, vec![owner.to_string()]);
    assert_eq!(c[0].mail_from, format!("news-bounces@{DOMAIN}"));
    let m = parse(&c[0].data);
    let reply_to = m
        .reply_to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap()
        .to_string();
    assert!(reply_to.starts_with("news-moderate+"), "{reply_to}");
    let body = text(&c[0].data);
    assert!(body.contains("an owner or moderator of the list"), "{body}");
    let attached = m.attachments().find_map(|a| {
        a.message()
            .map(|inner| inner.subject().unwrap_or("").to_string())
    });
    assert_eq!(attached.as_deref(), Some("forged-one"));
    for other in ["mod@example.org", "mod2@example.org", "ann@example.org"] {
        assert!(
            w.sink
                .transactions()
                .iter()
                .all(|t| !t.rcpts.iter().any(|r| r == other)),
            "{other} heard of the forged post"
        );
    }
    // the owner confirms by replying: released to the members, first action wins
    w.send(
        owner,
        &reply_to,
        &format!("From: {owner}\r\nTo: {reply_to}\r\nSubject: Re: confirm\r\n\r\nyes, mine\r\n"),
    )
    .await;
    let copies = distributed(&w, "forged-one");
    assert_eq!(copies.len(), 1, "{copies:?}");
    let mut rcpts: Vec<String> = w
        .sink
        .transactions()
        .into_iter()
        .filter(|t| subject(&t.data) == "forged-one")
        .flat_map(|t| t.rcpts)
        .collect();
    rcpts.sort();
    assert_eq!(rcpts, ["ann@example.org", "bob@example.net"]);
    let out = parse(&copies[0].data);
    assert_eq!(out.subject(), Some("forged-one"));
    assert_eq!(
        out.header_raw("List-Id").map(str::trim),
        Some(format!("<news.{DOMAIN}>").as_str())
    );
    assert_eq!(w.held("forged-one").2, "approved");
    let (action, by): (String, String) = w
        .env
        .store()
        .query_row(
            "SELECT action, acted_by FROM held WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((action.as_str(), by.as_str()), ("confirm", owner));
    assert_eq!(w.to(owner, "Re: confirm").len(), 1, "the owner is told");
    // the token is single-use; a moderator's later approval finds it decided
    w.send(
        owner,
        &reply_to,
        &format!("From: {owner}\r\nSubject: again\r\n\r\n\r\n"),
    )
    .await;
    assert!(text(&w.to(owner, "again")[0].data).contains("already confirmed by its sender"));
    let (code, _, err) = run_cli(&w.env, &["held", "approve", &id.to_string()]);
    assert_ne!(code, 0);
    assert!(err.contains("already confirmed by its sender"), "{err}");
    assert_eq!(distributed(&w, "forged-one").len(), 1, "sent once");

    // an automated post is held, but no confirmation answers it
    w.send(
        owner,
        &news,
        &post(
            owner,
            "news",
            "forged-auto",
            "Precedence: list\r\n",
            "x\r\n",
        ),
    )
    .await;
    assert_eq!(w.held("forged-auto").1, "sender-unverified");
    assert!(confirmation(&w, owner, "forged-auto").is_empty());

    // the robot's `confirm TOKEN` releases a held post too
    w.send(
        owner,
        &news,
        &post(owner, "news", "forged-two", "", "x\r\n"),
    )
    .await;
    let c = confirmation(&w, owner, "forged-two");
    let token = subject(&c[0].data).rsplit(' ').next().unwrap().to_string();
    w.send(
        owner,
        &format!("news-request@{DOMAIN}"),
        &common::message(
            owner,
            &format!("news-request@{DOMAIN}"),
            "",
            &format!("confirm {token}"),
        ),
    )
    .await;
    assert_eq!(distributed(&w, "forged-two").len(), 1);
    // confirmations, like every mail to an unproven address, are rate
    // limited per address: two requests and the robot's reply used the 3
    w.send(
        owner,
        &news,
        &post(owner, "news", "forged-three", "", "x\r\n"),
    )
    .await;
    assert_eq!(w.held("forged-three").1, "sender-unverified");
    assert!(confirmation(&w, owner, "forged-three").is_empty());

    // a valid Approved: password still distributes at once
    w.send(
        owner,
        &news,
        &post(
            owner,
            "news",
            "approved-one",
            "Approved: s3cret pw\r\n",
            "x\r\n",
        ),
    )
    .await;
    assert_eq!(distributed(&w, "approved-one").len(), 1);
    assert_eq!(w.env.count("held", "subject = 'approved-one'"), 0);
    // a post that claims no privilege is handled as before: a member posts
    // to a members list, a member is held on the announce list
    let ann = "ann@example.org";
    w.send(
        ann,
        &format!("dev@{DOMAIN}"),
        &post(ann, "dev", "member-post", "", "x\r\n"),
    )
    .await;
    assert_eq!(distributed(&w, "member-post").len(), 1);
    w.send(ann, &news, &post(ann, "news", "member-news", "", "x\r\n"))
        .await;
    assert_eq!(w.held("member-news").1, "announce-only");
    assert!(confirmation(&w, ann, "member-news").is_empty());
    assert_eq!(w.notice("mod@example.org", "member-news").rcpts.len(), 2);
}

/// The notice's Reply-To: the reply token's address, which is none of the
/// five per-action addresses.
fn reply_to(notice: &Transaction, list: &str) -> String {
    let m = parse(&notice.data);
    let addr = m
        .reply_to()
        .and_then(|r| r.first())
        .and_then(|a| a.address())
        .expect("the notice has a Reply-To")
        .to_string();
    assert!(addr.starts_with(&format!("{list}-moderate+")), "{addr}");
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_reply_to_the_notice_acts_by_its_first_word() {
    let w = world(&[("dev", MODS)]).await;
    let eve = "eve@example.com";
    let dev = format!("dev@{DOMAIN}");
    for s in ["r-reject", "r-approve", "r-wrong-token"] {
        w.send(eve, &dev, &post(eve, "dev", s, "", "please post me\r\n"))
            .await;
    }
    let n = w.notice("mod@example.org", "r-reject");
    let reply_addr = reply_to(&n, "dev");
    let toks = tokens(&n.data, "dev");
    assert!(
        toks.values().all(|t| !reply_addr.contains(t.as_str())),
        "the Reply-To is its own token"
    );
    assert!(text(&n.data).contains(&reply_addr), "the notice names it");
    let reply = |from: &str, subj: &str, body: &str| {
        format!(
            "From: {from}\r\nTo: {reply_addr}\r\nSubject: Re: {subj}\r\n\
             Message-ID: <{}@example.org>\r\n\r\n{body}",
            common::rand_token()
        )
    };

    // a reply that names no action does nothing, and says what to write
    w.send(
        "mod@example.org",
        &reply_addr,
        &reply(
            "mod@example.org",
            "r1",
            "Looks like spam to me?\r\n\r\n> A post to dev is held\r\n",
        ),
    )
    .await;
    let a = w.to("mod@example.org", "Re: r1");
    assert_eq!(a.len(), 1, "one answer");
    let t = text(&a[0].data);
    assert!(t.contains("nothing was done"), "{t}");
    assert!(t.contains("approve, accept"), "{t}");
    assert_eq!(w.held("r-reject").2, "held");

    // someone who is not a moderator cannot use the Reply-To address
    w.send(eve, &reply_addr, &reply(eve, "r2", "approve\r\n"))
        .await;
    assert_eq!(w.held("r-reject").2, "held");
    assert!(distributed(&w, "r-reject").is_empty());

    // "reject" rejects, and the rest of the line is the reason
    w.send(
        "mod@example.org",
        &reply_addr,
        &reply(
            "mod@example.org",
            "r3",
            "Reject: off topic here, try the users list\r\n\r\nOn Monday the list wrote:\r\n> held\r\n",
        ),
    )
    .await;
    assert_eq!(w.held("r-reject").2, "rejected");
    assert!(distributed(&w, "r-reject").is_empty());
    let rej = w.to(eve, "was rejected");
    assert_eq!(rej.len(), 1);
    let t = text(&rej[0].data);
    assert!(t.contains("off topic here, try the users list"), "{t}");
    assert!(!t.contains("Reject:"), "the verb is not the reason: {t}");

    // "approve" on another post's Reply-To distributes it
    let n2 = w.notice("mod@example.org", "r-approve");
    let addr2 = reply_to(&n2, "dev");
    w.send(
        "mod@example.org",
        &addr2,
        &format!("From: mod@example.org\r\nTo: {addr2}\r\nSubject: Re: r4\r\n\r\nApprove.\r\n"),
    )
    .await;
    assert_eq!(distributed(&w, "r-approve").len(), 1);
    assert_eq!(w.held("r-approve").2, "approved");

    // a per-action address never does what the reply's first word refuses
    let t3 = tokens(&w.notice("mod@example.org", "r-wrong-token").data, "dev");
    w.send(
        "mod@example.org",
        &moderate(&t3["approve"], "dev"),
        "From: mod@example.org\r\nSubject: Re: r5\r\n\r\nreject, not for this list\r\n",
    )
    .await;
    assert_eq!(w.held("r-wrong-token").2, "held");
    let a = w.to("mod@example.org", "Re: r5");
    assert_eq!(a.len(), 1);
    assert!(
        text(&a[0].data).contains("this token is for `approve`, not `reject`"),
        "{}",
        text(&a[0].data)
    );
    w.daemon.shutdown().await;
}
