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
use tme_resolver::{MessageAuthenticator, Security, ValidatedLookup, ValidationError};

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
/// records are secure gets `TlsMode::Dane` (STARTTLS required, the certificate matched
/// against them; with none usable, TLS still required without authentication, §2.2 and
/// §3.1.3); hosts without secure records stay as they are (opportunistic TLS, or MTA-STS);
/// hosts whose address or TLSA records are bogus or cannot be looked up are dropped (§2.1.1).
/// No host left: the mail waits (4.7.5), never sent in plain text.
pub async fn apply_dane<R: ValidatedLookup>(
    resolver: &R,
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
    // no MX, a secure denial of it makes the domain its own (implicit) MX host (§2.2.2). A
    // bogus MX RRset, or one that cannot be checked, leaves nowhere safe to send: the mail
    // waits.
    let secure_names: Vec<String> = match resolver.validated_lookup(domain, RecordType::MX).await {
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
            metrics.count_dane_host(outcome_of(&error));
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
        match host_dane(resolver, &name, port).await {
            HostDane::Without(outcome) => {
                metrics.count_dane_host(outcome);
                kept.push(host);
            }
            HostDane::Refused { outcome, reason } => {
                metrics.count_dane_host(outcome);
                tracing::warn!(host = %name, %reason, "DANE: host skipped");
                last_refusal = Some(reason);
            }
            HostDane::Records {
                base,
                names,
                records,
            } => {
                let usable = records.iter().any(crate::dane::Tlsa::usable);
                metrics.count_dane_host(if usable {
                    DaneHostOutcome::Usable
                } else {
                    DaneHostOutcome::Unusable
                });
                tracing::info!(host = %name, tlsa_base = %base, records = records.len(), usable, "DANE: TLSA records found; TLS required");
                match crate::dane::tls_config(names, records, metrics.dane_counters()) {
                    Ok(config) => {
                        host.tls = Some(TlsMode::Dane {
                            config,
                            server_name: base,
                        });
                        kept.push(host);
                    }
                    Err(error) => {
                        last_refusal = Some(format!("cannot set up TLS for {name}: {error}"));
                    }
                }
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

/// Whether `resolver` validates: the root zone's DNSKEY RRset comes back secure, which needs
/// an upstream that passes DNSSEC records through and the root's keys matching the trust
/// anchors. Without it every signed answer would look bogus and DANE would hold all mail
/// for signed domains (RFC 7672 §2.1.1 treats bogus as an error).
pub async fn resolver_validates<R: ValidatedLookup>(resolver: &R) -> bool {
    use mail_auth::hickory_resolver::proto::rr::RecordType;
    match resolver.validated_lookup(".", RecordType::DNSKEY).await {
        Ok(answer) => answer.security == Security::Secure && !answer.records.is_empty(),
        Err(error) => {
            tracing::debug!(%error, "DANE: the root's keys do not validate");
            false
        }
    }
}

/// What DANE makes of one host named by a secure MX RRset (or the implicit MX).
#[derive(Debug)]
enum HostDane {
    /// No DANE for this host (no secure TLSA records): the destination's TLS applies.
    Without(DaneHostOutcome),
    /// Secure TLSA `records` found at `_PORT._tcp.BASE`; `names` are the reference
    /// identifiers of RFC 7672 §3.2.2, `base` first.
    Records {
        base: String,
        names: Vec<String>,
        records: Vec<crate::dane::Tlsa>,
    },
    /// Something DANE needed could not be trusted or looked up: the host is not used.
    Refused {
        outcome: DaneHostOutcome,
        reason: String,
    },
}

/// The TLSA base domain and records of the MX host `name` (RFC 7672 §2.2.2, §2.3).
///
/// The host's address records come first: insecure ones (including any insecure CNAME on
/// the way, §2.1.3) mean no DANE; bogus or failed ones rule the host out (§2.1.1). When the
/// secure address lookup went through CNAMEs, TLSA records are looked for at the fully
/// expanded name first, then at the original name; the first secure, non-empty TLSA RRset
/// decides, and a bogus or failed TLSA lookup rules the host out rather than falling back
/// (an attacker must not be able to turn DANE off by breaking a lookup).
async fn host_dane<R: ValidatedLookup>(resolver: &R, name: &str, port: u16) -> HostDane {
    use mail_auth::hickory_resolver::proto::rr::RecordType;
    let refused = |error: ValidationError, what: &str| HostDane::Refused {
        outcome: outcome_of(&error),
        reason: format!("the {what} records of {name}: {error}"),
    };
    // An IP literal is not a DNS name: nothing to look up, no DANE.
    if name.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
        return HostDane::Without(DaneHostOutcome::Insecure);
    }
    let mut address = match resolver.validated_lookup(name, RecordType::A).await {
        Ok(answer) => answer,
        Err(error) => return refused(error, "address"),
    };
    if address.records.is_empty() && address.canonical_name.is_none() {
        // An IPv6-only host: its AAAA answer says where a CNAME chain leads.
        match resolver.validated_lookup(name, RecordType::AAAA).await {
            Ok(answer) => address = answer,
            Err(error) => return refused(error, "address"),
        }
    }
    if address.security != Security::Secure {
        return HostDane::Without(DaneHostOutcome::Insecure);
    }
    let mut bases = Vec::with_capacity(2);
    if let Some(expanded) = address.canonical_name.filter(|expanded| expanded != name) {
        bases.push(expanded);
    }
    bases.push(name.to_owned());
    let mut outcome = DaneHostOutcome::NoRecords;
    for base in &bases {
        let tlsa_name = format!("_{port}._tcp.{base}");
        match resolver
            .validated_lookup(&tlsa_name, RecordType::TLSA)
            .await
        {
            Ok(answer) if answer.security == Security::Secure => {
                let records = crate::dane::records_of(&answer.records);
                if records.is_empty() {
                    continue;
                }
                // §3.2.2: the name the records were found at, and the MX host name.
                let mut names = vec![base.clone()];
                if base != name {
                    names.push(name.to_owned());
                }
                return HostDane::Records {
                    base: base.clone(),
                    names,
                    records,
                };
            }
            // §2.2: insecure TLSA records are as good as none.
            Ok(_) => outcome = DaneHostOutcome::Insecure,
            Err(error) => return refused(error, "TLSA"),
        }
    }
    HostDane::Without(outcome)
}

fn outcome_of(error: &ValidationError) -> DaneHostOutcome {
    match error {
        ValidationError::Bogus { .. } => DaneHostOutcome::Bogus,
        ValidationError::Failed { .. } => DaneHostOutcome::Failed,
    }
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

    mod dane {
        //! `apply_dane` against answers made up here (a fake validating resolver), for the
        //! cases a signed zone cannot easily produce: CNAME chains, SERVFAIL, bogus links.

        use std::collections::HashMap;
        use std::sync::Mutex;

        use mail_auth::hickory_resolver::proto::rr::rdata::{A, TLSA, tlsa};
        use mail_auth::hickory_resolver::proto::rr::{Name, RData, RecordType};
        use tme_resolver::Validated;

        use super::super::*;

        #[derive(Default)]
        struct FakeDns {
            answers: HashMap<(String, RecordType), Result<Validated, ValidationError>>,
            asked: Mutex<Vec<(String, RecordType)>>,
        }

        impl ValidatedLookup for FakeDns {
            fn validated_lookup(
                &self,
                name: &str,
                record_type: RecordType,
            ) -> impl std::future::Future<Output = Result<Validated, ValidationError>> + Send
            {
                self.asked
                    .lock()
                    .unwrap()
                    .push((name.to_owned(), record_type));
                // What is not listed securely does not exist.
                let answer = self
                    .answers
                    .get(&(name.to_owned(), record_type))
                    .cloned()
                    .unwrap_or(Ok(answer(Vec::new(), Security::Secure, None)));
                std::future::ready(answer)
            }
        }

        impl FakeDns {
            fn set(
                mut self,
                name: &str,
                record_type: RecordType,
                answer: Result<Validated, ValidationError>,
            ) -> Self {
                self.answers.insert((name.to_owned(), record_type), answer);
                self
            }

            fn asked(&self, name: &str, record_type: RecordType) -> bool {
                self.asked
                    .lock()
                    .unwrap()
                    .contains(&(name.to_owned(), record_type))
            }
        }

        fn answer(
            records: Vec<RData>,
            security: Security,
            canonical_name: Option<&str>,
        ) -> Validated {
            Validated {
                records,
                security,
                canonical_name: canonical_name.map(str::to_owned),
            }
        }

        fn mx_record(exchange: &str) -> RData {
            RData::MX(mail_auth::hickory_resolver::proto::rr::rdata::MX::new(
                10,
                Name::from_ascii(exchange).unwrap(),
            ))
        }

        fn address() -> RData {
            RData::A(A(std::net::Ipv4Addr::new(192, 0, 2, 1)))
        }

        fn tlsa_record(usage: u8) -> RData {
            RData::TLSA(TLSA::new(
                tlsa::CertUsage::from(usage),
                tlsa::Selector::from(1),
                tlsa::Matching::from(1),
                vec![7; 32],
            ))
        }

        fn bogus(name: &str) -> Result<Validated, ValidationError> {
            Err(ValidationError::Bogus {
                name: name.to_owned(),
            })
        }

        fn servfail(name: &str) -> Result<Validated, ValidationError> {
            Err(ValidationError::Failed {
                name: name.to_owned(),
                message: "SERVFAIL".to_owned(),
            })
        }

        fn host(name: &str) -> Host {
            Host {
                name: name.to_owned(),
                addresses: vec!["192.0.2.1:25".parse().unwrap()],
                tls: None,
            }
        }

        /// `example.org`'s secure MX names `mx.example.org` (and `mx2.example.org`).
        fn dns() -> FakeDns {
            FakeDns::default().set(
                "example.org",
                RecordType::MX,
                Ok(answer(
                    vec![mx_record("mx.example.org."), mx_record("mx2.example.org.")],
                    Security::Secure,
                    None,
                )),
            )
        }

        /// `mx.example.org` is a secure alias of `mail.provider.net`.
        fn aliased(security: Security) -> FakeDns {
            dns().set(
                "mx.example.org",
                RecordType::A,
                Ok(answer(vec![address()], security, Some("mail.provider.net"))),
            )
        }

        async fn apply(dns: &FakeDns, hosts: &[&str]) -> Result<Vec<Host>, RouteError> {
            let metrics =
                QueueMetrics::register(&mut prometheus_client::registry::Registry::default());
            apply_dane(
                dns,
                "example.org",
                hosts.iter().map(|name| host(name)).collect(),
                25,
                &metrics,
            )
            .await
        }

        /// The SNI name of a host under DANE; None: no DANE.
        fn dane_name(host: &Host) -> Option<&str> {
            match &host.tls {
                Some(TlsMode::Dane { server_name, .. }) => Some(server_name),
                _ => None,
            }
        }

        #[tokio::test]
        async fn a_secure_cname_chain_looks_at_its_target_first() {
            // RFC 7672 §2.2.2: TLSA records at the expanded name win.
            let dns = aliased(Security::Secure)
                .set(
                    "_25._tcp.mail.provider.net",
                    RecordType::TLSA,
                    Ok(answer(vec![tlsa_record(3)], Security::Secure, None)),
                )
                .set(
                    "_25._tcp.mx.example.org",
                    RecordType::TLSA,
                    Ok(answer(vec![tlsa_record(2)], Security::Secure, None)),
                );
            let hosts = apply(&dns, &["mx.example.org"]).await.unwrap();
            assert_eq!(dane_name(&hosts[0]), Some("mail.provider.net"));
            assert!(!dns.asked("_25._tcp.mx.example.org", RecordType::TLSA));
        }

        #[tokio::test]
        async fn no_records_at_the_target_falls_back_to_the_original_name() {
            let dns = aliased(Security::Secure).set(
                "_25._tcp.mx.example.org",
                RecordType::TLSA,
                Ok(answer(vec![tlsa_record(3)], Security::Secure, None)),
            );
            let hosts = apply(&dns, &["mx.example.org"]).await.unwrap();
            assert!(dns.asked("_25._tcp.mail.provider.net", RecordType::TLSA));
            assert_eq!(dane_name(&hosts[0]), Some("mx.example.org"));
        }

        #[tokio::test]
        async fn an_insecure_chain_means_no_dane() {
            // RFC 7672 §2.1.3: an insecure link makes everything after it insecure.
            let dns = aliased(Security::Insecure).set(
                "_25._tcp.mx.example.org",
                RecordType::TLSA,
                Ok(answer(vec![tlsa_record(3)], Security::Secure, None)),
            );
            let hosts = apply(&dns, &["mx.example.org"]).await.unwrap();
            assert_eq!(dane_name(&hosts[0]), None);
            assert!(!dns.asked("_25._tcp.mail.provider.net", RecordType::TLSA));
            assert!(!dns.asked("_25._tcp.mx.example.org", RecordType::TLSA));
        }

        #[tokio::test]
        async fn a_failed_lookup_at_the_target_does_not_fall_back() {
            // A broken lookup must not turn DANE off (RFC 7672 §2.1.1): the host is skipped.
            for failure in [
                bogus("_25._tcp.mail.provider.net"),
                servfail("_25._tcp.mail.provider.net"),
            ] {
                let dns = aliased(Security::Secure).set(
                    "_25._tcp.mail.provider.net",
                    RecordType::TLSA,
                    failure,
                );
                let error = apply(&dns, &["mx.example.org"]).await.unwrap_err();
                assert!(
                    matches!(
                        &error,
                        RouteError::PolicyUnmet {
                            status: "4.7.5",
                            ..
                        }
                    ),
                    "{error:?}"
                );
                assert!(!dns.asked("_25._tcp.mx.example.org", RecordType::TLSA));
            }
        }

        #[tokio::test]
        async fn tlsa_failures_skip_the_host_only() {
            // SERVFAIL or bogus TLSA at the first MX: the second (without TLSA) is used.
            for failure in [
                servfail("_25._tcp.mx.example.org"),
                bogus("_25._tcp.mx.example.org"),
            ] {
                let dns = dns().set("_25._tcp.mx.example.org", RecordType::TLSA, failure);
                let hosts = apply(&dns, &["mx.example.org", "mx2.example.org"])
                    .await
                    .unwrap();
                assert_eq!(hosts.len(), 1);
                assert_eq!(hosts[0].name, "mx2.example.org");
                assert_eq!(dane_name(&hosts[0]), None);
                // Alone, it leaves nothing: the mail waits, it is not sent in plain text.
                let error = apply(&dns, &["mx.example.org"]).await.unwrap_err();
                assert!(error.text().starts_with("4.7.5 DANE"), "{error:?}");
            }
        }

        #[tokio::test]
        async fn bogus_or_failed_address_records_skip_the_host() {
            for failure in [bogus("mx.example.org"), servfail("mx.example.org")] {
                let dns = dns().set("mx.example.org", RecordType::A, failure);
                let error = apply(&dns, &["mx.example.org"]).await.unwrap_err();
                assert!(error.text().starts_with("4.7.5 DANE"), "{error:?}");
            }
        }

        #[tokio::test]
        async fn unusable_records_still_require_tls() {
            // RFC 7672 §2.2 and §3.1.3: PKIX-TA/PKIX-EE only: TLS mandatory, not
            // authenticated (the verifier says Unauthenticated, dane.rs).
            let dns = dns().set(
                "_25._tcp.mx.example.org",
                RecordType::TLSA,
                Ok(answer(
                    vec![tlsa_record(0), tlsa_record(1)],
                    Security::Secure,
                    None,
                )),
            );
            let hosts = apply(&dns, &["mx.example.org"]).await.unwrap();
            assert_eq!(dane_name(&hosts[0]), Some("mx.example.org"));
        }

        #[tokio::test]
        async fn the_resolver_validates_when_the_root_keys_are_secure() {
            let dnskey = || {
                RData::DNSSEC(
                    mail_auth::hickory_resolver::proto::dnssec::rdata::DNSSECRData::DNSKEY(
                        mail_auth::hickory_resolver::proto::dnssec::rdata::DNSKEY::new(
                            true,
                            true,
                            false,
                            mail_auth::hickory_resolver::proto::dnssec::PublicKeyBuf::new(
                                vec![1; 32],
                                mail_auth::hickory_resolver::proto::dnssec::Algorithm::ED25519,
                            ),
                        ),
                    ),
                )
            };
            let root = |answer| FakeDns::default().set(".", RecordType::DNSKEY, answer);
            assert!(
                resolver_validates(&root(Ok(answer(vec![dnskey()], Security::Secure, None)))).await
            );
            // Stripped signatures: insecure or bogus; a private DNS without a root: nothing.
            assert!(
                !resolver_validates(&root(Ok(answer(vec![dnskey()], Security::Insecure, None))))
                    .await
            );
            assert!(!resolver_validates(&root(bogus("."))).await);
            assert!(!resolver_validates(&root(servfail("."))).await);
            assert!(
                !resolver_validates(&root(Ok(answer(Vec::new(), Security::Secure, None)))).await
            );
        }

        #[tokio::test]
        async fn insecure_tlsa_or_mx_records_do_not_count() {
            let dns = dns().set(
                "_25._tcp.mx.example.org",
                RecordType::TLSA,
                Ok(answer(vec![tlsa_record(3)], Security::Insecure, None)),
            );
            let hosts = apply(&dns, &["mx.example.org"]).await.unwrap();
            assert_eq!(dane_name(&hosts[0]), None);
            let dns = FakeDns::default().set(
                "example.org",
                RecordType::MX,
                Ok(answer(
                    vec![mx_record("mx.example.org.")],
                    Security::Insecure,
                    None,
                )),
            );
            let hosts = apply(&dns, &["mx.example.org"]).await.unwrap();
            assert_eq!(dane_name(&hosts[0]), None);
            assert!(!dns.asked("_25._tcp.mx.example.org", RecordType::TLSA));
        }
    }
}
