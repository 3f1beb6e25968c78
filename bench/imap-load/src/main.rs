//! The IMAP benchmark's load generator (`bench/imap.sh`), the same for every server it is
//! pointed at. Two modes:
//!
//! - `mix`: SESSIONS concurrent sessions over implicit TLS, each logged in once and its
//!   INBOX selected before the clock starts, then for SECONDS a loop of commands drawn at
//!   random from a fixed mix (SELECT, FETCH of a few whole messages with their flags and
//!   envelope, STORE of a flag, SEARCH, APPEND to another mailbox, NOOP). Each command is
//!   timed from its first byte written to its tagged response read. Prints one line per
//!   command kind (count, commands/s, p50, p99) and a `total` line.
//! - `idle`: COUNT connections, each logged in with INBOX selected and in IDLE, spread over
//!   several loopback source addresses (one address has only ~28,000 ephemeral ports); prints
//!   `ready COUNT` once all are idling and holds them until killed.
//!
//! Certificates are not checked (the servers are private instances with self-signed
//! certificates); handshake signatures are.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use rand::{Rng, SeedableRng};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;
use tokio::sync::{Barrier, Semaphore};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

#[derive(Parser, Debug)]
struct Arguments {
    /// The server's implicit-TLS address (imaps).
    #[arg(long)]
    address: SocketAddr,
    #[arg(long)]
    user: String,
    #[arg(long)]
    password: String,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Concurrent sessions running the command mix.
    Mix {
        #[arg(long, default_value_t = 16)]
        sessions: usize,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// The mailbox APPEND writes to (created when missing).
        #[arg(long, default_value = "Bench")]
        append_mailbox: String,
    },
    /// Many connections idling.
    Idle {
        #[arg(long)]
        count: usize,
        /// Source addresses 127.0.0.1 .. 127.0.0.N.
        #[arg(long, default_value_t = 4)]
        source_addresses: u8,
        /// Connections being set up at once.
        #[arg(long, default_value_t = 64)]
        concurrent: usize,
    },
}

/// The command kinds of the mix and their weights.
const MIX: &[(Kind, u32)] = &[
    (Kind::Select, 1),
    (Kind::Fetch, 4),
    (Kind::Store, 2),
    (Kind::Search, 2),
    (Kind::Append, 1),
    (Kind::Noop, 2),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Select,
    Fetch,
    Store,
    Search,
    Append,
    Noop,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Select => "SELECT",
            Kind::Fetch => "FETCH",
            Kind::Store => "STORE",
            Kind::Search => "SEARCH",
            Kind::Append => "APPEND",
            Kind::Noop => "NOOP",
        }
    }
}

/// A message APPEND sends (about 2 KB).
fn append_message(number: u64) -> Vec<u8> {
    let mut message = format!(
        "From: Load <load@bench.test>\r\nTo: bench@bench.test\r\nSubject: load {number}\r\n\
         Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <load-{number}@bench.test>\r\n\r\n"
    )
    .into_bytes();
    while message.len() < 2000 {
        message.extend_from_slice(b"The quick brown fox jumps over the lazy dog, again.\r\n");
    }
    message
}

/// The bench servers use a self-signed certificate: any certificate is accepted (the
/// handshake's signatures are still checked).
fn connector() -> Result<TlsConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = tme_net::AnyServerCertificate::client_config(provider).context("TLS versions")?;
    Ok(TlsConnector::from(config))
}

/// One client connection.
struct Client {
    stream: BufReader<TlsStream<tokio::net::TcpStream>>,
    tag: u64,
    line: Vec<u8>,
}

/// A tagged response: its status word and the untagged lines before it.
struct Response {
    ok: bool,
    text: Vec<u8>,
}

impl Client {
    async fn connect(
        connector: &TlsConnector,
        address: SocketAddr,
        source: Option<IpAddr>,
    ) -> Result<Client> {
        let socket = TcpSocket::new_v4()?;
        if let Some(source) = source {
            socket.bind(SocketAddr::new(source, 0))?;
        }
        let tcp = socket.connect(address).await.context("connect")?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("mail.bench.test")?.to_owned();
        let tls = connector.connect(name, tcp).await.context("TLS")?;
        let mut client = Client {
            stream: BufReader::new(tls),
            tag: 0,
            line: Vec::new(),
        };
        client.read_line().await?; // greeting
        Ok(client)
    }

    async fn read_line(&mut self) -> Result<()> {
        self.line.clear();
        if self.stream.read_until(b'\n', &mut self.line).await? == 0 {
            bail!("connection closed");
        }
        Ok(())
    }

