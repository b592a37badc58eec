//! A real browser on the one-click unsubscribe page: headless Chromium,
//! driven through chromedriver's W3C WebDriver HTTP API (new session,
//! navigate, find the button, click), unsubscribes a member of the
//! in-process daemon. Without chromium and chromedriver the test says it is
//! skipped, unless `CI` is set, where it fails.
//!
//! A moderator logs in the same way: types the address into `/login`,
//! opens the link the capturing relay sink received, clicks "Log in",
//! approves a held post on `/moderate`, and the post reaches the sink.
//!
//! An owner adds a member on the members page and changes a setting on the
//! settings page; a visitor subscribes on `/` and confirms by replying to
//! the confirmation mail over SMTP, as a mail client would.
//!
//! `cargo test --test web_browser -- --ignored` also writes
//! `docs/screenshots/unsubscribe.png`, `moderation.png`, `lists.png`,
//! `members.png`, `settings.png` and `requests.png` (the README shows them).

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
        let id = self.find(css).await;
        self.call("POST", &format!("/element/{id}/click"), json!({}))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let el = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        el[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {el}"))
            .to_string()
    }

    /// Empties the field `css`.
    async fn clear(&self, css: &str) {
        let id = self.find(css).await;
        self.call("POST", &format!("/element/{id}/clear"), json!({}))
            .await;
    }

    /// Types `text` into the field `css`.
    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    async fn source(&self) -> String {
        self.call("GET", "/source", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page source once it contains `text` (a click's navigation may
    /// still be under way when the click returns).
    async fn wait_for(&self, text: &str) -> String {
        let start = std::time::Instant::now();
        loop {
            let page = self.source().await;
            if page.contains(text) || start.elapsed() > WAIT {
                return page;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
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

const MODERATOR: &str = "mod@example.org";

/// A site whose `dev` list holds posts from non-members for MODERATOR,
/// with ann as its member.
async fn moderated_site(sink: &Sink) -> (TestEnv, listd::daemon::DaemonHandle, String) {
    let (b, port) = site(
        sink,
        &format!("posting: members\ndescription: Developers\nmoderators: [{MODERATOR}]\n"),
    );
    let env = b
        .list(
            "announce",
            "posting: announce\ndescription: News, now and then\n",
        )
        .build();
    env.add_members(LIST, &["ann@example.org"]);
    let d = env.start().await;
    (env, d, format!("http://127.0.0.1:{port}"))
}

/// Logs MODERATOR in through the browser: the form, the mailed link, the button.
async fn browser_login(browser: &Driver, sink: &Sink, base: &str) {
    browser_login_as(browser, sink, base, MODERATOR).await
}

/// Logs `addr` (a moderator or owner) in through the browser.
async fn browser_login_as(browser: &Driver, sink: &Sink, base: &str, addr: &str) {
    browser.open(&format!("{base}/login")).await;
    browser.type_into("#address", addr).await;
    browser.click("#send-link").await;
    let link = login_link(sink, addr, 1).await;
    browser.open(&link).await;
    browser.click("#login").await;
    browser.wait_for("Moderation queue").await;
}

#[tokio::test]
async fn a_moderator_logs_in_by_emailed_link_in_chromium_and_approves_a_held_post() {
    let Some((chromium, driver)) = browser() else {
        return;
    };
    let sink = Sink::start();
    let (env, d, base) = moderated_site(&sink).await;
    let id = hold(
        &env,
        &d,
        "guest@example.net",
        "from a guest",
        "Hello all\r\n",
    )
    .await;

    let browser = Driver::start(&chromium, &driver).await;
    browser_login(&browser, &sink, &base).await;
    let page = browser.source().await;
    assert!(page.contains("Moderation queue"), "{page}");
    assert!(page.contains("from a guest"), "{page}");
    browser.click(&format!("#approve-{id}")).await;
    let copies = wait_mail(&sink, "ann@example.org", "from a guest", 1).await;
    assert!(text_of(&copies[0]).contains("Hello all"));
    let done = browser.wait_for("No posts are waiting").await;
    assert!(done.contains("No posts are waiting"), "{done}");
    let acted_by: String = env
        .store()
        .query_row("SELECT acted_by FROM held WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(acted_by, format!("web:{MODERATOR}"));
    browser.quit().await;
    d.shutdown().await;
}

/// Writes docs/screenshots/moderation.png and lists.png.
#[tokio::test]
#[ignore = "writes docs/screenshots/moderation.png and lists.png; run with --ignored"]
async fn screenshots_of_the_moderation_and_lists_pages() {
    let Some((chromium, driver)) = browser() else {
        return;
    };
    let sink = Sink::start();
    let (env, d, base) = moderated_site(&sink).await;
    hold(
        &env,
        &d,
        "guest@example.net",
        "Meetup next week?",
        "Is anyone going to the meetup on Thursday?\r\nI could bring the projector.\r\n",
    )
    .await;
    hold(
        &env,
        &d,
        "cheap@example.com",
        "Best prices on everything",
        "Click here for amazing deals.\r\n",
    )
    .await;
    let browser = Driver::start(&chromium, &driver).await;
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&out).unwrap();
    browser_login(&browser, &sink, &base).await;
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    std::fs::write(out.join("moderation.png"), png).unwrap();
    browser.open(&format!("{base}/")).await;
    browser.wait_for("Mailing lists at").await;
    let png = browser.screenshot().await;
    std::fs::write(out.join("lists.png"), png).unwrap();
    browser.quit().await;
    d.shutdown().await;
}

const OWNER: &str = "owner@example.org";

/// A site whose `dev` list (advertised, double opt-in, a comment in its
/// file) is owned by OWNER, with ann as its member and a waiting
/// subscription request on `club` (approval needed), also OWNER's.
async fn owned_site(sink: &Sink) -> (TestEnv, listd::daemon::DaemonHandle, String) {
    let (b, port) = site(
        sink,
        &format!("# the developers\ndescription: Developers\nowners: [{OWNER}]\nsubject_prefix: \"[dev]\"\n"),
    );
    let env = b
        .list(
            "club",
            &format!("description: Members only\nowners: [{OWNER}]\nsubscription: approve\n"),
        )
        .build();
    env.add_members(
        LIST,
        &["ann@example.org", "bob@example.org", "cy@example.org"],
    );
    let d = env.start().await;
    (env, d, format!("http://127.0.0.1:{port}"))
}

#[tokio::test]
async fn an_owner_adds_a_member_and_changes_a_setting_in_chromium() {
    let Some((chromium, driver)) = browser() else {
        return;
    };
    let sink = Sink::start();
    let (env, d, base) = owned_site(&sink).await;
    let browser = Driver::start(&chromium, &driver).await;
    browser_login_as(&browser, &sink, &base, OWNER).await;
    browser.open(&format!("{base}/")).await;
    browser.click("#admin-dev").await;
    browser.wait_for("dev: administration").await;
    browser.click("#members-link").await;
    browser.wait_for("dev: members").await;
    browser
        .type_into("#addresses", "Dee Example <dee@example.org>")
        .await;
    browser.click("#add").await;
    let page = browser.wait_for("1 added").await;
    assert!(page.contains("1 added, 0 already members"), "{page}");
    assert!(page.contains("dee@example.org"), "{page}");
    assert!(is_member(&env, LIST, "dee@example.org"));

    browser.open(&format!("{base}/lists/{LIST}/settings")).await;
    browser.wait_for("dev: settings").await;
    browser.clear("input[name='subject_prefix']").await;
    browser
        .type_into("input[name='subject_prefix']", "[developers]")
        .await;
    browser.click("#save").await;
    let page = browser.wait_for("Saved:").await;
    assert!(page.contains("Saved: subject_prefix."), "{page}");
    let file = std::fs::read_to_string(env.path().join("lists/dev.yaml")).unwrap();
    assert!(
        file.contains("[developers]") && file.contains("# the developers\n"),
        "{file}"
    );
    assert_eq!(
        d.config().list(LIST).unwrap().subject_prefix,
        "[developers]"
    );
    browser.quit().await;
    d.shutdown().await;
}

#[tokio::test]
async fn a_visitor_subscribes_on_the_lists_page_and_confirms_by_replying() {
    let Some((chromium, driver)) = browser() else {
        return;
    };
    let sink = Sink::start();
    let (env, d, base) = owned_site(&sink).await;
    let visitor = "visitor@example.net";
    let browser = Driver::start(&chromium, &driver).await;
    browser.open(&format!("{base}/")).await;
    browser.type_into("#sub-dev", visitor).await;
    browser.click("#subscribe-dev").await;
    let page = browser.wait_for("Check your mail").await;
    assert!(page.contains("Check your mail"), "{page}");
    assert!(!is_member(&env, LIST, visitor));

    // the confirmation arrives; the visitor replies to it
    let mails = wait_mail(&sink, visitor, "confirm ", 1).await;
    let parsed = mail_parser::MessageParser::default()
        .parse(&mails[0].data)
        .unwrap();
    let subject = parsed.subject().unwrap().to_string();
    let reply_to = parsed
        .reply_to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .expect("a Reply-To")
        .to_string();
    assert!(reply_to.contains("confirm+"), "{reply_to}");
    let reply = message(
        visitor,
        &reply_to,
        &format!("Re: {subject}"),
        "> To confirm\r\n",
    );
    send(d.smtp_addr(), visitor, &[&reply_to], &reply)
        .await
        .expect(250);
    assert!(
        wait_until(WAIT, || is_member(&env, LIST, visitor)).await,
        "the reply did not confirm"
    );
    wait_mail(&sink, visitor, "Welcome to the dev mailing list", 1).await;
    browser.quit().await;
    d.shutdown().await;
}

/// Writes docs/screenshots/members.png, settings.png and requests.png.
#[tokio::test]
#[ignore = "writes docs/screenshots/members.png, settings.png and requests.png; run with --ignored"]
async fn screenshots_of_the_owner_pages() {
    let Some((chromium, driver)) = browser() else {
        return;
    };
    let sink = Sink::start();
    let (env, d, base) = owned_site(&sink).await;
    let to = format!("club-request@{DOMAIN}");
    for who in ["newcomer@example.net", "friend@example.com"] {
        send(
            d.smtp_addr(),
            who,
            &[&to],
            &message(who, &to, "subscribe", "subscribe\r\n"),
        )
        .await
        .expect(250);
    }
    assert!(wait_until(WAIT, || env.count("sub_requests", "state = 'pending'") == 2).await);
    let browser = Driver::start(&chromium, &driver).await;
    browser_login_as(&browser, &sink, &base, OWNER).await;
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&out).unwrap();
    for (path, wait, file) in [
        (
            format!("/lists/{LIST}/members"),
            "dev: members",
            "members.png",
        ),
        (
            format!("/lists/{LIST}/settings"),
            "dev: settings",
            "settings.png",
        ),
        (
            "/lists/club/requests".to_string(),
            "club: subscription requests",
            "requests.png",
        ),
    ] {
        browser.open(&format!("{base}{path}")).await;
        browser.wait_for(wait).await;
        let png = browser.screenshot().await;
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        std::fs::write(out.join(file), png).unwrap();
    }
    browser.quit().await;
    d.shutdown().await;
}

/// A public archive `pub` with a thread (a root and its reply) and an HTML
/// post; (env, daemon, base URL, the root's id, the reply's id, the HTML
/// post's id).
async fn archive_site(sink: &Sink) -> (TestEnv, listd::daemon::DaemonHandle, String, [i64; 3]) {
    let (b, port) = site(sink, "description: Developers\n");
    let env = b
        .list("pub", "description: Open to all\narchive_access: anyone\n")
        .build();
    env.add_members("pub", &["ann@example.org", "bob@example.org"]);
    let d = env.start().await;
    let post = |from: &str, id: &str, date: &str, subject: &str, extra: &str, body: &str| {
        format!("From: {from}\r\nTo: pub@{DOMAIN}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\nDate: {date}\r\n{extra}\r\n{body}\r\n")
    };
    let root = archived_post(
        &env,
        &d,
        "pub",
        "ann@example.org",
        &post(
            "Ann <ann@example.org>",
            "r@t",
            "Mon, 02 Nov 2026 09:00:00 +0000",
            "Release plan for 2.0",
            "",
            "The zebra release is on Friday.\r\nPlease test the betas.",
        ),
    )
    .await;
    let reply = archived_post(
        &env,
        &d,
        "pub",
        "bob@example.org",
        &post(
            "Bob <bob@example.org>",
            "a@t",
            "Mon, 02 Nov 2026 10:30:00 +0000",
            "Re: Release plan for 2.0",
            "In-Reply-To: <r@t>\r\n",
            "> The zebra release is on Friday.\r\n\r\nSounds good, I will test on ARM.",
        ),
    )
    .await;
    let html = post("Ann <ann@example.org>", "h@t", "Mon, 02 Nov 2026 12:00:00 +0000", "Meeting notes",
        "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n",
        "<h3>Notes</h3><ul><li>Ship <b>2.0</b> on Friday</li><li>Docs: <a href=\"https://example.org/docs\">example.org/docs</a></li></ul><img src=\"http://tracker.example/p.gif\"><script>alert(1)</script>");
    let html = archived_post(&env, &d, "pub", "ann@example.org", &html).await;
    (
        env,
        d,
        format!("http://127.0.0.1:{port}"),
        [root, reply, html],
    )
}

/// The page-relative position of the element `css`: (x, y).
async fn rect(browser: &Driver, css: &str) -> (f64, f64) {
    let id = browser.find(css).await;
    let r = browser
        .call("GET", &format!("/element/{id}/rect"), Value::Null)
        .await;
    (r["x"].as_f64().unwrap(), r["y"].as_f64().unwrap())
}

#[tokio::test]
async fn the_archive_shows_a_thread_and_finds_a_word_in_chromium() {
    let Some((chromium, driver)) = browser() else {
        return;
    };
    let sink = Sink::start();
    let (_env, d, base, [root, reply, html]) = archive_site(&sink).await;
    let browser = Driver::start(&chromium, &driver).await;
    browser.open(&format!("{base}/archive/pub")).await;
    browser.click("#months a").await;
    let page = browser.wait_for(&format!("m-{reply}")).await;
    assert!(page.contains("Re: Release plan for 2.0"), "{page}");
    // the reply sits below its parent, indented
    let (rx, ry) = rect(&browser, &format!("#m-{root}")).await;
    let (x, y) = rect(&browser, &format!("#m-{reply}")).await;
    assert!(x > rx && y > ry, "root at {rx},{ry}; reply at {x},{y}");
    let (hx, _) = rect(&browser, &format!("#m-{html}")).await;
    assert_eq!(hx, rx, "a new thread starts at the left");
    // search a word; find the post
    browser.open(&format!("{base}/archive/pub/search")).await;
    browser.type_into("#q", "ARM").await;
    browser.click("#search").await;
    let page = browser.wait_for("id=\"hit-").await;
    assert!(page.contains(&format!("id=\"hit-{reply}\"")), "{page}");
    assert!(!page.contains(&format!("id=\"hit-{root}\"")), "{page}");
    browser.click(&format!("#hit-{reply} a")).await;
    let page = browser.wait_for("Sounds good").await;
    assert!(page.contains("I will test on ARM."), "{page}");
    browser.quit().await;
    d.shutdown().await;
}

/// Writes docs/screenshots/archive-thread.png, archive-message.png and
/// archive-search.png.
#[tokio::test]
#[ignore = "writes docs/screenshots/archive-*.png; run with --ignored"]
async fn screenshots_of_the_archive_pages() {
    let Some((chromium, driver)) = browser() else {
        return;
    };
    let sink = Sink::start();
    let (env, d, base, [_, _, html]) = archive_site(&sink).await;
    let month: String = env
        .store()
        .query_row("SELECT mbox_path FROM archive_index LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    let month = month
        .trim_start_matches("pub/")
        .trim_end_matches(".mbox")
        .to_string();
    let browser = Driver::start(&chromium, &driver).await;
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&out).unwrap();
    for (url, wait, file) in [
        (
            format!("{base}/archive/pub/{month}"),
            "Threads",
            "archive-thread.png",
        ),
        (
            format!("{base}/archive/pub/msg/{html}"),
            "Ship",
            "archive-message.png",
        ),
        (
            format!("{base}/archive/pub/search?q=zebra"),
            "hit-",
            "archive-search.png",
        ),
    ] {
        browser.open(&url).await;
        browser.wait_for(wait).await;
        let png = browser.screenshot().await;
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        std::fs::write(out.join(file), png).unwrap();
    }
    browser.quit().await;
    d.shutdown().await;
}
