//! MTA-STS (RFC 8461) in the outbound queue, with real peers: policies served over HTTPS by
//! Python's http.server with certificates from a private CA, `_mta-sts` records and MX
//! records from a private NSD, a second tme node as an MX whose certificate verifies, and
//! Postfix's smtp-sink as an MX without STARTTLS. Mail is submitted over the submission
//! port (swaks) and the queue must deliver under `enforce` only to named MX hosts over
//! verified TLS, wait otherwise, and deliver as usual under `testing`; a restarted node
//! whose policy host is gone still honours the policy it stored.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use tme_testkit::dns::{Nsd, Zone};
use tme_testkit::pki::TestCa;
use tme_testkit::{Node, SinkBehaviour, SmtpSink};

mod common;

const TME: &str = env!("CARGO_BIN_EXE_tme");
/// Where the MX without STARTTLS listens (on the remote node's port).
const SINK_IP: &str = "127.0.0.9";
const USER: &str = "sender@example.com";
const PASSWORD: &str = "correct horse";

/// The policy server, stopped when dropped.
struct PolicyServer(Child);

impl Drop for PolicyServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_policy_server(ca: &TestCa, port: u16, directory: &Path, hosts: &[&str]) -> PolicyServer {
    let (certificate, key) = ca.issue("policy", hosts).expect("policy certificate");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mta_sts/policy_server.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(certificate)
        .arg(key)
        .args(["127.0.0.1", &port.to_string()])
        .arg(directory)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("policy server output");
    assert_eq!(line.trim(), "ready", "the policy server did not start");
    PolicyServer(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_delivers_only_over_verified_tls_to_named_hosts() {
    let ca = TestCa::new().expect("ca");
    // The remote MX: a tme node whose certificate names mx.remote.test.
    let mut remote = Node::init(Path::new(TME)).expect("init remote");
    remote
        .add_account("friend@remote.test", "friend password")
        .expect("account");
    ca.install(remote.data_dir(), &["mx.remote.test"])
        .expect("certificate");
    remote.serve().expect("serve remote");
    let mx_port = remote.address("smtp").port();
    let _sink = SmtpSink::start(
        format!("{SINK_IP}:{mx_port}").parse().expect("address"),
        SinkBehaviour::Accept,
    )
    .expect("smtp-sink");
    let sink = _sink;

    let policies = tempfile::tempdir().expect("policies");
    let write_policy = |domain: &str, mode: &str, mx: &str| {
        std::fs::write(
            policies.path().join(format!("mta-sts.{domain}.txt")),
            format!("version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n"),
        )
        .expect("policy");
    };
    write_policy("remote.test", "enforce", "mx.remote.test");
    write_policy("nostls.test", "enforce", "mx.nostls.test");
    write_policy("wrongmx.test", "enforce", "*.elsewhere.test");
    write_policy("badcert.test", "enforce", "mx2.badcert.test");
    write_policy("testing.test", "testing", "*.elsewhere.test");
    let domains = [
        "remote.test",
        "nostls.test",
        "wrongmx.test",
        "badcert.test",
        "testing.test",
    ];
    let policy_hosts: Vec<String> = domains
        .iter()
        .map(|domain| format!("mta-sts.{domain}"))
        .collect();
    let https_port = tme_testkit::free_ports(1).expect("port")[0].port();
    let _policy_server = start_policy_server(
        &ca,
        https_port,
        policies.path(),
        &policy_hosts.iter().map(String::as_str).collect::<Vec<_>>(),
    );

    let mut records = String::from(
        "remote.test. MX 10 mx.remote.test.\nmx.remote.test. A 127.0.0.1\n\
         nostls.test. MX 10 mx.nostls.test.\nmx.nostls.test. A 127.0.0.9\n\
         wrongmx.test. MX 10 mx.remote.test.\n\
         badcert.test. MX 10 mx2.badcert.test.\nmx2.badcert.test. A 127.0.0.1\n\
         testing.test. MX 10 mx.nostls.test.\n",
    );
    for domain in domains {
        records.push_str(&format!(
            "_mta-sts.{domain}. TXT \"v=STSv1; id=20261128;\"\nmta-sts.{domain}. A 127.0.0.1\n"
        ));
    }
    let mut node = Node::init(Path::new(TME)).expect("init");
    node.use_dns(Nsd::start(&[Zone::root(&records)]).expect("nsd"));
    node.set_environment("TME_QUEUE__REMOTE_PORT", &mx_port.to_string());
    node.set_environment("TME_QUEUE__MTA_STS_HTTPS_PORT", &https_port.to_string());
    node.set_environment(
        "TME_QUEUE__TLS_TRUST_ANCHORS_FILE",
        &ca.certificate_path().display().to_string(),
    );
    node.add_account(USER, PASSWORD).expect("account");
    node.serve().expect("serve");

    for (address, subject) in [
        ("friend@remote.test", "to-remote"),
        ("someone@nostls.test", "to-nostls"),
        ("someone@wrongmx.test", "to-wrongmx"),
        ("someone@badcert.test", "to-badcert"),
        ("someone@testing.test", "to-testing"),
    ] {
        common::submit(&node, USER, PASSWORD, address, subject);
    }

    // enforce, named host, verified certificate: delivered over TLS.
    common::wait_for("delivery to remote.test", &node, || {
        common::queued_reply(&node, "friend@remote.test").is_none()
    });
    let stored = common::stored_messages(remote.data_dir(), "friend@remote.test", "INBOX").await;
    assert_eq!(stored.len(), 1);
    let text = String::from_utf8_lossy(&stored[0]);
    assert!(text.contains("with ESMTPS"), "not over TLS:\n{text}");
    assert!(text.contains("Subject: to-remote"), "{text}");

    // testing: delivered as without a policy (plain text to a host the policy does not
    // name).
    common::wait_for("delivery to testing.test", &node, || {
        sink.received()
            .expect("dumps")
            .iter()
            .any(|dump| String::from_utf8_lossy(dump).contains("Subject: to-testing"))
    });

    // enforce: no STARTTLS, no matching host, a certificate for another name: all wait.
    for (address, reason) in [
        ("someone@nostls.test", "does not offer STARTTLS"),
        (
            "someone@wrongmx.test",
            "no MX host of wrongmx.test matches its policy",
        ),
        ("someone@badcert.test", "TLS with mx2.badcert.test"),
    ] {
        common::wait_for(address, &node, || {
            common::queued_reply(&node, address).is_some_and(|reply| reply.contains("MTA-STS"))
        });
        let reply = common::queued_reply(&node, address).expect("still queued");
        assert!(
            reply.starts_with("4.7.5 MTA-STS") && reply.contains(reason),
            "{address}: {reply}"
        );
    }
    assert!(
        !sink
            .received()
            .expect("dumps")
            .iter()
            .any(|dump| { String::from_utf8_lossy(dump).contains("Subject: to-nostls") }),
        "an enforce policy's mail went out in plain text"
    );

    // Restarted, with the policy host gone: the stored policy still holds (RFC 8461 §10.2),
    // so the mail waits instead of going out in plain text.
    node.stop().expect("stop");
    drop(_policy_server);
    node.serve().expect("serve again");
    common::submit(
        &node,
        USER,
        PASSWORD,
        "other@nostls.test",
        "to-nostls-after-restart",
    );
    common::wait_for("other@nostls.test", &node, || {
        common::queued_reply(&node, "other@nostls.test")
            .is_some_and(|reply| reply.contains("MTA-STS"))
    });
    let reply = common::queued_reply(&node, "other@nostls.test").expect("still queued");
    assert!(
        reply.starts_with("4.7.5 MTA-STS") && reply.contains("does not offer STARTTLS"),
        "{reply}"
    );
    assert!(
        !sink.received().expect("dumps").iter().any(|dump| {
            String::from_utf8_lossy(dump).contains("Subject: to-nostls-after-restart")
        }),
        "after a restart, an enforce policy's mail went out in plain text"
    );
    node.stop().expect("stop");
    remote.stop().expect("stop remote");
}
