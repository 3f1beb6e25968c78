//! IMAP against real clients: Python's imaplib for every command and bad input
//! (`tests/imap/*.py`), two imaplib clients on one mailbox, IDLE seeing a delivery made by
//! swaks over SMTP, and mbsync (isync) syncing a mailbox both ways (over COMPRESS=DEFLATE);
//! QUOTA, SORT, THREAD (both also compared with a private Dovecot's answers), SEARCHRES,
//! COMPRESS=DEFLATE with a zlib client, QRESYNC, and MULTIAPPEND on a raw TLS socket.
//! IMAPClient (PyPI) through every feature it exposes, offlineimap (offlineimap3) syncing a
//! mailbox with corpus messages both ways and mutt reading, deleting and syncing, each checking
//! the node's certificate against a test CA; and a FETCH of large messages streamed byte for
//! byte with the node's peak memory reported.

use std::path::{Path, PathBuf};
use std::process::Command;

use tme_testkit::Node;
use tme_testkit::pki::TestCa;

mod common;

/// The literal limit the tests set, small enough to send more than it quickly.
const LITERAL_LIMIT: &str = "100000";

/// How long one script may run, its peers included.
const SCRIPT_SECONDS_MAX: &str = "900";

fn script(name: &str) -> PathBuf {
    common::test_script("imap", name)
}

/// A node with one account (`alice@example.org`, password and app password).
fn node_with_account() -> (Node, String) {
    node_with_account_and(&[])
}

fn node_with_account_and(environment: &[(&str, &str)]) -> (Node, String) {
    node_with_account_prepared(environment, |_| {})
}

/// A node whose certificate, for `localhost`, a test CA issued: peers check it against the
/// CA (its file is `CA_CERTIFICATE` for the scripts). The quota is set, for QUOTA.
fn node_with_ca_certificate() -> (Node, String, TestCa) {
    let ca = TestCa::new().expect("test CA");
    let (node, app_password) = node_with_account_prepared(&[], |node| {
        ca.install(node.data_dir(), &["localhost"])
            .expect("install the certificate");
    });
    node.tme_ok(&["account", "set", "alice@example.org", "--quota", "100M"])
        .expect("tme account set --quota");
    (node, app_password, ca)
}

fn node_with_account_prepared(
    environment: &[(&str, &str)],
    prepare: impl FnOnce(&Node),
) -> (Node, String) {
    let mut node = Node::init(Path::new(env!("CARGO_BIN_EXE_tme"))).expect("init");
    prepare(&node);
    node.set_environment("TME_IMAP__LITERAL_OCTETS_MAX", LITERAL_LIMIT);
    // Many bad logins and commands in one run: keep the throttle and error limit out of the way.
    node.set_environment("TME_LOGIN__FAILURES_BEFORE_DELAY", "100");
    node.set_environment("TME_IMAP__SESSION_ERRORS_MAX", "100");
    for (name, value) in environment {
        node.set_environment(name, value);
    }
    node.serve().expect("serve");
    node.add_account("alice@example.org", "secret pw")
        .expect("account");
    let output = node
        .tme_ok(&[
            "account",
            "app-password",
            "add",
            "alice@example.org",
            "tests",
        ])
        .expect("app password");
    let app_password = output
        .lines()
        .next()
        .and_then(|line| line.rsplit(' ').next())
        .expect("app password shown")
        .to_owned();
    (node, app_password)
}

fn run_python(node: &Node, name: &str, app_password: &str) {
    run_python_with(node, name, app_password, &[]);
}

fn run_python_with(node: &Node, name: &str, app_password: &str, arguments: &[&str]) {
    run_python_in(node, name, app_password, arguments, &[]);
}

fn run_python_in(
    node: &Node,
    name: &str,
    app_password: &str,
    arguments: &[&str],
    environment: &[(&str, &Path)],
) {
    let work = tempfile::tempdir().expect("work directory");
    // Every script and the peers it runs end within the limit (coreutils' timeout kills
    // them), so a peer that waits for ever fails the test instead of hanging it.
    let output = Command::new("timeout")
        .args(["--kill-after=10", SCRIPT_SECONDS_MAX, "python3"])
        .arg(script(name))
        .args(arguments)
        .envs(environment.iter().map(|(name, value)| (*name, *value)))
        .env("WORK_DIR", work.path())
        .env("CERTIFICATE", node.data_dir().join("tls/certificate.pem"))
        .env("IMAP_PORT", node.address("imap").port().to_string())
        .env("IMAPS_PORT", node.address("imaps").port().to_string())
        .env("SMTP_PORT", node.address("smtp").port().to_string())
        .env("USER_ADDRESS", "alice@example.org")
        .env("PASSWORD", "secret pw")
        .env("APP_PASSWORD", app_password)
        .env("LITERAL_LIMIT", LITERAL_LIMIT)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{name} failed:\n{stdout}\n{stderr}\nnode log:\n{}",
        node.log()
    );
    println!("{stdout}");
}

