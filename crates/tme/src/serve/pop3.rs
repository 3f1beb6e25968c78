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
    let certificate = context.data_directory.join(&config.tls.certificate);
    let private_key = context.data_directory.join(&config.tls.private_key);
    // Without a certificate, `pop3` offers no STLS and so no login, and `pop3s` cannot
    // listen: passwords never cross in plain text.
    let tls = match tme_smtp::server::load_tls(&certificate, &private_key) {
        Ok(tls) => Some(tls),
        Err(error) => {
            tracing::warn!(%error, "pop3: no TLS, so no login");
            None
        }
    };
    let mut listeners = Vec::new();
    if let Some(address) = config.listen.pop3 {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} (listen.pop3)"))?;
        tracing::info!(%address, stls = tls.is_some(), "pop3 listening");
        listeners.push((listener, ListenerKind::StartTls));
    }
    if let Some(address) = config.listen.pop3s {
        if tls.is_some() {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (listen.pop3s)"))?;
            tracing::info!(%address, "pop3s listening");
            listeners.push((listener, ListenerKind::ImplicitTls));
        } else {
            tracing::warn!(%address, "pop3s: not listening without a certificate");
        }
    }
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
