//! The logged-in session of a request (`Current`): found from the session cookie, checked
//! against the directory (live, not expired, account not suspended), and handed to handlers
//! as an extractor. A handler that takes `Current` cannot run without a valid session: a GET
//! without one goes to the login form.
//!
//! It must not change any state: logging in and out are `auth`'s.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use axum::http::request::Parts;
use tme_store::{Account, AccountState, WebSession};

use crate::branding::Brand;
use crate::pages::Viewer;
use crate::respond::{WebError, now_unix};
use crate::{WebState, session};

/// The session of the request, as the handlers see it.
#[derive(Debug, Clone)]
pub struct Current {
    pub account: Account,
    /// The account's address as shown.
    pub address: String,
    pub session: WebSession,
    pub csrf_token: String,
    /// The account's partner's brand (left by `branding::brand_layer`; the default when
    /// the request did not pass it).
    pub brand: Brand,
}

impl Current {
    pub fn viewer(&self) -> Viewer<'_> {
        Viewer {
            address: &self.address,
            csrf_token: &self.csrf_token,
            brand: &self.brand,
        }
    }
}

/// The session was usually found already, by `branding::brand_layer` (and, for a POST,
/// checked with its CSRF token by `require_csrf`), which leave it in the request's
/// extensions; otherwise it is found here.
impl FromRequestParts<WebState> for Current {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Current, WebError> {
        let mut current = match parts.extensions.get::<Current>() {
            Some(current) => current.clone(),
            None => current_session(state, &parts.headers).await?,
        };
        if let Some(brand) = parts.extensions.get::<Brand>() {
            current.brand = brand.clone();
        }
        Ok(current)
    }
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|header| session::cookie_value(header, name))
}

/// The request's session, if its cookie names a live one of an account that may log in.
pub async fn current_session(state: &WebState, headers: &HeaderMap) -> Result<Current, WebError> {
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
        brand: Brand::default(),
    })
}
