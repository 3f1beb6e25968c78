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

pub async fn run(store: Store, indexes: Arc<SearchIndexes>, role: RoleContext) -> Result<()> {
    let changes = store.changes.every_account();
    role.running();
    loop {
        tokio::select! {
            _ = role.shutdown.cancelled() => return Ok(()),
            _ = changes.wait() => {}
        }
        tokio::select! {
            _ = role.shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(SETTLE_DELAY) => {}
        }
        for account in changes.take() {
            if role.shutdown.is_cancelled() {
                return Ok(());
            }
            indexes.follow_change(account).await;
        }
    }
}
