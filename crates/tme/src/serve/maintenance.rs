//! The `maintenance` role: purges what is past retention and collects unreferenced blobs,
//! once shortly after start and then every `MAINTENANCE_INTERVAL`. Before its first pass it
//! gives the messages of an older mail file their conversations (`threads_backfill`), a
//! batch per transaction so that deliveries go on between batches.

use std::time::Duration;

use anyhow::Result;
use tme_store::Store;

use super::supervisor::RoleContext;

const FIRST_RUN_DELAY: Duration = Duration::from_secs(60);
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(3600);
/// Messages threaded per transaction of the backfill.
const BACKFILL_BATCH: u32 = 500;

pub async fn run(store: Store, role: RoleContext) -> Result<()> {
    role.running();
    backfill_threads(&store, &role).await;
    let mut delay = FIRST_RUN_DELAY;
    loop {
        tokio::select! {
            _ = role.shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(delay) => {}
        }
        match store.collect_garbage(crate::commands::now_unix()).await {
            Ok((purged, collected)) => tracing::info!(
                messages_purged = purged.messages_purged,
                mailboxes_purged = purged.mailboxes_purged,
                delivery_keys_purged = purged.delivery_keys_purged,
                blobs_deleted = collected.blobs_deleted,
                bytes_deleted = collected.bytes_deleted,
                "retention purge and blob collection done"
            ),
            // A failed pass is retried next time; it must not take the role down.
            Err(error) => tracing::warn!(%error, "maintenance pass failed"),
        }
        delay = MAINTENANCE_INTERVAL;
    }
}

/// Threads the messages stored before conversations were kept, until none is left, the
/// role stops, or the store fails (then the next start goes on where this one ended).
async fn backfill_threads(store: &Store, role: &RoleContext) {
    let mut threaded: u64 = 0;
    loop {
        if role.shutdown.is_cancelled() {
            return;
        }
        match store.mail.threads_backfill(BACKFILL_BATCH).await {
            Ok(0) => break,
            Ok(count) => threaded += count,
            Err(error) => {
                tracing::warn!(%error, "cannot thread older messages; trying at the next start");
                return;
            }
        }
        tokio::task::yield_now().await;
    }
    if threaded > 0 {
        tracing::info!(
            messages = threaded,
            "older messages threaded into conversations"
        );
    }
}
