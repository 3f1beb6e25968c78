//! The inbound spool with real peers: Python's smtplib sends, Python's sqlite3 holds the mail
//! shard's write lock (the store is briefly unavailable), and `kill -9` crashes the node. What
//! must hold: every message that got 250 ends up in its mailboxes exactly once; none twice.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tme_testkit::{Node, SqliteWriteLock};

mod common;

const TME: &str = env!("CARGO_BIN_EXE_tme");
/// How long the polls below wait for the node to catch up: generous, as slow machines need
/// it; nothing asserts speed.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(90);

/// A node whose store gives up on a locked database after half a second (instead of 30), so
/// that a held lock turns into a spooled message quickly; with `user@`, `other@` and the
/// alias `team@` (both of them) at example.com.
fn spool_node() -> Node {
    let mut node = Node::init(Path::new(TME)).expect("init");
    let config_path = node.data_dir().join("tme.toml");
    let config = std::fs::read_to_string(&config_path).expect("config");
    assert!(config.contains("busy_timeout_ms = 30000"), "{config}");
    std::fs::write(
        &config_path,
        config.replace("busy_timeout_ms = 30000", "busy_timeout_ms = 500"),
    )
    .expect("write config");
    node.add_account("user@example.com", "password")
        .expect("account");
    node.add_account("other@example.com", "password")
        .expect("account");
    node.tme_ok(&[
        "alias",
        "add",
        "team@example.com",
        "user@example.com",
        "other@example.com",
    ])
    .expect("alias");
    node.serve().expect("serve");
    node
}

fn mail_shard(node: &Node) -> std::path::PathBuf {
    node.data_dir().join("mail-shard-0.sqlite")
}

/// Sends each `(token, recipients)` as one message with smtplib, one connection, and returns
/// the tokens that got 250.
const SEND_SCRIPT: &str = r#"
import smtplib, sys
port = int(sys.argv[1])
with smtplib.SMTP("127.0.0.1", port, local_hostname="python.test", timeout=120) as smtp:
    for argument in sys.argv[2:]:
        token, recipients = argument.split(":")
        message = f"Subject: {token}\r\nFrom: a@sender.test\r\n\r\n{token}\r\n".encode()
        try:
            smtp.sendmail("a@sender.test", recipients.split(","), message)
            print("accepted", token, flush=True)
        except smtplib.SMTPException as error:
            print("refused", token, repr(error), flush=True)
"#;

fn send(node: &Node, messages: &[(&str, &str)]) -> Vec<String> {
    let output = Command::new("python3")
        .arg("-c")
        .arg(SEND_SCRIPT)
        .arg(node.address("smtp").port().to_string())
        .args(
            messages
                .iter()
                .map(|(token, recipients)| format!("{token}:{recipients}")),
        )
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("accepted "))
        .map(str::to_owned)
        .collect()
}

/// How many times each token (the Subject) is in the account's INBOX.
async fn token_counts(node: &Node, address: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for message in common::stored_messages(node.data_dir(), address, "INBOX").await {
        let text = String::from_utf8_lossy(&message);
        let token = text
            .lines()
            .find_map(|line| line.strip_prefix("Subject: "))
            .unwrap_or("(none)")
            .to_owned();
        *counts.entry(token).or_insert(0) += 1;
    }
    counts
}

/// The spool as `tme spool list --json` shows it: (waiting, quarantined).
fn spool_counts(node: &Node) -> (usize, usize) {
    let listing = node
        .tme_ok(&["spool", "list", "--json"])
        .expect("spool list");
    let listing: serde_json::Value = serde_json::from_str(&listing).expect("json");
    let entries = listing["entries"].as_array().expect("entries");
    let count = |state: &str| {
        entries
            .iter()
            .filter(|entry| entry["state"] == state)
            .count()
    };
    (count("waiting"), count("quarantined"))
}

