//! Organising mail: what the buttons of the message list and the message view do to
//! messages (mark read or unread, flag, move, delete to Trash, archive, mark as spam or not
//! spam, restore from Trash), emptying Trash and Junk, and the folders page (create, rename,
//! delete).
//!
//! Every route is a POST, so `require_csrf` has checked its token before it runs, and every
//! change names the session's account to the store: a UID or folder id of another account
//! finds nothing. Moves copy, then expunge (`Store::messages_move`); an expunge keeps the
//! message restorable for the store's retention. It must not show messages (`read` does).

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use tme_store::mail::SystemFlags;
use tme_store::{FlagChange, Flags, Mailbox, MailboxId, MessageRecord, SpecialUse, ThreadId, Uid};

use crate::WebState;
use crate::current::Current;
use crate::pages;
use crate::read::{ListView, folders, live_mailbox, path_number};
use crate::respond::{WebError, page_ok, redirect};

/// The routes of organising.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/mail/{mailbox_id}/act", post(act))
        .route("/mail/{mailbox_id}/empty", post(empty))
        .route("/folders", get(folders_page))
        .route("/folders/create", post(folder_create))
        .route("/folders/{mailbox_id}/rename", post(folder_rename))
        .route("/folders/{mailbox_id}/delete", post(folder_delete))
}

/// The most messages one action takes (a page is 50; a script may send more).
pub const MESSAGES_PER_ACTION_MAX: usize = 1_000;

/// What a button asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Unread,
    Flag,
    Unflag,
    /// To Trash; in Trash, expunged (restorable for the retention window).
    Delete,
    Archive,
    Spam,
    NotSpam,
    /// From Trash back to INBOX.
    Restore,
    /// To the folder of the `target` field.
    Move,
}

impl Action {
    pub fn parse(name: &str) -> Option<Action> {
        Some(match name {
            "read" => Action::Read,
            "unread" => Action::Unread,
            "flag" => Action::Flag,
            "unflag" => Action::Unflag,
            "delete" => Action::Delete,
            "archive" => Action::Archive,
            "spam" => Action::Spam,
            "not-spam" => Action::NotSpam,
            "restore" => Action::Restore,
            "move" => Action::Move,
            _ => return None,
        })
    }
}

/// The fields of an action form, as sent (`uid` and `thread` may come many times).
#[derive(Debug, Default)]
struct ActionForm {
    uids: Vec<Uid>,
    /// Conversations selected in the conversation view: their messages in the mailbox.
    threads: Vec<ThreadId>,
    action: Option<String>,
    target: Option<String>,
    /// `message`: the form is the message view's (a flag change returns to it).
    from: Option<String>,
    page: Option<String>,
    sort: Option<String>,
}

impl ActionForm {
    fn parse(body: &[u8]) -> Result<ActionForm, WebError> {
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|_| WebError::Invalid("The form could not be read.".to_owned()))?;
        let mut form = ActionForm::default();
        for (name, value) in fields {
            match name.as_str() {
                "uid" => {
                    if form.uids.len() >= MESSAGES_PER_ACTION_MAX {
                        return Err(WebError::Invalid(format!(
                            "At most {MESSAGES_PER_ACTION_MAX} messages at a time."
                        )));
                    }
                    form.uids.push(path_number(&value)?);
                }
                "thread" => {
                    if form.threads.len() >= MESSAGES_PER_ACTION_MAX {
                        return Err(WebError::Invalid(format!(
                            "At most {MESSAGES_PER_ACTION_MAX} conversations at a time."
                        )));
                    }
                    form.threads.push(path_number(&value)?);
                }
                // A button of one row names its message with its action: `flag:17`.
                "action" => match value.split_once(':') {
                    Some((action, uid)) => {
                        form.uids = vec![path_number(uid)?];
                        form.action = Some(action.to_owned());
                    }
                    None => form.action = Some(value),
                },
                "target" => form.target = Some(value),
                "from" => form.from = Some(value),
                "page" => form.page = Some(value),
                "sort" => form.sort = Some(value),
                _ => {}
            }
        }
        Ok(form)
    }

    /// Where the browser goes after the action: the list it came from (same page and
    /// order), or the message view for a flag change made there.
    fn return_to(&self, mailbox: MailboxId, stays_in_mailbox: bool) -> String {
        if self.from.as_deref() == Some("message")
            && stays_in_mailbox
            && let [uid] = self.uids.as_slice()
        {
            return format!("/mail/{mailbox}/{uid}");
        }
        let page: usize = self
            .page
            .as_deref()
            .and_then(|page| page.parse().ok())
            .unwrap_or(1);
        let sort = ListView::named(self.sort.as_deref()).name();
        format!("/mail/{mailbox}?page={page}&sort={sort}")
    }
}

