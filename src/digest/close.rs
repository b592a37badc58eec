//! Closing a digest issue: number it, assign every pending entry to it,
//! build the MIME and plain bodies each recipient group needs, store each
//! once and queue it to its recipients, all in the caller's transaction, so
//! a crash leaves either no issue or a whole one.
//!
//! Run by the digest worker ([`super::tick`], [`super::close_due`]) and by
//! `listd digest send`, never inside a post's transaction. Trusts the store
//! and the configuration; the posts' bytes are untrusted mail, parsed
//! best-effort by [`super::item`].

use super::{
    build_mime, build_plain, digest_headers, encode, ensure_state, item, pending, text, Closed,
    DigestError, Pending, Trigger,
};
use crate::config::ListConfig;
use crate::handler::Ctx;
use crate::store::members::DeliveryMode;
use crate::store::outbound::{self, JobKind};
use crate::store::{self, StoreError};
use rusqlite::{params, Connection};

/// Built-in text used when a list's header template is missing or fails.
const FALLBACK_HEADER: &str = "Send {{list}} mailing list submissions to\n    {{list_address}}\n\nFor help, write to {{request_address}} with the word `help`.\nThe list's owners are at {{owner_address}}.\n\nWhen replying, please edit your Subject line so it is more specific\nthan \"Re: Contents of {{list}} digest...\"\n";
/// Built-in text used when a list's footer template is missing or fails.
const FALLBACK_FOOTER: &str = "{{list}} mailing list\n{{list_address}}\nTo leave the list or change how you get it, write to {{request_address}}\n";

fn render(
    ctx: &Ctx,
    list: &ListConfig,
    name: &str,
    fallback: &str,
    data: &serde_json::Value,
) -> String {
    if name.is_empty() {
        return String::new();
    }
    match ctx.templates.render(Some(&list.name), name, data) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(list = %list.name, template = name, error = %e, "digest template failed; using the built-in text");
            let mut h = handlebars::Handlebars::new();
            h.register_escape_fn(handlebars::no_escape);
            h.render_template(fallback, data).unwrap_or_default()
        }
    }
}

/// A group of recipients sharing one body: those whose watermark lies in
/// `[lo, hi)` (members) or the given addresses (leavers).
enum Rcpts<'a> {
    Members {
        mode: DeliveryMode,
        lo: i64,
        hi: i64,
    },
    Listed(&'a [String]),
}

/// Stores one body, creates its job and writes its recipients (streamed
/// from `members`) as batches. Returns (job id, recipients), or None when
/// the group turned out empty (then nothing is left behind).
#[allow(clippy::too_many_arguments)]
fn queue_body(
    ctx: &Ctx,
    conn: &Connection,
    list: &ListConfig,
    issue_id: i64,
    format: &str,
    posts: usize,
    body: &[u8],
    rcpts: Rcpts<'_>,
    now: i64,
) -> Result<Option<(i64, i64)>, StoreError> {
    let env_from = ctx.config.list_suffix_address(&list.name, "bounces");
    let message_id = store::spool::insert_outbound(conn, &env_from, body, now)?;
    let job_id = outbound::create_job_for_message(
        conn,
        Some(&list.name),
        JobKind::Digest,
        &env_from,
        list.verp,
        message_id,
        now,
    )?;
    // grouped by domain, relay.max_recipients each: the fan-out's batcher
    let mut batches =
        crate::delivery::queue::Batcher::new(conn, job_id, ctx.config.relay.max_recipients, now);
    match rcpts {
        Rcpts::Members { mode, lo, hi } => {
            let mut stmt = conn.prepare_cached(
                "SELECT address FROM members
                 WHERE list = ?1 AND mode = ?2 AND disabled = 0
                   AND digest_after >= ?3 AND digest_after < ?4
                 ORDER BY address_key",
            )?;
            let mut rows = stmt.query(params![list.name, mode.as_str(), lo, hi])?;
            while let Some(r) = rows.next()? {
                batches.push(&r.get::<_, String>(0)?)?;
            }
        }
        Rcpts::Listed(addrs) => {
            for a in addrs {
                batches.push(a)?;
            }
        }
    }
    let n = batches.finish()?.1 as i64;
    if n == 0 {
        // Nobody after all: leave no empty job and no orphan body.
        conn.execute("DELETE FROM jobs WHERE id = ?1", [job_id])?;
        conn.execute("DELETE FROM messages WHERE id = ?1", [message_id])?;
        return Ok(None);
    }
    conn.prepare_cached(
        "INSERT INTO digest_jobs(issue_id, format, job_id, message_id, posts, recipients)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        issue_id,
        format,
        job_id,
        message_id,
        posts as i64,
        n
    ])?;
    Ok(Some((job_id, n)))
}

