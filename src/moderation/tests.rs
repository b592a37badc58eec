//! Library-level tests of the hold queue: a real SQLite file in a temp dir,
//! the real templates, queued mail parsed back with mail-parser.

use super::*;
use crate::config::{Config, ListConfig};
use crate::store::spool::{self, Envelope};
use crate::templates::Templates;
use mail_parser::{MessageParser, MimeHeaders, PartType};
use std::sync::Arc;

pub(crate) const DOMAIN: &str = "lists.example.org";

pub(crate) struct Fx {
    pub _dir: tempfile::TempDir,
    pub ctx: Ctx,
    pub conn: Connection,
}

pub(crate) fn fixture(yaml: &str) -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(DOMAIN, dir.path());
    let l = ListConfig::parse(&dir.path().join("lists/dev.yaml"), "dev", yaml).unwrap();
    config.lists.insert("dev".into(), l);
    let templates = Templates::for_config(&config).unwrap();
    let conn = crate::store::open(&config.db_path()).unwrap();
    Fx {
        _dir: dir,
        ctx: Ctx {
            config: Arc::new(config),
            templates: Arc::new(templates),
        },
        conn,
    }
}

pub(crate) const MODS: &str =
    "owners: [owner@example.org]\nmoderators: [mod1@example.org, Mod2@Example.org]\n";