    /// Sends one command (`head`, then `literal` when given, as LITERAL+) and reads up to
    /// its tagged response.
    async fn command(&mut self, head: &[u8], literal: Option<&[u8]>) -> Result<Response> {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        let mut bytes = Vec::with_capacity(head.len() + 32);
        bytes.extend_from_slice(tag.as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(head);
        if let Some(literal) = literal {
            bytes.extend_from_slice(format!(" {{{}+}}\r\n", literal.len()).as_bytes());
            bytes.extend_from_slice(literal);
        }
        bytes.extend_from_slice(b"\r\n");
        let stream = self.stream.get_mut();
        stream.write_all(&bytes).await?;
        stream.flush().await?;
        let mut text = Vec::new();
        loop {
            self.read_line().await?;
            // A literal in the response: read its octets, then the rest of its line.
            while let Some(length) = literal_length(&self.line) {
                text.extend_from_slice(&self.line);
                let mut octets = vec![0; length];
                self.stream.read_exact(&mut octets).await?;
                text.extend_from_slice(&octets);
                self.read_line().await?;
            }
            if self.line.starts_with(tag.as_bytes()) && self.line.get(tag.len()) == Some(&b' ') {
                let ok = self.line[tag.len() + 1..].starts_with(b"OK");
                text.extend_from_slice(&self.line);
                return Ok(Response { ok, text });
            }
            text.extend_from_slice(&self.line);
        }
    }

    async fn login_and_select(&mut self, user: &str, password: &str) -> Result<u32> {
        let login = format!("LOGIN \"{user}\" \"{password}\"");
        let response = self.command(login.as_bytes(), None).await?;
        if !response.ok {
            bail!("login refused: {}", String::from_utf8_lossy(&response.text));
        }
        self.select().await
    }

    /// SELECT INBOX; the number of messages.
    async fn select(&mut self) -> Result<u32> {
        let response = self.command(b"SELECT INBOX", None).await?;
        if !response.ok {
            bail!(
                "SELECT refused: {}",
                String::from_utf8_lossy(&response.text)
            );
        }
        let text = String::from_utf8_lossy(&response.text);
        let exists = text
            .lines()
            .find_map(|line| {
                line.strip_prefix("* ")
                    .and_then(|rest| rest.strip_suffix(" EXISTS"))
                    .and_then(|number| number.parse().ok())
            })
            .context("no EXISTS in SELECT's answer")?;
        Ok(exists)
    }
}

/// The length of the literal a response line ends with.
fn literal_length(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n")?.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&byte| byte == b'{')?;
    std::str::from_utf8(&line[open + 1..]).ok()?.parse().ok()
}

/// Latencies of one command kind, in microseconds.
#[derive(Default)]
struct Timings {
    micros: Vec<(Kind, u32)>,
    failures: u64,
}

async fn mix_session(
    mut client: Client,
    mut exists: u32,
    start: Arc<Barrier>,
    seconds: u64,
    append_mailbox: String,
    session_number: u64,
) -> Result<Timings> {
    let mut rng = rand::rngs::StdRng::from_entropy();
    let weight_total: u32 = MIX.iter().map(|(_, weight)| weight).sum();
    let mut timings = Timings::default();
    let mut appended = 0u64;
    start.wait().await;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        let mut pick = rng.gen_range(0..weight_total);
        let kind = MIX
            .iter()
            .find(|(_, weight)| {
                if pick < *weight {
                    true
                } else {
                    pick -= weight;
                    false
                }
            })
            .map_or(Kind::Noop, |(kind, _)| *kind);
        let number = rng.gen_range(1..=exists.max(1));
        let began = Instant::now();
        let response = match kind {
            Kind::Select => {
                let began = Instant::now();
                exists = client.select().await?;
                let elapsed = began.elapsed();
                timings.micros.push((kind, micros(elapsed)));
                continue;
            }
            Kind::Fetch => {
                let last = (number + 2).min(exists.max(1));
                let command = format!("FETCH {number}:{last} (FLAGS ENVELOPE BODY.PEEK[])");
                client.command(command.as_bytes(), None).await?
            }
            Kind::Store => {
                let sign = if rng.gen_bool(0.5) { '+' } else { '-' };
                let command = format!("STORE {number} {sign}FLAGS (\\Flagged)");
                client.command(command.as_bytes(), None).await?
            }
            Kind::Search => {
                let command: &[u8] = match rng.gen_range(0..3) {
                    0 => b"SEARCH UNSEEN",
                    1 => b"SEARCH FLAGGED",
                    _ => b"SEARCH SUBJECT \"re\"",
                };
                client.command(command, None).await?
            }
            Kind::Append => {
                appended += 1;
                let message = append_message(session_number * 1_000_000 + appended);
                let command = format!("APPEND {append_mailbox} (\\Seen)");
                client.command(command.as_bytes(), Some(&message)).await?
            }
            Kind::Noop => client.command(b"NOOP", None).await?,
        };
        timings.micros.push((kind, micros(began.elapsed())));
        if !response.ok {
            timings.failures += 1;
            if timings.failures <= 3 {
                eprintln!(
                    "{} failed: {}",
                    kind.name(),
                    String::from_utf8_lossy(
                        &response.text[response.text.len().saturating_sub(300)..]
                    )
                );
            }
        }
        // New messages another session reported (none are appended to INBOX, but keep up).
        let text = String::from_utf8_lossy(&response.text);
        for line in text.lines() {
            if let Some(number) = line
                .strip_prefix("* ")
                .and_then(|rest| rest.strip_suffix(" EXISTS"))
                .and_then(|number| number.parse().ok())
            {
                exists = number;
            }
        }
    }
    let _ = client.command(b"LOGOUT", None).await;
    Ok(timings)
}