fn flags_of(system: u8, keywords: &[&str]) -> Flags {
    Flags {
        system: SystemFlags(system),
        keywords: keywords
            .iter()
            .map(|keyword| (*keyword).to_owned())
            .collect(),
    }
}

/// The account's folder with special use `special_use`.
async fn special_folder(
    state: &WebState,
    current: &Current,
    special_use: SpecialUse,
) -> Result<Mailbox, WebError> {
    state
        .store
        .mail
        .mailbox_list(current.account.id)
        .await?
        .into_iter()
        .find(|mailbox| mailbox.special_use == Some(special_use))
        .ok_or_else(|| {
            WebError::Invalid(format!(
                "This account has no {} folder.",
                special_use.as_str().trim_start_matches('\\')
            ))
        })
}

async fn act(
    State(state): State<WebState>,
    current: Current,
    Path(mailbox_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    let mailbox = live_mailbox(&state, &current, path_number(&mailbox_id)?).await?;
    let mut form = ActionForm::parse(&body)?;
    conversation_uids(&state, &current, &mailbox, &mut form).await?;
    let action = form
        .action
        .as_deref()
        .and_then(Action::parse)
        .ok_or_else(|| WebError::Invalid("Choose what to do.".to_owned()))?;
    if form.uids.is_empty() {
        return Ok(redirect(&form.return_to(mailbox.id, true)));
    }
    let account = current.account.id;
    let flag_change = match action {
        Action::Read => Some(FlagChange::Add(flags_of(SystemFlags::SEEN, &[]))),
        Action::Unread => Some(FlagChange::Remove(flags_of(SystemFlags::SEEN, &[]))),
        Action::Flag => Some(FlagChange::Add(flags_of(SystemFlags::FLAGGED, &[]))),
        Action::Unflag => Some(FlagChange::Remove(flags_of(SystemFlags::FLAGGED, &[]))),
        _ => None,
    };
    if let Some(change) = flag_change {
        let changed = state
            .store
            .mail
            .messages_set_flags(account, mailbox.id, &form.uids, &change, None)
            .await?;
        if !changed.is_empty() {
            state.store.changes.notify(account);
        }
        return Ok(redirect(&form.return_to(mailbox.id, true)));
    }
    let records = selected_records(&state, &current, &mailbox, &form.uids).await?;
    let in_trash = mailbox.special_use == Some(SpecialUse::Trash);
    let target = match action {
        Action::Delete if in_trash => {
            let uids: Vec<Uid> = records.iter().map(|record| record.uid).collect();
            state
                .store
                .mail
                .messages_expunge(account, mailbox.id, &uids)
                .await?;
            state.store.changes.notify(account);
            return Ok(redirect(&form.return_to(mailbox.id, false)));
        }
        Action::Delete => special_folder(&state, &current, SpecialUse::Trash).await?,
        Action::Archive => special_folder(&state, &current, SpecialUse::Archive).await?,
        Action::Spam => {
            mark_junk(&state, account, &mailbox, &form.uids, true).await?;
            special_folder(&state, &current, SpecialUse::Junk).await?
        }
        Action::NotSpam => {
            mark_junk(&state, account, &mailbox, &form.uids, false).await?;
            special_folder(&state, &current, SpecialUse::Inbox).await?
        }
        Action::Restore => special_folder(&state, &current, SpecialUse::Inbox).await?,
        Action::Move => {
            let target = form
                .target
                .as_deref()
                .ok_or_else(|| WebError::Invalid("Choose a folder to move to.".to_owned()))?;
            live_mailbox(&state, &current, path_number(target)?).await?
        }
        Action::Read | Action::Unread | Action::Flag | Action::Unflag => {
            return Ok(redirect(&form.return_to(mailbox.id, true)));
        }
    };
    // Records re-read after a junk keyword change carry their new flags.
    let records = if matches!(action, Action::Spam | Action::NotSpam) {
        selected_records(&state, &current, &mailbox, &form.uids).await?
    } else {
        records
    };
    state
        .store
        .messages_move(account, mailbox.id, &records, target.id)
        .await?;
    Ok(redirect(&form.return_to(mailbox.id, false)))
}

/// Adds to the form's UIDs those of the selected conversations' messages in `mailbox`
/// (at most `MESSAGES_PER_ACTION_MAX` in all); another account's thread finds nothing.
async fn conversation_uids(
    state: &WebState,
    current: &Current,
    mailbox: &Mailbox,
    form: &mut ActionForm,
) -> Result<(), WebError> {
    for &thread in &form.threads {
        let messages = state
            .store
            .mail
            .thread_messages(current.account.id, thread, MESSAGES_PER_ACTION_MAX as u32)
            .await?;
        for record in messages {
            if record.mailbox_id == mailbox.id && !form.uids.contains(&record.uid) {
                if form.uids.len() >= MESSAGES_PER_ACTION_MAX {
                    return Err(WebError::Invalid(format!(
                        "At most {MESSAGES_PER_ACTION_MAX} messages at a time."
                    )));
                }
                form.uids.push(record.uid);
            }
        }
    }
    Ok(())
}

/// The live messages of `mailbox` among `uids` (unknown UIDs are left out).
async fn selected_records(
    state: &WebState,
    current: &Current,
    mailbox: &Mailbox,
    uids: &[Uid],
) -> Result<Vec<MessageRecord>, WebError> {
    let mut records = Vec::with_capacity(uids.len());
    for &uid in uids {
        if let Some(record) = state
            .store
            .mail
            .message_by_uid(current.account.id, mailbox.id, uid)
            .await?
        {
            records.push(record);
        }
    }
    Ok(records)
}

/// Sets `$Junk` (and clears `$NotJunk`), or the other way round: the keywords spam filters
/// and other clients read (RFC 5788's registry).
async fn mark_junk(
    state: &WebState,
    account: tme_store::AccountId,
    mailbox: &Mailbox,
    uids: &[Uid],
    junk: bool,
) -> Result<(), WebError> {
    let (add, remove) = if junk {
        ("$Junk", "$NotJunk")
    } else {
        ("$NotJunk", "$Junk")
    };
    for change in [
        FlagChange::Remove(flags_of(0, &[remove])),
        FlagChange::Add(flags_of(0, &[add])),
    ] {
        state
            .store
            .mail
            .messages_set_flags(account, mailbox.id, uids, &change, None)
            .await?;
    }
    Ok(())
}

/// Empties Trash or Junk: every message expunged (restorable for the retention window).
async fn empty(
    State(state): State<WebState>,
    current: Current,
    Path(mailbox_id): Path<String>,
) -> Result<Response, WebError> {
    let mailbox = live_mailbox(&state, &current, path_number(&mailbox_id)?).await?;
    if !matches!(
        mailbox.special_use,
        Some(SpecialUse::Trash | SpecialUse::Junk)
    ) {
        return Err(WebError::Invalid(
            "Only the Trash and Junk folders can be emptied.".to_owned(),
        ));
    }
    let uids: Vec<Uid> = state
        .store
        .mail
        .message_list(current.account.id, mailbox.id)
        .await?
        .iter()
        .map(|record| record.uid)
        .collect();
    if !uids.is_empty() {
        state
            .store
            .mail
            .messages_expunge(current.account.id, mailbox.id, &uids)
            .await?;
        state.store.changes.notify(current.account.id);
    }
    Ok(redirect(&format!("/mail/{}", mailbox.id)))
}

async fn folders_page(
    State(state): State<WebState>,
    current: Current,
) -> Result<Response, WebError> {
    let folders = folders(&state, &current).await?;
    Ok(page_ok(pages::mail::folders_page(
        current.viewer(),
        &folders,
    )))
}

/// Whether users may rename or delete the folder: not INBOX and not the folders of a
/// special use (Sent, Drafts, Trash, Junk, Archive), which clients and the server rely on.
pub fn folder_is_own(mailbox: &Mailbox) -> bool {
    mailbox.special_use.is_none() && !mailbox.name.eq_ignore_ascii_case("INBOX")
}

#[derive(Debug, serde::Deserialize)]
struct FolderForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    parent: String,
}

