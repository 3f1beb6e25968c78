//! Every fixed limit of the SMTP server, in one place. The operator-tunable ones (message
//! size, recipients, connections) are config keys in `[smtp]` (`tme_core::config::SmtpConfig`).

use std::time::Duration;

/// Longest command line we accept, CRLF included. RFC 5321 §4.5.3.1.4 sets 512 octets and
/// lets each extension add to it: SIZE (RFC 1870 §3: 26), DSN (RFC 3461 §4: ENVID 100 and
/// ORCPT 500 more), SMTPUTF8 addresses. 2048 covers a command with every parameter we know.
pub const COMMAND_LINE_OCTETS_MAX: usize = 2048;

/// Longest text line of a message that RFC 5321 §4.5.3.1.6 lets a client send (CRLF
/// included). We do not enforce it: a longer line is stored as sent (see `data`), because a
/// message's lines are bounded by the message size anyway and refusing would lose real mail.
pub const TEXT_LINE_OCTETS_MAX: usize = 1000;

/// How long we wait for a command (RFC 5321 §4.5.3.2.7: at least 5 minutes).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// How long we wait for each read of message content, in DATA or BDAT (RFC 5321 §4.5.3.2.5
/// asks clients to wait 3 minutes per block; we wait as long as for a command).
pub const DATA_BLOCK_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// How long a whole message may take to arrive, however it trickles (a slow-send guard; RFC
/// 5321 §4.5.3.2.6 gives the client 10 minutes for our final reply, which bounds nothing here).
pub const DATA_TOTAL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How long a TLS handshake may take after STARTTLS.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// Negative replies a session may collect before we answer `421` and close (a client that
/// keeps getting errors is broken or probing).
pub const SESSION_ERRORS_MAX: u32 = 10;

/// Commands of any kind a session may send, so that a NOOP loop cannot hold a connection.
pub const SESSION_COMMANDS_MAX: u64 = 100_000;

/// Longest HELO/EHLO argument we keep, in octets (a domain is at most 255, RFC 1035).
pub const HELO_NAME_OCTETS_MAX: usize = 255;

/// How many bytes one socket read asks for.
pub const READ_CHUNK_OCTETS: usize = 64 * 1024;
