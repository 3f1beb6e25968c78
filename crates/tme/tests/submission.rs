//! The `submission` role with real peers: swaks and Python's smtplib submit with AUTH over
//! 587 (STARTTLS) and 465 (implicit TLS); forged envelope senders and authors are refused;
//! accepted mail leaves through the queue for a "remote" domain whose MX (a private NSD)
//! is Postfix's smtp-sink, fixed up (Date, Message-ID, no Bcc) and DKIM-signed so that
//! dkimpy verifies it against tme's own DNS; local recipients get their copy directly.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tme_testkit::dns::{Nsd, Zone};
use tme_testkit::{Node, SinkBehaviour, SmtpSink};

const TME: &str = env!("CARGO_BIN_EXE_tme");
/// How long the polls below wait: generous, nothing asserts speed.
const DEADLINE: Duration = Duration::from_secs(120);
/// The sink's address (its port is chosen per test).
const SINK_IP: &str = "127.0.0.7";
const USER: &str = "sender@example.com";
const PASSWORD: &str = "correct horse";

/// A node with sender@example.com (and its alias alias@example.com) and local@example.com,
/// whose queue delivers remote.test's mail to a sink; and the sink.
fn node_and_sink() -> (Node, SmtpSink) {
    let port = tme_testkit::free_ports(1).expect("port")[0].port();
    let sink = SmtpSink::start(
        format!("{SINK_IP}:{port}").parse().expect("address"),
        SinkBehaviour::Accept,
    )
    .expect("smtp-sink");
    let mut node = Node::init(Path::new(TME)).expect("init");
    node.use_dns(
        Nsd::start(&[Zone::root(&format!(
            "remote.test. MX 10 mx.remote.test.\nmx.remote.test. A {SINK_IP}\n"
        ))])
        .expect("nsd"),
    );
    node.set_environment("TME_QUEUE__REMOTE_PORT", &port.to_string());
    // Wrong passwords on purpose below: keep the throttle out of the way.
    node.set_environment("TME_LOGIN__FAILURES_BEFORE_DELAY", "100");
    node.set_environment("TME_SMTP__SESSION_ERRORS_MAX", "100");
    node.add_account(USER, PASSWORD).expect("account");
    node.add_account("local@example.com", "another password")
        .expect("account");
    node.tme_ok(&["alias", "add", "alias@example.com", USER])
        .expect("alias");
    node.serve().expect("serve");
    (node, sink)
}

