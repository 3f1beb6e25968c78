//! Delivers the inbound spool: the messages the server acknowledged while the store could not
//! take them (`server::store_or_spool`). It owns when to retry and what to do with a copy that
//! can no longer go where it was meant to; the entry format and files are
//! `tme_store::spool`'s.
//!
//! It runs a pass at start, right after something was spooled, and every `SCAN_INTERVAL`,
//! oldest entry first. Each copy is stored with `Store::deliver_once` under the entry's id,
//! and the entry is removed only once every copy is settled. The store records the id with
//! the messages in one transaction, so a crash after the commit and before the removal
//! stores nothing twice when the entry is tried again: delivery is exactly once.
//!
//! What happens to a copy:
//! - stored now, or under this id before: settled;
//! - the store is unavailable (any transient error): the pass stops and the next one waits
//!   `STORE_RETRY_DELAY_FIRST`, doubling up to `STORE_RETRY_DELAY_MAX`, for as long as it
//!   takes: the message was acknowledged, so it is never given up;
//! - the account was deleted meanwhile: the copy is dropped with a warning (mail to it now
//!   would be refused at RCPT with 550 5.1.1), the other copies go on;
//! - the mailbox was deleted meanwhile: the copy goes to the account's INBOX;
//! - the account is over quota: the entry waits and is tried again every
//!   `QUOTA_RETRY_INTERVAL`; past `QUOTA_WAIT_SECONDS_MAX` after it was spooled it goes to
//!   quarantine with an error log (no bounce can be sent before the outbound queue exists);
//! - anything else (stored data corrupt, a refusal): quarantine, with an error log.
//!
//! An entry that cannot be read back (torn, damaged, unknown version) goes to quarantine.
//! A suspended account still gets its copy: it was accepted before.
//!
//! This is part of the crate's async half; it makes no protocol decisions.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tme_store::spool::{InboundSpool, SpoolEntry, SpoolEntryId, SpoolError, SpooledCopy};
use tme_store::{Delivery, Store, StoreError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::server::gauge_value;

/// How often the spool is looked at when nothing wakes the worker.
const SCAN_INTERVAL: Duration = Duration::from_secs(60);
/// The first wait after the store failed; it doubles with each failure in a row.
const STORE_RETRY_DELAY_FIRST: Duration = Duration::from_secs(1);
const STORE_RETRY_DELAY_MAX: Duration = Duration::from_secs(60);
/// How often an entry whose account is over quota is tried again.
const QUOTA_RETRY_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// How long an entry may wait for quota before it is quarantined: a week, as an MTA's queue
/// lifetime.
const QUOTA_WAIT_SECONDS_MAX: i64 = 7 * 86_400;
/// The mailbox a copy goes to when its own was deleted.
const INBOX: &str = "INBOX";

/// Delivers the spool until `shutdown` fires.
pub async fn deliver_spool(
    spool: InboundSpool,
    store: Store,
    metrics: Arc<Metrics>,
    auto_responder: Option<tme_queue::AutoResponder>,
    shutdown: CancellationToken,
) {
    match spool.remove_stale_temporaries() {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "removed unfinished spool writes of a past run"),
        Err(error) => tracing::warn!(%error, "cannot clean the spool's temporary files"),
    }
    let mut worker = Worker {
        spool,
        store,
        metrics,
        auto_responder,
        quota_waits: HashMap::new(),
    };
    let mut store_retry_delay = STORE_RETRY_DELAY_FIRST;
    loop {
        // Stopping mid-delivery is safe: an entry is removed only after its commit, and one
        // found again stores nothing twice. So shutdown does not wait out a busy store.
        let outcome = tokio::select! {
            outcome = worker.pass(&shutdown) => outcome,
            _ = shutdown.cancelled() => Pass::Stopped,
        };
        worker
            .metrics
            .spool_entries_waiting
            .set(gauge_value(worker.spool.depth().entries_waiting));
        let (wait, wake_on_new_entry) = match outcome {
            Pass::Stopped => return,
            Pass::Finished => {
                store_retry_delay = STORE_RETRY_DELAY_FIRST;
                let next_quota_retry = worker
                    .quota_waits
                    .values()
                    .min()
                    .map(|at| at.saturating_duration_since(Instant::now()));
                (
                    next_quota_retry.map_or(SCAN_INTERVAL, |wait| wait.min(SCAN_INTERVAL)),
                    true,
                )
            }
            Pass::RetryLater => {
                let wait = store_retry_delay;
                store_retry_delay = (store_retry_delay * 2).min(STORE_RETRY_DELAY_MAX);
                tracing::info!(
                    retry_in_ms = wait.as_millis() as u64,
                    waiting = worker.spool.depth().entries_waiting,
                    "spool delivery paused: the store (or the spool folder) is unavailable"
                );
                // An entry spooled now means the store failed again: it waits out the delay.
                (wait, false)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = worker.spool.added(), if wake_on_new_entry => {}
        }
    }
}

/// How a pass over the spool ended.
enum Pass {
    /// Every entry that was due was tried.
    Finished,
    /// The store (or the spool's folder) failed: try again after a delay.
    RetryLater,
    Stopped,
}

/// How one entry's delivery ended.
enum EntryOutcome {
    /// Every copy settled: the entry can go.
    Settled(Settled),
    /// Some account is over quota; the others are stored.
    OverQuota(Vec<tme_store::AccountId>),
    StoreUnavailable(StoreError),
    /// It cannot be delivered as it is: quarantine, for an operator.
    Undeliverable(String),
}

#[derive(Debug, Default)]
struct Settled {
    copies_stored: u64,
    copies_stored_before: u64,
    copies_dropped_account_deleted: u64,
}

/// How one copy's delivery ended.
enum CopyOutcome {
    /// Stored now, in this mailbox.
    Stored(tme_store::MailboxId),
    StoredBefore,
    AccountDeleted,
    OverQuota,
    StoreUnavailable(StoreError),
    Undeliverable(String),
}

struct Worker {
    spool: InboundSpool,
    store: Store,
    metrics: Arc<Metrics>,
    /// Answers the copies stored for accounts on vacation.
    auto_responder: Option<tme_queue::AutoResponder>,
    /// Entries waiting for quota, and when to try them again.
    quota_waits: HashMap<SpoolEntryId, Instant>,
}

impl Worker {
    async fn pass(&mut self, shutdown: &CancellationToken) -> Pass {
        let ids = match self.spool.waiting().await {
            Ok(ids) => ids,
            Err(error) => {
                tracing::warn!(%error, "cannot list the spool");
                return Pass::RetryLater;
            }
        };
        let present: HashSet<&SpoolEntryId> = ids.iter().collect();
        self.quota_waits.retain(|id, _| present.contains(id));
        for id in &ids {
            if shutdown.is_cancelled() {
                return Pass::Stopped;
            }
            if self
                .quota_waits
                .get(id)
                .is_some_and(|at| *at > Instant::now())
            {
                continue;
            }
            let entry = match self.spool.read(id).await {
                Ok(entry) => entry,
                Err(SpoolError::Corrupt(reason)) => {
                    self.quarantine(id, None, &format!("unreadable: {reason}"))
                        .await;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(entry = %id, %error, "cannot read a spool entry");
                    return Pass::RetryLater;
                }
            };
            match deliver_entry(&self.store, &entry, self.auto_responder.as_ref()).await {
                EntryOutcome::Settled(settled) => self.remove(&entry, &settled).await,
                EntryOutcome::StoreUnavailable(error) => {
                    self.metrics.spool_delivery_failures.inc();
                    tracing::warn!(
                        transaction = %entry.transaction_id,
                        entry = %id,
                        %error,
                        "spool delivery failed: the store is unavailable"
                    );
                    return Pass::RetryLater;
                }
                EntryOutcome::OverQuota(accounts) => {
                    let waited_seconds = now_unix() - entry.spooled_unix;
                    if waited_seconds > QUOTA_WAIT_SECONDS_MAX {
                        let reason = format!(
                            "accounts {accounts:?} over quota for {waited_seconds} seconds"
                        );
                        self.quarantine(id, Some(&entry), &reason).await;
                    } else {
                        tracing::warn!(
                            transaction = %entry.transaction_id,
                            entry = %id,
                            ?accounts,
                            retry_in_seconds = QUOTA_RETRY_INTERVAL.as_secs(),
                            "spooled message waits: over quota"
                        );
                        self.quota_waits
                            .insert(id.clone(), Instant::now() + QUOTA_RETRY_INTERVAL);
                    }
                }
                EntryOutcome::Undeliverable(reason) => {
                    self.quarantine(id, Some(&entry), &reason).await;
                }
            }
        }
        Pass::Finished
    }

    async fn remove(&mut self, entry: &SpoolEntry, settled: &Settled) {
        self.quota_waits.remove(&entry.id);
        // Removed after the commit: a crash in between finds the entry again, and its id
        // (the delivery key) keeps the copies from being stored twice.
        if let Err(error) = self.spool.remove(&entry.id).await {
            tracing::warn!(entry = %entry.id, %error, "delivered, but cannot remove the spool entry; it is tried again and stores nothing twice");
            return;
        }
        Metrics::count(&self.metrics.spool_entries, "delivered");
        self.metrics
            .spool_copies_dropped
            .inc_by(settled.copies_dropped_account_deleted);
        tracing::info!(
            transaction = %entry.transaction_id,
            entry = %entry.id,
            copies_stored = settled.copies_stored,
            copies_stored_before = settled.copies_stored_before,
            copies_dropped_account_deleted = settled.copies_dropped_account_deleted,
            waited_seconds = now_unix() - entry.spooled_unix,
            "spooled message delivered"
        );
    }

    async fn quarantine(&mut self, id: &SpoolEntryId, entry: Option<&SpoolEntry>, reason: &str) {
        self.quota_waits.remove(id);
        let transaction = entry.map(|entry| entry.transaction_id.as_str());
        match self.spool.quarantine(id, reason).await {
            Ok(()) => {
                Metrics::count(&self.metrics.spool_entries, "quarantined");
                tracing::error!(
                    entry = %id,
                    transaction,
                    reason,
                    "spool entry quarantined: an operator must look (tme spool list)"
                );
            }
            Err(error) => tracing::error!(
                entry = %id,
                transaction,
                reason,
                %error,
                "spool entry cannot be delivered nor quarantined"
            ),
        }
    }
}

/// Stores every copy of `entry` under its id; over-quota copies let the others go on. A
/// copy committed now is handed to `auto_responder` (one stored before was answered then).
async fn deliver_entry(
    store: &Store,
    entry: &SpoolEntry,
    auto_responder: Option<&tme_queue::AutoResponder>,
) -> EntryOutcome {
    let mut settled = Settled::default();
    let mut over_quota = Vec::new();
    for copy in &entry.copies {
        match deliver_copy(store, entry, copy).await {
            CopyOutcome::Stored(mailbox) => {
                settled.copies_stored += 1;
                if let Some(responder) = auto_responder {
                    let raw = entry.raw(copy);
                    // The server wrote the envelope sender into the copy's `Return-Path`.
                    if let Some(sender) = tme_message::return_path(&raw) {
                        let delivered = tme_queue::DeliveredCopy {
                            account: copy.account,
                            mailbox,
                            message: raw.into(),
                        };
                        responder.delivered(&sender, vec![delivered]);
                    }
                }
            }
            CopyOutcome::StoredBefore => settled.copies_stored_before += 1,
            CopyOutcome::AccountDeleted => {
                tracing::warn!(
                    transaction = %entry.transaction_id,
                    entry = %entry.id,
                    account = copy.account,
                    "spooled copy dropped: its account was deleted after the message was accepted"
                );
                settled.copies_dropped_account_deleted += 1;
            }
            CopyOutcome::OverQuota => over_quota.push(copy.account),
            CopyOutcome::StoreUnavailable(error) => return EntryOutcome::StoreUnavailable(error),
            CopyOutcome::Undeliverable(reason) => return EntryOutcome::Undeliverable(reason),
        }
    }
    if over_quota.is_empty() {
        EntryOutcome::Settled(settled)
    } else {
        EntryOutcome::OverQuota(over_quota)
    }
}

async fn deliver_copy(store: &Store, entry: &SpoolEntry, copy: &SpooledCopy) -> CopyOutcome {
    let raw = entry.raw(copy);
    let mut mailbox = copy.mailbox;
    // A second attempt only after the copy was sent to INBOX.
    for attempt in 0..2 {
        let delivery = Delivery {
            account: copy.account,
            mailbox,
            raw: &raw,
            internal_date_unix: copy.internal_date_unix,
            flags: &copy.flags,
        };
        let error = match store.deliver_once(entry.id.as_str(), &[delivery]).await {
            Ok(outcome) if outcome.accounts_already_delivered.is_empty() => {
                return CopyOutcome::Stored(mailbox);
            }
            Ok(_) => return CopyOutcome::StoredBefore,
            Err(error) => error,
        };
        match error {
            StoreError::QuotaExceeded { .. } => return CopyOutcome::OverQuota,
            error if error.is_transient() => return CopyOutcome::StoreUnavailable(error),
            StoreError::NotFound { .. } if attempt == 0 => {
                match inbox_of_live_account(store, copy.account).await {
                    Ok(Some(inbox)) => mailbox = inbox,
                    Ok(None) => return CopyOutcome::AccountDeleted,
                    Err(error) if error.is_transient() => {
                        return CopyOutcome::StoreUnavailable(error);
                    }
                    Err(error) => return CopyOutcome::Undeliverable(error.to_string()),
                }
            }
            error => return CopyOutcome::Undeliverable(error.to_string()),
        }
    }
    CopyOutcome::Undeliverable(format!(
        "account {} refuses the copy in its INBOX too",
        copy.account
    ))
}

/// The account's INBOX when the account still exists (its mail store half completed, as
/// SMTP's RCPT does, if a crash left it missing); None when it was deleted.
async fn inbox_of_live_account(
    store: &Store,
    account: tme_store::AccountId,
) -> Result<Option<tme_store::MailboxId>, StoreError> {
    let Some(account) = store.directory.account_get_by_id(account).await? else {
        return Ok(None);
    };
    store
        .mail
        .account_ensure(account.id, account.quota_bytes_max)
        .await?;
    let inbox = store.mail.mailbox_find(account.id, INBOX).await?;
    inbox
        .map(|inbox| Some(inbox.id))
        .ok_or_else(|| StoreError::NotFound {
            kind: "mailbox",
            name: format!("{INBOX} of {}", account.address),
        })
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|duration| duration.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tme_core::EmailAddress;
    use tme_core::config::StoreConfig;
    use tme_store::{Branding, Flags, NewAccount};

    struct Fixture {
        _directory: tempfile::TempDir,
        store: Store,
        spool: InboundSpool,
        metrics: Arc<Metrics>,
    }

    async fn fixture() -> Fixture {
        let directory = tempfile::tempdir().expect("tempdir");
        let store = Store::open(directory.path(), &StoreConfig::default())
            .await
            .expect("store");
        let spool = InboundSpool::open(&directory.path().join("spool"), 1 << 30).expect("spool");
        store
            .directory
            .partner_add("test", Branding::default())
            .await
            .expect("partner");
        let domain = tme_core::Domain::parse("example.com").expect("domain");
        store
            .directory
            .domain_add(&domain, "test")
            .await
            .expect("domain");
        Fixture {
            _directory: directory,
            store,
            spool,
            metrics: Arc::new(Metrics::default()),
        }
    }

    impl Fixture {
        async fn account(&self, address: &str) -> (tme_store::AccountId, tme_store::MailboxId) {
            let account = self
                .store
                .account_create(NewAccount {
                    address: EmailAddress::parse(address).expect("address"),
                    display_name: None,
                    password_hash: "unused".to_owned(),
                    quota_bytes_max: 1 << 30,
                })
                .await
                .expect("account");
            let inbox = self
                .store
                .mail
                .mailbox_find(account.id, INBOX)
                .await
                .expect("find")
                .expect("inbox");
            (account.id, inbox.id)
        }

        async fn spool_for(&self, targets: &[(tme_store::AccountId, tme_store::MailboxId)]) {
            let flags = Flags::default();
            let raws: Vec<Vec<u8>> = targets
                .iter()
                .map(|(account, _)| {
                    format!("Delivered-To: {account}\r\nSubject: spooled\r\n\r\nbody\r\n")
                        .into_bytes()
                })
                .collect();
            let deliveries: Vec<Delivery<'_>> = targets
                .iter()
                .zip(&raws)
                .map(|((account, mailbox), raw)| Delivery {
                    account: *account,
                    mailbox: *mailbox,
                    raw,
                    internal_date_unix: Some(1_700_000_000),
                    flags: &flags,
                })
                .collect();
            self.spool
                .put(&format!("{:016X}", rand::random::<u64>()), &deliveries)
                .await
                .expect("spool");
        }

        async fn pass(&self) {
            let mut worker = Worker {
                spool: self.spool.clone(),
                store: self.store.clone(),
                metrics: self.metrics.clone(),
                auto_responder: None,
                quota_waits: HashMap::new(),
            };
            assert!(matches!(
                worker.pass(&CancellationToken::new()).await,
                Pass::Finished
            ));
        }

        async fn inbox_count(&self, account: tme_store::AccountId) -> usize {
            let inbox = self
                .store
                .mail
                .mailbox_find(account, INBOX)
                .await
                .expect("find")
                .expect("inbox");
            self.store
                .mail
                .message_list(account, inbox.id)
                .await
                .expect("list")
                .len()
        }
    }

    /// The crash this guards against: the copies committed, then the process died before the
    /// entry was removed. The next pass stores nothing twice and removes the entry.
    #[tokio::test]
    async fn an_entry_committed_but_not_removed_is_not_stored_twice() {
        let fixture = fixture().await;
        let first = fixture.account("first@example.com").await;
        let second = fixture.account("second@example.com").await;
        fixture.spool_for(&[first, second]).await;
        let id = fixture.spool.waiting().await.expect("waiting").remove(0);
        let entry = fixture.spool.read(&id).await.expect("read");
        assert!(matches!(
            deliver_entry(&fixture.store, &entry, None).await,
            EntryOutcome::Settled(Settled {
                copies_stored: 2,
                ..
            })
        ));
        // "Crash": the entry is still there. Restart: a pass over the spool.
        fixture.pass().await;
        assert_eq!(fixture.inbox_count(first.0).await, 1);
        assert_eq!(fixture.inbox_count(second.0).await, 1);
        assert!(fixture.spool.waiting().await.expect("waiting").is_empty());
        assert_eq!(
            Metrics::value(&fixture.metrics.spool_entries, "delivered"),
            1
        );
    }

    #[tokio::test]
    async fn a_deleted_account_loses_its_copy_and_a_deleted_mailbox_sends_it_to_inbox() {
        let fixture = fixture().await;
        let kept = fixture.account("kept@example.com").await;
        let deleted = fixture.account("deleted@example.com").await;
        let moved = fixture.account("moved@example.com").await;
        let folder = fixture
            .store
            .mail
            .mailbox_create(moved.0, "Folder", None)
            .await
            .expect("folder");
        fixture
            .spool_for(&[kept, deleted, (moved.0, folder.id)])
            .await;
        let account = fixture
            .store
            .directory
            .account_get_by_id(deleted.0)
            .await
            .expect("get")
            .expect("account");
        fixture
            .store
            .account_delete(&account)
            .await
            .expect("delete");
        fixture
            .store
            .mail
            .mailbox_delete(moved.0, folder.id)
            .await
            .expect("delete folder");
        fixture.pass().await;
        assert_eq!(fixture.inbox_count(kept.0).await, 1);
        assert_eq!(fixture.inbox_count(moved.0).await, 1);
        assert!(fixture.spool.waiting().await.expect("waiting").is_empty());
        assert_eq!(fixture.metrics.spool_copies_dropped.get(), 1);
    }

    #[tokio::test]
    async fn an_unreadable_entry_is_quarantined_and_the_rest_delivered() {
        let fixture = fixture().await;
        let account = fixture.account("user@example.com").await;
        fixture.spool_for(&[account]).await;
        fixture.spool_for(&[account]).await;
        let ids = fixture.spool.waiting().await.expect("waiting");
        let path = fixture
            ._directory
            .path()
            .join("spool/inbound")
            .join(format!("{}.entry", ids[0]));
        let mut bytes = std::fs::read(&path).expect("read");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(&path, bytes).expect("damage");
        fixture.pass().await;
        assert_eq!(fixture.inbox_count(account.0).await, 1);
        let listed = fixture.spool.list().expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, ids[0]);
        assert!(
            listed[0]
                .reason
                .as_deref()
                .is_some_and(|reason| reason.contains("checksum mismatch")),
            "{listed:?}"
        );
        assert_eq!(
            Metrics::value(&fixture.metrics.spool_entries, "quarantined"),
            1
        );
    }
}
