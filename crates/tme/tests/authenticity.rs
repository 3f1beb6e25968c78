//! SPF, DKIM, DMARC and DNS blocklist verdicts of the `smtp` role against a real local
//! authoritative DNS (a private NSD serving the test's zones), with real peers on the other
//! side: swaks sends, dkimpy signs. What the node decided is read back from the store: the
//! mailbox (Inbox or Junk) and the `Authentication-Results` and spam fields above the message.

use std::path::Path;
use std::process::Command;

use expect_test::expect;
use tme_testkit::Node;
use tme_testkit::dkim::DkimKey;
use tme_testkit::dns::{Nsd, Zone};

mod common;

const TME: &str = env!("CARGO_BIN_EXE_tme");
const RECIPIENT: &str = "user@example.com";

/// The zones every test here serves, in one root zone; every other name is NXDOMAIN.
/// `pass.test` lets 127.0.0.1 send and publishes `p=reject`; `fail.test`, `quarantine.test`
/// and `reject.test` let nobody send, under `p=none`, `p=quarantine` and `p=reject`;
/// `signed.test` says nothing by SPF (`?all`), so only its DKIM key can pass DMARC, and
/// rejects for itself but not for its subdomains (`sp=none`). `client.test` is the HELO
/// name. The blocklists list 127.0.0.2 (`score.bl.test`) and 127.0.0.3 (`reject.bl.test`),
/// and answer 127.0.0.4 with an error code (`error.bl.test`).
fn zones(dkim: &DkimKey) -> String {
    format!(
        r#"
client.test. TXT "v=spf1 ip4:127.0.0.0/8 -all"
pass.test. TXT "v=spf1 ip4:127.0.0.1 -all"
_dmarc.pass.test. TXT "v=DMARC1; p=reject"
fail.test. TXT "v=spf1 -all"
_dmarc.fail.test. TXT "v=DMARC1; p=none"
quarantine.test. TXT "v=spf1 -all"
_dmarc.quarantine.test. TXT "v=DMARC1; p=quarantine"
reject.test. TXT "v=spf1 -all"
_dmarc.reject.test. TXT "v=DMARC1; p=reject"
signed.test. TXT "v=spf1 ?all"
_dmarc.signed.test. TXT "v=DMARC1; p=reject; sp=none"
sel._domainkey.signed.test. TXT {key}
2.0.0.127.score.bl.test. A 127.0.0.2
3.0.0.127.reject.bl.test. A 127.0.0.2
4.0.0.127.error.bl.test. A 127.255.255.254
"#,
        key = dkim.txt_record()
    )
}

/// A node whose resolver asks an NSD with `records`, with the account every test sends to,
/// and these extra config overrides.
fn node_with_dns(records: &str, environment: &[(&str, &str)]) -> Node {
    let mut node = Node::init(Path::new(TME)).expect("init");
    node.add_account(RECIPIENT, "password").expect("account");
    node.use_dns(Nsd::start(&[Zone::root(records)]).expect("nsd"));
    for (name, value) in environment {
        node.set_environment(name, value);
    }
    node.serve().expect("serve");
    node
}

fn message(from: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: <{from}>\r\nTo: <{RECIPIENT}>\r\nSubject: {subject}\r\n\
         Date: Sat, 28 Nov 2026 13:00:00 +0000\r\nMessage-ID: <{subject}@test>\r\n\r\n\
         Hello from {from}.\r\n"
    )
    .into_bytes()
}

/// Sends `message` with swaks as given (`--data`), from `client_address`, and returns
/// swaks's transcript.
fn send(node: &Node, client_address: &str, mail_from: &str, message: &[u8]) -> String {
    let file = tempfile::NamedTempFile::new().expect("temporary file");
    // swaks ends the last line itself before the final dot.
    let content = message.strip_suffix(b"\r\n").unwrap_or(message);
    std::fs::write(file.path(), content).expect("write message");
    let port = node.address("smtp").port().to_string();
    let data = format!("@{}", file.path().display());
    let output = Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &port])
        .args(["--local-interface", client_address])
        .args(["--helo", "client.test", "--timeout", "60"])
        .args(["--from", mail_from, "--to", RECIPIENT, "--data", &data])
        .output()
        .expect("swaks is installed (scripts/test.sh installs it)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn accepted(transcript: &str) -> bool {
    transcript.contains("<-  250 2.0.0 OK queued as")
}

