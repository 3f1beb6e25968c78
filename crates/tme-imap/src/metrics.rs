//! What the IMAP server counts (`tme_imap_*`): connections by outcome, sessions by how they
//! ended, commands, open connections. Labels are fixed words, never client input.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: &'static str,
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// `connections_total{outcome="accepted"|"refused_limit"}`.
    pub connections: Family<Outcome, Counter>,
    /// `connections_open`.
    pub connections_open: Gauge,
    /// `sessions_ended_total{outcome="logout"|"client_closed"|"timeout"|"shutdown"|"io_error"|"tls_failed"|"errors"|"revoked"}`
    /// ("revoked": the login's password or app password was changed or revoked).
    pub sessions_ended: Family<Outcome, Counter>,
    /// `commands_total{outcome="received"}`.
    pub commands: Family<Outcome, Counter>,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics::default();
        registry.register(
            "connections",
            "IMAP connections by outcome",
            metrics.connections.clone(),
        );
        registry.register(
            "connections_open",
            "IMAP sessions running now",
            metrics.connections_open.clone(),
        );
        registry.register(
            "sessions_ended",
            "IMAP sessions by how they ended",
            metrics.sessions_ended.clone(),
        );
        registry.register("commands", "IMAP commands", metrics.commands.clone());
        metrics
    }

    pub fn count(family: &Family<Outcome, Counter>, outcome: &'static str) {
        family.get_or_create(&Outcome { outcome }).inc();
    }
}
