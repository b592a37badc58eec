//! `index LIST` and `get LIST YYYY-MM`: the list archive by mail, under the
//! list's `archive_access` policy. `get` mails one month as an
//! `application/mbox` attachment, at most `robot.max_get_size` bytes and
//! within the per-address daily budget (`limits::get_budget`).
//!
//! `password LIST` makes a new app password for reading the archive over
//! IMAP and POP3 (`reader`) and mails it to the member's subscribed
//! address (an owner's configured one), never to the From: of the command,
//! which is a claim: a forger can only have a fresh password mailed to the
//! real member, within the robot's reply budgets.
//!
//! Trusts the archive index it wrote; the month word reaches the archive
//! only once it reads `YYYY-MM`.

use std::collections::VecDeque;

use serde_json::json;

use super::{Res, RobotSession};
use crate::config::{Config, ListConfig};
use crate::handler::HandlerError;
use crate::robot::{template_data, Mail, To};
use crate::store::outbound::JobKind;

/// Whether `s` reads `YYYY-MM`.
fn is_month(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit)
        && matches!(
            &s[5..],
            "01" | "02" | "03" | "04" | "05" | "06" | "07" | "08" | "09" | "10" | "11" | "12"
        )
}

/// An archive index error: the store's stay errors (the mail is retried).
fn archive_error(e: crate::archive::ArchiveError) -> HandlerError {
    match e {
        crate::archive::ArchiveError::Store(e) => e.into(),
        other => HandlerError::Temporary(other.to_string()),
    }
}

impl RobotSession<'_> {
    /// The list an archive command names, if the sender may read its
    /// archive; else the answer to give.
    fn archive_list<'c>(
        &self,
        config: &'c Config,
        verb: &str,
        args: &mut VecDeque<String>,
    ) -> Result<Result<&'c ListConfig, String>, HandlerError> {
        let list = match self.list_arg(config, verb, args) {
            Ok(l) => l,
            Err(e) => return Ok(Err(e)),
        };
        if !list.archive {
            return Ok(Err(format!("The {} list keeps no archive.", list.name)));
        }
        if !self.may(list, list.archive_access)? {
            tracing::info!(list = %list.name, sender = %self.sender.address, verb, "archive access refused by policy");
            return Ok(Err(format!(
                "The archive of {} is not available to you.",
                list.name
            )));
        }
        Ok(Ok(list))
    }

    /// `index LIST`: the archive's month files, with their posts and sizes.
    pub(super) fn index(&mut self, mut args: VecDeque<String>) -> Res {
        let config = self.ctx.config.clone();
        let list = match self.archive_list(&config, "index", &mut args)? {
            Ok(l) => l,
            Err(answer) => return Ok(answer),
        };
        let months = crate::archive::months(self.conn, &list.name).map_err(archive_error)?;
        if months.is_empty() {
            return Ok(format!("The archive of {} is empty.", list.name));
        }
        let mut out = format!(
            "The archive of {} has {} month{}:\n",
            list.name,
            months.len(),
            if months.len() == 1 { "" } else { "s" }
        );
        for m in &months {
            out.push_str(&format!(
                "  {}  {:>6} post{}  {:>6} KB\n",
                m.month,
                m.posts,
                if m.posts == 1 { " " } else { "s" },
                (m.bytes + 1023) / 1024
            ));
        }
        out.push_str(&format!(
            "Send `get {} YYYY-MM` for a month as an mbox file.",
            list.name
        ));
        Ok(out)
    }

    /// `get LIST YYYY-MM`: one archive month, mailed to the sender as an
    /// `application/mbox` attachment (at most `robot.max_get_size` bytes).
    pub(super) fn get(&mut self, mut args: VecDeque<String>) -> Res {
        let config = self.ctx.config.clone();
        let list = match self.archive_list(&config, "get", &mut args)? {
            Ok(l) => l,
            Err(answer) => return Ok(answer),
        };
        let Some(month) = args.pop_front().filter(|m| is_month(m)) else {
            return Ok(format!(
                "Name the month: `get {} YYYY-MM`. Send `index {}` for the months there are.",
                list.name, list.name
            ));
        };
        let to = self.sender.address.to_string();
        let budget = crate::limits::get_budget(&config.robot, &to);
        let asked = self.mails.iter().filter(|m| m.attachment.is_some()).count() as i64;
        let used = crate::store::rate::count(self.conn, &budget.bucket, budget.window, self.now)?;
        if !budget.allows(used + asked) {
            return Ok(format!(
                "This robot mails at most {} archive months a day to one address. Try again tomorrow.",
                budget.limit
            ));
        }
        let Some(m) =
            crate::archive::month(self.conn, &list.name, &month).map_err(archive_error)?
        else {
            return Ok(format!(
                "The archive of {} has nothing for {month}. Send `index {}` for the months there are.",
                list.name, list.name
            ));
        };
        let max = config.robot.max_get_size;
        if m.bytes as u64 > max {
            return Ok(format!(
                "The archive of {} for {month} is {} KB, more than the {} KB this robot mails. Ask the list owners at {}.",
                list.name,
                (m.bytes + 1023) / 1024,
                max / 1024,
                config.list_suffix_address(&list.name, "owner")
            ));
        }
        let mut mbox = Vec::with_capacity(m.bytes as usize);
        let posts = match crate::archive::export(
            &config.data_dir,
            self.conn,
            &list.name,
            crate::archive::Select::Month(&month),
            &mut mbox,
        ) {
            Ok(n) => n,
            Err(crate::archive::ArchiveError::Store(e)) => return Err(e.into()),
            Err(e) => {
                tracing::error!(list = %list.name, month = %month, error = %e, "archive month cannot be read for `get`");
                return Ok(format!(
                    "The archive of {} for {month} cannot be read just now. Please tell the list owners at {}.",
                    list.name,
                    config.list_suffix_address(&list.name, "owner")
                ));
            }
        };
        self.mails.push(Mail {
            to: To::One(to.clone()),
            list: Some(list.name.clone()),
            template: "archive-get",
            default_subject: format!("{} archive, {month}", list.name),
            data: template_data(
                &config,
                Some(list),
                json!({"address": to, "month": month, "posts": posts,
                       "bytes": mbox.len()}),
            ),
            kind: JobKind::Reply,
            reply_to: None,
            answers_command: true,
            limited: true,
            attachment: Some(crate::robot::answer::Attachment {
                content_type: "application/mbox".into(),
                filename: format!("{}-{month}.mbox", list.name),
                bytes: mbox,
            }),
        });
        Ok(format!(
            "The archive of {} for {month} ({posts} post{}) is on its way to you in a separate message.",
            list.name,
            if posts == 1 { "" } else { "s" }
        ))
    }
}

