//! What the checks found and what follows from it: the [`Verdict`] the SMTP server acts on.
//! Pure data and arithmetic, no I/O.

use std::net::IpAddr;

/// The message and its envelope, as the checks see them.
#[derive(Debug, Clone, Copy)]
pub struct InboundMessage<'a> {
    pub client_ip: IpAddr,
    /// The name the client gave in HELO/EHLO.
    pub helo_name: &'a str,
    /// The reverse-path without brackets; "" for the null sender `<>`.
    pub mail_from: &'a str,
    /// The forward-paths without brackets, as the client gave them at RCPT.
    pub recipients: &'a [String],
    /// Names this transaction in our logs and `Received` field, and in rspamd's log.
    pub queue_id: &'a str,
    /// The session runs over TLS.
    pub tls: bool,
    /// The content exactly as received, before our trace headers.
    pub message: &'a [u8],
}

/// One check's contribution.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The rule, short and stable (`DMARC_FAIL`, `DNSBL_zen.spamhaus.org`), for logs,
    /// metrics and the score header.
    pub rule: String,
    /// Spam points; negative for good signs, 0 for findings that only inform.
    pub points: f64,
    /// The `Authentication-Results` resinfo this check reports (`spf=pass
    /// smtp.mailfrom=example.com`), if it is an authentication method (RFC 8601 §2.7).
    pub authentication_result: Option<String>,
    /// Set when this finding alone refuses the message (DMARC `p=reject`, a blocklist whose
    /// policy is to reject).
    pub refusal: Option<Refusal>,
    /// Set when this finding alone files the message in Junk (DMARC `p=quarantine`).
    pub junk: bool,
}

/// Why a message is refused; `tme-smtp` turns this into a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// DMARC failed and the domain's policy is `p=reject` (RFC 7489 §6.3).
    DmarcReject { domain: String },
    /// The client's address is listed on a blocklist that refuses.
    Blocklisted { zone: String },
    /// The score reached the refusal threshold, or rspamd answered `reject`.
    Spam,
}

/// Where the message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Inbox,
    Junk,
    Refuse(Refusal),
}

/// The outcome of all checks on one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Header fields to put above the message (after our trace headers), each ending in
    /// CRLF. Empty when no check ran.
    pub header_fields: String,
    pub disposition: Disposition,
    pub score: f64,
    pub findings: Vec<Finding>,
}

impl Verdict {
    /// Combines findings: the first refusal wins; then a finding that files in Junk, or a
    /// score at or above `junk_score_min`, means Junk; otherwise the Inbox.
    pub fn from_findings(
        authserv_id: &str,
        findings: Vec<Finding>,
        junk_score_min: f64,
    ) -> Verdict {
        let score: f64 = findings.iter().map(|finding| finding.points).sum();
        let disposition =
            if let Some(refusal) = findings.iter().find_map(|finding| finding.refusal.clone()) {
                Disposition::Refuse(refusal)
            } else if findings.iter().any(|finding| finding.junk) || score >= junk_score_min {
                Disposition::Junk
            } else {
                Disposition::Inbox
            };
        let results: Vec<&str> = findings
            .iter()
            .filter_map(|finding| finding.authentication_result.as_deref())
            .collect();
        let header_fields = if findings.is_empty() {
            String::new()
        } else {
            // RFC 8601 §2.2: "none" when no method ran.
            let results = if results.is_empty() {
                " none".to_owned()
            } else {
                results
                    .iter()
                    .map(|result| format!(";\r\n\t{result}"))
                    .collect::<String>()
            };
            format!("Authentication-Results: {authserv_id}{results}\r\n")
        };
        Verdict {
            header_fields,
            disposition,
            score,
            findings,
        }
    }
}
