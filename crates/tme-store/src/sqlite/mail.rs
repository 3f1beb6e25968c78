//! The mail store on SQLite (`mail-shard-N.sqlite`).
//!
//! Every write runs in one `BEGIN IMMEDIATE` transaction that takes the account's next MODSEQ,
//! writes the change log and adjusts the quota counters, so a crash leaves either all of a
//! change or none of it.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};
use tme_message::MessageSummary;

use super::group_commit::{GroupCommit, WriteRequest};
use super::threads;
use super::{Database, already_exists_if_unique, now_unix, schema, to_i64, to_u64};
use crate::blob::BlobId;
use crate::directory::AccountId;
use crate::error::{StoreError, StoreResult};
use crate::mail::{
    Appended, AppendedOnce, Change, ChangeKind, FlagChange, Flags, MAILBOXES_PER_ACCOUNT_MAX,
    MailStore, Mailbox, MailboxCounts, MailboxId, MessageId, MessageOrder, MessageRecord, ModSeq,
    NewMessage, PurgeReport, SpecialUse, ThreadEntry, Uid, Usage, validate_delivery_key,
    validate_mailbox_name,
};
use crate::summary_cache::{SUMMARY_CACHE_BYTES_MAX, SummaryCache};
use crate::threads::{ThreadId, thread_keys};

/// zstd level for the stored summaries (postcard, a compact binary serde format).
const SUMMARY_ZSTD_LEVEL: i32 = 6;
/// The most UIDs (or message ids) one statement names; longer lists are split.
const UIDS_PER_STATEMENT_MAX: usize = 500;

#[derive(Debug, Clone)]
pub struct SqliteMailStore {
    database: Database,
    group_commit: GroupCommit<MailWrite>,
    /// Shared by the clones of this store.
    summaries: Arc<SummaryCache>,
    /// Mailbox counts by HIGHEST_MODSEQ, shared by the clones of this store.
    counts: Arc<CountsCache<MailboxCounts>>,
    /// How many conversations each mailbox holds, by HIGHEST_MODSEQ likewise.
    thread_counts: Arc<CountsCache<u64>>,
}

/// The most mailboxes whose counts are kept; past it, the cache starts again empty.
const COUNTS_CACHED_MAILBOXES_MAX: usize = 100_000;

/// Counts of a mailbox (`mailbox_counts`, `thread_count`), each valid for one HIGHEST_MODSEQ
/// of its mailbox. Mailbox ids are never reused (AUTOINCREMENT), so an entry can only be
/// stale by MODSEQ, and a stale one is never returned.
#[derive(Debug)]
struct CountsCache<T> {
    entries: std::sync::Mutex<std::collections::HashMap<MailboxId, (ModSeq, T)>>,
}

impl<T> Default for CountsCache<T> {
    fn default() -> Self {
        CountsCache {
            entries: std::sync::Mutex::default(),
        }
    }
}

impl<T: Copy> CountsCache<T> {
    /// Forgets every entry: for a change that takes no MODSEQ (the threads backfill).
    fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    fn get(&self, mailbox: MailboxId, modseq: ModSeq) -> Option<T> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .get(&mailbox)
            .filter(|(cached, _)| *cached == modseq)
            .map(|(_, counts)| *counts)
    }

    fn put(&self, mailbox: MailboxId, modseq: ModSeq, counts: T) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= COUNTS_CACHED_MAILBOXES_MAX {
            entries.clear();
        }
        // A slower reader must not put back counts older than what is kept.
        match entries.get(&mailbox) {
            Some((cached, _)) if *cached > modseq => {}
            _ => {
                entries.insert(mailbox, (modseq, counts));
            }
        }
    }
}

impl SqliteMailStore {
    pub async fn open(path: &Path, busy_timeout: Duration) -> StoreResult<SqliteMailStore> {
        Ok(SqliteMailStore {
            database: Database::open(path, &schema::MAIL, busy_timeout).await?,
            group_commit: GroupCommit::default(),
            summaries: Arc::new(SummaryCache::new(SUMMARY_CACHE_BYTES_MAX)),
            counts: Arc::new(CountsCache::default()),
            thread_counts: Arc::new(CountsCache::default()),
        })
    }

    /// A stored summary of the account's message, decoded and kept in the cache.
    fn decode_and_cache(
        &self,
        account: AccountId,
        id: MessageId,
        bytes: &[u8],
    ) -> StoreResult<Arc<MessageSummary>> {
        let (summary, encoded_bytes) = decode_summary(bytes)?;
        let summary = Arc::new(summary);
        self.summaries
            .insert(account, id, summary.clone(), encoded_bytes);
        Ok(summary)
    }

    pub async fn close(&self) {
        self.database.close().await;
    }

    /// The mailbox's HIGHEST_MODSEQ, which every change to its messages raises; None for
    /// no such mailbox of the account.
    async fn mailbox_modseq(
        &self,
        account: AccountId,
        mailbox: MailboxId,
    ) -> StoreResult<Option<ModSeq>> {
        Ok(sqlx::query_scalar(
            "SELECT highest_modseq FROM mailboxes WHERE account_id = ? AND mailbox_id = ?",
        )
        .bind(account)
        .bind(mailbox)
        .fetch_optional(&self.database.reader)
        .await?)
    }
}

pub(crate) type WriteTransaction = Transaction<'static, Sqlite>;

/// A message ready for its row: what `NewMessage` says, its summary already encoded.
#[derive(Debug)]
pub(crate) struct AppendRow {
    mailbox_id: MailboxId,
    blob_id: BlobId,
    size_bytes: i64,
    internal_date_unix: i64,
    flags: Flags,
    summary: Vec<u8>,
    /// The keys that decide its thread (`crate::threads::thread_keys`).
    thread_keys: Vec<i64>,
}

impl AppendRow {
    fn new(message: &NewMessage) -> StoreResult<AppendRow> {
        Ok(AppendRow {
            mailbox_id: message.mailbox_id,
            blob_id: message.blob_id,
            size_bytes: to_i64(message.size_bytes)?,
            internal_date_unix: message.internal_date_unix,
            flags: message.flags.clone(),
            summary: encode_summary(&message.summary)?,
            thread_keys: thread_keys(&message.summary),
        })
    }
}

