//! Where mail for a domain goes: its MX hosts in order of preference (RFC 5321 §5.1), the
//! domain itself when it has no MX (the implicit MX), nowhere when it publishes a null MX
//! (RFC 7505), or the configured relay host for everything. Then each host's addresses.
//!
//! The classification is what matters: a domain that does not exist or refuses mail is a
//! permanent failure (the sender gets a bounce now); a DNS failure is temporary (retried).
//!
//! `apply_dane` then asks the validating resolver which hosts have DANE TLSA records
//! (RFC 7672 §2.2) and gives those their own TLS demand; `dane` judges the certificates.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use mail_auth::common::cache::NoCache;
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::{DnsError, Error as AuthError, MX, RecordSet};
use tme_resolver::{MessageAuthenticator, Security, ValidatingResolver, ValidationError};

use crate::client::TlsMode;
use crate::metrics::{DaneHostOutcome, QueueMetrics};

/// The most MX hosts tried per attempt (the rest wait for the next attempt).
pub const HOSTS_PER_ATTEMPT_MAX: usize = 5;
/// The most addresses tried per host.
pub const ADDRESSES_PER_HOST_MAX: usize = 4;

/// Why a domain has no usable route now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// Retry later (DNS failure, no address yet): 4.4.3.
    Temporary(String),
    /// Retry later: a policy (MTA-STS, DANE) leaves no host to try. `status` is RFC 3463's.
    PolicyUnmet { status: &'static str, text: String },
    /// It will not work: the domain does not exist or takes no mail. `status` is the RFC 3463
    /// code for the DSN.
    Permanent { status: &'static str, text: String },
}

impl RouteError {
    pub fn text(&self) -> String {
        match self {
            RouteError::Temporary(text) => format!("4.4.3 {text}"),
            RouteError::Permanent { status, text } | RouteError::PolicyUnmet { status, text } => {
                format!("{status} {text}")
            }
        }
    }
}

/// One host to try, with the addresses to connect to.
#[derive(Debug, Clone)]
pub struct Host {
    /// The name (for logs, the DSN's Remote-MTA and TLS's server name).
    pub name: String,
    pub addresses: Vec<SocketAddr>,
    /// The host's own demand on TLS (DANE TLSA records, RFC 7672), which takes precedence
    /// over the destination's (RFC 8461 §2); None: the destination's.
    pub tls: Option<crate::client::TlsMode>,
}

/// Orders the MX records of `domain` into host names, or says why there are none.
/// `records` is what the MX query found (already sorted by preference); None means the
/// query said the name exists but has no MX (NODATA): the implicit MX is the domain itself.
pub fn mx_hosts(domain: &str, records: Option<&[MX]>) -> Result<Vec<String>, RouteError> {
    let Some(records) = records else {
        return Ok(vec![domain.to_owned()]);
    };
    let mut hosts = Vec::new();
    for record in records {
        for exchange in record.exchanges.iter() {
            let name = exchange.trim_end_matches('.');
            // RFC 7505 §3: a single MX whose exchange is "." means "no mail here".
            if name.is_empty() {
                if records.len() == 1 && record.exchanges.len() == 1 {
                    return Err(RouteError::Permanent {
                        status: "5.1.10",
                        text: format!("{domain} does not accept mail (null MX, RFC 7505)"),
                    });
                }
                continue;
            }
            if !hosts
                .iter()
                .any(|host: &String| host.eq_ignore_ascii_case(name))
            {
                hosts.push(name.to_ascii_lowercase());
            }
        }
    }
    if hosts.is_empty() {
        return Ok(vec![domain.to_owned()]);
    }
    hosts.truncate(HOSTS_PER_ATTEMPT_MAX);
    Ok(hosts)
}

/// Resolves the hosts for `domain` through the node's resolver.
pub async fn resolve_domain(
    resolver: &MessageAuthenticator,
    domain: &str,
    port: u16,
) -> Result<Vec<Host>, RouteError> {
    let lookup = resolver
        .mx_lookup(domain, None::<&NoCache<Box<str>, RecordSet<MX>>>)
        .await;
    let names = match lookup {
        Ok(records) => mx_hosts(domain, Some(&records.rrset))?,
        Err(AuthError::Dns(DnsError::RecordNotFound(ResponseCode::NXDomain))) => {
            return Err(RouteError::Permanent {
                status: "5.1.2",
                text: format!("the domain {domain} does not exist"),
            });
        }
        Err(AuthError::Dns(DnsError::RecordNotFound(_))) => mx_hosts(domain, None)?,
        Err(error) => {
            return Err(RouteError::Temporary(format!(
                "cannot look up the MX of {domain}: {error}"
            )));
        }
    };
    let mut hosts = Vec::with_capacity(names.len());
    let mut last_error = None;
    for name in names {
        match resolve_host(resolver, &name, port).await {
            Ok(addresses) if !addresses.is_empty() => hosts.push(Host {
                name,
                addresses,
                tls: None,
            }),
            Ok(_) => last_error = Some(format!("{name} has no address")),
            Err(error) => last_error = Some(error),
        }
    }
    if hosts.is_empty() {
        return Err(RouteError::Temporary(
            last_error.unwrap_or_else(|| format!("no host of {domain} has an address")),
        ));
    }
    Ok(hosts)
}

/// The addresses of one host name, IPv4 first then IPv6; an IP literal stands for itself.
pub async fn resolve_host(
    resolver: &MessageAuthenticator,
    name: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, String> {
    if let Ok(address) = name.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(address, port)]);
    }
    let mut addresses: Vec<SocketAddr> = Vec::new();
    let mut errors = Vec::new();
    match resolver
        .ipv4_lookup(
            name,
            None::<&NoCache<Box<str>, RecordSet<std::net::Ipv4Addr>>>,
        )
        .await
    {
        Ok(found) => addresses.extend(
            found
                .rrset
                .iter()
                .map(|address| SocketAddr::new(IpAddr::V4(*address), port)),
        ),
        Err(AuthError::Dns(DnsError::RecordNotFound(_))) => {}
        Err(error) => errors.push(error.to_string()),
    }
    match resolver
        .ipv6_lookup(
            name,
            None::<&NoCache<Box<str>, RecordSet<std::net::Ipv6Addr>>>,
        )
        .await
    {
        Ok(found) => addresses.extend(
            found
                .rrset
                .iter()
                .map(|address| SocketAddr::new(IpAddr::V6(*address), port)),
        ),
        Err(AuthError::Dns(DnsError::RecordNotFound(_))) => {}
        Err(error) => errors.push(error.to_string()),
    }
    if addresses.is_empty() && !errors.is_empty() {
        return Err(format!("cannot look up {name}: {}", errors.join("; ")));
    }
    addresses.truncate(ADDRESSES_PER_HOST_MAX);
    Ok(addresses)
}

