//! The list archive in the browser, rendered from the `web-archive`
//! template with every value HTML-escaped; no JavaScript:
//!
//! - `/archive/{list}`: the months, with their post counts;
//! - `/archive/{list}/{YYYY-MM}`: the month as threads, or `?by=date` /
//!   `?by=author`, keyset-paged with `?after=ID`;
//! - `/archive/{list}/msg/{id}`: one message (headers, text, its HTML body
//!   as `archive_render` sanitized it, attachments, parent, replies, month
//!   neighbours); `/archive/{list}/msg/{id}/part/{n}` downloads one
//!   attachment;
//! - `/archive/{list}/search?q=`: full-text search, newest first, paged
//!   with `?before=ID`;
//! - `/archive/{list}/atom.xml`: the Atom feed, public archives only.
//!
//! Every answer carries a Content-Security-Policy that loads nothing from
//! elsewhere and runs no script. Who may read is `archive_service`'s
//! decision; a members' or owners' archive answers 401 with the login form
//! to a browser without a session, 403 to one whose user may not read it.
//!
//! Trusts the session (`login::current`) and nothing in the path or query.

use super::archive_service::{self as svc, MonthOrder};
use super::login::{self, Current};
use super::service::ServiceError;
use super::{page, with_store, WebState};
use crate::handler::Ctx;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

/// The template the archive pages are rendered from.
pub const TEMPLATE: &str = "web-archive";
/// Posts per month page and per search page.
pub const PER_PAGE: i64 = 100;

/// The archive's pages load nothing but themselves: inline styles, `data:`
/// images (in sanitized HTML bodies), forms to this site.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The archive's routes, each answer with [`CSP`].
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/archive/{list}", get(months))
        .route("/archive/{list}/atom.xml", get(atom))
        .route("/archive/{list}/search", get(search))
        .route("/archive/{list}/msg/{id}", get(message))
        .route("/archive/{list}/msg/{id}/part/{n}", get(part))
        .route("/archive/{list}/{month}", get(month))
        .layer(axum::middleware::from_fn(csp))
}

async fn csp(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    resp
}

/// The page of a service refusal: a login form (401) for a browser
/// without a session that others may read with.
fn refused(ctx: &Ctx, list: &str, cur: Option<&Current>, e: ServiceError) -> Response {
    match e {
        ServiceError::Forbidden(_) if cur.is_none() => login::login_needed(ctx),
        e => super::pages::refused_in(ctx, Some(list), cur, e),
    }
}

/// Renders an archive page; `html` (already sanitized) goes where the
/// template puts `{{html_slot}}`, after every other value was escaped.
fn render(
    ctx: &Ctx,
    list: &str,
    kind: &str,
    title: &str,
    mut data: Value,
    cur: Option<&Current>,
    html: Option<&str>,
) -> Response {
    let slot = format!("listd-html-{:032x}", rand::random::<u128>());
    if let Value::Object(m) = &mut data {
        m.insert(kind.into(), Value::Bool(true));
        m.insert("title".into(), title.into());
        m.insert("list".into(), list.into());
        if html.is_some() {
            m.insert("html_slot".into(), slot.clone().into());
        }
    }
    login::user_data(&mut data, cur);
    match ctx.templates.render_html(Some(list), TEMPLATE, &data) {
        Ok(mut body) => {
            if let Some(h) = html {
                body = body.replacen(&slot, h, 1);
            }
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                body,
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "web: the archive template failed");
            page::plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The archive page template is missing or broken.",
            )
        }
    }
}

/// The query's fields (pages ignore ones they do not know).
fn query_fields(q: Option<&str>) -> Vec<(String, String)> {
    login::form_fields(q.unwrap_or_default().as_bytes())
}

fn id_field(fields: &[(String, String)], name: &str) -> Result<Option<i64>, ServiceError> {
    login::field(fields, name)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| ServiceError::BadRequest(format!("`{name}` must be a post number")))
        })
        .transpose()
}