fn micros(elapsed: Duration) -> u32 {
    u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX)
}

fn percentile(sorted: &[u32], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    f64::from(sorted[index]) / 1000.0
}

async fn mix(
    arguments: &Arguments,
    sessions: usize,
    seconds: u64,
    append_mailbox: &str,
) -> Result<()> {
    let connector = connector()?;
    let mut clients = Vec::new();
    for _ in 0..sessions {
        let mut client = Client::connect(&connector, arguments.address, None).await?;
        let exists = client
            .login_and_select(&arguments.user, &arguments.password)
            .await?;
        clients.push((client, exists));
    }
    // The mailbox APPEND writes to (an error when it exists already is fine).
    let _ = clients[0]
        .0
        .command(format!("CREATE {append_mailbox}").as_bytes(), None)
        .await?;
    let start = Arc::new(Barrier::new(sessions + 1));
    let mut tasks = Vec::new();
    for (number, (client, exists)) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(mix_session(
            client,
            exists,
            start.clone(),
            seconds,
            append_mailbox.to_owned(),
            number as u64,
        )));
    }
    start.wait().await;
    let began = Instant::now();
    let mut all = Timings::default();
    for task in tasks {
        let timings = task.await??;
        all.micros.extend(timings.micros);
        all.failures += timings.failures;
    }
    let elapsed = began.elapsed().as_secs_f64();
    let mut kinds: Vec<Kind> = MIX.iter().map(|(kind, _)| *kind).collect();
    kinds.dedup();
    for kind in kinds {
        let mut micros: Vec<u32> = all
            .micros
            .iter()
            .filter(|(this, _)| *this == kind)
            .map(|(_, micros)| *micros)
            .collect();
        micros.sort_unstable();
        println!(
            "kind={} count={} per_second={:.0} p50_ms={:.2} p99_ms={:.2}",
            kind.name(),
            micros.len(),
            micros.len() as f64 / elapsed,
            percentile(&micros, 0.5),
            percentile(&micros, 0.99),
        );
    }
    let mut micros: Vec<u32> = all.micros.iter().map(|(_, micros)| *micros).collect();
    micros.sort_unstable();
    println!(
        "total sessions={sessions} seconds={elapsed:.1} commands={} commands_per_second={:.0} p50_ms={:.2} p99_ms={:.2} failures={}",
        micros.len(),
        micros.len() as f64 / elapsed,
        percentile(&micros, 0.5),
        percentile(&micros, 0.99),
        all.failures,
    );
    Ok(())
}

async fn idle(
    arguments: &Arguments,
    count: usize,
    source_addresses: u8,
    concurrent: usize,
) -> Result<()> {
    let connector = connector()?;
    let gate = Arc::new(Semaphore::new(concurrent));
    let mut tasks = Vec::with_capacity(count);
    for number in 0..count {
        let connector = connector.clone();
        let gate = gate.clone();
        let address = arguments.address;
        let user = arguments.user.clone();
        let password = arguments.password.clone();
        let source = IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            1 + (number % usize::from(source_addresses.max(1))) as u8,
        ));
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await?;
            let mut client = Client::connect(&connector, address, Some(source)).await?;
            client.login_and_select(&user, &password).await?;
            client.tag += 1;
            let stream = client.stream.get_mut();
            stream
                .write_all(format!("t{} IDLE\r\n", client.tag).as_bytes())
                .await?;
            stream.flush().await?;
            client.read_line().await?;
            if !client.line.starts_with(b"+") {
                bail!("IDLE refused: {}", String::from_utf8_lossy(&client.line));
            }
            Ok::<_, anyhow::Error>(client)
        }));
    }
    let mut clients = Vec::with_capacity(count);
    for task in tasks {
        clients.push(task.await??);
    }
    println!("ready {}", clients.len());
    // Held until the benchmark kills this process; a response (an update, a BYE) is read
    // and dropped so no server buffer fills.
    let mut readers = Vec::with_capacity(clients.len());
    for mut client in clients {
        readers.push(tokio::spawn(async move {
            loop {
                if client.read_line().await.is_err() {
                    break;
                }
            }
        }));
    }
    for reader in readers {
        let _ = reader.await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let arguments = Arguments::parse();
    match &arguments.mode {
        Mode::Mix {
            sessions,
            seconds,
            append_mailbox,
        } => mix(&arguments, *sessions, *seconds, append_mailbox).await,
        Mode::Idle {
            count,
            source_addresses,
            concurrent,
        } => idle(&arguments, *count, *source_addresses, *concurrent).await,
    }
}
