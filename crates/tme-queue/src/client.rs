//! The SMTP client: one connection to one remote host, carrying one or more messages.
//!
//! It greets with EHLO (HELO when EHLO is refused), takes STARTTLS when offered
//! (opportunistic, RFC 3207 and RFC 7435: the certificate is not checked, so that TLS is
//! never worse than plain text; a failed handshake is retried in plain text unless the
//! message requires TLS; under MTA-STS or DANE, `TlsMode` makes it mandatory and checked,
//! never retried in plain text), authenticates at a relay host (AUTH PLAIN, only over TLS), and
//! sends each message as MAIL, RCPT..., DATA, pipelined when the server offers PIPELINING
//! (RFC 2920). Each recipient gets its own outcome: accepted, refused for good (5xx) or for
//! now (4xx). Every read and write has a timeout (RFC 5321 §4.5.3.2).
//!
//! What this module must not do: decide retries or touch the queue; it reports.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::reply::{Capabilities, Reply, complete_reply_len, parse_capabilities, parse_reply};
use crate::route::Host;
use tme_store::{DsnReturn, Notify};

/// How a connection behaves.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The name given in EHLO.
    pub helo_name: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub data_end_timeout: Duration,
    /// User name and password for AUTH PLAIN (relay host only).
    pub credentials: Option<(String, tme_core::Secret<String>)>,
    pub tls: Arc<rustls::ClientConfig>,
}

/// One recipient of a message being sent.
#[derive(Debug, Clone)]
pub struct OutboundRecipient {
    pub address: String,
    pub original_recipient: Option<String>,
    pub notify: Notify,
}

/// A message's envelope as sent.
#[derive(Debug, Clone)]
pub struct OutboundEnvelope {
    pub return_path: String,
    pub recipients: Vec<OutboundRecipient>,
    pub envelope_id: Option<String>,
    pub dsn_return: Option<DsnReturn>,
    pub requiretls: bool,
    pub smtputf8: bool,
    pub body_8bit: bool,
}

/// What became of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientResult {
    /// The server took responsibility for it (2xx at the end of the data).
    Accepted(Reply),
    /// Refused for good.
    Refused(Reply),
    /// Not now: retry later. The text says why.
    Deferred(String),
}

/// A failure of the connection or of the whole transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Retry later (perhaps at another host): connection trouble, 4xx, a broken server.
    #[error("{0}")]
    Temporary(String),
    /// The host refused for good (5xx) at this stage. `status` is RFC 3463.
    #[error("{status} {text}")]
    Permanent { status: String, text: String },
    /// The TLS handshake failed; the caller may retry the host without TLS.
    #[error("TLS handshake with {0} failed")]
    TlsFailed(String),
    /// A policy (MTA-STS, DANE) demands an authenticated TLS session this host did not
    /// give: retry later, never in plain text.
    #[error("4.7.5 {0}")]
    TlsRequired(String),
}

/// How a connection uses TLS.
#[derive(Clone)]
pub enum TlsMode {
    /// No STARTTLS (the retry after a failed opportunistic handshake).
    Plain,
    /// STARTTLS when offered, certificate not checked (RFC 7435).
    Opportunistic,
    /// STARTTLS required, and the certificate must verify for the MX host name with this
    /// config (MTA-STS, RFC 8461 §4.2).
    Verified(Arc<rustls::ClientConfig>),
    /// STARTTLS required, and the certificate must match the host's TLSA records, which
    /// this config's verifier holds (DANE, RFC 7672 §2.2).
    Dane(Arc<rustls::ClientConfig>),
}

impl TlsMode {
    /// The policy that makes TLS mandatory, named in the reasons recorded when it fails.
    fn policy(&self) -> Option<&'static str> {
        match self {
            TlsMode::Plain | TlsMode::Opportunistic => None,
            TlsMode::Verified(_) => Some("MTA-STS"),
            TlsMode::Dane(_) => Some("DANE"),
        }
    }
}

impl std::fmt::Debug for TlsMode {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            TlsMode::Plain => "Plain",
            TlsMode::Opportunistic => "Opportunistic",
            TlsMode::Verified(_) => "Verified",
            TlsMode::Dane(_) => "Dane",
        })
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Between plain text and TLS, or after a failed handshake: no I/O possible.
    Closed,
}

