//! The thin async layer: accepts connections, owns sockets, TLS and timeouts, enforces the
//! connection limits, and does the session's work that needs the directory or the store.
//!
//! It must not make protocol decisions: every reply comes from the `session` (and `reply`).
//! What it decides is only what needs I/O: how a recipient resolves in the directory, and
//! whether a message was made durable, by `Store::deliver` or, when the store is briefly
//! unavailable, in the inbound spool (only then does the session answer 250).
//!
//! Shutdown: once the token fires, no connection is accepted; a session waiting for a
//! command outside a transaction gets `421 4.3.2` and is closed; a session inside a
//! transaction goes on until it is idle again, then gets the same. `serve` returns when every
//! session has ended.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tme_store::directory::resolve_recipient;
use tme_store::spool::InboundSpool;
use tme_store::{
    Account, AccountState, Delivery, Flags, Resolution, SpecialUse, Store, StoreError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::framing::{CommandFrame, CommandFramer};
use crate::limits::{READ_CHUNK_OCTETS, TLS_HANDSHAKE_TIMEOUT};
use crate::metrics::{Metrics, recipient_outcome};
use crate::reply::{self, DeliveryRefusal, RecipientRefusal, Reply};
use crate::reply::{AuthRefusal, SenderRefusal};
use crate::session::{
    DeliveryTarget, MessageForDelivery, Principal, RecipientRoute, Service, Session, SessionConfig,
    Step,
};
use crate::trace::{TraceFields, received_field, trace_headers};

/// How long we try to tell a refused connection why (421) before dropping it.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// RFC 4954 §4: a server must accept AUTH lines of at least 12288 octets.
const AUTH_LINE_OCTETS_MIN: usize = 12288;

/// What the submission service needs besides the MX's wiring.
#[derive(Debug, Clone)]
pub struct SubmissionServices {
    /// Checks passwords, with the node's shared login throttle.
    pub authenticator: Arc<tme_auth::Authenticator>,
    /// Sender checks, fix-ups, signing, local copies and the queue.
    pub submitter: tme_queue::Submitter,
}

/// How the server runs: the operator's limits and the node's identity.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// MX, or submission (then `submission` must be set).
    pub service: Service,
    /// TLS from the first byte (submissions, RFC 8314 §3.3), not by STARTTLS.
    pub implicit_tls: bool,
    pub submission: Option<SubmissionServices>,
    pub hostname: String,
    pub message_bytes_max: u64,
    pub recipients_max: usize,
    pub connections_max: usize,
    pub connections_per_ip_max: usize,
    /// The longest command line, CRLF included.
    pub command_line_octets_max: usize,
    /// How long we wait for a command (and for a client to take our replies).
    pub command_timeout: Duration,
    /// How long we wait for each read of message content.
    pub data_block_timeout: Duration,
    /// How long a whole message may take to arrive.
    pub message_timeout: Duration,
    /// Negative replies before `421` and close.
    pub session_errors_max: u32,
    /// The plus-addressing separator (`directory.plus_separator`).
    pub plus_separator: char,
    /// The certificate for STARTTLS; None offers no STARTTLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The checks every message goes through before it is stored.
    pub filter: tme_filter::Filter,
    /// Answers what was stored for accounts on vacation; None answers nothing.
    pub auto_responder: Option<tme_queue::AutoResponder>,
}

