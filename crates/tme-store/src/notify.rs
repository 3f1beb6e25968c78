//! In-process change notification: a reader waiting on an account (IMAP IDLE, later JMAP
//! push) learns at once that the account's mail changed in this process.
//!
//! This module owns one `watch` channel per account that someone waits on. It carries no
//! data: a woken reader asks the store what changed (the change log by MODSEQ). It sees
//! only changes made through this process's `Store`; a reader that must also notice another
//! process (`tme import` beside `tme serve`) polls the store as well.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::directory::AccountId;

/// Wakes the readers of an account when its mail changes.
#[derive(Debug, Clone, Default)]
pub struct ChangeNotifier {
    channels: Arc<Mutex<HashMap<AccountId, watch::Sender<u64>>>>,
}

impl ChangeNotifier {
    /// A receiver that is marked changed after each `notify(account)`.
    pub fn subscribe(&self, account: AccountId) -> watch::Receiver<u64> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        channels
            .entry(account)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Wakes every receiver of `account`; forgets the channel when nobody listens any more.
    pub fn notify(&self, account: AccountId) {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(sender) = channels.get(&account) {
            if sender.receiver_count() == 0 {
                channels.remove(&account);
            } else {
                sender.send_modify(|generation| *generation = generation.wrapping_add(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subscriber_sees_its_account_only() {
        let notifier = ChangeNotifier::default();
        let mut first = notifier.subscribe(1);
        let second = notifier.subscribe(2);
        notifier.notify(1);
        assert!(first.has_changed().unwrap_or(false));
        assert!(!second.has_changed().unwrap_or(true));
        first.mark_unchanged();
        drop(first);
        drop(second);
        notifier.notify(1);
        notifier.notify(2);
        let channels = notifier.channels.lock().map(|map| map.len()).unwrap_or(99);
        assert_eq!(channels, 0, "channels nobody listens to are forgotten");
    }
}