/// A digest body's format, by the recipients' delivery mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Mime,
    Plain,
}

impl Format {
    const ALL: [(DeliveryMode, Format); 2] = [
        (DeliveryMode::DigestMime, Format::Mime),
        (DeliveryMode::DigestPlain, Format::Plain),
    ];

    fn as_str(self) -> &'static str {
        match self {
            Format::Mime => "mime",
            Format::Plain => "plain",
        }
    }

    /// The format a `digest_leavers.mode` was getting.
    fn of_mode(mode: &str) -> Format {
        if mode == DeliveryMode::DigestPlain.as_str() {
            Format::Plain
        } else {
            Format::Mime
        }
    }
}

/// Closes the list's current issue inside the caller's transaction: numbers
/// it (a new volume when the volume period changed), assigns every pending
/// entry to it, builds the MIME and plain bodies each recipient group needs,
/// stores each once and queues it to its recipients. Returns None (and
/// changes nothing but creating the list's state) when nothing is pending
/// and `send_empty` is off.
pub fn close_issue(
    ctx: &Ctx,
    conn: &Connection,
    list: &ListConfig,
    trigger: Trigger,
    now: i64,
) -> Result<Option<Closed>, DigestError> {
    ensure_state(conn, list, now)?;
    let pend = pending(conn, &list.name)?;
    if pend.posts == 0 && !list.digest.send_empty {
        return Ok(None);
    }
    let number = number_issue(conn, list, trigger, pend, now)?;
    let (ids, raws) = load_entries(conn, list, number.id, pend.posts)?;
    let items: Vec<item::Item<'_>> = raws.iter().map(|r| item::Item::parse(r)).collect();
    let (header_text, footer_text) = render_texts(ctx, list, number, ids.len(), now);
    let closing = Closing {
        ctx,
        conn,
        list,
        number,
        ids,
        items,
        header_text,
        footer_text,
        now,
    };
    let mut closed = Closed {
        list: list.name.clone(),
        issue_id: number.id,
        volume: number.volume,
        issue: number.issue,
        trigger,
        posts: pend.posts,
        bytes: pend.bytes,
        mime_rcpts: 0,
        plain_rcpts: 0,
        jobs: Vec::new(),
    };
    for (mode, format) in Format::ALL {
        closing.queue_members(mode, format, &mut closed)?;
    }
    closing.queue_leavers(&mut closed)?;
    Ok(Some(closed))
}

/// An issue's row and numbers.
#[derive(Debug, Clone, Copy)]
struct Number {
    id: i64,
    volume: i64,
    issue: i64,
}

