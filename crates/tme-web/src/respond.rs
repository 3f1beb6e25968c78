//! How a request fails and how a page goes out: `WebError`, the one place that maps what went
//! wrong to an HTTP status and an error page, and the small response helpers every handler
//! uses. It must not read the store or the session.

use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::response::{IntoResponse, Response};
use maud::Markup;
use tme_store::StoreError;

use crate::pages;

/// Why a request failed, mapped to its status and page in one place (`into_response`).
#[derive(Debug)]
pub enum WebError {
    /// No valid session: GETs go to the login form.
    NotLoggedIn,
    /// A POST without a valid CSRF token (or session).
    Forbidden,
    /// Nothing here for this account: an unknown id, or another account's.
    NotFound,
    /// The store failed: our fault; a retry may help.
    Unavailable,
    /// The request breaks a rule (a folder name taken or malformed, a system folder that
    /// cannot be deleted, a full quota): the user's to fix; the text says how.
    Invalid(String),
    /// A body past its limit (`multipart::UPLOAD_BODY_OCTETS_MAX` for uploads).
    TooLarge,
    /// A body that cannot be read as the form it claims to be; says what is wrong.
    BadRequest(&'static str),
    /// A well-formed request that cannot be done, with its status and a page saying why
    /// (a sending refusal, a recipient that does not exist).
    Refused {
        status: StatusCode,
        title: &'static str,
        explanation: String,
    },
}

impl From<StoreError> for WebError {
    fn from(error: StoreError) -> WebError {
        match error {
            StoreError::NotFound { .. } => WebError::NotFound,
            StoreError::AlreadyExists { kind, .. } => {
                WebError::Invalid(format!("That {kind} exists already."))
            }
            StoreError::Refused(text) => WebError::Invalid(text),
            StoreError::QuotaExceeded { .. } => WebError::Invalid(
                "The mailbox is full: delete some mail (and empty the Trash) first.".to_owned(),
            ),
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
            WebError::Invalid(text) => page(
                StatusCode::BAD_REQUEST,
                pages::error("That did not work", &text, None),
            ),
            WebError::Unavailable => page(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::error(
                    "Unavailable",
                    "The mail store cannot be reached just now. Try again in a moment.",
                    None,
                ),
            ),
            WebError::TooLarge => page(
                StatusCode::PAYLOAD_TOO_LARGE,
                pages::error(
                    "Too large",
                    &format!(
                        "This form is larger than the {} MB this site accepts. Send fewer or smaller attachments.",
                        crate::multipart::UPLOAD_BODY_OCTETS_MAX / (1024 * 1024)
                    ),
                    None,
                ),
            ),
            WebError::BadRequest(explanation) => page(
                StatusCode::BAD_REQUEST,
                pages::error("Bad request", explanation, None),
            ),
            WebError::Refused {
                status,
                title,
                explanation,
            } => page(status, pages::error(title, &explanation, None)),
        }
    }
}

pub fn page(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

pub fn redirect(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response()
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub fn page_ok(markup: Markup) -> Response {
    page(StatusCode::OK, markup)
}
