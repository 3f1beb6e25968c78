//! The `smtp` role: inbound mail (MX) on `listen.smtp`, wiring `tme_smtp::serve` to the
//! node's config, certificate, store and inbound spool. The protocol lives in `tme-smtp`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tme_core::config::Config;
use tme_smtp::ServerConfig;
use tme_store::Store;
use tme_store::spool::InboundSpool;

use super::supervisor::RoleContext;

#[derive(Debug, Clone)]
pub struct SmtpContext {
    pub store: Store,
    /// Where a message goes while the store is unavailable (delivered by the `spool` role).
    pub spool: InboundSpool,
    pub config: Arc<Config>,
    pub data_directory: PathBuf,
    /// Kept across restarts of the role, so the counts cover the node's life.
    pub metrics: Arc<tme_smtp::Metrics>,
    /// Answers mail stored for accounts on vacation.
    pub auto_responder: tme_queue::AutoResponder,
}

/// The server settings of the MX, from `[smtp]`; submission starts from these too.
pub fn server_config(
    config: &Config,
    tls: Option<Arc<rustls::ServerConfig>>,
    auto_responder: tme_queue::AutoResponder,
) -> Result<ServerConfig> {
    Ok(ServerConfig {
        service: tme_smtp::session::Service::Mx,
        implicit_tls: false,
        submission: None,
        hostname: config.node.hostname.clone(),
        message_bytes_max: config.smtp.message_bytes_max,
        recipients_max: config.smtp.recipients_max,
        connections_max: config.smtp.connections_max,
        connections_per_ip_max: config.smtp.connections_per_ip_max,
        command_line_octets_max: config.smtp.command_line_octets_max,
        command_timeout: Duration::from_secs(config.smtp.command_timeout_seconds),
        data_block_timeout: Duration::from_secs(config.smtp.data_block_timeout_seconds),
        message_timeout: Duration::from_secs(config.smtp.message_timeout_seconds),
        session_errors_max: config.smtp.session_errors_max,
        plus_separator: config.directory.plus_separator,
        tls,
        filter: tme_filter::Filter::new(
            config.filter.clone(),
            &config.resolver,
            config.node.hostname.clone(),
        )?,
        auto_responder: Some(auto_responder),
    })
}

pub async fn run(address: SocketAddr, context: SmtpContext, role: RoleContext) -> Result<()> {
    let config = &context.config;
    // Without a usable certificate the MX still runs, without STARTTLS: refusing all mail
    // for a missing file would be worse than accepting it in plain text.
    let tls = match super::listeners::node_tls(config, &context.data_directory) {
        Ok(tls) => Some(tls),
        Err(error) => {
            tracing::warn!(%error, "smtp: STARTTLS not offered");
            None
        }
    };
    let server_config = server_config(config, tls, context.auto_responder.clone())?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (listen.smtp)"))?;
    role.running();
    tracing::info!(%address, starttls = server_config.tls.is_some(), "smtp listening");
    tme_smtp::serve(
        listener,
        server_config,
        context.store.clone(),
        context.metrics.clone(),
        context.spool.clone(),
        role.shutdown.clone(),
    )
    .await
    .context("smtp server failed")?;
    tracing::info!(
        messages_accepted = tme_smtp::Metrics::value(&context.metrics.messages, "accepted"),
        "smtp stopped"
    );
    Ok(())
}
