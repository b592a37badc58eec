//! The command robot end to end: command mail in over real SMTP to the
//! in-process daemon, replies out through the delivery worker to the
//! capturing sink that plays the relay, parsed with mail-parser.

mod common;

use common::sink::{Sink, Transaction};
use common::{send, wait_until, SmtpClient, TestEnv};
use listd::daemon::DaemonHandle;
use mail_parser::{MessageParser, MimeHeaders};
use std::time::Duration;

const D: &str = "lists.example.org";
const ANN: &str = "ann@example.org";
const OWNER: &str = "owner@example.org";
const WAIT: Duration = Duration::from_secs(20);

fn list_yaml(policy: &str, extra: &str) -> String {
    format!("description: The {policy} list\nowners: [owner@example.org]\nsubscription: {policy}\nwho: members\n{extra}")
}

struct Net {
    sink: Sink,
    env: TestEnv,
    daemon: Option<DaemonHandle>,
    seen: usize,
}

/// One robot mail as the relay received it.
#[derive(Debug, Clone)]
struct Got {
    mail_from: String,
    rcpts: Vec<String>,
    data: Vec<u8>,
}

impl Got {
    fn msg(&self) -> mail_parser::Message<'_> {
        MessageParser::default().parse(&self.data).expect("parses")
    }
    fn subject(&self) -> String {
        self.msg().subject().unwrap_or_default().to_string()
    }
    fn body(&self) -> String {
        self.msg()
            .body_text(0)
            .map(|b| b.replace("\r\n", "\n"))
            .unwrap_or_default()
    }
    fn flat(&self) -> String {
        self.body().split_whitespace().collect::<Vec<_>>().join(" ")
    }
    fn token(&self) -> String {
        self.subject()
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_string()
    }
    fn reply_to(&self) -> Option<String> {
        self.msg()
            .reply_to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(str::to_string)
    }
    fn is_to(&self, a: &str) -> bool {
        self.rcpts.iter().any(|r| r == a)
    }
}

impl From<Transaction> for Got {
    fn from(t: Transaction) -> Got {
        Got {
            mail_from: t.mail_from,
            rcpts: t.rcpts,
            data: t.data,
        }
    }
}

impl Net {
    async fn start(lists: &[(&str, &str)], overrides: &[(&str, &str, &str)]) -> Net {
        Net::start_with(lists, overrides, |b| b).await
    }

    /// [`Net::start`], with more settings made on the environment.
    async fn start_with(
        lists: &[(&str, &str)],
        overrides: &[(&str, &str, &str)],
        tweak: impl FnOnce(common::TestEnvBuilder) -> common::TestEnvBuilder,
    ) -> Net {
        let sink = Sink::start();
        let mut b = tweak(TestEnv::builder().relay_port(sink.port()).set(
            "robot",
            "replies_per_hour",
            "1000",
        ));
        for (name, yaml) in lists {
            b = b.list(name, yaml);
        }
        let env = b.build();
        for (list, name, text) in overrides {
            let d = env.path().join("lists").join(list).join("templates");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(format!("{name}.hbs")), text).unwrap();
        }
        let daemon = env.start().await;
        Net {
            sink,
            env,
            daemon: Some(daemon),
            seen: 0,
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.daemon.as_ref().unwrap().smtp_addr()
    }

    /// Sends a command mail (From: and envelope `from`) and expects 250.
    async fn command(&self, from: &str, rcpt: &str, subject: &str, body: &str) {
        let m = common::message(from, rcpt, subject, body);
        self.raw(from, rcpt, &m).await;
    }

    async fn raw(&self, env_from: &str, rcpt: &str, message: &str) {
        send(self.addr(), env_from, &[rcpt], message)
            .await
            .expect(250);
    }

    /// Waits until `n` more transactions reached the sink; returns them.
    async fn next(&mut self, n: usize) -> Vec<Got> {
        let sink = &self.sink;
        let want = self.seen + n;
        assert!(
            wait_until(WAIT, || sink.transactions().len() >= want).await,
            "expected {n} more mails at the relay, got {:#?}",
            &sink.transactions()[self.seen..]
        );
        let all = sink.transactions();
        let got: Vec<Got> = all[self.seen..].iter().cloned().map(Got::from).collect();
        self.seen = all.len();
        got
    }

