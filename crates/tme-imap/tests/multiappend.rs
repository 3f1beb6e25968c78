//! MULTIAPPEND (RFC 3502) through the session, on a fresh store: known answers for several
//! messages in one command (APPENDUID with the UID set, RFC 4315 §3), and for the failures
//! that must leave nothing appended (over quota on the second message, an invalid flag on
//! the second message, a mailbox that does not exist).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use tme_auth::Authenticator;
use tme_core::EmailAddress;
use tme_core::config::{LoginConfig, StoreConfig};
use tme_imap::session::{Next, Session, SessionConfig};
use tme_store::{Branding, NewAccount, Store};

const QUOTA_BYTES_MAX: u64 = 1_000;

async fn logged_in() -> (tempfile::TempDir, Session) {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = Store::open(directory.path(), &StoreConfig::default())
        .await
        .expect("open store");
    let address = EmailAddress::parse("alice@example.org").expect("address");
    store
        .directory
        .partner_add("tests", Branding::default())
        .await
        .expect("partner");
    store
        .directory
        .domain_add(address.domain(), "tests")
        .await
        .expect("domain");
    store
        .account_create(NewAccount {
            address,
            display_name: None,
            password_hash: tme_core::password::hash_password("secret").expect("hash"),
            quota_bytes_max: QUOTA_BYTES_MAX,
        })
        .await
        .expect("account");
    let authenticator = Arc::new(Authenticator::new(
        store.directory.clone(),
        LoginConfig::default(),
        Arc::new(tme_auth::Metrics::default()),
    ));
    let config = Arc::new(SessionConfig {
        hostname: "mail.example.org".to_owned(),
        literal_octets_max: 100_000,
        starttls_available: false,
        session_errors_max: 100,
        search: None,
        mailbox_lists: Arc::default(),
    });
    let mut session = Session::new(
        config,
        store,
        authenticator,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        true,
    );
    let answer = run(&mut session, b"l LOGIN alice@example.org secret\r\n").await;
    assert!(answer.contains("l OK"), "{answer}");
    (directory, session)
}

/// One command's whole answer; a FETCH is drained one message at a time as the server does.
async fn run(session: &mut Session, command: &[u8]) -> String {
    let mut out = Vec::new();
    if let Next::Fetch = session.command(command, &mut out).await {
        while let Some(mut output) = session.fetch_next().await {
            output.fill_all(&mut out);
        }
        session.fetch_end(&mut out).await;
    }
    String::from_utf8(out).expect("utf-8 answer")
}