/// Numbers the issue (a new volume when the volume period changed), clears
/// the list's due mark, records the issue and assigns every pending entry
/// to it.
fn number_issue(
    conn: &Connection,
    list: &ListConfig,
    trigger: Trigger,
    pend: Pending,
    now: i64,
) -> Result<Number, StoreError> {
    let st = ensure_state(conn, list, now)?;
    let key = list.digest.volume_period().key(now);
    let (volume, issue) = if st.last_issue > 0 && key != st.period_key {
        (st.volume + 1, 1)
    } else {
        (st.volume, st.last_issue + 1)
    };
    conn.execute(
        "UPDATE digest_state
         SET volume = ?2, last_issue = ?3, period_key = ?4, last_sent_at = ?5, due = NULL
         WHERE list = ?1",
        params![list.name, volume, issue, key, now],
    )?;
    conn.execute(
        "INSERT INTO digest_issues(list, volume, issue, trigger, closed_at, posts, bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            list.name,
            volume,
            issue,
            trigger.as_str(),
            now,
            pend.posts,
            pend.bytes
        ],
    )?;
    let id = conn.last_insert_rowid();
    conn.execute(
        "UPDATE digest_entries SET issue_id = ?2 WHERE list = ?1 AND issue_id IS NULL",
        params![list.name, id],
    )?;
    Ok(Number { id, volume, issue })
}

/// The issue's entries in the order they were distributed: their ids and
/// stored bytes. Fails when an entry's bytes are missing.
fn load_entries(
    conn: &Connection,
    list: &ListConfig,
    issue_id: i64,
    expected: i64,
) -> Result<(Vec<i64>, Vec<Vec<u8>>), StoreError> {
    let mut ids = Vec::new();
    let mut raws = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT e.id, m.bytes FROM digest_entries e JOIN messages m ON m.id = e.message_id
         WHERE e.list = ?1 AND e.issue_id = ?2 ORDER BY e.id",
    )?;
    let mut rows = stmt.query(params![list.name, issue_id])?;
    while let Some(r) = rows.next()? {
        ids.push(r.get(0)?);
        raws.push(r.get(1)?);
    }
    if ids.len() as i64 != expected {
        return Err(StoreError::Invalid(format!(
            "digest: {expected} entries pending for `{}` but {} have stored bytes",
            list.name,
            ids.len()
        )));
    }
    Ok((ids, raws))
}

/// One issue being closed: what every body of it shares.
struct Closing<'a> {
    ctx: &'a Ctx,
    conn: &'a Connection,
    list: &'a ListConfig,
    number: Number,
    /// The entries' ids, oldest first (watermarks compare against them).
    ids: Vec<i64>,
    items: Vec<item::Item<'a>>,
    header_text: String,
    footer_text: String,
    now: i64,
}

/// The issue's header and footer text, rendered once for all its bodies.
fn render_texts(
    ctx: &Ctx,
    list: &ListConfig,
    number: Number,
    posts: usize,
    now: i64,
) -> (String, String) {
    let Number { volume, issue, .. } = number;
    let data = serde_json::json!({
        "list": list.name,
        "description": list.description,
        "list_address": ctx.config.list_address(&list.name),
        "request_address": ctx.config.list_suffix_address(&list.name, "request"),
        "owner_address": ctx.config.list_suffix_address(&list.name, "owner"),
        "volume": volume,
        "issue": issue,
        "title": text::title(&list.name, volume, issue),
        "date": crate::config::schedule::rfc5322(now),
        "posts": posts,
    });
    (
        render(ctx, list, &list.digest.header, FALLBACK_HEADER, &data),
        render(ctx, list, &list.digest.footer, FALLBACK_FOOTER, &data),
    )
}

