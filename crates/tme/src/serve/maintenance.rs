//! The `maintenance` role: purges what is past retention and collects unreferenced blobs,
//! once shortly after start and then every `MAINTENANCE_INTERVAL`.

use std::time::Duration;

use anyhow::Result;
use tme_store::Store;

use super::supervisor::RoleContext;

const FIRST_RUN_DELAY: Duration = Duration::from_secs(60);
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(3600);

pub async fn run(store: Store, role: RoleContext) -> Result<()> {
    role.running();
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