/// The answer with the mailbox's UIDVALIDITY (random) shown as `V`.
async fn run_known(session: &mut Session, command: &[u8]) -> String {
    let status = run(session, b"s STATUS INBOX (UIDVALIDITY)\r\n").await;
    let validity = status
        .split("UIDVALIDITY ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("UIDVALIDITY")
        .to_owned();
    run(session, command)
        .await
        .replace(&format!(" {validity} "), " V ")
}

fn message(subject: &str, body_octets: usize) -> Vec<u8> {
    let mut message = format!("Subject: {subject}\r\n\r\n").into_bytes();
    message.resize(message.len() + body_octets, b'x');
    message
}

/// `tag APPEND INBOX` with each message as `[flags] {N+}` literal.
fn multiappend(tag: &str, messages: &[(&str, &[u8])]) -> Vec<u8> {
    let mut command = format!("{tag} APPEND INBOX").into_bytes();
    for (flags, message) in messages {
        command.push(b' ');
        if !flags.is_empty() {
            command.extend_from_slice(flags.as_bytes());
            command.push(b' ');
        }
        command.extend_from_slice(format!("{{{}+}}\r\n", message.len()).as_bytes());
        command.extend_from_slice(message);
    }
    command.extend_from_slice(b"\r\n");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_messages_in_one_command() {
    let (_directory, mut session) = logged_in().await;
    let capability = run(&mut session, b"c CAPABILITY\r\n").await;
    assert!(capability.contains(" MULTIAPPEND "), "{capability}");
    let (one, two, three) = (message("one", 10), message("two", 20), message("three", 30));
    let command = multiappend(
        "a",
        &[
            ("(\\Seen)", &one),
            ("", &two),
            ("(\\Flagged $Work)", &three),
        ],
    );
    expect_test::expect![[r#"
        a OK [APPENDUID V 1:3] APPEND completed
    "#]]
    .assert_eq(&run_known(&mut session, &command).await.replace('\r', ""));
    // A date-time and a literal8 (BINARY) in the same command.
    let mut command = b"d APPEND INBOX \"01-Jan-2024 10:00:00 +0000\" {5+}\r\nS: a\n".to_vec();
    command.extend_from_slice(b" ~{5}\r\nS: b\n\r\n");
    expect_test::expect![[r#"
        d OK [APPENDUID V 4:5] APPEND completed
    "#]]
    .assert_eq(&run_known(&mut session, &command).await.replace('\r', ""));
    let selected = run(&mut session, b"e SELECT INBOX\r\n").await;
    assert!(selected.contains("* 5 EXISTS"), "{selected}");
    let fetched = run(
        &mut session,
        b"f FETCH 1:3 (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n",
    )
    .await;
    let lines: Vec<&str> = fetched.split("* ").skip(1).collect();
    assert_eq!(lines.len(), 3, "{fetched}");
    for (line, (subject, flag)) in
        lines
            .iter()
            .zip([("one", "\\Seen"), ("two", ""), ("three", "$Work")])
    {
        assert!(line.contains(&format!("Subject: {subject}")), "{fetched}");
        assert!(line.contains(flag), "{fetched}");
    }
    assert!(lines[2].contains("\\Flagged"), "{fetched}");
    let dated = run(&mut session, b"h FETCH 4 (INTERNALDATE)\r\n").await;
    assert!(dated.contains("\"01-Jan-2024 10:00:00 +0000\""), "{dated}");
    // Appended while selected: the new messages are reported before the tagged OK.
    let command = multiappend("g", &[("", &one), ("", &two)]);
    expect_test::expect![[r#"
        * 7 EXISTS
        g OK [APPENDUID V 6:7] APPEND completed
    "#]]
    .assert_eq(&run_known(&mut session, &command).await.replace('\r', ""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_in_the_middle_appends_nothing() {
    let (_directory, mut session) = logged_in().await;
    let small = message("small", 100);
    // The second message goes over the account's quota: neither is kept.
    let large = message("large", QUOTA_BYTES_MAX as usize);
    let answer = run(
        &mut session,
        &multiappend("a", &[("", &small), ("", &large)]),
    )
    .await;
    assert!(answer.starts_with("a NO [OVERQUOTA]"), "{answer}");
    // An invalid flag on the second message: BAD, neither is kept.
    let answer = run(
        &mut session,
        &multiappend("b", &[("", &small), ("(\\Nonsense)", &small)]),
    )
    .await;
    assert!(answer.starts_with("b BAD"), "{answer}");
    // A syntax error after the first message: BAD.
    let mut command = multiappend("c", &[("", &small), ("", &small)]);
    command.truncate(command.len() - 2);
    command.extend_from_slice(b" (\\Seen\r\n");
    let answer = run(&mut session, &command).await;
    assert!(answer.starts_with("c BAD"), "{answer}");
    let status = run(&mut session, b"s STATUS INBOX (MESSAGES UIDNEXT)\r\n").await;
    assert!(
        status.contains("(MESSAGES 0 UIDNEXT 1)"),
        "nothing was appended: {status}"
    );
    // A mailbox that does not exist: TRYCREATE.
    let command = multiappend("d", &[("", &small), ("", &small)]);
    let command = [
        &b"d APPEND Nowhere"[..],
        &command[b"d APPEND INBOX".len()..],
    ]
    .concat();
    let answer = run(&mut session, &command).await;
    assert!(answer.starts_with("d NO [TRYCREATE]"), "{answer}");
}