#[test]
fn imaplib_every_command_and_bad_input() {
    let (mut node, app_password) = node_with_account();
    run_python(&node, "commands.py", &app_password);
    node.stop().expect("stop");
}

#[test]
fn two_clients_on_one_mailbox_see_each_other_as_the_rfc_says() {
    let (mut node, app_password) = node_with_account();
    run_python(&node, "concurrency.py", &app_password);
    node.stop().expect("stop");
}

#[test]
fn idle_sees_a_delivery_made_by_swaks() {
    // An hour between polls: what IDLE reports must come from the change notification.
    let (mut node, app_password) =
        node_with_account_and(&[("TME_IMAP__IDLE_POLL_SECONDS", "3600")]);
    run_python(&node, "idle.py", &app_password);
    node.stop().expect("stop");
}

#[test]
fn mbsync_syncs_a_mailbox_both_ways() {
    let (mut node, app_password) = node_with_account();
    run_python(&node, "mbsync.py", &app_password);
    node.stop().expect("stop");
}

#[test]
fn quota_is_reported_and_enforced() {
    let (mut node, app_password) = node_with_account();
    // Set while the node runs: the session reads the quota from the store, not the login.
    node.tme_ok(&["account", "set", "alice@example.org", "--quota", "200K"])
        .expect("tme account set --quota");
    run_python(&node, "quota.py", &app_password);
    node.stop().expect("stop");
}

#[test]
fn sort_and_thread_give_the_rfc_answers_and_dovecot_s() {
    let (mut node, app_password) = node_with_account();
    run_python(&node, "sort_thread.py", &app_password);
    node.stop().expect("stop");
}

#[test]
fn searchres_saves_a_result_for_later_commands() {
    let (mut node, app_password) = node_with_account();
    run_python(&node, "searchres.py", &app_password);
    node.stop().expect("stop");
}

#[test]
fn compress_deflate_with_a_zlib_client() {
    let (mut node, app_password) = node_with_account();
    run_python(&node, "compress.py", &app_password);
    node.stop().expect("stop");
}

#[test]
fn qresync_reports_what_a_cache_missed() {
    let (mut node, app_password) = node_with_account();
    run_python(&node, "qresync.py", &app_password);
    node.stop().expect("stop");
}

#[test]
fn failed_logins_lock_the_account_and_the_cli_lifts_the_lock() {
    // (`node_with_account_and` turns the delays off: the lock is what is tested here.)
    let (mut node, app_password) =
        node_with_account_and(&[("TME_LOGIN__FAILURES_PER_ACCOUNT_MAX", "3")]);
    run_python_with(&node, "login_locks.py", &app_password, &["fail", "3"]);
    run_python_with(&node, "login_locks.py", &app_password, &["expect-locked"]);
    let locks = node.tme_ok(&["login", "locks"]).expect("tme login locks");
    assert!(
        locks.contains("account:alice@example.org") && locks.contains(" 3 "),
        "{locks}"
    );
    let json = node
        .tme_ok(&["login", "locks", "--json"])
        .expect("tme login locks --json");
    assert!(
        json.contains("\"key\": \"account:alice@example.org\""),
        "{json}"
    );
    common::assert_metrics(
        &node,
        &[
            "tme_login_locks_total{kind=\"account\"} 1",
            "tme_login_attempts_total{outcome=\"bad_credentials\"} 3",
            "tme_login_attempts_total{outcome=\"locked\"} 1",
            "tme_login_locks_active 1",
        ],
    );
    let unlocked = node
        .tme_ok(&["login", "unlock", "account:alice@example.org"])
        .expect("tme login unlock");
    assert_eq!(unlocked.trim(), "unlocked account:alice@example.org");
    run_python_with(&node, "login_locks.py", &app_password, &["expect-ok"]);
    assert_eq!(
        node.tme_ok(&["login", "locks"]).expect("locks").trim(),
        "no login locks"
    );
    assert!(!node.log().contains("secret pw"), "a password was logged");
    node.stop().expect("stop");
}

