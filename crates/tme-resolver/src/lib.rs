//! The DNS resolvers the node asks, built from `[resolver]`: the listed servers over UDP
//! and TCP (tests point them at a local authoritative server), or the system's
//! (`/etc/resolv.conf`) when the list is empty; either way with the configured timeout. They
//! cache answers by their TTL. An unreadable system config leaves the node with a resolver
//! that answers nothing (every check a temporary error) rather than without an MX.
//!
//! `build` is the everyday resolver (authenticity checks, blocklists, MX lookups of the
//! outbound queue). `build_validating` is a second one that checks DNSSEC signatures (RFC
//! 4035 §5) up to the trust anchors and says of each answer whether it is secure, insecure
//! or bogus: the queue asks it for DANE (RFC 7672) only, so that a broken signature
//! somewhere never costs an inbound message its SPF or DKIM verdict.

use std::sync::Arc;
use std::time::Duration;

use mail_auth::hickory_resolver::TokioResolver;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::net::runtime::TokioRuntimeProvider;
use mail_auth::hickory_resolver::net::{DnsError, NetError};
use mail_auth::hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use mail_auth::hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use mail_auth::hickory_resolver::system_conf::read_system_conf;
use tme_core::config::ResolverConfig as ResolverSettings;

pub use mail_auth::MessageAuthenticator;

/// The resolver cannot be built from its settings.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the DNS resolver: {0}")]
pub struct ResolverError(String);

/// Attempts per query before it is a temporary error (one retry covers a lost datagram).
const QUERY_ATTEMPTS: usize = 2;

/// The servers and options of `settings`, shared by both resolvers.
fn config_and_options(settings: &ResolverSettings) -> (ResolverConfig, ResolverOpts) {
    let (config, mut options) = if settings.nameservers.is_empty() {
        match read_system_conf() {
            Ok(system) => system,
            Err(error) => {
                // Refusing all mail for a missing /etc/resolv.conf would be worse than judging
                // it without DNS: every lookup is then a temporary error, which never refuses.
                tracing::error!(%error, "cannot read the system's resolver config; DNS checks will give temperror until resolver.nameservers is set");
                (
                    ResolverConfig::from_name_servers(Vec::new()),
                    ResolverOpts::default(),
                )
            }
        }
    } else {
        let name_servers = settings
            .nameservers
            .iter()
            .map(|address| {
                let mut server = NameServerConfig::udp_and_tcp(address.ip());
                for connection in &mut server.connections {
                    connection.port = address.port();
                }
                server
            })
            .collect();
        (
            ResolverConfig::from_name_servers(name_servers),
            ResolverOpts::default(),
        )
    };
    options.timeout = Duration::from_millis(settings.timeout_ms);
    options.attempts = QUERY_ATTEMPTS;
    (config, options)
}

/// The resolver of `settings`; cloning it shares its cache.
pub fn build(settings: &ResolverSettings) -> Result<MessageAuthenticator, ResolverError> {
    let (config, options) = config_and_options(settings);
    MessageAuthenticator::new(config, options).map_err(|error| ResolverError(error.to_string()))
}

/// Whether an answer is signed all the way up to a trust anchor (RFC 4035 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Every record of the answer (or the proof that there is none) validated.
    Secure,
    /// The answer comes from an unsigned zone, proven unsigned by its parent.
    Insecure,
}

/// A validated answer: its records of the asked type (none: the name or the type does not
/// exist) and their security.
#[derive(Debug, Clone)]
pub struct Validated {
    pub records: Vec<RData>,
    pub security: Security,
}

/// Why a validating lookup gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The signatures do not check out (RFC 4035 §4.3 "bogus"): an attack or a broken zone.
    /// Retrying later may help when the zone is fixed.
    #[error("DNSSEC validation of {name} failed (bogus)")]
    Bogus { name: String },
    /// The lookup itself failed (timeout, server failure): retry later.
    #[error("cannot look up {name}: {message}")]
    Failed { name: String, message: String },
}

