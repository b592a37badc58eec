//! Abuse limits over real SMTP: the in-process daemon on 127.0.0.1, mail
//! sent by the raw SMTP client, the capturing sink playing the relay, every
//! message that comes out parsed with mail-parser.
//!
//! Covers the robot as a reflector (one reply budget for every spelling of a
//! mailbox, the per-domain and total caps, `echo` text only to members,
//! `get` per day), forged envelope senders of non-member posts (poster
//! notices per day without the Subject, one summary to the moderators past
//! their hourly cap, every post still held and actionable), and `Approved:`
//! guessing (a lockout after repeated wrong passwords that outlives a
//! restart, with exactly one notice to the moderators).

mod common;

use common::sink::{Sink, Transaction};
use common::{send, wait_until, Listd, TestEnv, DOMAIN};
use listd::daemon::DaemonHandle;
use mail_parser::MessageParser;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const ANN: &str = "ann@example.org";
const MODS: &str = "owners: [owner@example.org]\nmoderators: [mod@example.org]\n";

struct World {
    sink: Sink,
    env: TestEnv,
    daemon: Option<DaemonHandle>,
}

/// A daemon with `lists` (ann a member of each) and `robot.KEY: VALUE`
/// settings.
async fn world(lists: &[(&str, &str)], robot: &[(&str, &str)]) -> World {
    let sink = Sink::start();
    let mut b = TestEnv::builder().relay_port(sink.port());
    for (k, v) in robot {
        b = b.set("robot", k, v);
    }
    for (name, yaml) in lists {
        b = b.list(name, yaml);
    }
    let env = b.build();
    for (name, _) in lists {
        env.add_members(name, &[ANN]);
    }
    let daemon = Some(env.start().await);
    World { sink, env, daemon }
}

impl World {
    /// Sends `message` with envelope sender `env_from` to `rcpt` (250) and
    /// waits until it and all the mail it caused are handled.
    async fn send(&self, env_from: &str, rcpt: &str, message: &str) {
        let addr = self.daemon.as_ref().unwrap().smtp_addr();
        send(addr, env_from, &[rcpt], message).await.expect(250);
        self.settle().await;
    }

    async fn settle(&self) {
        let env = &self.env;
        assert!(
            wait_until(WAIT, || {
                env.count("incoming", "state = 'incoming'") == 0
                    && env.count("jobs", "state <> 'done'") == 0
            })
            .await,
            "queues settle"
        );
    }

    /// Mail the relay got for a recipient `rcpt` matches.
    fn to(&self, rcpt: impl Fn(&str) -> bool) -> Vec<Transaction> {
        self.sink
            .transactions()
            .into_iter()
            .filter(|t| t.rcpts.iter().any(|r| rcpt(r)))
            .collect()
    }

    /// Events in a rate-log bucket.
    fn bucket(&self, name: &str) -> i64 {
        self.env
            .store()
            .query_row(
                "SELECT COUNT(*) FROM rate_events WHERE bucket = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap()
    }

    async fn restart(&mut self) {
        self.daemon.take().unwrap().shutdown().await;
        self.daemon = Some(self.env.start().await);
    }

    async fn stop(mut self) {
        if let Some(d) = self.daemon.take() {
            d.shutdown().await;
        }
    }
}

fn parsed(t: &Transaction) -> mail_parser::Message<'_> {
    MessageParser::default().parse(&t.data).expect("parses")
}
fn subject(t: &Transaction) -> String {
    parsed(t).subject().unwrap_or_default().to_string()
}
fn body(t: &Transaction) -> String {
    parsed(t)
        .body_text(0)
        .map(|b| b.replace("\r\n", "\n"))
        .unwrap_or_default()
}
/// The body with every run of white space made one space.
fn flat(t: &Transaction) -> String {
    body(t).split_whitespace().collect::<Vec<_>>().join(" ")
}

fn mail(from: &str, to: &str, subject: &str, extra: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{}@client.example>\r\n\
         Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n{extra}\r\n{body}",
        common::rand_token()
    )
}

fn majordomo() -> String {
    format!("majordomo@{DOMAIN}")
}

