//! Shared by the web tests: a site with `web.listen` on a free port and
//! `web.public_url` pointing at it, and store look-ups. The HTTP client is
//! reqwest over real sockets on 127.0.0.1.
#![allow(dead_code)]

use crate::common::sink::{Sink, Transaction};
use crate::common::{free_port, message, send, wait_until, TestEnv, TestEnvBuilder, DOMAIN};
use listd::daemon::DaemonHandle;
use mail_parser::MessageParser;
use std::time::Duration;

pub const LIST: &str = "dev";
pub const WAIT: Duration = Duration::from_secs(20);

/// A site whose relay is `sink`, serving HTTP on a free port with
/// `web.public_url` = `http://127.0.0.1:PORT`, and the list `dev` with
/// `list_yaml`. Returns the builder (to add more) and the port.
pub fn site(sink: &Sink, list_yaml: &str) -> (TestEnvBuilder, u16) {
    let port = free_port();
    let b = TestEnv::builder()
        .relay_port(sink.port())
        .set("web", "listen", &format!("\"127.0.0.1:{port}\""))
        .set("web", "public_url", &format!("\"http://127.0.0.1:{port}\""))
        .list(LIST, list_yaml);
    (b, port)
}

/// Whether `addr` is a member of `list` now.
pub fn is_member(env: &TestEnv, list: &str, addr: &str) -> bool {
    let key = listd::address::Address::parse(addr).unwrap().key();
    listd::store::members::get(&env.store(), list, &key)
        .unwrap()
        .is_some()
}

/// A client that neither follows redirects nor keeps cookies.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(WAIT)
        .build()
        .unwrap()
}

/// POSTs the RFC 8058 one-click body to `url`.
pub async fn one_click(url: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let r = client()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, r.text().await.unwrap(), headers)
}

/// GETs `url`: (status, body).
pub async fn get(url: &str) -> (u16, String) {
    let r = client().get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// `listd web token LIST ADDRESS` from the real binary.
pub fn token_url(env: &TestEnv, list: &str, addr: &str) -> String {
    let (code, out, err) = crate::common::run_cli(env, &["web", "token", list, addr]);
    assert_eq!(code, 0, "{err}");
    out.trim().to_string()
}

/// A captured message's subject, parsed.
pub fn subject_of(t: &Transaction) -> String {
    MessageParser::default()
        .parse(&t.data)
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_default()
}

/// A captured message's text, parsed.
pub fn text_of(t: &Transaction) -> String {
    MessageParser::default()
        .parse(&t.data)
        .and_then(|m| m.body_text(0).map(|b| b.into_owned()))
        .unwrap_or_default()
}

/// Mail the sink got for `rcpt` whose subject contains `needle`.
pub fn mails_to(sink: &Sink, rcpt: &str, needle: &str) -> Vec<Transaction> {
    sink.transactions()
        .into_iter()
        .filter(|t| {
            t.rcpts.iter().any(|r| r.eq_ignore_ascii_case(rcpt)) && subject_of(t).contains(needle)
        })
        .collect()
}

/// Waits for `n` mails as `mails_to` finds them; returns them.
pub async fn wait_mail(sink: &Sink, rcpt: &str, needle: &str, n: usize) -> Vec<Transaction> {
    let ok = wait_until(WAIT, || mails_to(sink, rcpt, needle).len() >= n).await;
    assert!(
        ok,
        "no `{needle}` mail for {rcpt}: {:?}",
        sink.transactions()
            .iter()
            .map(|t| (t.rcpts.clone(), subject_of(t)))
            .collect::<Vec<_>>()
    );
    mails_to(sink, rcpt, needle)
}

/// Sends a post from `from` (not a member) to `dev` and waits until it
/// is held; its id.
pub async fn hold(env: &TestEnv, d: &DaemonHandle, from: &str, subject: &str, body: &str) -> i64 {
    send(
        d.smtp_addr(),
        from,
        &[&format!("{LIST}@{DOMAIN}")],
        &message(from, &format!("{LIST}@{DOMAIN}"), subject, body),
    )
    .await
    .expect(250);
    let q = format!("subject = '{subject}' AND state = 'held'");
    assert!(wait_until(WAIT, || env.count("held", &q) == 1).await);
    env.store()
        .query_row("SELECT id FROM held WHERE subject = ?1", [subject], |r| {
            r.get(0)
        })
        .unwrap()
}

/// The login link in the `n`th login mail to `addr`.
pub async fn login_link(sink: &Sink, addr: &str, n: usize) -> String {
    let mails = wait_mail(sink, addr, "login link", n).await;
    let text = text_of(&mails[n - 1]);
    text.split_whitespace()
        .find(|w| w.contains("/login/"))
        .unwrap_or_else(|| panic!("no link in {text}"))
        .to_string()
}

/// POSTs a form; (status, body, headers).
pub async fn post_form(
    url: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> (u16, String, reqwest::header::HeaderMap) {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut r = client()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    let r = r.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, r.text().await.unwrap(), headers)
}

/// GETs `url` with the session cookie: (status, body).
pub async fn get_with(url: &str, cookie: &str) -> (u16, String) {
    let r = client()
        .get(url)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Logs `addr` in by the emailed link; returns the `Cookie` header value.
pub async fn login(sink: &Sink, base: &str, addr: &str) -> String {
    let before = mails_to(sink, addr, "login link").len();
    let (status, _, _) = post_form(&format!("{base}/login"), None, &[("address", addr)]).await;
    assert_eq!(status, 200);
    let link = login_link(sink, addr, before + 1).await;
    let (status, _, headers) = post_form(&link, None, &[]).await;
    assert_eq!(status, 303);
    let set = headers["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

/// The CSRF token in a page's forms.
pub fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..].split('"').next().unwrap().to_string()
}

/// One API call with `headers` added: (status, JSON body or null, headers).
pub async fn api_with(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
    headers: &[(&str, &str)],
) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = client().request(method, url);
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    if let Some(b) = body {
        r = r
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let r = r.send().await.unwrap();
    let (status, h) = (r.status().as_u16(), r.headers().clone());
    (status, r.json().await.unwrap_or(serde_json::Value::Null), h)
}

/// One API call: (status, JSON body or null).
pub async fn api(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let (status, v, _) = api_with(method, url, token, body, &[]).await;
    (status, v)
}

/// `listd api-token create NAME --role ROLE` from the real binary: the token.
pub fn api_token(env: &TestEnv, name: &str, role: &str) -> String {
    let (code, out, err) =
        crate::common::run_cli(env, &["api-token", "create", name, "--role", role]);
    assert_eq!(code, 0, "{err}");
    out.trim().to_string()
}

/// Sends `message` from `from` to `list` over SMTP and waits until the
/// pipeline has archived it; its archive id.
pub async fn archived_post(
    env: &TestEnv,
    d: &DaemonHandle,
    list: &str,
    from: &str,
    message: &str,
) -> i64 {
    let count = || env.count("archive_index", &format!("list = '{list}'"));
    let before = count();
    send(d.smtp_addr(), from, &[&format!("{list}@{DOMAIN}")], message)
        .await
        .expect(250);
    assert!(
        wait_until(WAIT, || count() > before).await,
        "not archived: {message}"
    );
    env.store()
        .query_row(
            "SELECT MAX(id) FROM archive_index WHERE list = ?1",
            [list],
            |r| r.get(0),
        )
        .unwrap()
}