/// Stores an inbound message for `rcpt` and returns its Inbound.
pub(crate) fn inbound(fx: &mut Fx, env_from: &str, rcpt: &str, bytes: &[u8], now: i64) -> Inbound {
    let route = crate::routing::route(&fx.ctx.config, rcpt).unwrap();
    let env = Envelope {
        mail_from: env_from.into(),
        rcpts: vec![(rcpt.into(), (&route).into())],
        client_ip: Some("127.0.0.1".into()),
        helo: "client.example.org".into(),
        protocol: "ESMTP".into(),
    };
    let tx = fx.conn.transaction().unwrap();
    let id = spool::insert_inbound(&tx, &env, bytes, now).unwrap();
    let incoming_id: i64 = tx
        .query_row("SELECT id FROM incoming WHERE message_id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap();
    tx.commit().unwrap();
    Inbound {
        incoming_id,
        message_id: id,
        rcpt: rcpt.into(),
        route,
        env_from: env_from.into(),
        client_ip: Some("127.0.0.1".into()),
        received_at: now,
        bytes: bytes.to_vec(),
        now,
    }
}

/// A queued job: kind, envelope sender, recipients, bytes.
#[derive(Debug)]
pub(crate) struct Job {
    pub kind: String,
    pub env_from: String,
    pub rcpts: Vec<String>,
    pub bytes: Vec<u8>,
}

pub(crate) fn jobs_after(conn: &Connection, after: i64) -> Vec<Job> {
    let mut stmt = conn
        .prepare(
            "SELECT j.id, j.kind, j.env_from, m.bytes FROM jobs j JOIN messages m ON m.id = j.message_id
             WHERE j.id > ?1 ORDER BY j.id",
        )
        .unwrap();
    let rows: Vec<(i64, String, String, Vec<u8>)> = stmt
        .query_map([after], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    rows.into_iter()
        .map(|(id, kind, env_from, bytes)| {
            let mut s = conn
                .prepare("SELECT rcpt FROM job_rcpts WHERE job_id = ?1 ORDER BY id")
                .unwrap();
            let rcpts = s
                .query_map([id], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            Job {
                kind,
                env_from,
                rcpts,
                bytes,
            }
        })
        .collect()
}

pub(crate) fn last_job_id(conn: &Connection) -> i64 {
    conn.query_row("SELECT COALESCE(MAX(id), 0) FROM jobs", [], |r| r.get(0))
        .unwrap()
}

pub(crate) fn text_of(bytes: &[u8]) -> String {
    MessageParser::default()
        .parse(bytes)
        .unwrap()
        .body_text(0)
        .unwrap()
        .into_owned()
}

/// The per-action addresses in a moderator notice, by action.
pub(crate) fn tokens_in(notice: &[u8]) -> std::collections::HashMap<String, String> {
    let text = text_of(notice);
    let mut out = std::collections::HashMap::new();
    let mut last_action = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("dev-moderate+") {
            let tok = rest.split('@').next().unwrap().to_string();
            out.insert(last_action.take().unwrap(), tok);
        } else if let Some(d) = t.strip_suffix(':') {
            for a in ModAction::ALL {
                if d == a.describe() {
                    last_action = Some(a.as_str().to_string());
                }
            }
        }
    }
    out
}

pub(crate) fn post(from: &str, subject: &str) -> Vec<u8> {
    format!(
        "Received: from client.example.org by lists.example.org\r\n\
         From: Poster <{from}>\r\nTo: dev@{DOMAIN}\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}.1@example.net>\r\nX-Weird:   spacing\t kept \r\n\r\n\
         Hello moderators,\r\nline two é\r\n"
    )
    .into_bytes()
}

pub(crate) fn hold_post(
    fx: &mut Fx,
    env_from: &str,
    bytes: &[u8],
    reason: HoldReason,
    now: i64,
) -> (i64, Inbound) {
    let msg = inbound(fx, env_from, &format!("dev@{DOMAIN}"), bytes, now);
    let tx = fx.conn.transaction().unwrap();
    let id = hold(&fx.ctx, &tx, "dev", &msg, reason, now).unwrap();
    tx.commit().unwrap();
    (id, msg)
}

#[test]
fn hold_stores_a_reference_and_notifies_each_moderator_and_the_poster() {
    let mut fx = fixture(MODS);
    let bytes = post("alice@example.net", "hello");
    let before = last_job_id(&fx.conn);
    let (id, msg) = hold_post(
        &mut fx,
        "alice@example.net",
        &bytes,
        HoldReason::NonMember,
        1_000,
    );
    let h = held::get(&fx.conn, id).unwrap().unwrap();
    assert_eq!(h.message_id, msg.message_id);
    assert_eq!(
        (
            h.list.as_str(),
            h.reason.as_str(),
            h.sender.as_str(),
            h.subject.as_str()
        ),
        ("dev", "non-member", "alice@example.net", "hello")
    );
    assert_eq!(
        (h.state.as_str(), h.size, h.held_at),
        ("held", bytes.len() as i64, 1_000)
    );
    // the original bytes are untouched in `messages`
    assert_eq!(
        spool::load(&fx.conn, msg.message_id)
            .unwrap()
            .unwrap()
            .bytes,
        bytes
    );

    let jobs = jobs_after(&fx.conn, before);
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    let notice = &jobs[0];
    assert_eq!(notice.kind, "notice");
    assert_eq!(notice.env_from, format!("dev-bounces@{DOMAIN}"));
    assert_eq!(notice.rcpts, vec!["mod1@example.org", "Mod2@Example.org"]);
    let parsed = MessageParser::default().parse(&notice.bytes).unwrap();
    assert!(parsed.subject().unwrap().contains("hello"));
    assert_eq!(
        parsed.header_raw("Auto-Submitted").unwrap().trim(),
        "auto-generated"
    );
    let text = parsed.body_text(0).unwrap();
    for needle in [
        "post from a non-member",
        "Poster <alice@example.net>",
        "Subject: hello",
        "Hello moderators,",
        "line two é",
        &format!("dev-request@{DOMAIN}"),
    ] {
        assert!(text.contains(needle), "{needle} missing in\n{text}");
    }
    let toks = tokens_in(&notice.bytes);
    assert_eq!(toks.len(), 5, "{toks:?}\n{text}");
    // only hashes are stored
    let stored: Vec<Vec<u8>> = fx
        .conn
        .prepare("SELECT hash FROM mod_tokens WHERE held_id = ?1")
        .unwrap()
        .query_map([id], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    // five per-action tokens and the Reply-To's reply token
    assert_eq!(stored.len(), 6);
    for t in toks.values() {
        assert!(stored.contains(&token::hash(t)));
        assert!(!stored.iter().any(|s| s == t.as_bytes()));
    }

    let poster = &jobs[1];
    assert_eq!(poster.rcpts, vec!["alice@example.net"]);
    let ptext = text_of(&poster.bytes);
    assert!(ptext.contains("waiting for a moderator"), "{ptext}");
    assert!(ptext.contains("not a member"), "{ptext}");
}

#[test]
fn the_original_is_attached_byte_identical() {
    let mut fx = fixture(MODS);
    // 8-bit, odd spacing, a long line, no trailing CRLF
    let mut bytes = post("alice@example.net", "attach");
    bytes.extend_from_slice(&[b'x'; 900]);
    bytes.extend_from_slice(b"\r\n--not-a-boundary\r\nlast line without CRLF");
    let before = last_job_id(&fx.conn);
    hold_post(
        &mut fx,
        "alice@example.net",
        &bytes,
        HoldReason::Moderated,
        5,
    );
    let jobs = jobs_after(&fx.conn, before);
    let parsed = MessageParser::default().parse(&jobs[0].bytes).unwrap();
    let att = parsed.attachment(0).expect("an attachment");
    assert_eq!(
        att.content_type().map(|c| (c.ctype(), c.subtype())),
        Some(("message", Some("rfc822")))
    );
    let raw = &jobs[0].bytes[att.offset_body as usize..att.offset_end as usize];
    assert_eq!(raw, &bytes[..]);
    let PartType::Message(inner) = &att.body else {
        panic!("not parsed as a message")
    };
    assert_eq!(inner.raw_message(), &bytes[..]);
    assert_eq!(inner.subject(), Some("attach"));
}

#[test]
fn poster_notices_respect_null_sender_automatons_option_and_secret_reasons() {
    // null sender: no poster notice
    let mut fx = fixture(MODS);
    let b = last_job_id(&fx.conn);
    hold_post(
        &mut fx,
        "",
        &post("alice@example.net", "n"),
        HoldReason::Moderated,
        1,
    );
    assert_eq!(jobs_after(&fx.conn, b).len(), 1);

    // an automaton: no poster notice
    let auto = [
        b"Auto-Submitted: auto-replied\r\n".as_ref(),
        &post("bot@example.net", "a"),
    ]
    .concat();
    let b = last_job_id(&fx.conn);
    hold_post(&mut fx, "bot@example.net", &auto, HoldReason::AutoReply, 1);
    assert_eq!(jobs_after(&fx.conn, b).len(), 1);

    // bad password: the poster is told it is held, never why
    let b = last_job_id(&fx.conn);
    hold_post(
        &mut fx,
        "eve@example.net",
        &post("eve@example.net", "p"),
        HoldReason::BadApprovedPassword,
        1,
    );
    let jobs = jobs_after(&fx.conn, b);
    assert_eq!(jobs.len(), 2);
    let t = text_of(&jobs[1].bytes);
    assert!(t.contains("waiting for a moderator"), "{t}");
    assert!(!t.to_ascii_lowercase().contains("password"), "{t}");
    assert!(!t.contains("Reason"), "{t}");
    assert!(text_of(&jobs[0].bytes).contains("bad Approved password"));

    // notify_held: false
    let mut fx = fixture(&format!("{MODS}notify_held: false\n"));
    let b = last_job_id(&fx.conn);
    hold_post(
        &mut fx,
        "alice@example.net",
        &post("alice@example.net", "q"),
        HoldReason::Moderated,
        1,
    );
    assert_eq!(jobs_after(&fx.conn, b).len(), 1);
}

#[test]
fn owners_are_told_when_there_are_no_moderators() {
    let mut fx = fixture("owners: [owner@example.org, owner@EXAMPLE.org]\n");
    let b = last_job_id(&fx.conn);
    hold_post(
        &mut fx,
        "alice@example.net",
        &post("alice@example.net", "o"),
        HoldReason::Moderated,
        1,
    );
    assert_eq!(jobs_after(&fx.conn, b)[0].rcpts, vec!["owner@example.org"]);
}

#[test]
fn hold_for_an_unknown_list_is_corrupt() {
    let mut fx = fixture(MODS);
    let msg = inbound(
        &mut fx,
        "a@example.net",
        &format!("dev@{DOMAIN}"),
        b"Subject: x\r\n\r\nx\r\n",
        1,
    );
    let tx = fx.conn.transaction().unwrap();
    let e = hold(&fx.ctx, &tx, "nope", &msg, HoldReason::Moderated, 1).unwrap_err();
    assert!(matches!(e, HandlerError::Corrupt(_)), "{e}");
}

#[test]
fn every_reason_has_a_code_and_words() {
    let all = [
        HoldReason::NonMember,
        HoldReason::Moderated,
        HoldReason::AnnounceOnly,
        HoldReason::TooBig { size: 10, limit: 5 },
        HoldReason::AutoReply,
        HoldReason::Bulk,
        HoldReason::SuspiciousHeader("X-Spam: yes".into()),
        HoldReason::BadApprovedPassword,
        HoldReason::ImplicitDestination,
        HoldReason::TooManyRecipients { count: 12, max: 10 },
        HoldReason::Administrivia("unsubscribe".into()),
        HoldReason::NoSubject,
        HoldReason::Emergency,
        HoldReason::MemberModerated,
        HoldReason::Other("because".into()),
    ];
    assert!(all.iter().all(|r| !r.describe().is_empty()));
    let codes: std::collections::HashSet<_> = all.iter().map(HoldReason::code).collect();
    assert_eq!(codes.len(), all.len());
    assert_eq!(
        HoldReason::BadApprovedPassword.describe(),
        "bad Approved password"
    );
    assert_eq!(HoldReason::BadApprovedPassword.poster_text(), None);
    assert!(HoldReason::TooBig { size: 10, limit: 5 }
        .describe()
        .contains("10 bytes"));
    assert!(HoldReason::TooManyRecipients { count: 12, max: 10 }
        .describe()
        .contains("12 addresses"));
    let admin = HoldReason::Administrivia("unsubscribe dev".into());
    assert!(admin.describe().contains("`unsubscribe dev`"));
    assert!(admin.poster_text().unwrap().contains("-request"));
}

#[test]
fn accept_and_ban_lists() {
    let fx = fixture(MODS);
    let c = &fx.conn;
    assert!(!is_accepted_sender(c, "dev", "a@Example.NET").unwrap());
    assert!(accept_sender(c, "dev", "a@example.net", "t", 1).unwrap());
    assert!(!accept_sender(c, "dev", "a@example.net", "t", 1).unwrap());
    assert!(is_accepted_sender(c, "dev", "a@Example.NET").unwrap());
    assert!(!is_accepted_sender(c, "other", "a@example.net").unwrap());
    assert!(!is_banned(c, "dev", "a@example.net").unwrap());
    assert!(ban(c, "dev", "spam@example.net", "t", 1).unwrap());
    assert!(is_banned(c, "dev", "spam@EXAMPLE.net").unwrap());
    assert!(held::remove_sender(c, SenderList::Ban, "dev", "spam@example.net").unwrap());
    assert!(!is_banned(c, "dev", "spam@example.net").unwrap());
}

#[test]
fn accepting_a_sender_clears_their_member_flag() {
    use crate::address::Address;
    use crate::store::members::{self, DeliveryMode, Moderation};
    let fx = fixture(MODS);
    let c = &fx.conn;
    let bob = Address::parse("bob@example.net").unwrap();
    members::add(
        c,
        "dev",
        &bob.to_string(),
        &bob.key(),
        None,
        DeliveryMode::Each,
        1,
    )
    .unwrap();
    members::set_moderation(c, "dev", &bob.key(), Some(Moderation::Hold)).unwrap();
    assert!(accept_sender(c, "dev", "bob@example.net", "t", 1).unwrap());
    assert_eq!(
        members::get(c, "dev", &bob.key())
            .unwrap()
            .unwrap()
            .moderation,
        None
    );
    // already accepted and no flag: nothing changes
    assert!(!accept_sender(c, "dev", "bob@example.net", "t", 2).unwrap());
    // a flag set again later is cleared again, though the address was listed
    members::set_moderation(c, "dev", &bob.key(), Some(Moderation::Reject)).unwrap();
    assert!(accept_sender(c, "dev", "bob@example.net", "t", 3).unwrap());
    assert_eq!(
        members::get(c, "dev", &bob.key())
            .unwrap()
            .unwrap()
            .moderation,
        None
    );
    // an `accept` flag is left alone
    members::set_moderation(c, "dev", &bob.key(), Some(Moderation::Accept)).unwrap();
    assert!(!accept_sender(c, "dev", "bob@example.net", "t", 4).unwrap());
    assert_eq!(
        members::get(c, "dev", &bob.key())
            .unwrap()
            .unwrap()
            .moderation,
        Some(Moderation::Accept)
    );
}

/// A moderator's reply to `dev-moderate+TOKEN@`, handled; returns the jobs it queued.
pub(crate) fn reply(
    fx: &mut Fx,
    env_from: &str,
    from: &str,
    token: &str,
    body: &str,
    now: i64,
) -> Vec<Job> {
    let bytes = format!(
        "From: {from}\r\nTo: dev-moderate+{token}@{DOMAIN}\r\nSubject: Re: Held for approval\r\n\
         Message-ID: <reply.{now}@example.org>\r\n\r\n{body}"
    );
    let msg = inbound(
        fx,
        env_from,
        &format!("dev-moderate+{token}@{DOMAIN}"),
        bytes.as_bytes(),
        now,
    );
    let before = last_job_id(&fx.conn);
    let tx = fx.conn.transaction().unwrap();
    handle_reply(&fx.ctx, &tx, &msg).unwrap();
    tx.commit().unwrap();
    jobs_after(&fx.conn, before)
}

/// Holds a post from alice and returns (held id, tokens by action).
pub(crate) fn held_with_tokens(
    fx: &mut Fx,
    subject: &str,
    now: i64,
) -> (i64, std::collections::HashMap<String, String>) {
    let before = last_job_id(&fx.conn);
    let (id, _) = hold_post(
        fx,
        "alice@example.net",
        &post("alice@example.net", subject),
        HoldReason::NonMember,
        now,
    );
    let jobs = jobs_after(&fx.conn, before);
    (id, tokens_in(&jobs[0].bytes))
}

fn state(fx: &Fx, id: i64) -> held::Held {
    held::get(&fx.conn, id).unwrap().unwrap()
}

fn log_outcomes(fx: &Fx) -> Vec<(String, String, String)> {
    fx.conn
        .prepare("SELECT actor, action, outcome FROM mod_log ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn reject_by_reply_sends_the_reason_to_the_poster() {
    let mut fx = fixture(MODS);
    let (id, toks) = held_with_tokens(&mut fx, "rej", 10);
    let jobs = reply(
        &mut fx,
        "mod1@example.org",
        "Mod One <mod1@example.org>",
        &toks["reject"],
        "Off topic here, please use the users list.\r\n\r\nOn Mon, Jane wrote:\r\n> quoted notice\r\n",
        20,
    );
    let h = state(&fx, id);
    assert_eq!(
        (h.state.as_str(), h.action.as_deref()),
        ("rejected", Some("reject"))
    );
    assert_eq!(h.acted_by.as_deref(), Some("mod1@example.org"));
    assert_eq!(
        h.note.as_deref(),
        Some("Off topic here, please use the users list.")
    );
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    let to_poster = jobs
        .iter()
        .find(|j| j.rcpts == ["alice@example.net"])
        .unwrap();
    let t = text_of(&to_poster.bytes);
    assert!(t.contains("rejected by a moderator"), "{t}");
    assert!(
        t.contains("Off topic here, please use the users list."),
        "{t}"
    );
    assert!(!t.contains("quoted notice"), "{t}");
    let to_mod = jobs
        .iter()
        .find(|j| j.rcpts == ["mod1@example.org"])
        .unwrap();
    assert!(text_of(&to_mod.bytes).contains("rejected: held message"));
}

#[test]
fn discard_is_silent_and_a_late_second_moderator_is_told_who_acted() {
    let mut fx = fixture(MODS);
    let (id, toks) = held_with_tokens(&mut fx, "disc", 10);
    let jobs = reply(
        &mut fx,
        "mod1@example.org",
        "mod1@example.org",
        &toks["discard"],
        "",
        3_600,
    );
    assert_eq!(state(&fx, id).state, "discarded");
    // only the answer to the moderator; nothing to the poster
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].rcpts, vec!["mod1@example.org"]);

    // the second moderator uses another action's token
    let jobs = reply(
        &mut fx,
        "Mod2@Example.org",
        "Mod2@Example.org",
        &toks["reject"],
        "no",
        7_200,
    );
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].rcpts, vec!["Mod2@Example.org"]);
    let t = text_of(&jobs[0].bytes);
    assert!(
        t.contains("already discarded by mod1@example.org at 1970-01-01 01:00 UTC"),
        "{t}"
    );
    let h = state(&fx, id);
    assert_eq!(
        (h.state.as_str(), h.acted_by.as_deref()),
        ("discarded", Some("mod1@example.org"))
    );
    assert!(log_outcomes(&fx).contains(&(
        "Mod2@Example.org".into(),
        "reject".into(),
        "already".into()
    )));
}

