//! Login by emailed link, sessions and CSRF for the web pages.
//!
//! `POST /login` (an address) mails a single-use link valid 15 minutes,
//! only to an address with some role (admin, owner, moderator, member),
//! and answers the same page either way, so the form tells no one who has
//! a role; attempts are rate-limited per address and per client IP (429).
//! `GET /login/TOKEN` only shows a button (mail scanners fetch links);
//! its `POST` uses the link and opens a session: the cookie
//! `listd_session` (HttpOnly, SameSite=Lax, Path=/, Secure when
//! `web.public_url` is https). Each session has a CSRF token that every
//! form carries and every state-changing POST checks (403 otherwise).
//!
//! Trusts only secrets found by their hash (`credentials`); the session
//! id and link secrets are never logged.

use super::credentials::{self, LoginLink, WebSession};
use super::service::{self, ServiceError};
use super::{page, with_store, ClientIp, WebState};
use crate::address::Address;
use crate::handler::Ctx;
use crate::robot::{self, Mail, To};
use crate::store;
use crate::store::outbound::JobKind;
use crate::store::rate::{self, Budget};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use rusqlite::TransactionBehavior;
use serde_json::{json, Value};

/// The session cookie's name.
pub const COOKIE: &str = "listd_session";
/// The mail with the login link.
pub const MAIL_TEMPLATE: &str = "web-login";

/// The logged-in browser of a request.
pub struct Current {
    /// The cookie's value (never logged).
    pub secret: String,
    pub session: WebSession,
}

impl Current {
    pub fn caller(&self) -> service::Caller {
        service::Caller::Person(self.session.address.clone())
    }
}

/// The `listd_session` cookie's value, if the request has one.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The session of the request, if its cookie names an open one.
pub async fn current(
    s: &WebState,
    ctx: &Ctx,
    headers: &HeaderMap,
) -> Result<Option<Current>, Response> {
    let Some(secret) = cookie(headers) else {
        return Ok(None);
    };
    let lookup = secret.clone();
    let session = with_store(s, ctx, move |conn| {
        Ok(credentials::session(conn, &lookup, store::now())?)
    })
    .await?;
    Ok(session.map(|session| Current { secret, session }))
}

