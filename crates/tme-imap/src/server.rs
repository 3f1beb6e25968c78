//! The thin async layer: accepts connections on `imap` (STARTTLS) and `imaps` (implicit
//! TLS), owns sockets, TLS, timeouts and the connection limits (the limits and the plain or
//! TLS stream are `tme_net`'s), reads bytes into the framer
//! and writes what the session answers, through `compress` once the client asked for
//! COMPRESS=DEFLATE (above TLS when there is TLS). IDLE waits here: on the account's change
//! notification (a delivery through this process wakes it at once) or, for changes by
//! another process, on a poll every `idle_poll`.
//!
//! It makes no protocol decision: every response comes from the `session`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tme_auth::Authenticator;
use tme_net::{ConnectionLimits, Stream};
use tme_store::Store;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::compress::Deflate;
use crate::framing::{CommandFramer, Frame};
use crate::mailbox_lists::MailboxLists;
use crate::metrics::Metrics;
use crate::session::{Next, Session, SessionConfig};

/// Octets read from the socket at a time while the client sends much (a literal on its way).
const READ_CHUNK_OCTETS: usize = 16 * 1024;
/// Octets read at a time otherwise: what an idle connection holds for reading.
const READ_SMALL_OCTETS: usize = 512;
/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to read a response before it is dropped (a client that
/// never reads its responses must not hold memory).
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// How the listeners run.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub hostname: String,
    pub literal_octets_max: u32,
    pub command_line_octets_max: u32,
    pub connections_max: usize,
    pub connections_per_ip_max: usize,
    pub idle_timeout: Duration,
    pub login_timeout: Duration,
    pub idle_poll: Duration,
    pub session_errors_max: u32,
    /// The certificate; None offers no STARTTLS (and so no login on `imap`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The node's full-text index for SEARCH BODY and TEXT; None reads every message.
    pub search: Option<Arc<tme_search::SearchIndexes>>,
}

/// Whether a listener starts in TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// `imap`: plain text, STARTTLS offered.
    StartTls,
    /// `imaps`: TLS from the first byte.
    ImplicitTls,
}

#[derive(Debug)]
struct Shared {
    config: ServerConfig,
    store: Store,
    authenticator: Arc<Authenticator>,
    metrics: Arc<Metrics>,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
    mailbox_lists: Arc<MailboxLists>,
}

/// The deflate state of a connection after COMPRESS, with the compressed octets read from
/// the stream and not inflated yet (at most one read's worth, since inflating stops only
/// when the caller's buffer is full).
struct Compressed {
    deflate: Deflate,
    input: Vec<u8>,
    input_start: usize,
    /// Where the stream reads into: a read cancelled half way (IDLE's `select!`) leaves
    /// nothing in `input`.
    scratch: Vec<u8>,
}

/// One client's connection: its stream, and what COMPRESS put on top of it.
struct Connection {
    stream: Stream,
    compressed: Option<Box<Compressed>>,
}

impl Connection {
    fn new(stream: Stream) -> Connection {
        Connection {
            stream,
            compressed: None,
        }
    }

    /// From now on both ways are deflate streams; `pending` is what the client sent after
    /// its COMPRESS command, already compressed.
    fn start_compression(&mut self, pending: Vec<u8>) {
        self.compressed = Some(Box::new(Compressed {
            deflate: Deflate::new(),
            input: pending,
            input_start: 0,
            scratch: vec![0; READ_CHUNK_OCTETS],
        }));
    }