#[test]
fn a_reused_token_does_nothing_twice() {
    let mut fx = fixture(MODS);
    let (id, toks) = held_with_tokens(&mut fx, "reuse", 10);
    reply(
        &mut fx,
        "mod1@example.org",
        "mod1@example.org",
        &toks["ban"],
        "",
        20,
    );
    assert_eq!(state(&fx, id).state, "discarded");
    assert!(is_banned(&fx.conn, "dev", "alice@example.net").unwrap());
    held::remove_sender(&fx.conn, SenderList::Ban, "dev", "alice@example.net").unwrap();
    let jobs = reply(
        &mut fx,
        "mod1@example.org",
        "mod1@example.org",
        &toks["ban"],
        "",
        30,
    );
    assert!(text_of(&jobs[0].bytes)
        .contains("already discarded (and the sender banned) by mod1@example.org"));
    // the second use did not ban again
    assert!(!is_banned(&fx.conn, "dev", "alice@example.net").unwrap());
    let used: Option<i64> = fx
        .conn
        .query_row(
            "SELECT used_at FROM mod_tokens WHERE hash = ?1",
            [token::hash(&toks["ban"])],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(used, Some(20));
}

#[test]
fn a_forged_approval_is_refused_and_logged() {
    let mut fx = fixture(MODS);
    let (id, toks) = held_with_tokens(&mut fx, "forge", 10);
    // neither envelope nor From is a moderator
    let jobs = reply(
        &mut fx,
        "mallory@example.net",
        "Mallory <mallory@example.net>",
        &toks["discard"],
        "",
        20,
    );
    assert_eq!(state(&fx, id).state, "held");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].rcpts, vec!["mallory@example.net"]);
    assert!(text_of(&jobs[0].bytes).contains("refused: mallory@example.net is not a moderator"));
    assert!(log_outcomes(&fx).contains(&(
        "mallory@example.net".into(),
        "discard".into(),
        "refused".into()
    )));
    // the token still works for a real moderator
    reply(
        &mut fx,
        "mod1@example.org",
        "mod1@example.org",
        &toks["discard"],
        "",
        30,
    );
    assert_eq!(state(&fx, id).state, "discarded");
}

