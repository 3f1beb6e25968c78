//! Search: the form (words anywhere in the message, and From, To, Subject, date and folder
//! filters) and its results, newest first, across every folder or one.
//!
//! The words are looked for as IMAP's TEXT looks (header and text parts, case ignored:
//! `tme_message::searchable_text_contains`), with the full-text index (`tme-search`) asked
//! first: a message it rules out is not read. Messages that arrived after the index's last
//! update are read anyway, so the answer is the same with or without the index. The
//! filters match the stored summary (`tme_message::addresses_contain`, `contains_ignore_case`).
//!
//! Bounded: at most `SEARCH_RESULTS_MAX` results, at most `SEARCH_FIELD_OCTETS_MAX` octets
//! per field. It must not change any state.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use tme_message::{MessageSummary, addresses_contain, contains_ignore_case};
use tme_search::{TextQuery, TextScope};
use tme_store::{Mailbox, MessageRecord};

use crate::WebState;
use crate::current::Current;
use crate::pages::{self, MessageRow};
use crate::read::{folders, path_number};
use crate::respond::{WebError, page_ok};

/// The routes of search.
pub fn routes() -> Router<WebState> {
    Router::new().route("/search", get(search_page))
}

/// The most results one search shows.
pub const SEARCH_RESULTS_MAX: usize = 200;
/// The longest value of one search field, in octets.
pub const SEARCH_FIELD_OCTETS_MAX: usize = 500;
/// Summaries read from the store in one go.
const SUMMARIES_PER_READ: usize = 500;

/// The search form as sent (every field optional; an empty form shows only the form).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct SearchForm {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub subject: String,
    /// `YYYY-MM-DD`: on or after this day (UTC).
    #[serde(default)]
    pub since: String,
    /// `YYYY-MM-DD`: before this day (UTC).
    #[serde(default)]
    pub before: String,
    /// A folder id, or empty for every folder.
    #[serde(default)]
    pub folder: String,
}

/// A search, checked: what the form asks, with its dates as UNIX days.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Criteria {
    words: String,
    from: String,
    to: String,
    subject: String,
    since_unix: Option<i64>,
    before_unix: Option<i64>,
}

impl SearchForm {
    fn is_empty(&self) -> bool {
        [
            &self.q,
            &self.from,
            &self.to,
            &self.subject,
            &self.since,
            &self.before,
        ]
        .iter()
        .all(|field| field.trim().is_empty())
    }

    fn criteria(&self) -> Result<Criteria, String> {
        for field in [&self.q, &self.from, &self.to, &self.subject] {
            if field.len() > SEARCH_FIELD_OCTETS_MAX {
                return Err(format!(
                    "A search field may hold at most {SEARCH_FIELD_OCTETS_MAX} characters."
                ));
            }
        }
        Ok(Criteria {
            words: self.q.trim().to_owned(),
            from: self.from.trim().to_owned(),
            to: self.to.trim().to_owned(),
            subject: self.subject.trim().to_owned(),
            since_unix: day_start(&self.since)?,
            before_unix: day_start(&self.before)?,
        })
    }
}

/// The UNIX time a `YYYY-MM-DD` day starts (UTC); None for an empty field.
fn day_start(text: &str) -> Result<Option<i64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &format)
        .map(|date| Some(date.midnight().assume_utc().unix_timestamp()))
        .map_err(|_| format!("\"{text}\" is not a date: write it as YYYY-MM-DD."))
}

impl Criteria {
    /// Whether the summary passes every filter but the words.
    fn summary_matches(&self, record: &MessageRecord, summary: &MessageSummary) -> bool {
        let date = summary.date_unix.unwrap_or(record.internal_date_unix);
        (self.from.is_empty() || addresses_contain(&summary.from, self.from.as_bytes()))
            && (self.to.is_empty()
                || addresses_contain(&summary.to, self.to.as_bytes())
                || addresses_contain(&summary.cc, self.to.as_bytes()))
            && (self.subject.is_empty()
                || summary.subject.as_deref().is_some_and(|subject| {
                    contains_ignore_case(subject.as_bytes(), self.subject.as_bytes())
                }))
            && self.since_unix.is_none_or(|since| date >= since)
            && self.before_unix.is_none_or(|before| date < before)
    }
}

/// One result: its folder and its row.
#[derive(Debug, Clone)]
pub struct Found {
    pub mailbox: Mailbox,
    pub row: MessageRow,
}

