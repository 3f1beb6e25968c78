//! The outbound queue on SQLite (`queue.sqlite`).
//!
//! A file of its own, so that queue writes (claims, attempts) never wait behind deliveries
//! into mailboxes, which have their own writer. Every change is one `BEGIN IMMEDIATE`
//! transaction; `synchronous=FULL` makes `enqueue` durable when it returns. The writes that
//! come many at a time under load (queued messages from concurrent submissions, the
//! runner's records of deliveries and attempts) share transactions through group commit, so
//! the runner is not starved of the writer while sessions queue mail.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::group_commit::{GroupCommit, WriteRequest};
use super::mail::WriteTransaction;
use super::{Database, schema, to_i64, to_u64};
use crate::blob::BlobId;
use crate::error::{StoreError, StoreResult};
use crate::queue::{
    AttemptRecord, DsnReturn, NewQueued, QueueId, QueueStats, QueueStore, QueuedMessage,
    QueuedRecipient, RecipientOutcome, RecipientState, STORED_POLICY_BYTES_MAX, StoredPolicy,
    bounded_reply, notify_bits, notify_from_bits, state_code, state_from_code, validate_new_queued,
};

#[derive(Debug, Clone)]
pub struct SqliteQueueStore {
    database: Database,
    group_commit: GroupCommit<QueueWrite>,
}

impl SqliteQueueStore {
    pub async fn open(path: &Path, busy_timeout: Duration) -> StoreResult<SqliteQueueStore> {
        Ok(SqliteQueueStore {
            database: Database::open(path, &schema::QUEUE, busy_timeout).await?,
            group_commit: GroupCommit::default(),
        })
    }

    async fn write(&self, request: QueueWrite) -> StoreResult<Option<QueueId>> {
        self.group_commit.write(&self.database, request).await
    }

    pub async fn close(&self) {
        self.database.close().await;
    }

    /// The messages of `rows` with their recipients, read in one statement per
    /// `MESSAGES_PER_STATEMENT_MAX` messages.
    async fn with_recipients(&self, rows: Vec<SqliteRow>) -> StoreResult<Vec<QueuedMessage>> {
        let mut messages = rows
            .iter()
            .map(message_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let mut index_of = std::collections::HashMap::with_capacity(messages.len());
        for (index, message) in messages.iter().enumerate() {
            index_of.insert(message.id, index);
        }
        let ids: Vec<QueueId> = messages.iter().map(|message| message.id).collect();
        for chunk in ids.chunks(MESSAGES_PER_STATEMENT_MAX) {
            let placeholders = vec!["?"; chunk.len()].join(",");
            let sql = format!(
                "SELECT * FROM queue_recipients WHERE message_id IN ({placeholders})
                 ORDER BY message_id, position"
            );
            // Only placeholders are formatted in; the ids are bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id);
            }
            for row in query.fetch_all(&self.database.reader).await? {
                let message_id: QueueId = row.try_get("message_id")?;
                if let Some(&index) = index_of.get(&message_id) {
                    messages[index].recipients.push(recipient_from_row(&row)?);
                }
            }
        }
        Ok(messages)
    }
}

/// The most message ids one statement names.
const MESSAGES_PER_STATEMENT_MAX: usize = 500;

fn not_found(id: QueueId) -> StoreError {
    StoreError::NotFound {
        kind: "queued message",
        name: id.to_string(),
    }
}

fn dsn_return_code(value: Option<DsnReturn>) -> i64 {
    match value {
        None => 0,
        Some(DsnReturn::Full) => 1,
        Some(DsnReturn::Headers) => 2,
    }
}

fn dsn_return_from_code(code: i64) -> Option<DsnReturn> {
    match code {
        1 => Some(DsnReturn::Full),
        2 => Some(DsnReturn::Headers),
        _ => None,
    }
}

fn message_from_row(row: &SqliteRow) -> StoreResult<QueuedMessage> {
    let blob: Vec<u8> = row.try_get("blob_id")?;
    let id: QueueId = row.try_get("id")?;
    Ok(QueuedMessage {
        id,
        blob_id: BlobId::from_bytes(&blob)
            .ok_or_else(|| StoreError::Corrupt(format!("queued message {id} has a bad blob id")))?,
        size_bytes: to_u64(row.try_get("size_bytes")?),
        return_path: row.try_get("return_path")?,
        sender_account: row.try_get("sender_account_id")?,
        envelope_id: row.try_get("envelope_id")?,
        dsn_return: dsn_return_from_code(row.try_get("dsn_return")?),
        requiretls: row.try_get("requiretls")?,
        smtputf8: row.try_get("smtputf8")?,
        body_8bit: row.try_get("body_8bit")?,
        created_unix: row.try_get("created_unix")?,
        expires_unix: row.try_get("expires_unix")?,
        next_attempt_unix: row.try_get("next_attempt_unix")?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
        held: row.try_get("held")?,
        delay_notified: row.try_get("delay_notified")?,
        recipients: Vec::new(),
    })
}