#[test]
fn the_from_header_counts_unless_our_intake_recorded_a_dmarc_failure() {
    let mut fx = fixture(MODS);
    // envelope is a forwarding service, From: is the moderator
    let (id, toks) = held_with_tokens(&mut fx, "from", 10);
    reply(
        &mut fx,
        "srs0=xyz@forwarder.example",
        "Owner <owner@example.org>",
        &toks["discard"],
        "",
        20,
    );
    assert_eq!(
        state(&fx, id).acted_by.as_deref(),
        Some("owner@example.org")
    );

    // the verdict stored with the reply decides; a header claiming a pass
    // is not read
    let host = fx.ctx.config.authserv_id().to_string();
    let rcpt_of = |toks: &std::collections::HashMap<String, String>| {
        format!("dev-moderate+{}@{DOMAIN}", toks["discard"])
    };
    for (dmarc, policy, acts) in [
        ("fail", "reject", false),
        ("temperror", "unknown", false),
        ("none", "absent", true),
        ("pass", "reject", true),
    ] {
        let (id, toks) = held_with_tokens(&mut fx, &format!("dmarc-{dmarc}"), 10);
        let bytes = format!(
            "Authentication-Results: {host}; dmarc=pass header.from=example.org\r\n\
             From: owner@example.org\r\nSubject: x\r\n\r\n"
        );
        let msg = inbound(
            &mut fx,
            "bounce@attacker.example",
            &rcpt_of(&toks),
            bytes.as_bytes(),
            30,
        );
        let row = spool::AuthRow {
            dmarc: dmarc.into(),
            policy: policy.into(),
            from_domain: "example.org".into(),
        };
        spool::record_auth(&fx.conn, msg.message_id, &row).unwrap();
        let tx = fx.conn.transaction().unwrap();
        handle_reply(&fx.ctx, &tx, &msg).unwrap();
        tx.commit().unwrap();
        let expect = if acts { "discarded" } else { "held" };
        assert_eq!(
            state(&fx, id).state,
            expect,
            "dmarc={dmarc} policy={policy}"
        );
    }
}

