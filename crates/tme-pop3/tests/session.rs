//! The session against a real store in a temporary directory: a known-answer transcript of
//! every command, and random lines thrown at every state (no panic, every answer a POP3
//! answer, nothing deleted without QUIT).

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::sync::Arc;

use tme_auth::Authenticator;
use tme_core::EmailAddress;
use tme_core::config::LoginConfig;
use tme_pop3::Metrics;
use tme_pop3::maildrop::{MaildropLocks, WireSizeCache};
use tme_pop3::session::{Next, Session, SessionConfig, Shared};
use tme_store::fixture::store_with_account;
use tme_store::{Delivery, Flags, Store};

const MESSAGES: [&[u8]; 2] = [
    b"Subject: one\r\n\r\nfirst\r\n.dot\r\n",
    b"Subject: two\n\nbare\nline feeds",
];

struct Fixture {
    _directory: tempfile::TempDir,
    store: Store,
    shared: Arc<Shared>,
    uid_validity: u32,
}

async fn fixture() -> Fixture {
    let directory = tempfile::tempdir().unwrap();
    let (store, account) = store_with_account(
        directory.path(),
        "alice@example.org",
        "right password",
        1 << 30,
    )
    .await
    .unwrap();
    let inbox = store
        .mail
        .mailbox_find(account.id, "INBOX")
        .await
        .unwrap()
        .unwrap();
    let flags = Flags::default();
    for raw in MESSAGES {
        store
            .deliver(&[Delivery {
                account: account.id,
                mailbox: inbox.id,
                raw,
                internal_date_unix: Some(0),
                flags: &flags,
            }])
            .await
            .unwrap();
    }
    // Random lines make many failed logins: no delay and no lock here.
    let login = LoginConfig {
        failures_before_delay: 1_000_000,
        failures_per_account_max: 1_000_000,
        failures_per_ip_max: 1_000_000,
        ..LoginConfig::default()
    };
    let shared = Arc::new(Shared {
        authenticator: Arc::new(Authenticator::new(
            store.directory.clone(),
            login,
            Arc::new(tme_auth::Metrics::default()),
        )),
        store: store.clone(),
        locks: MaildropLocks::default(),
        wire_sizes: WireSizeCache::default(),
        metrics: Arc::new(Metrics::default()),
    });
    Fixture {
        _directory: directory,
        store,
        shared,
        uid_validity: inbox.uid_validity,
    }
}

fn session(fixture: &Fixture, tls_active: bool, session_errors_max: u32) -> Session {
    let config = Arc::new(SessionConfig {
        hostname: "mail.test".to_owned(),
        starttls_available: true,
        session_errors_max,
    });
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    Session::new(config, fixture.shared.clone(), ip, tls_active)
}

/// Runs one line; returns what the session answered (a transfer sent whole) and what next.
async fn exchange(session: &mut Session, line: &[u8]) -> (Vec<u8>, &'static str) {
    let mut out = Vec::new();
    let next = session.line(line, &mut out).await;
    let label = match next {
        Next::Continue => "",
        Next::StartTls => "[start TLS]\n",
        Next::Close => "[close]\n",
        Next::Transfer(mut transfer) => {
            while !transfer.fill(&mut out) {}
            ""
        }
    };
    (out, label)
}

