//! The module graph ARCHITECTURE.md draws is the one the code has: every
//! `crate::NAME` a file under `src/` names is read, grouped by top-level
//! module (a folder or a file), and checked against the rules:
//!
//! - the leaves (`store`, `mime`, `address`, `handler`, `plumbing`,
//!   `health`, `hold`, `control`, `fault`, `config`, `templates`,
//!   `routing`, `membership`, `limits`, `archive`, `dkim`, `member_token`,
//!   `dns`, `auth`, `password`, `reader`, `background`) use only leaves, and
//!   `store` and `mime` nothing of the application at all;
//! - intake (`smtp`) uses neither the pipeline nor any handler;
//! - the archive readers (`pop3`, `imap`) use only leaves;
//! - the pure posting rules use only leaves;
//! - no handler uses the pipeline that dispatches to it;
//! - there is no import loop among the top-level modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LEAVES: &[&str] = &[
    "store",
    "mime",
    "address",
    "handler",
    "plumbing",
    "health",
    "hold",
    "control",
    "fault",
    "config",
    "templates",
    "routing",
    "membership",
    "limits",
    "archive",
    "dkim",
    "member_token",
    "dns",
    "auth",
    "password",
    "reader",
    "background",
];

const HANDLERS: &[&str] = &[
    "posts",
    "robot",
    "moderation",
    "digest",
    "delivery",
    "bounce",
];

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The `crate::NAME` modules a source text names (outside comments).
fn named(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + 7..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Top-level module -> the top-level modules its files name.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let top = top.trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let uses = g.entry(top.clone()).or_default();
        for n in named(&text) {
            if n != top {
                uses.insert(n);
            }
        }
    }
    g
}

#[test]
fn the_reader_finds_crate_paths_and_skips_comments() {
    let text = "use crate::store::{self, X};\n// crate::pipeline in a comment\nlet a = crate::mime::qp::encode(b); // crate::robot\n";
    assert_eq!(
        named(text),
        BTreeSet::from(["store".to_string(), "mime".to_string()])
    );
}

#[test]
fn leaves_use_only_leaves_and_store_and_mime_nothing() {
    let g = graph();
    for leaf in LEAVES {
        let uses = g.get(*leaf).unwrap_or_else(|| panic!("no module {leaf}"));
        for u in uses {
            assert!(
                LEAVES.contains(&u.as_str()),
                "the leaf `{leaf}` uses `{u}`, which is not a leaf"
            );
        }
    }
    assert!(g["store"].is_empty(), "store uses {:?}", g["store"]);
    assert!(g["mime"].is_empty(), "mime uses {:?}", g["mime"]);
}

#[test]
fn intake_uses_neither_the_pipeline_nor_a_handler() {
    let g = graph();
    for u in &g["smtp"] {
        assert!(
            LEAVES.contains(&u.as_str()),
            "smtp uses `{u}`; intake may use only leaves"
        );
    }
}

#[test]
fn the_archive_readers_sit_beside_the_mail_path() {
    let g = graph();
    for m in ["pop3", "imap"] {
        for u in g.get(m).into_iter().flatten() {
            assert!(
                LEAVES.contains(&u.as_str()),
                "{m} uses `{u}`; the archive readers may use only leaves"
            );
        }
    }
    assert!(g.contains_key("pop3"), "no pop3 module");
}

#[test]
fn the_pure_rules_use_only_leaves() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/posts/rules.rs"))
            .unwrap();
    for u in named(&text) {
        assert!(
            LEAVES.contains(&u.as_str()),
            "posts::rules uses `{u}`; the rules are pure and use only leaves"
        );
    }
}

#[test]
fn no_handler_uses_the_pipeline_and_no_two_modules_use_each_other() {
    let g = graph();
    for h in HANDLERS {
        assert!(
            !g[*h].contains("pipeline"),
            "the handler `{h}` uses the pipeline that dispatches to it"
        );
    }
    // no cycle of any length: a depth-first walk never meets a module
    // that is still on its own path
    fn walk<'a>(
        g: &'a BTreeMap<String, BTreeSet<String>>,
        m: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = path.iter().position(|p| *p == m) {
            panic!("import loop: {} -> {m}", path[i..].join(" -> "));
        }
        path.push(m);
        for u in g.get(m).into_iter().flatten() {
            walk(g, u, path, done);
        }
        path.pop();
        done.insert(m);
    }
    let mut done = BTreeSet::new();
    for m in g.keys() {
        walk(&g, m, &mut Vec::new(), &mut done);
    }
}
