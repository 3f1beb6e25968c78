//! DANE (RFC 7672) in the outbound queue, with real peers: a private NSD serves a small
//! DNSSEC hierarchy signed by ldnsutils for the test (a signed root whose key is the node's
//! trust anchor, a signed `dane.test` delegated to with a DS record, an unsigned
//! `plain.test` delegated to without one), a second tme node is the MX with a certificate
//! from a private CA, and Postfix's smtp-sink is an MX without STARTTLS. TLSA records are
//! computed with openssl, as an operator would. Mail submitted over the submission port
//! (swaks) must reach hosts whose TLSA records match over TLS only, wait with 4.7.5 when
//! they do not match, when STARTTLS is missing or when a signature is bogus (nothing in plain
//! text), and go out as before to the unsigned domain, whose TLSA records do not count.

use std::path::Path;
use std::process::Command;

use tme_testkit::dns::{Nsd, Zone};
use tme_testkit::pki::TestCa;
use tme_testkit::{Node, SinkBehaviour, SmtpSink, dnssec};

mod common;

const TME: &str = env!("CARGO_BIN_EXE_tme");
/// Where the MX without STARTTLS listens (on the remote node's port).
const SINK_IP: &str = "127.0.0.9";
const USER: &str = "sender@example.com";
const PASSWORD: &str = "correct horse";

