//! SMTP replies: the type, its wire form, and the one place where every outcome of the
//! session (a parse error, a recipient verdict, a store failure) becomes a reply code and an
//! enhanced status code (RFC 5321 §4.2, RFC 3463, RFC 2034).
//!
//! Nothing else in the crate writes a reply code: the session asks this module for the reply
//! of an outcome, so a reader finds the whole mapping here.

use std::fmt::Write;

/// One reply: a three-digit code, an enhanced status code (RFC 3463 `class.subject.detail`)
/// and text lines. Several lines make a multi-line reply (RFC 5321 §4.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Absent only in the greeting and the EHLO reply, which RFC 2034 §3 exempts.
    pub enhanced: Option<&'static str>,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Some(enhanced),
            lines: vec![text.into()],
        }
    }

    fn plain(code: u16, lines: Vec<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            lines,
        }
    }

    /// A 4xx or 5xx reply.
    pub fn is_negative(&self) -> bool {
        self.code >= 400
    }

    /// The reply as sent: `code-text` for every line but the last, `code text` for the last,
    /// each ended by CRLF. Text never holds CR or LF (the builders below make sure).
    pub fn to_wire(&self) -> Vec<u8> {
        let mut wire = String::new();
        let count = self.lines.len().max(1);
        for index in 0..count {
            let separator = if index + 1 == count { ' ' } else { '-' };
            let text = self.lines.get(index).map(String::as_str).unwrap_or("");
            let _ = write!(wire, "{}{}", self.code, separator);
            if let Some(enhanced) = self.enhanced {
                let _ = write!(wire, "{enhanced} ");
            }
            for character in text.chars() {
                wire.push(if character.is_control() {
                    ' '
                } else {
                    character
                });
            }
            wire.push_str("\r\n");
        }
        wire.into_bytes()
    }
}

/// Why a recipient was refused, or that it was accepted: what the server learnt from the
/// directory, in words of the directory, for `recipient` to turn into a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientRefusal {
    /// The domain is hosted, but nothing answers for the address.
    UnknownAddress,
    /// We do not host the domain and relay for nobody on this port.
    RelayDenied,
    /// Every account the address reaches is suspended.
    AccountSuspended,
    /// Every account the address reaches is over its quota (a retry may work later).
    OverQuota,
    /// The address reaches only external addresses; forwarding needs the outbound queue.
    ForwardingUnavailable,
    /// The directory or the store could not answer; a retry may work.
    TemporaryFailure,
}

/// Why a message was refused at its end (after DATA or the last BDAT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryRefusal {
    /// The store failed in a way a retry may fix (I/O, a busy database); nothing was stored.
    TemporaryFailure,
    /// A recipient's account went over quota between RCPT and the end of the message.
    OverQuota,
    /// The filter judged the message unacceptable (`tme-filter`'s verdict); nothing was
    /// stored.
    Refused(tme_filter::Refusal),
    /// Submission: a `From` or `Sender` address is not the user's own (nor an alias of it).
    AuthorNotOwned { address: String },
    /// Submission: the `From` field names no usable address (a group, a name alone), and
    /// there is no envelope sender to make one from.
    NoAuthor,
    /// Submission: the account may not send.
    SendLocked,
}

/// Why an AUTH exchange failed (RFC 4954), in the words of `tme-auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRefusal {
    /// Unknown user or wrong password.
    BadCredentials,
    /// Too many failures from this address or for this account: try later.
    Locked,
    /// The password was right, the account is suspended.
    AccountSuspended,
    /// The directory could not be read.
    TemporaryFailure,
}

/// Why MAIL FROM was refused on the submission port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderRefusal {
    /// The address is neither the user's nor one of the user's aliases.
    NotOwned,
    /// The account may not send (an operator or the abuse control locked it).
    SendLocked,
    /// The password or app password AUTH used was changed or revoked since, or the account
    /// suspended: the session is no longer authenticated.
    CredentialRevoked,
    /// The directory could not be read.
    TemporaryFailure,
}

// The replies, by situation. RFC 5321 §4.2.2 codes; RFC 3463 enhanced codes.

pub fn greeting(hostname: &str) -> Reply {
    Reply::plain(220, vec![format!("{hostname} ESMTP tme ready")])
}

