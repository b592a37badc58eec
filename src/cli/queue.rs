//! `listd queue` (counts by queue and state, Postfix-style names, then the
//! newest corrupt inbound rows with their reasons), `listd queue retry`
//! (every deferred recipient due now), `listd queue purge` (the
//! retention clean-up the daemon runs hourly, run now) and `listd queue
//! corrupt` (list, show, retry and delete the inbound rows that could not
//! be handled).
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
    /// Inbound mail that could not be handled (`corrupt`): list it, or show,
    /// retry or delete rows by id.
    Corrupt {
        #[command(subcommand)]
        action: Option<CorruptCmd>,
    },
}

#[derive(Subcommand, Debug)]
pub enum CorruptCmd {
    /// Every corrupt row, newest first, with its reason (the default).
    List,
    /// One row: its reason, envelope and the message as received.
    Show {
        /// The incoming row id (`incoming #ID` in the list).
        id: i64,
    },
    /// Put rows back in the incoming queue, due now, failure counts cleared
    /// (after fixing what made them fail).
    Retry {
        /// Row ids; none with --all.
        #[arg(required_unless_present = "all")]
        ids: Vec<i64>,
        /// Every corrupt row.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
    /// Delete rows for good (their message bodies go with the retention clean-up).
    Delete {
        /// Row ids; none with --all.
        #[arg(required_unless_present = "all")]
        ids: Vec<i64>,
        /// Every corrupt row.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
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
        Some(QueueCmd::Corrupt { action }) => corrupt(&conn, action.unwrap_or(CorruptCmd::List)),
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
                 {} incoming rows (after {} hours), {} held posts, {} digest entries, \
                 {} digest bodies' records, {} message bodies",
                config.delivery.retain_days,
                p.jobs,
                p.batches,
                p.job_rcpts,
                p.incoming,
                config
                    .delivery
                    .retain_incoming_hours
                    .min(config.delivery.retain_days * 24),
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

/// `listd queue corrupt ...`.
fn corrupt(conn: &rusqlite::Connection, cmd: CorruptCmd) -> CliResult {
    use crate::store::spool;
    let now = crate::store::now();
    match cmd {
        CorruptCmd::List => {
            let rows = spool::corrupt_rows(conn, usize::MAX >> 1)?;
            if rows.is_empty() {
                println!("no corrupt inbound mail");
            }
            for r in &rows {
                println!(
                    "incoming #{} (message #{}) to <{}>: {}",
                    r.id, r.message_id, r.rcpt, r.error
                );
            }
            Ok(())
        }
        CorruptCmd::Show { id } => {
            let Some(r) = spool::corrupt_row(conn, id)? else {
                anyhow::bail!("no corrupt incoming row #{id} (see `listd queue corrupt`)");
            };
            let m = spool::load(conn, r.message_id)?;
            println!("incoming #{} (message #{})", r.id, r.message_id);
            println!("reason: {}", r.error);
            println!("to: <{}>", r.rcpt);
            if let Some(m) = &m {
                println!("from: <{}>", m.env_from);
                println!("client: {}", m.client_ip.as_deref().unwrap_or("local"));
                println!(
                    "received: {}",
                    crate::moderation::notice::fmt_time(m.received_at)
                );
                println!("size: {} bytes\n", m.bytes.len());
                use std::io::Write;
                std::io::stdout().write_all(&m.bytes)?;
            } else {
                println!("(the message body is gone)");
            }
            Ok(())
        }
        CorruptCmd::Retry { ids, all } => {
            let n = each_or_all(&ids, all, |id| spool::retry_corrupt(conn, id, now))?;
            println!("{n} corrupt rows back in the incoming queue (a running daemon takes them within 5 seconds)");
            Ok(())
        }
        CorruptCmd::Delete { ids, all } => {
            let n = each_or_all(&ids, all, |id| spool::delete_corrupt(conn, id))?;
            println!("{n} corrupt rows deleted");
            Ok(())
        }
    }
}

/// Runs `f` for each id (every one must exist), or once with `None` for all.
fn each_or_all(
    ids: &[i64],
    all: bool,
    f: impl Fn(Option<i64>) -> crate::store::Result<usize>,
) -> anyhow::Result<usize> {
    if all {
        return Ok(f(None)?);
    }
    let mut n = 0;
    for &id in ids {
        match f(Some(id))? {
            0 => anyhow::bail!("no corrupt incoming row #{id} (see `listd queue corrupt`)"),
            k => n += k,
        }
    }
    Ok(n)
}
