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
}

pub async fn run(context: ImapContext, role: RoleContext) -> Result<()> {
    let config = &context.config;
    let certificate = context.data_directory.join(&config.tls.certificate);
    let private_key = context.data_directory.join(&config.tls.private_key);
    // Without a certificate, `imap` offers no STARTTLS and so no login (LOGINDISABLED), and
    // `imaps` cannot listen: passwords never cross in plain text.
    let tls = match tme_smtp::server::load_tls(&certificate, &private_key) {
        Ok(tls) => Some(tls),
        Err(error) => {
            tracing::warn!(%error, "imap: no TLS, so no login");
            None
        }
    };
    let mut listeners = Vec::new();
    if let Some(address) = config.listen.imap {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} (listen.imap)"))?;
        tracing::info!(%address, starttls = tls.is_some(), "imap listening");
        listeners.push((listener, ListenerKind::StartTls));
    }
    if let Some(address) = config.listen.imaps {
        if tls.is_some() {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (listen.imaps)"))?;
            tracing::info!(%address, "imaps listening");
            listeners.push((listener, ListenerKind::ImplicitTls));
        } else {
            tracing::warn!(%address, "imaps: not listening without a certificate");
        }
    }
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