/// Why the TLS certificate could not be loaded. The operator's fault; fix the files.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read the certificate {path}: {message}")]
    Certificate { path: String, message: String },
    #[error("cannot read the private key {path}: {message}")]
    PrivateKey { path: String, message: String },
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Loads the PEM certificate chain and private key for STARTTLS.
pub fn load_tls(
    certificate_path: &Path,
    private_key_path: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certificates: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(certificate_path)
            .and_then(|iterator| iterator.collect::<Result<_, _>>())
            .map_err(|error| TlsSetupError::Certificate {
                path: certificate_path.display().to_string(),
                message: error.to_string(),
            })?;
    if certificates.is_empty() {
        return Err(TlsSetupError::Certificate {
            path: certificate_path.display().to_string(),
            message: "no certificate in the file".to_owned(),
        });
    }
    let private_key = PrivateKeyDer::from_pem_file(private_key_path).map_err(|error| {
        TlsSetupError::PrivateKey {
            path: private_key_path.display().to_string(),
            message: error.to_string(),
        }
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certificates, private_key)?;
    Ok(Arc::new(config))
}

/// What every connection task shares.
#[derive(Debug)]
struct ServerContext {
    config: ServerConfig,
    store: Store,
    metrics: Arc<Metrics>,
    /// Where a message goes when the store is briefly unavailable.
    spool: InboundSpool,
    shutdown: CancellationToken,
}

/// Accepts connections on `listener` until `shutdown` fires, then waits for the sessions.
/// A message the store cannot take for the moment goes to `spool` (see `store_or_spool`).
pub async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    store: Store,
    metrics: Arc<Metrics>,
    spool: InboundSpool,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let connections = Arc::new(Semaphore::new(config.connections_max));
    let per_ip: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::new(Mutex::new(HashMap::new()));
    let context = Arc::new(ServerContext {
        config,
        store,
        metrics,
        spool,
        shutdown: shutdown.clone(),
    });
    let tracker = TaskTracker::new();
    let role = match context.config.service {
        Service::Mx => "smtp",
        Service::Submission => "submission",
    };
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = tme_net::accept(&listener, role) => accepted,
        };
        let connection_id = format!("{:016x}", rand::random::<u64>());
        let span = tracing::info_span!("smtp", connection = %connection_id, client = %peer);
        let permit = connections.clone().try_acquire_owned().ok();
        let per_ip_guard =
            PerIpGuard::acquire(&per_ip, peer.ip(), context.config.connections_per_ip_max);
        let (Some(permit), Some(per_ip_guard)) = (permit, per_ip_guard) else {
            Metrics::count(&context.metrics.connections, "refused_limit");
            tracker.spawn(
                async move {
                    tracing::info!("connection refused: too many connections");
                    refuse_connection(stream).await;
                }
                .instrument(span),
            );
            continue;
        };
        Metrics::count(&context.metrics.connections, "accepted");
        let context = context.clone();
        tracker.spawn(
            async move {
                let _permit = permit;
                let _per_ip_guard = per_ip_guard;
                handle_connection(stream, peer, &context).await;
            }
            .instrument(span),
        );
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    Ok(())
}

async fn refuse_connection(mut stream: TcpStream) {
    let _ = timeout(
        REFUSAL_WRITE_TIMEOUT,
        stream.write_all(&reply::too_many_connections().to_wire()),
    )
    .await;
    let _ = stream.shutdown().await;
}

/// Counts a client address's connections; gives the slot back when dropped.
struct PerIpGuard {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    address: IpAddr,
}

impl PerIpGuard {
    fn acquire(
        counts: &Arc<Mutex<HashMap<IpAddr, usize>>>,
        address: IpAddr,
        connections_max: usize,
    ) -> Option<PerIpGuard> {
        let mut map = counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = map.entry(address).or_insert(0);
        if *count >= connections_max {
            return None;
        }
        *count += 1;
        Some(PerIpGuard {
            counts: counts.clone(),
            address,
        })
    }
}

impl Drop for PerIpGuard {
    fn drop(&mut self) {
        let mut map = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = map.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                map.remove(&self.address);
            }
        }
    }
}

/// The socket, plain or after STARTTLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Only while the plain socket is being handed to the TLS handshake.
    Closed,
}

impl Stream {
    async fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(stream) => stream.read(buffer).await,
            Stream::Tls(stream) => stream.read(buffer).await,
            Stream::Closed => Ok(0),
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(stream) => stream.write_all(bytes).await,
            Stream::Tls(stream) => {
                stream.write_all(bytes).await?;
                stream.flush().await
            }
            Stream::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    async fn shutdown(&mut self) {
        let _ = match self {
            Stream::Plain(stream) => stream.shutdown().await,
            Stream::Tls(stream) => stream.shutdown().await,
            Stream::Closed => Ok(()),
        };
    }
}

/// Why a session ended without QUIT.
#[derive(Debug)]
enum SessionEnd {
    ClientClosed,
    Timeout,
    Shutdown,
    Io(io::Error),
    TlsFailed(String),
}

/// One connection's socket and buffers.
struct Connection {
    stream: Stream,
    /// Received, not yet handled. Bounded: the framer keeps it under a command line between
    /// reads, and content is consumed as it arrives.
    input: Vec<u8>,
    /// Replies not yet sent: with PIPELINING they go out together, when we would wait.
    output: Vec<u8>,
    scratch: Vec<u8>,
    /// How long a write may wait for the client to read.
    write_timeout: Duration,
}

impl Connection {
    async fn flush(&mut self) -> Result<(), SessionEnd> {
        if self.output.is_empty() {
            return Ok(());
        }
        let output = std::mem::take(&mut self.output);
        match timeout(self.write_timeout, self.stream.write_all(&output)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(SessionEnd::Io(error)),
            Err(_) => Err(SessionEnd::Timeout),
        }
    }

