//! The archive's REST endpoints (JSON), over `archive_service` like the
//! pages: a list's posts (`?month=` for one month by date, else newest
//! first; keyset-paged by `after`), full-text search (newest first, paged
//! by `before`), and one post with its text body and attachment list.
//!
//! A public archive is readable without a token; a members' or owners'
//! one needs `Authorization: Bearer` with an admin token or the list's
//! token (401 without one, 403 with another). Errors are the API's
//! `{"error", "detail"}` bodies.
//!
//! Trusts only the token; every path and query value is checked.

use super::api::{caller, error, service_error, unavailable};
use super::archive_service::{self as svc, MonthOrder};
use super::service::{Caller, ServiceError};
use super::{with_store, WebState};
use crate::handler::Ctx;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// Posts or hits per answer unless `limit` says otherwise.
pub const DEFAULT_LIMIT: i64 = 50;

/// The request's caller: none without an Authorization header, the
/// token's with a valid one, a 401 with an invalid one.
async fn optional_caller(
    s: &WebState,
    ctx: &Ctx,
    headers: &HeaderMap,
) -> Result<Option<Caller>, Response> {
    if headers.get(header::AUTHORIZATION).is_none() {
        return Ok(None);
    }
    caller(s, ctx, headers).await.map(Some)
}