fn folder_form(body: &[u8]) -> Result<FolderForm, WebError> {
    serde_urlencoded::from_bytes(body)
        .map_err(|_| WebError::Invalid("The form could not be read.".to_owned()))
}

/// The full name of a folder called `name` under `parent` (a folder id, or empty for the
/// top level).
async fn full_name(
    state: &WebState,
    current: &Current,
    name: &str,
    parent: &str,
) -> Result<String, WebError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(WebError::Invalid("Give the folder a name.".to_owned()));
    }
    if name.contains(tme_store::mail::MAILBOX_DELIMITER) {
        return Err(WebError::Invalid(format!(
            "A folder name cannot contain \"{}\": choose a parent folder instead.",
            tme_store::mail::MAILBOX_DELIMITER
        )));
    }
    if parent.is_empty() {
        return Ok(name.to_owned());
    }
    let parent = live_mailbox(state, current, path_number(parent)?).await?;
    Ok(format!(
        "{}{}{name}",
        parent.name,
        tme_store::mail::MAILBOX_DELIMITER
    ))
}

async fn folder_create(
    State(state): State<WebState>,
    current: Current,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    let form = folder_form(&body)?;
    let name = full_name(&state, &current, &form.name, &form.parent).await?;
    let mailbox = state
        .store
        .mail
        .mailbox_create(current.account.id, &name, None)
        .await?;
    state.store.changes.notify(current.account.id);
    Ok(redirect(&format!("/mail/{}", mailbox.id)))
}

