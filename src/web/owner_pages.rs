//! The owners' pages, over `service_owner` and `service_settings`, rendered
//! from `web-page` (its `web-owner` part), every value HTML-escaped; no
//! JavaScript:
//!
//! - `/lists/{list}/admin`: counts and links;
//! - `/lists/{list}/members`: address-prefix search, a keyset-paged table
//!   with per-row forms (mode, moderation flag, remove), and an add form
//!   taking a pasted list;
//! - `/lists/{list}/requests`: pending subscription requests, each with
//!   approve, reject (with a reason) and discard;
//! - `/lists/{list}/settings`: every setting, the editable ones as fields;
//!   saving names the version read (a hidden field), so a stale form gets
//!   the conflict page instead of overwriting.
//!
//! Not logged in: the login page (401); logged in but not an owner of the
//! list (nor a site admin): 403. Every POST checks the session's CSRF
//! token (403 otherwise). Trusts the session (`login::current`) and
//! nothing in the forms.

use super::login::{self, csrf_ok, field, form_fields, Current};
use super::pages::{refused, requested};
use super::service::ServiceError;
use super::service_owner::{self as owner, administered_list, MemberChange};
use super::service_settings as settings;
use super::{page, save_settings, with_store, WebState};
use crate::handler::Ctx;
use crate::store;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

/// Members shown per page.
pub const MEMBERS_PER_PAGE: i64 = 50;
/// Lines of an add's report shown (the counts cover every address).
const REPORT_LINES: usize = 200;

/// The logged-in owner of `list` (or site admin), or the 401/403 page.
async fn owner_of(
    s: &WebState,
    ctx: &Ctx,
    headers: &HeaderMap,
    list: &str,
) -> Result<Current, Response> {
    let Some(cur) = login::current(s, ctx, headers).await? else {
        return Err(login::login_needed(ctx));
    };
    if let Err(e) = administered_list(&ctx.config, &cur.caller(), list) {
        return Err(refused(ctx, Some(&cur), e));
    }
    Ok(cur)
}

/// A POST of the owner of `list`: the session and the form's fields, or
/// the refusal (not logged in, not an owner, no valid CSRF token).
async fn owner_form(
    s: &WebState,
    ctx: &Ctx,
    headers: &HeaderMap,
    list: &str,
    body: &Bytes,
) -> Result<(Current, Vec<(String, String)>), Response> {
    let cur = owner_of(s, ctx, headers, list).await?;
    let fields = form_fields(body);
    if !csrf_ok(&cur.session, &fields) {
        return Err(login::csrf_refused(ctx));
    }
    Ok((cur, fields))
}

/// An owner page: `section` names its part of the template.
fn render(
    ctx: &Ctx,
    cur: &Current,
    list: &str,
    section: &str,
    title: &str,
    message: &str,
    mut data: Value,
) -> Response {
    if let Value::Object(m) = &mut data {
        m.insert("owner".into(), Value::Bool(true));
        m.insert(section.into(), Value::Bool(true));
        m.insert("list".into(), list.into());
    }
    login::user_data(&mut data, Some(cur));
    page::html(
        &ctx.templates,
        None,
        StatusCode::OK,
        "owner_page",
        title,
        message,
        data,
    )
}

fn result_lines(results: Vec<(bool, String)>) -> Vec<Value> {
    results
        .into_iter()
        .map(|(ok, text)| json!({"ok": ok, "text": text}))
        .collect()
}

/// `GET /lists/{list}/admin`.
pub async fn admin(
    State(s): State<WebState>,
    Path(list): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ctx = s.live.current();
    let cur = match owner_of(&s, &ctx, &headers, &list).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (c, caller, l) = (ctx.clone(), cur.caller(), list.clone());
    let o = match with_store(&s, &ctx, move |conn| {
        Ok(owner::overview(conn, &c.config, &caller, &l))
    })
    .await
    {
        Err(r) => return r,
        Ok(Err(e)) => return refused(&ctx, Some(&cur), e),
        Ok(Ok(o)) => o,
    };
    let message = format!(
        "{} · {} members · {} pending requests · {} held posts",
        o.address, o.members, o.requests, o.held
    );
    render(
        &ctx,
        &cur,
        &list,
        "owner_admin",
        &format!("{list}: administration"),
        &message,
        json!({ "overview": o }),
    )
}

/// `q` and `after` of a members page query.
fn members_query(query: Option<&str>) -> (String, Option<String>) {
    let (mut q, mut after) = (String::new(), None);
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "q" => q = v.trim().to_string(),
            "after" if !v.is_empty() => after = Some(v.into_owned()),
            _ => {}
        }
    }
    (q, after)
}

