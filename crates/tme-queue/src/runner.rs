//! The queue runner: claims due messages, delivers them grouped by destination, records
//! each recipient's outcome, tells senders (DSNs), and removes what is done.
//!
//! Crash safety (at least once, never lost): a message leaves the queue only after every
//! recipient is final and its reports are stored. A node killed mid-attempt loses its
//! lease after `queue.lease_seconds`; the message is then tried again, so a recipient whose
//! server said 250 just before the crash gets the message twice: the documented worst case.
//! Reports go into the sender's Inbox with a delivery key made of the queue id, the
//! attempt number and the kind, before the attempt is recorded: a crash in between makes the
//! next try produce the same key, and the report is stored once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::client::{
    ClientSettings, Connection, OutboundEnvelope, OutboundRecipient, RecipientResult, SessionError,
    TlsMode,
};
use crate::dsn::{Report, ReportKind, ReportedRecipient};
use crate::metrics::QueueMetrics;
use crate::route::{self, Host, RouteError};
use crate::schedule::Schedule;
use tme_resolver::MessageAuthenticator;
use tme_store::{
    AttemptRecord, Delivery, Flags, NewQueued, NewRecipient, Notify, QueueId, QueuedMessage,
    RecipientOutcome, RecipientState, Store, StoreError, StoreResult,
};

/// How many messages one pass claims at most.
const MESSAGES_PER_PASS_MAX: usize = 500;
/// How many claimed messages one node works on at once, over all passes. It bounds how long
/// a claimed message can wait in a lane, which must stay well under its lease.
const MESSAGES_IN_FLIGHT_MAX: usize = 1_000;
/// How many passes run at once: a message queued while others are being delivered is
/// claimed by a new pass at once and joins its destination's running lanes.
const PASSES_AT_ONCE_MAX: usize = 8;
/// A claimed message is not started when less than this is left of its lease: another
/// node may take it over soon after, and the message must not go out twice. Capped at a
/// quarter of the lease (`lease_margin_seconds`), so a short lease still leaves time to work.
const LEASE_MARGIN_SECONDS: i64 = 60;

/// The margin kept before a lease ends (see `LEASE_MARGIN_SECONDS`).
fn lease_margin_seconds(lease_seconds: i64) -> i64 {
    (lease_seconds / 4).clamp(0, LEASE_MARGIN_SECONDS)
}
/// How many messages of a pass are finished (reports, records) at the same time.
const FINISHING_AT_ONCE_MAX: usize = 64;
/// The longest sleep between passes when nothing is due (a message queued by another
/// process is noticed this late at worst).
const IDLE_WAIT: Duration = Duration::from_secs(5);

/// What time it is. The runner asks this, never the system, so tests can move time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_unix(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// How the runner works.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub schedule: Schedule,
    /// This node's name: Reporting-MTA and the reports' From.
    pub hostname: String,
    /// Who holds the leases this runner takes (unique per node).
    pub owner: String,
    pub lease_seconds: i64,
    /// The port MX hosts are reached on.
    pub remote_port: u16,
    /// Everything goes through this `host:port` when set.
    pub relay_host: Option<String>,
    pub connections_max: usize,
    pub connections_per_domain_max: usize,
    pub messages_per_connection_max: usize,
    pub client: ClientSettings,
    /// MTA-STS policies of destinations (RFC 8461); None delivers with opportunistic TLS
    /// only. Not used through a relay host.
    pub mta_sts: Option<crate::mta_sts::MtaSts>,
    /// The validating resolver DANE (RFC 7672) asks; None: no DANE. Not used through a
    /// relay host.
    pub dane: Option<tme_resolver::ValidatingResolver>,
}

/// What one pass did, for tests and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    pub messages: usize,
    pub delivered: usize,
    pub deferred: usize,
    pub failed: usize,
    pub removed: usize,
}

/// The queue runner of one node.
#[derive(Clone)]
pub struct Runner {
    store: Store,
    resolver: Arc<MessageAuthenticator>,
    settings: Arc<RunnerSettings>,
    clock: Arc<dyn Clock>,
    metrics: QueueMetrics,
    wake: Arc<tokio::sync::Notify>,
    /// The last check that the validating resolver gets signatures through: whether it
    /// did, and when (`dane_resolver_works`).
    dane_probe: Arc<std::sync::Mutex<Option<(bool, i64)>>>,
    /// Connections open at once to all destinations (`queue.connections_max`).
    connections: Arc<Semaphore>,
    /// Held while claiming (see `pass`).
    claiming: Arc<tokio::sync::Mutex<()>>,
    /// The messages this runner's passes hold now: never claimed twice.
    in_flight: Arc<std::sync::Mutex<HashSet<QueueId>>>,
    /// The work waiting for each destination's lanes, and how many lanes run.
    destinations: Arc<std::sync::Mutex<HashMap<String, Destination>>>,
}

