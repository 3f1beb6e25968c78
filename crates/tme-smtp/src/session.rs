//! The SMTP session as a state machine (RFC 5321 §4.1, §4.3.2), with no I/O.
//!
//! The server hands it one command line at a time (already framed, see `framing`), and it
//! answers with a `Step`: a reply to send, or a piece of work only the server can do — look
//! a recipient up in the directory, read message content, start TLS, store a message — whose
//! result the server hands back through the matching method (`recipient_resolved`,
//! `data_finished`, `chunk_bytes`/`chunk_finished`, `tls_started`, `delivery_finished`). So
//! the whole protocol is testable with bytes, and the directory and store stay outside.
//!
//! It owns: command sequencing (EHLO before MAIL, MAIL before RCPT, no DATA after BDAT), the
//! ESMTP parameters we announce (SIZE RFC 1870, 8BITMIME RFC 6152, SMTPUTF8 RFC 6531, DSN RFC
//! 3461, CHUNKING RFC 3030, REQUIRETLS RFC 8689), the recipient count and size limits, and the error count after
//! which it gives up on a client. It must not: touch sockets or clocks, read the store, or
//! decide whether an address exists (the server asks the directory and passes a verdict).
//!
//! The checks of a message's authenticity and spam score (`tme-filter`) run in the server
//! inside `Step::Deliver`, before anything is stored; a refusal comes back through
//! `delivery_finished` like a store failure, and `reply` maps it to its code.

use std::net::IpAddr;

use smtp_proto::Request;
use tme_core::EmailAddress;
use tme_store::{AccountId, MailboxId};

use crate::data::{DataReceiver, MessageBuffer};
use crate::limits::SESSION_COMMANDS_MAX;
use crate::reply::{self, AuthRefusal, DeliveryRefusal, RecipientRefusal, Reply, SenderRefusal};
use crate::trace::TransferMode;

/// Which service a listener offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Inbound mail from the world (port 25): only for hosted domains, no AUTH.
    Mx,
    /// Message submission by our own users (RFC 6409, ports 587 and 465): AUTH first
    /// (only over TLS), then any recipient, from the user's own addresses only.
    Submission,
}

/// The user a submission session authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account: AccountId,
    pub address: EmailAddress,
    /// The secret AUTH used: each MAIL checks that it still stands.
    pub credential: tme_auth::Credential,
}

/// Where one recipient's copies go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientRoute {
    /// Local mailboxes.
    pub targets: Vec<DeliveryTarget>,
    /// Addresses the outbound queue must deliver to: the recipient itself when its domain
    /// is not ours (submission), or the external targets of a local alias.
    pub remote: Vec<EmailAddress>,
}

/// A SASL exchange waiting for the client's next line (RFC 4954 §4).
#[derive(Debug)]
enum SaslPending {
    /// PLAIN without an initial response: the whole response comes next.
    Plain,
    LoginUsername,
    LoginPassword {
        username: String,
    },
}

/// What a session needs to know about the server.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub service: Service,
    /// Our host name, in the greeting, EHLO and trace headers.
    pub hostname: String,
    pub message_bytes_max: u64,
    pub recipients_max: usize,
    /// Whether STARTTLS is offered (a certificate is loaded).
    pub tls_available: bool,
    /// Negative replies before `421` and close (a client that keeps getting errors is
    /// broken or probing).
    pub errors_max: u32,
}

/// One mailbox a recipient's copy goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryTarget {
    pub account: AccountId,
    pub mailbox: MailboxId,
    /// The account's address.
    pub address: EmailAddress,
}

/// The BODY parameter (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Unspecified,
    SevenBit,
    EightBitMime,
}

/// The RET parameter (RFC 3461 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnReturn {
    Full,
    Headers,
}

/// The NOTIFY parameter (RFC 3461 §4.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DsnNotify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
    pub never: bool,
}

/// An accepted recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: EmailAddress,
    pub dsn_notify: Option<DsnNotify>,
    /// ORCPT (RFC 3461 §4.2), as given (`rfc822;user@example.com`).
    pub dsn_original_recipient: Option<String>,
    pub targets: Vec<DeliveryTarget>,
    /// Addresses for the outbound queue (see `RecipientRoute::remote`).
    pub remote: Vec<EmailAddress>,
}

