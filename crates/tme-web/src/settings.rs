//! The settings of the logged-in account: display name, signature, vacation auto-reply,
//! password, app passwords and web sessions. Every change is a POST (its CSRF token checked by `require_csrf`
//! before it gets here) answered by a redirect to `/settings` with a short confirmation
//! named by a fixed code (`?done=…` / `?error=…`: nothing the client sent is reflected),
//! except a new app password, which is shown once on the page that answers its POST.
//!
//! A password change re-checks the current password through the node's `Authenticator`
//! (so guesses here count towards the same throttle and lock as IMAP logins), then against
//! the account's own password (an app password does not change the password), stores an
//! argon2id hash of the new one (`tme_core::password::hash_password`, as `tme account set`
//! does) and ends every other web session of the account.
//!
//! It must not reach another account: every store call names the session's account.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tme_core::Secret;
use tme_core::password::{PASSWORD_OCTETS_MAX, generate_app_password, hash_password};
use tme_store::{
    ACCOUNT_SIGNATURE_CHARS_MAX, AccountId, StoreResult, VACATION_BODY_CHARS_MAX,
    VACATION_SUBJECT_CHARS_MAX, Vacation,
};

use crate::current::Current;
use crate::pages;
use crate::pages::settings::{Notice, SessionRow, SettingsView};
use crate::respond::{WebError, now_unix, page_ok, redirect};
use crate::{FORM_BODY_OCTETS_MAX, WebState};

/// The shortest new password accepted, in characters.
pub const PASSWORD_CHARS_MIN: usize = 10;
/// The longest display name accepted, in characters.
pub const DISPLAY_NAME_CHARS_MAX: usize = 100;
/// The longest app password name accepted, in characters.
pub const APP_PASSWORD_LABEL_CHARS_MAX: usize = 64;
/// How many app passwords one account may have.
pub const APP_PASSWORDS_PER_ACCOUNT_MAX: usize = 50;

/// The routes of the settings page.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/settings", get(settings_page))
        .route("/settings/profile", post(set_profile))
        .route("/settings/signature", post(set_signature))
        .route("/settings/vacation", post(set_vacation))
        .route("/settings/password", post(set_password))
        .route("/settings/app-passwords", post(add_app_password))
        .route(
            "/settings/app-passwords/{id}/revoke",
            post(revoke_app_password),
        )
        .route("/settings/sessions/revoke", post(revoke_session))
        .route(
            "/settings/sessions/revoke-others",
            post(revoke_other_sessions),
        )
}

/// The account's signature, for the compose form: the text the new message ends with.
pub async fn signature(state: &WebState, account_id: AccountId) -> StoreResult<Option<String>> {
    state
        .store
        .directory
        .account_signature_get(account_id)
        .await
}

#[derive(Debug, Deserialize)]
struct NoticeQuery {
    done: Option<String>,
    error: Option<String>,
}

async fn settings_page(
    State(state): State<WebState>,
    current: Current,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, WebError> {
    let notice = query
        .error
        .as_deref()
        .and_then(Notice::error)
        .or_else(|| query.done.as_deref().and_then(Notice::done));
    render(&state, &current, notice, None).await
}

/// The settings page; `new_app_password` (label, password) is shown once.
async fn render(
    state: &WebState,
    current: &Current,
    notice: Option<Notice>,
    new_app_password: Option<(String, String)>,
) -> Result<Response, WebError> {
    let directory = &state.store.directory;
    let account = directory
        .account_get_by_id(current.account.id)
        .await?
        .ok_or(WebError::NotLoggedIn)?;
    let signature = directory.account_signature_get(account.id).await?;
    let vacation = directory.account_vacation_get(account.id).await?;
    let app_passwords = directory.app_password_list(account.id).await?;
    let now = now_unix();
    let sessions: Vec<SessionRow> = directory
        .web_session_list(account.id)
        .await?
        .into_iter()
        .filter(|session| session.expires_unix > now)
        .map(|session| SessionRow {
            current: session.token_hash == current.session.token_hash,
            session,
        })
        .collect();
    let view = SettingsView {
        display_name: account.display_name.as_deref().unwrap_or(""),
        signature: signature.as_deref().unwrap_or(""),
        vacation: &vacation,
        vacation_active_now: vacation.active_at(now),
        app_passwords: &app_passwords,
        sessions: &sessions,
        notice,
        new_app_password: new_app_password
            .as_ref()
            .map(|(label, password)| (label.as_str(), password.as_str())),
    };
    Ok(page_ok(pages::settings::settings(current.viewer(), &view)))
}

/// The form fields of a POST body (already read, and its CSRF token checked, by
/// `require_csrf`).
fn form_fields<T: DeserializeOwned>(body: &[u8]) -> Result<T, WebError> {
    if body.len() > FORM_BODY_OCTETS_MAX {
        return Err(WebError::Forbidden);
    }
    serde_urlencoded::from_bytes(body).map_err(|_| WebError::Forbidden)
}

fn done(code: &str) -> Response {
    redirect(&format!("/settings?done={code}"))
}

fn refused(code: &str) -> Response {
    redirect(&format!("/settings?error={code}"))
}

#[derive(Debug, Deserialize)]
struct ProfileFields {
    #[serde(default)]
    display_name: String,
}

async fn set_profile(
    State(state): State<WebState>,
    current: Current,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    let fields: ProfileFields = form_fields(&body)?;
    let name = fields.display_name.trim();
    if name.chars().count() > DISPLAY_NAME_CHARS_MAX || name.chars().any(char::is_control) {
        return Ok(refused("display-name"));
    }
    state
        .store
        .directory
        .account_set_display_name(
            current.account.id,
            Some(name).filter(|name| !name.is_empty()),
        )
        .await?;
    Ok(done("display-name"))
}

#[derive(Debug, Deserialize)]
struct SignatureFields {
    #[serde(default)]
    signature: String,
}

async fn set_signature(
    State(state): State<WebState>,
    current: Current,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    let fields: SignatureFields = form_fields(&body)?;
    // Browsers send a textarea's line ends as CRLF; keep LF, drop trailing blank space.
    let signature = fields.signature.replace("\r\n", "\n");
    let signature = signature.trim_end();
    if signature.chars().count() > ACCOUNT_SIGNATURE_CHARS_MAX
        || signature
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Ok(refused("signature"));
    }
    state
        .store
        .directory
        .account_signature_set(current.account.id, Some(signature))
        .await?;
    Ok(done("signature"))
}

