//! A private authoritative DNS server for tests: Debian's NSD with its own config, zone
//! files, pid file and log in a temporary directory, on a free loopback port (UDP and TCP),
//! running in the foreground as our child and stopped by its PID when dropped. Tests point
//! `resolver.nameservers` at it, so SPF, DKIM, DMARC and blocklist lookups get the answers
//! the test wrote, and every other name gets NXDOMAIN from the root zone.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long NSD may take to answer its first query.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long NSD may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The NSD binary (Debian's `nsd` package; `scripts/test.sh` installs it).
const NSD: &str = "/usr/sbin/nsd";

/// One zone NSD serves: its origin (`"."` for the root, `"example.test."`) and its records
/// in zone-file syntax. The SOA and NS records are added, unless `records` is a whole zone
/// file starting with `$ORIGIN` (a signed zone from `dnssec::sign`, whose SOA and NS are
/// signed too), which is served as it is.
#[derive(Debug, Clone)]
pub struct Zone {
    pub origin: String,
    pub records: String,
}

impl Zone {
    /// The root zone holding `records` (absolute names, ending in a dot): every name the
    /// test does not write answers NXDOMAIN, as on an Internet where it does not exist.
    pub fn root(records: &str) -> Zone {
        Zone {
            origin: ".".to_owned(),
            records: records.to_owned(),
        }
    }
}

/// A zone NSD transfers from a primary.
#[derive(Debug, Clone)]
struct Secondary {
    origin: String,
    primary: SocketAddr,
}

/// A running NSD.
#[derive(Debug)]
pub struct Nsd {
    child: Option<Child>,
    address: SocketAddr,
    directory: tempfile::TempDir,
}

impl Nsd {
    /// Writes the config and zone files and starts NSD; returns once it answers.
    pub fn start(zones: &[Zone]) -> Result<Nsd> {
        Nsd::start_with(free_udp_and_tcp_port()?, zones, &[])
    }

    /// Starts NSD on `address` as a secondary of `primary` for `origins` (`"example.com."`):
    /// it transfers each zone by AXFR, takes NOTIFY from 127.0.0.1, and answers once the
    /// first zone is loaded. Choose `address` with `free_udp_and_tcp_port` before the
    /// primary starts, so the primary can be told where to send NOTIFY.
    pub fn start_secondary(
        address: SocketAddr,
        primary: SocketAddr,
        origins: &[&str],
    ) -> Result<Nsd> {
        let secondaries: Vec<Secondary> = origins
            .iter()
            .map(|origin| Secondary {
                origin: (*origin).to_owned(),
                primary,
            })
            .collect();
        Nsd::start_with(address, &[], &secondaries)
    }