#[test]
fn automatons_and_the_null_sender_never_act() {
    let mut fx = fixture(MODS);
    let (id, toks) = held_with_tokens(&mut fx, "vacation", 10);
    let jobs = reply(&mut fx, "", "mod1@example.org", &toks["approve"], "", 20);
    assert!(jobs.is_empty());
    let bytes = "From: mod1@example.org\r\nAuto-Submitted: auto-replied\r\nSubject: Out of office\r\n\r\nAway\r\n";
    let rcpt = format!("dev-moderate+{}@{DOMAIN}", toks["approve"]);
    let msg = inbound(&mut fx, "mod1@example.org", &rcpt, bytes.as_bytes(), 30);
    let tx = fx.conn.transaction().unwrap();
    handle_reply(&fx.ctx, &tx, &msg).unwrap();
    tx.commit().unwrap();
    assert_eq!(state(&fx, id).state, "held");
    assert_eq!(
        log_outcomes(&fx)
            .iter()
            .filter(|l| l.2 == "ignored-automated")
            .count(),
        2
    );
}

#[test]
fn unknown_and_malformed_tokens_get_a_clear_answer() {
    let mut fx = fixture(MODS);
    for tok in ["0123456789abcdef0123456789abcdef", "not-a-token"] {
        let jobs = reply(&mut fx, "mod1@example.org", "mod1@example.org", tok, "", 20);
        assert_eq!(jobs.len(), 1);
        assert!(
            text_of(&jobs[0].bytes).contains("unknown moderation token"),
            "{tok}"
        );
    }
}

