//! The one call point into moderation: `accept|ban TOKEN`, and
//! `approve|reject|discard|confirm TOKEN` whose token is not the robot's,
//! go to `crate::moderation::command`, which acts on held posts.
//!
//! Trusts nothing itself: moderation decides what a token allows.

use std::collections::VecDeque;

use super::{words, Res, RobotSession};
use crate::robot::parse::Verb;

impl RobotSession<'_> {
    /// `accept|ban TOKEN`: only held posts have such tokens.
    pub(super) fn moderate(&mut self, verb: Verb, mut args: VecDeque<String>) -> Res {
        let Some(token) = args.pop_front() else {
            return Ok(format!(
                "Write the token after the command: `{} TOKEN`.",
                verb.name()
            ));
        };
        self.moderation_command(verb, &token, &words(&args))
    }

    /// THE single call point into moderation, for `approve|reject|discard
    /// TOKEN` whose token is not a subscription request, and for
    /// `accept|ban TOKEN`: held posts (`crate::moderation::command`).
    pub(super) fn moderation_command(&mut self, verb: Verb, token: &str, rest: &str) -> Res {
        crate::moderation::command(self.ctx, self.conn, self.msg, verb.name(), token, rest)
    }
}
