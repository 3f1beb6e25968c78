//! The webmail: server-rendered HTML pages on the node's `http` listener, at `/`.
//!
//! This crate owns the web session (login, logout, the session cookie and its CSRF token,
//! `session`), the pages (`pages`, maud templates) and what the message view shows of a body
//! (`body`: the HTML part sanitised by ammonia, or the text part). Logins go through the
//! node's one `tme_auth::Authenticator`, so the web form is throttled and locked together
//! with IMAP, POP3 and submission. Sessions are kept in the directory
//! (`Directory::web_session_*`), by the hash of their token. `settings` changes the
//! account's own settings (display name, signature, password, app passwords, sessions);
//! `branding` shows each partner's brand.
//!
//! Rules it keeps:
//! - message HTML is never put in a page unsanitised (`body::sanitize_html`), and every page
//!   goes out with a strict Content-Security-Policy (`CONTENT_SECURITY_POLICY`: no script at
//!   all, styles and images only from this origin, forms only to it, no framing);
//! - every request that changes state is a POST carrying the session's CSRF token, checked in
//!   constant time by `require_csrf` before any handler runs (the login form carries its own
//!   double-submit token); a POST without a valid one gets 403;
//! - every read names the session's account to the store, so another account's mailbox or
//!   message id finds nothing and gets 404, never its content.
//!
//! It must not speak any protocol but HTTP, write SQL, or parse mail itself (summaries come
//! from the store, parts from `mail-parser`).

pub mod auth;
pub mod body;
pub mod branding;
pub mod compose;
pub mod current;
pub mod live;
pub mod multipart;
pub mod organise;
pub mod pages;
pub mod read;
pub mod respond;
pub mod search;
pub mod session;
pub mod settings;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY as CSP_HEADER, CONTENT_TYPE, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tme_auth::Authenticator;
use tme_store::Store;

use crate::current::{Current, current_session};
use crate::respond::WebError;

/// The Content-Security-Policy of every webmail response: nothing runs, nothing loads from
/// elsewhere, forms post only here, no page may frame ours.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// How many messages one page of a message list shows.
pub const MESSAGES_PER_PAGE: usize = 50;
/// The largest urlencoded form body read, in octets (login, logout, settings); multipart
/// bodies (the compose form with its uploads) have `multipart::UPLOAD_BODY_OCTETS_MAX`.
pub const FORM_BODY_OCTETS_MAX: usize = 64 * 1024;

/// Every cookie carries `Secure` (see `session::set_cookie`).
pub(crate) const COOKIES_SECURE: bool = true;

const STYLE_CSS: &str = include_str!("../static/style.css");
const APP_JS: &str = include_str!("../static/app.js");

/// What the webmail needs from the node.
#[derive(Debug, Clone)]
pub struct WebState {
    pub store: Store,
    /// The node's one authenticator: the web login shares the throttle and locks of IMAP.
    pub authenticator: Arc<Authenticator>,
    /// The full-text index, when it is on; without it, search reads the messages.
    pub search: Option<Arc<tme_search::SearchIndexes>>,
    /// Cancelled when the node shuts down: the live-update streams end then.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// The node's submission pipeline: the webmail sends through it (`compose`).
    pub submitter: tme_queue::Submitter,
}

/// The webmail's routes, to be merged into the `http` role's router. It needs
/// `ConnectInfo<SocketAddr>` (the client address for the login throttle): serve the router
/// with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(state: WebState) -> Router {
    Router::new()
        .merge(auth::routes())
        .merge(read::routes())
        .merge(organise::routes())
        .merge(search::routes())
        .merge(live::routes())
        .merge(settings::routes())
        .route("/static/app.js", get(script))
        // Browsers ask for it on every site; there is none (204, not a logged 404).
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
        .merge(compose::routes())
        .route("/static/style.css", get(style))
        .route("/static/brand/{file}", get(branding::brand_stylesheet))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_csrf,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            branding::brand_layer,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// Every POST but the login form's needs a live session and its CSRF token in the form
/// body (`csrf`); the session goes to the handler as an extension. Runs before any handler,
/// so no handler can forget it. A multipart body (the compose form with its uploads) is
/// read here whole, within `multipart::UPLOAD_BODY_OCTETS_MAX` (413 past it, 400 when
/// malformed), and goes to the handler as a `multipart::MultipartForm` extension.
async fn require_csrf(State(state): State<WebState>, request: Request, next: Next) -> Response {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return next.run(request).await;
    }
    if request.uri().path() == "/login" {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    // `branding::brand_layer` has usually found the session already.
    let found = match parts.extensions.get::<Current>() {
        Some(current) => Ok(current.clone()),
        None => current_session(&state, &parts.headers).await,
    };
    let current = match found {
        Ok(current) => current,
        Err(WebError::Unavailable) => return WebError::Unavailable.into_response(),
        Err(_) => return WebError::Forbidden.into_response(),
    };
    if multipart::is_multipart(&parts.headers) {
        let form = match multipart::read(&parts.headers, body).await {
            Ok(form) => form,
            Err(error) => return error.into_response(),
        };
        if !session::tokens_equal(form.field("csrf").unwrap_or(""), &current.csrf_token) {
            tracing::info!(account = %current.account.address, path = %parts.uri.path(), "webmail: multipart POST without a valid CSRF token refused");
            return WebError::Forbidden.into_response();
        }
        parts.extensions.insert(current);
        parts.extensions.insert(form);
        return next.run(Request::from_parts(parts, Body::empty())).await;
    }
    let Ok(bytes) = axum::body::to_bytes(body, FORM_BODY_OCTETS_MAX).await else {
        return WebError::Forbidden.into_response();
    };
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let sent = fields
        .iter()
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.as_str())
        .unwrap_or("");
    if !session::tokens_equal(sent, &current.csrf_token) {
        tracing::info!(account = %current.account.address, path = %parts.uri.path(), "webmail: POST without a valid CSRF token refused");
        return WebError::Forbidden.into_response();
    }
    parts.extensions.insert(current);
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The headers every webmail response carries.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    // A handler may send its own policy (a message shown with its remote images, a
    // download), or the brand layer the policy widened by the partner's logo's origin
    // (`branding::brand_layer`); every other response gets the strict one.
    headers
        .entry(CSP_HEADER)
        .or_insert(HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Mail is private: no shared or browser cache keeps a page of it.
    headers
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The one script: keyboard shortcuts, drag to move, live updates. Pages work without it.
async fn script() -> Response {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "max-age=3600"),
        ],
        APP_JS,
    )
        .into_response()
}

async fn style() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "max-age=3600"),
        ],
        STYLE_CSS,
    )
        .into_response()
}
