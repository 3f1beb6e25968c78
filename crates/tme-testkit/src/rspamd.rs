//! A private rspamd (Debian's `rspamd` package) for tests: its own config, database and log
//! in a temporary directory, its normal worker alone on a free loopback port, stopped by its
//! process group id when the test ends (even when it panics).
//!
//! The config is Debian's stock rules (`/etc/rspamd/common.conf`, so real rules score real
//! symbols) with what needs the network or Redis switched off, so that a check takes
//! milliseconds offline:
//! - every module that asks DNS or a remote service per message (RBLs, SURBL, fuzzy, SPF,
//!   DKIM, DMARC, ARC, ASN, phishing feeds) is disabled, and the resolver points at a closed
//!   loopback port with a short timeout, for what is left (a map URL, hfilter's lookups);
//! - the public-suffix list is a few test suffixes: compiling Debian's 9,600 takes rspamd
//!   tens of seconds at every start, longer than all the checks of a test run;
//! - GTUBE-like test patterns are all on (`enable_test_patterns`, rspamd < 3.8), so a
//!   message can ask for each action: [`GTUBE_REJECT`], [`GTUBE_ADD_HEADER`],
//!   [`GTUBE_REWRITE_SUBJECT`].
//!
//! It must not listen anywhere but 127.0.0.1, nor leave a process behind.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{free_ports, signal};

/// The binary of Debian's `rspamd` package.
const RSPAMD_BINARY: &str = "/usr/bin/rspamd";
/// Debian's stock configuration, included by ours.
const RSPAMD_STOCK_CONFIG_DIR: &str = "/etc/rspamd";
/// How long rspamd may take to answer its first `/ping` (it loads every rule first).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long rspamd may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// rspamd answers `reject` (and the GTUBE symbol) for a message holding this.
pub const GTUBE_REJECT: &str =
    "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";
/// rspamd answers `add header` for a message holding this (test patterns on).
pub const GTUBE_ADD_HEADER: &str =
    "YJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";
/// rspamd answers `rewrite subject` for a message holding this (test patterns on).
pub const GTUBE_REWRITE_SUBJECT: &str =
    "ZJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// Modules switched off: they ask DNS, a remote service or Redis for every message.
const MODULES_DISABLED: [&str; 12] = [
    "rbl",
    "surbl",
    "emails",
    "asn",
    "fuzzy_check",
    "phishing",
    "dkim",
    "spf",
    "dmarc",
    "arc",
    "dcc",
    "mx_check",
];

/// A running (or stopped) private rspamd.
#[derive(Debug)]
pub struct Rspamd {
    directory: tempfile::TempDir,
    address: SocketAddr,
    child: Option<Child>,
}

impl Rspamd {
    /// Writes the config, starts rspamd and waits until its normal worker answers `/ping`.
    pub fn start() -> Result<Rspamd> {
        if !Path::new(RSPAMD_BINARY).exists() {
            bail!(
                "{RSPAMD_BINARY} is missing: install Debian's rspamd package \
                 (scripts/test.sh does: apt-get install rspamd)"
            );
        }
        let directory = tempfile::Builder::new().prefix("tme-rspamd-").tempdir()?;
        let address = free_ports(1)?[0];
        let rspamd = Rspamd {
            directory,
            address,
            child: None,
        };
        rspamd.write_config()?;
        rspamd.started()
    }

    fn started(mut self) -> Result<Rspamd> {
        self.serve()?;
        Ok(self)
    }