impl SqliteMailStore {
    /// Appends every batch atomically (all of them or none); with a delivery key, each
    /// account at most once per key. The transaction may be shared with other appends
    /// waiting at the same time (`group_commit`).
    async fn append_for_accounts(
        &self,
        delivery_key: Option<&str>,
        batches: &[(AccountId, &[NewMessage])],
    ) -> StoreResult<AppendedOnce> {
        if batches.iter().all(|(_, messages)| messages.is_empty()) {
            return Ok(AppendedOnce::default());
        }
        let mut rows = Vec::with_capacity(batches.len());
        for (account, messages) in batches {
            rows.push((
                *account,
                messages
                    .iter()
                    .map(AppendRow::new)
                    .collect::<StoreResult<Vec<_>>>()?,
            ));
        }
        let request = AppendRequest {
            delivery_key: delivery_key.map(str::to_owned),
            batches: rows,
        };
        match self
            .group_commit
            .write(&self.database, MailWrite::Append(request))
            .await?
        {
            MailWritten::Appended(outcome) => Ok(outcome),
            MailWritten::FlagsSet(_) => Err(mismatched_write()),
        }
    }
}

/// What shares the mail file's group commit: appends (deliveries, IMAP APPEND) and flag
/// changes (IMAP STORE, `\Seen` set by FETCH). A flag change must be durable before the
/// STORE's tagged OK, so it waits for a commit like an append; sharing the commit lets
/// concurrent STOREs and deliveries pay one WAL fsync together instead of one each.
#[derive(Debug)]
enum MailWrite {
    Append(AppendRequest),
    SetFlags(SetFlagsRequest),
}

/// What a `MailWrite` gives back, by kind.
#[derive(Debug)]
enum MailWritten {
    Appended(AppendedOnce),
    FlagsSet(Vec<MessageRecord>),
}

/// A `MailWritten` of the other kind than its request: a bug, reported as an error.
fn mismatched_write() -> StoreError {
    StoreError::Unavailable("the group commit answered another kind of write".to_owned())
}

impl WriteRequest for MailWrite {
    type Output = MailWritten;

    async fn apply(&self, transaction: &mut WriteTransaction) -> StoreResult<MailWritten> {
        match self {
            MailWrite::Append(request) => {
                request.apply(transaction).await.map(MailWritten::Appended)
            }
            MailWrite::SetFlags(request) => set_flags(transaction, request)
                .await
                .map(MailWritten::FlagsSet),
        }
    }
}

/// One caller's flag change (`MailStore::messages_set_flags`).
#[derive(Debug)]
struct SetFlagsRequest {
    account: AccountId,
    mailbox: MailboxId,
    uids: Vec<Uid>,
    change: FlagChange,
    unchanged_since: Option<ModSeq>,
}

/// Changes flags inside `transaction`; returns the records that changed.
async fn set_flags(
    transaction: &mut WriteTransaction,
    request: &SetFlagsRequest,
) -> StoreResult<Vec<MessageRecord>> {
    let SetFlagsRequest {
        account,
        mailbox,
        uids,
        change,
        unchanged_since,
    } = request;
    let (account, mailbox, unchanged_since) = (*account, *mailbox, *unchanged_since);
    live_mailbox(transaction, account, mailbox).await?;
    let mut modseq: Option<ModSeq> = None;
    let mut changed = Vec::new();
    for chunk in uids.chunks(UIDS_PER_STATEMENT_MAX) {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE account_id = ? AND mailbox_id = ?
             AND expunged_unix IS NULL AND uid IN ({}) ORDER BY uid",
            placeholders(chunk.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account)
            .bind(mailbox);
        for uid in chunk {
            query = query.bind(i64::from(*uid));
        }
        let rows = query.fetch_all(&mut **transaction).await?;
        for row in &rows {
            let mut record = message_from_row(row)?;
            if unchanged_since.is_some_and(|since| record.modseq > since) {
                continue;
            }
            let flags = change.apply(&record.flags);
            if flags == record.flags {
                continue;
            }
            let modseq = match modseq {
                Some(modseq) => modseq,
                None => {
                    let next = next_modseq(transaction, account).await?;
                    touch_mailbox(transaction, mailbox, next).await?;
                    modseq = Some(next);
                    next
                }
            };
            sqlx::query(
                "UPDATE messages SET system_flags = ?, keywords = ?, modseq = ? WHERE message_id = ?",
            )
            .bind(i64::from(flags.system.0))
            .bind(flags.keywords_text())
            .bind(modseq)
            .bind(record.id)
            .execute(&mut **transaction)
            .await?;
            log_change(
                transaction,
                account,
                modseq,
                ChangeKind::MessageFlagsChanged,
                mailbox,
                Some((record.id, record.uid)),
            )
            .await?;
            record.flags = flags;
            record.modseq = modseq;
            changed.push(record);
        }
    }
    Ok(changed)
}

/// One caller's append: all of it or none of it.
#[derive(Debug)]
struct AppendRequest {
    delivery_key: Option<String>,
    batches: Vec<(AccountId, Vec<AppendRow>)>,
}

impl AppendRequest {
    async fn apply(&self, transaction: &mut WriteTransaction) -> StoreResult<AppendedOnce> {
        let mut outcome = AppendedOnce::default();
        for (account, rows) in &self.batches {
            if let Some(key) = &self.delivery_key
                && !record_delivery_key(transaction, *account, key).await?
            {
                outcome.accounts_already_delivered.push(*account);
                continue;
            }
            outcome
                .appended
                .extend(append_rows(transaction, *account, rows).await?);
        }
        Ok(outcome)
    }
}

/// Records that `account` took the delivery `key`; false when it had already.
pub(crate) async fn record_delivery_key(
    transaction: &mut WriteTransaction,
    account: AccountId,
    key: &str,
) -> StoreResult<bool> {
    let result = sqlx::query(
        "INSERT INTO delivery_keys (account_id, delivery_key, created_unix) VALUES (?, ?, ?)
         ON CONFLICT (account_id, delivery_key) DO NOTHING",
    )
    .bind(account)
    .bind(key)
    .bind(now_unix())
    .execute(&mut **transaction)
    .await?;
    Ok(result.rows_affected() == 1)
}

fn mailbox_from_row(row: &SqliteRow) -> StoreResult<Mailbox> {
    let special_use: Option<String> = row.try_get("special_use")?;
    Ok(Mailbox {
        id: row.try_get("mailbox_id")?,
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        special_use: special_use.as_deref().and_then(SpecialUse::parse),
        uid_validity: u32::try_from(row.try_get::<i64, _>("uid_validity")?).unwrap_or(1),
        uid_next: u32::try_from(row.try_get::<i64, _>("uid_next")?).unwrap_or(u32::MAX),
        highest_modseq: row.try_get("highest_modseq")?,
        subscribed: row.try_get::<i64, _>("subscribed")? != 0,
        deleted_unix: row.try_get("deleted_unix")?,
    })
}