fn recipient_from_row(row: &SqliteRow) -> StoreResult<QueuedRecipient> {
    Ok(QueuedRecipient {
        position: u32::try_from(row.try_get::<i64, _>("position")?).unwrap_or(u32::MAX),
        address: row.try_get("address")?,
        domain: row.try_get("domain")?,
        original_recipient: row.try_get("original_recipient")?,
        notify: notify_from_bits(row.try_get("notify")?),
        state: state_from_code(row.try_get("state")?),
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
        last_reply: row.try_get("last_reply")?,
        remote_host: row.try_get("remote_host")?,
        last_attempt_unix: row.try_get("last_attempt_unix")?,
    })
}

/// Writes one recipient's outcome, if it is still pending (a final state never changes).
async fn record_outcome(
    transaction: &mut WriteTransaction,
    id: QueueId,
    attempted_unix: i64,
    outcome: &RecipientOutcome,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE queue_recipients
         SET state = ?, attempts = attempts + 1, last_reply = ?, remote_host = ?,
             last_attempt_unix = ?
         WHERE message_id = ? AND position = ? AND state = 0",
    )
    .bind(state_code(outcome.state))
    .bind(bounded_reply(&outcome.reply))
    .bind(&outcome.remote_host)
    .bind(attempted_unix)
    .bind(id)
    .bind(i64::from(outcome.position))
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

#[async_trait]
impl QueueStore for SqliteQueueStore {
    async fn enqueue(&self, message: &NewQueued) -> StoreResult<QueueId> {
        validate_new_queued(message)?;
        self.write(QueueWrite::Enqueue(message.clone()))
            .await?
            .ok_or_else(|| StoreError::Corrupt("a queued message got no id".to_owned()))
    }

    async fn claim_due(
        &self,
        now_unix: i64,
        owner: &str,
        lease_seconds: i64,
        limit: usize,
    ) -> StoreResult<Vec<QueuedMessage>> {
        let mut transaction = self.database.begin_write().await?;
        let rows = sqlx::query(
            "UPDATE queue_messages SET lease_owner = ?, lease_until_unix = ?
             WHERE id IN (SELECT id FROM queue_messages
                          WHERE held = 0 AND next_attempt_unix <= ?
                            AND (lease_until_unix <= ? OR lease_owner = ?)
                          ORDER BY next_attempt_unix, id LIMIT ?)
             RETURNING *",
        )
        .bind(owner)
        .bind(now_unix.saturating_add(lease_seconds))
        .bind(now_unix)
        .bind(now_unix)
        .bind(owner)
        .bind(to_i64(limit as u64)?)
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        let mut messages = self.with_recipients(rows).await?;
        messages.sort_by_key(|message| (message.next_attempt_unix, message.id));
        Ok(messages)
    }

    async fn record_attempt(
        &self,
        id: QueueId,
        owner: &str,
        attempt: &AttemptRecord,
    ) -> StoreResult<()> {
        self.write(QueueWrite::Attempt {
            id,
            owner: owner.to_owned(),
            attempt: attempt.clone(),
        })
        .await
        .map(drop)
    }

    async fn record_delivered(
        &self,
        id: QueueId,
        owner: &str,
        attempted_unix: i64,
        outcomes: &[RecipientOutcome],
    ) -> StoreResult<()> {
        self.write(QueueWrite::Delivered {
            id,
            owner: owner.to_owned(),
            attempted_unix,
            outcomes: outcomes
                .iter()
                .filter(|outcome| outcome.state == RecipientState::Delivered)
                .cloned()
                .collect(),
        })
        .await
        .map(drop)
    }

    async fn next_due_unix(&self) -> StoreResult<Option<i64>> {
        Ok(sqlx::query(
            "SELECT MIN(MAX(next_attempt_unix, lease_until_unix)) FROM queue_messages
             WHERE held = 0",
        )
        .fetch_one(&self.database.reader)
        .await?
        .try_get(0)?)
    }

    async fn list(&self) -> StoreResult<Vec<QueuedMessage>> {
        let rows = sqlx::query("SELECT * FROM queue_messages ORDER BY id")
            .fetch_all(&self.database.reader)
            .await?;
        self.with_recipients(rows).await
    }

