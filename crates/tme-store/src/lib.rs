//! Storage for tme: the directory, the mail store and the blob store, behind traits.
//!
//! Callers hold a `Store`, which bundles one `Directory`, one `MailStore` and one
//! `BlobStore`, and do everything that touches more than one of them through it (`deliver`,
//! `account_create`, `collect_garbage`), so that the rules spanning them live in one place:
//! a blob is durable before a message refers to it; an account's mail store exists before the
//! account receives mail; a blob referred to is never collected.
//!
//! Beside them, `spool` keeps the mail inbound SMTP acknowledged while the store could not
//! take it, on this node's disk, until `Store::deliver_once` stores it exactly once.
//!
//! `queue` holds the outbound queue: messages waiting to leave, each recipient's state.
//!
//! Backends: `sqlite` (the embedded default). A PostgreSQL backend implements the same traits
//! and passes the same `conformance` suite. No SQL outside a backend module.

pub mod blob;
mod compression;
pub mod conformance;
pub mod directory;
pub mod dns;
mod durable;
pub mod error;
pub mod fixture;
pub mod mail;
pub mod notify;
pub mod queue;
pub mod spool;
pub mod sqlite;
mod summary_cache;
pub mod threads;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use blob::{BlobId, BlobStore};
pub use directory::{
    ACCOUNT_SIGNATURE_CHARS_MAX, Account, AccountId, AccountState, Alias, AliasSource, AppPassword,
    Branding, Directory, DomainRecord, LoginLock, NewAccount, Partner, Resolution,
    VACATION_BODY_CHARS_MAX, VACATION_SUBJECT_CHARS_MAX, Vacation,
    WEB_SESSION_USER_AGENT_CHARS_MAX, WebSession,
};
pub use dns::{DkimAlgorithm, DkimKey, DnsRecord, NewDkimKey, NewDnsRecord};
pub use error::{StoreError, StoreResult};
pub use mail::{
    Appended, AppendedOnce, Change, ChangeKind, FlagChange, Flags, MailStore, Mailbox,
    MailboxCounts, MailboxId, MessageId, MessageOrder, MessageRecord, ModSeq, NewMessage,
    SpecialUse, ThreadEntry, Uid, Usage,
};
pub use queue::{
    AttemptRecord, DsnReturn, NewQueued, NewRecipient, Notify, QueueId, QueueStats, QueueStore,
    QueuedMessage, QueuedRecipient, RecipientOutcome, RecipientState, StoredPolicy,
};
pub use threads::ThreadId;
use tme_core::EmailAddress;
use tme_core::config::{StoreBackend, StoreConfig};

/// The file names inside a data directory.
pub const DIRECTORY_FILE_NAME: &str = "directory.sqlite";
pub const MAIL_SHARD_FILE_NAME: &str = "mail-shard-0.sqlite";
pub const QUEUE_FILE_NAME: &str = "queue.sqlite";
pub const BLOBS_DIRECTORY_NAME: &str = "blobs";
/// The inbound spool (`spool`): mail acknowledged while the store could not take it.
pub const SPOOL_DIRECTORY_NAME: &str = "spool";

/// The directory, the mail store and the blob store of one node.
#[derive(Debug, Clone)]
pub struct Store {
    pub directory: Arc<dyn Directory>,
    pub mail: Arc<dyn MailStore>,
    pub queue: Arc<dyn QueueStore>,
    pub blobs: BlobStore,
    /// Wakes this process's readers of an account after a change made through this `Store`
    /// (`deliver`) or by a caller that says so (IMAP after its own writes).
    pub changes: notify::ChangeNotifier,
    retention_days: u32,
    closers: Arc<Vec<sqlite::Closer>>,
}

/// A message to deliver into one mailbox of one account.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub account: AccountId,
    pub mailbox: MailboxId,
    pub raw: &'a [u8],
    /// When the message arrived; None takes its Date header, or now when it has none.
    pub internal_date_unix: Option<i64>,
    pub flags: &'a Flags,
}

