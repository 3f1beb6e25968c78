//! The DNS resolver the node asks (authenticity checks, blocklists, MX lookups of the
//! outbound queue), built from `[resolver]`: the listed servers over UDP
//! and TCP (tests point it at a local authoritative server), or the system's
//! (`/etc/resolv.conf`) when the list is empty; either way with the configured timeout. It
//! caches answers by their TTL. An unreadable system config leaves the node with a resolver
//! that answers nothing (every check a temporary error) rather than without an MX.

use std::time::Duration;

use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::system_conf::read_system_conf;
use tme_core::config::ResolverConfig as ResolverSettings;

pub use mail_auth::MessageAuthenticator;

/// The resolver cannot be built from its settings.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the DNS resolver: {0}")]
pub struct ResolverError(String);

/// Attempts per query before it is a temporary error (one retry covers a lost datagram).
const QUERY_ATTEMPTS: usize = 2;

/// The resolver of `settings`; cloning it shares its cache.
pub fn build(settings: &ResolverSettings) -> Result<MessageAuthenticator, ResolverError> {
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
    MessageAuthenticator::new(config, options).map_err(|error| ResolverError(error.to_string()))
}
