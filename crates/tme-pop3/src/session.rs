//! One POP3 session: the protocol state (AUTHORIZATION, TRANSACTION; UPDATE is what QUIT does
//! on the way out), what each command may do in it, and the store work each command needs.
//!
//! It takes command lines (from `framing`) and appends responses to a buffer; it never touches
//! a socket, TLS or a timer: the server does, following the `Next` it returns (start TLS,
//! send a message in chunks, close). Logins go through `tme_auth` (throttling and locks like
//! every role); the maildrop is the account's INBOX (`maildrop`), sent in wire form by
//! `transfer`. Response codes are RFC 2449 §8 and RFC 3206: `[IN-USE]`, `[AUTH]`,
//! `[SYS/TEMP]`, `[SYS/PERM]`.
//!
//! What it must not do: change the store before QUIT (RFC 1939 §6: marks live in the session;
//! a dropped connection deletes nothing), take a password before TLS, or send a message
//! another session expunged since the login (it answers `-ERR` instead).

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use tme_auth::{Authenticator, CredentialWatch, LoginRefusal};
use tme_core::Secret;
use tme_store::mail::SystemFlags;
use tme_store::{Account, FlagChange, Flags, MessageRecord, Store, StoreError};

use crate::command::{self, Command, CommandError};
use crate::maildrop::{Maildrop, MaildropLock, MaildropLocks, NumberRefusal, WireSizeCache};
use crate::metrics::Metrics;
use crate::transfer::{Transfer, wire_size};

/// The longest command line, its CRLF included (RFC 2449 §4). AUTH's line may be longer, up to
/// `SASL_LINE_OCTETS_MAX`: a client that sends an initial response past 255 octets breaks
/// RFC 5034 §4, and refusing it would only lock that client out.
pub const COMMAND_LINE_OCTETS_MAX: usize = 255;
/// The longest line the framer takes: an AUTH command or a SASL response. PLAIN carries an
/// address and a password in base64; 4 KiB is far more than either needs.
pub const SASL_LINE_OCTETS_MAX: usize = 4096;

/// What the session needs from the listener it runs on.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub hostname: String,
    /// Whether this listener can start TLS (a certificate is loaded and the connection is
    /// not TLS already).
    pub starttls_available: bool,
    /// Protocol errors (unknown commands, bad syntax, commands in the wrong state, lines too
    /// long, bad SASL data) before the session is closed.
    pub session_errors_max: u32,
}

/// What every session of a node shares.
#[derive(Debug)]
pub struct Shared {
    pub store: Store,
    pub authenticator: Arc<Authenticator>,
    pub locks: MaildropLocks,
    pub wire_sizes: WireSizeCache,
    pub metrics: Arc<Metrics>,
}

/// What the server does after a command.
#[derive(Debug)]
pub enum Next {
    Continue,
    /// Write the responses, then the TLS handshake; bytes read before it are thrown away.
    StartTls,
    /// Write the responses, then the message in chunks (`Transfer::fill`).
    Transfer(Transfer),
    /// Write the responses and close.
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// RFC 1939 §4; `user` is the name of a USER command waiting for its PASS.
    Authorization { user: Option<String> },
    /// AUTH PLAIN without an initial response: the next line is the client's response.
    AuthResponse,
    /// RFC 1939 §5: logged in, the maildrop open and locked.
    Transaction,
}

/// One client's session.
#[derive(Debug)]
pub struct Session {
    config: Arc<SessionConfig>,
    shared: Arc<Shared>,
    client_ip: IpAddr,
    tls_active: bool,
    state: State,
    account: Option<Account>,
    /// The secret the login used: the session ends once it is revoked or changed.
    credential: Option<CredentialWatch>,
    maildrop: Option<Maildrop>,
    /// Held while in TRANSACTION; released when the session is dropped.
    lock: Option<MaildropLock>,
    errors: u32,
}

/// The capabilities every state lists (RFC 2449 §6).
const CAPABILITIES: &[&str] = &[
    "TOP",
    "UIDL",
    "RESP-CODES",
    "AUTH-RESP-CODE",
    "PIPELINING",
    "IMPLEMENTATION tme",
];

