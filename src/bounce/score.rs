//! The bounce scoring decision, pure: facts in (the event, the member, its
//! score row, the time), an action out: ignore, count, disable, probe or
//! remove. The handler (`bounce::act`) writes the action afterwards, in the
//! same transaction.
//!
//! Trusts its facts; uses only the configuration.

use super::parse::Kind;
use crate::config::BounceConfig;
use crate::store::bounces::Score;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A bounce of this kind for the member.
    Bounce(Kind),
    /// Time passed (a disabled member's probe may be due).
    Tick,
}

/// Everything the decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub event: Event,
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
pub enum Ignore {
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
pub enum Action {
    Ignore(Ignore),
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
pub fn decide(cfg: &BounceConfig, f: &Facts<'_>) -> Action {
    if !f.member {
        return Action::Ignore(Ignore::NotAMember);
    }
    match f.event {
        Event::Tick => match f.score {
            Some(s) if f.disabled && s.next_probe_at.is_some_and(|t| t <= f.now) => {
                if s.probes < cfg.probes {
                    Action::Probe { n: s.probes + 1 }
                } else {
                    Action::Remove
                }
            }
            _ => Action::Ignore(Ignore::NothingDue),
        },
        Event::Bounce(kind) => {
            let weight = match kind {
                Kind::Hard => 1.0,
                Kind::Soft => cfg.soft_weight,
                Kind::Policy => return Action::Ignore(Ignore::Policy),
                _ => return Action::Ignore(Ignore::NotABounce),
            };
            if f.disabled {
                return Action::Ignore(Ignore::AlreadyDisabled);
            }
            if f.score.and_then(|s| s.last_day) == Some(day(f.now)) {
                return Action::Ignore(Ignore::CountedToday);
            }
            let score = f.score.map_or(0.0, |s| current(cfg, s, f.now)) + weight;
            if score >= cfg.threshold {
                Action::Disable { score }
            } else {
                Action::Count { score }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000;

    fn facts(event: Event, score: Option<&Score>, now: i64) -> Facts<'_> {
        Facts {
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
        let d = |k| decide(&c, &facts(Event::Bounce(k), None, T));
        assert_eq!(d(Kind::Hard), Action::Count { score: 1.0 });
        assert_eq!(d(Kind::Soft), Action::Count { score: 0.5 });
        assert_eq!(d(Kind::Policy), Action::Ignore(Ignore::Policy));
        for k in [
            Kind::Delayed,
            Kind::AutoReply,
            Kind::Unrecognised,
            Kind::BounceOfBounce,
        ] {
            assert_eq!(d(k), Action::Ignore(Ignore::NotABounce));
        }
        let stranger = Facts {
            member: false,
            ..facts(Event::Bounce(Kind::Hard), None, T)
        };
        assert_eq!(decide(&c, &stranger), Action::Ignore(Ignore::NotAMember));
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
        let hard = Event::Bounce(Kind::Hard);
        assert_eq!(
            decide(&c, &facts(hard, Some(&s), T + 60)),
            Action::Ignore(Ignore::CountedToday)
        );
        assert_eq!(
            decide(&c, &facts(hard, Some(&s), T + 86_400)),
            Action::Disable { score: 5.0 }
        );
        // 7 days without a bounce: from 0 again
        assert_eq!(
            decide(&c, &facts(hard, Some(&s), T + 7 * 86_400)),
            Action::Count { score: 1.0 }
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
            decide(&c, &facts(Event::Tick, Some(&s), T + 86_400)),
            Action::Ignore(Ignore::NothingDue)
        );
        assert_eq!(
            decide(&c, &facts(Event::Tick, Some(&s), T + 7 * 86_400)),
            Action::Probe { n: 2 }
        );
        s.probes = 3;
        assert_eq!(
            decide(&c, &facts(Event::Tick, Some(&s), T + 7 * 86_400)),
            Action::Remove
        );
        assert_eq!(
            decide(&c, &facts(Event::Bounce(Kind::Hard), Some(&s), T)),
            Action::Ignore(Ignore::AlreadyDisabled)
        );
        // re-enabled (or back after leaving) while the row still says
        // disabled: its bounces count again and no probe goes out
        let back = |event| Facts {
            disabled: false,
            ..facts(event, Some(&s), T + 7 * 86_400)
        };
        assert_eq!(
            decide(&c, &back(Event::Bounce(Kind::Hard))),
            Action::Count { score: 1.0 }
        );
        assert_eq!(
            decide(&c, &back(Event::Tick)),
            Action::Ignore(Ignore::NothingDue)
        );
    }
}
