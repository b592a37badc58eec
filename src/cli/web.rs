//! `listd web`: `token LIST ADDRESS` prints a member's one-click
//! unsubscribe URL; `rotate-secret` makes a new site key for the links.

use super::{list_name, load_config, CliResult};
use crate::address::Address;
use crate::member_token::{self, SiteKeys};
use clap::Subcommand;
use std::path::Path;

#[derive(Subcommand, Debug)]
pub enum WebCmd {
    /// Print ADDRESS's one-click unsubscribe URL for LIST (web.public_url + /u/TOKEN), made with the current site key.
    Token { list: String, address: String },
    /// Make a new current site key for unsubscribe links (data_dir/web-keys). Links made with the old keys keep working for web.token_grace_days, then are refused.
    RotateSecret,
}

/// Runs a `web` subcommand.
pub fn run(path: &Path, cmd: WebCmd, now: i64) -> CliResult {
    let config = load_config(path)?;
    match cmd {
        WebCmd::Token { list, address } => {
            let list = list_name(&config, &list)?;
            let Some(public_url) = config.web.public_url.as_deref() else {
                anyhow::bail!("web.public_url is not set in {}", config.path.display());
            };
            let addr = Address::parse(&address)
                .map_err(|e| anyhow::anyhow!("`{address}` is not a valid address: {e}"))?;
            let keys = SiteKeys::load_or_create(&config.data_dir, now)?;
            let token = keys
                .mint(&list, &addr.to_string())
                .ok_or_else(|| anyhow::anyhow!("cannot make a token for `{addr}` on `{list}`"))?;
            println!("{}", member_token::unsubscribe_url(public_url, &token));
        }
        WebCmd::RotateSecret => {
            let keys = SiteKeys::rotate(&config.data_dir, now)?;
            let grace = config.web.token_grace_days;
            println!(
                "{}: new site key {}; links made with older keys work for {grace} more day(s)",
                SiteKeys::path(&config.data_dir).display(),
                keys.current().id
            );
        }
    }
    Ok(())
}
