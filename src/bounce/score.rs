//! The bounce scoring decision, pure: facts in (the event, the member, its
//! score row, the time), an action out: ignore, count, disable, probe or
//! remove. The handler (`bounce::act`) writes the action afterwards, in the
//! same transaction.
//!
//! Trusts its facts; uses only the configuration.

use super::parse::BounceKind;
use crate::config::BounceConfig;
use crate::store::bounces::Score;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceEvent {
    /// A bounce of this kind for the member.
    Bounce(BounceKind),
    /// Time passed (a disabled member's probe may be due).
    Tick,
}

/// Everything the decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct BounceFacts<'a> {
    pub event: BounceEvent,
    /// Whether the address is a member of the list.
    pub member: bool,
    /// Whether that member is disabled now (its flag, not the score row,
    /// which may outlive a re-enable or a re-subscription).
    pub disabled: bool,
    /// Its score row, if it ever bounced.
    pub score: Option<&'a Score>,
    pub now: i64,
}

/// Why nothing changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreBounce {
    NotAMember,
    /// Not a delivery failure (delay, auto-reply, unrecognised, bounce of a bounce).
    NotABounce,
    /// A spam/policy refusal: the list's reputation, not the member.
    Policy,
    /// A bounce already counted today.
    CountedToday,
    /// Already disabled: probes decide now.
    AlreadyDisabled,
    /// Nothing is due.
    NothingDue,
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BounceAction {
    IgnoreBounce(IgnoreBounce),
    /// Count the bounce: the new score.
    Count {
        score: f64,
    },
    /// Count it and disable the member: the new score.
    Disable {
        score: f64,
    },
    /// Send probe number `n` (1-based; the disable notice was the first).
    Probe {
        n: u32,
    },
    /// Probes went unanswered: remove the member.
    Remove,
}

/// The day a time falls on (UTC).
pub fn day(t: i64) -> i64 {
    t.div_euclid(86_400)
}

/// The score a row has at `now`: 0 once `stale_days` passed with no bounce.
pub fn current(cfg: &BounceConfig, s: &Score, now: i64) -> f64 {
    match s.last_bounce_at {
        Some(t) if now - t < i64::from(cfg.stale_days) * 86_400 => s.score,
        _ => 0.0,
    }
}

/// The decision.
pub fn decide(cfg: &BounceConfig, f: &BounceFacts<'_>) -> BounceAction {
    if !f.member {
        return BounceAction::IgnoreBounce(IgnoreBounce::NotAMember);
    }
    match f.event {
        BounceEvent::Tick => match f.score {
            Some(s) if f.disabled && s.next_probe_at.is_some_and(|t| t <= f.now) => {
                if s.probes < cfg.probes {
                    BounceAction::Probe { n: s.probes + 1 }
                } else {
                    BounceAction::Remove
                }
            }
            _ => BounceAction::IgnoreBounce(IgnoreBounce::NothingDue),
        },
        BounceEvent::Bounce(kind) => {
            let weight = match kind {
                BounceKind::Hard => 1.0,
                BounceKind::Soft => cfg.soft_weight,
                BounceKind::Policy => return BounceAction::IgnoreBounce(IgnoreBounce::Policy),
                _ => return BounceAction::IgnoreBounce(IgnoreBounce::NotABounce),
            };
            if f.disabled {
                return BounceAction::IgnoreBounce(IgnoreBounce::AlreadyDisabled);
            }
            if f.score.and_then(|s| s.last_day) == Some(day(f.now)) {
                return BounceAction::IgnoreBounce(IgnoreBounce::CountedToday);
            }
            let score = f.score.map_or(0.0, |s| current(cfg, s, f.now)) + weight;
            if score >= cfg.threshold {
                BounceAction::Disable { score }
            } else {
                BounceAction::Count { score }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000;

    fn facts(event: BounceEvent, score: Option<&Score>, now: i64) -> BounceFacts<'_> {
        BounceFacts {
            event,
            member: true,
            disabled: score.is_some_and(|s| s.disabled_at.is_some()),
            score,
            now,
        }
    }

    #[test]
    fn hard_soft_policy_and_non_bounces() {
        let c = BounceConfig::default();
        let d = |k| decide(&c, &facts(BounceEvent::Bounce(k), None, T));
        assert_eq!(d(BounceKind::Hard), BounceAction::Count { score: 1.0 });
        assert_eq!(d(BounceKind::Soft), BounceAction::Count { score: 0.5 });
        assert_eq!(
            d(BounceKind::Policy),
            BounceAction::IgnoreBounce(IgnoreBounce::Policy)
        );
        for k in [
            BounceKind::Delayed,
            BounceKind::AutoReply,
            BounceKind::Unrecognised,
            BounceKind::BounceOfBounce,
        ] {
            assert_eq!(d(k), BounceAction::IgnoreBounce(IgnoreBounce::NotABounce));
        }
        let stranger = BounceFacts {
            member: false,
            ..facts(BounceEvent::Bounce(BounceKind::Hard), None, T)
        };
        assert_eq!(
            decide(&c, &stranger),
            BounceAction::IgnoreBounce(IgnoreBounce::NotAMember)
        );
    }

    #[test]
    fn once_a_day_threshold_and_decay() {
        let c = BounceConfig::default();
        let s = Score {
            score: 4.0,
            last_day: Some(day(T)),
            last_bounce_at: Some(T),
            ..Score::default()
        };
        let hard = BounceEvent::Bounce(BounceKind::Hard);
        assert_eq!(
            decide(&c, &facts(hard, Some(&s), T + 60)),
            BounceAction::IgnoreBounce(IgnoreBounce::CountedToday)
        );
        assert_eq!(
            decide(&c, &facts(hard, Some(&s), T + 86_400)),
            BounceAction::Disable { score: 5.0 }
        );
        // 7 days without a bounce: from 0 again
        assert_eq!(
            decide(&c, &facts(hard, Some(&s), T + 7 * 86_400)),
            BounceAction::Count { score: 1.0 }
        );
    }

    #[test]
    fn probes_then_removal() {
        let c = BounceConfig::default();
        let mut s = Score {
            disabled_at: Some(T),
            probes: 1,
            next_probe_at: Some(T + 7 * 86_400),
            ..Score::default()
        };
        assert_eq!(
            decide(&c, &facts(BounceEvent::Tick, Some(&s), T + 86_400)),
            BounceAction::IgnoreBounce(IgnoreBounce::NothingDue)
        );
        assert_eq!(
            decide(&c, &facts(BounceEvent::Tick, Some(&s), T + 7 * 86_400)),
            BounceAction::Probe { n: 2 }
        );
        s.probes = 3;
        assert_eq!(
            decide(&c, &facts(BounceEvent::Tick, Some(&s), T + 7 * 86_400)),
            BounceAction::Remove
        );
        assert_eq!(
            decide(
                &c,
                &facts(BounceEvent::Bounce(BounceKind::Hard), Some(&s), T)
            ),
            BounceAction::IgnoreBounce(IgnoreBounce::AlreadyDisabled)
        );
        // re-enabled (or back after leaving) while the row still says
        // disabled: its bounces count again and no probe goes out
        let back = |event| BounceFacts {
            disabled: false,
            ..facts(event, Some(&s), T + 7 * 86_400)
        };
        assert_eq!(
            decide(&c, &back(BounceEvent::Bounce(BounceKind::Hard))),
            BounceAction::Count { score: 1.0 }
        );
        assert_eq!(
            decide(&c, &back(BounceEvent::Tick)),
            BounceAction::IgnoreBounce(IgnoreBounce::NothingDue)
        );
    }
}
