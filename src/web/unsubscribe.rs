//! One-click unsubscribe (RFC 8058): `POST /u/TOKEN` with the form field
//! `List-Unsubscribe=One-Click` removes the member at once and answers 200
//! (no cookie, no login, no redirect); `GET /u/TOKEN` only shows a page
//! whose one button makes that POST, since link scanners GET.
//!
//! `check` decides from the token, the site keys and the configuration
//! alone (pure); the handlers act afterwards: the removal is the robot's
//! `remove_member` (goodbye to the member, rate-limited, and the owners'
//! notice), queued in the same transaction. Refusals are 4xx pages.
//!
//! Trusts a token only once its HMAC verifies with a site key still in its
//! grace period; nothing else in the request.

use super::page;
use super::{unavailable, with_store, WebState};
use crate::address::Address;
use crate::config::{Config, ListConfig};
use crate::handler::Ctx;
use crate::member_token::{SiteKeys, TokenError};
use crate::robot;
use crate::store::{self, members};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Token(TokenError),
    /// The token names a list this site no longer has.
    UnknownList,
    /// The token names an address that does not parse.
    BadAddress,
    /// The address is not (or no longer) a member.
    NotMember,
    /// A POST without `List-Unsubscribe=One-Click`.
    NotOneClick,
}

impl Refusal {
    fn status(self) -> StatusCode {
        match self {
            Refusal::Token(TokenError::Malformed) | Refusal::BadAddress => StatusCode::NOT_FOUND,
            Refusal::Token(TokenError::UnknownKey | TokenError::BadSignature) => {
                StatusCode::FORBIDDEN
            }
            Refusal::Token(TokenError::Expired) => StatusCode::GONE,
            Refusal::UnknownList | Refusal::NotMember => StatusCode::NOT_FOUND,
            Refusal::NotOneClick => StatusCode::BAD_REQUEST,
        }
    }

    fn text(self) -> (&'static str, &'static str) {
        match self {
            Refusal::Token(TokenError::Expired) => (
                "This link has expired",
                "Unsubscribe with the link in a recent message from the list, or by mail.",
            ),
            Refusal::Token(_) | Refusal::BadAddress => (
                "This link is not valid",
                "Copy the whole link from the message, or unsubscribe by mail.",
            ),
            Refusal::UnknownList => ("No such list", "This list does not exist any more."),
            Refusal::NotMember => (
                "Not subscribed",
                "This address is not subscribed to the list (any more).",
            ),
            Refusal::NotOneClick => (
                "Nothing done",
                "A one-click unsubscribe request carries List-Unsubscribe=One-Click.",
            ),
        }
    }
}

/// Whom a verified token unsubscribes from what.
#[derive(Debug)]
pub struct Target<'a> {
    pub list: &'a ListConfig,
    pub address: Address,
}

/// Decides what `token` allows at `now` (pure).
pub fn check<'a>(
    config: &'a Config,
    keys: &SiteKeys,
    token: &str,
    now: i64,
) -> Result<Target<'a>, Refusal> {
    let claim = keys
        .verify(token, now, config.web.token_grace_days)
        .map_err(Refusal::Token)?;
    let list = config.list(&claim.list).ok_or(Refusal::UnknownList)?;
    let address = Address::parse(&claim.address).map_err(|_| Refusal::BadAddress)?;
    Ok(Target { list, address })
}

/// Whether a POST body says `List-Unsubscribe=One-Click`, form-urlencoded
/// or multipart/form-data (RFC 8058 §3.1).
pub fn is_one_click(content_type: &str, body: &[u8]) -> bool {
    const NAME: &str = "List-Unsubscribe";
    const VALUE: &[u8] = b"One-Click";
    let ct = content_type.to_ascii_lowercase();
    if ct.starts_with("multipart/form-data") {
        let Some(boundary) = content_type
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
            .map(|(_, v)| v.trim().trim_matches('"'))
        else {
            return false;
        };
        let delim = format!("--{boundary}");
        let name = format!("name=\"{}\"", NAME.to_ascii_lowercase());
        return split_on(body, delim.as_bytes()).any(|part| {
            let Some(at) = memchr::memmem::find(part, b"\r\n\r\n") else {
                return false;
            };
            let (head, value) = (&part[..at], &part[at + 4..]);
            let value = value.strip_suffix(b"\r\n").unwrap_or(value);
            String::from_utf8_lossy(head)
                .to_ascii_lowercase()
                .contains(&name)
                && value == VALUE
        });
    }
    form_urlencoded::parse(body).any(|(k, v)| k == NAME && v.as_bytes() == VALUE)
}

