//! The rspamd check against a real rspamd (Debian's package, started by `tme_testkit::Rspamd`):
//! each action rspamd answers becomes the right disposition, and an rspamd that is down, hangs
//! or answers too much leaves the message to the Inbox with `RSPAMD_UNAVAILABLE`.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tme_core::config::{FilterConfig, HttpUrl, ResolverConfig, RspamdRejectAction};
use tme_filter::{Disposition, Filter, InboundMessage, Refusal, Verdict};
use tme_testkit::{GTUBE_ADD_HEADER, GTUBE_REJECT, GTUBE_REWRITE_SUBJECT, Rspamd};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn filter(url: &str, timeout_ms: u64, reject_action: RspamdRejectAction) -> Filter {
    let config = FilterConfig {
        rspamd_url: Some(HttpUrl::parse(url).expect("url")),
        rspamd_timeout_ms: timeout_ms,
        rspamd_reject_action: reject_action,
        ..FilterConfig::default()
    };
    // The DNS checks ask a closed loopback port: each fails at once as a temperror, which
    // adds no points, so only rspamd's verdict counts here.
    let resolver = ResolverConfig {
        nameservers: vec!["127.0.0.1:9".parse().expect("address")],
        timeout_ms: 50,
        ..ResolverConfig::default()
    };
    Filter::new(config, &resolver, "mx.test".to_owned()).expect("filter")
}

async fn judge(filter: &Filter, message: &[u8]) -> Verdict {
    let recipients = vec![
        "user@example.com".to_owned(),
        "other@example.com".to_owned(),
    ];
    filter
        .judge(&InboundMessage {
            // Loopback, as in the node's tests. From another address, offline, every DNS rule
            // fails and scores (no reverse DNS, HELO not resolving: 4.8 points), as the
            // recorded `rspamd-reply-clean.json` shows.
            client_ip: IpAddr::from([127, 0, 0, 1]),
            helo_name: "client.sender.test",
            mail_from: "alice@sender.test",
            recipients: &recipients,
            queue_id: "00000000000TEST1",
            tls: false,
            message,
        })
        .await
}

/// The rules the verdict holds, with their points: `RSPAMD=15`.
/// rspamd's findings (the DNS checks' temperrors, which add no points, are left out).
fn rules(verdict: &Verdict) -> Vec<String> {
    verdict
        .findings
        .iter()
        .filter(|finding| finding.rule.starts_with("RSPAMD"))
        .map(|finding| format!("{}={}", finding.rule, finding.points))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn rspamd_actions_become_dispositions() {
    let mut rspamd = Rspamd::start().expect("rspamd starts");
    let url = rspamd.url();
    let refusing = filter(&url, 10_000, RspamdRejectAction::Refuse);
    let filing = filter(&url, 10_000, RspamdRejectAction::Junk);
    let clean = std::fs::read(fixture("clean.eml")).expect("clean fixture");
    let gtube = std::fs::read(fixture("gtube.eml")).expect("gtube fixture");
    let with_pattern = |pattern: &str| {
        String::from_utf8_lossy(&gtube)
            .replace(GTUBE_REJECT, pattern)
            .into_bytes()
    };

    let verdict = judge(&refusing, &clean).await;
    assert_eq!(
        verdict.disposition,
        Disposition::Inbox,
        "{:?}\n{}",
        verdict,
        rspamd.log()
    );
    assert_eq!(rules(&verdict).len(), 1);
    assert!(rules(&verdict)[0].starts_with("RSPAMD="), "{verdict:?}");
    assert!(verdict.score < 5.0, "{verdict:?}");

    let verdict = judge(&refusing, &gtube).await;
    assert_eq!(
        verdict.disposition,
        Disposition::Refuse(Refusal::Spam),
        "{verdict:?}"
    );
    assert_eq!(rules(&verdict), ["RSPAMD=15"]);

    let verdict = judge(&filing, &gtube).await;
    assert_eq!(verdict.disposition, Disposition::Junk, "{verdict:?}");

    let verdict = judge(&refusing, &with_pattern(GTUBE_ADD_HEADER)).await;
    assert_eq!(verdict.disposition, Disposition::Junk, "{verdict:?}");
    assert_eq!(rules(&verdict), ["RSPAMD=6"]);

    // rspamd's score is 0 here: the action alone files it in Junk.
    let verdict = judge(&refusing, &with_pattern(GTUBE_REWRITE_SUBJECT)).await;
    assert_eq!(verdict.disposition, Disposition::Junk, "{verdict:?}");
    assert_eq!(rules(&verdict), ["RSPAMD=0"]);

    // rspamd logged each check with our queue id and the recipients we sent.
    let log = rspamd.log();
    assert!(log.contains("qid: <00000000000TEST1>"), "{log}");
    assert!(
        log.contains("rcpts: <user@example.com,other@example.com>"),
        "{log}"
    );

    // rspamd gone: the message goes to the Inbox, the finding says why.
    rspamd.stop().expect("rspamd stops");
    let verdict = judge(&refusing, &gtube).await;
    assert_eq!(verdict.disposition, Disposition::Inbox, "{verdict:?}");
    assert_eq!(rules(&verdict), ["RSPAMD_UNAVAILABLE=0"]);
}

/// A peer that accepts and never answers: the check gives up at its timeout.
#[tokio::test(flavor = "multi_thread")]
async fn silent_peer_times_out_and_the_message_is_accepted() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let peer = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        // Read until the client gives up and closes.
        let mut buffer = [0u8; 4096];
        while matches!(stream.read(&mut buffer), Ok(count) if count > 0) {}
    });
    let filter = filter(
        &format!("http://{address}"),
        200,
        RspamdRejectAction::Refuse,
    );
    let gtube = std::fs::read(fixture("gtube.eml")).expect("gtube fixture");
    let verdict = judge(&filter, &gtube).await;
    assert_eq!(verdict.disposition, Disposition::Inbox);
    assert_eq!(rules(&verdict), ["RSPAMD_UNAVAILABLE=0"]);
    peer.join().expect("peer");
}

