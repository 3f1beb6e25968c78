//! The webmail: server-rendered HTML pages on the node's `http` listener, at `/`.
//!
//! This crate owns the web session (login, logout, the session cookie and its CSRF token,
//! `session`), the pages (`pages`, maud templates) and what the message view shows of a body
//! (`body`: the HTML part sanitised by ammonia, or the text part). Logins go through the
//! node's one `tme_auth::Authenticator`, so the web form is throttled and locked together
//! with IMAP, POP3 and submission. Sessions are kept in the directory
//! (`Directory::web_session_*`), by the hash of their token.
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

pub mod body;
pub mod pages;
pub mod session;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY as CSP_HEADER, CONTENT_TYPE, COOKIE, LOCATION,
    REFERRER_POLICY, SET_COOKIE, USER_AGENT, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::Markup;
use serde::Deserialize;
use tme_auth::{Authenticator, LoginRefusal};
use tme_core::Secret;
use tme_store::{
    Account, AccountState, Mailbox, MailboxId, MessageRecord, Store, StoreError, WebSession,
};

use crate::pages::{FolderEntry, MessageRow, Paging, Viewer};

/// The Content-Security-Policy of every webmail response: nothing runs, nothing loads from
/// elsewhere, forms post only here, no page may frame ours.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// How many messages one page of a message list shows.
pub const MESSAGES_PER_PAGE: usize = 50;
/// The largest form body read, in octets (login, logout and, later, settings; uploads will
/// have their own limit).
pub const FORM_BODY_OCTETS_MAX: usize = 64 * 1024;

/// Every cookie carries `Secure` (see `session::set_cookie`).
const COOKIES_SECURE: bool = true;

const STYLE_CSS: &str = include_str!("../static/style.css");

/// What the webmail needs from the node.
#[derive(Debug, Clone)]
pub struct WebState {
    pub store: Store,
    /// The node's one authenticator: the web login shares the throttle and locks of IMAP.
    pub authenticator: Arc<Authenticator>,
}

/// The webmail's routes, to be merged into the `http` role's router. It needs
/// `ConnectInfo<SocketAddr>` (the client address for the login throttle): serve the router
/// with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/login", get(login_form).post(login_submit))
        .route("/logout", post(logout))
        .route("/mail", get(inbox))
        .route("/mail/{mailbox_id}", get(mailbox_page))
        .route("/mail/{mailbox_id}/{uid}", get(message_page))
        .route("/static/style.css", get(style))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_csrf,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// The session of the request, as the handlers see it.
#[derive(Debug, Clone)]
struct Current {
    account: Account,
    /// The account's address as shown.
    address: String,
    session: WebSession,
    csrf_token: String,
}

impl Current {
    fn viewer(&self) -> Viewer<'_> {
        Viewer {
            address: &self.address,
            csrf_token: &self.csrf_token,
        }
    }
}

/// Why a request failed, mapped to its status and page in one place (`into_response`).
#[derive(Debug)]
enum WebError {
    /// No valid session: GETs go to the login form.
    NotLoggedIn,
    /// A POST without a valid CSRF token (or session).
    Forbidden,
    /// Nothing here for this account: an unknown id, or another account's.
    NotFound,
    /// The store failed: our fault; a retry may help.
    Unavailable,
}

impl From<StoreError> for WebError {
    fn from(error: StoreError) -> WebError {
        match error {
            StoreError::NotFound { .. } => WebError::NotFound,
            other => {
                tracing::warn!(error = %other, "webmail: the store failed");
                WebError::Unavailable
            }
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::NotLoggedIn => redirect("/login"),
            WebError::Forbidden => page(
                StatusCode::FORBIDDEN,
                pages::error(
                    "Forbidden",
                    "This form has expired or did not come from this site. Go back, reload the page and try again.",
                    None,
                ),
            ),
            WebError::NotFound => page(
                StatusCode::NOT_FOUND,
                pages::error("Not found", "There is nothing here.", None),
            ),
            WebError::Unavailable => page(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::error(
                    "Unavailable",
                    "The mail store cannot be reached just now. Try again in a moment.",
                    None,
                ),
            ),
        }
    }
}

fn page(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

fn redirect(location: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response()
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|header| session::cookie_value(header, name))
}

/// The request's session, if its cookie names a live one of an account that may log in.
async fn current_session(state: &WebState, headers: &HeaderMap) -> Result<Current, WebError> {
    let token = cookie(headers, session::SESSION_COOKIE).ok_or(WebError::NotLoggedIn)?;
    if !session::well_formed(token, session::SESSION_TOKEN_HEX_DIGITS) {
        return Err(WebError::NotLoggedIn);
    }
    let stored = state
        .store
        .directory
        .web_session_get(&session::token_hash(token))
        .await
        .map_err(WebError::from)?
        .ok_or(WebError::NotLoggedIn)?;
    if stored.expires_unix <= now_unix() {
        return Err(WebError::NotLoggedIn);
    }
    let account = state
        .store
        .directory
        .account_get_by_id(stored.account_id)
        .await
        .map_err(WebError::from)?
        .ok_or(WebError::NotLoggedIn)?;
    // A suspended account is logged out at its next request.
    if account.state == AccountState::Suspended {
        return Err(WebError::NotLoggedIn);
    }
    Ok(Current {
        address: account.address.to_string(),
        account,
        csrf_token: session::csrf_token(token),
        session: stored,
    })
}