/// Case, `+tag`, `-tag` and dots in the local part all reach the same
/// mailbox, so they share one reply budget (`robot.replies_per_hour: 3`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spellings_of_one_mailbox_share_one_reply_budget() {
    let w = world(&[("dev", MODS)], &[("replies_per_hour", "3")]).await;
    let spellings = [
        "Victim@example.com",
        "vIctim@example.com",
        "victim+1@example.com",
        "victim-2@EXAMPLE.com",
        "v.ictim@example.com",
        "VICTIM+x@example.com",
    ];
    for a in spellings {
        w.send(a, &majordomo(), &mail(a, &majordomo(), "", "", "lists\n"))
            .await;
    }
    let replies = w.to(|r| spellings.contains(&r));
    assert_eq!(replies.len(), 3, "{replies:#?}");
    assert!(replies.iter().all(|t| subject(t).starts_with("Results")));
    assert_eq!(w.bucket("reply:victim@example.com"), 3);
    // another mailbox has its own budget
    w.send(
        ANN,
        &majordomo(),
        &mail(ANN, &majordomo(), "", "", "lists\n"),
    )
    .await;
    assert_eq!(w.to(|r| r == ANN).len(), 1);
    w.stop().await;
}

/// Many mailboxes of one domain: at most `replies_per_domain_per_hour`;
/// all domains together: at most `replies_per_hour_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_are_capped_per_domain_and_in_all() {
    let w = world(
        &[("dev", MODS)],
        &[
            ("replies_per_domain_per_hour", "4"),
            ("replies_per_hour_total", "6"),
        ],
    )
    .await;
    let ask = |a: &str| mail(a, &majordomo(), "", "", "lists\n");
    for i in 0..6 {
        let a = format!("user{i}@victim.example");
        w.send(&a, &majordomo(), &ask(&a)).await;
    }
    assert_eq!(w.to(|r| r.ends_with("@victim.example")).len(), 4);
    for a in ["a@other.example", "b@other.example", "c@third.example"] {
        w.send(a, &majordomo(), &ask(a)).await;
    }
    // the total of 6 is reached by the second of other.example
    assert_eq!(w.to(|r| r.ends_with("@other.example")).len(), 2);
    assert!(w.to(|r| r == "c@third.example").is_empty());
    assert_eq!(w.bucket("reply-total"), 6);
    assert_eq!(w.bucket("domain:victim.example"), 4);
    w.stop().await;
}

/// `echo` mails its text back only to a member of a list here; a forged
/// From: of anyone else gets an answer without the attacker's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_to_a_non_member_carries_no_attacker_text() {
    let w = world(&[("dev", MODS)], &[]).await;
    let spam = "BUY-CHEAP-PILLS at http://spam.example/now";
    let victim = "victim@example.com";
    w.send(
        victim,
        &majordomo(),
        &mail(victim, &majordomo(), "", "", &format!("echo {spam}\n")),
    )
    .await;
    let got = w.to(|r| r == victim);
    assert_eq!(got.len(), 1);
    let b = flat(&got[0]);
    assert!(b.contains("only members get their text echoed"), "{b}");
    let raw = String::from_utf8_lossy(&got[0].data);
    assert!(
        !raw.contains("PILLS") && !raw.contains("spam.example"),
        "{raw}"
    );

    // a member gets the text
    w.send(
        ANN,
        &majordomo(),
        &mail(ANN, &majordomo(), "", "", "echo Is anybody there?\n"),
    )
    .await;
    let got = w.to(|r| r == ANN);
    assert_eq!(got.len(), 1);
    assert!(
        body(&got[0]).contains(">>>> echo Is anybody there?\nIs anybody there?"),
        "{}",
        body(&got[0])
    );
    w.stop().await;
}

/// No command line of a non-member is reflected with its text: a line that
/// is no command is not repeated, and of commands only the verb and words
/// that carry no free text (list names, modes, addresses, tokens) are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_lines_of_a_non_member_reflect_no_attacker_text() {
    let w = world(&[("dev", MODS)], &[]).await;
    let victim = "victim@example.com";
    let lines = "BUY CHEAP PILLS at spam.example\ninfo dev CHEAP-PILLS-NOW\nset dev digest\n";
    w.send(
        victim,
        &majordomo(),
        &mail(victim, &majordomo(), "", "", lines),
    )
    .await;
    let got = w.to(|r| r == victim);
    assert_eq!(got.len(), 1);
    let b = body(&got[0]);
    let raw = String::from_utf8_lossy(&got[0].data);
    assert!(
        !raw.contains("PILLS") && !raw.contains("spam.example"),
        "{raw}"
    );
    assert!(
        b.contains(">>>> (a line that is no command; not repeated)"),
        "{b}"
    );
    assert!(b.contains(">>>> info dev ..."), "{b}");
    assert!(b.contains(">>>> set dev digest"), "{b}");
    // a member sees their lines as written
    w.send(
        ANN,
        &majordomo(),
        &mail(ANN, &majordomo(), "", "", "frobnicate now please\n"),
    )
    .await;
    let got = w.to(|r| r == ANN);
    assert!(
        body(&got[0]).contains(">>>> frobnicate now please"),
        "{}",
        body(&got[0])
    );
    w.stop().await;
}

