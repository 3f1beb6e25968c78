//! In-process change notification: a reader waiting on an account (IMAP IDLE, later JMAP
//! push) learns at once that the account's mail changed in this process.
//!
//! This module owns one `watch` channel per account that someone waits on. It carries no
//! data: a woken reader asks the store what changed (the change log by MODSEQ). It sees
//! only changes made through this process's `Store`; a reader that must also notice another
//! process (`tme import` beside `tme serve`) polls the store as well.
//!
//! One reader may also follow every account (`every_account`): the full-text indexer, which
//! learns which accounts changed since it last looked. It is handed the set of account ids,
//! never a queue of events, so it cannot fall behind by more than one entry per account.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};

use crate::directory::AccountId;

/// Wakes the readers of an account when its mail changes.
#[derive(Debug, Clone, Default)]
pub struct ChangeNotifier {
    channels: Arc<Mutex<HashMap<AccountId, watch::Sender<u64>>>>,
    every: Arc<EveryAccount>,
}

/// The accounts changed since the follower of every account last looked.
#[derive(Debug, Default)]
struct EveryAccount {
    /// Set once someone follows: until then nothing is collected.
    followed: AtomicBool,
    changed: Mutex<HashSet<AccountId>>,
    wake: Notify,
}

/// Follows the changes of every account (see `ChangeNotifier::every_account`).
#[derive(Debug)]
pub struct ChangedAccounts {
    every: Arc<EveryAccount>,
}

impl ChangedAccounts {
    /// Waits until some account has changed since the last `take`.
    pub async fn wait(&self) {
        loop {
            let notified = self.every.wake.notified();
            if !self
                .every
                .changed
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .is_empty()
            {
                return;
            }
            notified.await;
        }
    }

    /// Every account changed since the last call, each once.
    pub fn take(&self) -> Vec<AccountId> {
        self.every
            .changed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .drain()
            .collect()
    }
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

    /// Starts collecting the accounts that change, for one follower of them all.
    pub fn every_account(&self) -> ChangedAccounts {
        self.every.followed.store(true, Ordering::Release);
        ChangedAccounts {
            every: self.every.clone(),
        }
    }

    /// Wakes every receiver of `account`; forgets the channel when nobody listens any more.
    pub fn notify(&self, account: AccountId) {
        if self.every.followed.load(Ordering::Acquire) {
            self.every
                .changed
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(account);
            self.every.wake.notify_one();
        }
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

    #[tokio::test]
    async fn the_follower_of_every_account_gets_each_changed_account_once() {
        let notifier = ChangeNotifier::default();
        notifier.notify(7);
        let follower = notifier.every_account();
        notifier.notify(1);
        notifier.notify(2);
        notifier.notify(1);
        follower.wait().await;
        let mut changed = follower.take();
        changed.sort_unstable();
        assert_eq!(changed, vec![1, 2], "changes before following are not kept");
        assert!(follower.take().is_empty());
        let waiting = tokio::spawn(async move {
            follower.wait().await;
            follower.take()
        });
        tokio::task::yield_now().await;
        notifier.notify(3);
        assert_eq!(waiting.await.ok(), Some(vec![3]));
    }
}