async fn transcript(fixture: &Fixture, session: &mut Session, lines: &[&str]) -> String {
    let mut text = String::new();
    for line in lines {
        let shown = if line.starts_with("PASS") {
            "PASS ***"
        } else {
            line
        };
        text.push_str(&format!("C: {shown}\n"));
        let (out, label) = exchange(session, line.as_bytes()).await;
        for answer in String::from_utf8_lossy(&out).split_inclusive("\r\n") {
            text.push_str(&format!("S: {}\n", answer.trim_end_matches("\r\n")));
        }
        text.push_str(label);
    }
    text.replace(&format!("{:08x}", fixture.uid_validity), "VVVVVVVV")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_known_answers() {
    let fixture = fixture().await;
    let mut plain = session(&fixture, false, 100);
    let text = transcript(
        &fixture,
        &mut plain,
        &["CAPA", "USER alice@example.org", "STLS"],
    )
    .await;
    expect_test::expect![[r#"
        C: CAPA
        S: +OK Capability list follows
        S: TOP
        S: UIDL
        S: RESP-CODES
        S: AUTH-RESP-CODE
        S: PIPELINING
        S: IMPLEMENTATION tme
        S: STLS
        S: .
        C: USER alice@example.org
        S: -ERR [AUTH] Plain-text login is disabled: use STLS (or the pop3s port) first
        C: STLS
        S: +OK Begin TLS negotiation
        [start TLS]
    "#]]
    .assert_eq(&text);

    let mut tls = session(&fixture, true, 100);
    let text = transcript(
        &fixture,
        &mut tls,
        &[
            "STAT",
            "PASS right password",
            "USER alice@example.org",
            "PASS wrong",
            "USER alice@example.org",
            "PASS right password",
            "STAT",
            "LIST",
            "LIST 2",
            "UIDL",
            "RETR 1",
            "RETR 2",
            "TOP 2 1",
            "DELE 1",
            "LIST 1",
            "STAT",
            "RSET",
            "DELE 2",
            "NOOP",
            "QUIT",
        ],
    )
    .await;
    expect_test::expect![[r#"
        C: STAT
        S: -ERR STAT is not valid in this state
        C: PASS ***
        S: -ERR USER first
        C: USER alice@example.org
        S: +OK send PASS
        C: PASS ***
        S: -ERR [AUTH] Authentication failed
        C: USER alice@example.org
        S: +OK send PASS
        C: PASS ***
        S: +OK Logged in: 2 messages (63 octets)
        C: STAT
        S: +OK 2 63
        C: LIST
        S: +OK 2 messages (63 octets)
        S: 1 29
        S: 2 34
        S: .
        C: LIST 2
        S: +OK 2 34
        C: UIDL
        S: +OK Unique-ID listing follows
        S: 1 VVVVVVVV00000001
        S: 2 VVVVVVVV00000002
        S: .
        C: RETR 1
        S: +OK 29 octets
        S: Subject: one
        S: 
        S: first
        S: ..dot
        S: .
        C: RETR 2
        S: +OK 34 octets
        S: Subject: two
        S: 
        S: bare
        S: line feeds
        S: .
        C: TOP 2 1
        S: +OK top of message follows
        S: Subject: two
        S: 
        S: bare
        S: .
        C: DELE 1
        S: +OK message 1 deleted
        C: LIST 1
        S: -ERR message 1 already deleted
        C: STAT
        S: +OK 1 34
        C: RSET
        S: +OK 2 messages (63 octets)
        C: DELE 2
        S: +OK message 2 deleted
        C: NOOP
        S: +OK
        C: QUIT
        S: +OK mail.test POP3 signing off (1 deleted, 1 left)
        [close]
    "#]]
    .assert_eq(&text);
    let account = fixture
        .store
        .account_open(&EmailAddress::parse("alice@example.org").unwrap())
        .await
        .unwrap();
    let inbox = fixture
        .store
        .mail
        .mailbox_find(account.id, "INBOX")
        .await
        .unwrap()
        .unwrap();
    let left = fixture
        .store
        .mail
        .message_list(account.id, inbox.id)
        .await
        .unwrap();
    assert_eq!(left.len(), 1, "QUIT expunged the message DELE marked");
    assert!(
        left[0]
            .flags
            .system
            .contains(tme_store::mail::SystemFlags::SEEN),
        "RETR marked the kept message \\Seen"
    );
}

/// A small deterministic generator (xorshift), so a failure repeats.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// A random line: a keyword (known or not) and random arguments, sometimes raw bytes.
fn random_line(random: &mut Random) -> Vec<u8> {
    // No QUIT: the sessions end by being dropped, as a lost connection ends, and must leave
    // the store as it was (QUIT is in the transcript).
    const WORDS: [&str; 21] = [
        "USER",
        "PASS",
        "AUTH",
        "STLS",
        "CAPA",
        "STAT",
        "LIST",
        "RETR",
        "DELE",
        "NOOP",
        "RSET",
        "TOP",
        "UIDL",
        "APOP",
        "PLAIN",
        "*",
        "=",
        "1",
        "2",
        "0",
        "99999999999999999999",
    ];
    let mut line = Vec::new();
    for index in 0..random.below(5) {
        if index > 0 {
            line.push(b' ');
        }
        match random.below(6) {
            0 => line.extend((0..random.below(20)).map(|_| random.next() as u8)),
            1 => line.extend_from_slice(b"alice@example.org"),
            _ => line.extend_from_slice(WORDS[random.below(WORDS.len())].as_bytes()),
        }
    }
    line.retain(|&byte| byte != b'\n' && byte != b'\r');
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_lines_in_every_state_get_pop3_answers_and_delete_nothing() {
    let fixture = fixture().await;
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    // Every state the session has: before TLS, after it, after USER, waiting for a SASL
    // response, logged in.
    let preludes: [&[&str]; 5] = [
        &[],
        &[],
        &["USER alice@example.org"],
        &["AUTH PLAIN"],
        &["USER alice@example.org", "PASS right password"],
    ];
    for (state, prelude) in preludes.iter().enumerate() {
        for _ in 0..40 {
            let mut session = session(&fixture, state != 0, 1000);
            for line in *prelude {
                exchange(&mut session, line.as_bytes()).await;
            }
            // The maildrop lock of the session before was released when it was dropped.
            assert_eq!(session.logged_in(), state == 4);
            for _ in 0..20 {
                let line = random_line(&mut random);
                let (out, label) = exchange(&mut session, &line).await;
                assert!(
                    out.starts_with(b"+OK") || out.starts_with(b"-ERR ") || out == b"+ \r\n",
                    "state {state}, {:?}: {:?}",
                    String::from_utf8_lossy(&line),
                    String::from_utf8_lossy(&out)
                );
                if !label.is_empty() {
                    break;
                }
            }
        }
    }
    let account = fixture
        .store
        .account_open(&EmailAddress::parse("alice@example.org").unwrap())
        .await
        .unwrap();
    let inbox = fixture
        .store
        .mail
        .mailbox_find(account.id, "INBOX")
        .await
        .unwrap()
        .unwrap();
    let left = fixture
        .store
        .mail
        .message_list(account.id, inbox.id)
        .await
        .unwrap();
    assert_eq!(left.len(), MESSAGES.len(), "nothing deleted without QUIT");
    assert!(
        left.iter().all(|record| record.flags == Flags::default()),
        "nothing marked without QUIT"
    );
}
