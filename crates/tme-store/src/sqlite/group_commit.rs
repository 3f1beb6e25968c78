//! Group commit: writes that wait for a file's single SQLite writer share one transaction.
//!
//! Every acknowledged write (a delivery, a queued message, a queue attempt) must be durable
//! first, so each commit costs a WAL fsync, and the file has one writer: under load, writes
//! queue behind each other's fsyncs. Here a write puts its request in a queue and waits;
//! whichever waiting caller takes the commit lock first (the leader) writes everything
//! queued so far in one `BEGIN IMMEDIATE` transaction and one commit, then wakes each
//! caller with its own result. Nothing is acknowledged before the commit that holds it
//! returned.
//!
//! Each request runs inside its own savepoint, so one that fails (quota, a deleted mailbox,
//! a lost lease) is rolled back alone and the others still commit; when the transaction
//! itself cannot begin or commit, every request of the batch gets the error, and none is
//! acknowledged.
//!
//! The batch is written by a spawned task, so a caller that gives up waiting (its future
//! dropped) never leaves a transaction half-done for the others.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::Database;
use super::mail::WriteTransaction;
use crate::error::{StoreError, StoreResult};

/// The most requests one transaction takes; the rest wait for the next.
const REQUESTS_PER_COMMIT_MAX: usize = 128;

/// One caller's write: all of it or none of it.
pub(crate) trait WriteRequest: Send + Sync + 'static {
    type Output: Send + 'static;
    /// Writes the request inside the shared transaction (in its own savepoint).
    fn apply<'a>(
        &'a self,
        transaction: &'a mut WriteTransaction,
    ) -> impl Future<Output = StoreResult<Self::Output>> + Send + 'a;
}

struct Pending<R: WriteRequest> {
    request: R,
    reply: oneshot::Sender<StoreResult<R::Output>>,
}

/// The queue of writes waiting for the writer, and the lock its leader holds.
pub(crate) struct GroupCommit<R: WriteRequest> {
    queue: Arc<Mutex<Vec<Pending<R>>>>,
    leader: Arc<tokio::sync::Mutex<()>>,
}

impl<R: WriteRequest> Clone for GroupCommit<R> {
    fn clone(&self) -> Self {
        GroupCommit {
            queue: self.queue.clone(),
            leader: self.leader.clone(),
        }
    }
}

impl<R: WriteRequest> Default for GroupCommit<R> {
    fn default() -> Self {
        GroupCommit {
            queue: Arc::new(Mutex::new(Vec::new())),
            leader: Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}

impl<R: WriteRequest> std::fmt::Debug for GroupCommit<R> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("GroupCommit")
            .finish_non_exhaustive()
    }
}

impl<R: WriteRequest> GroupCommit<R> {
    /// Writes `request`, in a transaction it may share with others; returns once that
    /// transaction committed (or failed).
    pub(crate) async fn write(&self, database: &Database, request: R) -> StoreResult<R::Output> {
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

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Vec<Pending<R>>> {
        // A panic while holding this lock cannot leave the queue inconsistent (push/drain).
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take_batch(&self) -> Vec<Pending<R>> {
        let mut queue = self.lock_queue();
        let count = queue.len().min(REQUESTS_PER_COMMIT_MAX);
        queue.drain(..count).collect()
    }
}

fn abandoned() -> StoreError {
    StoreError::Unavailable("this write was abandoned".to_owned())
}

/// Writes every request of `batch` in one transaction, each in its own savepoint, and
/// answers each after the commit.
async fn commit_batch<R: WriteRequest>(database: Database, batch: Vec<Pending<R>>) {
    tracing::debug!(requests = batch.len(), "group commit");
    let mut transaction = match database.begin_write().await {
        Ok(transaction) => transaction,
        Err(error) => return fail_all(batch, &error),
    };
    let mut results: Vec<StoreResult<R::Output>> = Vec::with_capacity(batch.len());
    for pending in &batch {
        if let Err(error) = sqlx::query("SAVEPOINT write_request")
            .execute(&mut *transaction)
            .await
        {
            return fail_all(batch, &error);
        }
        let result = pending.request.apply(&mut transaction).await;
        let end = if result.is_ok() {
            "RELEASE write_request"
        } else {
            // Undo this request alone, then leave the savepoint.
            "ROLLBACK TO write_request; RELEASE write_request"
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
fn fail_all<R: WriteRequest>(batch: Vec<Pending<R>>, error: &dyn std::fmt::Display) {
    let reason = error.to_string();
    for pending in batch {
        let _ = pending
            .reply
            .send(Err(StoreError::Unavailable(reason.clone())));
    }
}
