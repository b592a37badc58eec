//! The HTTP server (`web.listen`): RFC 8058 one-click unsubscribe
//! (`unsubscribe`), `/healthz` (`healthz`), the web admin (`login` by
//! emailed link, the lists and the moderation queue in `pages`, the owners'
//! pages in `owner_pages`, the list archive in `archive_pages`) and the
//! REST API (`api`, `api_owner`, `archive_api`), over one service layer
//! (`service`, `service_owner`, `service_settings`, `archive_service`),
//! with their credentials in the store (`credentials`).
//!
//! axum routes, served by hyper connection by connection so that each
//! connection has a deadline for its request head (slowloris,
//! `web.header_timeout_secs`), every
//! request a deadline for its whole handling (a slow body), and a body is
//! at most [`MAX_BODY`] bytes. The daemon supervises it like a worker and
//! stops it gracefully: no new connections, open ones finish (at most
//! [`SHUTDOWN_GRACE`]).
//!
//! Trusts nothing in a request: privilege comes only from a token that
//! verifies (`member_token`), a session cookie or an API token found by its
//! hash (`credentials`); the configuration and templates come from the
//! daemon's `Live` context.

mod api;
mod api_owner;
mod archive_api;
mod archive_atom;
mod archive_pages;
mod archive_render;
pub mod archive_service;
pub mod archive_threads;
mod client_ip;
pub mod credentials;
mod healthz;
mod login;
mod me;
mod origin;
mod owner_pages;
mod page;
mod pages;
pub mod service;
pub mod service_owner;
pub mod service_settings;
mod unsubscribe;

pub use archive_pages::TEMPLATE as ARCHIVE_TEMPLATE;
pub use login::MAIL_TEMPLATE as LOGIN_TEMPLATE;
pub use page::TEMPLATE as PAGE_TEMPLATE;

