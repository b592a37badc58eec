//! The server's HTML pages: the `web-page` template (site or list
//! override), every value HTML-escaped before it is rendered; a plain-text
//! answer when the template is missing or broken, so a template error never
//! turns a refusal into a 5xx.
//!
//! Trusts the template (admin-written), nothing in the values.

use crate::templates::Templates;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The template every page is rendered from.
pub const TEMPLATE: &str = "web-page";

/// One page: `kind` names what it shows (`confirm`, `done`, `refused`);
/// `data` adds the template's other values.
pub fn html(
    templates: &Templates,
    list: Option<&str>,
    status: StatusCode,
    kind: &str,
    title: &str,
    message: &str,
    mut data: Value,
) -> Response {
    if let Value::Object(m) = &mut data {
        m.insert(kind.into(), Value::Bool(true));
        m.insert("title".into(), title.into());
        m.insert("message".into(), message.into());
        m.insert("status".into(), status.as_u16().into());
    }
    match templates.render_html(list, TEMPLATE, &data) {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "web: the page template failed; answering in plain text");
            plain(status, &format!("{title}\n\n{message}"))
        }
    }
}

/// A plain-text answer.
pub fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}
