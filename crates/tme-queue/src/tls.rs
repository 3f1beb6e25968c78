//! TLS for outbound connections. Opportunistic (RFC 7435): the server's certificate is not
//! checked, because a message would otherwise go in plain text to a server whose certificate
//! is self-signed or names another host, which is worse. The handshake's signatures are still
//! verified, so the session key is the server's. Policies that require an authenticated
//! peer (MTA-STS, RFC 8461) use `verifying`: the system's trust anchors (Debian's
//! ca-certificates) plus the operator's own (`queue.tls_trust_anchors_file`, for a private
//! PKI). DANE (RFC 7672) has its own verifier, in `dane`.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;

/// The client config for opportunistic STARTTLS.
pub fn opportunistic() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    tme_net::AnyServerCertificate::client_config(Arc::new(rustls::crypto::ring::default_provider()))
}

/// Why the verifying config could not be made. The operator's fault: fix the file.
#[derive(Debug, thiserror::Error)]
pub enum TrustAnchorsError {
    #[error("cannot read the trust anchors {path}: {message}")]
    File { path: String, message: String },
    #[error("no trust anchor at all: install ca-certificates or set queue.tls_trust_anchors_file")]
    Empty,
    #[error(transparent)]
    Tls(#[from] rustls::Error),
}

/// The client config that verifies certificates (WebPKI, RFC 6125 names): the system's
/// trust anchors and those in `extra_pem` (PEM certificates).
pub fn verifying(
    extra_pem: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>, TrustAnchorsError> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    for error in &system.errors {
        tracing::debug!(%error, "a system trust anchor could not be read");
    }
    let (added, ignored) = roots.add_parsable_certificates(system.certs);
    tracing::debug!(added, ignored, "system trust anchors");
    if let Some(path) = extra_pem {
        let file_error = |message: String| TrustAnchorsError::File {
            path: path.display().to_string(),
            message,
        };
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|error| file_error(error.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|error| file_error(error.to_string()))?;
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|error| file_error(error.to_string()))?;
        }
    }
    if roots.is_empty() {
        return Err(TrustAnchorsError::Empty);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
