//! The progress bar bulk CLI commands show on stderr: only when stderr is a
//! terminal (never in pipes, logs or tests) and there is more than one step.
//! Trusts nothing; it draws, it decides nothing.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// What the bar counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Addresses, messages: `12/300 40/s eta 7s` (whole items per second).
    Items,
    /// Bytes of a file, with the items parsed from it so far (set with
    /// [`ItemRate`]): `1.2 MiB/40 MiB 3 MiB/s 5000 messages 4166/s eta 13s`.
    Bytes,
}

/// A bar for `total` steps on a terminal, else a hidden one.
pub fn bar(total: u64, unit: Unit) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    bar_on_terminal(total, unit)
}

fn bar_on_terminal(total: u64, unit: Unit) -> ProgressBar {
    let (worth_it, template) = match unit {
        Unit::Items => (total > 1, "{bar:40} {pos}/{len} {rate} eta {eta}"),
        Unit::Bytes => (
            total > 0,
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg} eta {eta}",
        ),
    };
    if !worth_it {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(template) {
        // whole items per second (`{per_sec}` shows `6,667.4911/s`)
        pb.set_style(style.with_key(
            "rate",
            |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", s.per_sec());
            },
        ));
    }
    pb
}

/// Items per second for a bar that counts something else (bytes): the
/// label beside it, `N NOUN R/s`.
pub struct ItemRate {
    start: Instant,
    noun: &'static str,
}

impl ItemRate {
    /// Starts the clock now.
    pub fn new(noun: &'static str) -> ItemRate {
        ItemRate {
            start: Instant::now(),
            noun,
        }
    }

    /// Shows `items` so far and their rate on `pb`.
    pub fn show(&self, pb: &ProgressBar, items: u64) {
        pb.set_message(self.label(items, self.start.elapsed()));
    }

    fn label(&self, items: u64, elapsed: Duration) -> String {
        let rate = items as f64 / elapsed.as_secs_f64().max(1e-3);
        format!("{items} {} {rate:.0}/s", self.noun)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_rate_label_counts_per_second() {
        let r = ItemRate::new("messages");
        assert_eq!(
            r.label(5000, Duration::from_secs(2)),
            "5000 messages 2500/s"
        );
        assert_eq!(r.label(0, Duration::ZERO), "0 messages 0/s");
    }

    #[test]
    fn one_step_or_an_empty_file_shows_no_bar() {
        assert!(bar_on_terminal(1, Unit::Items).is_hidden());
        assert!(bar_on_terminal(0, Unit::Bytes).is_hidden());
        let pb = bar_on_terminal(5, Unit::Items);
        assert_eq!(pb.length(), Some(5));
        let pb = bar_on_terminal(1, Unit::Bytes);
        assert_eq!(pb.length(), Some(1));
    }
}
