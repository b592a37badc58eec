//! `listd members add|remove|list|mode|moderate|enable`: membership from
//! the command line.
//! Addresses come from arguments or, with `-`, from stdin one a line
//! (`Name <addr>` and bare addresses both work); a progress bar shows on a
//! terminal for bulk work. Bad addresses are reported with their line and
//! skipped; the command then exits 1.

use super::{load_config, open_store, progress, CliResult};
use crate::address::{split_display_name as split_name, Address};
use crate::store::members::{self, DeliveryMode, Moderation};
use clap::Subcommand;
use indicatif::ProgressBar;
use std::io::BufRead;
use std::path::Path;

#[derive(Subcommand, Debug)]
pub enum MembersCmd {
    /// Add members; `-` reads addresses from stdin, one a line.
    Add {
        /// The list's name (see `listd lists`).
        list: String,
        /// Addresses to add: `ann@example.org` or `Ann Example <ann@example.org>`; `-` reads them from stdin.
        #[arg(required = true, value_name = "ADDR")]
        addresses: Vec<String>,
        /// each, digest (MIME), plain (RFC 1153 digest), nomail
        #[arg(long, default_value = "each")]
        mode: String,
        /// Send each new member the list's welcome (and the owners their notice, if the list asks for one), as a confirmed subscription does. Without it, nothing is sent.
        #[arg(long)]
        welcome: bool,
    },
    /// Remove members; `-` reads addresses from stdin, one a line.
    Remove {
        list: String,
        #[arg(required = true, value_name = "ADDR")]
        addresses: Vec<String>,
    },
    /// Print the members: address, mode, flags.
    List {
        list: String,
        /// Only the members disabled by bounces, with their score, since
        /// when, and the probes sent.
        #[arg(long)]
        disabled: bool,
    },
    /// Re-enable delivery to members disabled by bounces (their bounce
    /// score is forgotten).
    Enable {
        list: String,
        #[arg(required = true, value_name = "ADDR")]
        addresses: Vec<String>,
    },
    /// Change how members get the list: each, digest (MIME), plain (RFC 1153
    /// digest) or nomail.
    Mode {
        list: String,
        /// each, digest (MIME), plain (RFC 1153 digest), nomail
        mode: String,
        #[arg(required = true, value_name = "ADDR")]
        addresses: Vec<String>,
    },
    /// Set members' own moderation flag: their posts are accepted (skip the
    /// posting policy), held, rejected or discarded; `default` clears it.
    Moderate {
        list: String,
        /// accept, hold, reject, discard, or default (the list's policy)
        action: String,
        #[arg(required = true, value_name = "ADDR")]
        addresses: Vec<String>,
    },
}

/// One address input with where it came from, for error messages.
struct Input {
    origin: String,
    text: String,
}

fn inputs(args: &[String]) -> anyhow::Result<Vec<Input>> {
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if a == "-" {
            let stdin = std::io::stdin();
            for (n, line) in stdin.lock().lines().enumerate() {
                let line = line?;
                let t = line.trim();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                out.push(Input {
                    origin: format!("stdin line {}", n + 1),
                    text: t.to_string(),
                });
            }
        } else {
            out.push(Input {
                origin: format!("argument {}", i + 1),
                text: a.clone(),
            });
        }
    }
    Ok(out)
}

