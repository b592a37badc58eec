//! Never loop, never help abuse: whether a command mail may be answered at
//! all, and the per-address hourly limit on robot mail.
//!
//! `check` is a pure decision over the envelope sender and the mail's
//! headers (untrusted, but only ever compared, never acted on). The rate
//! limit is a small table (`robot_replies`) read and written inside the
//! handler's transaction.

use rusqlite::{params, Connection};

use crate::store::Result;

/// Whether the robot may answer a mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Answer,
    /// Never answer; the reason is logged.
    Drop(String),
}

/// The header fields the loop rules look at, unfolded and trimmed.
#[derive(Debug, Clone, Default)]
pub struct LoopHeaders {
    pub auto_submitted: Vec<String>,
    pub precedence: Vec<String>,
    pub list_id: Vec<String>,
    pub x_loop: Vec<String>,
    /// The address in From:, if any.
    pub from: Option<String>,
    /// The display name in From:, if any.
    pub from_name: Option<String>,
}

impl LoopHeaders {
    /// Collects the fields from a parsed mail.
    pub fn from_message(msg: &mail_parser::Message<'_>) -> LoopHeaders {
        let mut h = LoopHeaders::default();
        for (name, value) in msg.headers_raw() {
            let v = unfold(value);
            match name.to_ascii_lowercase().as_str() {
                "auto-submitted" => h.auto_submitted.push(v),
                "precedence" => h.precedence.push(v),
                "list-id" => h.list_id.push(v),
                "x-loop" => h.x_loop.push(v),
                _ => {}
            }
        }
        let first = msg.from().and_then(|a| a.first());
        h.from = first.and_then(|a| a.address()).map(str::to_string);
        h.from_name = first.and_then(|a| a.name()).map(str::to_string);
        h
    }
}

