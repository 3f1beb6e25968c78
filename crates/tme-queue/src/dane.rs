//! DANE for SMTP (RFC 7672): a receiving host's DNSSEC-signed TLSA records say that mail to
//! it must travel over TLS, and which certificate is the right one.
//!
//! This module owns the records and the matching: which TLSA records are usable for SMTP
//! (§3.1: DANE-EE(3) and DANE-TA(2); PKIX-TA(0) and PKIX-EE(1) are not, §3.1.3), and whether
//! a presented certificate chain matches them (`authenticate`, no I/O, tested with rcgen
//! certificates). `DaneVerifier` puts that behind rustls's `ServerCertVerifier`, so a chain
//! that does not match ends the handshake; the handshake's signatures are still verified
//! with the provider's algorithms, so the session key belongs to the matched certificate.
//!
//! It must not look anything up or decide where mail goes: the runner asks the validating
//! resolver (`tme_resolver::ValidatingResolver`) for the MX and TLSA records, drops hosts
//! whose records are bogus, and connects with `tls_config` to hosts that have records.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, SignatureVerificationAlgorithm, UnixTime};

/// The most TLSA records kept for one host (the rest are ignored: a real RRset has 1–4).
pub const RECORDS_PER_HOST_MAX: usize = 16;
/// The longest certificate association data kept (a full certificate, selector 0 matching 0).
pub const ASSOCIATION_BYTES_MAX: usize = 16 * 1024;

/// One TLSA record (RFC 6698 §2.1), as numbers: usage, selector, matching type, data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

/// Certificate usages (RFC 7218 names); PKIX-TA (0) and PKIX-EE (1) are never usable here.
const DANE_TA: u8 = 2;
const DANE_EE: u8 = 3;
/// Selectors: the whole certificate, or its SubjectPublicKeyInfo.
const SELECTOR_CERTIFICATE: u8 = 0;
const SELECTOR_SPKI: u8 = 1;
/// Matching types: the data itself, SHA2-256, SHA2-512.
const MATCHING_EXACT: u8 = 0;
const MATCHING_SHA256: u8 = 1;
const MATCHING_SHA512: u8 = 2;

impl Tlsa {
    /// Usable for SMTP (RFC 7672 §3.1): DANE-TA or DANE-EE with a known selector and
    /// matching type, whose digest has the right length. PKIX-TA and PKIX-EE are unusable
    /// (§3.1.3: SMTP clients have no common set of trusted CAs to check them against), and
    /// so is anything unknown (RFC 6698 §4.1).
    pub fn usable(&self) -> bool {
        let usage = matches!(self.usage, DANE_TA | DANE_EE);
        let selector = matches!(self.selector, SELECTOR_CERTIFICATE | SELECTOR_SPKI);
        let matching = match self.matching {
            MATCHING_EXACT => !self.data.is_empty() && self.data.len() <= ASSOCIATION_BYTES_MAX,
            MATCHING_SHA256 => self.data.len() == 32,
            MATCHING_SHA512 => self.data.len() == 64,
            _ => false,
        };
        usage && selector && matching
    }

    /// Whether `certificate` (DER) is the one this record names, by its selector and
    /// matching type.
    fn matches(&self, certificate: &CertificateDer<'_>) -> bool {
        let selected: Vec<u8> = match self.selector {
            SELECTOR_CERTIFICATE => certificate.as_ref().to_vec(),
            SELECTOR_SPKI => match webpki::EndEntityCert::try_from(certificate) {
                Ok(parsed) => parsed.subject_public_key_info().as_ref().to_vec(),
                Err(_) => return false,
            },
            _ => return false,
        };
        match self.matching {
            MATCHING_EXACT => selected == self.data,
            MATCHING_SHA256 => {
                ring::digest::digest(&ring::digest::SHA256, &selected).as_ref() == self.data
            }
            MATCHING_SHA512 => {
                ring::digest::digest(&ring::digest::SHA512, &selected).as_ref() == self.data
            }
            _ => false,
        }
    }
}

