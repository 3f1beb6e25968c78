//! The `dns` role against real peers: `dig` and `kdig` (Debian's dnsutils and knot-dnsutils)
//! over UDP and TCP, with the DNSSEC-OK bit and several EDNS sizes, for every record type tme
//! makes; a real NSD configured as a secondary, which transfers each zone by AXFR, gets a
//! NOTIFY after a change, and then answers every name as tme does; raw garbage and a flood
//! over UDP.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tme_testkit::Node;
use tme_testkit::dns::{Nsd, free_udp_and_tcp_port};

const TME: &str = env!("CARGO_BIN_EXE_tme");
const DOMAINS: &[&str] = &["example.com", "example.net", "xn--bcher-kva.example"];
/// How long a change may take to reach the secondary before the test gives up (a bound, not
/// a speed check: the NOTIFY usually lands within a second).
const PROPAGATION_LIMIT: Duration = Duration::from_secs(60);

/// Runs a DNS client (`dig` or `kdig`) against `server` and returns its output.
fn client(program: &str, server: SocketAddr, arguments: &[&str]) -> String {
    let output = Command::new(program)
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(arguments)
        .output()
        .unwrap_or_else(|error| {
            panic!("{program} is missing (scripts/test.sh installs it): {error}")
        });
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The status, the answer section and (for negative answers) the authority section, with
/// records sorted: what two authoritative servers must agree on.
fn answer_of(server: SocketAddr, name: &str, record_type: &str) -> String {
    let output = client(
        "dig",
        server,
        &[
            name,
            record_type,
            "+norec",
            "+noall",
            "+comments",
            "+answer",
            "+authority",
            "+tcp",
        ],
    );
    let status = output
        .lines()
        .find_map(|line| line.split("status: ").nth(1))
        .map(|rest| rest.split(',').next().unwrap_or_default().to_owned())
        .unwrap_or_else(|| format!("no answer: {output}"));
    let mut records: Vec<String> = output
        .lines()
        .filter(|line| !line.starts_with(';') && !line.trim().is_empty())
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        // NSD adds the NS set to the authority section of positive answers; tme answers
        // minimally. Negative answers carry the SOA in both.
        .filter(|line| !(status == "NOERROR" && line.contains(" IN NS ") && record_type != "NS"))
        .collect();
    records.sort();
    format!("{status}\n{}", records.join("\n"))
}

fn soa_serial(server: SocketAddr, zone: &str) -> Option<u32> {
    client("dig", server, &[zone, "SOA", "+short", "+norec"])
        .split_whitespace()
        .nth(2)
        .and_then(|serial| serial.parse().ok())
}

/// Every owner name and type tme serves for `domain`, from `tme domain show`.
fn served_rrsets(node: &Node, domain: &str) -> Vec<(String, String)> {
    let shown = node
        .tme_ok(&["domain", "show", domain])
        .expect("domain show");
    let mut sets: Vec<(String, String)> = shown
        .lines()
        .filter(|line| line.starts_with("  "))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some((fields.first()?.to_string(), fields.get(3)?.to_string()))
        })
        .collect();
    sets.dedup();
    sets
}

