//! The webmail on a real node: Python's standard HTTP client (`tests/web/http_client.py`)
//! for the login, the session cookie, CSRF refusals and cross-account 404s, and headless
//! Chromium driven by Selenium (`tests/web/browser.py`) for the login form, the message list,
//! an HTML corpus message and a hostile message whose payloads must not run or load. The
//! browser's screenshots are kept under the target directory (`tmp/web-screenshots`).
//! Writing mail (compose, reply, forward, drafts, uploads) is `tests/web/compose.py`;
//! organising and search `tests/web/organise.py` and `browser_organise.py`; conversations
//! `conversations.py`; settings and branding `settings_client.py` and
//! `settings_browser.py`; the vacation auto-reply `vacation_client.py`; hostile input
//! `bad_input.py`; the `https` listener `https_client.py` and `https_browser.py`; sessions ended by a revoked app
//! password or a changed password `revoked_sessions.py`; a trusted proxy's clients
//! `proxy_client.py`.

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
    common::test_script("web", name)
}

/// Debian's chromium and chromium-driver (scripts/test.sh installs them): missing, a browser
/// test fails rather than skips.
fn require_chromium() {
    for binary in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            Path::new(binary).exists(),
            "{binary} is missing: install Debian's chromium and chromium-driver (scripts/test.sh does)"
        );
    }
}

