//! The owners' REST endpoints (JSON), over `service_owner` and
//! `service_settings`: add, change and remove members, decide subscription
//! requests, read and edit settings (`ETag` / `If-Match`: 428 without it,
//! 412 when stale, 422 naming the key whose value is refused). Their part
//! of `/api/openapi.json` is [`openapi_paths`].
//!
//! Trusts only the API token (`api::caller`); every body is parsed here.

use super::api::{caller, error, service_error};
use super::service::Caller;
use super::service_owner::{self as owner, MemberChange};
use super::service_settings as settings;
use super::{save_settings, with_store, WebState};
use crate::handler::Ctx;
use crate::store;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

/// Largest body of an add request (10,000 addresses of a good length).
pub const ADD_BODY: usize = 1024 * 1024;

fn bad(detail: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", detail)
}

/// The body as a JSON object, or the 400 that says what it should be.
fn object(body: &[u8], like: &str) -> Result<Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad(&format!("the body must be a JSON object like {like}"))),
        Err(e) => Err(bad(&format!("the body must be JSON like {like}: {e}"))),
    }
}

/// The token's caller, or the 401: checked before anything in the
/// request is read.
async fn token(s: &WebState, headers: &HeaderMap) -> Result<Caller, Response> {
    caller(s, &s.live.current(), headers).await
}

/// Runs `f` as `who` on the store; its result, or the refusal.
async fn run<T: serde::Serialize + Send + 'static>(
    s: &WebState,
    who: Caller,
    f: impl FnOnce(&Ctx, &mut rusqlite::Connection, &Caller) -> super::service::ServiceResult<T>
        + Send
        + 'static,
) -> Result<T, Response> {
    let ctx = s.live.current();
    let c = ctx.clone();
    match with_store(s, &ctx, move |conn| Ok(f(&c, conn, &who))).await {
        Err(_) => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "temporarily unavailable; try again later",
        )),
        Ok(Err(e)) => Err(service_error(e)),
        Ok(Ok(v)) => Ok(v),
    }
}

/// `POST /api/lists/{list}/members` with `{"addresses": [...], "welcome": bool}`.
pub async fn add_members(
    State(s): State<WebState>,
    Path(list): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let who = match token(&s, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    const LIKE: &str = r#"{"addresses": ["ann@example.org"], "welcome": false}"#;
    let mut b = match object(&body, LIKE) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let addresses: Vec<String> = match b.remove("addresses") {
        Some(Value::Array(a)) => match a
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(()),
            })
            .collect()
        {
            Ok(a) => a,
            Err(()) => return bad("`addresses` must be a list of strings"),
        },
        _ => return bad(&format!("`addresses` must be a list of strings: {LIKE}")),
    };
    let welcome = match b.remove("welcome") {
        None => false,
        Some(Value::Bool(w)) => w,
        Some(_) => return bad("`welcome` must be true or false"),
    };
    if let Some(k) = b.keys().next() {
        return bad(&format!("unknown field `{k}`: use addresses and welcome"));
    }
    let out = run(&s, who, move |ctx, conn, who| {
        owner::add_members(ctx, conn, who, &list, &addresses, welcome, store::now())
    })
    .await;
    match out {
        Err(r) => r,
        Ok(results) => {
            s.wakers.delivery.notify_one();
            let n = |o: &str| results.iter().filter(|r| r.outcome == o).count();
            Json(
                json!({"added": n("added"), "already_member": n("already_member"),
                        "invalid": n("invalid"), "results": results}),
            )
            .into_response()
        }
    }
}

