//! What the SMTP server counts, as Prometheus metrics: connections, recipients and messages
//! by outcome, how sessions end, and how long a message waits between the end of its content
//! and our final reply (the accept latency: authenticity checks plus the durable write).
//!
//! The metrics live as long as the node, across restarts of the role; the node's registry
//! serves them on `/metrics`. Outcome labels are fixed words (never client input), so the
//! number of series stays bounded.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::reply::RecipientRefusal;

/// One label, `outcome`, whose values are the fixed words below.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: &'static str,
}

/// The SMTP server's metrics (names under the registry's prefix, e.g. `tme_smtp_`).
#[derive(Debug)]
pub struct Metrics {
    /// `connections_total{outcome="accepted"|"refused_limit"}`.
    pub connections: Family<Outcome, Counter>,
    /// `connections_open`: sessions running now.
    pub connections_open: Gauge,
    /// `sessions_ended_total{outcome="quit"|"client_closed"|"timeout"|"shutdown"|"io_error"|"tls_failed"}`.
    pub sessions_ended: Family<Outcome, Counter>,
    /// `recipients_total{outcome=...}`: accepted, or the refusal (see `recipient_outcome`).
    pub recipients: Family<Outcome, Counter>,
    /// `messages_total{outcome=...}`: `accepted` (250: stored, or spooled), `spooled` (the
    /// accepted ones that went to the inbound spool while the store was unavailable),
    /// `refused_size`, `refused_policy` (5xx after the content: DMARC, blocklists, spam),
    /// `deferred` (4xx after the content: the sender retries).
    pub messages: Family<Outcome, Counter>,
    /// `accept_duration_seconds`: end of content to final reply, for accepted messages.
    pub accept_duration_seconds: Histogram,
    /// `spool_entries_total{outcome="delivered"|"quarantined"}`: what became of entries of
    /// the inbound spool (messages acknowledged while the store was unavailable).
    pub spool_entries: Family<Outcome, Counter>,
    /// `spool_entries_waiting`: entries in the spool when last looked at.
    pub spool_entries_waiting: Gauge,
    /// `spool_copies_dropped_total`: copies not delivered from the spool because their
    /// account was deleted meanwhile.
    pub spool_copies_dropped: Counter,
    /// `spool_delivery_failures_total`: attempts to deliver a spool entry that failed because
    /// the store was still unavailable.
    pub spool_delivery_failures: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            connections: Family::default(),
            connections_open: Gauge::default(),
            sessions_ended: Family::default(),
            recipients: Family::default(),
            messages: Family::default(),
            // 1 ms to about 16 s.
            accept_duration_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            spool_entries: Family::default(),
            spool_entries_waiting: Gauge::default(),
            spool_copies_dropped: Counter::default(),
            spool_delivery_failures: Counter::default(),
        }
    }
}

impl Metrics {
    /// Creates the metrics and registers them in `registry` (usually a sub-registry with
    /// the prefix `smtp`).
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics::default();
        registry.register(
            "connections",
            "Connections by outcome (accepted, or refused at a connection limit)",
            metrics.connections.clone(),
        );
        registry.register(
            "connections_open",
            "Sessions running now",
            metrics.connections_open.clone(),
        );
        registry.register(
            "sessions_ended",
            "Sessions by how they ended",
            metrics.sessions_ended.clone(),
        );
        registry.register(
            "recipients",
            "Recipients by outcome at RCPT",
            metrics.recipients.clone(),
        );
        registry.register(
            "messages",
            "Messages by outcome after their content: accepted, refused, deferred",
            metrics.messages.clone(),
        );
        registry.register(
            "accept_duration_seconds",
            "Time from the end of a message's content to the 250 reply",
            metrics.accept_duration_seconds.clone(),
        );
        registry.register(
            "spool_entries",
            "Inbound spool entries by outcome: delivered to the store, or quarantined",
            metrics.spool_entries.clone(),
        );
        registry.register(
            "spool_entries_waiting",
            "Inbound spool entries waiting for the store",
            metrics.spool_entries_waiting.clone(),
        );
        registry.register(
            "spool_copies_dropped",
            "Spooled copies dropped because their account was deleted meanwhile",
            metrics.spool_copies_dropped.clone(),
        );
        registry.register(
            "spool_delivery_failures",
            "Attempts to deliver a spool entry that failed because the store was unavailable",
            metrics.spool_delivery_failures.clone(),
        );
        metrics
    }

    /// Adds one to `family`'s series for `outcome`.
    pub fn count(family: &Family<Outcome, Counter>, outcome: &'static str) {
        family.get_or_create(&Outcome { outcome }).inc();
    }

    /// The count of `family`'s series for `outcome` (for logs and tests).
    pub fn value(family: &Family<Outcome, Counter>, outcome: &'static str) -> u64 {
        family.get_or_create(&Outcome { outcome }).get()
    }
}

/// The `outcome` label of a recipient verdict.
pub fn recipient_outcome<T>(verdict: &Result<T, RecipientRefusal>) -> &'static str {
    match verdict {
        Ok(_) => "accepted",
        Err(RecipientRefusal::UnknownAddress) => "unknown",
        Err(RecipientRefusal::RelayDenied) => "relay_denied",
        Err(RecipientRefusal::AccountSuspended) => "suspended",
        Err(RecipientRefusal::OverQuota) => "over_quota",
        Err(RecipientRefusal::ForwardingUnavailable) => "forwarding_unavailable",
        Err(RecipientRefusal::TemporaryFailure) => "temporary_failure",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_in_the_text_format_under_their_prefix() {
        let mut registry = Registry::with_prefix("tme");
        let metrics = Metrics::register(registry.sub_registry_with_prefix("smtp"));
        Metrics::count(&metrics.messages, "accepted");
        Metrics::count(&metrics.messages, "accepted");
        Metrics::count(&metrics.recipients, "unknown");
        metrics.accept_duration_seconds.observe(0.003);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for line in [
            "tme_smtp_messages_total{outcome=\"accepted\"} 2",
            "tme_smtp_recipients_total{outcome=\"unknown\"} 1",
            "tme_smtp_accept_duration_seconds_count 1",
            "tme_smtp_connections_open 0",
        ] {
            assert!(text.lines().any(|got| got == line), "{line} in:\n{text}");
        }
        assert_eq!(Metrics::value(&metrics.messages, "accepted"), 2);
    }
}
