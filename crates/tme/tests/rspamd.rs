//! The `smtp` role with a real rspamd (Debian's package, `tme_testkit::Rspamd`) behind
//! `filter.rspamd_url`: mail rspamd finds clean reaches the Inbox, mail it finds spam reaches
//! Junk, and while rspamd is down mail still reaches the Inbox, with a warning in the log.

use std::path::Path;
use std::process::Command;

use tme_testkit::{GTUBE_ADD_HEADER, GTUBE_REJECT, Node, Rspamd};

mod common;

const TME: &str = env!("CARGO_BIN_EXE_tme");

/// A node whose filter asks `rspamd`, filing what rspamd rejects in Junk.
fn node_with_rspamd(rspamd: &Rspamd) -> Node {
    let mut node = Node::init(Path::new(TME)).expect("init");
    let config_path = node.data_dir().join("tme.toml");
    let config = std::fs::read_to_string(&config_path).expect("config");
    for key in ["rspamd_url = \"\"", "rspamd_reject_action = \"refuse\""] {
        assert!(config.contains(key), "tme init writes {key}");
    }
    let config = config
        .replace(
            "rspamd_url = \"\"",
            &format!("rspamd_url = \"{}\"", rspamd.url()),
        )
        .replace(
            "rspamd_reject_action = \"refuse\"",
            "rspamd_reject_action = \"junk\"",
        );
    std::fs::write(&config_path, config).expect("write config");
    node.add_account("user@example.com", "password")
        .expect("account");
    node.serve().expect("serve");
    node
}

/// A message with this subject and body, as a sender's MTA would hand it over.
fn message(subject: &str, body: &str) -> String {
    format!(
        "From: Alice <alice@sender.test>\r\nTo: <user@example.com>\r\nSubject: {subject}\r\n\
         Date: Tue, 21 Jan 2025 21:04:42 +0000\r\nMessage-ID: <{id}@sender.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{body}\r\n",
        id = subject.replace(' ', "-"),
    )
}

/// Sends `message` with swaks and returns its transcript.
fn send(node: &Node, message: &str) -> String {
    let file = tempfile::NamedTempFile::new().expect("temporary file");
    std::fs::write(file.path(), message).expect("write message");
    let port = node.address("smtp").port().to_string();
    let output = Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &port])
        .args(["--helo", "client.sender.test", "--timeout", "60"])
        .args(["--from", "alice@sender.test", "--to", "user@example.com"])
        .arg("--data")
        .arg(file.path())
        .output()
        .expect("swaks is installed (scripts/test.sh installs it: apt-get install swaks)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn subjects(messages: &[Vec<u8>]) -> Vec<String> {
    messages
        .iter()
        .map(|message| {
            String::from_utf8_lossy(message)
                .lines()
                .find_map(|line| line.strip_prefix("Subject: "))
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rspamd_files_spam_in_junk_and_its_absence_stops_no_mail() {
    let mut rspamd = Rspamd::start().expect("rspamd starts");
    let mut node = node_with_rspamd(&rspamd);

    let clean = send(
        &node,
        &message("Lunch on Thursday", "Shall we have lunch on Thursday?"),
    );
    assert!(clean.contains("<-  250 2.0.0 OK queued as"), "{clean}");
    let rejected = send(&node, &message("Rejected by rspamd", GTUBE_REJECT));
    assert!(
        rejected.contains("<-  250 2.0.0 OK queued as"),
        "{rejected}"
    );
    let flagged = send(&node, &message("Flagged by rspamd", GTUBE_ADD_HEADER));
    assert!(flagged.contains("<-  250 2.0.0 OK queued as"), "{flagged}");

    let data_dir = node.data_dir().to_path_buf();
    let inbox = common::stored_messages(&data_dir, "user@example.com", "INBOX").await;
    let junk = common::stored_messages(&data_dir, "user@example.com", "Junk").await;
    assert_eq!(
        subjects(&inbox),
        ["Lunch on Thursday"],
        "tme log:\n{}\nrspamd log:\n{}",
        node.log(),
        rspamd.log()
    );
    assert_eq!(subjects(&junk), ["Rejected by rspamd", "Flagged by rspamd"]);
    let log = node.log();
    assert!(
        log.contains("rspamd checked the message") && log.contains("GTUBE(0)"),
        "{log}"
    );

    // rspamd down: mail still arrives, in the Inbox, and the log says why it was not checked.
    rspamd.stop().expect("rspamd stops");
    let unchecked = send(&node, &message("While rspamd is down", GTUBE_REJECT));
    assert!(
        unchecked.contains("<-  250 2.0.0 OK queued as"),
        "{unchecked}"
    );
    let inbox = common::stored_messages(&data_dir, "user@example.com", "INBOX").await;
    assert_eq!(
        subjects(&inbox),
        ["Lunch on Thursday", "While rspamd is down"]
    );
    let log = node.log();
    assert!(
        log.contains("WARN") && log.contains("rspamd unavailable"),
        "{log}"
    );
    node.stop().expect("node stops");
}
