//! The progress bar bulk CLI commands show on stderr: only when stderr is a
//! terminal (never in pipes, logs or tests) and there is more than one step.
//! Trusts nothing; it draws, it decides nothing.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// What the bar counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Addresses, messages: `12/300 40/s eta 7s`.
    Items,
    /// Bytes of a file: `1.2 MiB/40 MiB 3 MiB/s eta 13s`.
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
        Unit::Items => (total > 1, "{bar:40} {pos}/{len} {per_sec} eta {eta}"),
        Unit::Bytes => (
            total > 0,
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ),
    };
    if !worth_it {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
    pb
}

#[cfg(test)]
mod tests {
    use super::*;

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