async fn folder_rename(
    State(state): State<WebState>,
    current: Current,
    Path(mailbox_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    let mailbox = live_mailbox(&state, &current, path_number(&mailbox_id)?).await?;
    if !folder_is_own(&mailbox) {
        return Err(WebError::Invalid(format!(
            "{} is a system folder: it cannot be renamed.",
            mailbox.name
        )));
    }
    let form = folder_form(&body)?;
    // A rename keeps the folder where it is unless a parent is given.
    let parent_name = mailbox
        .name
        .rsplit_once(tme_store::mail::MAILBOX_DELIMITER)
        .map(|(parent, _)| parent.to_owned());
    let name = if form.parent.is_empty() {
        let leaf = full_name(&state, &current, &form.name, "").await?;
        match parent_name {
            Some(parent) => format!("{parent}{}{leaf}", tme_store::mail::MAILBOX_DELIMITER),
            None => leaf,
        }
    } else {
        full_name(&state, &current, &form.name, &form.parent).await?
    };
    state
        .store
        .mail
        .mailbox_rename(current.account.id, mailbox.id, &name)
        .await?;
    state.store.changes.notify(current.account.id);
    Ok(redirect("/folders"))
}

async fn folder_delete(
    State(state): State<WebState>,
    current: Current,
    Path(mailbox_id): Path<String>,
) -> Result<Response, WebError> {
    let mailbox = live_mailbox(&state, &current, path_number(&mailbox_id)?).await?;
    if !folder_is_own(&mailbox) {
        return Err(WebError::Invalid(format!(
            "{} is a system folder: it cannot be deleted.",
            mailbox.name
        )));
    }
    state
        .store
        .mail
        .mailbox_delete(current.account.id, mailbox.id)
        .await?;
    state.store.changes.notify(current.account.id);
    Ok(redirect("/folders"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_forms_read_many_uids_and_row_buttons() {
        let form =
            ActionForm::parse(b"csrf=x&uid=3&uid=5&action=read&page=2&sort=size").expect("form");
        assert_eq!(form.uids, vec![3, 5]);
        assert_eq!(form.action.as_deref(), Some("read"));
        assert_eq!(form.return_to(7, true), "/mail/7?page=2&sort=size");
        let form = ActionForm::parse(b"uid=3&action=flag%3A9&from=message").expect("form");
        assert_eq!(form.uids, vec![9], "a row's button names its own message");
        assert_eq!(form.return_to(7, true), "/mail/7/9");
        assert_eq!(form.return_to(7, false), "/mail/7?page=1&sort=arrival");
        assert!(ActionForm::parse(b"uid=x").is_err());
        let many = (0..=MESSAGES_PER_ACTION_MAX)
            .map(|uid| format!("uid={uid}"))
            .collect::<Vec<_>>()
            .join("&");
        assert!(ActionForm::parse(many.as_bytes()).is_err());
        assert_eq!(Action::parse("not-spam"), Some(Action::NotSpam));
        assert_eq!(Action::parse("explode"), None);
    }
}