pub fn ehlo(hostname: &str, helo_name: &str, capabilities: Vec<String>) -> Reply {
    let mut lines = vec![format!("{hostname} greets {helo_name}")];
    lines.extend(capabilities);
    Reply::plain(250, lines)
}

pub fn helo(hostname: &str, helo_name: &str) -> Reply {
    Reply::plain(250, vec![format!("{hostname} greets {helo_name}")])
}

pub fn ok() -> Reply {
    Reply::new(250, "2.0.0", "OK")
}

pub fn sender_ok() -> Reply {
    Reply::new(250, "2.1.0", "sender OK")
}

pub fn recipient_ok() -> Reply {
    Reply::new(250, "2.1.5", "recipient OK")
}

pub fn reset_ok() -> Reply {
    Reply::new(250, "2.0.0", "reset")
}

pub fn start_data() -> Reply {
    Reply::new(354, "2.0.0", "send the message, end with <CRLF>.<CRLF>")
}

pub fn chunk_ok(octets: u64) -> Reply {
    Reply::new(250, "2.0.0", format!("{octets} octets received"))
}

pub fn message_accepted(transaction_id: &str) -> Reply {
    Reply::new(250, "2.0.0", format!("OK queued as {transaction_id}"))
}

pub fn ready_to_start_tls() -> Reply {
    Reply::new(220, "2.0.0", "ready to start TLS")
}

pub fn closing(hostname: &str) -> Reply {
    Reply::new(221, "2.0.0", format!("{hostname} closing connection"))
}

/// RFC 5321 §3.5.3: a server that does not verify says 252 (and will accept the message).
pub fn cannot_verify() -> Reply {
    Reply::new(
        252,
        "2.5.2",
        "cannot VRFY user, but will accept message and attempt delivery",
    )
}

pub fn help() -> Reply {
    Reply {
        code: 214,
        enhanced: Some("2.0.0"),
        lines: vec![
            "commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS".to_owned(),
            "see RFC 5321".to_owned(),
        ],
    }
}

pub fn syntax_error(text: impl Into<String>) -> Reply {
    Reply::new(500, "5.5.2", text)
}

pub fn line_too_long() -> Reply {
    Reply::new(500, "5.5.2", "line too long")
}

pub fn unknown_command() -> Reply {
    Reply::new(500, "5.5.1", "command not recognised")
}

pub fn not_implemented() -> Reply {
    Reply::new(502, "5.5.1", "command not implemented")
}

pub fn parameter_syntax_error(text: impl Into<String>) -> Reply {
    Reply::new(501, "5.5.4", text)
}

pub fn bad_sequence(text: impl Into<String>) -> Reply {
    Reply::new(503, "5.5.1", text)
}

/// RFC 5321 §4.1.1.11 / RFC 1869: a parameter we do not know or did not announce.
pub fn parameter_not_supported(text: impl Into<String>) -> Reply {
    Reply::new(555, "5.5.4", text)
}

pub fn bad_sender_address() -> Reply {
    Reply::new(553, "5.1.7", "bad sender address syntax")
}

pub fn bad_recipient_address() -> Reply {
    Reply::new(501, "5.1.3", "bad recipient address syntax")
}

/// RFC 6531 §3.4: a non-ASCII address without the SMTPUTF8 parameter.
pub fn needs_smtputf8() -> Reply {
    Reply::new(553, "5.6.7", "non-ASCII address requires SMTPUTF8")
}

/// RFC 1870 §6.1 / RFC 3463 5.3.4: the declared or received size passes our limit.
pub fn message_too_big(limit_octets: u64) -> Reply {
    Reply::new(
        552,
        "5.3.4",
        format!("message size exceeds the limit of {limit_octets} octets"),
    )
}

/// RFC 5321 §4.5.3.1.10: too many recipients is a temporary failure (452), so the client sends
/// the rest in another transaction.
pub fn too_many_recipients() -> Reply {
    Reply::new(452, "4.5.3", "too many recipients")
}

pub fn no_valid_recipients() -> Reply {
    Reply::new(554, "5.5.1", "no valid recipients")
}

