//! Helpers shared by the integration tests that read what a node stored.

use std::path::Path;

use tme_core::EmailAddress;
use tme_core::config::StoreConfig;
use tme_store::Store;

/// Reads every message of `mailbox` back through the store, in UID order.
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