#[derive(Debug, Deserialize)]
struct VacationFields {
    /// A checkbox: present ("on") when ticked.
    #[serde(default)]
    enabled: Option<String>,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    body: String,
    /// `YYYY-MM-DD` (an `<input type="date">`), or empty.
    #[serde(default)]
    first_day: String,
    #[serde(default)]
    last_day: String,
}

async fn set_vacation(
    State(state): State<WebState>,
    current: Current,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    let fields: VacationFields = form_fields(&body)?;
    let subject = fields.subject.trim();
    let text = fields.body.replace("\r\n", "\n");
    let text = text.trim_end();
    if subject.chars().count() > VACATION_SUBJECT_CHARS_MAX
        || subject.chars().any(char::is_control)
        || text.chars().count() > VACATION_BODY_CHARS_MAX
        || text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Ok(refused("vacation"));
    }
    let (Some(first_day), Some(last_day)) =
        (parse_day(&fields.first_day), parse_day(&fields.last_day))
    else {
        return Ok(refused("vacation-dates"));
    };
    if let (Some(first), Some(last)) = (first_day, last_day)
        && last < first
    {
        return Ok(refused("vacation-dates"));
    }
    let vacation = Vacation {
        enabled: fields.enabled.is_some(),
        subject: subject.to_owned(),
        body: text.to_owned(),
        first_day_epoch_days: first_day,
        last_day_epoch_days: last_day,
    };
    state
        .store
        .directory
        .account_vacation_set(current.account.id, &vacation)
        .await?;
    Ok(done("vacation"))
}

/// The days between 1970-01-01 and the Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