/// `DELETE /api/lists/{list}/members/{address}?goodbye=true|false`.
pub async fn remove_member(
    State(s): State<WebState>,
    Path((list, address)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let who = match token(&s, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut goodbye = false;
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match (k.as_ref(), v.as_ref()) {
            ("goodbye", "true") => goodbye = true,
            ("goodbye", "false") => goodbye = false,
            ("goodbye", _) => return bad("`goodbye` must be true or false"),
            _ => return bad(&format!("unknown parameter `{k}`: use goodbye")),
        }
    }
    let a = address.clone();
    let out = run(&s, who, move |ctx, conn, who| {
        owner::remove_member(ctx, conn, who, &list, &a, goodbye, store::now())
    })
    .await;
    match out {
        Err(r) => r,
        Ok(()) => {
            s.wakers.delivery.notify_one();
            Json(json!({"removed": address, "goodbye": goodbye})).into_response()
        }
    }
}

/// Reads a member change: `mode`, and `moderation` (a flag, or null to
/// clear it) or `moderated` (true: hold; false: clear).
fn member_change(mut b: Map<String, Value>) -> Result<MemberChange, String> {
    let mut change = MemberChange::default();
    if let Some(m) = b.remove("mode") {
        let m = m.as_str().ok_or("`mode` must be a string")?;
        change.mode = Some(owner::parse_mode(m).map_err(|e| e.message())?);
    }
    match (b.remove("moderation"), b.remove("moderated")) {
        (Some(_), Some(_)) => return Err("give `moderation` or `moderated`, not both".into()),
        (Some(Value::Null), None) => change.moderation = Some(None),
        (Some(Value::String(m)), None) => {
            change.moderation = Some(owner::parse_moderation(&m).map_err(|e| e.message())?)
        }
        (Some(_), None) => return Err("`moderation` must be a string or null".into()),
        (None, Some(Value::Bool(held))) => {
            change.moderation = Some(held.then_some(crate::store::members::Moderation::Hold))
        }
        (None, Some(_)) => return Err("`moderated` must be true or false".into()),
        (None, None) => {}
    }
    if let Some(k) = b.keys().next() {
        return Err(format!(
            "unknown field `{k}`: use mode, moderation or moderated"
        ));
    }
    if change == MemberChange::default() {
        return Err("nothing to change: give mode, moderation or moderated".into());
    }
    Ok(change)
}

/// `PATCH /api/lists/{list}/members/{address}` with `{"mode": ..., "moderated": bool}`.
pub async fn change_member(
    State(s): State<WebState>,
    Path((list, address)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let who = match token(&s, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let b = match object(&body, r#"{"mode": "nomail", "moderated": true}"#) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let change = match member_change(b) {
        Ok(c) => c,
        Err(m) => return bad(&m),
    };
    match run(&s, who, move |ctx, conn, who| {
        owner::change_member(conn, &ctx.config, who, &list, &address, change)
    })
    .await
    {
        Err(r) => r,
        Ok(m) => Json(m).into_response(),
    }
}

/// `GET /api/lists/{list}/requests`: pending subscription requests.
pub async fn requests(
    State(s): State<WebState>,
    Path(list): Path<String>,
    headers: HeaderMap,
) -> Response {
    let who = match token(&s, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match run(&s, who, move |ctx, conn, who| {
        owner::pending_requests(conn, &ctx.config, who, &list)
    })
    .await
    {
        Err(r) => r,
        Ok(v) => Json(json!({ "requests": v })).into_response(),
    }
}

/// `POST /api/lists/{list}/requests/{id}` with `{"action": ..., "reason": ...}`.
pub async fn decide(
    State(s): State<WebState>,
    Path((list, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let who = match token(&s, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    const LIKE: &str = r#"{"action": "approve|reject|discard", "reason": "..."}"#;
    let Ok(id) = id.parse::<i64>() else {
        let m = format!("`{id}` is not a request number");
        return error(StatusCode::NOT_FOUND, "not_found", &m);
    };
    let mut b = match object(&body, LIKE) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (Some(Value::String(action)), reason) = (b.remove("action"), b.remove("reason")) else {
        return bad(&format!("`action` must be a string: {LIKE}"));
    };
    let reason = match reason {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) => Some(r),
        Some(_) => return bad("`reason` must be a string"),
    };
    if let Some(k) = b.keys().next() {
        return bad(&format!("unknown field `{k}`: use action and reason"));
    }
    let decision = match owner::parse_decision(&action, reason.as_deref()) {
        Ok(d) => d,
        Err(e) => return service_error(e),
    };
    match run(&s, who, move |ctx, conn, who| {
        owner::decide_request(ctx, conn, who, &list, id, &decision, store::now())
    })
    .await
    {
        Err(r) => r,
        Ok(t) => {
            s.wakers.delivery.notify_one();
            Json(json!({"outcome": "done", "detail": t})).into_response()
        }
    }
}

fn with_etag(mut r: Response, etag: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// `GET /api/lists/{list}/settings`: every setting, and the `ETag`.
pub async fn get_settings(
    State(s): State<WebState>,
    Path(list): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ctx = s.live.current();
    let who = match caller(&s, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match settings::settings(&ctx.config, &who, &list) {
        Err(e) => service_error(e),
        Ok(v) => {
            let etag = v.etag.clone();
            with_etag(Json(v).into_response(), &etag)
        }
    }
}

/// `PATCH /api/lists/{list}/settings` with `{"key": value, ...}` and
/// `If-Match`.
pub async fn patch_settings(
    State(s): State<WebState>,
    Path(list): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = s.live.current();
    let who = match caller(&s, &ctx, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let edits: Vec<(String, Value)> = match object(
        &body,
        r#"{"subject_prefix": "[dev]", "digest.enabled": false}"#,
    ) {
        Ok(b) => b.into_iter().collect(),
        Err(r) => return r,
    };
    if edits.is_empty() {
        return bad("name at least one setting to change");
    }
    let if_match = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match save_settings(&s, ctx.config.clone(), who, list, if_match, edits).await {
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "temporarily unavailable; try again later",
        ),
        Some(Err(e)) => service_error(e),
        Some(Ok(saved)) => {
            let etag = saved.etag.clone();
            with_etag(Json(saved).into_response(), &etag)
        }
    }
}

/// The owners' paths of the OpenAPI document.
pub fn openapi_paths() -> Value {
    let err = json!({"$ref": "#/components/schemas/Error"});
    let answer =
        |d: &str| json!({"description": d, "content": {"application/json": {"schema": err}}});
    let ok = |d: &str, schema: Value| json!({"description": d, "content": {"application/json": {"schema": schema}}});
    let list_param =
        json!({"name": "list", "in": "path", "required": true, "schema": {"type": "string"}});
    let addr_param =
        json!({"name": "address", "in": "path", "required": true, "schema": {"type": "string"}});
    let refused = |more: &[(&str, &str)]| {
        let mut m = Map::new();
        m.insert(
            "400".into(),
            answer("a bad body or parameter: the detail says which"),
        );
        m.insert("401".into(), answer("no token, or not a valid one"));
        m.insert(
            "403".into(),
            answer("the token does not administer this list"),
        );
        m.insert("404".into(), answer("no such list (or member, or request)"));
        for (code, d) in more {
            m.insert((*code).into(), answer(d));
        }
        m
    };
    let with = |mut m: Map<String, Value>, code: &str, v: Value| {
        m.insert(code.into(), v);
        Value::Object(m)
    };
    let too_large = json!({"description": "the body is over 1 MiB",
        "content": {"text/plain": {"schema": {"type": "string"}}}});
    let member = json!({"$ref": "#/components/schemas/Member"});
    let settings_doc = json!({"$ref": "#/components/schemas/Settings"});
    let etag_header = json!({"ETag": {"description": "the version of the list's file", "schema": {"type": "string"}}});
    json!({
        "/api/lists/{list}/members": {"post": {
            "summary": "Add members; each address is reported as added, already_member or invalid",
            "parameters": [list_param],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {
                "type": "object", "required": ["addresses"], "additionalProperties": false, "properties": {
                    "addresses": {"type": "array", "minItems": 1, "maxItems": owner::MAX_ADD, "items": {"type": "string"},
                                  "description": "`ann@example.org` or `Ann <ann@example.org>`"},
                    "welcome": {"type": "boolean", "default": false, "description": "send each new member the welcome"}}}}}},
            "responses": with({ let mut m = refused(&[]); m.insert("413".into(), too_large); m }, "200", ok("what became of each address", json!({
                "type": "object", "properties": {
                    "added": {"type": "integer"}, "already_member": {"type": "integer"}, "invalid": {"type": "integer"},
                    "results": {"type": "array", "items": {"type": "object", "properties": {
                        "input": {"type": "string"},
                        "outcome": {"type": "string", "enum": ["added", "already_member", "invalid"]},
                        "detail": {"type": "string"}}}}}})))}},
        "/api/lists/{list}/members/{address}": {
            "delete": {
                "summary": "Remove a member",
                "parameters": [list_param, addr_param,
                    {"name": "goodbye", "in": "query", "description": "send the goodbye mail", "schema": {"type": "boolean", "default": false}}],
                "responses": with(refused(&[]), "200", ok("removed", json!({"type": "object", "properties": {
                    "removed": {"type": "string"}, "goodbye": {"type": "boolean"}}})))},
            "patch": {
                "summary": "Change a member's delivery mode or moderation flag",
                "parameters": [list_param, addr_param],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": false, "minProperties": 1,
                    "not": {"required": ["moderation", "moderated"]}, "properties": {
                        "mode": {"type": "string", "enum": ["each", "digest_mime", "digest_plain", "nomail"]},
                        "moderation": {"type": ["string", "null"], "enum": ["accept", "hold", "reject", "discard", "default", null]},
                        "moderated": {"type": "boolean", "description": "true: hold the member's posts; false: the list's policy"}}}}}},
                "responses": with(refused(&[("409", "a digest mode, and the list sends no digests")]), "200", ok("the member now", member.clone()))}},
        "/api/lists/{list}/requests": {"get": {
            "summary": "Pending subscription requests, oldest first",
            "parameters": [list_param],
            "responses": with(refused(&[]), "200", ok("the requests", json!({"type": "object", "properties": {
                "requests": {"type": "array", "items": {"$ref": "#/components/schemas/Request"}}}})))}},
        "/api/lists/{list}/requests/{id}": {"post": {
            "summary": "Approve (welcome mailed), reject (the requester is told, with the reason) or discard a request",
            "parameters": [list_param, {"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64", "minimum": 1}}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {
                "type": "object", "required": ["action"], "additionalProperties": false, "properties": {
                    "action": {"type": "string", "enum": ["approve", "reject", "discard"]},
                    "reason": {"type": ["string", "null"]}}}}}},
            "responses": with(refused(&[("409", "already decided: the detail says how and by whom")]), "200",
                ok("done", json!({"type": "object", "properties": {"outcome": {"const": "done"}, "detail": {"type": "string"}}})))}},
        "/api/lists/{list}/settings": {
            "get": {
                "summary": "Every setting of the list (effective value, whether its file sets it, whether it is editable here)",
                "parameters": [list_param],
                "responses": with(refused(&[]), "200", json!({"description": "the settings", "headers": etag_header,
                    "content": {"application/json": {"schema": settings_doc}}}))},
            "patch": {
                "summary": "Change editable settings (dotted keys); written to the list's file with its comments, then reloaded",
                "parameters": [list_param, {"name": "If-Match", "in": "header", "required": true, "schema": {"type": "string"},
                    "description": "the ETag of the settings read"}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": settings::edit_schema()}}},
                "responses": with(refused(&[
                    ("412", "the settings changed since the If-Match version"),
                    ("422", "a key is not editable or its value does not load: `key` names it"),
                    ("428", "no If-Match")]), "200", json!({"description": "saved", "headers": etag_header,
                    "content": {"application/json": {"schema": {"type": "object", "properties": {
                        "changed": {"type": "array", "items": {"type": "string"}},
                        "etag": {"type": "string"}, "reloaded": {"type": "boolean"},
                        "warnings": {"type": "array", "items": {"type": "string"}}}}}}}))}}
    })
}