/// One message's recipients for one destination, waiting for a lane of it.
struct LaneWork {
    message: QueuedMessage,
    raw: Arc<Vec<u8>>,
    positions: Vec<u32>,
    /// The end of the lease the pass took on the message.
    lease_until_unix: i64,
    /// Where the lane sends the recipients' outcomes.
    done: tokio::sync::oneshot::Sender<Vec<RecipientOutcome>>,
}

/// A destination's waiting work and running lanes (at most
/// `queue.connections_per_domain_max`, each with one connection at a time).
#[derive(Default)]
struct Destination {
    waiting: std::collections::VecDeque<LaneWork>,
    lanes: usize,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Runner")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Runner {
    pub fn new(
        store: Store,
        resolver: Arc<MessageAuthenticator>,
        settings: RunnerSettings,
        clock: Arc<dyn Clock>,
        metrics: QueueMetrics,
    ) -> Runner {
        let settings_connections_max = settings.connections_max.max(1);
        Runner {
            store,
            resolver,
            settings: Arc::new(settings),
            clock,
            metrics,
            wake: Arc::new(tokio::sync::Notify::new()),
            dane_probe: Arc::new(std::sync::Mutex::new(None)),
            connections: Arc::new(Semaphore::new(settings_connections_max)),
            claiming: Arc::new(tokio::sync::Mutex::new(())),
            in_flight: Arc::new(std::sync::Mutex::new(HashSet::new())),
            destinations: Arc::new(std::sync::Mutex::new(HashMap::new())),
        }
    }