    /// Reads command bytes into `buffer` (inflated after COMPRESS); 0 at the end. Safe to
    /// cancel (IDLE's `select!`): octets read but not inflated stay in `compressed`.
    async fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let Connection { stream, compressed } = self;
        let Some(compressed) = compressed else {
            return stream.read(buffer).await;
        };
        loop {
            if compressed.input_start < compressed.input.len() {
                let (consumed, produced) = compressed
                    .deflate
                    .decompress(&compressed.input[compressed.input_start..], buffer)
                    .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
                compressed.input_start += consumed;
                if produced > 0 {
                    return Ok(produced);
                }
                if consumed > 0 {
                    continue;
                }
            }
            let count = stream.read(&mut compressed.scratch).await?;
            if count == 0 {
                return Ok(0);
            }
            compressed.input.clear();
            compressed.input_start = 0;
            compressed
                .input
                .extend_from_slice(&compressed.scratch[..count]);
        }
    }

    /// Writes `bytes` (compressed and flushed after COMPRESS) and flushes the stream.
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Connection { stream, compressed } = self;
        match compressed {
            None => stream.write_all(bytes, WRITE_TIMEOUT).await,
            Some(compressed) => {
                let mut wire = Vec::with_capacity(bytes.len() / 2 + 64);
                compressed
                    .deflate
                    .compress(bytes, &mut wire)
                    .map_err(io::Error::other)?;
                stream.write_all(&wire, WRITE_TIMEOUT).await
            }
        }
    }
}

/// Where the socket is read into: small while the client sends little, so that an idle
/// connection holds `READ_SMALL_OCTETS` and not `READ_CHUNK_OCTETS`; grown after a read
/// filled it, and small again after a short read.
struct ReadBuffer {
    bytes: Vec<u8>,
}

impl ReadBuffer {
    fn new() -> ReadBuffer {
        ReadBuffer {
            bytes: vec![0; READ_SMALL_OCTETS],
        }
    }

    /// Call after the `count` octets read were taken out.
    fn after_read(&mut self, count: usize) {
        if count == self.bytes.len() && self.bytes.len() < READ_CHUNK_OCTETS {
            self.bytes = vec![0; READ_CHUNK_OCTETS];
        } else if count < READ_SMALL_OCTETS && self.bytes.len() > READ_SMALL_OCTETS {
            self.bytes = vec![0; READ_SMALL_OCTETS];
        }
    }
}

/// Serves IMAP on every listener until `shutdown` fires; returns when every session ended.
pub async fn serve(
    listeners: Vec<(TcpListener, ListenerKind)>,
    config: ServerConfig,
    store: Store,
    authenticator: Arc<Authenticator>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let shared = Arc::new(Shared {
        limits: ConnectionLimits::new(config.connections_max, config.connections_per_ip_max),
        config,
        store,
        authenticator,
        metrics,
        shutdown: shutdown.clone(),
        mailbox_lists: Arc::default(),
    });
    let tracker = TaskTracker::new();
    for (listener, kind) in listeners {
        let shared = shared.clone();
        let sessions = tracker.clone();
        tracker.spawn(accept_loop(listener, kind, shared, sessions));
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    kind: ListenerKind,
    shared: Arc<Shared>,
    sessions: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            accepted = tme_net::accept(&listener, "imap") => accepted,
        };
        let shared = shared.clone();
        let connection_id = format!("{:016x}", rand::random::<u64>());
        let span = tracing::info_span!("imap", connection = %connection_id, client = %peer);
        sessions.spawn(
            async move {
                handle_connection(stream, peer, kind, &shared).await;
            }
            .instrument(span),
        );
    }
}

async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
    shared: &Shared,
) {
    let _ = stream.set_nodelay(true);
    let admission = shared.limits.admit(peer.ip());
    let mut stream = match kind {
        ListenerKind::StartTls => Stream::Plain(stream),
        ListenerKind::ImplicitTls => {
            let Some(tls) = &shared.config.tls else {
                return;
            };
            match Stream::accept_tls(stream, tls.clone(), TLS_HANDSHAKE_TIMEOUT).await {
                Ok(stream) => stream,
                Err(_) => {
                    Metrics::count(&shared.metrics.sessions_ended, "tls_failed");
                    return;
                }
            }
        }
    };
    let Some(admission) = admission else {
        Metrics::count(&shared.metrics.connections, "refused_limit");
        let _ = stream
            .write_all(
                b"* BYE Too many connections, try again later\r\n",
                WRITE_TIMEOUT,
            )
            .await;
        return;
    };
    Metrics::count(&shared.metrics.connections, "accepted");
    shared.metrics.connections_open.inc();
    let mut connection = Connection::new(stream);
    let outcome = run_session(&mut connection, peer, kind, shared).await;
    shared.metrics.connections_open.dec();
    Metrics::count(&shared.metrics.sessions_ended, outcome);
    tracing::debug!(outcome, "imap: session ended");
    drop(admission);
}

