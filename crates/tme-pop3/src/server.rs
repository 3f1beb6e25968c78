//! The thin async layer: accepts connections on `pop3` (STLS) and `pop3s` (implicit TLS),
//! owns sockets, TLS, timeouts and the connection limits, reads bytes into the framer, writes
//! what the session answers, and streams RETR and TOP answers chunk by chunk.
//!
//! It makes no protocol decision: every response comes from the `session`, except the few
//! a server sends on its own before closing (too many connections, inactivity, shutdown).

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

use crate::framing::{Line, LineFramer};
use crate::maildrop::{MaildropLocks, WireSizeCache};
use crate::metrics::Metrics;
use crate::session::{Next, SASL_LINE_OCTETS_MAX, Session, SessionConfig, Shared};
use crate::transfer::CHUNK_OCTETS;

/// Octets read from the socket at a time.
const READ_CHUNK_OCTETS: usize = 16 * 1024;
/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to read what we write before it is dropped (a client that
/// never reads must not hold a task and its buffers).
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Answers of pipelined commands wait to go out together up to this size.
const OUTPUT_PENDING_OCTETS_MAX: usize = CHUNK_OCTETS;

/// How the listeners run.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub hostname: String,
    pub connections_max: usize,
    pub connections_per_ip_max: usize,
    /// Silence before the session is closed (RFC 1939 §3: at least 10 minutes).
    pub command_timeout: Duration,
    pub session_errors_max: u32,
    /// The certificate; None offers no STLS (and so no login on `pop3`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Whether a listener starts in TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// `pop3`: plain text, STLS offered.
    StartTls,
    /// `pop3s`: TLS from the first byte.
    ImplicitTls,
}

#[derive(Debug)]
struct Server {
    config: ServerConfig,
    shared: Arc<Shared>,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
}

/// Serves POP3 on every listener until `shutdown` fires; returns when every session ended.
pub async fn serve(
    listeners: Vec<(TcpListener, ListenerKind)>,
    config: ServerConfig,
    store: Store,
    authenticator: Arc<Authenticator>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let server = Arc::new(Server {
        limits: ConnectionLimits::new(config.connections_max, config.connections_per_ip_max),
        config,
        shared: Arc::new(Shared {
            store,
            authenticator,
            locks: MaildropLocks::default(),
            wire_sizes: WireSizeCache::default(),
            metrics,
        }),
        shutdown: shutdown.clone(),
    });
    let tracker = TaskTracker::new();
    for (listener, kind) in listeners {
        let server = server.clone();
        let sessions = tracker.clone();
        tracker.spawn(accept_loop(listener, kind, server, sessions));
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    kind: ListenerKind,
    server: Arc<Server>,
    sessions: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = server.shutdown.cancelled() => break,
            accepted = tme_net::accept(&listener, "pop3") => accepted,
        };
        let server = server.clone();
        let connection_id = format!("{:016x}", rand::random::<u64>());
        let span = tracing::info_span!("pop3", connection = %connection_id, client = %peer);
        sessions.spawn(
            async move {
                handle_connection(stream, peer, kind, &server).await;
            }
            .instrument(span),
        );
    }
}

async fn handle_connection(tcp: TcpStream, peer: SocketAddr, kind: ListenerKind, server: &Server) {
    let _ = tcp.set_nodelay(true);
    let metrics = &server.shared.metrics;
    let admission = server.limits.admit(peer.ip());
    let mut stream = match kind {
        ListenerKind::StartTls => Stream::Plain(tcp),
        ListenerKind::ImplicitTls => {
            let Some(tls) = &server.config.tls else {
                return;
            };
            match Stream::accept_tls(tcp, tls.clone(), TLS_HANDSHAKE_TIMEOUT).await {
                Ok(stream) => stream,
                Err(_) => {
                    Metrics::count(&metrics.sessions_ended, "tls_failed");
                    return;
                }
            }
        }
    };
    let Some(admission) = admission else {
        Metrics::count(&metrics.connections, "refused_limit");
        let _ = stream
            .write_all(
                b"-ERR [SYS/TEMP] Too many connections, try again later\r\n",
                WRITE_TIMEOUT,
            )
            .await;
        stream.shutdown(WRITE_TIMEOUT).await;
        return;
    };
    Metrics::count(&metrics.connections, "accepted");
    metrics.connections_open.inc();
    let outcome = run_session(&mut stream, peer, kind, server).await;
    stream.shutdown(WRITE_TIMEOUT).await;
    metrics.connections_open.dec();
    Metrics::count(&metrics.sessions_ended, outcome);
    tracing::debug!(outcome, "pop3: session ended");
    drop(admission);
}