    /// Sends what is pending, then reads more input, waiting at most `wait` and never past
    /// `deadline`.
    async fn fill(&mut self, wait: Duration, deadline: Instant) -> Result<(), SessionEnd> {
        self.flush().await?;
        let until = (Instant::now() + wait).min(deadline);
        match timeout_at(until, self.stream.read(&mut self.scratch)).await {
            Ok(Ok(0)) => Err(SessionEnd::ClientClosed),
            Ok(Ok(count)) => {
                self.input.extend_from_slice(&self.scratch[..count]);
                Ok(())
            }
            Ok(Err(error)) => Err(SessionEnd::Io(error)),
            Err(_) => Err(SessionEnd::Timeout),
        }
    }

    fn queue(&mut self, reply: &Reply) {
        self.output.extend_from_slice(&reply.to_wire());
    }
}

async fn handle_connection(stream: TcpStream, peer: SocketAddr, context: &ServerContext) {
    let _ = stream.set_nodelay(true);
    let mut connection = Connection {
        stream: Stream::Plain(stream),
        input: Vec::new(),
        output: Vec::new(),
        scratch: vec![0; READ_CHUNK_OCTETS],
        write_timeout: context.config.command_timeout,
    };
    let session_config = SessionConfig {
        service: context.config.service,
        hostname: context.config.hostname.clone(),
        message_bytes_max: context.config.message_bytes_max,
        recipients_max: context.config.recipients_max,
        tls_available: context.config.tls.is_some(),
        errors_max: context.config.session_errors_max,
    };
    let mut session = Session::new(session_config, peer.ip());
    tracing::debug!("connected");
    context.metrics.connections_open.inc();
    let end = if context.config.implicit_tls {
        match start_tls(&mut connection, context).await {
            Ok(()) => {
                session.tls_started();
                run_session(&mut connection, &mut session, context).await
            }
            Err(end) => Err(end),
        }
    } else {
        run_session(&mut connection, &mut session, context).await
    };
    context.metrics.connections_open.dec();
    Metrics::count(
        &context.metrics.sessions_ended,
        match &end {
            Ok(()) => "quit",
            Err(SessionEnd::ClientClosed) => "client_closed",
            Err(SessionEnd::Timeout) => "timeout",
            Err(SessionEnd::Shutdown) => "shutdown",
            Err(SessionEnd::Io(_)) => "io_error",
            Err(SessionEnd::TlsFailed(_)) => "tls_failed",
        },
    );
    let farewell = match &end {
        Ok(()) => None,
        Err(SessionEnd::Timeout) => Some(reply::timeout()),
        Err(SessionEnd::Shutdown) => Some(reply::shutting_down()),
        Err(_) => None,
    };
    if let Some(farewell) = farewell {
        connection.queue(&farewell);
        let _ = connection.flush().await;
    }
    connection.stream.shutdown().await;
    match end {
        Ok(()) => tracing::debug!("session ended"),
        Err(SessionEnd::ClientClosed) => tracing::debug!("client closed the connection"),
        Err(SessionEnd::Timeout) => tracing::info!("session timed out"),
        Err(SessionEnd::Shutdown) => tracing::info!("session closed for shutdown"),
        Err(SessionEnd::Io(error)) => tracing::info!(%error, "connection failed"),
        Err(SessionEnd::TlsFailed(error)) => tracing::info!(%error, "TLS handshake failed"),
    }
}