async fn members_page(
    s: &WebState,
    ctx: &Ctx,
    cur: &Current,
    list: &str,
    (q, after): (String, Option<String>),
    results: Vec<(bool, String)>,
) -> Response {
    let (c, caller, l, q2) = (ctx.clone(), cur.caller(), list.to_string(), q.clone());
    let page = with_store(s, ctx, move |conn| {
        Ok(super::service::members_page(
            conn,
            &c.config,
            &caller,
            &l,
            &q2,
            after.as_deref(),
            MEMBERS_PER_PAGE,
        ))
    })
    .await;
    let members = match page {
        Err(r) => return r,
        Ok(Err(e)) => return refused(ctx, Some(cur), e),
        Ok(Ok(m)) => m,
    };
    let next = (members.len() as i64 == MEMBERS_PER_PAGE)
        .then(|| members.last())
        .flatten()
        .map(|m| {
            let qs = form_urlencoded::Serializer::new(String::new())
                .append_pair("q", &q)
                .append_pair("after", &m.key)
                .finish();
            format!("/lists/{list}/members?{qs}")
        });
    let message = match (members.len(), q.is_empty()) {
        (0, true) => "No members on this page.".to_string(),
        (0, false) => format!("No member's address starts with `{q}`."),
        (n, _) => format!("{n} members shown, by address."),
    };
    render(
        ctx,
        cur,
        list,
        "owner_members",
        &format!("{list}: members"),
        &message,
        json!({"members": members, "q": q, "next": next, "results": result_lines(results)}),
    )
}

/// `GET /lists/{list}/members?q=&after=`.
pub async fn members(
    State(s): State<WebState>,
    Path(list): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let ctx = s.live.current();
    match owner_of(&s, &ctx, &headers, &list).await {
        Err(r) => r,
        Ok(cur) => {
            members_page(
                &s,
                &ctx,
                &cur,
                &list,
                members_query(query.as_deref()),
                vec![],
            )
            .await
        }
    }
}

/// What a members form asks, decided before anything is done.
#[derive(Debug, PartialEq, Eq)]
pub enum MembersForm {
    Add {
        text: String,
        welcome: bool,
    },
    Change {
        address: String,
        change: MemberChange,
    },
    Remove {
        address: String,
        goodbye: bool,
    },
}

/// Reads a members form: `do=add` (`addresses`, `welcome`), `do=set`
/// (`address`, `mode`, `moderation`) or `do=remove` (`address`, `goodbye`).
pub fn members_form(fields: &[(String, String)]) -> Result<MembersForm, ServiceError> {
    let address = || {
        field(fields, "address")
            .map(str::to_string)
            .ok_or_else(|| ServiceError::BadRequest("the form named no member".into()))
    };
    match field(fields, "do") {
        Some("add") => Ok(MembersForm::Add {
            text: field(fields, "addresses").unwrap_or_default().to_string(),
            welcome: field(fields, "welcome").is_some(),
        }),
        Some("set") => Ok(MembersForm::Change {
            address: address()?,
            change: MemberChange {
                mode: field(fields, "mode").map(owner::parse_mode).transpose()?,
                moderation: field(fields, "moderation")
                    .map(owner::parse_moderation)
                    .transpose()?,
            },
        }),
        Some("remove") => Ok(MembersForm::Remove {
            address: address()?,
            goodbye: field(fields, "goodbye").is_some(),
        }),
        _ => Err(ServiceError::BadRequest("the form named no action".into())),
    }
}

/// The lines that report an add: the counts, then each address not added.
fn add_report(results: &[owner::AddResult]) -> Vec<(bool, String)> {
    let n = |o: &str| results.iter().filter(|r| r.outcome == o).count();
    let mut out = vec![(
        n("invalid") == 0,
        format!(
            "{} added, {} already members, {} not addresses.",
            n("added"),
            n("already_member"),
            n("invalid")
        ),
    )];
    out.extend(
        results
            .iter()
            .filter(|r| r.outcome != "added")
            .take(REPORT_LINES)
            .map(|r| (false, r.detail.clone())),
    );
    out
}