/// An open, greeted connection, ready for a transaction.
pub struct Connection {
    stream: Stream,
    buffer: Vec<u8>,
    capabilities: Capabilities,
    host: String,
    address: SocketAddr,
    settings: ClientSettings,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Connection")
            .field("host", &self.host)
            .field("address", &self.address)
            .field("tls", &self.is_tls())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to the first address of `host` that answers, greets, and takes TLS as
    /// `tls` says (authenticating when credentials are set).
    pub async fn open(
        host: &Host,
        settings: &ClientSettings,
        tls: &TlsMode,
    ) -> Result<Connection, SessionError> {
        let mut last_error = SessionError::Temporary(format!("{} has no address", host.name));
        for address in &host.addresses {
            match Connection::open_address(host, *address, settings, tls).await {
                Ok(connection) => return Ok(connection),
                Err(error @ (SessionError::TlsFailed(_) | SessionError::TlsRequired(_))) => {
                    return Err(error);
                }
                Err(error) => {
                    tracing::info!(host = %host.name, %address, %error, "host failed");
                    last_error = error;
                }
            }
        }
        Err(last_error)
    }

    async fn open_address(
        host: &Host,
        address: SocketAddr,
        settings: &ClientSettings,
        tls: &TlsMode,
    ) -> Result<Connection, SessionError> {
        let tcp = tokio::time::timeout(settings.connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| SessionError::Temporary(format!("connecting to {address} timed out")))?
            .map_err(|error| {
                SessionError::Temporary(format!("cannot connect to {address}: {error}"))
            })?;
        let _ = tcp.set_nodelay(true);
        let mut connection = Connection {
            stream: Stream::Plain(tcp),
            buffer: Vec::with_capacity(4096),
            capabilities: Capabilities::default(),
            host: host.name.clone(),
            address,
            settings: settings.clone(),
        };
        let greeting = connection.read_reply(settings.command_timeout).await?;
        if greeting.code != 220 {
            return Err(stage_error("greeting", &greeting));
        }
        connection.hello().await?;
        let config = match tls {
            TlsMode::Plain => None,
            TlsMode::Opportunistic => Some(settings.tls.clone()),
            TlsMode::Verified(config) | TlsMode::Dane(config) => Some(config.clone()),
        };
        let policy = tls.policy();
        if let Some(policy) = policy
            && !connection.capabilities.starttls
        {
            return Err(SessionError::TlsRequired(format!(
                "{policy}: {} does not offer STARTTLS",
                host.name
            )));
        }
        if let Some(config) = config
            && connection.capabilities.starttls
        {
            connection.write(b"STARTTLS\r\n").await?;
            let reply = connection.read_reply(settings.command_timeout).await?;
            if reply.code != 220 {
                return Err(match policy {
                    Some(policy) => SessionError::TlsRequired(format!(
                        "{policy}: {} refused STARTTLS: {}",
                        host.name,
                        reply.summary()
                    )),
                    None => SessionError::TlsFailed(host.name.clone()),
                });
            }
            connection.start_tls(config, policy).await?;
            // RFC 3207 §4.2: forget what was learnt before TLS and greet again.
            connection.hello().await?;
        }
        if let Some((user, password)) = &settings.credentials {
            connection.authenticate(user, password).await?;
        }
        Ok(connection)
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn hello(&mut self) -> Result<(), SessionError> {
        let command = format!("EHLO {}\r\n", self.settings.helo_name);
        self.write(command.as_bytes()).await?;
        let (bytes, reply) = self.read_reply_bytes(self.settings.command_timeout).await?;
        if reply.code == 250 {
            self.capabilities = parse_capabilities(&bytes);
            return Ok(());
        }
        if reply.code >= 500 {
            // RFC 5321 §3.2: a server that does not know EHLO gets HELO.
            let command = format!("HELO {}\r\n", self.settings.helo_name);
            self.write(command.as_bytes()).await?;
            let reply = self.read_reply(self.settings.command_timeout).await?;
            if reply.code == 250 {
                self.capabilities = Capabilities::default();
                return Ok(());
            }
            return Err(stage_error("HELO", &reply));
        }
        Err(stage_error("EHLO", &reply))
    }

    /// The handshake after `220` to STARTTLS. Under a `policy` (MTA-STS: the certificate
    /// must be valid for the MX host name, RFC 8461 §4.2; DANE: it must match the TLSA
    /// records, RFC 7672 §3), a failure is `TlsRequired`.
    async fn start_tls(
        &mut self,
        config: Arc<rustls::ClientConfig>,
        policy: Option<&'static str>,
    ) -> Result<(), SessionError> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return Err(SessionError::Temporary("TLS is already active".to_owned()));
        };
        let host = self.host.trim_end_matches('.').to_owned();
        let failed = |reason: String| match policy {
            Some(policy) => {
                SessionError::TlsRequired(format!("{policy}: TLS with {host}: {reason}"))
            }
            None => SessionError::TlsFailed(host.clone()),
        };
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .or_else(|_| rustls::pki_types::ServerName::try_from(self.address.ip().to_string()))
            .map_err(|_| failed("not a valid server name".to_owned()))?;
        let connector = TlsConnector::from(config);
        let tls = tokio::time::timeout(self.settings.command_timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| failed("the handshake timed out".to_owned()))?
            .map_err(|error| {
                tracing::info!(host = %self.host, %error, ?policy, "TLS handshake failed");
                failed(error.to_string())
            })?;
        self.stream = Stream::Tls(Box::new(tls));
        self.buffer.clear();
        Ok(())
    }

    async fn authenticate(
        &mut self,
        user: &str,
        password: &tme_core::Secret<String>,
    ) -> Result<(), SessionError> {
        if !self.is_tls() {
            return Err(SessionError::Temporary(format!(
                "{} offers no TLS: the relay password is not sent in clear",
                self.host
            )));
        }
        if !self.capabilities.auth_plain {
            return Err(SessionError::Temporary(format!(
                "{} does not offer AUTH PLAIN",
                self.host
            )));
        }
        // RFC 4616: authorisation id (empty), user, password, NUL-separated.
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("\0{user}\0{}", password.expose()));
        let command = format!("AUTH PLAIN {token}\r\n");
        self.write(command.as_bytes()).await?;
        let reply = self.read_reply(self.settings.command_timeout).await?;
        if reply.code != 235 {
            return Err(stage_error("AUTH", &reply));
        }
        Ok(())
    }

    /// Sends one message. A refused transaction (MAIL refused, no recipient taken) leaves the
    /// connection usable for the next message; an error means it must be dropped.
    pub async fn send(
        &mut self,
        envelope: &OutboundEnvelope,
        raw: &[u8],
    ) -> Result<Vec<RecipientResult>, SessionError> {
        self.check_envelope(envelope, raw)?;
        let mail = self.mail_command(envelope, raw.len());
        let rcpts: Vec<String> = envelope
            .recipients
            .iter()
            .map(|recipient| self.rcpt_command(recipient))
            .collect();
        let timeout = self.settings.command_timeout;
        let (mail_reply, rcpt_replies, data_reply) = if self.capabilities.pipelining {
            // RFC 2920 §3.1: MAIL, every RCPT and DATA in one go, then the replies in order.
            let mut batch = mail.clone().into_bytes();
            for rcpt in &rcpts {
                batch.extend_from_slice(rcpt.as_bytes());
            }
            batch.extend_from_slice(b"DATA\r\n");
            self.write(&batch).await?;
            let mail_reply = self.read_reply(timeout).await?;
            let mut rcpt_replies = Vec::with_capacity(rcpts.len());
            for _ in &rcpts {
                rcpt_replies.push(self.read_reply(timeout).await?);
            }
            let data_reply = self.read_reply(timeout).await?;
            (mail_reply, rcpt_replies, Some(data_reply))
        } else {
            self.write(mail.as_bytes()).await?;
            let mail_reply = self.read_reply(timeout).await?;
            let mut rcpt_replies = Vec::with_capacity(rcpts.len());
            if mail_reply.is_positive() {
                for rcpt in &rcpts {
                    self.write(rcpt.as_bytes()).await?;
                    rcpt_replies.push(self.read_reply(timeout).await?);
                }
            }
            (mail_reply, rcpt_replies, None)
        };
        if !mail_reply.is_positive() {
            self.reset_after_refusal(data_reply.as_ref()).await?;
            return Err(stage_error("MAIL FROM", &mail_reply));
        }
        let accepted = rcpt_replies
            .iter()
            .filter(|reply| reply.is_positive())
            .count();
        let data_reply = match data_reply {
            Some(reply) => reply,
            None if accepted == 0 => {
                self.reset_after_refusal(None).await?;
                return Ok(rcpt_results(&rcpt_replies, None));
            }
            None => {
                self.write(b"DATA\r\n").await?;
                self.read_reply(timeout).await?
            }
        };
        if data_reply.code != 354 {
            self.reset_after_refusal(None).await?;
            if accepted == 0 {
                return Ok(rcpt_results(&rcpt_replies, None));
            }
            return Err(stage_error("DATA", &data_reply));
        }
        if accepted == 0 {
            // The server took DATA with no recipient: end it empty (RFC 2920 §3.1).
            self.write(b".\r\n").await?;
            let _ = self.read_reply(self.settings.data_end_timeout).await?;
            return Ok(rcpt_results(&rcpt_replies, None));
        }
        let data = dot_stuffed(raw);
        self.write(&data).await?;
        let final_reply = self.read_reply(self.settings.data_end_timeout).await?;
        Ok(rcpt_results(&rcpt_replies, Some(&final_reply)))
    }

    /// Says goodbye; errors do not matter any more.
    pub async fn quit(mut self) {
        if self.write(b"QUIT\r\n").await.is_ok() {
            let _ = self.read_reply(Duration::from_secs(5)).await;
        }
        match &mut self.stream {
            Stream::Plain(tcp) => {
                let _ = tcp.shutdown().await;
            }
            Stream::Tls(tls) => {
                let _ = tls.shutdown().await;
            }
            Stream::Closed => {}
        }
    }

    fn check_envelope(&self, envelope: &OutboundEnvelope, raw: &[u8]) -> Result<(), SessionError> {
        if envelope.requiretls && !(self.is_tls() && self.capabilities.requiretls) {
            // RFC 8689 §4.2.1: only to a host that speaks TLS and REQUIRETLS.
            return Err(SessionError::Permanent {
                status: "5.7.30".to_owned(),
                text: format!("{} does not support REQUIRETLS", self.host),
            });
        }
        if envelope.smtputf8 && !self.capabilities.smtputf8 {
            // RFC 6531 §3.4: no downgrade; the message cannot go to this host.
            return Err(SessionError::Permanent {
                status: "5.6.7".to_owned(),
                text: format!("{} does not support SMTPUTF8", self.host),
            });
        }
        if self.capabilities.size_max > 0 && raw.len() > self.capabilities.size_max {
            return Err(SessionError::Permanent {
                status: "5.3.4".to_owned(),
                text: format!(
                    "the message ({} bytes) is larger than {} accepts ({} bytes)",
                    raw.len(),
                    self.host,
                    self.capabilities.size_max
                ),
            });
        }
        Ok(())
    }

    fn mail_command(&self, envelope: &OutboundEnvelope, size: usize) -> String {
        let mut command = format!("MAIL FROM:<{}>", envelope.return_path);
        if self.capabilities.size_max > 0 || self.capabilities.pipelining {
            command.push_str(&format!(" SIZE={size}"));
        }
        if envelope.body_8bit && self.capabilities.eight_bit_mime {
            command.push_str(" BODY=8BITMIME");
        }
        if envelope.smtputf8 {
            command.push_str(" SMTPUTF8");
        }
        if self.capabilities.dsn {
            match envelope.dsn_return {
                Some(DsnReturn::Full) => command.push_str(" RET=FULL"),
                Some(DsnReturn::Headers) => command.push_str(" RET=HDRS"),
                None => {}
            }
            if let Some(id) = &envelope.envelope_id {
                command.push_str(&format!(" ENVID={}", xtext(id)));
            }
        }
        if envelope.requiretls {
            command.push_str(" REQUIRETLS");
        }
        command.push_str("\r\n");
        command
    }

    fn rcpt_command(&self, recipient: &OutboundRecipient) -> String {
        let mut command = format!("RCPT TO:<{}>", recipient.address);
        if self.capabilities.dsn {
            let notify = recipient.notify;
            if notify.never {
                command.push_str(" NOTIFY=NEVER");
            } else if notify.success || notify.failure || notify.delay {
                let mut keywords = Vec::new();
                if notify.success {
                    keywords.push("SUCCESS");
                }
                if notify.failure {
                    keywords.push("FAILURE");
                }
                if notify.delay {
                    keywords.push("DELAY");
                }
                command.push_str(&format!(" NOTIFY={}", keywords.join(",")));
            }
            if let Some(original) = &recipient.original_recipient {
                // Kept as received: `addr-type;xtext` (RFC 3461 §4.2).
                command.push_str(&format!(" ORCPT={original}"));
            }
        }
        command.push_str("\r\n");
        command
    }

    /// After a refused transaction: RSET, so the connection can carry the next message.
    async fn reset_after_refusal(
        &mut self,
        _data_reply: Option<&Reply>,
    ) -> Result<(), SessionError> {
        self.write(b"RSET\r\n").await?;
        let reply = self.read_reply(self.settings.command_timeout).await?;
        if reply.code != 250 {
            return Err(stage_error("RSET", &reply));
        }
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        let timeout = self.settings.command_timeout;
        let host = self.host.clone();
        let write = async {
            match &mut self.stream {
                Stream::Plain(tcp) => tcp.write_all(bytes).await,
                Stream::Tls(tls) => {
                    tls.write_all(bytes).await?;
                    tls.flush().await
                }
                Stream::Closed => Err(std::io::ErrorKind::NotConnected.into()),
            }
        };
        tokio::time::timeout(timeout, write)
            .await
            .map_err(|_| SessionError::Temporary(format!("{host} stopped reading")))?
            .map_err(|error| SessionError::Temporary(format!("writing to {host}: {error}")))
    }

    async fn read_reply(&mut self, timeout: Duration) -> Result<Reply, SessionError> {
        Ok(self.read_reply_bytes(timeout).await?.1)
    }

    async fn read_reply_bytes(
        &mut self,
        timeout: Duration,
    ) -> Result<(Vec<u8>, Reply), SessionError> {
        let host = self.host.clone();
        let read = async {
            loop {
                match complete_reply_len(&self.buffer) {
                    Ok(Some(length)) => {
                        let bytes: Vec<u8> = self.buffer.drain(..length).collect();
                        let reply = parse_reply(&bytes).map_err(|error| {
                            SessionError::Temporary(format!("{host} answered badly: {error}"))
                        })?;
                        return Ok((bytes, reply));
                    }
                    Ok(None) => {}
                    Err(error) => {
                        return Err(SessionError::Temporary(format!(
                            "{host} answered badly: {error}"
                        )));
                    }
                }
                let mut chunk = [0_u8; 4096];
                let count = match &mut self.stream {
                    Stream::Plain(tcp) => tcp.read(&mut chunk).await,
                    Stream::Tls(tls) => tls.read(&mut chunk).await,
                    Stream::Closed => Err(std::io::ErrorKind::NotConnected.into()),
                }
                .map_err(|error| {
                    SessionError::Temporary(format!("reading from {host}: {error}"))
                })?;
                if count == 0 {
                    return Err(SessionError::Temporary(format!(
                        "{host} closed the connection"
                    )));
                }
                self.buffer.extend_from_slice(&chunk[..count]);
            }
        };
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| SessionError::Temporary(format!("{} did not answer in time", self.host)))?
    }
}