async fn run_session(
    connection: &mut Connection,
    session: &mut Session,
    context: &ServerContext,
) -> Result<(), SessionEnd> {
    let line_octets_max = match context.config.service {
        Service::Mx => context.config.command_line_octets_max,
        Service::Submission => context
            .config
            .command_line_octets_max
            .max(AUTH_LINE_OCTETS_MIN),
    };
    let mut framer = CommandFramer::new(line_octets_max);
    let command_timeout = context.config.command_timeout;
    let data_block_timeout = context.config.data_block_timeout;
    connection.queue(&session.greeting());
    loop {
        let frame = loop {
            if let Some(frame) = framer.next_frame(&mut connection.input) {
                break frame;
            }
            connection.flush().await?;
            if session.is_idle() && context.shutdown.is_cancelled() {
                return Err(SessionEnd::Shutdown);
            }
            let idle = session.is_idle();
            tokio::select! {
                biased;
                _ = context.shutdown.cancelled(), if idle => return Err(SessionEnd::Shutdown),
                filled = connection.fill(command_timeout, Instant::now() + command_timeout) => filled?,
            }
        };
        let mut step = match frame {
            CommandFrame::Line(line) => session.command(&line),
            CommandFrame::TooLong => session.line_too_long(),
        };
        loop {
            step = match step {
                Step::Reply(reply) => {
                    connection.queue(&reply);
                    break;
                }
                Step::ReplyAndClose(reply) => {
                    connection.queue(&reply);
                    connection.flush().await?;
                    return Ok(());
                }
                Step::ResolveRecipient {
                    address,
                    size_declared_octets,
                } => {
                    let verdict = match &context.config.submission {
                        Some(submission) => {
                            route_recipient(submission, &address, size_declared_octets).await
                        }
                        None => judge_recipient(context, &address, size_declared_octets)
                            .await
                            .map(|targets| RecipientRoute {
                                targets,
                                remote: Vec::new(),
                            }),
                    };
                    Metrics::count(&context.metrics.recipients, recipient_outcome(&verdict));
                    match &verdict {
                        Ok(_) => tracing::debug!(recipient = %address, "recipient accepted"),
                        Err(refusal) => {
                            tracing::info!(recipient = %address, ?refusal, "recipient refused")
                        }
                    }
                    session.recipient_routed(verdict)
                }
                Step::Authenticate { username, password } => {
                    let verdict =
                        authenticate(context, session.client_ip(), &username, &password).await;
                    match &verdict {
                        Ok(principal) => tracing::info!(user = %principal.address, "authenticated"),
                        Err(refusal) => {
                            tracing::info!(user = %username, ?refusal, "authentication failed")
                        }
                    }
                    session.authentication_finished(verdict)
                }
                Step::CheckSender { principal, address } => {
                    let verdict = check_sender(context, &principal, &address).await;
                    if let Err(refusal) = &verdict {
                        tracing::info!(user = %principal.address, sender = %address, ?refusal, "sender refused");
                    }
                    session.sender_checked(verdict)
                }
                Step::ReceiveData(reply, mut receiver) => {
                    connection.queue(&reply);
                    let deadline = Instant::now() + context.config.message_timeout;
                    loop {
                        let (consumed, ended) = receiver.ingest(&connection.input);
                        connection.input.drain(..consumed);
                        if ended {
                            break;
                        }
                        connection.fill(data_block_timeout, deadline).await?;
                    }
                    let step = session.data_finished(receiver);
                    count_content(&context.metrics, &step);
                    step
                }
                Step::ReceiveChunk { octets } => {
                    let deadline = Instant::now() + context.config.message_timeout;
                    let mut remaining = octets;
                    loop {
                        let available = connection
                            .input
                            .len()
                            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                        session.chunk_bytes(&connection.input[..available]);
                        connection.input.drain(..available);
                        remaining -= available as u64;
                        if remaining == 0 {
                            break;
                        }
                        connection.fill(data_block_timeout, deadline).await?;
                    }
                    let step = session.chunk_finished();
                    count_content(&context.metrics, &step);
                    step
                }
                Step::StartTls(reply) => {
                    connection.queue(&reply);
                    connection.flush().await?;
                    // RFC 3207 §4.2 and the STARTTLS command-injection lesson: whatever the
                    // client pipelined after STARTTLS is not trusted; drop it.
                    connection.input.clear();
                    framer.reset();
                    start_tls(connection, context).await?;
                    session.tls_started();
                    tracing::debug!("TLS started");
                    break;
                }
                Step::Deliver(message) => {
                    let content_ended = Instant::now();
                    let outcome = match (&context.config.submission, &message.principal) {
                        (Some(submission), Some(principal)) => {
                            submit(context, submission, principal, &message).await
                        }
                        _ => deliver(context, &message).await,
                    };
                    match &outcome {
                        Ok(transaction_id) => {
                            Metrics::count(&context.metrics.messages, "accepted");
                            context
                                .metrics
                                .accept_duration_seconds
                                .observe(content_ended.elapsed().as_secs_f64());
                            tracing::info!(
                                transaction = %transaction_id,
                                sender = %message.envelope.sender,
                                recipients = message.envelope.recipients.len(),
                                size_octets = message.message.len(),
                                protocol = message.mode.protocol(),
                                "message accepted"
                            );
                        }
                        Err(DeliveryRefusal::Refused(refusal)) => {
                            tracing::info!(?refusal, sender = %message.envelope.sender, "message refused");
                        }
                        Err(refusal) => {
                            tracing::warn!(?refusal, "message not stored");
                        }
                    }
                    let step = session.delivery_finished(outcome);
                    count_content(&context.metrics, &step);
                    step
                }
            };
        }
    }
}

