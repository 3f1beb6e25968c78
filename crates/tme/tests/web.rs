//! The webmail on a real node: Python's standard HTTP client (`tests/web/http_client.py`)
//! for the login, the session cookie, CSRF refusals and cross-account 404s, and headless
//! Chromium driven by Selenium (`tests/web/browser.py`) for the login form, the message list,
//! an HTML corpus message and a hostile message whose payloads must not run or load. The
//! browser's screenshots are kept under the target directory (`tmp/web-screenshots`).
//! Writing mail (compose, reply, forward, drafts, uploads) is `tests/web/compose.py`.

use std::path::{Path, PathBuf};

mod common;

/// The corpus message with an HTML alternative the tests open (Outlook 2000, "The Hare and
/// the Tortoise").
const CORPUS_MESSAGE: &str = "mail-parser/resources__eml__legacy__021.eml";
const CORPUS_SUBJECT: &str = "Test message from Microsoft Outlook 00";
const HOSTILE_SUBJECT: &str = "Hostile payloads";
const OTHER_ADDRESS: &str = "bob@example.org";
const OTHER_PASSWORD: &str = "bob's pw";
const OTHER_SUBJECT: &str = "For Bob only";
const OTHER_SECRET: &str = "the-secret-of-bob-4711";

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/web")
        .join(name)
}

/// A message of script tags, event handlers, a `javascript:` link and remote images and
/// styles pointing at `pixel_port`.
fn hostile_message(pixel_port: u16) -> String {
    let pixel = format!("http://127.0.0.1:{pixel_port}");
    format!(
        "From: Mallory <mallory@example.net>\r\n\
To: alice@example.org\r\n\
Subject: {HOSTILE_SUBJECT}\r\n\
Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n\
Message-ID: <hostile@example.net>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<html><head><style>body {{ background: url({pixel}/css-background) }}</style>\r\n\
<link rel=\"stylesheet\" href=\"{pixel}/stylesheet.css\">\r\n\
<script>document.title = 'owned by script'; window.ownedBy = 'script';</script></head>\r\n\
<body onload=\"document.title = 'owned by onload'\">\r\n\
<p>Hostile payloads</p>\r\n\
<img src=\"{pixel}/pixel.gif\" width=\"1\" height=\"1\" alt=\"\">\r\n\
<img src=\"x\" onerror=\"document.title = 'owned by onerror'; window.ownedBy = 'onerror'\">\r\n\
<svg><image href=\"{pixel}/svg-image\"/><script>document.title = 'owned by svg'</script></svg>\r\n\
<p style=\"background: url({pixel}/inline-style)\">styled</p>\r\n\
<a href=\"javascript:document.title = 'owned by link'; window.ownedBy = 'link'\">click me</a>\r\n\
<iframe src=\"{pixel}/frame\"></iframe>\r\n\
<object data=\"{pixel}/object\"></object>\r\n\
</body></html>\r\n"
    )
}

fn other_message() -> String {
    format!(
        "From: Carol <carol@example.net>\r\nTo: {OTHER_ADDRESS}\r\nSubject: {OTHER_SUBJECT}\r\n\
Date: Sat, 28 Nov 2026 09:00:00 +0000\r\nMessage-ID: <bob@example.net>\r\n\r\n\
{OTHER_SECRET}\r\n"
    )
}

/// Imports `messages` (file name, content) into `address`'s INBOX with `tme import`.
fn import(node: &tme_testkit::Node, address: &str, messages: &[(&str, Vec<u8>)]) {
    let folder = tempfile::tempdir().expect("folder");
    for (name, content) in messages {
        std::fs::write(folder.path().join(name), content).expect("write message");
    }
    node.tme_ok(&["import", address, folder.path().to_str().expect("path")])
        .expect("tme import");
}

/// A node with two accounts: alice (the client account of `common`) with the corpus
/// message and the hostile one, and bob with a message of his own.
fn node_with_mail(pixel_port: u16) -> (tme_testkit::Node, String) {
    let (node, app_password) = common::node_with_client_account(&[]);
    node.add_account(OTHER_ADDRESS, OTHER_PASSWORD)
        .expect("other account");
    let corpus = tme_testkit::corpus_dir()
        .expect("the corpus (../shared/corpus or TME_CORPUS_DIR)")
        .join(CORPUS_MESSAGE);
    import(
        &node,
        common::CLIENT_ADDRESS,
        &[
            (
                "1-corpus.eml",
                std::fs::read(&corpus).expect("corpus message"),
            ),
            ("2-hostile.eml", hostile_message(pixel_port).into_bytes()),
        ],
    );
    import(
        &node,
        OTHER_ADDRESS,
        &[("1-other.eml", other_message().into_bytes())],
    );
    (node, app_password)
}

fn run(node: &tme_testkit::Node, app_password: &str, name: &str, pixel_port: u16) {
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
    let http_port = node.address("http").port().to_string();
    let pixel_port = pixel_port.to_string();
    common::run_python_client(
        node,
        &script(name),
        app_password,
        &[],
        &[
            ("HTTP_PORT", http_port.as_ref()),
            ("PIXEL_PORT", pixel_port.as_ref()),
            ("OTHER_ADDRESS", OTHER_ADDRESS.as_ref()),
            ("OTHER_PASSWORD", OTHER_PASSWORD.as_ref()),
            ("OTHER_SUBJECT", OTHER_SUBJECT.as_ref()),
            ("OTHER_SECRET", OTHER_SECRET.as_ref()),
            ("CORPUS_SUBJECT", CORPUS_SUBJECT.as_ref()),
            ("HOSTILE_SUBJECT", HOSTILE_SUBJECT.as_ref()),
            ("SCREENSHOT_DIR", screenshots.as_os_str()),
        ],
    );
}

/// Logins, cookies, CSRF and account isolation through Python's urllib and cookiejar.
#[test]
fn sessions_csrf_and_isolation_with_a_std_http_client() {
    let pixel_port = tme_testkit::free_ports(1).expect("port")[0].port();
    let (node, app_password) = node_with_mail(pixel_port);
    run(&node, &app_password, "http_client.py", pixel_port);
}

/// The login form, the list, an HTML message and a hostile one in headless Chromium.
#[test]
fn chromium_logs_in_reads_mail_and_runs_no_payload() {
    // Debian's chromium and chromium-driver (scripts/test.sh installs them): missing, the
    // test fails rather than skips.
    for binary in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            Path::new(binary).exists(),
            "{binary} is missing: install Debian's chromium and chromium-driver (scripts/test.sh does)"
        );
    }
    let pixel_port = tme_testkit::free_ports(1).expect("port")[0].port();
    let (node, app_password) = node_with_mail(pixel_port);
    run(&node, &app_password, "browser.py", pixel_port);
}

/// Writing mail (`tests/web/compose.py`): in headless Chromium, compose with an upload and
/// send, reply, forward inline and as an attachment, save, reopen and send a draft, each
/// checked over IMAP with Python's imaplib; through urllib, multipart POSTs without the
/// CSRF token (403), oversized (413), malformed (400), and file names with path tricks.
#[test]
fn chromium_composes_replies_forwards_and_keeps_drafts() {
    for binary in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            Path::new(binary).exists(),
            "{binary} is missing: install Debian's chromium and chromium-driver (scripts/test.sh does)"
        );
    }
    let pixel_port = tme_testkit::free_ports(1).expect("port")[0].port();
    let (node, app_password) = node_with_mail(pixel_port);
    run(&node, &app_password, "compose.py", pixel_port);
}
