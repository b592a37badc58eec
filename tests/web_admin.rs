//! The web admin and the REST API over real HTTP on 127.0.0.1, against the
//! in-process daemon with a real SQLite store and the capturing relay sink:
//! login by emailed link (the link read from the sink with mail-parser),
//! no account enumeration, used and expired links, rate limits (429),
//! CSRF (403), 401/403 on pages and API, moderation through the page
//! (single and bulk) and the API (first action wins: 409), the lists page
//! and its subscribe form (double opt-in), API tokens made and revoked by
//! the real binary, and the OpenAPI document.

mod common;
mod web_support;

use common::sink::Sink;
use common::*;
use listd::daemon::DaemonHandle;
use serde_json::{json, Value};
use web_support::*;

const MODERATOR: &str = "mod@example.org";
const MEMBER: &str = "ann@example.org";
const STRANGER: &str = "stranger@example.net";

/// `dev` (members post; held posts from others; moderated by MODERATOR,
/// advertised) and `ops` (not advertised, its own moderator), and MEMBER
/// on dev. `web` adds `web:` keys.
async fn admin_site(sink: &Sink, web: &[(&str, &str)]) -> (TestEnv, DaemonHandle, String) {
    let (mut b, port) = site(
        sink,
        &format!("posting: members\ndescription: Developers <&> friends\nowners: [owner@example.org]\nmoderators: [{MODERATOR}]\n"),
    );
    b = b.set("web", "admins", "[\"admin@example.org\"]").list(
        "ops",
        "posting: members\nadvertised: false\nmoderators: [opsmod@example.org]\n",
    );
    for (k, v) in web {
        b = b.set("web", k, v);
    }
    let env = b.build();
    env.add_members(LIST, &[MEMBER]);
    let d = env.start().await;
    (env, d, format!("http://127.0.0.1:{port}"))
}