async fn search_page(
    State(state): State<WebState>,
    current: Current,
    Query(form): Query<SearchForm>,
) -> Result<Response, WebError> {
    let folders = folders(&state, &current).await?;
    if form.is_empty() {
        return Ok(page_ok(pages::search::search(
            current.viewer(),
            &folders,
            &form,
            None,
            None,
        )));
    }
    let criteria = match form.criteria() {
        Ok(criteria) => criteria,
        Err(problem) => {
            return Ok(page_ok(pages::search::search(
                current.viewer(),
                &folders,
                &form,
                None,
                Some(&problem),
            )));
        }
    };
    let mailboxes: Vec<Mailbox> = if form.folder.trim().is_empty() {
        folders
            .iter()
            .map(|folder| folder.mailbox.clone())
            .collect()
    } else {
        let id: tme_store::MailboxId = path_number(form.folder.trim())?;
        let folder = folders
            .iter()
            .find(|folder| folder.mailbox.id == id)
            .ok_or(WebError::NotFound)?;
        vec![folder.mailbox.clone()]
    };
    let (found, more) = run_search(&state, &current, &mailboxes, &criteria).await?;
    Ok(page_ok(pages::search::search(
        current.viewer(),
        &folders,
        &form,
        Some((&found, more)),
        None,
    )))
}

/// The messages of `mailboxes` that match, newest first (internal date, then UID), at most
/// `SEARCH_RESULTS_MAX`; and whether there were more.
async fn run_search(
    state: &WebState,
    current: &Current,
    mailboxes: &[Mailbox],
    criteria: &Criteria,
) -> Result<(Vec<Found>, bool), WebError> {
    let account = current.account.id;
    let mut records: Vec<MessageRecord> = Vec::new();
    for mailbox in mailboxes {
        records.extend(state.store.mail.message_list(account, mailbox.id).await?);
    }
    records.sort_by_key(|record| std::cmp::Reverse((record.internal_date_unix, record.id)));
    // The index's answer: the messages that may hold the words, as of its MODSEQ.
    let prefilter = match (&state.search, criteria.words.is_empty()) {
        (Some(indexes), false) => {
            let queries = [TextQuery {
                scope: TextScope::Text,
                needle: criteria.words.as_bytes(),
            }];
            indexes
                .prefilter(account, &queries)
                .await
                .and_then(|answer| {
                    let candidates = answer.candidates.into_iter().next().flatten()?;
                    Some((answer.modseq, candidates))
                })
        }
        _ => None,
    };
    let by_id: HashMap<_, _> = mailboxes
        .iter()
        .map(|mailbox| (mailbox.id, mailbox))
        .collect();
    let mut found = Vec::new();
    for chunk in records.chunks(SUMMARIES_PER_READ) {
        // The index rules out what it can before any summary or message is read.
        let chunk: Vec<&MessageRecord> = chunk
            .iter()
            .filter(|record| match &prefilter {
                Some((modseq, candidates)) => {
                    record.modseq > *modseq || candidates.contains(&record.id)
                }
                None => true,
            })
            .collect();
        let ids: Vec<_> = chunk.iter().map(|record| record.id).collect();
        let summaries: HashMap<_, _> = state
            .store
            .mail
            .message_summaries(account, &ids)
            .await?
            .into_iter()
            .collect();
        for record in chunk {
            let Some(summary) = summaries.get(&record.id) else {
                continue;
            };
            if !criteria.summary_matches(record, summary) {
                continue;
            }
            if !criteria.words.is_empty()
                && !words_in(state, record, summary, &criteria.words).await?
            {
                continue;
            }
            if found.len() == SEARCH_RESULTS_MAX {
                return Ok((found, true));
            }
            let Some(mailbox) = by_id.get(&record.mailbox_id) else {
                continue;
            };
            found.push(Found {
                mailbox: Mailbox::clone(mailbox),
                row: MessageRow {
                    record: record.clone(),
                    summary: Some(Arc::clone(summary)),
                    conversation: None,
                },
            });
        }
    }
    Ok((found, false))
}

/// Whether the message holds `words` (IMAP TEXT's rule), read from its bytes.
async fn words_in(
    state: &WebState,
    record: &MessageRecord,
    summary: &Arc<MessageSummary>,
    words: &str,
) -> Result<bool, WebError> {
    let raw = state.store.message_raw(record).await?;
    let summary = Arc::clone(summary);
    let words = words.to_owned();
    tokio::task::spawn_blocking(move || {
        tme_message::searchable_text_contains(&raw, &summary, words.as_bytes(), true)
    })
    .await
    .map_err(|_| WebError::Unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_limits_are_checked() {
        assert_eq!(day_start(""), Ok(None));
        assert_eq!(day_start("1970-01-02"), Ok(Some(86_400)));
        assert!(day_start("02/01/1970").is_err());
        let form = SearchForm {
            q: "x".repeat(SEARCH_FIELD_OCTETS_MAX + 1),
            ..SearchForm::default()
        };
        assert!(form.criteria().is_err());
        assert!(SearchForm::default().is_empty());
    }
}
