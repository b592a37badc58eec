//! `listd requests [LIST]` and `listd requests approve|reject|discard ID`:
//! the owners' queue of subscription requests, decided on the server.
//!
//! A thin front over `robot::requests`; the decision and the mail it
//! causes (welcome, refusal, owner notice) are queued in one transaction,
//! for the daemon's delivery worker to send. Trusts whoever can run it
//! (shell access to the server and its database).

use crate::handler::Ctx;
use crate::robot::{self, requests};
use crate::templates::Templates;
use clap::{Args, Subcommand};
use std::path::Path;
use std::sync::Arc;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RequestsArgs {
    /// Show the pending requests of this list (of every list if left out).
    pub list: Option<String>,
    #[command(subcommand)]
    pub action: Option<RequestAction>,
}

#[derive(Subcommand, Debug)]
pub enum RequestAction {
    /// Approve request ID: subscribe the address and send the welcome.
    Approve { id: i64 },
    /// Reject request ID; the requester is told, with REASON if given.
    Reject {
        id: i64,
        #[arg(trailing_var_arg = true)]
        reason: Vec<String>,
    },
    /// Reject request ID without telling anyone.
    Discard { id: i64 },
}

fn age(secs: i64) -> String {
    let secs = secs.max(0);
    if secs < 3600 {
        format!("{}m", secs / 60)
    } else if secs < 86_400 {
        format!("{}h", secs / 3600)
    } else {
        format!("{}d", secs / 86_400)
    }
}

/// Runs the subcommand.
pub fn run(config_path: &Path, args: RequestsArgs) -> super::CliResult {
    let config = super::load_config(config_path)?;
    let mut conn = super::open_store(&config)?;
    let now = crate::store::now();
    let Some(action) = args.action else {
        if let Some(l) = &args.list {
            if config.list(l).is_none() {
                anyhow::bail!("there is no list named `{l}`");
            }
        }
        let list = args.list.as_deref().map(str::to_ascii_lowercase);
        let pending = requests::pending(&conn, list.as_deref())?;
        if pending.is_empty() {
            println!("no pending subscription requests");
            return Ok(());
        }
        println!(
            "{:>6}  {:<20}  {:<36}  {:>5}  requested by",
            "ID", "LIST", "ADDRESS", "AGE"
        );
        for r in pending {
            println!(
                "{:>6}  {:<20}  {:<36}  {:>5}  {}",
                r.id,
                r.list,
                r.address,
                age(now - r.created_at),
                r.requested_by
            );
        }
        return Ok(());
    };
    let templates = Templates::for_config(&config)?;
    let ctx = Ctx {
        config: Arc::new(config),
        templates: Arc::new(templates),
    };
    let (id, decision) = match action {
        RequestAction::Approve { id } => (id, requests::Decision::Approve),
        RequestAction::Reject { id, reason } => {
            let r = reason.join(" ");
            (
                id,
                requests::Decision::Reject((!r.trim().is_empty()).then_some(r)),
            )
        }
        RequestAction::Discard { id } => (id, requests::Decision::Discard),
    };
    let by = format!(
        "{} (listd requests)",
        std::env::var("USER").unwrap_or_else(|_| "the server".into())
    );
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut mails = Vec::new();
    match requests::decide(&ctx, &tx, id, &decision, &by, now, &mut mails)? {
        Ok(text) => {
            robot::send(&ctx, &tx, mails, None, now)?;
            tx.commit()?;
            println!("{text}");
            Ok(())
        }
        Err(text) => anyhow::bail!("{text}"),
    }
}
