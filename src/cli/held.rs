//! `listd held ...` (the hold queue from the shell) and `listd hash-password`.
//!
//! Thin calls into `moderation`: listing, showing the raw original, acting
//! on ids (or a whole list with `--all`), and the per-list accept and ban
//! lists. Actions run with the same code as moderators' mail, in one
//! transaction per post; the daemon's delivery worker sends what they queue.
//! Trusts the operator's arguments only after checking them against the
//! configuration.

use super::{load_config, open_store, CliResult};
use crate::config::Config;
use crate::handler::Ctx;
use crate::moderation::{self, held, ActOutcome, ModAction, SenderList};
use crate::templates::Templates;
use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use rusqlite::{Connection, TransactionBehavior};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// `listd held [LIST]` and its subcommands.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HeldArgs {
    #[command(subcommand)]
    pub command: Option<HeldCommand>,
    /// List only this list's held posts.
    pub list: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum HeldCommand {
    /// Print a held post's raw message, exactly as received.
    Show { id: i64 },
    /// Distribute held posts.
    Approve(ActArgs),
    /// Reject held posts; the poster is told (with --reason, why).
    Reject(ActArgs),
    /// Drop held posts silently.
    Discard(ActArgs),
    /// Let an address's posts to LIST skip moderation (--remove to undo).
    AcceptSender(SenderArgs),
    /// Discard an address's posts to LIST from now on (--remove to undo).
    Ban(SenderArgs),
}

#[derive(Args, Debug)]
pub struct ActArgs {
    /// Held post ids (see `listd held`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub ids: Vec<i64>,
    /// Act on every post held for this list.
    #[arg(long, value_name = "LIST")]
    pub all: Option<String>,
    /// Why: recorded with the decision; on reject also sent to the poster (approve and discard tell no one).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

#[derive(Args, Debug)]
pub struct SenderArgs {
    pub list: String,
    pub address: String,
    /// Remove the address instead.
    #[arg(long)]
    pub remove: bool,
}

fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

fn check_list(config: &Config, list: &str) -> anyhow::Result<String> {
    config
        .list(list)
        .map(|l| l.name.clone())
        .ok_or_else(|| anyhow!("no list `{list}` in {}", config.lists_dir.display()))
}

/// Runs `listd held ...`.
pub fn run(path: &Path, args: HeldArgs, now: i64) -> CliResult {
    let config = load_config(path)?;
    match args.command {
        None => list(&config, args.list.as_deref(), now),
        Some(HeldCommand::Show { id }) => show(&config, id),
        Some(HeldCommand::Approve(a)) => act(config, ModAction::Approve, a, now),
        Some(HeldCommand::Reject(a)) => act(config, ModAction::Reject, a, now),
        Some(HeldCommand::Discard(a)) => act(config, ModAction::Discard, a, now),
        Some(HeldCommand::AcceptSender(s)) => sender(&config, SenderList::Accept, s, now),
        Some(HeldCommand::Ban(s)) => sender(&config, SenderList::Ban, s, now),
    }
}

fn list(config: &Config, list: Option<&str>, now: i64) -> CliResult {
    let list = list.map(|l| check_list(config, l)).transpose()?;
    let conn = open_store(config)?;
    let rows = held::pending(&conn, list.as_deref(), i64::MAX)?;
    let out = std::io::stdout();
    let mut out = out.lock();
    if rows.is_empty() {
        writeln!(out, "no held posts")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:>6}  {:<12} {:<22} {:<28} {:>7}  SUBJECT",
        "ID", "LIST", "REASON", "FROM", "AGE"
    )?;
    for h in rows {
        writeln!(
            out,
            "{:>6}  {:<12} {:<22} {:<28} {:>7}  {}",
            h.id,
            h.list,
            h.reason,
            h.sender,
            moderation::notice::fmt_age(now - h.held_at),
            h.subject
        )?;
    }
    Ok(())
}

fn show(config: &Config, id: i64) -> CliResult {
    let conn = open_store(config)?;
    let h = held::get(&conn, id)?.ok_or_else(|| anyhow!("no held post {id}"))?;
    let m = crate::store::spool::load(&conn, h.message_id)?
        .ok_or_else(|| anyhow!("held post {id}: stored message {} is missing", h.message_id))?;
    std::io::stdout().write_all(&m.bytes)?;
    Ok(())
}

fn act(config: Config, action: ModAction, a: ActArgs, now: i64) -> CliResult {
    let templates = Templates::for_config(&config)?;
    let ctx = Ctx {
        config: Arc::new(config),
        templates: Arc::new(templates),
    };
    let mut conn = open_store(&ctx.config)?;
    let who = actor();
    let mut failed = 0;
    let mut one = |conn: &mut Connection, id: i64| -> CliResult {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let outcome = moderation::act(&ctx, &tx, id, action, &who, a.reason.as_deref(), now)
            .map_err(|e| anyhow!("held post {id}: {e}"))?;
        tx.commit()?;
        match outcome {
            ActOutcome::Done(s) => println!("{s}"),
            other => {
                eprintln!("{}", other.text());
                failed += 1;
            }
        }
        Ok(())
    };
    match &a.all {
        Some(list) => {
            let list = check_list(&ctx.config, list)?;
            let mut n = 0;
            loop {
                let batch = held::pending(&conn, Some(&list), 500)?;
                if batch.is_empty() {
                    break;
                }
                for h in batch {
                    one(&mut conn, h.id)?;
                    n += 1;
                }
            }
            if n == 0 {
                println!("no held posts for {list}");
            }
        }
        None => {
            for id in &a.ids {
                one(&mut conn, *id)?;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} held post(s) were not {}", action.final_state());
    }
    Ok(())
}

fn sender(config: &Config, which: SenderList, s: SenderArgs, now: i64) -> CliResult {
    let list = check_list(config, &s.list)?;
    let addr = crate::address::Address::parse(&s.address)
        .map_err(|e| anyhow!("`{}` is not an address: {e}", s.address))?
        .to_string();
    let conn = open_store(config)?;
    let what = match which {
        SenderList::Accept => "accept list",
        SenderList::Ban => "ban list",
    };
    if s.remove {
        if held::remove_sender(&conn, which, &list, &addr)? {
            println!("{addr} removed from the {what} of {list}");
        } else {
            println!("{addr} was not on the {what} of {list}");
        }
    } else if match which {
        // also clears a member's own hold/reject/discard flag
        SenderList::Accept => crate::moderation::accept_sender(&conn, &list, &addr, &actor(), now)?,
        SenderList::Ban => held::add_sender(&conn, which, &list, &addr, &actor(), now)?,
    } {
        println!("{addr} added to the {what} of {list}");
    } else {
        println!("{addr} was already on the {what} of {list}");
    }
    Ok(())
}

/// `listd hash-password`: reads a password from stdin (one line) and
/// prints its argon2 hash for a list's `moderator_password`.
pub fn hash_password() -> CliResult {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password (it will be shown as you type): ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| anyhow!("reading the password from stdin: {e}"))?;
    let pw = line.trim_end_matches(['\r', '\n']);
    if pw.trim().is_empty() {
        bail!("the password is empty (give it on stdin, one line)");
    }
    let h = moderation::hash_password(pw).map_err(|e| anyhow!(e))?;
    println!("{h}");
    Ok(())
}
