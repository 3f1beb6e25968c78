//! The queue's metrics: how many messages wait and how old the oldest is, and what became
//! of each recipient attempt (delivered, deferred, failed).

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

/// The queue's metrics; clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct QueueMetrics {
    depth: Gauge,
    oldest_age_seconds: Gauge,
    recipient_attempts: Family<OutcomeLabels, Counter>,
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
        metrics
    }

    pub(crate) fn set_depth(&self, messages: u64, oldest_age_seconds: Option<i64>) {
        self.depth.set(i64::try_from(messages).unwrap_or(i64::MAX));
        self.oldest_age_seconds.set(oldest_age_seconds.unwrap_or(0));
    }

    pub(crate) fn count(&self, state: RecipientState) {
        let outcome = match state {
            RecipientState::Delivered => "delivered",
            RecipientState::Pending => "deferred",
            RecipientState::Failed => "failed",
        };
        self.recipient_attempts
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }
}