/// How a certificate chain was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authenticated {
    /// A DANE-EE(3) record names the server's own certificate or key.
    EndEntity,
    /// A DANE-TA(2) record names a certificate of the chain, the chain verifies up to it,
    /// and the server certificate names the MX host.
    TrustAnchor,
    /// The host has TLSA records but none is usable: TLS is still required, without
    /// authentication (RFC 7672 §2.2).
    Unauthenticated,
}

/// Why a chain was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DaneError {
    #[error("no TLSA record of {host} matches its certificate")]
    NoMatch { host: String },
}

/// Checks the chain a server presented (`end_entity`, then `intermediates` as sent)
/// against the TLSA records of `host`.
///
/// DANE-EE (RFC 7672 §3.1.1): the end-entity certificate matches; its names and dates are
/// not checked, since the DNS has already said which key is right. DANE-TA (§3.1.2): a
/// certificate of the chain matches (the server must send it, §3.2.1), the end-entity
/// certificate chains up to it with valid signatures and dates, and it is valid for one of
/// `names`, the reference identifiers of §3.2.2: the TLSA base domain first, then the MX
/// host name when its CNAME chain led elsewhere (§2.2.2). `names` must not be empty.
pub fn authenticate(
    records: &[Tlsa],
    names: &[String],
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
    algorithms: &[&dyn SignatureVerificationAlgorithm],
) -> Result<Authenticated, DaneError> {
    let usable: Vec<&Tlsa> = records
        .iter()
        .take(RECORDS_PER_HOST_MAX)
        .filter(|record| record.usable())
        .collect();
    if usable.is_empty() {
        return Ok(Authenticated::Unauthenticated);
    }
    let host = names.first().map_or("", String::as_str);
    let no_match = || DaneError::NoMatch {
        host: host.to_owned(),
    };
    if usable
        .iter()
        .any(|record| record.usage == DANE_EE && record.matches(end_entity))
    {
        return Ok(Authenticated::EndEntity);
    }
    let Ok(parsed) = webpki::EndEntityCert::try_from(end_entity) else {
        return Err(no_match());
    };
    let server_names: Vec<ServerName<'_>> = names
        .iter()
        .filter_map(|name| ServerName::try_from(name.trim_end_matches('.')).ok())
        .collect();
    for anchor_certificate in intermediates {
        if !usable
            .iter()
            .any(|record| record.usage == DANE_TA && record.matches(anchor_certificate))
        {
            continue;
        }
        let Ok(anchor) = webpki::anchor_from_trusted_cert(anchor_certificate) else {
            continue;
        };
        let anchors = [anchor];
        let chained = parsed
            .verify_for_usage(
                algorithms,
                &anchors,
                intermediates,
                now,
                webpki::KeyUsage::server_auth(),
                None,
                None,
            )
            .is_ok();
        if chained
            && server_names
                .iter()
                .any(|name| parsed.verify_is_valid_for_subject_name(name).is_ok())
        {
            return Ok(Authenticated::TrustAnchor);
        }
    }
    Err(no_match())
}

/// What the runner counts of DANE (the `queue_dane_*` metrics); clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct DaneCounters {
    pub authenticated: Counter,
    pub unauthenticated: Counter,
    pub refused: Counter,
}

/// rustls's certificate check for a host with TLSA records.
#[derive(Debug)]
struct DaneVerifier {
    /// The reference identifiers, the TLSA base domain first (for the logs).
    names: Vec<String>,
    records: Vec<Tlsa>,
    provider: Arc<CryptoProvider>,
    /// Checks the handshake's signatures (the certificate is judged by `records`).
    signatures: tme_net::AnyServerCertificate,
    counters: DaneCounters,
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match authenticate(
            &self.records,
            &self.names,
            end_entity,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        ) {
            Ok(how) => {
                tracing::info!(host = ?self.names, ?how, "DANE: certificate accepted");
                match how {
                    Authenticated::Unauthenticated => self.counters.unauthenticated.inc(),
                    _ => self.counters.authenticated.inc(),
                };
                Ok(ServerCertVerified::assertion())
            }
            Err(error) => {
                tracing::warn!(host = ?self.names, %error, "DANE: certificate refused");
                self.counters.refused.inc();
                Err(rustls::Error::General(error.to_string()))
            }
        }
    }

    // The handshake's signatures are checked as for any certificate.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures
            .verify_tls12_signature(message, certificate, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures
            .verify_tls13_signature(message, certificate, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.signatures.supported_verify_schemes()
    }
}