fn robot(fx: &mut Fx, env_from: &str, rcpt: &str, verb: &str, token: &str, rest: &str) -> String {
    let bytes = format!("From: {env_from}\r\nSubject: cmd\r\n\r\n{verb} {token} {rest}\r\n");
    let msg = inbound(fx, env_from, rcpt, bytes.as_bytes(), 50);
    let tx = fx.conn.transaction().unwrap();
    let line = command(&fx.ctx, &tx, &msg, verb, token, rest).unwrap();
    tx.commit().unwrap();
    line
}

#[test]
fn robot_commands_check_the_verb_the_list_and_the_sender() {
    let mut fx = fixture(MODS);
    let (id, toks) = held_with_tokens(&mut fx, "robot", 10);
    let req = format!("dev-request@{DOMAIN}");
    let line = robot(
        &mut fx,
        "mallory@example.net",
        &req,
        "discard",
        &toks["discard"],
        "",
    );
    assert!(line.starts_with("refused"), "{line}");
    let line = robot(
        &mut fx,
        "mod1@example.org",
        &req,
        "discard",
        &toks["reject"],
        "",
    );
    assert!(line.contains("this token is for `reject`"), "{line}");
    let line = robot(
        &mut fx,
        "mod1@example.org",
        &req,
        "frobnicate",
        &toks["reject"],
        "",
    );
    assert!(line.contains("not a moderation command"), "{line}");
    let line = robot(&mut fx, "mod1@example.org", &req, "reject", "", "");
    assert!(line.starts_with("usage"), "{line}");
    assert_eq!(state(&fx, id).state, "held");
    // through majordomo@ (no list in the route) the token names the list
    let line = robot(
        &mut fx,
        "mod1@example.org",
        &format!("majordomo@{DOMAIN}"),
        "reject",
        &toks["reject"],
        "spam, sorry",
    );
    assert!(line.starts_with("rejected: held message"), "{line}");
    let h = state(&fx, id);
    assert_eq!(
        (h.state.as_str(), h.note.as_deref()),
        ("rejected", Some("spam, sorry"))
    );
    let line = robot(
        &mut fx,
        "Mod2@Example.org",
        &req,
        "discard",
        &toks["discard"],
        "",
    );
    assert!(
        line.contains("already rejected by mod1@example.org"),
        "{line}"
    );
}