fn state_of(env: &TestEnv, id: i64) -> (String, Option<String>) {
    env.store()
        .query_row(
            "SELECT state, acted_by FROM held WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

#[tokio::test]
async fn a_moderator_logs_in_by_emailed_link_and_approves_a_held_post() {
    let sink = Sink::start();
    let (env, d, base) = admin_site(&sink, &[]).await;
    let id = hold(
        &env,
        &d,
        STRANGER,
        "needs a look",
        "<script>alert(1)</script> & more\r\n",
    )
    .await;

    // anonymous: the queue needs a login
    let (status, page) = get(&format!("{base}/moderate")).await;
    assert_eq!(status, 401, "{page}");
    assert!(page.contains("action=\"/login\""), "{page}");

    let (status, page, _) =
        post_form(&format!("{base}/login"), None, &[("address", MODERATOR)]).await;
    assert_eq!(status, 200);
    assert!(page.contains("Check your mail"), "{page}");
    let link = login_link(&sink, MODERATOR, 1).await;
    assert!(link.starts_with(&format!("{base}/login/")), "{link}");
    // GET only shows the button: the link still works after it
    let (status, page) = get(&link).await;
    assert_eq!(status, 200);
    assert!(page.contains(&format!("Log in as {MODERATOR}")), "{page}");
    let (status, _, headers) = post_form(&link, None, &[]).await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/moderate");
    let set = headers["set-cookie"].to_str().unwrap().to_string();
    for attr in [
        "listd_session=",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=",
    ] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http on loopback: {set}");
    let cookie = set.split(';').next().unwrap().to_string();
    // the raw session id is not in the store
    let secret = cookie.trim_start_matches("listd_session=");
    assert_eq!(env.count("web_sessions", "1"), 1);
    assert_eq!(
        env.count("web_sessions", &format!("hex(hash) = upper('{secret}')")),
        0
    );
    // used: the link is spent
    let (status, _, headers) = post_form(&link, None, &[]).await;
    assert_eq!(status, 410);
    assert!(headers.get("set-cookie").is_none());

    // the queue: subject, sender, reason, an escaped text preview
    let (status, page) = get_with(&format!("{base}/moderate"), &cookie).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("needs a look") && page.contains(STRANGER),
        "{page}"
    );
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"),
        "{page}"
    );
    assert!(!page.contains("<script>"), "{page}");
    let csrf = csrf_of(&page);
    let approve = format!("approve:{id}");
    let (status, page, _) = post_form(
        &format!("{base}/moderate"),
        Some(&cookie),
        &[("csrf", &csrf), ("do", &approve)],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("approved: held message"), "{page}");
    assert_eq!(
        state_of(&env, id),
        ("approved".into(), Some(format!("web:{MODERATOR}")))
    );
    // the post reaches the member
    let copies = wait_mail(&sink, MEMBER, "needs a look", 1).await;
    assert!(text_of(&copies[0]).contains("alert(1)"));
    // again: the first action won
    let (status, page, _) = post_form(
        &format!("{base}/moderate"),
        Some(&cookie),
        &[("csrf", &csrf), ("do", &format!("discard:{id}"))],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("already approved by web:{MODERATOR}")),
        "{page}"
    );
    assert_eq!(state_of(&env, id).0, "approved");

    // log out: the cookie no longer works
    let (status, _, headers) =
        post_form(&format!("{base}/logout"), Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(status, 200);
    assert!(headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(get_with(&format!("{base}/moderate"), &cookie).await.0, 401);
    d.shutdown().await;
}

#[tokio::test]
async fn login_answers_alike_for_anyone_and_mails_only_those_with_a_role() {
    let sink = Sink::start();
    let (env, d, base) = admin_site(&sink, &[]).await;
    let mut pages = Vec::new();
    for addr in [STRANGER, MODERATOR, MEMBER, "admin@Example.ORG"] {
        let (status, page, headers) =
            post_form(&format!("{base}/login"), None, &[("address", addr)]).await;
        assert_eq!(status, 200, "{addr}");
        assert!(headers.get("set-cookie").is_none());
        pages.push(page);
    }
    assert!(pages.windows(2).all(|w| w[0] == w[1]), "the answers differ");
    wait_mail(&sink, MODERATOR, "login link", 1).await;
    wait_mail(&sink, MEMBER, "login link", 1).await;
    wait_mail(&sink, "admin@Example.ORG", "login link", 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(mails_to(&sink, STRANGER, "").is_empty());
    assert_eq!(env.count("web_login_tokens", "1"), 3);
    // not an address: said so
    let (status, page, _) =
        post_form(&format!("{base}/login"), None, &[("address", "nobody")]).await;
    assert_eq!(status, 400);
    assert!(page.contains("not an email address"), "{page}");
    d.shutdown().await;
}

#[tokio::test]
async fn unknown_and_expired_login_links_are_refused() {
    let sink = Sink::start();
    let (env, d, base) = admin_site(&sink, &[]).await;
    let (status, _) = get(&format!("{base}/login/{}", "ab".repeat(32))).await;
    assert_eq!(status, 404);
    let (status, _, _) = post_form(&format!("{base}/login/nope"), None, &[]).await;
    assert_eq!(status, 404);
    let old = listd::web::credentials::issue_login(
        &env.store(),
        MODERATOR,
        listd::store::now() - listd::web::credentials::LOGIN_LINK_SECS - 1,
    )
    .unwrap();
    let (status, page) = get(&format!("{base}/login/{old}")).await;
    assert_eq!(status, 410, "{page}");
    let (status, _, headers) = post_form(&format!("{base}/login/{old}"), None, &[]).await;
    assert_eq!(status, 410);
    assert!(headers.get("set-cookie").is_none());
    assert_eq!(env.count("web_sessions", "1"), 0);
    // a made-up cookie is no session
    assert_eq!(
        get_with(&format!("{base}/moderate"), "listd_session=00")
            .await
            .0,
        401
    );
    d.shutdown().await;
}

#[tokio::test]
async fn a_login_link_posted_from_another_site_is_refused_and_stays_usable() {
    let sink = Sink::start();
    let (env, d, base) = admin_site(&sink, &[]).await;
    let (status, _, _) = post_form(&format!("{base}/login"), None, &[("address", MODERATOR)]).await;
    assert_eq!(status, 200);
    let link = login_link(&sink, MODERATOR, 1).await;
    // a foreign page's form, auto-submitted in the victim's browser
    let r = client()
        .post(&link)
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.headers().get("set-cookie").is_none());
    assert_eq!(env.count("web_sessions", "1"), 0);
    // the same from our own page logs in
    let r = client()
        .post(&link)
        .header("origin", base.as_str())
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert!(r.headers().get("set-cookie").is_some());
    d.shutdown().await;
}

#[tokio::test]
async fn login_requests_are_rate_limited_per_address_and_per_ip() {
    let sink = Sink::start();
    let (_env, d, base) = admin_site(
        &sink,
        &[
            ("login_per_address_per_hour", "2"),
            ("login_per_ip_per_hour", "3"),
        ],
    )
    .await;
    let url = format!("{base}/login");
    for _ in 0..2 {
        assert_eq!(
            post_form(&url, None, &[("address", MODERATOR)]).await.0,
            200
        );
    }
    let (status, page, _) = post_form(&url, None, &[("address", MODERATOR)]).await;
    assert_eq!(status, 429);
    assert!(page.contains("Too many login requests"), "{page}");
    // another address: room for one more from this IP, then none
    assert_eq!(post_form(&url, None, &[("address", MEMBER)]).await.0, 200);
    assert_eq!(post_form(&url, None, &[("address", STRANGER)]).await.0, 429);
    wait_mail(&sink, MODERATOR, "login link", 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(mails_to(&sink, MODERATOR, "login link").len(), 2);
    d.shutdown().await;
}

/// POSTs `/login` for `addr` with an `X-Forwarded-For:` header; the status.
async fn login_via(url: &str, forwarded_for: &str, addr: &str) -> u16 {
    client()
        .post(url)
        .header("x-forwarded-for", forwarded_for)
        .form(&[("address", addr)])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_login_budget() {
    let sink = Sink::start();
    let (_env, d, base) = admin_site(
        &sink,
        &[
            ("login_per_ip_per_hour", "2"),
            ("trusted_proxies", "[\"127.0.0.1\"]"),
        ],
    )
    .await;
    let url = format!("{base}/login");
    // the client wrote the first entry; the proxy appended the real one
    let a = "192.0.2.1, 198.51.100.7";
    assert_eq!(login_via(&url, a, MEMBER).await, 200);
    assert_eq!(login_via(&url, a, STRANGER).await, 200);
    assert_eq!(login_via(&url, a, MODERATOR).await, 429);
    // another client behind the same proxy is not held back by the first
    assert_eq!(login_via(&url, "198.51.100.8", MEMBER).await, 200);
    // nor does forging the first entry buy a fresh budget
    assert_eq!(
        login_via(&url, "203.0.113.5, 198.51.100.7", MEMBER).await,
        429
    );
    d.shutdown().await;
}

#[tokio::test]
async fn an_untrusted_peer_cannot_pick_its_address_with_x_forwarded_for() {
    let sink = Sink::start();
    let (_env, d, base) = admin_site(&sink, &[("login_per_ip_per_hour", "2")]).await;
    let url = format!("{base}/login");
    assert_eq!(login_via(&url, "198.51.100.1", MEMBER).await, 200);
    assert_eq!(login_via(&url, "198.51.100.2", STRANGER).await, 200);
    assert_eq!(login_via(&url, "198.51.100.3", MODERATOR).await, 429);
    d.shutdown().await;
}

#[tokio::test]
async fn every_form_checks_csrf_and_the_queue_is_for_moderators() {
    let sink = Sink::start();
    let (env, d, base) = admin_site(&sink, &[]).await;
    let id = hold(&env, &d, STRANGER, "csrf target", "hi\r\n").await;
    let url = format!("{base}/moderate");

    // a member has a session, but moderates nothing
    let member = login(&sink, &base, MEMBER).await;
    let (status, page) = get_with(&url, &member).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("moderates no list"), "{page}");
    let (status, _, _) = post_form(&url, Some(&member), &[("do", &format!("approve:{id}"))]).await;
    assert_eq!(status, 403);
    // ops' moderator does not see dev's post
    let ops = login(&sink, &base, "opsmod@example.org").await;
    let (status, page) = get_with(&url, &ops).await;
    assert_eq!(status, 200);
    assert!(!page.contains("csrf target"), "{page}");
    let csrf = csrf_of(&page);
    let (_, page, _) = post_form(
        &url,
        Some(&ops),
        &[("csrf", &csrf), ("do", &format!("approve:{id}"))],
    )
    .await;
    assert!(page.contains("you do not moderate the list"), "{page}");

    let m = login(&sink, &base, MODERATOR).await;
    let act = format!("approve:{id}");
    for form in [
        vec![("do", act.as_str())],
        vec![("csrf", "wrong"), ("do", act.as_str())],
        vec![("csrf", csrf.as_str()), ("do", act.as_str())], // another session's token
    ] {
        let (status, page, _) = post_form(&url, Some(&m), &form).await;
        assert_eq!(status, 403, "{form:?}: {page}");
    }
    assert_eq!(
        post_form(&format!("{base}/logout"), Some(&m), &[]).await.0,
        403
    );
    assert_eq!(state_of(&env, id), ("held".into(), None));
    // without a session at all
    assert_eq!(post_form(&url, None, &[("do", &act)]).await.0, 401);
    assert_eq!(post_form(&format!("{base}/logout"), None, &[]).await.0, 401);
    d.shutdown().await;
}

#[tokio::test]
async fn a_bulk_action_acts_on_the_checked_posts_and_a_reject_tells_the_poster() {
    let sink = Sink::start();
    let (env, d, base) = admin_site(&sink, &[]).await;
    let a = hold(&env, &d, STRANGER, "bulk one", "1\r\n").await;
    let b = hold(&env, &d, STRANGER, "bulk two", "2\r\n").await;
    let c = hold(&env, &d, STRANGER, "keep me", "3\r\n").await;
    let cookie = login(&sink, &base, "admin@example.org").await;
    let url = format!("{base}/moderate");
    let (_, page) = get_with(&url, &cookie).await;
    // newest first
    let at = |s: &str| page.find(s).unwrap();
    assert!(at("keep me") < at("bulk two") && at("bulk two") < at("bulk one"));
    let csrf = csrf_of(&page);
    let (a_s, b_s) = (a.to_string(), b.to_string());
    let (status, page, _) = post_form(
        &url,
        Some(&cookie),
        &[
            ("csrf", &csrf),
            ("id", &a_s),
            ("id", &b_s),
            ("bulk_action", "reject"),
            ("bulk_reason", "Off topic here."),
            ("do", "bulk"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page.matches("class=\"ok result\"").count(), 2, "{page}");
    assert_eq!(state_of(&env, a).0, "rejected");
    assert_eq!(state_of(&env, b).0, "rejected");
    assert_eq!(state_of(&env, c).0, "held");
    assert!(page.contains(&format!("id=\"post-{c}\"")), "{page}");
    assert!(!page.contains(&format!("id=\"post-{a}\"")), "{page}");
    let rejected = || {
        mails_to(&sink, STRANGER, "")
            .iter()
            .filter(|t| text_of(t).contains("was rejected"))
            .map(text_of)
            .collect::<Vec<_>>()
    };
    assert!(wait_until(WAIT, || rejected().len() == 2).await);
    assert!(rejected().iter().all(|t| t.contains("Off topic here.")));
    // an unknown action and an empty selection change nothing
    let (_, page, _) = post_form(
        &url,
        Some(&cookie),
        &[("csrf", &csrf), ("do", &format!("promote:{c}"))],
    )
    .await;
    assert!(
        page.contains("unknown action &#x60;promote&#x60;"),
        "{page}"
    );
    let (status, _, _) = post_form(
        &url,
        Some(&cookie),
        &[("csrf", &csrf), ("bulk_action", "ban"), ("do", "bulk")],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(state_of(&env, c).0, "held");
    d.shutdown().await;
}

#[tokio::test]
async fn the_lists_page_shows_advertised_lists_and_subscribing_starts_double_opt_in() {
    let sink = Sink::start();
    let (env, d, base) = admin_site(&sink, &[("subscribe_per_ip_per_hour", "3")]).await;
    let (status, page) = get(&format!("{base}/")).await;
    assert_eq!(status, 200);
    assert!(page.contains("Developers &lt;&amp;&gt; friends"), "{page}");
    assert!(page.contains(&format!("{LIST}@{DOMAIN}")), "{page}");
    assert!(
        !page.contains("ops@"),
        "an unadvertised list is not shown: {page}"
    );
    // its moderator sees it, with the count waiting
    let ops = login(&sink, &base, "opsmod@example.org").await;
    let (_, page) = get_with(&format!("{base}/"), &ops).await;
    assert!(page.contains("ops@") && page.contains("0 held"), "{page}");

    let url = format!("{base}/subscribe");
    let (status, page, _) = post_form(
        &url,
        None,
        &[("list", LIST), ("address", "new@example.com")],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let asked = wait_mail(&sink, "new@example.com", "confirm", 1).await;
    assert!(text_of(&asked[0]).contains("subscribe new@example.com"));
    assert!(!is_member(&env, LIST, "new@example.com"));
    // an unadvertised list is not offered; a bad address is said to be one
    let (status, _, _) =
        post_form(&url, None, &[("list", "ops"), ("address", "x@example.com")]).await;
    assert_eq!(status, 404);
    // refused requests count too: the fourth from this IP in the hour
    let (status, page, _) = post_form(&url, None, &[("list", LIST), ("address", "bad")]).await;
    assert_eq!(status, 400, "{page}");
    let (status, page, _) = post_form(
        &url,
        None,
        &[("list", LIST), ("address", "third@example.com")],
    )
    .await;
    assert_eq!(status, 429, "{page}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(mails_to(&sink, "third@example.com", "").is_empty());
    d.shutdown().await;
}

#[tokio::test]
async fn api_tokens_from_the_cli_drive_the_rest_api() {
    let sink = Sink::start();
    let (env, d, base) = admin_site(&sink, &[]).await;
    let first = hold(&env, &d, STRANGER, "api one", "1\r\n").await;
    let second = hold(&env, &d, STRANGER, "api two", "2\r\n").await;

    let (code, out, err) = run_cli(&env, &["api-token", "create", "ci", "--role", "list:dev"]);
    assert_eq!(code, 0, "{err}");
    let token = out.trim().to_string();
    assert!(token.starts_with("listd_"), "{token}");
    let (code, _, err) = run_cli(&env, &["api-token", "create", "ci", "--role", "admin"]);
    assert_eq!(code, 1);
    assert!(err.contains("already"), "{err}");
    let (code, _, err) = run_cli(&env, &["api-token", "create", "x", "--role", "owner"]);
    assert_eq!(code, 1);
    assert!(err.contains("admin` or `list:NAME"), "{err}");
    let (code, _, err) = run_cli(&env, &["api-token", "create", "x", "--role", "list:nope"]);
    assert_eq!(code, 1, "{err}");
    let (code, out, _) = run_cli(&env, &["api-token", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("ci") && out.contains("list:dev"), "{out}");
    assert!(!out.contains(&token));

    let lists = format!("{base}/api/lists");
    // 401: no token, a wrong one, a session cookie instead of a token
    let (status, v) = api("GET", &lists, None, None).await;
    assert_eq!(status, 401);
    assert_eq!(v["error"], "unauthorized");
    assert!(v["detail"].as_str().unwrap().contains("Bearer"));
    assert_eq!(api("GET", &lists, Some("listd_00"), None).await.0, 401);
    let cookie = login(&sink, &base, "admin@example.org").await;
    let r = client()
        .get(&lists)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "the API ignores cookies");

    let (status, v) = api("GET", &lists, Some(&token), None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = v["lists"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dev"]);
    assert_eq!(v["lists"][0]["held"], 2);

    // paged, newest first
    let held = format!("{base}/api/lists/{LIST}/held");
    let (status, v) = api("GET", &format!("{held}?limit=1"), Some(&token), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["held"][0]["id"], second);
    assert_eq!(v["held"][0]["subject"], "api two");
    assert_eq!(v["next_after"], second);
    let (_, v) = api(
        "GET",
        &format!("{held}?limit=1&after={second}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(v["held"][0]["id"], first);
    let (status, v) = api("GET", &format!("{held}?limit=0"), Some(&token), None).await;
    assert_eq!(status, 400);
    assert!(v["detail"].as_str().unwrap().contains("limit"));
    // 403 on another list, 404 on none
    let (status, v) = api(
        "GET",
        &format!("{base}/api/lists/ops/held"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(v["error"], "forbidden");
    assert_eq!(
        api(
            "GET",
            &format!("{base}/api/lists/zz/held"),
            Some(&token),
            None
        )
        .await
        .0,
        404
    );

    let one = format!("{held}/{first}");
    let (status, v) = api(
        "POST",
        &one,
        Some(&token),
        Some(json!({"action": "approve"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["outcome"], "done");
    assert_eq!(
        state_of(&env, first),
        ("approved".into(), Some("api:ci".into()))
    );
    wait_mail(&sink, MEMBER, "api one", 1).await;
    let (status, v) = api(
        "POST",
        &one,
        Some(&token),
        Some(json!({"action": "reject"})),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(v["error"], "already_acted");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("already approved by api:ci"),
        "{v}"
    );
    let (status, v) = api(
        "POST",
        &format!("{held}/999999"),
        Some(&token),
        Some(json!({"action": "approve"})),
    )
    .await;
    assert_eq!(status, 404, "{v}");
    let two = format!("{held}/{second}");
    for bad in [
        json!({"action": "confirm"}),
        json!({"action": "approve", "x": 1}),
        json!([]),
    ] {
        let (status, v) = api("POST", &two, Some(&token), Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {v}");
        assert!(v["detail"].is_string());
    }
    // a post of dev named under ops: not found there
    let (status, _) = api(
        "POST",
        &format!("{base}/api/lists/ops/held/{second}"),
        Some(&token),
        Some(json!({"action": "discard"})),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(state_of(&env, second).0, "held");

    // revoked: refused from now on
    let (code, _, err) = run_cli(&env, &["api-token", "revoke", "ci"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(api("GET", &lists, Some(&token), None).await.0, 401);
    let (code, _, _) = run_cli(&env, &["api-token", "revoke", "ci"]);
    assert_eq!(code, 1);
    // an admin token acts on any list
    let (code, admin, _) = run_cli(&env, &["api-token", "create", "root", "--role", "admin"]);
    assert_eq!(code, 0);
    let (status, v) = api(
        "POST",
        &two,
        Some(admin.trim()),
        Some(json!({"action": "discard", "reason": "spam"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(state_of(&env, second).0, "discarded");
    d.shutdown().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_endpoints() {
    let sink = Sink::start();
    let (_env, d, base) = admin_site(&sink, &[]).await;
    let (status, v) = api("GET", &format!("{base}/api/openapi.json"), None, None).await;
    assert_eq!(status, 200);
    assert!(v["openapi"].as_str().unwrap().starts_with("3."));
    let paths: Vec<&String> = v["paths"].as_object().unwrap().keys().collect();
    assert_eq!(
        paths,
        [
            "/api/lists",
            "/api/lists/{list}/archive",
            "/api/lists/{list}/archive/search",
            "/api/lists/{list}/archive/{id}",
            "/api/lists/{list}/held",
            "/api/lists/{list}/held/{id}",
            "/api/lists/{list}/members",
            "/api/lists/{list}/members/{address}",
            "/api/lists/{list}/requests",
            "/api/lists/{list}/requests/{id}",
            "/api/lists/{list}/settings"
        ]
    );
    assert!(v["paths"]["/api/lists/{list}/held/{id}"]["post"]["responses"]["409"].is_object());
    assert_eq!(
        v["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    d.shutdown().await;
}

fn mode_of(env: &TestEnv, list: &str, addr: &str) -> String {
    env.store()
        .query_row(
            "SELECT mode FROM members WHERE list = ?1 AND address = ?2",
            [list, addr],
            |r| r.get(0),
        )
        .unwrap()
}

#[tokio::test]
async fn a_member_changes_its_delivery_mode_and_leaves_on_its_own_page() {
    let sink = Sink::start();
    let (env, d, base) = admin_site(&sink, &[]).await;
    env.add_members("ops", &[MEMBER]);
    let url = format!("{base}/me");
    // no session: the login page, nothing changes
    assert_eq!(
        post_form(&url, None, &[("list", LIST), ("do", "leave")])
            .await
            .0,
        401
    );
    let m = login(&sink, &base, MEMBER).await;
    let (status, page) = get_with(&url, &m).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("id=\"sub-dev\"") && page.contains("id=\"sub-ops\""),
        "{page}"
    );
    let csrf = csrf_of(&page);
    // a wrong CSRF token changes nothing
    let (status, _, _) = post_form(
        &url,
        Some(&m),
        &[
            ("csrf", "wrong"),
            ("list", LIST),
            ("do", "mode"),
            ("mode", "nomail"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(mode_of(&env, LIST, MEMBER), "each");

    let (status, page, _) = post_form(
        &url,
        Some(&m),
        &[
            ("csrf", &csrf),
            ("list", LIST),
            ("do", "mode"),
            ("mode", "digest_plain"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("now digest_plain"), "{page}");
    assert_eq!(mode_of(&env, LIST, MEMBER), "digest_plain");
    let (_, page, _) = post_form(
        &url,
        Some(&m),
        &[
            ("csrf", &csrf),
            ("list", LIST),
            ("do", "mode"),
            ("mode", "sometimes"),
        ],
    )
    .await;
    assert!(page.contains("not a delivery mode"), "{page}");
    assert_eq!(mode_of(&env, LIST, MEMBER), "digest_plain");

    // leaving: the goodbye is mailed; the other list stays
    let (_, page, _) = post_form(
        &url,
        Some(&m),
        &[("csrf", &csrf), ("list", LIST), ("do", "leave")],
    )
    .await;
    assert!(page.contains("You have left the list dev"), "{page}");
    assert!(
        !page.contains("id=\"sub-dev\"") && page.contains("id=\"sub-ops\""),
        "{page}"
    );
    assert!(!is_member(&env, LIST, MEMBER));
    assert!(is_member(&env, "ops", MEMBER));
    wait_mail(&sink, MEMBER, "You have left", 1).await;
    // leaving again names no subscription of its own
    let (_, page, _) = post_form(
        &url,
        Some(&m),
        &[("csrf", &csrf), ("list", LIST), ("do", "leave")],
    )
    .await;
    assert!(page.contains("You are not on the list dev"), "{page}");
    d.shutdown().await;
}

#[tokio::test]
async fn the_members_api_pages_by_address_prefix_for_the_lists_token_only() {
    let sink = Sink::start();
    let (env, d, base) = admin_site(&sink, &[]).await;
    env.add_members(
        LIST,
        &[
            "bea@example.org",
            "ben@example.org",
            "bob@example.org",
            "cy@example.org",
        ],
    );
    let token = |role: &str, name: &str| {
        let (code, out, err) = run_cli(&env, &["api-token", "create", name, "--role", role]);
        assert_eq!(code, 0, "{err}");
        out.trim().to_string()
    };
    let (dev, ops) = (token("list:dev", "dev"), token("list:ops", "ops"));
    let url = format!("{base}/api/lists/{LIST}/members");
    let (status, v) = api("GET", &format!("{url}?q=b&limit=2"), Some(&dev), None).await;
    assert_eq!(status, 200, "{v}");
    let addrs = |v: &Value| {
        v["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["address"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(addrs(&v), ["bea@example.org", "ben@example.org"]);
    assert_eq!(v["members"][0]["mode"], "each");
    let next = v["next_after"].as_str().unwrap().to_string();
    let (_, v) = api(
        "GET",
        &format!("{url}?q=b&limit=2&after={next}"),
        Some(&dev),
        None,
    )
    .await;
    assert_eq!(addrs(&v), ["bob@example.org"]);
    assert_eq!(v["next_after"], Value::Null);
    let (_, v) = api("GET", &format!("{url}?q=%C3%A9"), Some(&dev), None).await;
    assert!(addrs(&v).is_empty());
    // another list's token, an unknown list, a bad limit
    assert_eq!(api("GET", &url, Some(&ops), None).await.0, 403);
    assert_eq!(
        api(
            "GET",
            &format!("{base}/api/lists/nope/members"),
            Some(&dev),
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        api("GET", &format!("{url}?limit=0"), Some(&dev), None)
            .await
            .0,
        400
    );
    assert_eq!(
        api("GET", &format!("{url}?offset=3"), Some(&dev), None)
            .await
            .0,
        400
    );
    d.shutdown().await;
}