/// Calls `f` with the display name and address of every input that parses,
/// and the progress bar (to print above it); reports every other input with
/// where it came from. Returns how many inputs were not addresses.
fn each_address(
    inputs: &[Input],
    mut f: impl FnMut(&Input, Option<String>, Address, &ProgressBar) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    let pb = progress::bar(inputs.len() as u64, progress::Unit::Items);
    let mut bad = 0;
    for inp in inputs {
        let (name, addr) = split_name(&inp.text);
        match Address::parse(&addr) {
            Ok(a) => f(inp, name, a, &pb)?,
            Err(e) => {
                bad += 1;
                pb.suspend(|| eprintln!("listd: {}: `{}`: {e}", inp.origin, inp.text));
            }
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(bad)
}

fn parse_mode(mode: &str) -> anyhow::Result<DeliveryMode> {
    DeliveryMode::parse(mode).ok_or_else(|| {
        anyhow::anyhow!("unknown mode `{mode}`: use each, digest, mime, plain or nomail")
    })
}

/// Calls `change` for every address given (`-`: stdin) that parses, in one
/// transaction; each that is not a member (`change` returned false) or not
/// an address is reported with where it came from. Prints
/// `LIST: N DONE, N not members, N invalid`; fails with `... not NOT_DONE`
/// when any address was left unchanged.
fn change_members(
    conn: &mut rusqlite::Connection,
    list: &str,
    addresses: &[String],
    (done, not_done): (&str, &str),
    mut change: impl FnMut(&rusqlite::Connection, &Address) -> anyhow::Result<bool>,
) -> CliResult {
    let inputs = inputs(addresses)?;
    let (mut changed, mut absent) = (0usize, 0usize);
    let tx = conn.transaction()?;
    let bad = each_address(&inputs, |inp, _, a, pb| {
        if change(&tx, &a)? {
            changed += 1;
        } else {
            absent += 1;
            pb.suspend(|| eprintln!("listd: {}: {a} is not a member", inp.origin));
        }
        Ok(())
    })?;
    tx.commit()?;
    println!("{list}: {changed} {done}, {absent} not members, {bad} invalid");
    if bad + absent > 0 {
        anyhow::bail!("{} address(es) not {not_done}", bad + absent);
    }
    Ok(())
}

pub fn run(path: &Path, cmd: MembersCmd) -> CliResult {
    let config = load_config(path)?;
    let list_of = |name: &str| super::list_name(&config, name);
    let mut conn = open_store(&config)?;
    match cmd {
        MembersCmd::Add {
            list,
            addresses,
            mode,
            welcome,
        } => {
            let list = list_of(&list)?;
            let mode = parse_mode(&mode)?;
            let inputs = inputs(&addresses)?;
            let now = crate::store::now();
            let (mut added, mut already) = (0usize, 0usize);
            let lc = config
                .list(&list)
                .ok_or_else(|| anyhow::anyhow!("no such list `{list}`"))?
                .clone();
            // with --welcome, each member is added the way the robot adds a
            // confirmed subscriber: the welcome, the owners' notice
            let ctx = if welcome {
                Some(crate::handler::Ctx {
                    templates: std::sync::Arc::new(crate::templates::Templates::for_config(
                        &config,
                    )?),
                    config: std::sync::Arc::new(config.clone()),
                })
            } else {
                None
            };
            let tx = conn.transaction()?;
            let mut mails = Vec::new();
            let mut welcomed = 0;
            let bad = each_address(&inputs, |_, name, a, _| {
                let new = match &ctx {
                    Some(ctx) => {
                        let who = crate::robot::exec::roster::Joining {
                            addr: &a,
                            name: name.as_deref(),
                            mode,
                        };
                        let new = crate::robot::exec::roster::add_member(
                            ctx, &tx, &lc, &who, now, &mut mails,
                        )?;
                        // queued as it goes: a bulk add holds no more than a
                        // thousand mails in memory
                        if mails.len() >= 1000 {
                            let batch = std::mem::take(&mut mails);
                            welcomed += crate::robot::send(ctx, &tx, batch, None, now)?;
                        }
                        new
                    }
                    None => members::add_new(
                        &tx,
                        &list,
                        &a.to_string(),
                        &a.key(),
                        name.as_deref(),
                        mode,
                        lc.moderate_new_members,
                        now,
                    )?,
                };
                if new {
                    added += 1;
                } else {
                    already += 1;
                }
                Ok(())
            })?;
            if let Some(ctx) = &ctx {
                welcomed += crate::robot::send(ctx, &tx, mails, None, now)?;
            }
            tx.commit()?;
            println!("{list}: {added} added, {already} already members, {bad} invalid");
            if welcome {
                println!("{list}: {welcomed} welcome and notice mails queued");
            }
            if bad > 0 {
                anyhow::bail!("{bad} invalid address(es) skipped");
            }
        }
        MembersCmd::Remove { list, addresses } => {
            let list = list_of(&list)?;
            change_members(
                &mut conn,
                &list,
                &addresses,
                ("removed", "removed"),
                |tx, a| Ok(members::remove(tx, &list, &a.key())?),
            )?;
        }
        MembersCmd::Mode {
            list,
            mode,
            addresses,
        } => {
            let list = list_of(&list)?;
            let mode = parse_mode(&mode)?;
            if mode.is_digest() && config.list(&list).is_some_and(|l| !l.digest.enabled) {
                anyhow::bail!("{list} has digests turned off (digest.enabled: false)");
            }
            change_members(
                &mut conn,
                &list,
                &addresses,
                (&format!("set to {}", mode.as_str()), "changed"),
                |tx, a| Ok(members::set_mode(tx, &list, &a.key(), mode)?),
            )?;
        }
        MembersCmd::Moderate {
            list,
            action,
            addresses,
        } => {
            let list = list_of(&list)?;
            let flag = match action.to_ascii_lowercase().as_str() {
                "default" | "none" => None,
                a => Some(Moderation::parse(a).ok_or_else(|| {
                    anyhow::anyhow!(
                        "unknown moderation `{action}`: use accept, hold, reject, discard or default"
                    )
                })?),
            };
            let what = flag.map_or("default", Moderation::as_str);
            change_members(
                &mut conn,
                &list,
                &addresses,
                (&format!("set to {what}"), "changed"),
                |tx, a| Ok(members::set_moderation(tx, &list, &a.key(), flag)?),
            )?;
        }
        MembersCmd::Enable { list, addresses } => {
            let list = list_of(&list)?;
            change_members(
                &mut conn,
                &list,
                &addresses,
                ("enabled", "enabled"),
                |tx, a| Ok(crate::store::bounces::enable(tx, &list, &a.key())?),
            )?;
        }
        MembersCmd::List { list, disabled } => {
            let list = list_of(&list)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut err = None;
            let mut store_err = None;
            members::for_each(&conn, &list, |m| {
                use std::io::Write;
                if disabled && !m.disabled {
                    return true;
                }
                let mut flags = String::new();
                if m.disabled {
                    flags.push_str(" disabled");
                }
                if disabled {
                    match crate::store::bounces::score(
                        &conn,
                        &list,
                        &crate::address::address_key(&m.address),
                    ) {
                        Ok(Some(s)) => flags.push_str(&format!(
                            " score={} since={} probes={}/{}",
                            s.score,
                            super::bounces::date(s.disabled_at),
                            s.probes,
                            config.bounce.probes
                        )),
                        Ok(None) => {}
                        Err(e) => {
                            store_err = Some(e);
                            return false;
                        }
                    }
                }
                if let Some(f) = m.moderation {
                    flags.push_str(" moderation=");
                    flags.push_str(f.as_str());
                }
                let line = match &m.name {
                    Some(n) => format!("{}\t{}\t{}{flags}", m.address, m.mode.as_str(), n),
                    None => format!("{}\t{}{flags}", m.address, m.mode.as_str()),
                };
                if let Err(e) = writeln!(out, "{line}") {
                    err = Some(e);
                    return false;
                }
                true
            })?;
            if let Some(e) = store_err {
                return Err(e.into());
            }
            if let Some(e) = err {
                // a closed pipe (`| head`) is not an error worth a message
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    return Err(e.into());
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_name;

    #[test]
    fn splits_display_names() {
        assert_eq!(
            split_name("\"Ann Lee\" <ann@example.org>"),
            (Some("Ann Lee".into()), "ann@example.org".into())
        );
        assert_eq!(
            split_name("ann@example.org"),
            (None, "ann@example.org".into())
        );
        assert_eq!(
            split_name("<ann@example.org>"),
            (None, "ann@example.org".into())
        );
    }
}