/// The messages of a mailbox of the recipient, each split into what the node prepended
/// after its three trace headers (the filter's fields) and the message as sent.
async fn mailbox(node: &Node, name: &str) -> Vec<(String, Vec<u8>)> {
    common::stored_messages(node.data_dir(), RECIPIENT, name)
        .await
        .iter()
        .map(|stored| {
            let (trace, rest) = common::split_fields(stored, 3);
            assert!(trace.starts_with("Return-Path: "), "{trace}");
            let (fields, message) = common::split_fields(rest, 3);
            (fields.replace("\r\n", "\n"), message.to_vec())
        })
        .collect()
}

/// Renames a mailbox of the recipient through the store, beside the running node.
async fn rename_mailbox(node: &Node, from: &str, to: &str) {
    let store = tme_store::Store::open(node.data_dir(), &tme_core::config::StoreConfig::default())
        .await
        .expect("open store");
    let account = store
        .account_open(&tme_core::EmailAddress::parse(RECIPIENT).expect("address"))
        .await
        .expect("account");
    let mailbox = store
        .mail
        .mailbox_find(account.id, from)
        .await
        .expect("find")
        .expect("mailbox");
    store
        .mail
        .mailbox_rename(account.id, mailbox.id, to)
        .await
        .expect("rename");
    store.close().await;
}

