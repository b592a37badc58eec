//! `listd digest send LIST` (close the list's issue and queue it now) and
//! `listd digest status LIST` (pending posts and bytes, numbering, triggers).
//! Thin calls into `crate::digest`; trusts the loaded configuration.

use crate::digest;
use crate::handler::Ctx;
use crate::templates::Templates;
use clap::Subcommand;
use std::path::Path;
use std::sync::Arc;

#[derive(Subcommand, Debug)]
pub enum DigestCmd {
    /// Close LIST's current digest issue and queue it to the digest members now.
    Send { list: String },
    /// Show LIST's pending posts and bytes, its last issue and its triggers.
    Status { list: String },
}

fn when(t: i64) -> String {
    crate::config::schedule::utc(t)
        .format("%Y-%m-%d %H:%M UTC")
        .to_string()
}

/// Runs a `digest` subcommand.
pub fn run(config_path: &Path, cmd: DigestCmd) -> super::CliResult {
    let config = super::load_config(config_path)?;
    let name = match &cmd {
        DigestCmd::Send { list } | DigestCmd::Status { list } => list.clone(),
    };
    let list = config
        .list(&name)
        .ok_or_else(|| anyhow::anyhow!("no list named `{name}` in {}", config.lists_dir.display()))?
        .clone();
    let mut conn = super::open_store(&config)?;
    let now = crate::store::now();
    match cmd {
        DigestCmd::Status { .. } => {
            let s = digest::status(&conn, &list, now)?;
            if s.enabled {
                println!("{}: digests enabled", s.list);
                println!(
                    "  pending: {} posts, {} bytes (an issue closes at {} posts or {} bytes)",
                    s.pending.posts, s.pending.bytes, s.max_messages, s.max_bytes
                );
                match s.next_scheduled {
                    Some(t) => println!("  schedule: {}, next {}", s.schedule, when(t)),
                    None => println!("  schedule: none"),
                }
            } else {
                println!(
                    "{}: digests disabled (digest.enabled: false); digest members get each post",
                    s.list
                );
                if s.pending.posts > 0 {
                    println!(
                        "  pending from before: {} posts, {} bytes (the daemon sends them in a last issue)",
                        s.pending.posts, s.pending.bytes
                    );
                }
            }
            match (s.last_issue, s.last_sent_at) {
                (0, _) | (_, None) => println!("  last issue: none yet"),
                (i, Some(t)) => println!("  last issue: Vol {}, Issue {i}, {}", s.volume, when(t)),
            }
            println!(
                "  digest members: {} MIME, {} plain",
                s.mime_members, s.plain_members
            );
        }
        DigestCmd::Send { .. } => {
            let templates = Templates::for_config(&config)?;
            let ctx = Ctx {
                config: Arc::new(config),
                templates: Arc::new(templates),
            };
            match digest::send_now(&ctx, &mut conn, &list.name, now)? {
                Some(c) => println!(
                    "{}: queued {}: {} posts, {} bytes, to {} MIME and {} plain recipients",
                    c.list,
                    digest::text::title(&c.list, c.volume, c.issue),
                    c.posts,
                    c.bytes,
                    c.mime_rcpts,
                    c.plain_rcpts
                ),
                None => println!(
                    "{}: no posts pending; nothing sent (digest.send_empty is off)",
                    list.name
                ),
            }
        }
    }
    Ok(())
}