/// The pieces of `b` between occurrences of `delim`.
fn split_on<'a>(b: &'a [u8], delim: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(b);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memmem::find(r, delim) {
            Some(i) => {
                rest = Some(&r[i + delim.len()..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// The site keys, or the 503 page when they cannot be read.
fn keys(ctx: &Ctx) -> Result<SiteKeys, Response> {
    SiteKeys::load_or_create(&ctx.config.data_dir, store::now()).map_err(|e| {
        tracing::error!(error = %e, "web: cannot read the site keys");
        unavailable()
    })
}

fn refused(ctx: &Ctx, list: Option<&str>, r: Refusal) -> Response {
    let (title, message) = r.text();
    page::html(
        &ctx.templates,
        list,
        r.status(),
        "refused",
        title,
        message,
        json!({}),
    )
}

/// What the pages say about a list and an address.
fn page_data(config: &Config, t: &Target<'_>) -> serde_json::Value {
    json!({
        "list": t.list.name,
        "list_address": config.list_address(&t.list.name),
        "subscribe_address": config.list_suffix_address(&t.list.name, "join"),
        "address": t.address.to_string(),
    })
}

/// `GET /u/TOKEN`: the confirmation page; changes nothing.
pub async fn page(State(s): State<WebState>, Path(token): Path<String>) -> Response {
    let ctx = s.live.current();
    let keys = match keys(&ctx) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let target = match check(&ctx.config, &keys, &token, store::now()) {
        Ok(t) => t,
        Err(r) => return refused(&ctx, None, r),
    };
    let (list, key) = (target.list.name.clone(), target.address.key());
    let member = with_store(&s, &ctx, move |conn| {
        Ok(members::get(conn, &list, &key)?.is_some())
    })
    .await;
    match member {
        Err(r) => r,
        Ok(false) => refused(&ctx, Some(&target.list.name), Refusal::NotMember),
        Ok(true) => page::html(
            &ctx.templates,
            Some(&target.list.name),
            StatusCode::OK,
            "confirm",
            &format!("Unsubscribe from {}?", target.list.name),
            &format!(
                "{} will no longer get mail from the {} list.",
                target.address, target.list.name
            ),
            page_data(&ctx.config, &target),
        ),
    }
}

/// `POST /u/TOKEN` with `List-Unsubscribe=One-Click`: unsubscribes now.
pub async fn one_click(
    State(s): State<WebState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = s.live.current();
    let keys = match keys(&ctx) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let now = store::now();
    let target = match check(&ctx.config, &keys, &token, now) {
        Ok(t) => t,
        Err(r) => return refused(&ctx, None, r),
    };
    let list_name = target.list.name.clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !is_one_click(content_type, &body) {
        return refused(&ctx, Some(&list_name), Refusal::NotOneClick);
    }
    let (c, addr) = (ctx.clone(), target.address.clone());
    let removed = with_store(&s, &ctx, move |conn| {
        let Some(list) = c.config.list(&list_name) else {
            return Ok(false);
        };
        let tx = conn.transaction().map_err(store::StoreError::from)?;
        let mut mails = Vec::new();
        if !robot::exec::roster::remove_member(&c, &tx, list, &addr, &mut mails)? {
            return Ok(false);
        }
        robot::send(&c, &tx, mails, None, now)?;
        tx.commit().map_err(store::StoreError::from)?;
        Ok(true)
    })
    .await;
    match removed {
        Err(r) => r,
        Ok(false) => refused(&ctx, Some(&target.list.name), Refusal::NotMember),
        Ok(true) => {
            tracing::info!(list = %target.list.name, address = %target.address, "unsubscribed by one-click link");
            s.wakers.delivery.notify_one();
            page::html(
                &ctx.templates,
                Some(&target.list.name),
                StatusCode::OK,
                "done",
                "Unsubscribed",
                &format!(
                    "{} has been unsubscribed from the {} list.",
                    target.address, target.list.name
                ),
                page_data(&ctx.config, &target),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_click_bodies_in_both_encodings_and_nothing_else() {
        let form = "application/x-www-form-urlencoded";
        assert!(is_one_click(form, b"List-Unsubscribe=One-Click"));
        assert!(is_one_click(form, b"a=b&List-Unsubscribe=One%2DClick"));
        assert!(is_one_click("", b"List-Unsubscribe=One-Click"));
        assert!(!is_one_click(form, b""));
        assert!(!is_one_click(form, b"List-Unsubscribe=Two-Clicks"));
        assert!(!is_one_click(form, b"list-unsubscribe=one-click"));
        let mp = "multipart/form-data; boundary=\"XyZ\"";
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XyZ--\r\n";
        assert!(is_one_click(mp, body));
        let other =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nOne-Click\r\n--XyZ--\r\n";
        assert!(!is_one_click(mp, other));
        assert!(!is_one_click("multipart/form-data", body));
        assert!(!is_one_click(mp, "--XyZ\r\n\u{e9}\r\n\r\n".as_bytes()));
    }

    #[test]
    fn each_refusal_is_a_4xx() {
        for r in [
            Refusal::Token(TokenError::Malformed),
            Refusal::Token(TokenError::UnknownKey),
            Refusal::Token(TokenError::BadSignature),
            Refusal::Token(TokenError::Expired),
            Refusal::UnknownList,
            Refusal::BadAddress,
            Refusal::NotMember,
            Refusal::NotOneClick,
        ] {
            assert!(r.status().is_client_error(), "{r:?}");
        }
        assert_eq!(
            Refusal::Token(TokenError::Expired).status(),
            StatusCode::GONE
        );
        assert_eq!(
            Refusal::Token(TokenError::BadSignature).status(),
            StatusCode::FORBIDDEN
        );
    }
}