pub(super) fn message_from_row(row: &SqliteRow) -> StoreResult<MessageRecord> {
    let blob: Vec<u8> = row.try_get("blob_id")?;
    let keywords: String = row.try_get("keywords")?;
    Ok(MessageRecord {
        id: row.try_get("message_id")?,
        account_id: row.try_get("account_id")?,
        mailbox_id: row.try_get("mailbox_id")?,
        uid: u32::try_from(row.try_get::<i64, _>("uid")?)
            .map_err(|_| StoreError::Corrupt("a UID is out of range".to_owned()))?,
        blob_id: BlobId::from_bytes(&blob)
            .ok_or_else(|| StoreError::Corrupt("a blob id is not 32 bytes".to_owned()))?,
        size_bytes: to_u64(row.try_get("size_bytes")?),
        internal_date_unix: row.try_get("internal_date_unix")?,
        flags: Flags::from_stored(row.try_get("system_flags")?, &keywords),
        modseq: row.try_get("modseq")?,
        expunged_unix: row.try_get("expunged_unix")?,
        thread_id: row.try_get("thread_of_message")?,
    })
}

pub(super) const MESSAGE_COLUMNS: &str = "message_id, account_id, mailbox_id, uid, blob_id, \
     size_bytes, internal_date_unix, system_flags, keywords, modseq, expunged_unix, \
     COALESCE(thread_id, message_id) AS thread_of_message";

fn encode_summary(summary: &MessageSummary) -> StoreResult<Vec<u8>> {
    let encoded = postcard::to_stdvec(summary)
        .map_err(|error| StoreError::Corrupt(format!("cannot encode a summary: {error}")))?;
    zstd::bulk::compress(&encoded, SUMMARY_ZSTD_LEVEL)
        .map_err(|error| StoreError::io("cannot compress a summary", error))
}

/// A stored summary, decoded, with the size of its encoded form (for the cache's bound).
pub(super) fn decode_summary(bytes: &[u8]) -> StoreResult<(MessageSummary, usize)> {
    // The summary of the largest message allowed stays far below this.
    const SUMMARY_ENCODED_BYTES_MAX: usize = 64 * 1024 * 1024;
    let encoded = crate::compression::decompress_exact(bytes, None, SUMMARY_ENCODED_BYTES_MAX)
        .ok_or_else(|| StoreError::Corrupt("a stored summary does not decompress".to_owned()))?;
    let summary = postcard::from_bytes(&encoded).map_err(|error| {
        StoreError::Corrupt(format!("a stored summary does not decode: {error}"))
    })?;
    Ok((summary, encoded.len()))
}

/// Takes the account's next MODSEQ inside the transaction.
async fn next_modseq(
    transaction: &mut WriteTransaction,
    account: AccountId,
) -> StoreResult<ModSeq> {
    let row = sqlx::query(
        "UPDATE mail_accounts SET highest_modseq = highest_modseq + 1 WHERE account_id = ?
         RETURNING highest_modseq",
    )
    .bind(account)
    .fetch_optional(&mut **transaction)
    .await?;
    match row {
        Some(row) => Ok(row.try_get(0)?),
        None => Err(StoreError::NotFound {
            kind: "account",
            name: account.to_string(),
        }),
    }
}

/// A UIDVALIDITY never given before in this account: the time, or one more than the last.
async fn next_uid_validity(
    transaction: &mut WriteTransaction,
    account: AccountId,
) -> StoreResult<u32> {
    let now = u32::try_from(now_unix()).unwrap_or(u32::MAX - 1);
    let row = sqlx::query(
        "UPDATE mail_accounts SET uid_validity_last = MAX(uid_validity_last + 1, ?)
         WHERE account_id = ? RETURNING uid_validity_last",
    )
    .bind(i64::from(now))
    .bind(account)
    .fetch_one(&mut **transaction)
    .await?;
    u32::try_from(row.try_get::<i64, _>(0)?)
        .map_err(|_| StoreError::Corrupt("UIDVALIDITY ran out".to_owned()))
}

