//! A real Postfix relays two domains to the `smtp` role. Corpus messages go into Postfix's
//! smtpd on loopback (Python's smtplib), Postfix queues them and delivers them to tme over
//! SMTP (STARTTLS against tme's self-signed certificate), and each must arrive in its
//! recipient's INBOX byte for byte after exactly four prepended trace fields: tme's
//! `Return-Path`, `Delivered-To` and `Received`, then Postfix's `Received`.
//!
//! Postfix runs as a private instance: its own config, queue and data directories in a
//! temporary folder, smtpd on a free loopback port, no DNS. Its `master` needs root and the
//! `postfix` user, which Debian's package creates (`scripts/test.sh` installs it); the test
//! fails, not skips, when Postfix is missing. The instance is stopped by `postfix stop` and
//! then by its master's process group id when the test ends, even on panic.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tme_testkit::{Node, corpus_messages, crlf_line_ends, free_ports};

mod common;

const TME: &str = env!("CARGO_BIN_EXE_tme");

/// How many corpus messages go through Postfix.
const MESSAGES: usize = 1000;
/// Message `index` goes to `RECIPIENTS[index % 3]`: two domains, three INBOXes.
const RECIPIENTS: [&str; 3] = ["alice@example.com", "bob@example.com", "carol@example.net"];
const ENVELOPE_SENDER: &str = "corpus@sender.test";
/// Not a speed limit: only how long a stuck queue is waited for before the test gives up.
const QUEUE_EMPTY_DEADLINE: Duration = Duration::from_secs(900);
const POSTFIX_READY_DEADLINE: Duration = Duration::from_secs(60);

/// A private Postfix instance, stopped when dropped.
struct Postfix {
    root: tempfile::TempDir,
    smtpd: SocketAddr,
}

impl Postfix {
    /// Starts a Postfix that relays `relay_domains` to `next_hop` over SMTP.
    fn start(relay_domains: &[&str], next_hop: SocketAddr) -> Postfix {
        let root = tempfile::Builder::new()
            .prefix("tme-postfix-")
            .tempdir()
            .expect("temporary folder");
        // Postfix's daemons run as the `postfix` user and must reach the queue inside.
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        // The config folder must not contain the queue: `postfix check` wants everything
        // under the config folder owned by root, and queue folders are owned by `postfix`.
        std::fs::create_dir(root.path().join("config")).expect("config folder");
        std::fs::create_dir(root.path().join("queue")).expect("queue folder");
        let smtpd = free_ports(1).expect("a free port")[0];
        let postfix = Postfix { root, smtpd };
        std::fs::write(
            postfix.config_dir().join("main.cf"),
            main_cf(postfix.root.path(), relay_domains, next_hop),
        )
        .expect("main.cf");
        std::fs::write(postfix.config_dir().join("master.cf"), master_cf(smtpd))
            .expect("master.cf");
        // `check` creates the queue folders with their owners and modes (post-install
        // create-missing), and warns about anything wrong with the instance's files.
        let check = postfix.postfix(&["check"]);
        assert!(
            check.status.success(),
            "postfix check: {}\n{}",
            String::from_utf8_lossy(&check.stderr),
            postfix.log()
        );
        let log = postfix.log();
        assert!(
            !log.contains("warning:") && !log.contains("fatal:"),
            "postfix check complains about the private instance:\n{log}"
        );
        let start = postfix.postfix(&["start"]);
        assert!(
            start.status.success(),
            "postfix start: {}\n{}",
            String::from_utf8_lossy(&start.stderr),
            postfix.log()
        );
        postfix.wait_for_greeting();
        postfix
    }

    fn config_dir(&self) -> PathBuf {
        self.root.path().join("config")
    }

