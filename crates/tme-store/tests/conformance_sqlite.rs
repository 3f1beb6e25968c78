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
);
