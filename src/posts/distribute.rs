//! Distribution of an accepted or approved post: decorate, archive, queue
//! the fan-out, feed the digest; and the Message-ID memory that catches
//! duplicates. Called by the post handler and by moderation's approve.
//!
//! Trusts the list configuration; the post's bytes are untrusted and only
//! rewritten by `decorate` (bytes in, bytes out). Runs in the caller's
//! transaction.

use super::decorate::{self, Decoration};
use super::mitigate::{self, Mitigation};
use super::rules::DUPLICATE_WINDOW_DAYS;
use super::template_data;
use crate::config::ListConfig;
use crate::handler::{Ctx, HandlerError};
use rusqlite::{params, Connection};

/// What [`distribute`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distributed {
    /// The post's Message-ID (added by decoration if it had none).
    pub message_id: String,
    /// The outbound job carrying the post (expanded by the delivery worker).
    pub job_id: i64,
    /// Whether this call added it to the archive (false: archiving is off,
    /// or it was archived before).
    pub archived: bool,
    pub footer: decorate::FooterPlacement,
}

/// Distributes an accepted (or approved) post to `list`: DMARC mitigation
/// (`mitigate`, by intake's stored `verdict`), decorate, archive, queue the
/// fan-out, feed the digest. `original` is the message as it was received
/// (a held post's stored bytes). Runs in the caller's transaction.
pub fn distribute(
    ctx: &Ctx,
    tx: &Connection,
    list: &str,
    original: &[u8],
    verdict: Option<&crate::auth::AuthVerdict>,
    now: i64,
) -> Result<Distributed, HandlerError> {
    let config = &ctx.config;
    let Some(lc) = config.list(list) else {
        return Err(HandlerError::Corrupt(format!(
            "list `{list}` is no longer configured"
        )));
    };
    let footer = if lc.footer {
        Some(
            ctx.templates
                .render(Some(&lc.name), "footer", &template_data(ctx, lc))?,
        )
    } else {
        None
    };
    let mut decoration = Decoration::for_list(config, lc, footer);
    decoration.date = Some(crate::config::schedule::rfc5322(now));
    let list_address = config.list_address(&lc.name);
    // wrapped: the new message from the list is what is decorated; munged:
    // after decoration, so the author is added to the Reply-To it set
    let mitigation = mitigate::choose(lc.dmarc_mitigation, verdict);
    let wrapped;
    let original = if mitigation == Mitigation::Wrap {
        wrapped = mitigate::wrap(original, &lc.name, &list_address);
        wrapped.as_slice()
    } else {
        original
    };
    let mut decorated = decorate::decorate(original, &decoration);
    if mitigation == Mitigation::Munge {
        decorated.bytes = mitigate::munge(&decorated.bytes, &lc.name, &list_address);
    }
    remember_message_id(tx, &lc.name, Some(&decorated.message_id), now)?;
    // the archive and the digests keep the post without the list's footer
    let kept = decorated
        .without_footer
        .as_deref()
        .unwrap_or(&decorated.bytes);

    let archived = if lc.archive {
        match crate::archive::archive_post(
            &config.data_dir,
            tx,
            &lc.name,
            config.list_domain(&lc.name),
            kept,
            now,
        ) {
            Ok(crate::archive::Appended::Added { .. }) => true,
            Ok(crate::archive::Appended::AlreadyArchived) => false,
            Err(crate::archive::ArchiveError::Store(e)) => return Err(HandlerError::Store(e)),
            Err(e) => return Err(HandlerError::Temporary(format!("archive: {e}"))),
        }
    } else {
        false
    };

    // the body is stored once; the delivery worker expands the membership
    // (nested lists, dedupe, skip_explicit_recipients) into batches, with the
    // envelope sender NAME-bounces@domain (VERP per recipient if configured)
    let job_id = crate::delivery::enqueue_post(tx, config, &lc.name, &decorated.bytes, now)?;

    // The digest keeps the post as distributed: the fan-out job's stored
    // copy, or, when that carries a footer, the copy without it (the digest
    // has one footer of its own). A trigger that fires only marks the issue
    // due; the digest worker closes it after this transaction commits.
    match &decorated.without_footer {
        Some(kept) if lc.digest.enabled => {
            let id = crate::store::spool::insert_outbound(tx, "", kept, now)?;
            crate::digest::accumulate_post(tx, lc, id, job_id, now)?;
        }
        _ => {
            crate::digest::accumulate_job(tx, lc, job_id, now)?;
        }
    }

    Ok(Distributed {
        message_id: decorated.message_id,
        job_id,
        archived,
        footer: decorated.footer,
    })
}

/// The post templates `list` needs that exist neither as a list override
/// nor in the site templates (`listd check` warns about them; a post that
/// needs one waits until it exists).
pub fn missing_templates(t: &crate::templates::Templates, list: &ListConfig) -> Vec<&'static str> {
    let mut need = vec!["post-rejected"];
    if list.footer {
        need.push("footer");
    }
    need.into_iter()
        .filter(|n| !t.has(Some(&list.name), n))
        .collect()
}

/// Whether `message_id` was seen on `list` within the duplicate window.
pub fn seen_recently(
    conn: &Connection,
    list: &str,
    message_id: &str,
    now: i64,
) -> Result<bool, HandlerError> {
    let since = now - DUPLICATE_WINDOW_DAYS * 86_400;
    let n: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM post_seen WHERE list = ?1 AND message_id = ?2 AND seen_at >= ?3",
        )?
        .query_row(params![list, message_id, since], |r| r.get(0))?;
    Ok(n > 0)
}

/// Records a Message-ID as seen on `list` (and forgets ids older than the window).
pub fn remember_message_id(
    conn: &Connection,
    list: &str,
    message_id: Option<&str>,
    now: i64,
) -> Result<(), HandlerError> {
    let Some(id) = message_id.filter(|s| !s.is_empty()) else {
        return Ok(());
    };
    conn.prepare_cached(
        "INSERT INTO post_seen(list, message_id, seen_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(list, message_id) DO UPDATE SET seen_at = excluded.seen_at",
    )?
    .execute(params![list, id, now])?;
    conn.prepare_cached("DELETE FROM post_seen WHERE seen_at < ?1")?
        .execute([now - DUPLICATE_WINDOW_DAYS * 86_400])?;
    Ok(())
}
