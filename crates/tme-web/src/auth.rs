//! Logging in and out: the login form (with its double-submit token), the check of the
//! password through the node's one `Authenticator` (so the web form shares IMAP's throttle
//! and locks), the session it creates in the directory and the cookie that carries it.
//!
//! It must not show mail.

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::header::{SET_COOKIE, USER_AGENT};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tme_auth::{Credential, LoginRefusal};
use tme_core::Secret;
use tme_store::WebSession;

use crate::branding::Brand;
use crate::current::{Current, cookie, current_session};
use crate::respond::{WebError, now_unix, page, redirect};
use crate::{COOKIES_SECURE, FORM_BODY_OCTETS_MAX, WebState, pages, session};

/// The routes of logging in and out.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/", get(root))
        .route("/login", get(login_form).post(login_submit))
        .route("/logout", post(logout))
}

async fn root(State(state): State<WebState>, headers: HeaderMap) -> Response {
    match current_session(&state, &headers).await {
        Ok(_) => redirect("/mail"),
        Err(error) => error.into_response(),
    }
}

/// The login page with a fresh form token (and its cookie).
fn login_page(status: StatusCode, address: &str, error: Option<&str>, brand: &Brand) -> Response {
    let login_token = session::new_login_token();
    let mut response = page(status, pages::login(&login_token, address, error, brand));
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

async fn login_form(
    State(state): State<WebState>,
    brand: Option<Extension<Brand>>,
    headers: HeaderMap,
) -> Response {
    let brand = brand.map(|Extension(brand)| brand).unwrap_or_default();
    match current_session(&state, &headers).await {
        Ok(_) => redirect("/mail"),
        Err(WebError::Unavailable) => WebError::Unavailable.into_response(),
        Err(_) => login_page(StatusCode::OK, "", None, &brand),
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
    brand: Option<Extension<Brand>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let brand = brand.map(|Extension(brand)| brand).unwrap_or_default();
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
            &brand,
        );
    }
    let client_ip: IpAddr = client.ip();
    let password = Secret::new(fields.password);
    let login = match state
        .authenticator
        .login(client_ip, address, &password)
        .await
    {
        Ok(login) => login,
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
            return login_page(status, address, Some(text), &brand);
        }
    };
    let account = &login.account;
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
        // A session opened with an app password goes when that app password is revoked.
        app_password_id: match login.credential {
            Credential::AppPassword { id } => Some(id),
            Credential::Password { .. } => None,
        },
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

async fn logout(State(state): State<WebState>, current: Current) -> Response {
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