    /// Wakes the runner now (a message was queued in this process).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs passes until `shutdown`: at once when woken (also while other passes are still
    /// delivering: up to `PASSES_AT_ONCE_MAX` at a time), when the next message is due, or
    /// every few seconds. On shutdown, the passes under way are finished first.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut passes = tokio::task::JoinSet::new();
        let mut start_pass = true;
        loop {
            // A wake that comes while the most passes run is kept until one ends.
            if start_pass && passes.len() < PASSES_AT_ONCE_MAX {
                let runner = self.clone();
                passes.spawn(async move { runner.pass().await });
                start_pass = false;
            }
            // While passes run, the queue's next due time is theirs: only a wake, a pass
            // ending or the idle wait start another.
            let wait = if passes.is_empty() {
                match self.store.queue.next_due_unix().await {
                    Ok(Some(due)) => {
                        let seconds = due.saturating_sub(self.clock.now_unix()).max(0);
                        Duration::from_secs(seconds as u64).min(IDLE_WAIT)
                    }
                    _ => IDLE_WAIT,
                }
            } else {
                IDLE_WAIT
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => start_pass = true,
                Some(joined) = passes.join_next(), if !passes.is_empty() => {
                    // A full pass leaves more due: the next starts at once. Otherwise the
                    // next due time decides, on the next turn.
                    if log_pass(joined) >= MESSAGES_PER_PASS_MAX {
                        start_pass = true;
                    }
                }
                () = tokio::time::sleep(wait) => start_pass = true,
            }
        }
        while let Some(joined) = passes.join_next().await {
            log_pass(joined);
        }
    }

    /// One pass: claim what is due, deliver it, record it.
    pub async fn pass(&self) -> StoreResult<PassReport> {
        let now = self.clock.now_unix();
        // One claim at a time: a claim must see every message an earlier one took in the
        // in-flight set, or it would take them again (an owner re-claims its own leases).
        let claiming = self.claiming.lock().await;
        let in_flight: Vec<QueueId> = self
            .in_flight
            .lock()
            .map(|in_flight| in_flight.iter().copied().collect())
            .unwrap_or_default();
        let limit =
            MESSAGES_PER_PASS_MAX.min(MESSAGES_IN_FLIGHT_MAX.saturating_sub(in_flight.len()));
        if limit == 0 {
            return Ok(PassReport::default());
        }
        let claimed = self
            .store
            .queue
            .claim_due(
                now,
                &self.settings.owner,
                self.settings.lease_seconds,
                limit,
                &in_flight,
            )
            .await?;
        let _holding = InFlight::hold(&self.in_flight, claimed.iter().map(|message| message.id));
        drop(claiming);
        let mut report = PassReport {
            messages: claimed.len(),
            ..PassReport::default()
        };
        if claimed.is_empty() {
            self.update_gauges().await;
            return Ok(report);
        }
        let mut raws: Vec<Option<Arc<Vec<u8>>>> = Vec::with_capacity(claimed.len());
        for message in &claimed {
            match self.store.queued_raw(message).await {
                Ok(raw) => raws.push(Some(Arc::new(raw))),
                Err(error) => {
                    tracing::error!(queue_id = message.id, %error, "cannot read a queued message");
                    raws.push(None);
                }
            }
        }
        let lease_until_unix = now.saturating_add(self.settings.lease_seconds);
        let mut legs = self.dispatch_all(&claimed, &raws, lease_until_unix);
        // Messages are finished side by side, each as soon as its lanes are done with it:
        // their records then share the queue file's transactions (group commit) instead of
        // taking one fsync each.
        let finishing = Arc::new(Semaphore::new(FINISHING_AT_ONCE_MAX));
        let mut tasks = tokio::task::JoinSet::new();
        for (index, (message, raw)) in claimed.into_iter().zip(raws).enumerate() {
            let message_legs = legs.remove(&index).unwrap_or_default();
            let runner = self.clone();
            let finishing = finishing.clone();
            tasks.spawn(async move {
                // A lane that ended without an answer leaves its recipients pending
                // ("not attempted" in `finish_attempt`).
                let mut message_outcomes = Vec::new();
                for leg in message_legs {
                    message_outcomes.extend(leg.await.unwrap_or_default());
                }
                let _permit = finishing.acquire_owned().await.ok();
                let result = runner
                    .finish_attempt_of(&message, raw.as_deref(), message_outcomes, now)
                    .await;
                (message.id, result)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((_, Ok(finished))) => {
                    report.delivered += finished.delivered;
                    report.deferred += finished.deferred;
                    report.failed += finished.failed;
                    report.removed += finished.removed;
                }
                Ok((queue_id, Err(error))) => {
                    tracing::warn!(queue_id, %error, "cannot record an attempt")
                }
                Err(error) => tracing::error!(%error, "a task finishing an attempt failed"),
            }
        }
        self.update_gauges().await;
        Ok(report)
    }

    /// `finish_attempt`, with the outcomes of a message whose bytes could not be read.
    async fn finish_attempt_of(
        &self,
        message: &QueuedMessage,
        raw: Option<&Vec<u8>>,
        mut message_outcomes: Vec<RecipientOutcome>,
        now: i64,
    ) -> StoreResult<Finished> {
        if raw.is_none() {
            message_outcomes = message
                .pending_recipients()
                .map(|recipient| RecipientOutcome {
                    position: recipient.position,
                    state: RecipientState::Pending,
                    reply: "4.3.0 the queued message cannot be read".to_owned(),
                    remote_host: None,
                })
                .collect();
        }
        self.finish_attempt(message, raw.map(Vec::as_slice), message_outcomes, now)
            .await
    }

    async fn update_gauges(&self) {
        if let Ok(stats) = self.store.queue.stats().await {
            self.metrics.set_depth(
                stats.messages,
                stats
                    .oldest_created_unix
                    .map(|oldest| self.clock.now_unix().saturating_sub(oldest)),
            );
        }
    }

    /// Hands every pending recipient of `messages` to its destination's lanes (one leg per
    /// message and destination); returns, by message index, where each leg's outcomes
    /// will come.
    fn dispatch_all(
        &self,
        messages: &[QueuedMessage],
        raws: &[Option<Arc<Vec<u8>>>],
        lease_until_unix: i64,
    ) -> BTreeMap<usize, Vec<tokio::sync::oneshot::Receiver<Vec<RecipientOutcome>>>> {
        let mut legs: BTreeMap<usize, Vec<_>> = BTreeMap::new();
        for (index, message) in messages.iter().enumerate() {
            let Some(raw) = raws[index].clone() else {
                continue;
            };
            // With a relay host, one destination for all.
            let mut by_domain: BTreeMap<String, Vec<u32>> = BTreeMap::new();
            for recipient in message.pending_recipients() {
                let key = match &self.settings.relay_host {
                    Some(_) => String::new(),
                    None => recipient.domain.clone(),
                };
                by_domain.entry(key).or_default().push(recipient.position);
            }
            for (domain, positions) in by_domain {
                let (done, outcomes) = tokio::sync::oneshot::channel();
                self.dispatch(
                    domain,
                    LaneWork {
                        message: message.clone(),
                        raw: raw.clone(),
                        positions,
                        lease_until_unix,
                        done,
                    },
                );
                legs.entry(index).or_default().push(outcomes);
            }
        }
        legs
    }

    /// Puts `work` in `domain`'s line, and starts a lane for it unless the destination has
    /// as many as it may (`queue.connections_per_domain_max`): a running lane takes it when
    /// its current message is done, on the connection it has open.
    fn dispatch(&self, domain: String, work: LaneWork) {
        let Ok(mut destinations) = self.destinations.lock() else {
            // A poisoned lock: the work is dropped and its recipients stay pending.
            return;
        };
        let destination = destinations.entry(domain.clone()).or_default();
        destination.waiting.push_back(work);
        if destination.lanes < self.settings.connections_per_domain_max.max(1) {
            destination.lanes += 1;
            let runner = self.clone();
            tokio::spawn(async move { runner.run_lane(domain).await });
        }
    }

    /// The next work waiting for `domain`; None ends the calling lane, counted out under
    /// the same lock so that work dispatched after it starts a new lane.
    fn next_work(&self, domain: &str) -> Option<LaneWork> {
        let mut destinations = self.destinations.lock().ok()?;
        let destination = destinations.get_mut(domain)?;
        if let Some(work) = destination.waiting.pop_front() {
            return Some(work);
        }
        destination.lanes = destination.lanes.saturating_sub(1);
        if destination.lanes == 0 {
            destinations.remove(domain);
        }
        None
    }

    /// One lane of `domain`: takes one of the node's connections, finds the destination's
    /// hosts and policies, and delivers waiting work over one connection after the other
    /// (each up to `queue.messages_per_connection_max` messages, the route looked up again
    /// for each) until no work is left.
    async fn run_lane(&self, domain: String) {
        let _permit = self.connections.clone().acquire_owned().await.ok();
        loop {
            let hosts = self.route(&domain).await;
            let dane_works = self.dane_resolver_works().await;
            let hosts = self.apply_dane(&domain, hosts, dane_works).await;
            let (hosts, tls) = self.apply_mta_sts(&domain, hosts).await;
            if !self.deliver_lane(&domain, hosts, &tls).await {
                return;
            }
        }
    }

    async fn route(&self, domain: &str) -> Result<Vec<Host>, RouteError> {
        match &self.settings.relay_host {
            Some(relay) => route::resolve_relay(&self.resolver, relay).await,
            None => route::resolve_domain(&self.resolver, domain, self.settings.remote_port).await,
        }
    }

    /// DANE applied to the destination's hosts (`route::apply_dane`): hosts with TLSA
    /// records get their own TLS demand, which an MTA-STS policy does not replace.
    async fn apply_dane(
        &self,
        domain: &str,
        hosts: Result<Vec<Host>, RouteError>,
        dane_works: bool,
    ) -> Result<Vec<Host>, RouteError> {
        let (Some(validating), None, true) =
            (&self.settings.dane, &self.settings.relay_host, dane_works)
        else {
            return hosts;
        };
        route::apply_dane(
            validating,
            domain,
            hosts?,
            self.settings.remote_port,
            &self.metrics,
        )
        .await
    }

    /// Whether DANE can be applied now: DANE is on and the validating resolver gets the
    /// root's signed keys through (`route::resolver_validates`). A resolver that strips
    /// signatures, or no root zone (a private test DNS), would make every answer bogus or
    /// unprovable and hold all mail: then the queue works as without DANE, as Postfix does
    /// with a resolver that does not validate, and says so in the log. The check is
    /// repeated hourly while it passes, every five minutes while it fails.
    async fn dane_resolver_works(&self) -> bool {
        const RECHECK_WORKING_SECONDS: i64 = 3_600;
        const RECHECK_BROKEN_SECONDS: i64 = 300;
        let (Some(validating), None) = (&self.settings.dane, &self.settings.relay_host) else {
            return false;
        };
        let now = self.clock.now_unix();
        let last = self.dane_probe.lock().ok().and_then(|probe| *probe);
        if let Some((works, checked_unix)) = last {
            let recheck = if works {
                RECHECK_WORKING_SECONDS
            } else {
                RECHECK_BROKEN_SECONDS
            };
            if (0..recheck).contains(&now.saturating_sub(checked_unix)) {
                return works;
            }
        }
        let works = route::resolver_validates(validating).await;
        if last.map(|(before, _)| before) != Some(works) {
            if works {
                tracing::info!("DANE: the validating resolver works; TLSA records are honoured");
            } else {
                tracing::warn!(
                    "DANE: the resolver does not deliver validated root keys (signatures stripped, or no root zone); mail goes out without DANE until it does"
                );
            }
        }
        self.metrics.set_dane_resolver_works(works);
        if let Ok(mut probe) = self.dane_probe.lock() {
            *probe = Some((works, now));
        }
        works
    }

    /// The destination's MTA-STS policy applied to its hosts (RFC 8461 §4): with `enforce`,
    /// only the MX hosts the policy names, each over TLS with a certificate that verifies
    /// (none left: the mail waits); with `testing`, what would fail is logged and delivery
    /// goes on as without a policy.
    async fn apply_mta_sts(
        &self,
        domain: &str,
        hosts: Result<Vec<Host>, RouteError>,
    ) -> (Result<Vec<Host>, RouteError>, TlsMode) {
        let opportunistic = TlsMode::Opportunistic;
        let (Some(mta_sts), None) = (&self.settings.mta_sts, &self.settings.relay_host) else {
            return (hosts, opportunistic);
        };
        let Ok(hosts) = hosts else {
            return (hosts, opportunistic);
        };
        let Some(policy) = mta_sts.policy(domain, self.clock.now_unix()).await else {
            return (Ok(hosts), opportunistic);
        };
        let (matching, other): (Vec<Host>, Vec<Host>) = hosts
            .into_iter()
            .partition(|host| policy.matches(&host.name));
        match policy.mode {
            crate::mta_sts::Mode::Enforce => {
                if !other.is_empty() {
                    tracing::info!(%domain, skipped = ?other.iter().map(|host| &host.name).collect::<Vec<_>>(), "MTA-STS: MX hosts not in the policy skipped");
                }
                if matching.is_empty() {
                    return (
                        Err(RouteError::PolicyUnmet {
                            status: "4.7.5",
                            text: format!("MTA-STS: no MX host of {domain} matches its policy"),
                        }),
                        opportunistic,
                    );
                }
                (Ok(matching), TlsMode::Verified(mta_sts.tls_config()))
            }
            crate::mta_sts::Mode::Testing => {
                if !other.is_empty() {
                    tracing::info!(%domain, "MTA-STS testing: some MX hosts are not in the policy");
                }
                let mut hosts = matching;
                hosts.extend(other);
                (Ok(hosts), opportunistic)
            }
            crate::mta_sts::Mode::None => {
                let mut hosts = matching;
                hosts.extend(other);
                (Ok(hosts), opportunistic)
            }
        }
    }

    /// Sends `domain`'s waiting work over one connection (reopened after a failure), up to
    /// `queue.messages_per_connection_max` messages. True: the connection is used up and
    /// work may be left; false: no work is left and the lane has been counted out.
    async fn deliver_lane(
        &self,
        domain: &str,
        hosts: Result<Vec<Host>, RouteError>,
        tls: &TlsMode,
    ) -> bool {
        let hosts = match hosts {
            Ok(hosts) => hosts,
            Err(error) => {
                let (state, reply) = match &error {
                    RouteError::Permanent { .. } => (RecipientState::Failed, error.text()),
                    RouteError::Temporary(_) | RouteError::PolicyUnmet { .. } => {
                        (RecipientState::Pending, error.text())
                    }
                };
                // What waits now gets the same answer; later work looks the route up again.
                let mut answered = 0;
                while answered < self.settings.messages_per_connection_max.max(1) {
                    let Some(work) = self.next_work(domain) else {
                        return false;
                    };
                    let mut outcomes = Vec::new();
                    push_same(&mut outcomes, 0, &work.positions, state, &reply, None);
                    let _ = work.done.send(strip_index(outcomes));
                    answered += 1;
                }
                return true;
            }
        };
        let mut connection: Option<Connection> = None;
        let mut sent_on_connection = 0;
        let mut used_up = false;
        while !used_up {
            let Some(work) = self.next_work(domain) else {
                if let Some(open) = connection {
                    open.quit().await;
                }
                return false;
            };
            let LaneWork {
                message,
                raw,
                positions,
                lease_until_unix,
                done,
            } = work;
            let mut outcomes = Vec::new();
            if self.clock.now_unix()
                >= lease_until_unix
                    .saturating_sub(lease_margin_seconds(self.settings.lease_seconds))
            {
                // Waited too long in line: another node may take the message over soon.
                push_same(
                    &mut outcomes,
                    0,
                    &positions,
                    RecipientState::Pending,
                    "4.4.7 not attempted before the queue's lease ran out",
                    None,
                );
                let _ = done.send(strip_index(outcomes));
                continue;
            }
            if connection.is_none() {
                match self.connect(&hosts, message.requiretls, tls).await {
                    Ok(open) => connection = Some(open),
                    Err(error) => {
                        let state = match error {
                            SessionError::Permanent { .. } => RecipientState::Failed,
                            _ => RecipientState::Pending,
                        };
                        push_same(
                            &mut outcomes,
                            0,
                            &positions,
                            state,
                            &error.to_string(),
                            None,
                        );
                        let _ = done.send(strip_index(outcomes));
                        continue;
                    }
                }
            }
            let Some(open) = connection.as_mut() else {
                continue;
            };
            let host = open.host().to_owned();
            let envelope = envelope_of(&message, &positions);
            sent_on_connection += 1;
            used_up = sent_on_connection >= self.settings.messages_per_connection_max.max(1);
            match open.send(&envelope, &raw).await {
                Ok(results) => {
                    for (position, result) in positions.iter().zip(results) {
                        let (state, reply) = match result {
                            RecipientResult::Accepted(reply) => {
                                (RecipientState::Delivered, reply.summary())
                            }
                            RecipientResult::Refused(reply) => {
                                (RecipientState::Failed, reply.summary())
                            }
                            RecipientResult::Deferred(text) => (RecipientState::Pending, text),
                        };
                        outcomes.push((
                            0,
                            RecipientOutcome {
                                position: *position,
                                state,
                                reply,
                                remote_host: Some(host.clone()),
                            },
                        ));
                    }
                    self.record_delivered_now(&message, &outcomes).await;
                }
                Err(error) => {
                    let state = match error {
                        SessionError::Permanent { .. } => RecipientState::Failed,
                        _ => {
                            // The connection is in an unknown state: drop it.
                            connection = None;
                            RecipientState::Pending
                        }
                    };
                    push_same(
                        &mut outcomes,
                        0,
                        &positions,
                        state,
                        &error.to_string(),
                        Some(&host),
                    );
                }
            }
            let _ = done.send(strip_index(outcomes));
        }
        if let Some(open) = connection {
            open.quit().await;
        }
        true
    }

    /// Writes at once which recipients the remote server took, so that a crash before the
    /// attempt ends sends only the message in flight again. Recipients that asked for a
    /// success report wait for the end of the attempt, where the report is written first.
    async fn record_delivered_now(
        &self,
        message: &QueuedMessage,
        outcomes: &[(usize, RecipientOutcome)],
    ) {
        let delivered: Vec<RecipientOutcome> = outcomes
            .iter()
            .map(|(_, outcome)| outcome)
            .filter(|outcome| outcome.state == RecipientState::Delivered)
            .filter(|outcome| {
                message
                    .recipients
                    .iter()
                    .find(|recipient| recipient.position == outcome.position)
                    .is_some_and(|recipient| {
                        message.return_path.is_empty() || !recipient.notify.on_success()
                    })
            })
            .cloned()
            .collect();
        if delivered.is_empty() {
            return;
        }
        if let Err(error) = self
            .store
            .queue
            .record_delivered(
                message.id,
                &self.settings.owner,
                self.clock.now_unix(),
                &delivered,
            )
            .await
        {
            tracing::warn!(queue_id = message.id, %error, "cannot record deliveries yet");
        }
    }

    /// Opens a connection to the first host that takes one (RFC 5321 §5.1: in order of
    /// preference), each with its own TLS demand (DANE) or else the destination's. A failed
    /// opportunistic TLS handshake is retried in plain text unless the message requires
    /// TLS; one under a policy (MTA-STS, DANE) never is.
    async fn connect(
        &self,
        hosts: &[Host],
        requiretls: bool,
        tls: &TlsMode,
    ) -> Result<Connection, SessionError> {
        let mut last_error = SessionError::Temporary("no host to try".to_owned());
        for host in hosts {
            let tls = host.tls.as_ref().unwrap_or(tls);
            match Connection::open(host, &self.settings.client, tls).await {
                Ok(connection) => return Ok(connection),
                Err(SessionError::TlsFailed(name)) if !requiretls => {
                    tracing::info!(host = %name, "TLS failed; retrying in plain text");
                    match Connection::open(host, &self.settings.client, &TlsMode::Plain).await {
                        Ok(connection) => return Ok(connection),
                        Err(error) => last_error = error,
                    }
                }
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// Turns one attempt's outcomes into the message's new state: expiry, reports, the
    /// record, and removal when nothing is pending.
    async fn finish_attempt(
        &self,
        message: &QueuedMessage,
        raw: Option<&[u8]>,
        mut outcomes: Vec<RecipientOutcome>,
        now: i64,
    ) -> StoreResult<Finished> {
        let schedule = self.settings.schedule;
        let expired = now >= message.expires_unix;
        // Past the lifetime, what is still pending fails (RFC 3463 4.4.7 → 5.4.7 on bounce).
        for recipient in message.pending_recipients() {
            if !outcomes
                .iter()
                .any(|outcome| outcome.position == recipient.position)
            {
                outcomes.push(RecipientOutcome {
                    position: recipient.position,
                    state: RecipientState::Pending,
                    reply: "4.4.1 not attempted".to_owned(),
                    remote_host: None,
                });
            }
        }
        if expired {
            for outcome in &mut outcomes {
                if outcome.state == RecipientState::Pending {
                    outcome.state = RecipientState::Failed;
                    outcome.reply =
                        format!("5.4.7 delivery time expired; last error: {}", outcome.reply);
                }
            }
        }
        let mut finished = Finished::default();
        for outcome in &outcomes {
            match outcome.state {
                RecipientState::Delivered => finished.delivered += 1,
                RecipientState::Pending => finished.deferred += 1,
                RecipientState::Failed => finished.failed += 1,
            }
            let destination = message
                .recipients
                .iter()
                .find(|recipient| recipient.position == outcome.position)
                .map_or("", |recipient| recipient.domain.as_str());
            self.metrics.count(outcome.state, destination);
        }
        let still_pending = outcomes
            .iter()
            .any(|outcome| outcome.state == RecipientState::Pending);
        let mut delay_notified = false;
        if let Some(raw) = raw
            && !message.return_path.is_empty()
        {
            let failed = self.reported(message, &outcomes, RecipientState::Failed, now);
            if !failed.is_empty() {
                self.send_report(message, raw, ReportKind::Failed, &failed, now)
                    .await?;
            }
            let delivered = self.reported(message, &outcomes, RecipientState::Delivered, now);
            if !delivered.is_empty() {
                self.send_report(message, raw, ReportKind::Delivered, &delivered, now)
                    .await?;
            }
            if still_pending
                && !message.delay_notified
                && schedule.delay_notice_due(message.created_unix, now)
            {
                let delayed = self.reported(message, &outcomes, RecipientState::Pending, now);
                if !delayed.is_empty() {
                    self.send_report(message, raw, ReportKind::Delayed, &delayed, now)
                        .await?;
                }
                delay_notified = true;
            }
        }
        let record = AttemptRecord {
            attempted_unix: now,
            outcomes,
            next_attempt_unix: schedule.next_attempt_unix(
                message.attempts.saturating_add(1),
                now,
                message.expires_unix,
            ),
            delay_notified,
        };
        // With nothing left pending, this also takes the message out of the queue.
        self.store
            .queue
            .record_attempt(message.id, &self.settings.owner, &record)
            .await?;
        if !still_pending {
            finished.removed = 1;
        }
        Ok(finished)
    }

    /// The recipients that reach `state` in this attempt and asked to hear of it.
    fn reported(
        &self,
        message: &QueuedMessage,
        outcomes: &[RecipientOutcome],
        state: RecipientState,
        now: i64,
    ) -> Vec<ReportedRecipient> {
        outcomes
            .iter()
            .filter(|outcome| outcome.state == state)
            .filter_map(|outcome| {
                let recipient = message
                    .recipients
                    .iter()
                    .find(|recipient| recipient.position == outcome.position)?;
                let wanted = match state {
                    RecipientState::Failed => recipient.notify.on_failure(),
                    RecipientState::Delivered => recipient.notify.on_success(),
                    RecipientState::Pending => recipient.notify.on_delay(),
                };
                wanted.then(|| ReportedRecipient {
                    address: recipient.address.clone(),
                    original_recipient: recipient.original_recipient.clone(),
                    status: status_of(&outcome.reply, state),
                    remote_host: outcome.remote_host.clone(),
                    diagnostic: Some(outcome.reply.clone()),
                    last_attempt_unix: Some(now),
                })
            })
            .collect()
    }

    /// Stores a report in the sender's Inbox (exactly once per attempt and kind), or queues
    /// it to the return path when the sender is not a local account.
    async fn send_report(
        &self,
        message: &QueuedMessage,
        raw: &[u8],
        kind: ReportKind,
        recipients: &[ReportedRecipient],
        now: i64,
    ) -> StoreResult<()> {
        let unique = format!("q{}-a{}-{}", message.id, message.attempts, kind_name(kind));
        let report = crate::dsn::build(&Report {
            kind,
            reporting_host: &self.settings.hostname,
            to: &message.return_path,
            envelope_id: message.envelope_id.as_deref(),
            arrival_unix: message.created_unix,
            retry_until_unix: Some(message.expires_unix),
            recipients,
            original: raw,
            return_full: message.dsn_return == Some(tme_store::DsnReturn::Full),
            unique: &unique,
            now_unix: now,
        });
        if let Some(account) = message.sender_account
            && let Some(inbox) = self.store.mail.mailbox_find(account, "INBOX").await?
        {
            let flags = Flags::default();
            let delivery = Delivery {
                account,
                mailbox: inbox.id,
                raw: &report,
                internal_date_unix: Some(now),
                flags: &flags,
            };
            self.store
                .deliver_once(&format!("queue-report-{unique}"), &[delivery])
                .await?;
            tracing::info!(
                queue_id = message.id,
                kind = kind_name(kind),
                "report stored in the sender's Inbox"
            );
            return Ok(());
        }
        let Some((_, domain)) = message.return_path.rsplit_once('@') else {
            return Ok(());
        };
        // RFC 3461 §6.2: a report goes out with the null sender, so it is never reported on.
        let queued = NewQueued {
            blob_id: tme_store::BlobId::of(b""),
            size_bytes: 0,
            return_path: String::new(),
            sender_account: None,
            envelope_id: None,
            dsn_return: None,
            requiretls: false,
            smtputf8: !message.return_path.is_ascii(),
            body_8bit: !report.is_ascii(),
            created_unix: now,
            expires_unix: now + self.settings.schedule.lifetime_seconds,
            recipients: vec![NewRecipient {
                address: message.return_path.clone(),
                domain: domain.to_ascii_lowercase(),
                original_recipient: None,
                notify: Notify {
                    never: true,
                    ..Notify::default()
                },
            }],
        };
        self.store.enqueue(&report, queued).await?;
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Finished {
    delivered: usize,
    deferred: usize,
    failed: usize,
    removed: usize,
}

/// One outcome per position, all with the same state and reply (a whole leg that failed or
/// was deferred together).
/// The outcomes of `push_same` and the lanes, without their (single) message index.
fn strip_index(outcomes: Vec<(usize, RecipientOutcome)>) -> Vec<RecipientOutcome> {
    outcomes.into_iter().map(|(_, outcome)| outcome).collect()
}

/// Logs what a pass did; returns how many messages it claimed.
fn log_pass(joined: Result<StoreResult<PassReport>, tokio::task::JoinError>) -> usize {
    match joined {
        Ok(Ok(report)) => {
            if report.messages > 0 {
                tracing::info!(?report, "queue pass");
            }
            report.messages
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "queue pass failed");
            0
        }
        Err(error) => {
            tracing::error!(%error, "a queue pass failed");
            0
        }
    }
}

/// The messages a pass holds, in the runner's in-flight set until the pass ends (also when
/// it ends early), so that no other pass of this node claims them meanwhile.
struct InFlight {
    set: Arc<std::sync::Mutex<HashSet<QueueId>>>,
    ids: Vec<QueueId>,
}

impl InFlight {
    fn hold(
        set: &Arc<std::sync::Mutex<HashSet<QueueId>>>,
        ids: impl Iterator<Item = QueueId>,
    ) -> InFlight {
        let ids: Vec<QueueId> = ids.collect();
        if let Ok(mut held) = set.lock() {
            held.extend(ids.iter().copied());
        }
        InFlight {
            set: set.clone(),
            ids,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut held) = self.set.lock() {
            for id in &self.ids {
                held.remove(id);
            }
        }
    }
}

fn push_same(
    outcomes: &mut Vec<(usize, RecipientOutcome)>,
    index: usize,
    positions: &[u32],
    state: RecipientState,
    reply: &str,
    remote_host: Option<&str>,
) {
    for position in positions {
        outcomes.push((
            index,
            RecipientOutcome {
                position: *position,
                state,
                reply: reply.to_owned(),
                remote_host: remote_host.map(str::to_owned),
            },
        ));
    }
}

fn kind_name(kind: ReportKind) -> &'static str {
    match kind {
        ReportKind::Failed => "failed",
        ReportKind::Delayed => "delayed",
        ReportKind::Delivered => "delivered",
    }
}

/// The RFC 3463 status in a reply or reason (`550 5.1.1 ...`, `4.4.1 ...`), or one made
/// from the state.
fn status_of(reply: &str, state: RecipientState) -> String {
    let found = reply.split_whitespace().take(3).find(|word| {
        let parts: Vec<&str> = word.split('.').collect();
        parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..].iter().all(|part| {
                !part.is_empty() && part.len() <= 3 && part.bytes().all(|b| b.is_ascii_digit())
            })
    });
    match (found, state) {
        (Some(status), _) => status.to_owned(),
        (None, RecipientState::Failed) => "5.0.0".to_owned(),
        (None, RecipientState::Delivered) => "2.0.0".to_owned(),
        (None, RecipientState::Pending) => "4.0.0".to_owned(),
    }
}

/// The envelope for the recipients at `positions` of `message`.
fn envelope_of(message: &QueuedMessage, positions: &[u32]) -> OutboundEnvelope {
    OutboundEnvelope {
        return_path: message.return_path.clone(),
        recipients: positions
            .iter()
            .filter_map(|position| {
                message
                    .recipients
                    .iter()
                    .find(|recipient| recipient.position == *position)
            })
            .map(|recipient| OutboundRecipient {
                address: recipient.address.clone(),
                original_recipient: recipient.original_recipient.clone(),
                notify: recipient.notify,
            })
            .collect(),
        envelope_id: message.envelope_id.clone(),
        dsn_return: message.dsn_return,
        requiretls: message.requiretls,
        smtputf8: message.smtputf8,
        body_8bit: message.body_8bit,
    }
}

impl From<StoreError> for SessionError {
    fn from(error: StoreError) -> Self {
        SessionError::Temporary(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_lease_keeps_a_quarter_of_itself_as_margin() {
        assert_eq!(lease_margin_seconds(900), 60);
        assert_eq!(lease_margin_seconds(60), 15);
        assert_eq!(lease_margin_seconds(2), 0);
    }

    #[test]
    fn status_comes_from_the_reply_when_it_has_one() {
        assert_eq!(
            status_of("550 5.1.1 no such user", RecipientState::Failed),
            "5.1.1"
        );
        assert_eq!(
            status_of("5.4.7 delivery time expired", RecipientState::Failed),
            "5.4.7"
        );
        assert_eq!(
            status_of("connection refused", RecipientState::Pending),
            "4.0.0"
        );
        assert_eq!(status_of("554 rejected", RecipientState::Failed), "5.0.0");
    }
}