    fn write_config(&self) -> Result<()> {
        let root = self.directory.path();
        let local = root.join("local.d");
        for subdirectory in ["local.d", "db", "run", "log"] {
            std::fs::create_dir_all(root.join(subdirectory))?;
        }
        // The top level of Debian's rspamd.conf with only the normal worker (no controller,
        // proxy or fuzzy worker, which would bind their fixed ports).
        std::fs::write(
            root.join("rspamd.conf"),
            format!(
                r#".include "$CONFDIR/common.conf"
options {{
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"
}}
logging {{
    type = "file";
    filename = "$LOGDIR/rspamd.log";
    .include "$CONFDIR/logging.inc"
}}
worker "normal" {{
    bind_socket = "{address}";
    count = 1;
    .include "$CONFDIR/worker-normal.inc"
}}
"#,
                address = self.address
            ),
        )?;
        let closed_port = free_ports(1)?[0];
        std::fs::write(root.join("tld.dat"), "com\nnet\norg\ntest\nexample\n")?;
        std::fs::write(
            local.join("options.inc"),
            format!(
                r#"enable_test_patterns = true;
url_tld = "{tld}";
dns {{
    nameserver = ["{closed_port}"];
    timeout = 0.2s;
    retransmits = 1;
}}
"#,
                tld = root.join("tld.dat").display()
            ),
        )?;
        for module in MODULES_DISABLED {
            std::fs::write(local.join(format!("{module}.conf")), "enabled = false;\n")?;
        }
        Ok(())
    }

    /// Starts rspamd (again, after [`Rspamd::stop`]) and waits until it answers.
    pub fn serve(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("rspamd is already running");
        }
        let root = self.directory.path();
        let output = std::fs::File::create(root.join("log/output.txt"))?;
        let mut command = Command::new(RSPAMD_BINARY);
        command
            .arg("--no-fork")
            .arg("--config")
            .arg(root.join("rspamd.conf"));
        for (variable, value) in [
            ("CONFDIR", PathBuf::from(RSPAMD_STOCK_CONFIG_DIR)),
            ("LOCAL_CONFDIR", root.to_path_buf()),
            ("DBDIR", root.join("db")),
            ("RUNDIR", root.join("run")),
            ("LOGDIR", root.join("log")),
        ] {
            command
                .arg("--var")
                .arg(format!("{variable}={}", value.display()));
        }
        if running_as_root() {
            // rspamd refuses to run its workers as root unless told to stay root.
            command.args(["-u", "root", "-g", "root"]);
        }
        // Its own process group: rspamd forks workers, and stopping the group stops them all.
        command.process_group(0);
        let child = command
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()
            .context("cannot start rspamd")?;
        self.child = Some(child);
        let mut child = self.child.take();
        let ready = crate::ready::wait_until_ready(
            "rspamd",
            &mut child,
            READY_TIMEOUT,
            Duration::from_millis(100),
            || self.log(),
            || self.ping(),
        );
        self.child = child;
        ready
    }

    /// The normal worker's `/ping` answers `pong`.
    fn ping(&self) -> bool {
        let attempt = || -> std::io::Result<String> {
            let mut stream = TcpStream::connect_timeout(&self.address, Duration::from_secs(2))?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.write_all(b"GET /ping HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer)?;
            Ok(answer)
        };
        attempt().is_ok_and(|answer| answer.contains("pong"))
    }

    /// The URL for `filter.rspamd_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The normal worker's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// rspamd's log so far (one line per checked message, with its symbols).
    pub fn log(&self) -> String {
        let root = self.directory.path();
        let mut log = std::fs::read_to_string(root.join("log/output.txt")).unwrap_or_default();
        log.push_str(&std::fs::read_to_string(root.join("log/rspamd.log")).unwrap_or_default());
        log
    }

    /// Stops rspamd (SIGTERM to its process group) and waits for its main process.
    pub fn stop(&mut self) -> Result<()> {
        let mut child = self.child.take().context("rspamd is not running")?;
        signal_group(child.id(), "TERM")?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = signal_group(child.id(), "KILL");
                let _ = child.wait();
                bail!("rspamd did not exit within {STOP_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Rspamd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = signal_group(child.id(), "KILL");
            let _ = child.wait();
        }
    }
}

/// Signals every process of the group led by `pid` (rspamd's main process and its workers).
fn signal_group(pid: u32, name: &str) -> Result<()> {
    // `kill -SIG -- -PGID` names the group by its leader's id.
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg("--")
        .arg(format!("-{pid}"))
        .status()?;
    if !status.success() {
        // The group is gone already; the leader alone may remain as a zombie.
        signal(pid, name).ok();
    }
    Ok(())
}

/// Whether this process runs as root (effective uid 0), read from /proc.
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}