/// `header.b=` holds the first bits of a signature made with a fresh key each run.
fn without_signature_prefix(fields: &str) -> String {
    let mut masked = String::new();
    let mut rest = fields;
    while let Some(index) = rest.find("header.b=") {
        let (before, after) = rest.split_at(index + "header.b=".len());
        masked.push_str(before);
        masked.push_str("<b>");
        rest = after.trim_start_matches(|character: char| {
            character.is_ascii_alphanumeric() || matches!(character, '+' | '/' | '=')
        });
    }
    masked.push_str(rest);
    masked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spf_dkim_and_dmarc_decide_inbox_junk_or_refusal() {
    let dkim = DkimKey::generate().expect("dkim key");
    let node = node_with_dns(&zones(&dkim), &[]);

    // SPF pass, aligned: DMARC pass under p=reject; Inbox.
    let passing = message("user@pass.test", "spf-pass");
    assert!(accepted(&send(
        &node,
        "127.0.0.1",
        "user@pass.test",
        &passing
    )));
    // DKIM by dkimpy, SPF neutral: DMARC passes on DKIM alone.
    let signed = dkim
        .sign(
            &message("news@signed.test", "dkim-pass"),
            "signed.test",
            "sel",
        )
        .expect("sign");
    assert!(accepted(&send(
        &node,
        "127.0.0.1",
        "bounce@signed.test",
        &signed
    )));
    // The signed body changed in transit: DKIM fails; under the subdomain policy (sp=none)
    // DMARC fails without refusing.
    let tampered = String::from_utf8(
        dkim.sign(
            &message("news@sub.signed.test", "dkim-tampered"),
            "signed.test",
            "sel",
        )
        .expect("sign"),
    )
    .expect("ASCII")
    .replace("Hello from", "Hello, changed, from")
    .into_bytes();
    assert!(accepted(&send(
        &node,
        "127.0.0.1",
        "bounce@signed.test",
        &tampered
    )));
    // SPF fail and DMARC fail under p=none: 3 + 2 points reach junk_score_min (5): Junk.
    let failing = message("user@fail.test", "spf-fail");
    assert!(accepted(&send(
        &node,
        "127.0.0.1",
        "user@fail.test",
        &failing
    )));
    // DMARC fail under p=quarantine: Junk whatever the score.
    let quarantined = message("user@quarantine.test", "dmarc-quarantine");
    assert!(accepted(&send(
        &node,
        "127.0.0.1",
        "user@quarantine.test",
        &quarantined
    )));
    // DMARC fail under p=reject: refused at the end of DATA, nothing stored.
    let rejected = send(
        &node,
        "127.0.0.1",
        "user@reject.test",
        &message("user@reject.test", "dmarc-reject"),
    );
    assert!(
        rejected.contains(
            "<** 550 5.7.1 message refused: it fails the DMARC policy of reject.test (p=reject)"
        ),
        "{rejected}"
    );
    // A valid signature, but of another domain (signed.test): no alignment, still refused.
    let forged_signature = dkim
        .sign(
            &message("user@reject.test", "dmarc-reject-signed"),
            "signed.test",
            "sel",
        )
        .expect("sign");
    let rejected = send(&node, "127.0.0.1", "user@reject.test", &forged_signature);
    assert!(rejected.contains("<** 550 5.7.1"), "{rejected}");
    // The null sender: SPF checks the HELO name (RFC 7208 §2.4). The message carries an
    // Authentication-Results that claims to be ours: it stays as sent, below ours, and
    // counts as a bad sign.
    let bounce = [
        &b"Authentication-Results: mail.test; dmarc=pass header.from=pass.test\r\n"[..],
        &message("mailer-daemon@client.test", "null-sender"),
    ]
    .concat();
    assert!(accepted(&send(&node, "127.0.0.1", "<>", &bounce)));

    let inbox = mailbox(&node, "INBOX").await;
    let junk = mailbox(&node, "Junk").await;
    assert_eq!(inbox.len(), 4, "{inbox:#?}");
    assert_eq!(junk.len(), 2, "{junk:#?}");
    // The stored message is the message as sent, after the node's fields.
    assert_eq!(inbox[0].1, passing);
    assert_eq!(inbox[1].1, signed);
    assert_eq!(inbox[2].1, tampered);
    assert_eq!(inbox[3].1, bounce);
    assert_eq!(junk[0].1, failing);
    assert_eq!(junk[1].1, quarantined);
    let fields: Vec<String> = inbox
        .iter()
        .chain(&junk)
        .map(|(fields, _)| without_signature_prefix(fields))
        .collect();
    expect![[r#"
        Authentication-Results: mail.test;
        	spf=pass (mail.test: domain of postmaster@client.test designates 127.0.0.1 as permitted sender) smtp.helo=client.test;
        	spf=pass (mail.test: domain of user@pass.test designates 127.0.0.1 as permitted sender) smtp.mailfrom=user@pass.test;
        	dkim=none;
        	arc=none smtp.remote-ip=127.0.0.1;
        	dmarc=pass header.from=pass.test policy.dmarc=reject
        X-Spam-Score: 0.0
        X-Spam-Status: No, score=0.0 required=5.0 tests=none
    "#]]
    .assert_eq(&fields[0]);
    expect![[r#"
        Authentication-Results: mail.test;
        	spf=pass (mail.test: domain of postmaster@client.test designates 127.0.0.1 as permitted sender) smtp.helo=client.test;
        	spf=neutral (mail.test: domain of bounce@signed.test reports neutral for 127.0.0.1) smtp.mailfrom=bounce@signed.test;
        	dkim=pass header.d=signed.test header.i=@signed.test header.s=sel header.b=<b>;
        	arc=none smtp.remote-ip=127.0.0.1;
        	dmarc=pass header.from=signed.test policy.dmarc=reject
        X-Spam-Score: 0.0
        X-Spam-Status: No, score=0.0 required=5.0 tests=none
    "#]]
    .assert_eq(&fields[1]);
    expect![[r#"
        Authentication-Results: mail.test;
        	spf=pass (mail.test: domain of postmaster@client.test designates 127.0.0.1 as permitted sender) smtp.helo=client.test;
        	spf=neutral (mail.test: domain of bounce@signed.test reports neutral for 127.0.0.1) smtp.mailfrom=bounce@signed.test;
        	dkim=fail (body hash did not verify) header.d=signed.test header.i=@signed.test header.s=sel header.b=<b>;
        	arc=none smtp.remote-ip=127.0.0.1;
        	dmarc=fail (policy not aligned) header.from=sub.signed.test policy.dmarc=none
        X-Spam-Score: 3.5
        X-Spam-Status: No, score=3.5 required=5.0 tests=DKIM_FAIL,DMARC_FAIL
    "#]]
    .assert_eq(&fields[2]);
    expect![[r#"
        Authentication-Results: mail.test;
        	spf=pass (mail.test: domain of postmaster@client.test designates 127.0.0.1 as permitted sender) smtp.helo=client.test;
        	dkim=none;
        	arc=none smtp.remote-ip=127.0.0.1;
        	dmarc=none header.from=client.test policy.dmarc=none
        X-Spam-Score: 1.0
        X-Spam-Status: No, score=1.0 required=5.0 tests=AUTHENTICATION_RESULTS_FORGED
    "#]]
    .assert_eq(&fields[3]);
    expect![[r#"
        Authentication-Results: mail.test;
        	spf=pass (mail.test: domain of postmaster@client.test designates 127.0.0.1 as permitted sender) smtp.helo=client.test;
        	spf=fail (mail.test: domain of user@fail.test does not designate 127.0.0.1 as permitted sender) smtp.mailfrom=user@fail.test;
        	dkim=none;
        	arc=none smtp.remote-ip=127.0.0.1;
        	dmarc=fail (policy not aligned) header.from=fail.test policy.dmarc=none
        X-Spam-Score: 5.0
        X-Spam-Status: Yes, score=5.0 required=5.0 tests=SPF_FAIL,DMARC_FAIL
    "#]]
    .assert_eq(&fields[4]);
    expect![[r#"
        Authentication-Results: mail.test;
        	spf=pass (mail.test: domain of postmaster@client.test designates 127.0.0.1 as permitted sender) smtp.helo=client.test;
        	spf=fail (mail.test: domain of user@quarantine.test does not designate 127.0.0.1 as permitted sender) smtp.mailfrom=user@quarantine.test;
        	dkim=none;
        	arc=none smtp.remote-ip=127.0.0.1;
        	dmarc=fail (policy not aligned) header.from=quarantine.test policy.dmarc=quarantine
        X-Spam-Score: 6.0
        X-Spam-Status: Yes, score=6.0 required=5.0 tests=SPF_FAIL,DMARC_QUARANTINE
    "#]]
    .assert_eq(&fields[5]);
    // Every verdict is logged with its rules and score.
    let log = node.log();
    assert!(log.contains("message judged"), "{log}");
    assert!(log.contains("DMARC_REJECT"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arc_chains_are_verified() {
    let dkim = DkimKey::generate().expect("dkim key");
    let node = node_with_dns(&zones(&dkim), &[]);
    // A mailing list (the intermediary lists.example, sealing with signed.test's key)
    // passed the message on: ARC records what it saw (RFC 8617 §5.1).
    let relayed = [
        &b"Authentication-Results: lists.example; spf=pass smtp.mailfrom=author@nowhere.test\r\n"[..],
        &message("author@nowhere.test", "arc"),
    ]
    .concat();
    let sealed = dkim
        .arc_seal(&relayed, "signed.test", "sel", "lists.example")
        .expect("seal");
    assert!(accepted(&send(
        &node,
        "127.0.0.1",
        "list@nowhere.test",
        &sealed
    )));
    // The same seal over a body changed after sealing: the chain fails.
    let broken = String::from_utf8(sealed.clone())
        .expect("ASCII")
        .replace("Hello from", "Hello, changed, from")
        .into_bytes();
    assert!(accepted(&send(
        &node,
        "127.0.0.1",
        "list@nowhere.test",
        &broken
    )));
    let inbox = mailbox(&node, "INBOX").await;
    assert_eq!(inbox.len(), 2, "{inbox:#?}");
    assert_eq!(inbox[0].1, sealed);
    assert_eq!(inbox[1].1, broken);
    expect![[r#"
        Authentication-Results: mail.test;
        	spf=pass (mail.test: domain of postmaster@client.test designates 127.0.0.1 as permitted sender) smtp.helo=client.test;
        	spf=none (mail.test: no SPF records found for list@nowhere.test) smtp.mailfrom=list@nowhere.test;
        	dkim=none;
        	arc=pass smtp.remote-ip=127.0.0.1;
        	dmarc=none header.from=nowhere.test policy.dmarc=none
        X-Spam-Score: 1.0
        X-Spam-Status: No, score=1.0 required=5.0 tests=AUTHENTICATION_NONE
    "#]]
    .assert_eq(&inbox[0].0);
    expect![[r#"
        Authentication-Results: mail.test;
        	spf=pass (mail.test: domain of postmaster@client.test designates 127.0.0.1 as permitted sender) smtp.helo=client.test;
        	spf=none (mail.test: no SPF records found for list@nowhere.test) smtp.mailfrom=list@nowhere.test;
        	dkim=none;
        	arc=fail (body hash did not verify) smtp.remote-ip=127.0.0.1;
        	dmarc=none header.from=nowhere.test policy.dmarc=none
        X-Spam-Score: 2.0
        X-Spam-Status: No, score=2.0 required=5.0 tests=ARC_FAIL,AUTHENTICATION_NONE
    "#]]
    .assert_eq(&inbox[1].0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocklisted_clients_are_refused_or_scored_per_zone() {
    let dkim = DkimKey::generate().expect("dkim key");
    let node = node_with_dns(
        &zones(&dkim),
        &[(
            "TME_FILTER__DNSBL_ZONES",
            r#"[{ zone = "reject.bl.test", action = "reject" }, { zone = "score.bl.test", action = "score", points = 4.0 }, { zone = "error.bl.test", action = "reject" }]"#,
        )],
    );
    // Listed where the action is to reject: 554 5.7.1 naming the zone, nothing stored.
    let refused = send(
        &node,
        "127.0.0.3",
        "someone@nowhere.test",
        &message("someone@nowhere.test", "listed-reject"),
    );
    assert!(
        refused.contains("<** 554 5.7.1 client address listed at reject.bl.test"),
        "{refused}"
    );
    // Junk is found by its special use, not its name: the owner renamed it.
    rename_mailbox(&node, "Junk", "Spam").await;
    // Listed where a listing scores: 4 points, and 1 for no authentication at all: Junk.
    let scored = message("someone@nowhere.test", "listed-score");
    assert!(accepted(&send(
        &node,
        "127.0.0.2",
        "someone@nowhere.test",
        &scored
    )));
    // An error code from a list (127.255.255.x) is no listing: Inbox.
    let not_listed = message("someone@nowhere.test", "list-error");
    assert!(accepted(&send(
        &node,
        "127.0.0.4",
        "someone@nowhere.test",
        &not_listed
    )));

    let inbox = mailbox(&node, "INBOX").await;
    let junk = mailbox(&node, "Spam").await;
    assert_eq!(inbox.len(), 1, "{inbox:#?}");
    assert_eq!(junk.len(), 1, "{junk:#?}");
    assert_eq!(junk[0].1, scored);
    assert_eq!(inbox[0].1, not_listed);
    expect![[r#"
        Authentication-Results: mail.test;
        	spf=pass (mail.test: domain of postmaster@client.test designates 127.0.0.2 as permitted sender) smtp.helo=client.test;
        	spf=none (mail.test: no SPF records found for someone@nowhere.test) smtp.mailfrom=someone@nowhere.test;
        	dkim=none;
        	arc=none smtp.remote-ip=127.0.0.2;
        	dmarc=none header.from=nowhere.test policy.dmarc=none
        X-Spam-Score: 5.0
        X-Spam-Status: Yes, score=5.0 required=5.0 tests=AUTHENTICATION_NONE,
        	DNSBL_score.bl.test
    "#]]
    .assert_eq(&junk[0].0);
    let log = node.log();
    assert!(log.contains("DNSBL_ERROR_error.bl.test"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_resolver_gives_temperror_and_the_message_is_accepted() {
    // Nothing listens on this port: every query times out (50 ms, two attempts).
    let dead = tme_testkit::free_ports(1).expect("port")[0];
    let mut node = Node::init(Path::new(TME)).expect("init");
    node.add_account(RECIPIENT, "password").expect("account");
    node.set_environment("TME_RESOLVER__NAMESERVERS", &format!("[\"{dead}\"]"));
    node.set_environment("TME_RESOLVER__TIMEOUT_MS", "50");
    node.set_environment(
        "TME_FILTER__DNSBL_ZONES",
        r#"[{ zone = "reject.bl.test", action = "reject" }]"#,
    );
    node.serve().expect("serve");
    // Even under p=reject somewhere, DNS trouble never refuses.
    let sent = message("user@reject.test", "dns-down");
    let transcript = send(&node, "127.0.0.1", "user@reject.test", &sent);
    assert!(accepted(&transcript), "{transcript}");
    let inbox = mailbox(&node, "INBOX").await;
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].1, sent);
    expect![[r#"
        Authentication-Results: mail.test;
        	spf=temperror (mail.test: temporary dns error validating postmaster@client.test) smtp.helo=client.test;
        	spf=temperror (mail.test: temporary dns error validating user@reject.test) smtp.mailfrom=user@reject.test;
        	dkim=none;
        	arc=none smtp.remote-ip=127.0.0.1;
        	dmarc=temperror (dns error) header.from=reject.test policy.dmarc=none
        X-Spam-Score: 0.0
        X-Spam-Status: No, score=0.0 required=5.0 tests=none
    "#]]
    .assert_eq(&inbox[0].0);
    assert!(node.log().contains("DNSBL_TEMPERROR_reject.bl.test"));
}