/// `POST /lists/{list}/members`: add, change or remove.
pub async fn members_post(
    State(s): State<WebState>,
    Path(list): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = s.live.current();
    let (cur, fields) = match owner_form(&s, &ctx, &headers, &list, &body).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let form = match members_form(&fields) {
        Ok(f) => f,
        Err(e) => return refused(&ctx, Some(&cur), e),
    };
    let (c, caller, l) = (ctx.clone(), cur.caller(), list.clone());
    let done = with_store(&s, &ctx, move |conn| {
        let now = store::now();
        Ok(match form {
            MembersForm::Add { text, welcome } => {
                owner::add_pasted(&c, conn, &caller, &l, &text, welcome, now)
                    .map(|r| add_report(&r))
            }
            MembersForm::Change { address, change } => {
                owner::change_member(conn, &c.config, &caller, &l, &address, change).map(|m| {
                    vec![(
                        true,
                        format!(
                            "{}: {}, moderation {}.",
                            m.address,
                            m.mode,
                            m.moderation.unwrap_or("by the list's policy")
                        ),
                    )]
                })
            }
            MembersForm::Remove { address, goodbye } => {
                owner::remove_member(&c, conn, &caller, &l, &address, goodbye, now)
                    .map(|()| vec![(true, format!("{} removed.", address.trim()))])
            }
        })
    })
    .await;
    let results = match done {
        Err(r) => return r,
        Ok(Err(ServiceError::Store(e))) => {
            return refused(&ctx, Some(&cur), ServiceError::Store(e))
        }
        Ok(Err(e)) => vec![(false, e.message())],
        Ok(Ok(r)) => {
            s.wakers.delivery.notify_one();
            r
        }
    };
    members_page(
        &s,
        &ctx,
        &cur,
        &list,
        members_query(query.as_deref()),
        results,
    )
    .await
}

async fn requests_page(
    s: &WebState,
    ctx: &Ctx,
    cur: &Current,
    list: &str,
    results: Vec<(bool, String)>,
) -> Response {
    let (c, caller, l) = (ctx.clone(), cur.caller(), list.to_string());
    let pending = match with_store(s, ctx, move |conn| {
        Ok(owner::pending_requests(conn, &c.config, &caller, &l))
    })
    .await
    {
        Err(r) => return r,
        Ok(Err(e)) => return refused(ctx, Some(cur), e),
        Ok(Ok(p)) => p,
    };
    let message = match pending.len() {
        0 => "No subscription requests are waiting.".to_string(),
        1 => "1 subscription request is waiting.".to_string(),
        n => format!("{n} subscription requests are waiting, oldest first."),
    };
    render(
        ctx,
        cur,
        list,
        "owner_requests",
        &format!("{list}: subscription requests"),
        &message,
        json!({"requests": pending, "results": result_lines(results)}),
    )
}

/// `GET /lists/{list}/requests`.
pub async fn requests(
    State(s): State<WebState>,
    Path(list): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ctx = s.live.current();
    match owner_of(&s, &ctx, &headers, &list).await {
        Err(r) => r,
        Ok(cur) => requests_page(&s, &ctx, &cur, &list, vec![]).await,
    }
}

/// `POST /lists/{list}/requests`: `do=approve:ID`, `reject:ID` (with
/// `reason-ID`) or `discard:ID`.
pub async fn requests_post(
    State(s): State<WebState>,
    Path(list): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = s.live.current();
    let (cur, fields) = match owner_form(&s, &ctx, &headers, &list, &body).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let asked = match requested(&fields) {
        Ok(a) => a,
        Err(m) => return refused(&ctx, Some(&cur), ServiceError::BadRequest(m)),
    };
    let (c, caller, l) = (ctx.clone(), cur.caller(), list.clone());
    let done = with_store(&s, &ctx, move |conn| {
        let mut out = Vec::new();
        for (id, action, reason) in asked {
            let r = owner::parse_decision(&action, Some(&reason))
                .and_then(|d| owner::decide_request(&c, conn, &caller, &l, id, &d, store::now()));
            out.push(match r {
                Ok(t) => (true, t),
                Err(ServiceError::Store(e)) => return Err(e),
                Err(e) => (false, e.message()),
            });
        }
        Ok(out)
    })
    .await;
    match done {
        Err(r) => r,
        Ok(results) => {
            s.wakers.delivery.notify_one();
            requests_page(&s, &ctx, &cur, &list, results).await
        }
    }
}

