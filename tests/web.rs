//! The HTTP server over real sockets: RFC 8058 one-click unsubscribe with
//! member tokens (a POST removes the member, a GET changes nothing, a
//! tampered or expired token is a 4xx), `/healthz`, the request bounds, and
//! personalized posts: each member's copy (as the relay sink captured it)
//! carries their own working link, while a list without `personalize`
//! still sends one body to many recipients.

mod common;
mod web_support;

use common::sink::Sink;
use common::*;
use listd::health::{WorkerState, PIPELINE};
use listd::member_token::SiteKeys;
use mail_parser::MessageParser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use web_support::*;

const MEMBERS: [&str; 3] = ["ann@example.org", "bob@example.net", "Cy.Rus@Example.com"];

fn post(subject: &str) -> String {
    message(
        "poster@example.org",
        &format!("{LIST}@{DOMAIN}"),
        subject,
        "hello\r\n",
    )
}

/// The raw List-Unsubscribe and List-Unsubscribe-Post of a captured copy.
fn unsubscribe_headers(data: &[u8]) -> (String, Option<String>) {
    let m = MessageParser::default().parse(data).expect("parses");
    let raw = |name: &str| {
        m.header_raw(name)
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    (
        raw("List-Unsubscribe").expect("List-Unsubscribe"),
        raw("List-Unsubscribe-Post"),
    )
}

/// The https/http URL in a List-Unsubscribe value.
fn web_link(value: &str) -> Option<String> {
    value
        .split(',')
        .map(|p| p.trim().trim_start_matches('<').trim_end_matches('>'))
        .find(|p| p.starts_with("http"))
        .map(str::to_string)
}

fn posts_to(sink: &Sink, subject: &str) -> Vec<common::sink::Transaction> {
    sink.transactions()
        .into_iter()
        .filter(|t| {
            MessageParser::default()
                .parse(&t.data)
                .and_then(|m| m.subject().map(|s| s.contains(subject)))
                .unwrap_or(false)
        })
        .collect()
}

async fn wait_posts(sink: &Sink, subject: &str, rcpts: usize) -> Vec<common::sink::Transaction> {
    let ok = wait_until(WAIT, || {
        posts_to(sink, subject)
            .iter()
            .map(|t| t.rcpts.len())
            .sum::<usize>()
            >= rcpts
    })
    .await;
    assert!(ok, "{rcpts} copies of `{subject}` never reached the relay");
    posts_to(sink, subject)
}

#[tokio::test]
async fn a_personalized_post_gives_each_member_a_working_link_and_one_click_removes_them() {
    let sink = Sink::start();
    let (b, port) = site(
        &sink,
        "posting: anyone\npersonalize: true\nowners: [owner@example.org]\n",
    );
    let env = b.build();
    env.add_members(LIST, &MEMBERS);
    let d = env.start().await;
    assert_eq!(d.web_addr().map(|a| a.port()), Some(port));
    send(
        d.smtp_addr(),
        "poster@example.org",
        &[&format!("{LIST}@{DOMAIN}")],
        &post("first"),
    )
    .await
    .expect(250);
    let copies = wait_posts(&sink, "first", 3).await;
    assert_eq!(copies.len(), 3, "one transaction per member");
    let mut links = Vec::new();
    for t in &copies {
        assert_eq!(t.rcpts.len(), 1);
        let (value, post) = unsubscribe_headers(&t.data);
        assert_eq!(
            post.as_deref(),
            Some("List-Unsubscribe=One-Click"),
            "{value}"
        );
        assert!(
            value.contains(&format!("<mailto:{LIST}-leave@{DOMAIN}>")),
            "{value}"
        );
        let link = web_link(&value).expect("a web link");
        assert!(
            link.starts_with(&format!("http://127.0.0.1:{port}/u/")),
            "{link}"
        );
        // the link names this member: its page shows their address
        let (status, page) = get(&link).await;
        assert_eq!(status, 200, "{page}");
        assert!(
            page.contains(&format!("Unsubscribe {}", t.rcpts[0])),
            "{page}"
        );
        links.push((t.rcpts[0].clone(), link));
    }
    let distinct: std::collections::BTreeSet<&String> = links.iter().map(|(_, l)| l).collect();
    assert_eq!(distinct.len(), 3, "every member has their own link");
    // the archived body carries no member's token
    let stored: Vec<Vec<u8>> = env
        .store()
        .prepare("SELECT bytes FROM messages WHERE direction = 'out'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(stored
        .iter()
        .all(|b| memchr::memmem::find(b, b"/u/").is_none()));

    // one click for bob: 200, gone from the store, no cookie, no redirect
    let (bob, bob_link) = links
        .iter()
        .find(|(r, _)| r.starts_with("bob"))
        .unwrap()
        .clone();
    let (status, page, headers) = one_click(&bob_link).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("has been unsubscribed"), "{page}");
    assert!(headers.get("set-cookie").is_none());
    assert!(!is_member(&env, LIST, &bob));
    assert!(is_member(&env, LIST, MEMBERS[0]));
    // the robot's goodbye (to bob) and the owners' notice went out
    let subject_of = |t: &common::sink::Transaction| {
        MessageParser::default()
            .parse(&t.data)
            .and_then(|m| m.subject().map(str::to_string))
            .unwrap_or_default()
    };
    let told = wait_until(WAIT, || {
        let t = sink.transactions();
        t.iter()
            .any(|t| t.rcpts == [bob.clone()] && !subject_of(t).contains("first"))
            && t.iter()
                .any(|t| t.rcpts == ["owner@example.org"] && subject_of(t).contains(&bob))
    })
    .await;
    assert!(
        told,
        "{:#?}",
        sink.transactions()
            .iter()
            .map(|t| (&t.rcpts, subject_of(t)))
            .collect::<Vec<_>>()
    );
    // the same link again: the member is gone
    let (status, _, _) = one_click(&bob_link).await;
    assert_eq!(status, 404);

    // the next post reaches the other two only
    send(
        d.smtp_addr(),
        "poster@example.org",
        &[&format!("{LIST}@{DOMAIN}")],
        &post("second"),
    )
    .await
    .expect(250);
    let second = wait_posts(&sink, "second", 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let rcpts: Vec<String> = posts_to(&sink, "second")
        .iter()
        .flat_map(|t| t.rcpts.clone())
        .collect();
    assert_eq!(rcpts.len(), 2, "{rcpts:?} {second:?}");
    assert!(!rcpts.contains(&bob));
    d.shutdown().await;
}

#[tokio::test]
async fn a_list_without_personalize_still_sends_one_body_to_many() {
    let sink = Sink::start();
    let (b, _) = site(&sink, "posting: anyone\n");
    let env = b.build();
    env.add_members(LIST, &MEMBERS);
    let d = env.start().await;
    send(
        d.smtp_addr(),
        "poster@example.org",
        &[&format!("{LIST}@{DOMAIN}")],
        &post("batched"),
    )
    .await
    .expect(250);
    let copies = wait_posts(&sink, "batched", 3).await;
    let domains: std::collections::BTreeSet<&str> = MEMBERS
        .iter()
        .map(|m| m.rsplit('@').next().unwrap())
        .collect();
    // one transaction per domain, as before; no member links
    assert_eq!(copies.len(), domains.len());
    for t in &copies {
        let (value, post) = unsubscribe_headers(&t.data);
        assert_eq!(value, format!("<mailto:{LIST}-leave@{DOMAIN}>"));
        assert_eq!(post, None);
    }
    d.shutdown().await;
}

#[tokio::test]
async fn a_get_changes_nothing_and_bad_tokens_and_bodies_are_refused() {
    let sink = Sink::start();
    let (b, port) = site(&sink, "posting: anyone\npersonalize: true\n");
    let env = b.build();
    env.add_members(LIST, &MEMBERS);
    let d = env.start().await;
    let url = token_url(&env, LIST, MEMBERS[0]);
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{port}/u/")),
        "{url}"
    );

    // GET (a link scanner) shows the page with its one button, twice, and
    // changes nothing
    for _ in 0..2 {
        let (status, page) = get(&url).await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("<form method=\"post\">"), "{page}");
        assert!(
            page.contains("name=\"List-Unsubscribe\" value=\"One-Click\""),
            "{page}"
        );
    }
    assert!(is_member(&env, LIST, MEMBERS[0]));

    // a tampered token: one character changed
    let token = url.rsplit('/').next().unwrap();
    let at = token.len() / 2;
    let c = if &token[at..at + 1] == "A" { "B" } else { "A" };
    let tampered = format!(
        "http://127.0.0.1:{port}/u/{}{c}{}",
        &token[..at],
        &token[at + 1..]
    );
    let (status, page, _) = one_click(&tampered).await;
    assert!((400..500).contains(&status), "{status} {page}");
    assert_eq!(get(&tampered).await.0, status);
    // a token for another address cannot be made from this one
    for junk in ["x", "%00", "..%2f..%2fetc", &"A".repeat(5000), "%C3%A9"] {
        let (status, _, _) = one_click(&format!("http://127.0.0.1:{port}/u/{junk}")).await;
        assert!((400..500).contains(&status), "{junk}: {status}");
    }
    assert!(is_member(&env, LIST, MEMBERS[0]));

    // a POST without the one-click body does nothing
    let r = client().post(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = client()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=Maybe")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // nor does a body over the bound
    let r = client()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "List-Unsubscribe=One-Click&pad={}",
            "x".repeat(listd::web::MAX_BODY)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    assert!(is_member(&env, LIST, MEMBERS[0]));
    // an unknown path
    assert_eq!(get(&format!("http://127.0.0.1:{port}/nope")).await.0, 404);

    // multipart/form-data is one-click too
    let body = "--b0und\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--b0und--\r\n";
    let r = client()
        .post(&url)
        .header("content-type", "multipart/form-data; boundary=b0und")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(!is_member(&env, LIST, MEMBERS[0]));
    // now the member is gone: GET and POST say so (404), never 5xx
    assert_eq!(get(&url).await.0, 404);
    assert_eq!(one_click(&url).await.0, 404);
    d.shutdown().await;
}

