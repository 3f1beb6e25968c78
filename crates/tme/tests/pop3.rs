//! POP3 against real clients: Python's poplib over STLS and pop3s for every command and bad
//! input, with imaplib watching the same INBOX (`tests/pop3/*.py`); login locks; fetchmail
//! (Debian's package) fetching over TLS with and without --keep; and corpus messages back
//! over RETR byte for byte, delivered by SMTP and imported from disk.

use std::ffi::OsStr;
use std::path::PathBuf;

use tme_testkit::Node;

mod common;

use common::{metrics_lines, node_with_client_account, run_python_client};

/// Protocol errors one session may make: the bad-input script makes about twenty in one
/// session before it tests the limit itself.
const SESSION_ERRORS_MAX: &str = "30";

fn script(name: &str) -> PathBuf {
    common::test_script("pop3", name)
}

/// A node with the account, many bad logins allowed without delay (the throttle is tested by
/// its own test), and the session error limit the scripts expect.
fn node() -> (Node, String) {
    node_with_client_account(&[
        ("TME_LOGIN__FAILURES_BEFORE_DELAY", "100"),
        ("TME_POP3__SESSION_ERRORS_MAX", SESSION_ERRORS_MAX),
    ])
}

fn run(node: &Node, name: &str, app_password: &str, arguments: &[&str]) {
    run_python_client(
        node,
        &script(name),
        app_password,
        arguments,
        &[("SESSION_ERRORS_MAX", OsStr::new(SESSION_ERRORS_MAX))],
    );
}

#[test]
fn poplib_every_command_and_bad_input_with_imap_watching() {
    let (mut node, app_password) = node();
    run(&node, "commands.py", &app_password, &[]);
    let metrics = metrics_lines(&node, "tme_pop3_");
    for expected in [
        "tme_pop3_sessions_ended_total{outcome=\"errors\"} 1",
        // The second message DELE marked was expunged by IMAP first.
        "tme_pop3_messages_total{outcome=\"deleted\"} 1",
        "tme_pop3_connections_open 0",
    ] {
        assert!(
            metrics.iter().any(|line| line == expected),
            "{expected} in {metrics:#?}"
        );
    }
    for prefix in [
        "tme_pop3_connections_total{outcome=\"accepted\"} ",
        "tme_pop3_sessions_ended_total{outcome=\"quit\"} ",
        "tme_pop3_sessions_ended_total{outcome=\"client_closed\"} ",
        "tme_pop3_commands_total{outcome=\"ok\"} ",
        "tme_pop3_commands_total{outcome=\"err\"} ",
        "tme_pop3_messages_total{outcome=\"retrieved\"} ",
        "tme_pop3_messages_total{outcome=\"top\"} ",
    ] {
        assert!(
            metrics.iter().any(|line| line.starts_with(prefix)),
            "{prefix} in {metrics:#?}"
        );
    }
    assert!(!node.log().contains("secret pw"), "a password was logged");
    node.stop().expect("stop");
}

#[test]
fn failed_pop3_logins_lock_the_account_and_the_cli_lifts_the_lock() {
    let (mut node, app_password) =
        node_with_client_account(&[("TME_LOGIN__FAILURES_PER_ACCOUNT_MAX", "3")]);
    run(&node, "login_locks.py", &app_password, &["fail", "3"]);
    run(&node, "login_locks.py", &app_password, &["expect-locked"]);
    let locks = node.tme_ok(&["login", "locks"]).expect("tme login locks");
    assert!(locks.contains("account:alice@example.org"), "{locks}");
    common::assert_metrics(
        &node,
        &[
            "tme_login_attempts_total{outcome=\"bad_credentials\"} 3",
            "tme_login_attempts_total{outcome=\"locked\"} 1",
            "tme_login_locks_active 1",
        ],
    );
    node.tme_ok(&["login", "unlock", "account:alice@example.org"])
        .expect("tme login unlock");
    run(&node, "login_locks.py", &app_password, &["expect-ok"]);
    node.stop().expect("stop");
}

#[test]
fn fetchmail_fetches_over_stls_and_pop3s_with_and_without_keep() {
    let (mut node, app_password) = node();
    run(&node, "fetchmail.py", &app_password, &[]);
    common::assert_metrics(&node, &["tme_pop3_messages_total{outcome=\"deleted\"} 3"]);
    node.stop().expect("stop");
}

/// Every how many corpus messages one is sent over SMTP (the rest of the corpus is imported).
const SMTP_CORPUS_STRIDE: usize = 20;

#[test]
fn corpus_messages_come_back_over_retr_byte_for_byte() {
    let corpus = tme_testkit::corpus_messages();
    if corpus.is_empty() {
        eprintln!("the shared corpus is absent: nothing to send back");
        return;
    }
    let (mut node, app_password) = node();
    let list = |paths: Vec<&PathBuf>| {
        let file = tempfile::NamedTempFile::new().expect("list file");
        let text: Vec<String> = paths
            .iter()
            .map(|path| path.display().to_string())
            .collect();
        std::fs::write(file.path(), text.join("\n")).expect("write list");
        file
    };
    let smtp_files = list(corpus.iter().step_by(SMTP_CORPUS_STRIDE).collect());
    run_python_client(
        &node,
        &script("corpus.py"),
        &app_password,
        &["smtp"],
        &[("SMTP_FILES", smtp_files.path().as_os_str())],
    );
    let corpus_dir = tme_testkit::corpus_dir().expect("corpus");
    let imported = node
        .tme_ok(&[
            "import",
            common::CLIENT_ADDRESS,
            corpus_dir.to_str().expect("corpus path"),
        ])
        .expect("tme import");
    assert!(
        imported.contains(&format!("imported {} message(s)", corpus.len())),
        "{imported}"
    );
    let corpus_files = list(corpus.iter().collect());
    run_python_client(
        &node,
        &script("corpus.py"),
        &app_password,
        &["import"],
        &[("CORPUS_FILES", corpus_files.path().as_os_str())],
    );
    node.stop().expect("stop");
}