async fn start_tls(connection: &mut Connection, context: &ServerContext) -> Result<(), SessionEnd> {
    let Some(tls) = context.config.tls.clone() else {
        return Err(SessionEnd::TlsFailed("no certificate".to_owned()));
    };
    let Stream::Plain(plain) = std::mem::replace(&mut connection.stream, Stream::Closed) else {
        return Err(SessionEnd::TlsFailed("TLS already active".to_owned()));
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    match timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(plain)).await {
        Ok(Ok(stream)) => {
            connection.stream = Stream::Tls(Box::new(stream));
            Ok(())
        }
        Ok(Err(error)) => Err(SessionEnd::TlsFailed(error.to_string())),
        Err(_) => Err(SessionEnd::Timeout),
    }
}

/// Counts a message refused or deferred once its content has been read (an accepted one is
/// counted where it is stored, with its latency).
fn count_content(metrics: &Metrics, step: &Step) {
    let (Step::Reply(reply) | Step::ReplyAndClose(reply)) = step else {
        return;
    };
    let outcome = match reply.code {
        552 => "refused_size",
        500..=599 => "refused_policy",
        400..=499 => "deferred",
        _ => return,
    };
    Metrics::count(&metrics.messages, outcome);
}

/// AUTH: the credentials checked by the node's authenticator (throttled and locked like
/// every login).
async fn authenticate(
    context: &ServerContext,
    client_ip: IpAddr,
    username: &str,
    password: &tme_core::Secret<String>,
) -> Result<Principal, AuthRefusal> {
    let Some(submission) = &context.config.submission else {
        return Err(AuthRefusal::TemporaryFailure);
    };
    match submission
        .authenticator
        .login(client_ip, username, password)
        .await
    {
        Ok(login) => Ok(Principal {
            account: login.account.id,
            address: login.account.address,
            credential: login.credential,
        }),
        Err(tme_auth::LoginRefusal::BadCredentials) => Err(AuthRefusal::BadCredentials),
        Err(tme_auth::LoginRefusal::Locked { .. }) => Err(AuthRefusal::Locked),
        Err(tme_auth::LoginRefusal::AccountSuspended) => Err(AuthRefusal::AccountSuspended),
        Err(tme_auth::LoginRefusal::Unavailable) => Err(AuthRefusal::TemporaryFailure),
    }
}

/// MAIL FROM on the submission port: the user's own address (or alias), or `<>`.
async fn check_sender(
    context: &ServerContext,
    principal: &Principal,
    address: &str,
) -> Result<(), SenderRefusal> {
    let Some(submission) = &context.config.submission else {
        return Err(SenderRefusal::TemporaryFailure);
    };
    // Every transaction checks that the secret AUTH used still stands (an app password
    // revoked since, a password changed, the account suspended).
    match submission
        .authenticator
        .credential_stands(principal.account, &principal.credential)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(account = %principal.address, "submission: credential revoked; authentication ended");
            return Err(SenderRefusal::CredentialRevoked);
        }
        Err(error) => {
            tracing::warn!(%error, "submission: cannot recheck the credential");
            return Err(SenderRefusal::TemporaryFailure);
        }
    }
    submission
        .submitter
        .check_sender(principal.account, address)
        .await
        .map_err(|refusal| match refusal {
            tme_queue::submit::SenderRefusal::NotOwned { .. } => SenderRefusal::NotOwned,
            tme_queue::submit::SenderRefusal::SendLocked => SenderRefusal::SendLocked,
            tme_queue::submit::SenderRefusal::TemporaryFailure => SenderRefusal::TemporaryFailure,
        })
}

/// RCPT TO on the submission port: local mailboxes, or the queue for everyone else.
async fn route_recipient(
    submission: &SubmissionServices,
    address: &tme_core::EmailAddress,
    size_declared_octets: Option<u64>,
) -> Result<RecipientRoute, RecipientRefusal> {
    use tme_queue::submit::RouteRefusal;
    let route = submission
        .submitter
        .route(address, size_declared_octets)
        .await
        .map_err(|refusal| match refusal {
            RouteRefusal::UnknownAddress => RecipientRefusal::UnknownAddress,
            RouteRefusal::AccountSuspended => RecipientRefusal::AccountSuspended,
            RouteRefusal::OverQuota => RecipientRefusal::OverQuota,
            RouteRefusal::TemporaryFailure => RecipientRefusal::TemporaryFailure,
        })?;
    Ok(RecipientRoute {
        targets: route
            .local
            .into_iter()
            .map(|target| DeliveryTarget {
                account: target.account,
                mailbox: target.mailbox,
                address: target.address,
            })
            .collect(),
        remote: route.remote,
    })
}

