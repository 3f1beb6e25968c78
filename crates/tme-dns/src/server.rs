//! The async half: UDP and TCP sockets, the directory poll that rebuilds the zones, and the
//! NOTIFYs to secondaries.
//!
//! This module owns I/O and time only; every answer comes from `answer`. The zones live in
//! one `Catalog` behind an `Arc`, swapped whole when the directory changes: a query reads the
//! catalog of the moment, never a half-built one. A change made by another process (the CLI)
//! is noticed through the directory's `generation` counter, one cheap read per
//! `poll_interval`.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hickory_proto::rr::Name;
use tme_store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

use crate::answer::{Answer, AnswerLimits, QUERY_OCTETS_MAX, Transport, answer};
use crate::metrics::Metrics;
use crate::rate_limit::{RateLimiter, RateVerdict};
use crate::zone::{Catalog, DomainInput, ZoneSettings, assign_serials, build_zone};
use crate::{DnsError, notify};

/// How long a TCP connection may stay idle between queries (RFC 7766 §6.2.3 suggests
/// seconds, not minutes).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Queries answered on one TCP connection before it is closed: a bound far above what a
/// busy resolver keeping its connection (RFC 7766 §6.2.1) asks in hours, since the queries it
/// pipelined behind the last answer are lost when we close (dnsperf counted them at 100,000).
const TCP_QUERIES_PER_CONNECTION_MAX: usize = 100_000_000;
/// Responses gathered before a TCP write when the client has pipelined queries.
const TCP_OUTPUT_OCTETS_MAX: usize = 64 * 1024;
/// How long a NOTIFY waits for its acknowledgement, and how often it is sent (RFC 1996 §3.6
/// lets the interval and count be chosen).
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(2);
const NOTIFY_ATTEMPTS_MAX: usize = 5;
/// NOTIFYs in flight at once (a change to every zone must not open thousands of sockets).
const NOTIFY_IN_FLIGHT_MAX: usize = 32;
/// How often a UDP thread blocked on its socket wakes to see whether to stop.
const UDP_SHUTDOWN_CHECK: Duration = Duration::from_millis(200);

/// What the `dns` role is configured with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub address: SocketAddr,
    pub settings: ZoneSettings,
    pub limits: AnswerLimits,
    pub notify: Vec<SocketAddr>,
    pub responses_per_second_max: u32,
    pub tcp_connections_max: usize,
    pub poll_interval: Duration,
}

/// The zones being served, swapped whole on change.
#[derive(Debug, Default)]
pub struct Zones {
    catalog: RwLock<Arc<Catalog>>,
    /// Raised at every swap, so a UDP thread keeps its own `Arc` of the catalog and only
    /// takes the lock when this moved (no shared counter touched per query).
    version: AtomicU64,
}

