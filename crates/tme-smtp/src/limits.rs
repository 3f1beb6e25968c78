//! Every fixed limit of the SMTP server, in one place. The operator-tunable ones (message
//! size, recipients, connections, command line length, timeouts, errors per session) are
//! config keys in `[smtp]` (`tme_core::config::SmtpConfig`), passed in `ServerConfig`.

use std::time::Duration;

/// Longest text line of a message that RFC 5321 §4.5.3.1.6 lets a client send (CRLF
/// included). We do not enforce it: a longer line is stored as sent (see `data`), because a
/// message's lines are bounded by the message size anyway and refusing would lose real mail.
pub const TEXT_LINE_OCTETS_MAX: usize = 1000;

/// How long a TLS handshake may take after STARTTLS.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// Commands of any kind a session may send, so that a NOOP loop cannot hold a connection.
pub const SESSION_COMMANDS_MAX: u64 = 100_000;

/// Longest HELO/EHLO argument we keep, in octets (a domain is at most 255, RFC 1035).
pub const HELO_NAME_OCTETS_MAX: usize = 255;

/// How many bytes one socket read asks for.
pub const READ_CHUNK_OCTETS: usize = 64 * 1024;
