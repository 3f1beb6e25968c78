//! Connection plumbing shared by the protocol servers (SMTP, POP3, IMAP, HTTPS): taking
//! connections without ending or spinning on an error (`accept`), how many connections a
//! listener takes, in all and from one client address (`limits`), and the
//! client's stream, plain or TLS, whose writes are bounded in time so that a client that
//! never reads cannot hold a task and its buffers (`stream`). For TLS clients (the outbound
//! queue, load generators): `any_certificate`, the check of opportunistic TLS.
//!
//! It knows no protocol: it never reads or writes a byte on its own, and it decides nothing
//! a protocol's session decides (greetings, refusals, when to start TLS).

pub mod accept;
pub mod any_certificate;
pub mod limits;
pub mod stream;

pub use accept::accept;
pub use any_certificate::AnyServerCertificate;
pub use limits::{Admission, ConnectionLimits};
pub use stream::{Stream, WRITE_CHUNK_OCTETS};