    /// Runs `postfix -c CONFIG ARGS`. Without a terminal, Postfix logs only to its log file.
    fn postfix(&self, args: &[&str]) -> Output {
        Command::new("postfix")
            .arg("-c")
            .arg(self.config_dir())
            .args(args)
            .output()
            .expect("postfix is installed (scripts/test.sh installs it: apt-get install postfix)")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("postfix.log")).unwrap_or_default()
    }

    fn wait_for_greeting(&self) {
        let deadline = Instant::now() + POSTFIX_READY_DEADLINE;
        loop {
            if let Ok(stream) = TcpStream::connect(self.smtpd) {
                let mut greeting = String::new();
                let _ = BufReader::new(stream).read_line(&mut greeting);
                if greeting.starts_with("220 ") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Postfix's smtpd did not greet on {} within {POSTFIX_READY_DEADLINE:?}; log:\n{}",
                self.smtpd,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The queue as `postqueue -j` lists it: one JSON object a line, nothing when empty.
    fn queue(&self) -> String {
        let output = Command::new("postqueue")
            .arg("-c")
            .arg(self.config_dir())
            .arg("-j")
            .output()
            .expect("postqueue");
        assert!(
            output.status.success(),
            "postqueue -j: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits until every message has left the queue. A message that was deferred even once
    /// fails the test at once: tme must take each relayed message at the first attempt.
    fn wait_for_empty_queue(&self) {
        let deadline = Instant::now() + QUEUE_EMPTY_DEADLINE;
        loop {
            let queue = self.queue();
            if queue.trim().is_empty() {
                return;
            }
            let log = self.log();
            assert!(
                !log.contains("status=deferred") && !log.contains("status=bounced"),
                "Postfix could not deliver to tme; queue:\n{queue}\nlog:\n{}",
                log_tail(&log)
            );
            assert!(
                Instant::now() < deadline,
                "Postfix's queue is not empty after {QUEUE_EMPTY_DEADLINE:?}; queue:\n{queue}\nlog:\n{}",
                log_tail(&log)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn master_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.root.path().join("queue/pid/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let master = self.master_pid();
        // `postfix stop` signals the master, which stops its children, and waits for it.
        let _ = self.postfix(&["stop"]);
        // The master leads its own process group: whatever is left of it goes by that id.
        if let Some(master) = master {
            let group = format!("-{master}");
            let alive = Command::new("kill")
                .args(["-0", "--", &group])
                .output()
                .is_ok_and(|output| output.status.success());
            if alive {
                let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            }
        }
    }
}

/// The instance's `main.cf`: relay `relay_domains` to `next_hop`, keep the bytes as sent.
fn main_cf(root: &Path, relay_domains: &[&str], next_hop: SocketAddr) -> String {
    let root = root.display();
    let transports: Vec<String> = relay_domains
        .iter()
        .map(|domain| format!("{domain}=smtp:[{}]:{}", next_hop.ip(), next_hop.port()))
        .collect();
    format!(
        "# A private Postfix that relays {domains} to tme on {next_hop}.
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {root}/postfix.log
maillog_file_prefixes = {root}
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = relay.test
mydomain = relay.test
myorigin = relay.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
mynetworks = 127.0.0.0/8
relay_domains = {domains}
transport_maps = inline:{{ {transports} }}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
# No DNS at all: the next hop is an address literal.
smtp_host_lookup = native
disable_dns_lookups = yes
# tme offers STARTTLS with a self-signed certificate: encrypted, not authenticated.
smtp_tls_security_level = may
# Keep every message's bytes as sent: no folding of long lines, no 8-bit to
# quoted-printable conversion, SMTPUTF8 passed on, no header address rewriting for any
# client (so no Message-ID, Date or From is added either: only local submissions get them),
# and none of the headers Postfix drops by default (Return-Path, Bcc, Content-Length,
# Resent-Bcc) dropped.
smtp_line_length_limit = 0
disable_mime_output_conversion = yes
smtputf8_enable = yes
local_header_rewrite_clients =
remote_header_rewrite_domain =
message_drop_headers =
message_size_limit = 52428800
# Below tme's smtp.connections_per_ip_max (20), cached idle connections included.
smtp_destination_concurrency_limit = 10
",
        domains = relay_domains.join(", "),
        transports = transports.join(", "),
    )
}

/// The instance's `master.cf`: smtpd on `smtpd` only, no chroot (nothing to copy into the
/// queue), and the services a relay needs.
fn master_cf(smtpd: SocketAddr) -> String {
    format!(
        "{smtpd} inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"
    )
}

fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Sends every message listed in `manifest` (lines of `FILE RECIPIENT`) over one SMTP
/// session: BODY=8BITMIME when it has 8-bit octets, SMTPUTF8 too when its header does.
/// smtplib dot-stuffs; the messages already end in CRLF, so nothing else changes.
const SENDER_SCRIPT: &str = r#"
import os, smtplib, sys
port, folder, sender = int(sys.argv[1]), sys.argv[2], sys.argv[3]
sent = 0
with smtplib.SMTP("127.0.0.1", port, local_hostname="sender.test", timeout=300) as smtp:
    for line in open(os.path.join(folder, "manifest")):
        name, recipient = line.split()
        message = open(os.path.join(folder, name), "rb").read()
        header = message.split(b"\r\n\r\n", 1)[0]
        options = []
        if any(octet >= 0x80 for octet in message):
            options.append("BODY=8BITMIME")
        if any(octet >= 0x80 for octet in header):
            options.append("SMTPUTF8")
        smtp.sendmail(sender, [recipient], message, mail_options=options)
        sent += 1
print("sent", sent)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_messages_relayed_by_postfix_arrive_byte_for_byte() {
    let corpus = corpus_messages();
    if corpus.is_empty() {
        eprintln!("skipped: no shared corpus");
        return;
    }
    let chosen = choose_messages(&corpus);

    let node = Node::start(Path::new(TME)).expect("start tme");
    for recipient in RECIPIENTS {
        node.add_account(recipient, "password").expect("account");
    }
    let postfix = Postfix::start(&["example.com", "example.net"], node.address("smtp"));

    // What each INBOX must hold, and the files smtplib sends.
    let outbox = postfix.root.path().join("outbox");
    std::fs::create_dir(&outbox).expect("outbox");
    let mut manifest = String::new();
    let mut expected: BTreeMap<&str, Vec<(&Path, &[u8])>> = BTreeMap::new();
    for (index, (path, message)) in chosen.iter().enumerate() {
        let recipient = RECIPIENTS[index % RECIPIENTS.len()];
        let name = format!("{index:04}.eml");
        std::fs::write(outbox.join(&name), message).expect("write message");
        manifest.push_str(&format!("{name} {recipient}\n"));
        expected
            .entry(recipient)
            .or_default()
            .push((path.as_path(), message.as_slice()));
    }
    std::fs::write(outbox.join("manifest"), manifest).expect("manifest");

    let output = Command::new("python3")
        .arg("-c")
        .arg(SENDER_SCRIPT)
        .arg(postfix.smtpd.port().to_string())
        .arg(&outbox)
        .arg(ENVELOPE_SENDER)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}\nPostfix log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        log_tail(&postfix.log())
    );
    assert_eq!(stdout.trim(), format!("sent {}", chosen.len()));

    postfix.wait_for_empty_queue();
    assert_eq!(
        postfix.log().matches("status=sent").count(),
        chosen.len(),
        "one delivery to tme per message"
    );

    for (recipient, expected) in expected {
        let stored = common::stored_messages(node.data_dir(), recipient, "INBOX").await;
        // Postfix delivers in parallel, so the order of arrival is not the order sent: each
        // message sent must be matched by one that arrived, exactly once.
        let mut arrived: HashMap<&[u8], usize> = HashMap::new();
        for message in &stored {
            *arrived
                .entry(without_trace_fields(message, recipient))
                .or_default() += 1;
        }
        let mut missing = Vec::new();
        for (path, message) in &expected {
            match arrived.get_mut(message) {
                Some(count) if *count > 0 => *count -= 1,
                _ => missing.push((path, message)),
            }
        }
        let unexpected: Vec<&[u8]> = arrived
            .iter()
            .filter(|(_, count)| **count > 0)
            .map(|(message, _)| *message)
            .collect();
        let show = |message: &[u8]| {
            String::from_utf8_lossy(&message[..message.len().min(3000)]).into_owned()
        };
        assert!(
            missing.is_empty() && unexpected.is_empty(),
            "{recipient}: {} of {} messages sent did not arrive as sent ({} stored): {:#?}\n--- the first sent\n{}\n--- the first arrived that matches none\n{}",
            missing.len(),
            expected.len(),
            stored.len(),
            missing
                .iter()
                .map(|(path, _)| path.display().to_string())
                .collect::<Vec<_>>(),
            missing
                .first()
                .map(|(_, message)| show(message))
                .unwrap_or_default(),
            unexpected
                .first()
                .map(|message| show(message))
                .unwrap_or_default(),
        );
    }
}

/// 1,000 corpus messages spread evenly over the sorted corpus, each with its line ends made
/// CRLF as an MTA sends them (a corpus file's bare LFs cannot pass SMTP unchanged).
///
/// Only messages whose header section Postfix passes on unchanged are chosen. Sending the
/// whole corpus (6,378 messages) through this very setup changed 53, all by Postfix's cleanup
/// reshaping a header section that is not RFC 5322's, which the settings above do not
/// prevent; `header_section_is_well_formed` refuses exactly those 53:
/// - a first line `From sender date` (an mbox separator left in the file) becomes
///   `X-Mailbox-Line: From sender date`;
/// - a field name with spaces before its colon (`From  :<a@b>`) loses the spaces;
/// - a line that is neither a field nor a continuation ends the header section, and cleanup
///   inserts the empty line that must separate it from the body.
fn choose_messages(corpus: &[PathBuf]) -> Vec<(PathBuf, Vec<u8>)> {
    let mut candidates = Vec::new();
    for path in corpus {
        let message = crlf_line_ends(&std::fs::read(path).expect("read corpus message"));
        if header_section_is_well_formed(&message) {
            candidates.push((path.clone(), message));
        }
    }
    eprintln!(
        "{} of {} corpus messages have a header section Postfix passes on unchanged",
        candidates.len(),
        corpus.len()
    );
    assert!(
        candidates.len() >= MESSAGES,
        "the corpus has {} usable messages",
        candidates.len()
    );
    (0..MESSAGES)
        .map(|index| candidates[index * candidates.len() / MESSAGES].clone())
        .collect()
}

/// Whether every line before the first empty one (or the end) is an RFC 5322 §2.2 field
/// (printable US-ASCII name, no space, directly followed by `:`) or a continuation line
/// after one (§2.2.3).
fn header_section_is_well_formed(message: &[u8]) -> bool {
    for (index, line) in message.split(|octet| *octet == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return true;
        }
        if index > 0 && matches!(line[0], b' ' | b'\t') {
            continue;
        }
        let name_length = line
            .iter()
            .position(|octet| !matches!(octet, 33..=57 | 59..=126))
            .unwrap_or(line.len());
        if name_length == 0 || line.get(name_length) != Some(&b':') {
            return false;
        }
    }
    true
}

/// The message after the seven fields prepended on the way, each checked to be what it must
/// be: tme's `Return-Path`, `Delivered-To` and `Received` (from Postfix's client), tme's
/// verdict (`Authentication-Results`, `X-Spam-Score`, `X-Spam-Status`), then Postfix's
/// `Received` (from smtplib).
fn without_trace_fields<'a>(stored: &'a [u8], recipient: &str) -> &'a [u8] {
    let mut rest = stored;
    let mut fields = Vec::new();
    for _ in 0..7 {
        let (field, after) = first_field(rest);
        fields.push(String::from_utf8_lossy(field).into_owned());
        rest = after;
    }
    // RFC 3848 and RFC 6531 §3.7.3 protocol names: Postfix takes the message from smtplib in
    // the clear and passes it on to tme over STARTTLS, with SMTPUTF8 when smtplib asked.
    let (tme_protocol, postfix_protocol) = if header_has_8bit(rest) {
        ("UTF8SMTPS", "UTF8SMTP")
    } else {
        ("ESMTPS", "ESMTP")
    };
    let [
        return_path,
        delivered_to,
        tme_received,
        authentication_results,
        spam_score,
        spam_status,
        postfix_received,
    ] = &fields[..]
    else {
        unreachable!("seven fields were taken");
    };
    // No SPF, DKIM or DMARC records exist for these test domains: every method says none.
    assert!(
        authentication_results.starts_with("Authentication-Results: mail.test;\r\n\t")
            && authentication_results.contains("dmarc=none"),
        "{authentication_results:?}"
    );
    assert!(spam_score.starts_with("X-Spam-Score: "), "{spam_score:?}");
    assert!(
        spam_status.starts_with("X-Spam-Status: No,"),
        "{spam_status:?}"
    );
    assert_eq!(
        return_path,
        &format!("Return-Path: <{ENVELOPE_SENDER}>\r\n")
    );
    assert_eq!(delivered_to, &format!("Delivered-To: {recipient}\r\n"));
    let tme_lines: Vec<&str> = tme_received.split_terminator("\r\n").collect();
    assert!(
        tme_lines.len() == 3
            && tme_lines[0] == "Received: from relay.test ([127.0.0.1])"
            && tme_lines[1].starts_with(&format!("\tby mail.test (tme) with {tme_protocol} id "))
            && tme_lines[2].starts_with(&format!("\tfor <{recipient}>; ")),
        "tme's Received field: {tme_received:?}"
    );
    let postfix_lines: Vec<&str> = postfix_received.split_terminator("\r\n").collect();
    assert!(
        postfix_lines.len() == 3
            && postfix_lines[0] == "Received: from sender.test (localhost [127.0.0.1])"
            && postfix_lines[1].starts_with(&format!(
                "\tby relay.test (Postfix) with {postfix_protocol} id "
            ))
            && postfix_lines[2].starts_with(&format!("\tfor <{recipient}>; ")),
        "Postfix's Received field: {postfix_received:?}"
    );
    rest
}

/// Whether the header section has an 8-bit octet: when it does, the sender script asks for
/// SMTPUTF8 (the same rule as there: everything before the first empty line).
fn header_has_8bit(message: &[u8]) -> bool {
    let header_end = message
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or(message.len());
    message[..header_end].iter().any(|octet| *octet >= 0x80)
}

/// The first header field (its line and continuation lines, CRLF included) and what follows.
fn first_field(message: &[u8]) -> (&[u8], &[u8]) {
    let mut end = 0;
    loop {
        let line_end = message[end..]
            .windows(2)
            .position(|pair| pair == b"\r\n")
            .map(|position| end + position + 2)
            .expect("a CRLF-terminated trace field");
        end = line_end;
        if !matches!(message.get(end), Some(b' ' | b'\t')) {
            return (&message[..end], &message[end..]);
        }
    }
}