/// The envelope of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse-path without brackets; empty for the null sender `<>`.
    pub sender: String,
    pub body: Body,
    pub size_declared_octets: Option<u64>,
    pub smtputf8: bool,
    pub dsn_return: Option<DsnReturn>,
    pub dsn_envelope_id: Option<String>,
    /// MAIL carried REQUIRETLS (RFC 8689 §4.1): every onward hop must use TLS too. Final
    /// delivery into a mailbox satisfies it; forwarding must honour it.
    pub require_tls: bool,
    pub recipients: Vec<Recipient>,
}

/// A whole message, ready to store.
#[derive(Debug)]
pub struct MessageForDelivery {
    pub envelope: Envelope,
    pub helo_name: String,
    pub client_ip: IpAddr,
    pub mode: TransferMode,
    /// The content exactly as the client meant it (DATA unstuffed, BDAT chunks joined).
    pub message: Vec<u8>,
    /// Submission: who sent it.
    pub principal: Option<Principal>,
}

/// What the server must do next.
#[derive(Debug)]
pub enum Step {
    /// Send this reply, then read the next command.
    Reply(Reply),
    /// Send this reply, then close the connection.
    ReplyAndClose(Reply),
    /// Judge this recipient, then call `recipient_resolved`.
    ResolveRecipient {
        address: EmailAddress,
        size_declared_octets: Option<u64>,
    },
    /// Send this (354) reply, read content through the receiver, then call `data_finished`.
    ReceiveData(Reply, DataReceiver),
    /// Read exactly this many octets, handing them to `chunk_bytes`, then call
    /// `chunk_finished`. No reply comes first (RFC 3030 §2).
    ReceiveChunk { octets: u64 },
    /// Send this (220) reply, drop any input already buffered (RFC 3207 §4.2), run the TLS
    /// handshake, then call `tls_started`.
    StartTls(Reply),
    /// Store the message for every target, then call `delivery_finished`.
    Deliver(Box<MessageForDelivery>),
    /// Check these credentials (AUTH), then call `authentication_finished`. The password
    /// must not be logged.
    Authenticate {
        username: String,
        password: tme_core::Secret<String>,
    },
    /// Submission: check that the authenticated user may use this envelope sender (empty
    /// for `<>`), then call `sender_checked`.
    CheckSender {
        principal: Principal,
        address: String,
    },
}

#[derive(Debug)]
struct Transaction {
    envelope: Envelope,
    /// The recipient being judged by the server.
    pending_recipient: Option<Recipient>,
    /// Content of the BDAT chunks so far; Some once the first BDAT came.
    chunks: Option<MessageBuffer>,
    /// Set when a BDAT failed: the rest of the chunks are read, dropped and get this reply.
    chunks_refused: Option<Reply>,
}

/// The BDAT chunk being read.
#[derive(Debug)]
struct ChunkPlan {
    octets: u64,
    last: bool,
    /// Drop the content and answer this, counting it as an error or not.
    refusal: Option<(Reply, bool)>,
}

/// One SMTP session, from the greeting to QUIT.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    client_ip: IpAddr,
    /// The HELO/EHLO name, and whether it was EHLO.
    greeting: Option<(String, bool)>,
    tls_active: bool,
    transaction: Option<Transaction>,
    chunk: Option<ChunkPlan>,
    errors: u32,
    commands: u64,
    /// Submission: who logged in.
    principal: Option<Principal>,
    sasl: Option<SaslPending>,
    /// MAIL is waiting for `sender_checked`.
    sender_pending: bool,
}

impl Session {
    pub fn new(config: SessionConfig, client_ip: IpAddr) -> Session {
        Session {
            config,
            client_ip,
            greeting: None,
            tls_active: false,
            transaction: None,
            chunk: None,
            errors: 0,
            commands: 0,
            principal: None,
            sasl: None,
            sender_pending: false,
        }
    }

