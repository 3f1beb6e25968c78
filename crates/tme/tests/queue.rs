//! The `queue` role and `tme queue` with real peers: messages queued in the store leave for
//! "remote" domains whose MX (served by a private NSD) is Postfix's smtp-sink on another
//! loopback address. Operators hold, release and inspect them; `kill -9` mid-run loses none.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tme_core::EmailAddress;
use tme_core::config::StoreConfig;
use tme_store::{NewQueued, NewRecipient, Notify, Store};
use tme_testkit::dns::{Nsd, Zone};
use tme_testkit::{Node, SinkBehaviour, SmtpSink};

mod common;

const TME: &str = env!("CARGO_BIN_EXE_tme");
/// How long the polls below wait for the node: generous, nothing asserts speed.
const DEADLINE: Duration = Duration::from_secs(120);
/// The sink's address (its port is chosen per test).
const SINK_IP: &str = "127.0.0.6";

/// A node with the account sender@example.com, its resolver asking an NSD that says
/// remote.test's MX is at SINK_IP, and its queue delivering to `port`.
fn queue_node(port: u16) -> Node {
    let mut node = Node::init(Path::new(TME)).expect("init");
    node.add_account("sender@example.com", "password")
        .expect("account");
    let nsd = Nsd::start(&[Zone::root(&format!(
        "remote.test. MX 10 mx.remote.test.\nmx.remote.test. A {SINK_IP}\n"
    ))])
    .expect("nsd");
    node.use_dns(nsd);
    node.set_environment("TME_QUEUE__REMOTE_PORT", &port.to_string());
    node
}

/// Queues one message per token, from sender@example.com to `token@remote.test`, through
/// the library while the node is stopped (submission is not wired to the queue yet).
async fn enqueue(node: &Node, tokens: &[String]) {
    let store = Store::open(node.data_dir(), &StoreConfig::default())
        .await
        .expect("open store");
    let sender = store
        .account_open(&EmailAddress::parse("sender@example.com").expect("address"))
        .await
        .expect("sender")
        .id;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    for token in tokens {
        let raw = format!(
            "From: sender@example.com\r\nTo: {token}@remote.test\r\nSubject: {token}\r\n\r\nbody of {token}\r\n"
        );
        let message = NewQueued {
            blob_id: tme_store::BlobId::of(b""),
            size_bytes: 0,
            return_path: "sender@example.com".to_owned(),
            sender_account: Some(sender),
            envelope_id: None,
            dsn_return: None,
            requiretls: false,
            smtputf8: false,
            body_8bit: false,
            created_unix: now,
            expires_unix: now + 86_400,
            recipients: vec![NewRecipient {
                address: format!("{token}@remote.test"),
                domain: "remote.test".to_owned(),
                original_recipient: None,
                notify: Notify::default(),
            }],
        };
        store
            .enqueue(raw.as_bytes(), message)
            .await
            .expect("enqueue");
    }
    store.close().await;
}

/// How many times each token's message reached the sink.
fn received_counts(sink: &SmtpSink) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for transaction in sink.received().expect("sink dumps") {
        let text = String::from_utf8_lossy(&transaction);
        if let Some(subject) = text.lines().find_map(|line| line.strip_prefix("Subject: ")) {
            *counts.entry(subject.trim().to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn queue_json(node: &Node) -> serde_json::Value {
    let text = node
        .tme_ok(&["queue", "list", "--json"])
        .expect("queue list");
    serde_json::from_str(&text).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_role_delivers_and_operators_hold_release_and_inspect() {
    let port = tme_testkit::free_ports(1).expect("port")[0].port();
    let sink = SmtpSink::start(
        format!("{SINK_IP}:{port}").parse().expect("address"),
        SinkBehaviour::Accept,
    )
    .expect("smtp-sink");
    let mut node = queue_node(port);
    let tokens: Vec<String> = (1..=3).map(|number| format!("op{number}")).collect();
    enqueue(&node, &tokens).await;

    let listed = queue_json(&node);
    let ids: Vec<i64> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|message| message["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids.len(), 3, "{listed}");
    let shown = node
        .tme_ok(&["queue", "show", &ids[0].to_string()])
        .expect("show");
    assert!(shown.contains("op1@remote.test"), "{shown}");
    assert!(shown.contains("waiting"), "{shown}");
    node.tme_ok(&["queue", "hold", &ids[0].to_string()])
        .expect("hold");
    let missing = node.tme(&["queue", "show", "999999"]).expect("run");
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("not found"),
        "{missing:?}"
    );

    node.serve().expect("serve");
    wait_for("the two released messages", || {
        received_counts(&sink).len() == 2
    });
    let listed = queue_json(&node);
    assert_eq!(
        listed.as_array().expect("array").len(),
        1,
        "the held one stays: {listed}"
    );
    assert_eq!(listed[0]["held"], true);
    node.tme_ok(&["queue", "release", &ids[0].to_string()])
        .expect("release");
    node.tme_ok(&["queue", "retry", &ids[0].to_string()])
        .expect("retry");
    wait_for("the released message", || received_counts(&sink).len() == 3);
    wait_for("an empty queue", || {
        queue_json(&node).as_array().is_some_and(Vec::is_empty)
    });
    assert!(received_counts(&sink).values().all(|count| *count == 1));
    assert!(
        common::stored_messages(node.data_dir(), "sender@example.com", "INBOX")
            .await
            .is_empty(),
        "delivered mail brings the sender no report"
    );
    common::assert_metrics(
        &node,
        &[
            "tme_queue_recipient_attempts_total{outcome=\"delivered\"} 3",
            "tme_queue_destination_recipient_attempts_total{destination=\"remote.test\",outcome=\"delivered\"} 3",
            "tme_queue_depth 0",
        ],
    );
    node.stop().expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_queue_run_loses_nothing_and_duplicates_at_most_the_messages_in_flight() {
    let port = tme_testkit::free_ports(1).expect("port")[0].port();
    let sink = SmtpSink::start(
        format!("{SINK_IP}:{port}").parse().expect("address"),
        SinkBehaviour::SlowAccept,
    )
    .expect("smtp-sink");
    let mut node = queue_node(port);
    let tokens: Vec<String> = (1..=40).map(|number| format!("crash{number}")).collect();
    enqueue(&node, &tokens).await;
    node.serve().expect("serve");
    wait_for("some deliveries", || received_counts(&sink).len() >= 8);
    node.kill();
    let delivered_before = received_counts(&sink).len();
    assert!(delivered_before < tokens.len(), "the crash came mid-run");
    node.serve().expect("serve again");
    wait_for("every message", || {
        received_counts(&sink).len() == tokens.len()
    });
    wait_for("an empty queue", || {
        queue_json(&node).as_array().is_some_and(Vec::is_empty)
    });
    let counts = received_counts(&sink);
    let duplicates: usize = counts.values().map(|count| count - 1).sum();
    // The documented worst case: a message the remote took just before the node died, not
    // yet recorded, is sent again: at most one per connection in flight
    // (queue.connections_per_domain_max, 4).
    assert!(duplicates <= 4, "{duplicates} duplicates: {counts:?}");
    node.stop().expect("stop");
}