/// Runs a session to its end; returns how it ended (a metrics label).
async fn run_session(
    stream: &mut Connection,
    peer: SocketAddr,
    kind: ListenerKind,
    shared: &Shared,
) -> &'static str {
    let config = &shared.config;
    let session_config = Arc::new(SessionConfig {
        hostname: config.hostname.clone(),
        literal_octets_max: config.literal_octets_max,
        starttls_available: config.tls.is_some() && kind == ListenerKind::StartTls,
        session_errors_max: config.session_errors_max,
        search: config.search.clone(),
        mailbox_lists: shared.mailbox_lists.clone(),
    });
    let mut session = Session::new(
        session_config,
        shared.store.clone(),
        shared.authenticator.clone(),
        peer.ip(),
        kind == ListenerKind::ImplicitTls,
    );
    let mut framer = CommandFramer::new(
        config.command_line_octets_max as usize,
        u64::from(config.literal_octets_max),
    );
    let mut out = Vec::new();
    session.greeting(&mut out);
    if stream.write_all(&out).await.is_err() {
        return "io_error";
    }
    let mut buffer = ReadBuffer::new();
    loop {
        // Frame everything already read before reading more.
        let frame = framer.next_frame();
        let Some(frame) = frame else {
            framer.release_spare_capacity();
            let wait = if session.account_id().is_some() {
                config.idle_timeout
            } else {
                config.login_timeout
            };
            let read = tokio::select! {
                _ = shared.shutdown.cancelled() => {
                    let _ = stream.write_all(b"* BYE Server shutting down\r\n").await;
                    return "shutdown";
                }
                read = timeout(wait, stream.read(&mut buffer.bytes)) => read,
            };
            match read {
                Err(_) => {
                    let _ = stream
                        .write_all(b"* BYE Autologout; idle for too long\r\n")
                        .await;
                    return "timeout";
                }
                Ok(Ok(0)) => return "client_closed",
                Ok(Ok(count)) => {
                    framer.push(&buffer.bytes[..count]);
                    buffer.after_read(count);
                }
                Ok(Err(_)) => return "io_error",
            }
            continue;
        };
        let mut out = Vec::new();
        let next = match frame {
            Frame::ContinueLiteral => {
                if stream
                    .write_all(b"+ Ready for literal data\r\n")
                    .await
                    .is_err()
                {
                    return "io_error";
                }
                continue;
            }
            Frame::LiteralTooLarge { tag, length } => {
                session.literal_too_large(&mut out, &tag, length)
            }
            Frame::LineTooLong { tag } => session.line_too_long(&mut out, &tag),
            Frame::Command(command) => {
                Metrics::count(&shared.metrics.commands, "received");
                session.command(&command, &mut out).await
            }
        };
        if stream.write_all(&out).await.is_err() {
            return "io_error";
        }
        match next {
            Next::Continue => {}
            Next::Close if session.credential_revoked() => return "revoked",
            Next::Close => return "logout",
            Next::StartTls => {
                // RFC 9051 §6.2.1: nothing the client sent before the handshake counts.
                framer.take_input();
                let Some(tls) = &config.tls else {
                    return "tls_failed";
                };
                if stream
                    .stream
                    .start_tls(tls.clone(), TLS_HANDSHAKE_TIMEOUT)
                    .await
                    .is_err()
                {
                    return "tls_failed";
                }
                session.tls_started();
            }
            Next::Compress => {
                // RFC 4978 §3: deflate starts with the first octet after the tagged OK, both
                // ways; what the client sent after its COMPRESS is already compressed.
                stream.start_compression(framer.take_input());
            }
            Next::AuthenticateLine { tag } => {
                if stream.write_all(b"+ \r\n").await.is_err() {
                    return "io_error";
                }
                let Some(line) =
                    read_line(stream, &mut framer, &mut buffer, config.login_timeout).await
                else {
                    return "client_closed";
                };
                let mut out = Vec::new();
                let next = match line {
                    Ok(line) => session.authenticate_line(&tag, &line, &mut out).await,
                    Err(()) => session.line_too_long(&mut out, &tag),
                };
                if stream.write_all(&out).await.is_err() {
                    return "io_error";
                }
                if next == Next::Close {
                    return "errors";
                }
            }
            Next::Fetch => {
                // One message at a time, each in pieces: memory stays at one message and one
                // piece, however many messages or octets the FETCH asks for.
                let mut piece = Vec::new();
                while let Some(mut output) = session.fetch_next().await {
                    loop {
                        piece.clear();
                        let done = output.fill(&mut piece);
                        if stream.write_all(&piece).await.is_err() {
                            return "io_error";
                        }
                        if done {
                            break;
                        }
                    }
                }
                piece.clear();
                session.fetch_end(&mut piece).await;
                if stream.write_all(&piece).await.is_err() {
                    return "io_error";
                }
            }
            Next::Idle { tag } => {
                match idle(stream, &mut session, &mut framer, &mut buffer, &tag, shared).await {
                    Ok(true) => {}
                    Ok(false) => return "client_closed",
                    Err(ending) => return ending,
                }
            }
        }
    }
}

