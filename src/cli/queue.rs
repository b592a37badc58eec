//! `listd queue` (counts by queue and state, Postfix-style names, then the
//! newest corrupt inbound rows with their reasons), `listd queue retry`
//! (every deferred recipient due now) and `listd queue purge` (the
//! retention clean-up the daemon runs hourly, run now).
//!
//! Reads and writes the store directly; the daemon's delivery worker notices
//! retried rows on its next look at the queue (within 15 seconds).

use super::{load_config, open_store, CliResult};
use crate::delivery::{queue, retention};
use clap::Subcommand;
use std::path::Path;

#[derive(Subcommand, Debug)]
pub enum QueueCmd {
    /// Make every deferred recipient due now.
    Retry,
    /// Delete finished queue rows and unreferenced bodies older than
    /// `delivery.retain_days` now (the daemon does it hourly).
    Purge {
        /// Use this many days instead of `delivery.retain_days` (at least 1).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        days: Option<u64>,
    },
}

pub fn run(path: &Path, cmd: Option<QueueCmd>) -> CliResult {
    let mut config = load_config(path)?;
    let mut conn = open_store(&config)?;
    let now = crate::store::now();
    match cmd {
        None => {
            let s = queue::summary(&conn, now)?;
            print!("{}", s.render(now));
            print_corrupt(&conn, s.corrupt)?;
            Ok(())
        }
        Some(QueueCmd::Retry) => {
            let n = queue::retry_now(&conn, now)?;
            println!("{n} deferred queue entries are due now");
            Ok(())
        }
        Some(QueueCmd::Purge { days }) => {
            if let Some(d) = days {
                config.delivery.retain_days = d;
            }
            if config.delivery.retain_days == 0 {
                println!("retention is off (delivery.retain_days: 0): nothing deleted");
                return Ok(());
            }
            let p = retention::purge(&mut conn, &config, now)?;
            println!(
                "deleted, finished more than {} days ago: {} jobs, {} batches, {} recipient rows, \
                 {} incoming rows, {} held posts, {} digest entries, {} digest bodies' records, \
                 {} message bodies",
                config.delivery.retain_days,
                p.jobs,
                p.batches,
                p.job_rcpts,
                p.incoming,
                p.held,
                p.digest_entries,
                p.digest_jobs,
                p.messages
            );
            Ok(())
        }
    }
}

/// How many corrupt rows `listd queue` lists.
const CORRUPT_SHOWN: usize = 20;

/// The newest corrupt inbound rows: what they were for and why they stopped.
fn print_corrupt(conn: &rusqlite::Connection, total: i64) -> CliResult {
    let rows = crate::store::spool::corrupt_rows(conn, CORRUPT_SHOWN)?;
    if rows.is_empty() {
        return Ok(());
    }
    println!("\ncorrupt inbound mail (kept in the store; newest first):");
    for r in &rows {
        println!(
            "  incoming #{} (message #{}) to <{}>: {}",
            r.id, r.message_id, r.rcpt, r.error
        );
    }
    let more = total - rows.len() as i64;
    if more > 0 {
        println!("  ... and {more} more");
    }
    Ok(())
}