/// `get LIST MONTH` mails an archive month; each mailbox gets at most
/// `robot.get_per_day` of them, whatever it is spelt like.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_is_limited_per_mailbox_per_day() {
    let dev = format!("archive_access: anyone\n{MODS}");
    let w = world(&[("dev", &dev)], &[("get_per_day", "2")]).await;
    let list = format!("dev@{DOMAIN}");
    w.send(
        ANN,
        &list,
        &mail(ANN, &list, "first post", "", "Hello.\r\n"),
    )
    .await;
    let month = listd::archive::month_of(listd::store::now());
    let req = format!("dev-request@{DOMAIN}");
    let spellings = ["eve@example.net", "Eve+a@example.net", "EVE-b@example.net"];
    for a in spellings {
        w.send(a, &req, &mail(a, &req, "", "", &format!("get {month}\n")))
            .await;
    }
    let got = w.to(|r| spellings.contains(&r));
    let archives: Vec<&Transaction> = got
        .iter()
        .filter(|t| subject(t) == format!("dev archive, {month}"))
        .collect();
    assert_eq!(archives.len(), 2, "{got:#?}");
    let refused: Vec<String> = got
        .iter()
        .map(flat)
        .filter(|b| b.contains("at most 2 archive months a day"))
        .collect();
    assert_eq!(refused.len(), 1, "{got:#?}");
    assert_eq!(w.bucket("get:eve@example.net"), 2);
    w.stop().await;
}

/// 30 non-member posts with a forged envelope sender: every post is held
/// (and stays actionable), the victim gets at most
/// `robot.poster_notices_per_day` notices, none quoting the Subject, and
/// the moderators get `moderation_notices_per_hour` notices and then one
/// summary of the rest (sent by the daemon's moderation pass).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_non_member_posts_do_not_flood_the_victim_or_the_moderators() {
    let dev = format!("posting: members\nnonmember_posts: hold\n{MODS}");
    let mut w = world(&[("dev", &dev)], &[]).await;
    let list = format!("dev@{DOMAIN}");
    for i in 0..30 {
        // the forger varies the spelling of the victim's address
        let victim = if i % 2 == 0 {
            "victim@example.com".to_string()
        } else {
            format!("Victim+{i}@example.com")
        };
        let m = mail(
            "spammer@spam.example",
            &list,
            &format!("SPAMSUBJECT-{i} cheap pills"),
            "",
            "buy now\r\n",
        );
        w.send(&victim, &list, &m).await;
    }
    assert_eq!(w.env.count("held", "state = 'held'"), 30);

    let to_victim = w.to(|r| r.to_ascii_lowercase().starts_with("victim"));
    assert_eq!(to_victim.len(), 5, "{to_victim:#?}");
    for t in &to_victim {
        assert!(subject(t).contains("awaits moderator approval"));
        let raw = String::from_utf8_lossy(&t.data);
        assert!(
            !raw.contains("SPAMSUBJECT") && !raw.contains("pills"),
            "{raw}"
        );
    }

    let notices = w
        .to(|r| r == "mod@example.org")
        .into_iter()
        .filter(|t| subject(t).contains("Held for approval"))
        .count();
    assert_eq!(notices, 20);
    // the daemon's moderation pass (at start, then every minute) sends the
    // summary; a restart runs it now
    w.restart().await;
    let summaries = || {
        w.to(|r| r == "mod@example.org")
            .into_iter()
            .filter(|t| subject(t).contains("held without a notice each"))
            .collect::<Vec<_>>()
    };
    assert!(wait_until(WAIT, || summaries().len() == 1).await);
    w.settle().await;
    let s = &summaries()[0];
    // held posts the summary counts, plus any held after a pass already
    // summarised some, make the 10 past the limit
    let counted: i64 = subject(s)
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a count in the subject");
    assert_eq!(counted + w.bucket("mod-skipped:dev"), 10, "{}", subject(s));
    assert!(
        flat(s).contains("30 post(s) now wait in all"),
        "{}",
        body(s)
    );
    assert!(body(s).contains("listd held dev"), "{}", body(s));

    // nothing is lost: the last post, which no moderator notice named, is
    // approved with listd held and reaches the members
    let last: i64 = w
        .env
        .store()
        .query_row("SELECT MAX(id) FROM held", [], |r| r.get(0))
        .unwrap();
    let out = Listd::at(&w.env.config_path).output(&["held", "approve", &last.to_string()]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        wait_until(WAIT, || w
            .to(|r| r == ANN)
            .iter()
            .any(|t| subject(t).contains("SPAMSUBJECT-29")))
        .await
    );
    w.stop().await;
}

