//! SMTP servers: inbound mail, the MX role (RFC 5321 with PIPELINING, SIZE, 8BITMIME,
//! SMTPUTF8, ENHANCEDSTATUSCODES, STARTTLS, CHUNKING, DSN parameters and REQUIRETLS), and
//! message submission for our own users (`Service::Submission`, RFC 6409 with AUTH).
//!
//! Two halves, as every protocol of tme: a sans-I/O codec and session (`framing` cuts
//! bounded command lines, `data` reads message content, `session` is the state machine,
//! `reply` is the one place where outcomes become reply codes; the trace headers come
//! from `tme_message::trace`), and the async half: `server`, the thin tokio layer that owns sockets, TLS,
//! timeouts, connection limits and the calls into the store (or, while the store is
//! unavailable, into the inbound spool), and `spool_delivery`, the worker that delivers the
//! spool once the store is back. Nothing but these two does I/O.
//!
//! RFC status (what a reader can rely on):
//!
//! | RFC | state |
//! |---|---|
//! | 5321 SMTP | server side: HELO/EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT, VRFY (252), HELP; EXPN (and AUTH on the MX) answer 502; `<Postmaster>` accepted |
//! | 6409 submission | AUTH before MAIL (530 5.7.0); sender and authors checked by `tme_queue::submit`; §8 fix-ups (Date, Message-ID, From; Bcc removed) |
//! | 4954 AUTH | PLAIN (RFC 4616, with initial response or `=`) and LOGIN, offered and accepted only over TLS (else 538 5.7.11); `*` cancels (501); bad base64 501 5.5.2; unknown mechanism 504 5.5.4; lines up to 12,288 octets; AUTH= on MAIL accepted and ignored |
//! | 8314 implicit TLS | `submissions` (465): TLS from the first byte, no STARTTLS offered |
//! | 2920 PIPELINING | replies are sent together when the server would wait for input |
//! | 1870 SIZE | announced; a larger SIZE gets 552 5.3.4 at MAIL, larger content at its end |
//! | 6152 8BITMIME | BODY=8BITMIME/7BIT kept; 8-bit content without it is accepted too |
//! | 6531 SMTPUTF8 | UTF-8 addresses need the parameter (else 553 5.6.7); `UTF8SMTP[S]` in `Received` |
//! | 2034, 3463 ENHANCEDSTATUSCODES | on every reply but the greeting and EHLO |
//! | 3207 STARTTLS | rustls; input pipelined after STARTTLS is dropped; the session starts over |
//! | 3030 CHUNKING | BDAT chunks, pipelined; BINARYMIME not offered |
//! | 3461 DSN | RET, ENVID, NOTIFY, ORCPT parsed and kept in the envelope; no DSN is sent yet |
//! | 8689 REQUIRETLS | offered after STARTTLS; MAIL REQUIRETLS in plain text gets 530 5.7.10; kept in the envelope |
//! | 7208 SPF, 6376 DKIM, 8617 ARC, 7489 DMARC | verified by `tme-filter` (mail-auth) before storing; DMARC `p=reject` → 550 5.7.1, `p=quarantine` → Junk |
//! | 8601 Authentication-Results | prepended below our trace fields; forged ones with our authserv-id are kept as sent and scored |
//! | 5782 DNSBL | zones from `filter.dnsbl_zones`; `reject` → 554 5.7.1 at the end of DATA, `score` → points |
//! | 3848 | `with` keywords ESMTP, ESMTPS, and ESMTPSA on submission |
//!
//! What this crate must not do: relay for anyone not authenticated (on the MX, mail for
//! domains we do not host is refused), accept a password outside TLS, keep a
//! message it has not acknowledged, acknowledge one before the store or the spool made it
//! durable, or deliver a spooled message twice.

pub mod data;
pub mod framing;
pub mod limits;
pub mod metrics;
pub mod reply;
pub mod server;
pub mod session;
pub mod spool_delivery;
/// The trace fields live with the other message-writing code, shared with the queue.
pub use tme_message::trace;

pub use metrics::Metrics;
pub use server::{ServerConfig, serve};
pub use session::{Session, SessionConfig, Step};