impl Closing<'_> {
    /// Builds a body holding `subset` of the issue's posts.
    fn build(&self, format: Format, subset: &[item::Item<'_>]) -> Result<Vec<u8>, DigestError> {
        let Number { volume, issue, .. } = self.number;
        let headers = digest_headers(&self.ctx.config, self.list, volume, issue, self.now);
        let d = text::Digest {
            list: &self.list.name,
            volume,
            issue,
            now: self.now,
            headers: &headers,
            header_text: &self.header_text,
            footer_text: &self.footer_text,
        };
        Ok(match format {
            Format::Mime => build_mime::build(&d, subset, &mut encode::random_boundary)?,
            Format::Plain => build_plain::build(&d, subset),
        })
    }

    /// Builds one body holding the issue's entries `posts` and queues it to
    /// `rcpts`, counting it in `closed`.
    fn queue(
        &self,
        format: Format,
        posts: std::ops::Range<usize>,
        rcpts: Rcpts<'_>,
        closed: &mut Closed,
    ) -> Result<(), DigestError> {
        let subset = &self.items[posts];
        let body = self.build(format, subset)?;
        let job = queue_body(
            self.ctx,
            self.conn,
            self.list,
            self.number.id,
            format.as_str(),
            subset.len(),
            &body,
            rcpts,
            self.now,
        )?;
        if let Some((job_id, n)) = job {
            closed.jobs.push(job_id);
            match format {
                Format::Mime => closed.mime_rcpts += n,
                Format::Plain => closed.plain_rcpts += n,
            }
        }
        Ok(())
    }

    /// The members in `mode`, grouped by how many of this issue's entries
    /// their watermark skips: (entries skipped, watermark range `[lo, hi)`).
    fn member_groups(&self, mode: DeliveryMode) -> Result<Vec<(usize, i64, i64)>, StoreError> {
        let ids = &self.ids;
        let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else {
            return Ok(vec![(0, i64::MIN, i64::MAX)]);
        };
        let mut groups = vec![(0, i64::MIN, first)];
        let marks: Vec<i64> = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT digest_after FROM members
                 WHERE list = ?1 AND mode = ?2 AND disabled = 0
                   AND digest_after >= ?3 AND digest_after < ?4",
            )?
            .query_map(params![self.list.name, mode.as_str(), first, last], |r| {
                r.get(0)
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut cuts: Vec<usize> = marks
            .iter()
            .map(|&m| ids.partition_point(|&id| id <= m))
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        groups.extend(cuts.into_iter().map(|cut| (cut, ids[cut - 1], ids[cut])));
        Ok(groups)
    }

    /// Queues a body to each group of members in `mode` that has anyone in
    /// it: the entries after their watermark.
    fn queue_members(
        &self,
        mode: DeliveryMode,
        format: Format,
        closed: &mut Closed,
    ) -> Result<(), DigestError> {
        for (cut, lo, hi) in self.member_groups(mode)? {
            let any: bool = self.conn.query_row(
                "SELECT EXISTS(SELECT 1 FROM members WHERE list = ?1 AND mode = ?2 AND disabled = 0
                   AND digest_after >= ?3 AND digest_after < ?4)",
                params![self.list.name, mode.as_str(), lo, hi],
                |r| r.get(0),
            )?;
            if any {
                let rcpts = Rcpts::Members { mode, lo, hi };
                self.queue(format, cut..self.items.len(), rcpts, closed)?;
            }
        }
        Ok(())
    }

    /// Members who went back to one mail per post while entries they were
    /// owed were pending: one last digest with just those entries, one body
    /// per (mode, owed range). Then forgets them.
    fn queue_leavers(&self, closed: &mut Closed) -> Result<(), DigestError> {
        let leavers: Vec<(String, String, i64, i64)> = self
            .conn
            .prepare_cached(
                "SELECT address, mode, after_entry, upto_entry FROM digest_leavers
                 WHERE list = ?1 ORDER BY mode, after_entry, upto_entry, id",
            )?
            .query_map([&self.list.name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        for group in leavers.chunk_by(|a, b| (&a.1, a.2, a.3) == (&b.1, b.2, b.3)) {
            let (_, mode, after, upto) = &group[0];
            let lo = self.ids.partition_point(|&id| id <= *after);
            let hi = self.ids.partition_point(|&id| id <= *upto);
            if hi > lo {
                let addrs: Vec<String> = group.iter().map(|l| l.0.clone()).collect();
                self.queue(Format::of_mode(mode), lo..hi, Rcpts::Listed(&addrs), closed)?;
            }
        }
        self.conn.execute(
            "DELETE FROM digest_leavers WHERE list = ?1",
            [&self.list.name],
        )?;
        Ok(())
    }
}
