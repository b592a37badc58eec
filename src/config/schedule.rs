//! Digest timing: the `schedule` setting (`daily HH:MM`, `weekly DAY HH:MM`,
//! `none`) and the `volume_period` (`yearly`, `monthly`, `never`).
//!
//! Pure functions of their inputs and `now` (unix seconds), so tests fake
//! the clock. Times are UTC. Trusts nothing in the strings it parses: a bad
//! schedule is an error message for the config loader to place at a line.

use chrono::{DateTime, Datelike, Utc};

const DAY: i64 = 86_400;
const WEEK: i64 = 7 * DAY;

/// When a list's digest closes by the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Only the count and size triggers (and `listd digest send`) close an issue.
    None,
    /// Every day at this many seconds after midnight UTC.
    Daily { at: i64 },
    /// Every week on `weekday` (0 = Monday) at `at` seconds after midnight UTC.
    Weekly { weekday: u8, at: i64 },
}

const DAYS: [(&str, &str); 7] = [
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];

fn parse_day(s: &str) -> Option<u8> {
    let s = s.to_ascii_lowercase();
    let s = match s.as_str() {
        "tues" => "tue",
        "thur" | "thurs" => "thu",
        other => other,
    };
    DAYS.iter()
        .position(|(short, long)| s == *short || s == *long)
        .map(|i| i as u8)
}

fn parse_time(s: &str) -> Option<i64> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    if !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i64 = h.parse().ok()?;
    let m: i64 = m.parse().ok()?;
    if h > 23 || m > 59 {
        return None;
    }
    Some(h * 3600 + m * 60)
}

impl Schedule {
    /// Parses `none`, `daily HH:MM` or `weekly DAY HH:MM` (day names like
    /// `mon` or `Monday`, any case). The error says what was expected.
    pub fn parse(s: &str) -> Result<Schedule, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let bad = || {
            format!(
                "digest.schedule must be `daily HH:MM`, `weekly DAY HH:MM` (DAY: mon..sun) or `none`, not `{s}`"
            )
        };
        let first = words.first().map(|w| w.to_ascii_lowercase());
        match (first.as_deref(), words.len()) {
            (Some("none"), 1) => Ok(Schedule::None),
            (Some("daily"), 2) => parse_time(words[1])
                .map(|at| Schedule::Daily { at })
                .ok_or_else(|| {
                    format!(
                        "{}: `{}` is not a time HH:MM (00:00 to 23:59)",
                        bad(),
                        words[1]
                    )
                }),
            (Some("weekly"), 3) => {
                let weekday = parse_day(words[1])
                    .ok_or_else(|| format!("{}: `{}` is not a day of the week", bad(), words[1]))?;
                let at = parse_time(words[2]).ok_or_else(|| {
                    format!(
                        "{}: `{}` is not a time HH:MM (00:00 to 23:59)",
                        bad(),
                        words[2]
                    )
                })?;
                Ok(Schedule::Weekly { weekday, at })
            }
            _ => Err(bad()),
        }
    }

    /// The latest scheduled instant at or before `now`, if any.
    pub fn last_at_or_before(self, now: i64) -> Option<i64> {
        match self {
            Schedule::None => None,
            Schedule::Daily { at } => {
                let t = now.div_euclid(DAY) * DAY + at;
                Some(if t > now { t - DAY } else { t })
            }
            Schedule::Weekly { weekday, at } => {
                let day = now.div_euclid(DAY);
                // 1970-01-01 was a Thursday (Monday = 0, so Thursday = 3).
                let today = (day + 3).rem_euclid(7);
                let back = (today - weekday as i64).rem_euclid(7);
                let t = (day - back) * DAY + at;
                Some(if t > now { t - WEEK } else { t })
            }
        }
    }

    /// The first scheduled instant strictly after `now`, if any.
    pub fn next_after(self, now: i64) -> Option<i64> {
        let period = match self {
            Schedule::None => return None,
            Schedule::Daily { .. } => DAY,
            Schedule::Weekly { .. } => WEEK,
        };
        self.last_at_or_before(now).map(|t| t + period)
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hm = |at: i64| format!("{:02}:{:02}", at / 3600, (at % 3600) / 60);
        match self {
            Schedule::None => write!(f, "none"),
            Schedule::Daily { at } => write!(f, "daily {} UTC", hm(*at)),
            Schedule::Weekly { weekday, at } => {
                write!(f, "weekly {} {} UTC", DAYS[*weekday as usize].0, hm(*at))
            }
        }
    }
}

/// How often the volume number goes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumePeriod {
    Yearly,
    Monthly,
    Never,
}

impl VolumePeriod {
    pub fn parse(s: &str) -> Option<VolumePeriod> {
        match s {
            "yearly" => Some(VolumePeriod::Yearly),
            "monthly" => Some(VolumePeriod::Monthly),
            "never" => Some(VolumePeriod::Never),
            _ => None,
        }
    }