fn unfold(v: &str) -> String {
    v.split(['\r', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Local parts (before any `+detail`) of senders that are machines.
const MACHINE_LOCALS: &[&str] = &[
    "mailer-daemon",
    "mailer_daemon",
    "postmaster",
    "majordomo",
    "listserv",
    "mailman",
    "sympa",
    "ezmlm",
    "noreply",
    "no-reply",
    "no_reply",
    "donotreply",
    "do-not-reply",
    "nobody",
];

/// Local-part endings of list service addresses (ours or anyone's).
const MACHINE_SUFFIXES: &[&str] = &[
    "-request", "-bounces", "-bounce", "-owner", "-confirm", "-errors",
];

/// Why an address is a machine's, if it is.
pub fn machine_sender(addr: &str) -> Option<String> {
    let addr = addr.trim().trim_start_matches('<').trim_end_matches('>');
    let local = addr.rsplit_once('@').map(|(l, _)| l).unwrap_or(addr);
    let base = local
        .split('+')
        .next()
        .unwrap_or(local)
        .to_ascii_lowercase();
    if MACHINE_LOCALS.contains(&base.as_str()) {
        return Some(format!("sender `{addr}` is a mail system address"));
    }
    if base.starts_with("owner-") {
        return Some(format!("sender `{addr}` is a list owner address"));
    }
    for s in MACHINE_SUFFIXES {
        if base.ends_with(s) {
            return Some(format!(
                "sender `{addr}` is a list service address (`*{s}`)"
            ));
        }
    }
    None
}

/// Decides whether a mail may be answered. `domain` is our domain: mail
/// carrying a List-Id or X-Loop of ours is our own mail coming back.
pub fn check(domain: &str, env_from: &str, h: &LoopHeaders) -> Verdict {
    if env_from.trim().is_empty() || env_from.trim() == "<>" {
        return Verdict::Drop("null envelope sender <>".into());
    }
    for v in &h.auto_submitted {
        let kw = v
            .split([';', '(', ' '])
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if kw != "no" {
            return Verdict::Drop(format!("Auto-Submitted: {v}"));
        }
    }
    for v in &h.precedence {
        let p = v.trim().to_ascii_lowercase();
        if ["bulk", "junk", "list"].contains(&p.as_str()) {
            return Verdict::Drop(format!("Precedence: {v}"));
        }
    }
    let domain = domain.to_ascii_lowercase();
    for v in &h.list_id {
        let lc = v.to_ascii_lowercase();
        let id = lc
            .rsplit_once('<')
            .map(|(_, r)| r.trim_end_matches('>').trim())
            .unwrap_or(lc.trim());
        if id == domain || id.ends_with(&format!(".{domain}")) {
            return Verdict::Drop(format!("carries our own List-Id {v}"));
        }
    }
    for v in &h.x_loop {
        if v.to_ascii_lowercase().contains(&format!("@{domain}")) {
            return Verdict::Drop(format!("carries our own X-Loop {v}"));
        }
    }
    for a in std::iter::once(env_from).chain(h.from.as_deref()) {
        let dom = a
            .trim()
            .trim_end_matches('>')
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase());
        if dom.as_deref() == Some(domain.as_str()) {
            return Verdict::Drop(format!("sender `{a}` is an address of this server"));
        }
    }
    if let Some(why) = machine_sender(env_from) {
        return Verdict::Drop(why);
    }
    if let Some(why) = h.from.as_deref().and_then(machine_sender) {
        return Verdict::Drop(why);
    }
    Verdict::Answer
}

/// Records one robot mail to `address_key` if the hourly limit allows it;
/// returns false (record nothing) when the address had `per_hour` already.
/// `per_hour == 0` means no limit.
pub fn allow_reply(conn: &Connection, address_key: &str, per_hour: u32, now: i64) -> Result<bool> {
    if per_hour == 0 {
        return Ok(true);
    }
    {
        let sent: i64 = conn
            .prepare_cached(
                "SELECT COUNT(*) FROM robot_replies WHERE address_key = ?1 AND sent_at > ?2",
            )?
            .query_row(params![address_key, now - 3600], |r| r.get(0))?;
        if sent >= i64::from(per_hour) {
            return Ok(false);
        }
    }
    conn.prepare_cached("INSERT INTO robot_replies(address_key, sent_at) VALUES (?1, ?2)")?
        .execute(params![address_key, now])?;
    Ok(true)
}

/// Forgets reply records older than an hour. Rows are written in time
/// order, so this deletes the id range before the first recent row (a rowid
/// range, not a table scan; a few old rows after it wait for the next call).
pub fn purge(conn: &Connection, now: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM robot_replies WHERE id < COALESCE(
                (SELECT id FROM robot_replies WHERE sent_at > ?1 ORDER BY id LIMIT 1),
                (SELECT MAX(id) + 1 FROM robot_replies))",
        )?
        .execute([now - 3600])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h() -> LoopHeaders {
        LoopHeaders {
            from: Some("ann@example.org".into()),
            ..Default::default()
        }
    }

    #[test]
    fn answers_a_person() {
        assert_eq!(
            check("lists.example.org", "ann@example.org", &h()),
            Verdict::Answer
        );
        let mut x = h();
        x.auto_submitted.push("no".into());
        x.precedence.push("first-class".into());
        x.list_id.push("Other list <other.example.net>".into());
        x.x_loop.push("robot@example.net".into());
        assert_eq!(
            check("lists.example.org", "ann@example.org", &x),
            Verdict::Answer
        );
    }

    #[test]
    fn never_answers_machines_or_loops() {
        let d = "lists.example.org";
        let drop = |env: &str, f: &dyn Fn(&mut LoopHeaders)| {
            let mut x = h();
            f(&mut x);
            matches!(check(d, env, &x), Verdict::Drop(_))
        };
        assert!(drop("", &|_| {}));
        assert!(drop("<>", &|_| {}));
        assert!(drop("a@x.org", &|x| x
            .auto_submitted
            .push("auto-replied".into())));
        assert!(drop("a@x.org", &|x| x
            .auto_submitted
            .push("Auto-Generated (vacation)".into())));
        assert!(drop("a@x.org", &|x| x.precedence.push("Bulk".into())));
        assert!(drop("a@x.org", &|x| x.precedence.push("junk".into())));
        assert!(drop("a@x.org", &|x| x.precedence.push("list".into())));
        assert!(drop("a@x.org", &|x| x
            .list_id
            .push("Dev <dev.LISTS.example.org>".into())));
        assert!(drop("a@x.org", &|x| x
            .x_loop
            .push("dev-request@lists.example.org".into())));
        assert!(drop("MAILER-DAEMON@x.org", &|_| {}));
        assert!(drop("postmaster@x.org", &|_| {}));
        assert!(drop("other-request@x.org", &|_| {}));
        assert!(drop("other-bounces+ann=x.org@x.org", &|_| {}));
        assert!(drop("owner-foo@x.org", &|_| {}));
        assert!(drop("a@x.org", &|x| x.from = Some("Mailer-Daemon@x.org".into())));
        assert!(drop("a@x.org", &|x| x.from = Some("noreply@x.org".into())));
        assert!(drop("dev@LISTS.example.org", &|_| {}));
        assert!(drop("a@x.org", &|x| x.from =
            Some("dev@lists.example.org".into())));
    }

    #[test]
    fn rate_limit_per_address_per_hour() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(&dir.path().join("t.db")).unwrap();
        for i in 0..3 {
            assert!(allow_reply(&conn, "a@x.org", 3, 1000 + i).unwrap());
        }
        assert!(!allow_reply(&conn, "a@x.org", 3, 1010).unwrap());
        assert!(allow_reply(&conn, "b@x.org", 3, 1010).unwrap());
        // an hour after the first, one slot frees up
        assert!(allow_reply(&conn, "a@x.org", 3, 1000 + 3600).unwrap());
        assert!(!allow_reply(&conn, "a@x.org", 3, 1000 + 3600).unwrap());
        assert!(allow_reply(&conn, "a@x.org", 0, 1001 + 3600).unwrap());
        let rows = |c: &Connection| -> i64 {
            c.query_row("SELECT COUNT(*) FROM robot_replies", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(rows(&conn), 5, "no limit: nothing recorded");
        // at 1000+3600+1800 the rows of t=1000..1010 are old, t=4600 is not
        assert_eq!(purge(&conn, 1000 + 3600 + 1800).unwrap(), 4);
        assert_eq!(rows(&conn), 1);
        assert_eq!(purge(&conn, 1000 + 3 * 3600).unwrap(), 1);
        assert_eq!(purge(&conn, 1000 + 3 * 3600).unwrap(), 0);
    }
}