/// The value of one series on the node's `/metrics` (0 when it is not there).
fn metric(node: &Node, series: &str) -> u64 {
    let (status, text) = node.http_get("/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PROPAGATION_LIMIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen in {PROPAGATION_LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn nsd_secondary_transfers_every_zone_gets_notify_and_answers_as_tme_does() {
    let secondary_address = free_udp_and_tcp_port().expect("port");
    let mut node = Node::init(Path::new(TME)).expect("init");
    node.set_environment("TME_DNS__TRANSFER_ALLOW", "[\"127.0.0.1\"]");
    node.set_environment("TME_DNS__NOTIFY", &format!("[\"{secondary_address}\"]"));
    node.set_environment(
        "TME_DNS__MAIL_HOSTS",
        r#"[{ host = "mx1.example.com", site = "paris", priority = 10, addresses = ["192.0.2.25", "2001:db8::25"] }, { host = "mx2.example.net", site = "oslo", priority = 20 }]"#,
    );
    node.tme_ok(&["partner", "add", "Acme"]).expect("partner");
    for domain in DOMAINS {
        node.tme_ok(&["domain", "add", domain, "--partner", "Acme"])
            .expect("domain");
    }
    for (name, record_type, value) in [
        ("www", "A", "192.0.2.80"),
        ("www", "AAAA", "2001:db8::80"),
        ("blog", "CNAME", "www"),
        ("@", "TXT", "\"site-verification=abc\" \"second string\""),
        ("lists", "MX", "5 mx1.example.com."),
        ("_sip._tcp", "SRV", "10 5 5060 sip.example.org."),
        ("@", "CAA", "0 issue \"letsencrypt.org\""),
    ] {
        node.tme_ok(&[
            "domain",
            "record",
            "add",
            "example.com",
            name,
            record_type,
            value,
        ])
        .expect("record add");
    }
    node.serve().expect("serve");
    let primary = node.address("dns");
    let origins: Vec<String> = DOMAINS.iter().map(|domain| format!("{domain}.")).collect();
    let origin_refs: Vec<&str> = origins.iter().map(String::as_str).collect();
    let nsd = Nsd::start_secondary(secondary_address, primary, &origin_refs).expect("nsd");
    for domain in DOMAINS {
        wait_for(&format!("NSD loading {domain}"), || {
            soa_serial(nsd.address(), domain).is_some()
        });
    }

    // Every RRset, a name that does not exist and a type the apex lacks: the same answers.
    for domain in DOMAINS {
        assert_eq!(
            soa_serial(nsd.address(), domain),
            soa_serial(primary, domain),
            "{domain} serial"
        );
        let mut questions = served_rrsets(&node, domain);
        assert!(questions.len() >= 16, "{domain}: {questions:?}");
        questions.push((format!("{domain}."), "SOA".to_owned()));
        questions.push((format!("nothing-here.{domain}."), "A".to_owned()));
        questions.push((format!("{domain}."), "AAAA".to_owned()));
        questions.push((format!("_tcp.{domain}."), "A".to_owned()));
        for (name, record_type) in &questions {
            let ours = answer_of(primary, name, record_type);
            assert!(
                !ours.starts_with("no answer"),
                "{name} {record_type}: {ours}"
            );
            assert_eq!(
                answer_of(nsd.address(), name, record_type),
                ours,
                "{name} {record_type}"
            );
        }
    }
    assert_eq!(
        answer_of(primary, "blog.example.com.", "A"),
        "NOERROR\nblog.example.com. 3600 IN CNAME www.example.com.\nwww.example.com. 3600 IN A 192.0.2.80"
    );
    assert_eq!(
        answer_of(nsd.address(), "blog.example.com.", "A"),
        answer_of(primary, "blog.example.com.", "A")
    );

    // A change: answered by tme with a higher serial, then by NSD after the NOTIFY.
    let serial_before = soa_serial(primary, "example.net").expect("serial");
    node.tme_ok(&[
        "domain",
        "record",
        "add",
        "example.net",
        "new",
        "A",
        "192.0.2.99",
    ])
    .expect("record add");
    wait_for("tme serving the change", || {
        answer_of(primary, "new.example.net.", "A").starts_with("NOERROR\nnew.example.net.")
    });
    let serial_after = soa_serial(primary, "example.net").expect("serial");
    assert!(
        serial_after > serial_before,
        "{serial_after} > {serial_before}"
    );
    assert_eq!(
        soa_serial(primary, "example.com"),
        soa_serial(nsd.address(), "example.com"),
        "other zones keep their serial"
    );
    wait_for("NSD transferring the change", || {
        soa_serial(nsd.address(), "example.net") == Some(serial_after)
    });
    assert_eq!(
        answer_of(nsd.address(), "new.example.net.", "A"),
        answer_of(primary, "new.example.net.", "A")
    );
    assert!(node.log().contains("NOTIFY acknowledged"), "{}", node.log());
    assert!(
        nsd.log().contains("notify"),
        "NSD logged the NOTIFY:\n{}",
        nsd.log()
    );

    // What the role counted: the transfers NSD made, the NOTIFYs it acknowledged, the
    // rebuilds (at start and after the change), and answers by transport and RCODE.
    let metrics = [
        ("tme_dns_zones", 3),
        ("tme_dns_zones_changed_total", 4),
        ("tme_dns_zone_rebuilds_total{outcome=\"ok\"}", 2),
        ("tme_dns_transfers_total{outcome=\"sent\"}", 4),
        ("tme_dns_notifies_total{outcome=\"sent\"}", 4),
        ("tme_dns_notifies_total{outcome=\"acknowledged\"}", 1),
        (
            "tme_dns_queries_total{transport=\"udp\",rcode=\"noerror\"}",
            1,
        ),
        (
            "tme_dns_queries_total{transport=\"tcp\",rcode=\"noerror\"}",
            50,
        ),
        (
            "tme_dns_queries_total{transport=\"tcp\",rcode=\"nxdomain\"}",
            3,
        ),
    ];
    for (series, at_least) in metrics {
        let value = metric(&node, series);
        assert!(
            value >= at_least,
            "{series} is {value}, expected {at_least} or more"
        );
    }
    assert_eq!(metric(&node, "tme_dns_zones"), 3);

    // A zone transfer from an address not allowed is refused (dig asks from 127.0.0.1, so
    // a node without the allow list shows it).
    let transfer = client("dig", primary, &["example.com", "AXFR"]);
    assert!(transfer.contains("IN\tSOA"), "{transfer}");
    drop(nsd);
    node.stop().expect("stop");
}

#[test]
fn dig_and_kdig_over_udp_and_tcp_with_edns_and_dnssec_ok() {
    let mut node = Node::init(Path::new(TME)).expect("init");
    node.tme_ok(&["partner", "add", "Acme"]).expect("partner");
    node.tme_ok(&["domain", "add", "example.com", "--partner", "Acme"])
        .expect("domain");
    node.tme_ok(&[
        "domain",
        "record",
        "add",
        "example.com",
        "@",
        "CAA",
        "0 issue \"ca.example\"",
    ])
    .expect("record");
    let long_text = format!(
        "\"{}\" \"{}\" \"{}\"",
        "a".repeat(255),
        "b".repeat(255),
        "c".repeat(255)
    );
    node.tme_ok(&[
        "domain",
        "record",
        "add",
        "example.com",
        "big",
        "TXT",
        &long_text,
    ])
    .expect("record");
    node.serve().expect("serve");
    let server = node.address("dns");
    let shown = node
        .tme_ok(&["domain", "show", "example.com"])
        .expect("show");
    let selector = shown
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("rsa-")
                .map(|rest| rest.split('.').next().unwrap_or("").to_owned())
        })
        .expect("an RSA selector");
    for (name, record_type, expected) in [
        ("example.com", "SOA", "hostmaster.mail.test."),
        ("example.com", "NS", "mail.test."),
        ("example.com", "MX", "10 mail.test."),
        ("example.com", "TXT", "\"v=spf1 mx ~all\""),
        ("example.com", "CAA", "0 issue \"ca.example\""),
        (
            &format!("rsa-{selector}._domainkey.example.com"),
            "TXT",
            "\"v=DKIM1; k=rsa; p=MIIBIjAN",
        ),
        (
            &format!("ed25519-{selector}._domainkey.example.com"),
            "TXT",
            "\"v=DKIM1; k=ed25519; p=",
        ),
        ("_dmarc.example.com", "TXT", "\"v=DMARC1; p=none\""),
        ("_mta-sts.example.com", "TXT", "\"v=STSv1; id="),
        (
            "_smtp._tls.example.com",
            "TXT",
            "\"v=TLSRPTv1; rua=mailto:postmaster@example.com\"",
        ),
        ("_imaps._tcp.example.com", "SRV", "0 1 993 mail.test."),
        ("_submissions._tcp.example.com", "SRV", "0 1 465 mail.test."),
        ("_pop3s._tcp.example.com", "SRV", "0 1 995 mail.test."),
        ("_jmap._tcp.example.com", "SRV", "0 1 443 mail.test."),
        ("autoconfig.example.com", "CNAME", "mail.test."),
        ("autodiscover.example.com", "CNAME", "mail.test."),
        ("mta-sts.example.com", "CNAME", "mail.test."),
    ] {
        for program in ["dig", "kdig"] {
            for transport in ["+notcp", "+tcp"] {
                for edns in ["+noedns", "+bufsize=1232", "+bufsize=4096"] {
                    for dnssec in ["+nodnssec", "+dnssec"] {
                        // A 2048-bit RSA key without EDNS does not fit 512 octets: dig
                        // retries over TCP on TC, as a resolver would.
                        let output = client(
                            program,
                            server,
                            &[
                                name,
                                record_type,
                                "+short",
                                transport,
                                edns,
                                dnssec,
                                "+norec",
                            ],
                        );
                        assert!(
                            output.contains(expected),
                            "{program} {name} {record_type} {transport} {edns} {dnssec}: {output}"
                        );
                    }
                }
            }
        }
    }
    // Over UDP without EDNS the big TXT is truncated (TC), with no record; TCP gets it.
    let truncated = client(
        "dig",
        server,
        &["big.example.com", "TXT", "+noedns", "+ignore", "+norec"],
    );
    assert!(truncated.contains("flags: qr aa tc"), "{truncated}");
    assert!(truncated.contains("ANSWER: 0"), "{truncated}");
    let whole = client(
        "kdig",
        server,
        &["big.example.com", "TXT", "+tcp", "+norec"],
    );
    assert!(whole.contains(&"c".repeat(255)), "{whole}");
    // EDNS: our size is announced, DO copied, no recursion offered, REFUSED for others'
    // zones, NXDOMAIN with the SOA.
    let edns = client(
        "dig",
        server,
        &["example.com", "A", "+dnssec", "+bufsize=4096"],
    );
    assert!(edns.contains("flags: do; udp: 1232"), "{edns}");
    assert!(!edns.contains(" ra"), "{edns}");
    assert!(client("dig", server, &["example.org", "A"]).contains("status: REFUSED"));
    let missing = client("kdig", server, &["nothing.example.com", "A", "+norec"]);
    assert!(missing.contains("NXDOMAIN"), "{missing}");
    assert!(missing.contains("SOA"), "{missing}");
    let version = client(
        "dig",
        server,
        &["example.com", "A", "+edns=1", "+noednsnegotiation"],
    );
    assert!(version.contains("BADVERS"), "{version}");
    let chaos = client("dig", server, &["version.bind", "TXT", "CH"]);
    assert!(chaos.contains("status: REFUSED"), "{chaos}");
    let any = client("kdig", server, &["example.com", "ANY", "+norec"]);
    assert!(
        any.contains("ANSWER: 1"),
        "RFC 8482: one RRset for ANY: {any}"
    );

    // `tme domain check` through a resolver that is tme itself: every record set as served.
    node.set_environment("TME_RESOLVER__NAMESERVERS", &format!("[\"{server}\"]"));
    let checked = node
        .tme_ok(&["domain", "check", "example.com"])
        .expect("check");
    assert!(
        checked.contains("every record set of example.com is as tme serves it"),
        "{checked}"
    );
    assert!(
        checked.contains("ok        _dmarc.example.com. TXT"),
        "{checked}"
    );
    // Through an NSD with an empty root, nothing is there: each record set is missing, with
    // the record to set, and the command fails.
    let nsd = Nsd::start(&[tme_testkit::dns::Zone::root("")]).expect("nsd");
    node.set_environment("TME_RESOLVER__NAMESERVERS", &nsd.nameservers_setting());
    let output = node
        .tme(&["domain", "check", "example.com"])
        .expect("check");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    assert!(
        printed.contains(
            "missing   example.com. MX; set:\n            example.com. 3600 IN MX 10 mail.test."
        ),
        "{printed}"
    );
    node.stop().expect("stop");
}

