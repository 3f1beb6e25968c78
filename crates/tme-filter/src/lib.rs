//! Judges an inbound message before it is stored: is it authentic (SPF, DKIM, DMARC and ARC),
//! does its client sit on a DNS blocklist, does it score as spam (our own rules, and rspamd
//! when one is configured)? The answer is a [`Verdict`]: header fields to put above the
//! message (`Authentication-Results`, RFC 8601, and the spam score) and where the message
//! goes: the Inbox, Junk, or nowhere (refused).
//!
//! Each check is a module that adds its findings (`authenticity`, `dnsbl`, `rspamd`); `points`
//! holds our rules' points and `verdict` turns the findings into the disposition. The checks
//! do DNS through the resolver built from `[resolver]` (`tme-resolver`; tests point it at a local
//! authoritative server) and HTTP to rspamd; everything else here is pure.
//!
//! What this crate must not do: store anything, speak SMTP (the server maps a refusal to a
//! reply code, in `tme-smtp`'s `reply`), or change the message's bytes (it only adds fields
//! above them).

mod authenticity;
mod dnsbl;
pub mod points;
pub mod rspamd;
pub mod verdict;

pub use verdict::{Disposition, Finding, InboundMessage, Refusal, Verdict};

use std::time::Duration;

use mail_auth::MessageAuthenticator;
use tme_core::config::{FilterConfig, ResolverConfig};

use crate::rspamd::RspamdClient;

/// Why the filter cannot be set up (at node start).
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The system's resolver config cannot be read, or the resolver cannot be built: the
    /// operator's to fix (`/etc/resolv.conf`, or `resolver.nameservers`).
    #[error("cannot set up the DNS resolver: {0}")]
    Resolver(String),
}

/// The checks an inbound message goes through, built once per node from its config.
#[derive(Clone)]
pub struct Filter {
    config: FilterConfig,
    /// Names this node in `Authentication-Results` (the authserv-id, RFC 8601 §2.5).
    authserv_id: String,
    /// Present when `filter.rspamd_url` is set.
    rspamd: Option<RspamdClient>,
    /// mail-auth's verifier around the node's resolver; cloning shares its cache.
    authenticator: MessageAuthenticator,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Filter")
            .field("config", &self.config)
            .field("authserv_id", &self.authserv_id)
            .field("rspamd", &self.rspamd)
            .finish_non_exhaustive()
    }
}

impl Filter {
    pub fn new(
        config: FilterConfig,
        resolver: &ResolverConfig,
        authserv_id: String,
    ) -> Result<Filter, FilterError> {
        let rspamd = config.rspamd_url.clone().map(|url| {
            RspamdClient::new(
                url,
                Duration::from_millis(config.rspamd_timeout_ms),
                config.rspamd_reject_action,
            )
        });
        Ok(Filter {
            authenticator: tme_resolver::build(resolver)
                .map_err(|error| FilterError::Resolver(error.to_string()))?,
            config,
            authserv_id,
            rspamd,
        })
    }

    /// Runs every configured check on one message. Never fails: a check that cannot reach
    /// its peer records a temporary error as its finding and the others still count.
    pub async fn judge(&self, message: &InboundMessage<'_>) -> Verdict {
        // An IPv4 client seen on an IPv6 socket is judged by its IPv4 address (SPF `ip4`,
        // blocklist names).
        let message = InboundMessage {
            client_ip: message.client_ip.to_canonical(),
            ..*message
        };
        let rspamd_check = async {
            match &self.rspamd {
                Some(rspamd) => Some(rspamd.check(&message).await),
                None => None,
            }
        };
        let (mut findings, blocklist_findings, rspamd_finding) = tokio::join!(
            authenticity::check(&self.authenticator, &self.authserv_id, &message),
            dnsbl::check(
                &self.authenticator,
                &self.config.dnsbl_zones,
                message.client_ip
            ),
            rspamd_check,
        );
        findings.extend(blocklist_findings);
        findings.extend(rspamd_finding);
        Verdict::from_findings(&self.authserv_id, findings, self.config.junk_score_min)
    }
}
