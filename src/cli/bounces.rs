//! `listd bounces LIST`: the members that bounced (score as of now, bounces
//! counted, last status, disabled and probes) and the newest recorded
//! bounces. Reads only; trusts nothing it prints (diagnostics are cut at a
//! char boundary and control characters removed).

use super::{load_config, open_store, CliResult};
use crate::store::bounces;
use std::io::Write;
use std::path::Path;

/// A unix time as `YYYY-MM-DD HH:MM`, or `-`.
pub fn date(t: Option<i64>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".into())
}

/// At most `n` chars of `s` on one line.
fn clip(s: &str, n: usize) -> String {
    let one: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match one.char_indices().nth(n) {
        Some((i, _)) => format!("{}...", &one[..i]),
        None => one,
    }
}

pub fn run(path: &Path, list: &str, limit: usize) -> CliResult {
    let config = load_config(path)?;
    let list = super::list_name(&config, list)?;
    let conn = open_store(&config)?;
    let now = crate::store::now();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let scores = bounces::scores(&conn, &list)?;
    writeln!(out, "{list}: {} member(s) with bounces", scores.len())?;
    for s in &scores {
        let state = match s.disabled_at {
            Some(t) => format!(
                "disabled {} probes {}/{}",
                date(Some(t)),
                s.probes,
                config.bounce.probes
            ),
            None => "enabled".into(),
        };
        writeln!(
            out,
            "  {}\tscore {}\tcounted {}\tlast {} {}\t{state}",
            s.address,
            crate::bounce::score::current(&config.bounce, s, now),
            s.counted,
            date(s.last_bounce_at),
            s.last_status.as_deref().unwrap_or("-"),
        )?;
    }
    let recent = bounces::recent(&conn, &list, limit)?;
    writeln!(out, "newest {} bounce(s):", recent.len())?;
    for b in recent {
        writeln!(
            out,
            "  {}\t{}\t{}\t{}\t{}{}",
            date(Some(b.received_at)),
            b.kind.as_deref().unwrap_or("-"),
            b.status.as_deref().unwrap_or("-"),
            b.recipient.as_deref().unwrap_or("-"),
            clip(b.diagnostic.as_deref().unwrap_or(""), 60),
            if b.has_body { "" } else { " (body expired)" },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_at_chars_and_formats_dates() {
        assert_eq!(clip("ééé\nx", 2), "éé...");
        assert_eq!(clip("ab", 5), "ab");
        assert_eq!(date(Some(1_700_000_000)), "2023-11-14 22:13");
        assert_eq!(date(None), "-");
    }
}
