//! Membership: the one expansion that turns a list into its recipients,
//! used by fan-out (`delivery`) and by EXPN (`smtp`). A leaf: it reads the
//! members table and the configuration, and imports nothing else.
//!
//! It streams members straight from SQLite cursors and never collects the
//! membership. A member whose address is itself a local list
//! (`NAME@` the list's domain, in any case: `Dev@LISTS.example.org` is `dev`) is
//! expanded in its place, recursively; a list met
//! again on its own path is a cycle (logged and skipped), a list met again on
//! another path is simply not expanded twice. The lists reached are merged
//! by a k-way merge of one cursor per list, each ordered by `address_key`, so
//! an address on several of them comes out once, and memory is one row per
//! list reached. Output is in `address_key` order, which makes a resume
//! cursor trivial: the last key emitted.
//!
//! Trusts the members table (addresses were checked when added); trusts the
//! config for which names are lists.

use crate::config::Config;
use crate::store::Result;
use rusqlite::{params_from_iter, Connection};
use std::collections::HashSet;

/// What to include.
#[derive(Debug, Clone, Default)]
pub struct ExpandOptions {
    /// Include every member whatever their mode or disabled flag (for EXPN
    /// display). Fan-out leaves this false: `nomail` and disabled members
    /// are skipped, and digest members too while their list's digests are
    /// enabled (they get posts through the digest); with `digest.enabled:
    /// false` digest members get each post like `each` members.
    pub all_members: bool,
    /// Address keys to leave out (`skip_explicit_recipients`: members already
    /// in To/Cc).
    pub skip: HashSet<String>,
    /// Resume after this address key (exclusive).
    pub after: Option<String>,
}

/// One recipient produced by expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The comparison key (domain lower-cased).
    pub key: String,
    /// The address as stored.
    pub address: String,
}

/// What expansion saw besides recipients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpandReport {
    /// Every list expanded, the top one first.
    pub lists: Vec<String>,
    /// Cycles found, as paths: `["a", "b", "a"]`.
    pub cycles: Vec<Vec<String>>,
    /// Recipients emitted.
    pub emitted: u64,
    /// Whether the stream was exhausted (false when the callback stopped it).
    pub complete: bool,
    /// The key of the last recipient emitted.
    pub last_key: Option<String>,
}

/// The list name an address refers to, if it is one of our lists.
pub fn local_list<'c>(config: &'c Config, address_key: &str) -> Option<&'c str> {
    let (local, domain) = address_key.rsplit_once('@')?;
    config
        .lists
        .get_key_value(&local.to_ascii_lowercase())
        .filter(|(k, _)| domain.eq_ignore_ascii_case(config.list_domain(k)))
        .map(|(k, _)| k.as_str())
}

/// The lists reached from `list` through members that are list addresses,
/// `list` first, each once; cycles are reported.
pub fn reachable_lists(
    conn: &Connection,
    config: &Config,
    list: &str,
) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    // Every membership edge between our lists, found by index lookups on the
    // list addresses (not by scanning members).
    let names: Vec<&String> = config.lists.keys().collect();
    let mut edges: Vec<(String, String)> = Vec::new();
    for chunk in names.chunks(400) {
        let placeholders = vec!["?"; chunk.len()].join(",");
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT list, address_key FROM members WHERE lower(address_key) IN ({placeholders})"
        ))?;
        // list names are lower case; lower() folds ASCII only, as list
        // names and domains are ASCII
        let keys = chunk
            .iter()
            .map(|n| config.list_address(n).to_ascii_lowercase());
        let mut rows = stmt.query(params_from_iter(keys))?;
        while let Some(r) = rows.next()? {
            let parent: String = r.get(0)?;
            let key: String = r.get(1)?;
            if let Some(child) = local_list(config, &key) {
                edges.push((parent, child.to_string()));
            }
        }
    }
    edges.sort();
    // `dev@…` and `Dev@…` on the same list are one edge
    edges.dedup();
    let mut order = Vec::new();
    let mut cycles = Vec::new();
    let mut visited = HashSet::new();
    let mut path = Vec::new();
    dfs(
        list,
        &edges,
        &mut visited,
        &mut path,
        &mut order,
        &mut cycles,
    );
    Ok((order, cycles))
}