fn settings_page(ctx: &Ctx, cur: &Current, list: &str, results: Vec<(bool, String)>) -> Response {
    let v = match settings::settings(&ctx.config, &cur.caller(), list) {
        Ok(v) => v,
        Err(e) => return refused(ctx, Some(cur), e),
    };
    let rows: Vec<Value> = v
        .settings
        .iter()
        .map(|s| {
            let shown = match &s.value {
                Value::String(t) => t.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            json!({"key": s.key, "shown": shown, "on": s.value == Value::Bool(true),
                   "in_file": s.in_file, "editable": s.editable, "kind": s.kind,
                   "choices": s.choices.iter().map(|c| json!({"name": c, "selected": s.value.as_str() == Some(*c)})).collect::<Vec<_>>()})
        })
        .collect();
    render(
        ctx,
        cur,
        list,
        "owner_settings",
        &format!("{list}: settings"),
        "Every setting of the list; those in bold are set in its file, the others have their default. Saving writes the file (its comments kept) and reloads.",
        json!({"settings": rows, "version": v.etag, "results": result_lines(results)}),
    )
}

/// `GET /lists/{list}/settings`.
pub async fn settings_get(
    State(s): State<WebState>,
    Path(list): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ctx = s.live.current();
    match owner_of(&s, &ctx, &headers, &list).await {
        Err(r) => r,
        Ok(cur) => settings_page(&ctx, &cur, &list, vec![]),
    }
}

/// The edits a settings form asks for: every editable key's field.
fn settings_form(fields: &[(String, String)]) -> Result<Vec<(String, Value)>, ServiceError> {
    let mut out = Vec::new();
    for (key, _) in settings::EDITABLE {
        if let Some(v) = settings::form_value(key, field(fields, key))? {
            out.push((key.to_string(), v));
        }
    }
    Ok(out)
}

/// `POST /lists/{list}/settings`: saves the form, against `version`.
pub async fn settings_post(
    State(s): State<WebState>,
    Path(list): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = s.live.current();
    let (cur, fields) = match owner_form(&s, &ctx, &headers, &list, &body).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let edits = match settings_form(&fields) {
        Ok(e) => e,
        Err(e) => return refused(&ctx, Some(&cur), e),
    };
    let version = field(&fields, "version").map(str::to_string);
    let out = save_settings(
        &s,
        ctx.config.clone(),
        cur.caller(),
        list.clone(),
        version,
        edits,
    );
    let saved = match out.await {
        None => return super::unavailable(),
        Some(Err(e)) => return refused(&ctx, Some(&cur), e),
        Some(Ok(saved)) => saved,
    };
    let mut results = vec![if saved.changed.is_empty() {
        (true, "Nothing changed.".to_string())
    } else {
        (true, format!("Saved: {}.", saved.changed.join(", ")))
    }];
    results.extend(saved.warnings.into_iter().map(|w| (false, w)));
    // the reload swapped the live context: show what it now runs
    settings_page(&s.live.current(), &cur, &list, results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::members::{DeliveryMode, Moderation};

    fn f(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_members_form_names_one_action() {
        assert_eq!(
            members_form(&f(&[
                ("do", "add"),
                ("addresses", "a@x.org\nb@y.org"),
                ("welcome", "on")
            ]))
            .unwrap(),
            MembersForm::Add {
                text: "a@x.org\nb@y.org".into(),
                welcome: true
            }
        );
        assert_eq!(
            members_form(&f(&[
                ("do", "set"),
                ("address", "a@x.org"),
                ("mode", "nomail"),
                ("moderation", "hold")
            ]))
            .unwrap(),
            MembersForm::Change {
                address: "a@x.org".into(),
                change: MemberChange {
                    mode: Some(DeliveryMode::NoMail),
                    moderation: Some(Some(Moderation::Hold))
                }
            }
        );
        assert_eq!(
            members_form(&f(&[("do", "remove"), ("address", "a@x.org")])).unwrap(),
            MembersForm::Remove {
                address: "a@x.org".into(),
                goodbye: false
            }
        );
        assert!(members_form(&f(&[("do", "set"), ("mode", "nomail")])).is_err());
        assert!(members_form(&f(&[("do", "set"), ("address", "a@x.org"), ("mode", "é")])).is_err());
        assert!(members_form(&f(&[("do", "purge")])).is_err());
        assert!(members_form(&f(&[])).is_err());
    }

    #[test]
    fn a_settings_form_sets_every_checkbox_and_the_fields_given() {
        let edits = settings_form(&f(&[("subject_prefix", "[dev]"), ("emergency", "on")])).unwrap();
        assert!(edits.contains(&("subject_prefix".into(), Value::from("[dev]"))));
        assert!(edits.contains(&("emergency".into(), Value::Bool(true))));
        // an unchecked box is a false
        assert!(edits.contains(&("footer".into(), Value::Bool(false))));
        assert!(!edits.iter().any(|(k, _)| k == "description"));
        assert!(settings_form(&f(&[("hold_days", "soon")])).is_err());
    }
}
