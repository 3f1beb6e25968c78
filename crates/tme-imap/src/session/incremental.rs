//! The selected mailbox's current message list, read as little as possible: from the list
//! another session of this server already brought up to date (`crate::mailbox_lists`), or
//! from an older list (that one, or the session's own view) and the account's change log
//! since its MODSEQ, and only when neither serves, from every message of the mailbox. After
//! another session's STORE or APPEND, a refresh reads the few changes and the messages they
//! name; a SELECT of a mailbox other sessions hold reads nothing but the MODSEQ.
//!
//! Correct because every list is labelled with the account MODSEQ read *before* it was built
//! (at SELECT, at a refresh): every change after the label is in the log, and applying a
//! change the list already held gives the same record again. The result is what a full read
//! would give, so what the client is told does not change.

use std::sync::Arc;

use tme_store::{AccountId, MailboxId, MessageRecord, ModSeq, StoreError};

use super::Session;
use crate::mailbox_lists::MailboxList;
use crate::view::SelectedView;

/// More changes than this since the last refresh: reading the whole list is cheaper.
const CHANGES_MAX: u32 = 256;

impl Session {
    /// The mailbox's live messages in UID order, holding every change up to `now` (the
    /// account MODSEQ, read by the caller before calling): the shared list when it is that
    /// recent, else the newer of it and the session's `view` of the mailbox with the changes
    /// since, else the store's list. What it built is shared with the other sessions.
    pub(super) async fn mailbox_list(
        &self,
        account_id: AccountId,
        mailbox_id: MailboxId,
        now: ModSeq,
        view: Option<&SelectedView>,
    ) -> Result<Arc<MailboxList>, StoreError> {
        let lists = &self.config.mailbox_lists;
        let shared = lists.get(account_id, mailbox_id);
        if let Some(shared) = &shared
            && shared.account_modseq >= now
        {
            return Ok(shared.clone());
        }
        let base = match (shared, view) {
            (shared, Some(view))
                if shared
                    .as_ref()
                    .is_none_or(|shared| view.account_modseq > shared.account_modseq) =>
            {
                Some(MailboxList {
                    account_modseq: view.account_modseq,
                    records: Arc::new(view.live_records().cloned().collect()),
                })
            }
            (Some(shared), _) => Some(MailboxList {
                account_modseq: shared.account_modseq,
                records: shared.records.clone(),
            }),
            (None, _) => None,
        };
        let from_changes = match base {
            Some(base) => self.apply_changes(account_id, mailbox_id, base).await,
            None => None,
        };
        let records = match from_changes {
            Some(records) => records,
            None => {
                crate::records::share(self.store.mail.message_list(account_id, mailbox_id).await?)
            }
        };
        let list = Arc::new(MailboxList {
            account_modseq: now,
            records: Arc::new(records),
        });
        lists.publish(account_id, mailbox_id, list.clone());
        Ok(list)
    }

    /// `base` with the changes to the mailbox since its MODSEQ applied; None when a full read
    /// is needed (many changes, a change to the mailbox itself, a store error).
    async fn apply_changes(
        &self,
        account_id: AccountId,
        mailbox_id: MailboxId,
        base: MailboxList,
    ) -> Option<Vec<Arc<MessageRecord>>> {
        let changes = self
            .store
            .mail
            .changes_since(account_id, base.account_modseq, CHANGES_MAX + 1)
            .await
            .ok()?;
        if changes.len() > CHANGES_MAX as usize {
            return None;
        }
        let mut messages = Vec::new();
        for change in changes
            .iter()
            .filter(|change| change.mailbox_id == mailbox_id)
        {
            // A change to the mailbox itself (renamed, deleted, a new UIDVALIDITY).
            let message = change.message?;
            if !messages.contains(&message) {
                messages.push(message);
            }
        }
        let mut current = Arc::unwrap_or_clone(base.records);
        for (message_id, uid) in messages {
            let record = match self.store.mail.message_get(account_id, message_id).await {
                Ok(record) => Some(record),
                Err(StoreError::NotFound { .. }) => None,
                Err(_) => return None,
            };
            let position = current.binary_search_by_key(&uid, |record| record.uid);
            match record {
                Some(record)
                    if record.expunged_unix.is_none() && record.mailbox_id == mailbox_id =>
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