/// The SHA-256 (hex) of what `openssl` prints for `pipeline` applied to `pem`.
fn openssl_sha256(pem: &Path, pipeline: &str) -> String {
    let script = format!(
        "{pipeline} | openssl dgst -sha256 -r",
        pipeline = pipeline.replace("PEM", &pem.display().to_string())
    );
    let output = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("openssl");
    assert!(output.status.success(), "{script}: {output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let hash = text.split_whitespace().next().unwrap_or("").to_owned();
    assert_eq!(hash.len(), 64, "{script}: {text}");
    hash
}

/// Breaks the signature of the `covered` RRSIG at `owner` in a signed zone's text: the
/// first characters of its base64 signature are replaced, which keeps it well-formed.
fn break_signature(zone: &mut Zone, owner: &str, covered: &str) {
    let mut broken = false;
    let lines: Vec<String> = zone
        .records
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.first() == Some(&owner)
                && fields.get(3) == Some(&"RRSIG")
                && fields.get(4) == Some(&covered)
            {
                let signature = fields.last().expect("signature");
                let replacement = if signature.starts_with("AAAA") {
                    "BBBB"
                } else {
                    "AAAA"
                };
                broken = true;
                return line.replacen(signature, &format!("{replacement}{}", &signature[4..]), 1);
            }
            line.to_owned()
        })
        .collect();
    assert!(
        broken,
        "no RRSIG {covered} at {owner} in:\n{}",
        zone.records
    );
    zone.records = lines.join("\n") + "\n";
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlsa_records_decide_how_mail_leaves() {
    let ca = TestCa::new().expect("ca");
    // The remote MX: a tme node whose certificate names mx-ta.dane.test and is sent with
    // its CA (DANE-TA needs the anchor in the chain, RFC 7672 §3.2.1).
    let mut remote = Node::init(Path::new(TME)).expect("init remote");
    let delivered_domains = [
        "ee.dane.test",
        "eebad.dane.test",
        "ta.dane.test",
        "bogus.dane.test",
        "plain.test",
    ];
    for domain in delivered_domains {
        remote
            .add_account(&format!("friend@{domain}"), "friend password")
            .expect("account");
    }
    ca.install(remote.data_dir(), &["mx-ta.dane.test"])
        .expect("certificate");
    let certificate_path = remote.data_dir().join("tls/certificate.pem");
    let mut chain = std::fs::read_to_string(&certificate_path).expect("certificate");
    chain.push_str(&std::fs::read_to_string(ca.certificate_path()).expect("ca"));
    std::fs::write(&certificate_path, chain).expect("chain");
    remote.serve().expect("serve remote");
    let port = remote.address("smtp").port();
    let sink = SmtpSink::start(
        format!("{SINK_IP}:{port}").parse().expect("address"),
        SinkBehaviour::Accept,
    )
    .expect("smtp-sink");

    // TLSA data: the server key's SPKI (3 1 1) and the CA certificate (2 0 1).
    let spki = openssl_sha256(
        &certificate_path,
        "openssl x509 -in PEM -noout -pubkey | openssl pkey -pubin -outform DER",
    );
    let ca_certificate =
        openssl_sha256(&ca.certificate_path(), "openssl x509 -in PEM -outform DER");
    let wrong = "0".repeat(64);
    let tlsa =
        |host: &str, data: &str, usage: &str| format!("_{port}._tcp.{host}. TLSA {usage} {data}\n");
    let mut records = String::new();
    for (domain, host, address, usage, data) in [
        ("ee", "mx-ee", "127.0.0.1", "3 1 1", spki.as_str()),
        ("eebad", "mx-eebad", "127.0.0.1", "3 1 1", wrong.as_str()),
        ("nostls", "mx-nostls", SINK_IP, "3 1 1", spki.as_str()),
        ("ta", "mx-ta", "127.0.0.1", "2 0 1", ca_certificate.as_str()),
        ("bogus", "mx-bogus", "127.0.0.1", "3 1 1", spki.as_str()),
    ] {
        records.push_str(&format!(
            "{domain}.dane.test. MX 10 {host}.dane.test.\n{host}.dane.test. A {address}\n"
        ));
        records.push_str(&tlsa(&format!("{host}.dane.test"), data, usage));
    }
    let mut dane_zone = dnssec::sign("dane.test.", &records).expect("sign dane.test");
    break_signature(
        &mut dane_zone.zone,
        &format!("_{port}._tcp.mx-bogus.dane.test."),
        "TLSA",
    );
    let root = dnssec::sign(
        ".",
        &format!(
            "dane.test. NS ns.nsd.invalid.\n{ds}\nplain.test. NS ns.nsd.invalid.\n",
            ds = dane_zone.ds
        ),
    )
    .expect("sign the root");
    // Unsigned, and the root proves it has no DS: its TLSA record (which would not match)
    // does not count (RFC 7672 §2.2).
    let plain_zone = Zone {
        origin: "plain.test.".to_owned(),
        records: format!(
            "plain.test. MX 10 mx.plain.test.\nmx.plain.test. A 127.0.0.1\n{}",
            tlsa("mx.plain.test", &wrong, "3 1 1")
        ),
    };
    let trust_anchor = root.write_trust_anchor().expect("trust anchor");

    let mut node = Node::init(Path::new(TME)).expect("init");
    node.use_dns(
        Nsd::start(&[root.zone.clone(), dane_zone.zone.clone(), plain_zone]).expect("nsd"),
    );
    node.set_environment("TME_QUEUE__REMOTE_PORT", &port.to_string());
    node.set_environment("TME_QUEUE__DANE", "true");
    node.set_environment(
        "TME_RESOLVER__DNSSEC_TRUST_ANCHOR_FILE",
        &trust_anchor.display().to_string(),
    );
    node.add_account(USER, PASSWORD).expect("account");
    node.serve().expect("serve");

    let cases = ["ee", "eebad", "nostls", "ta", "bogus", "plain"];
    for case in cases {
        let address = match case {
            "plain" => "friend@plain.test".to_owned(),
            _ => format!("friend@{case}.dane.test"),
        };
        common::submit(&node, USER, PASSWORD, &address, &format!("to-{case}"));
    }

    // Matching DANE-EE and DANE-TA records, and the unsigned domain: delivered over TLS.
    for (address, subject) in [
        ("friend@ee.dane.test", "to-ee"),
        ("friend@ta.dane.test", "to-ta"),
        ("friend@plain.test", "to-plain"),
    ] {
        common::wait_for(address, &node, || {
            common::queued_reply(&node, address).is_none()
        });
        let stored = common::stored_messages(remote.data_dir(), address, "INBOX").await;
        assert_eq!(stored.len(), 1, "{address}");
        let text = String::from_utf8_lossy(&stored[0]);
        assert!(text.contains("with ESMTPS"), "not over TLS:\n{text}");
        assert!(text.contains(&format!("Subject: {subject}")), "{text}");
    }

    // A key the records do not name, no STARTTLS, a bogus signature: all wait, with the
    // reason recorded.
    for (address, reason) in [
        ("friend@eebad.dane.test", "TLS with mx-eebad.dane.test"),
        (
            "friend@nostls.dane.test",
            "mx-nostls.dane.test does not offer STARTTLS",
        ),
        ("friend@bogus.dane.test", "failed (bogus)"),
    ] {
        common::wait_for(address, &node, || {
            common::queued_reply(&node, address).is_some_and(|reply| reply.contains("DANE"))
        });
        let reply = common::queued_reply(&node, address).expect("still queued");
        assert!(
            reply.starts_with("4.7.5 DANE") && reply.contains(reason),
            "{address}: {reply}"
        );
    }
    for address in ["friend@eebad.dane.test", "friend@bogus.dane.test"] {
        assert!(
            common::stored_messages(remote.data_dir(), address, "INBOX")
                .await
                .is_empty(),
            "{address} got mail its TLSA records did not allow"
        );
    }
    assert!(
        !sink
            .received()
            .expect("dumps")
            .iter()
            .any(|dump| String::from_utf8_lossy(dump).contains("Subject: to-nostls")),
        "mail for a host with TLSA records went out in plain text"
    );
    let dane_metrics = common::metrics_lines(&node, "tme_queue_dane");
    for outcome in [
        "tme_queue_dane_hosts_total{outcome=\"usable\"}",
        "tme_queue_dane_hosts_total{outcome=\"bogus\"}",
        "tme_queue_dane_hosts_total{outcome=\"insecure\"}",
        "tme_queue_dane_handshakes_total{outcome=\"authenticated\"}",
        "tme_queue_dane_handshakes_total{outcome=\"refused\"}",
    ] {
        assert!(
            dane_metrics.iter().any(|line| line.starts_with(outcome)),
            "{outcome} in {dane_metrics:?}"
        );
    }
    node.stop().expect("stop");
    remote.stop().expect("stop remote");
}
