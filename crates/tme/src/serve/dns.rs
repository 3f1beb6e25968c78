//! The `dns` role: authoritative DNS for every hosted domain on `listen.dns`, UDP and TCP,
//! wiring `tme_dns::server` to the node's config and store. The DNS lives in `tme-dns`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use tme_core::config::Config;
use tme_store::Store;

use super::supervisor::RoleContext;

#[derive(Debug, Clone)]
pub struct DnsContext {
    pub store: Store,
    pub config: Arc<Config>,
    /// Kept across restarts of the role, so the counts cover the node's life.
    pub metrics: Arc<tme_dns::Metrics>,
}

pub async fn run(address: SocketAddr, context: DnsContext, role: RoleContext) -> Result<()> {
    let server_config = tme_dns::server::ServerConfig::from_config(&context.config, address)
        .context("the [dns] config")?;
    let shutdown = role.shutdown.clone();
    tme_dns::server::run(
        server_config,
        context.store.clone(),
        context.metrics.clone(),
        shutdown,
        || role.running(),
    )
    .await
    .context("dns server failed")
}
