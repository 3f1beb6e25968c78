//! The latest known message list of each mailbox, shared by the sessions of one server: a
//! SELECT, or the refresh after another session's change, starts from the list a session
//! already brought up to date instead of reading every message of the mailbox again.
//!
//! Each list carries the account MODSEQ read *before* it was built (from the store, or from an
//! older list and the change log since), so it holds every change up to that MODSEQ and
//! perhaps some after; a session that uses it applies the changes after that MODSEQ again,
//! which gives the same records (`session/incremental.rs`). Only a cache: a list that is
//! missing or dropped costs a read of the store, never a wrong answer.
//!
//! Bounded by the number of message records held (`RECORDS_MAX`): the least recently used
//! lists are dropped first. Records are the `Arc`s the views share (`crate::records`), so a
//! list of a mailbox that sessions have selected costs a pointer per message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tme_store::{AccountId, MailboxId, MessageRecord, ModSeq};

/// Message records the lists hold in all; past it the least recently used lists go.
const RECORDS_MAX: usize = 1_000_000;

/// A mailbox's live messages in UID order, holding every change up to `account_modseq`.
#[derive(Debug)]
pub struct MailboxList {
    pub account_modseq: ModSeq,
    /// Shared as it is by the views equal to it (`SelectedView::refresh`).
    pub records: Arc<Vec<Arc<MessageRecord>>>,
}

#[derive(Debug, Default)]
pub struct MailboxLists {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    by_mailbox: HashMap<(AccountId, MailboxId), Entry>,
    records: usize,
    /// Counts uses, for "least recently used".
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    list: Arc<MailboxList>,
    used_at: u64,
}

impl MailboxLists {
    /// The latest list of the mailbox, if one is held.
    pub fn get(&self, account: AccountId, mailbox: MailboxId) -> Option<Arc<MailboxList>> {
        let mut state = self.lock();
        state.clock += 1;
        let clock = state.clock;
        let entry = state.by_mailbox.get_mut(&(account, mailbox))?;
        entry.used_at = clock;
        Some(entry.list.clone())
    }

    /// Keeps `list` as the mailbox's latest, unless a list of a later MODSEQ is held.
    pub fn publish(&self, account: AccountId, mailbox: MailboxId, list: Arc<MailboxList>) {
        if list.records.len() > RECORDS_MAX {
            return;
        }
        let mut state = self.lock();
        state.clock += 1;
        let clock = state.clock;
        let added = list.records.len();
        let entry = Entry {
            list,
            used_at: clock,
        };
        match state.by_mailbox.get(&(account, mailbox)) {
            Some(held) if held.list.account_modseq > entry.list.account_modseq => return,
            Some(held) => state.records -= held.list.records.len(),
            None => {}
        }
        state.by_mailbox.insert((account, mailbox), entry);
        state.records += added;
        state.evict_past(RECORDS_MAX);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Entries are whole after any panic: the cache stays usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    fn evict_past(&mut self, records_max: usize) {
        while self.records > records_max {
            let Some(oldest) = self
                .by_mailbox
                .iter()
                .min_by_key(|(_, entry)| entry.used_at)
                .map(|(key, _)| *key)
            else {
                return;
            };
            if let Some(entry) = self.by_mailbox.remove(&oldest) {
                self.records -= entry.list.records.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{MailboxList, MailboxLists, State};

    fn list(account_modseq: i64, records: usize) -> Arc<MailboxList> {
        let record = Arc::new(tme_store::MessageRecord {
            id: 1,
            account_id: 1,
            mailbox_id: 1,
            uid: 1,
            blob_id: tme_store::BlobId::from_hex(&"00".repeat(32)).expect("blob id"),
            size_bytes: 1,
            internal_date_unix: 0,
            flags: tme_store::Flags::default(),
            modseq: 1,
            expunged_unix: None,
            thread_id: 0,
        });
        Arc::new(MailboxList {
            account_modseq,
            records: Arc::new(vec![record; records]),
        })
    }

    #[test]
    fn keeps_the_latest_list_and_drops_the_least_recently_used() {
        let lists = MailboxLists::default();
        lists.publish(1, 10, list(5, 3));
        lists.publish(1, 10, list(4, 3));
        assert_eq!(
            lists.get(1, 10).map(|list| list.account_modseq),
            Some(5),
            "never older"
        );
        lists.publish(1, 10, list(6, 2));
        assert_eq!(lists.get(1, 10).map(|list| list.account_modseq), Some(6));
        assert!(lists.get(2, 10).is_none(), "another account's mailbox");
        lists.publish(1, 11, list(6, 4));
        lists.get(1, 10);
        let mut state = lists.lock();
        assert_eq!(state.records, 6);
        State::evict_past(&mut state, 5);
        assert!(state.by_mailbox.contains_key(&(1, 10)), "used last, kept");
        assert!(!state.by_mailbox.contains_key(&(1, 11)));
        assert_eq!(state.records, 2);
    }
}
