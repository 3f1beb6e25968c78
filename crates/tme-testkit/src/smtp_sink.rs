//! A receiving MTA for tests of outbound mail: Postfix's `smtp-sink` on a loopback address,
//! dumping every transaction it accepts to a file, or refusing a command with a soft (4xx)
//! or hard (5xx) error, as a remote server would. Stopped by its PID when dropped.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::ready::wait_until_ready;

/// The binary (Debian's `postfix` package; `scripts/test.sh` installs it).
const SMTP_SINK: &str = "/usr/sbin/smtp-sink";
/// How long smtp-sink may take to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How the sink answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkBehaviour {
    /// Accepts everything.
    Accept,
    /// Answers RCPT with a soft error (4xx).
    DeferRecipients,
    /// Answers RCPT with a hard error (5xx).
    RefuseRecipients,
    /// Accepts everything, waiting a second before answering each DATA command: a slow
    /// server, so that a test can crash the sender mid-run.
    SlowAccept,
}

/// A running smtp-sink.
#[derive(Debug)]
pub struct SmtpSink {
    child: Option<Child>,
    address: SocketAddr,
    dumps: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts smtp-sink on `address` (any 127.0.0.0/8 address and a free port).
    pub fn start(address: SocketAddr, behaviour: SinkBehaviour) -> Result<SmtpSink> {
        if !Path::new(SMTP_SINK).exists() {
            bail!("{SMTP_SINK} is missing (scripts/test.sh installs postfix)");
        }
        let dumps = tempfile::Builder::new().prefix("tme-sink-").tempdir()?;
        // smtp-sink drops to `nobody` (it refuses to run as root): it must write the dumps.
        std::fs::set_permissions(
            dumps.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )?;
        let mut command = Command::new(SMTP_SINK);
        command
            .arg("-u")
            .arg("nobody")
            .arg("-d")
            .arg(dumps.path().join("%H%M%S."));
        match behaviour {
            SinkBehaviour::Accept => {}
            SinkBehaviour::DeferRecipients => {
                command.arg("-r").arg("RCPT");
            }
            SinkBehaviour::RefuseRecipients => {
                command.arg("-f").arg("RCPT");
            }
            SinkBehaviour::SlowAccept => {
                command.arg("-w").arg("1");
            }
        }
        let child = command
            .arg(address.to_string())
            .arg("64")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting smtp-sink")?;
        let mut sink = SmtpSink {
            child: Some(child),
            address,
            dumps,
        };
        wait_until_ready(
            "smtp-sink",
            &mut sink.child,
            READY_TIMEOUT,
            Duration::from_millis(20),
            String::new,
            || TcpStream::connect(address).is_ok(),
        )?;
        Ok(sink)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Every transaction received so far: the envelope lines smtp-sink writes (`X-Mail-Args`,
    /// `X-Rcpt-Args`), its `Received`, then the message.
    pub fn received(&self) -> Result<Vec<Vec<u8>>> {
        let mut paths: Vec<_> = std::fs::read_dir(self.dumps.path())?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<std::io::Result<_>>()?;
        paths.sort();
        paths
            .iter()
            .map(|path| std::fs::read(path).with_context(|| format!("reading {}", path.display())))
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