impl Store {
    /// Opens (creating if needed) the store in `data_directory` as `config` says.
    pub async fn open(data_directory: &Path, config: &StoreConfig) -> StoreResult<Store> {
        match config.backend {
            StoreBackend::Sqlite => {
                std::fs::create_dir_all(data_directory).map_err(|error| {
                    StoreError::io(format!("cannot create {}", data_directory.display()), error)
                })?;
                let busy_timeout = std::time::Duration::from_millis(config.busy_timeout_ms);
                let directory = sqlite::SqliteDirectory::open(
                    &data_directory.join(DIRECTORY_FILE_NAME),
                    busy_timeout,
                )
                .await?;
                let mail = sqlite::SqliteMailStore::open(
                    &data_directory.join(MAIL_SHARD_FILE_NAME),
                    busy_timeout,
                )
                .await?;
                let queue = sqlite::SqliteQueueStore::open(
                    &data_directory.join(QUEUE_FILE_NAME),
                    busy_timeout,
                )
                .await?;
                let blobs = BlobStore::open(&data_directory.join(BLOBS_DIRECTORY_NAME))?;
                let closers = vec![
                    sqlite::Closer::Directory(directory.clone()),
                    sqlite::Closer::Mail(mail.clone()),
                    sqlite::Closer::Queue(queue.clone()),
                ];
                Ok(Store {
                    directory: Arc::new(directory),
                    mail: Arc::new(mail),
                    queue: Arc::new(queue),
                    blobs,
                    changes: notify::ChangeNotifier::default(),
                    retention_days: config.retention_days,
                    closers: Arc::new(closers),
                })
            }
        }
    }

    /// Closes the database connections, waiting for writes in flight.
    pub async fn close(&self) {
        for closer in self.closers.iter() {
            closer.close().await;
        }
    }

    /// Creates an account in the directory and its mailboxes in the mail store.
    pub async fn account_create(&self, account: NewAccount) -> StoreResult<Account> {
        let account = self.directory.account_add(account).await?;
        self.mail
            .account_ensure(account.id, account.quota_bytes_max)
            .await?;
        Ok(account)
    }

