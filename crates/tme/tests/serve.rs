//! `tme serve`: ready and healthy, changes made beside it, graceful stop, restart after a kill.

use std::path::Path;
use std::time::{Duration, Instant};

use tme_testkit::Node;

const TME: &str = env!("CARGO_BIN_EXE_tme");

#[test]
fn serves_health_and_stops_gracefully_on_sigterm() {
    let mut node = Node::start(Path::new(TME)).expect("start");
    let (status, body) = node.http_get("/healthz").expect("healthz");
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(health["roles"]["http"]["state"], "running");
    assert_eq!(health["roles"]["maintenance"]["state"], "running");
    assert_eq!(health["roles"]["spool"]["state"], "running");
    let (status, body) = node.http_get("/readyz").expect("readyz");
    assert_eq!(status, 200, "{body}");

    // The CLI works on the data directory while the node runs.
    node.add_account("live@example.com", "a password")
        .expect("account while serving");
    assert!(
        node.tme_ok(&["account", "list"])
            .expect("list")
            .contains("live@example.com")
    );

    let started = Instant::now();
    let status = node.stop().expect("stop");
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        node.log()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped promptly"
    );
    assert!(node.log().contains("shutting down"), "{}", node.log());

    // A killed node starts again on the same data.
    node.serve().expect("serve again");
    node.kill();
    node.serve().expect("serve after kill");
    assert!(
        node.tme_ok(&["account", "list"])
            .expect("list")
            .contains("live@example.com")
    );
}

#[test]
fn a_busy_port_is_retried_with_backoff_and_reported() {
    let node = Node::init(Path::new(TME)).expect("init");
    let blocker = std::net::TcpListener::bind(node.address("http")).expect("occupy the http port");
    let mut child = node
        .command()
        .arg("serve")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the node keeps running while a role retries"
    );
    drop(blocker);
    // Backoff is at most a few seconds here; the role comes up once the port is free.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut ready = false;
    while Instant::now() < deadline {
        if let Ok((200, _)) = node.http_get("/readyz") {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    tme_testkit::signal(child.id(), "TERM").expect("term");
    let output = child.wait_with_output().expect("wait");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(ready, "ready after the port was freed; log:\n{log}");
    assert!(
        log.contains("role failed; restarting") && log.contains("cannot listen on"),
        "{log}"
    );
}