impl Zones {
    pub fn current(&self) -> Arc<Catalog> {
        match self.catalog.read() {
            Ok(catalog) => catalog.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, catalog: Catalog) {
        let catalog = Arc::new(catalog);
        match self.catalog.write() {
            Ok(mut current) => *current = catalog,
            Err(poisoned) => *poisoned.into_inner() = catalog,
        }
        self.version.fetch_add(1, Ordering::Release);
    }

    /// `held` brought up to date: the catalog of the moment and its version.
    fn refresh(&self, held: &mut (u64, Arc<Catalog>)) {
        let version = self.version.load(Ordering::Acquire);
        if version != held.0 {
            *held = (version, self.current());
        }
    }
}

/// How long after a domain is added the role leaves its DKIM keys to `tme domain add`, which
/// stores them in the next transaction (milliseconds later, or seconds during a bulk add):
/// making them here too would only duplicate the slow RSA work.
const DKIM_KEYS_GRACE_SECONDS: i64 = 60;

/// Makes the DKIM keys of every domain that has none (a domain added before keys existed, or
/// by a path that did not make them) and was added more than `DKIM_KEYS_GRACE_SECONDS` ago.
/// RSA generation runs off the async threads. Returns how many were made, and whether some
/// domain still waits for its grace to pass.
pub async fn ensure_dkim_keys(store: &Store) -> Result<(usize, bool), DnsError> {
    let domains = store.directory.domain_list(None).await?;
    let keys = store.directory.dkim_key_list(None).await?;
    let mut made = 0;
    let mut waiting = false;
    let with_keys: std::collections::HashSet<&tme_core::Domain> =
        keys.iter().map(|key| &key.domain).collect();
    for record in domains {
        if with_keys.contains(&record.domain) {
            continue;
        }
        if now_unix() - record.created_unix < DKIM_KEYS_GRACE_SECONDS {
            waiting = true;
            continue;
        }
        let now_unix = now_unix();
        let new_keys =
            tokio::task::spawn_blocking(move || crate::dkim::generate_domain_keys(now_unix))
                .await
                .map_err(|error| DnsError::KeyGeneration(error.to_string()))??;
        match store
            .directory
            .dkim_keys_ensure(&record.domain, new_keys)
            .await
        {
            Ok(_) => made += 1,
            // Removed meanwhile: nothing to sign for.
            Err(tme_store::StoreError::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        tracing::info!(domain = %record.domain, "DKIM keys made");
    }
    Ok((made, waiting))
}

/// Reads the directory and builds every zone (serials not yet assigned).
pub async fn build_all(
    store: &Store,
    settings: &ZoneSettings,
) -> Result<Vec<crate::Zone>, DnsError> {
    let domains = store.directory.domain_list(None).await?;
    let keys = store.directory.dkim_key_list(None).await?;
    let records = store.directory.dns_record_list(None).await?;
    let mut zones = Vec::with_capacity(domains.len());
    for record in &domains {
        // Both lists are sorted by domain; a domain's slice is found by a binary search.
        let key_range = slice_of(&keys, |key| key.domain.as_str(), record.domain.as_str());
        let record_range = slice_of(
            &records,
            |custom| custom.domain.as_str(),
            record.domain.as_str(),
        );
        let (zone, problems) = build_zone(
            settings,
            DomainInput {
                domain: &record.domain,
                dkim_keys: &keys[key_range],
                custom_records: &records[record_range],
            },
            0,
        )?;
        for problem in problems {
            tracing::warn!(%problem, "custom record left out of the zone");
        }
        zones.push(zone);
    }
    Ok(zones)
}

fn slice_of<T>(items: &[T], key: impl Fn(&T) -> &str, wanted: &str) -> std::ops::Range<usize> {
    let start = items.partition_point(|item| key(item) < wanted);
    let end = items.partition_point(|item| key(item) <= wanted);
    start..end
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |duration| duration.as_secs() as i64)
}

/// What a rebuild changed.
struct Reloaded {
    /// The origins whose content changed.
    changed: Vec<Name>,
    /// Some domain has no DKIM keys yet, within its grace: rebuild again after it.
    keys_waiting: bool,
}

/// Rebuilds the catalog.
async fn reload(
    store: &Store,
    settings: &ZoneSettings,
    zones: &Zones,
    metrics: &Metrics,
) -> Result<Reloaded, DnsError> {
    let rebuilt = async {
        let (_, keys_waiting) = ensure_dkim_keys(store).await?;
        Ok::<_, DnsError>((build_all(store, settings).await?, keys_waiting))
    };
    let (built, keys_waiting) = match rebuilt.await {
        Ok(built) => built,
        Err(error) => {
            Metrics::count(&metrics.zone_rebuilds, "failed");
            return Err(error);
        }
    };
    let previous = zones.current();
    let (catalog, changed) = assign_serials(&previous, built, settings, now_unix() as u32);
    zones.replace(catalog);
    Metrics::count(&metrics.zone_rebuilds, "ok");
    metrics.zones_changed.inc_by(changed.len() as u64);
    let catalog = zones.current();
    metrics.zones.set(catalog.len() as i64);
    // Make the answers of new and changed zones now rather than at their first query (the
    // others keep theirs: an unchanged zone is the same `Arc`).
    tokio::task::spawn_blocking(move || {
        for zone in catalog.zones() {
            zone.prepared();
        }
    });
    Ok(Reloaded {
        changed,
        keys_waiting,
    })
}

/// Runs the server until `shutdown`. `listening` is called once both sockets are bound and
/// the zones are loaded.
pub async fn run(
    config: ServerConfig,
    store: Store,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    listening: impl FnOnce(),
) -> Result<(), DnsError> {
    let io_error = |context: String| move |source| DnsError::Io { context, source };
    let udp = std::net::UdpSocket::bind(config.address)
        .and_then(|socket| {
            socket.set_read_timeout(Some(UDP_SHUTDOWN_CHECK))?;
            Ok(socket)
        })
        .map_err(io_error(format!("cannot listen on UDP {}", config.address)))?;
    let tcp = TcpListener::bind(config.address)
        .await
        .map_err(io_error(format!("cannot listen on TCP {}", config.address)))?;
    let zones = Arc::new(Zones::default());
    let mut generation = store.directory.generation().await?;
    let reloaded = reload(&store, &config.settings, &zones, &metrics).await?;
    let changed = reloaded.changed;
    // When to look again for domains whose DKIM keys are still missing.
    let grace = Duration::from_secs(DKIM_KEYS_GRACE_SECONDS as u64 + 1);
    let mut keys_check_at = reloaded.keys_waiting.then(|| Instant::now() + grace);
    tracing::info!(
        address = %config.address,
        zones = zones.current().len(),
        "dns listening"
    );
    listening();
    let notify_slots = Arc::new(tokio::sync::Semaphore::new(NOTIFY_IN_FLIGHT_MAX));
    send_notifies(&config, &zones, changed, &notify_slots, &metrics, &shutdown);

    let limiter = Arc::new(Mutex::new(RateLimiter::new(
        config.responses_per_second_max,
        Instant::now(),
    )));
    let limits = Arc::new(config.limits.clone());
    let mut tasks = tokio::task::JoinSet::new();
    // One thread per core blocks on the socket: a datagram costs two system calls and no
    // trip through the async reactor (faster in bench/dns.sh, see docs/BENCHMARKS.md).
    let udp_threads = std::thread::available_parallelism().map_or(2, usize::from);
    for _ in 0..udp_threads {
        let socket = udp.try_clone().map_err(io_error(format!(
            "cannot share the UDP socket {}",
            config.address
        )))?;
        let (zones, limits, limiter, metrics, shutdown) = (
            zones.clone(),
            limits.clone(),
            limiter.clone(),
            metrics.clone(),
            shutdown.clone(),
        );
        tasks.spawn_blocking(move || {
            udp_worker(&socket, &zones, &limits, &limiter, &metrics, &shutdown)
        });
    }
    tasks.spawn(tcp_acceptor(
        tcp,
        zones.clone(),
        limits.clone(),
        config.tcp_connections_max,
        metrics.clone(),
        shutdown.clone(),
    ));

    let mut poll = tokio::time::interval(config.poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = poll.tick() => {}
        }
        let now = match store.directory.generation().await {
            Ok(now) => now,
            Err(error) => {
                tracing::warn!(%error, "cannot read the directory; serving the zones as they were");
                continue;
            }
        };
        let keys_due = keys_check_at.is_some_and(|at| Instant::now() >= at);
        if now == generation && !keys_due {
            continue;
        }
        match reload(&store, &config.settings, &zones, &metrics).await {
            Ok(Reloaded {
                changed,
                keys_waiting,
            }) => {
                generation = now;
                keys_check_at = keys_waiting.then(|| Instant::now() + grace);
                if !changed.is_empty() {
                    tracing::info!(zones = changed.len(), "zones changed");
                }
                send_notifies(&config, &zones, changed, &notify_slots, &metrics, &shutdown);
            }
            Err(error) => {
                tracing::warn!(%error, "cannot rebuild the zones; serving them as they were");
            }
        }
    }
    tasks.shutdown().await;
    Ok(())
}

/// Answers datagrams on `socket` until `shutdown`, on a thread of its own.
fn udp_worker(
    socket: &std::net::UdpSocket,
    zones: &Zones,
    limits: &AnswerLimits,
    limiter: &Mutex<RateLimiter>,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) {
    let limiting = match limiter.lock() {
        Ok(limiter) => limiter.is_on(),
        Err(poisoned) => poisoned.into_inner().is_on(),
    };
    let mut catalog = (u64::MAX, Arc::new(Catalog::default()));
    // One octet more than any query we take, to see an oversized datagram and drop it.
    let mut buffer = vec![0u8; QUERY_OCTETS_MAX + 1];
    while !shutdown.is_cancelled() {
        let (length, source) = match socket.recv_from(&mut buffer) {
            Ok(received) => received,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(error) => {
                // ICMP errors surface here on some systems; the socket stays usable.
                tracing::debug!(%error, "udp receive failed");
                continue;
            }
        };
        if length > QUERY_OCTETS_MAX {
            metrics.queries_dropped.inc();
            continue;
        }
        zones.refresh(&mut catalog);
        let Answer::Message(response) = answer(
            &catalog.1,
            limits,
            &buffer[..length],
            source.ip(),
            Transport::Udp,
        ) else {
            metrics.queries_dropped.inc();
            continue;
        };
        let verdict = if !limiting {
            RateVerdict::Send
        } else {
            match limiter.lock() {
                Ok(mut limiter) => limiter.check(source.ip(), Instant::now()),
                Err(poisoned) => poisoned.into_inner().check(source.ip(), Instant::now()),
            }
        };
        let response = match verdict {
            RateVerdict::Send => response,
            RateVerdict::Slip => {
                Metrics::count(&metrics.rate_limited, "slipped");
                match truncated(&response) {
                    Some(response) => response,
                    None => continue,
                }
            }
            RateVerdict::Drop => {
                Metrics::count(&metrics.rate_limited, "dropped");
                continue;
            }
        };
        metrics.count_response(Transport::Udp, &response);
        if let Err(error) = socket.send_to(&response, source) {
            tracing::debug!(%error, %source, "udp send failed");
        }
    }
}

/// The response with TC set and every section after the question emptied.
fn truncated(response: &[u8]) -> Option<Vec<u8>> {
    let mut message = hickory_proto::op::Message::from_vec(response).ok()?;
    message.answers.clear();
    message.authorities.clear();
    message.additionals.clear();
    message.metadata.truncation = true;
    message.to_vec().ok()
}

async fn tcp_acceptor(
    listener: TcpListener,
    zones: Arc<Zones>,
    limits: Arc<AnswerLimits>,
    connections_max: usize,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(connections_max));
    loop {
        // Waiting for a slot before accepting leaves further clients in the kernel's backlog.
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(%error, "tcp accept failed");
                continue;
            }
        };
        let zones = zones.clone();
        let limits = limits.clone();
        let metrics = metrics.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = shutdown.cancelled() => {}
                result = tcp_connection(stream, peer.ip(), &zones, &limits, &metrics) => {
                    if let Err(error) = result {
                        tracing::debug!(%error, %peer, "dns tcp connection ended");
                    }
                }
            }
        });
    }
}

