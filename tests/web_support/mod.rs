//! Shared by the web tests: a site with `web.listen` on a free port and
//! `web.public_url` pointing at it, and store look-ups. The HTTP client is
//! reqwest over real sockets on 127.0.0.1.
#![allow(dead_code)]

use crate::common::sink::Sink;
use crate::common::{free_port, TestEnv, TestEnvBuilder};
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