/// Every POST but the login form's needs a live session and its CSRF token in the form
/// body (`csrf`); the session goes to the handler as an extension. Runs before any handler,
/// so no handler can forget it.
async fn require_csrf(State(state): State<WebState>, request: Request, next: Next) -> Response {
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return next.run(request).await;
    }
    if request.uri().path() == "/login" {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let current = match current_session(&state, &parts.headers).await {
        Ok(current) => current,
        Err(WebError::Unavailable) => return WebError::Unavailable.into_response(),
        Err(_) => return WebError::Forbidden.into_response(),
    };
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
    headers.insert(
        CSP_HEADER,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Mail is private: no shared or browser cache keeps a page of it.
    headers
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
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

async fn root(State(state): State<WebState>, headers: HeaderMap) -> Response {
    match current_session(&state, &headers).await {
        Ok(_) => redirect("/mail"),
        Err(error) => error.into_response(),
    }
}

/// The login page with a fresh form token (and its cookie).
fn login_page(status: StatusCode, address: &str, error: Option<&str>) -> Response {
    let login_token = session::new_login_token();
    let mut response = page(status, pages::login(&login_token, address, error));
    let cookie = session::set_cookie(
        session::LOGIN_COOKIE,
        &login_token,
        "/login",
        session::LOGIN_FORM_LIFETIME_SECONDS,
        COOKIES_SECURE,
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

async fn login_form(State(state): State<WebState>, headers: HeaderMap) -> Response {
    match current_session(&state, &headers).await {
        Ok(_) => redirect("/mail"),
        Err(WebError::Unavailable) => WebError::Unavailable.into_response(),
        Err(_) => login_page(StatusCode::OK, "", None),
    }
}

#[derive(Debug, Deserialize)]
struct LoginFields {
    #[serde(default)]
    address: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    login_token: String,
}

/// The longest address the login form takes, in octets (RFC 5321 §4.5.3.1.3's path).
const LOGIN_ADDRESS_OCTETS_MAX: usize = 256;
/// The longest password the login form takes, in octets.
const LOGIN_PASSWORD_OCTETS_MAX: usize = 1024;

async fn login_submit(
    State(state): State<WebState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if body.len() > FORM_BODY_OCTETS_MAX {
        return WebError::Forbidden.into_response();
    }
    let fields: LoginFields = match serde_urlencoded::from_bytes(&body) {
        Ok(fields) => fields,
        Err(_) => return WebError::Forbidden.into_response(),
    };
    // The login form's double-submit token: a form posted from another site has the
    // cookie (maybe) but cannot read it to put it in the form.
    let cookie_token = cookie(&headers, session::LOGIN_COOKIE).unwrap_or("");
    if !session::well_formed(cookie_token, session::LOGIN_TOKEN_HEX_DIGITS)
        || !session::tokens_equal(&fields.login_token, cookie_token)
    {
        return WebError::Forbidden.into_response();
    }
    let address = fields.address.trim();
    if address.len() > LOGIN_ADDRESS_OCTETS_MAX || fields.password.len() > LOGIN_PASSWORD_OCTETS_MAX
    {
        return login_page(
            StatusCode::UNAUTHORIZED,
            "",
            Some("Wrong address or password."),
        );
    }
    let client_ip: IpAddr = client.ip();
    let password = Secret::new(fields.password);
    let account = match state
        .authenticator
        .login(client_ip, address, &password)
        .await
    {
        Ok(account) => account,
        Err(refusal) => {
            let (status, text) = match refusal {
                LoginRefusal::BadCredentials => {
                    (StatusCode::UNAUTHORIZED, "Wrong address or password.")
                }
                LoginRefusal::Locked { .. } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many failed logins: logging in is locked for a while.",
                ),
                LoginRefusal::AccountSuspended => (
                    StatusCode::FORBIDDEN,
                    "This account is suspended. Contact your provider.",
                ),
                LoginRefusal::Unavailable => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Logging in is unavailable just now. Try again in a moment.",
                ),
            };
            return login_page(status, address, Some(text));
        }
    };
    let token = session::new_session_token();
    let now = now_unix();
    let user_agent = headers
        .get(USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let stored = WebSession {
        token_hash: session::token_hash(&token),
        account_id: account.id,
        created_unix: now,
        expires_unix: now.saturating_add(session::SESSION_LIFETIME_SECONDS),
        client_address: client_ip.to_canonical().to_string(),
        user_agent,
    };
    if let Err(error) = state.store.directory.web_session_add(&stored).await {
        return WebError::from(error).into_response();
    }
    tracing::info!(account = %account.address, client = %client_ip, "webmail: logged in");
    let mut response = redirect("/mail");
    for cookie in [
        session::set_cookie(
            session::SESSION_COOKIE,
            &token,
            "/",
            session::SESSION_LIFETIME_SECONDS,
            COOKIES_SECURE,
        ),
        session::set_cookie(session::LOGIN_COOKIE, "", "/login", 0, COOKIES_SECURE),
    ] {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}

async fn logout(
    State(state): State<WebState>,
    axum::Extension(current): axum::Extension<Current>,
) -> Response {
    if let Err(error) = state
        .store
        .directory
        .web_session_remove(current.account.id, &current.session.token_hash)
        .await
    {
        return WebError::from(error).into_response();
    }
    let mut response = redirect("/login");
    let cookie = session::set_cookie(session::SESSION_COOKIE, "", "/", 0, COOKIES_SECURE);
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    page: Option<String>,
}

async fn inbox(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Result<Response, WebError> {
    let current = current_session(&state, &headers).await?;
    let inbox = state
        .store
        .mail
        .mailbox_find(current.account.id, "INBOX")
        .await?
        .ok_or(WebError::NotFound)?;
    mailbox_response(&state, &current, inbox, query.page.as_deref()).await
}

/// A path segment that must be a number; anything else is nothing here.
fn path_number<T: std::str::FromStr>(segment: &str) -> Result<T, WebError> {
    segment.parse().map_err(|_| WebError::NotFound)
}

async fn mailbox_page(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(mailbox_id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, WebError> {
    let current = current_session(&state, &headers).await?;
    let mailbox = live_mailbox(&state, &current, path_number(&mailbox_id)?).await?;
    mailbox_response(&state, &current, mailbox, query.page.as_deref()).await
}

/// The session's account's mailbox `id`; NotFound for another account's, or a deleted one.
async fn live_mailbox(
    state: &WebState,
    current: &Current,
    id: MailboxId,
) -> Result<Mailbox, WebError> {
    let mailbox = state.store.mail.mailbox_get(current.account.id, id).await?;
    if mailbox.deleted_unix.is_some() || mailbox.account_id != current.account.id {
        return Err(WebError::NotFound);
    }
    Ok(mailbox)
}

async fn folders(state: &WebState, current: &Current) -> Result<Vec<FolderEntry>, WebError> {
    let mut folders = Vec::new();
    for mailbox in state.store.mail.mailbox_list(current.account.id).await? {
        let counts = state
            .store
            .mail
            .mailbox_counts(current.account.id, mailbox.id)
            .await?;
        folders.push(FolderEntry { mailbox, counts });
    }
    // INBOX first, then by name (the store lists by name).
    folders.sort_by_key(|folder| folder.mailbox.name != "INBOX");
    Ok(folders)
}

async fn mailbox_response(
    state: &WebState,
    current: &Current,
    mailbox: Mailbox,
    page_text: Option<&str>,
) -> Result<Response, WebError> {
    let folders = folders(state, current).await?;
    let mut records = state
        .store
        .mail
        .message_list(current.account.id, mailbox.id)
        .await?;
    // Newest first: UIDs grow with arrival.
    records.reverse();
    let messages = records.len();
    let pages = messages.div_ceil(MESSAGES_PER_PAGE).max(1);
    let page = page_text
        .and_then(|text| text.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let shown: Vec<MessageRecord> = records
        .into_iter()
        .skip((page - 1) * MESSAGES_PER_PAGE)
        .take(MESSAGES_PER_PAGE)
        .collect();
    let ids: Vec<_> = shown.iter().map(|record| record.id).collect();
    let mut summaries: std::collections::HashMap<_, _> = state
        .store
        .mail
        .message_summaries(current.account.id, &ids)
        .await?
        .into_iter()
        .collect();
    let rows: Vec<MessageRow> = shown
        .into_iter()
        .map(|record| MessageRow {
            summary: summaries.remove(&record.id),
            record,
        })
        .collect();
    Ok(page_ok(pages::mailbox(
        current.viewer(),
        &folders,
        &mailbox,
        &rows,
        Paging {
            page,
            pages,
            messages,
        },
    )))
}

fn page_ok(markup: Markup) -> Response {
    page(StatusCode::OK, markup)
}

async fn message_page(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path((mailbox_id, uid)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let current = current_session(&state, &headers).await?;
    let mailbox = live_mailbox(&state, &current, path_number(&mailbox_id)?).await?;
    let uid: u32 = path_number(&uid)?;
    let records = state
        .store
        .mail
        .message_list(current.account.id, mailbox.id)
        .await?;
    let record = records
        .into_iter()
        .find(|record| record.uid == uid)
        .ok_or(WebError::NotFound)?;
    let summary = state
        .store
        .mail
        .message_summary(current.account.id, record.id)
        .await?;
    let raw = state.store.message_raw(&record).await?;
    // Parsing and sanitising a large body takes CPU: off the async threads.
    let body = tokio::task::spawn_blocking(move || body::message_body(&raw))
        .await
        .map_err(|_| WebError::Unavailable)?;
    let folders = folders(&state, &current).await?;
    Ok(page_ok(pages::message(
        current.viewer(),
        &folders,
        &mailbox,
        &record,
        &summary,
        &body,
    )))
}