pub fn recipient_refused(refusal: RecipientRefusal) -> Reply {
    match refusal {
        RecipientRefusal::UnknownAddress => Reply::new(550, "5.1.1", "no such user here"),
        RecipientRefusal::RelayDenied => Reply::new(550, "5.7.1", "relay access denied"),
        RecipientRefusal::AccountSuspended => Reply::new(550, "5.2.1", "mailbox disabled"),
        RecipientRefusal::OverQuota => Reply::new(452, "4.2.2", "mailbox full"),
        RecipientRefusal::ForwardingUnavailable => Reply::new(
            451,
            "4.4.0",
            "forwarding to external addresses is not available yet, try again later",
        ),
        RecipientRefusal::TemporaryFailure => {
            Reply::new(451, "4.3.0", "temporary failure, try again later")
        }
    }
}

pub fn delivery_refused(refusal: DeliveryRefusal) -> Reply {
    match refusal {
        DeliveryRefusal::TemporaryFailure => Reply::new(
            451,
            "4.3.0",
            "temporary failure storing the message, try again later",
        ),
        DeliveryRefusal::OverQuota => Reply::new(452, "4.2.2", "mailbox full"),
        DeliveryRefusal::Refused(refusal) => filter_refused(refusal),
        DeliveryRefusal::AuthorNotOwned { address } => Reply::new(
            550,
            "5.7.1",
            format!(
                "you may not send as {}: use your own address or one of your aliases",
                shown(&address)
            ),
        ),
        DeliveryRefusal::SendLocked => sender_refused(SenderRefusal::SendLocked),
        DeliveryRefusal::NoAuthor => Reply::new(
            550,
            "5.6.0",
            "the message needs a From field with your address",
        ),
    }
}

// Submission (RFC 4954 AUTH, RFC 6409). RFC 4954 §4: a 334 challenge carries no enhanced
// status code.

pub fn auth_challenge(challenge_base64: &str) -> Reply {
    Reply::plain(334, vec![challenge_base64.to_owned()])
}

pub fn auth_succeeded() -> Reply {
    Reply::new(235, "2.7.0", "authentication succeeded")
}

pub fn auth_refused(refusal: AuthRefusal) -> Reply {
    match refusal {
        AuthRefusal::BadCredentials => {
            Reply::new(535, "5.7.8", "authentication credentials invalid")
        }
        // RFC 4954 §6: 454 4.7.0 "temporary authentication failure".
        AuthRefusal::Locked => Reply::new(454, "4.7.0", "too many failed logins, try again later"),
        AuthRefusal::AccountSuspended => {
            Reply::new(535, "5.7.8", "account suspended, contact your provider")
        }
        AuthRefusal::TemporaryFailure => {
            Reply::new(454, "4.7.0", "temporary authentication failure")
        }
    }
}

pub fn auth_cancelled() -> Reply {
    Reply::new(501, "5.7.0", "authentication cancelled")
}

pub fn auth_bad_base64() -> Reply {
    Reply::new(501, "5.5.2", "cannot decode the response as base64")
}

pub fn auth_mechanism_unknown() -> Reply {
    Reply::new(
        504,
        "5.5.4",
        "unknown authentication mechanism; use PLAIN or LOGIN",
    )
}

/// RFC 4954 §6: 538 5.7.11 "encryption required for requested authentication mechanism".
pub fn auth_needs_tls() -> Reply {
    Reply::new(538, "5.7.11", "encryption required: issue STARTTLS first")
}

/// RFC 4954 §6: 530 5.7.0 "authentication required".
pub fn auth_required() -> Reply {
    Reply::new(530, "5.7.0", "authentication required")
}

pub fn sender_refused(refusal: SenderRefusal) -> Reply {
    match refusal {
        SenderRefusal::NotOwned => Reply::new(
            550,
            "5.7.1",
            "sender address not owned by the authenticated user",
        ),
        SenderRefusal::SendLocked => Reply::new(
            550,
            "5.7.1",
            "sending is locked for this account, contact your provider",
        ),
        // RFC 4954 §6: 530 5.7.0, authentication required (again).
        SenderRefusal::CredentialRevoked => Reply::new(
            530,
            "5.7.0",
            "the password of this session was changed or revoked, authenticate again",
        ),
        SenderRefusal::TemporaryFailure => {
            Reply::new(451, "4.3.0", "temporary failure, try again later")
        }
    }
}

