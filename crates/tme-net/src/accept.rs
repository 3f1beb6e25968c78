//! Taking connections from a listener: an `accept` that fails (no file descriptor left, a
//! connection reset before it was taken) is logged and tried again after a short pause, so
//! a server's accept loop neither ends nor spins on an error. Cancel-safe, like
//! `TcpListener::accept`: a loop may wait on it beside its shutdown signal.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// How long to wait before accepting again after `accept` failed.
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The next connection of `listener`; `role` names the listener in the log.
pub async fn accept(listener: &TcpListener, role: &str) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(error) => {
                tracing::warn!(%error, "{role}: accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}
