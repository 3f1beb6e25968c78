//! The `spool` role: delivers the inbound spool (mail acknowledged while the store was
//! unavailable) once the store is back. The policy lives in `tme_smtp::spool_delivery`.

use std::sync::Arc;

use anyhow::Result;
use tme_store::Store;
use tme_store::spool::InboundSpool;

use super::supervisor::RoleContext;

pub async fn run(
    spool: InboundSpool,
    store: Store,
    metrics: Arc<tme_smtp::Metrics>,
    auto_responder: tme_queue::AutoResponder,
    role: RoleContext,
) -> Result<()> {
    role.running();
    tme_smtp::spool_delivery::deliver_spool(
        spool,
        store,
        metrics,
        Some(auto_responder),
        role.shutdown.clone(),
    )
    .await;
    Ok(())
}
