//! `tme import`: the corpus, mbox and Maildir sources, byte for byte, resumable after a kill.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tme_core::EmailAddress;
use tme_core::config::StoreConfig;
use tme_store::Store;
use tme_testkit::{Node, corpus_dir, corpus_messages};

mod common;
use common::stored_messages;

const TME: &str = env!("CARGO_BIN_EXE_tme");

fn write_mbox(path: &Path, messages: &[Vec<u8>]) {
    // mboxrd: every `From ` line (however many `>` before it) gains one `>`.
    let mut mbox = Vec::new();
    for message in messages {
        mbox.extend_from_slice(b"From import-test@example.org Sat Nov 28 10:00:00 2026\n");
        for line in message.split_inclusive(|byte| *byte == b'\n') {
            let quotes = line.iter().take_while(|byte| **byte == b'>').count();
            if line[quotes..].starts_with(b"From ") {
                mbox.push(b'>');
            }
            mbox.extend_from_slice(line);
        }
        if !message.ends_with(b"\n") {
            // A message without a final newline cannot round-trip through mbox; the test
            // set below excludes such messages.
            unreachable!("filtered out");
        }
        mbox.push(b'\n');
    }
    std::fs::write(path, mbox).expect("write mbox");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_corpus_imports_and_reads_back_byte_for_byte() {
    let Some(corpus) = corpus_dir() else {
        eprintln!("skipped: no shared corpus");
        return;
    };
    let files = corpus_messages();
    let node = Node::init(Path::new(TME)).expect("init");
    node.add_account("corpus@example.com", "password")
        .expect("account");
    let output = node
        .tme_ok(&[
            "import",
            "corpus@example.com",
            corpus.to_str().expect("utf-8 path"),
        ])
        .expect("import");
    assert!(
        output.contains(&format!("imported {} message(s)", files.len())),
        "{output}"
    );
    let stored = stored_messages(node.data_dir(), "corpus@example.com", "INBOX").await;
    assert_eq!(stored.len(), files.len());
    for (file, raw) in files.iter().zip(&stored) {
        assert!(
            std::fs::read(file).expect("read") == *raw,
            "{} differs after the round trip",
            file.display()
        );
    }
    // Importing again finds everything present and adds nothing.
    let again = node
        .tme_ok(&[
            "import",
            "corpus@example.com",
            corpus.to_str().expect("utf-8 path"),
        ])
        .expect("import");
    assert!(
        again.contains("imported 0 message(s)")
            && again.contains(&format!("{} already present", files.len())),
        "{again}"
    );
}

fn corpus_sample(count: usize) -> Vec<Vec<u8>> {
    corpus_messages()
        .iter()
        .map(|path| std::fs::read(path).expect("read"))
        .filter(|raw| raw.ends_with(b"\n"))
        .take(count)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mbox_imports_byte_for_byte_into_the_named_mailbox() {
    let messages = corpus_sample(300);
    if messages.is_empty() {
        eprintln!("skipped: no shared corpus");
        return;
    }
    let node = Node::init(Path::new(TME)).expect("init");
    node.add_account("mbox@example.com", "password")
        .expect("account");
    let mbox = node.data_dir().join("old.mbox");
    write_mbox(&mbox, &messages);
    let output = node
        .tme_ok(&[
            "import",
            "mbox@example.com",
            mbox.to_str().expect("path"),
            "--mailbox",
            "Old Mail/2003",
        ])
        .expect("import");
    assert!(
        output.contains(&format!("imported {} message(s)", messages.len())),
        "{output}"
    );
    let stored = stored_messages(node.data_dir(), "mbox@example.com", "Old Mail/2003").await;
    assert_eq!(stored.len(), messages.len());
    for (index, (original, raw)) in messages.iter().zip(&stored).enumerate() {
        assert!(
            original == raw,
            "message {index} differs after the mbox round trip"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_import_resumes_without_loss_or_duplicates() {
    let messages = corpus_sample(3000);
    if messages.len() < 3000 {
        eprintln!("skipped: no shared corpus");
        return;
    }
    let node = Node::init(Path::new(TME)).expect("init");
    node.add_account("resume@example.com", "password")
        .expect("account");
    let mbox: PathBuf = node.data_dir().join("big.mbox");
    write_mbox(&mbox, &messages);
    let mut child = node
        .command()
        .args(["import", "resume@example.com", mbox.to_str().expect("path")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn import");
    // Kill it once some batches are in, or whenever it gets there.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let present = node
            .tme_ok(&["account", "show", "resume@example.com", "--json"])
            .expect("show");
        let present: serde_json::Value = serde_json::from_str(&present).expect("json");
        if present["messages"].as_u64().unwrap_or(0) > 0 || std::time::Instant::now() > deadline {
            break;
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let output = node
        .tme_ok(&["import", "resume@example.com", mbox.to_str().expect("path")])
        .expect("resume");
    assert!(output.contains("already present"), "{output}");
    let stored = stored_messages(node.data_dir(), "resume@example.com", "INBOX").await;
    assert_eq!(
        stored.len(),
        messages.len(),
        "every message exactly once: {output}"
    );
    let mut expected = messages.clone();
    let mut actual = stored.clone();
    expected.sort();
    actual.sort();
    assert!(expected == actual, "the same messages, byte for byte");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maildir_imports_with_subfolders_and_flags() {
    let node = Node::init(Path::new(TME)).expect("init");
    node.add_account("maildir@example.com", "password")
        .expect("account");
    let root = node.data_dir().join("Maildir");
    for folder in ["cur", "new", "tmp", ".Sent/cur", ".Lists.Rust/new"] {
        std::fs::create_dir_all(root.join(folder)).expect("mkdir");
    }
    std::fs::write(
        root.join("cur/1.a.host:2,S"),
        b"Subject: inbox seen\r\n\r\nhi\r\n",
    )
    .expect("write");
    std::fs::write(
        root.join("new/2.b.host"),
        b"Subject: inbox new\r\n\r\nhi\r\n",
    )
    .expect("write");
    std::fs::write(
        root.join(".Sent/cur/3.c.host:2,RS"),
        b"Subject: sent\r\n\r\nhi\r\n",
    )
    .expect("write");
    std::fs::write(
        root.join(".Lists.Rust/new/4.d.host"),
        b"Subject: list\r\n\r\nhi\r\n",
    )
    .expect("write");
    let output = node
        .tme_ok(&[
            "import",
            "maildir@example.com",
            root.to_str().expect("path"),
        ])
        .expect("import");
    assert!(output.contains("imported 4 message(s)"), "{output}");
    let store = Store::open(node.data_dir(), &StoreConfig::default())
        .await
        .expect("open");
    let account = store
        .account_open(&EmailAddress::parse("maildir@example.com").expect("address"))
        .await
        .expect("account");
    let mut seen = Vec::new();
    for name in ["INBOX", "Sent", "Lists/Rust"] {
        let mailbox = store
            .mail
            .mailbox_find(account.id, name)
            .await
            .expect("find")
            .expect(name);
        for record in store
            .mail
            .message_list(account.id, mailbox.id)
            .await
            .expect("list")
        {
            seen.push((name, record.flags.names()));
        }
    }
    assert_eq!(
        seen,
        vec![
            ("INBOX", vec!["\\Seen".to_owned()]),
            ("INBOX", vec![]),
            ("Sent", vec!["\\Seen".to_owned(), "\\Answered".to_owned()]),
            ("Lists/Rust", vec![]),
        ]
    );
    store.close().await;
}

#[test]
fn bad_sources_get_clear_errors() {
    let node = Node::init(Path::new(TME)).expect("init");
    node.add_account("user@example.com", "password")
        .expect("account");
    let not_mbox = node.data_dir().join("note.txt");
    std::fs::write(&not_mbox, "hello\n").expect("write");
    let output = node
        .tme(&[
            "import",
            "user@example.com",
            not_mbox.to_str().expect("path"),
        ])
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not an mbox file"));
    let output = node
        .tme(&[
            "import",
            "nobody@example.com",
            not_mbox.to_str().expect("path"),
        ])
        .expect("run");
    assert!(String::from_utf8_lossy(&output.stderr).contains("create the account first"));
}
