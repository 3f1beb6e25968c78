//! Starts a whole tme node for integration tests: a temporary data directory, every listener
//! on a free loopback port, `tme serve` as a child process stopped by its PID when the test
//! ends (even when it panics), and helpers to run CLI commands against the same data
//! directory, to read the shared message corpus, and to hold a store file's write lock from
//! another process (`SqliteWriteLock`).
//!
//! It starts the real binary: tests talk to it only as clients and operators would. Peers the
//! node talks to are started the same way, as real programs: its DNS resolver asks a private
//! NSD (`dns`), never the machine's: by default one serving an empty root zone (every lookup
//! answers NXDOMAIN at once), or one with the test's own zones (`Node::use_dns`); [`Rspamd`]
//! is the spam filter; [`SmtpSink`] is a remote server for outbound mail. `dkim` makes keys and signatures with independent tools.

pub mod dkim;
pub mod dns;
pub mod dnssec;
pub mod pki;
mod ready;
mod rspamd;
mod smtp_sink;

pub use rspamd::{GTUBE_ADD_HEADER, GTUBE_REJECT, GTUBE_REWRITE_SUBJECT, Rspamd};
pub use smtp_sink::{SinkBehaviour, SmtpSink};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long a node may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The listener roles and the environment variables that set them.
pub const LISTENER_ROLES: [&str; 10] = [
    "smtp",
    "submission",
    "submissions",
    "imap",
    "imaps",
    "pop3",
    "pop3s",
    "http",
    "https",
    "dns",
];

/// A running (or stopped) tme node.
#[derive(Debug)]
pub struct Node {
    binary: PathBuf,
    data_dir: tempfile::TempDir,
    ports: Vec<(&'static str, SocketAddr)>,
    child: Option<Child>,
    log_path: PathBuf,
    /// Extra `TME_*` variables for every command (config overrides).
    environment: Vec<(String, String)>,
    /// The NSD the node's resolver asks, stopped after the node.
    dns: Option<dns::Nsd>,
}

impl Node {
    /// Creates a data directory with `tme init` and starts `tme serve` on free ports.
    pub fn start(binary: &Path) -> Result<Node> {
        let node = Node::init(binary)?;
        node.started()
    }

    /// Creates the data directory and chooses ports, without serving yet.
    pub fn init(binary: &Path) -> Result<Node> {
        let data_dir = tempfile::Builder::new().prefix("tme-test-").tempdir()?;
        let ports = free_ports(LISTENER_ROLES.len())?
            .into_iter()
            .zip(LISTENER_ROLES)
            .map(|(address, role)| (role, address))
            .collect();
        let log_path = data_dir.path().join("serve.log");
        let node = Node {
            binary: binary.to_path_buf(),
            data_dir,
            ports,
            child: None,
            log_path,
            environment: Vec::new(),
            dns: None,
        };
        let output = node.tme(&["init", "--hostname", "mail.test"])?;
        if !output.status.success() {
            bail!(
                "tme init failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(node)
    }

    fn started(mut self) -> Result<Node> {
        self.serve()?;
        Ok(self)
    }

    /// Sets a `TME_*` variable for every later command and `serve` (a config override).
    pub fn set_environment(&mut self, name: &str, value: &str) {
        self.environment.retain(|(known, _)| known != name);
        self.environment.push((name.to_owned(), value.to_owned()));
    }

    /// Points the node's resolver at `nsd`, which lives as long as the node.
    pub fn use_dns(&mut self, nsd: dns::Nsd) {
        self.set_environment("TME_RESOLVER__NAMESERVERS", &nsd.nameservers_setting());
        self.dns = Some(nsd);
    }

    /// Starts `tme serve` and waits until `/readyz` answers 200. Without a resolver chosen
    /// by the test, the node gets a private NSD serving an empty root zone.
    pub fn serve(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("the node is already running");
        }
        let resolver_chosen = self
            .environment
            .iter()
            .any(|(name, _)| name == "TME_RESOLVER__NAMESERVERS");
        if !resolver_chosen {
            self.use_dns(dns::Nsd::start(&[dns::Zone::root("")])?);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let child = self
            .command()
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start tme serve")?;
        self.child = Some(child);
        let mut child = self.child.take();
        let ready = ready::wait_until_ready(
            "tme serve",
            &mut child,
            READY_TIMEOUT,
            Duration::from_millis(50),
            || self.log(),
            || matches!(self.http_get("/readyz"), Ok((200, _))),
        );
        self.child = child;
        ready
    }

    /// A `tme` command with this node's data directory and ports.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command.arg("--data-dir").arg(self.data_dir.path());
        command
            .env("TME_LOG_FORMAT", "text")
            .env_remove("TME_DATA_DIR");
        for (role, address) in &self.ports {
            command.env(
                format!("TME_LISTEN__{}", role.to_ascii_uppercase()),
                address.to_string(),
            );
        }
        command.envs(self.environment.iter().map(|(name, value)| (name, value)));
        command
    }

    /// Runs `tme ARGS` against this node's data directory.
    pub fn tme(&self, args: &[&str]) -> Result<Output> {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("cannot run tme")
    }

    /// Runs `tme ARGS` with `stdin` on standard input.
    pub fn tme_with_stdin(&self, args: &[&str], stdin: &str) -> Result<Output> {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run tme")?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes())?;
        }
        child.wait_with_output().context("cannot wait for tme")
    }

