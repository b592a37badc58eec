//! Queuing a list post's fan-out: the body is stored once and one job row
//! names the list; the membership is expanded later, by the worker (`batch`),
//! so the caller's transaction stays short whatever the list's size.
//!
//! Trusts the configuration for the list; the post's bytes are read only by
//! mail-parser, for the To/Cc addresses a list may skip.

use crate::config::Config;
use crate::store::{self, Result, StoreError};
use rusqlite::{params, Connection};

/// The envelope sender of a list's posts: `NAME-bounces@domain`.
pub fn bounces_address(config: &Config, list: &str) -> String {
    config.list_suffix_address(list, "bounces")
}

/// Queues the fan-out of a list post stored as `message_id`, inside the
/// caller's transaction. Only the job row is written here; the delivery
/// worker expands the membership into batches a chunk at a time (resumable,
/// bounded memory), so the caller's transaction stays short whatever the
/// list's size. Wake `Wakers.delivery` after committing.
pub fn enqueue_post_message(
    conn: &Connection,
    config: &Config,
    list: &str,
    message_id: i64,
    bytes: &[u8],
    now: i64,
) -> Result<i64> {
    let lc = config
        .list(list)
        .ok_or_else(|| StoreError::Invalid(format!("no list `{list}`")))?;
    let env_from = bounces_address(config, &lc.name);
    let skip = if lc.skip_explicit_recipients {
        explicit_recipients(bytes).join("\n")
    } else {
        String::new()
    };
    let job_id = store::outbound::create_job_for_message(
        conn,
        Some(&lc.name),
        store::outbound::JobKind::Post,
        &env_from,
        lc.verp,
        message_id,
        now,
    )?;
    conn.prepare_cached(
        "UPDATE jobs SET expand_list = ?2, expanded = 0, skip_rcpts = ?3 WHERE id = ?1",
    )?
    .execute(params![
        job_id,
        lc.name,
        if skip.is_empty() { None } else { Some(skip) }
    ])?;
    Ok(job_id)
}

/// Stores the (decorated) post once and queues its fan-out, inside the
/// caller's transaction. Returns the job id.
pub fn enqueue_post(
    conn: &Connection,
    config: &Config,
    list: &str,
    bytes: &[u8],
    now: i64,
) -> Result<i64> {
    let lc = config
        .list(list)
        .ok_or_else(|| StoreError::Invalid(format!("no list `{list}`")))?;
    let message_id =
        store::spool::insert_outbound(conn, &bounces_address(config, &lc.name), bytes, now)?;
    enqueue_post_message(conn, config, list, message_id, bytes, now)
}

/// Address keys named in the To and Cc headers of a message.
pub fn explicit_recipients(bytes: &[u8]) -> Vec<String> {
    let Some(msg) = mail_parser::MessageParser::default().parse_headers(bytes) else {
        return vec![];
    };
    let mut keys = Vec::new();
    for h in [msg.to(), msg.cc()].into_iter().flatten() {
        for a in h.iter() {
            if let Some(addr) = a.address() {
                keys.push(crate::address::address_key(addr));
            }
        }
    }
    keys.sort();
    keys.dedup();
    keys
}