/// Runs `f` for the browser's session on the store; the page or refusal.
async fn serve<T: Send + 'static>(
    s: &WebState,
    headers: &HeaderMap,
    list: &str,
    f: impl FnOnce(
            &rusqlite::Connection,
            &Ctx,
            Option<&super::service::Caller>,
        ) -> Result<T, ServiceError>
        + Send
        + 'static,
    done: impl FnOnce(&Ctx, Option<&Current>, T) -> Response,
) -> Response {
    let ctx = s.live.current();
    let cur = match login::current(s, &ctx, headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (c, caller) = (ctx.clone(), cur.as_ref().map(Current::caller));
    match with_store(s, &ctx, move |conn| Ok(f(conn, &c, caller.as_ref()))).await {
        Err(r) => r,
        Ok(Err(e)) => refused(&ctx, list, cur.as_ref(), e),
        Ok(Ok(v)) => done(&ctx, cur.as_ref(), v),
    }
}

/// `GET /archive/{list}`.
async fn months(
    State(s): State<WebState>,
    Path(list): Path<String>,
    headers: HeaderMap,
) -> Response {
    let l = list.clone();
    serve(
        &s,
        &headers,
        &list.clone(),
        move |conn, ctx, caller| svc::months(conn, &ctx.config, caller, &l),
        |ctx, cur, months| {
            let title = format!("The {list} archive");
            render(
                ctx,
                &list,
                "months_page",
                &title,
                json!({ "months": months }),
                cur,
                None,
            )
        },
    )
    .await
}

/// `GET /archive/{list}/{month}?by=&after=`.
async fn month(
    State(s): State<WebState>,
    Path((list, month)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let fields = query_fields(q.as_deref());
    let by = login::field(&fields, "by").unwrap_or("thread").to_string();
    let after = id_field(&fields, "after");
    let (l, m, b) = (list.clone(), month.clone(), by.clone());
    serve(
        &s,
        &headers,
        &list.clone(),
        move |conn, ctx, caller| {
            let after = after?;
            let (items, next) = match b.as_str() {
                "date" | "author" => {
                    let order = if b == "date" {
                        MonthOrder::Date
                    } else {
                        MonthOrder::Author
                    };
                    let posts = svc::month_posts(
                        conn,
                        &ctx.config,
                        caller,
                        &l,
                        &m,
                        order,
                        after,
                        PER_PAGE,
                    )?;
                    let next = (posts.len() as i64 == PER_PAGE)
                        .then(|| posts.last().map(|p| p.id))
                        .flatten();
                    (serde_json::to_value(posts).unwrap_or_default(), next)
                }
                "thread" => {
                    let (t, next) =
                        svc::month_threads(conn, &ctx.config, caller, &l, &m, after, PER_PAGE)?;
                    (serde_json::to_value(t).unwrap_or_default(), next)
                }
                other => {
                    return Err(ServiceError::BadRequest(format!(
                        "`by={other}`: use thread, date or author"
                    )))
                }
            };
            Ok((items, next))
        },
        |ctx, cur, (items, next)| {
            let title = format!("{list}, {month}");
            let data = json!({
                "month": month, "posts": items, "next": next, "by": by,
                "by_thread": by == "thread", "by_date": by == "date", "by_author": by == "author",
                "empty": items.as_array().is_none_or(|a| a.is_empty()),
            });
            render(ctx, &list, "month_page", &title, data, cur, None)
        },
    )
    .await
}

/// `GET /archive/{list}/msg/{id}`.
async fn message(
    State(s): State<WebState>,
    Path((list, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let l = list.clone();
    serve(
        &s,
        &headers,
        &list.clone(),
        move |conn, ctx, caller| {
            let id = id
                .parse::<i64>()
                .map_err(|_| ServiceError::NotFound(format!("no post `{id}`")))?;
            svc::message(conn, &ctx.config, caller, &l, id)
        },
        |ctx, cur, m| {
            let title = if m.post.subject.trim().is_empty() {
                "(no subject)".to_string()
            } else {
                m.post.subject.clone()
            };
            let html = m.html.clone();
            let data = serde_json::to_value(&m).unwrap_or_default();
            render(
                ctx,
                &list,
                "message_page",
                &title,
                data,
                cur,
                html.as_deref(),
            )
        },
    )
    .await
}

/// `GET /archive/{list}/msg/{id}/part/{n}`: the attachment, to be saved.
async fn part(
    State(s): State<WebState>,
    Path((list, id, n)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let l = list.clone();
    serve(
        &s,
        &headers,
        &list.clone(),
        move |conn, ctx, caller| {
            let (Ok(id), Ok(n)) = (id.parse::<i64>(), n.parse::<u32>()) else {
                return Err(ServiceError::NotFound("no such attachment".into()));
            };
            svc::attachment(conn, &ctx.config, caller, &l, id, n)
        },
        |_, _, (info, bytes)| {
            let disposition = super::archive_render::disposition(&info.name);
            let mut resp = (StatusCode::OK, bytes).into_response();
            let h = resp.headers_mut();
            for (k, v) in [
                (header::CONTENT_TYPE, info.content_type),
                (header::CONTENT_DISPOSITION, disposition),
            ] {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    h.insert(k, v);
                }
            }
            resp
        },
    )
    .await
}

/// `GET /archive/{list}/search?q=&before=`.
async fn search(
    State(s): State<WebState>,
    Path(list): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let fields = query_fields(q.as_deref());
    let q = login::field(&fields, "q").unwrap_or_default().to_string();
    let before = id_field(&fields, "before");
    let (l, needle) = (list.clone(), q.clone());
    serve(
        &s,
        &headers,
        &list.clone(),
        move |conn, ctx, caller| {
            if needle.trim().is_empty() {
                // the bare form: only the access check
                svc::readable(conn, &ctx.config, caller, &l)?;
                return Ok(svc::SearchView {
                    hits: Vec::new(),
                    index_complete: true,
                });
            }
            svc::search(conn, &ctx.config, caller, &l, &needle, before?, PER_PAGE)
        },
        |ctx, cur, found| {
            let svc::SearchView {
                hits,
                index_complete,
            } = found;
            let next = (hits.len() as i64 == PER_PAGE)
                .then(|| hits.last().map(|h| h.post.id))
                .flatten()
                .map(|id| {
                    form_urlencoded::Serializer::new(String::new())
                        .append_pair("q", &q)
                        .append_pair("before", &id.to_string())
                        .finish()
                });
            let data = json!({
                "q": q, "hits": hits, "next": next, "searched": !q.trim().is_empty(),
                "indexing": !index_complete,
            });
            render(
                ctx,
                &list,
                "search_page",
                &format!("Search the {list} archive"),
                data,
                cur,
                None,
            )
        },
    )
    .await
}

/// `GET /archive/{list}/atom.xml`: public archives only.
async fn atom(State(s): State<WebState>, Path(list): Path<String>) -> Response {
    let ctx = s.live.current();
    let (c, l) = (ctx.clone(), list.clone());
    let out = with_store(&s, &ctx, move |conn| {
        Ok(svc::feed(
            conn,
            &c.config,
            &l,
            c.config.web.public_url.as_deref(),
            crate::store::now(),
        ))
    })
    .await;
    match out {
        Err(r) => r,
        Ok(Ok(feed)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
            super::archive_atom::render(&feed),
        )
            .into_response(),
        Ok(Err(ServiceError::Forbidden(_))) => page::plain(
            StatusCode::FORBIDDEN,
            "This archive is not public: it has no feed.",
        ),
        Ok(Err(e)) => refused(&ctx, &list, None, e),
    }
}
