//! The `pop3` role: POP3 on `listen.pop3` (STLS) and `listen.pop3s` (implicit TLS), wiring
//! `tme_pop3::serve` to the node's config, certificate (the one SMTP and IMAP present), store
//! and login authenticator. The protocol lives in `tme-pop3`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tme_core::config::Config;
use tme_pop3::{ListenerKind, ServerConfig};
use tme_store::Store;

use super::supervisor::RoleContext;

#[derive(Debug, Clone)]
pub struct Pop3Context {
    pub store: Store,
    pub config: Arc<Config>,
    pub data_directory: PathBuf,
    /// Shared by every role that takes a password, so the throttle sees them all.
    pub authenticator: Arc<tme_auth::Authenticator>,
    pub metrics: Arc<tme_pop3::Metrics>,
}

pub async fn run(context: Pop3Context, role: RoleContext) -> Result<()> {
    let config = &context.config;
    let tls = super::listeners::node_tls_for_logins("pop3", config, &context.data_directory);
    let (plain, implicit) = super::listeners::bind_pair(
        "pop3",
        config.listen.pop3,
        config.listen.pop3s,
        tls.is_some(),
    )
    .await?;
    let mut listeners = Vec::new();
    listeners.extend(plain.map(|listener| (listener, ListenerKind::StartTls)));
    listeners.extend(implicit.map(|listener| (listener, ListenerKind::ImplicitTls)));
    let pop3 = &config.pop3;
    let server_config = ServerConfig {
        hostname: config.node.hostname.clone(),
        connections_max: pop3.connections_max,
        connections_per_ip_max: pop3.connections_per_ip_max,
        command_timeout: Duration::from_secs(pop3.command_timeout_seconds),
        session_errors_max: pop3.session_errors_max,
        tls,
    };
    role.running();
    tme_pop3::serve(
        listeners,
        server_config,
        context.store.clone(),
        context.authenticator.clone(),
        context.metrics.clone(),
        role.shutdown.clone(),
    )
    .await
    .context("pop3 server failed")?;
    tracing::info!("pop3 stopped");
    Ok(())
}