/// A form body's fields, in order (a name may repeat).
pub fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The first value of field `name`.
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Whether the form carries the session's CSRF token (compared in constant time).
pub fn csrf_ok(session: &WebSession, fields: &[(String, String)]) -> bool {
    let Some(given) = field(fields, "csrf") else {
        return false;
    };
    let (a, b) = (given.as_bytes(), session.csrf.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The 403 page of a form without the session's CSRF token.
pub fn csrf_refused(ctx: &Ctx) -> Response {
    page::html(
        &ctx.templates,
        None,
        StatusCode::FORBIDDEN,
        "refused",
        "Form expired",
        "This form is out of date or did not come from this site. Reload the page and try again.",
        json!({}),
    )
}

/// What every page shows of the logged-in user: the address and the CSRF
/// token its forms carry.
pub fn user_data(data: &mut Value, cur: Option<&Current>) {
    if let (Value::Object(m), Some(c)) = (data, cur) {
        m.insert("user".into(), c.session.address.clone().into());
        m.insert("csrf".into(), c.session.csrf.clone().into());
    }
}

fn login_page(ctx: &Ctx, status: StatusCode, title: &str, message: &str) -> Response {
    page::html(
        &ctx.templates,
        None,
        status,
        "login_form",
        title,
        message,
        json!({}),
    )
}

/// The page for a request that needs a login (401).
pub fn login_needed(ctx: &Ctx) -> Response {
    login_page(
        ctx,
        StatusCode::UNAUTHORIZED,
        "Log in",
        "Log in to see this page: enter your address and we will mail you a link.",
    )
}

/// `GET /login`: the form.
pub async fn form(State(s): State<WebState>) -> Response {
    let ctx = s.live.current();
    login_page(
        &ctx,
        StatusCode::OK,
        "Log in",
        "Enter your address and we will mail you a link that logs you in.",
    )
}

/// Mails a login link to `address` if it has a role here (decided by
/// `service::has_role`), within the per-address and per-IP budgets.
pub fn request_login(
    ctx: &Ctx,
    conn: &mut rusqlite::Connection,
    address: &str,
    client_ip: &str,
    now: i64,
) -> service::ServiceResult<()> {
    let addr = Address::parse(address.trim()).map_err(|_| {
        ServiceError::BadRequest(format!("`{}` is not an email address", address.trim()))
    })?;
    let web = &ctx.config.web;
    let budgets = [
        Budget::hourly(
            format!("web-login:{}", addr.key()),
            web.login_per_address_per_hour,
        ),
        Budget::hourly(
            format!("web-login-ip:{client_ip}"),
            web.login_per_ip_per_hour,
        ),
    ];
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if rate::take(&tx, &budgets, now)?.is_some() {
        return Err(ServiceError::RateLimited(
            "Too many login requests for this address or from your network; try again in an hour."
                .into(),
        ));
    }
    credentials::purge(&tx, now)?;
    if service::has_role(&tx, &ctx.config, &addr)? {
        match web.public_url.as_deref() {
            None => {
                tracing::warn!("web: a login link was asked for, but web.public_url is not set")
            }
            Some(base) => {
                let secret = credentials::issue_login(&tx, &addr.to_string(), now)?;
                let link = format!("{}/login/{secret}", base.trim_end_matches('/'));
                let mail = Mail {
                    to: To::One(addr.to_string()),
                    list: None,
                    template: MAIL_TEMPLATE,
                    default_subject: "Your login link".into(),
                    data: robot::template_data(
                        &ctx.config,
                        None,
                        json!({"address": addr.to_string(), "link": link,
                               "minutes": credentials::LOGIN_LINK_SECS / 60}),
                    ),
                    kind: JobKind::Notice,
                    reply_to: None,
                    answers_command: false,
                    limited: true,
                    attachment: None,
                };
                robot::send(ctx, &tx, vec![mail], None, now)?;
                tracing::info!(address = %addr, "web: login link mailed");
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// `POST /login` with `address`: the same answer whoever it is.
pub async fn request(
    State(s): State<WebState>,
    Extension(ip): Extension<ClientIp>,
    body: Bytes,
) -> Response {
    let ctx = s.live.current();
    let address = field(&form_fields(&body), "address")
        .unwrap_or_default()
        .to_string();
    let c = ctx.clone();
    let out = with_store(&s, &ctx, move |conn| {
        Ok(request_login(
            &c,
            conn,
            &address,
            &ip.bucket(),
            store::now(),
        ))
    })
    .await;
    match out {
        Err(r) => r,
        Ok(Ok(())) => {
            s.wakers.delivery.notify_one();
            page::html(
                &ctx.templates,
                None,
                StatusCode::OK,
                "done",
                "Check your mail",
                "If this address may log in here, a link is on its way to it. It works once, for 15 minutes.",
                json!({}),
            )
        }
        Ok(Err(ServiceError::RateLimited(m))) => {
            login_page(&ctx, StatusCode::TOO_MANY_REQUESTS, "Too many requests", &m)
        }
        Ok(Err(ServiceError::BadRequest(m))) => {
            login_page(&ctx, StatusCode::BAD_REQUEST, "Not an address", &m)
        }
        Ok(Err(e)) => {
            tracing::error!(error = ?e, "web: login request failed");
            super::unavailable()
        }
    }
}

fn link_refused(ctx: &Ctx, link: &LoginLink) -> Response {
    let (status, title) = match link {
        LoginLink::Unknown => (StatusCode::NOT_FOUND, "This link is not valid"),
        _ => (StatusCode::GONE, "This link has been used or has expired"),
    };
    login_page(ctx, status, title, "Ask for a new link below.")
}

/// `GET /login/TOKEN`: a button that logs in; uses nothing.
pub async fn confirm(State(s): State<WebState>, Path(token): Path<String>) -> Response {
    let ctx = s.live.current();
    let link = with_store(&s, &ctx, move |conn| {
        Ok(credentials::peek_login(conn, &token, store::now())?)
    })
    .await;
    match link {
        Err(r) => r,
        Ok(LoginLink::Valid(address)) => page::html(
            &ctx.templates,
            None,
            StatusCode::OK,
            "login_confirm",
            "Log in",
            &format!("Log in as {address}?"),
            json!({ "address": address }),
        ),
        Ok(other) => link_refused(&ctx, &other),
    }
}

/// The `Set-Cookie` value for `secret`, lasting `max_age` seconds (0:
/// delete it); `Secure` when the site is served over https.
fn set_cookie(ctx: &Ctx, secret: &str, max_age: i64) -> HeaderValue {
    let https = ctx
        .config
        .web
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    HeaderValue::from_str(&cookie_text(secret, max_age, https))
        .unwrap_or_else(|_| HeaderValue::from_static("listd_session=; Max-Age=0"))
}

fn cookie_text(secret: &str, max_age: i64, https: bool) -> String {
    format!(
        "{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if https { "; Secure" } else { "" }
    )
}

/// `POST /login/TOKEN`: uses the link, opens a session, and sends the
/// browser on to the moderation queue (or the lists).
pub async fn consume(State(s): State<WebState>, Path(token): Path<String>) -> Response {
    let ctx = s.live.current();
    let days = ctx.config.web.session_days;
    let out = with_store(&s, &ctx, move |conn| {
        let now = store::now();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let opened = match credentials::use_login(&tx, &token, now)? {
            LoginLink::Valid(address) => Ok(credentials::open_session(&tx, &address, days, now)?),
            other => Err(other),
        };
        tx.commit()?;
        Ok(opened)
    })
    .await;
    match out {
        Err(r) => r,
        Ok(Err(link)) => link_refused(&ctx, &link),
        Ok(Ok((secret, session))) => {
            tracing::info!(address = %session.address, "web: logged in");
            let caller = service::Caller::Person(session.address.clone());
            let to = if service::moderated(&ctx.config, &caller).is_empty() {
                "/"
            } else {
                "/moderate"
            };
            let max_age = session.expires_at - store::now();
            (
                StatusCode::SEE_OTHER,
                [
                    (header::SET_COOKIE, set_cookie(&ctx, &secret, max_age)),
                    (header::LOCATION, HeaderValue::from_static(to)),
                ],
            )
                .into_response()
        }
    }
}

/// `POST /logout` (with the CSRF token): ends the session.
pub async fn logout(State(s): State<WebState>, headers: HeaderMap, body: Bytes) -> Response {
    let ctx = s.live.current();
    let cur = match current(&s, &ctx, &headers).await {
        Err(r) => return r,
        Ok(None) => return login_needed(&ctx),
        Ok(Some(c)) => c,
    };
    if !csrf_ok(&cur.session, &form_fields(&body)) {
        return csrf_refused(&ctx);
    }
    let secret = cur.secret.clone();
    if let Err(r) = with_store(&s, &ctx, move |conn| {
        Ok(credentials::close_session(conn, &secret)?)
    })
    .await
    {
        return r;
    }
    let mut r = login_page(&ctx, StatusCode::OK, "Logged out", "You are logged out.");
    r.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&ctx, "", 0));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others_and_csrf_must_match() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; listd_session=abc ; b=2"),
        );
        assert_eq!(cookie(&h).as_deref(), Some("abc"));
        h.insert(header::COOKIE, HeaderValue::from_static("listd_session="));
        assert_eq!(cookie(&h), None);
        let s = WebSession {
            address: "a@example.org".into(),
            csrf: "t0k".into(),
            expires_at: 0,
        };
        let f = |v: &str| vec![("csrf".to_string(), v.to_string())];
        assert!(csrf_ok(&s, &f("t0k")));
        assert!(!csrf_ok(&s, &f("t0K")));
        assert!(!csrf_ok(&s, &f("")));
        assert!(!csrf_ok(&s, &[]));
    }

    #[test]
    fn the_cookie_is_secure_over_https_only() {
        assert_eq!(
            cookie_text("s3", 60, true),
            "listd_session=s3; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure"
        );
        assert!(!cookie_text("s3", 60, false).contains("Secure"));
    }
}
