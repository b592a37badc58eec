//! The rate budgets that mail to an unverified address counts against:
//! robot replies (per mailbox, per domain, in all) and archive months.
//! Buckets are named by the normalised mailbox
//! ([`crate::address::mailbox_key`]), so no spelling of an address gets a
//! budget of its own. Counted in the store's rate log (`store::rate`).
//!
//! A leaf used by the robot and moderation alike; trusts its configuration.

use crate::config::RobotConfig;
use crate::store::rate::Budget;

/// The budgets one robot reply to `to` counts against: the mailbox
/// (every spelling of it, see [`crate::address::Address::mailbox_key`]), its domain, and
/// the whole robot; an archive month (`get`) also counts against the
/// mailbox's daily `get` budget.
pub fn reply_budgets(robot: &RobotConfig, to: &str, archive_month: bool) -> Vec<Budget> {
    let mailbox = crate::address::mailbox_key(to);
    let domain = mailbox.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    let mut v = vec![
        Budget::hourly(format!("reply:{mailbox}"), robot.replies_per_hour),
        Budget::hourly(
            format!("domain:{domain}"),
            robot.replies_per_domain_per_hour,
        ),
        Budget::hourly("reply-total", robot.replies_per_hour_total),
    ];
    if archive_month {
        v.push(get_budget(robot, to));
    }
    v
}

/// The daily budget of archive months (`get`) mailed to `to`'s mailbox.
pub fn get_budget(robot: &RobotConfig, to: &str) -> Budget {
    Budget::daily(
        format!("get:{}", crate::address::mailbox_key(to)),
        robot.get_per_day,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_a_mailbox_share_reply_budgets() {
        let robot = RobotConfig::default();
        let a = reply_budgets(&robot, "Victim+1@Example.ORG", false);
        let b = reply_budgets(&robot, "vIctim@example.org", false);
        assert_eq!(a, b);
        assert_eq!(a[0].bucket, "reply:victim@example.org");
        assert_eq!(a[1].bucket, "domain:example.org");
        assert_eq!(a[1].limit, robot.replies_per_domain_per_hour);
        assert_eq!(a[2].limit, robot.replies_per_hour_total);
        let g = reply_budgets(&robot, "victim-x@example.org", true);
        assert_eq!(g.len(), 4);
        assert_eq!(g[3], get_budget(&robot, "VICTIM@example.org"));
        assert_eq!(g[3].window, crate::store::rate::DAY);
    }
}
