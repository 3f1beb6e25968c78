//! What the POP3 server counts (`tme_pop3_*`): connections by outcome, sessions by how they
//! ended, commands, open connections, and messages retrieved and deleted. Labels are fixed
//! words, never client input.

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
    /// `sessions_ended_total{outcome="quit"|"client_closed"|"timeout"|"shutdown"|"io_error"|"tls_failed"|"errors"}`.
    pub sessions_ended: Family<Outcome, Counter>,
    /// `commands_total{outcome="ok"|"err"}`: every command line, by the answer it got.
    pub commands: Family<Outcome, Counter>,
    /// `messages_total{outcome="retrieved"|"top"|"deleted"}`: RETR and TOP answers sent,
    /// and messages expunged at QUIT.
    pub messages: Family<Outcome, Counter>,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics::default();
        registry.register(
            "connections",
            "POP3 connections by outcome",
            metrics.connections.clone(),
        );
        registry.register(
            "connections_open",
            "POP3 sessions running now",
            metrics.connections_open.clone(),
        );
        registry.register(
            "sessions_ended",
            "POP3 sessions by how they ended",
            metrics.sessions_ended.clone(),
        );
        registry.register(
            "commands",
            "POP3 commands by answer",
            metrics.commands.clone(),
        );
        registry.register(
            "messages",
            "POP3 messages retrieved (RETR), shown in part (TOP) and deleted (at QUIT)",
            metrics.messages.clone(),
        );
        metrics
    }

    pub fn count(family: &Family<Outcome, Counter>, outcome: &'static str) {
        family.get_or_create(&Outcome { outcome }).inc();
    }

    pub fn count_by(family: &Family<Outcome, Counter>, outcome: &'static str, by: u64) {
        family.get_or_create(&Outcome { outcome }).inc_by(by);
    }
}