#[tokio::test]
async fn healthz_is_200_while_every_worker_runs_and_503_when_one_is_down() {
    let sink = Sink::start();
    let (b, port) = site(&sink, "posting: anyone\n");
    let env = b.build();
    let d = env.start().await;
    let url = format!("http://127.0.0.1:{port}/healthz");
    assert!(
        wait_until(WAIT, || d.health.report().len() >= 5).await,
        "{:?}",
        d.health.report()
    );
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["status"], "ok");
    for w in ["pipeline", "delivery", "digest", "moderation", "web"] {
        assert_eq!(v["workers"][w]["state"], "running", "{w}: {v}");
    }
    d.health.set(
        PIPELINE,
        WorkerState::Restarting {
            error: "panicked: test".into(),
            restarts: 2,
            since: 10,
            retry_at: 12,
        },
    );
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["status"], "unavailable");
    assert_eq!(v["workers"]["pipeline"]["state"], "restarting");
    assert_eq!(v["workers"]["pipeline"]["error"], "panicked: test");
    assert_eq!(v["workers"]["pipeline"]["restarts"], 2);
    d.health.set(PIPELINE, WorkerState::Running);
    assert_eq!(
        client().get(&url).send().await.unwrap().status().as_u16(),
        200
    );
    d.shutdown().await;
    // stopped with the daemon
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
}

