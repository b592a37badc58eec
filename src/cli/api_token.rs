//! `listd api-token create NAME --role admin|list:NAME` (prints the token
//! once; only its hash is stored), `list` and `revoke NAME`: the tokens the
//! REST API accepts as `Authorization: Bearer`.
//!
//! Trusts the operator; checks a `list:NAME` role against the configuration.

use super::{list_name, load_config, open_store, CliResult};
use crate::web::credentials::{self, ApiRole};
use anyhow::{anyhow, bail};
use clap::Subcommand;
use std::path::Path;

#[derive(Subcommand, Debug)]
pub enum ApiTokenCmd {
    /// Create the token NAME and print it (only this once; it is stored hashed).
    Create {
        name: String,
        /// `admin` (every list) or `list:NAME` (owner-level on that list).
        #[arg(long)]
        role: String,
    },
    /// List the tokens: name, role, creation time.
    List,
    /// Delete the token NAME: requests with it are refused from now on.
    Revoke { name: String },
}

/// Runs an `api-token` subcommand.
pub fn run(path: &Path, cmd: ApiTokenCmd, now: i64) -> CliResult {
    let config = load_config(path)?;
    let conn = open_store(&config)?;
    match cmd {
        ApiTokenCmd::Create { name, role } => {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_graphic()) {
                bail!("a token name is printable ASCII without spaces, like `ci`");
            }
            let role = match ApiRole::parse(&role) {
                Some(ApiRole::List(l)) => ApiRole::List(list_name(&config, &l)?),
                Some(r) => r,
                None => bail!("--role is `admin` or `list:NAME`, not `{role}`"),
            };
            let secret = credentials::create_api_token(&conn, &name, &role, now)?
                .ok_or_else(|| anyhow!("there is a token `{name}` already (revoke it first)"))?;
            println!("{secret}");
            eprintln!(
                "API token `{name}` ({}) created; it is shown only now",
                role.as_string()
            );
        }
        ApiTokenCmd::List => {
            let tokens = credentials::api_tokens(&conn)?;
            if tokens.is_empty() {
                println!("no API tokens");
            }
            for t in tokens {
                println!(
                    "{:<20} {:<20} {}",
                    t.name,
                    t.role.as_string(),
                    crate::moderation::notice::fmt_time(t.created_at)
                );
            }
        }
        ApiTokenCmd::Revoke { name } => {
            if !credentials::revoke_api_token(&conn, &name)? {
                bail!("no API token `{name}`");
            }
            println!("API token `{name}` revoked");
        }
    }
    Ok(())
}