    /// Waits until every incoming row is handled and the outbound queue is
    /// empty; then asserts nothing more reached the sink.
    async fn nothing_more(&mut self) {
        let env = &self.env;
        assert!(
            wait_until(WAIT, || {
                env.count("incoming", "state = 'incoming'") == 0
                    && env.count("job_rcpts", "state IN ('active', 'deferred')") == 0
            })
            .await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let extra = &self.sink.transactions()[self.seen..];
        assert!(extra.is_empty(), "unexpected mail: {extra:#?}");
    }

    fn is_member(&self, list: &str, a: &str) -> bool {
        let key = listd::address::address_key(a);
        listd::store::members::get(&self.env.store(), list, &key)
            .unwrap()
            .is_some()
    }

    async fn stop(mut self) {
        if let Some(d) = self.daemon.take() {
            d.shutdown().await;
        }
    }
}

fn one(got: &[Got], pred: impl Fn(&Got) -> bool) -> &Got {
    let m: Vec<&Got> = got.iter().filter(|g| pred(g)).collect();
    assert_eq!(m.len(), 1, "{got:#?}");
    m[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_opt_in_over_smtp_by_reply_and_by_confirm_command() {
    let confirm = list_yaml("confirm", "");
    let mut n = Net::start(&[("dev", &confirm)], &[]).await;
    n.command(ANN, &format!("dev-request@{D}"), "", "subscribe")
        .await;
    let got = n.next(2).await;
    let results = one(&got, |g| g.subject().starts_with("Results"));
    assert!(results.is_to(ANN));
    assert!(results
        .flat()
        .contains("A confirmation request has been sent to ann@example.org"));
    let c = one(&got, |g| g.subject().starts_with("confirm "));
    assert_eq!(c.rcpts, vec![ANN]);
    assert_eq!(c.mail_from, format!("dev-bounces@{D}"));
    let msg = c.msg();
    assert_eq!(
        msg.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-replied")
    );
    assert!(msg.in_reply_to().as_text().is_some());
    assert!(msg.date().is_some() && msg.message_id().is_some());
    let token = c.token();
    let confirm_addr = c.reply_to().unwrap();
    assert_eq!(confirm_addr, format!("dev-confirm+{token}@{D}"));
    assert!(!n.is_member("dev", ANN));

    // reply to the confirmation, quoting all of it
    let quoted: String = c.body().lines().map(|l| format!("> {l}\n")).collect();
    n.command(
        ANN,
        &confirm_addr,
        &format!("Re: confirm {token}"),
        &format!("yes\n\n{quoted}"),
    )
    .await;
    let got = n.next(2).await;
    assert!(n.is_member("dev", ANN));
    assert!(one(&got, |g| g.is_to(ANN))
        .subject()
        .contains("Welcome to the dev mailing list"));
    assert!(one(&got, |g| g.is_to(OWNER))
        .subject()
        .contains("has joined dev"));

    // bob: `confirm TOKEN` in a new mail to majordomo@
    let bob = "bob@example.org";
    n.command(bob, &format!("majordomo@{D}"), "", "subscribe dev")
        .await;
    let got = n.next(2).await;
    let token = one(&got, |g| g.subject().starts_with("confirm ")).token();
    n.command(
        bob,
        &format!("majordomo@{D}"),
        "",
        &format!("confirm {token}"),
    )
    .await;
    let got = n.next(3).await;
    assert!(n.is_member("dev", bob));
    let results = one(&got, |g| g.subject().starts_with("Results"));
    assert_eq!(
        results.mail_from, "",
        "site replies use the null sender by default"
    );
    assert!(results.body().contains(&format!(
        ">>>> confirm {token}\nConfirmed: bob@example.org is now subscribed to dev."
    )));

    // the same token again: refused, nothing changes
    n.command(
        bob,
        &format!("majordomo@{D}"),
        "",
        &format!("confirm {token}"),
    )
    .await;
    let got = n.next(1).await;
    assert!(got[0].flat().contains("already used"));
    n.nothing_more().await;
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_over_smtp() {
    let confirm = list_yaml("confirm", "");
    let mut n = Net::start(&[("dev", &confirm)], &[]).await;
    // a token issued eight days ago (the daemon runs on the real clock)
    let token = {
        let conn = n.env.store();
        let a = listd::address::Address::parse(ANN).unwrap();
        listd::robot::tokens::issue(
            &conn,
            &listd::robot::tokens::NewToken {
                list: "dev",
                action: listd::robot::tokens::TokenAction::Subscribe,
                address: &a,
                name: None,
                requested_by: ANN,
                request_id: None,
                mode: None,
            },
            7,
            listd::store::now() - 8 * 86_400,
        )
        .unwrap()
    };
    n.command(ANN, &format!("dev-confirm+{token}@{D}"), "Re: confirm", "")
        .await;
    let got = n.next(1).await;
    assert!(
        got[0].flat().contains("This confirmation has expired"),
        "{}",
        got[0].body()
    );
    assert!(!n.is_member("dev", ANN));
    n.nothing_more().await;
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscription_policy_over_smtp() {
    let (open, confirm, approve, cta, closed) = (
        list_yaml("open", ""),
        list_yaml("confirm", ""),
        list_yaml("approve", ""),
        list_yaml("confirm_then_approve", ""),
        list_yaml("closed", ""),
    );
    let mut n = Net::start(
        &[
            ("open", &open),
            ("conf", &confirm),
            ("appr", &approve),
            ("cta", &cta),
            ("closed", &closed),
        ],
        &[],
    )
    .await;
    n.command(
        ANN,
        &format!("majordomo@{D}"),
        "",
        "subscribe open\nsubscribe conf\nsubscribe appr\nsubscribe cta\nsubscribe closed\n",
    )
    .await;
    // results; open: welcome + notice; conf: confirmation; appr: owner approval; cta: confirmation
    let got = n.next(6).await;
    let r = one(&got, |g| g.subject().starts_with("Results")).body();
    assert!(
        r.contains(">>>> subscribe open\nann@example.org is now subscribed to open."),
        "{r}"
    );
    assert!(
        r.contains(">>>> subscribe closed\nThe closed list is closed"),
        "{r}"
    );
    assert!(n.is_member("open", ANN));
    for l in ["conf", "appr", "cta", "closed"] {
        assert!(!n.is_member(l, ANN), "{l}");
    }
    let conf_tok = one(&got, |g| {
        g.subject().starts_with("confirm ") && g.body().contains("the conf mailing list")
    })
    .token();
    let cta_tok = one(&got, |g| {
        g.subject().starts_with("confirm ") && g.body().contains("the cta mailing list")
    })
    .token();
    let appr = one(&got, |g| {
        g.is_to(OWNER) && g.subject().starts_with("approve ")
    });
    assert!(appr.body().contains("asks to join the appr mailing list"));

    n.command(ANN, &format!("conf-confirm+{conf_tok}@{D}"), "Re:", "")
        .await;
    n.next(2).await; // welcome + owner notice
    assert!(n.is_member("conf", ANN));

    // owner approves appr by replying to the request
    n.command(
        OWNER,
        &format!("appr-request@{D}"),
        &format!("Re: approve {}", appr.token()),
        "> quoted\n",
    )
    .await;
    n.next(3).await; // owner's results, welcome, owner notice
    assert!(n.is_member("appr", ANN));

    n.command(ANN, &format!("cta-confirm+{cta_tok}@{D}"), "Re:", "")
        .await;
    let got = n.next(2).await; // results (thank you) + owner approval
    assert!(!n.is_member("cta", ANN));
    let ask = one(&got, |g| g.is_to(OWNER));
    n.command(
        OWNER,
        &format!("cta-request@{D}"),
        "",
        &format!("approve {}", ask.token()),
    )
    .await;
    n.next(3).await;
    assert!(n.is_member("cta", ANN));
    n.nothing_more().await;
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_command_over_smtp() {
    let confirm = list_yaml("confirm", "");
    let hidden = "advertised: false\n";
    let mut n = Net::start(&[("dev", &confirm), ("hidden", hidden)], &[]).await;
    n.env.add_members("dev", &[ANN, "bob@example.org"]);
    n.command(
        ANN,
        &format!("majordomo@{D}"),
        "help",
        "lists\ninfo dev\nwho dev\nwhich\nset dev digest\necho Is anybody there?\nunsubscribe dev\nfrobnicate\nend\nsubscribe dev\n",
    )
    .await;
    let got = n.next(3).await;
    let r = one(&got, |g| g.subject().starts_with("Results")).body();
    for want in [
        ">>>> help\nThis is the mail robot of lists.example.org.",
        ">>>> lists\ndev: The confirm list",
        ">>>> info dev\ndev: The confirm list",
        ">>>> who dev\ndev has 2 members:\n  ann@example.org\n  bob@example.org",
        ">>>> which\nann@example.org is subscribed to:\n  dev",
        ">>>> set dev digest\nTo make sure this comes from ann@example.org, a confirmation",
        ">>>> echo Is anybody there?\nIs anybody there?",
        ">>>> unsubscribe dev\nA confirmation request has been sent to ann@example.org.",
        ">>>> frobnicate\nUnknown command.",
    ] {
        assert!(r.contains(want), "missing {want:?} in\n{r}");
    }
    assert!(!r.contains("hidden"), "{r}");
    assert!(!r.contains(">>>> subscribe dev"), "stopped at end: {r}");
    one(&got, |g| {
        g.subject().starts_with("confirm ") && g.flat().contains("get the MIME digest from")
    });
    let c = one(&got, |g| {
        g.subject().starts_with("confirm ") && g.flat().contains("unsubscribe")
    });
    assert!(c
        .flat()
        .contains("unsubscribe ann@example.org from the dev mailing list"));
    // leave by replying
    n.command(ANN, &c.reply_to().unwrap(), "Re: confirm", "")
        .await;
    let got = n.next(2).await;
    assert!(!n.is_member("dev", ANN));
    assert!(one(&got, |g| g.is_to(ANN))
        .subject()
        .contains("You have left the dev mailing list"));
    assert!(one(&got, |g| g.is_to(OWNER))
        .subject()
        .contains("has left dev"));
    n.nothing_more().await;
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_third_party_and_loops_over_smtp() {
    let open = list_yaml("open", "");
    let mut n = Net::start(&[("dev", &open)], &[]).await;
    let mallory = "mallory@evil.example";
    let victim = "victim@example.net";
    n.command(
        mallory,
        &format!("dev-request@{D}"),
        "",
        &format!("subscribe {victim}"),
    )
    .await;
    let got = n.next(2).await;
    let to_victim = one(&got, |g| g.is_to(victim));
    let to_mallory = one(&got, |g| g.is_to(mallory));
    assert!(!to_mallory.body().contains(&to_victim.token()));
    assert!(!n.is_member("dev", victim));

    // loops: none of these is answered, none subscribes anyone
    let req = format!("dev-request@{D}");
    let cases: Vec<(&str, &str)> = vec![
        ("", ""),
        (ANN, "Auto-Submitted: auto-replied\r\n"),
        (ANN, "Precedence: bulk\r\n"),
        (ANN, "Precedence: junk\r\n"),
        (ANN, "List-Id: Dev <dev.lists.example.org>\r\n"),
        (ANN, "X-Loop: dev-request@lists.example.org\r\n"),
        ("MAILER-DAEMON@example.org", ""),
        ("other-request@example.net", ""),
    ];
    for (env_from, header) in cases {
        let m = format!(
            "From: {ANN}\r\nTo: {req}\r\nSubject: subscribe\r\n{header}Message-ID: <{}@t>\r\n\r\nsubscribe\r\n",
            common::rand_token()
        );
        let mut c = SmtpClient::connect_ehlo(n.addr()).await;
        c.send_mail(env_from, &[&req], &m).await.expect(250);
        c.quit().await;
    }
    n.nothing_more().await;
    assert!(!n.is_member("dev", ANN));
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_signature_override_and_oversize_over_smtp() {
    let open = list_yaml("open", "");
    let mut n = Net::start(
        &[("dev", &open), ("ops", &open)],
        &[(
            "dev",
            "welcome",
            "Subject: Hello from dev\n\nDEV SAYS HI to {{address}}\n",
        )],
    )
    .await;
    // multipart/alternative: the plain part is read
    let m = format!(
        "From: {ANN}\r\nTo: dev-request@{D}\r\nSubject: x\r\nMessage-ID: <alt.{}@t>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"zz\"\r\n\r\n--zz\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\nsub=\r\nscribe\r\n\r\n--zz\r\nContent-Type: text/html\r\n\r\n\
<p>lists</p>\r\n--zz--\r\n",
        common::rand_token()
    );
    n.raw(ANN, &format!("dev-request@{D}"), &m).await;
    let got = n.next(3).await;
    let r = one(&got, |g| g.subject().starts_with("Results")).body();
    assert!(
        r.contains(">>>> subscribe\n") && !r.contains(">>>> lists"),
        "{r}"
    );
    // the per-list welcome
    let w = one(&got, |g| {
        g.is_to(ANN) && !g.subject().starts_with("Results")
    });
    assert_eq!(w.subject(), "Hello from dev");
    assert_eq!(w.body(), "DEV SAYS HI to ann@example.org\n");
    // the other list keeps the site welcome
    n.command(ANN, &format!("ops-request@{D}"), "", "subscribe")
        .await;
    let got = n.next(3).await;
    assert!(got
        .iter()
        .any(|g| g.subject() == "Welcome to the ops mailing list"));

    // a quoted signature and a real one
    n.command(
        ANN,
        &format!("dev-request@{D}"),
        "",
        "which\n> -- \n> unsubscribe\n-- \nAnn\nunsubscribe\n",
    )
    .await;
    let got = n.next(1).await;
    let r = got[0].body();
    assert!(
        r.contains(">>>> which") && !r.contains("unsubscribe"),
        "{r}"
    );
    assert!(n.is_member("dev", ANN));

    // a 10 MB command mail: refused unread, clearly
    let mut body = String::from("unsubscribe\n");
    let line = "y".repeat(900) + "\n";
    while body.len() < 10_000_000 {
        body.push_str(&line);
    }
    n.command(ANN, &format!("dev-request@{D}"), "", &body).await;
    let got = n.next(1).await;
    assert!(got[0].subject().contains("too large"));
    assert!(got[0].flat().contains("none of its commands were run"));
    assert!(n.is_member("dev", ANN));
    n.nothing_more().await;
    n.stop().await;
}

/// The archive by mail: `index` lists the months, `get` mails one as an
/// mbox attachment byte-identical to the archive file; refused by
/// `archive_access`, for a list without archive, for a month that is not
/// there, a malformed month, and a month over `robot.max_get_size`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_index_and_get_over_smtp() {
    let dev = list_yaml("confirm", "");
    let noarch = list_yaml("confirm", "archive: false\n");
    let mut n = Net::start_with(
        &[("dev", &dev), ("big", &dev), ("noarch", &noarch)],
        &[],
        |b| b.set("robot", "max_get_size", "6144"),
    )
    .await;
    n.env.add_members("dev", &[ANN, "bob@example.org"]);
    n.env.add_members("big", &[ANN]);
    for s in ["first post", "second post"] {
        n.command(ANN, &format!("dev@{D}"), s, "Hello list.").await;
    }
    n.command(
        ANN,
        &format!("big@{D}"),
        "a big one",
        &"0123456789 0123456789 0123456789 0123456789 0123456789\r\n".repeat(140),
    )
    .await;
    n.next(3).await;
    let month = listd::archive::month_of(listd::store::now());

    n.command(
        ANN,
        &format!("dev-request@{D}"),
        "archive",
        &format!("index\nget {month}\nget 1999-01\nget 2026-13\n"),
    )
    .await;
    let got = n.next(2).await;
    let r = one(&got, |g| g.subject().starts_with("Results")).body();
    for want in [
        format!(">>>> index\nThe archive of dev has 1 month:\n  {month}       2 posts"),
        ">>>> get 1999-01\nThe archive of dev has nothing for 1999-01.".to_string(),
        ">>>> get 2026-13\nName the month: `get dev YYYY-MM`.".to_string(),
    ] {
        assert!(r.contains(&want), "missing {want:?} in\n{r}");
    }
    assert!(
        one(&got, |g| g.subject().starts_with("Results"))
            .flat()
            .contains(&format!(
                ">>>> get {month} The archive of dev for {month} (2 posts) is on its way to you"
            )),
        "{r}"
    );
    let a = one(&got, |g| g.subject() == format!("dev archive, {month}"));
    assert!(a.is_to(ANN));
    let m = a.msg();
    assert!(
        m.body_text(0).unwrap().contains("2 posts"),
        "{:?}",
        m.body_text(0)
    );
    let att = m.attachment(0).expect("an attachment");
    assert_eq!(
        att.content_type().map(|c| (c.ctype(), c.subtype())),
        Some(("application", Some("mbox")))
    );
    assert_eq!(
        att.attachment_name(),
        Some(format!("dev-{month}.mbox").as_str())
    );
    let file = n.env.path().join(format!("data/archive/dev/{month}.mbox"));
    let on_disk = std::fs::read(&file).unwrap();
    assert_eq!(
        att.contents(),
        &on_disk[..],
        "the archive file, byte for byte"
    );
    let mut reader = listd::archive::MboxReader::new(att.contents());
    let mut subjects = Vec::new();
    while let Some(msg) = reader.next_message().unwrap() {
        let parsed = MessageParser::default().parse(&msg.bytes).unwrap();
        subjects.push(parsed.subject().unwrap_or_default().to_string());
    }
    assert_eq!(subjects, ["first post", "second post"]);

    // refusals
    let eve = "eve@example.com";
    n.command(
        eve,
        &format!("majordomo@{D}"),
        "archive",
        &format!("index dev\nget dev {month}\nindex noarch\nget big {month}\n"),
    )
    .await;
    let got = n.next(1).await;
    let r = got[0].body();
    assert!(
        r.contains(">>>> index dev\nThe archive of dev is not available to you.")
            && r.contains(&format!(
                ">>>> get dev {month}\nThe archive of dev is not available to you."
            ))
            && r.contains(">>>> index noarch\nThe noarch list keeps no archive."),
        "{r}"
    );
    n.command(
        ANN,
        &format!("majordomo@{D}"),
        "x",
        &format!("get big {month}\n"),
    )
    .await;
    let got = n.next(1).await;
    let r = got[0].flat();
    assert!(
        r.contains("KB, more than the 6 KB this robot mails. Ask the list owners at big-owner@lists.example.org."),
        "{r}"
    );
    n.nothing_more().await;
    n.stop().await;
}

/// Forged subscribe requests from many addresses cannot flood an approve
/// list's owners: past `robot.owner_mails_per_hour` the approval requests
/// are not mailed, but every request still waits for the owners.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_mails_are_rate_limited_per_list() {
    let approve = list_yaml("approve", "");
    let mut n = Net::start_with(&[("appr", &approve), ("other", &approve)], &[], |b| {
        b.set("robot", "owner_mails_per_hour", "2")
    })
    .await;
    for i in 0..4 {
        let from = format!("user{i}@example.net");
        n.command(&from, &format!("appr-request@{D}"), "subscribe", "")
            .await;
    }
    // four answers to the requesters, two approval requests to the owner
    let got = n.next(6).await;
    let to_owner: Vec<&Got> = got.iter().filter(|g| g.is_to(OWNER)).collect();
    assert_eq!(to_owner.len(), 2, "{got:#?}");
    assert!(to_owner.iter().all(|g| g.subject().starts_with("approve ")));
    assert_eq!(got.iter().filter(|g| !g.is_to(OWNER)).count(), 4);
    n.nothing_more().await;
    assert_eq!(
        n.env
            .count("sub_requests", "list = 'appr' AND state = 'pending'"),
        4,
        "every request still waits"
    );
    // another list's owners have their own budget
    n.command(
        "user9@example.net",
        &format!("other-request@{D}"),
        "subscribe",
        "",
    )
    .await;
    let got = n.next(2).await;
    assert_eq!(got.iter().filter(|g| g.is_to(OWNER)).count(), 1);
    n.stop().await;
}

/// `subscribe LIST digest=...` (Mailman's `join` option): the mode is kept
/// with the confirmation and with the owners' request, so the member starts
/// in it; a bad option or a digest on a list without one is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_with_a_digest_mode_over_smtp() {
    let (open, confirm, approve) = (
        list_yaml("open", ""),
        list_yaml("confirm", ""),
        list_yaml("approve", ""),
    );
    let nodig = list_yaml("open", "digest:\n  enabled: false\n");
    let mut n = Net::start(
        &[
            ("open", &open),
            ("conf", &confirm),
            ("appr", &approve),
            ("nodig", &nodig),
        ],
        &[],
    )
    .await;
    let mode = |n: &Net, list: &str| {
        let a = listd::address::Address::parse(ANN).unwrap();
        listd::store::members::get(&n.env.store(), list, &a.key())
            .unwrap()
            .map(|m| m.mode.as_str().to_string())
    };
    n.command(
        ANN,
        &format!("majordomo@{D}"),
        "",
        "subscribe open mode=nomail\nsubscribe conf digest=plain\njoin appr digest=mime\nsubscribe nodig digest=mime\nsubscribe open digest=weekly\n",
    )
    .await;
    // results; open: welcome + notice; conf: confirmation; appr: owner approval
    let got = n.next(5).await;
    let r = one(&got, |g| g.subject().starts_with("Results")).flat();
    for want in [
        ">>>> subscribe open mode=nomail ann@example.org is now subscribed to open (no mail (you stay subscribed)).",
        ">>>> subscribe nodig digest=mime The nodig list has no digest; subscribe without `digest=`.",
        ">>>> subscribe open digest=weekly Unknown option `digest=weekly`",
    ] {
        assert!(r.contains(want), "missing {want:?} in\n{r}");
    }
    assert_eq!(mode(&n, "open").as_deref(), Some("nomail"));
    assert_eq!(mode(&n, "nodig"), None);
    let welcome = one(&got, |g| g.subject().starts_with("Welcome to the open"));
    assert!(
        welcome.flat().contains("You will get no mail"),
        "{}",
        welcome.body()
    );

    // the confirmation carries the mode
    let c = one(&got, |g| g.subject().starts_with("confirm "));
    n.command(ANN, &c.reply_to().unwrap(), "Re: confirm", "")
        .await;
    let got = n.next(2).await;
    assert_eq!(mode(&n, "conf").as_deref(), Some("digest_plain"));
    let welcome = one(&got, |g| g.subject().starts_with("Welcome to the conf"));
    assert!(
        welcome
            .flat()
            .contains("You will get the plain-text digest"),
        "{}",
        welcome.body()
    );

    // so does the owners' request
    let ask = one(
        &n.sink
            .transactions()
            .into_iter()
            .map(Got::from)
            .collect::<Vec<_>>(),
        |g| g.is_to(OWNER) && g.subject().starts_with("approve "),
    )
    .clone();
    n.command(
        OWNER,
        &format!("appr-request@{D}"),
        &format!("Re: {}", ask.subject()),
        "",
    )
    .await;
    n.next(3).await;
    assert_eq!(mode(&n, "appr").as_deref(), Some("digest_mime"));
    n.nothing_more().await;
    n.stop().await;
}

/// Owners add and remove members by mail (`add`, `del`) on a closed list:
/// the confirmation goes to the owner's own address (also when the From:
/// was forged), the member is asked nothing and gets the welcome or goodbye;
/// someone else is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_add_and_remove_members_by_mail() {
    let closed = list_yaml("closed", "posting: announce\n");
    let mut n = Net::start(&[("club", &closed)], &[]).await;
    n.env.add_members("club", &[ANN, "bob@example.org"]);
    let carl = "carl@example.com";
    n.command(
        OWNER,
        &format!("majordomo@{D}"),
        "",
        &format!("add club {carl} digest=plain\ndel club bob@example.org\nadd club {ANN}\ndel club nobody@example.org\nadd club\n"),
    )
    .await;
    // results and two confirmations, all to the owner
    let got = n.next(3).await;
    assert!(got.iter().all(|g| g.rcpts == [OWNER]), "{got:#?}");
    let r = one(&got, |g| g.subject().starts_with("Results")).flat();
    for want in [
        "a confirmation has been sent to owner@example.org. Reply to it to add carl@example.com.",
        "Reply to it to remove bob@example.org.",
        "ann@example.org is already subscribed to club.",
        "nobody@example.org is not subscribed to club.",
        "Name the address: `add club ADDRESS`.",
    ] {
        assert!(r.contains(want), "missing {want:?} in\n{r}");
    }
    let confirms: Vec<&Got> = got
        .iter()
        .filter(|g| g.subject().starts_with("confirm "))
        .collect();
    assert_eq!(confirms.len(), 2);
    let add = *confirms
        .iter()
        .find(|g| {
            g.flat()
                .contains("add carl@example.com to the club mailing list")
        })
        .expect("the add confirmation");
    assert!(
        add.flat().contains("They will get the plain-text digest."),
        "{}",
        add.body()
    );
    let del = *confirms
        .iter()
        .find(|g| g.flat().contains("remove bob@example.org from the club"))
        .expect("the del confirmation");
    assert!(
        !n.is_member("club", carl),
        "nothing before the owner confirms"
    );

    // confirm the add by replying, the del with `confirm TOKEN`
    n.command(OWNER, &add.reply_to().unwrap(), "Re: confirm", "")
        .await;
    let got = n.next(3).await; // results, welcome, owner notice
    assert!(n.is_member("club", carl));
    let a = listd::address::Address::parse(carl).unwrap();
    let m = listd::store::members::get(&n.env.store(), "club", &a.key())
        .unwrap()
        .unwrap();
    assert_eq!(m.mode.as_str(), "digest_plain");
    let welcome = one(&got, |g| {
        g.is_to(carl) && g.subject().starts_with("Welcome to the club")
    });
    let w = welcome.flat();
    assert!(
        w.contains("You will get the plain-text digest.")
            && w.contains("only its owners and moderators post to it")
            && !w.contains("To post, write to"),
        "{w}"
    );
    n.command(
        OWNER,
        &format!("club-request@{D}"),
        "x",
        &format!("confirm {}", del.token()),
    )
    .await;
    let got = n.next(3).await; // results, goodbye, owner notice
    assert!(!n.is_member("club", "bob@example.org"));
    one(&got, |g| {
        g.is_to("bob@example.org") && g.subject().contains("You have left")
    });

    // not an owner: refused; a forged owner From: confirms to the real owner
    n.command(
        "eve@example.net",
        &format!("club-request@{D}"),
        "add club x@example.net",
        "",
    )
    .await;
    let got = n.next(1).await;
    assert!(
        got[0]
            .flat()
            .contains("Only the owners of club may add members by mail"),
        "{}",
        got[0].body()
    );
    let forged = common::message(
        OWNER,
        &format!("club-request@{D}"),
        "add club mallory@example.net",
        "",
    );
    n.raw("eve@example.net", &format!("club-request@{D}"), &forged)
        .await;
    let got = n.next(2).await;
    assert!(got.iter().all(|g| g.rcpts == [OWNER]), "{got:#?}");
    assert!(!n.is_member("club", "mallory@example.net"));
    n.nothing_more().await;
    n.stop().await;
}

fn mode_of(n: &Net, list: &str, a: &str) -> listd::store::members::DeliveryMode {
    let a = listd::address::Address::parse(a).unwrap();
    listd::store::members::get(&n.env.store(), list, &a.key())
        .unwrap()
        .unwrap()
        .mode
}

/// `set dev nomail` with another member's From: changes nothing until that
/// member confirms from their own mailbox; then it is applied, and the
/// member is told, with a token that undoes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_set_waits_for_the_member_and_can_be_undone() {
    use listd::store::members::DeliveryMode;
    let mut n = Net::start(&[("dev", &list_yaml("confirm", ""))], &[]).await;
    n.env.add_members("dev", &[ANN, "bob@example.org"]);
    let request = format!("dev-request@{D}");
    // eve writes ann's address in From: (and her own in the envelope)
    let forged = common::message(ANN, &request, "", "set dev nomail");
    n.raw("eve@example.com", &request, &forged).await;
    let got = n.next(2).await;
    let results = one(&got, |g| g.subject().starts_with("Results"));
    assert!(results.is_to(ANN) && !results.is_to("eve@example.com"));
    assert!(
        results
            .flat()
            .contains("a confirmation has been sent there. Nothing changes until it is confirmed"),
        "{}",
        results.body()
    );
    let c = one(&got, |g| g.subject().starts_with("confirm "));
    assert_eq!(c.rcpts, vec![ANN]);
    assert!(c
        .flat()
        .contains("get no mail (you stay subscribed) from the dev mailing list"));
    n.nothing_more().await;
    assert_eq!(
        mode_of(&n, "dev", ANN),
        DeliveryMode::Each,
        "nothing changed yet"
    );

    // ann confirms by replying: applied, and ann told with an undo token
    n.command(ANN, &c.reply_to().unwrap(), "Re: confirm", "")
        .await;
    let got = n.next(1).await;
    assert_eq!(mode_of(&n, "dev", ANN), DeliveryMode::NoMail);
    let told = &got[0];
    assert_eq!(told.rcpts, vec![ANN]);
    assert!(
        told.subject().contains("to undo: confirm"),
        "{}",
        told.subject()
    );
    assert!(told
        .flat()
        .contains("now gets no mail (you stay subscribed) from the dev mailing list"));
    let undo = format!("dev-confirm+{}@{D}", told.token());
    assert!(told.flat().contains(&undo), "{}", told.body());

    // the undo token restores the mode ann had
    n.command(ANN, &undo, "undo", "").await;
    let got = n.next(1).await;
    assert!(got[0].flat().contains("now gets each post as it is sent"));
    assert_eq!(mode_of(&n, "dev", ANN), DeliveryMode::Each);
    // and works once
    n.command(ANN, &undo, "undo", "").await;
    let got = n.next(1).await;
    assert!(got[0].flat().contains("already used"), "{}", got[0].body());
    assert_eq!(mode_of(&n, "dev", ANN), DeliveryMode::Each);
    n.nothing_more().await;
    n.stop().await;
}

/// `password LIST`: a member gets a fresh archive app password at the
/// subscribed address (the store keeps only its argon2 hash, and a new
/// one replaces it); a forged From: only has the real member mailed; a
/// stranger, a public archive and a list without archive get answers
/// and no password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_password_is_mailed_to_the_subscribed_address_only() {
    let dev = list_yaml("confirm", "archive_access: members\n");
    let public = list_yaml("confirm", "archive_access: anyone\n");
    let noarch = list_yaml("confirm", "archive: false\narchive_access: members\n");
    let ops = list_yaml("confirm", "archive_access: owners\n");
    let mut n = Net::start(
        &[
            ("dev", &dev),
            ("pub", &public),
            ("noarch", &noarch),
            ("ops", &ops),
        ],
        &[],
    )
    .await;
    // subscribed with upper-case local part: the mail goes there, as written
    n.env.add_members("dev", &["Ann.Smith@example.org"]);
    n.command(
        "Ann.Smith@example.org",
        &format!("majordomo@{D}"),
        "",
        "password dev\npassword pub\npassword noarch\n",
    )
    .await;
    let got = n.next(2).await;
    let results = one(&got, |g| g.subject().starts_with("Results")).flat();
    for want in [
        "is on its way to your subscribed address",
        "The archive of pub is public: log in as `anonymous`, no password needed.",
        "The noarch list keeps no archive to read.",
    ] {
        assert!(results.contains(want), "missing {want:?} in {results}");
    }
    let mail = one(&got, |g| g.subject() == "Your dev archive password");
    assert!(mail.is_to("Ann.Smith@example.org"), "{:?}", mail.rcpts);
    let body = mail.body();
    let password = body
        .lines()
        .find_map(|l| l.trim().strip_prefix("Password:"))
        .map(|p| p.trim().to_string())
        .expect("a password line");
    assert_eq!(password.len(), listd::reader::passwords::LENGTH);
    assert!(
        body.contains("POP3 user: Ann.Smith@example.org+dev"),
        "{body}"
    );
    let conn = n.env.store();
    let hash = listd::reader::passwords::hash(&conn, "dev", "Ann.Smith@example.org")
        .unwrap()
        .expect("a stored hash");
    assert!(!hash.contains(&password) && hash.starts_with("$argon2"));
    assert!(listd::password::verify_password(&hash, &password));

    // a stranger, and a forged From: naming a non-member, get no password
    n.command(
        "eve@example.com",
        &format!("dev-request@{D}"),
        "",
        "password\n",
    )
    .await;
    let got = n.next(1).await;
    assert!(got[0].is_to("eve@example.com"));
    assert!(
        got[0]
            .flat()
            .contains("The archive of dev is not available to you."),
        "{}",
        got[0].flat()
    );
    // asking again replaces the password: the old one stops working
    n.command(
        "Ann.Smith@example.org",
        &format!("dev-request@{D}"),
        "",
        "password\n",
    )
    .await;
    let got = n.next(2).await;
    let again = one(&got, |g| g.subject() == "Your dev archive password");
    assert!(!again.body().contains(&password));
    let hash = listd::reader::passwords::hash(&conn, "dev", "Ann.Smith@example.org")
        .unwrap()
        .unwrap();
    assert!(!listd::password::verify_password(&hash, &password));
    // an owners-only archive: the owner's password goes to the configured
    // owner address; a member is refused
    n.env.add_members("ops", &["Ann.Smith@example.org"]);
    n.command(OWNER, &format!("ops-request@{D}"), "", "password\n")
        .await;
    let got = n.next(2).await;
    let mail = one(&got, |g| g.subject() == "Your ops archive password");
    assert!(mail.is_to(OWNER), "{:?}", mail.rcpts);
    n.command(
        "Ann.Smith@example.org",
        &format!("ops-request@{D}"),
        "",
        "password\n",
    )
    .await;
    let got = n.next(1).await;
    assert!(got[0]
        .flat()
        .contains("The archive of ops is not available to you."));
    n.nothing_more().await;
    n.stop().await;
}
