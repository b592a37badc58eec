//! Who hears that delivery gave up on a finished job's recipients: the
//! pure decision, from plain facts about the job. Acting on it (the rate
//! limit, building and queueing the report) is `super`'s.
//!
//! Trusts the facts. A requester is only a claim (the address a command
//! mail came from), which is why a report to it counts against the robot's
//! reply budgets, and why nothing is sent where delivery just failed.

use crate::store::outbound::JobKind;

/// What is known of a job once nothing of it is pending.
#[derive(Debug, Clone)]
pub struct JobFacts<'a> {
    pub kind: JobKind,
    pub list: Option<&'a str>,
    /// The job's envelope sender ("" for the null sender).
    pub env_from: &'a str,
    /// Who asked for the mail (a robot command's sender), if anyone.
    pub requester: Option<&'a str>,
    /// The list's owners (empty without a list).
    pub owners: &'a [String],
    /// Recipients given up after `delivery.give_up_hours`.
    pub timed_out: u64,
    /// Recipients refused permanently (5xx).
    pub refused: u64,
    /// The requester is itself one of the failed recipients.
    pub requester_failed: bool,
}

/// Who gets the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// The list's owners (the report is addressed to `NAME-owner@`).
    Owners { list: String, owners: Vec<String> },
    /// The one address that asked for the mail.
    Requester(String),
}

/// Which failed recipients the report lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// Only those given up by timeout (4.4.7).
    TimedOut,
    /// Every failed recipient.
    All,
}

/// One report to send, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPlan {
    pub to: Audience,
    pub listed: Listed,
}

/// Decides the report a finished job calls for:
/// - none for a job sent with the null sender (a report, a rejection
///   notice): a report about a report could loop (RFC 3464 §2, RFC 5321
///   §3.6.3);
/// - a list post or digest: the owners, listing the recipients given up
///   by timeout only: each 5xx is the bounce processor's to score, and a
///   report per refusal would flood the owners;
/// - a robot reply or notice: the requester, when there is one, it is not
///   itself among the failed recipients, and it is not the null sender;
/// - mail forwarded to the owners or the postmaster: none (the owners'
///   own addresses failing is logged; there is no one else to tell).
pub fn decide(f: &JobFacts<'_>) -> Option<ReportPlan> {
    if f.env_from.trim().is_empty() || f.env_from.trim() == "<>" {
        return None;
    }
    match f.kind {
        JobKind::Post | JobKind::Digest => {
            let list = f.list?;
            (f.timed_out > 0 && !f.owners.is_empty()).then(|| ReportPlan {
                to: Audience::Owners {
                    list: list.to_string(),
                    owners: f.owners.to_vec(),
                },
                listed: Listed::TimedOut,
            })
        }
        JobKind::Reply | JobKind::Notice => {
            let who = f
                .requester
                .map(str::trim)
                .filter(|r| !r.is_empty() && *r != "<>")?;
            (f.timed_out + f.refused > 0 && !f.requester_failed).then(|| ReportPlan {
                to: Audience::Requester(who.to_string()),
                listed: Listed::All,
            })
        }
        JobKind::Forward => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(kind: JobKind) -> JobFacts<'static> {
        JobFacts {
            kind,
            list: Some("dev"),
            env_from: "dev-bounces@lists.example.org",
            requester: None,
            owners: &[],
            timed_out: 0,
            refused: 0,
            requester_failed: false,
        }
    }

    const OWNERS: &[String] = &[];

    #[test]
    fn a_post_reports_timeouts_to_the_owners_and_leaves_5xx_to_bounces() {
        let owners = vec!["boss@example.org".to_string()];
        let mut f = facts(JobKind::Post);
        f.owners = &owners;
        f.refused = 3000;
        assert_eq!(decide(&f), None, "5xx only: the bounce processor's");
        f.timed_out = 2;
        let plan = decide(&f).unwrap();
        assert_eq!(plan.listed, Listed::TimedOut);
        assert_eq!(
            plan.to,
            Audience::Owners {
                list: "dev".into(),
                owners: owners.clone()
            }
        );
        f.owners = OWNERS;
        assert_eq!(decide(&f), None, "no owners: no one to tell");
        f.owners = &owners;
        f.kind = JobKind::Digest;
        assert!(decide(&f).is_some());
        f.list = None;
        assert_eq!(decide(&f), None);
    }

    #[test]
    fn a_null_sender_job_never_causes_a_report() {
        let owners = vec!["boss@example.org".to_string()];
        for kind in [JobKind::Post, JobKind::Notice, JobKind::Reply] {
            let mut f = facts(kind);
            f.owners = &owners;
            f.requester = Some("asker@example.org");
            f.timed_out = 1;
            f.refused = 1;
            assert!(decide(&f).is_some());
            f.env_from = "";
            assert_eq!(decide(&f), None, "{kind:?}");
            f.env_from = "<>";
            assert_eq!(decide(&f), None, "{kind:?}");
        }
    }

    #[test]
    fn robot_mail_reports_to_its_requester_only_when_that_is_useful() {
        let mut f = facts(JobKind::Reply);
        f.refused = 1;
        assert_eq!(decide(&f), None, "no requester");
        f.requester = Some("<>");
        assert_eq!(decide(&f), None, "null requester");
        f.requester = Some("asker@example.org");
        assert_eq!(
            decide(&f),
            Some(ReportPlan {
                to: Audience::Requester("asker@example.org".into()),
                listed: Listed::All
            })
        );
        f.requester_failed = true;
        assert_eq!(decide(&f), None, "the requester's own address failed");
        f.requester_failed = false;
        f.refused = 0;
        assert_eq!(decide(&f), None, "nothing failed");
        f.kind = JobKind::Forward;
        f.refused = 1;
        assert_eq!(decide(&f), None);
    }
}