#[test]
fn garbage_and_a_flood_over_udp_get_no_panic_and_are_limited() {
    let mut node = Node::init(Path::new(TME)).expect("init");
    node.set_environment("TME_DNS__RESPONSES_PER_SECOND_MAX", "20");
    node.tme_ok(&["partner", "add", "Acme"]).expect("partner");
    node.tme_ok(&["domain", "add", "example.com", "--partner", "Acme"])
        .expect("domain");
    node.serve().expect("serve");
    let server = node.address("dns");
    let socket = UdpSocket::bind("127.0.0.1:0").expect("socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x12],
        vec![
            0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1,
        ],
        vec![
            0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x3f, b'a', 0, 0, 1,
        ],
        vec![0xff; 4097],
        vec![0; 65_000],
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..200 {
        let length = (state % 300) as usize;
        garbage.push(
            (0..length)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect(),
        );
    }
    for datagram in &garbage {
        let _ = socket.send_to(datagram, server);
    }
    // The loop with an ID gets FORMERR with that ID.
    socket.send_to(&garbage[2], server).expect("send");
    let mut buffer = [0u8; 512];
    let mut formerr = false;
    while let Ok((length, _)) = socket.recv_from(&mut buffer) {
        if length >= 4 && buffer[..2] == [0x12, 0x34] && buffer[3] & 0x0f == 1 {
            formerr = true;
        }
    }
    assert!(formerr, "a compression loop gets FORMERR");
    // Still answering, and still the same process.
    assert!(
        client("dig", server, &["example.com", "SOA", "+short"]).contains("hostmaster.mail.test.")
    );
    assert!(node.pid().is_some());

    // A flood from one address: far fewer answers than queries (20 a second, with half the
    // excess sent truncated). No timing is asserted: 2,000 queries sent as fast as possible
    // arrive in far less than the 50 s that answering them all would need.
    let query = {
        let mut query = vec![0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in ["example", "com"] {
            query.push(label.len() as u8);
            query.extend_from_slice(label.as_bytes());
        }
        query.extend_from_slice(&[0, 0, 6, 0, 1]);
        query
    };
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let sent = 2_000;
    for _ in 0..sent {
        let _ = socket.send_to(&query, server);
    }
    let (mut full, mut truncated) = (0, 0);
    while let Ok((length, _)) = socket.recv_from(&mut buffer) {
        if length >= 12 && buffer[2] & 0x02 != 0 {
            truncated += 1;
        } else {
            full += 1;
        }
    }
    assert!(full < sent / 4, "full answers {full} of {sent}");
    assert!(
        truncated > 0,
        "some answers are sent truncated so real clients retry over TCP"
    );
    // TCP is never limited.
    assert!(
        client("dig", server, &["example.com", "SOA", "+short", "+tcp"]).contains("hostmaster")
    );
    // Counted: what was held back, the datagrams not answered at all, the FORMERRs.
    for series in [
        "tme_dns_rate_limited_total{outcome=\"dropped\"}",
        "tme_dns_rate_limited_total{outcome=\"slipped\"}",
        "tme_dns_queries_dropped_total",
        "tme_dns_queries_total{transport=\"udp\",rcode=\"formerr\"}",
        "tme_dns_queries_total{transport=\"tcp\",rcode=\"noerror\"}",
    ] {
        assert!(metric(&node, series) > 0, "{series}");
    }
    node.stop().expect("stop");
}

/// One HTTP request with Python's http.client (a real client), returning status and body.
fn http(address: SocketAddr, method: &str, path: &str, host: &str, body: &str) -> (u16, String) {
    let script = r#"
import http.client, sys
connection = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=30)
connection.request(sys.argv[3], sys.argv[4], body=sys.argv[6].encode() or None, headers={"Host": sys.argv[5]})
response = connection.getresponse()
sys.stdout.write(str(response.status) + "\n" + response.read().decode())
"#;
    let output = Command::new("python3")
        .args([
            "-c",
            script,
            &address.ip().to_string(),
            &address.port().to_string(),
            method,
            path,
            host,
            body,
        ])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (status, body) = text.split_once('\n').unwrap_or(("0", ""));
    (status.parse().unwrap_or(0), body.to_owned())
}

#[test]
fn mta_sts_autoconfig_autodiscover_and_mobileconfig_over_http() {
    let mut node = Node::init(Path::new(TME)).expect("init");
    node.set_environment("TME_DNS__MTA_STS_MODE", "enforce");
    // Submission published on another port than 465 (as behind a load balancer): the SRV
    // record and every document say so; the others keep the standard ports.
    node.set_environment("TME_DNS__CLIENT_PORTS__SUBMISSIONS", "10465");
    node.tme_ok(&["partner", "add", "Acme", "--product-name", "Acme Mail"])
        .expect("partner");
    node.tme_ok(&["domain", "add", "example.com", "--partner", "Acme"])
        .expect("domain");
    node.serve().expect("serve");
    let web = node.address("http");
    let (status, policy) = http(
        web,
        "GET",
        "/.well-known/mta-sts.txt",
        "mta-sts.example.com",
        "",
    );
    assert_eq!(
        (status, policy.as_str()),
        (
            200,
            "version: STSv1\r\nmode: enforce\r\nmx: mail.test\r\nmax_age: 604800\r\n"
        )
    );
    // The policy id in DNS changes with the policy; here it is the one served.
    let id = client(
        "dig",
        node.address("dns"),
        &["_mta-sts.example.com", "TXT", "+short"],
    );
    assert!(id.contains("v=STSv1; id="), "{id}");
    assert_eq!(
        http(
            web,
            "GET",
            "/.well-known/mta-sts.txt",
            "mta-sts.example.org",
            ""
        )
        .0,
        404
    );
    assert_eq!(
        http(web, "GET", "/.well-known/mta-sts.txt", "example.com", "").0,
        404
    );

    let (status, config) = http(
        web,
        "GET",
        "/mail/config-v1.1.xml?emailaddress=ann%40example.com",
        "autoconfig.example.com",
        "",
    );
    assert_eq!(status, 200);
    assert!(
        config.contains("<displayName>Acme Mail</displayName>"),
        "{config}"
    );
    assert!(
        config.contains("<hostname>mail.test</hostname>\n      <port>993</port>"),
        "{config}"
    );
    assert!(
        config.contains("<hostname>mail.test</hostname>\n      <port>10465</port>"),
        "{config}"
    );
    let srv = client(
        "dig",
        node.address("dns"),
        &["_submissions._tcp.example.com", "SRV", "+short"],
    );
    assert_eq!(srv.trim(), "0 1 10465 mail.test.");
    let srv = client(
        "dig",
        node.address("dns"),
        &["_imaps._tcp.example.com", "SRV", "+short"],
    );
    assert_eq!(srv.trim(), "0 1 993 mail.test.");
    let (status, config) = http(
        web,
        "GET",
        "/.well-known/autoconfig/mail/config-v1.1.xml",
        "autoconfig.example.com",
        "",
    );
    assert_eq!(status, 200);
    assert!(config.contains("<domain>example.com</domain>"), "{config}");
    assert_eq!(
        http(
            web,
            "GET",
            "/mail/config-v1.1.xml?emailaddress=ann%40example.org",
            "x",
            ""
        )
        .0,
        404
    );

    let request = r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>ann@example.com</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"#;
    let (status, answer) = http(
        web,
        "POST",
        "/autodiscover/autodiscover.xml",
        "autodiscover.example.com",
        request,
    );
    assert_eq!(status, 200);
    assert!(answer.contains("<Type>IMAP</Type>\n        <Server>mail.test</Server>\n        <Port>993</Port>\n        <LoginName>ann@example.com</LoginName>"), "{answer}");
    assert!(
        answer.contains(
            "<Type>SMTP</Type>\n        <Server>mail.test</Server>\n        <Port>10465</Port>"
        ),
        "{answer}"
    );
    assert_eq!(
        http(
            web,
            "POST",
            "/autodiscover/autodiscover.xml",
            "autodiscover.example.com",
            "<nothing/>"
        )
        .0,
        400
    );

    let (status, profile) = http(
        web,
        "GET",
        "/apple/mail.mobileconfig?emailaddress=ann%40example.com",
        "example.com",
        "",
    );
    assert_eq!(status, 200);
    assert!(
        profile.contains("<key>EmailAddress</key><string>ann@example.com</string>"),
        "{profile}"
    );
    assert!(
        profile.contains("<key>PayloadIdentifier</key><string>com.example.mail</string>"),
        "{profile}"
    );
    // A plist that Python's plistlib reads.
    let parsed = Command::new("python3")
        .args(["-c", "import plistlib,sys; p=plistlib.loads(sys.argv[1].encode()); print(p['PayloadContent'][0]['IncomingMailServerHostName'])", &profile])
        .output()
        .expect("python3");
    assert_eq!(String::from_utf8_lossy(&parsed.stdout).trim(), "mail.test");
    assert!(
        profile.contains("<key>OutgoingMailServerPortNumber</key><integer>10465</integer>"),
        "{profile}"
    );
    node.stop().expect("stop");
}
