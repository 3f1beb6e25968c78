//! Helpers shared by the integration tests that read what a node stored.

use std::path::Path;

use tme_core::EmailAddress;
use tme_core::config::StoreConfig;
use tme_store::Store;

/// Reads every message of `mailbox` back through the store, in UID order.
#[allow(dead_code)] // not every test crate that shares this module reads the store
pub async fn stored_messages(data_dir: &Path, address: &str, mailbox: &str) -> Vec<Vec<u8>> {
    let store = Store::open(data_dir, &StoreConfig::default())
        .await
        .expect("open store");
    let account = store
        .account_open(&EmailAddress::parse(address).expect("address"))
        .await
        .expect("account");
    let mailbox = store
        .mail
        .mailbox_find(account.id, mailbox)
        .await
        .expect("find")
        .expect("mailbox");
    let mut messages = Vec::new();
    for record in store
        .mail
        .message_list(account.id, mailbox.id)
        .await
        .expect("list")
    {
        messages.push(store.message_raw(&record).await.expect("read back"));
        // The summary parsed at import reads back too.
        let summary = store
            .mail
            .message_summary(account.id, record.id)
            .await
            .expect("summary");
        assert_eq!(summary.size_bytes, record.size_bytes);
    }
    store.close().await;
    messages
}

/// Splits a stored message after its first `count` header fields (a field runs on over
/// continuation lines, which start with a space or a tab): what the node prepended, as text,
/// and the rest as stored.
#[allow(dead_code)] // not every test crate that shares this module reads trace headers
pub fn split_fields(stored: &[u8], count: usize) -> (String, &[u8]) {
    let mut offset = 0;
    for _ in 0..count {
        loop {
            let end = stored[offset..]
                .windows(2)
                .position(|pair| pair == b"\r\n")
                .expect("a header line")
                + offset
                + 2;
            offset = end;
            if !matches!(stored.get(offset), Some(b' ' | b'\t')) {
                break;
            }
        }
    }
    (
        String::from_utf8_lossy(&stored[..offset]).into_owned(),
        &stored[offset..],
    )
}

/// Asserts that the node's `/metrics` page has each of `lines`, exactly.
#[allow(dead_code)] // not every test crate that shares this module reads metrics
pub fn assert_metrics(node: &tme_testkit::Node, lines: &[&str]) {
    let (status, metrics) = node.http_get("/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{metrics}");
    for line in lines {
        assert!(
            metrics.lines().any(|got| got == *line),
            "{line} in:\n{metrics}"
        );
    }
}

/// The account the client tests log in as, and its password.
#[allow(dead_code)] // not every test crate that shares this module runs clients
pub const CLIENT_ADDRESS: &str = "alice@example.org";
#[allow(dead_code)]
pub const CLIENT_PASSWORD: &str = "secret pw";

/// Starts a node with `environment` set and one account (`CLIENT_ADDRESS`, with
/// `CLIENT_PASSWORD` and an app password); returns the node and the app password.
#[allow(dead_code)] // not every test crate that shares this module runs clients
pub fn node_with_client_account(environment: &[(&str, &str)]) -> (tme_testkit::Node, String) {
    let mut node = tme_testkit::Node::init(Path::new(env!("CARGO_BIN_EXE_tme"))).expect("init");
    for (name, value) in environment {
        node.set_environment(name, value);
    }
    node.serve().expect("serve");
    node.add_account(CLIENT_ADDRESS, CLIENT_PASSWORD)
        .expect("account");
    let output = node
        .tme_ok(&["account", "app-password", "add", CLIENT_ADDRESS, "tests"])
        .expect("app password");
    let app_password = output
        .lines()
        .next()
        .and_then(|line| line.rsplit(' ').next())
        .expect("app password shown")
        .to_owned();
    (node, app_password)
}

/// The path of the test script `name` in `crates/tme/tests/{folder}/`.
#[allow(dead_code)] // not every test crate that shares this module runs scripts
pub fn test_script(folder: &str, name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(folder)
        .join(name)
}

/// Runs a Python client script against `node` and fails the test (with the node's log) when
/// it fails. The script gets the node's ports (`SMTP_PORT`, `IMAP_PORT`, `IMAPS_PORT`,
/// `POP3_PORT`, `POP3S_PORT`), the account (`USER_ADDRESS`, `PASSWORD`, `APP_PASSWORD`),
/// the certificate (`CERTIFICATE`), a fresh `WORK_DIR`, and `environment`.
#[allow(dead_code)] // not every test crate that shares this module runs clients
pub fn run_python_client(
    node: &tme_testkit::Node,
    script: &Path,
    app_password: &str,
    arguments: &[&str],
    environment: &[(&str, &std::ffi::OsStr)],
) {
    let work = tempfile::tempdir().expect("work directory");
    let mut command = std::process::Command::new("python3");
    command
        .arg(script)
        .args(arguments)
        .env("WORK_DIR", work.path())
        .env("CERTIFICATE", node.data_dir().join("tls/certificate.pem"))
        .env("USER_ADDRESS", CLIENT_ADDRESS)
        .env("PASSWORD", CLIENT_PASSWORD)
        .env("APP_PASSWORD", app_password);
    for role in ["smtp", "imap", "imaps", "pop3", "pop3s"] {
        command.env(
            format!("{}_PORT", role.to_uppercase()),
            node.address(role).port().to_string(),
        );
    }
    let output = command
        .envs(environment.iter().copied())
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} failed:\n{stdout}\n{stderr}\nnode log:\n{}",
        script.display(),
        node.log()
    );
    println!("{stdout}");
}

/// The node's `/metrics` lines that start with `prefix`.
#[allow(dead_code)] // not every test crate that shares this module reads metrics
pub fn metrics_lines(node: &tme_testkit::Node, prefix: &str) -> Vec<String> {
    let (status, metrics) = node.http_get("/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{metrics}");
    metrics
        .lines()
        .filter(|line| line.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Waits until `done`, failing with the node's log after two minutes (generous: nothing
/// asserts speed).
#[allow(dead_code)] // not every test crate that shares this module waits on the queue
pub fn wait_for(what: &str, node: &tme_testkit::Node, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; node log:\n{}",
            node.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The last reply recorded for `address` in the node's queue, if it is still queued.
#[allow(dead_code)] // not every test crate that shares this module reads the queue
pub fn queued_reply(node: &tme_testkit::Node, address: &str) -> Option<String> {
    let text = node
        .tme_ok(&["queue", "list", "--json"])
        .expect("queue list");
    let listed: serde_json::Value = serde_json::from_str(&text).expect("json");
    listed.as_array()?.iter().find_map(|message| {
        message["recipients"]
            .as_array()?
            .iter()
            .find(|recipient| recipient["address"] == address)
            .map(|recipient| recipient["last_reply"].as_str().unwrap_or("").to_owned())
    })
}

/// Submits a message from `user` to `address` with swaks on the node's submission port
/// (STARTTLS, AUTH PLAIN); panics with swaks' transcript and the node's log when refused.
#[allow(dead_code)] // not every test crate that shares this module submits mail
pub fn submit(node: &tme_testkit::Node, user: &str, password: &str, address: &str, subject: &str) {
    let port = node.address("submission").port().to_string();
    let output = std::process::Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &port, "--tls"])
        .args([
            "--auth",
            "PLAIN",
            "--auth-user",
            user,
            "--auth-password",
            password,
        ])
        .args(["--from", user, "--to", address])
        .args(["--header", &format!("Subject: {subject}")])
        .args(["--timeout", "30"])
        .output()
        .expect("swaks");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        node.log()
    );
}