use crate::health::Health;
use crate::plumbing::{Live, Wakers};
use crate::store::StoreError;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Largest request body read (a one-click POST is 26 bytes; a moderation
/// form with a reason and a page of selected posts a few KiB).
pub const MAX_BODY: usize = 16 * 1024;
/// Time a request may take from its head to its answer (its body included).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Open connections; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 512;
/// How long shutdown waits for open connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The client's IP address, as the connection gave it.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub std::net::IpAddr);

impl ClientIp {
    /// The key its rate limits count under: the address for IPv4, its /64
    /// for IPv6 (one host usually has a whole /64).
    pub fn bucket(&self) -> String {
        match self.0 {
            std::net::IpAddr::V4(a) => a.to_string(),
            std::net::IpAddr::V6(a) => {
                let s = a.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        }
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct WebState {
    pub live: Live,
    pub health: Arc<Health>,
    pub wakers: Wakers,
    /// The server's store connection, opened on first use.
    pub db: Arc<std::sync::Mutex<Option<rusqlite::Connection>>>,
    /// Swaps in a configuration edited on the settings page (the daemon's
    /// own reload); None: edits apply at the next start.
    pub reloader: Option<crate::plumbing::Reloader>,
}

impl WebState {
    pub fn new(live: Live, health: Arc<Health>, wakers: Wakers) -> WebState {
        WebState {
            live,
            health,
            wakers,
            db: Arc::default(),
            reloader: None,
        }
    }

    /// The same, reloading the daemon through `reloader` after a settings edit.
    pub fn with_reloader(mut self, reloader: crate::plumbing::Reloader) -> WebState {
        self.reloader = Some(reloader);
        self
    }
}

/// Every route.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/healthz", get(healthz::get))
        .route(
            "/u/{token}",
            get(unsubscribe::page).post(unsubscribe::one_click),
        )
        .route("/", get(pages::lists))
        .route("/subscribe", post(pages::subscribe))
        .route("/moderate", get(pages::moderate).post(pages::moderate_act))
        .route("/me", get(me::get).post(me::post))
        .route("/lists/{list}/admin", get(owner_pages::admin))
        .route(
            "/lists/{list}/members",
            get(owner_pages::members)
                .post(owner_pages::members_post)
                .layer(DefaultBodyLimit::max(api_owner::ADD_BODY)),
        )
        .route(
            "/lists/{list}/requests",
            get(owner_pages::requests).post(owner_pages::requests_post),
        )
        .route(
            "/lists/{list}/settings",
            get(owner_pages::settings_get).post(owner_pages::settings_post),
        )
        .route("/login", get(login::form).post(login::request))
        .route("/login/{token}", get(login::confirm).post(login::consume))
        .route("/logout", post(login::logout))
        .route("/api/openapi.json", get(api::openapi))
        .route("/api/lists", get(api::lists))
        .route("/api/lists/{list}/held", get(api::held))
        .route("/api/lists/{list}/held/{id}", post(api::act))
        .route(
            "/api/lists/{list}/members",
            get(api::members)
                .post(api_owner::add_members)
                .layer(DefaultBodyLimit::max(api_owner::ADD_BODY)),
        )
        .route(
            "/api/lists/{list}/members/{address}",
            axum::routing::delete(api_owner::remove_member).patch(api_owner::change_member),
        )
        .route("/api/lists/{list}/requests", get(api_owner::requests))
        .route("/api/lists/{list}/requests/{id}", post(api_owner::decide))
        .route(
            "/api/lists/{list}/settings",
            get(api_owner::get_settings).patch(api_owner::patch_settings),
        )
        .route("/api/lists/{list}/archive", get(archive_api::posts))
        .route("/api/lists/{list}/archive/search", get(archive_api::search))
        .route("/api/lists/{list}/archive/{id}", get(archive_api::post))
        .route("/api/{*rest}", any(api::unknown))
        .merge(archive_pages::routes())
        .fallback(|| async { page::plain(StatusCode::NOT_FOUND, "Not found.") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            origin::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            client_ip::resolve,
        ))
        .layer(axum::middleware::from_fn(deadline))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Answers 408 to a request not handled within [`REQUEST_TIMEOUT`], and
/// marks every answer as not to be cached, sniffed or referred from.
async fn deadline(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut resp = match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => page::plain(StatusCode::REQUEST_TIMEOUT, "Request timed out.").into_response(),
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    resp
}

/// The 503 answer when the store cannot be used.
fn unavailable() -> Response {
    page::plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable; try again later.",
    )
}

/// Saves `edits` to `list`'s settings against `version`
/// (`service_settings::edit_settings`, off the async threads) and reloads
/// the daemon; `None` when the task itself failed (logged). The settings
/// page and the API both save through this.
async fn save_settings(
    s: &WebState,
    config: Arc<crate::config::Config>,
    caller: service::Caller,
    list: String,
    version: Option<String>,
    edits: Vec<(String, serde_json::Value)>,
) -> Option<service::ServiceResult<service_settings::SettingsSaved>> {
    let reloader = s.reloader.clone();
    let out = tokio::task::spawn_blocking(move || {
        service_settings::edit_settings(&config, &caller, &list, version.as_deref(), &edits, |c| {
            match &reloader {
                Some(r) => r.reload(c).map_err(|e| e.to_string()),
                None => Err("no daemon to reload here".into()),
            }
        })
    })
    .await;
    out.map_err(|e| tracing::error!(error = %e, "web: settings task failed"))
        .ok()
}

/// Runs `f` on the server's store connection (opened on first use), off
/// the async threads.
async fn with_store<T: Send + 'static>(
    s: &WebState,
    ctx: &crate::handler::Ctx,
    f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, crate::handler::HandlerError>
        + Send
        + 'static,
) -> Result<T, Response> {
    let (db, path) = (s.db.clone(), ctx.config.db_path());
    let out = tokio::task::spawn_blocking(move || {
        // a panic in an earlier call rolled its transaction back as it
        // unwound: the connection is fine to use again
        let mut slot = db.lock().unwrap_or_else(|p| p.into_inner());
        let conn = match slot.take() {
            Some(c) => c,
            None => {
                let mut c = crate::store::open(&path)?;
                crate::store::poll_when_busy(&mut c)?;
                c
            }
        };
        f(slot.insert(conn))
    })
    .await;
    match out {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "web: store error");
            Err(unavailable())
        }
        Err(e) => {
            tracing::error!(error = %e, "web: store task failed");
            Err(unavailable())
        }
    }
}

/// Returns once `shutdown` is true.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|v| *v).await;
}

/// Binds `web.listen`.
pub async fn bind(spec: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(spec).await
}

/// Serves `listener` until `shutdown` turns true, then lets open
/// connections finish for at most [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: Arc<TcpListener>,
    state: WebState,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), StoreError> {
    // bound at start, like the listener: a reload does not change it
    let header_timeout = Duration::from_secs(state.live.current().config.web.header_timeout_secs);
    let app = router(state);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.map_err(|e| StoreError::Invalid(e.to_string()))?,
            _ = stopped(&mut shutdown) => break,
        };
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // out of file descriptors and the like: wait, go on
                    tracing::warn!(error = %e, "web: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => break,
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(64 * 1024);
        let service =
            TowerToHyperService::new(app.clone().layer(axum::Extension(ClientIp(peer.ip()))));
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "web: connection ended");
            }
        });
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("web: connections still open after the grace period; closing them");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ClientIp;

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let b = |s: &str| ClientIp(s.parse().unwrap()).bucket();
        assert_eq!(b("192.0.2.7"), "192.0.2.7");
        assert_eq!(b("2001:db8:1:2::5"), "2001:db8:1:2::/64");
        assert_eq!(b("2001:db8:1:2:aaaa::9"), b("2001:db8:1:2::5"));
        assert_ne!(b("2001:db8:1:3::5"), b("2001:db8:1:2::5"));
    }
}
