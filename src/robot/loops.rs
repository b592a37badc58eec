//! Never loop, never help abuse: whether a command mail may be answered at
//! all.
//!
//! `check` is a pure decision over the envelope sender and the mail's
//! headers (untrusted, but only ever compared, never acted on).
//! The budgets a reply counts against are `limits::reply_budgets`.

use crate::mime::{header_block, list_id};

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
            let v = header_block::unfold_text(value.as_bytes());
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

/// Decides whether a mail may be answered. `domains` are the domains we
/// serve (`Config::served_domains`): mail carrying a List-Id or X-Loop of
/// any of them, or sent from one, is our own mail coming back.
pub fn check(domains: &[&str], env_from: &str, h: &LoopHeaders) -> Verdict {
    for d in domains {
        if let v @ Verdict::Drop(_) = check_one(d, env_from, h) {
            return v;
        }
    }
    check_one(domains.first().copied().unwrap_or(""), env_from, h)
}

fn check_one(domain: &str, env_from: &str, h: &LoopHeaders) -> Verdict {
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
        let id = list_id::parse(v);
        if id == domain || id.ends_with(&format!(".{domain}")) {
            return Verdict::Drop(format!("carries our own List-Id {v}"));
        }
    }
    for v in &h.x_loop {
        if list_id::parse_x_loop(v).contains(&format!("@{domain}")) {
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
            check(&["lists.example.org"], "ann@example.org", &h()),
            Verdict::Answer
        );
        let mut x = h();
        x.auto_submitted.push("no".into());
        x.precedence.push("first-class".into());
        x.list_id.push("Other list <other.example.net>".into());
        x.x_loop.push("robot@example.net".into());
        assert_eq!(
            check(&["lists.example.org"], "ann@example.org", &x),
            Verdict::Answer
        );
    }

    #[test]
    fn mail_from_or_about_any_served_domain_is_our_own() {
        let ds = ["lists.example.org", "lists.example.net"];
        let mut x = h();
        assert_eq!(check(&ds, "ann@example.org", &x), Verdict::Answer);
        x.list_id.push("Dev <dev.lists.example.net>".into());
        assert!(matches!(
            check(&ds, "ann@example.org", &x),
            Verdict::Drop(_)
        ));
        assert_eq!(
            check(&ds[..1], "ann@example.org", &x),
            Verdict::Answer,
            "a domain not served is someone else's"
        );
        assert!(matches!(
            check(&ds, "dev-bounces@lists.example.net", &h()),
            Verdict::Drop(_)
        ));
    }

    #[test]
    fn never_answers_machines_or_loops() {
        let d = "lists.example.org";
        let drop = |env: &str, f: &dyn Fn(&mut LoopHeaders)| {
            let mut x = h();
            f(&mut x);
            matches!(check(&[d], env, &x), Verdict::Drop(_))
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
        // read as mime::list_id reads them: a comment after the id, a
        // missing `>`, a display name before the X-Loop address
        assert!(drop("a@x.org", &|x| x
            .list_id
            .push("Dev <dev.lists.example.org> (our list)".into())));
        assert!(drop("a@x.org", &|x| x
            .list_id
            .push("Dev <dev.lists.example.org".into())));
        assert!(drop("a@x.org", &|x| x
            .x_loop
            .push("Robot <dev@lists.example.org>".into())));
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
}
