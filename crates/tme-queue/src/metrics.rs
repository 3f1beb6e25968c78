//! The queue's metrics: how many messages wait and how old the oldest is, and what became
//! of each recipient attempt (delivered, deferred, failed), in all and by destination
//! domain; and what DANE (RFC 7672) found: each MX host's TLSA lookup, and each handshake
//! under TLSA records.
//!
//! Destinations are a label, so their number is bounded (`DESTINATIONS_MAX`): past it, new
//! domains are counted as `other`. The first domains seen keep their series for the node's
//! life, which is what a dashboard of the big destinations (the freemail providers) wants.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tme_store::RecipientState;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationLabels {
    destination: String,
    outcome: &'static str,
}

/// Destination domains with their own series; later ones are counted as `other`.
pub const DESTINATIONS_MAX: usize = 500;

/// The queue's metrics; clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct QueueMetrics {
    depth: Gauge,
    oldest_age_seconds: Gauge,
    recipient_attempts: Family<OutcomeLabels, Counter>,
    destination_attempts: Family<DestinationLabels, Counter>,
    destinations: Arc<Mutex<HashSet<String>>>,
    dane_hosts: Family<OutcomeLabels, Counter>,
    dane_handshakes: Family<OutcomeLabels, Counter>,
}

/// What a DANE lookup found for one MX host (`tme_queue_dane_hosts_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaneHostOutcome {
    /// Secure TLSA records, at least one usable: TLS with authentication required.
    Usable,
    /// Secure TLSA records, none usable: TLS required, unauthenticated (RFC 7672 §2.2).
    Unusable,
    /// Secure proof that there are none: no DANE for the host.
    NoRecords,
    /// The MX records or the TLSA records are not signed: no DANE.
    Insecure,
    /// The signatures do not check out: the host is not used.
    Bogus,
    /// The lookup failed: the host is not used this time.
    Failed,
}

impl QueueMetrics {
    /// Registers the metrics in `registry` (the node's, under its `queue` prefix).
    pub fn register(registry: &mut Registry) -> QueueMetrics {
        let metrics = QueueMetrics::default();
        registry.register(
            "depth",
            "Messages in the outbound queue",
            metrics.depth.clone(),
        );
        registry.register(
            "oldest_age_seconds",
            "Age of the oldest message in the outbound queue",
            metrics.oldest_age_seconds.clone(),
        );
        registry.register(
            "recipient_attempts",
            "Delivery attempts per recipient, by outcome",
            metrics.recipient_attempts.clone(),
        );
        registry.register(
            "destination_recipient_attempts",
            "Delivery attempts per recipient, by destination domain and outcome",
            metrics.destination_attempts.clone(),
        );
        registry.register(
            "dane_hosts",
            "DANE TLSA lookups of MX hosts, by outcome (usable, unusable, no_records, insecure, bogus, failed)",
            metrics.dane_hosts.clone(),
        );
        registry.register(
            "dane_handshakes",
            "TLS handshakes under DANE TLSA records, by outcome (authenticated, unauthenticated, refused)",
            metrics.dane_handshakes.clone(),
        );
        metrics
    }

    /// Counts what the DANE lookup of one MX host found.
    pub(crate) fn count_dane_host(&self, outcome: DaneHostOutcome) {
        let outcome = match outcome {
            DaneHostOutcome::Usable => "usable",
            DaneHostOutcome::Unusable => "unusable",
            DaneHostOutcome::NoRecords => "no_records",
            DaneHostOutcome::Insecure => "insecure",
            DaneHostOutcome::Bogus => "bogus",
            DaneHostOutcome::Failed => "failed",
        };
        self.dane_hosts
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// The counters a DANE certificate check increments.
    pub(crate) fn dane_counters(&self) -> crate::dane::DaneCounters {
        let counter = |outcome: &'static str| {
            self.dane_handshakes
                .get_or_create(&OutcomeLabels { outcome })
                .clone()
        };
        crate::dane::DaneCounters {
            authenticated: counter("authenticated"),
            unauthenticated: counter("unauthenticated"),
            refused: counter("refused"),
        }
    }

    pub(crate) fn set_depth(&self, messages: u64, oldest_age_seconds: Option<i64>) {
        self.depth.set(i64::try_from(messages).unwrap_or(i64::MAX));
        self.oldest_age_seconds.set(oldest_age_seconds.unwrap_or(0));
    }

    /// Counts one recipient's attempt at `destination` (its domain).
    pub(crate) fn count(&self, state: RecipientState, destination: &str) {
        let outcome = match state {
            RecipientState::Delivered => "delivered",
            RecipientState::Pending => "deferred",
            RecipientState::Failed => "failed",
        };
        self.recipient_attempts
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        let destination = self.destination_label(destination);
        self.destination_attempts
            .get_or_create(&DestinationLabels {
                destination,
                outcome,
            })
            .inc();
    }

    fn destination_label(&self, destination: &str) -> String {
        let destination = destination.to_ascii_lowercase();
        let mut known = self
            .destinations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if known.contains(&destination) {
            return destination;
        }
        if known.len() < DESTINATIONS_MAX {
            known.insert(destination.clone());
            return destination;
        }
        "other".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_past_the_limit_are_other() {
        let metrics = QueueMetrics::default();
        for number in 0..DESTINATIONS_MAX {
            metrics.count(RecipientState::Delivered, &format!("d{number}.test"));
        }
        metrics.count(RecipientState::Failed, "late.test");
        metrics.count(RecipientState::Failed, "D0.TEST");
        let get = |destination: &str, outcome: &'static str| {
            metrics
                .destination_attempts
                .get_or_create(&DestinationLabels {
                    destination: destination.to_owned(),
                    outcome,
                })
                .get()
        };
        assert_eq!(get("other", "failed"), 1);
        assert_eq!(get("d0.test", "failed"), 1);
        assert_eq!(get("d0.test", "delivered"), 1);
    }
}