/// Reads one line (for AUTHENTICATE and IDLE). None when the client closed or timed out.
async fn read_line(
    stream: &mut Connection,
    framer: &mut CommandFramer,
    buffer: &mut ReadBuffer,
    wait: Duration,
) -> Option<Result<Vec<u8>, ()>> {
    loop {
        if let Some(line) = framer.next_line() {
            return Some(line);
        }
        match timeout(wait, stream.read(&mut buffer.bytes)).await {
            Ok(Ok(count)) if count > 0 => {
                framer.push(&buffer.bytes[..count]);
                buffer.after_read(count);
            }
            _ => return None,
        }
    }
}

/// IDLE (RFC 2177): report changes until DONE. Ok(false) when the client went away.
async fn idle(
    stream: &mut Connection,
    session: &mut Session,
    framer: &mut CommandFramer,
    buffer: &mut ReadBuffer,
    tag: &str,
    shared: &Shared,
) -> Result<bool, &'static str> {
    let Some(account) = session.account_id() else {
        return Ok(true);
    };
    let mut changes = shared.store.changes.subscribe(account);
    if stream.write_all(b"+ idling\r\n").await.is_err() {
        return Err("io_error");
    }
    let deadline = tokio::time::Instant::now() + shared.config.idle_timeout;
    let mut poll = tokio::time::interval(shared.config.idle_poll);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if let Some(line) = framer.next_line() {
            let mut out = Vec::new();
            let next = match line {
                Ok(line) => session.idle_done(tag, &line, &mut out).await,
                Err(()) => session.line_too_long(&mut out, tag),
            };
            if stream.write_all(&out).await.is_err() {
                return Err("io_error");
            }
            return if next == Next::Close {
                Err("errors")
            } else {
                Ok(true)
            };
        }
        let mut out = Vec::new();
        tokio::select! {
            _ = shared.shutdown.cancelled() => {
                let _ = stream.write_all(b"* BYE Server shutting down\r\n").await;
                return Err("shutdown");
            }
            _ = tokio::time::sleep_until(deadline) => {
                let _ = stream.write_all(b"* BYE Autologout; idle for too long\r\n").await;
                return Err("timeout");
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    changes = shared.store.changes.subscribe(account);
                }
                if session.idle_refresh(&mut out).await == Next::Close {
                    let _ = stream.write_all(&out).await;
                    return Err("revoked");
                }
            }
            _ = poll.tick() => if session.idle_refresh(&mut out).await == Next::Close {
                let _ = stream.write_all(&out).await;
                return Err("revoked");
            },
            read = stream.read(&mut buffer.bytes) => match read {
                Ok(0) | Err(_) => return Ok(false),
                Ok(count) => {
                    framer.push(&buffer.bytes[..count]);
                    buffer.after_read(count);
                }
            },
        }
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            return Err("io_error");
        }
    }
}