/// Writes `out` and empties it.
async fn flush(stream: &mut Stream, out: &mut Vec<u8>) -> io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let result = stream.write_all(out, WRITE_TIMEOUT).await;
    out.clear();
    result
}

/// Runs a session to its end; returns how it ended (a metrics label).
async fn run_session(
    stream: &mut Stream,
    peer: SocketAddr,
    kind: ListenerKind,
    server: &Server,
) -> &'static str {
    let config = &server.config;
    let session_config = Arc::new(SessionConfig {
        hostname: config.hostname.clone(),
        starttls_available: config.tls.is_some() && kind == ListenerKind::StartTls,
        session_errors_max: config.session_errors_max,
    });
    let mut session = Session::new(
        session_config,
        server.shared.clone(),
        peer.ip(),
        kind == ListenerKind::ImplicitTls,
    );
    let mut framer = LineFramer::new(SASL_LINE_OCTETS_MAX);
    let mut out = Vec::new();
    session.greeting(&mut out);
    let mut buffer = vec![0u8; READ_CHUNK_OCTETS];
    loop {
        // Answer every line already read before reading more (PIPELINING, RFC 2449 §6.6);
        // the answers go out together when no whole line is left.
        let Some(line) = framer.next_line() else {
            if flush(stream, &mut out).await.is_err() {
                return "io_error";
            }
            let read = tokio::select! {
                _ = server.shutdown.cancelled() => {
                    let _ = stream
                        .write_all(b"-ERR [SYS/TEMP] Server shutting down\r\n", WRITE_TIMEOUT)
                        .await;
                    return "shutdown";
                }
                read = timeout(config.command_timeout, stream.read(&mut buffer)) => read,
            };
            match read {
                Err(_) => {
                    let _ = stream
                        .write_all(b"-ERR Disconnected for inactivity\r\n", WRITE_TIMEOUT)
                        .await;
                    return "timeout";
                }
                Ok(Ok(0)) => return "client_closed",
                Ok(Ok(count)) => framer.push(&buffer[..count]),
                // A TLS client that closed without close_notify: it went away like any other.
                Ok(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => {
                    return "client_closed";
                }
                Ok(Err(_)) => return "io_error",
            }
            continue;
        };
        let next = match line {
            Line::Complete(line) => session.line(&line, &mut out).await,
            Line::TooLong => session.line_too_long(&mut out),
        };
        match next {
            Next::Continue => {
                if (out.len() >= OUTPUT_PENDING_OCTETS_MAX || !framer.has_line())
                    && flush(stream, &mut out).await.is_err()
                {
                    return "io_error";
                }
            }
            Next::Close => {
                let _ = flush(stream, &mut out).await;
                return if session.too_many_errors() {
                    "errors"
                } else {
                    "quit"
                };
            }
            Next::StartTls => {
                if flush(stream, &mut out).await.is_err() {
                    return "io_error";
                }
                // RFC 2595 §4: nothing the client sent before the handshake counts.
                framer.take_input();
                let Some(tls) = &config.tls else {
                    return "tls_failed";
                };
                if stream
                    .start_tls(tls.clone(), TLS_HANDSHAKE_TIMEOUT)
                    .await
                    .is_err()
                {
                    return "tls_failed";
                }
                session.tls_started();
            }
            Next::Transfer(mut transfer) => loop {
                // The +OK line and the first chunk go out together; memory stays at the
                // message and one chunk.
                let done = transfer.fill(&mut out);
                if flush(stream, &mut out).await.is_err() {
                    return "io_error";
                }
                if done {
                    break;
                }
            },
        }
    }
}