/// The query's `names` fields, refusing any other; numbers as given.
fn query(q: Option<&str>, names: &[&str]) -> Result<Vec<(String, String)>, Response> {
    let mut out = Vec::new();
    for (k, v) in form_urlencoded::parse(q.unwrap_or_default().as_bytes()) {
        if !names.contains(&k.as_ref()) {
            let m = format!("unknown parameter `{k}`: use {}", names.join(", "));
            return Err(error(StatusCode::BAD_REQUEST, "bad_request", &m));
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

fn number(fields: &[(String, String)], name: &str) -> Result<Option<i64>, Response> {
    match fields.iter().find(|(k, _)| k == name) {
        None => Ok(None),
        Some((_, v)) => v.parse::<i64>().map(Some).map_err(|_| {
            let m = format!("`{name}` must be a whole number, not `{v}`");
            error(StatusCode::BAD_REQUEST, "bad_request", &m)
        }),
    }
}

fn limit(fields: &[(String, String)]) -> Result<i64, Response> {
    match number(fields, "limit")? {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=svc::PAGE_MAX).contains(&n) => Ok(n),
        Some(_) => Err(error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            &format!("`limit` must be from 1 to {}", svc::PAGE_MAX),
        )),
    }
}

/// Runs `f` as the request's caller; the JSON answer or the error.
async fn answer(
    s: &WebState,
    headers: &HeaderMap,
    f: impl FnOnce(&rusqlite::Connection, &Ctx, Option<&Caller>) -> Result<Value, ServiceError>
        + Send
        + 'static,
) -> Response {
    let ctx = s.live.current();
    let who = match optional_caller(s, &ctx, headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (c, anonymous) = (ctx.clone(), who.is_none());
    match with_store(s, &ctx, move |conn| Ok(f(conn, &c, who.as_ref()))).await {
        Err(_) => unavailable(),
        Ok(Err(ServiceError::Forbidden(m))) if anonymous => error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            &format!("{m}: send an API token as `Authorization: Bearer TOKEN`"),
        ),
        Ok(Err(e)) => service_error(e),
        Ok(Ok(v)) => Json(v).into_response(),
    }
}

/// The next page's cursor: the last id of a full page.
fn next(ids: impl DoubleEndedIterator<Item = i64> + ExactSizeIterator, limit: i64) -> Option<i64> {
    let n = ids.len() as i64;
    ids.last().filter(|_| n == limit)
}

/// `GET /api/lists/{list}/archive?month=&after=&limit=`.
pub async fn posts(
    State(s): State<WebState>,
    Path(list): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let fields = match query(q.as_deref(), &["month", "after", "limit"]) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let (after, limit) = match (number(&fields, "after"), limit(&fields)) {
        (Ok(a), Ok(l)) => (a, l),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let month = fields
        .iter()
        .find(|(k, _)| k == "month")
        .map(|(_, v)| v.clone());
    answer(&s, &headers, move |conn, ctx, who| {
        let posts = match &month {
            Some(m) => svc::month_posts(
                conn,
                &ctx.config,
                who,
                &list,
                m,
                MonthOrder::Date,
                after,
                limit,
            )?,
            None => svc::newest_posts(conn, &ctx.config, who, &list, after, limit)?,
        };
        let next_after = next(posts.iter().map(|p| p.id), limit);
        Ok(json!({ "posts": posts, "next_after": next_after }))
    })
    .await
}

/// `GET /api/lists/{list}/archive/search?q=&before=&limit=`.
pub async fn search(
    State(s): State<WebState>,
    Path(list): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let fields = match query(q.as_deref(), &["q", "before", "limit"]) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let (before, limit) = match (number(&fields, "before"), limit(&fields)) {
        (Ok(b), Ok(l)) => (b, l),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let needle = fields
        .iter()
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    answer(&s, &headers, move |conn, ctx, who| {
        let found = svc::search(conn, &ctx.config, who, &list, &needle, before, limit)?;
        let next_before = next(found.hits.iter().map(|h| h.post.id), limit);
        Ok(json!({
            "hits": found.hits, "next_before": next_before,
            "index_complete": found.index_complete,
        }))
    })
    .await
}

/// `GET /api/lists/{list}/archive/{id}`.
pub async fn post(
    State(s): State<WebState>,
    Path((list, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(&s, &headers, move |conn, ctx, who| {
        let id = id
            .parse::<i64>()
            .map_err(|_| ServiceError::NotFound(format!("`{id}` is not a post number")))?;
        let m = svc::message(conn, &ctx.config, who, &list, id)?;
        Ok(json!({
            "post": m.post, "month": m.month, "from": m.from_full, "to": m.to, "cc": m.cc,
            "text": m.text, "attachments": m.attachments,
            "parent": m.parent_post, "replies": m.replies,
        }))
    })
    .await
}

/// The archive's paths and schemas for `/api/openapi.json`.
pub fn openapi_paths(answer: impl Fn(&str) -> Value) -> (Value, Value) {
    let list_param =
        json!({"name": "list", "in": "path", "required": true, "schema": {"type": "string"}});
    let limit = json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": svc::PAGE_MAX, "default": DEFAULT_LIMIT}});
    let post_ref = json!({"$ref": "#/components/schemas/ArchivedPost"});
    let refusals = |ok: Value| {
        json!({
            "200": ok,
            "400": answer("bad month, after, before, q or limit"),
            "401": answer("the archive is not public and no token (or an invalid one) was sent"),
            "403": answer("the token may not read this archive"),
            "404": answer("no such list, no archive, or no such post"),
        })
    };
    let paths = json!({
        "/api/lists/{list}/archive": {"get": {
            "summary": "Archived posts: one month by date, or the newest first; keyset-paged",
            "security": [{}, {"bearer": []}],
            "parameters": [list_param,
                {"name": "month", "in": "query", "schema": {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"}},
                {"name": "after", "in": "query", "description": "next_after of the previous page", "schema": {"type": "integer", "format": "int64"}},
                limit],
            "responses": refusals(json!({"description": "a page of posts", "content": {"application/json": {"schema": {
                "type": "object", "required": ["posts", "next_after"], "properties": {
                    "posts": {"type": "array", "items": post_ref},
                    "next_after": {"type": ["integer", "null"], "format": "int64"}}}}}}))}},
        "/api/lists/{list}/archive/search": {"get": {
            "summary": "Full-text search of From, Subject and text, newest first",
            "security": [{}, {"bearer": []}],
            "parameters": [list_param,
                {"name": "q", "in": "query", "required": true, "schema": {"type": "string", "minLength": 3, "maxLength": 200}},
                {"name": "before", "in": "query", "description": "next_before of the previous page", "schema": {"type": "integer", "format": "int64"}},
                limit],
            "responses": refusals(json!({"description": "matching posts", "content": {"application/json": {"schema": {
                "type": "object", "required": ["hits", "next_before", "index_complete"], "properties": {
                    "index_complete": {"type": "boolean", "description": "false while the search index still catches up with the archive (older posts may be missing)"},
                    "hits": {"type": "array", "items": {"allOf": [post_ref, {"type": "object", "required": ["snippet"], "properties": {"snippet": {"type": "string"}}}]}},
                    "next_before": {"type": ["integer", "null"], "format": "int64"}}}}}}))}},
        "/api/lists/{list}/archive/{id}": {"get": {
            "summary": "One archived post: its headers, text body and attachments",
            "security": [{}, {"bearer": []}],
            "parameters": [list_param, {"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64", "minimum": 1}}],
            "responses": refusals(json!({"description": "the post", "content": {"application/json": {"schema": {
                "type": "object", "required": ["post", "month", "from", "to", "cc", "text", "attachments", "parent", "replies"], "properties": {
                    "post": post_ref, "month": {"type": "string"}, "from": {"type": "string"},
                    "to": {"type": "string"}, "cc": {"type": "string"}, "text": {"type": "string"},
                    "attachments": {"type": "array", "items": {"type": "object", "required": ["n", "name", "content_type", "size"], "properties": {
                        "n": {"type": "integer", "format": "int64", "description": "download: /archive/{list}/msg/{id}/part/{n}"},
                        "name": {"type": "string"}, "content_type": {"type": "string"}, "size": {"type": "integer", "format": "int64"}}}},
                    "parent": {"oneOf": [post_ref, {"type": "null"}]},
                    "replies": {"type": "array", "items": post_ref}}}}}}))}}
    });
    let schemas = json!({
        "ArchivedPost": {"type": "object", "required": ["id", "message_id", "date", "date_text", "from", "subject", "parent"], "properties": {
            "id": {"type": "integer", "format": "int64"}, "message_id": {"type": "string"},
            "date": {"type": "integer", "format": "int64", "description": "unix seconds"},
            "date_text": {"type": "string"}, "from": {"type": "string"}, "subject": {"type": "string"},
            "parent": {"type": ["string", "null"], "description": "the Message-ID it answers"}}}
    });
    (paths, schemas)
}
