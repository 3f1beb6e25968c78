//! What the full-text index counts (`tme_search_*`): searches answered by the index or by
//! reading the messages, messages indexed, rebuilds, how far behind the store an index was
//! when a search came, open indexes. Labels are fixed words, never client input.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnsweredBy {
    pub answered_by: &'static str,
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// `queries_total{answered_by="index"|"scan"}`: BODY/TEXT searches.
    pub queries: Family<AnsweredBy, Counter>,
    /// `messages_indexed_total`.
    pub messages_indexed: Counter,
    /// `rebuilds_total`: indexes removed and built again (unreadable, or asked for).
    pub rebuilds: Counter,
    /// `index_lag_changes`: change-log entries the last searched index had to catch up.
    pub index_lag_changes: Gauge,
    /// `indexes_open`.
    pub indexes_open: Gauge,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics::default();
        registry.register(
            "queries",
            "Searches of message text, by what answered them",
            metrics.queries.clone(),
        );
        registry.register(
            "messages_indexed",
            "Messages added to full-text indexes",
            metrics.messages_indexed.clone(),
        );
        registry.register(
            "rebuilds",
            "Full-text indexes rebuilt from the store",
            metrics.rebuilds.clone(),
        );
        registry.register(
            "index_lag_changes",
            "Change-log entries the last searched index was behind the store",
            metrics.index_lag_changes.clone(),
        );
        registry.register(
            "indexes_open",
            "Account indexes open now",
            metrics.indexes_open.clone(),
        );
        metrics
    }

    pub fn answered(&self, answered_by: &'static str) {
        self.queries
            .get_or_create(&AnsweredBy { answered_by })
            .inc();
    }
}
