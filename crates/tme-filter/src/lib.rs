//! Judges an inbound message before it is stored: is it authentic (SPF, DKIM, DMARC and ARC),
//! does its client sit on a DNS blocklist, does it score as spam (our own rules, and rspamd
//! when one is configured)? The answer is a [`Verdict`]: header fields to put above the
//! message (`Authentication-Results`, RFC 8601, and the spam score) and where the message
//! goes: the Inbox, Junk, or nowhere (refused).
//!
//! Each check is a module that adds its findings to the verdict; `score` turns the findings
//! into the disposition. The checks do DNS and HTTP through clients built from config (whose
//! upstreams tests point at local peers); everything else here is pure.
//!
//! What this crate must not do: store anything, speak SMTP (the server maps a refusal to a
//! reply code, in `tme-smtp`'s `reply`), or change the message's bytes (it only adds fields
//! above them).

pub mod rspamd;
pub mod verdict;

pub use verdict::{Disposition, Finding, InboundMessage, Refusal, Verdict};

use std::time::Duration;

use tme_core::config::FilterConfig;

use crate::rspamd::RspamdClient;

/// The checks an inbound message goes through, built once per node from its config.
#[derive(Debug, Clone)]
pub struct Filter {
    config: FilterConfig,
    /// Names this node in `Authentication-Results` (the authserv-id, RFC 8601 §2.5).
    authserv_id: String,
    /// Present when `filter.rspamd_url` is set.
    rspamd: Option<RspamdClient>,
}

impl Filter {
    pub fn new(config: FilterConfig, authserv_id: String) -> Filter {
        let rspamd = config.rspamd_url.clone().map(|url| {
            RspamdClient::new(
                url,
                Duration::from_millis(config.rspamd_timeout_ms),
                config.rspamd_reject_action,
            )
        });
        Filter {
            config,
            authserv_id,
            rspamd,
        }
    }

    /// Runs every configured check on one message. Never fails: a check that cannot reach
    /// its peer records a temporary error as its finding and the others still count.
    pub async fn judge(&self, message: &InboundMessage<'_>) -> Verdict {
        let mut findings = Vec::new();
        if let Some(rspamd) = &self.rspamd {
            findings.push(rspamd.check(message).await);
        }
        Verdict::from_findings(&self.authserv_id, findings, self.config.junk_score_min)
    }
}
