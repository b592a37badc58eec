//! Delivery status notifications (RFC 3464) when delivery gives up: once a
//! job has nothing pending, `on_job_done` gathers its facts, asks
//! `decide::decide` who (if anyone) is told, takes the rate budget, and
//! queues ONE `multipart/report` for the whole job (`report`), sent with
//! the null reverse-path so that it can never cause another report. The
//! failed recipients are read from the queue a row at a time and at most
//! `LISTED_MAX` are listed; the rest are counted.
//!
//! Trusts the queue rows and the configuration; the relay's replies and the
//! original's headers are made safe by `report`.

pub mod decide;
pub mod report;

use crate::config::Config;
use crate::store::outbound::{self, JobKind, NewJob};
use crate::store::rate::{self, Budget};
use crate::store::Result;
use decide::{Audience, JobFacts, Listed};
use mail_builder::headers::raw::Raw;
use report::{DeliveryStatus, RecipientStatus};
use rusqlite::{params, Connection, OptionalExtension};

/// Most recipients one report lists; any more are only counted.
pub const LISTED_MAX: usize = 1000;

/// Bytes of the original read for its header block.
const ORIGINAL_PREFIX: i64 = 64 * 1024;

struct JobRow {
    kind: String,
    list: Option<String>,
    env_from: String,
    requester: Option<String>,
    message_id: i64,
    created_at: i64,
}

/// After job `job_id` finished (inside the transaction that finished it):
/// queues the report its failed recipients call for, if any. Returns the
/// report's job id.
pub fn on_job_done(tx: &Connection, config: &Config, job_id: i64, now: i64) -> Result<Option<i64>> {
    let (failed, timed_out): (i64, i64) = tx
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(timed_out), 0) FROM job_rcpts
             WHERE job_id = ?1 AND state = 'failed'",
        )?
        .query_row([job_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if failed == 0 {
        return Ok(None);
    }
    let Some(job) = tx
        .prepare_cached(
            "SELECT kind, list, env_from, requester, message_id, created_at FROM jobs WHERE id = ?1",
        )?
        .query_row([job_id], |r| {
            Ok(JobRow {
                kind: r.get(0)?,
                list: r.get(1)?,
                env_from: r.get(2)?,
                requester: r.get(3)?,
                message_id: r.get(4)?,
                created_at: r.get(5)?,
            })
        })
        .optional()?
    else {
        return Ok(None);
    };
    let Some(kind) = JobKind::parse(&job.kind) else {
        return Ok(None);
    };
    let requester_failed = match &job.requester {
        Some(r) => tx
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM job_rcpts WHERE job_id = ?1 AND state = 'failed'
                 AND rcpt = ?2 COLLATE NOCASE)",
            )?
            .query_row(params![job_id, r], |r| r.get(0))?,
        None => false,
    };
    let lc = job.list.as_deref().and_then(|l| config.list(l));
    let facts = JobFacts {
        kind,
        list: lc.map(|l| l.name.as_str()),
        env_from: &job.env_from,
        requester: job.requester.as_deref(),
        owners: lc.map(|l| l.owners.as_slice()).unwrap_or(&[]),
        timed_out: timed_out as u64,
        refused: (failed - timed_out) as u64,
        requester_failed,
    };
    let Some(plan) = decide::decide(&facts) else {
        return Ok(None);
    };
    let (to_header, rcpts, budgets) = match &plan.to {
        Audience::Owners { list, owners } => {
            let owner = config.list_suffix_address(list, "owner");
            let b = vec![Budget::hourly(
                format!("owners:{}", crate::address::address_key(&owner)),
                config.robot.owner_mails_per_hour,
            )];
            (owner, owners.clone(), b)
        }
        Audience::Requester(a) => (
            a.clone(),
            vec![a.clone()],
            crate::limits::reply_budgets(&config.robot, a, false),
        ),
    };
    if let Some(b) = rate::take(tx, &budgets, now)? {
        tracing::warn!(job = job_id, to = %to_header, bucket = %b.bucket, limit = b.limit,
            "delivery report rate limit reached; report not sent");
        return Ok(None);
    }
    let listed_count = match plan.listed {
        Listed::TimedOut => timed_out,
        Listed::All => failed,
    } as u64;
    let recipients = failed_recipients(tx, job_id, plan.listed)?;
    let original: Vec<u8> = tx
        .prepare_cached("SELECT substr(bytes, 1, ?2) FROM messages WHERE id = ?1")?
        .query_row(params![job.message_id, ORIGINAL_PREFIX], |r| r.get(0))
        .optional()?
        .unwrap_or_default();
    let bytes = match compose(
        config,
        &Composed {
            job_id,
            list: facts.list,
            to_header: &to_header,
            audience: &plan.to,
            total: listed_count,
            arrival: job.created_at,
            recipients,
            original: &original,
        },
        now,
    ) {
        Ok(b) => b,
        Err(e) => {
            // never let a report stop the queue: the job stays done
            tracing::warn!(job = job_id, error = %e, "building a delivery report failed; not sent");
            return Ok(None);
        }
    };
    let rcpt_refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let id = outbound::enqueue(
        tx,
        &NewJob {
            list: facts.list,
            kind: JobKind::Notice,
            env_from: "",
            verp: false,
            bytes: &bytes,
        },
        &rcpt_refs,
        now,
    )?;
    tracing::info!(job = job_id, report = id, to = %to_header, recipients = listed_count,
        "delivery report queued");
    Ok(Some(id))
}

