//! `listd queue` (counts by queue and state, Postfix-style names) and
//! `listd queue retry` (every deferred recipient due now).
//!
//! Reads and writes the store directly; the daemon's delivery worker notices
//! retried rows on its next look at the queue (within 15 seconds).

use super::{load_config, open_store, CliResult};
use crate::delivery::queue;
use clap::Subcommand;
use std::path::Path;

#[derive(Subcommand, Debug)]
pub enum QueueCmd {
    /// Make every deferred recipient due now.
    Retry,
}

pub fn run(path: &Path, cmd: Option<QueueCmd>) -> CliResult {
    let config = load_config(path)?;
    let conn = open_store(&config)?;
    let now = crate::store::now();
    match cmd {
        None => {
            let s = queue::summary(&conn, now)?;
            print!("{}", s.render(now));
            Ok(())
        }
        Some(QueueCmd::Retry) => {
            let n = queue::retry_now(&conn, now)?;
            println!("{n} deferred queue entries are due now");
            Ok(())
        }
    }
}
