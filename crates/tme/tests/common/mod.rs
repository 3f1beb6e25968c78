//! Helpers shared by the integration tests that read what a node stored.

use std::path::Path;

use tme_core::EmailAddress;
use tme_core::config::StoreConfig;
use tme_store::Store;

/// Reads every message of `mailbox` back through the store, in UID order.
#[allow(dead_code)] // not every test crate that shares this module reads the store
pub async fn stored_messages(data_dir: &Path, address: &str, mailbox: &str) -> Vec<Vec<u8>> {
    let store = Store::open(data_dir, &StoreConfig::default())
        .await
        .expect("open store");
    let account = store
        .account_open(&EmailAddress::parse(address).expect("address"))
        .await
        .expect("account");
    let mailbox = store
        .mail
        .mailbox_find(account.id, mailbox)
        .await
        .expect("find")
        .expect("mailbox");
    let mut messages = Vec::new();
    for record in store
        .mail
        .message_list(account.id, mailbox.id)
        .await
        .expect("list")
    {
        messages.push(store.message_raw(&record).await.expect("read back"));
        // The summary parsed at import reads back too.
        let summary = store
            .mail
            .message_summary(account.id, record.id)
            .await
            .expect("summary");
        assert_eq!(summary.size_bytes, record.size_bytes);
    }
    store.close().await;
    messages
}

/// Splits a stored message after its first `count` header fields (a field runs on over
/// continuation lines, which start with a space or a tab): what the node prepended, as text,
/// and the rest as stored.
#[allow(dead_code)] // not every test crate that shares this module reads trace headers
pub fn split_fields(stored: &[u8], count: usize) -> (String, &[u8]) {
    let mut offset = 0;
    for _ in 0..count {
        loop {
            let end = stored[offset..]
                .windows(2)
                .position(|pair| pair == b"\r\n")
                .expect("a header line")
                + offset
                + 2;
            offset = end;
            if !matches!(stored.get(offset), Some(b' ' | b'\t')) {
                break;
            }
        }
    }
    (
        String::from_utf8_lossy(&stored[..offset]).into_owned(),
        &stored[offset..],
    )
}

/// Asserts that the node's `/metrics` page has each of `lines`, exactly.
#[allow(dead_code)] // not every test crate that shares this module reads metrics
pub fn assert_metrics(node: &tme_testkit::Node, lines: &[&str]) {
    let (status, metrics) = node.http_get("/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{metrics}");
    for line in lines {
        assert!(
            metrics.lines().any(|got| got == *line),
            "{line} in:\n{metrics}"
        );
    }
}