#[tokio::test]
async fn a_slow_request_head_is_cut_off() {
    let sink = Sink::start();
    let (b, port) = site(&sink, "posting: anyone\n");
    let env = b.set("web", "header_timeout_secs", "1").build();
    let d = env.start().await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was never closed");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    // a prompt client is served
    assert_eq!(
        client()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    d.shutdown().await;
}

#[tokio::test]
async fn an_old_key_works_for_the_grace_period_then_is_refused_by_listd_serve() {
    let sink = Sink::start();
    let (b, port) = site(&sink, "posting: anyone\n");
    let env = b.build();
    env.add_members(LIST, &MEMBERS);
    let old_ann = token_url(&env, LIST, MEMBERS[0]);
    let old_bob = token_url(&env, LIST, MEMBERS[1]);
    let (code, out, err) = run_cli(&env, &["web", "rotate-secret"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("new site key 2") && out.contains("30 more day"),
        "{out}"
    );
    let new_cy = token_url(&env, LIST, MEMBERS[2]);
    let _serve = spawn_serve(&env);
    wait_listening(([127, 0, 0, 1], port).into()).await;

    // within the grace period the old key's link works
    let (status, page, _) = one_click(&old_ann).await;
    assert_eq!(status, 200, "{page}");
    assert!(!is_member(&env, LIST, MEMBERS[0]));

    // back-date the rotation past the grace period (30 days)
    let data = env.config().data_dir;
    let mut keys = SiteKeys::load(&data).unwrap().unwrap();
    keys.keys_mut()[1].created -= 31 * 86_400;
    keys.save(&data).unwrap();
    let (status, page, _) = one_click(&old_bob).await;
    assert_eq!(status, 410, "{page}");
    assert!(page.contains("expired"), "{page}");
    assert!(is_member(&env, LIST, MEMBERS[1]));
    // the current key's links still work
    let (status, _, _) = one_click(&new_cy).await;
    assert_eq!(status, 200);
    assert!(!is_member(&env, LIST, MEMBERS[2]));
}

#[test]
fn the_cli_explains_itself_and_refuses_without_a_public_url() {
    let env = TestEnv::builder().list(LIST, "").build();
    let (code, out, _) = run_cli(&env, &["web", "--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("token") && out.contains("rotate-secret"),
        "{out}"
    );
    let (code, out, _) = run_cli(&env, &["web", "token", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("unsubscribe URL"), "{out}");
    let (code, _, err) = run_cli(&env, &["web", "token", LIST, "a@example.org"]);
    assert_eq!(code, 1);
    assert!(err.contains("web.public_url is not set"), "{err}");
    let env = TestEnv::builder()
        .set("web", "public_url", "\"https://lists.example.org/\"")
        .list(LIST, "")
        .build();
    let (code, _, err) = run_cli(&env, &["web", "token", "nope", "a@example.org"]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = run_cli(&env, &["web", "token", LIST, "not an address"]);
    assert_eq!(code, 1, "{err}");
    let (code, out, err) = run_cli(&env, &["web", "token", LIST, "a@example.org"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("https://lists.example.org/u/"), "{out}");
    // the key file is private
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(SiteKeys::path(&env.config().data_dir))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn listd_check_warns_of_a_loopback_public_url_and_a_personalize_without_one() {
    let env = TestEnv::builder()
        .set("web", "public_url", "\"http://127.0.0.1:8080\"")
        .list(LIST, "")
        .build();
    let (code, _, err) = run_cli(&env, &["check"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning:") && err.contains("plain http on loopback"),
        "{err}"
    );
    let env = TestEnv::builder().list(LIST, "personalize: true\n").build();
    let (code, _, err) = run_cli(&env, &["check"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("`personalize: true` does nothing until web.public_url is set"),
        "{err}"
    );
    let env = TestEnv::builder()
        .set("web", "public_url", "\"http://lists.example.org\"")
        .list(LIST, "")
        .build();
    let (code, _, err) = run_cli(&env, &["check"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("listd.yaml:") && err.contains("must be an https:// URL"),
        "{err}"
    );
}

#[test]
fn listd_check_warns_when_the_web_templates_are_missing() {
    let env = TestEnv::builder()
        .global("templates_dir", "no-templates")
        .set("web", "listen", "\"127.0.0.1:8080\"")
        .list(LIST, "")
        .build();
    let (code, _, err) = run_cli(&env, &["check"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("web page template `web-page` is missing"),
        "{err}"
    );
    assert!(
        err.contains("login mail template `web-login` is missing; web logins cannot be mailed"),
        "{err}"
    );
    assert!(
        err.contains("archive page template `web-archive` is missing"),
        "{err}"
    );
    // with the shipped templates, neither is said
    let env = TestEnv::builder()
        .set("web", "listen", "\"127.0.0.1:8080\"")
        .list(LIST, "")
        .build();
    let (_, _, err) = run_cli(&env, &["check"]);
    assert!(!err.contains("template `web-"), "{err}");
}