/// The end of a submitted message: the submission pipeline (`tme_queue::submit`) checks the
/// author, fixes the header up, signs, stores the local copies and queues the rest. The
/// client gets 250 only once all of it is durable.
async fn submit(
    context: &ServerContext,
    submission: &SubmissionServices,
    principal: &Principal,
    message: &MessageForDelivery,
) -> Result<String, DeliveryRefusal> {
    use tme_queue::submit::{LocalTarget, Outgoing, OutgoingRecipient, Route, SubmitRefusal};
    let transaction_id = format!("{:016X}", rand::random::<u64>());
    let (now, date) = now_and_date();
    let fields = trace_fields(context, message, &transaction_id, &date);
    let single_recipient = match message.envelope.recipients.as_slice() {
        [only] => Some(only.address.to_string()),
        _ => None,
    };
    let received = received_field(&fields, single_recipient.as_deref());
    let envelope = &message.envelope;
    let recipients = envelope
        .recipients
        .iter()
        .map(|recipient| OutgoingRecipient {
            address: recipient.address.clone(),
            route: Route {
                local: recipient
                    .targets
                    .iter()
                    .map(|target| LocalTarget {
                        account: target.account,
                        mailbox: target.mailbox,
                        address: target.address.clone(),
                    })
                    .collect(),
                remote: recipient.remote.clone(),
            },
            notify: queue_notify(recipient.dsn_notify),
            original_recipient: recipient.dsn_original_recipient.clone(),
        })
        .collect::<Vec<_>>();
    let outgoing = Outgoing {
        account: principal.account,
        envelope_sender: &envelope.sender,
        recipients,
        received_field: &received,
        message: &message.message,
        envelope_id: envelope.dsn_envelope_id.clone(),
        dsn_return: envelope.dsn_return.map(|dsn_return| match dsn_return {
            crate::session::DsnReturn::Full => tme_store::DsnReturn::Full,
            crate::session::DsnReturn::Headers => tme_store::DsnReturn::Headers,
        }),
        requiretls: envelope.require_tls,
        smtputf8: envelope.smtputf8,
        body_8bit: envelope.body == crate::session::Body::EightBitMime,
        now_unix: now.unix_timestamp(),
        date: &date,
    };
    match submission.submitter.submit(&outgoing).await {
        Ok(submitted) => {
            tracing::info!(
                transaction = %transaction_id,
                user = %principal.address,
                queue_id = ?submitted.queue_id,
                local_copies = submitted.local_copies,
                remote_recipients = submitted.remote_recipients,
                fields_added = ?submitted.fields_added,
                signatures = submitted.signatures,
                "message submitted"
            );
            Ok(transaction_id)
        }
        Err(SubmitRefusal::Sender(tme_queue::submit::SenderRefusal::NotOwned { address })) => {
            Err(DeliveryRefusal::AuthorNotOwned { address })
        }
        Err(SubmitRefusal::Sender(tme_queue::submit::SenderRefusal::SendLocked)) => {
            Err(DeliveryRefusal::SendLocked)
        }
        Err(SubmitRefusal::NoAuthor) => Err(DeliveryRefusal::NoAuthor),
        Err(SubmitRefusal::OverQuota) => Err(DeliveryRefusal::OverQuota),
        Err(
            SubmitRefusal::TemporaryFailure
            | SubmitRefusal::Sender(tme_queue::submit::SenderRefusal::TemporaryFailure),
        ) => Err(DeliveryRefusal::TemporaryFailure),
    }
}

/// Now, and now as an RFC 5322 date-time for the trace fields.
fn now_and_date() -> (time::OffsetDateTime, String) {
    let now = time::OffsetDateTime::now_utc();
    let date = now
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_else(|_| now.unix_timestamp().to_string());
    (now, date)
}

/// What the `Received` field of `message` says.
fn trace_fields<'a>(
    context: &'a ServerContext,
    message: &'a MessageForDelivery,
    transaction_id: &'a str,
    date: &'a str,
) -> TraceFields<'a> {
    TraceFields {
        helo_name: &message.helo_name,
        client_ip: message.client_ip,
        hostname: &context.config.hostname,
        mode: message.mode,
        transaction_id,
        date,
    }
}