/// Wrong `Approved:` passwords: the fifth within an hour locks the check
/// for the list; later posts are read as if they had no password (no
/// argon2 run: no failure is counted, and even the right password does
/// not pre-approve), the moderators hear of the lockout exactly once, and
/// the lockout outlives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_guessing_locks_the_check_after_five_failures() {
    let pw = format!(
        "posting: moderated\nmoderator_password: '{}'\n{MODS}",
        listd::moderation::hash_password("right").unwrap()
    );
    let mut w = world(&[("pw", &pw)], &[]).await;
    let list = format!("pw@{DOMAIN}");
    let reasons = |w: &World| -> Vec<String> {
        let conn = w.env.store();
        let mut stmt = conn.prepare("SELECT reason FROM held ORDER BY id").unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    };
    for i in 0..8 {
        let m = mail(
            ANN,
            &list,
            &format!("guess {i}"),
            &format!("Approved: guess{i}\r\n"),
            "hi\r\n",
        );
        w.send(ANN, &list, &m).await;
    }
    let r = reasons(&w);
    assert_eq!(r[..5], ["bad-approved-password"; 5]);
    assert_eq!(r[5..], ["moderated"; 3]);
    assert_eq!(
        w.bucket("approved-fail:pw"),
        5,
        "no password tried once locked"
    );
    assert_eq!(w.bucket("approved-lock:pw"), 1);
    let lockouts = |w: &World| {
        w.to(|r| r == "mod@example.org")
            .into_iter()
            .filter(|t| subject(t).contains("Approved: passwords locked"))
            .collect::<Vec<_>>()
    };
    let l = lockouts(&w);
    assert_eq!(l.len(), 1);
    assert!(flat(&l[0]).contains("5 posts to pw@"), "{}", body(&l[0]));
    // the passwords tried are never shown
    let raw = String::from_utf8_lossy(&l[0].data);
    assert!((0..8).all(|i| !raw.contains(&format!("guess{i}"))), "{raw}");

    // after a restart the lock holds: the right password pre-approves nothing
    w.restart().await;
    let m = mail(ANN, &list, "right one", "Approved: right\r\n", "hi\r\n");
    w.send(ANN, &list, &m).await;
    assert_eq!(reasons(&w).last().map(String::as_str), Some("moderated"));
    assert!(w.to(|r| r == ANN).iter().all(|t| subject(t) != "right one"));
    assert_eq!(lockouts(&w).len(), 1);
    assert_eq!(w.bucket("approved-fail:pw"), 5);
    w.stop().await;
}

/// Replies to `NAME-moderate+TOKEN@` from someone who is no moderator
/// (a forged envelope sender): answered within the daily notice budget,
/// quoting neither the Subject nor the token they wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_moderation_replies_are_limited_and_quote_nothing() {
    let w = world(&[("dev", MODS)], &[]).await;
    let victim = "victim@example.com";
    for i in 0..7 {
        let rcpt = format!("dev-moderate+spamtoken{i}@{DOMAIN}");
        let m = mail(victim, &rcpt, &format!("SPAMSUBJECT-{i}"), "", "buy\r\n");
        w.send(victim, &rcpt, &m).await;
    }
    let got = w.to(|r| r == victim);
    assert_eq!(got.len(), 5, "{got:#?}");
    for t in &got {
        assert_eq!(subject(t), "[dev] moderation");
        assert!(flat(t).contains("unknown moderation token"), "{}", body(t));
        let raw = String::from_utf8_lossy(&t.data);
        assert!(
            !raw.contains("SPAMSUBJECT") && !raw.contains("spamtoken"),
            "{raw}"
        );
    }
    w.stop().await;
}