    /// Finds an account by address, making sure its mail store exists (it may not, after a
    /// crash between the two steps of `account_create`).
    pub async fn account_open(&self, address: &EmailAddress) -> StoreResult<Account> {
        let account =
            self.directory
                .account_get(address)
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    kind: "account",
                    name: address.to_string(),
                })?;
        self.mail
            .account_ensure(account.id, account.quota_bytes_max)
            .await?;
        Ok(account)
    }

    /// The account's INBOX for a delivery of `size_declared_octets` (one octet when no
    /// size is known), or None when the account's quota cannot take it. An account whose
    /// mail store half is missing (a crash inside `account_create`) is completed first.
    pub async fn inbox_for_delivery(
        &self,
        account: &Account,
        size_declared_octets: Option<u64>,
    ) -> StoreResult<Option<MailboxId>> {
        const INBOX: &str = "INBOX";
        let mut inbox = self.mail.mailbox_find(account.id, INBOX).await?;
        if inbox.is_none() {
            self.mail
                .account_ensure(account.id, account.quota_bytes_max)
                .await?;
            inbox = self.mail.mailbox_find(account.id, INBOX).await?;
        }
        let Some(inbox) = inbox else {
            return Err(StoreError::NotFound {
                kind: "mailbox",
                name: format!("{INBOX} of {}", account.address),
            });
        };
        let usage = self.mail.account_usage(account.id).await?;
        let needed_octets = size_declared_octets.unwrap_or(1).max(1);
        if usage.used_bytes.saturating_add(needed_octets) > usage.quota_bytes_max {
            return Ok(None);
        }
        Ok(Some(inbox.id))
    }

    /// Removes an account: its mail first, then its directory entry.
    pub async fn account_delete(&self, account: &Account) -> StoreResult<()> {
        self.mail.account_delete(account.id).await?;
        self.directory.account_remove(account.id).await
    }

    /// Stores messages durably: the blobs are written and fsynced, then the metadata of every
    /// message commits in one transaction: all of them or none. When this returns Ok, every
    /// message survives a crash. The result lists what was appended grouped by account, in
    /// the order each account first appears.
    /// Each message is parsed here, once.
    pub async fn deliver(&self, deliveries: &[Delivery<'_>]) -> StoreResult<Vec<Appended>> {
        Ok(self.deliver_keyed(None, deliveries).await?.appended)
    }

    /// Like `deliver`, but at most once per account for `delivery_key`: the key commits with
    /// each account's messages, and an account that took this key before gets nothing again
    /// (`MailStore::messages_append_once`). The inbound spool delivers its entries with their
    /// id as the key, so a crash between this commit and the entry's removal delivers nothing
    /// twice.
    pub async fn deliver_once(
        &self,
        delivery_key: &str,
        deliveries: &[Delivery<'_>],
    ) -> StoreResult<AppendedOnce> {
        mail::validate_delivery_key(delivery_key)?;
        self.deliver_keyed(Some(delivery_key), deliveries).await
    }

    async fn deliver_keyed(
        &self,
        delivery_key: Option<&str>,
        deliveries: &[Delivery<'_>],
    ) -> StoreResult<AppendedOnce> {
        let blobs = self.blobs.clone();
        let raws: Vec<Vec<u8>> = deliveries
            .iter()
            .map(|delivery| delivery.raw.to_vec())
            .collect();
        let (guard, ids, summaries) = tokio::task::spawn_blocking(move || {
            let guard = blobs.lock_for_write()?;
            let slices: Vec<&[u8]> = raws.iter().map(Vec::as_slice).collect();
            let ids = blobs.put_many(&guard, &slices)?;
            let summaries: Vec<_> = raws.iter().map(|raw| tme_message::summarize(raw)).collect();
            Ok::<_, StoreError>((guard, ids, summaries))
        })
        .await
        .map_err(|error| StoreError::Refused(format!("delivery task failed: {error}")))??;
        // Messages grouped by account, in the order given; one atomic append for them all.
        let mut batches: Vec<(AccountId, Vec<NewMessage>)> = Vec::new();
        for (position, delivery) in deliveries.iter().enumerate() {
            let message = NewMessage {
                mailbox_id: delivery.mailbox,
                blob_id: ids[position],
                size_bytes: delivery.raw.len() as u64,
                internal_date_unix: delivery
                    .internal_date_unix
                    .or(summaries[position].date_unix)
                    .unwrap_or_else(sqlite::now_unix),
                flags: delivery.flags.clone(),
                summary: summaries[position].clone(),
            };
            match batches
                .iter_mut()
                .find(|(account, _)| *account == delivery.account)
            {
                Some((_, messages)) => messages.push(message),
                None => batches.push((delivery.account, vec![message])),
            }
        }
        let borrowed: Vec<(AccountId, &[NewMessage])> = batches
            .iter()
            .map(|(account, messages)| (*account, messages.as_slice()))
            .collect();
        let outcome = match delivery_key {
            None => AppendedOnce {
                appended: self.mail.messages_append_for_accounts(&borrowed).await?,
                accounts_already_delivered: Vec::new(),
            },
            Some(key) => self.mail.messages_append_once(key, &borrowed).await?,
        };
        drop(guard);
        for (account, _) in &borrowed {
            self.changes.notify(*account);
        }
        Ok(outcome)
    }

    /// Queues `raw` for delivery to the envelope of `message` (whose `blob_id` and
    /// `size_bytes` are set here): the blob is durable first, then the queue record. When this
    /// returns Ok, the message survives a crash and will be delivered or bounced.
    pub async fn enqueue(&self, raw: &[u8], mut message: NewQueued) -> StoreResult<QueueId> {
        let blobs = self.blobs.clone();
        let owned = raw.to_vec();
        let (guard, blob_id) = tokio::task::spawn_blocking(move || {
            let guard = blobs.lock_for_write()?;
            let id = blobs.put(&guard, &owned)?;
            Ok::<_, StoreError>((guard, id))
        })
        .await
        .map_err(|error| StoreError::Refused(format!("queue task failed: {error}")))??;
        message.blob_id = blob_id;
        message.size_bytes = raw.len() as u64;
        let id = self.queue.enqueue(&message).await?;
        drop(guard);
        Ok(id)
    }

    /// Reads a queued message's raw bytes back.
    pub async fn queued_raw(&self, message: &QueuedMessage) -> StoreResult<Vec<u8>> {
        let blobs = self.blobs.clone();
        let id = message.blob_id;
        let raw = tokio::task::spawn_blocking(move || blobs.get(&id))
            .await
            .map_err(|error| StoreError::Refused(format!("read task failed: {error}")))??;
        if raw.len() as u64 != message.size_bytes {
            return Err(StoreError::Corrupt(format!(
                "queued message {} is {} bytes, {} expected",
                message.id,
                raw.len(),
                message.size_bytes
            )));
        }
        Ok(raw)
    }

    /// Copies messages of an account into `target` (IMAP COPY and MOVE): the same blobs and
    /// summaries, new UIDs, flags as given, in one transaction. Nothing is parsed again. The
    /// blob write lock is held from reading the references to the commit, so the collector
    /// cannot delete a blob in between (an expunged source past retention, say).
    pub async fn messages_copy(
        &self,
        account: AccountId,
        copies: &[(MessageRecord, Flags)],
        target: MailboxId,
    ) -> StoreResult<Vec<Appended>> {
        let blobs = self.blobs.clone();
        let guard = tokio::task::spawn_blocking(move || blobs.lock_for_write())
            .await
            .map_err(|error| StoreError::Refused(format!("copy task failed: {error}")))??;
        let mut messages = Vec::with_capacity(copies.len());
        for (record, flags) in copies {
            messages.push(NewMessage {
                mailbox_id: target,
                blob_id: record.blob_id,
                size_bytes: record.size_bytes,
                internal_date_unix: record.internal_date_unix,
                flags: flags.clone(),
                summary: Arc::unwrap_or_clone(self.mail.message_summary(account, record.id).await?),
            });
        }
        let appended = self.mail.messages_append(account, &messages).await?;
        drop(guard);
        self.changes.notify(account);
        Ok(appended)
    }

    /// Moves live messages of `source` into `target` (the webmail's move, delete to Trash,
    /// archive and spam): copied with their flags (`messages_copy`), then expunged from the
    /// source, which keeps them restorable. The copy commits first, so a failure in between
    /// leaves the message in both mailboxes, never in neither. Returns the copies.
    pub async fn messages_move(
        &self,
        account: AccountId,
        source: MailboxId,
        records: &[MessageRecord],
        target: MailboxId,
    ) -> StoreResult<Vec<Appended>> {
        let records: Vec<&MessageRecord> = records
            .iter()
            .filter(|record| record.mailbox_id == source && record.expunged_unix.is_none())
            .collect();
        if records.is_empty() || source == target {
            return Ok(Vec::new());
        }
        let copies: Vec<(MessageRecord, Flags)> = records
            .iter()
            .map(|record| (MessageRecord::clone(record), record.flags.clone()))
            .collect();
        let appended = self.messages_copy(account, &copies, target).await?;
        let uids: Vec<Uid> = records.iter().map(|record| record.uid).collect();
        self.mail.messages_expunge(account, source, &uids).await?;
        self.changes.notify(account);
        Ok(appended)
    }

    /// Reads a message's raw bytes back.
    pub async fn message_raw(&self, record: &MessageRecord) -> StoreResult<Vec<u8>> {
        let blobs = self.blobs.clone();
        let id = record.blob_id;
        let raw = tokio::task::spawn_blocking(move || blobs.get(&id))
            .await
            .map_err(|error| StoreError::Refused(format!("read task failed: {error}")))??;
        if raw.len() as u64 != record.size_bytes {
            return Err(StoreError::Corrupt(format!(
                "message {} is {} bytes, {} expected",
                record.id,
                raw.len(),
                record.size_bytes
            )));
        }
        Ok(raw)
    }

    /// Purges what is past retention, then deletes blobs nothing refers to.
    pub async fn collect_garbage(
        &self,
        now_unix: i64,
    ) -> StoreResult<(mail::PurgeReport, blob::CollectReport)> {
        let cutoff_unix = now_unix - i64::from(self.retention_days) * 86_400;
        let mut purged = self.mail.retention_purge(cutoff_unix).await?;
        purged.delivery_keys_purged = self
            .mail
            .delivery_keys_purge(now_unix - mail::DELIVERY_KEYS_KEPT_DAYS * 86_400)
            .await?;
        let blobs = self.blobs.clone();
        let guard = tokio::task::spawn_blocking(move || blobs.lock_for_collect())
            .await
            .map_err(|error| StoreError::Refused(format!("collect task failed: {error}")))??;
        // Read the references only once no writer can be between blob and metadata.
        let mut referenced = self.mail.blob_references().await?;
        referenced.extend(self.queue.blob_references().await?);
        let blobs = self.blobs.clone();
        let collected =
            tokio::task::spawn_blocking(move || blobs.collect_garbage(&guard, &referenced))
                .await
                .map_err(|error| StoreError::Refused(format!("collect task failed: {error}")))??;
        Ok((purged, collected))
    }

    pub fn retention_days(&self) -> u32 {
        self.retention_days
    }
}

/// The data directory's files, for tools that report sizes.
pub fn data_files(data_directory: &Path) -> Vec<PathBuf> {
    [
        DIRECTORY_FILE_NAME,
        MAIL_SHARD_FILE_NAME,
        QUEUE_FILE_NAME,
        BLOBS_DIRECTORY_NAME,
        SPOOL_DIRECTORY_NAME,
    ]
    .iter()
    .map(|name| data_directory.join(name))
    .collect()
}