    /// The 220 greeting (RFC 5321 §4.3.1).
    pub fn greeting(&self) -> Reply {
        reply::greeting(&self.config.hostname)
    }

    /// Idle: no transaction in flight, so a shutdown may close the session.
    pub fn is_idle(&self) -> bool {
        self.transaction.is_none() && self.chunk.is_none() && self.sasl.is_none()
    }

    /// The user this session authenticated as.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    pub fn tls_active(&self) -> bool {
        self.tls_active
    }

    pub fn client_ip(&self) -> IpAddr {
        self.client_ip
    }

    /// A command line longer than the limit was dropped by the framer.
    pub fn line_too_long(&mut self) -> Step {
        self.answer(reply::line_too_long())
    }

    /// Handles one command line (LF included).
    pub fn command(&mut self, line: &[u8]) -> Step {
        self.commands += 1;
        if self.commands > SESSION_COMMANDS_MAX {
            return Step::ReplyAndClose(reply::too_many_errors());
        }
        // NUL and other controls have no place in a command (RFC 5321 §4.1.1: text is
        // printable); smtp-proto would read some of them as separators.
        let body = line
            .strip_suffix(b"\n")
            .map(|rest| rest.strip_suffix(b"\r").unwrap_or(rest))
            .unwrap_or(line);
        if let Some(pending) = self.sasl.take() {
            return self.sasl_response(pending, body);
        }
        if body
            .iter()
            .any(|octet| (*octet < 0x20 && *octet != b'\t') || *octet == 0x7f)
        {
            return self.answer(reply::syntax_error("control characters in command"));
        }
        // AUTH is read here, not by smtp-proto, which answers an unknown mechanism with a
        // syntax error where RFC 4954 §4 wants 504.
        let verb_is_auth = body
            .get(..4)
            .is_some_and(|verb| verb.eq_ignore_ascii_case(b"AUTH"));
        if verb_is_auth && matches!(body.get(4), None | Some(b' ')) {
            return self.auth(body.get(5..).unwrap_or_default());
        }
        let request = match Request::parse(&mut line.iter()) {
            Ok(request) => request,
            Err(error) => return self.answer(reply::parse_error(&error)),
        };
        match request {
            Request::Ehlo { host } => self.hello(&host, true),
            Request::Helo { host } => self.hello(&host, false),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => self.data(),
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size as u64, is_last),
            Request::Rset => {
                self.transaction = None;
                Step::Reply(reply::reset_ok())
            }
            Request::Noop { .. } => Step::Reply(reply::ok()),
            Request::Quit => Step::ReplyAndClose(reply::closing(&self.config.hostname)),
            Request::Vrfy { .. } => Step::Reply(reply::cannot_verify()),
            Request::Help { .. } => Step::Reply(reply::help()),
            Request::StartTls => self.start_tls(),
            Request::Lhlo { .. } => self.answer(reply::unknown_command()),
            Request::Auth { .. } => self.answer(reply::not_implemented()),
            Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => self.answer(reply::not_implemented()),
        }
    }

    fn hello(&mut self, host: &str, extended: bool) -> Step {
        // RFC 5321 §4.1.4: EHLO/HELO resets the transaction like RSET.
        self.transaction = None;
        self.greeting = Some((host.to_owned(), extended));
        if !extended {
            return Step::Reply(reply::helo(&self.config.hostname, host));
        }
        let mut capabilities = vec![
            "PIPELINING".to_owned(),
            format!("SIZE {}", self.config.message_bytes_max),
            "8BITMIME".to_owned(),
            "SMTPUTF8".to_owned(),
            "ENHANCEDSTATUSCODES".to_owned(),
            "CHUNKING".to_owned(),
            "DSN".to_owned(),
        ];
        if self.config.tls_available && !self.tls_active {
            capabilities.push("STARTTLS".to_owned());
        }
        // RFC 4954 §4 lets a server offer AUTH only when it would accept it: here, over
        // TLS only, so a password never crosses in plain text.
        if self.config.service == Service::Submission && self.tls_active {
            capabilities.push("AUTH PLAIN LOGIN".to_owned());
        }
        // REQUIRETLS is offered only inside TLS, as Exim and Stalwart do: a client that asks
        // for it in plain text could not have its wish honoured on this hop (RFC 8689 §4.1).
        if self.tls_active {
            capabilities.push("REQUIRETLS".to_owned());
        }
        capabilities.push("HELP".to_owned());
        Step::Reply(reply::ehlo(&self.config.hostname, host, capabilities))
    }

    fn extended(&self) -> bool {
        matches!(self.greeting, Some((_, true)))
    }

    fn mail(&mut self, from: smtp_proto::MailFrom<std::borrow::Cow<'_, str>>) -> Step {
        if self.greeting.is_none() {
            return self.answer(reply::bad_sequence("send EHLO or HELO first"));
        }
        if self.transaction.is_some() {
            return self.answer(reply::bad_sequence("nested MAIL command"));
        }
        let submission = self.config.service == Service::Submission;
        if submission && self.principal.is_none() {
            return self.answer(reply::auth_required());
        }
        let unsupported = smtp_proto::MAIL_BODY_BINARYMIME
            | smtp_proto::MAIL_CONPERM
            | smtp_proto::MAIL_BY_NOTIFY
            | smtp_proto::MAIL_BY_RETURN
            | smtp_proto::MAIL_BY_TRACE;
        let has_parameters = from.flags != 0
            || from.size != 0
            || from.env_id.is_some()
            || from.trans_id.is_some()
            || from.solicit.is_some()
            || from.mtrk.is_some()
            || from.auth.is_some()
            || from.hold_for != 0
            || from.hold_until != 0
            || from.mt_priority != 0
            || from.by != 0;
        if has_parameters && !self.extended() {
            // RFC 5321 §4.1.1.11: parameters need EHLO.
            return self.answer(reply::parameter_not_supported("MAIL parameters need EHLO"));
        }
        if from.flags & unsupported != 0
            || from.trans_id.is_some()
            || from.solicit.is_some()
            || from.mtrk.is_some()
            // RFC 4954 §5: AUTH= is for relays between trusted servers; a submission server
            // may accept and ignore it (the identity is the session's).
            || (from.auth.is_some() && !submission)
            || from.hold_for != 0
            || from.hold_until != 0
            || from.mt_priority != 0
        {
            return self.answer(reply::parameter_not_supported(
                "MAIL parameter not supported",
            ));
        }
        let require_tls = from.flags & smtp_proto::MAIL_REQUIRETLS != 0;
        if require_tls && !self.tls_active {
            return self.answer(reply::requiretls_needs_tls());
        }
        let size_declared_octets = (from.size != 0).then_some(from.size as u64);
        if size_declared_octets.is_some_and(|size| size > self.config.message_bytes_max) {
            return self.answer(reply::message_too_big(self.config.message_bytes_max));
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        let sender = from.address.as_ref();
        if sender.chars().any(char::is_control) {
            return self.answer(reply::bad_sender_address());
        }
        if !sender.is_ascii() && !smtputf8 {
            return self.answer(reply::needs_smtputf8());
        }
        let body = if from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0 {
            Body::EightBitMime
        } else if from.flags & smtp_proto::MAIL_BODY_7BIT != 0 {
            Body::SevenBit
        } else {
            Body::Unspecified
        };
        let dsn_return = if from.flags & smtp_proto::MAIL_RET_FULL != 0 {
            Some(DsnReturn::Full)
        } else if from.flags & smtp_proto::MAIL_RET_HDRS != 0 {
            Some(DsnReturn::Headers)
        } else {
            None
        };
        self.transaction = Some(Transaction {
            envelope: Envelope {
                sender: sender.to_owned(),
                body,
                size_declared_octets,
                smtputf8,
                dsn_return,
                dsn_envelope_id: from.env_id.map(|id| id.into_owned()),
                require_tls,
                recipients: Vec::new(),
            },
            pending_recipient: None,
            chunks: None,
            chunks_refused: None,
        });
        if let (true, Some(principal)) = (submission, self.principal.clone()) {
            self.sender_pending = true;
            return Step::CheckSender {
                principal,
                address: sender.to_owned(),
            };
        }
        Step::Reply(reply::sender_ok())
    }

    /// The server's verdict on the sender of the last `Step::CheckSender`.
    pub fn sender_checked(&mut self, verdict: Result<(), SenderRefusal>) -> Step {
        if !std::mem::take(&mut self.sender_pending) {
            return self.answer(reply::bad_sequence("no sender pending"));
        }
        match verdict {
            Ok(()) => Step::Reply(reply::sender_ok()),
            Err(SenderRefusal::CredentialRevoked) => {
                // The session is no longer authenticated; the client may AUTH again.
                self.transaction = None;
                self.principal = None;
                self.answer(reply::sender_refused(SenderRefusal::CredentialRevoked))
            }
            Err(refusal) => {
                self.transaction = None;
                self.answer(reply::sender_refused(refusal))
            }
        }
    }

    /// `AUTH mechanism [initial-response]` (RFC 4954 §4), `arguments` after `AUTH `.
    fn auth(&mut self, arguments: &[u8]) -> Step {
        if self.config.service != Service::Submission {
            return self.answer(reply::not_implemented());
        }
        if !self.extended() {
            return self.answer(reply::bad_sequence("send EHLO first"));
        }
        if self.principal.is_some() {
            return self.answer(reply::bad_sequence("already authenticated"));
        }
        if self.transaction.is_some() {
            return self.answer(reply::bad_sequence(
                "AUTH not allowed during a mail transaction",
            ));
        }
        if !self.tls_active {
            return self.answer(reply::auth_needs_tls());
        }
        let text = String::from_utf8_lossy(arguments);
        let mut words = text.split(' ').filter(|word| !word.is_empty());
        let mechanism = words.next().unwrap_or_default().to_ascii_uppercase();
        let initial = words.next();
        if words.next().is_some() {
            return self.answer(reply::syntax_error("AUTH mechanism [initial-response]"));
        }
        match (mechanism.as_str(), initial) {
            ("PLAIN", None) => {
                self.sasl = Some(SaslPending::Plain);
                Step::Reply(reply::auth_challenge(""))
            }
            ("PLAIN", Some(response)) => self.plain_response(response.as_bytes()),
            ("LOGIN", None) => {
                self.sasl = Some(SaslPending::LoginUsername);
                Step::Reply(reply::auth_challenge(LOGIN_USERNAME_PROMPT))
            }
            // RFC 4954 §4 allows an initial response with LOGIN too (the user name).
            ("LOGIN", Some(response)) => {
                self.sasl_response(SaslPending::LoginUsername, response.as_bytes())
            }
            ("", _) => self.answer(reply::syntax_error("AUTH mechanism [initial-response]")),
            _ => self.answer(reply::auth_mechanism_unknown()),
        }
    }

    /// A line of a SASL exchange.
    fn sasl_response(&mut self, pending: SaslPending, response: &[u8]) -> Step {
        // RFC 4954 §4: `*` cancels the exchange with 501.
        if response == b"*" {
            return self.answer(reply::auth_cancelled());
        }
        match pending {
            SaslPending::Plain => self.plain_response(response),
            SaslPending::LoginUsername => match decode_base64(response) {
                Some(username) => {
                    self.sasl = Some(SaslPending::LoginPassword {
                        username: String::from_utf8_lossy(&username).into_owned(),
                    });
                    Step::Reply(reply::auth_challenge(LOGIN_PASSWORD_PROMPT))
                }
                None => self.answer(reply::auth_bad_base64()),
            },
            SaslPending::LoginPassword { username } => match decode_base64(response) {
                Some(password) => Step::Authenticate {
                    username,
                    password: tme_core::Secret::new(
                        String::from_utf8_lossy(&password).into_owned(),
                    ),
                },
                None => self.answer(reply::auth_bad_base64()),
            },
        }
    }

    /// A PLAIN response (RFC 4616 §2): `[authzid] NUL authcid NUL passwd`. An
    /// authorization identity other than the user's own is refused: nobody here may act
    /// for another user.
    fn plain_response(&mut self, response: &[u8]) -> Step {
        // RFC 4954 §4: `=` is an empty initial response.
        let decoded = if response == b"=" {
            Some(Vec::new())
        } else {
            decode_base64(response)
        };
        let Some(decoded) = decoded else {
            return self.answer(reply::auth_bad_base64());
        };
        let mut parts = decoded.split(|octet| *octet == 0);
        let (Some(authorization), Some(username), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return self.answer(reply::syntax_error("malformed PLAIN response"));
        };
        if !authorization.is_empty() && authorization != username {
            return self.answer(reply::auth_refused(AuthRefusal::BadCredentials));
        }
        Step::Authenticate {
            username: String::from_utf8_lossy(username).into_owned(),
            password: tme_core::Secret::new(String::from_utf8_lossy(password).into_owned()),
        }
    }

    /// The server's verdict on the last `Step::Authenticate`.
    pub fn authentication_finished(&mut self, verdict: Result<Principal, AuthRefusal>) -> Step {
        match verdict {
            Ok(principal) => {
                self.principal = Some(principal);
                Step::Reply(reply::auth_succeeded())
            }
            Err(refusal) => self.answer(reply::auth_refused(refusal)),
        }
    }

    fn rcpt(&mut self, to: smtp_proto::RcptTo<std::borrow::Cow<'_, str>>) -> Step {
        let extended = self.extended();
        let recipients_max = self.config.recipients_max;
        let Some(transaction) = self.transaction.as_mut() else {
            return self.answer(reply::bad_sequence("need MAIL before RCPT"));
        };
        if transaction.chunks.is_some() {
            return self.answer(reply::bad_sequence("RCPT after BDAT"));
        }
        if transaction.envelope.recipients.len() >= recipients_max {
            // Not counted as an error: a client with a long list is expected to hit this.
            return Step::Reply(reply::too_many_recipients());
        }
        let has_parameters = to.flags != 0 || to.orcpt.is_some() || to.rrvs != 0;
        if has_parameters && !extended {
            return self.answer(reply::parameter_not_supported("RCPT parameters need EHLO"));
        }
        if to.flags
            & (smtp_proto::RCPT_CONNEG
                | smtp_proto::RCPT_RRVS_REJECT
                | smtp_proto::RCPT_RRVS_CONTINUE)
            != 0
            || to.rrvs != 0
        {
            return self.answer(reply::parameter_not_supported(
                "RCPT parameter not supported",
            ));
        }
        let text = to.address.as_ref();
        if !text.is_ascii() && !transaction.envelope.smtputf8 {
            return self.answer(reply::needs_smtputf8());
        }
        // RFC 5321 §4.5.1: `<Postmaster>` without a domain must be accepted; it is ours.
        // smtp-proto hands it over as the empty address (and `<>` too, which is no valid
        // forward-path: taking it as Postmaster harms nobody).
        let parsed = if text.is_empty() || text.eq_ignore_ascii_case("postmaster") {
            EmailAddress::parse(&format!("postmaster@{}", self.config.hostname))
        } else {
            EmailAddress::parse(text)
        };
        let Ok(address) = parsed else {
            return self.answer(reply::bad_recipient_address());
        };
        let notify_flags = to.flags
            & (smtp_proto::RCPT_NOTIFY_SUCCESS
                | smtp_proto::RCPT_NOTIFY_FAILURE
                | smtp_proto::RCPT_NOTIFY_DELAY
                | smtp_proto::RCPT_NOTIFY_NEVER);
        let dsn_notify = (notify_flags != 0).then_some(DsnNotify {
            success: notify_flags & smtp_proto::RCPT_NOTIFY_SUCCESS != 0,
            failure: notify_flags & smtp_proto::RCPT_NOTIFY_FAILURE != 0,
            delay: notify_flags & smtp_proto::RCPT_NOTIFY_DELAY != 0,
            never: notify_flags & smtp_proto::RCPT_NOTIFY_NEVER != 0,
        });
        let size_declared_octets = transaction.envelope.size_declared_octets;
        transaction.pending_recipient = Some(Recipient {
            address: address.clone(),
            dsn_notify,
            dsn_original_recipient: to.orcpt.map(|orcpt| orcpt.into_owned()),
            targets: Vec::new(),
            remote: Vec::new(),
        });
        Step::ResolveRecipient {
            address,
            size_declared_octets,
        }
    }

    /// The server's verdict on the recipient of the last `Step::ResolveRecipient`, when
    /// only local mailboxes can take it (the MX).
    pub fn recipient_resolved(
        &mut self,
        verdict: Result<Vec<DeliveryTarget>, RecipientRefusal>,
    ) -> Step {
        self.recipient_routed(verdict.map(|targets| RecipientRoute {
            targets,
            remote: Vec::new(),
        }))
    }

    /// The server's verdict on the recipient of the last `Step::ResolveRecipient`.
    pub fn recipient_routed(&mut self, verdict: Result<RecipientRoute, RecipientRefusal>) -> Step {
        let Some(transaction) = self.transaction.as_mut() else {
            return self.answer(reply::bad_sequence("need MAIL before RCPT"));
        };
        let Some(mut recipient) = transaction.pending_recipient.take() else {
            return self.answer(reply::bad_sequence("no recipient pending"));
        };
        match verdict {
            Ok(route) if !route.targets.is_empty() || !route.remote.is_empty() => {
                recipient.targets = route.targets;
                recipient.remote = route.remote;
                transaction.envelope.recipients.push(recipient);
                Step::Reply(reply::recipient_ok())
            }
            Ok(_) => self.answer(reply::recipient_refused(RecipientRefusal::UnknownAddress)),
            Err(refusal) => self.answer(reply::recipient_refused(refusal)),
        }
    }

    fn data(&mut self) -> Step {
        let octets_max = self.config.message_bytes_max;
        let Some(transaction) = self.transaction.as_ref() else {
            return self.answer(reply::bad_sequence("need MAIL before DATA"));
        };
        if transaction.chunks.is_some() {
            // RFC 3030 §2: DATA and BDAT do not mix in one transaction.
            return self.answer(reply::bad_sequence("DATA after BDAT"));
        }
        if transaction.envelope.recipients.is_empty() {
            return self.answer(reply::no_valid_recipients());
        }
        Step::ReceiveData(reply::start_data(), DataReceiver::new(octets_max))
    }

    /// The content of a DATA ended (CRLF `.` CRLF).
    pub fn data_finished(&mut self, receiver: DataReceiver) -> Step {
        let shape = receiver.shape();
        let message = receiver.into_message();
        if shape.bare_line_feeds + shape.bare_carriage_returns + shape.lines_too_long > 0 {
            tracing::info!(
                bare_line_feeds = shape.bare_line_feeds,
                bare_carriage_returns = shape.bare_carriage_returns,
                lines_too_long = shape.lines_too_long,
                "message content breaks RFC 5321 line rules; kept as sent"
            );
        }
        self.finish_content(message)
    }

    fn bdat(&mut self, octets: u64, last: bool) -> Step {
        let octets_max = self.config.message_bytes_max;
        let refusal = match self.transaction.as_mut() {
            None => Some((reply::bad_sequence("need MAIL before BDAT"), true)),
            Some(transaction) => {
                if let Some(refused) = &transaction.chunks_refused {
                    Some((refused.clone(), false))
                } else if transaction.envelope.recipients.is_empty() {
                    let refused = reply::no_valid_recipients();
                    transaction.chunks_refused = Some(refused.clone());
                    Some((refused, true))
                } else {
                    transaction
                        .chunks
                        .get_or_insert_with(|| MessageBuffer::new(octets_max));
                    None
                }
            }
        };
        self.chunk = Some(ChunkPlan {
            octets,
            last,
            refusal,
        });
        Step::ReceiveChunk { octets }
    }

    /// Content of the BDAT chunk being read.
    pub fn chunk_bytes(&mut self, content: &[u8]) {
        if self
            .chunk
            .as_ref()
            .is_some_and(|plan| plan.refusal.is_none())
            && let Some(chunks) = self
                .transaction
                .as_mut()
                .and_then(|transaction| transaction.chunks.as_mut())
        {
            chunks.append(content);
        }
    }

    /// The BDAT chunk was read whole.
    pub fn chunk_finished(&mut self) -> Step {
        let Some(plan) = self.chunk.take() else {
            return self.answer(reply::bad_sequence("no chunk in progress"));
        };
        if let Some((refused, counted)) = plan.refusal {
            if plan.last {
                self.transaction = None;
            }
            return if counted {
                self.answer(refused)
            } else {
                Step::Reply(refused)
            };
        }
        let exceeded = self
            .transaction
            .as_ref()
            .and_then(|transaction| transaction.chunks.as_ref())
            .is_none_or(MessageBuffer::exceeded);
        if exceeded {
            let refused = reply::message_too_big(self.config.message_bytes_max);
            if plan.last {
                self.transaction = None;
            } else if let Some(transaction) = self.transaction.as_mut() {
                transaction.chunks_refused = Some(refused.clone());
            }
            return self.answer(refused);
        }
        if !plan.last {
            return Step::Reply(reply::chunk_ok(plan.octets));
        }
        let message = self
            .transaction
            .as_mut()
            .and_then(|transaction| transaction.chunks.take())
            .unwrap_or_default();
        self.finish_content(message)
    }

    /// The content is complete: refuse it when too big, else hand it over for storing.
    fn finish_content(&mut self, message: MessageBuffer) -> Step {
        let Some(transaction) = self.transaction.take() else {
            return self.answer(reply::bad_sequence("no transaction"));
        };
        if message.exceeded() {
            return self.answer(reply::message_too_big(message.octets_max()));
        }
        let (helo_name, extended) = self
            .greeting
            .clone()
            .unwrap_or_else(|| ("unknown".to_owned(), false));
        let mode = TransferMode {
            extended,
            tls: self.tls_active,
            smtputf8: transaction.envelope.smtputf8,
            authenticated: self.principal.is_some(),
        };
        Step::Deliver(Box::new(MessageForDelivery {
            envelope: transaction.envelope,
            helo_name,
            client_ip: self.client_ip,
            mode,
            message: message.into_bytes(),
            principal: self.principal.clone(),
        }))
    }

    /// The store's answer for the last `Step::Deliver`: the transaction id, or a refusal.
    pub fn delivery_finished(&mut self, outcome: Result<String, DeliveryRefusal>) -> Step {
        match outcome {
            Ok(transaction_id) => Step::Reply(reply::message_accepted(&transaction_id)),
            Err(refusal) => self.answer(reply::delivery_refused(refusal)),
        }
    }

    fn start_tls(&mut self) -> Step {
        if self.tls_active {
            return self.answer(reply::bad_sequence("TLS already active"));
        }
        if !self.config.tls_available {
            return self.answer(reply::tls_not_available());
        }
        if !self.extended() {
            return self.answer(reply::bad_sequence("send EHLO first"));
        }
        Step::StartTls(reply::ready_to_start_tls())
    }

    /// The TLS handshake succeeded: RFC 3207 §4.2, the client starts over with EHLO (and
    /// forgets anything learnt before, such as an AUTH, RFC 4954 §4).
    pub fn tls_started(&mut self) {
        self.tls_active = true;
        self.greeting = None;
        self.transaction = None;
        self.chunk = None;
        self.principal = None;
        self.sasl = None;
    }

    /// Sends a reply, counting negative ones; too many and the session ends with 421.
    fn answer(&mut self, reply: Reply) -> Step {
        if reply.is_negative() {
            self.errors += 1;
            if self.errors >= self.config.errors_max {
                return Step::ReplyAndClose(reply::too_many_errors());
            }
        }
        Step::Reply(reply)
    }
}

/// RFC 4954 leaves LOGIN's prompts to custom; these are what every client expects.
const LOGIN_USERNAME_PROMPT: &str = "VXNlcm5hbWU6"; // "Username:"
const LOGIN_PASSWORD_PROMPT: &str = "UGFzc3dvcmQ6"; // "Password:"

/// Standard base64 with padding, as RFC 4954 §4 requires; None when malformed.
fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests;