/// Queries on one TCP connection, each with its two-octet length (RFC 1035 §4.2.2).
/// Queries a client pipelines (RFC 7766 §6.2.1.1) are read together and their responses
/// written together: the responses go out when no further whole query is waiting.
async fn tcp_connection(
    mut stream: TcpStream,
    peer: IpAddr,
    zones: &Zones,
    limits: &AnswerLimits,
    metrics: &Metrics,
) -> std::io::Result<()> {
    // Nagle would hold a lone response back waiting for the client's acknowledgement.
    let _ = stream.set_nodelay(true);
    let (reader, mut writer) = stream.split();
    let mut reader = BufReader::with_capacity(2 * (QUERY_OCTETS_MAX + 2), reader);
    let mut buffer = vec![0u8; QUERY_OCTETS_MAX];
    let mut output: Vec<u8> = Vec::new();
    let mut catalog = (u64::MAX, Arc::new(Catalog::default()));
    for _ in 0..TCP_QUERIES_PER_CONNECTION_MAX {
        if !output.is_empty()
            && (output.len() >= TCP_OUTPUT_OCTETS_MAX || !whole_message_buffered(reader.buffer()))
        {
            writer.write_all(&output).await?;
            output.clear();
        }
        let mut length = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE_TIMEOUT, reader.read_exact(&mut length)).await {
            Ok(Ok(_)) => {}
            // Closed by the client or idle too long: both end the connection quietly.
            Ok(Err(_)) | Err(_) => return Ok(()),
        }
        let length = usize::from(u16::from_be_bytes(length));
        if length > QUERY_OCTETS_MAX {
            // Not a query we take; reading it would only waste time. Close.
            metrics.queries_dropped.inc();
            break;
        }
        match tokio::time::timeout(TCP_IDLE_TIMEOUT, reader.read_exact(&mut buffer[..length])).await
        {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => break,
        }
        zones.refresh(&mut catalog);
        let is_transfer;
        let messages = match answer(&catalog.1, limits, &buffer[..length], peer, Transport::Tcp) {
            Answer::Drop => {
                metrics.queries_dropped.inc();
                continue;
            }
            Answer::Message(message) => {
                is_transfer = matches!(transfer_type(&buffer[..length]), Some(251 | 252));
                vec![message]
            }
            Answer::Transfer(messages) => {
                is_transfer = true;
                messages
            }
        };
        if let Some(first) = messages.first() {
            metrics.count_response(Transport::Tcp, first);
            if is_transfer {
                let refused = first.get(3).is_some_and(|octet| octet & 0x0f != 0);
                Metrics::count(&metrics.transfers, if refused { "refused" } else { "sent" });
            }
        }
        for message in messages {
            let Ok(length) = u16::try_from(message.len()) else {
                continue;
            };
            output.extend_from_slice(&length.to_be_bytes());
            output.extend_from_slice(&message);
            if output.len() >= TCP_OUTPUT_OCTETS_MAX {
                writer.write_all(&output).await?;
                output.clear();
            }
        }
    }
    if !output.is_empty() {
        writer.write_all(&output).await?;
    }
    Ok(())
}