fn dfs(
    node: &str,
    edges: &[(String, String)],
    visited: &mut HashSet<String>,
    path: &mut Vec<String>,
    order: &mut Vec<String>,
    cycles: &mut Vec<Vec<String>>,
) {
    visited.insert(node.to_string());
    path.push(node.to_string());
    order.push(node.to_string());
    for (_, child) in edges.iter().filter(|(p, _)| p == node) {
        if path.iter().any(|p| p == child) {
            let mut cyc: Vec<String> = path.iter().skip_while(|p| *p != child).cloned().collect();
            cyc.push(child.clone());
            tracing::warn!(cycle = %cyc.join(" -> "), "nested lists form a cycle; skipping the repeat");
            cycles.push(cyc);
        } else if !visited.contains(child) {
            dfs(child, edges, visited, path, order, cycles);
        }
    }
    path.pop();
}

/// The SQL condition picking the members of `list` who get each post by
/// itself: `each` members, and digest members too when the list's digests
/// are disabled (they would otherwise get nothing, as in Mailman), never
/// `nomail` or disabled ones. Empty with `all_members`.
fn member_filter(config: &Config, list: &str, all_members: bool) -> &'static str {
    if all_members {
        ""
    } else if config.list(list).is_some_and(|l| !l.digest.enabled) {
        "AND mode IN ('each', 'digest_mime', 'digest_plain') AND disabled = 0"
    } else {
        "AND mode = 'each' AND disabled = 0"
    }
}

/// Streams the deliverable recipients of `list` (nested lists expanded,
/// duplicates removed, in `address_key` order), calling `f` for each. `f`
/// returns false to stop. Memory is bounded by the number of lists reached.
pub fn expand(
    conn: &Connection,
    config: &Config,
    list: &str,
    opts: &ExpandOptions,
    mut f: impl FnMut(&Recipient) -> bool,
) -> Result<ExpandReport> {
    let (lists, cycles) = reachable_lists(conn, config, list)?;
    let after = opts.after.clone().unwrap_or_default();
    let mut stmts = Vec::with_capacity(lists.len());
    for l in &lists {
        let filter = member_filter(config, l, opts.all_members);
        stmts.push(conn.prepare(&format!(
            "SELECT address_key, address FROM members
             WHERE list = ?1 AND address_key > ?2 {filter} ORDER BY address_key"
        ))?);
    }
    let mut cursors = Vec::with_capacity(lists.len());
    for (stmt, l) in stmts.iter_mut().zip(&lists) {
        cursors.push(stmt.query(rusqlite::params![l, after])?);
    }
    let mut heads: Vec<Option<Recipient>> = Vec::with_capacity(lists.len());
    for c in cursors.iter_mut() {
        heads.push(next_row(c)?);
    }
    let mut report = ExpandReport {
        lists,
        cycles,
        ..ExpandReport::default()
    };
    loop {
        // the smallest key among the heads
        let Some(min_idx) = heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().map(|h| (i, h)))
            .min_by(|a, b| a.1.key.cmp(&b.1.key))
            .map(|(i, _)| i)
        else {
            report.complete = true;
            return Ok(report);
        };
        let Some(rcpt) = heads[min_idx].take() else {
            report.complete = true;
            return Ok(report);
        };
        heads[min_idx] = next_row(&mut cursors[min_idx])?;
        // advance every other cursor past the same key (the dedupe)
        for i in 0..heads.len() {
            while heads[i].as_ref().is_some_and(|h| h.key == rcpt.key) {
                heads[i] = next_row(&mut cursors[i])?;
            }
        }
        if local_list(config, &rcpt.key).is_some() || opts.skip.contains(&rcpt.key) {
            continue;
        }
        report.emitted += 1;
        let go_on = f(&rcpt);
        report.last_key = Some(rcpt.key);
        if !go_on {
            return Ok(report);
        }
    }
}