/// The relay host of `queue.relay_host` (`host:port`, or `host` for port 25).
pub async fn resolve_relay(
    resolver: &MessageAuthenticator,
    relay: &str,
) -> Result<Vec<Host>, RouteError> {
    let (name, port) = split_host_port(relay)
        .ok_or_else(|| RouteError::Temporary(format!("relay host {relay:?} is not host:port")))?;
    let addresses = resolve_host(resolver, &name, port)
        .await
        .map_err(RouteError::Temporary)?;
    if addresses.is_empty() {
        return Err(RouteError::Temporary(format!(
            "relay host {name} has no address"
        )));
    }
    Ok(vec![Host {
        name,
        addresses,
        tls: None,
    }])
}

/// Splits `host:port`, `[v6]:port` or `host` (port 25).
pub fn split_host_port(text: &str) -> Option<(String, u16)> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Some((address.ip().to_string(), address.port()));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((
            host.to_owned(),
            port.parse().ok().filter(|port| *port != 0)?,
        )),
        Some(_) => None,
        None if !text.is_empty() => Some((text.to_owned(), 25)),
        None => None,
    }
}

/// DANE (RFC 7672 §2.2) applied to `domain`'s `hosts`, found on `port`: each host whose TLSA
/// records (`_PORT._tcp.HOST`) are secure gets `TlsMode::Dane` (STARTTLS required, the
/// certificate matched against them); hosts without secure records stay as they are
/// (opportunistic TLS, or MTA-STS); hosts whose records are bogus or cannot be looked up
/// are dropped. No host left: the mail waits (4.7.5), never sent in plain text.
pub async fn apply_dane(
    resolver: &ValidatingResolver,
    domain: &str,
    hosts: Vec<Host>,
    port: u16,
    metrics: &QueueMetrics,
) -> Result<Vec<Host>, RouteError> {
    use mail_auth::hickory_resolver::proto::rr::{RData, RecordType};
    let unmet = |text: String| RouteError::PolicyUnmet {
        status: "4.7.5",
        text: format!("DANE: {text}"),
    };
    // RFC 7672 §2.2.1: TLSA records count only for hosts named by a secure MX RRset; with
    // no MX, a secure denial of it makes the domain its own (implicit) MX host. A bogus MX
    // RRset, or one that cannot be checked, leaves nowhere safe to send: the mail waits.
    let secure_names: Vec<String> = match resolver.lookup(domain, RecordType::MX).await {
        Ok(answer) if answer.security == Security::Secure => {
            if answer.records.is_empty() {
                vec![domain.to_ascii_lowercase()]
            } else {
                answer
                    .records
                    .iter()
                    .filter_map(|record| match record {
                        RData::MX(mx) => Some(
                            mx.exchange
                                .to_ascii()
                                .trim_end_matches('.')
                                .to_ascii_lowercase(),
                        ),
                        _ => None,
                    })
                    .collect()
            }
        }
        Ok(_) => {
            for _ in &hosts {
                metrics.count_dane_host(DaneHostOutcome::Insecure);
            }
            return Ok(hosts);
        }
        Err(error) => {
            let outcome = match error {
                ValidationError::Bogus { .. } => DaneHostOutcome::Bogus,
                ValidationError::Failed { .. } => DaneHostOutcome::Failed,
            };
            metrics.count_dane_host(outcome);
            tracing::warn!(%domain, %error, "DANE: the MX records cannot be trusted; the mail waits");
            return Err(unmet(format!("the MX records of {domain}: {error}")));
        }
    };
    let mut kept = Vec::with_capacity(hosts.len());
    let mut last_refusal = None;
    for mut host in hosts {
        let name = host.name.to_ascii_lowercase();
        if !secure_names.contains(&name) {
            // The everyday resolver named a host the validated MX RRset does not (a cache
            // out of step): nothing secure is known of it.
            metrics.count_dane_host(DaneHostOutcome::Insecure);
            kept.push(host);
            continue;
        }
        let tlsa_name = format!("_{port}._tcp.{name}");
        match resolver.lookup(&tlsa_name, RecordType::TLSA).await {
            Ok(answer) if answer.security == Security::Secure => {
                let records = crate::dane::records_of(&answer.records);
                if records.is_empty() {
                    metrics.count_dane_host(DaneHostOutcome::NoRecords);
                    kept.push(host);
                    continue;
                }
                let usable = records.iter().any(crate::dane::Tlsa::usable);
                metrics.count_dane_host(if usable {
                    DaneHostOutcome::Usable
                } else {
                    DaneHostOutcome::Unusable
                });
                tracing::info!(host = %name, records = records.len(), usable, "DANE: TLSA records found; TLS required");
                match crate::dane::tls_config(&name, records, metrics.dane_counters()) {
                    Ok(config) => {
                        host.tls = Some(TlsMode::Dane(config));
                        kept.push(host);
                    }
                    Err(error) => {
                        last_refusal = Some(format!("cannot set up TLS for {name}: {error}"));
                    }
                }
            }
            Ok(_) => {
                // RFC 7672 §2.2: insecure TLSA records are as good as none.
                metrics.count_dane_host(DaneHostOutcome::Insecure);
                kept.push(host);
            }
            Err(error) => {
                // RFC 7672 §2.2: a bogus or failed TLSA lookup rules the host out.
                metrics.count_dane_host(match error {
                    ValidationError::Bogus { .. } => DaneHostOutcome::Bogus,
                    ValidationError::Failed { .. } => DaneHostOutcome::Failed,
                });
                tracing::warn!(host = %name, %error, "DANE: the TLSA records cannot be trusted; host skipped");
                last_refusal = Some(format!("the TLSA records of {name}: {error}"));
            }
        }
    }
    if kept.is_empty() {
        return Err(unmet(
            last_refusal.unwrap_or_else(|| format!("no MX host of {domain} can be used")),
        ));
    }
    Ok(kept)
}

