//! POP3 commands, one file per family: `auth` (the Authorization state:
//! USER, PASS, APOP; CAPA anywhere) and `transaction` (STAT, LIST, RETR,
//! TOP, UIDL, DELE, NOOP, RSET, QUIT).

mod auth;
mod transaction;

use super::session::{Pop3Session, State};
use crate::reader::ArchiveDb;

/// Runs one command line; false when it was answered with -ERR.
pub(super) fn dispatch(s: &mut Pop3Session, db: &ArchiveDb, line: &str, now: i64) -> bool {
    let mut words = line.split_ascii_whitespace();
    let verb = words.next().unwrap_or("").to_ascii_uppercase();
    let args: Vec<&str> = words.collect();
    if verb == "CAPA" {
        auth::capa(s);
        return true;
    }
    match s.state {
        State::Authorization { .. } => auth::run(s, db, &verb, &args, line, now),
        State::Transaction(_) => transaction::run(s, db, &verb, &args),
        State::Closed => false,
    }
}