fn bytes_to_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Session {
    pub fn new(
        config: Arc<SessionConfig>,
        shared: Arc<Shared>,
        client_ip: IpAddr,
        tls_active: bool,
    ) -> Session {
        Session {
            config,
            shared,
            client_ip,
            tls_active,
            state: State::Authorization { user: None },
            account: None,
            credential: None,
            maildrop: None,
            lock: None,
            errors: 0,
        }
    }

    /// The greeting (RFC 1939 §4). No APOP timestamp: APOP is not offered.
    pub fn greeting(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("+OK {} POP3 ready\r\n", self.config.hostname).as_bytes());
    }

    /// Whether the session logged in (the server's timeout message and logs).
    pub fn logged_in(&self) -> bool {
        self.state == State::Transaction
    }

    /// Whether the session is closing because of too many protocol errors.
    pub fn too_many_errors(&self) -> bool {
        self.errors >= self.config.session_errors_max
    }

    /// TLS is now active (after STLS). RFC 2595 §4: what the client said before (a USER
    /// name) is forgotten.
    pub fn tls_started(&mut self) {
        self.tls_active = true;
        self.state = State::Authorization { user: None };
    }

    fn ok(&self, out: &mut Vec<u8>, text: &str) {
        Metrics::count(&self.shared.metrics.commands, "ok");
        out.extend_from_slice(b"+OK");
        if !text.is_empty() {
            out.push(b' ');
            out.extend_from_slice(text.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }

    /// A negative answer that is not the client's protocol error (a wrong password, a lock,
    /// the store): it does not count toward `session_errors_max`.
    fn err(&self, out: &mut Vec<u8>, code: Option<&str>, text: &str) {
        Metrics::count(&self.shared.metrics.commands, "err");
        out.extend_from_slice(b"-ERR ");
        if let Some(code) = code {
            out.extend_from_slice(format!("[{code}] ").as_bytes());
        }
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// A protocol error by the client; past `session_errors_max` the session is closed.
    fn protocol_error(&mut self, out: &mut Vec<u8>, text: &str) -> Next {
        self.errors += 1;
        if self.errors >= self.config.session_errors_max {
            self.err(out, None, &format!("{text} (too many errors: closing)"));
            return Next::Close;
        }
        self.err(out, None, text);
        Next::Continue
    }

    /// A line over the framer's limit was thrown away.
    pub fn line_too_long(&mut self, out: &mut Vec<u8>) -> Next {
        if self.state == State::AuthResponse {
            self.state = State::Authorization { user: None };
        }
        self.protocol_error(out, "line too long")
    }

    /// Handles one line (a command, or the client's SASL response).
    pub async fn line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Next {
        if !self.credential_stands().await {
            // RFC 1939 §6: a session that ends without QUIT does not enter the UPDATE state,
            // so nothing marked deleted is removed.
            self.err(
                out,
                Some("AUTH"),
                "The password or app password of this session was changed or revoked",
            );
            return Next::Close;
        }
        if self.state == State::AuthResponse {
            return self.auth_response(line, out).await;
        }
        if line.len() + 2 > COMMAND_LINE_OCTETS_MAX && !command::is_auth(line) {
            return self.protocol_error(out, "line too long");
        }
        let command = match command::parse(line) {
            Ok(command) => command,
            Err(CommandError::Unknown) => return self.protocol_error(out, "unknown command"),
            Err(CommandError::Syntax { usage }) => {
                return self.protocol_error(out, &format!("syntax: {usage}"));
            }
        };
        match (self.state.clone(), command) {
            (_, Command::Capa) => {
                self.capa(out);
                Next::Continue
            }
            (State::Authorization { .. }, Command::Quit) => {
                self.ok(out, "bye");
                Next::Close
            }
            (State::Authorization { .. }, Command::Stls) => self.stls(out),
            (State::Authorization { .. }, Command::User(name)) => {
                if self.refuse_plain_text(out) {
                    return Next::Continue;
                }
                self.state = State::Authorization { user: Some(name) };
                self.ok(out, "send PASS");
                Next::Continue
            }
            (State::Authorization { user }, Command::Pass(password)) => {
                if self.refuse_plain_text(out) {
                    return Next::Continue;
                }
                // RFC 1939 §7: after PASS, right or wrong, USER starts over.
                self.state = State::Authorization { user: None };
                let Some(user) = user else {
                    return self.protocol_error(out, "USER first");
                };
                self.login(&user, &password, out).await;
                Next::Continue
            }
            (
                State::Authorization { .. },
                Command::Auth {
                    mechanism,
                    initial_response,
                },
            ) => self.auth(mechanism, initial_response, out).await,
            (State::Transaction, command) => self.transaction(command, out).await,
            (_, command) => self.protocol_error(
                out,
                &format!("{} is not valid in this state", command.name()),
            ),
        }
    }

    // ---- AUTHORIZATION ----

    /// CAPA (RFC 2449 §5): USER and SASL only where a password may be sent, STLS where TLS
    /// can start.
    fn capa(&self, out: &mut Vec<u8>) {
        self.ok(out, "Capability list follows");
        let mut lines: Vec<&str> = CAPABILITIES.to_vec();
        if matches!(self.state, State::Authorization { .. }) {
            if self.config.starttls_available && !self.tls_active {
                lines.push("STLS");
            }
            if self.tls_active {
                lines.extend(["USER", "SASL PLAIN"]);
            }
        }
        for line in lines {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }

    /// STLS (RFC 2595 §4).
    fn stls(&mut self, out: &mut Vec<u8>) -> Next {
        if self.tls_active {
            return self.protocol_error(out, "TLS is already active");
        }
        if !self.config.starttls_available {
            self.err(out, None, "STLS is not available");
            return Next::Continue;
        }
        self.ok(out, "Begin TLS negotiation");
        Next::StartTls
    }

    /// Passwords only after TLS (as IMAP's LOGINDISABLED): true when refused.
    fn refuse_plain_text(&self, out: &mut Vec<u8>) -> bool {
        if self.tls_active {
            return false;
        }
        self.err(
            out,
            Some("AUTH"),
            "Plain-text login is disabled: use STLS (or the pop3s port) first",
        );
        true
    }

    /// AUTH (RFC 5034): PLAIN only; without a mechanism, the list (RFC 1734's form, which
    /// clients still send).
    async fn auth(
        &mut self,
        mechanism: Option<String>,
        initial_response: Option<Vec<u8>>,
        out: &mut Vec<u8>,
    ) -> Next {
        if self.refuse_plain_text(out) {
            return Next::Continue;
        }
        self.state = State::Authorization { user: None };
        let Some(mechanism) = mechanism else {
            self.ok(out, "Mechanisms follow");
            out.extend_from_slice(b"PLAIN\r\n.\r\n");
            return Next::Continue;
        };
        if mechanism != "PLAIN" {
            self.err(out, None, "Unrecognized authentication type");
            return Next::Continue;
        }
        match initial_response {
            // RFC 5034 §4: "=" is an empty initial response.
            Some(response) if response == b"=" => {
                self.authenticate_plain(b"", out).await;
                Next::Continue
            }
            Some(response) => self.sasl_response(&response, out).await,
            None => {
                self.state = State::AuthResponse;
                out.extend_from_slice(b"+ \r\n");
                Next::Continue
            }
        }
    }

    /// The client's line after `+ `: base64, or `*` to cancel (RFC 5034 §4).
    async fn auth_response(&mut self, line: &[u8], out: &mut Vec<u8>) -> Next {
        self.state = State::Authorization { user: None };
        if line == b"*" {
            self.err(out, None, "AUTH cancelled");
            return Next::Continue;
        }
        self.sasl_response(line, out).await
    }

    async fn sasl_response(&mut self, encoded: &[u8], out: &mut Vec<u8>) -> Next {
        match base64::engine::general_purpose::STANDARD.decode(encoded) {
            Ok(response) => {
                self.authenticate_plain(&response, out).await;
                Next::Continue
            }
            Err(_) => self.protocol_error(out, "invalid base64 in the AUTH response"),
        }
    }

    /// SASL PLAIN (RFC 4616): `authzid NUL authcid NUL password`.
    async fn authenticate_plain(&mut self, response: &[u8], out: &mut Vec<u8>) {
        let mut fields = response.split(|&byte| byte == 0);
        let (Some(authzid), Some(authcid), Some(password), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            self.err(out, Some("AUTH"), "Malformed PLAIN response");
            return;
        };
        if !authzid.is_empty() && authzid != authcid {
            self.err(
                out,
                Some("AUTH"),
                "Logging in as another user is not allowed",
            );
            return;
        }
        let username = bytes_to_text(authcid);
        let password = Secret::new(bytes_to_text(password));
        self.login(&username, &password, out).await;
    }

    /// Checks the credentials, locks the maildrop and opens it (RFC 1939 §4).
    async fn login(&mut self, username: &str, password: &Secret<String>, out: &mut Vec<u8>) {
        let login = match self
            .shared
            .authenticator
            .login(self.client_ip, username, password)
            .await
        {
            Ok(login) => login,
            Err(LoginRefusal::BadCredentials) => {
                return self.err(out, Some("AUTH"), "Authentication failed");
            }
            Err(LoginRefusal::Locked { .. }) => {
                return self.err(out, Some("AUTH"), "Too many failed logins: try again later");
            }
            Err(LoginRefusal::AccountSuspended) => {
                return self.err(out, Some("SYS/PERM"), "This account is suspended");
            }
            Err(LoginRefusal::Unavailable) => {
                return self.err(
                    out,
                    Some("SYS/TEMP"),
                    "Login is unavailable: try again later",
                );
            }
        };
        let account = login.account.clone();
        let Some(lock) = self.shared.locks.try_lock(account.id) else {
            tracing::info!(account = %account.address, "pop3: maildrop in use");
            return self.err(
                out,
                Some("IN-USE"),
                "The maildrop is in use by another POP3 session",
            );
        };
        let maildrop = match self.open_maildrop(&account).await {
            Ok(maildrop) => maildrop,
            Err(error) => {
                tracing::warn!(%error, account = %account.address, "pop3: cannot open the maildrop");
                return self.err(
                    out,
                    Some("SYS/TEMP"),
                    "The maildrop cannot be opened: try again later",
                );
            }
        };
        let (count, octets) = maildrop.stat();
        tracing::info!(account = %account.address, messages = count, "pop3: logged in");
        self.account = Some(account);
        self.credential = Some(CredentialWatch::new(&login));
        self.maildrop = Some(maildrop);
        self.lock = Some(lock);
        self.state = State::Transaction;
        self.ok(
            out,
            &format!("Logged in: {count} messages ({octets} octets)"),
        );
    }

    /// False once the credential of the login was revoked or changed, or the account
    /// suspended (`tme_auth::CredentialWatch`).
    async fn credential_stands(&mut self) -> bool {
        let Some(watch) = &mut self.credential else {
            return true;
        };
        if watch.still_valid(&self.shared.authenticator).await {
            return true;
        }
        if let Some(account) = &self.account {
            tracing::info!(account = %account.address, "pop3: credential revoked; session ended");
        }
        false
    }

    /// The INBOX's snapshot, with every message's wire size (from the node's cache, or read
    /// once). A message whose bytes cannot be read back (a damaged blob) is left out with a
    /// warning, so that one bad message does not keep the user from the rest.
    async fn open_maildrop(&self, account: &Account) -> Result<Maildrop, StoreError> {
        let store = &self.shared.store;
        store
            .mail
            .account_ensure(account.id, account.quota_bytes_max)
            .await?;
        let inbox = store
            .mail
            .mailbox_find(account.id, "INBOX")
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "mailbox",
                name: "INBOX".to_owned(),
            })?;
        let records = store.mail.message_list(account.id, inbox.id).await?;
        let mut messages = Vec::with_capacity(records.len());
        for record in records {
            let size = match self.shared.wire_sizes.get(&record.blob_id) {
                Some(size) => size,
                None => match store.message_raw(&record).await {
                    Ok(raw) => {
                        let size = wire_size(&raw);
                        self.shared.wire_sizes.put(record.blob_id, size);
                        size
                    }
                    Err(error @ (StoreError::Corrupt(_) | StoreError::NotFound { .. })) => {
                        tracing::warn!(%error, uid = record.uid, "pop3: message left out of the maildrop");
                        continue;
                    }
                    Err(error) => return Err(error),
                },
            };
            messages.push((record, size));
        }
        Ok(Maildrop::new(&inbox, messages))
    }

    // ---- TRANSACTION ----

    async fn transaction(&mut self, command: Command, out: &mut Vec<u8>) -> Next {
        let Some(maildrop) = &self.maildrop else {
            return self.protocol_error(out, "no maildrop");
        };
        match command {
            Command::Stat => {
                let (count, octets) = maildrop.stat();
                self.ok(out, &format!("{count} {octets}"));
            }
            Command::List(None) => {
                let (count, octets) = maildrop.stat();
                let mut listing = Vec::new();
                for (number, message) in maildrop.listing() {
                    listing.extend_from_slice(
                        format!("{number} {}\r\n", message.wire_size).as_bytes(),
                    );
                }
                self.ok(out, &format!("{count} messages ({octets} octets)"));
                out.extend_from_slice(&listing);
                out.extend_from_slice(b".\r\n");
            }
            Command::List(Some(number)) => match maildrop.get(number) {
                Ok(message) => self.ok(out, &format!("{number} {}", message.wire_size)),
                Err(refusal) => self.refuse_number(out, number, refusal),
            },
            Command::Uidl(None) => {
                let mut listing = Vec::new();
                for (number, message) in maildrop.listing() {
                    listing.extend_from_slice(
                        format!("{number} {}\r\n", maildrop.unique_id(message)).as_bytes(),
                    );
                }
                self.ok(out, "Unique-ID listing follows");
                out.extend_from_slice(&listing);
                out.extend_from_slice(b".\r\n");
            }
            Command::Uidl(Some(number)) => match maildrop.get(number) {
                Ok(message) => {
                    let id = maildrop.unique_id(message);
                    self.ok(out, &format!("{number} {id}"));
                }
                Err(refusal) => self.refuse_number(out, number, refusal),
            },
            Command::Retr(number) => return self.send(number, None, out).await,
            Command::Top { message, lines } => return self.send(message, Some(lines), out).await,
            Command::Dele(number) => {
                let marked = self
                    .maildrop
                    .as_mut()
                    .map(|maildrop| maildrop.mark_deleted(number));
                match marked {
                    Some(Ok(())) => self.ok(out, &format!("message {number} deleted")),
                    Some(Err(refusal)) => self.refuse_number(out, number, refusal),
                    None => {}
                }
            }
            Command::Noop => self.ok(out, ""),
            Command::Rset => {
                if let Some(maildrop) = self.maildrop.as_mut() {
                    maildrop.reset();
                }
                let (count, octets) = self.maildrop.as_ref().map_or((0, 0), Maildrop::stat);
                self.ok(out, &format!("{count} messages ({octets} octets)"));
            }
            Command::Quit => return self.update(out).await,
            other => {
                return self
                    .protocol_error(out, &format!("{} is not valid in this state", other.name()));
            }
        }
        Next::Continue
    }

    fn refuse_number(&self, out: &mut Vec<u8>, number: u64, refusal: NumberRefusal) {
        match refusal {
            NumberRefusal::NoSuchMessage => self.err(out, None, "no such message"),
            NumberRefusal::Deleted => {
                self.err(out, None, &format!("message {number} already deleted"));
            }
        }
    }

    /// RETR (`lines` None) and TOP. A message expunged since the login (by IMAP, say) is
    /// refused: its bytes may still be kept for retention, but it is no longer the user's.
    async fn send(&mut self, number: u64, lines: Option<u64>, out: &mut Vec<u8>) -> Next {
        let Some(maildrop) = &self.maildrop else {
            return Next::Continue;
        };
        let (record, size) = match maildrop.get(number) {
            Ok(message) => (message.record.clone(), message.wire_size),
            Err(refusal) => {
                self.refuse_number(out, number, refusal);
                return Next::Continue;
            }
        };
        let raw = match self.live_raw(&record, maildrop.mailbox_id).await {
            Ok(Some(raw)) => raw,
            Ok(None) => {
                self.err(
                    out,
                    None,
                    &format!("message {number} was removed by another session"),
                );
                return Next::Continue;
            }
            Err(error) => {
                tracing::warn!(%error, uid = record.uid, "pop3: cannot read a message");
                self.err(
                    out,
                    Some("SYS/TEMP"),
                    "The message cannot be read: try again later",
                );
                return Next::Continue;
            }
        };
        match lines {
            None => {
                self.ok(out, &format!("{size} octets"));
                if let Some(maildrop) = self.maildrop.as_mut() {
                    maildrop.mark_retrieved(number);
                }
                Metrics::count(&self.shared.metrics.messages, "retrieved");
                Next::Transfer(Transfer::whole(raw))
            }
            Some(lines) => {
                self.ok(out, "top of message follows");
                Metrics::count(&self.shared.metrics.messages, "top");
                Next::Transfer(Transfer::top(raw, lines))
            }
        }
    }

    /// The message's bytes, or None when it left the mailbox since the login.
    async fn live_raw(
        &self,
        record: &MessageRecord,
        mailbox_id: i64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let store = &self.shared.store;
        match store.mail.message_get(record.account_id, record.id).await {
            Ok(current) if current.expunged_unix.is_none() && current.mailbox_id == mailbox_id => {}
            Ok(_) | Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error),
        }
        match store.message_raw(record).await {
            Ok(raw) => Ok(Some(raw)),
            // Purged between the two reads.
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// QUIT in TRANSACTION: the UPDATE state (RFC 1939 §6). Marked messages are expunged
    /// through the store, so IMAP sessions see them go; retrieved messages kept on the server
    /// are marked \Seen (as a webmail reader would see them read).
    async fn update(&mut self, out: &mut Vec<u8>) -> Next {
        let Some(maildrop) = self.maildrop.take() else {
            self.ok(out, "bye");
            return Next::Close;
        };
        let store = &self.shared.store;
        let account_id = maildrop.account_id;
        let deleted = maildrop.deleted_uids();
        let mut changed = false;
        let mut expunged = 0usize;
        if !deleted.is_empty() {
            match store
                .mail
                .messages_expunge(account_id, maildrop.mailbox_id, &deleted)
                .await
            {
                Ok(uids) => {
                    expunged = uids.len();
                    changed = true;
                    Metrics::count_by(&self.shared.metrics.messages, "deleted", uids.len() as u64);
                }
                Err(error) => {
                    self.lock = None;
                    tracing::warn!(%error, "pop3: cannot expunge at QUIT");
                    self.err(out, Some("SYS/TEMP"), "some deleted messages not removed");
                    return Next::Close;
                }
            }
        }
        let seen = maildrop.retrieved_unseen_uids();
        if !seen.is_empty() {
            let flags = Flags {
                system: SystemFlags(SystemFlags::SEEN),
                keywords: Vec::new(),
            };
            match store
                .mail
                .messages_set_flags(
                    account_id,
                    maildrop.mailbox_id,
                    &seen,
                    &FlagChange::Add(flags),
                    None,
                )
                .await
            {
                Ok(_) => changed = true,
                // Only a flag: the session still ends well.
                Err(error) => tracing::warn!(%error, "pop3: cannot mark retrieved messages seen"),
            }
        }
        if changed {
            store.changes.notify(account_id);
        }
        // Released before the answer: a client that connects again as soon as it read
        // `+OK` must find the maildrop free.
        self.lock = None;
        let text = match (expunged, maildrop.stat().0) {
            (0, 0) => format!("{} POP3 signing off (maildrop empty)", self.config.hostname),
            (expunged, left) => format!(
                "{} POP3 signing off ({expunged} deleted, {left} left)",
                self.config.hostname
            ),
        };
        self.ok(out, &text);
        Next::Close
    }
}