/// Whether `buffered` holds a whole length-prefixed message.
fn whole_message_buffered(buffered: &[u8]) -> bool {
    match buffered {
        [high, low, rest @ ..] => rest.len() >= usize::from(u16::from_be_bytes([*high, *low])),
        _ => false,
    }
}

/// The QTYPE of a query's first question, read from the wire (for counting refused
/// transfers without decoding every query), or None.
fn transfer_type(query: &[u8]) -> Option<u16> {
    let mut position = 12;
    loop {
        let length = *query.get(position)?;
        if length & 0xc0 == 0xc0 {
            position += 2;
            break;
        }
        position += 1 + usize::from(length);
        if length == 0 {
            break;
        }
    }
    Some(u16::from_be_bytes([
        *query.get(position)?,
        *query.get(position + 1)?,
    ]))
}

/// Sends a NOTIFY for each changed zone to each secondary, in the background.
fn send_notifies(
    config: &ServerConfig,
    zones: &Zones,
    changed: Vec<Name>,
    slots: &Arc<tokio::sync::Semaphore>,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) {
    if config.notify.is_empty() || changed.is_empty() {
        return;
    }
    let catalog = zones.current();
    for origin in changed {
        let Some(zone) = catalog
            .get(&hickory_proto::rr::LowerName::new(&origin))
            .cloned()
        else {
            continue;
        };
        for &secondary in &config.notify {
            let zone = zone.clone();
            let slots = slots.clone();
            let metrics = metrics.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let Ok(_permit) = slots.acquire_owned().await else {
                    return;
                };
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = notify_one(&zone, secondary, &metrics) => {}
                }
            });
        }
    }
}

