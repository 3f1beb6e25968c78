//! A client's stream, plain or TLS (from the first byte, or after STARTTLS/STLS). Every write
//! is flushed and bounded by a timeout: a client that stops reading gets an error, not a task
//! that waits for ever with its buffers.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How much of a large response (POP3's RETR, IMAP's FETCH of a message body) a server hands
/// the stream in one write: the response is made in pieces of this size, so it costs the
/// message it is made from and one piece, never a second copy of the message.
pub const WRITE_CHUNK_OCTETS: usize = 64 * 1024;

/// One client's stream.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Only between `start_tls` taking the plain stream and the handshake giving it back,
    /// and after a failed handshake.
    Closed,
}

impl Stream {
    /// A stream that starts with the TLS handshake (implicit TLS).
    pub async fn accept_tls(
        tcp: TcpStream,
        tls: Arc<rustls::ServerConfig>,
        handshake_timeout: Duration,
    ) -> io::Result<Stream> {
        let mut stream = Stream::Plain(tcp);
        stream.start_tls(tls, handshake_timeout).await?;
        Ok(stream)
    }

    /// Runs the TLS handshake over the plain stream. On failure the stream is `Closed`.
    pub async fn start_tls(
        &mut self,
        tls: Arc<rustls::ServerConfig>,
        handshake_timeout: Duration,
    ) -> io::Result<()> {
        let Stream::Plain(plain) = std::mem::replace(self, Stream::Closed) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "TLS is already active",
            ));
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        match timeout(handshake_timeout, acceptor.accept(plain)).await {
            Ok(Ok(tls_stream)) => {
                *self = Stream::Tls(Box::new(tls_stream));
                Ok(())
            }
            Ok(Err(error)) => Err(error),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Reads what is there (0 when the client closed).
    pub async fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(stream) => stream.read(buffer).await,
            Stream::Tls(stream) => stream.read(buffer).await,
            Stream::Closed => Ok(0),
        }
    }

    /// Writes and flushes `bytes`, failing with `TimedOut` when the client does not take
    /// them within `write_timeout`.
    pub async fn write_all(&mut self, bytes: &[u8], write_timeout: Duration) -> io::Result<()> {
        let write = async {
            match self {
                Stream::Plain(stream) => write_flush(stream, bytes).await,
                Stream::Tls(stream) => write_flush(stream.as_mut(), bytes).await,
                Stream::Closed => Err(io::Error::new(io::ErrorKind::NotConnected, "closed")),
            }
        };
        match timeout(write_timeout, write).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client does not read",
            )),
        }
    }

    /// Closes the sending half (TLS: close_notify first), bounded by `write_timeout`.
    pub async fn shutdown(&mut self, write_timeout: Duration) {
        let close = async {
            match self {
                Stream::Plain(stream) => stream.shutdown().await,
                Stream::Tls(stream) => stream.shutdown().await,
                Stream::Closed => Ok(()),
            }
        };
        let _ = timeout(write_timeout, close).await;
    }
}

async fn write_flush<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}