#[test]
fn cli_style_act_by_id() {
    let mut fx = fixture(MODS);
    let (id, _) = held_with_tokens(&mut fx, "cli", 10);
    let tx = fx.conn.transaction().unwrap();
    let o = act(&fx.ctx, &tx, id, ModAction::Discard, "cli:root", None, 20).unwrap();
    assert!(matches!(o, ActOutcome::Done(_)), "{o:?}");
    let o = act(&fx.ctx, &tx, id, ModAction::Reject, "cli:root", None, 20).unwrap();
    assert!(matches!(o, ActOutcome::Already(_)), "{o:?}");
    let o = act(
        &fx.ctx,
        &tx,
        999_999,
        ModAction::Reject,
        "cli:root",
        None,
        20,
    )
    .unwrap();
    assert!(matches!(o, ActOutcome::NotFound(_)), "{o:?}");
}

#[test]
fn expiry_discards_old_posts_and_tells_the_poster() {
    let mut fx = fixture(&format!("{MODS}hold_days: 2\n"));
    let day = 86_400;
    let (old, toks) = held_with_tokens(&mut fx, "old", 0);
    let (young, _) = held_with_tokens(&mut fx, "young", day);
    let before = last_job_id(&fx.conn);
    assert_eq!(expire(&fx.ctx, &mut fx.conn, 2 * day - 1).unwrap(), 0);
    assert_eq!(expire(&fx.ctx, &mut fx.conn, 2 * day).unwrap(), 1);
    assert_eq!(state(&fx, old).state, "expired");
    assert_eq!(state(&fx, young).state, "held");
    let jobs = jobs_after(&fx.conn, before);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].rcpts, vec!["alice@example.net"]);
    let t = text_of(&jobs[0].bytes);
    assert!(t.contains("2 days") && t.contains("expired"), "{t}");
    // a late moderator hears it expired
    let jobs = reply(
        &mut fx,
        "mod1@example.org",
        "mod1@example.org",
        &toks["approve"],
        "",
        2 * day + 5,
    );
    assert!(text_of(&jobs[0].bytes).contains("already expired by expiry"));
    // tokens of long-closed posts are purged
    assert_eq!(expire(&fx.ctx, &mut fx.conn, 40 * day).unwrap(), 1);
    let left: i64 = fx
        .conn
        .query_row(
            "SELECT COUNT(*) FROM mod_tokens WHERE held_id = ?1",
            [old],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0);
}

#[test]
fn reminders_are_daily_and_list_what_is_pending() {
    let mut fx = fixture(MODS);
    let day = 86_400;
    held_with_tokens(&mut fx, "first", 0);
    held_with_tokens(&mut fx, "second", 10);
    let before = last_job_id(&fx.conn);
    // nothing older than a day yet
    assert_eq!(remind(&fx.ctx, &mut fx.conn, day - 1).unwrap(), 0);
    assert_eq!(remind(&fx.ctx, &mut fx.conn, day + 10).unwrap(), 1);
    let jobs = jobs_after(&fx.conn, before);
    assert_eq!(jobs[0].rcpts, vec!["mod1@example.org", "Mod2@Example.org"]);
    let t = text_of(&jobs[0].bytes);
    assert!(
        t.contains("2 post(s)") && t.contains("first") && t.contains("second"),
        "{t}"
    );
    // not again the same day
    assert_eq!(remind(&fx.ctx, &mut fx.conn, 2 * day).unwrap(), 0);
    assert_eq!(remind(&fx.ctx, &mut fx.conn, 2 * day + 10).unwrap(), 1);

    let mut fx = fixture(&format!("{MODS}moderator_reminders: false\n"));
    held_with_tokens(&mut fx, "first", 0);
    assert_eq!(remind(&fx.ctx, &mut fx.conn, 5 * day).unwrap(), 0);
}