/// One NOTIFY, retried until acknowledged or `NOTIFY_ATTEMPTS_MAX` attempts.
async fn notify_one(zone: &crate::Zone, secondary: SocketAddr, metrics: &Metrics) {
    let local: SocketAddr = match secondary {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = match UdpSocket::bind(local).await {
        Ok(socket) => socket,
        Err(error) => {
            tracing::warn!(%error, "cannot open a socket for NOTIFY");
            return;
        }
    };
    let id: u16 = rand::random();
    let Some(message) = notify::notify_message(zone, id) else {
        return;
    };
    let mut buffer = vec![0u8; 4096];
    for attempt in 1..=NOTIFY_ATTEMPTS_MAX {
        if socket.send_to(&message, secondary).await.is_err() {
            tokio::time::sleep(NOTIFY_TIMEOUT).await;
            continue;
        }
        Metrics::count(&metrics.notifies, "sent");
        let deadline = tokio::time::Instant::now() + NOTIFY_TIMEOUT;
        while let Ok(Ok((length, from))) =
            tokio::time::timeout_at(deadline, socket.recv_from(&mut buffer)).await
        {
            if from != secondary {
                continue;
            }
            if let Some(code) = notify::is_acknowledgement(&buffer[..length], id, zone.origin()) {
                tracing::info!(zone = %zone.origin(), serial = zone.serial(), %secondary, %code, attempt, "NOTIFY acknowledged");
                Metrics::count(&metrics.notifies, "acknowledged");
                return;
            }
        }
    }
    Metrics::count(&metrics.notifies, "unacknowledged");
    tracing::warn!(zone = %zone.origin(), %secondary, "NOTIFY not acknowledged");
}

impl ServerConfig {
    /// The server's config from the node's, listening on `address`.
    pub fn from_config(
        config: &tme_core::config::Config,
        address: SocketAddr,
    ) -> Result<ServerConfig, DnsError> {
        let dns = &config.dns;
        Ok(ServerConfig {
            address,
            settings: ZoneSettings::from_config(config)?,
            limits: AnswerLimits {
                udp_payload_octets_max: dns.udp_payload_octets_max,
                transfer_allow: dns.transfer_allow.clone(),
            },
            notify: dns.notify.clone(),
            responses_per_second_max: dns.responses_per_second_max,
            tcp_connections_max: dns.tcp_connections_max,
            poll_interval: Duration::from_millis(dns.poll_interval_ms),
        })
    }
}
