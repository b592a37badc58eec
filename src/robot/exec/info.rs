//! `help`, `lists`, `info`, `who`, `which` and `echo`: the commands that
//! answer and change nothing.
//!
//! Trusts the configuration; the From: is a claim, so `who` lists a
//! membership only under the list's `who` policy, `info` describes an
//! unadvertised list only to its members and owners (or on its own request
//! address), `which` names only the sender's own lists, and `echo` reflects
//! text to members only.

use std::collections::VecDeque;

use serde_json::json;

use super::{words, Res, RobotSession};
use crate::robot::{site_robot, template_data};
use crate::store::members;

/// Most addresses listed by one `who` reply.
pub const WHO_MAX: usize = 5000;

impl RobotSession<'_> {
    pub(super) fn help(&mut self) -> Res {
        let config = self.ctx.config.clone();
        let list = self.route_list.as_deref().and_then(|l| config.list(l));
        let data = template_data(
            &config,
            list,
            json!({"address": self.sender.address.to_string()}),
        );
        Ok(self
            .ctx
            .templates
            .render(self.route_list.as_deref(), "help", &data)?)
    }

    pub(super) fn lists(&mut self) -> Res {
        let config = &self.ctx.config;
        let mut out = String::new();
        for l in config.lists.values().filter(|l| l.advertised) {
            out.push_str(&l.name);
            if !l.description.trim().is_empty() {
                out.push_str(&format!(": {}", l.description.trim()));
            }
            out.push_str(&format!(
                "\n    posts to     {}\n    commands to  {}\n",
                config.list_address(&l.name),
                config.list_suffix_address(&l.name, "request")
            ));
        }
        if out.is_empty() {
            out = "No lists are advertised here.".into();
        }
        Ok(out)
    }

    pub(super) fn info(&mut self, mut args: VecDeque<String>) -> Res {
        let config = self.ctx.config.clone();
        let list = match self.list_arg(&config, "info", &mut args) {
            Ok(l) => l,
            Err(e) => return Ok(e),
        };
        if !list.advertised
            && self.route_list.is_none()
            && !self.is_owner(list)
            && !self.is_member(list)?
        {
            return Ok(format!(
                "There is no list named `{}` here. Send `lists` to {} for the lists.",
                list.name,
                site_robot(&config)
            ));
        }
        let data = template_data(
            &config,
            Some(list),
            json!({"address": self.sender.address.to_string()}),
        );
        Ok(self.ctx.templates.render(Some(&list.name), "info", &data)?)
    }

    pub(super) fn who(&mut self, mut args: VecDeque<String>) -> Res {
        let config = self.ctx.config.clone();
        let list = match self.list_arg(&config, "who", &mut args) {
            Ok(l) => l,
            Err(e) => return Ok(e),
        };
        if !self.may(list, list.who)? {
            tracing::info!(list = %list.name, sender = %self.sender.address, "who refused by policy");
            return Ok(format!(
                "The membership of {} is not available to you.",
                list.name
            ));
        }
        let total = members::count(self.conn, &list.name)?;
        let mut out = format!(
            "{} has {total} member{}:\n",
            list.name,
            if total == 1 { "" } else { "s" }
        );
        let mut shown = 0usize;
        members::for_each(self.conn, &list.name, |m| {
            out.push_str("  ");
            out.push_str(&m.address);
            out.push('\n');
            shown += 1;
            shown < WHO_MAX
        })?;
        if (shown as i64) < total {
            out.push_str(&format!(
                "  ... and {} more (ask the site admin for the full list)\n",
                total - shown as i64
            ));
        }
        Ok(out)
    }

    pub(super) fn which(&mut self) -> Res {
        let lists = members::lists_of(self.conn, &self.sender.address.key())?;
        if lists.is_empty() {
            return Ok(format!(
                "{} is not subscribed to any list here.",
                self.sender.address
            ));
        }
        let mut out = format!("{} is subscribed to:\n", self.sender.address);
        for l in lists {
            out.push_str(&format!("  {l}\n"));
        }
        Ok(out)
    }

    /// `echo TEXT`: the text back, to members only; anyone else could make
    /// the robot mail their text to a forged From:.
    pub(super) fn echo(&mut self, args: &VecDeque<String>) -> Res {
        if self.sender_is_member()? {
            Ok(words(args))
        } else {
            Ok("echo: only members get their text echoed.".into())
        }
    }
}