/// The NOTIFY parameter in the queue's terms (RFC 3461 §4.1; absent means the default:
/// failures and, at the MTA's choice, delays).
fn queue_notify(notify: Option<crate::session::DsnNotify>) -> tme_store::Notify {
    match notify {
        Some(notify) => tme_store::Notify {
            never: notify.never,
            success: notify.success,
            failure: notify.failure,
            delay: notify.delay,
        },
        None => tme_store::Notify::default(),
    }
}

/// Asks the directory where mail for `address` goes, and whether those accounts take it now.
async fn judge_recipient(
    context: &ServerContext,
    address: &tme_core::EmailAddress,
    size_declared_octets: Option<u64>,
) -> Result<Vec<DeliveryTarget>, RecipientRefusal> {
    let store = &context.store;
    let resolution = resolve_recipient(
        store.directory.as_ref(),
        address,
        context.config.plus_separator,
    )
    .await
    .map_err(|error| {
        tracing::warn!(%error, "directory lookup failed");
        RecipientRefusal::TemporaryFailure
    })?;
    let (accounts, external) = match resolution {
        Resolution::DomainNotHosted => return Err(RecipientRefusal::RelayDenied),
        Resolution::UnknownAddress => return Err(RecipientRefusal::UnknownAddress),
        Resolution::Deliver { accounts, external } => (accounts, external),
    };
    if !external.is_empty() {
        // Forwarding needs the outbound queue (a later issue): local targets get the mail,
        // external ones are skipped for now.
        tracing::warn!(
            recipient = %address,
            external = ?external.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "alias forwards to external addresses; forwarding is not available yet, skipped"
        );
    }
    let mut targets = Vec::new();
    let mut suspended = 0usize;
    let mut over_quota = 0usize;
    for account in &accounts {
        if account.state == AccountState::Suspended {
            suspended += 1;
            continue;
        }
        match inbox_target(store, account, size_declared_octets).await {
            Ok(Some(target)) => targets.push(target),
            Ok(None) => over_quota += 1,
            Err(error) => {
                tracing::warn!(%error, account = %account.address, "cannot read the account's mail store");
                return Err(RecipientRefusal::TemporaryFailure);
            }
        }
    }
    if !targets.is_empty() {
        Ok(targets)
    } else if over_quota > 0 {
        Err(RecipientRefusal::OverQuota)
    } else if suspended > 0 {
        Err(RecipientRefusal::AccountSuspended)
    } else if !external.is_empty() {
        Err(RecipientRefusal::ForwardingUnavailable)
    } else {
        Err(RecipientRefusal::UnknownAddress)
    }
}

/// The account's INBOX as a delivery target, or None when its quota cannot take the
/// declared size.
async fn inbox_target(
    store: &Store,
    account: &Account,
    size_declared_octets: Option<u64>,
) -> Result<Option<DeliveryTarget>, StoreError> {
    Ok(store
        .inbox_for_delivery(account, size_declared_octets)
        .await?
        .map(|mailbox| DeliveryTarget {
            account: account.id,
            mailbox,
            address: account.address.clone(),
        }))
}

/// The account's Junk mailbox, found by its special use (RFC 6154 `\Junk`), not its name.
/// An account without one (its owner deleted it), or a store that cannot list it, gets the
/// copy in the Inbox chosen at RCPT: the header fields still say it is spam, and filing is
/// not worth losing the message over.
async fn junk_mailbox(store: &Store, target: &DeliveryTarget) -> tme_store::MailboxId {
    match store.mail.mailbox_list(target.account).await {
        Ok(mailboxes) => {
            if let Some(junk) = mailboxes
                .iter()
                .find(|mailbox| mailbox.special_use == Some(SpecialUse::Junk))
            {
                return junk.id;
            }
            tracing::warn!(account = %target.address, "account has no Junk mailbox; spam goes to the Inbox");
        }
        Err(error) => {
            tracing::warn!(%error, account = %target.address, "cannot find the Junk mailbox; spam goes to the Inbox");
        }
    }
    target.mailbox
}