    async fn get(&self, id: QueueId) -> StoreResult<QueuedMessage> {
        let row = sqlx::query("SELECT * FROM queue_messages WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.database.reader)
            .await?
            .ok_or_else(|| not_found(id))?;
        Ok(self
            .with_recipients(vec![row])
            .await?
            .pop()
            .ok_or_else(|| not_found(id))?)
    }

    async fn set_held(&self, id: QueueId, held: bool) -> StoreResult<()> {
        self.update_one("UPDATE queue_messages SET held = ? WHERE id = ?", id, held)
            .await
    }

    async fn retry_now(&self, id: QueueId, now_unix: i64) -> StoreResult<()> {
        self.update_one(
            "UPDATE queue_messages SET next_attempt_unix = ?, lease_owner = NULL,
                 lease_until_unix = 0 WHERE id = ?",
            id,
            now_unix,
        )
        .await
    }

    async fn remove(&self, id: QueueId) -> StoreResult<()> {
        let mut transaction = self.database.begin_write().await?;
        if !delete_rows(&mut transaction, id).await? {
            return Err(not_found(id));
        }
        transaction.commit().await?;
        Ok(())
    }

    async fn stats(&self) -> StoreResult<QueueStats> {
        let row = sqlx::query("SELECT COUNT(*), MIN(created_unix) FROM queue_messages")
            .fetch_one(&self.database.reader)
            .await?;
        Ok(QueueStats {
            messages: to_u64(row.try_get(0)?),
            oldest_created_unix: row.try_get(1)?,
        })
    }

    async fn blob_references(&self) -> StoreResult<HashSet<BlobId>> {
        let rows = sqlx::query("SELECT DISTINCT blob_id FROM queue_messages")
            .fetch_all(&self.database.reader)
            .await?;
        rows.iter()
            .map(|row| {
                let bytes: Vec<u8> = row.try_get(0)?;
                BlobId::from_bytes(&bytes)
                    .ok_or_else(|| StoreError::Corrupt("a queued blob id is malformed".to_owned()))
            })
            .collect()
    }

    async fn mta_sts_policy(
        &self,
        domain: &str,
        now_unix: i64,
    ) -> StoreResult<Option<StoredPolicy>> {
        let row =
            sqlx::query("SELECT * FROM mta_sts_policies WHERE domain = ? AND expires_unix > ?")
                .bind(domain)
                .bind(now_unix)
                .fetch_optional(&self.database.reader)
                .await?;
        row.map(|row| {
            Ok(StoredPolicy {
                domain: row.try_get("domain")?,
                policy_id: row.try_get("policy_id")?,
                text: row.try_get("policy_text")?,
                fetched_unix: row.try_get("fetched_unix")?,
                expires_unix: row.try_get("expires_unix")?,
            })
        })
        .transpose()
    }

    async fn mta_sts_policy_put(&self, policy: &StoredPolicy) -> StoreResult<()> {
        if policy.text.len() > STORED_POLICY_BYTES_MAX || policy.domain.len() > 255 {
            return Err(StoreError::Refused(format!(
                "the MTA-STS policy of {} is too large to keep",
                policy.domain
            )));
        }
        let mut transaction = self.database.begin_write().await?;
        sqlx::query("DELETE FROM mta_sts_policies WHERE expires_unix <= ?")
            .bind(policy.fetched_unix)
            .execute(&mut *transaction)
            .await?;
        sqlx::query(
            "INSERT OR REPLACE INTO mta_sts_policies
                 (domain, policy_id, policy_text, fetched_unix, expires_unix)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&policy.domain)
        .bind(&policy.policy_id)
        .bind(&policy.text)
        .bind(policy.fetched_unix)
        .bind(policy.expires_unix)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(())
    }
}

impl SqliteQueueStore {
    /// Runs `sql` (binding `value` then `id`) on one message; `NotFound` when it is gone.
    async fn update_one<T>(&self, sql: &'static str, id: QueueId, value: T) -> StoreResult<()>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + Send + 'static,
    {
        let mut transaction = self.database.begin_write().await?;
        let updated = sqlx::query(sql)
            .bind(value)
            .bind(id)
            .execute(&mut *transaction)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(not_found(id));
        }
        transaction.commit().await?;
        Ok(())
    }
}

/// The queue writes that share transactions (group commit).
#[derive(Debug)]
enum QueueWrite {
    Enqueue(NewQueued),
    /// Deliveries recorded during an attempt (only `Delivered` outcomes).
    Delivered {
        id: QueueId,
        owner: String,
        attempted_unix: i64,
        outcomes: Vec<RecipientOutcome>,
    },
    Attempt {
        id: QueueId,
        owner: String,
        attempt: AttemptRecord,
    },
}

impl WriteRequest for QueueWrite {
    /// The new message's id for `Enqueue`.
    type Output = Option<QueueId>;