/// A `YYYY-MM-DD` field as days since 1970-01-01: `Some(None)` when empty, None when it is
/// not a date.
fn parse_day(text: &str) -> Option<Option<i64>> {
    let text = text.trim();
    if text.is_empty() {
        return Some(None);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text, &format).ok()?;
    Some(Some(
        i64::from(date.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY,
    ))
}

/// Days since 1970-01-01 as `YYYY-MM-DD`, for the form's date fields.
pub(crate) fn format_day(epoch_days: i64) -> String {
    i32::try_from(epoch_days + UNIX_EPOCH_JULIAN_DAY)
        .ok()
        .and_then(|julian| time::Date::from_julian_day(julian).ok())
        .map(|date| {
            format!(
                "{:04}-{:02}-{:02}",
                date.year(),
                u8::from(date.month()),
                date.day()
            )
        })
        .unwrap_or_default()
}

#[derive(Debug, Deserialize)]
struct PasswordFields {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

async fn set_password(
    State(state): State<WebState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    current: Current,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    let fields: PasswordFields = form_fields(&body)?;
    if fields.new_password != fields.confirm_password {
        return Ok(refused("password-mismatch"));
    }
    if fields.new_password.chars().count() < PASSWORD_CHARS_MIN
        || fields.new_password.len() > PASSWORD_OCTETS_MAX
    {
        return Ok(refused("password-length"));
    }
    if fields.current_password.len() > PASSWORD_OCTETS_MAX {
        return Ok(refused("password-wrong"));
    }
    // Through the node's authenticator: a wrong password here counts like a failed login.
    let current_password = Secret::new(fields.current_password);
    // The login also takes app passwords; changing the password takes only the password.
    let account = match state
        .authenticator
        .login(client.ip(), &current.address, &current_password)
        .await
    {
        Ok(login)
            if login.account.id == current.account.id
                && matches!(login.credential, tme_auth::Credential::Password { .. }) =>
        {
            login.account
        }
        Ok(_) | Err(tme_auth::LoginRefusal::BadCredentials) => {
            return Ok(refused("password-wrong"));
        }
        Err(tme_auth::LoginRefusal::Locked { .. }) => return Ok(refused("locked")),
        Err(tme_auth::LoginRefusal::AccountSuspended) => return Err(WebError::NotLoggedIn),
        Err(tme_auth::LoginRefusal::Unavailable) => return Err(WebError::Unavailable),
    };
    let new_password = fields.new_password;
    let hashed = tokio::task::spawn_blocking(move || hash_password(&new_password))
        .await
        .map_err(|_| WebError::Unavailable)?;
    let hash = match hashed {
        Ok(hash) => hash,
        Err(error) => {
            tracing::warn!(%error, "webmail: cannot hash a new password");
            return Ok(refused("password-length"));
        }
    };
    let directory = &state.store.directory;
    directory
        .account_set_password_hash(account.id, &hash)
        .await?;
    // Whoever else was logged in (perhaps with the old password) is logged out.
    let mut ended = 0usize;
    for session in directory.web_session_list(account.id).await? {
        if session.token_hash != current.session.token_hash
            && directory
                .web_session_remove(account.id, &session.token_hash)
                .await?
        {
            ended += 1;
        }
    }
    tracing::info!(account = %current.address, other_sessions_ended = ended, "webmail: password changed");
    Ok(done("password"))
}

#[derive(Debug, Deserialize)]
struct AppPasswordFields {
    #[serde(default)]
    label: String,
}

async fn add_app_password(
    State(state): State<WebState>,
    current: Current,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    let fields: AppPasswordFields = form_fields(&body)?;
    let label = fields.label.trim().to_owned();
    if label.is_empty()
        || label.chars().count() > APP_PASSWORD_LABEL_CHARS_MAX
        || label.chars().any(char::is_control)
    {
        return Ok(refused("app-password-label"));
    }
    let directory = &state.store.directory;
    if directory.app_password_list(current.account.id).await?.len() >= APP_PASSWORDS_PER_ACCOUNT_MAX
    {
        return Ok(refused("app-password-count"));
    }
    // The same generator and hash as `tme account app-password add`.
    let password = generate_app_password();
    let to_hash = password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&to_hash))
        .await
        .map_err(|_| WebError::Unavailable)?
        .map_err(|error| {
            tracing::warn!(%error, "webmail: cannot hash an app password");
            WebError::Unavailable
        })?;
    directory
        .app_password_add(current.account.id, &label, &hash)
        .await?;
    tracing::info!(account = %current.address, "webmail: app password created");
    render(
        &state,
        &current,
        Some(Notice::Done("App password created.")),
        Some((label, password)),
    )
    .await
}

async fn revoke_app_password(
    State(state): State<WebState>,
    current: Current,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let id: i64 = id.parse().map_err(|_| WebError::NotFound)?;
    // Keyed by the session's account: another account's id is not found.
    state
        .store
        .directory
        .app_password_remove(current.account.id, id)
        .await?;
    Ok(done("app-password-revoked"))
}

#[derive(Debug, Deserialize)]
struct SessionFields {
    #[serde(default)]
    session: String,
}

async fn revoke_session(
    State(state): State<WebState>,
    current: Current,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    let fields: SessionFields = form_fields(&body)?;
    let removed = state
        .store
        .directory
        .web_session_remove(current.account.id, &fields.session)
        .await?;
    if !removed {
        return Err(WebError::NotFound);
    }
    if fields.session == current.session.token_hash {
        return Ok(redirect("/login"));
    }
    Ok(done("session-revoked"))
}

async fn revoke_other_sessions(
    State(state): State<WebState>,
    current: Current,
) -> Result<Response, WebError> {
    let directory = &state.store.directory;
    for session in directory.web_session_list(current.account.id).await? {
        if session.token_hash != current.session.token_hash {
            directory
                .web_session_remove(current.account.id, &session.token_hash)
                .await?;
        }
    }
    Ok(done("sessions-revoked"))
}
