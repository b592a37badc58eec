//! `/me`: the logged-in address's own subscriptions. `GET` lists every
//! list the address is on with its delivery mode; `POST` (CSRF-checked)
//! changes the mode of one (`members::set_mode`) or unsubscribes
//! (`roster::remove_member`, which sends the goodbye).
//!
//! Trusts the session (`login::current`) for the address; the form names
//! only the list and the mode, never whose subscription it is.

use super::login::{self, csrf_ok, field, form_fields, Current};
use super::{page, with_store, WebState};
use crate::address::Address;
use crate::handler::{Ctx, HandlerError};
use crate::robot;
use crate::store;
use crate::store::members::{self, DeliveryMode};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use rusqlite::Connection;
use serde_json::{json, Value};

/// What a `/me` form asks, decided before anything is done.
#[derive(Debug, PartialEq, Eq)]
pub enum MeRequest {
    SetMode(String, DeliveryMode),
    Leave(String),
}

/// Reads a `/me` form: `list`, and `do=leave` or `do=mode` with `mode`.
pub fn me_request(fields: &[(String, String)]) -> Result<MeRequest, String> {
    let list = field(fields, "list")
        .ok_or("the form named no list")?
        .to_string();
    match field(fields, "do") {
        Some("leave") => Ok(MeRequest::Leave(list)),
        Some("mode") => {
            let m = field(fields, "mode").unwrap_or_default();
            DeliveryMode::parse(m)
                .map(|m| MeRequest::SetMode(list, m))
                .ok_or_else(|| format!("`{m}` is not a delivery mode"))
        }
        _ => Err("the form named no action".into()),
    }
}

fn subscriptions(conn: &Connection, key: &str) -> Result<Vec<Value>, HandlerError> {
    let mut out = Vec::new();
    for list in members::lists_of(conn, key)? {
        if let Some(m) = members::get(conn, &list, key)? {
            out.push(json!({"list": list, "mode": m.mode.as_str(),
                            m.mode.as_str(): true}));
        }
    }
    Ok(out)
}

/// Acts on `req` for `addr`; the text of what happened.
fn apply(
    ctx: &Ctx,
    conn: &mut Connection,
    addr: &Address,
    req: MeRequest,
) -> Result<(bool, String), HandlerError> {
    let key = addr.key();
    let tx = conn.transaction().map_err(store::StoreError::from)?;
    let out = match req {
        MeRequest::SetMode(list, mode) => {
            if members::set_mode(&tx, &list, &key, mode)? {
                (
                    true,
                    format!("Your delivery on {list} is now {}.", mode.as_str()),
                )
            } else {
                (false, format!("You are not on the list {list}."))
            }
        }
        MeRequest::Leave(list) => {
            let mut mails = Vec::new();
            let done = match ctx.config.list(&list) {
                Some(l) => robot::exec::roster::remove_member(ctx, &tx, l, addr, &mut mails)?,
                None => false,
            };
            robot::send(ctx, &tx, mails, None, store::now())?;
            if done {
                (true, format!("You have left the list {list}."))
            } else {
                (false, format!("You are not on the list {list}."))
            }
        }
    };
    tx.commit().map_err(store::StoreError::from)?;
    Ok(out)
}

async fn render(
    s: &WebState,
    ctx: &Ctx,
    cur: &Current,
    result: Option<(bool, String)>,
) -> Response {
    let key = match Address::parse(&cur.session.address) {
        Ok(a) => a.key(),
        Err(_) => return login::login_needed(ctx),
    };
    let subs = match with_store(s, ctx, move |conn| subscriptions(conn, &key)).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let message = match subs.len() {
        0 => "You are on no list here.".to_string(),
        _ => "Change how you get each list, or leave it.".to_string(),
    };
    let results: Vec<Value> = result
        .into_iter()
        .map(|(ok, text)| json!({"ok": ok, "text": text}))
        .collect();
    let mut data = json!({"subscriptions": subs, "results": results});
    login::user_data(&mut data, Some(cur));
    page::html(
        &ctx.templates,
        None,
        StatusCode::OK,
        "me",
        "My subscriptions",
        &message,
        data,
    )
}

/// `GET /me`.
pub async fn get(State(s): State<WebState>, headers: HeaderMap) -> Response {
    let ctx = s.live.current();
    match login::current(&s, &ctx, &headers).await {
        Err(r) => r,
        Ok(None) => login::login_needed(&ctx),
        Ok(Some(cur)) => render(&s, &ctx, &cur, None).await,
    }
}

/// `POST /me`: changes a mode or leaves a list.
pub async fn post(State(s): State<WebState>, headers: HeaderMap, body: Bytes) -> Response {
    let ctx = s.live.current();
    let cur = match login::current(&s, &ctx, &headers).await {
        Err(r) => return r,
        Ok(None) => return login::login_needed(&ctx),
        Ok(Some(c)) => c,
    };
    let fields = form_fields(&body);
    if !csrf_ok(&cur.session, &fields) {
        return login::csrf_refused(&ctx);
    }
    let req = match me_request(&fields) {
        Ok(r) => r,
        Err(m) => return render(&s, &ctx, &cur, Some((false, m))).await,
    };
    let Ok(addr) = Address::parse(&cur.session.address) else {
        return login::login_needed(&ctx);
    };
    let c = ctx.clone();
    match with_store(&s, &ctx, move |conn| apply(&c, conn, &addr, req)).await {
        Err(r) => r,
        Ok(result) => {
            s.wakers.delivery.notify_one();
            render(&s, &ctx, &cur, Some(result)).await
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
    fn a_me_form_names_a_list_and_an_action() {
        assert_eq!(
            me_request(&f(&[("list", "dev"), ("do", "mode"), ("mode", "nomail")])).unwrap(),
            MeRequest::SetMode("dev".into(), DeliveryMode::NoMail)
        );
        assert_eq!(
            me_request(&f(&[("list", "dev"), ("do", "leave")])).unwrap(),
            MeRequest::Leave("dev".into())
        );
        assert!(me_request(&f(&[("list", "dev"), ("do", "mode"), ("mode", "é")])).is_err());
        assert!(me_request(&f(&[("do", "leave")])).is_err());
        assert!(me_request(&f(&[("list", "dev")])).is_err());
    }
}