fn next_row(rows: &mut rusqlite::Rows<'_>) -> Result<Option<Recipient>> {
    Ok(match rows.next()? {
        Some(r) => Some(Recipient {
            key: r.get(0)?,
            address: r.get(1)?,
        }),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Address;
    use crate::store::members::{self, DeliveryMode};

    fn setup(lists: &[&str]) -> (tempfile::TempDir, Config, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests("lists.example.org", dir.path());
        for l in lists {
            let lc =
                crate::config::ListConfig::parse(std::path::Path::new("x.yaml"), l, "").unwrap();
            config.lists.insert(l.to_string(), lc);
        }
        let conn = crate::store::open(&config.db_path()).unwrap();
        (dir, config, conn)
    }

    fn setup_yaml(lists: &[(&str, &str)]) -> (tempfile::TempDir, Config, Connection) {
        let (d, mut config, conn) = setup(&[]);
        for (l, yaml) in lists {
            let lc =
                crate::config::ListConfig::parse(std::path::Path::new("x.yaml"), l, yaml).unwrap();
            config.lists.insert(l.to_string(), lc);
        }
        (d, config, conn)
    }

    fn add(conn: &Connection, list: &str, addr: &str, mode: DeliveryMode) {
        members::add(
            conn,
            list,
            &Address::parse(addr).unwrap().to_string(),
            &Address::parse(addr).unwrap().key(),
            None,
            mode,
            1,
        )
        .unwrap();
    }

    fn collect(
        conn: &Connection,
        config: &Config,
        list: &str,
        opts: &ExpandOptions,
    ) -> Vec<String> {
        let mut v = vec![];
        expand(conn, config, list, opts, |r| {
            v.push(r.address.clone());
            true
        })
        .unwrap();
        v
    }

    #[test]
    fn skips_modes_and_disabled_unless_all() {
        let (_d, config, conn) = setup(&["dev"]);
        add(&conn, "dev", "a@x.org", DeliveryMode::Each);
        add(&conn, "dev", "b@x.org", DeliveryMode::NoMail);
        add(&conn, "dev", "c@x.org", DeliveryMode::DigestMime);
        add(&conn, "dev", "d@x.org", DeliveryMode::Each);
        members::set_disabled(
            &conn,
            "dev",
            &Address::parse("d@x.org").unwrap().key(),
            true,
        )
        .unwrap();
        add(&conn, "dev", "e@X.ORG", DeliveryMode::Each);
        assert_eq!(
            collect(&conn, &config, "dev", &ExpandOptions::default()),
            vec!["a@x.org", "e@x.org"]
        );
        let all = ExpandOptions {
            all_members: true,
            ..Default::default()
        };
        assert_eq!(collect(&conn, &config, "dev", &all).len(), 5);
        let skip = ExpandOptions {
            skip: ["e@x.org".to_string()].into_iter().collect(),
            ..Default::default()
        };
        assert_eq!(collect(&conn, &config, "dev", &skip), vec!["a@x.org"]);
    }

    #[test]
    fn nested_lists_dedupe_and_cycles() {
        let (_d, config, conn) = setup(&["top", "sub", "subsub", "other"]);
        add(&conn, "top", "a@x.org", DeliveryMode::Each);
        add(&conn, "top", "sub@lists.example.org", DeliveryMode::Each);
        add(&conn, "top", "z@x.org", DeliveryMode::Each);
        add(&conn, "sub", "a@x.org", DeliveryMode::Each); // duplicate of top's
        add(&conn, "sub", "b@x.org", DeliveryMode::Each);
        add(&conn, "sub", "subsub@lists.example.org", DeliveryMode::Each);
        add(&conn, "subsub", "c@x.org", DeliveryMode::Each);
        add(&conn, "subsub", "top@lists.example.org", DeliveryMode::Each); // cycle
        add(&conn, "subsub", "z@x.org", DeliveryMode::Each);
        add(&conn, "other", "nobody@x.org", DeliveryMode::Each); // not reached
        let mut seen = vec![];
        let report = expand(&conn, &config, "top", &ExpandOptions::default(), |r| {
            seen.push(r.address.clone());
            true
        })
        .unwrap();
        assert_eq!(seen, vec!["a@x.org", "b@x.org", "c@x.org", "z@x.org"]);
        assert_eq!(report.lists, vec!["top", "sub", "subsub"]);
        assert_eq!(report.cycles, vec![vec!["top", "sub", "subsub", "top"]]);
        assert!(report.complete);
        // resume after a key
        let opts = ExpandOptions {
            after: Some("b@x.org".into()),
            ..Default::default()
        };
        assert_eq!(
            collect(&conn, &config, "top", &opts),
            vec!["c@x.org", "z@x.org"]
        );
        // stopping early reports where
        let report = expand(&conn, &config, "top", &ExpandOptions::default(), |_| false).unwrap();
        assert!(!report.complete);
        assert_eq!(report.last_key.as_deref(), Some("a@x.org"));
    }

    #[test]
    fn a_nested_list_is_its_address_at_its_own_domain_only() {
        let (_d, config, conn) = setup_yaml(&[
            ("all", ""),
            ("dev", "domain: lists.example.net\n"),
            ("ops", ""),
        ]);
        assert_eq!(local_list(&config, "dev@lists.example.net"), Some("dev"));
        assert_eq!(local_list(&config, "dev@lists.example.org"), None);
        assert_eq!(local_list(&config, "ops@lists.example.net"), None);
        add(&conn, "all", "dev@lists.example.net", DeliveryMode::Each);
        add(&conn, "all", "ops@lists.example.net", DeliveryMode::Each);
        add(&conn, "dev", "a@x.org", DeliveryMode::Each);
        add(&conn, "ops", "b@x.org", DeliveryMode::Each);
        // dev is expanded; ops@.net is no list of ours, just an address
        assert_eq!(
            collect(&conn, &config, "all", &ExpandOptions::default()),
            ["a@x.org", "ops@lists.example.net"]
        );
    }

    #[test]
    fn self_membership_is_a_cycle() {
        let (_d, config, conn) = setup(&["dev"]);
        add(&conn, "dev", "dev@lists.example.org", DeliveryMode::Each);
        add(&conn, "dev", "a@x.org", DeliveryMode::Each);
        let report = expand(&conn, &config, "dev", &ExpandOptions::default(), |_| true).unwrap();
        assert_eq!(report.cycles, vec![vec!["dev", "dev"]]);
        assert_eq!(report.emitted, 1);
    }

    #[test]
    fn digest_members_get_each_post_when_digests_are_disabled() {
        let (_d, config, conn) =
            setup_yaml(&[("plain", "digest:\n  enabled: false\n"), ("dig", "")]);
        for l in ["plain", "dig"] {
            add(&conn, l, "a@x.org", DeliveryMode::Each);
            add(&conn, l, "m@x.org", DeliveryMode::DigestMime);
            add(&conn, l, "p@x.org", DeliveryMode::DigestPlain);
            add(&conn, l, "n@x.org", DeliveryMode::NoMail);
            add(&conn, l, "q@x.org", DeliveryMode::DigestPlain);
            members::set_disabled(&conn, l, &Address::parse("q@x.org").unwrap().key(), true)
                .unwrap();
        }
        let opts = ExpandOptions::default();
        assert_eq!(
            collect(&conn, &config, "plain", &opts),
            vec!["a@x.org", "m@x.org", "p@x.org"]
        );
        assert_eq!(collect(&conn, &config, "dig", &opts), vec!["a@x.org"]);
        // nested: each list reached is judged by its own digest setting
        add(&conn, "dig", "plain@lists.example.org", DeliveryMode::Each);
        add(&conn, "dig", "z@x.org", DeliveryMode::DigestMime);
        add(&conn, "plain", "z@x.org", DeliveryMode::DigestMime);
        assert_eq!(
            collect(&conn, &config, "dig", &opts),
            vec!["a@x.org", "m@x.org", "p@x.org", "z@x.org"]
        );
    }

    #[test]
    fn a_list_address_in_any_case_is_the_nested_list() {
        let (_d, config, conn) = setup(&["top", "dev", "ops"]);
        add(&conn, "top", "t@x.org", DeliveryMode::Each);
        add(&conn, "top", "Dev@LISTS.example.org", DeliveryMode::Each);
        add(&conn, "top", "dev@lists.example.org", DeliveryMode::Each); // same list again
        add(&conn, "dev", "d@x.org", DeliveryMode::Each);
        add(&conn, "dev", "OPS@Lists.Example.Org", DeliveryMode::Each);
        add(&conn, "ops", "o@x.org", DeliveryMode::Each);
        add(&conn, "ops", "tOp@lists.EXAMPLE.org", DeliveryMode::Each); // cycle
        let mut seen = vec![];
        let report = expand(&conn, &config, "top", &ExpandOptions::default(), |r| {
            seen.push(r.address.clone());
            true
        })
        .unwrap();
        assert_eq!(seen, vec!["d@x.org", "o@x.org", "t@x.org"]);
        assert_eq!(report.lists, vec!["top", "dev", "ops"]);
        assert_eq!(report.cycles, vec![vec!["top", "dev", "ops", "top"]]);
    }

    #[test]
    fn nested_list_lookup_uses_the_lower_case_index() {
        let (_d, _config, conn) = setup(&["dev"]);
        let plan: Vec<String> = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT list, address_key FROM members
                 WHERE lower(address_key) IN ('dev@lists.example.org')",
            )
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("members_by_lower_key")),
            "{plan:?}"
        );
    }
}
