//! The pages of reading mail: the folder list, a page of a folder's messages and one
//! message.

use maud::{Markup, PreEscaped, html};
use tme_message::{Addr, MessageSummary};
use tme_store::mail::SystemFlags;
use tme_store::{Mailbox, MailboxCounts, MailboxId, MessageRecord};

use super::{Viewer, csrf_field, layout};
use crate::body::{MessageBody, Shown};
use crate::organise::folder_is_own;
use crate::read::CONVERSATIONS;
use tme_store::SpecialUse;

/// A mailbox in the folder list.
#[derive(Debug, Clone)]
pub struct FolderEntry {
    pub mailbox: Mailbox,
    pub counts: MailboxCounts,
}

/// One row of the message list: a message, or in the conversation view a conversation
/// shown by its newest message in the folder.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub record: MessageRecord,
    pub summary: Option<std::sync::Arc<MessageSummary>>,
    pub conversation: Option<Conversation>,
}

/// A conversation's counts in the folder a row of the conversation view shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conversation {
    pub messages: u32,
    pub unseen: u32,
}

pub(crate) fn folder_list(folders: &[FolderEntry], current: MailboxId) -> Markup {
    html! {
        nav class="folders" aria-label="Folders" {
            ul {
                @for folder in folders {
                    li {
                        a href={ "/mail/" (folder.mailbox.id) } data-mailbox=(folder.mailbox.id)
                            aria-current=[(folder.mailbox.id == current).then_some("page")] {
                            (folder.mailbox.name)
                            @if folder.counts.unseen > 0 {
                                " " span class="unread-count" { "(" (folder.counts.unseen) ")" }
                            }
                        }
                    }
                }
            }
            p class="manage" { a href="/folders" { "Manage folders" } }
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
    /// What the pages count: messages, or conversations in the conversation view.
    pub entries: usize,
    /// The view's name (`read::SORTS`, or `read::CONVERSATIONS`).
    pub sort: &'static str,
}

/// The list's sortable columns: a label, the order named when the column is clicked, and the
/// order named when it is clicked again.
const SORT_COLUMNS: [(&str, &str, &str); 2] = [
    ("Date", "date", "date-oldest"),
    ("Size", "size", "size-smallest"),
];

/// The action buttons of the list (for the selected messages, `one` None) or of the message
/// view (for `one`): what `organise::act` takes, the folders to move to, and no button that
/// makes no sense where the messages are (Archive in Archive, Spam in Junk...).
fn action_buttons(
    folders: &[FolderEntry],
    mailbox: &Mailbox,
    one: Option<&MessageRecord>,
) -> Markup {
    let in_trash = mailbox.special_use == Some(SpecialUse::Trash);
    let in_junk = mailbox.special_use == Some(SpecialUse::Junk);
    let (label, select_id) = match one {
        None => ("Selected messages", "move-target"),
        Some(_) => ("This message", "message-move-target"),
    };
    html! {
        div class="actions" role="toolbar" aria-label=(label) {
            @match one {
                None => {
                    button type="submit" name="action" value="read" { "Mark read" }
                    button type="submit" name="action" value="unread" { "Mark unread" }
                    button type="submit" name="action" value="flag" { "Flag" }
                    button type="submit" name="action" value="unflag" { "Unflag" }
                }
                Some(record) => {
                    button type="submit" name="action" value="unread" { "Mark unread" }
                    @if record.flags.system.contains(SystemFlags::FLAGGED) {
                        button type="submit" name="action" value="unflag" { "Unflag" }
                    } @else {
                        button type="submit" name="action" value="flag" { "Flag" }
                    }
                }
            }
            @if in_trash {
                button type="submit" name="action" value="restore" { "Restore to Inbox" }
                button type="submit" name="action" value="delete" { "Delete for good" }
            } @else {
                button type="submit" name="action" value="delete" data-key="#" { "Delete" }
                @if mailbox.special_use != Some(SpecialUse::Archive) {
                    button type="submit" name="action" value="archive" data-key="e" { "Archive" }
                }
            }
            @if in_junk {
                button type="submit" name="action" value="not-spam" { "Not spam" }
            } @else if !in_trash {
                button type="submit" name="action" value="spam" { "Spam" }
            }
            label for=(select_id) class="visually-hidden" { "Move to folder" }
            select id=(select_id) name="target" {
                @for folder in folders {
                    @if folder.mailbox.id != mailbox.id {
                        option value=(folder.mailbox.id) { (folder.mailbox.name) }
                    }
                }
            }
            button type="submit" name="action" value="move" { "Move" }
        }
    }
}

/// A mailbox: the folder list and one page of its messages, in the order of `paging.sort`,
/// each with a box to select it for the actions above the list.
pub fn mailbox(
    viewer: Viewer<'_>,
    folders: &[FolderEntry],
    mailbox: &Mailbox,
    rows: &[MessageRow],
    paging: Paging,
) -> Markup {
    let sort_link =
        |page: usize, sort: &str| format!("/mail/{}?page={page}&sort={sort}", mailbox.id);
    let emptiable = matches!(
        mailbox.special_use,
        Some(SpecialUse::Trash | SpecialUse::Junk)
    );
    let conversations = paging.sort == CONVERSATIONS;
    layout(
        &mailbox.name,
        Some(viewer),
        html! {
            div class="app" {
                (folder_list(folders, mailbox.id))
                main class="messages" data-mailbox=(mailbox.id)
                    data-first-page=(paging.page == 1 && matches!(paging.sort, "arrival" | "date" | CONVERSATIONS)) {
                    div class="list-head" {
                        h1 { (mailbox.name) }
                        span class="count" {
                            (super::counted(paging.messages, "message", "messages"))
                            @if conversations { ", " (super::counted(paging.entries, "conversation", "conversations")) }
                        }
                        @if conversations {
                            a class="view-toggle" href={ "/mail/" (mailbox.id) } { "Show messages" }
                        } @else {
                            a class="view-toggle" href={ "/mail/" (mailbox.id) "?sort=" (CONVERSATIONS) } { "Show conversations" }
                        }
                        @if emptiable && paging.messages > 0 {
                            form method="post" action={ "/mail/" (mailbox.id) "/empty" } class="inline" {
                                (csrf_field(viewer.csrf_token))
                                button type="submit" { "Empty " (mailbox.name) }
                            }
                        }
                    }
                    @if rows.is_empty() {
                        p class="empty" { "No messages." }
                    } @else {
                        form method="post" action={ "/mail/" (mailbox.id) "/act" } id="message-list-form" {
                            (csrf_field(viewer.csrf_token))
                            input type="hidden" name="page" value=(paging.page);
                            input type="hidden" name="sort" value=(paging.sort);
                            (action_buttons(folders, mailbox, None))
                            table class="message-list" {
                                thead { tr {
                                    th scope="col" class="select" { span class="visually-hidden" { "Select" } }
                                    th scope="col" class="star" { span class="visually-hidden" { "Flag" } }
                                    th scope="col" { "From" }
                                    th scope="col" { "Subject" }
                                    @for (label, first, second) in SORT_COLUMNS {
                                        @let current = paging.sort == first || paging.sort == second;
                                        @if conversations {
                                            th scope="col" { (label) }
                                        } @else {
                                        @let next = if paging.sort == first { second } else { first };
                                        th scope="col" aria-sort=[current.then(|| if paging.sort == first { "descending" } else { "ascending" })] {
                                            a href=(sort_link(1, next)) { (label) @if current { @if paging.sort == first { " ↓" } @else { " ↑" } } }
                                        }
                                        }
                                    }
                                }}
                                tbody {
                                    @for row in rows { (message_row(mailbox.id, row)) }
                                }
                            }
                        }
                    }
                    @if paging.pages > 1 {
                        nav class="paging" aria-label="Pages" {
                            @if paging.page > 1 {
                                a rel="prev" href=(sort_link(paging.page - 1, paging.sort)) { "Newer" }
                            }
                            span { "Page " (paging.page) " of " (paging.pages) }
                            @if paging.page < paging.pages {
                                a rel="next" href=(sort_link(paging.page + 1, paging.sort)) { "Older" }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn message_row(mailbox_id: MailboxId, row: &MessageRow) -> Markup {
    let unread = match row.conversation {
        Some(conversation) => conversation.unseen > 0,
        None => !row.record.flags.system.contains(SystemFlags::SEEN),
    };
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
    let uid = row.record.uid;
    html! {
        tr class=[unread.then_some("unread")] data-uid=(uid) {
            td class="select" {
                @if row.conversation.is_some() {
                    input type="checkbox" name="thread" value=(row.record.thread_id) id={ "select-" (uid) };
                    label for={ "select-" (uid) } class="visually-hidden" { "Select the conversation “" (subject) "”" }
                } @else {
                    input type="checkbox" name="uid" value=(uid) id={ "select-" (uid) };
                    label for={ "select-" (uid) } class="visually-hidden" { "Select “" (subject) "”" }
                }
            }
            td class="star" {
                @if flagged {
                    button type="submit" name="action" value={ "unflag:" (uid) } class="star on" title="Flagged: unflag" aria-label="Unflag" { "★" }
                } @else {
                    button type="submit" name="action" value={ "flag:" (uid) } class="star" title="Flag" aria-label="Flag" { "☆" }
                }
            }
            td class="from" { (from) }
            td class="subject" {
                a href={ "/mail/" (mailbox_id) "/" (uid) } {
                    @if unread { span class="visually-hidden" { "Unread: " } }
                    (subject)
                }
                @if let Some(conversation) = row.conversation.filter(|conversation| conversation.messages > 1) {
                    " " span class="thread-count" title="Messages of this conversation in this folder" {
                        (conversation.messages) span class="visually-hidden" { " messages" }
                    }
                }
                @if attachment { " " span class="attachment" { "attachment" } }
            }
            td class="date" { (format_date(date_unix)) }
            td class="size" { (size_text(row.record.size_bytes)) }
        }
    }
}

/// The folders page: every folder with its counts, forms to rename and delete the user's
/// own, and one to create a folder.
pub fn folders_page(viewer: Viewer<'_>, folders: &[FolderEntry]) -> Markup {
    layout(
        "Folders",
        Some(viewer),
        html! {
            div class="app" {
                (folder_list(folders, 0))
                main class="folders-admin" {
                    h1 { "Folders" }
                    table class="folder-table" {
                        thead { tr {
                            th scope="col" { "Folder" }
                            th scope="col" { "Messages" }
                            th scope="col" { "Unread" }
                            th scope="col" { "Size" }
                            th scope="col" { "Change" }
                        }}
                        tbody {
                            @for folder in folders {
                                tr {
                                    td { a href={ "/mail/" (folder.mailbox.id) } { (folder.mailbox.name) } }
                                    td { (folder.counts.messages) }
                                    td { (folder.counts.unseen) }
                                    td { (size_text(folder.counts.size_bytes)) }
                                    td {
                                        @if folder_is_own(&folder.mailbox) {
                                            form method="post" action={ "/folders/" (folder.mailbox.id) "/rename" } class="inline" {
                                                (csrf_field(viewer.csrf_token))
                                                label for={ "rename-" (folder.mailbox.id) } class="visually-hidden" { "New name for " (folder.mailbox.name) }
                                                input id={ "rename-" (folder.mailbox.id) } name="name" required
                                                    value=(folder.mailbox.name.rsplit('/').next().unwrap_or(&folder.mailbox.name));
                                                button type="submit" { "Rename" }
                                            }
                                            form method="post" action={ "/folders/" (folder.mailbox.id) "/delete" } class="inline" {
                                                (csrf_field(viewer.csrf_token))
                                                button type="submit" aria-label={ "Delete " (folder.mailbox.name) } { "Delete" }
                                            }
                                        } @else {
                                            span class="muted" { "system folder" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    h2 { "New folder" }
                    form method="post" action="/folders/create" class="new-folder" {
                        (csrf_field(viewer.csrf_token))
                        label for="new-folder-name" { "Name" }
                        input id="new-folder-name" name="name" required;
                        label for="new-folder-parent" { "Inside" }
                        select id="new-folder-parent" name="parent" {
                            option value="" { "(top level)" }
                            @for folder in folders {
                                option value=(folder.mailbox.id) { (folder.mailbox.name) }
                            }
                        }
                        button type="submit" { "Create" }
                    }
                }
            }
        },
    )
}

/// One message: its header fields, its body and its attachments.
pub fn message(
    viewer: Viewer<'_>,
    folders: &[FolderEntry],
    mailbox: &Mailbox,
    record: &MessageRecord,
    summary: &MessageSummary,
    body: &MessageBody,
    conversation: &[MessageRow],
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
                    p { a href={ "/mail/" (mailbox.id) } data-key="u" { "← " (mailbox.name) } }
                    h1 class="subject" { (subject) }
                    (compose_links(mailbox, record))
                    dl class="fields" {
                        dt { "From" } dd { (full_addresses(&summary.from)) }
                        @if !summary.to.is_empty() { dt { "To" } dd { (full_addresses(&summary.to)) } }
                        @if !summary.cc.is_empty() { dt { "Cc" } dd { (full_addresses(&summary.cc)) } }
                        dt { "Date" } dd { (format_date(summary.date_unix.unwrap_or(record.internal_date_unix))) }
                    }
                    (message_actions(viewer, folders, mailbox, record))
                    @if body.remote_images_blocked > 0 {
                        p class="notice" {
                            "Remote images (" (body.remote_images_blocked) ") are not shown: they can tell the sender you read this. "
                            a href={ "/mail/" (mailbox.id) "/" (record.uid) "?images=show" } { "Show them" }
                        }
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
                                        a href={ "/mail/" (mailbox.id) "/" (record.uid) "/part/" (attachment.part) } download {
                                            (attachment.name.as_deref().unwrap_or("(no name)"))
                                        }
                                        " — " (attachment.media_type) ", " (size_text(attachment.size_octets))
                                    }
                                }
                            }
                            @if body.attachments_truncated { p { "More attachments are not listed." } }
                        }
                    }
                    @if !conversation.is_empty() {
                        (conversation_list(folders, record, conversation))
                    }
                }
            }
        }))
    }
}

/// The message view's list of its conversation: every message of it in every folder,
/// oldest first, this one marked as the current one.
fn conversation_list(
    folders: &[FolderEntry],
    record: &MessageRecord,
    conversation: &[MessageRow],
) -> Markup {
    let folder_name = |id: MailboxId| {
        folders
            .iter()
            .find(|folder| folder.mailbox.id == id)
            .map(|folder| folder.mailbox.name.as_str())
            .unwrap_or("")
    };
    html! {
        section class="conversation" aria-labelledby="conversation-heading" {
            h2 id="conversation-heading" { "Conversation (" (super::counted(conversation.len(), "message", "messages")) ")" }
            ol {
                @for row in conversation {
                    @let here = row.record.id == record.id;
                    @let (from, date) = match &row.summary {
                        Some(summary) => (display_addresses(&summary.from), summary.date_unix.unwrap_or(row.record.internal_date_unix)),
                        None => (String::new(), row.record.internal_date_unix),
                    };
                    @let preview = row.summary.as_ref().map(|summary| summary.preview.as_str()).unwrap_or("");
                    li class=[here.then_some("current")] {
                        a href={ "/mail/" (row.record.mailbox_id) "/" (row.record.uid) }
                            aria-current=[here.then_some("page")] {
                            span class="from" { (from) }
                            " " span class="date" { (format_date(date)) }
                            " " span class="folder" { (folder_name(row.record.mailbox_id)) }
                        }
                        @if !preview.is_empty() { p class="preview" { (preview) } }
                    }
                }
            }
        }
    }
}

/// The form of the message view's buttons: the list's actions for this one message.
fn message_actions(
    viewer: Viewer<'_>,
    folders: &[FolderEntry],
    mailbox: &Mailbox,
    record: &MessageRecord,
) -> Markup {
    html! {
        form method="post" action={ "/mail/" (mailbox.id) "/act" } class="message-actions" {
            (csrf_field(viewer.csrf_token))
            input type="hidden" name="uid" value=(record.uid);
            input type="hidden" name="from" value="message";
            (action_buttons(folders, mailbox, Some(record)))
        }
    }
}

/// Reply, reply-all and forward (inline or as an attachment) open the compose form on this
/// message; a draft opens in the form to be edited.
fn compose_links(mailbox: &Mailbox, record: &MessageRecord) -> Markup {
    let here = format!("{}/{}", mailbox.id, record.uid);
    html! {
        nav class="compose-links" aria-label="Reply and forward" {
            @if mailbox.special_use == Some(SpecialUse::Drafts) {
                a href={ "/compose?draft=" (here) } { "Edit draft" }
            }
            a href={ "/compose?reply=" (here) } accesskey="r" data-key="r" { "Reply" }
            a href={ "/compose?reply_all=" (here) } accesskey="a" data-key="a" { "Reply all" }
            a href={ "/compose?forward=" (here) } accesskey="f" data-key="f" { "Forward" }
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
