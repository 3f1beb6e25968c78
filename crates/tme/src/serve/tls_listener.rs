//! A TCP listener whose connections speak TLS from the first byte, for `axum::serve` (the
//! `https` listener of the `http` role).
//!
//! Handshakes run in tasks of their own, at most `HANDSHAKES_MAX` at once and each within
//! `HANDSHAKE_TIMEOUT`, so a client that opens a connection and sends nothing (or sends it
//! slowly) holds one task for a while, never the accept loop; finished handshakes wait in a
//! short queue for the server to take them. A failed handshake is logged at debug level and
//! costs nothing else.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many handshakes run at once; more connections wait in the kernel's backlog.
const HANDSHAKES_MAX: usize = 256;
/// Finished handshakes not yet taken by the server.
const READY_QUEUE: usize = 64;

/// Accepts TCP connections, runs their TLS handshakes and hands out the finished ones.
#[derive(Debug)]
pub struct TlsListener {
    local_address: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accepting: JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `listener` with `tls` (which names the application protocols the
    /// server speaks, for ALPN).
    pub fn new(listener: TcpListener, tls: Arc<rustls::ServerConfig>) -> io::Result<TlsListener> {
        let local_address = listener.local_addr()?;
        let (sender, ready) = mpsc::channel(READY_QUEUE);
        let accepting = tokio::spawn(accept_loop(
            listener,
            tokio_rustls::TlsAcceptor::from(tls),
            sender,
        ));
        Ok(TlsListener {
            local_address,
            ready,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_MAX));
    loop {
        let Ok(permit) = handshakes.clone().acquire_owned().await else {
            return;
        };
        let (tcp, client) = tme_net::accept(&listener, "https").await;
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
            drop(permit);
            match handshake {
                Ok(Ok(stream)) => {
                    // The server is gone when this fails: the connection just closes.
                    let _ = ready.send((stream, client)).await;
                }
                Ok(Err(error)) => {
                    tracing::debug!(%error, %client, "https: TLS handshake failed");
                }
                Err(_) => tracing::debug!(%client, "https: TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop never ends while the listener lives; should it, nothing
            // more is accepted.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_address)
    }
}
