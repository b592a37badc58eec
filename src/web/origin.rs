//! Refuses a cross-site state change: a browser's POST (or PUT, PATCH,
//! DELETE) that the browser marks as sent from another site
//! (`Sec-Fetch-Site:` other than `same-origin`), or, from a browser without
//! Fetch Metadata, whose `Origin:` is neither its `Host:` nor
//! `web.public_url`. CSRF tokens guard the forms of a
//! session; this also guards the ones without a session yet, such as
//! consuming a login link (login CSRF: a foreign page logging the victim
//! in as the attacker) and the anonymous subscribe form.
//!
//! Trusts the two headers only as browsers send them: a client that is not
//! a browser can leave them out, which gains it nothing a CSRF token or a
//! Bearer token does not already guard. Exempt are the REST API (Bearer
//! tokens, no cookies) and RFC 8058 one-click unsubscribe, which mail
//! providers POST from their own servers.

use super::page;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// Whether a request must be refused as cross-site: its `Origin:` is
/// neither its own `Host:` nor `public` (`web.public_url`).
pub fn cross_site(method: &Method, path: &str, headers: &HeaderMap, public: Option<&str>) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || path.starts_with("/api/")
        || path.starts_with("/u/")
    {
        return false;
    }
    // a browser that sends Fetch Metadata says itself where the form was
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.as_bytes();
        return !(site.eq_ignore_ascii_case(b"same-origin") || site.eq_ignore_ascii_case(b"none"));
    }
    let text = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    let Some(origin) = text(header::ORIGIN) else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    let by_host = text(header::HOST).is_some_and(|h| {
        origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(h))
    });
    let by_config = public.is_some_and(|p| origin.eq_ignore_ascii_case(&origin_of(p)));
    !(by_host || by_config)
}

/// `scheme://authority` of a URL (its path, query and fragment dropped).
fn origin_of(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            format!("{scheme}://{}", &rest[..end])
        }
        None => url.to_string(),
    }
}

/// The middleware: 403 for a cross-site state change.
pub async fn guard(
    axum::extract::State(s): axum::extract::State<super::WebState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let public = s.live.current().config.web.public_url.clone();
    if cross_site(
        req.method(),
        req.uri().path(),
        req.headers(),
        public.as_deref(),
    ) {
        tracing::info!(path = %req.uri().path(), "cross-site request refused");
        return page::plain(
            StatusCode::FORBIDDEN,
            "Refused: this form was sent from another site.",
        )
        .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn a_foreign_origin_is_refused_and_our_own_passes() {
        let post = Method::POST;
        let ours = h(&[
            ("host", "lists.example.org"),
            ("origin", "https://lists.example.org"),
        ]);
        assert!(!cross_site(&post, "/login/t", &ours, None));
        let proxied = h(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://lists.example.org"),
        ]);
        assert!(cross_site(&post, "/login/t", &proxied, None));
        assert!(!cross_site(
            &post,
            "/login/t",
            &proxied,
            Some("https://lists.example.org/listd/")
        ));
        let foreign = h(&[
            ("host", "lists.example.org"),
            ("origin", "https://evil.example"),
        ]);
        assert!(cross_site(&post, "/login/t", &foreign, None));
        assert!(cross_site(&Method::DELETE, "/me", &foreign, None));
        // `null` (a sandboxed or file page) is no origin of ours
        let null = h(&[("host", "lists.example.org"), ("origin", "null")]);
        assert!(cross_site(&post, "/subscribe", &null, None));
    }

    #[test]
    fn reads_the_api_and_one_click_are_exempt() {
        let foreign = h(&[
            ("host", "lists.example.org"),
            ("origin", "https://evil.example"),
        ]);
        assert!(!cross_site(&Method::GET, "/moderate", &foreign, None));
        assert!(!cross_site(
            &Method::POST,
            "/api/lists/dev/held/1",
            &foreign,
            None
        ));
        assert!(!cross_site(&Method::POST, "/u/tok", &foreign, None));
    }

    #[test]
    fn without_origin_the_fetch_metadata_decides() {
        let post = Method::POST;
        assert!(!cross_site(&post, "/login/t", &h(&[]), None));
        assert!(!cross_site(
            &post,
            "/login/t",
            &h(&[("sec-fetch-site", "same-origin")]),
            None
        ));
        assert!(cross_site(
            &post,
            "/login/t",
            &h(&[("sec-fetch-site", "cross-site")]),
            None
        ));
    }
}