async fn log_change(
    transaction: &mut WriteTransaction,
    account: AccountId,
    modseq: ModSeq,
    kind: ChangeKind,
    mailbox: MailboxId,
    message: Option<(MessageId, Uid)>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO changes (account_id, modseq, kind, mailbox_id, message_id, uid) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(account)
    .bind(modseq)
    .bind(kind.code())
    .bind(mailbox)
    .bind(message.map(|(id, _)| id))
    .bind(message.map(|(_, uid)| i64::from(uid)))
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

async fn live_mailbox(
    transaction: &mut WriteTransaction,
    account: AccountId,
    id: MailboxId,
) -> StoreResult<Mailbox> {
    let row = sqlx::query(
        "SELECT * FROM mailboxes WHERE account_id = ? AND mailbox_id = ? AND deleted_unix IS NULL",
    )
    .bind(account)
    .bind(id)
    .fetch_optional(&mut **transaction)
    .await?;
    match row {
        Some(row) => mailbox_from_row(&row),
        None => Err(StoreError::NotFound {
            kind: "mailbox",
            name: id.to_string(),
        }),
    }
}

/// Adds `delta_bytes` and `delta_messages` to the account's usage; refuses when an increase
/// would pass the quota.
async fn charge_quota(
    transaction: &mut WriteTransaction,
    account: AccountId,
    delta_bytes: i64,
    delta_messages: i64,
) -> StoreResult<()> {
    let row = sqlx::query(
        "UPDATE mail_accounts SET used_bytes = used_bytes + ?, message_count = message_count + ?
         WHERE account_id = ? RETURNING used_bytes, quota_bytes_max",
    )
    .bind(delta_bytes)
    .bind(delta_messages)
    .bind(account)
    .fetch_one(&mut **transaction)
    .await?;
    let used_bytes: i64 = row.try_get(0)?;
    let quota_bytes_max: i64 = row.try_get(1)?;
    if delta_bytes > 0 && used_bytes > quota_bytes_max {
        return Err(StoreError::QuotaExceeded {
            used_bytes: to_u64(used_bytes - delta_bytes),
            quota_bytes_max: to_u64(quota_bytes_max),
            requested_bytes: to_u64(delta_bytes),
        });
    }
    Ok(())
}

/// Gives a message (new or restored) the mailbox's next UID.
async fn take_uid(
    transaction: &mut WriteTransaction,
    mailbox: MailboxId,
    modseq: ModSeq,
) -> StoreResult<Uid> {
    let row = sqlx::query(
        "UPDATE mailboxes SET uid_next = uid_next + 1, highest_modseq = ? WHERE mailbox_id = ?
         RETURNING uid_next - 1",
    )
    .bind(modseq)
    .bind(mailbox)
    .fetch_one(&mut **transaction)
    .await?;
    let uid: i64 = row.try_get(0)?;
    // RFC 9051 §2.3.1.1: UIDs are 32-bit; a mailbox that runs out must get a new UIDVALIDITY.
    u32::try_from(uid)
        .ok()
        .filter(|uid| *uid < u32::MAX)
        .ok_or_else(|| StoreError::Refused("the mailbox has used every UID".to_owned()))
}

async fn touch_mailbox(
    transaction: &mut WriteTransaction,
    mailbox: MailboxId,
    modseq: ModSeq,
) -> StoreResult<()> {
    sqlx::query("UPDATE mailboxes SET highest_modseq = ? WHERE mailbox_id = ?")
        .bind(modseq)
        .bind(mailbox)
        .execute(&mut **transaction)
        .await?;
    Ok(())
}

pub(super) fn placeholders(count: usize) -> String {
    vec!["?"; count].join(", ")
}

#[async_trait]
impl MailStore for SqliteMailStore {
    async fn account_ensure(&self, account: AccountId, quota_bytes_max: u64) -> StoreResult<()> {
        let mut transaction = self.database.begin_write().await?;
        sqlx::query(
            "INSERT INTO mail_accounts (account_id, quota_bytes_max) VALUES (?, ?)
             ON CONFLICT (account_id) DO UPDATE SET quota_bytes_max = excluded.quota_bytes_max",
        )
        .bind(account)
        .bind(to_i64(quota_bytes_max)?)
        .execute(&mut *transaction)
        .await?;
        let existing: i64 = sqlx::query("SELECT COUNT(*) FROM mailboxes WHERE account_id = ?")
            .bind(account)
            .fetch_one(&mut *transaction)
            .await?
            .get(0);
        if existing == 0 {
            let modseq = next_modseq(&mut transaction, account).await?;
            for (name, special_use) in SpecialUse::DEFAULT_MAILBOXES {
                create_mailbox(&mut transaction, account, name, Some(special_use), modseq).await?;
            }
        }
        transaction.commit().await?;
        Ok(())
    }

    async fn account_usage(&self, account: AccountId) -> StoreResult<Usage> {
        let row = sqlx::query(
            "SELECT used_bytes, quota_bytes_max, message_count FROM mail_accounts WHERE account_id = ?",
        )
        .bind(account)
        .fetch_optional(&self.database.reader)
        .await?
        .ok_or_else(|| StoreError::NotFound { kind: "account", name: account.to_string() })?;
        Ok(Usage {
            used_bytes: to_u64(row.try_get(0)?),
            quota_bytes_max: to_u64(row.try_get(1)?),
            messages: to_u64(row.try_get(2)?),
        })
    }

    async fn account_delete(&self, account: AccountId) -> StoreResult<()> {
        let mut transaction = self.database.begin_write().await?;
        for statement in [
            "DELETE FROM delivery_keys WHERE account_id = ?",
            "DELETE FROM thread_keys WHERE account_id = ?",
            "DELETE FROM changes WHERE account_id = ?",
            "DELETE FROM messages WHERE account_id = ?",
            "DELETE FROM mailboxes WHERE account_id = ?",
            "DELETE FROM mail_accounts WHERE account_id = ?",
        ] {
            sqlx::query(statement)
                .bind(account)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    async fn mailbox_list(&self, account: AccountId) -> StoreResult<Vec<Mailbox>> {
        let rows = sqlx::query(
            "SELECT * FROM mailboxes WHERE account_id = ? AND deleted_unix IS NULL ORDER BY name",
        )
        .bind(account)
        .fetch_all(&self.database.reader)
        .await?;
        rows.iter().map(mailbox_from_row).collect()
    }

    async fn mailbox_get(&self, account: AccountId, id: MailboxId) -> StoreResult<Mailbox> {
        let row = sqlx::query("SELECT * FROM mailboxes WHERE account_id = ? AND mailbox_id = ?")
            .bind(account)
            .bind(id)
            .fetch_optional(&self.database.reader)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "mailbox",
                name: id.to_string(),
            })?;
        mailbox_from_row(&row)
    }

    async fn mailbox_find(&self, account: AccountId, name: &str) -> StoreResult<Option<Mailbox>> {
        let name = validate_mailbox_name(name)?;
        let row = sqlx::query(
            "SELECT * FROM mailboxes WHERE account_id = ? AND name = ? AND deleted_unix IS NULL",
        )
        .bind(account)
        .bind(&name)
        .fetch_optional(&self.database.reader)
        .await?;
        row.as_ref().map(mailbox_from_row).transpose()
    }

    async fn mailbox_counts(
        &self,
        account: AccountId,
        id: MailboxId,
    ) -> StoreResult<MailboxCounts> {
        // The counts change only with the mailbox's HIGHEST_MODSEQ (every append, expunge,
        // flag change and restore in it raises it): kept per MODSEQ, they are read again only
        // after a change.
        if let Some(modseq) = self.mailbox_modseq(account, id).await?
            && let Some(counts) = self.counts.get(id, modseq)
        {
            return Ok(counts);
        }
        // One statement, so the MODSEQ and the counts come from one snapshot. Each count is
        // answered by an index of the live messages (schema step 3), never the rows; the
        // WHERE terms must match those indexes' for that.
        let row = sqlx::query(
            "SELECT
                (SELECT highest_modseq FROM mailboxes WHERE account_id = ?1 AND mailbox_id = ?2),
                (SELECT COUNT(*) FROM messages
                 WHERE account_id = ?1 AND mailbox_id = ?2 AND expunged_unix IS NULL),
                (SELECT COUNT(*) FROM messages
                 WHERE account_id = ?1 AND mailbox_id = ?2 AND expunged_unix IS NULL
                   AND (system_flags & 1) = 0),
                (SELECT COALESCE(SUM(size_bytes), 0) FROM messages
                 WHERE account_id = ?1 AND mailbox_id = ?2 AND expunged_unix IS NULL)",
        )
        .bind(account)
        .bind(id)
        .fetch_one(&self.database.reader)
        .await?;
        let counts = MailboxCounts {
            messages: to_u64(row.try_get(1)?),
            unseen: to_u64(row.try_get(2)?),
            size_bytes: to_u64(row.try_get(3)?),
        };
        if let Some(modseq) = row.try_get::<Option<ModSeq>, _>(0)? {
            self.counts.put(id, modseq, counts);
        }
        Ok(counts)
    }

    async fn mailbox_create(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> StoreResult<Mailbox> {
        let name = validate_mailbox_name(name)?;
        let mut transaction = self.database.begin_write().await?;
        let count: i64 = sqlx::query(
            "SELECT COUNT(*) FROM mailboxes WHERE account_id = ? AND deleted_unix IS NULL",
        )
        .bind(account)
        .fetch_one(&mut *transaction)
        .await?
        .get(0);
        if count as usize >= MAILBOXES_PER_ACCOUNT_MAX {
            return Err(StoreError::Refused(format!(
                "an account may have at most {MAILBOXES_PER_ACCOUNT_MAX} mailboxes"
            )));
        }
        let modseq = next_modseq(&mut transaction, account).await?;
        let mailbox = create_mailbox(&mut transaction, account, &name, special_use, modseq).await?;
        transaction.commit().await?;
        Ok(mailbox)
    }

    async fn mailbox_rename(
        &self,
        account: AccountId,
        id: MailboxId,
        name: &str,
    ) -> StoreResult<()> {
        let new_name = validate_mailbox_name(name)?;
        let mut transaction = self.database.begin_write().await?;
        let mailbox = live_mailbox(&mut transaction, account, id).await?;
        if mailbox.name == "INBOX" {
            return Err(StoreError::Refused("INBOX cannot be renamed".to_owned()));
        }
        if new_name == "INBOX" {
            return Err(StoreError::AlreadyExists {
                kind: "mailbox",
                name: new_name,
            });
        }
        if new_name.starts_with(&format!("{}/", mailbox.name)) {
            return Err(StoreError::Refused(
                "a mailbox cannot be moved into itself".to_owned(),
            ));
        }
        let modseq = next_modseq(&mut transaction, account).await?;
        // The mailbox and its children, deepest names last (RFC 9051 §6.3.6).
        let rows = sqlx::query(
            "SELECT mailbox_id, name FROM mailboxes
             WHERE account_id = ? AND deleted_unix IS NULL AND (mailbox_id = ? OR name LIKE ? ESCAPE '\\')",
        )
        .bind(account)
        .bind(id)
        .bind(format!("{}/%", like_escape(&mailbox.name)))
        .fetch_all(&mut *transaction)
        .await?;
        for row in rows {
            let child_id: MailboxId = row.get(0);
            let child_name: String = row.get(1);
            let renamed = format!("{new_name}{}", &child_name[mailbox.name.len()..]);
            let result = sqlx::query(
                "UPDATE mailboxes SET name = ?, highest_modseq = ? WHERE mailbox_id = ?",
            )
            .bind(&renamed)
            .bind(modseq)
            .bind(child_id)
            .execute(&mut *transaction)
            .await;
            already_exists_if_unique(result, "mailbox", || renamed)?;
            log_change(
                &mut transaction,
                account,
                modseq,
                ChangeKind::MailboxChanged,
                child_id,
                None,
            )
            .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    async fn mailbox_set_subscribed(
        &self,
        account: AccountId,
        id: MailboxId,
        subscribed: bool,
    ) -> StoreResult<()> {
        let mut transaction = self.database.begin_write().await?;
        live_mailbox(&mut transaction, account, id).await?;
        let modseq = next_modseq(&mut transaction, account).await?;
        sqlx::query("UPDATE mailboxes SET subscribed = ?, highest_modseq = ? WHERE mailbox_id = ?")
            .bind(i64::from(subscribed))
            .bind(modseq)
            .bind(id)
            .execute(&mut *transaction)
            .await?;
        log_change(
            &mut transaction,
            account,
            modseq,
            ChangeKind::MailboxChanged,
            id,
            None,
        )
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn mailbox_delete(&self, account: AccountId, id: MailboxId) -> StoreResult<()> {
        let mut transaction = self.database.begin_write().await?;
        let mailbox = live_mailbox(&mut transaction, account, id).await?;
        if mailbox.name == "INBOX" {
            return Err(StoreError::Refused("INBOX cannot be deleted".to_owned()));
        }
        let row = sqlx::query(
            "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM messages
             WHERE account_id = ? AND mailbox_id = ? AND expunged_unix IS NULL",
        )
        .bind(account)
        .bind(id)
        .fetch_one(&mut *transaction)
        .await?;
        let (messages, bytes): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        let modseq = next_modseq(&mut transaction, account).await?;
        sqlx::query(
            "UPDATE mailboxes SET deleted_unix = ?, highest_modseq = ? WHERE mailbox_id = ?",
        )
        .bind(now_unix())
        .bind(modseq)
        .bind(id)
        .execute(&mut *transaction)
        .await?;
        charge_quota(&mut transaction, account, -bytes, -messages).await?;
        log_change(
            &mut transaction,
            account,
            modseq,
            ChangeKind::MailboxDeleted,
            id,
            None,
        )
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn mailbox_list_deleted(&self, account: AccountId) -> StoreResult<Vec<Mailbox>> {
        let rows = sqlx::query(
            "SELECT * FROM mailboxes WHERE account_id = ? AND deleted_unix IS NOT NULL
             ORDER BY deleted_unix DESC, name",
        )
        .bind(account)
        .fetch_all(&self.database.reader)
        .await?;
        rows.iter().map(mailbox_from_row).collect()
    }

    async fn mailbox_restore(&self, account: AccountId, id: MailboxId) -> StoreResult<Mailbox> {
        let mut transaction = self.database.begin_write().await?;
        let row = sqlx::query(
            "SELECT * FROM mailboxes WHERE account_id = ? AND mailbox_id = ? AND deleted_unix IS NOT NULL",
        )
        .bind(account)
        .bind(id)
        .fetch_optional(&mut *transaction)
        .await?
        .ok_or_else(|| StoreError::NotFound { kind: "deleted mailbox", name: id.to_string() })?;
        let deleted = mailbox_from_row(&row)?;
        let mut name = deleted.name.clone();
        let mut attempt = 1;
        loop {
            let taken = sqlx::query(
                "SELECT 1 FROM mailboxes WHERE account_id = ? AND name = ? AND deleted_unix IS NULL",
            )
            .bind(account)
            .bind(&name)
            .fetch_optional(&mut *transaction)
            .await?
            .is_some();
            if !taken {
                break;
            }
            attempt += 1;
            name = if attempt == 2 {
                format!("{} (restored)", deleted.name)
            } else {
                format!("{} (restored {attempt})", deleted.name)
            };
        }
        let row = sqlx::query(
            "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM messages
             WHERE account_id = ? AND mailbox_id = ? AND expunged_unix IS NULL",
        )
        .bind(account)
        .bind(id)
        .fetch_one(&mut *transaction)
        .await?;
        let (messages, bytes): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        charge_quota(&mut transaction, account, bytes, messages).await?;
        let modseq = next_modseq(&mut transaction, account).await?;
        // A new UIDVALIDITY: clients that saw the mailbox vanish must not trust their cache.
        let uid_validity = next_uid_validity(&mut transaction, account).await?;
        sqlx::query(
            "UPDATE mailboxes SET deleted_unix = NULL, name = ?, uid_validity = ?, highest_modseq = ?
             WHERE mailbox_id = ?",
        )
        .bind(&name)
        .bind(i64::from(uid_validity))
        .bind(modseq)
        .bind(id)
        .execute(&mut *transaction)
        .await?;
        log_change(
            &mut transaction,
            account,
            modseq,
            ChangeKind::MailboxCreated,
            id,
            None,
        )
        .await?;
        let restored = live_mailbox(&mut transaction, account, id).await?;
        transaction.commit().await?;
        Ok(restored)
    }

    async fn messages_append(
        &self,
        account: AccountId,
        messages: &[NewMessage],
    ) -> StoreResult<Vec<Appended>> {
        self.messages_append_for_accounts(&[(account, messages)])
            .await
    }

    async fn messages_append_for_accounts(
        &self,
        batches: &[(AccountId, &[NewMessage])],
    ) -> StoreResult<Vec<Appended>> {
        Ok(self.append_for_accounts(None, batches).await?.appended)
    }

    async fn messages_append_once(
        &self,
        delivery_key: &str,
        batches: &[(AccountId, &[NewMessage])],
    ) -> StoreResult<AppendedOnce> {
        validate_delivery_key(delivery_key)?;
        self.append_for_accounts(Some(delivery_key), batches).await
    }

    async fn delivery_keys_purge(&self, cutoff_unix: i64) -> StoreResult<u64> {
        let mut transaction = self.database.begin_write().await?;
        let result = sqlx::query("DELETE FROM delivery_keys WHERE created_unix < ?")
            .bind(cutoff_unix)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(result.rows_affected())
    }

    async fn message_list(
        &self,
        account: AccountId,
        mailbox: MailboxId,
    ) -> StoreResult<Vec<MessageRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE account_id = ? AND mailbox_id = ? AND expunged_unix IS NULL ORDER BY uid"
        )))
        .bind(account)
        .bind(mailbox)
        .fetch_all(&self.database.reader)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    async fn message_page(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        order: MessageOrder,
        offset: u64,
        limit: u32,
    ) -> StoreResult<Vec<MessageRecord>> {
        let order_by = match order {
            MessageOrder::ArrivalNewestFirst => "uid DESC",
            MessageOrder::ArrivalOldestFirst => "uid ASC",
            MessageOrder::DateNewestFirst => "internal_date_unix DESC, uid DESC",
            MessageOrder::DateOldestFirst => "internal_date_unix ASC, uid ASC",
            MessageOrder::SizeLargestFirst => "size_bytes DESC, uid DESC",
            MessageOrder::SizeSmallestFirst => "size_bytes ASC, uid ASC",
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE account_id = ? AND mailbox_id = ? AND expunged_unix IS NULL
             ORDER BY {order_by} LIMIT ? OFFSET ?"
        )))
        .bind(account)
        .bind(mailbox)
        .bind(i64::from(limit))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.database.reader)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    async fn message_by_uid(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uid: Uid,
    ) -> StoreResult<Option<MessageRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE account_id = ? AND mailbox_id = ? AND uid = ? AND expunged_unix IS NULL"
        )))
        .bind(account)
        .bind(mailbox)
        .bind(uid)
        .fetch_optional(&self.database.reader)
        .await?;
        row.as_ref().map(message_from_row).transpose()
    }

    async fn thread_page(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        offset: u64,
        limit: u32,
    ) -> StoreResult<Vec<ThreadEntry>> {
        threads::page(&self.database, account, mailbox, offset, limit).await
    }

    async fn thread_count(&self, account: AccountId, mailbox: MailboxId) -> StoreResult<u64> {
        let (modseq, count) = match self.mailbox_modseq(account, mailbox).await? {
            Some(modseq) => (Some(modseq), self.thread_counts.get(mailbox, modseq)),
            None => (None, None),
        };
        if let Some(count) = count {
            return Ok(count);
        }
        // Counted after the MODSEQ was read: a change in between makes the entry stale
        // under the old MODSEQ, which no later read asks for.
        let count = threads::count(&self.database, account, mailbox).await?;
        if let Some(modseq) = modseq {
            self.thread_counts.put(mailbox, modseq, count);
        }
        Ok(count)
    }

    async fn thread_messages(
        &self,
        account: AccountId,
        thread: ThreadId,
        limit: u32,
    ) -> StoreResult<Vec<MessageRecord>> {
        threads::messages(&self.database, account, thread, limit).await
    }

    async fn threads_backfill(&self, limit: u32) -> StoreResult<u64> {
        let threaded = threads::backfill(&self.database, limit).await?;
        if threaded > 0 {
            self.thread_counts.clear();
        }
        Ok(threaded)
    }

    async fn message_get(&self, account: AccountId, id: MessageId) -> StoreResult<MessageRecord> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE account_id = ? AND message_id = ?"
        )))
        .bind(account)
        .bind(id)
        .fetch_optional(&self.database.reader)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            kind: "message",
            name: id.to_string(),
        })?;
        message_from_row(&row)
    }

    async fn message_summary(
        &self,
        account: AccountId,
        id: MessageId,
    ) -> StoreResult<Arc<MessageSummary>> {
        if let Some(summary) = self.summaries.get(account, id) {
            return Ok(summary);
        }
        let row =
            sqlx::query("SELECT summary FROM messages WHERE account_id = ? AND message_id = ?")
                .bind(account)
                .bind(id)
                .fetch_optional(&self.database.reader)
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    kind: "message",
                    name: id.to_string(),
                })?;
        let bytes: Vec<u8> = row.try_get(0)?;
        self.decode_and_cache(account, id, &bytes)
    }

    async fn message_summaries(
        &self,
        account: AccountId,
        ids: &[MessageId],
    ) -> StoreResult<Vec<(MessageId, Arc<MessageSummary>)>> {
        let mut found = std::collections::HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match self.summaries.get(account, *id) {
                Some(summary) => {
                    found.insert(*id, summary);
                }
                None => missing.push(*id),
            }
        }
        for chunk in missing.chunks(UIDS_PER_STATEMENT_MAX) {
            let sql = format!(
                "SELECT message_id, summary FROM messages
                 WHERE account_id = ? AND message_id IN ({})",
                placeholders(chunk.len())
            );
            // Only placeholders are formatted in; the ids are bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&self.database.reader).await? {
                let id: MessageId = row.try_get(0)?;
                let bytes: Vec<u8> = row.try_get(1)?;
                found.insert(id, self.decode_and_cache(account, id, &bytes)?);
            }
        }
        Ok(ids
            .iter()
            .filter_map(|id| found.remove(id).map(|summary| (*id, summary)))
            .collect())
    }

    async fn message_count_by_blob(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        blob_id: &BlobId,
    ) -> StoreResult<u64> {
        let count: i64 = sqlx::query(
            "SELECT COUNT(*) FROM messages
             WHERE account_id = ? AND mailbox_id = ? AND blob_id = ? AND expunged_unix IS NULL",
        )
        .bind(account)
        .bind(mailbox)
        .bind(blob_id.as_bytes().as_slice())
        .fetch_one(&self.database.reader)
        .await?
        .get(0);
        Ok(to_u64(count))
    }

    async fn messages_set_flags(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
        change: &FlagChange,
        unchanged_since: Option<ModSeq>,
    ) -> StoreResult<Vec<MessageRecord>> {
        let request = SetFlagsRequest {
            account,
            mailbox,
            uids: uids.to_vec(),
            change: change.clone(),
            unchanged_since,
        };
        match self
            .group_commit
            .write(&self.database, MailWrite::SetFlags(request))
            .await?
        {
            MailWritten::FlagsSet(changed) => Ok(changed),
            MailWritten::Appended(_) => Err(mismatched_write()),
        }
    }

    async fn messages_expunge(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> StoreResult<Vec<Uid>> {
        let mut transaction = self.database.begin_write().await?;
        live_mailbox(&mut transaction, account, mailbox).await?;
        let modseq = next_modseq(&mut transaction, account).await?;
        let now = now_unix();
        let mut expunged = Vec::new();
        let mut bytes: i64 = 0;
        for chunk in uids.chunks(UIDS_PER_STATEMENT_MAX) {
            let sql = format!(
                "UPDATE messages SET expunged_unix = ?, modseq = ?
                 WHERE account_id = ? AND mailbox_id = ? AND expunged_unix IS NULL AND uid IN ({})
                 RETURNING message_id, uid, size_bytes",
                placeholders(chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(now)
                .bind(modseq)
                .bind(account)
                .bind(mailbox);
            for uid in chunk {
                query = query.bind(i64::from(*uid));
            }
            for row in query.fetch_all(&mut *transaction).await? {
                let message_id: MessageId = row.try_get(0)?;
                let uid = u32::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0);
                bytes += row.try_get::<i64, _>(2)?;
                log_change(
                    &mut transaction,
                    account,
                    modseq,
                    ChangeKind::MessageExpunged,
                    mailbox,
                    Some((message_id, uid)),
                )
                .await?;
                expunged.push(uid);
            }
        }
        if expunged.is_empty() {
            // Nothing changed: leave MODSEQ where it was.
            return Ok(expunged);
        }
        touch_mailbox(&mut transaction, mailbox, modseq).await?;
        charge_quota(&mut transaction, account, -bytes, -(expunged.len() as i64)).await?;
        transaction.commit().await?;
        expunged.sort_unstable();
        Ok(expunged)
    }

    async fn message_list_expunged(
        &self,
        account: AccountId,
        mailbox: MailboxId,
    ) -> StoreResult<Vec<MessageRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE account_id = ? AND mailbox_id = ? AND expunged_unix IS NOT NULL
             ORDER BY expunged_unix DESC, uid"
        )))
        .bind(account)
        .bind(mailbox)
        .fetch_all(&self.database.reader)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    async fn messages_restore(
        &self,
        account: AccountId,
        ids: &[MessageId],
    ) -> StoreResult<Vec<Appended>> {
        let mut transaction = self.database.begin_write().await?;
        let modseq = next_modseq(&mut transaction, account).await?;
        let mut restored = Vec::new();
        let mut bytes: i64 = 0;
        for id in ids {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE account_id = ? AND message_id = ? AND expunged_unix IS NOT NULL"
            )))
            .bind(account)
            .bind(id)
            .fetch_optional(&mut *transaction)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "expunged message",
                name: id.to_string(),
            })?;
            let record = message_from_row(&row)?;
            // Its mailbox must be live; restoring a deleted mailbox brings its messages back.
            live_mailbox(&mut transaction, account, record.mailbox_id).await?;
            // A new UID: the old one was announced as expunged and must not come back
            // (RFC 9051 §2.3.1.1).
            let uid = take_uid(&mut transaction, record.mailbox_id, modseq).await?;
            sqlx::query(
                "UPDATE messages SET expunged_unix = NULL, uid = ?, modseq = ? WHERE message_id = ?",
            )
            .bind(i64::from(uid))
            .bind(modseq)
            .bind(id)
            .execute(&mut *transaction)
            .await?;
            log_change(
                &mut transaction,
                account,
                modseq,
                ChangeKind::MessageAdded,
                record.mailbox_id,
                Some((*id, uid)),
            )
            .await?;
            bytes += to_i64(record.size_bytes)?;
            restored.push(Appended {
                message_id: *id,
                mailbox_id: record.mailbox_id,
                uid,
                modseq,
            });
        }
        charge_quota(&mut transaction, account, bytes, restored.len() as i64).await?;
        transaction.commit().await?;
        Ok(restored)
    }

    async fn changes_since(
        &self,
        account: AccountId,
        modseq: ModSeq,
        limit: u32,
    ) -> StoreResult<Vec<Change>> {
        // The MODSEQ of the `limit`th entry bounds the answer, so its entries come whole
        // (see the trait); with fewer entries than that, there is no bound.
        let rows = sqlx::query(
            "SELECT modseq, kind, mailbox_id, message_id, uid FROM changes
             WHERE account_id = ? AND modseq > ? AND modseq <= COALESCE(
                 (SELECT modseq FROM changes WHERE account_id = ? AND modseq > ?
                  ORDER BY modseq, change_id LIMIT 1 OFFSET ?),
                 9223372036854775807)
             ORDER BY modseq, change_id",
        )
        .bind(account)
        .bind(modseq)
        .bind(account)
        .bind(modseq)
        .bind(i64::from(limit.max(1)) - 1)
        .fetch_all(&self.database.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let code: i64 = row.try_get(1)?;
                let message_id: Option<MessageId> = row.try_get(3)?;
                let uid: Option<i64> = row.try_get(4)?;
                Ok(Change {
                    modseq: row.try_get(0)?,
                    kind: ChangeKind::from_code(code)
                        .ok_or_else(|| StoreError::Corrupt(format!("change kind {code}")))?,
                    mailbox_id: row.try_get(2)?,
                    message: message_id
                        .zip(uid)
                        .map(|(id, uid)| (id, u32::try_from(uid).unwrap_or(0))),
                })
            })
            .collect()
    }

    async fn highest_modseq(&self, account: AccountId) -> StoreResult<ModSeq> {
        let row = sqlx::query("SELECT highest_modseq FROM mail_accounts WHERE account_id = ?")
            .bind(account)
            .fetch_optional(&self.database.reader)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "account",
                name: account.to_string(),
            })?;
        Ok(row.try_get(0)?)
    }

    async fn expunged_uids_since(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        modseq: ModSeq,
    ) -> StoreResult<Vec<Uid>> {
        let rows = sqlx::query(
            "SELECT DISTINCT uid FROM changes
             WHERE account_id = ? AND modseq > ? AND mailbox_id = ? AND kind = ? AND uid IS NOT NULL
             ORDER BY uid",
        )
        .bind(account)
        .bind(modseq)
        .bind(mailbox)
        .bind(ChangeKind::MessageExpunged.code())
        .fetch_all(&self.database.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let uid: i64 = row.try_get(0)?;
                u32::try_from(uid)
                    .map_err(|_| StoreError::Corrupt(format!("an expunged UID {uid}")))
            })
            .collect()
    }

    async fn retention_purge(&self, cutoff_unix: i64) -> StoreResult<PurgeReport> {
        let mut transaction = self.database.begin_write().await?;
        let expired_mailboxes = sqlx::query(
            "SELECT mailbox_id FROM mailboxes WHERE deleted_unix IS NOT NULL AND deleted_unix < ?",
        )
        .bind(cutoff_unix)
        .fetch_all(&mut *transaction)
        .await?;
        let mut report = PurgeReport::default();
        for row in &expired_mailboxes {
            let mailbox: MailboxId = row.try_get(0)?;
            let messages = sqlx::query("DELETE FROM messages WHERE mailbox_id = ?")
                .bind(mailbox)
                .execute(&mut *transaction)
                .await?;
            report.messages_purged += messages.rows_affected();
            sqlx::query("DELETE FROM mailboxes WHERE mailbox_id = ?")
                .bind(mailbox)
                .execute(&mut *transaction)
                .await?;
            report.mailboxes_purged += 1;
        }
        let messages = sqlx::query(
            "DELETE FROM messages WHERE expunged_unix IS NOT NULL AND expunged_unix < ?",
        )
        .bind(cutoff_unix)
        .execute(&mut *transaction)
        .await?;
        report.messages_purged += messages.rows_affected();
        if report.messages_purged > 0 {
            threads::forget_empty(&mut transaction).await?;
        }
        transaction.commit().await?;
        Ok(report)
    }

    async fn blob_references(&self) -> StoreResult<HashSet<BlobId>> {
        let rows = sqlx::query("SELECT DISTINCT blob_id FROM messages")
            .fetch_all(&self.database.reader)
            .await?;
        rows.iter()
            .map(|row| {
                let bytes: Vec<u8> = row.try_get(0)?;
                BlobId::from_bytes(&bytes)
                    .ok_or_else(|| StoreError::Corrupt("a blob id is not 32 bytes".to_owned()))
            })
            .collect()
    }
}

