//! Reading mail: the folder list with unread counts, a page of a folder's messages in the
//! order the user chose, one message with its body (`body`) and attachments, and the
//! download of one part (an attachment or an inline image).
//!
//! The one change it makes is the one every mail client makes: opening an unread message
//! marks it `\Seen`. It must not read a whole folder to show a page of it: pages come from
//! the store one page at a time (`MailStore::message_page`), messages by UID
//! (`MailStore::message_by_uid`).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tme_store::mail::SystemFlags;
use tme_store::{FlagChange, Flags, Mailbox, MailboxId, MessageOrder, MessageRecord};

use crate::current::Current;
use crate::pages::mail::Conversation;
use crate::pages::{self, FolderEntry, MessageRow, Paging};
use crate::respond::{WebError, page_ok};
use crate::{MESSAGES_PER_PAGE, WebState, body};

/// The routes of reading.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/mail", get(inbox))
        .route("/mail/{mailbox_id}", get(mailbox_page))
        .route("/mail/{mailbox_id}/{uid}", get(message_page))
        .route("/mail/{mailbox_id}/{uid}/part/{part}", get(part_download))
}

/// The CSP of a message shown with its remote images: as the default (`lib.rs`), but images
/// may come from anywhere. Only sent when the user asked for it, for that message.
pub const CONTENT_SECURITY_POLICY_REMOTE_IMAGES: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' https: http:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// How a message list may be sorted, by the name in its URL (`?sort=`).
pub const SORTS: [(&str, MessageOrder); 6] = [
    ("arrival", MessageOrder::ArrivalNewestFirst),
    ("arrival-oldest", MessageOrder::ArrivalOldestFirst),
    ("date", MessageOrder::DateNewestFirst),
    ("date-oldest", MessageOrder::DateOldestFirst),
    ("size", MessageOrder::SizeLargestFirst),
    ("size-smallest", MessageOrder::SizeSmallestFirst),
];

/// The order named `name`; the default for anything else.
pub fn sort_named(name: Option<&str>) -> (&'static str, MessageOrder) {
    name.and_then(|name| SORTS.iter().find(|(known, _)| *known == name))
        .copied()
        .unwrap_or(SORTS[0])
}

/// The `?sort=` of the conversation view: one row per conversation (`MailStore::thread_page`),
/// the one with the newest arrival first.
pub const CONVERSATIONS: &str = "conversations";

/// How a list is shown, by the name in its URL (`?sort=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListView {
    Messages(&'static str, MessageOrder),
    Conversations,
}

impl ListView {
    pub fn named(name: Option<&str>) -> ListView {
        if name == Some(CONVERSATIONS) {
            ListView::Conversations
        } else {
            let (name, order) = sort_named(name);
            ListView::Messages(name, order)
        }
    }

    /// Its name in a URL.
    pub fn name(self) -> &'static str {
        match self {
            ListView::Messages(name, _) => name,
            ListView::Conversations => CONVERSATIONS,
        }
    }
}

/// The most messages of one conversation the message view lists.
pub const CONVERSATION_MESSAGES_SHOWN_MAX: u32 = 100;

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    page: Option<String>,
    sort: Option<String>,
}

async fn inbox(
    State(state): State<WebState>,
    current: Current,
    Query(query): Query<ListQuery>,
) -> Result<Response, WebError> {
    let inbox = state
        .store
        .mail
        .mailbox_find(current.account.id, "INBOX")
        .await?
        .ok_or(WebError::NotFound)?;
    mailbox_response(&state, &current, inbox, &query).await
}

/// A path segment that must be a number; anything else is nothing here.
pub(crate) fn path_number<T: std::str::FromStr>(segment: &str) -> Result<T, WebError> {
    segment.parse().map_err(|_| WebError::NotFound)
}