/// A resolver that validates DNSSEC; cloning it shares its cache.
#[derive(Clone)]
pub struct ValidatingResolver {
    resolver: TokioResolver,
}

impl std::fmt::Debug for ValidatingResolver {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ValidatingResolver")
    }
}

/// The validating resolver of `settings`: the same servers and timeouts as `build`, with
/// `resolver.dnssec_trust_anchor_file` (DNSKEY records) or the root zone's keys as anchors.
pub fn build_validating(settings: &ResolverSettings) -> Result<ValidatingResolver, ResolverError> {
    let (config, mut options) = config_and_options(settings);
    options.validate = true;
    let anchors = match &settings.dnssec_trust_anchor_file {
        Some(path) => TrustAnchors::from_file(path).map_err(|error| {
            ResolverError(format!(
                "resolver.dnssec_trust_anchor_file {}: {error}",
                path.display()
            ))
        })?,
        None => TrustAnchors::default(),
    };
    if anchors.is_empty() && settings.dnssec_trust_anchor_file.is_some() {
        return Err(ResolverError(
            "resolver.dnssec_trust_anchor_file holds no DNSKEY record".to_owned(),
        ));
    }
    let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_trust_anchor(Arc::new(anchors));
    *builder.options_mut() = options;
    let resolver = builder
        .build()
        .map_err(|error| ResolverError(error.to_string()))?;
    Ok(ValidatingResolver { resolver })
}

impl ValidatingResolver {
    /// The `record_type` records of `name` (absolute; a final dot is optional) with their
    /// security. An answer that is partly bogus is bogus as a whole.
    pub async fn lookup(
        &self,
        name: &str,
        record_type: RecordType,
    ) -> Result<Validated, ValidationError> {
        let failed = |message: String| ValidationError::Failed {
            name: name.to_owned(),
            message,
        };
        let bogus = || ValidationError::Bogus {
            name: name.to_owned(),
        };
        let mut query_name = Name::from_ascii(name).map_err(|error| failed(error.to_string()))?;
        // Absolute: no search list, one query.
        query_name.set_fqdn(true);
        match self.resolver.lookup(query_name, record_type).await {
            Ok(lookup) => {
                let mut records = Vec::new();
                let mut security = Security::Secure;
                for record in lookup.answers() {
                    if record.record_type() == RecordType::RRSIG {
                        continue;
                    }
                    match record.proof {
                        Proof::Secure => {}
                        Proof::Insecure => security = Security::Insecure,
                        Proof::Bogus | Proof::Indeterminate => return Err(bogus()),
                    }
                    if record.record_type() == record_type {
                        records.push(record.data.clone());
                    }
                }
                Ok(Validated { records, security })
            }
            Err(NetError::Dns(DnsError::NoRecordsFound(no_records))) => Ok(Validated {
                records: Vec::new(),
                security: denial_security(no_records.authorities.as_deref().unwrap_or(&[])),
            }),
            Err(NetError::Dns(DnsError::Nsec {
                proof, response, ..
            })) => match proof {
                Proof::Secure | Proof::Insecure => Ok(Validated {
                    records: Vec::new(),
                    security: denial_security(&response.authorities),
                }),
                Proof::Bogus | Proof::Indeterminate => Err(bogus()),
            },
            Err(NetError::Dns(DnsError::DnssecBogus)) => Err(bogus()),
            Err(error) => Err(failed(error.to_string())),
        }
    }
}

/// A negative answer is secure when a validated NSEC or NSEC3 record proves it (RFC 4035
/// §5.4); otherwise it comes from an unsigned zone.
fn denial_security(authorities: &[Record]) -> Security {
    let proven = authorities.iter().any(|record| {
        matches!(record.record_type(), RecordType::NSEC | RecordType::NSEC3)
            && record.proof == Proof::Secure
    });
    if proven {
        Security::Secure
    } else {
        Security::Insecure
    }
}
