//! What logins count, as Prometheus metrics (`tme_login_*`): attempts by outcome, locks set
//! by kind, and the locks in force. Labels are fixed words, never client input.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    pub kind: &'static str,
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// `attempts_total{outcome="accepted"|"bad_credentials"|"locked"|"suspended"|"unavailable"}`.
    pub logins: Family<Outcome, Counter>,
    /// `locks_total{kind="ip"|"account"}`: locks set after repeated failures.
    pub locks: Family<Kind, Counter>,
    /// `locks_active`: keys this node holds locked, as of the last login attempt.
    pub locks_active: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry` (the node's, prefix `login`).
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics::default();
        registry.register(
            "attempts",
            "Login attempts by outcome",
            metrics.logins.clone(),
        );
        registry.register(
            "locks",
            "Login locks set after repeated failures, by kind (ip, account)",
            metrics.locks.clone(),
        );
        registry.register(
            "locks_active",
            "Keys (client addresses, accounts) locked out now",
            metrics.locks_active.clone(),
        );
        metrics
    }

    pub fn count(family: &Family<Outcome, Counter>, outcome: &'static str) {
        family.get_or_create(&Outcome { outcome }).inc();
    }
}

impl Metrics {
    /// Counts a lock of `kind`.
    pub fn count_lock(&self, kind: &'static str) {
        self.locks.get_or_create(&Kind { kind }).inc();
    }
}
