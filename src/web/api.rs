//! The REST API (JSON) under `/api`: the lists, a list's held posts (paged,
//! newest first) and an action on one, over the same service layer as the
//! pages; `/api/openapi.json` describes exactly these endpoints.
//!
//! Authentication is an API token (`listd api-token create`) in
//! `Authorization: Bearer`, found by its hash; cookies are ignored, so no
//! CSRF token is needed. Errors are `{"error": CODE, "detail": TEXT}` with
//! 400, 401, 403, 404, 409 or 429.
//!
//! Trusts only the token; every path and body value is checked.

use super::credentials;
use super::service::{self, Caller, ServiceError};
use super::{with_store, WebState};
use crate::handler::Ctx;
use crate::moderation::ActOutcome;
use crate::store;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// Held posts per page unless `limit` says otherwise (at most 500).
const DEFAULT_LIMIT: i64 = 50;

/// A JSON error answer.
pub(super) fn error(status: StatusCode, code: &str, detail: &str) -> Response {
    (status, Json(json!({"error": code, "detail": detail}))).into_response()
}

pub(super) fn service_error(e: ServiceError) -> Response {
    match e {
        ServiceError::NotFound(m) => error(StatusCode::NOT_FOUND, "not_found", &m),
        ServiceError::Forbidden(m) => error(StatusCode::FORBIDDEN, "forbidden", &m),
        ServiceError::BadRequest(m) => error(StatusCode::BAD_REQUEST, "bad_request", &m),
        ServiceError::RateLimited(m) => error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", &m),
        ServiceError::Conflict(m) => error(StatusCode::CONFLICT, "conflict", &m),
        ServiceError::Invalid { key, message } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "invalid_setting", "detail": format!("{key}: {message}"), "key": key})),
        )
            .into_response(),
        ServiceError::VersionRequired(m) => {
            error(StatusCode::PRECONDITION_REQUIRED, "version_required", &m)
        }
        ServiceError::VersionMismatch(m) => {
            error(StatusCode::PRECONDITION_FAILED, "version_mismatch", &m)
        }
        ServiceError::Store(e) => {
            tracing::error!(error = %e, "api: store error");
            unavailable()
        }
    }
}

/// The JSON 503 when the store cannot be used (`with_store` logged why).
pub(super) fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "temporarily unavailable; try again later",
    )
}

/// The bearer token of the request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The caller a request's token names, or the 401.
pub(super) async fn caller(
    s: &WebState,
    ctx: &Ctx,
    headers: &HeaderMap,
) -> Result<Caller, Response> {
    let Some(token) = bearer(headers) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send an API token as `Authorization: Bearer TOKEN` (listd api-token create)",
        ));
    };
    let found = with_store(s, ctx, move |conn| {
        Ok(credentials::api_token(conn, &token)?)
    })
    .await
    .map_err(|_| unavailable())?;
    found.map(Caller::Token).ok_or_else(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this API token is not valid (unknown or revoked)",
        )
    })
}

/// `GET /api/lists`.
pub async fn lists(State(s): State<WebState>, headers: HeaderMap) -> Response {
    let ctx = s.live.current();
    let who = match caller(&s, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let c = ctx.clone();
    match with_store(&s, &ctx, move |conn| {
        Ok(service::lists(conn, &c.config, Some(&who)))
    })
    .await
    {
        Err(_) => unavailable(),
        Ok(Err(e)) => service_error(e),
        Ok(Ok(v)) => Json(json!({ "lists": v })).into_response(),
    }
}

/// `limit` and `after` of a held-posts query.
fn paging(query: Option<&str>) -> Result<(i64, Option<i64>), String> {
    let (mut limit, mut after) = (DEFAULT_LIMIT, None);
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let n = || {
            v.parse::<i64>()
                .map_err(|_| format!("`{k}` must be a whole number, not `{v}`"))
        };
        match k.as_ref() {
            "limit" => {
                limit = n()?;
                if !(1..=500).contains(&limit) {
                    return Err("`limit` must be from 1 to 500".into());
                }
            }
            "after" => {
                let a = n()?;
                if a < 0 {
                    return Err("`after` must be 0 or more".into());
                }
                after = Some(a)
            }
            _ => return Err(format!("unknown parameter `{k}`: use limit and after")),
        }
    }
    Ok((limit, after))
}