/// Polls until the spool is empty, then returns each account's token counts.
async fn after_the_spool_drains(
    node: &Node,
    addresses: &[&str],
) -> HashMap<String, HashMap<String, usize>> {
    let deadline = Instant::now() + CATCH_UP_DEADLINE;
    while spool_counts(node).0 > 0 {
        assert!(
            Instant::now() < deadline,
            "the spool was not delivered; log:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut counts = HashMap::new();
    for address in addresses {
        counts.insert(address.to_string(), token_counts(node, address).await);
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_store_spools_the_message_and_delivers_it_once_released() {
    let node = spool_node();
    let lock = SqliteWriteLock::hold(&mail_shard(&node)).expect("lock the mail shard");
    let accepted = send(
        &node,
        &[
            ("locked-1", "user@example.com"),
            ("locked-2", "team@example.com"),
        ],
    );
    assert_eq!(accepted, ["locked-1", "locked-2"], "{}", node.log());
    // The real transient path: the store said the database is locked, and the messages
    // went to the spool, where they wait while the lock is held.
    let log = node.log();
    assert!(
        log.contains("store unavailable: message spooled") && log.contains("database is locked"),
        "{log}"
    );
    assert_eq!(spool_counts(&node), (2, 0));

    lock.release().expect("release the lock");
    let counts = after_the_spool_drains(&node, &["user@example.com", "other@example.com"]).await;
    let expected_user = HashMap::from([("locked-1".to_owned(), 1), ("locked-2".to_owned(), 1)]);
    assert_eq!(counts["user@example.com"], expected_user);
    assert_eq!(
        counts["other@example.com"],
        HashMap::from([("locked-2".to_owned(), 1)])
    );
    assert!(node.log().contains("spooled message delivered"));

    // Delivered from the spool, not by a retrying client: the metrics say so.
    common::assert_metrics(
        &node,
        &[
            "tme_smtp_messages_total{outcome=\"spooled\"} 2",
            "tme_smtp_spool_entries_total{outcome=\"delivered\"} 2",
            "tme_smtp_spool_entries_waiting 0",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_messages_survive_kill_9_and_are_delivered_once_after_restart() {
    let mut node = spool_node();
    let lock = SqliteWriteLock::hold(&mail_shard(&node)).expect("lock the mail shard");
    let messages = [
        ("crash-1", "user@example.com"),
        ("crash-2", "team@example.com"),
        ("crash-3", "other@example.com"),
    ];
    let accepted = send(&node, &messages);
    assert_eq!(accepted.len(), 3, "{}", node.log());
    assert_eq!(spool_counts(&node), (3, 0));
    node.kill();
    lock.release().expect("release the lock");
    node.serve().expect("serve again");
    let counts = after_the_spool_drains(&node, &["user@example.com", "other@example.com"]).await;
    assert_eq!(
        counts["user@example.com"],
        HashMap::from([("crash-1".to_owned(), 1), ("crash-2".to_owned(), 1)])
    );
    assert_eq!(
        counts["other@example.com"],
        HashMap::from([("crash-2".to_owned(), 1), ("crash-3".to_owned(), 1)])
    );
}

/// One of several concurrent smtplib clients of the flood: sends `count` messages with
/// unique tokens (every other one to the alias `team@`, so to two accounts), says which got
/// 250, and stops when the server is gone.
const FLOOD_SCRIPT: &str = r#"
import smtplib, sys
port, client, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
smtp = None
for number in range(count):
    token = f"flood-{client}-{number}"
    recipient = "user@example.com" if number % 2 == 0 else "team@example.com"
    message = f"Subject: {token}\r\nFrom: a@sender.test\r\n\r\n{token}\r\n".encode()
    try:
        if smtp is None:
            smtp = smtplib.SMTP("127.0.0.1", port, local_hostname="flood.test", timeout=120)
        smtp.sendmail("a@sender.test", [recipient], message)
        print("accepted", token, recipient, flush=True)
    except (OSError, smtplib.SMTPException) as error:
        print("failed", token, repr(error), flush=True)
        smtp = None
        try:
            smtplib.SMTP("127.0.0.1", port, timeout=10).quit()
        except (OSError, smtplib.SMTPException):
            break
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_a_flood_loses_no_acknowledged_message_and_duplicates_none() {
    let mut node = spool_node();
    let clients: Vec<Child> = (0..4)
        .map(|client| {
            Command::new("python3")
                .arg("-c")
                .arg(FLOOD_SCRIPT)
                .arg(node.address("smtp").port().to_string())
                .arg(client.to_string())
                .arg("400")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("python3")
        })
        .collect();
    // Kill once the flood is well under way (counted in the node's log), mid-transaction for
    // some clients.
    let deadline = Instant::now() + CATCH_UP_DEADLINE;
    while node.log().matches("message accepted").count() < 60 {
        assert!(Instant::now() < deadline, "the flood did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    node.kill();
    let mut accepted: Vec<(String, String)> = Vec::new();
    let mut failed = 0;
    for client in clients {
        let output = client.wait_with_output().expect("client ends");
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("accepted"), Some(token), Some(recipient)) => {
                    accepted.push((token.to_owned(), recipient.to_owned()));
                }
                (Some("failed"), _, _) => failed += 1,
                _ => {}
            }
        }
    }
    eprintln!(
        "flood: {} messages got 250 before the kill, {failed} were cut off",
        accepted.len()
    );
    // At most one message per client can be logged as accepted but cut off before its 250.
    assert!(accepted.len() >= 56, "{} accepted", accepted.len());
    assert!(
        accepted.len() < 1600,
        "the kill came before the flood ended"
    );
    assert!(failed >= 1, "some client was cut off by the kill");

    node.serve().expect("serve after kill -9");
    let counts = after_the_spool_drains(&node, &["user@example.com", "other@example.com"]).await;
    for (address, tokens) in &counts {
        let twice: Vec<_> = tokens.iter().filter(|(_, count)| **count > 1).collect();
        assert!(twice.is_empty(), "{address} holds copies twice: {twice:?}");
    }
    for (token, recipient) in &accepted {
        let addresses: &[&str] = if recipient == "team@example.com" {
            &["user@example.com", "other@example.com"]
        } else {
            &["user@example.com"]
        };
        for address in addresses {
            assert_eq!(
                counts[*address].get(token),
                Some(&1),
                "{token} got 250 but is not in {address} once"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_store_failure_spools_and_a_spool_failure_too_answers_451() {
    let node = spool_node();
    // Break the blob store: each of its 256 folders becomes a file, so writing a blob fails
    // with an I/O error (root ignores permissions, but not a file where a folder was).
    let folders: Vec<std::path::PathBuf> = (0..=255u8)
        .map(|prefix| node.data_dir().join("blobs").join(format!("{prefix:02x}")))
        .collect();
    let break_folder = |folder: &Path| {
        assert!(folder.is_dir(), "{} is a folder", folder.display());
        std::fs::remove_dir(folder).expect("remove an empty folder");
        std::fs::write(folder, b"not a folder").expect("block the folder");
    };
    let repair_folder = |folder: &Path| {
        std::fs::remove_file(folder).expect("unblock");
        std::fs::create_dir(folder).expect("restore the folder");
    };
    folders.iter().for_each(|folder| break_folder(folder));
    // The spool broken too: nothing can be kept, so 451 and nothing acknowledged.
    let inbound = node.data_dir().join("spool").join("inbound");
    break_folder(&inbound);
    let output = Command::new("python3")
        .arg("-c")
        .arg(SEND_SCRIPT)
        .arg(node.address("smtp").port().to_string())
        .arg("refused-1:team@example.com")
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("refused refused-1") && stdout.contains("451"),
        "{stdout}"
    );
    assert!(
        node.log()
            .contains("delivery failed and the message could not be spooled")
    );
    repair_folder(&inbound);
    assert_eq!(spool_counts(&node), (0, 0));

    // The spool works again, the blob store not yet: 250 from the spool, delivered once the
    // blob store is repaired.
    assert_eq!(
        send(&node, &[("spooled-1", "team@example.com")]),
        ["spooled-1"]
    );
    folders.iter().for_each(|folder| repair_folder(folder));
    let counts = after_the_spool_drains(&node, &["user@example.com", "other@example.com"]).await;
    for address in ["user@example.com", "other@example.com"] {
        assert_eq!(
            counts[address],
            HashMap::from([("spooled-1".to_owned(), 1)]),
            "{address}"
        );
    }
}
