//! The queue runner against real peers: a private NSD serves the MX records of "remote"
//! domains, whose hosts are Postfix's smtp-sink on other loopback addresses, accepting,
//! deferring (4xx) or refusing (5xx). Time is a test clock moved by hand, so the retry
//! schedule and the queue lifetime are checked without waiting.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tme_core::EmailAddress;
use tme_core::config::{QueueConfig, ResolverConfig, StoreConfig};
use tme_queue::client::ClientSettings;
use tme_queue::{Clock, QueueMetrics, Runner, RunnerSettings, Schedule};
use tme_store::{
    AccountId, Branding, NewAccount, NewQueued, NewRecipient, Notify, QueueId, RecipientState,
    Store,
};
use tme_testkit::dns::{Nsd, Zone};
use tme_testkit::{SinkBehaviour, SmtpSink};

const START: i64 = 1_900_000_000;
const MESSAGE: &[u8] = b"From: sender@home.test\r\nTo: someone@remote.test\r\nSubject: queued\r\n\
Message-ID: <queued-1@home.test>\r\n\r\nHello from the queue.\r\n.leading dot line\r\n";

#[derive(Debug)]
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_unix(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

struct World {
    store: Store,
    runner: Runner,
    clock: Arc<TestClock>,
    sender: AccountId,
    port: u16,
    _nsd: Nsd,
    _directory: tempfile::TempDir,
}

impl World {
    async fn new() -> World {
        World::asking(None).await
    }

    /// A world whose resolver asks `nameserver` instead of its NSD.
    async fn asking(nameserver: Option<SocketAddr>) -> World {
        let port = tme_testkit::free_ports(1).unwrap()[0].port();
        let nsd = Nsd::start(&[Zone::root(
            "good.test. MX 10 mx.good.test.\n\
             mx.good.test. A 127.0.0.2\n\
             implicit.test. A 127.0.0.2\n\
             defer.test. MX 10 mx.defer.test.\n\
             mx.defer.test. A 127.0.0.3\n\
             refuse.test. MX 10 mx.refuse.test.\n\
             mx.refuse.test. A 127.0.0.4\n\
             dead.test. MX 10 mx.dead.test.\n\
             mx.dead.test. A 127.0.0.5\n\
             nullmx.test. MX 0 .\n\
             garbage.test. A 127.0.0.7\n\
             stall.test. A 127.0.0.8\n\
             drop.test. A 127.0.0.9\n\
             endless.test. A 127.0.0.10\n\
             loop.test. CNAME loop2.test.\n\
             loop2.test. CNAME loop.test.\n\
             noaddr.test. MX 10 mx.noaddr.test.\n\
             mxloop.test. MX 10 loop.test.\n\
             v6only.test. MX 10 mx.v6only.test.\n\
             mx.v6only.test. AAAA ::1\n\
             dual.test. MX 10 mx.dual.test.\n\
             mx.dual.test. A 127.0.0.11\n\
             mx.dual.test. AAAA ::1\n",
        )])
        .unwrap();
        let directory = tempfile::tempdir().unwrap();
        let store = Store::open(directory.path(), &StoreConfig::default())
            .await
            .unwrap();
        store
            .directory
            .partner_add("home", Branding::default())
            .await
            .unwrap();
        let address = EmailAddress::parse("sender@home.test").unwrap();
        store
            .directory
            .domain_add(address.domain(), "home")
            .await
            .unwrap();
        let sender = store
            .account_create(NewAccount {
                address,
                display_name: None,
                password_hash: "not-a-real-hash".to_owned(),
                quota_bytes_max: 1 << 30,
            })
            .await
            .unwrap()
            .id;
        let resolver = tme_resolver::build(&ResolverConfig {
            nameservers: vec![nameserver.unwrap_or(nsd.address())],
            timeout_ms: 2_000,
            ..ResolverConfig::default()
        })
        .unwrap();
        let clock = Arc::new(TestClock(AtomicI64::new(START)));
        let settings = RunnerSettings {
            schedule: Schedule::from_config(&QueueConfig::default()),
            hostname: "mx.home.test".to_owned(),
            owner: "test-node".to_owned(),
            lease_seconds: 900,
            remote_port: port,
            relay_host: None,
            connections_max: 8,
            connections_per_domain_max: 2,
            messages_per_connection_max: 10,
            client: ClientSettings {
                helo_name: "mx.home.test".to_owned(),
                connect_timeout: Duration::from_secs(5),
                command_timeout: Duration::from_secs(5),
                data_end_timeout: Duration::from_secs(5),
                credentials: None,
                tls: tme_queue::tls::opportunistic().unwrap(),
            },
            mta_sts: None,
            dane: None,
        };
        let runner = Runner::new(
            store.clone(),
            Arc::new(resolver),
            settings,
            clock.clone(),
            QueueMetrics::default(),
        );
        World {
            store,
            runner,
            clock,
            sender,
            port,
            _nsd: nsd,
            _directory: directory,
        }
    }

    fn sink(&self, ip: &str, behaviour: SinkBehaviour) -> SmtpSink {
        let address: SocketAddr = format!("{ip}:{}", self.port).parse().unwrap();
        SmtpSink::start(address, behaviour).unwrap()
    }

    async fn enqueue(&self, recipients: &[&str]) -> QueueId {
        let now = self.clock.now_unix();
        let message = NewQueued {
            blob_id: tme_store::BlobId::of(b""),
            size_bytes: 0,
            return_path: "sender@home.test".to_owned(),
            sender_account: Some(self.sender),
            envelope_id: Some("test-envelope".to_owned()),
            dsn_return: None,
            requiretls: false,
            smtputf8: false,
            body_8bit: false,
            created_unix: now,
            expires_unix: now + 5 * 86_400,
            recipients: recipients
                .iter()
                .map(|address| NewRecipient {
                    address: (*address).to_owned(),
                    domain: address.rsplit('@').next().unwrap().to_owned(),
                    original_recipient: Some(format!("rfc822;{address}")),
                    notify: Notify::default(),
                })
                .collect(),
        };
        self.store.enqueue(MESSAGE, message).await.unwrap()
    }

    fn advance_to(&self, unix: i64) {
        self.clock.0.store(unix, Ordering::SeqCst);
    }

    /// The reports in the sender's Inbox, as text.
    async fn reports(&self) -> Vec<String> {
        let inbox = self
            .store
            .mail
            .mailbox_find(self.sender, "INBOX")
            .await
            .unwrap()
            .unwrap();
        let mut texts = Vec::new();
        for record in self
            .store
            .mail
            .message_list(self.sender, inbox.id)
            .await
            .unwrap()
        {
            let raw = self.store.message_raw(&record).await.unwrap();
            texts.push(String::from_utf8(raw).unwrap());
        }
        texts
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_by_mx_and_implicit_mx_and_bounces_a_null_mx_domain() {
    let world = World::new().await;
    let sink = world.sink("127.0.0.2", SinkBehaviour::Accept);
    world
        .enqueue(&["one@good.test", "two@implicit.test", "three@nullmx.test"])
        .await;
    let report = world.runner.pass().await.unwrap();
    assert_eq!(
        (
            report.messages,
            report.delivered,
            report.failed,
            report.removed
        ),
        (1, 2, 1, 1),
        "{report:?}"
    );
    let received = sink.received().unwrap();
    assert_eq!(received.len(), 2, "one transaction per destination domain");
    for transaction in &received {
        let text = String::from_utf8_lossy(transaction);
        assert!(text.contains("X-Mail-Args: <sender@home.test>"), "{text}");
        // smtp-sink writes lines with LF and a blank line after the message.
        assert!(
            text.ends_with("\n\nHello from the queue.\n.leading dot line\n\n"),
            "the body arrives whole, the dot unstuffed: {text}"
        );
        assert!(text.contains("X-Rcpt-Args: <"), "{text}");
    }
    assert!(world.store.queue.list().await.unwrap().is_empty());
    let reports = world.reports().await;
    assert_eq!(reports.len(), 1, "one failure report");
    let report = &reports[0];
    assert!(report.contains("report-type=delivery-status"));
    assert!(report.contains("Final-Recipient: rfc822; three@nullmx.test\r\n"));
    assert!(report.contains("Original-Recipient: rfc822;three@nullmx.test\r\n"));
    assert!(
        report.contains("Action: failed\r\nStatus: 5.1.10\r\n"),
        "{report}"
    );
    assert!(report.contains("Original-Envelope-Id: test-envelope\r\n"));
    assert!(
        !report.contains("one@good.test>:"),
        "delivered recipients are not reported"
    );
}

/// IPv6: a host with only an AAAA record is reached over IPv6, and a host whose IPv4
/// address takes no connection is reached over its IPv6 address (RFC 5321 §5.1: every
/// address of a host is tried before the next host).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_over_ipv6_and_falls_back_from_a_dead_ipv4_address() {
    let world = World::new().await;
    let sink = world.sink("[::1]", SinkBehaviour::Accept);
    world.enqueue(&["one@v6only.test", "two@dual.test"]).await;
    let report = world.runner.pass().await.unwrap();
    assert_eq!(
        (report.messages, report.delivered, report.removed),
        (1, 2, 1),
        "{report:?}"
    );
    let received = sink.received().unwrap();
    assert_eq!(received.len(), 2, "one transaction per destination domain");
    let texts: Vec<String> = received
        .iter()
        .map(|transaction| String::from_utf8_lossy(transaction).into_owned())
        .collect();
    assert!(
        texts
            .iter()
            .any(|text| text.contains("X-Rcpt-Args: <one@v6only.test>")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|text| text.contains("X-Rcpt-Args: <two@dual.test>")),
        "{texts:?}"
    );
    assert!(world.store.queue.list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_errors_are_retried_on_schedule_until_the_server_takes_the_message() {
    let world = World::new().await;
    let deferring = world.sink("127.0.0.3", SinkBehaviour::DeferRecipients);
    let id = world.enqueue(&["later@defer.test"]).await;
    let report = world.runner.pass().await.unwrap();
    assert_eq!((report.deferred, report.removed), (1, 0));
    let queued = world.store.queue.get(id).await.unwrap();
    assert_eq!(
        queued.next_attempt_unix,
        START + 300,
        "first retry after 5 minutes"
    );
    assert_eq!(queued.recipients[0].state, RecipientState::Pending);
    assert!(
        queued.recipients[0]
            .last_reply
            .as_deref()
            .unwrap()
            .starts_with("4"),
        "{:?}",
        queued.recipients[0].last_reply
    );
    // Not before its time.
    world.advance_to(START + 299);
    assert_eq!(world.runner.pass().await.unwrap().messages, 0);
    world.advance_to(START + 300);
    assert_eq!(world.runner.pass().await.unwrap().deferred, 1);
    let queued = world.store.queue.get(id).await.unwrap();
    assert_eq!(
        queued.next_attempt_unix,
        START + 300 + 600,
        "the wait doubles"
    );
    assert_eq!(queued.attempts, 2);
    // The server recovers.
    drop(deferring);
    let accepting = world.sink("127.0.0.3", SinkBehaviour::Accept);
    world.advance_to(START + 900);
    let report = world.runner.pass().await.unwrap();
    assert_eq!((report.delivered, report.removed), (1, 1));
    assert_eq!(accepting.received().unwrap().len(), 1);
    assert!(
        world.reports().await.is_empty(),
        "a delivery after retries reports nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_errors_bounce_at_once_with_the_servers_words() {
    let world = World::new().await;
    let _refusing = world.sink("127.0.0.4", SinkBehaviour::RefuseRecipients);
    world.enqueue(&["nobody@refuse.test"]).await;
    let report = world.runner.pass().await.unwrap();
    assert_eq!((report.failed, report.removed), (1, 1));
    let reports = world.reports().await;
    assert_eq!(reports.len(), 1);
    assert!(
        reports[0].contains("Action: failed\r\nStatus: 5."),
        "{}",
        reports[0]
    );
    assert!(reports[0].contains("Remote-MTA: dns; mx.refuse.test\r\n"));
    assert!(reports[0].contains("Diagnostic-Code: smtp; 5"));
    assert!(
        reports[0].contains("Content-Type: text/rfc822-headers\r\n\r\nFrom: sender@home.test"),
        "the original's header comes back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_host_is_retried_the_sender_warned_once_and_bounced_at_expiry() {
    let world = World::new().await;
    let id = world.enqueue(&["lost@dead.test"]).await;
    let mut now = START;
    let mut attempts = 0;
    // Retry on schedule until the lifetime ends.
    loop {
        world.advance_to(now);
        let report = world.runner.pass().await.unwrap();
        attempts += report.messages;
        if report.removed == 1 {
            assert_eq!(report.failed, 1);
            break;
        }
        assert!(attempts < 200, "the message never expired");
        now = world.store.queue.get(id).await.unwrap().next_attempt_unix;
    }
    assert_eq!(now, START + 5 * 86_400, "the last attempt is at expiry");
    // 5 min, 10, 20, 40, then hourly: about 124 attempts in 5 days.
    assert!((100..140).contains(&attempts), "{attempts} attempts");
    let reports = world.reports().await;
    assert_eq!(reports.len(), 2, "one delay notice, then the bounce");
    let delay = reports
        .iter()
        .find(|text| text.contains("Action: delayed"))
        .unwrap();
    assert!(delay.contains("Will-Retry-Until: "));
    let bounce = reports
        .iter()
        .find(|text| text.contains("Action: failed"))
        .unwrap();
    assert!(bounce.contains("Status: 5.4.7\r\n"), "{bounce}");
    assert!(bounce.contains("delivery time expired"));
}

/// A broken remote server: greets, then follows `script` (what to do after each command).
#[derive(Debug, Clone, Copy)]
enum Misbehaviour {
    /// Answers EHLO with something that is not SMTP.
    Garbage,
    /// Takes the envelope and DATA, then never answers the end of the data.
    StallAfterData,
    /// Closes the connection after the recipient.
    DropAfterRcpt,
    /// Answers EHLO with a reply that never ends.
    EndlessReply,
}

async fn broken_server(
    address: SocketAddr,
    behaviour: Misbehaviour,
) -> tokio::task::JoinHandle<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 broken.test ESMTP\r\n").await;
                let mut in_data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        continue; // Swallows the message and never answers.
                    }
                    let verb = line
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    let reply: Vec<u8> = match (behaviour, verb.as_str()) {
                        (Misbehaviour::Garbage, "EHLO") => b"HTTP/1.1 400 Bad Request\r\n".to_vec(),
                        (Misbehaviour::EndlessReply, "EHLO") => loop {
                            if write.write_all(b"250-and more\r\n").await.is_err() {
                                return;
                            }
                        },
                        (_, "EHLO") => b"250-broken.test\r\n250 8BITMIME\r\n".to_vec(),
                        (Misbehaviour::DropAfterRcpt, "RCPT") => return,
                        (_, "DATA") => {
                            in_data = true;
                            b"354 go on\r\n".to_vec()
                        }
                        (_, "QUIT") => return,
                        _ => b"250 ok\r\n".to_vec(),
                    };
                    if write.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_servers_end_in_a_retry_with_the_reason_never_a_stuck_message() {
    let world = World::new().await;
    let cases = [
        (
            "garbage.test",
            "127.0.0.7",
            Misbehaviour::Garbage,
            "answered badly",
        ),
        (
            "stall.test",
            "127.0.0.8",
            Misbehaviour::StallAfterData,
            "did not answer in time",
        ),
        (
            "drop.test",
            "127.0.0.9",
            Misbehaviour::DropAfterRcpt,
            "closed the connection",
        ),
        (
            "endless.test",
            "127.0.0.10",
            Misbehaviour::EndlessReply,
            "longer than",
        ),
    ];
    let mut servers = Vec::new();
    let mut ids = Vec::new();
    for (domain, ip, behaviour, _) in cases {
        let address: SocketAddr = format!("{ip}:{}", world.port).parse().unwrap();
        servers.push(broken_server(address, behaviour).await);
        ids.push(world.enqueue(&[&format!("someone@{domain}")]).await);
    }
    let report = world.runner.pass().await.unwrap();
    assert_eq!((report.messages, report.deferred), (4, 4), "{report:?}");
    for ((domain, _, _, reason), id) in cases.iter().zip(&ids) {
        let queued = world.store.queue.get(*id).await.unwrap();
        let recipient = &queued.recipients[0];
        assert_eq!(recipient.state, RecipientState::Pending, "{domain}");
        let reply = recipient.last_reply.clone().unwrap_or_default();
        assert!(reply.contains(reason), "{domain}: {reply}");
        assert_eq!(queued.attempts, 1, "{domain}: the attempt is recorded");
        assert_eq!(
            queued.next_attempt_unix,
            START + 300,
            "{domain}: retried on schedule"
        );
    }
    // The leases were released with the attempt: the next pass may claim them again.
    world.advance_to(START + 300);
    assert_eq!(world.runner.pass().await.unwrap().messages, 4);
    for server in servers {
        server.abort();
    }
}

/// How a broken DNS server answers a query.
type DnsAnswer = fn(&[u8]) -> Vec<u8>;

/// A DNS server over UDP that answers every query with `answer(query)`.
async fn broken_dns(answer: DnsAnswer) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buffer = [0u8; 1500];
        while let Ok((count, peer)) = socket.recv_from(&mut buffer).await {
            let _ = socket.send_to(&answer(&buffer[..count]), peer).await;
        }
    });
    (address, task)
}

/// Every recipient of `id` waits for a retry on schedule with a reason, or failed with one:
/// never stuck, never without a word.
async fn assert_retried_or_bounced_with_reason(world: &World, id: QueueId, what: &str) {
    let queued = world.store.queue.get(id).await;
    let Ok(queued) = queued else {
        // Gone from the queue: every recipient failed and was reported.
        let reports = world.reports().await;
        assert!(!reports.is_empty(), "{what}: removed without a report");
        return;
    };
    assert_eq!(queued.attempts, 1, "{what}: the attempt is recorded");
    for recipient in &queued.recipients {
        let reply = recipient.last_reply.clone().unwrap_or_default();
        assert!(!reply.is_empty(), "{what}: no reason recorded");
        if recipient.state == RecipientState::Pending {
            assert_eq!(queued.next_attempt_unix, START + 300, "{what}: {reply}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_loops_and_missing_addresses_end_in_a_retry_or_bounce_with_the_reason() {
    let world = World::new().await;
    let mut ids = Vec::new();
    for domain in ["loop.test", "noaddr.test", "mxloop.test"] {
        ids.push((domain, world.enqueue(&[&format!("someone@{domain}")]).await));
    }
    let report = world.runner.pass().await.unwrap();
    assert_eq!(report.messages, 3, "{report:?}");
    for (domain, id) in ids {
        assert_retried_or_bounced_with_reason(&world, id, domain).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_dns_answers_end_in_a_retry_with_the_reason() {
    // Garbage; a truncated header; the right id with a body that does not parse.
    let answers: [DnsAnswer; 3] = [
        |_| b"not a DNS message at all".to_vec(),
        |query| query.get(..5).unwrap_or_default().to_vec(),
        |query| {
            let mut answer = query.to_vec();
            if answer.len() > 3 {
                answer[2] |= 0x80; // QR: a response
                answer[7] = 5; // ANCOUNT 5, and no answer follows
            }
            answer
        },
    ];
    for (number, answer) in answers.into_iter().enumerate() {
        let (address, server) = broken_dns(answer).await;
        let world = World::asking(Some(address)).await;
        let id = world.enqueue(&["someone@good.test"]).await;
        let report = world.runner.pass().await.unwrap();
        assert_eq!(
            (report.messages, report.deferred),
            (1, 1),
            "answer {number}: {report:?}"
        );
        let queued = world.store.queue.get(id).await.unwrap();
        let reply = queued.recipients[0].last_reply.clone().unwrap_or_default();
        assert!(reply.starts_with("4.4.3"), "answer {number}: {reply}");
        assert_eq!(queued.next_attempt_unix, START + 300, "answer {number}");
        server.abort();
    }
}