    fn start_with(address: SocketAddr, zones: &[Zone], secondaries: &[Secondary]) -> Result<Nsd> {
        if !Path::new(NSD).exists() {
            bail!("{NSD} is missing (scripts/test.sh installs it: apt-get install nsd)");
        }
        let directory = tempfile::Builder::new().prefix("tme-nsd-").tempdir()?;
        let root = directory.path();
        let mut config = format!(
            "server:\n\
             \x20   ip-address: {ip}@{port}\n\
             \x20   port: {port}\n\
             \x20   username: \"\"\n\
             \x20   chroot: \"\"\n\
             \x20   database: \"\"\n\
             \x20   zonesdir: \"{root}\"\n\
             \x20   pidfile: \"{root}/nsd.pid\"\n\
             \x20   xfrdfile: \"{root}/xfrd.state\"\n\
             \x20   zonelistfile: \"{root}/zone.list\"\n\
             \x20   xfrdir: \"{root}\"\n\
             \x20   logfile: \"{root}/nsd.log\"\n\
             \x20   server-count: 1\n\
             \x20   hide-version: yes\n\
             \x20   verbosity: 2\n\
             remote-control:\n\
             \x20   control-enable: no\n",
            ip = address.ip(),
            port = address.port(),
            root = root.display(),
        );
        for (index, zone) in zones.iter().enumerate() {
            let file = format!("zone-{index}.zone");
            std::fs::write(root.join(&file), zone_file(zone))?;
            let _ = write!(
                config,
                "zone:\n    name: \"{}\"\n    zonefile: \"{file}\"\n",
                zone.origin
            );
        }
        for (index, secondary) in secondaries.iter().enumerate() {
            // NOKEY: no TSIG (a deployment across providers would add one).
            let _ = write!(
                config,
                "zone:\n    name: \"{origin}\"\n    zonefile: \"secondary-{index}.zone\"\n\
                 \x20   request-xfr: AXFR {ip}@{port} NOKEY\n\
                 \x20   allow-notify: {ip} NOKEY\n",
                origin = secondary.origin,
                ip = secondary.primary.ip(),
                port = secondary.primary.port(),
            );
        }
        let config_path = root.join("nsd.conf");
        std::fs::write(&config_path, config)?;
        // -d: stay in the foreground, so the child we hold is NSD's main process.
        let child = Command::new(NSD)
            .arg("-d")
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start nsd")?;
        let mut nsd = Nsd {
            child: Some(child),
            address,
            directory,
        };
        let first = zones
            .first()
            .map(|zone| zone.origin.as_str())
            .or_else(|| {
                secondaries
                    .first()
                    .map(|secondary| secondary.origin.as_str())
            })
            .unwrap_or(".");
        nsd.wait_until_ready(first)?;
        Ok(nsd)
    }

    /// Where NSD answers, over UDP and TCP.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The value for `resolver.nameservers` (`TME_RESOLVER__NAMESERVERS`).
    pub fn nameservers_setting(&self) -> String {
        format!("[\"{}\"]", self.address)
    }

    /// What NSD has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.directory.path().join("nsd.log")).unwrap_or_default()
    }

    fn wait_until_ready(&mut self, origin: &str) -> Result<()> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        let query = soa_query(origin);
        let mut child = self.child.take();
        let ready = crate::ready::wait_until_ready(
            "nsd",
            &mut child,
            READY_TIMEOUT,
            Duration::from_millis(50),
            || self.log(),
            || {
                if socket.send_to(&query, self.address).is_err() {
                    return false;
                }
                let mut response = [0u8; 512];
                // RCODE 0: the zone is loaded and answers.
                matches!(socket.recv_from(&mut response),
                    Ok((length, _)) if length >= 4
                        && response[..2] == query[..2]
                        && response[3] & 0x0f == 0)
            },
        );
        self.child = child;
        ready
    }
}

impl Drop for Nsd {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = crate::signal(child.id(), "TERM");
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The zone file: SOA and NS (a minimum TTL of 60 s for negative answers), then the records.
pub(crate) fn zone_file(zone: &Zone) -> String {
    if zone.records.starts_with("$ORIGIN") {
        return zone.records.clone();
    }
    format!(
        "$ORIGIN {origin}\n$TTL 60\n\
         @ IN SOA ns.nsd.invalid. hostmaster.nsd.invalid. 1 3600 600 86400 60\n\
         @ IN NS ns.nsd.invalid.\n\
         {records}\n",
        origin = zone.origin,
        records = zone.records,
    )
}

/// A DNS query (RFC 1035 §4.1) for the SOA of `origin`, without recursion.
fn soa_query(origin: &str) -> Vec<u8> {
    let mut query = vec![0x7a, 0x65, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in origin.split('.').filter(|label| !label.is_empty()) {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.push(0);
    // QTYPE SOA (6), QCLASS IN (1).
    query.extend_from_slice(&[0, 6, 0, 1]);
    query
}

/// A loopback port free for both UDP and TCP (a DNS server takes both).
pub fn free_udp_and_tcp_port() -> Result<SocketAddr> {
    for _ in 0..50 {
        let tcp = TcpListener::bind("127.0.0.1:0")?;
        let address = tcp.local_addr()?;
        if UdpSocket::bind(address).is_ok() {
            return Ok(address);
        }
    }
    bail!("no loopback port free for both UDP and TCP")
}
