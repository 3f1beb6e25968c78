//! The `imap` role: IMAP on `listen.imap` (STARTTLS) and `listen.imaps` (implicit TLS),
//! wiring `tme_imap::serve` to the node's config, certificate (the one SMTP presents),
//! store and login authenticator. The protocol lives in `tme-imap`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tme_core::config::Config;
use tme_imap::{ListenerKind, ServerConfig};
use tme_store::Store;

use super::supervisor::RoleContext;

#[derive(Debug, Clone)]
pub struct ImapContext {
    pub store: Store,
    pub config: Arc<Config>,
    pub data_directory: PathBuf,
    /// Shared by every role that takes a password, so the throttle sees them all.
    pub authenticator: Arc<tme_auth::Authenticator>,
    pub metrics: Arc<tme_imap::Metrics>,
    /// The node's full-text index (`[search]`); None when `search.enabled` is off.
    pub search: Option<Arc<tme_search::SearchIndexes>>,
}

pub async fn run(context: ImapContext, role: RoleContext) -> Result<()> {
    let config = &context.config;
    let tls = super::listeners::node_tls_for_logins("imap", config, &context.data_directory);
    let (plain, implicit) = super::listeners::bind_pair(
        "imap",
        config.listen.imap,
        config.listen.imaps,
        tls.is_some(),
    )
    .await?;
    let mut listeners = Vec::new();
    listeners.extend(plain.map(|listener| (listener, ListenerKind::StartTls)));
    listeners.extend(implicit.map(|listener| (listener, ListenerKind::ImplicitTls)));
    let imap = &config.imap;
    let server_config = ServerConfig {
        hostname: config.node.hostname.clone(),
        literal_octets_max: imap.literal_octets_max,
        command_line_octets_max: imap.command_line_octets_max,
        connections_max: imap.connections_max,
        connections_per_ip_max: imap.connections_per_ip_max,
        idle_timeout: Duration::from_secs(imap.idle_timeout_seconds),
        login_timeout: Duration::from_secs(imap.login_timeout_seconds),
        idle_poll: Duration::from_secs(imap.idle_poll_seconds),
        session_errors_max: imap.session_errors_max,
        tls,
        search: context.search.clone(),
    };
    role.running();
    tme_imap::serve(
        listeners,
        server_config,
        context.store.clone(),
        context.authenticator.clone(),
        context.metrics.clone(),
        role.shutdown.clone(),
    )
    .await
    .context("imap server failed")?;
    tracing::info!("imap stopped");
    Ok(())
}