#[test]
fn action_queries_use_indexes() {
    let fx = fixture(MODS);
    let plan = |sql: &str| -> Vec<String> {
        let mut stmt = fx
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let n = stmt.parameter_count();
        let params: Vec<rusqlite::types::Value> =
            (0..n).map(|_| rusqlite::types::Value::Integer(1)).collect();
        stmt.query_map(rusqlite::params_from_iter(params), |r| {
            r.get::<_, String>(3)
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    };
    let sender_sql =
        |t: &str| format!("SELECT EXISTS(SELECT 1 FROM {t} WHERE list = ?1 AND address_key = ?2)");
    for sql in [
        held::SQL_GET.to_string(),
        held::SQL_FINISH.to_string(),
        held::SQL_TOKEN.to_string(),
        held::SQL_USE_TOKEN.to_string(),
        sender_sql("accept_senders"),
        sender_sql("banned_senders"),
        "SELECT COUNT(*) FROM held INDEXED BY held_pending WHERE list = ?1 AND state = 'held'"
            .into(),
    ] {
        let p = plan(&sql);
        assert!(
            p.iter()
                .any(|l| l.starts_with("SEARCH") && l.contains("USING")),
            "no index in `{sql}`: {p:?}"
        );
        for line in &p {
            assert!(
                !line.starts_with("SCAN") || line == "SCAN CONSTANT ROW",
                "full scan in `{sql}`: {p:?}"
            );
        }
    }
}

#[test]
fn reply_verb_reads_the_first_word_only() {
    use super::act::reply_verb;
    assert_eq!(reply_verb(None), (None, None));
    assert_eq!(
        reply_verb(Some("approve")),
        (Some(ModAction::Approve), None)
    );
    assert_eq!(
        reply_verb(Some("  Reject: off topic\nsorry")),
        (Some(ModAction::Reject), Some("off topic\nsorry".into()))
    );
    assert_eq!(
        reply_verb(Some("Approved!")),
        (Some(ModAction::Approve), None)
    );
    assert_eq!(reply_verb(Some("BAN")), (Some(ModAction::Ban), None));
    // a verb later in the text is not an action
    assert_eq!(
        reply_verb(Some("please do not approve")),
        (None, Some("please do not approve".into()))
    );
    // "confirm" is the poster's word, never a moderator's action
    assert_eq!(reply_verb(Some("confirm")), (None, Some("confirm".into())));
    // no byte offset inside a multi-byte character
    assert_eq!(reply_verb(Some("ré")), (None, Some("ré".into())));
}

#[test]
fn a_rejected_members_post_is_reported_with_its_header_block_from_the_null_sender() {
    let mut fx = fixture(MODS);
    // alice is a member of some list here, so her post's header is quoted
    crate::store::members::add(
        &fx.conn,
        "other",
        "alice@example.net",
        "alice@example.net",
        None,
        crate::store::members::DeliveryMode::Each,
        1,
    )
    .unwrap();
    let (id, _) = held_with_tokens(&mut fx, "quoted-reject", 10);
    let before = last_job_id(&fx.conn);
    let tx = fx.conn.transaction().unwrap();
    let o = act(
        &fx.ctx,
        &tx,
        id,
        ModAction::Reject,
        "cli:root",
        Some("off topic"),
        20,
    )
    .unwrap();
    assert!(matches!(o, ActOutcome::Done(_)), "{o:?}");
    tx.commit().unwrap();
    let jobs = jobs_after(&fx.conn, before);
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].kind.as_str(), jobs[0].env_from.as_str()),
        ("notice", "")
    );
    let m = MessageParser::default().parse(&jobs[0].bytes).unwrap();
    let ct = m.content_type().unwrap();
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    assert_eq!(m.parts.len(), 4, "text, status, header block");
    let status = String::from_utf8_lossy(m.parts[2].contents()).into_owned();
    assert!(
        status.contains("Status: 5.7.1\r\nDiagnostic-Code: smtp; 550 5.7.1 rejected by a moderator: off topic\r\n"),
        "{status}"
    );
    let headers = String::from_utf8_lossy(m.parts[3].contents()).into_owned();
    assert!(headers.contains("quoted-reject"), "{headers}");
    assert!(m.body_text(0).unwrap().contains("off topic"));
}
