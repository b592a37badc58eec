//! A real browser on the one-click unsubscribe page: headless Chromium,
//! driven through chromedriver's W3C WebDriver HTTP API (new session,
//! navigate, find the button, click), unsubscribes a member of the
//! in-process daemon. Without chromium and chromedriver the test says it is
//! skipped, unless `CI` is set, where it fails.
//!
//! `cargo test --test web_browser -- --ignored` also writes
//! `docs/screenshots/unsubscribe.png` (the README shows it).

mod common;
mod web_support;

use common::sink::Sink;
use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use web_support::*;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The first of `names` found as a file on PATH (or as an absolute path).
fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|n| {
        let p = PathBuf::from(n);
        if p.is_absolute() {
            return p.is_file().then_some(p);
        }
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|c| c.is_file())
    })
}

/// chromium's binary and chromedriver, or None (after saying so) when
/// either is missing; with `CI` set a missing browser fails the test.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let chromium = find(&["/usr/lib/chromium/chromium", "chromium", "chromium-browser"]);
    let driver = find(&["chromedriver", "/usr/lib/chromium/chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI is set but chromium and chromium-driver are not installed (.ci/run installs them)")
        }
        _ => {
            eprintln!(
                "SKIPPED: the headless browser test needs chromium and chromedriver \
                 (apt-get install chromium chromium-driver)"
            );
            None
        }
    }
}

/// A chromedriver child, killed when dropped.
struct Driver {
    child: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start(chromium: &PathBuf, driver: &PathBuf) -> Driver {
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        wait_listening(([127, 0, 0, 1], port).into()).await;
        let profile = tempfile::tempdir().unwrap();
        let mut d = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            _profile: profile,
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--no-first-run", "--window-size=820,560",
                         format!("--user-data-dir={}", d._profile.path().display())],
            }
        }}});
        let v = d.call("POST", "/session", caps).await;
        d.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        d
    }

    /// One WebDriver command; returns its `value`.
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let c = reqwest::Client::new();
        let req = match method {
            "GET" => c.get(&url),
            "DELETE" => c.delete(&url),
            _ => c.post(&url).json(&body),
        };
        let r = req
            .timeout(std::time::Duration::from_secs(60))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url })).await;
    }

    async fn click(&self, css: &str) {
        let el = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        let id = el[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {el}"))
            .to_string();
        self.call("POST", &format!("/element/{id}/click"), json!({}))
            .await;
    }

    async fn source(&self) -> String {
        self.call("GET", "/source", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let v = self.call("GET", "/screenshot", Value::Null).await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 png"))
            .expect("png")
    }

    async fn quit(self) {
        self.call("DELETE", "", Value::Null).await;
    }
}

#[tokio::test]
async fn a_click_in_headless_chromium_unsubscribes_the_member() {
    let Some((chromium, driver)) = browser() else {
        return;
    };
    let sink = Sink::start();
    let (b, _) = site(&sink, "posting: anyone\ndescription: Developers\n");
    let env = b.build();
    env.add_members(LIST, &["ann@example.org", "bob@example.org"]);
    let d = env.start().await;
    let url = token_url(&env, LIST, "ann@example.org");

    let browser = Driver::start(&chromium, &driver).await;
    browser.open(&url).await;
    let page = browser.source().await;
    assert!(page.contains("Unsubscribe from dev?"), "{page}");
    // loading the page changed nothing
    assert!(is_member(&env, LIST, "ann@example.org"));
    browser.click("#unsubscribe").await;
    assert!(
        wait_until(WAIT, || !is_member(&env, LIST, "ann@example.org")).await,
        "the click did not unsubscribe"
    );
    let done = browser.source().await;
    assert!(done.contains("has been unsubscribed"), "{done}");
    assert!(is_member(&env, LIST, "bob@example.org"));
    browser.quit().await;
    d.shutdown().await;
}

/// Writes docs/screenshots/unsubscribe.png: the page a member sees.
#[tokio::test]
#[ignore = "writes docs/screenshots/unsubscribe.png; run with --ignored"]
async fn screenshot_of_the_unsubscribe_page() {
    let Some((chromium, driver)) = browser() else {
        return;
    };
    let sink = Sink::start();
    let (b, _) = site(&sink, "posting: anyone\ndescription: Developers\n");
    let env = b.build();
    env.add_members(LIST, &["ann@example.org"]);
    let d = env.start().await;
    let url = token_url(&env, LIST, "ann@example.org");
    let browser = Driver::start(&chromium, &driver).await;
    browser.open(&url).await;
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("unsubscribe.png"), png).unwrap();
    browser.quit().await;
    d.shutdown().await;
}