    /// The period `now` falls in: `2024`, `2024-06`, or `` for never. A new
    /// volume starts when an issue closes in another period than the last.
    pub fn key(self, now: i64) -> String {
        let t = utc(now);
        match self {
            VolumePeriod::Yearly => format!("{:04}", t.year()),
            VolumePeriod::Monthly => format!("{:04}-{:02}", t.year(), t.month()),
            VolumePeriod::Never => String::new(),
        }
    }
}

/// `now` as a UTC date-time (the epoch for out-of-range values).
pub fn utc(now: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(now, 0).unwrap_or_default()
}

/// `Mon, 03 Jun 2024 06:00:00 +0000` for `now` (UTC): an RFC 5322 date.
pub fn rfc5322(now: i64) -> String {
    utc(now).format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322(1_717_394_400), "Mon, 03 Jun 2024 06:00:00 +0000");
    }

    // 2024-06-03 was a Monday.
    const MON_2024_06_03: i64 = 1_717_372_800;

    #[test]
    fn parses_the_forms_and_rejects_the_rest() {
        assert_eq!(Schedule::parse("none"), Ok(Schedule::None));
        assert_eq!(
            Schedule::parse("daily 06:00"),
            Ok(Schedule::Daily { at: 6 * 3600 })
        );
        assert_eq!(
            Schedule::parse("  Daily   6:30 "),
            Ok(Schedule::Daily {
                at: 6 * 3600 + 1800
            })
        );
        assert_eq!(
            Schedule::parse("weekly mon 08:00"),
            Ok(Schedule::Weekly {
                weekday: 0,
                at: 8 * 3600
            })
        );
        assert_eq!(
            Schedule::parse("WEEKLY Sunday 23:59"),
            Ok(Schedule::Weekly {
                weekday: 6,
                at: 23 * 3600 + 59 * 60
            })
        );
        assert_eq!(
            Schedule::parse("weekly Thurs 00:00"),
            Ok(Schedule::Weekly { weekday: 3, at: 0 })
        );
        for bad in [
            "",
            "daily",
            "daily 24:00",
            "daily 06:60",
            "daily 6",
            "daily 06:00 extra",
            "weekly 08:00",
            "weekly funday 08:00",
            "monthly 1 08:00",
            "hourly",
            "daily -1:00",
            "daily 06:0",
            "none please",
        ] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(e.contains("digest.schedule"), "{bad}: {e}");
        }
        assert!(Schedule::parse("weekly funday 08:00")
            .unwrap_err()
            .contains("`funday` is not a day"));
        assert!(Schedule::parse("daily 25:00")
            .unwrap_err()
            .contains("`25:00` is not a time"));
    }

    #[test]
    fn daily_occurrences() {
        let s = Schedule::parse("daily 06:00").unwrap();
        let six = MON_2024_06_03 + 6 * 3600;
        assert_eq!(s.last_at_or_before(six), Some(six));
        assert_eq!(s.last_at_or_before(six - 1), Some(six - DAY));
        assert_eq!(s.last_at_or_before(six + DAY - 1), Some(six));
        assert_eq!(s.next_after(six), Some(six + DAY));
        assert_eq!(s.next_after(six - 1), Some(six));
        assert_eq!(Schedule::None.last_at_or_before(six), None);
        assert_eq!(Schedule::None.next_after(six), None);
    }

    #[test]
    fn weekly_occurrences() {
        let mon8 = MON_2024_06_03 + 8 * 3600;
        let s = Schedule::parse("weekly mon 08:00").unwrap();
        assert_eq!(s.last_at_or_before(mon8), Some(mon8));
        assert_eq!(s.last_at_or_before(mon8 - 1), Some(mon8 - WEEK));
        assert_eq!(s.last_at_or_before(mon8 + 3 * DAY), Some(mon8));
        assert_eq!(s.next_after(mon8), Some(mon8 + WEEK));
        let fri = Schedule::parse("weekly fri 17:30").unwrap();
        let fri_t = MON_2024_06_03 + 4 * DAY + 17 * 3600 + 1800;
        assert_eq!(fri.last_at_or_before(mon8), Some(fri_t - WEEK));
        assert_eq!(fri.next_after(mon8), Some(fri_t));
        assert_eq!(utc(fri_t).weekday(), chrono::Weekday::Fri);
    }

    #[test]
    fn volume_keys() {
        assert_eq!(VolumePeriod::Yearly.key(MON_2024_06_03), "2024");
        assert_eq!(VolumePeriod::Monthly.key(MON_2024_06_03), "2024-06");
        assert_eq!(VolumePeriod::Never.key(MON_2024_06_03), "");
        assert_eq!(VolumePeriod::parse("weekly"), None);
    }
}
