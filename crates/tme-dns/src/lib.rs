//! Authoritative DNS for every hosted domain, made from the directory (the `dns` role).
//!
//! Sans-I/O half: `zone` (the records each domain gets and the in-memory zone), `custom`
//! (operator-added records and their conflicts with generated ones), `answer` (one query in,
//! one response out: the wire format through hickory-proto), `transfer` (AXFR), `notify`
//! (RFC 1996 messages), `prepared` (answers made in advance in wire form: the fast path of
//! `answer`), `rate_limit` (response rate limiting), `dkim` (key generation),
//! `client_setup` (MTA-STS policy, autoconfig and autodiscover documents), `check` (comparing
//! what the public DNS says with what we serve), `metrics` (what the role counts).
//! Async half: `server` (UDP and TCP sockets, the directory poll, NOTIFY sending).

pub mod answer;
pub mod check;
pub mod client_setup;
pub mod custom;
pub mod dkim;
pub mod lookup;
pub mod metrics;
pub mod notify;
mod prepared;
pub mod rate_limit;
pub mod server;
pub mod transfer;
pub mod zone;

pub use metrics::Metrics;
pub use zone::{Catalog, DomainInput, Zone, ZoneSettings, build_zone};

/// What can go wrong outside a single query (a bad query is answered, never an error).
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The `[dns]` config names something that is not a DNS name. The operator's fault.
    #[error("dns config: {0}")]
    Config(String),
    /// The directory could not be read. The environment's fault; a retry may help.
    #[error(transparent)]
    Store(#[from] tme_store::StoreError),
    /// A key could not be made (the system's random source failed).
    #[error("cannot make a DKIM key: {0}")]
    KeyGeneration(String),
    /// A socket could not be opened or used.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}
