//! Conversations on SQLite: a message's thread given at append (`assign`), the threads of
//! older files given afterwards (`backfill`), and the reads the webmail and JMAP make (a
//! mailbox's threads a page at a time, one thread's messages). The rules of which thread a
//! message joins are `crate::threads`'.
//!
//! A message whose `thread_id` is still NULL (written before schema step 4, not yet
//! backfilled) is read as a thread of its own: `COALESCE(thread_id, message_id)`.

use sqlx::Row;

use super::Database;
use super::mail::{
    MESSAGE_COLUMNS, WriteTransaction, decode_summary, message_from_row, placeholders,
};
use crate::directory::AccountId;
use crate::error::StoreResult;
use crate::mail::{MailboxId, MessageId, MessageRecord, SystemFlags, ThreadEntry};
use crate::threads::{ThreadId, thread_for, thread_keys};

/// Runs `statement`, whose parameters are the account, the mailbox and then one per
/// element of `values` (an `IN` list), on the reader.
async fn in_mailbox_for_each(
    database: &Database,
    statement: &str,
    account: AccountId,
    mailbox: MailboxId,
    values: &[i64],
) -> StoreResult<Vec<sqlx::sqlite::SqliteRow>> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
        .bind(account)
        .bind(mailbox);
    for value in values {
        query = query.bind(value);
    }
    Ok(query.fetch_all(&database.reader).await?)
}

/// Gives the message `message_id` of `account`, just inserted, its thread: the one its
/// keys lead to, or a new one named by its own id; then remembers its keys.
pub(crate) async fn assign(
    transaction: &mut WriteTransaction,
    account: AccountId,
    message_id: MessageId,
    keys: &[i64],
) -> StoreResult<ThreadId> {
    let mut known: Vec<(i64, ThreadId)> = Vec::new();
    if !keys.is_empty() {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT thread_key, thread_id FROM thread_keys
             WHERE account_id = ? AND thread_key IN ({})",
            placeholders(keys.len())
        )));
        let mut query = rows.bind(account);
        for key in keys {
            query = query.bind(key);
        }
        for row in query.fetch_all(&mut **transaction).await? {
            known.push((row.try_get(0)?, row.try_get(1)?));
        }
    }
    let thread = thread_for(keys, &known).unwrap_or(message_id);
    sqlx::query("UPDATE messages SET thread_id = ? WHERE message_id = ?")
        .bind(thread)
        .bind(message_id)
        .execute(&mut **transaction)
        .await?;
    // A key keeps the thread it had first (JMAP's thread ids never change).
    for key in keys {
        if known.iter().any(|(known_key, _)| known_key == key) {
            continue;
        }
        sqlx::query(
            "INSERT INTO thread_keys (account_id, thread_key, thread_id) VALUES (?, ?, ?)
             ON CONFLICT (account_id, thread_key) DO NOTHING",
        )
        .bind(account)
        .bind(key)
        .bind(thread)
        .execute(&mut **transaction)
        .await?;
    }
    Ok(thread)
}

/// Threads up to `limit` messages that have none yet (written before schema step 4),
/// oldest first, so that a thread is named by its first message as at append. Returns how
/// many it threaded: 0 when none is left.
pub(crate) async fn backfill(database: &Database, limit: u32) -> StoreResult<u64> {
    let mut transaction = database.begin_write().await?;
    let rows = sqlx::query(
        "SELECT message_id, account_id, summary FROM messages
         WHERE thread_id IS NULL ORDER BY message_id LIMIT ?",
    )
    .bind(i64::from(limit))
    .fetch_all(&mut *transaction)
    .await?;
    for row in &rows {
        let id: MessageId = row.try_get(0)?;
        let account: AccountId = row.try_get(1)?;
        let summary: Vec<u8> = row.try_get(2)?;
        let (summary, _) = decode_summary(&summary)?;
        assign(&mut transaction, account, id, &thread_keys(&summary)).await?;
    }
    transaction.commit().await?;
    Ok(rows.len() as u64)
}

/// Forgets the keys of threads that have no message left (all purged past retention), so
/// that the map does not outgrow the mail it describes.
pub(crate) async fn forget_empty(transaction: &mut WriteTransaction) -> StoreResult<u64> {
    let result = sqlx::query(
        "DELETE FROM thread_keys WHERE NOT EXISTS (
             SELECT 1 FROM messages
             WHERE messages.account_id = thread_keys.account_id
               AND messages.thread_id = thread_keys.thread_id)",
    )
    .execute(&mut **transaction)
    .await?;
    Ok(result.rows_affected())
}