/// The messages the sink received whose Subject is `subject`, from the DKIM-Signature on
/// (what tme sent; smtp-sink's own envelope lines and Received stripped).
fn sent_with_subject(sink: &SmtpSink, subject: &str) -> Vec<Vec<u8>> {
    sink.received()
        .expect("sink dumps")
        .into_iter()
        .filter(|dump| {
            String::from_utf8_lossy(dump)
                .lines()
                .any(|line| line == format!("Subject: {subject}"))
        })
        .map(|dump| {
            // smtp-sink writes its dumps with bare LF line ends; the wire had CRLF.
            let dump = tme_testkit::crlf_line_ends(&dump);
            let start = find(&dump, b"DKIM-Signature:").unwrap_or(0);
            dump[start..].to_vec()
        })
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn wait_for_sent(sink: &SmtpSink, node: &Node, subject: &str) -> Vec<u8> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(sent) = sent_with_subject(sink, subject).into_iter().next() {
            return sent;
        }
        assert!(
            Instant::now() < deadline,
            "{subject} never reached the sink; node log:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Checks what a recipient sees: the submission fix-ups, our Received, and signatures that
/// dkimpy verifies against the node's own DNS role.
fn assert_fixed_up_and_signed(node: &Node, sent: &[u8]) {
    let text = String::from_utf8_lossy(sent);
    let header = text.split("\r\n\r\n").next().unwrap_or_default();
    assert!(
        !header.to_ascii_lowercase().contains("\nbcc:"),
        "Bcc left in:\n{text}"
    );
    assert!(header.contains("\nDate: "), "no Date added:\n{text}");
    assert!(
        header.contains("\nMessage-ID: <"),
        "no Message-ID added:\n{text}"
    );
    assert!(
        header.contains("with ESMTPSA id"),
        "no authenticated Received:\n{text}"
    );
    let results = tme_testkit::dkim::verify_with_dns(sent, node.address("dns")).expect("dkimpy");
    assert_eq!(results.len(), 2, "{results:?}\n{text}");
    assert!(
        results.iter().all(|(_, passed)| *passed),
        "{results:?}\n{text}"
    );
}

/// The subjects in `address`'s INBOX, read over IMAP (imaplib, STARTTLS).
fn inbox_subjects(node: &Node, address: &str, password: &str) -> Vec<String> {
    let script = r#"
import imaplib, os, ssl
tls = ssl.create_default_context(cafile=os.environ["CERTIFICATE"])
tls.check_hostname = False
with imaplib.IMAP4("127.0.0.1", int(os.environ["IMAP_PORT"])) as client:
    client.starttls(ssl_context=tls)
    client.login(os.environ["ADDRESS"], os.environ["PASSWORD"])
    client.select("INBOX", readonly=True)
    _, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    for item in data:
        if isinstance(item, tuple):
            print(item[1].decode().strip())
"#;
    let output = Command::new("python3")
        .args(["-c", script])
        .env("CERTIFICATE", node.data_dir().join("tls/certificate.pem"))
        .env("IMAP_PORT", node.address("imap").port().to_string())
        .env("ADDRESS", address)
        .env("PASSWORD", password)
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "imaplib: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("Subject: "))
        .map(str::to_owned)
        .collect()
}

fn swaks(arguments: &[&str]) -> (bool, String) {
    let output = Command::new("swaks")
        .args(["--server", "127.0.0.1", "--helo", "client.test"])
        .args(["--timeout", "30"])
        .args(arguments)
        .output()
        .expect("swaks is installed (scripts/test.sh installs it)");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[test]
fn swaks_submits_over_both_ports_and_mail_leaves_fixed_up_and_signed() {
    let (mut node, sink) = node_and_sink();
    let work = tempfile::tempdir().expect("work directory");
    let data = work.path().join("message.eml");
    // No Date, no Message-ID, a Bcc: the submission server fixes all three.
    std::fs::write(
        &data,
        format!(
            "From: Sender <{USER}>\r\nTo: friend@remote.test, local@example.com\r\n\
             Bcc: hidden@remote.test\r\nSubject: swaks-587\r\n\r\nHello from swaks.\r\n"
        ),
    )
    .expect("write message");
    let data_argument = data.display().to_string();
    let auth = [
        "--auth",
        "PLAIN",
        "--auth-user",
        USER,
        "--auth-password",
        PASSWORD,
    ];
    let port_587 = node.address("submission").port().to_string();
    let (ok, transcript) = swaks(
        &[
            &["--port", &port_587, "--tls"][..],
            &auth,
            &[
                "--from",
                USER,
                "--to",
                "friend@remote.test,local@example.com,hidden@remote.test",
                "--data",
                &data_argument,
            ],
        ]
        .concat(),
    );
    assert!(ok, "{transcript}\n{}", node.log());
    assert!(transcript.contains("235 2.7.0"), "{transcript}");

    let sent = wait_for_sent(&sink, &node, "swaks-587");
    assert_fixed_up_and_signed(&node, &sent);
    // Both remote recipients got it, as one message with two recipients or two.
    let dumps = sink.received().expect("dumps");
    let rcpts = dumps
        .iter()
        .filter(|dump| find(dump, b"Subject: swaks-587").is_some())
        .map(|dump| String::from_utf8_lossy(dump).matches("X-Rcpt-Args").count())
        .sum::<usize>();
    assert_eq!(rcpts, 2, "friend and hidden");
    assert_eq!(
        inbox_subjects(&node, "local@example.com", "another password"),
        vec!["swaks-587"]
    );

    // 465: implicit TLS; AUTH LOGIN.
    let port_465 = node.address("submissions").port().to_string();
    let (ok, transcript) = swaks(&[
        "--port",
        &port_465,
        "--tlsc",
        "--auth",
        "LOGIN",
        "--auth-user",
        USER,
        "--auth-password",
        PASSWORD,
        "--from",
        USER,
        "--to",
        "friend@remote.test",
        "--header",
        "Subject: swaks-465",
    ]);
    assert!(ok, "{transcript}\n{}", node.log());
    let sent = wait_for_sent(&sink, &node, "swaks-465");
    let results = tme_testkit::dkim::verify_with_dns(&sent, node.address("dns")).expect("dkimpy");
    assert!(
        !results.is_empty() && results.iter().all(|(_, passed)| *passed),
        "{results:?}"
    );

    // A forged envelope sender is refused at MAIL, before any content.
    let (ok, transcript) = swaks(
        &[
            &["--port", &port_587, "--tls"][..],
            &auth,
            &["--from", "local@example.com", "--to", "friend@remote.test"],
        ]
        .concat(),
    );
    assert!(!ok, "{transcript}");
    assert!(transcript.contains("550 5.7.1"), "{transcript}");
    // No AUTH at all: 530.
    let (ok, transcript) = swaks(&[
        "--port",
        &port_587,
        "--tls",
        "--from",
        USER,
        "--to",
        "friend@remote.test",
    ]);
    assert!(!ok, "{transcript}");
    assert!(transcript.contains("530 5.7.0"), "{transcript}");
    node.stop().expect("stop");
}

#[test]
fn smtplib_over_both_ports_with_every_refusal() {
    let (mut node, sink) = node_and_sink();
    let output = node
        .tme_ok(&["account", "app-password", "add", USER, "phone"])
        .expect("app password");
    let app_password = output
        .lines()
        .next()
        .and_then(|line| line.rsplit(' ').next())
        .expect("app password shown")
        .to_owned();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/submission/smtplib_submit.py");
    let output = Command::new("python3")
        .arg(script)
        .env("CERTIFICATE", node.data_dir().join("tls/certificate.pem"))
        .env(
            "SUBMISSION_PORT",
            node.address("submission").port().to_string(),
        )
        .env(
            "SUBMISSIONS_PORT",
            node.address("submissions").port().to_string(),
        )
        .env("USER_ADDRESS", USER)
        .env("PASSWORD", PASSWORD)
        .env("APP_PASSWORD", &app_password)
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "smtplib: {}\n{}\nnode log:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        node.log()
    );
    for subject in ["smtplib-587-own", "smtplib-587-alias", "smtplib-465-login"] {
        let sent = wait_for_sent(&sink, &node, subject);
        assert_fixed_up_and_signed(&node, &sent);
    }
    // Refused messages never left, and the local copy of the last one arrived.
    for subject in [
        "forged-envelope",
        "forged-envelope-2",
        "forged-from",
        "forged-sender",
        "two-froms",
    ] {
        assert!(
            sent_with_subject(&sink, subject).is_empty(),
            "{subject} was sent"
        );
    }
    assert_eq!(
        inbox_subjects(&node, "local@example.com", "another password"),
        vec!["smtplib-465-login"]
    );
    node.stop().expect("stop");
}

#[test]
fn failed_logins_are_throttled_and_locked_as_for_imap() {
    let mut node = Node::init(Path::new(TME)).expect("init");
    node.set_environment("TME_LOGIN__FAILURES_BEFORE_DELAY", "100");
    node.set_environment("TME_LOGIN__FAILURES_PER_IP_MAX", "3");
    node.add_account(USER, PASSWORD).expect("account");
    node.serve().expect("serve");
    let script = r#"
import base64, os, smtplib, ssl
tls = ssl.create_default_context(cafile=os.environ["CERTIFICATE"])
tls.check_hostname = False
user = os.environ["USER_ADDRESS"].encode()
def plain(password):
    return "PLAIN " + base64.b64encode(b"\0" + user + b"\0" + password).decode()
with smtplib.SMTP_SSL("127.0.0.1", int(os.environ["PORT"]), timeout=30, context=tls) as client:
    client.ehlo("client.test")
    for _ in range(3):
        code, _ = client.docmd("AUTH", plain(b"wrong"))
        assert code == 535, code
    # Locked now: even the right password gets 454 4.7.0 (RFC 4954 §6).
    code, text = client.docmd("AUTH", plain(os.environ["PASSWORD"].encode()))
    assert code == 454 and b"4.7.0" in text, (code, text)
print("locked")
"#;
    let output = Command::new("python3")
        .args(["-c", script])
        .env("CERTIFICATE", node.data_dir().join("tls/certificate.pem"))
        .env("PORT", node.address("submissions").port().to_string())
        .env("USER_ADDRESS", USER)
        .env("PASSWORD", PASSWORD)
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        node.log()
    );
    let locks = node.tme_ok(&["login", "locks"]).expect("login locks");
    assert!(locks.contains("ip:127.0.0.1"), "{locks}");
    node.stop().expect("stop");
}