/// A peer that answers more than the bound: the answer is not read to its end, nor used.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_answer_is_refused_and_the_message_is_accepted() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let peer = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        while !request.windows(4).any(|window| window == b"\r\n\r\n") {
            match stream.read(&mut buffer) {
                Ok(count) if count > 0 => request.extend_from_slice(&buffer[..count]),
                _ => return,
            }
        }
        // Valid JSON that says `reject` after 2 MiB of white space: read whole, it would
        // refuse the message.
        let mut body = vec![b' '; 2 * 1024 * 1024];
        body.extend_from_slice(br#"{"action":"reject","score":15.0,"required_score":15.0}"#);
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(&body);
    });
    let filter = filter(
        &format!("http://{address}"),
        10_000,
        RspamdRejectAction::Refuse,
    );
    let gtube = std::fs::read(fixture("gtube.eml")).expect("gtube fixture");
    let verdict = judge(&filter, &gtube).await;
    assert_eq!(verdict.disposition, Disposition::Inbox);
    assert_eq!(rules(&verdict), ["RSPAMD_UNAVAILABLE=0"]);
    peer.join().expect("peer");
}

/// Records rspamd's answers to the fixture messages as the JSON fixtures that `rspamd.rs`'s
/// unit tests parse: `cargo test -p tme-filter --test rspamd -- --ignored record`.
#[test]
#[ignore = "rewrites the recorded fixtures"]
fn record_reply_fixtures() {
    let rspamd = Rspamd::start().expect("rspamd starts");
    for name in ["clean", "gtube"] {
        let message = std::fs::read(fixture(&format!("{name}.eml"))).expect("fixture");
        let mut stream = TcpStream::connect(rspamd.address()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        write!(
            stream,
            "POST /checkv2 HTTP/1.0\r\nContent-Length: {}\r\nIP: 192.0.2.25\r\n\
             Helo: client.sender.test\r\nFrom: alice@sender.test\r\nRcpt: user@example.com\r\n\
             Queue-Id: 00000000000TEST1\r\n\r\n",
            message.len()
        )
        .expect("write");
        stream.write_all(&message).expect("write");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read");
        let body_start = answer
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .expect("an HTTP answer")
            + 4;
        let mut body = answer[body_start..].to_vec();
        body.push(b'\n');
        std::fs::write(fixture(&format!("rspamd-reply-{name}.json")), body).expect("write");
    }
}
