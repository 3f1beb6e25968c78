//! The selected mailbox brought up to date from the account's change log instead of its
//! whole message list: after another session's STORE or APPEND, a refresh reads the few
//! changes since the view's MODSEQ and the messages they name, not every message of the
//! mailbox again. The result is the store's current list, handed to `SelectedView::refresh`
//! like a full read would be, so what the client is told does not change.
//!
//! Correct because the view's `account_modseq` is read before the list it stands for (at
//! SELECT and at a full refresh): every change after it is in the log, and applying a
//! change the list already held gives the same record again.

use std::sync::Arc;

use tme_store::{MessageRecord, StoreError};

use super::Session;

/// More changes than this since the last refresh: reading the whole list is cheaper.
const CHANGES_MAX: u32 = 256;

impl Session {
    /// The selected mailbox's live messages in UID order, built from the view and the
    /// changes since its `account_modseq`; None when a full read is needed (many changes, a
    /// change to the mailbox itself, a store error).
    pub(super) async fn current_from_changes(&self) -> Option<Vec<Arc<MessageRecord>>> {
        let account_id = self.account_id()?;
        let selected = self.selected.as_ref()?;
        let changes = self
            .store
            .mail
            .changes_since(account_id, selected.account_modseq, CHANGES_MAX + 1)
            .await
            .ok()?;
        if changes.len() > CHANGES_MAX as usize {
            return None;
        }
        let mut messages = Vec::new();
        for change in changes
            .iter()
            .filter(|change| change.mailbox_id == selected.mailbox_id)
        {
            // A change to the mailbox itself (renamed, deleted, a new UIDVALIDITY).
            let message = change.message?;
            if !messages.contains(&message) {
                messages.push(message);
            }
        }
        let mut current: Vec<Arc<MessageRecord>> = selected
            .messages
            .iter()
            .filter(|message| !message.expunged)
            .map(|message| message.record.clone())
            .collect();
        for (message_id, uid) in messages {
            let record = match self.store.mail.message_get(account_id, message_id).await {
                Ok(record) => Some(record),
                Err(StoreError::NotFound { .. }) => None,
                Err(_) => return None,
            };
            let position = current.binary_search_by_key(&uid, |record| record.uid);
            match record {
                Some(record)
                    if record.expunged_unix.is_none()
                        && record.mailbox_id == selected.mailbox_id =>
                {
                    let uid = record.uid;
                    let record = crate::records::share_one(record);
                    match current.binary_search_by_key(&uid, |record| record.uid) {
                        Ok(index) => current[index] = record,
                        Err(index) => current.insert(index, record),
                    }
                }
                // Expunged, moved away or purged.
                _ => {
                    if let Ok(index) = position {
                        current.remove(index);
                    }
                }
            }
        }
        Some(current)
    }
}
