//! The web admin's pages, rendered from the `web-page` template with
//! every value HTML-escaped (`page::html`); they work without JavaScript.
//!
//! - `/`: the advertised lists with their descriptions, each with a
//!   subscribe form. `POST /subscribe` needs no login and no CSRF token:
//!   it only starts the robot's double opt-in (a confirmation mailed to
//!   the address), and is rate-limited per client IP.
//! - `/moderate` (owners, moderators, admins): the held posts of the
//!   lists the user moderates, newest first, with reason, sender, subject
//!   and a plain-text preview (never the post's HTML), per-post buttons and
//!   a bulk action on the checked posts. Its `POST` checks the session's
//!   CSRF token and acts through `service::act`.
//!
//! Trusts the session (`login::current`) and nothing in the form.

use super::login::{self, csrf_ok, field, form_fields, Current};
use super::service::{self, ServiceError};
use super::{page, with_store, ClientIp, WebState};
use crate::handler::Ctx;
use crate::moderation::ActOutcome;
use crate::robot::exec::SubscribeStart;
use crate::store;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Value};

/// Held posts shown per list on `/moderate`.
const PAGE_PER_LIST: i64 = 100;

/// The page of a service refusal.
pub(super) fn refused(ctx: &Ctx, cur: Option<&Current>, e: ServiceError) -> Response {
    refused_in(ctx, None, cur, e)
}

/// The page of a service refusal, in `list`'s templates where given.
pub(super) fn refused_in(
    ctx: &Ctx,
    list: Option<&str>,
    cur: Option<&Current>,
    e: ServiceError,
) -> Response {
    let (status, title, message) = match e {
        ServiceError::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", m),
        ServiceError::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", m),
        ServiceError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Nothing done", m),
        ServiceError::RateLimited(m) => (StatusCode::TOO_MANY_REQUESTS, "Too many requests", m),
        ServiceError::Conflict(_) | ServiceError::VersionMismatch(_) => {
            (StatusCode::CONFLICT, "Changed meanwhile", e.message())
        }
        ServiceError::VersionRequired(_) | ServiceError::Invalid { .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Nothing saved",
            e.message(),
        ),
        ServiceError::Store(e) => {
            tracing::error!(error = %e, "web: store error");
            return super::unavailable();
        }
    };
    let mut data = json!({});
    login::user_data(&mut data, cur);
    page::html(
        &ctx.templates,
        list,
        status,
        "refused",
        title,
        &message,
        data,
    )
}

/// `GET /`: the advertised lists, and a subscribe form for each.
pub async fn lists(State(s): State<WebState>, headers: HeaderMap) -> Response {
    let ctx = s.live.current();
    let cur = match login::current(&s, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (c, caller) = (ctx.clone(), cur.as_ref().map(Current::caller));
    let views = with_store(&s, &ctx, move |conn| {
        Ok(service::lists(conn, &c.config, caller.as_ref()))
    })
    .await;
    let views = match views {
        Err(r) => return r,
        Ok(Err(e)) => return refused(&ctx, cur.as_ref(), e),
        Ok(Ok(v)) => v,
    };
    let mut data = json!({ "lists": views });
    login::user_data(&mut data, cur.as_ref());
    page::html(
        &ctx.templates,
        None,
        StatusCode::OK,
        "lists_page",
        &format!("Mailing lists at {}", ctx.config.domain),
        "Subscribe below: we mail you a confirmation, and nothing happens until you answer it.",
        data,
    )
}

/// `POST /subscribe` with `list` and `address`: starts the double opt-in.
pub async fn subscribe(
    State(s): State<WebState>,
    Extension(ip): Extension<ClientIp>,
    body: Bytes,
) -> Response {
    let ctx = s.live.current();
    let fields = form_fields(&body);
    let list = field(&fields, "list").unwrap_or_default().to_string();
    let address = field(&fields, "address").unwrap_or_default().to_string();
    let (c, l) = (ctx.clone(), list.clone());
    let out = with_store(&s, &ctx, move |conn| {
        Ok(service::subscribe(
            &c,
            conn,
            &l,
            &address,
            &ip.bucket(),
            store::now(),
        ))
    })
    .await;
    match out {
        Err(r) => r,
        Ok(Err(e)) => refused(&ctx, None, e),
        Ok(Ok(SubscribeStart::Closed)) => page::html(
            &ctx.templates,
            Some(&list),
            StatusCode::FORBIDDEN,
            "refused",
            "This list is closed",
            &format!("The owners of the {list} list add its members themselves."),
            json!({}),
        ),
        Ok(Ok(SubscribeStart::Asked)) => {
            s.wakers.delivery.notify_one();
            page::html(
                &ctx.templates,
                Some(&list),
                StatusCode::OK,
                "done",
                "Check your mail",
                &format!(
                    "We have mailed a confirmation request for the {list} list. \
                     Nothing changes until you answer it."
                ),
                json!({}),
            )
        }
    }
}

/// The logged-in caller who moderates some list, or the refusal page.
async fn moderator(s: &WebState, ctx: &Ctx, headers: &HeaderMap) -> Result<Current, Response> {
    let Some(cur) = login::current(s, ctx, headers).await? else {
        return Err(login::login_needed(ctx));
    };
    if service::moderated(&ctx.config, &cur.caller()).is_empty() {
        return Err(refused(
            ctx,
            Some(&cur),
            ServiceError::Forbidden(format!("{} moderates no list here.", cur.session.address)),
        ));
    }
    Ok(cur)
}

/// The moderation page, with `results` (what the last POST did) on top.
async fn queue_page(s: &WebState, ctx: &Ctx, cur: &Current, results: Vec<Value>) -> Response {
    let (c, caller) = (ctx.clone(), cur.caller());
    let held = with_store(s, ctx, move |conn| {
        Ok(service::all_held(conn, &c.config, &caller, PAGE_PER_LIST))
    })
    .await;
    let held = match held {
        Err(r) => return r,
        Ok(Err(e)) => return refused(ctx, Some(cur), e),
        Ok(Ok(h)) => h,
    };
    let message = match held.len() {
        0 => "No posts are waiting.".to_string(),
        1 => "1 post is waiting.".to_string(),
        n => format!("{n} posts are waiting, newest first."),
    };
    let mut data = json!({ "held": held, "results": results });
    login::user_data(&mut data, Some(cur));
    page::html(
        &ctx.templates,
        None,
        StatusCode::OK,
        "moderate",
        "Moderation queue",
        &message,
        data,
    )
}

/// `GET /moderate`.
pub async fn moderate(State(s): State<WebState>, headers: HeaderMap) -> Response {
    let ctx = s.live.current();
    match moderator(&s, &ctx, &headers).await {
        Err(r) => r,
        Ok(cur) => queue_page(&s, &ctx, &cur, Vec::new()).await,
    }
}

/// What a moderation form asks: (post id, action word, reason) for each
/// post, from `do=ACTION:ID` (one post, its reason in `reason-ID`) or
/// `do=bulk` (every checked `id`, with `bulk_action` and `bulk_reason`).
pub fn requested(fields: &[(String, String)]) -> Result<Vec<(i64, String, String)>, String> {
    let what = field(fields, "do").ok_or("the form named no action")?;
    let id = |s: &str| {
        s.trim()
            .parse::<i64>()
            .map_err(|_| format!("`{s}` is not a post number"))
    };
    if what == "bulk" {
        let action = field(fields, "bulk_action").unwrap_or_default();
        let reason = field(fields, "bulk_reason").unwrap_or_default();
        let ids = fields
            .iter()
            .filter(|(k, _)| k == "id")
            .map(|(_, v)| id(v))
            .collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            return Err("no post was selected".into());
        }
        return Ok(ids
            .into_iter()
            .map(|i| (i, action.to_string(), reason.to_string()))
            .collect());
    }
    let (action, n) = what
        .split_once(':')
        .ok_or_else(|| format!("`{what}` is not an action"))?;
    let n = id(n)?;
    let reason = field(fields, &format!("reason-{n}")).unwrap_or_default();
    Ok(vec![(n, action.to_string(), reason.to_string())])
}