/// Judges the message (`tme-filter`), then stores one copy per account, each with its trace
/// headers and the verdict's header fields, in one `Store::deliver` call: in the Inbox, or
/// in Junk when the verdict says so. A refusal stores nothing.
async fn deliver(
    context: &ServerContext,
    message: &MessageForDelivery,
) -> Result<String, DeliveryRefusal> {
    let transaction_id = format!("{:016X}", rand::random::<u64>());
    let recipients: Vec<String> = message
        .envelope
        .recipients
        .iter()
        .map(|recipient| recipient.address.to_string())
        .collect();
    let verdict = context
        .config
        .filter
        .judge(&tme_filter::InboundMessage {
            client_ip: message.client_ip,
            helo_name: &message.helo_name,
            mail_from: &message.envelope.sender,
            recipients: &recipients,
            queue_id: &transaction_id,
            tls: message.mode.tls,
            message: &message.message,
        })
        .await;
    tracing::info!(
        transaction = %transaction_id,
        score = verdict.score,
        disposition = ?verdict.disposition,
        rules = %verdict.rules(),
        "message judged"
    );
    let to_junk = match &verdict.disposition {
        tme_filter::Disposition::Refuse(refusal) => {
            return Err(DeliveryRefusal::Refused(refusal.clone()));
        }
        tme_filter::Disposition::Junk => true,
        tme_filter::Disposition::Inbox => false,
    };
    let (now, date) = now_and_date();
    let fields = trace_fields(context, message, &transaction_id, &date);
    // One copy per account: an address that reaches an account twice (an alias and the
    // account itself) delivers once, with the first recipient that reached it.
    let mut seen_accounts = HashSet::new();
    let mut copies = Vec::new();
    for recipient in &message.envelope.recipients {
        for target in &recipient.targets {
            if !seen_accounts.insert(target.account) {
                continue;
            }
            let mut raw = trace_headers(
                &fields,
                &message.envelope.sender,
                &recipient.address.to_string(),
            );
            raw.extend_from_slice(verdict.header_fields.as_bytes());
            raw.extend_from_slice(&message.message);
            let mailbox = if to_junk {
                junk_mailbox(&context.store, target).await
            } else {
                target.mailbox
            };
            copies.push((target.account, mailbox, raw));
        }
    }
    // Sorted by account, so each account commits once.
    copies.sort_by_key(|(account, _, _)| *account);
    let flags = Flags::default();
    let deliveries: Vec<Delivery<'_>> = copies
        .iter()
        .map(|(account, mailbox, raw)| Delivery {
            account: *account,
            mailbox: *mailbox,
            raw,
            internal_date_unix: Some(now.unix_timestamp()),
            flags: &flags,
        })
        .collect();
    let stored = store_or_spool(context, &transaction_id, &deliveries).await?;
    // Only copies committed now and filed in the Inbox are answered; a spooled copy is
    // answered by the spool worker once it is stored.
    if stored == Stored::Committed
        && !to_junk
        && let Some(responder) = &context.config.auto_responder
    {
        responder.delivered(
            &message.envelope.sender,
            tme_queue::DeliveredCopy::of_copies(&copies),
        );
    }
    Ok(transaction_id)
}

/// Where `store_or_spool` put the copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    /// In the store: delivered.
    Committed,
    /// In the inbound spool, for the spool worker to deliver.
    Spooled,
}

/// Makes the copies durable: in the store, or, when the store is only briefly unavailable
/// (busy, locked, an I/O error that may pass), in the inbound spool, which the spool worker
/// delivers once the store is back (`spool_delivery`). Either way they survive a crash when
/// this returns Ok, and only then does the client get 250. A permanent refusal (quota) keeps
/// its reply; when the spool fails too, nothing is kept and the client gets 451.
async fn store_or_spool(
    context: &ServerContext,
    transaction_id: &str,
    deliveries: &[Delivery<'_>],
) -> Result<Stored, DeliveryRefusal> {
    let store_error = match context.store.deliver(deliveries).await {
        Ok(_) => return Ok(Stored::Committed),
        Err(StoreError::QuotaExceeded { .. }) => return Err(DeliveryRefusal::OverQuota),
        Err(error) => error,
    };
    if !store_error.is_transient() {
        tracing::warn!(error = %store_error, transient = false, "delivery failed");
        return Err(DeliveryRefusal::TemporaryFailure);
    }
    // A failed `Store::deliver` committed nothing (its transaction is all or none), so the
    // spooled copies are the only ones.
    match context.spool.put(transaction_id, deliveries).await {
        Ok(entry) => {
            Metrics::count(&context.metrics.messages, "spooled");
            context
                .metrics
                .spool_entries_waiting
                .set(gauge_value(context.spool.depth().entries_waiting));
            tracing::warn!(
                transaction = %transaction_id,
                entry = %entry,
                copies = deliveries.len(),
                error = %store_error,
                "store unavailable: message spooled for delivery when it returns"
            );
            Ok(Stored::Spooled)
        }
        Err(spool_error) => {
            tracing::warn!(
                error = %store_error,
                %spool_error,
                "delivery failed and the message could not be spooled"
            );
            Err(DeliveryRefusal::TemporaryFailure)
        }
    }
}

/// A count as a gauge's value (gauges are signed).
pub(crate) fn gauge_value(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}
