//! What the listener roles share: the node's certificate, and binding a role's pair of
//! listeners (one where TLS starts by command, one with TLS from the first byte).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use tme_core::config::Config;
use tokio::net::TcpListener;

/// The node's certificate and key (`[tls]`, relative to the data directory).
pub fn node_tls(
    config: &Config,
    data_directory: &Path,
) -> Result<Arc<rustls::ServerConfig>, tme_smtp::server::TlsSetupError> {
    tme_smtp::server::load_tls(
        &data_directory.join(&config.tls.certificate),
        &data_directory.join(&config.tls.private_key),
    )
}

/// The node's TLS for a role that takes passwords: without a certificate the role offers no
/// TLS, and so no login; passwords never cross in plain text.
pub fn node_tls_for_logins(
    role: &str,
    config: &Config,
    data_directory: &Path,
) -> Option<Arc<rustls::ServerConfig>> {
    match node_tls(config, data_directory) {
        Ok(tls) => Some(tls),
        Err(error) => {
            tracing::warn!(%error, "{role}: no TLS, so no login");
            None
        }
    }
}

/// Binds `plain` (`listen.ROLE`, TLS by command) and `implicit` (`listen.ROLEs`, TLS from
/// the first byte; only with a certificate).
pub async fn bind_pair(
    role: &str,
    plain: Option<SocketAddr>,
    implicit: Option<SocketAddr>,
    tls_available: bool,
) -> Result<(Option<TcpListener>, Option<TcpListener>)> {
    let mut bound = (None, None);
    if let Some(address) = plain {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} (listen.{role})"))?;
        tracing::info!(%address, tls_by_command = tls_available, "{role} listening");
        bound.0 = Some(listener);
    }
    if let Some(address) = implicit {
        if tls_available {
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (listen.{role}s)"))?;
            tracing::info!(%address, "{role}s listening");
            bound.1 = Some(listener);
        } else {
            tracing::warn!(%address, "{role}s: not listening without a certificate");
        }
    }
    Ok(bound)
}