/// The client config for STARTTLS to a host whose reference identifiers are `names` (see
/// `authenticate`), accepting only what its TLSA `records` allow.
pub fn tls_config(
    names: Vec<String>,
    records: Vec<Tlsa>,
    counters: DaneCounters,
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = DaneVerifier {
        names,
        records,
        provider: provider.clone(),
        signatures: tme_net::AnyServerCertificate::new(provider.clone()),
        counters,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The TLSA records in a validated answer, as numbers.
pub fn records_of(answer: &[mail_auth::hickory_resolver::proto::rr::RData]) -> Vec<Tlsa> {
    use mail_auth::hickory_resolver::proto::rr::RData;
    answer
        .iter()
        .filter_map(|data| match data {
            RData::TLSA(tlsa) => Some(Tlsa {
                usage: u8::from(tlsa.cert_usage),
                selector: u8::from(tlsa.selector),
                matching: u8::from(tlsa.matching),
                data: tlsa.cert_data.clone(),
            }),
            _ => None,
        })
        .take(RECORDS_PER_HOST_MAX)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, PublicKeyData,
    };

    struct Chain {
        leaf: CertificateDer<'static>,
        ca: CertificateDer<'static>,
        leaf_spki: Vec<u8>,
    }

    /// A CA and a server certificate for `names` issued by it.
    fn chain(names: &[&str]) -> Chain {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        Chain {
            leaf: leaf.der().clone(),
            ca: issuer.der().clone(),
            leaf_spki: key.subject_public_key_info(),
        }
    }

    fn sha256(bytes: &[u8]) -> Vec<u8> {
        ring::digest::digest(&ring::digest::SHA256, bytes)
            .as_ref()
            .to_vec()
    }

    fn sha512(bytes: &[u8]) -> Vec<u8> {
        ring::digest::digest(&ring::digest::SHA512, bytes)
            .as_ref()
            .to_vec()
    }

    fn record(usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> Tlsa {
        Tlsa {
            usage,
            selector,
            matching,
            data,
        }
    }

    fn check(records: &[Tlsa], host: &str, chain: &Chain) -> Result<Authenticated, DaneError> {
        check_names(records, &[host], chain)
    }

    fn check_names(
        records: &[Tlsa],
        names: &[&str],
        chain: &Chain,
    ) -> Result<Authenticated, DaneError> {
        let provider = rustls::crypto::ring::default_provider();
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        authenticate(
            records,
            &names,
            &chain.leaf,
            std::slice::from_ref(&chain.ca),
            UnixTime::now(),
            provider.signature_verification_algorithms.all,
        )
    }

    #[test]
    fn dane_ee_matches_the_key_or_the_certificate_in_every_form() {
        let chain = chain(&["mx.example"]);
        for records in [
            vec![record(3, 1, 1, sha256(&chain.leaf_spki))],
            vec![record(3, 1, 2, sha512(&chain.leaf_spki))],
            vec![record(3, 1, 0, chain.leaf_spki.clone())],
            vec![record(3, 0, 1, sha256(&chain.leaf))],
            vec![record(3, 0, 0, chain.leaf.to_vec())],
        ] {
            assert_eq!(
                check(&records, "mx.example", &chain),
                Ok(Authenticated::EndEntity),
                "{records:?}"
            );
        }
    }

    #[test]
    fn dane_ee_ignores_the_name() {
        // RFC 7672 §3.1.1: the certificate's names do not matter under DANE-EE.
        let chain = chain(&["other.example"]);
        let records = [record(3, 1, 1, sha256(&chain.leaf_spki))];
        assert_eq!(
            check(&records, "mx.example", &chain),
            Ok(Authenticated::EndEntity)
        );
    }

    #[test]
    fn another_key_is_refused() {
        let chain = chain(&["mx.example"]);
        let other = self::chain(&["mx.example"]);
        let records = [record(3, 1, 1, sha256(&other.leaf_spki))];
        assert!(check(&records, "mx.example", &chain).is_err());
        // The CA's hash under DANE-EE names a certificate the server does not use as its own.
        let records = [record(3, 0, 1, sha256(&chain.ca))];
        assert!(check(&records, "mx.example", &chain).is_err());
    }

    #[test]
    fn dane_ta_needs_the_chain_and_the_name() {
        let chain = chain(&["mx.example"]);
        let records = [record(2, 0, 1, sha256(&chain.ca))];
        assert_eq!(
            check(&records, "mx.example", &chain),
            Ok(Authenticated::TrustAnchor)
        );
        assert!(check(&records, "other.example", &chain).is_err());
        // The anchor of another CA.
        let other = self::chain(&["mx.example"]);
        let records = [record(2, 0, 1, sha256(&other.ca))];
        assert!(check(&records, "mx.example", &chain).is_err());
        // The server did not send its anchor: nothing to match (RFC 7672 §3.2.1 says it must).
        let provider = rustls::crypto::ring::default_provider();
        let records = [record(2, 0, 1, sha256(&chain.ca))];
        assert!(
            authenticate(
                &records,
                &["mx.example".to_owned()],
                &chain.leaf,
                &[],
                UnixTime::now(),
                provider.signature_verification_algorithms.all,
            )
            .is_err()
        );
    }

    #[test]
    fn dane_ta_accepts_the_cname_target_or_the_mx_name() {
        // RFC 7672 §3.2.2: with TLSA records at the CNAME-expanded name, both it and the MX
        // host name are reference identifiers.
        let records_for = |chain: &Chain| [record(2, 0, 1, sha256(&chain.ca))];
        let target_certificate = chain(&["mail.provider.example"]);
        assert_eq!(
            check_names(
                &records_for(&target_certificate),
                &["mail.provider.example", "mx.example"],
                &target_certificate,
            ),
            Ok(Authenticated::TrustAnchor)
        );
        let mx_certificate = chain(&["mx.example"]);
        assert_eq!(
            check_names(
                &records_for(&mx_certificate),
                &["mail.provider.example", "mx.example"],
                &mx_certificate,
            ),
            Ok(Authenticated::TrustAnchor)
        );
        let other_certificate = chain(&["other.example"]);
        assert!(
            check_names(
                &records_for(&other_certificate),
                &["mail.provider.example", "mx.example"],
                &other_certificate,
            )
            .is_err()
        );
    }

    #[test]
    fn pkix_and_malformed_records_are_unusable() {
        let chain = chain(&["mx.example"]);
        let unusable = [
            record(0, 0, 1, sha256(&chain.ca)),
            record(1, 1, 1, sha256(&chain.leaf_spki)),
            record(3, 1, 1, vec![1, 2, 3]),
            record(3, 2, 1, sha256(&chain.leaf_spki)),
            record(3, 1, 3, sha256(&chain.leaf_spki)),
            record(4, 1, 1, sha256(&chain.leaf_spki)),
        ];
        assert!(unusable.iter().all(|record| !record.usable()));
        // RFC 7672 §2.2: none usable means TLS without authentication.
        assert_eq!(
            check(&unusable, "mx.example", &chain),
            Ok(Authenticated::Unauthenticated)
        );
        // A usable record beside them decides.
        let mut records = unusable.to_vec();
        records.push(record(3, 1, 1, sha256(b"another key")));
        assert!(check(&records, "mx.example", &chain).is_err());
    }

    #[test]
    fn garbage_certificates_do_not_match() {
        let chain = Chain {
            leaf: CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]),
            ca: CertificateDer::from(vec![0xff; 10]),
            leaf_spki: Vec::new(),
        };
        let records = [record(3, 1, 1, sha256(b"x")), record(2, 1, 1, sha256(b"y"))];
        assert!(check(&records, "mx.example", &chain).is_err());
        // Selector 0 hashes the bytes as they came.
        let records = [record(3, 0, 1, sha256(&chain.leaf))];
        assert_eq!(
            check(&records, "mx.example", &chain),
            Ok(Authenticated::EndEntity)
        );
    }
}