/// The failed recipients to list, in queue order, at most `LISTED_MAX`,
/// read a row at a time.
fn failed_recipients(tx: &Connection, job_id: i64, listed: Listed) -> Result<Vec<RecipientStatus>> {
    let only_timed_out = listed == Listed::TimedOut;
    let mut stmt = tx.prepare_cached(
        "SELECT rcpt, last_reply, timed_out, updated_at FROM job_rcpts
         WHERE job_id = ?1 AND state = 'failed' AND (?2 = 0 OR timed_out = 1)
         ORDER BY id LIMIT ?3",
    )?;
    let mut rows = stmt.query(params![job_id, only_timed_out as i64, LISTED_MAX as i64])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let rcpt: String = r.get(0)?;
        let reply: Option<String> = r.get(1)?;
        let timed_out: bool = r.get::<_, i64>(2)? != 0;
        let at: i64 = r.get(3)?;
        let reply = reply.unwrap_or_default();
        // a timeout's row reads "gave up after N hours: LAST REPLY"
        let last = if timed_out {
            reply.split_once(": ").map_or(reply.as_str(), |(_, r)| r)
        } else {
            reply.as_str()
        };
        out.push(RecipientStatus {
            recipient: rcpt,
            status: if timed_out {
                "4.4.7".to_string()
            } else {
                crate::mime::status::of_reply(last)
            },
            diagnostic: (!last.trim().is_empty()).then(|| ("smtp", last.to_string())),
            last_attempt: Some(at),
        });
    }
    Ok(out)
}

struct Composed<'a> {
    job_id: i64,
    list: Option<&'a str>,
    to_header: &'a str,
    audience: &'a Audience,
    /// Failed recipients of the listed kind, listed or not.
    total: u64,
    arrival: i64,
    recipients: Vec<RecipientStatus>,
    original: &'a [u8],
}

/// The human text: what happened, to how many, and what to do.
fn human_text(config: &Config, c: &Composed<'_>, subject: &str) -> String {
    let hours = config.delivery.give_up_hours;
    let what = match (c.audience, c.list) {
        (Audience::Owners { .. }, Some(l)) => format!(
            "A post to {} (Subject: {subject}) could not be delivered to {} \
             member address(es) within {hours} hours; delivery has given up on them.\n\n\
             Each address's last reply is in the attached report. The bounce \
             processor counts these failures as it counts bounces; many \
             addresses at one domain usually mean that domain's mail server \
             is down.",
            config.list_address(l),
            c.total
        ),
        _ => format!(
            "A message listd sent at your request (Subject: {subject}) could \
             not be delivered to {} address(es); delivery has given up.\n\n\
             Each address's reply is in the attached report.",
            c.total
        ),
    };
    let more = c.total.saturating_sub(c.recipients.len() as u64);
    let mut text = format!("{what}\n\n");
    for r in c.recipients.iter().take(20) {
        text.push_str(&format!("  {}\n", r.recipient));
    }
    let unlisted_here = c.total.saturating_sub(c.recipients.len().min(20) as u64);
    if unlisted_here > 0 {
        text.push_str(&format!("  ... and {unlisted_here} more\n"));
    }
    if more > 0 {
        text.push_str(&format!(
            "\nThe report lists the first {} addresses; {more} more are not listed.\n",
            c.recipients.len()
        ));
    }
    text
}

/// The report as a message: From `postmaster@` the list's domain,
/// Auto-Submitted, the
/// original's Message-ID as In-Reply-To.
fn compose(config: &Config, c: &Composed<'_>, now: i64) -> std::io::Result<Vec<u8>> {
    let parsed = mail_parser::MessageParser::default().parse_headers(c.original);
    let subject = parsed
        .as_ref()
        .and_then(|m| m.subject())
        .map(|s| {
            s.chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>()
        })
        .unwrap_or_default();
    let orig_id = parsed
        .as_ref()
        .and_then(|m| m.message_id())
        .map(str::to_string);
    let domain = c
        .list
        .map_or(config.domain.as_str(), |l| config.list_domain(l));
    let status = DeliveryStatus {
        reporting_domain: domain,
        arrival: Some(c.arrival),
        recipients: c.recipients.clone(),
    };
    let text = human_text(config, c, &subject);
    let subject_line = match c.list {
        Some(l) if matches!(c.audience, Audience::Owners { .. }) => format!(
            "Undeliverable: {} recipient(s) of a post to {}",
            c.total,
            config.list_address(l)
        ),
        _ => "Undeliverable: mail sent at your request".to_string(),
    };
    let mut b = mail_builder::MessageBuilder::new()
        .from((
            "Mail Delivery System".to_string(),
            format!("postmaster@{domain}"),
        ))
        .to(c.to_header)
        .subject(subject_line)
        .date(now)
        .message_id(format!("listd.dsn.{}.{now}@{domain}", c.job_id))
        .header("Auto-Submitted", Raw::new("auto-replied"));
    if let Some(l) = c.list {
        b = b.header("X-Loop", Raw::new(config.list_address(l)));
    }
    if let Some(id) = orig_id {
        b = b.in_reply_to(id.clone()).references(id);
    }
    b.body(report::report_part(text, &status, Some(c.original)))
        .write_to_vec()
}
