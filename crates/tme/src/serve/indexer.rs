//! The `indexer` role: keeps the full-text indexes in step with the mail as it changes.
//! Woken by the store's change notification (deliveries, appends, expunges made through
//! this node), it waits a moment so a burst of deliveries shares one index commit, then
//! brings each changed account's index up to the change log. Searches stay correct without
//! it (they catch the index up first, or read the messages); it spares the first search
//! after new mail that work. Changes made by another process are picked up by that search.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tme_search::SearchIndexes;
use tme_store::Store;

use super::supervisor::RoleContext;

/// How long changes gather before the indexer reads them.
const SETTLE_DELAY: Duration = Duration::from_millis(500);

/// The least time from one pass to the next. Each pass ends in an index commit per account
/// (a new segment, its fsyncs, perhaps a merge): under a steady stream of mail, passes this
/// far apart batch it into a few large commits instead of many small ones that compete with
/// the mail store's own fsyncs. A quiet account's new mail is still indexed `SETTLE_DELAY`
/// after it arrives.
const PASS_INTERVAL_MIN: Duration = Duration::from_secs(5);

pub async fn run(store: Store, indexes: Arc<SearchIndexes>, role: RoleContext) -> Result<()> {
    let changes = store.changes.every_account();
    role.running();
    let mut next_pass_at = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = role.shutdown.cancelled() => return Ok(()),
            _ = changes.wait() => {}
        }
        let settled_at = tokio::time::Instant::now() + SETTLE_DELAY;
        tokio::select! {
            _ = role.shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep_until(settled_at.max(next_pass_at)) => {}
        }
        next_pass_at = tokio::time::Instant::now() + PASS_INTERVAL_MIN;
        for account in changes.take() {
            if role.shutdown.is_cancelled() {
                return Ok(());
            }
            indexes.follow_change(account).await;
        }
    }
}
