//! The pages of reading mail: the folder list, a page of a folder's messages and one
//! message.

use maud::{Markup, PreEscaped, html};
use tme_message::{Addr, MessageSummary};
use tme_store::mail::SystemFlags;
use tme_store::{Mailbox, MailboxCounts, MailboxId, MessageRecord};

use super::{Viewer, layout};
use crate::body::{MessageBody, Shown};

/// A mailbox in the folder list.
#[derive(Debug, Clone)]
pub struct FolderEntry {
    pub mailbox: Mailbox,
    pub counts: MailboxCounts,
}

/// One row of the message list.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub record: MessageRecord,
    pub summary: Option<std::sync::Arc<MessageSummary>>,
}

pub(crate) fn folder_list(folders: &[FolderEntry], current: MailboxId) -> Markup {
    html! {
        nav class="folders" aria-label="Folders" {
            ul {
                @for folder in folders {
                    li {
                        a href={ "/mail/" (folder.mailbox.id) }
                            aria-current=[(folder.mailbox.id == current).then_some("page")] {
                            (folder.mailbox.name)
                            @if folder.counts.unseen > 0 {
                                " " span class="unread-count" { "(" (folder.counts.unseen) ")" }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(crate) fn display_addresses(addresses: &[Addr]) -> String {
    addresses
        .iter()
        .map(|address| match &address.name {
            Some(name) if !name.is_empty() => name.clone(),
            _ => address.email.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn full_addresses(addresses: &[Addr]) -> String {
    addresses
        .iter()
        .map(|address| match &address.name {
            Some(name) if !name.is_empty() => format!("{name} <{}>", address.email),
            _ => address.email.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `YYYY-MM-DD HH:MM` in UTC.
pub fn format_date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|date| {
            date.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// The paging of a message list.
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    /// 1-based.
    pub page: usize,
    pub pages: usize,
    pub messages: usize,
}

/// A mailbox: the folder list and one page of its messages, newest first.
pub fn mailbox(
    viewer: Viewer<'_>,
    folders: &[FolderEntry],
    mailbox: &Mailbox,
    rows: &[MessageRow],
    paging: Paging,
) -> Markup {
    layout(
        &mailbox.name,
        Some(viewer),
        html! {
            div class="app" {
                (folder_list(folders, mailbox.id))
                main class="messages" {
                    h1 { (mailbox.name) }
                    @if rows.is_empty() {
                        p class="empty" { "No messages." }
                    } @else {
                        table class="message-list" {
                            thead { tr {
                                th scope="col" { "From" }
                                th scope="col" { "Subject" }
                                th scope="col" { "Date" }
                            } }
                            tbody {
                                @for row in rows { (message_row(mailbox.id, row)) }
                            }
                        }
                    }
                    @if paging.pages > 1 {
                        nav class="paging" aria-label="Pages" {
                            @if paging.page > 1 {
                                a rel="prev" href={ "/mail/" (mailbox.id) "?page=" (paging.page - 1) } { "Newer" }
                            }
                            span { "Page " (paging.page) " of " (paging.pages) }
                            @if paging.page < paging.pages {
                                a rel="next" href={ "/mail/" (mailbox.id) "?page=" (paging.page + 1) } { "Older" }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn message_row(mailbox_id: MailboxId, row: &MessageRow) -> Markup {
    let unread = !row.record.flags.system.contains(SystemFlags::SEEN);
    let flagged = row.record.flags.system.contains(SystemFlags::FLAGGED);
    let (from, subject, date_unix, attachment) = match &row.summary {
        Some(summary) => (
            display_addresses(&summary.from),
            summary.subject.clone().unwrap_or_default(),
            summary.date_unix.unwrap_or(row.record.internal_date_unix),
            summary.has_attachment,
        ),
        None => (
            String::new(),
            String::new(),
            row.record.internal_date_unix,
            false,
        ),
    };
    let subject = if subject.trim().is_empty() {
        "(no subject)".to_owned()
    } else {
        subject
    };
    html! {
        tr class=[unread.then_some("unread")] {
            td class="from" { (from) }
            td class="subject" {
                a href={ "/mail/" (mailbox_id) "/" (row.record.uid) } {
                    @if unread { span class="visually-hidden" { "Unread: " } }
                    (subject)
                }
                @if flagged { " " span class="flag" title="Flagged" { "★" } }
                @if attachment { " " span class="attachment" { "attachment" } }
            }
            td class="date" { (format_date(date_unix)) }
        }
    }
}

/// One message: its header fields, its body and its attachments.
pub fn message(
    viewer: Viewer<'_>,
    folders: &[FolderEntry],
    mailbox: &Mailbox,
    record: &MessageRecord,
    summary: &MessageSummary,
    body: &MessageBody,
) -> Markup {
    let subject = summary
        .subject
        .clone()
        .filter(|subject| !subject.trim().is_empty())
        .unwrap_or_else(|| "(no subject)".to_owned());
    html! {
        (layout(&subject, Some(viewer), html! {
            div class="app" {
                (folder_list(folders, mailbox.id))
                main class="message" {
                    p { a href={ "/mail/" (mailbox.id) } { "← " (mailbox.name) } }
                    h1 class="subject" { (subject) }
                    (message_actions(mailbox, record))
                    dl class="fields" {
                        dt { "From" } dd { (full_addresses(&summary.from)) }
                        @if !summary.to.is_empty() { dt { "To" } dd { (full_addresses(&summary.to)) } }
                        @if !summary.cc.is_empty() { dt { "Cc" } dd { (full_addresses(&summary.cc)) } }
                        dt { "Date" } dd { (format_date(summary.date_unix.unwrap_or(record.internal_date_unix))) }
                    }
                    @if body.truncated {
                        p class="notice" { "This message is long: only its beginning is shown." }
                    }
                    @match &body.shown {
                        Shown::Html(html) => div class="body html" { (PreEscaped(html)) },
                        Shown::Text(text) => pre class="body text" { (text) },
                        Shown::Nothing => p class="body empty" { "This message has no text." },
                    }
                    @if !body.attachments.is_empty() {
                        section class="attachments" aria-label="Attachments" {
                            h2 { "Attachments" }
                            ul {
                                @for attachment in &body.attachments {
                                    li {
                                        (attachment.name.as_deref().unwrap_or("(no name)"))
                                        " — " (attachment.media_type) ", " (size_text(attachment.size_octets))
                                    }
                                }
                            }
                            @if body.attachments_truncated { p { "More attachments are not listed." } }
                        }
                    }
                }
            }
        }))
    }
}

/// Reply, reply-all and forward (inline or as an attachment) open the compose form on this
/// message; a draft opens in the form to be edited.
fn message_actions(mailbox: &Mailbox, record: &MessageRecord) -> Markup {
    let here = format!("{}/{}", mailbox.id, record.uid);
    html! {
        nav class="message-actions" aria-label="Message actions" {
            @if mailbox.special_use == Some(tme_store::mail::SpecialUse::Drafts) {
                a href={ "/compose?draft=" (here) } { "Edit draft" }
            }
            a href={ "/compose?reply=" (here) } accesskey="r" { "Reply" }
            a href={ "/compose?reply_all=" (here) } accesskey="a" { "Reply all" }
            a href={ "/compose?forward=" (here) } accesskey="f" { "Forward" }
            a href={ "/compose?forward_attached=" (here) } { "Forward as attachment" }
        }
    }
}

pub(crate) fn size_text(octets: u64) -> String {
    match octets {
        0..1024 => format!("{octets} bytes"),
        1024..1_048_576 => format!("{} KB", octets.div_ceil(1024)),
        _ => format!("{:.1} MB", octets as f64 / 1_048_576.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_sizes() {
        assert_eq!(format_date(0), "1970-01-01 00:00");
        assert_eq!(size_text(10), "10 bytes");
        assert_eq!(size_text(2048), "2 KB");
        assert_eq!(size_text(3 * 1_048_576), "3.0 MB");
    }
}
