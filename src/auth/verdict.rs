//! The compact verdict intake stores with each message: the From: domain's
//! DMARC result and published policy. The pipeline reads it from the store,
//! never from a header. Plain data; the checks that produce it are in
//! `auth::check`.

use crate::store::spool::AuthRow;

/// The DMARC result for the From: domain (RFC 7489 §11.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcStatus {
    /// Aligned SPF or DKIM passed: the From: domain is proven.
    Pass,
    Fail,
    /// No policy published, or no From: domain to check.
    None,
    TempError,
    PermError,
}

/// What the From: domain publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromPolicy {
    /// No DMARC record.
    Absent,
    None,
    Quarantine,
    Reject,
    /// The lookup failed (or an upstream verdict did not say).
    Unknown,
}

/// What intake found out about a message's From:.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthVerdict {
    pub dmarc: DmarcStatus,
    pub policy: FromPolicy,
    /// The From: domain checked, lower case ("" when there was none).
    pub from_domain: String,
}

fn domain_of(addr: &str) -> Option<String> {
    addr.trim()
        .trim_matches(['<', '>'])
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
}

impl AuthVerdict {
    /// `addr` is the From: that passed DMARC: its domain is proven.
    pub fn proves(&self, addr: &str) -> bool {
        self.dmarc == DmarcStatus::Pass
            && !self.from_domain.is_empty()
            && domain_of(addr).as_deref() == Some(self.from_domain.as_str())
    }

    /// Whether `addr`, as a From:, may be believed for a privileged act
    /// (a moderator's approval, an owner's command): when its domain
    /// publishes DMARC (or we could not tell), it must pass it.
    pub fn may_act_as(&self, addr: &str) -> bool {
        if self.proves(addr) {
            return true;
        }
        let same = self.from_domain.is_empty()
            || domain_of(addr).as_deref() == Some(self.from_domain.as_str());
        same && self.policy == FromPolicy::Absent && matches!(self.dmarc, DmarcStatus::None)
    }

    /// The From: fails its domain's DMARC.
    pub fn fails(&self) -> bool {
        self.dmarc == DmarcStatus::Fail
    }

    /// Whether a list's copy with this From: risks being refused: the
    /// domain says quarantine or reject, or we could not tell.
    pub fn strict_policy(&self) -> bool {
        !self.from_domain.is_empty()
            && matches!(
                self.policy,
                FromPolicy::Quarantine | FromPolicy::Reject | FromPolicy::Unknown
            )
    }

    /// The stored form.
    pub fn row(&self) -> AuthRow {
        AuthRow {
            dmarc: match self.dmarc {
                DmarcStatus::Pass => "pass",
                DmarcStatus::Fail => "fail",
                DmarcStatus::None => "none",
                DmarcStatus::TempError => "temperror",
                DmarcStatus::PermError => "permerror",
            }
            .into(),
            policy: match self.policy {
                FromPolicy::Absent => "absent",
                FromPolicy::None => "none",
                FromPolicy::Quarantine => "quarantine",
                FromPolicy::Reject => "reject",
                FromPolicy::Unknown => "unknown",
            }
            .into(),
            from_domain: self.from_domain.clone(),
        }
    }

    /// Reads the stored form; an unknown word reads as the weakest claim.
    pub fn from_row(r: &AuthRow) -> AuthVerdict {
        AuthVerdict {
            dmarc: match r.dmarc.as_str() {
                "pass" => DmarcStatus::Pass,
                "fail" => DmarcStatus::Fail,
                "none" => DmarcStatus::None,
                "permerror" => DmarcStatus::PermError,
                _ => DmarcStatus::TempError,
            },
            policy: match r.policy.as_str() {
                "absent" => FromPolicy::Absent,
                "none" => FromPolicy::None,
                "quarantine" => FromPolicy::Quarantine,
                "reject" => FromPolicy::Reject,
                _ => FromPolicy::Unknown,
            },
            from_domain: r.from_domain.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(dmarc: DmarcStatus, policy: FromPolicy) -> AuthVerdict {
        AuthVerdict {
            dmarc,
            policy,
            from_domain: "example.org".into(),
        }
    }

    #[test]
    fn what_each_verdict_proves() {
        let pass = v(DmarcStatus::Pass, FromPolicy::Reject);
        assert!(pass.proves("Alice@Example.ORG"));
        assert!(!pass.proves("alice@other.example"));
        assert!(pass.may_act_as("alice@example.org"));
        let fail = v(DmarcStatus::Fail, FromPolicy::None);
        assert!(!fail.proves("alice@example.org"));
        assert!(!fail.may_act_as("alice@example.org"));
        assert!(fail.fails());
        let none = v(DmarcStatus::None, FromPolicy::Absent);
        assert!(
            none.may_act_as("alice@example.org"),
            "no DMARC: believed as before"
        );
        assert!(!none.may_act_as("alice@other.example"));
        let temp = v(DmarcStatus::TempError, FromPolicy::Unknown);
        assert!(
            !temp.may_act_as("alice@example.org"),
            "could not tell: refused"
        );
        assert!(temp.strict_policy());
        assert!(!none.strict_policy());
        assert!(v(DmarcStatus::Pass, FromPolicy::Quarantine).strict_policy());
    }

    #[test]
    fn the_row_round_trips() {
        for d in [
            DmarcStatus::Pass,
            DmarcStatus::Fail,
            DmarcStatus::None,
            DmarcStatus::TempError,
            DmarcStatus::PermError,
        ] {
            for p in [
                FromPolicy::Absent,
                FromPolicy::None,
                FromPolicy::Quarantine,
                FromPolicy::Reject,
                FromPolicy::Unknown,
            ] {
                let x = v(d, p);
                assert_eq!(AuthVerdict::from_row(&x.row()), x);
            }
        }
    }
}
