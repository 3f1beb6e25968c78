//! The `submission` role: message submission for our own users on `listen.submission`
//! (STARTTLS, port 587) and `listen.submissions` (implicit TLS, port 465, RFC 8314), wiring
//! `tme_smtp::serve` in its submission service to the node's certificate, login
//! authenticator and submission pipeline (`tme_queue::Submitter`). It shares the `[smtp]`
//! limits. The protocol lives in `tme-smtp`, the rules of sending in `tme-queue`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tme_core::config::Config;
use tme_smtp::ServerConfig;
use tme_smtp::server::SubmissionServices;
use tme_smtp::session::Service;
use tme_store::Store;
use tme_store::spool::InboundSpool;

use super::supervisor::RoleContext;

#[derive(Debug, Clone)]
pub struct SubmissionContext {
    pub store: Store,
    /// Unused by submission (it answers 451 when the store is down) but part of the server.
    pub spool: InboundSpool,
    pub config: Arc<Config>,
    pub data_directory: PathBuf,
    pub authenticator: Arc<tme_auth::Authenticator>,
    pub submitter: tme_queue::Submitter,
    /// The node's vacation auto-responder (the submitter answers its own local copies; this
    /// is the MX settings' one the submission listeners start from).
    pub auto_responder: tme_queue::AutoResponder,
    pub metrics: Arc<tme_smtp::Metrics>,
}

pub async fn run(context: SubmissionContext, role: RoleContext) -> Result<()> {
    let config = &context.config;
    // Submission takes passwords: without a certificate it cannot run at all.
    let tls = super::listeners::node_tls(config, &context.data_directory)
        .context("submission needs the TLS certificate")?;
    let listeners: Vec<(&str, Option<SocketAddr>, bool)> = vec![
        ("submission", config.listen.submission, false),
        ("submissions", config.listen.submissions, true),
    ];
    let mut servers = tokio::task::JoinSet::new();
    for (name, address, implicit_tls) in listeners {
        let Some(address) = address else { continue };
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} (listen.{name})"))?;
        tracing::info!(%address, implicit_tls, "{name} listening");
        let server_config = ServerConfig {
            service: Service::Submission,
            implicit_tls,
            submission: Some(SubmissionServices {
                authenticator: context.authenticator.clone(),
                submitter: context.submitter.clone(),
            }),
            ..super::smtp::server_config(config, Some(tls.clone()), context.auto_responder.clone())?
        };
        servers.spawn(tme_smtp::serve(
            listener,
            server_config,
            context.store.clone(),
            context.metrics.clone(),
            context.spool.clone(),
            role.shutdown.clone(),
        ));
    }
    if servers.is_empty() {
        bail!("no submission listener configured");
    }
    role.running();
    while let Some(result) = servers.join_next().await {
        result
            .context("submission server task failed")?
            .context("submission server failed")?;
    }
    tracing::info!(
        messages_accepted = tme_smtp::Metrics::value(&context.metrics.messages, "accepted"),
        "submission stopped"
    );
    Ok(())
}
