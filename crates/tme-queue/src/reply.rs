//! A remote server's replies: cut from the byte stream, parsed, and classified.
//!
//! `ReplyFramer` finds where one (possibly multi-line) reply ends (RFC 5321 §4.2.1: the
//! last line has a space after the code), with a bound on its size; smtp-proto parses the
//! reply (code, enhanced status code, text) and an EHLO reply's capabilities. Nothing here
//! does I/O.

use smtp_proto::response::parser::ResponseReceiver;
use smtp_proto::{EhloResponse, Response};

/// The most bytes one reply may take, all lines together: past it the server is broken.
pub const REPLY_OCTETS_MAX: usize = 64 * 1024;

/// One reply of the remote server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The RFC 3463 enhanced status code, when the server gave one.
    pub enhanced: Option<[u8; 3]>,
    /// The text of every line, joined by a space.
    pub text: String,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// A 5xx reply: the same request will fail again.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// One line for logs, `tme queue show` and the DSN's Diagnostic-Code.
    pub fn summary(&self) -> String {
        match self.enhanced {
            Some([class, subject, detail]) => {
                format!("{} {class}.{subject}.{detail} {}", self.code, self.text)
            }
            None => format!("{} {}", self.code, self.text),
        }
    }

    /// The enhanced status code as text, or one made from the basic code (RFC 3463 §3.1:
    /// class from the first digit).
    pub fn status(&self) -> String {
        match self.enhanced {
            Some([class, subject, detail]) => format!("{class}.{subject}.{detail}"),
            None if self.is_permanent() => "5.0.0".to_owned(),
            None if self.is_positive() => "2.0.0".to_owned(),
            None => "4.0.0".to_owned(),
        }
    }
}

/// Why a reply could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("the reply is longer than {REPLY_OCTETS_MAX} bytes")]
    TooLong,
    #[error("the reply is not SMTP: {0}")]
    Malformed(String),
}

/// Finds the end of the next complete reply in `buffer`: its length in bytes, or None when
/// more bytes are needed.
pub fn complete_reply_len(buffer: &[u8]) -> Result<Option<usize>, ReplyError> {
    let mut start = 0;
    while let Some(newline) = buffer[start..].iter().position(|&byte| byte == b'\n') {
        let line = &buffer[start..start + newline];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let end = start + newline + 1;
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
            return Err(ReplyError::Malformed(
                String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned(),
            ));
        }
        match line.get(3) {
            None | Some(b' ') => return Ok(Some(end)),
            Some(b'-') => start = end,
            Some(_) => {
                return Err(ReplyError::Malformed(
                    String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned(),
                ));
            }
        }
        if end > REPLY_OCTETS_MAX {
            return Err(ReplyError::TooLong);
        }
    }
    if buffer.len() > REPLY_OCTETS_MAX {
        return Err(ReplyError::TooLong);
    }
    Ok(None)
}

/// Parses one complete reply (as cut by `complete_reply_len`).
pub fn parse_reply(bytes: &[u8]) -> Result<Reply, ReplyError> {
    let mut receiver = ResponseReceiver::default();
    let response: Response<String> = receiver
        .parse(&mut bytes.iter())
        .map_err(|error| ReplyError::Malformed(format!("{error:?}")))?;
    let enhanced = (response.esc != [0, 0, 0]).then_some(response.esc);
    Ok(Reply {
        code: response.code,
        enhanced,
        text: response
            .message
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    })
}

/// What a server said it supports in its EHLO reply (RFC 5321 §4.1.1.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub starttls: bool,
    pub pipelining: bool,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub dsn: bool,
    pub requiretls: bool,
    pub auth_plain: bool,
    /// The SIZE limit announced; 0 when none (RFC 1870 §4).
    pub size_max: usize,
}

/// Reads the capabilities from a complete 250 EHLO reply; unknown keywords are ignored.
pub fn parse_capabilities(bytes: &[u8]) -> Capabilities {
    match EhloResponse::parse(&mut bytes.iter()) {
        Ok(response) => Capabilities {
            starttls: response.has_capability(smtp_proto::EXT_START_TLS),
            pipelining: response.has_capability(smtp_proto::EXT_PIPELINING),
            eight_bit_mime: response.has_capability(smtp_proto::EXT_8BIT_MIME),
            smtputf8: response.has_capability(smtp_proto::EXT_SMTP_UTF8),
            dsn: response.has_capability(smtp_proto::EXT_DSN),
            requiretls: response.has_capability(smtp_proto::EXT_REQUIRE_TLS),
            auth_plain: response.auth_mechanisms & smtp_proto::AUTH_PLAIN != 0,
            size_max: response.size,
        },
        // A 250 reply smtp-proto cannot read: assume nothing beyond RFC 5321.
        Err(_) => Capabilities::default(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_line_reply_ends_at_the_line_with_a_space() {
        let bytes = b"250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 1000\r\n354 more";
        assert_eq!(complete_reply_len(bytes), Ok(Some(51)));
        assert_eq!(complete_reply_len(&bytes[..30]), Ok(None));
        let capabilities = parse_capabilities(&bytes[..51]);
        assert!(capabilities.pipelining);
        assert!(!capabilities.starttls);
        assert_eq!(capabilities.size_max, 1000);
    }

    #[test]
    fn replies_with_and_without_enhanced_codes() {
        let reply = parse_reply(b"550 5.1.1 <x@example.org>: no such user\r\n").unwrap();
        assert_eq!(reply.code, 550);
        assert_eq!(reply.enhanced, Some([5, 1, 1]));
        assert_eq!(reply.summary(), "550 5.1.1 <x@example.org>: no such user");
        let reply = parse_reply(b"451 try again\r\n").unwrap();
        assert_eq!((reply.enhanced, reply.status()), (None, "4.0.0".to_owned()));
        let reply = parse_reply(b"250-first\r\n250 second\r\n").unwrap();
        assert_eq!(reply.text, "first second");
    }

    #[test]
    fn garbage_and_endless_replies_are_errors() {
        assert!(matches!(
            complete_reply_len(b"HTTP/1.1 400 Bad Request\r\n"),
            Err(ReplyError::Malformed(_))
        ));
        let endless = b"250-x\r\n".repeat(REPLY_OCTETS_MAX / 7 + 2);
        assert_eq!(complete_reply_len(&endless), Err(ReplyError::TooLong));
        assert_eq!(
            complete_reply_len(&vec![b'2'; REPLY_OCTETS_MAX + 1]),
            Err(ReplyError::TooLong)
        );
    }
}