/// Appends one account's messages inside `transaction`: UIDs, one MODSEQ, change log, quota.
/// Appends `rows` to `account` inside `transaction`: one MODSEQ for them all, a UID each,
/// the change log, the quota charged and checked.
pub(crate) async fn append_rows(
    transaction: &mut WriteTransaction,
    account: AccountId,
    rows: &[AppendRow],
) -> StoreResult<Vec<Appended>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let modseq = next_modseq(transaction, account).await?;
    let mut checked_mailboxes: HashSet<MailboxId> = HashSet::new();
    let mut total_bytes: i64 = 0;
    let mut appended = Vec::with_capacity(rows.len());
    for row in rows {
        if checked_mailboxes.insert(row.mailbox_id) {
            live_mailbox(transaction, account, row.mailbox_id).await?;
        }
        let uid = take_uid(transaction, row.mailbox_id, modseq).await?;
        total_bytes += row.size_bytes;
        let result = sqlx::query(
                "INSERT INTO messages (account_id, mailbox_id, uid, blob_id, size_bytes, internal_date_unix,
                                       system_flags, keywords, modseq, summary)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(account)
            .bind(row.mailbox_id)
            .bind(i64::from(uid))
            .bind(row.blob_id.as_bytes().as_slice())
            .bind(row.size_bytes)
            .bind(row.internal_date_unix)
            .bind(i64::from(row.flags.system.0))
            .bind(row.flags.keywords_text())
            .bind(modseq)
            .bind(row.summary.as_slice())
            .execute(&mut **transaction)
            .await?;
        let message_id = result.last_insert_rowid();
        threads::assign(transaction, account, message_id, &row.thread_keys).await?;
        log_change(
            transaction,
            account,
            modseq,
            ChangeKind::MessageAdded,
            row.mailbox_id,
            Some((message_id, uid)),
        )
        .await?;
        appended.push(Appended {
            message_id,
            mailbox_id: row.mailbox_id,
            uid,
            modseq,
        });
    }
    charge_quota(transaction, account, total_bytes, rows.len() as i64).await?;
    Ok(appended)
}

async fn create_mailbox(
    transaction: &mut WriteTransaction,
    account: AccountId,
    name: &str,
    special_use: Option<SpecialUse>,
    modseq: ModSeq,
) -> StoreResult<Mailbox> {
    let uid_validity = next_uid_validity(transaction, account).await?;
    let result = sqlx::query(
        "INSERT INTO mailboxes (account_id, name, special_use, uid_validity, uid_next, highest_modseq, subscribed)
         VALUES (?, ?, ?, ?, 1, ?, 1)",
    )
    .bind(account)
    .bind(name)
    .bind(special_use.map(SpecialUse::as_str))
    .bind(i64::from(uid_validity))
    .bind(modseq)
    .execute(&mut **transaction)
    .await;
    let id = already_exists_if_unique(result, "mailbox", || name.to_owned())?.last_insert_rowid();
    log_change(
        transaction,
        account,
        modseq,
        ChangeKind::MailboxCreated,
        id,
        None,
    )
    .await?;
    Ok(Mailbox {
        id,
        account_id: account,
        name: name.to_owned(),
        special_use,
        uid_validity,
        uid_next: 1,
        highest_modseq: modseq,
        subscribed: true,
        deleted_unix: None,
    })
}

fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