/// A shared resolver handle.
pub type Resolver = Arc<MessageAuthenticator>;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mx(preference: u16, exchanges: &[&str]) -> MX {
        MX {
            exchanges: exchanges.iter().map(|name| Box::from(*name)).collect(),
            preference,
        }
    }

    #[test]
    fn hosts_follow_preference_without_duplicates() {
        let records = [
            mx(10, &["a.example.", "b.example."]),
            mx(20, &["A.example."]),
        ];
        assert_eq!(
            mx_hosts("example.org", Some(&records)).unwrap(),
            ["a.example", "b.example"]
        );
    }

    #[test]
    fn no_mx_means_the_domain_itself() {
        assert_eq!(mx_hosts("example.org", None).unwrap(), ["example.org"]);
    }

    #[test]
    fn a_null_mx_refuses_mail() {
        assert!(matches!(
            mx_hosts("example.org", Some(&[mx(0, &["."])])),
            Err(RouteError::Permanent {
                status: "5.1.10",
                ..
            })
        ));
    }

    #[test]
    fn relay_host_forms() {
        assert_eq!(
            split_host_port("smtp.example:587"),
            Some(("smtp.example".into(), 587))
        );
        assert_eq!(
            split_host_port("smtp.example"),
            Some(("smtp.example".into(), 25))
        );
        assert_eq!(split_host_port("[::1]:2525"), Some(("::1".into(), 2525)));
        assert_eq!(split_host_port("smtp.example:0"), None);
    }
}