impl RobotSession<'_> {
    /// `password LIST`: a fresh archive app password, mailed to the
    /// sender's subscribed address (it replaces the older one).
    pub(super) fn password(&mut self, mut args: VecDeque<String>) -> Res {
        let config = self.ctx.config.clone();
        let list = match self.list_arg(&config, "password", &mut args) {
            Ok(l) => l,
            Err(e) => return Ok(e),
        };
        if !list.archive || list.archive_access == crate::config::Access::Nobody {
            return Ok(format!("The {} list keeps no archive to read.", list.name));
        }
        if list.archive_access == crate::config::Access::Anyone {
            return Ok(format!(
                "The archive of {} is public: log in as `anonymous`, no password needed.",
                list.name
            ));
        }
        let key = self.sender.address.key();
        let member = crate::store::members::get(self.conn, &list.name, &key)?;
        let owner = list
            .owners
            .iter()
            .find(|o| crate::address::address_key(o) == key);
        let to = match (member, owner) {
            (Some(m), _) if list.archive_access == crate::config::Access::Members => m.address,
            (_, Some(o)) => o.clone(),
            _ => {
                tracing::info!(list = %list.name, sender = %self.sender.address, "archive password refused: not a reader");
                return Ok(format!(
                    "The archive of {} is not available to you.",
                    list.name
                ));
            }
        };
        let password = crate::reader::passwords::issue(self.conn, &list.name, &key, self.now)?;
        self.mails.push(Mail {
            to: To::One(to.clone()),
            list: Some(list.name.clone()),
            template: "archive-password",
            default_subject: format!("Your {} archive password", list.name),
            data: template_data(
                &config,
                Some(list),
                json!({"address": key, "password": password}),
            ),
            kind: JobKind::Reply,
            reply_to: None,
            answers_command: false,
            limited: true,
            attachment: None,
        });
        Ok(format!(
            "A new password for reading the archive of {} is on its way to your subscribed address in a separate message.",
            list.name
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::is_month;

    #[test]
    fn months_are_yyyy_mm() {
        for ok in ["2026-11", "1999-01", "2000-12"] {
            assert!(is_month(ok), "{ok}");
        }
        for bad in [
            "2026-13",
            "2026-00",
            "2026-1",
            "26-11",
            "2026/11",
            "2026-11-01",
            "",
            "abcd-ef",
            "２０２６-11",
            "../../x",
        ] {
            assert!(!is_month(bad), "{bad}");
        }
    }
}