/// `POST /moderate`: acts on one post or on the checked ones.
pub async fn moderate_act(State(s): State<WebState>, headers: HeaderMap, body: Bytes) -> Response {
    let ctx = s.live.current();
    let cur = match moderator(&s, &ctx, &headers).await {
        Err(r) => return r,
        Ok(c) => c,
    };
    let fields = form_fields(&body);
    if !csrf_ok(&cur.session, &fields) {
        return login::csrf_refused(&ctx);
    }
    let asked = match requested(&fields) {
        Ok(a) => a,
        Err(m) => return refused(&ctx, Some(&cur), ServiceError::BadRequest(m)),
    };
    let (c, caller) = (ctx.clone(), cur.caller());
    let done = with_store(&s, &ctx, move |conn| {
        let mut out = Vec::new();
        for (id, action, reason) in asked {
            let r = service::parse_action(&action).and_then(|a| {
                let reason = Some(reason.as_str()).filter(|r| !r.trim().is_empty());
                service::act(&c, conn, &caller, None, id, a, reason, store::now())
            });
            out.push(match r {
                Ok(ActOutcome::Done(t)) => json!({"ok": true, "text": t}),
                Ok(o) => json!({"ok": false, "text": o.text()}),
                Err(ServiceError::Store(e)) => return Err(e),
                Err(e) => json!({"ok": false, "text": e.message()}),
            });
        }
        Ok(out)
    })
    .await;
    match done {
        Err(r) => r,
        Ok(results) => {
            s.wakers.delivery.notify_one();
            queue_page(&s, &ctx, &cur, results).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_form_names_one_post_or_the_checked_ones() {
        assert_eq!(
            requested(&f(&[("do", "reject:7"), ("reason-7", "off topic")])).unwrap(),
            vec![(7, "reject".into(), "off topic".into())]
        );
        assert_eq!(
            requested(&f(&[
                ("id", "3"),
                ("id", "4"),
                ("do", "bulk"),
                ("bulk_action", "discard"),
            ]))
            .unwrap(),
            vec![
                (3, "discard".into(), "".into()),
                (4, "discard".into(), "".into())
            ]
        );
        assert!(requested(&f(&[("do", "bulk"), ("bulk_action", "ban")])).is_err());
        assert!(requested(&f(&[("do", "approve:x")])).is_err());
        assert!(requested(&f(&[("do", "approve")])).is_err());
        assert!(requested(&f(&[])).is_err());
        // a multi-byte value never panics
        assert!(requested(&f(&[("do", "é:é")])).is_err());
    }
}