/// Runs the script `name` against `node` with `HTTP_PORT`, `SCREENSHOT_DIR` (under the target
/// directory, `tmp/web-screenshots`) and `environment`.
fn run_script(
    node: &tme_testkit::Node,
    app_password: &str,
    name: &str,
    environment: &[(&str, &std::ffi::OsStr)],
) {
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
    let http_port = node.address("http").port().to_string();
    let mut all: Vec<(&str, &std::ffi::OsStr)> = vec![
        ("HTTP_PORT", http_port.as_ref()),
        ("SCREENSHOT_DIR", screenshots.as_os_str()),
    ];
    all.extend_from_slice(environment);
    common::run_python_client(node, &script(name), app_password, &[], &all);
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
    let pixel_port = pixel_port.to_string();
    run_script(
        node,
        app_password,
        name,
        &[
            ("PIXEL_PORT", pixel_port.as_ref()),
            ("OTHER_ADDRESS", OTHER_ADDRESS.as_ref()),
            ("OTHER_PASSWORD", OTHER_PASSWORD.as_ref()),
            ("OTHER_SUBJECT", OTHER_SUBJECT.as_ref()),
            ("OTHER_SECRET", OTHER_SECRET.as_ref()),
            ("CORPUS_SUBJECT", CORPUS_SUBJECT.as_ref()),
            ("HOSTILE_SUBJECT", HOSTILE_SUBJECT.as_ref()),
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

/// The webmail over the `https` listener: Python's ssl and urllib, and curl (OpenSSL).
#[test]
fn webmail_over_https_with_strict_transport_security() {
    let (node, app_password) = common::node_with_client_account(&[]);
    let https_port = node.address("https").port().to_string();
    let base_url = format!("https://127.0.0.1:{https_port}");
    run_script(
        &node,
        &app_password,
        "https_client.py",
        &[
            ("HTTPS_PORT", https_port.as_ref()),
            ("BASE_URL", base_url.as_ref()),
            ("HOSTNAME", "mail.test".as_ref()),
        ],
    );
}

/// The webmail over the `https` listener in headless Chromium: login, the Secure cookie,
/// and new mail arriving through the event stream over TLS.
#[test]
fn chromium_uses_the_webmail_over_https() {
    require_chromium();
    let (node, app_password) = common::node_with_client_account(&[]);
    let base_url = format!("https://127.0.0.1:{}", node.address("https").port());
    run_script(
        &node,
        &app_password,
        "https_browser.py",
        &[("BASE_URL", base_url.as_ref())],
    );
}

/// The login form, the list, an HTML message and a hostile one in headless Chromium.
#[test]
fn chromium_logs_in_reads_mail_and_runs_no_payload() {
    require_chromium();
    let pixel_port = tme_testkit::free_ports(1).expect("port")[0].port();
    let (node, app_password) = node_with_mail(pixel_port);
    run(&node, &app_password, "browser.py", pixel_port);
}

const RELATED_SUBJECT: &str = "Inline logo and a report";
/// How many plain messages the organising test pages through (with the related one: three
/// pages of 50).
const BULK_MESSAGES: usize = 120;

/// A message with an inline image (`cid:`), a PDF attachment and a remote image.
fn related_message() -> String {
    format!(
        "From: Dora <dora@example.net>\r\nTo: alice@example.org\r\nSubject: {RELATED_SUBJECT}\r\n\
Date: Sat, 28 Nov 2026 11:00:00 +0000\r\nMessage-ID: <related@example.net>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\n\
Content-Type: multipart/related; boundary=\"r\"\r\n\r\n--r\r\n\
Content-Type: text/html; charset=utf-8\r\n\r\n\
<p>Our logo: <img src=\"cid:logo@example.net\" alt=\"logo\"></p>\
<p><img src=\"https://tracker.example/pixel.gif\" alt=\"\"></p>\r\n--r\r\n\
Content-Type: image/png\r\nContent-ID: <logo@example.net>\r\nContent-Transfer-Encoding: base64\r\n\r\n\
iVBORw0KGgo=\r\n--r--\r\n--m\r\n\
Content-Type: application/pdf; name=\"report.pdf\"\r\n\
Content-Disposition: attachment; filename=\"report.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQgdG1lCg==\r\n--m--\r\n"
    )
}

/// Paging, sorting, parts, flags, moves and folders through urllib, checked over IMAP.
#[test]
fn reading_and_organising_with_urllib_seen_over_imap() {
    let (node, app_password) = common::node_with_client_account(&[]);
    // Bulk messages grow with their number; their dates go the other way round, so the
    // orders differ.
    let mut messages: Vec<(String, Vec<u8>)> = (0..BULK_MESSAGES)
        .map(|number| {
            let day = 1 + (BULK_MESSAGES - number) % 28;
            (
                format!("{number:04}.eml"),
                format!(
                    "From: Bulk <bulk@example.net>\r\nTo: alice@example.org\r\n\
Subject: Bulk message {number}\r\nDate: {day} Oct 2026 10:00:00 +0000\r\n\
Message-ID: <bulk-{number}@example.net>\r\n\r\n{}\r\n",
                    "x".repeat(number * 10)
                )
                .into_bytes(),
            )
        })
        .collect();
    messages.push((
        "9999-related.eml".to_owned(),
        related_message().into_bytes(),
    ));
    let borrowed: Vec<(&str, Vec<u8>)> = messages
        .iter()
        .map(|(name, content)| (name.as_str(), content.clone()))
        .collect();
    import(&node, common::CLIENT_ADDRESS, &borrowed);
    let bulk = BULK_MESSAGES.to_string();
    run_script(
        &node,
        &app_password,
        "organise.py",
        &[
            ("RELATED_SUBJECT", RELATED_SUBJECT.as_ref()),
            ("BULK_MESSAGES", bulk.as_ref()),
        ],
    );
}

/// A folder by conversation, a message with its conversation across folders, and an
/// action on a whole conversation, through urllib, checked over IMAP.
#[test]
fn conversations_group_the_list_and_follow_replies_across_folders() {
    let (node, app_password) = common::node_with_client_account(&[]);
    let message = |day: u32, id: &str, subject: &str, extra: &str| {
        format!(
            "From: Bob <bob@example.net>\r\nTo: alice@example.org\r\nSubject: {subject}\r\n\
Date: {day} Oct 2026 10:00:00 +0000\r\nMessage-ID: <{id}@example.net>\r\n{extra}\r\n\
Text of {id}.\r\n"
        )
        .into_bytes()
    };
    import(
        &node,
        common::CLIENT_ADDRESS,
        &[
            ("1.eml", message(1, "plans-1", "Plans for the trip", "")),
            (
                "2.eml",
                message(
                    2,
                    "plans-2",
                    "Re: Plans for the trip",
                    "In-Reply-To: <plans-1@example.net>\r\n",
                ),
            ),
            (
                "3.eml",
                message(
                    3,
                    "plans-3",
                    "Re: Plans for the trip",
                    "References: <plans-1@example.net> <plans-2@example.net>\r\n",
                ),
            ),
            ("4.eml", message(4, "lunch", "Lunch on Friday", "")),
        ],
    );
    run_script(&node, &app_password, "conversations.py", &[]);
}

const SEARCH_SUBJECT: &str = "Numbers for the board";

/// Search, move, delete, restore, the keyboard and live updates in headless Chromium.
#[test]
fn chromium_searches_moves_deletes_restores_and_sees_new_mail() {
    require_chromium();
    let (node, app_password) = common::node_with_client_account(&[]);
    let mut messages: Vec<(String, Vec<u8>)> = (0..4)
        .map(|number| {
            (
                format!("{number}.eml"),
                format!(
                    "From: Erin <erin@example.net>\r\nTo: alice@example.org\r\n\
Subject: Note {number}\r\nDate: 2{number} Nov 2026 10:00:00 +0000\r\n\
Message-ID: <note-{number}@example.net>\r\n\r\nNothing much.\r\n"
                )
                .into_bytes(),
            )
        })
        .collect();
    messages.push((
        "9.eml".to_owned(),
        format!(
            "From: Finn <finn@example.net>\r\nTo: alice@example.org\r\nSubject: {SEARCH_SUBJECT}\r\n\
Date: 1 Nov 2026 10:00:00 +0000\r\nMessage-ID: <board@example.net>\r\n\r\n\
Here are the quarterly figures.\r\n"
        )
        .into_bytes(),
    ));
    let borrowed: Vec<(&str, Vec<u8>)> = messages
        .iter()
        .map(|(name, content)| (name.as_str(), content.clone()))
        .collect();
    import(&node, common::CLIENT_ADDRESS, &borrowed);
    run_script(
        &node,
        &app_password,
        "browser_organise.py",
        &[("SEARCH_SUBJECT", SEARCH_SUBJECT.as_ref())],
    );
}

const PARTS_SUBJECT: &str = "Ten thousand parts";
const HUGE_SUBJECT: &str = "Fifty megabytes of HTML";
const TRICK_SUBJECT: &str = "Attachments with tricky names";

/// A multipart/mixed message of `parts` small attachments.
fn many_parts_message(parts: usize) -> Vec<u8> {
    let mut raw = format!(
        "From: a@example.net\r\nTo: alice@example.org\r\nSubject: {PARTS_SUBJECT}\r\n\
Message-ID: <parts@example.net>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"p\"\r\n\r\n--p\r\nContent-Type: text/plain\r\n\r\nMany parts.\r\n"
    );
    for number in 0..parts {
        raw.push_str(&format!(
            "--p\r\nContent-Type: application/octet-stream\r\n\
Content-Disposition: attachment; filename=\"part-{number}.bin\"\r\n\r\nx\r\n"
        ));
    }
    raw.push_str("--p--\r\n");
    raw.into_bytes()
}

/// A text/html message of about `octets` octets, with scripts sprinkled through it.
fn huge_html_message(octets: usize) -> Vec<u8> {
    let mut raw = format!(
        "From: a@example.net\r\nTo: alice@example.org\r\nSubject: {HUGE_SUBJECT}\r\n\
Message-ID: <huge@example.net>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>\r\n"
    )
    .into_bytes();
    let chunk = b"<p>Lorem ipsum dolor sit amet <b>bold</b> <script>document.title='owned'</script></p>\r\n";
    while raw.len() < octets {
        raw.extend_from_slice(chunk);
    }
    raw.extend_from_slice(b"</body></html>\r\n");
    raw
}

/// Attachments named with a path, a Windows path with control characters (RFC 2231), and a
/// dot name.
fn trick_names_message() -> Vec<u8> {
    format!(
        "From: a@example.net\r\nTo: alice@example.org\r\nSubject: {TRICK_SUBJECT}\r\n\
Message-ID: <tricks@example.net>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"t\"\r\n\r\n--t\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n\
--t\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"../../../etc/passwd\"\r\n\r\nnot really\r\n\
--t\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=UTF-8''C%3A%5CWindows%5Cev%0D%0Ail.exe\r\n\r\nMZ\r\n\
--t\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"..notes.txt\"\r\n\r\nnotes\r\n--t--\r\n"
    )
    .into_bytes()
}

/// Forged sessions, 10,000 parts, 50 MB of HTML, path tricks and malformed forms.
#[test]
fn hostile_input_gets_clear_errors_or_safe_pages() {
    let (node, app_password) = common::node_with_client_account(&[]);
    import(
        &node,
        common::CLIENT_ADDRESS,
        &[
            ("1-parts.eml", many_parts_message(10_000)),
            ("2-huge.eml", huge_html_message(50 * 1000 * 1000)),
            ("3-tricks.eml", trick_names_message()),
        ],
    );
    run_script(
        &node,
        &app_password,
        "bad_input.py",
        &[
            ("PARTS_SUBJECT", PARTS_SUBJECT.as_ref()),
            ("HUGE_SUBJECT", HUGE_SUBJECT.as_ref()),
            ("TRICK_SUBJECT", TRICK_SUBJECT.as_ref()),
        ],
    );
}

/// The brand the settings tests give the client account's partner (`Test`, which
/// `tme_testkit` makes for example.org).
const BRAND_PRODUCT_NAME: &str = "Acme Mail";
const BRAND_COLOUR_PRIMARY: &str = "#0b6e4f";
const BRAND_COLOUR_ACCENT: &str = "#f4a261";
const BRAND_LOGO_URL: &str = "https://logo.example.net/acme.png";

/// A node whose client account's partner has a brand.
fn branded_node() -> (tme_testkit::Node, String) {
    let (node, app_password) = common::node_with_client_account(&[]);
    node.tme_ok(&[
        "partner",
        "set",
        "Test",
        "--product-name",
        BRAND_PRODUCT_NAME,
        "--colour-primary",
        BRAND_COLOUR_PRIMARY,
        "--colour-accent",
        BRAND_COLOUR_ACCENT,
        "--logo-url",
        BRAND_LOGO_URL,
    ])
    .expect("partner brand");
    (node, app_password)
}

fn run_settings(node: &tme_testkit::Node, app_password: &str, name: &str) {
    run_script(
        node,
        app_password,
        name,
        &[
            ("BRAND_PRODUCT_NAME", BRAND_PRODUCT_NAME.as_ref()),
            ("BRAND_COLOUR_PRIMARY", BRAND_COLOUR_PRIMARY.as_ref()),
            ("BRAND_LOGO_URL", BRAND_LOGO_URL.as_ref()),
        ],
    );
}

/// Settings through urllib (every POST with and without its CSRF token), checked with
/// imaplib: a web-made app password logs in over IMAP until revoked, a changed password
/// replaces the old one and logs the other web sessions out; session revocation; the
/// partner's brand chosen by the Host header and by the account.
#[test]
fn settings_app_passwords_sessions_and_brand_with_std_clients() {
    let (node, app_password) = branded_node();
    run_settings(&node, &app_password, "settings_client.py");
}

/// An app password revoked, then the password changed, in the settings (urllib): the IMAP
/// (imaplib, also in IDLE), POP3 (poplib) and submission (smtplib) sessions they opened end
/// within seconds; the others go on.
#[test]
fn revoking_a_secret_ends_the_sessions_it_opened() {
    let (node, app_password) = common::node_with_client_account(&[]);
    let submissions_port = node.address("submissions").port().to_string();
    run_script(
        &node,
        &app_password,
        "revoked_sessions.py",
        &[("SUBMISSIONS_PORT", submissions_port.as_ref())],
    );
}

/// Behind a trusted proxy (the loopback), logins are throttled by the client that
/// `X-Forwarded-For` names (urllib), and locked per client, not per proxy.
#[test]
fn behind_a_trusted_proxy_the_forwarded_client_is_throttled() {
    let (node, app_password) = common::node_with_client_account(&[
        ("TME_HTTP__TRUSTED_PROXIES", r#"["127.0.0.1"]"#),
        ("TME_LOGIN__FAILURES_PER_IP_MAX", "3"),
        ("TME_LOGIN__FAILURES_PER_ACCOUNT_MAX", "100"),
        ("TME_LOGIN__FAILURES_BEFORE_DELAY", "100"),
    ]);
    run_script(
        &node,
        &app_password,
        "proxy_client.py",
        &[("FAILURES_PER_IP_MAX", "3".as_ref())],
    );
    let locks = node.tme_ok(&["login", "locks"]).expect("tme login locks");
    assert!(locks.contains("ip:192.0.2.10"), "{locks}");
    assert!(!locks.contains("ip:127.0.0.1"), "{locks}");
}

/// The vacation auto-reply set through the settings form (urllib), answered mail sent with
/// smtplib to the MX from three other accounts and through submission from a fourth, the
/// replies read with imaplib: one reply per sender, one to mail sent to an alias of the
/// account, one to mail submitted on this node, none to bulk mail, none once turned off.
#[test]
fn vacation_reply_set_in_settings_answers_once_per_sender() {
    let (node, app_password) = common::node_with_client_account(&[]);
    let others_password = "others' pw";
    for address in [
        "bob@example.org",
        "carol@example.org",
        "dave@example.org",
        "erin@example.org",
    ] {
        node.add_account(address, others_password).expect("account");
    }
    node.tme_ok(&["alias", "add", "desk@example.org", "alice@example.org"])
        .expect("alias");
    let submissions_port = node.address("submissions").port().to_string();
    run_script(
        &node,
        &app_password,
        "vacation_client.py",
        &[
            ("OTHER_ADDRESS", "bob@example.org".as_ref()),
            ("THIRD_ADDRESS", "carol@example.org".as_ref()),
            ("FOURTH_ADDRESS", "dave@example.org".as_ref()),
            ("ALIAS_ADDRESS", "desk@example.org".as_ref()),
            ("FIFTH_ADDRESS", "erin@example.org".as_ref()),
            ("SUBMISSIONS_PORT", submissions_port.as_ref()),
            ("OTHERS_PASSWORD", others_password.as_ref()),
        ],
    );
}

/// The settings page and a branded login page in headless Chromium, with screenshots.
#[test]
fn chromium_shows_settings_and_a_branded_login() {
    require_chromium();
    let (node, app_password) = branded_node();
    run_settings(&node, &app_password, "settings_browser.py");
}

/// Writing mail (`tests/web/compose.py`): in headless Chromium, compose with an upload and
/// send, reply, forward inline and as an attachment, save, reopen and send a draft, let the
/// form save itself as a draft while typing (one draft, the upload kept once; a refused
/// save retried; Send during a save), each checked over IMAP with Python's imaplib; through
/// urllib, multipart POSTs without the CSRF token (403), oversized (413), malformed (400),
/// file names with path tricks, and the draft endpoint's JSON answer.
#[test]
fn chromium_composes_replies_forwards_and_keeps_drafts() {
    require_chromium();
    let pixel_port = tme_testkit::free_ports(1).expect("port")[0].port();
    let (node, app_password) = node_with_mail(pixel_port);
    run(&node, &app_password, "compose.py", pixel_port);
}
