//! POP3 for tme: the `pop3` (STLS) and `pop3s` (implicit TLS) listeners. RFC 1939 with the
//! extension mechanism (RFC 2449: CAPA, RESP-CODES, PIPELINING, TOP, UIDL, USER,
//! IMPLEMENTATION), STLS (RFC 2595), AUTH PLAIN (RFC 5034) and the AUTH and SYS response
//! codes (RFC 3206).
//!
//! Sans-I/O half: `framing` cuts the byte stream into lines with the length bounded;
//! `command` parses a line; `maildrop` is the INBOX as one session sees it (numbers, wire
//! sizes, unique ids, deletion marks) and the node's maildrop locks; `transfer` is the wire
//! form of a message (CRLF line ends, byte-stuffing) streamed in chunks. `session` is the
//! state machine: it takes a line and appends responses, calling the store (async) but never
//! a socket. Async half: `server` (accept loops, TLS, timeouts, connection limits).
//!
//! Invariants: nothing outside `server` touches a socket; no input is buffered past its
//! limit and no message is copied whole for sending; nothing in the store changes before
//! QUIT; the size LIST reports is the number of octets RETR sends before byte-stuffing; a
//! login goes through `tme_auth` only, and never before TLS.

pub mod command;
pub mod framing;
pub mod maildrop;
pub mod metrics;
pub mod server;
pub mod session;
pub mod transfer;

pub use metrics::Metrics;
pub use server::{ListenerKind, ServerConfig, serve};