/// `GET /api/lists/{list}/held?limit=&after=`.
pub async fn held(
    State(s): State<WebState>,
    Path(list): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let ctx = s.live.current();
    let who = match caller(&s, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (limit, after) = match paging(query.as_deref()) {
        Ok(p) => p,
        Err(m) => return error(StatusCode::BAD_REQUEST, "bad_request", &m),
    };
    let c = ctx.clone();
    match with_store(&s, &ctx, move |conn| {
        Ok(service::held_posts(
            conn, &c.config, &who, &list, after, limit,
        ))
    })
    .await
    {
        Err(_) => unavailable(),
        Ok(Err(e)) => service_error(e),
        Ok(Ok(v)) => {
            let next = (v.len() as i64 == limit)
                .then(|| v.last().map(|h| h.id))
                .flatten();
            Json(json!({ "held": v, "next_after": next })).into_response()
        }
    }
}

/// `GET /api/lists/{list}/members?q=&after=&limit=`: keyset-paged by
/// address key; `next_after` names the next page.
pub async fn members(
    State(s): State<WebState>,
    Path(list): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let ctx = s.live.current();
    let who = match caller(&s, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (mut q, mut after, mut limit) = (String::new(), None, 50);
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "q" => q = v.into_owned(),
            "after" => after = Some(v.into_owned()),
            "limit" => match v.parse::<i64>() {
                Ok(n) if (1..=500).contains(&n) => limit = n,
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "`limit` must be from 1 to 500",
                    )
                }
            },
            _ => {
                let m = format!("unknown parameter `{k}`: use q, after and limit");
                return error(StatusCode::BAD_REQUEST, "bad_request", &m);
            }
        }
    }
    let c = ctx.clone();
    match with_store(&s, &ctx, move |conn| {
        Ok(service::members_page(
            conn,
            &c.config,
            &who,
            &list,
            &q,
            after.as_deref(),
            limit,
        ))
    })
    .await
    {
        Err(_) => unavailable(),
        Ok(Err(e)) => service_error(e),
        Ok(Ok(v)) => {
            let next = (v.len() as i64 == limit)
                .then(|| v.last().map(|m| m.key.clone()))
                .flatten();
            Json(json!({ "members": v, "next_after": next })).into_response()
        }
    }
}