/// Refusals of the filter. All permanent (5xx): the same message from the same client
/// would be judged the same way on a retry.
fn filter_refused(refusal: tme_filter::Refusal) -> Reply {
    match refusal {
        // RFC 7489 §6.3 (`p=reject`) and §10.3: reject during the transaction, 550 5.7.1.
        tme_filter::Refusal::DmarcReject { domain } => Reply::new(
            550,
            "5.7.1",
            format!(
                "message refused: it fails the DMARC policy of {} (p=reject)",
                shown(&domain)
            ),
        ),
        // RFC 5782 §2.1 leaves the reply to the receiver; 554 5.7.1 is the usual one.
        tme_filter::Refusal::Blocklisted { zone } => Reply::new(
            554,
            "5.7.1",
            format!("client address listed at {}", shown(&zone)),
        ),
        tme_filter::Refusal::Spam => Reply::new(550, "5.7.1", "message refused as spam"),
    }
}

/// A name from outside (a domain from the message) as it may appear in a reply: bounded,
/// so a reply line stays within RFC 5321 §4.5.3.1.5's 512 octets.
fn shown(name: &str) -> String {
    name.chars().take(253).collect()
}

/// A command line smtp-proto could not parse.
pub fn parse_error(error: &smtp_proto::Error) -> Reply {
    match error {
        smtp_proto::Error::UnknownCommand => unknown_command(),
        smtp_proto::Error::InvalidSenderAddress => bad_sender_address(),
        smtp_proto::Error::InvalidRecipientAddress => bad_recipient_address(),
        smtp_proto::Error::SyntaxError { syntax } => {
            Reply::new(501, "5.5.4", format!("syntax: {syntax}"))
        }
        smtp_proto::Error::InvalidParameter { param } => {
            parameter_syntax_error(format!("invalid value for {param}"))
        }
        smtp_proto::Error::UnsupportedParameter { param } => {
            let shown: String = param.chars().take(64).collect();
            parameter_not_supported(format!("parameter {shown} not supported"))
        }
        _ => syntax_error("syntax error"),
    }
}

pub fn tls_not_available() -> Reply {
    Reply::new(454, "4.7.0", "TLS not available")
}

/// RFC 8689 §4.1 asks for REQUIRETLS over TLS only; RFC 3207 §4 names 530 for "must issue
/// STARTTLS first", and RFC 5248 registers X.7.10 "Encryption needed".
pub fn requiretls_needs_tls() -> Reply {
    Reply::new(
        530,
        "5.7.10",
        "REQUIRETLS needs a TLS session: issue STARTTLS first",
    )
}

pub fn too_many_errors() -> Reply {
    Reply::new(421, "4.7.0", "too many errors, closing connection")
}

pub fn timeout() -> Reply {
    Reply::new(421, "4.4.2", "timeout, closing connection")
}

pub fn shutting_down() -> Reply {
    Reply::new(421, "4.3.2", "shutting down, try again later")
}

pub fn too_many_connections() -> Reply {
    Reply::new(421, "4.7.0", "too many connections, try again later")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_replies_use_hyphens_but_on_the_last_line() {
        let reply = ehlo("mx.test", "client.test", vec!["PIPELINING".to_owned()]);
        assert_eq!(
            String::from_utf8_lossy(&reply.to_wire()),
            "250-mx.test greets client.test\r\n250 PIPELINING\r\n"
        );
        assert_eq!(
            String::from_utf8_lossy(&recipient_refused(RecipientRefusal::UnknownAddress).to_wire()),
            "550 5.1.1 no such user here\r\n"
        );
    }

    #[test]
    fn filter_refusals_are_permanent_with_the_reason() {
        let wire = |refusal| {
            String::from_utf8_lossy(&delivery_refused(DeliveryRefusal::Refused(refusal)).to_wire())
                .into_owned()
        };
        assert_eq!(
            wire(tme_filter::Refusal::DmarcReject {
                domain: "example.com".to_owned()
            }),
            "550 5.7.1 message refused: it fails the DMARC policy of example.com (p=reject)\r\n"
        );
        assert_eq!(
            wire(tme_filter::Refusal::Blocklisted {
                zone: "bl.example".to_owned()
            }),
            "554 5.7.1 client address listed at bl.example\r\n"
        );
    }

    #[test]
    fn control_characters_never_reach_the_wire() {
        let reply = syntax_error("a\r\nb");
        assert_eq!(reply.to_wire(), b"500 5.5.2 a  b\r\n");
    }
}
