//! What the `dns` role counts, as Prometheus metrics: responses by RCODE and transport,
//! answers held back by the rate limiter, zone transfers, NOTIFYs, and the rebuilds of the
//! zones.
//!
//! The metrics live as long as the node, across restarts of the role; the node's registry
//! serves them on `/metrics` (names under its prefix, e.g. `tme_dns_`). Labels are fixed words
//! (never client input), so the number of series stays bounded. The counters the answer path
//! touches are looked up once, at registration, so counting a response is one atomic add.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::answer::Transport;

/// The RCODEs counted by name (RFC 1035 §4.1.1, RFC 6891 §6.1.3); any other is `other`.
const RCODES: [&str; 8] = [
    "noerror", "formerr", "servfail", "nxdomain", "notimp", "refused", "notauth", "other",
];

fn rcode_index(code: u8) -> usize {
    match code {
        0..=5 => usize::from(code),
        9 => 6,
        _ => 7,
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabels {
    pub transport: &'static str,
    pub rcode: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: &'static str,
}

/// The `dns` role's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// `queries_total{transport="udp"|"tcp",rcode=...}`: queries answered, by the RCODE of
    /// the response sent (a zone transfer counts once).
    pub responses: Family<ResponseLabels, Counter>,
    /// `queries_dropped_total`: datagrams or TCP messages not answered at all (too short,
    /// too long, a response, or too broken to have an ID).
    pub queries_dropped: Counter,
    /// `rate_limited_total{outcome="dropped"|"slipped"}`: UDP answers over
    /// `dns.responses_per_second_max`, dropped or sent truncated (TC) instead.
    pub rate_limited: Family<Outcome, Counter>,
    /// `transfers_total{outcome="sent"|"refused"}`: AXFR/IXFR over TCP.
    pub transfers: Family<Outcome, Counter>,
    /// `notifies_total{outcome="sent"|"acknowledged"|"unacknowledged"}`: NOTIFY datagrams
    /// sent (each attempt), and per zone and secondary whether one was acknowledged.
    pub notifies: Family<Outcome, Counter>,
    /// `zone_rebuilds_total{outcome="ok"|"failed"}`: the catalog rebuilt after the
    /// directory changed (or at start).
    pub zone_rebuilds: Family<Outcome, Counter>,
    /// `zones_changed_total`: zones whose content changed at a rebuild (each got a new
    /// serial and NOTIFYs).
    pub zones_changed: Counter,
    /// `zones`: zones served now.
    pub zones: Gauge,
    /// The `responses` series, looked up once: [transport][rcode].
    responses_by_index: [[Counter; RCODES.len()]; 2],
}

impl Default for Metrics {
    fn default() -> Self {
        let responses: Family<ResponseLabels, Counter> = Family::default();
        let series = |transport: &'static str| {
            RCODES.map(|rcode| {
                responses
                    .get_or_create(&ResponseLabels { transport, rcode })
                    .clone()
            })
        };
        let responses_by_index = [series("udp"), series("tcp")];
        Metrics {
            responses,
            queries_dropped: Counter::default(),
            rate_limited: Family::default(),
            transfers: Family::default(),
            notifies: Family::default(),
            zone_rebuilds: Family::default(),
            zones_changed: Counter::default(),
            zones: Gauge::default(),
            responses_by_index,
        }
    }
}

impl Metrics {
    /// Creates the metrics and registers them in `registry` (usually a sub-registry with
    /// the prefix `dns`).
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics::default();
        registry.register(
            "queries",
            "Queries answered, by transport and the RCODE of the response",
            metrics.responses.clone(),
        );
        registry.register(
            "queries_dropped",
            "Queries not answered at all: too short, too long, a response, or unreadable",
            metrics.queries_dropped.clone(),
        );
        registry.register(
            "rate_limited",
            "UDP answers over the rate limit, dropped or sent truncated",
            metrics.rate_limited.clone(),
        );
        registry.register(
            "transfers",
            "Zone transfers (AXFR, IXFR) over TCP, sent or refused",
            metrics.transfers.clone(),
        );
        registry.register(
            "notifies",
            "NOTIFY datagrams sent, and per zone and secondary whether one was acknowledged",
            metrics.notifies.clone(),
        );
        registry.register(
            "zone_rebuilds",
            "Rebuilds of every zone from the directory",
            metrics.zone_rebuilds.clone(),
        );
        registry.register(
            "zones_changed",
            "Zones whose content changed at a rebuild (new serial, NOTIFY sent)",
            metrics.zones_changed.clone(),
        );
        registry.register("zones", "Zones served now", metrics.zones.clone());
        metrics
    }

    /// Counts one response, reading its RCODE from the header.
    pub fn count_response(&self, transport: Transport, response: &[u8]) {
        let code = response.get(3).map_or(0xff, |octet| octet & 0x0f);
        let transport = match transport {
            Transport::Udp => 0,
            Transport::Tcp => 1,
        };
        self.responses_by_index[transport][rcode_index(code)].inc();
    }

    /// Adds one to `family`'s series for `outcome`.
    pub fn count(family: &Family<Outcome, Counter>, outcome: &'static str) {
        family.get_or_create(&Outcome { outcome }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_under_their_prefix() {
        let mut registry = Registry::with_prefix("tme");
        let metrics = Metrics::register(registry.sub_registry_with_prefix("dns"));
        metrics.count_response(Transport::Udp, &[0, 0, 0x84, 0x03]);
        metrics.count_response(Transport::Tcp, &[0, 0, 0x84, 0x00]);
        metrics.count_response(Transport::Tcp, &[0, 0, 0x84, 0x0f]);
        Metrics::count(&metrics.rate_limited, "slipped");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for line in [
            "tme_dns_queries_total{transport=\"udp\",rcode=\"nxdomain\"} 1",
            "tme_dns_queries_total{transport=\"tcp\",rcode=\"noerror\"} 1",
            "tme_dns_queries_total{transport=\"tcp\",rcode=\"other\"} 1",
            "tme_dns_queries_total{transport=\"udp\",rcode=\"refused\"} 0",
            "tme_dns_rate_limited_total{outcome=\"slipped\"} 1",
            "tme_dns_zones 0",
        ] {
            assert!(text.lines().any(|got| got == line), "{line} in:\n{text}");
        }
    }
}