/// The body of an action.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActBody {
    action: String,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /api/lists/{list}/held/{id}` with `{"action": ..., "reason": ...}`.
pub async fn act(
    State(s): State<WebState>,
    Path((list, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = s.live.current();
    let who = match caller(&s, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(id) = id.parse::<i64>() else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("`{id}` is not a held post number"),
        );
    };
    let b: ActBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!(
                "the body must be JSON like {{\"action\": \"approve\", \"reason\": \"...\"}}: {e}"
            ),
            )
        }
    };
    let c = ctx.clone();
    let out = with_store(&s, &ctx, move |conn| {
        Ok(service::parse_action(&b.action).and_then(|a| {
            service::moderated_list(&c.config, &who, &list)?;
            service::act(
                &c,
                conn,
                &who,
                Some(&list),
                id,
                a,
                b.reason.as_deref(),
                store::now(),
            )
        }))
    })
    .await;
    match out {
        Err(_) => unavailable(),
        Ok(Err(e)) => service_error(e),
        Ok(Ok(ActOutcome::Done(t))) => {
            s.wakers.delivery.notify_one();
            Json(json!({"outcome": "done", "detail": t})).into_response()
        }
        Ok(Ok(ActOutcome::Already(t))) => error(StatusCode::CONFLICT, "already_acted", &t),
        Ok(Ok(ActOutcome::NotFound(t))) => error(StatusCode::NOT_FOUND, "not_found", &t),
    }
}

/// Any other path under `/api`: a JSON 404.
pub async fn unknown(uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!(
            "no endpoint {}: see /api/openapi.json",
            uri.path().chars().take(200).collect::<String>()
        ),
    )
}

/// `GET /api/openapi.json`: needs no token.
pub async fn openapi() -> Response {
    Json(openapi_document()).into_response()
}

/// The OpenAPI 3.1 description of the API: the moderation part here, the
/// owners' part from `api_owner`, merged path by path.
pub fn openapi_document() -> Value {
    let mut doc = moderation_document();
    for (section, more) in [
        ("paths", super::api_owner::openapi_paths()),
        ("schemas", super::api_owner::openapi_schemas()),
    ] {
        let target = match section {
            "paths" => &mut doc["paths"],
            _ => &mut doc["components"]["schemas"],
        };
        if let (Value::Object(t), Value::Object(m)) = (target, more) {
            for (k, v) in m {
                match (t.get_mut(&k), v) {
                    (Some(Value::Object(have)), Value::Object(ops)) => have.extend(ops),
                    (_, v) => {
                        t.insert(k, v);
                    }
                }
            }
        }
    }
    doc
}

fn moderation_document() -> Value {
    let err = json!({"$ref": "#/components/schemas/Error"});
    let answer =
        |d: &str| json!({"description": d, "content": {"application/json": {"schema": err}}});
    let list_param =
        json!({"name": "list", "in": "path", "required": true, "schema": {"type": "string"}});
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "listd", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Moderation and administration of listd mailing lists. Authenticate with an API token (`listd api-token create NAME --role admin|list:NAME`) as `Authorization: Bearer TOKEN`."},
        "security": [{"bearer": []}],
        "paths": {
            "/api/lists": {"get": {
                "summary": "The advertised lists, and those the token may moderate",
                "responses": {
                    "200": {"description": "the lists", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"lists": {"type": "array", "items": {"$ref": "#/components/schemas/List"}}}}}}},
                    "401": answer("no token, or not a valid one")}}},
            "/api/lists/{list}/held": {"get": {
                "summary": "Held posts of a list, newest first",
                "parameters": [list_param,
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": DEFAULT_LIMIT}},
                    {"name": "after", "in": "query", "description": "the last id of the previous page", "schema": {"type": "integer", "format": "int64", "minimum": 0}}],
                "responses": {
                    "200": {"description": "a page of held posts", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {
                            "held": {"type": "array", "items": {"$ref": "#/components/schemas/Held"}},
                            "next_after": {"type": ["integer", "null"]}}}}}},
                    "400": answer("bad limit or after"),
                    "401": answer("no token, or not a valid one"),
                    "403": answer("the token does not moderate this list"),
                    "404": answer("no such list")}}},
            "/api/lists/{list}/members": {"get": {
                "summary": "Members of a list by address, keyset-paged (owners, admins, the list's tokens)",
                "parameters": [list_param,
                    {"name": "q", "in": "query", "description": "address prefix", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
                    {"name": "after", "in": "query", "description": "next_after of the previous page", "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "a page of members", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {
                            "members": {"type": "array", "items": {"$ref": "#/components/schemas/Member"}},
                            "next_after": {"type": ["string", "null"]}}}}}},
                    "400": answer("bad q, limit or after"),
                    "401": answer("no token, or not a valid one"),
                    "403": answer("the token does not administer this list"),
                    "404": answer("no such list")}}},
            "/api/lists/{list}/held/{id}": {"post": {
                "summary": "Act on a held post; the first action wins",
                "parameters": [list_param, {"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64", "minimum": 1}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["action"], "additionalProperties": false, "properties": {
                        "action": {"type": "string", "enum": ["approve", "accept", "reject", "discard", "ban"]},
                        "reason": {"type": ["string", "null"], "description": "recorded; on reject also sent to the poster"}}}}}},
                "responses": {
                    "200": {"description": "done", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"outcome": {"const": "done"}, "detail": {"type": "string"}}}}}},
                    "400": answer("bad body or action"),
                    "401": answer("no token, or not a valid one"),
                    "403": answer("the token does not moderate this list"),
                    "404": answer("no such list or held post"),
                    "409": answer("already acted on: the detail says by whom and when")}}}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "detail"], "properties": {
                    "error": {"type": "string"}, "detail": {"type": "string"}}},
                "List": {"type": "object", "properties": {
                    "name": {"type": "string"}, "description": {"type": "string"},
                    "address": {"type": "string"}, "advertised": {"type": "boolean"},
                    "moderated_by_caller": {"type": "boolean"},
                    "held": {"type": "integer", "description": "posts waiting; only on lists the token moderates"},
                    "archive": {"type": "boolean", "description": "whether the token may read the list's archive"}}},
                "Held": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "list": {"type": "string"},
                    "reason": {"type": "string"}, "detail": {"type": "string"},
                    "sender": {"type": "string"}, "subject": {"type": "string"},
                    "size": {"type": "integer"}, "held_at": {"type": "integer"},
                    "held_at_text": {"type": "string"},
                    "preview": {"type": "string", "description": "the first lines of the text, plain"}}}
            }
        }
    });
    let (paths, schemas) = super::archive_api::openapi_paths(answer);
    for (key, add) in [
        ("paths", paths),
        ("components", json!({ "schemas": schemas })),
    ] {
        merge(&mut doc[key], add);
    }
    doc
}

/// Adds `add`'s keys to `into`, object by object.
fn merge(into: &mut Value, add: Value) {
    match (into, add) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_and_bearer_are_checked() {
        assert_eq!(paging(None).unwrap(), (DEFAULT_LIMIT, None));
        assert_eq!(paging(Some("limit=2&after=9")).unwrap(), (2, Some(9)));
        for bad in [
            "limit=0",
            "limit=501",
            "limit=x",
            "after=",
            "after=-1",
            "page=2",
            "limit=%C3%A9",
        ] {
            assert!(paging(Some(bad)).is_err(), "{bad}");
        }
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h).as_deref(), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
