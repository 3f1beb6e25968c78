//! A TLS client's check of the server that accepts any certificate and still verifies the
//! handshake's signatures, so the session key is the key of whoever holds that certificate.
//!
//! For opportunistic TLS (RFC 7435: outbound SMTP to a host with no policy, where refusing a
//! self-signed certificate would send the message in plain text instead), for verifiers that
//! judge the certificate by other rules but check signatures the same way (DANE, which
//! delegates here), and for load generators talking to a test server. Never for a policy
//! that requires an authenticated peer.

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// Accepts any certificate, checks the handshake signatures with `provider`'s algorithms.
#[derive(Debug)]
pub struct AnyServerCertificate {
    provider: Arc<CryptoProvider>,
}

impl AnyServerCertificate {
    pub fn new(provider: Arc<CryptoProvider>) -> AnyServerCertificate {
        AnyServerCertificate { provider }
    }

    /// A client config with `provider`, its safe default protocol versions and this check.
    pub fn client_config(
        provider: Arc<CryptoProvider>,
    ) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCertificate::new(provider)))
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