async fn mailbox_page(
    State(state): State<WebState>,
    current: Current,
    Path(mailbox_id): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Response, WebError> {
    let mailbox = live_mailbox(&state, &current, path_number(&mailbox_id)?).await?;
    mailbox_response(&state, &current, mailbox, &query).await
}

/// The session's account's mailbox `id`; NotFound for another account's, or a deleted one.
pub(crate) async fn live_mailbox(
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

/// The live message `uid` of the session's account's mailbox; NotFound otherwise.
pub(crate) async fn live_message(
    state: &WebState,
    current: &Current,
    mailbox: &Mailbox,
    uid: &str,
) -> Result<MessageRecord, WebError> {
    state
        .store
        .mail
        .message_by_uid(current.account.id, mailbox.id, path_number(uid)?)
        .await?
        .ok_or(WebError::NotFound)
}

/// The account's folders with their counts: INBOX first, then by name.
pub(crate) async fn folders(
    state: &WebState,
    current: &Current,
) -> Result<Vec<FolderEntry>, WebError> {
    let mut folders = Vec::new();
    for mailbox in state.store.mail.mailbox_list(current.account.id).await? {
        let counts = state
            .store
            .mail
            .mailbox_counts(current.account.id, mailbox.id)
            .await?;
        folders.push(FolderEntry { mailbox, counts });
    }
    folders.sort_by_key(|folder| folder.mailbox.name != "INBOX");
    Ok(folders)
}

/// The rows of `records`, with their summaries read in one go.
pub(crate) async fn rows_of(
    state: &WebState,
    current: &Current,
    records: Vec<MessageRecord>,
) -> Result<Vec<MessageRow>, WebError> {
    let ids: Vec<_> = records.iter().map(|record| record.id).collect();
    let mut summaries: std::collections::HashMap<_, _> = state
        .store
        .mail
        .message_summaries(current.account.id, &ids)
        .await?
        .into_iter()
        .collect();
    Ok(records
        .into_iter()
        .map(|record| MessageRow {
            summary: summaries.remove(&record.id),
            record,
            conversation: None,
        })
        .collect())
}

async fn mailbox_response(
    state: &WebState,
    current: &Current,
    mailbox: Mailbox,
    query: &ListQuery,
) -> Result<Response, WebError> {
    let folders = folders(state, current).await?;
    let view = ListView::named(query.sort.as_deref());
    let messages = folders
        .iter()
        .find(|folder| folder.mailbox.id == mailbox.id)
        .map(|folder| folder.counts.messages)
        .unwrap_or(0);
    let messages = usize::try_from(messages).unwrap_or(usize::MAX);
    // The conversation view pages through conversations, the other views through messages.
    let entries = match view {
        ListView::Conversations if messages > 0 => {
            let count = state
                .store
                .mail
                .thread_count(current.account.id, mailbox.id)
                .await?;
            usize::try_from(count).unwrap_or(usize::MAX)
        }
        _ => messages,
    };
    let pages = entries.div_ceil(MESSAGES_PER_PAGE).max(1);
    let page = query
        .page
        .as_deref()
        .and_then(|text| text.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let offset = ((page - 1) * MESSAGES_PER_PAGE) as u64;
    let rows = match view {
        ListView::Messages(_, order) => {
            let records = state
                .store
                .mail
                .message_page(
                    current.account.id,
                    mailbox.id,
                    order,
                    offset,
                    MESSAGES_PER_PAGE as u32,
                )
                .await?;
            rows_of(state, current, records).await?
        }
        ListView::Conversations => {
            let threads = state
                .store
                .mail
                .thread_page(
                    current.account.id,
                    mailbox.id,
                    offset,
                    MESSAGES_PER_PAGE as u32,
                )
                .await?;
            let records = threads.iter().map(|entry| entry.newest.clone()).collect();
            let mut rows = rows_of(state, current, records).await?;
            for (row, entry) in rows.iter_mut().zip(&threads) {
                row.conversation = Some(Conversation {
                    messages: entry.messages,
                    unseen: entry.unseen,
                });
            }
            rows
        }
    };
    Ok(page_ok(pages::mail::mailbox(
        current.viewer(),
        &folders,
        &mailbox,
        &rows,
        Paging {
            page,
            pages,
            messages,
            entries,
            sort: view.name(),
        },
    )))
}

#[derive(Debug, Deserialize)]
struct MessageQuery {
    /// `show`: this message's remote images are shown.
    images: Option<String>,
}

async fn message_page(
    State(state): State<WebState>,
    current: Current,
    Path((mailbox_id, uid)): Path<(String, String)>,
    Query(query): Query<MessageQuery>,
) -> Result<Response, WebError> {
    let mailbox = live_mailbox(&state, &current, path_number(&mailbox_id)?).await?;
    let mut record = live_message(&state, &current, &mailbox, &uid).await?;
    if !record.flags.system.contains(SystemFlags::SEEN) {
        let seen = Flags {
            system: SystemFlags(SystemFlags::SEEN),
            keywords: Vec::new(),
        };
        // Failing to mark it read is no reason not to show it.
        match state
            .store
            .mail
            .messages_set_flags(
                current.account.id,
                mailbox.id,
                &[record.uid],
                &FlagChange::Add(seen),
                None,
            )
            .await
        {
            Ok(changed) => {
                if let Some(changed) = changed.into_iter().next() {
                    record = changed;
                }
                state.store.changes.notify(current.account.id);
            }
            Err(error) => tracing::warn!(%error, "webmail: could not mark a message read"),
        }
    }
    let summary = state
        .store
        .mail
        .message_summary(current.account.id, record.id)
        .await?;
    let raw = state.store.message_raw(&record).await?;
    let remote_images = query.images.as_deref() == Some("show");
    let images = body::Images {
        part_url: format!("/mail/{}/{}/part/", mailbox.id, record.uid),
        remote: remote_images,
    };
    // Parsing and sanitising a large body takes CPU: off the async threads.
    let body = tokio::task::spawn_blocking(move || body::message_body(&raw, &images))
        .await
        .map_err(|_| WebError::Unavailable)?;
    let folders = folders(&state, &current).await?;
    let conversation = state
        .store
        .mail
        .thread_messages(
            current.account.id,
            record.thread_id,
            CONVERSATION_MESSAGES_SHOWN_MAX,
        )
        .await?;
    // A message alone needs no list of its conversation.
    let conversation = if conversation.len() > 1 {
        rows_of(&state, &current, conversation).await?
    } else {
        Vec::new()
    };
    let mut response = page_ok(pages::mail::message(
        current.viewer(),
        &folders,
        &mailbox,
        &record,
        &summary,
        &body,
        &conversation,
    ));
    if remote_images {
        response.headers_mut().insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY_REMOTE_IMAGES),
        );
    }
    Ok(response)
}

/// One part of a message: an inline image is shown (only the types of
/// `body::INLINE_IMAGE_TYPES`), anything else is downloaded, never shown as a page of ours.
async fn part_download(
    State(state): State<WebState>,
    current: Current,
    Path((mailbox_id, uid, part)): Path<(String, String, String)>,
) -> Result<Response, WebError> {
    let mailbox = live_mailbox(&state, &current, path_number(&mailbox_id)?).await?;
    let record = live_message(&state, &current, &mailbox, &uid).await?;
    let part_id: u32 = path_number(&part)?;
    let raw = state.store.message_raw(&record).await?;
    let content = tokio::task::spawn_blocking(move || body::message_part(&raw, part_id))
        .await
        .map_err(|_| WebError::Unavailable)?
        .ok_or(WebError::NotFound)?;
    let inline = body::INLINE_IMAGE_TYPES.contains(&content.media_type.as_str());
    let fallback_name = format!("part-{part_id}");
    let name = content.name.as_deref().unwrap_or(&fallback_name);
    let disposition = content_disposition(if inline { "inline" } else { "attachment" }, name);
    let content_type = HeaderValue::from_str(&content.media_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut response = (StatusCode::OK, content.bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, content_type);
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    // Even if a browser were to show it, nothing in it may run.
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    Ok(response)
}

/// A Content-Disposition field (RFC 6266 §4.1) for a file named `name`, cleaned as uploads are
/// (`multipart::sanitize_file_name`): an ASCII `filename` with anything doubtful replaced,
/// and the cleaned name in `filename*` (RFC 8187).
pub fn content_disposition(disposition: &str, name: &str) -> String {
    let safe = crate::multipart::sanitize_file_name(name);
    let ascii: String = safe
        .chars()
        .map(|character| {
            if character.is_ascii_graphic() && character != '"' && character != '\\'
                || character == ' '
            {
                character
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for byte in safe.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("{disposition}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_names_are_cleaned_and_encoded() {
        assert_eq!(
            content_disposition("attachment", "../../etc/passwd"),
            "attachment; filename=\"passwd\"; filename*=UTF-8''passwd"
        );
        assert_eq!(
            content_disposition("attachment", "résumé \"1\".pdf"),
            "attachment; filename=\"r_sum_ _1_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20_1_.pdf"
        );
    }

    #[test]
    fn unknown_sorts_fall_back_to_arrival() {
        assert_eq!(sort_named(Some("size")).1, MessageOrder::SizeLargestFirst);
        assert_eq!(sort_named(Some("nonsense")).0, "arrival");
        assert_eq!(sort_named(None).1, MessageOrder::ArrivalNewestFirst);
    }
}
