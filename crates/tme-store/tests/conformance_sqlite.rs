//! The storage conformance suite on the SQLite backend: each check on a fresh store.

use tme_core::config::StoreConfig;
use tme_store::{Store, conformance};

async fn fresh_store() -> (tempfile::TempDir, Store) {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = Store::open(directory.path(), &StoreConfig::default())
        .await
        .expect("open store");
    (directory, store)
}

macro_rules! conformance_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (_directory, store) = fresh_store().await;
                conformance::run(stringify!($name), &store).await;
                store.close().await;
            }
        )*

        #[test]
        fn every_check_has_a_test() {
            let tested = [$(stringify!($name)),*];
            for check in conformance::CHECKS {
                assert!(tested.contains(check), "conformance check {check} is not run on SQLite");
            }
        }
    };
}

conformance_tests!(
    default_mailboxes,
    concurrent_appends_get_distinct_increasing_uids,
    no_message_without_its_blob,
    quota_holds_under_concurrency,
    expunged_messages_are_restorable,
    message_pages_follow_their_order,
    messages_are_threaded_by_their_references,
    summaries_are_read_together,
    concurrent_flag_changes_fail_alone,
    deleted_mailbox_is_restorable,
    change_log_misses_nothing,
    expunged_uids_are_kept_with_their_modseq,
    retention_purge_and_garbage_collection,
    directory_rules,
    alias_resolution,
    delivery_keys_deliver_once_per_account,
    concurrent_deliveries_fail_alone,
    queue_claims_leases_and_records,
    mta_sts_policies_are_kept_until_they_expire,
    dns_keys_and_records,
    login_locks_are_kept_listed_and_lifted,
    web_sessions_are_kept_per_account_and_revoked,
    signatures_are_kept_per_account,
    vacations_answer_each_sender_once_a_period,
    app_passwords_are_listed_and_revoked,
);

/// A mail file from before conversations were kept: its messages get their threads from
/// `threads_backfill`, a batch at a time, oldest first, as if threaded at append.
#[allow(clippy::unwrap_used)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_messages_are_threaded_by_the_backfill() {
    use tme_store::{Delivery, Flags, MAIL_SHARD_FILE_NAME};
    let directory = tempfile::tempdir().unwrap();
    let (store, account) = tme_store::fixture::store_with_account(
        directory.path(),
        "user@example.com",
        "a password",
        1 << 30,
    )
    .await
    .unwrap();
    let account = account.id;
    let inbox = store
        .mail
        .mailbox_find(account, "INBOX")
        .await
        .unwrap()
        .unwrap();
    let flags = Flags::default();
    let raws: Vec<Vec<u8>> = [
        "Message-ID: <a@x>\r\n",
        "Message-ID: <b@x>\r\nIn-Reply-To: <a@x>\r\n",
        "Message-ID: <c@x>\r\n",
        "Message-ID: <d@x>\r\nReferences: <a@x> <b@x>\r\n",
    ]
    .iter()
    .map(|fields| format!("{fields}Subject: s\r\n\r\nbody\r\n").into_bytes())
    .collect();
    for raw in &raws {
        let delivery = Delivery {
            account,
            mailbox: inbox.id,
            raw,
            internal_date_unix: Some(1_700_000_000),
            flags: &flags,
        };
        store.deliver(&[delivery]).await.unwrap();
    }
    let threaded = store.mail.message_list(account, inbox.id).await.unwrap();
    store.close().await;

    // Forget every thread, as a file written before schema step 4 would have none.
    let path = directory.path().join(MAIL_SHARD_FILE_NAME);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE messages SET thread_id = NULL")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM thread_keys")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let store = Store::open(directory.path(), &StoreConfig::default())
        .await
        .unwrap();
    let unthreaded = store.mail.message_list(account, inbox.id).await.unwrap();
    assert!(
        unthreaded.iter().all(|m| m.thread_id == m.id),
        "until the backfill, each message is a thread of its own"
    );
    assert_eq!(store.mail.thread_count(account, inbox.id).await.unwrap(), 4);
    let shape = |entries: Vec<tme_store::ThreadEntry>| -> Vec<(u32, u32)> {
        entries
            .iter()
            .map(|entry| (entry.newest.uid, entry.messages))
            .collect()
    };
    let lone = store
        .mail
        .thread_messages(account, unthreaded[1].thread_id, 10)
        .await
        .unwrap();
    assert_eq!(
        lone,
        vec![unthreaded[1].clone()],
        "a message not threaded yet is alone"
    );
    let alone = store
        .mail
        .thread_page(account, inbox.id, 0, 10)
        .await
        .unwrap();
    assert_eq!(shape(alone), vec![(4, 1), (3, 1), (2, 1), (1, 1)]);
    assert_eq!(store.mail.threads_backfill(3).await.unwrap(), 3);
    assert_eq!(store.mail.threads_backfill(3).await.unwrap(), 1);
    assert_eq!(store.mail.threads_backfill(3).await.unwrap(), 0);
    let backfilled = store.mail.message_list(account, inbox.id).await.unwrap();
    assert_eq!(backfilled, threaded, "the same threads as at append");
    assert_eq!(store.mail.thread_count(account, inbox.id).await.unwrap(), 2);
    let threaded = store
        .mail
        .thread_page(account, inbox.id, 0, 10)
        .await
        .unwrap();
    assert_eq!(shape(threaded), vec![(4, 3), (3, 1)]);
    store.close().await;
}