/// The owners' schemas of the OpenAPI document.
pub fn openapi_schemas() -> Value {
    json!({
        "Member": {"type": "object", "properties": {
            "address": {"type": "string"}, "key": {"type": "string"},
            "mode": {"type": "string", "enum": ["each", "digest_mime", "digest_plain", "nomail"]},
            "moderation": {"type": ["string", "null"], "enum": ["accept", "hold", "reject", "discard", null]},
            "disabled": {"type": "boolean"}, "joined_at": {"type": "integer", "format": "int64"}}},
        "Request": {"type": "object", "properties": {
            "id": {"type": "integer", "format": "int64"}, "list": {"type": "string"},
            "address": {"type": "string"}, "name": {"type": ["string", "null"]},
            "requested_by": {"type": "string"}, "created_at": {"type": "integer", "format": "int64"},
            "created_at_text": {"type": "string"}, "mode": {"type": "string"}}},
        "Settings": {"type": "object", "properties": {
            "list": {"type": "string"}, "etag": {"type": "string"},
            "settings": {"type": "array", "items": {"type": "object", "properties": {
                "key": {"type": "string"}, "value": {},
                "in_file": {"type": "boolean"}, "editable": {"type": "boolean"},
                "kind": {"type": "string", "enum": ["bool", "number", "text", "choice", "other"]},
                "choices": {"type": "array", "items": {"type": "string"}}}}}}},
        "Invalid": {"type": "object", "required": ["error", "detail", "key"], "properties": {
            "error": {"const": "invalid_setting"}, "detail": {"type": "string"}, "key": {"type": "string"}}}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn member_changes_are_read_strictly() {
        use crate::store::members::{DeliveryMode, Moderation};
        let c = member_change(obj(json!({"mode": "nomail", "moderated": true}))).unwrap();
        assert_eq!(c.mode, Some(DeliveryMode::NoMail));
        assert_eq!(c.moderation, Some(Some(Moderation::Hold)));
        let c = member_change(obj(json!({"moderation": null}))).unwrap();
        assert_eq!(c.moderation, Some(None));
        let c = member_change(obj(json!({"moderation": "accept"}))).unwrap();
        assert_eq!(c.moderation, Some(Some(Moderation::Accept)));
        for bad in [
            json!({}),
            json!({"mode": 3}),
            json!({"mode": "weekly"}),
            json!({"moderated": "yes"}),
            json!({"moderation": "hold", "moderated": true}),
            json!({"moderation": 1}),
            json!({"colour": "red"}),
        ] {
            assert!(member_change(obj(bad.clone())).is_err(), "{bad}");
        }
    }
}