    async fn apply(&self, transaction: &mut WriteTransaction) -> StoreResult<Option<QueueId>> {
        match self {
            QueueWrite::Enqueue(message) => enqueue_rows(transaction, message).await.map(Some),
            QueueWrite::Delivered {
                id,
                owner,
                attempted_unix,
                outcomes,
            } => {
                let leased =
                    sqlx::query("SELECT 1 FROM queue_messages WHERE id = ? AND lease_owner = ?")
                        .bind(id)
                        .bind(owner)
                        .fetch_optional(&mut **transaction)
                        .await?;
                if leased.is_none() {
                    return Err(not_found(*id));
                }
                for outcome in outcomes {
                    record_outcome(transaction, *id, *attempted_unix, outcome).await?;
                }
                Ok(None)
            }
            QueueWrite::Attempt { id, owner, attempt } => {
                attempt_rows(transaction, *id, owner, attempt).await?;
                Ok(None)
            }
        }
    }
}

async fn enqueue_rows(
    transaction: &mut WriteTransaction,
    message: &NewQueued,
) -> StoreResult<QueueId> {
    let id = sqlx::query(
        "INSERT INTO queue_messages (blob_id, size_bytes, return_path, sender_account_id,
             envelope_id, dsn_return, requiretls, smtputf8, body_8bit, created_unix,
             expires_unix, next_attempt_unix)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(message.blob_id.as_bytes().as_slice())
    .bind(to_i64(message.size_bytes)?)
    .bind(&message.return_path)
    .bind(message.sender_account)
    .bind(&message.envelope_id)
    .bind(dsn_return_code(message.dsn_return))
    .bind(message.requiretls)
    .bind(message.smtputf8)
    .bind(message.body_8bit)
    .bind(message.created_unix)
    .bind(message.expires_unix)
    .bind(message.created_unix)
    .execute(&mut **transaction)
    .await?
    .last_insert_rowid();
    for (position, recipient) in message.recipients.iter().enumerate() {
        sqlx::query(
            "INSERT INTO queue_recipients (message_id, position, address, domain,
                 original_recipient, notify)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(position as i64)
        .bind(&recipient.address)
        .bind(recipient.domain.to_ascii_lowercase())
        .bind(&recipient.original_recipient)
        .bind(notify_bits(recipient.notify))
        .execute(&mut **transaction)
        .await?;
    }
    Ok(id)
}

/// Records an attempt and releases the lease; removes the message when no recipient is
/// left pending (its reports were stored before the attempt was recorded).
async fn attempt_rows(
    transaction: &mut WriteTransaction,
    id: QueueId,
    owner: &str,
    attempt: &AttemptRecord,
) -> StoreResult<()> {
    let updated = sqlx::query(
        "UPDATE queue_messages
         SET attempts = attempts + 1, next_attempt_unix = ?, lease_owner = NULL,
             lease_until_unix = 0, delay_notified = delay_notified OR ?
         WHERE id = ? AND lease_owner = ?",
    )
    .bind(attempt.next_attempt_unix)
    .bind(attempt.delay_notified)
    .bind(id)
    .bind(owner)
    .execute(&mut **transaction)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(not_found(id));
    }
    for outcome in &attempt.outcomes {
        record_outcome(transaction, id, attempt.attempted_unix, outcome).await?;
    }
    let pending =
        sqlx::query("SELECT 1 FROM queue_recipients WHERE message_id = ? AND state = 0 LIMIT 1")
            .bind(id)
            .fetch_optional(&mut **transaction)
            .await?;
    if pending.is_none() {
        delete_rows(transaction, id).await?;
    }
    Ok(())
}

/// Deletes a message and its recipients; false when it was not there.
async fn delete_rows(transaction: &mut WriteTransaction, id: QueueId) -> StoreResult<bool> {
    sqlx::query("DELETE FROM queue_recipients WHERE message_id = ?")
        .bind(id)
        .execute(&mut **transaction)
        .await?;
    let deleted = sqlx::query("DELETE FROM queue_messages WHERE id = ?")
        .bind(id)
        .execute(&mut **transaction)
        .await?;
    Ok(deleted.rows_affected() > 0)
}