/// How many corpus messages the differential test takes: every Nth, so one run stays short
/// on a debug build while covering every folder of the corpus.
const CORPUS_STRIDE: usize = 8;

#[test]
fn fetch_sort_and_thread_answers_match_dovecot_on_the_corpus() {
    let corpus = tme_testkit::corpus_messages();
    if corpus.is_empty() {
        eprintln!("the shared corpus is absent: the differential test has nothing to compare");
        return;
    }
    let (mut node, app_password) =
        node_with_account_and(&[("TME_IMAP__LITERAL_OCTETS_MAX", "100000000")]);
    let list = tempfile::NamedTempFile::new().expect("list file");
    let chosen: Vec<String> = corpus
        .iter()
        .step_by(CORPUS_STRIDE)
        .map(|path| path.display().to_string())
        .collect();
    std::fs::write(list.path(), chosen.join("\n")).expect("write list");
    run_python_in(
        &node,
        "differential.py",
        &app_password,
        &[],
        &[("CORPUS_FILES", list.path())],
    );
    node.stop().expect("stop");
}

/// `tme_search_messages_indexed_total`, as the node reports it.
fn messages_indexed(node: &Node) -> u64 {
    common::metrics_lines(node, "tme_search_messages_indexed_total")
        .first()
        .and_then(|line| line.split_whitespace().last()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn search_body_and_text_through_the_full_text_index() {
    let corpus = tme_testkit::corpus_dir().expect("the corpus (TME_CORPUS_DIR)");
    let japanese = corpus.join("spamassassin-tdata/t__data__nice__cjk__iso-2022-jp.1.eml");
    let (mut node, app_password) = node_with_account();
    let work = tempfile::tempdir().expect("work directory");
    let results = work.path().join("results.json");
    let results_argument = results.to_str().expect("a UTF-8 path");
    let environment = [("CORPUS_MESSAGE", japanese.as_path())];
    run_python_in(
        &node,
        "search.py",
        &app_password,
        &["populate", results_argument],
        &environment,
    );
    let (_, metrics) = node.http_get("/metrics").expect("metrics");
    assert!(
        metrics.contains("tme_search_queries_total{answered_by=\"index\"}"),
        "searches answered by the index are counted:\n{metrics}"
    );
    // Mail that arrives is indexed by the node's indexer, before anyone searches: bob
    // never searches, yet his new message is counted as indexed.
    node.add_account("bob@example.org", "bob's pw")
        .expect("account bob");
    let indexed_before = messages_indexed(&node);
    common::submit(
        &node,
        "alice@example.org",
        &app_password,
        "bob@example.org",
        "indexed on arrival",
    );
    common::wait_for("the indexer to index bob's new message", &node, || {
        messages_indexed(&node) > indexed_before
    });
    // The index deleted under the running node: built again, the same answers.
    let index_root = node.data_dir().join("search");
    assert!(
        index_root.is_dir(),
        "the node keeps its indexes in DATA_DIR/search"
    );
    std::fs::remove_dir_all(&index_root).expect("delete the index");
    let compare = |node: &Node| {
        run_python_in(
            node,
            "search.py",
            &app_password,
            &["compare", results_argument],
            &environment,
        )
    };
    compare(&node);
    // Rebuilt by the operator while the node runs.
    let output = node
        .tme_ok(&["search", "reindex", "alice@example.org"])
        .expect("tme search reindex");
    assert!(output.contains("rebuilt the search index"), "{output}");
    compare(&node);
    node.stop().expect("stop");
    // Without the index: every message read, the same answers.
    node.set_environment("TME_SEARCH__ENABLED", "false");
    node.serve().expect("serve again");
    compare(&node);
    node.stop().expect("stop");
}

#[test]
fn multiappend_appends_all_or_nothing() {
    let (mut node, app_password) = node_with_account();
    run_python(&node, "multiappend.py", &app_password);
    node.stop().expect("stop");
}

#[test]
fn imapclient_uses_every_feature_it_exposes() {
    let (mut node, app_password, ca) = node_with_ca_certificate();
    run_python_in(
        &node,
        "imapclient_peer.py",
        &app_password,
        &[],
        &[("CA_CERTIFICATE", &ca.certificate_path())],
    );
    node.stop().expect("stop");
}

/// How many corpus messages offlineimap carries: every Nth, from every folder of the corpus.
const OFFLINEIMAP_CORPUS_STRIDE: usize = 400;

#[test]
fn offlineimap_syncs_a_mailbox_both_ways() {
    let (mut node, app_password, ca) = node_with_ca_certificate();
    let list = tempfile::NamedTempFile::new().expect("list file");
    let chosen: Vec<String> = tme_testkit::corpus_messages()
        .iter()
        .step_by(OFFLINEIMAP_CORPUS_STRIDE)
        .map(|path| path.display().to_string())
        .collect();
    std::fs::write(list.path(), chosen.join("\n")).expect("write list");
    run_python_in(
        &node,
        "offlineimap.py",
        &app_password,
        &[],
        &[
            ("CA_CERTIFICATE", &ca.certificate_path()),
            ("CORPUS_FILES", list.path()),
        ],
    );
    node.stop().expect("stop");
}

#[test]
fn mutt_reads_deletes_and_syncs() {
    let (mut node, app_password, ca) = node_with_ca_certificate();
    run_python_in(
        &node,
        "mutt.py",
        &app_password,
        &[],
        &[("CA_CERTIFICATE", &ca.certificate_path())],
    );
    node.stop().expect("stop");
}

/// The large FETCH test: how many messages, and the size of each.
const LARGE_MESSAGES: usize = 4;
const LARGE_MESSAGE_OCTETS: usize = 32 * 1024 * 1024;

/// A message of about `octets` whose body is base64-like lines of pseudo-random text (each
/// `seed` gives another message, so each is its own blob).
fn large_message(seed: u64, octets: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut raw = format!(
        "From: big@example.com\r\nTo: alice@example.org\r\nSubject: large {seed}\r\n\
         Message-ID: <large-{seed}@example.com>\r\nMIME-Version: 1.0\r\n\
         Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    .into_bytes();
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    while raw.len() < octets {
        for _ in 0..76 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            raw.push(ALPHABET[(state >> 58) as usize]);
        }
        raw.extend_from_slice(b"\r\n");
    }
    raw
}

/// A memory figure of the node's `/proc/<pid>/status` (`VmHWM`: peak resident), in KiB.
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| {
            value
                .trim_start_matches(':')
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{field} in {status}"))
}

#[test]
fn large_fetch_streams_byte_for_byte_in_bounded_memory() {
    let (mut node, app_password) = node_with_account();
    let folder = tempfile::tempdir().expect("message folder");
    let mut paths = Vec::new();
    for seed in 0..LARGE_MESSAGES {
        let path = folder.path().join(format!("{seed}.eml"));
        std::fs::write(&path, large_message(seed as u64, LARGE_MESSAGE_OCTETS)).expect("write");
        paths.push(path.display().to_string());
    }
    // Imported by another process: the node's peak memory is then what serving cost.
    node.tme_ok(&[
        "import",
        "alice@example.org",
        &folder.path().display().to_string(),
    ])
    .expect("tme import");
    let list = tempfile::NamedTempFile::new().expect("list file");
    std::fs::write(list.path(), paths.join("\n")).expect("write list");
    let pid = node.pid().expect("node pid");
    let peak_before_kib = memory_kib(pid, "VmHWM");
    run_python_in(
        &node,
        "large_fetch.py",
        &app_password,
        &[],
        &[("LARGE_FILES", list.path())],
    );
    let peak_kib = memory_kib(pid, "VmHWM");
    let growth_kib = peak_kib.saturating_sub(peak_before_kib);
    let fetched_kib = (LARGE_MESSAGES * LARGE_MESSAGE_OCTETS / 1024) as u64;
    println!(
        "node peak resident memory {peak_before_kib} KiB before, {peak_kib} KiB after FETCH of \
         {LARGE_MESSAGES} messages of {} KiB each, one by one and then 1:* BODY[] \
         ({fetched_kib} KiB in one response): the FETCHes added {growth_kib} KiB",
        LARGE_MESSAGE_OCTETS / 1024
    );
    // Buffering the 1:* response would add more than all the messages together; one
    // message at a time adds about one message (its blob, read back whole to check its
    // hash) and a piece of output, plus what the allocator keeps. Not a timing: memory.
    assert!(
        growth_kib < fetched_kib,
        "the FETCHes added {growth_kib} KiB, the messages are {fetched_kib} KiB"
    );
    node.stop().expect("stop");
}
