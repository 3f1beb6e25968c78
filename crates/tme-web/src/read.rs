//! Reading mail: the folder list with unread counts, a page of a folder's messages, and one
//! message with its body (`body`) and attachments.
//!
//! It must not change any state.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use tme_store::{Mailbox, MailboxId, MessageRecord};

use crate::current::Current;
use crate::pages::{self, FolderEntry, MessageRow, Paging};
use crate::respond::{WebError, page_ok};
use crate::{MESSAGES_PER_PAGE, WebState, body};

/// The routes of reading.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/mail", get(inbox))
        .route("/mail/{mailbox_id}", get(mailbox_page))
        .route("/mail/{mailbox_id}/{uid}", get(message_page))
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    page: Option<String>,
}

async fn inbox(
    State(state): State<WebState>,
    current: Current,
    Query(query): Query<PageQuery>,
) -> Result<Response, WebError> {
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
    current: Current,
    Path(mailbox_id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, WebError> {
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
    Ok(page_ok(pages::mail::mailbox(
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

async fn message_page(
    State(state): State<WebState>,
    current: Current,
    Path((mailbox_id, uid)): Path<(String, String)>,
) -> Result<Response, WebError> {
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
    Ok(page_ok(pages::mail::message(
        current.viewer(),
        &folders,
        &mailbox,
        &record,
        &summary,
        &body,
    )))
}
