//! IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501) for tme: the `imap` (STARTTLS) and `imaps`
//! (implicit TLS) listeners.
//!
//! Sans-I/O half: `framing` cuts the byte stream into whole commands with every length
//! bounded (lines, literals; LITERAL+); `extensions` takes out the extension syntax that
//! imap-codec does not parse, and imap-codec parses the rest; `view` is the selected
//! mailbox as one session sees it (sequence numbers, and when another session's changes
//! may be reported); `records` and `mailbox_lists` share message records and whole message
//! lists between the sessions of a server (caches only: a miss reads the store); `render` writes FETCH data from the stored `MessageSummary` and slices
//! of the raw message; `search` evaluates SEARCH keys; `collation`, `sort` and `thread`
//! are SORT and THREAD (RFC 5256, RFC 5957); `compress` is COMPRESS=DEFLATE's deflate
//! streams; `response` writes values on the wire; `fetch_output` is one message's FETCH
//! response with its literals still in the message, handed out in pieces; `utf7` converts
//! mailbox names for IMAP4rev1 clients. `session` is the state machine: it takes a whole
//! command and appends responses, calling the store (async) but never a socket; a FETCH
//! it answers one message at a time (`session/fetch.rs`). Async half: `server` (accept
//! loops, TLS, compression, timeouts, connection limits, IDLE).
//!
//! Invariants: nothing outside `server` touches a socket; no input is buffered past its
//! limit; an EXPUNGE response is never sent during FETCH, STORE, SEARCH, SORT or THREAD
//! (RFC 9051 §7.5.1); FETCH never parses a message, and holds one message's raw bytes at a time, its
//! response written before the next is loaded; a login goes through `tme_auth` only.

pub mod collation;
pub mod compress;
pub mod extensions;
pub mod fetch_output;
pub mod framing;
pub mod mailbox_lists;
pub mod metrics;
pub mod multiappend;
pub mod records;
pub mod render;
pub mod response;
pub mod search;
pub mod server;
pub mod session;
pub mod sort;
pub mod thread;
pub mod utf7;
pub mod view;

pub use metrics::Metrics;
pub use server::{ListenerKind, ServerConfig, serve};
