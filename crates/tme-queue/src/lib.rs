//! The outbound queue: what makes a message queued by submission (or a report) leave.
//!
//! `runner` claims due messages from the store's queue (`tme_store::QueueStore`) and
//! delivers them: `route` finds the destination's hosts (MX, implicit MX, null MX, or the
//! relay host), `client` speaks SMTP to them (`reply` reads their replies, `tls` is the
//! opportunistic and verifying TLS configs, `mta_sts` and `dane` the policies that make TLS
//! mandatory), `schedule` says when to try again and when to give up, and
//! `dsn` writes the reports senders get (RFC 3464). `sign` adds the sending domain's
//! DKIM signatures. `metrics` counts it all.
//!
//! `submit` is the way in for our own users' mail: sender checks, the submission fix-ups,
//! signing, local copies stored and the rest queued (the listeners in `tme-smtp` call it).
//! `vacation` answers deliveries to accounts on vacation (RFC 3834) through it, after the
//! delivery committed, never holding it up.
//!
//! What this crate must not do: speak SMTP as a server (that is `tme-smtp`), or keep
//! state anywhere but the store: any node can pick up any message.

pub mod client;
pub mod dane;
pub mod dsn;
pub mod metrics;
pub mod mta_sts;
pub mod reply;
pub mod route;
pub mod runner;
pub mod schedule;
pub mod sign;
pub mod submit;
pub mod tls;
pub mod vacation;

pub use metrics::QueueMetrics;
pub use runner::{Clock, PassReport, Runner, RunnerSettings, SystemClock};
pub use schedule::Schedule;
pub use submit::Submitter;
pub use vacation::{AutoResponder, DeliveredCopy};