/// The error for a refusal at `stage`: 5xx permanent, anything else temporary.
fn stage_error(stage: &str, reply: &Reply) -> SessionError {
    if reply.is_permanent() {
        SessionError::Permanent {
            status: reply.status(),
            text: format!("{stage}: {}", reply.summary()),
        }
    } else {
        SessionError::Temporary(format!("{stage}: {}", reply.summary()))
    }
}

/// Each recipient's result from its RCPT reply and the reply to the end of the data.
fn rcpt_results(rcpt_replies: &[Reply], final_reply: Option<&Reply>) -> Vec<RecipientResult> {
    rcpt_replies
        .iter()
        .map(|reply| {
            if reply.is_permanent() {
                return RecipientResult::Refused(reply.clone());
            }
            if !reply.is_positive() {
                return RecipientResult::Deferred(reply.summary());
            }
            match final_reply {
                Some(done) if done.is_positive() => RecipientResult::Accepted(done.clone()),
                Some(done) if done.is_permanent() => RecipientResult::Refused(done.clone()),
                Some(done) => RecipientResult::Deferred(done.summary()),
                None => RecipientResult::Deferred("the data was not sent".to_owned()),
            }
        })
        .collect()
}

/// The message as DATA content (RFC 5321 §4.5.2): lines ending in CRLF (a bare LF gets its
/// CR), a leading dot doubled, then the end-of-data line.
pub fn dot_stuffed(raw: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(raw.len() + raw.len() / 64 + 5);
    let mut at_line_start = true;
    let mut previous = 0_u8;
    for &byte in raw {
        if at_line_start && byte == b'.' {
            data.push(b'.');
        }
        if byte == b'\n' && previous != b'\r' {
            data.push(b'\r');
        }
        data.push(byte);
        at_line_start = byte == b'\n';
        previous = byte;
    }
    if !data.is_empty() && !data.ends_with(b"\r\n") {
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice(b".\r\n");
    data
}

/// RFC 3461 §4: xtext, `+XX` for `+`, `=`, controls and non-ASCII.
pub fn xtext(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (b'!'..=b'~').contains(&byte) && byte != b'+' && byte != b'=' {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("+{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_are_doubled_and_the_data_ends_right() {
        assert_eq!(
            dot_stuffed(b"a\r\n.b\r\n..\r\n"),
            b"a\r\n..b\r\n...\r\n.\r\n"
        );
        assert_eq!(dot_stuffed(b".x\nno end"), b"..x\r\nno end\r\n.\r\n");
        assert_eq!(dot_stuffed(b""), b".\r\n");
    }

    #[test]
    fn xtext_encodes_plus_equals_and_spaces() {
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
    }
}