/// One page of the mailbox's threads, the one with the newest arrival first; each with its
/// newest message in the mailbox and its counts there.
///
/// The page is cut from the threads' newest UIDs: one pass over `messages_live_thread`,
/// which is in thread order, so grouping needs no sort, then a sort of the threads alone
/// (a few thousand for a 50,000-message folder) by their newest UID. Every page costs
/// the same; walking the messages newest first and skipping those a later message of
/// their thread follows would make the first page cheaper and the last one cost a seek per
/// message of the folder. Messages without a thread yet (NULL: not backfilled) are each a
/// thread of their own. Then the shown threads' counts come from the same index.
pub(crate) async fn page(
    database: &Database,
    account: AccountId,
    mailbox: MailboxId,
    offset: u64,
    limit: u32,
) -> StoreResult<Vec<ThreadEntry>> {
    // Two statements, each with one plan: the page's UIDs, then their messages. (As one
    // join, SQLite may run the grouping again for every message of the folder.)
    let uids: Vec<i64> = sqlx::query_scalar(
        "SELECT MAX(uid) AS newest_uid FROM messages INDEXED BY messages_live_thread
         WHERE account_id = ?1 AND mailbox_id = ?2 AND expunged_unix IS NULL
           AND thread_id IS NOT NULL
         GROUP BY thread_id
         UNION ALL
         SELECT uid FROM messages INDEXED BY messages_live_thread
         WHERE account_id = ?1 AND mailbox_id = ?2 AND expunged_unix IS NULL
           AND thread_id IS NULL
         ORDER BY newest_uid DESC LIMIT ?3 OFFSET ?4",
    )
    .bind(account)
    .bind(mailbox)
    .bind(i64::from(limit))
    .bind(i64::try_from(offset).unwrap_or(i64::MAX))
    .fetch_all(&database.reader)
    .await?;
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = in_mailbox_for_each(
        database,
        &format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE account_id = ? AND mailbox_id = ? AND uid IN ({})
             ORDER BY uid DESC",
            placeholders(uids.len())
        ),
        account,
        mailbox,
        &uids,
    )
    .await?;
    let newest: Vec<MessageRecord> = rows
        .iter()
        .map(message_from_row)
        .collect::<StoreResult<_>>()?;
    let threads: Vec<ThreadId> = newest.iter().map(|record| record.thread_id).collect();
    let mut counts: std::collections::HashMap<ThreadId, (u32, u32)> =
        std::collections::HashMap::new();
    if !threads.is_empty() {
        let rows = in_mailbox_for_each(
            database,
            &format!(
                "SELECT thread_id, COUNT(*), SUM((system_flags & 1) = 0)
                 FROM messages INDEXED BY messages_live_thread
                 WHERE account_id = ? AND mailbox_id = ? AND expunged_unix IS NULL
                   AND thread_id IN ({})
                 GROUP BY thread_id",
                placeholders(threads.len())
            ),
            account,
            mailbox,
            &threads,
        )
        .await?;
        for row in rows {
            let count = |index: usize| -> StoreResult<u32> {
                Ok(u32::try_from(row.try_get::<i64, _>(index)?).unwrap_or(u32::MAX))
            };
            counts.insert(row.try_get(0)?, (count(1)?, count(2)?));
        }
    }
    Ok(newest
        .into_iter()
        .map(|record| {
            // A thread the counts missed is a message without a thread yet: alone.
            let unseen = u32::from(!record.flags.system.contains(SystemFlags::SEEN));
            let (messages, unseen) = counts
                .get(&record.thread_id)
                .copied()
                .unwrap_or((1, unseen));
            ThreadEntry {
                thread_id: record.thread_id,
                messages,
                unseen,
                newest: record,
            }
        })
        .collect())
}

/// How many threads the mailbox's live messages make: its distinct threads, read from the
/// order of `messages_live_thread`, and its messages without one yet.
pub(crate) async fn count(
    database: &Database,
    account: AccountId,
    mailbox: MailboxId,
) -> StoreResult<u64> {
    let count: i64 = sqlx::query_scalar(
        "SELECT
            (SELECT COUNT(*) FROM (
                SELECT 1 FROM messages INDEXED BY messages_live_thread
                WHERE account_id = ?1 AND mailbox_id = ?2 AND expunged_unix IS NULL
                  AND thread_id IS NOT NULL
                GROUP BY thread_id))
          + (SELECT COUNT(*) FROM messages INDEXED BY messages_live_thread
             WHERE account_id = ?1 AND mailbox_id = ?2 AND expunged_unix IS NULL
               AND thread_id IS NULL)",
    )
    .bind(account)
    .bind(mailbox)
    .fetch_one(&database.reader)
    .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// The thread's live messages in every mailbox of the account, oldest first (by internal
/// date, then id), at most `limit`.
pub(crate) async fn messages(
    database: &Database,
    account: AccountId,
    thread: ThreadId,
    limit: u32,
) -> StoreResult<Vec<MessageRecord>> {
    // Two branches, each served by one index (the thread's, and the row id for a message
    // not threaded yet), rather than one OR a planner might answer by scanning the account.
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages INDEXED BY messages_thread
         WHERE account_id = ?1 AND thread_id = ?2 AND expunged_unix IS NULL
         UNION ALL
         SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE message_id = ?2 AND account_id = ?1 AND thread_id IS NULL
           AND expunged_unix IS NULL
         ORDER BY internal_date_unix, message_id LIMIT ?3"
    )))
    .bind(account)
    .bind(thread)
    .bind(i64::from(limit))
    .fetch_all(&database.reader)
    .await?;
    rows.iter().map(message_from_row).collect()
}
