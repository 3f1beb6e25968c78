//! Group commit: appends that wait for the single SQLite writer share one transaction.
//!
//! Every delivery must be durable before it is acknowledged, so each commit costs a WAL
//! fsync, and the file has one writer: under load, deliveries queue behind each other's
//! fsyncs. Here a delivery puts its rows in a queue and waits; whichever waiting delivery
//! takes the commit lock first (the leader) writes everything queued so far in one
//! `BEGIN IMMEDIATE` transaction and one commit, then wakes each delivery with its own
//! result. Nothing is acknowledged before the commit that holds it returned.
//!
//! Each request runs inside its own savepoint, so one that fails (quota, a deleted mailbox)
//! is rolled back alone and the others still commit; when the transaction itself cannot
//! begin or commit, every request of the batch gets the error, and none is acknowledged.
//!
//! The batch is written by a spawned task, so a caller that gives up waiting (its future
//! dropped) never leaves a transaction half-done for the others.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::Database;
use super::mail::{AppendRow, append_rows, record_delivery_key};
use crate::directory::AccountId;
use crate::error::{StoreError, StoreResult};
use crate::mail::AppendedOnce;

/// The most requests one transaction takes; the rest wait for the next.
const REQUESTS_PER_COMMIT_MAX: usize = 128;

/// One caller's append: all of it or none of it.
#[derive(Debug)]
pub(crate) struct AppendRequest {
    pub delivery_key: Option<String>,
    pub batches: Vec<(AccountId, Vec<AppendRow>)>,
}

struct Pending {
    request: AppendRequest,
    reply: oneshot::Sender<StoreResult<AppendedOnce>>,
}

/// The queue of appends waiting for the writer, and the lock its leader holds.
#[derive(Clone, Default)]
pub(crate) struct GroupCommit {
    queue: Arc<Mutex<Vec<Pending>>>,
    leader: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("GroupCommit")
            .finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Appends `request`, in a transaction it may share with others; returns once that
    /// transaction committed (or failed).
    pub(crate) async fn append(
        &self,
        database: &Database,
        request: AppendRequest,
    ) -> StoreResult<AppendedOnce> {
        let (reply, mut answer) = oneshot::channel();
        self.lock_queue().push(Pending { request, reply });
        loop {
            tokio::select! {
                biased;
                result = &mut answer => return result.unwrap_or_else(|_| Err(abandoned())),
                _leader = self.leader.lock() => {
                    // A leader before us may have written our request while we waited.
                    if let Ok(result) = answer.try_recv() {
                        return result;
                    }
                    let batch = self.take_batch();
                    if batch.is_empty() {
                        continue;
                    }
                    let database = database.clone();
                    // The task finishes even if this caller is dropped; the lock is held
                    // until it has, so batches never overlap.
                    let _ = tokio::spawn(commit_batch(database, batch)).await;
                }
            }
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        // A panic while holding this lock cannot leave the queue inconsistent (push/drain).
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take_batch(&self) -> Vec<Pending> {
        let mut queue = self.lock_queue();
        let count = queue.len().min(REQUESTS_PER_COMMIT_MAX);
        queue.drain(..count).collect()
    }
}

fn abandoned() -> StoreError {
    StoreError::Unavailable("the write of this delivery was abandoned".to_owned())
}

/// Writes every request of `batch` in one transaction, each in its own savepoint, and
/// answers each after the commit.
async fn commit_batch(database: Database, batch: Vec<Pending>) {
    tracing::debug!(requests = batch.len(), "group commit");
    let mut transaction = match database.begin_write().await {
        Ok(transaction) => transaction,
        Err(error) => return fail_all(batch, &error),
    };
    let mut results: Vec<StoreResult<AppendedOnce>> = Vec::with_capacity(batch.len());
    for pending in &batch {
        if let Err(error) = sqlx::query("SAVEPOINT append_request")
            .execute(&mut *transaction)
            .await
        {
            return fail_all(batch, &error);
        }
        let result = append_request(&mut transaction, &pending.request).await;
        let end = if result.is_ok() {
            "RELEASE append_request"
        } else {
            // Undo this request alone, then leave the savepoint.
            "ROLLBACK TO append_request; RELEASE append_request"
        };
        // When the savepoint cannot be closed, what the transaction holds is unknown:
        // dropping it rolls everything back, and nobody is acknowledged.
        if let Err(error) = sqlx::raw_sql(end).execute(&mut *transaction).await {
            return fail_all(batch, &error);
        }
        results.push(result);
    }
    if let Err(error) = transaction.commit().await {
        return fail_all(batch, &error);
    }
    for (pending, result) in batch.into_iter().zip(results) {
        let _ = pending.reply.send(result);
    }
}

/// Answers every request of a batch that did not commit.
fn fail_all(batch: Vec<Pending>, error: &dyn std::fmt::Display) {
    let reason = error.to_string();
    for pending in batch {
        let _ = pending
            .reply
            .send(Err(StoreError::Unavailable(reason.clone())));
    }
}

async fn append_request(
    transaction: &mut super::mail::WriteTransaction,
    request: &AppendRequest,
) -> StoreResult<AppendedOnce> {
    let mut outcome = AppendedOnce::default();
    for (account, rows) in &request.batches {
        if let Some(key) = &request.delivery_key
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