    /// Runs `tme ARGS` and returns its standard output, failing when it fails.
    pub fn tme_ok(&self, args: &[&str]) -> Result<String> {
        let output = self.tme(args)?;
        if !output.status.success() {
            bail!(
                "tme {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Creates an account, with its partner (`Test`) and domain when missing.
    pub fn add_account(&self, address: &str, password: &str) -> Result<()> {
        let domain = address
            .rsplit_once('@')
            .map(|(_, domain)| domain)
            .context("no @")?;
        if self.tme(&["partner", "show", "Test"])?.status.code() != Some(0) {
            self.tme_ok(&["partner", "add", "Test"])?;
        }
        if self.tme(&["domain", "show", domain])?.status.code() != Some(0) {
            self.tme_ok(&["domain", "add", domain, "--partner", "Test"])?;
        }
        let output = self.tme_with_stdin(
            &["account", "add", address, "--password-stdin"],
            &format!("{password}\n"),
        )?;
        if !output.status.success() {
            bail!(
                "account add failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The address a role listens on.
    pub fn address(&self, role: &str) -> SocketAddr {
        self.ports
            .iter()
            .find(|(known, _)| *known == role)
            .map(|(_, address)| *address)
            .unwrap_or_else(|| panic!("no listener role {role}"))
    }

    /// The process id of `tme serve`, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What `tme serve` has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// A plain HTTP/1.1 GET to the node's `http` listener: (status, body).
    pub fn http_get(&self, path: &str) -> Result<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(&self.address("http"), Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .context("no HTTP status")?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// Sends SIGTERM and waits for a graceful exit.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        let pid = self.pid().context("the node is not running")?;
        signal(pid, "TERM")?;
        self.wait_for_exit(STOP_TIMEOUT)
    }

    /// Waits for `tme serve` to exit by itself (after a signal sent with `signal`).
    pub fn wait_for_exit(&mut self, limit: Duration) -> Result<ExitStatus> {
        let mut child = self.child.take().context("the node is not running")?;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("tme serve did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills `tme serve` with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends a signal by name (`TERM`, `KILL`) to a process.
pub fn signal(pid: u32, name: &str) -> Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()?;
    if !status.success() {
        bail!("kill -{name} {pid} failed");
    }
    Ok(())
}

/// SQLite's write lock on a database file, held by another process (Python's `sqlite3`
/// module in `BEGIN EXCLUSIVE`), as a second writer holding it for long would: the store is
/// briefly unavailable to writes while readers go on (WAL). Released by `release` or when
/// dropped (the process is killed by its PID).
#[derive(Debug)]
pub struct SqliteWriteLock {
    child: Option<Child>,
}

impl SqliteWriteLock {
    /// Takes the lock on `database` and returns once it is held.
    pub fn hold(database: &Path) -> Result<SqliteWriteLock> {
        const SCRIPT: &str = r#"
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
connection.execute("ROLLBACK")
connection.close()
print("released", flush=True)
"#;
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(SCRIPT)
            .arg(database)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot run python3 to hold the SQLite lock")?;
        let mut lock = SqliteWriteLock { child: None };
        let line = read_line(&mut child)?;
        lock.child = Some(child);
        if line.trim() != "locked" {
            bail!("python3 did not take the SQLite lock: {line:?}");
        }
        Ok(lock)
    }

    /// Rolls back and ends the holding process.
    pub fn release(mut self) -> Result<()> {
        let mut child = self.child.take().context("released already")?;
        child.stdin.take().context("no stdin")?.write_all(
            b"release
",
        )?;
        let line = read_line(&mut child)?;
        child.wait()?;
        if line.trim() != "released" {
            bail!("python3 did not release the SQLite lock: {line:?}");
        }
        Ok(())
    }
}

impl Drop for SqliteWriteLock {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One line of a child's standard output (read byte by byte, so nothing past it is taken).
fn read_line(child: &mut Child) -> Result<String> {
    let stdout = child.stdout.as_mut().context("no stdout")?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte)? == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Where test servers listen: below Linux's ephemeral range (32768-60999 by default), so
/// the source port of an outgoing connection (a client's, a resolver's UDP query) never
/// takes a port a node was given between its choice and its bind, which the kernel's own
/// choice (`127.0.0.1:0`) cannot promise: a test failed that way, its node's port held by
/// a connection for the whole minute it waited.
const TEST_PORTS: std::ops::Range<u32> = 20_000..32_000;
/// The next candidate of this process, offset by its id so that test binaries running
/// side by side start apart.
static NEXT_TEST_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Distinct free loopback ports (free for TCP and UDP when chosen), all chosen before any is
/// released.
pub fn free_ports(count: usize) -> Result<Vec<SocketAddr>> {
    let span = TEST_PORTS.end - TEST_PORTS.start;
    let offset = std::process::id().wrapping_mul(7_919) % span;
    let mut held: Vec<(TcpListener, std::net::UdpSocket)> = Vec::with_capacity(count);
    for _ in 0..span {
        if held.len() == count {
            break;
        }
        let next = NEXT_TEST_PORT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = TEST_PORTS.start + (offset + next) % span;
        let address = SocketAddr::from(([127, 0, 0, 1], u16::try_from(port)?));
        if let (Ok(tcp), Ok(udp)) = (
            TcpListener::bind(address),
            std::net::UdpSocket::bind(address),
        ) {
            held.push((tcp, udp));
        }
    }
    if held.len() < count {
        bail!("no {count} free loopback ports in {TEST_PORTS:?}");
    }
    held.iter()
        .map(|(listener, _)| Ok(listener.local_addr()?))
        .collect()
}

/// The shared corpus of real-world messages, when present.
pub fn corpus_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("TME_CORPUS_DIR").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")),
    ];
    candidates.into_iter().flatten().find(|path| path.is_dir())
}

/// Every `.eml` file of the corpus, in path order.
pub fn corpus_messages() -> Vec<PathBuf> {
    let Some(root) = corpus_dir() else {
        return Vec::new();
    };
    let mut files = Vec::new();
    let mut pending = vec![root];
    while let Some(directory) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "eml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Every line end made CRLF (a lone CR or LF becomes CRLF), with a final CRLF: a message as an
/// MTA sends it over SMTP.
pub fn crlf_line_ends(message: &[u8]) -> Vec<u8> {
    let mut converted = Vec::with_capacity(message.len() + message.len() / 20);
    let mut index = 0;
    while index < message.len() {
        match message[index] {
            b'\r' if message.get(index + 1) == Some(&b'\n') => {
                converted.extend_from_slice(b"\r\n");
                index += 1;
            }
            b'\r' | b'\n' => converted.extend_from_slice(b"\r\n"),
            octet => converted.push(octet),
        }
        index += 1;
    }
    if !converted.ends_with(b"\r\n") {
        converted.extend_from_slice(b"\r\n");
    }
    converted
}
