//! The storage conformance suite: the rules every backend must keep, checked through the
//! public traits only. Each check takes a freshly opened, empty `Store`; a backend's tests call
//! every check (see `tests/conformance_sqlite.rs`). Checks panic with a message that says
//! which rule broke, as tests do.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use tme_core::{Domain, EmailAddress};

use crate::{
    AccountId, AttemptRecord, Branding, ChangeKind, Delivery, FlagChange, Flags, MessageOrder,
    NewAccount, NewQueued, NewRecipient, Notify, RecipientOutcome, RecipientState, Store,
    StoreError,
};

/// Every check, by name, for a backend's test to run one by one.
pub const CHECKS: &[&str] = &[
    "default_mailboxes",
    "concurrent_appends_get_distinct_increasing_uids",
    "no_message_without_its_blob",
    "quota_holds_under_concurrency",
    "expunged_messages_are_restorable",
    "message_pages_follow_their_order",
    "messages_are_threaded_by_their_references",
    "summaries_are_read_together",
    "concurrent_flag_changes_fail_alone",
    "deleted_mailbox_is_restorable",
    "change_log_misses_nothing",
    "expunged_uids_are_kept_with_their_modseq",
    "retention_purge_and_garbage_collection",
    "directory_rules",
    "alias_resolution",
    "delivery_keys_deliver_once_per_account",
    "concurrent_deliveries_fail_alone",
    "queue_claims_leases_and_records",
    "mta_sts_policies_are_kept_until_they_expire",
    "dns_keys_and_records",
    "login_locks_are_kept_listed_and_lifted",
    "web_sessions_are_kept_per_account_and_revoked",
    "signatures_are_kept_per_account",
    "vacations_answer_each_sender_once_a_period",
    "app_passwords_are_listed_and_revoked",
];

/// Runs the check named `name` against `store`.
pub async fn run(name: &str, store: &Store) {
    match name {
        "default_mailboxes" => default_mailboxes(store).await,
        "concurrent_appends_get_distinct_increasing_uids" => {
            concurrent_appends_get_distinct_increasing_uids(store).await
        }
        "no_message_without_its_blob" => no_message_without_its_blob(store).await,
        "quota_holds_under_concurrency" => quota_holds_under_concurrency(store).await,
        "expunged_messages_are_restorable" => expunged_messages_are_restorable(store).await,
        "message_pages_follow_their_order" => message_pages_follow_their_order(store).await,
        "messages_are_threaded_by_their_references" => {
            messages_are_threaded_by_their_references(store).await
        }
        "summaries_are_read_together" => summaries_are_read_together(store).await,
        "concurrent_flag_changes_fail_alone" => concurrent_flag_changes_fail_alone(store).await,
        "deleted_mailbox_is_restorable" => deleted_mailbox_is_restorable(store).await,
        "change_log_misses_nothing" => change_log_misses_nothing(store).await,
        "expunged_uids_are_kept_with_their_modseq" => {
            expunged_uids_are_kept_with_their_modseq(store).await
        }
        "retention_purge_and_garbage_collection" => {
            retention_purge_and_garbage_collection(store).await
        }
        "directory_rules" => directory_rules(store).await,
        "alias_resolution" => alias_resolution(store).await,
        "delivery_keys_deliver_once_per_account" => {
            delivery_keys_deliver_once_per_account(store).await
        }
        "concurrent_deliveries_fail_alone" => concurrent_deliveries_fail_alone(store).await,
        "queue_claims_leases_and_records" => queue_claims_leases_and_records(store).await,
        "mta_sts_policies_are_kept_until_they_expire" => {
            mta_sts_policies_are_kept_until_they_expire(store).await
        }
        "dns_keys_and_records" => dns_keys_and_records(store).await,
        "login_locks_are_kept_listed_and_lifted" => {
            login_locks_are_kept_listed_and_lifted(store).await
        }
        "web_sessions_are_kept_per_account_and_revoked" => {
            web_sessions_are_kept_per_account_and_revoked(store).await
        }
        "signatures_are_kept_per_account" => signatures_are_kept_per_account(store).await,
        "app_passwords_are_listed_and_revoked" => app_passwords_are_listed_and_revoked(store).await,
        "vacations_answer_each_sender_once_a_period" => {
            vacations_answer_each_sender_once_a_period(store).await
        }
        other => panic!("no conformance check named {other}"),
    }
}

async fn account(store: &Store, address: &str, quota_bytes_max: u64) -> AccountId {
    let address = EmailAddress::parse(address).unwrap();
    let domain = address.domain().clone();
    if store
        .directory
        .partner_get("conformance")
        .await
        .unwrap()
        .is_none()
    {
        store
            .directory
            .partner_add("conformance", Branding::default())
            .await
            .unwrap();
    }
    if store.directory.domain_get(&domain).await.unwrap().is_none() {
        store
            .directory
            .domain_add(&domain, "conformance")
            .await
            .unwrap();
    }
    store
        .account_create(NewAccount {
            address,
            display_name: None,
            password_hash: "not-a-real-hash".to_owned(),
            quota_bytes_max,
        })
        .await
        .unwrap()
        .id
}

fn message(number: usize) -> Vec<u8> {
    format!(
        "From: sender@example.org\r\nTo: user@example.com\r\nSubject: message {number}\r\n\
         Message-ID: <{number}@example.org>\r\n\r\nBody of message {number}.\r\n"
    )
    .into_bytes()
}

async fn inbox_of(store: &Store, account: AccountId) -> crate::Mailbox {
    store
        .mail
        .mailbox_find(account, "INBOX")
        .await
        .unwrap()
        .unwrap()
}

async fn deliver_one(
    store: &Store,
    account: AccountId,
    mailbox: i64,
    raw: &[u8],
) -> crate::Appended {
    let flags = Flags::default();
    let delivery = Delivery {
        account,
        mailbox,
        raw,
        internal_date_unix: Some(1_700_000_000),
        flags: &flags,
    };
    store.deliver(&[delivery]).await.unwrap().remove(0)
}

/// A new account has its six mailboxes with special-use, and `account_ensure` is idempotent.
pub async fn default_mailboxes(store: &Store) {
    let account = account(store, "user@example.com", 1 << 30).await;
    store.mail.account_ensure(account, 1 << 30).await.unwrap();
    let mailboxes = store.mail.mailbox_list(account).await.unwrap();
    let mut names: Vec<(String, Option<&str>)> = mailboxes
        .iter()
        .map(|mailbox| {
            (
                mailbox.name.clone(),
                mailbox.special_use.map(|s| s.as_str()),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("Archive".to_owned(), Some("archive")),
            ("Drafts".to_owned(), Some("drafts")),
            ("INBOX".to_owned(), Some("inbox")),
            ("Junk".to_owned(), Some("junk")),
            ("Sent".to_owned(), Some("sent")),
            ("Trash".to_owned(), Some("trash")),
        ],
        "every new account gets Inbox, Sent, Drafts, Trash, Junk and Archive"
    );
    let validities: HashSet<u32> = mailboxes
        .iter()
        .map(|mailbox| mailbox.uid_validity)
        .collect();
    assert_eq!(
        validities.len(),
        mailboxes.len(),
        "UIDVALIDITY differs between mailboxes"
    );
    // inbox in any case is INBOX (RFC 9051 §5.1).
    assert!(
        store
            .mail
            .mailbox_find(account, "inbox")
            .await
            .unwrap()
            .is_some()
    );
}

/// Appends from many tasks at once get distinct UIDs, increasing in commit order.
pub async fn concurrent_appends_get_distinct_increasing_uids(store: &Store) {
    let account = account(store, "user@example.com", 1 << 30).await;
    let inbox = inbox_of(store, account).await;
    let tasks_count = 16;
    let per_task = 10;
    let mut tasks = Vec::new();
    for task in 0..tasks_count {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for number in 0..per_task {
                let appended =
                    deliver_one(&store, account, inbox.id, &message(task * 100 + number)).await;
                seen.push((appended.modseq, appended.uid));
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let seen = task.await.unwrap();
        assert!(
            seen.windows(2).all(|pair| pair[0].1 < pair[1].1),
            "one task's UIDs increase"
        );
        all.extend(seen);
    }
    let uids: HashSet<u32> = all.iter().map(|(_, uid)| *uid).collect();
    assert_eq!(uids.len(), tasks_count * per_task, "UIDs are distinct");
    all.sort();
    assert!(
        all.windows(2).all(|pair| pair[0].1 < pair[1].1),
        "UIDs increase with MODSEQ"
    );
    let listed = store.mail.message_list(account, inbox.id).await.unwrap();
    assert_eq!(listed.len(), tasks_count * per_task);
    let mailbox = store.mail.mailbox_get(account, inbox.id).await.unwrap();
    assert_eq!(mailbox.uid_next, (tasks_count * per_task) as u32 + 1);
}

/// Every listed message's blob reads back byte for byte; a refused delivery leaves nothing.
pub async fn no_message_without_its_blob(store: &Store) {
    let account = account(store, "user@example.com", 1 << 30).await;
    let inbox = inbox_of(store, account).await;
    for number in 0..20 {
        deliver_one(store, account, inbox.id, &message(number)).await;
    }
    for (number, record) in store
        .mail
        .message_list(account, inbox.id)
        .await
        .unwrap()
        .iter()
        .enumerate()
    {
        let raw = store.message_raw(record).await.unwrap();
        assert_eq!(
            raw,
            message(number),
            "message {number} reads back byte for byte"
        );
    }
    // A delivery into a mailbox that does not exist is refused whole.
    let flags = Flags::default();
    let raw = message(999);
    let result = store
        .deliver(&[
            Delivery {
                account,
                mailbox: inbox.id,
                raw: &raw,
                internal_date_unix: None,
                flags: &flags,
            },
            Delivery {
                account,
                mailbox: 999_999,
                raw: &raw,
                internal_date_unix: None,
                flags: &flags,
            },
        ])
        .await;
    assert!(
        matches!(result, Err(StoreError::NotFound { .. })),
        "{result:?}"
    );
    assert_eq!(
        store
            .mail
            .message_list(account, inbox.id)
            .await
            .unwrap()
            .len(),
        20,
        "all or none"
    );
    // Across accounts too: a failure at the second leaves nothing at the first.
    let other = self::account(store, "other@example.com", 1 << 30).await;
    let other_inbox = inbox_of(store, other).await;
    let result = store
        .deliver(&[
            Delivery {
                account: other,
                mailbox: other_inbox.id,
                raw: &raw,
                internal_date_unix: None,
                flags: &flags,
            },
            Delivery {
                account,
                mailbox: 999_999,
                raw: &raw,
                internal_date_unix: None,
                flags: &flags,
            },
        ])
        .await;
    assert!(result.is_err());
    assert!(
        store
            .mail
            .message_list(other, other_inbox.id)
            .await
            .unwrap()
            .is_empty(),
        "a delivery to several accounts is all or none"
    );
}

/// Concurrent appends never take an account past its quota, and usage adds up.
pub async fn quota_holds_under_concurrency(store: &Store) {
    let one_size = message(0).len() as u64;
    let quota = one_size * 10 + one_size / 2;
    let account = account(store, "user@example.com", quota).await;
    let inbox = inbox_of(store, account).await;
    let mut tasks = Vec::new();
    for number in 0..40 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let flags = Flags::default();
            let raw = message(number % 10);
            let delivery = Delivery {
                account,
                mailbox: inbox.id,
                raw: &raw,
                internal_date_unix: None,
                flags: &flags,
            };
            store.deliver(&[delivery]).await.map(|_| ())
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => accepted += 1,
            Err(StoreError::QuotaExceeded { .. }) => {}
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert_eq!(accepted, 10, "exactly as many messages as fit");
    let usage = store.mail.account_usage(account).await.unwrap();
    assert_eq!(usage.messages, 10);
    assert_eq!(usage.used_bytes, one_size * 10);
    assert!(usage.used_bytes <= usage.quota_bytes_max);
    // Expunging frees space.
    store
        .mail
        .messages_expunge(account, inbox.id, &[1])
        .await
        .unwrap();
    assert_eq!(store.mail.account_usage(account).await.unwrap().messages, 9);
    deliver_one(store, account, inbox.id, &message(0)).await;
}

/// Expunged messages stay listed as restorable; restoring gives them new UIDs.
pub async fn expunged_messages_are_restorable(store: &Store) {
    let account = account(store, "user@example.com", 1 << 30).await;
    let inbox = inbox_of(store, account).await;
    for number in 0..5 {
        deliver_one(store, account, inbox.id, &message(number)).await;
    }
    let expunged = store
        .mail
        .messages_expunge(account, inbox.id, &[2, 4, 77])
        .await
        .unwrap();
    assert_eq!(expunged, vec![2, 4], "only existing UIDs are expunged");
    let live: Vec<u32> = store
        .mail
        .message_list(account, inbox.id)
        .await
        .unwrap()
        .iter()
        .map(|m| m.uid)
        .collect();
    assert_eq!(live, vec![1, 3, 5]);
    let retained = store
        .mail
        .message_list_expunged(account, inbox.id)
        .await
        .unwrap();
    assert_eq!(retained.len(), 2);
    let ids: Vec<i64> = retained.iter().map(|record| record.id).collect();
    let restored = store.mail.messages_restore(account, &ids).await.unwrap();
    let mut new_uids: Vec<u32> = restored.iter().map(|appended| appended.uid).collect();
    new_uids.sort();
    assert_eq!(
        new_uids,
        vec![6, 7],
        "restored messages get new UIDs, never their old ones"
    );
    let listed = store.mail.message_list(account, inbox.id).await.unwrap();
    assert_eq!(listed.len(), 5);
    for record in &listed {
        store.message_raw(record).await.unwrap();
    }
    assert_eq!(store.mail.account_usage(account).await.unwrap().messages, 5);
}

/// `message_page` reads the live messages of one mailbox in each order, a page at a time,
/// with no message shown twice or skipped across pages (ties go by UID); `message_by_uid`
/// finds a live message and nothing for an expunged UID, another mailbox or another account.
/// A message joins the conversation its Message-ID, In-Reply-To or References lead to, in
/// every mailbox it is copied to; a conversation is named by its first message and keeps
/// that name; each mailbox lists its conversations newest first, a page at a time.
pub async fn messages_are_threaded_by_their_references(store: &Store) {
    let other = account(store, "other@example.com", 1 << 30).await;
    let account = account(store, "user@example.com", 1 << 30).await;
    let inbox = inbox_of(store, account).await;
    let sent = store
        .mail
        .mailbox_find(account, "Sent")
        .await
        .unwrap()
        .unwrap();
    let mail = |id: &str, extra: &str| {
        format!("From: a@example.org\r\nSubject: s\r\nMessage-ID: <{id}>\r\n{extra}\r\nbody\r\n")
            .into_bytes()
    };
    // 1 starts a thread; 2 answers it; 3 answers 2 (References only); 4 is unrelated;
    // 5 answers a message we never got, as 6 does: they share a thread of their own;
    // 7 has no ids at all.
    let messages = [
        mail("one@x", ""),
        mail("two@x", "In-Reply-To: <one@x>\r\n"),
        mail("three@x", "References: <one@x> <two@x>\r\n"),
        mail("four@x", ""),
        mail("five@x", "In-Reply-To: <missing@x>\r\n"),
        mail("six@x", "References: <missing@x>\r\n"),
        b"From: a@example.org\r\nSubject: none\r\n\r\nbody\r\n".to_vec(),
    ];
    for raw in &messages {
        deliver_one(store, account, inbox.id, raw).await;
    }
    // The other account's copy of the first message is in a thread of that account's.
    let other_inbox = inbox_of(store, other).await;
    deliver_one(store, other, other_inbox.id, &messages[0]).await;
    let list = store.mail.message_list(account, inbox.id).await.unwrap();
    let thread = |uid: u32| list.iter().find(|m| m.uid == uid).unwrap().thread_id;
    let id = |uid: u32| list.iter().find(|m| m.uid == uid).unwrap().id;
    assert_eq!(thread(1), id(1), "a thread is named by its first message");
    assert_eq!(thread(2), thread(1), "In-Reply-To joins the thread");
    assert_eq!(thread(3), thread(1), "References join the thread");
    assert_eq!(thread(4), id(4), "an unrelated message starts a thread");
    assert_eq!(
        thread(6),
        thread(5),
        "replies to the same missing message share one"
    );
    assert_eq!(
        thread(7),
        id(7),
        "a message without ids is a thread of its own"
    );
    let others = store
        .mail
        .message_list(other, other_inbox.id)
        .await
        .unwrap();
    assert_ne!(others[0].thread_id, thread(1), "threads are per account");

    // A copy (and a move) stays in its thread; a message answering the copy joins it.
    let record = list.iter().find(|m| m.uid == 2).unwrap().clone();
    store
        .messages_copy(account, &[(record, Flags::default())], sent.id)
        .await
        .unwrap();
    deliver_one(
        store,
        account,
        sent.id,
        &mail("eight@x", "In-Reply-To: <three@x>\r\n"),
    )
    .await;
    let in_sent = store.mail.message_list(account, sent.id).await.unwrap();
    assert!(in_sent.iter().all(|m| m.thread_id == thread(1)));

    // The thread across mailboxes, oldest first.
    let whole = store
        .mail
        .thread_messages(account, thread(1), 100)
        .await
        .unwrap();
    assert_eq!(whole.len(), 5, "1, 2, 3 in the Inbox, 2 and 8 in Sent");
    assert!(whole.iter().all(|m| m.thread_id == thread(1)));
    assert!(
        whole
            .windows(2)
            .all(|pair| (pair[0].internal_date_unix, pair[0].id)
                <= (pair[1].internal_date_unix, pair[1].id))
    );
    let limited = store
        .mail
        .thread_messages(account, thread(1), 2)
        .await
        .unwrap();
    assert_eq!(limited.len(), 2);

    // The Inbox's threads: {7}, {5, 6}, {4}, {1, 2, 3}, newest first, a page at a time.
    store
        .mail
        .messages_set_flags(
            account,
            inbox.id,
            &[2],
            &FlagChange::Add(Flags::parse(["\\Seen"]).unwrap()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(store.mail.thread_count(account, inbox.id).await.unwrap(), 4);
    let mut pages = Vec::new();
    for offset in [0, 3] {
        pages.extend(
            store
                .mail
                .thread_page(account, inbox.id, offset, 3)
                .await
                .unwrap(),
        );
    }
    let shape: Vec<(u32, u32, u32)> = pages
        .iter()
        .map(|entry| (entry.newest.uid, entry.messages, entry.unseen))
        .collect();
    assert_eq!(shape, vec![(7, 1, 1), (6, 2, 2), (4, 1, 1), (3, 3, 2)]);
    assert!(
        pages
            .iter()
            .all(|entry| entry.thread_id == entry.newest.thread_id)
    );

    // Expunged messages leave the lists but keep their thread when restored.
    store
        .mail
        .messages_expunge(account, inbox.id, &[3])
        .await
        .unwrap();
    let first = store
        .mail
        .thread_page(account, inbox.id, 3, 3)
        .await
        .unwrap();
    assert_eq!((first[0].newest.uid, first[0].messages), (2, 2));
    let expunged = store
        .mail
        .message_list_expunged(account, inbox.id)
        .await
        .unwrap();
    let restored = store
        .mail
        .messages_restore(account, &[expunged[0].id])
        .await
        .unwrap();
    let back = store
        .mail
        .message_by_uid(account, inbox.id, restored[0].uid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.thread_id, thread(1));
    // Nothing is left to backfill in a store that threads at append.
    assert_eq!(store.mail.threads_backfill(100).await.unwrap(), 0);
}

pub async fn message_pages_follow_their_order(store: &Store) {
    let other = account(store, "other@example.com", 1 << 30).await;
    let account = account(store, "user@example.com", 1 << 30).await;
    let inbox = inbox_of(store, account).await;
    let flags = Flags::default();
    // Dates and sizes that disagree with arrival, with ties.
    let dates = [50, 10, 30, 10, 40, 20, 30];
    for (number, date) in dates.iter().enumerate() {
        let raw = format!(
            "{}{}",
            String::from_utf8(message(number)).unwrap(),
            "x".repeat((number * 7) % 3 * 10)
        );
        let delivery = Delivery {
            account,
            mailbox: inbox.id,
            raw: raw.as_bytes(),
            internal_date_unix: Some(1_700_000_000 + date),
            flags: &flags,
        };
        store.deliver(&[delivery]).await.unwrap();
    }
    store
        .mail
        .messages_expunge(account, inbox.id, &[4])
        .await
        .unwrap();
    let live = store.mail.message_list(account, inbox.id).await.unwrap();
    assert_eq!(live.len(), 6);
    for order in MessageOrder::ALL {
        let mut expected = live.clone();
        match order {
            MessageOrder::ArrivalNewestFirst => expected.sort_by_key(|m| std::cmp::Reverse(m.uid)),
            MessageOrder::ArrivalOldestFirst => expected.sort_by_key(|m| m.uid),
            MessageOrder::DateNewestFirst => {
                expected.sort_by_key(|m| std::cmp::Reverse((m.internal_date_unix, m.uid)))
            }
            MessageOrder::DateOldestFirst => {
                expected.sort_by_key(|m| (m.internal_date_unix, m.uid))
            }
            MessageOrder::SizeLargestFirst => {
                expected.sort_by_key(|m| std::cmp::Reverse((m.size_bytes, m.uid)))
            }
            MessageOrder::SizeSmallestFirst => expected.sort_by_key(|m| (m.size_bytes, m.uid)),
        }
        let mut paged = Vec::new();
        for offset in (0..8).step_by(4) {
            paged.extend(
                store
                    .mail
                    .message_page(account, inbox.id, order, offset, 4)
                    .await
                    .unwrap(),
            );
        }
        let uids =
            |records: &[crate::MessageRecord]| records.iter().map(|m| m.uid).collect::<Vec<_>>();
        assert_eq!(uids(&paged), uids(&expected), "{order:?}");
    }
    assert!(
        store
            .mail
            .message_page(account, inbox.id, MessageOrder::ArrivalNewestFirst, 100, 4)
            .await
            .unwrap()
            .is_empty()
    );
    let found = store
        .mail
        .message_by_uid(account, inbox.id, 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.uid, 3);
    assert_eq!(found, live[2]);
    assert!(
        store
            .mail
            .message_by_uid(account, inbox.id, 4)
            .await
            .unwrap()
            .is_none(),
        "expunged"
    );
    assert!(
        store
            .mail
            .message_by_uid(account, inbox.id, 99)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .mail
            .message_by_uid(other, inbox.id, 3)
            .await
            .unwrap()
            .is_none(),
        "another account"
    );
    // Counts follow every change: asked before and after each (a cache must not go stale).
    let counts = store.mail.mailbox_counts(account, inbox.id).await.unwrap();
    assert_eq!((counts.messages, counts.unseen), (6, 6));
    let sizes: u64 = live.iter().map(|m| m.size_bytes).sum();
    assert_eq!(counts.size_bytes, sizes);
    let seen = FlagChange::Add(Flags::parse(["\\Seen"]).unwrap());
    store
        .mail
        .messages_set_flags(account, inbox.id, &[1, 2], &seen, None)
        .await
        .unwrap();
    let counts = store.mail.mailbox_counts(account, inbox.id).await.unwrap();
    assert_eq!((counts.messages, counts.unseen), (6, 4));
    store
        .mail
        .messages_expunge(account, inbox.id, &[2, 3])
        .await
        .unwrap();
    let counts = store.mail.mailbox_counts(account, inbox.id).await.unwrap();
    assert_eq!((counts.messages, counts.unseen), (4, 3));
    let restored: Vec<_> = store
        .mail
        .message_list_expunged(account, inbox.id)
        .await
        .unwrap()
        .iter()
        .filter(|m| m.uid == 3)
        .map(|m| m.id)
        .collect();
    store
        .mail
        .messages_restore(account, &restored)
        .await
        .unwrap();
    let counts = store.mail.mailbox_counts(account, inbox.id).await.unwrap();
    assert_eq!((counts.messages, counts.unseen), (5, 4));
    let sent = store
        .mail
        .mailbox_find(account, "Sent")
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .mail
            .message_by_uid(account, sent.id, 3)
            .await
            .unwrap()
            .is_none(),
        "another mailbox"
    );
}

/// `message_summaries` gives what `message_summary` gives for each message, in the order
/// asked, expunged messages included, unknown ids and other accounts' messages left out,
/// across more ids than one statement takes.
pub async fn summaries_are_read_together(store: &Store) {
    let account_id = account(store, "user@example.com", 1 << 30).await;
    let other = account(store, "other@example.com", 1 << 30).await;
    let inbox = inbox_of(store, account_id).await;
    // More than one statement's 500 ids, delivered in one call.
    let raws: Vec<Vec<u8>> = (0..600).map(message).collect();
    let flags = Flags::default();
    let deliveries: Vec<Delivery> = raws
        .iter()
        .map(|raw| Delivery {
            account: account_id,
            mailbox: inbox.id,
            raw,
            internal_date_unix: Some(1_700_000_000),
            flags: &flags,
        })
        .collect();
    let mut ids: Vec<i64> = store
        .deliver(&deliveries)
        .await
        .unwrap()
        .iter()
        .map(|appended| appended.message_id)
        .collect();
    let other_inbox = inbox_of(store, other).await;
    let foreign = deliver_one(store, other, other_inbox.id, &message(9_999))
        .await
        .message_id;
    store
        .mail
        .messages_expunge(account_id, inbox.id, &[3])
        .await
        .unwrap();
    ids.reverse();
    let mut asked = ids.clone();
    asked.insert(7, foreign);
    asked.push(i64::MAX);
    let summaries = store
        .mail
        .message_summaries(account_id, &asked)
        .await
        .unwrap();
    assert_eq!(
        summaries.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        ids,
        "every message of the account, in the order asked, and nothing else"
    );
    for (id, summary) in summaries.iter().step_by(97) {
        let one = store.mail.message_summary(account_id, *id).await.unwrap();
        assert_eq!(summary.subject, one.subject);
        assert_eq!(summary.size_bytes, one.size_bytes);
    }
    assert!(
        store
            .mail
            .message_summaries(account_id, &[])
            .await
            .unwrap()
            .is_empty()
    );
}

/// Flag changes made at the same time (which a backend may write in one transaction) each
/// take effect, each is in the change log, and one on a deleted mailbox fails alone.
pub async fn concurrent_flag_changes_fail_alone(store: &Store) {
    let account_id = account(store, "user@example.com", 1 << 30).await;
    let inbox = inbox_of(store, account_id).await;
    let doomed = store
        .mail
        .mailbox_create(account_id, "Doomed", None)
        .await
        .unwrap();
    for number in 0..8 {
        deliver_one(store, account_id, inbox.id, &message(number)).await;
    }
    deliver_one(store, account_id, doomed.id, &message(99)).await;
    store
        .mail
        .mailbox_delete(account_id, doomed.id)
        .await
        .unwrap();
    let start = store.mail.highest_modseq(account_id).await.unwrap();
    let flagged = Flags::parse(["\\Flagged"]).unwrap();
    let mut tasks = Vec::new();
    for uid in 1..=8u32 {
        let store = store.clone();
        let flagged = flagged.clone();
        tasks.push(tokio::spawn(async move {
            store
                .mail
                .messages_set_flags(
                    account_id,
                    inbox.id,
                    &[uid],
                    &FlagChange::Add(flagged),
                    None,
                )
                .await
        }));
    }
    let on_deleted = {
        let store = store.clone();
        let flagged = flagged.clone();
        tokio::spawn(async move {
            store
                .mail
                .messages_set_flags(account_id, doomed.id, &[1], &FlagChange::Add(flagged), None)
                .await
        })
    };
    for (uid, task) in (1..=8u32).zip(tasks) {
        let changed = task.await.unwrap().unwrap();
        assert_eq!(changed.len(), 1, "message {uid} changed");
        assert_eq!(changed[0].uid, uid);
        assert!(changed[0].modseq > start);
    }
    assert!(
        on_deleted.await.unwrap().is_err(),
        "a deleted mailbox's flags cannot change"
    );
    let listed = store.mail.message_list(account_id, inbox.id).await.unwrap();
    assert!(
        listed.iter().all(|record| record.flags == flagged),
        "{listed:?}"
    );
    let mut logged: Vec<u32> = store
        .mail
        .changes_since(account_id, start, 1000)
        .await
        .unwrap()
        .iter()
        .filter(|change| change.kind == ChangeKind::MessageFlagsChanged)
        .filter_map(|change| change.message.map(|(_, uid)| uid))
        .collect();
    logged.sort_unstable();
    assert_eq!(logged, (1..=8).collect::<Vec<_>>());
}

/// A deleted mailbox, with its messages, comes back; under another name if its name was
/// taken meanwhile, and with a new UIDVALIDITY.
pub async fn deleted_mailbox_is_restorable(store: &Store) {
    let account = account(store, "user@example.com", 1 << 30).await;
    let projects = store
        .mail
        .mailbox_create(account, "Projects", None)
        .await
        .unwrap();
    let child = store
        .mail
        .mailbox_create(account, "Projects/2026", None)
        .await
        .unwrap();
    for number in 0..3 {
        deliver_one(store, account, projects.id, &message(number)).await;
    }
    let used_before = store.mail.account_usage(account).await.unwrap();
    store
        .mail
        .mailbox_delete(account, projects.id)
        .await
        .unwrap();
    assert!(
        store
            .mail
            .mailbox_find(account, "Projects")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.mail.account_usage(account).await.unwrap().messages, 0);
    assert!(
        store
            .mail
            .mailbox_find(account, "Projects/2026")
            .await
            .unwrap()
            .is_some(),
        "children stay"
    );
    // The name is free again; a new mailbox takes it.
    let again = store
        .mail
        .mailbox_create(account, "Projects", None)
        .await
        .unwrap();
    assert_ne!(again.uid_validity, projects.uid_validity);
    let deleted = store.mail.mailbox_list_deleted(account).await.unwrap();
    assert_eq!(deleted.len(), 1);
    let restored = store
        .mail
        .mailbox_restore(account, projects.id)
        .await
        .unwrap();
    assert_eq!(restored.name, "Projects (restored)");
    assert_ne!(restored.uid_validity, projects.uid_validity);
    assert_ne!(restored.uid_validity, again.uid_validity);
    let messages = store.mail.message_list(account, restored.id).await.unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(
        store.mail.account_usage(account).await.unwrap(),
        used_before
    );
    assert!(
        store
            .mail
            .mailbox_delete(account, inbox_of(store, account).await.id)
            .await
            .is_err(),
        "INBOX stays"
    );
    let _ = child;
}

/// Every change is in the log after the MODSEQ a client last saw.
pub async fn change_log_misses_nothing(store: &Store) {
    let account = account(store, "user@example.com", 1 << 30).await;
    let inbox = inbox_of(store, account).await;
    let start = store.mail.highest_modseq(account).await.unwrap();
    let first = deliver_one(store, account, inbox.id, &message(1)).await;
    deliver_one(store, account, inbox.id, &message(2)).await;
    let seen = Flags::parse(["\\Seen", "$Important"]).unwrap();
    let changed = store
        .mail
        .messages_set_flags(
            account,
            inbox.id,
            &[1, 2],
            &FlagChange::Add(seen.clone()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(changed.len(), 2);
    // CONDSTORE: a message changed after UNCHANGEDSINCE is left alone.
    let unchanged = store
        .mail
        .messages_set_flags(
            account,
            inbox.id,
            &[1],
            &FlagChange::Replace(Flags::default()),
            Some(first.modseq),
        )
        .await
        .unwrap();
    assert!(unchanged.is_empty());
    store
        .mail
        .messages_expunge(account, inbox.id, &[2])
        .await
        .unwrap();
    let changes = store
        .mail
        .changes_since(account, start, 1000)
        .await
        .unwrap();
    let kinds: Vec<(ChangeKind, Option<u32>)> = changes
        .iter()
        .map(|change| (change.kind, change.message.map(|(_, uid)| uid)))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (ChangeKind::MessageAdded, Some(1)),
            (ChangeKind::MessageAdded, Some(2)),
            (ChangeKind::MessageFlagsChanged, Some(1)),
            (ChangeKind::MessageFlagsChanged, Some(2)),
            (ChangeKind::MessageExpunged, Some(2)),
        ]
    );
    assert!(
        changes
            .windows(2)
            .all(|pair| pair[0].modseq <= pair[1].modseq)
    );
    let highest = store.mail.highest_modseq(account).await.unwrap();
    assert_eq!(changes.last().unwrap().modseq, highest);
    assert_eq!(
        store
            .mail
            .mailbox_get(account, inbox.id)
            .await
            .unwrap()
            .highest_modseq,
        highest
    );
    let listed = store.mail.message_list(account, inbox.id).await.unwrap();
    assert_eq!(listed[0].flags.names(), vec!["\\Seen", "$Important"]);

    // One expunge of three messages logs three entries under one MODSEQ. A reader going
    // one entry at a time (from the last MODSEQ it got) must still see all three.
    for number in 3..6 {
        deliver_one(store, account, inbox.id, &message(number)).await;
    }
    let before_expunge = store.mail.highest_modseq(account).await.unwrap();
    store
        .mail
        .messages_expunge(account, inbox.id, &[3, 4, 5])
        .await
        .unwrap();
    let mut read_from = before_expunge;
    let mut expunged_uids = Vec::new();
    for _ in 0..10 {
        let batch = store
            .mail
            .changes_since(account, read_from, 1)
            .await
            .unwrap();
        let Some(last) = batch.last() else { break };
        read_from = last.modseq;
        expunged_uids.extend(
            batch
                .iter()
                .filter(|change| change.kind == ChangeKind::MessageExpunged)
                .filter_map(|change| change.message.map(|(_, uid)| uid)),
        );
    }
    expunged_uids.sort_unstable();
    assert_eq!(
        expunged_uids,
        vec![3, 4, 5],
        "a batch never ends inside a MODSEQ"
    );
}

/// The UIDs expunged after a MODSEQ are known per mailbox (QRESYNC's VANISHED), also once
/// the messages are restored under new UIDs or purged for good.
pub async fn expunged_uids_are_kept_with_their_modseq(store: &Store) {
    let account = account(store, "user@example.com", 1 << 30).await;
    let inbox = inbox_of(store, account).await;
    let other = store
        .mail
        .mailbox_create(account, "Other", None)
        .await
        .unwrap();
    for number in 0..6 {
        deliver_one(store, account, inbox.id, &message(number)).await;
    }
    deliver_one(store, account, other.id, &message(9)).await;
    store
        .mail
        .messages_expunge(account, inbox.id, &[2])
        .await
        .unwrap();
    let between = store.mail.highest_modseq(account).await.unwrap();
    store
        .mail
        .messages_expunge(account, inbox.id, &[5, 4])
        .await
        .unwrap();
    store
        .mail
        .messages_expunge(account, other.id, &[1])
        .await
        .unwrap();
    let since = |modseq| store.mail.expunged_uids_since(account, inbox.id, modseq);
    assert_eq!(since(0).await.unwrap(), vec![2, 4, 5]);
    assert_eq!(
        since(between).await.unwrap(),
        vec![4, 5],
        "only what was expunged after the MODSEQ"
    );
    let highest = store.mail.highest_modseq(account).await.unwrap();
    assert!(since(highest).await.unwrap().is_empty());
    // Restored under a new UID, the old one stays expunged; purged, it is still known.
    let retained = store
        .mail
        .message_list_expunged(account, inbox.id)
        .await
        .unwrap();
    let two: Vec<i64> = retained
        .iter()
        .filter(|record| record.uid == 2)
        .map(|record| record.id)
        .collect();
    store.mail.messages_restore(account, &two).await.unwrap();
    store.mail.retention_purge(i64::MAX).await.unwrap();
    assert_eq!(since(0).await.unwrap(), vec![2, 4, 5]);
    assert_eq!(
        store
            .mail
            .expunged_uids_since(account, other.id, 0)
            .await
            .unwrap(),
        vec![1]
    );
}

/// What is past retention is purged; then only unreferenced blobs are collected, and a blob
/// shared by two messages stays while either refers to it.
pub async fn retention_purge_and_garbage_collection(store: &Store) {
    let account = account(store, "user@example.com", 1 << 30).await;
    let inbox = inbox_of(store, account).await;
    let trash = store
        .mail
        .mailbox_find(account, "Trash")
        .await
        .unwrap()
        .unwrap();
    let shared = message(1);
    let kept = deliver_one(store, account, inbox.id, &shared).await;
    deliver_one(store, account, trash.id, &shared).await;
    deliver_one(store, account, trash.id, &message(2)).await;
    store
        .mail
        .messages_expunge(account, trash.id, &[1, 2])
        .await
        .unwrap();
    let now = crate::sqlite::now_unix();
    // Within retention nothing goes.
    let (purged, collected) = store.collect_garbage(now).await.unwrap();
    assert_eq!((purged.messages_purged, collected.blobs_deleted), (0, 0));
    // Past retention the expunged messages go, and the blob only they used.
    let later = now + i64::from(store.retention_days()) * 86_400 + 1;
    let (purged, collected) = store.collect_garbage(later).await.unwrap();
    assert_eq!(purged.messages_purged, 2);
    assert_eq!(
        collected.blobs_deleted, 1,
        "only message 2's blob is unreferenced"
    );
    let record = store
        .mail
        .message_get(account, kept.message_id)
        .await
        .unwrap();
    assert_eq!(store.message_raw(&record).await.unwrap(), shared);
    assert!(
        store
            .mail
            .message_list_expunged(account, trash.id)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The directory's rules: hierarchy, uniqueness, refusal to orphan.
pub async fn directory_rules(store: &Store) {
    let directory = &store.directory;
    let domain = Domain::parse("example.com").unwrap();
    assert!(matches!(
        directory.domain_add(&domain, "nobody").await,
        Err(StoreError::NotFound {
            kind: "partner",
            ..
        })
    ));
    let generation_before = directory.generation().await.unwrap();
    directory
        .partner_add("Acme", Branding::default())
        .await
        .unwrap();
    assert!(matches!(
        directory.partner_add("Acme", Branding::default()).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    directory.domain_add(&domain, "Acme").await.unwrap();
    assert!(
        directory.generation().await.unwrap() > generation_before,
        "changes are noticed"
    );
    let address = EmailAddress::parse("Alice@Example.COM").unwrap();
    let new = |address: &EmailAddress| NewAccount {
        address: address.clone(),
        display_name: None,
        password_hash: "x".to_owned(),
        quota_bytes_max: 1 << 20,
    };
    let alice = store.account_create(new(&address)).await.unwrap();
    let lower = EmailAddress::parse("alice@example.com").unwrap();
    assert!(
        matches!(
            store.account_create(new(&lower)).await,
            Err(StoreError::AlreadyExists { .. })
        ),
        "addresses are unique regardless of case"
    );
    assert_eq!(
        directory.account_get(&lower).await.unwrap().unwrap().id,
        alice.id
    );
    assert_eq!(
        directory
            .account_get(&lower)
            .await
            .unwrap()
            .unwrap()
            .address
            .to_string(),
        "Alice@example.com"
    );
    let elsewhere = EmailAddress::parse("bob@elsewhere.example").unwrap();
    assert!(
        store.account_create(new(&elsewhere)).await.is_err(),
        "domain must be hosted"
    );
    assert!(matches!(
        directory.partner_remove("Acme").await,
        Err(StoreError::Refused(_))
    ));
    assert!(matches!(
        directory.domain_remove(&domain).await,
        Err(StoreError::Refused(_))
    ));
    store.account_delete(&alice).await.unwrap();
    directory.domain_remove(&domain).await.unwrap();
    directory.partner_remove("Acme").await.unwrap();
}

/// Recipients resolve: account, alias (one-to-many, chained, external), plus-addressing,
/// catch-all last, unknown and unhosted told apart; which addresses name an account.
pub async fn alias_resolution(store: &Store) {
    use crate::directory::{
        AliasSource, Resolution, address_names_account, address_owned_by, resolve_recipient,
    };
    let alice = account(store, "alice@example.com", 1 << 20).await;
    let bob = account(store, "bob@example.com", 1 << 20).await;
    let directory = store.directory.as_ref();
    let parse = |text: &str| EmailAddress::parse(text).unwrap();
    let resolve = |text: &'static str| async move {
        match resolve_recipient(directory, &parse(text), '+')
            .await
            .unwrap()
        {
            Resolution::Deliver { accounts, external } => {
                let mut ids: Vec<AccountId> = accounts.iter().map(|account| account.id).collect();
                ids.sort();
                format!(
                    "{ids:?} {:?}",
                    external.iter().map(ToString::to_string).collect::<Vec<_>>()
                )
            }
            Resolution::UnknownAddress => "unknown".to_owned(),
            Resolution::DomainNotHosted => "not hosted".to_owned(),
        }
    };
    let team = AliasSource::parse("team@example.com").unwrap();
    directory
        .alias_add(
            &team,
            &[
                parse("alice@example.com"),
                parse("bob@example.com"),
                parse("carol@elsewhere.example"),
            ],
        )
        .await
        .unwrap();
    let chain = AliasSource::parse("all@example.com").unwrap();
    directory
        .alias_add(
            &chain,
            &[parse("team@example.com"), parse("ghost@example.com")],
        )
        .await
        .unwrap();
    assert!(
        directory
            .alias_add(
                &AliasSource::parse("alice@example.com").unwrap(),
                &[parse("bob@example.com")]
            )
            .await
            .is_err(),
        "an alias cannot shadow an account"
    );
    assert_eq!(resolve("ALICE@example.com").await, format!("[{alice}] []"));
    assert_eq!(
        resolve("alice+news@example.com").await,
        format!("[{alice}] []")
    );
    assert_eq!(
        resolve("team@example.com").await,
        format!("[{alice}, {bob}] [\"carol@elsewhere.example\"]")
    );
    assert_eq!(
        resolve("all@example.com").await,
        format!("[{alice}, {bob}] [\"carol@elsewhere.example\"]")
    );
    assert_eq!(resolve("nobody@example.com").await, "unknown");
    assert_eq!(resolve("someone@elsewhere.example").await, "not hosted");
    let catch_all = AliasSource::parse("@example.com").unwrap();
    directory
        .alias_add(&catch_all, &[parse("bob@example.com")])
        .await
        .unwrap();
    assert_eq!(resolve("nobody@example.com").await, format!("[{bob}] []"));
    assert_eq!(
        resolve("alice@example.com").await,
        format!("[{alice}] []"),
        "catch-all comes last"
    );
    // The catch-all reaches bob without naming him; an alias and a plus-address name
    // their account (the vacation reply's test); the domain's own catch-all still lets
    // him send as any address it brings him.
    let names = |text: &'static str, account: AccountId| async move {
        address_names_account(directory, &parse(text), account, '+')
            .await
            .unwrap()
    };
    assert!(names("alice+news@example.com", alice).await);
    assert!(names("all@example.com", bob).await, "an alias chain");
    assert!(!names("team@example.com", 999_999).await);
    assert!(!names("nobody@example.com", bob).await, "the catch-all");
    assert!(
        address_owned_by(directory, &parse("nobody@example.com"), bob, '+')
            .await
            .unwrap()
    );
    // A loop ends.
    let loop_a = AliasSource::parse("loop-a@example.com").unwrap();
    let loop_b = AliasSource::parse("loop-b@example.com").unwrap();
    directory
        .alias_add(&loop_a, &[parse("loop-b@example.com")])
        .await
        .unwrap();
    directory
        .alias_add(
            &loop_b,
            &[parse("loop-a@example.com"), parse("alice@example.com")],
        )
        .await
        .unwrap();
    assert_eq!(resolve("loop-a@example.com").await, format!("[{alice}] []"));
}

/// A delivery under a key reaches each account at most once, also when retried after it
/// committed (the spool after a crash); a failed delivery records no key; keys are purged.
pub async fn delivery_keys_deliver_once_per_account(store: &Store) {
    let first = account(store, "first@example.com", 1 << 30).await;
    let second = account(store, "second@example.com", 1 << 30).await;
    let small = account(store, "small@example.com", 1000).await;
    let first_inbox = inbox_of(store, first).await.id;
    let second_inbox = inbox_of(store, second).await.id;
    let small_inbox = inbox_of(store, small).await.id;
    let flags = Flags::default();
    let raw = message(1);
    let copy = |account, mailbox, raw: &'static [u8]| Delivery {
        account,
        mailbox,
        raw,
        internal_date_unix: Some(1_700_000_000),
        flags: &flags,
    };
    let raw: &'static [u8] = raw.leak();
    let both = [
        copy(first, first_inbox, raw),
        copy(second, second_inbox, raw),
    ];
    let delivered = store.deliver_once("entry-1", &both).await.unwrap();
    assert_eq!(delivered.appended.len(), 2);
    assert!(delivered.accounts_already_delivered.is_empty());
    let again = store.deliver_once("entry-1", &both).await.unwrap();
    assert!(again.appended.is_empty(), "a retried key appends nothing");
    assert_eq!(again.accounts_already_delivered, vec![first, second]);
    let alone = store
        .deliver_once("entry-1", &[copy(first, first_inbox, raw)])
        .await
        .unwrap();
    assert_eq!(alone.accounts_already_delivered, vec![first]);
    let other_key = store
        .deliver_once("entry-2", &[copy(first, first_inbox, raw)])
        .await
        .unwrap();
    assert_eq!(other_key.appended.len(), 1, "another key delivers");
    let count = |account, mailbox| async move {
        store
            .mail
            .message_list(account, mailbox)
            .await
            .unwrap()
            .len()
    };
    assert_eq!(count(first, first_inbox).await, 2);
    assert_eq!(count(second, second_inbox).await, 1);

    // All or none: the over-quota account fails the whole call, and no key stays behind.
    let big: &'static [u8] = "x".repeat(2000).leak().as_bytes();
    let failed = store
        .deliver_once(
            "entry-3",
            &[
                copy(second, second_inbox, raw),
                copy(small, small_inbox, big),
            ],
        )
        .await;
    assert!(matches!(failed, Err(StoreError::QuotaExceeded { .. })));
    let retried = store
        .deliver_once("entry-3", &[copy(second, second_inbox, raw)])
        .await
        .unwrap();
    assert_eq!(retried.appended.len(), 1, "the failed call recorded no key");

    for bad_key in [
        "",
        "with space",
        &"k".repeat(crate::mail::DELIVERY_KEY_OCTETS_MAX + 1),
    ] {
        assert!(
            matches!(
                store.deliver_once(bad_key, &both).await,
                Err(StoreError::Refused(_))
            ),
            "the key {bad_key:?} is refused"
        );
    }

    // Purged keys are forgotten: the same key delivers again.
    let purged = store.mail.delivery_keys_purge(i64::MAX).await.unwrap();
    assert_eq!(
        purged, 4,
        "entry-1 for two accounts, entry-2 and entry-3 for one"
    );
    let after_purge = store
        .deliver_once("entry-1", &[copy(first, first_inbox, raw)])
        .await
        .unwrap();
    assert_eq!(after_purge.appended.len(), 1);
}

/// Deliveries made at the same moment may share a transaction (group commit), but each
/// succeeds or fails alone: one refused (over quota, into a deleted mailbox) leaves the
/// others stored, and leaves nothing of itself, in any of its accounts.
pub async fn concurrent_deliveries_fail_alone(store: &Store) {
    let roomy = account(store, "roomy@example.com", 1 << 30).await;
    let full = account(store, "full@example.com", 1).await;
    let roomy_inbox = inbox_of(store, roomy).await.id;
    let full_inbox = inbox_of(store, full).await.id;
    let doomed = store
        .mail
        .mailbox_create(roomy, "Doomed", None)
        .await
        .unwrap()
        .id;
    store.mail.mailbox_delete(roomy, doomed).await.unwrap();
    let rounds = 8;
    let mut tasks = Vec::new();
    for round in 0..rounds {
        // Per round: one good delivery, one over quota, one into the deleted mailbox, and
        // one for both accounts that fails as a whole because one of them is full.
        let plans: [(&str, Vec<(AccountId, i64)>); 4] = [
            ("good", vec![(roomy, roomy_inbox)]),
            ("quota", vec![(full, full_inbox)]),
            ("deleted", vec![(roomy, doomed)]),
            ("both", vec![(roomy, roomy_inbox), (full, full_inbox)]),
        ];
        for (kind, targets) in plans {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let flags = Flags::default();
                let raw = message(round);
                let deliveries: Vec<Delivery> = targets
                    .iter()
                    .map(|(account, mailbox)| Delivery {
                        account: *account,
                        mailbox: *mailbox,
                        raw: &raw,
                        internal_date_unix: None,
                        flags: &flags,
                    })
                    .collect();
                (
                    kind,
                    store
                        .deliver(&deliveries)
                        .await
                        .map(|appended| appended.len()),
                )
            }));
        }
    }
    let mut stored = 0;
    for task in tasks {
        match task.await.unwrap() {
            ("good", Ok(count)) => {
                assert_eq!(count, 1);
                stored += 1;
            }
            ("quota" | "both", Err(StoreError::QuotaExceeded { .. })) => {}
            ("deleted", Err(StoreError::NotFound { .. })) => {}
            (kind, other) => panic!("delivery {kind}: unexpected outcome {other:?}"),
        }
    }
    assert_eq!(stored, rounds);
    let listed = store.mail.message_list(roomy, roomy_inbox).await.unwrap();
    assert_eq!(
        listed.len(),
        rounds,
        "only the good deliveries are in the roomy INBOX"
    );
    let uids: HashSet<u32> = listed.iter().map(|record| record.uid).collect();
    assert_eq!(uids.len(), rounds, "their UIDs are distinct");
    let usage = store.mail.account_usage(roomy).await.unwrap();
    assert_eq!(
        usage.messages, rounds as u64,
        "quota counts only what is stored"
    );
    assert_eq!(store.mail.account_usage(full).await.unwrap().messages, 0);
    let mailbox = store.mail.mailbox_get(roomy, roomy_inbox).await.unwrap();
    assert_eq!(
        mailbox.uid_next,
        rounds as u32 + 1,
        "a failed delivery takes no UID"
    );
}

fn queued(recipients: &[&str], now: i64) -> NewQueued {
    NewQueued {
        blob_id: crate::BlobId::of(b""),
        size_bytes: 0,
        return_path: "sender@example.com".to_owned(),
        sender_account: None,
        envelope_id: Some("envelope-1".to_owned()),
        dsn_return: Some(crate::DsnReturn::Headers),
        requiretls: false,
        smtputf8: false,
        body_8bit: false,
        created_unix: now,
        expires_unix: now + 5 * 86_400,
        recipients: recipients
            .iter()
            .map(|address| NewRecipient {
                address: (*address).to_owned(),
                domain: address.rsplit('@').next().unwrap().to_owned(),
                original_recipient: None,
                notify: Notify::default(),
            })
            .collect(),
    }
}

/// The outbound queue: a queued message survives as written, is claimed by one owner at a
/// time until its lease ends, records each recipient's outcome, is not claimed while held or
/// before its next attempt, keeps its blob from the collector, and is gone once removed or
/// once its last pending recipient is final.
pub async fn queue_claims_leases_and_records(store: &Store) {
    let now = 1_800_000_000;
    let raw = message(7);
    let id = store
        .enqueue(&raw, queued(&["a@remote.example", "b@other.example"], now))
        .await
        .unwrap();
    let listed = store.queue.get(id).await.unwrap();
    assert_eq!(listed.recipients.len(), 2);
    assert_eq!(listed.recipients[1].domain, "other.example");
    assert_eq!(listed.envelope_id.as_deref(), Some("envelope-1"));
    assert_eq!(store.queued_raw(&listed).await.unwrap(), raw);
    assert_eq!(store.queue.next_due_unix().await.unwrap(), Some(now));
    let stats = store.queue.stats().await.unwrap();
    assert_eq!((stats.messages, stats.oldest_created_unix), (1, Some(now)));

    // One owner at a time.
    let claimed = store
        .queue
        .claim_due(now, "node-a", 600, 10, &[])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        store
            .queue
            .claim_due(now, "node-b", 600, 10, &[])
            .await
            .unwrap()
            .is_empty(),
        "a message leased to another node is not claimed"
    );
    assert_eq!(
        store
            .queue
            .claim_due(now, "node-a", 600, 10, &[])
            .await
            .unwrap()
            .len(),
        1,
        "a node restarted takes back its own lease"
    );
    assert!(
        store
            .queue
            .claim_due(now, "node-a", 600, 10, &[claimed[0].id])
            .await
            .unwrap()
            .is_empty(),
        "a message the node is working on is not claimed twice"
    );
    let attempt = AttemptRecord {
        attempted_unix: now,
        outcomes: vec![
            RecipientOutcome {
                position: 0,
                state: RecipientState::Delivered,
                reply: "250 2.0.0 Ok".to_owned(),
                remote_host: Some("mx.remote.example".to_owned()),
            },
            RecipientOutcome {
                position: 1,
                state: RecipientState::Pending,
                reply: "451 4.3.0 try later".to_owned(),
                remote_host: None,
            },
        ],
        next_attempt_unix: now + 300,
        delay_notified: false,
    };
    assert!(
        matches!(
            store.queue.record_attempt(id, "node-b", &attempt).await,
            Err(StoreError::NotFound { .. })
        ),
        "only the lease's owner records"
    );
    assert!(
        matches!(
            store
                .queue
                .record_delivered(id, "node-b", now, &attempt.outcomes)
                .await,
            Err(StoreError::NotFound { .. })
        ),
        "only the lease's owner records progress"
    );
    store
        .queue
        .record_delivered(id, "node-a", now, &attempt.outcomes)
        .await
        .unwrap();
    let progress = store.queue.get(id).await.unwrap();
    assert_eq!(progress.recipients[0].state, RecipientState::Delivered);
    assert_eq!(
        progress.recipients[1].state,
        RecipientState::Pending,
        "only deliveries are recorded early"
    );
    assert_eq!(progress.attempts, 0, "the attempt is not over");
    store
        .queue
        .record_attempt(id, "node-a", &attempt)
        .await
        .unwrap();
    let after = store.queue.get(id).await.unwrap();
    assert_eq!(after.attempts, 1);
    assert_eq!(after.recipients[0].state, RecipientState::Delivered);
    assert_eq!(after.recipients[1].state, RecipientState::Pending);
    assert_eq!(
        after.recipients[1].last_reply.as_deref(),
        Some("451 4.3.0 try later")
    );
    assert_eq!(after.pending_recipients().count(), 1);

    // Not before its next attempt; a lost lease expires.
    assert!(
        store
            .queue
            .claim_due(now + 10, "node-a", 600, 10, &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .queue
            .claim_due(now + 300, "node-a", 60, 10, &[])
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .queue
            .claim_due(now + 361, "node-b", 60, 10, &[])
            .await
            .unwrap()
            .len(),
        1,
        "the first owner's lease ran out"
    );

    // Held, released, retried now.
    store.queue.set_held(id, true).await.unwrap();
    store.queue.retry_now(id, now + 400).await.unwrap();
    assert!(
        store
            .queue
            .claim_due(now + 400, "node-a", 60, 10, &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.queue.next_due_unix().await.unwrap(), None);
    store.queue.set_held(id, false).await.unwrap();
    assert_eq!(
        store
            .queue
            .claim_due(now + 400, "node-a", 60, 10, &[])
            .await
            .unwrap()
            .len(),
        1
    );

    // Its blob stays while it is queued, and goes after.
    let (_, collected) = store.collect_garbage(now + 400).await.unwrap();
    assert_eq!(
        collected.blobs_deleted, 0,
        "a queued message's blob is kept"
    );
    store.queue.remove(id).await.unwrap();
    assert!(matches!(
        store.queue.get(id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.queue.remove(id).await,
        Err(StoreError::NotFound { .. })
    ));
    let (_, collected) = store.collect_garbage(now + 400).await.unwrap();
    assert_eq!(collected.blobs_deleted, 1);
    assert!(store.queue.list().await.unwrap().is_empty());

    // An attempt that leaves no recipient pending takes the message out of the queue.
    let id = store
        .enqueue(&raw, queued(&["a@remote.example", "b@other.example"], now))
        .await
        .unwrap();
    assert_eq!(
        store
            .queue
            .claim_due(now, "node-a", 600, 10, &[])
            .await
            .unwrap()
            .len(),
        1
    );
    let final_attempt = AttemptRecord {
        attempted_unix: now,
        outcomes: vec![
            RecipientOutcome {
                position: 0,
                state: RecipientState::Delivered,
                reply: "250 2.0.0 Ok".to_owned(),
                remote_host: Some("mx.remote.example".to_owned()),
            },
            RecipientOutcome {
                position: 1,
                state: RecipientState::Failed,
                reply: "550 5.1.1 no such user".to_owned(),
                remote_host: Some("mx.other.example".to_owned()),
            },
        ],
        next_attempt_unix: now + 300,
        delay_notified: false,
    };
    store
        .queue
        .record_attempt(id, "node-a", &final_attempt)
        .await
        .unwrap();
    assert!(
        matches!(store.queue.get(id).await, Err(StoreError::NotFound { .. })),
        "a message with every recipient final is removed with its last attempt"
    );
    assert!(store.queue.list().await.unwrap().is_empty());
}

/// An MTA-STS policy is read back as stored, replaced by a newer fetch, not returned once
/// expired, and refused when larger than a policy may be.
pub async fn mta_sts_policies_are_kept_until_they_expire(store: &Store) {
    let now = 1_800_000_000;
    assert_eq!(
        store
            .queue
            .mta_sts_policy("sts.example", now)
            .await
            .unwrap(),
        None
    );
    let first = crate::StoredPolicy {
        domain: "sts.example".to_owned(),
        policy_id: "20260101".to_owned(),
        text: "version: STSv1\r\nmode: enforce\r\nmx: mx.sts.example\r\nmax_age: 86400\r\n"
            .to_owned(),
        fetched_unix: now,
        expires_unix: now + 86_400,
    };
    store.queue.mta_sts_policy_put(&first).await.unwrap();
    assert_eq!(
        store
            .queue
            .mta_sts_policy("sts.example", now + 10)
            .await
            .unwrap(),
        Some(first.clone())
    );
    let second = crate::StoredPolicy {
        policy_id: "20260102".to_owned(),
        fetched_unix: now + 100,
        expires_unix: now + 100 + 3_600,
        ..first.clone()
    };
    store.queue.mta_sts_policy_put(&second).await.unwrap();
    assert_eq!(
        store
            .queue
            .mta_sts_policy("sts.example", now + 200)
            .await
            .unwrap(),
        Some(second.clone()),
        "a newer fetch replaces the policy"
    );
    assert_eq!(
        store
            .queue
            .mta_sts_policy("sts.example", now + 100 + 3_600)
            .await
            .unwrap(),
        None,
        "an expired policy is not used"
    );
    let huge = crate::StoredPolicy {
        domain: "huge.example".to_owned(),
        text: "x".repeat(crate::queue::STORED_POLICY_BYTES_MAX + 1),
        ..first
    };
    assert!(matches!(
        store.queue.mta_sts_policy_put(&huge).await,
        Err(StoreError::Refused(_))
    ));
}

/// A domain's DKIM keys are stored once (two racing `dkim_keys_ensure` keep one set), read
/// back whole with their private key, and go with the domain; custom records are added,
/// listed, refused twice or for an unhosted domain, removed; every change bumps `generation`.
pub async fn dns_keys_and_records(store: &Store) {
    use crate::{DkimAlgorithm, NewDkimKey, NewDnsRecord};
    let directory = &store.directory;
    let domain = Domain::parse("dns.example").unwrap();
    let key = |selector: &str, byte: u8| NewDkimKey {
        selector: selector.to_owned(),
        algorithm: DkimAlgorithm::Ed25519Sha256,
        public_key: vec![byte; 32],
        private_key_pkcs8: tme_core::Secret::new(vec![byte; 48]),
    };
    assert!(matches!(
        directory.dkim_keys_ensure(&domain, vec![key("a", 1)]).await,
        Err(StoreError::NotFound { kind: "domain", .. })
    ));
    directory
        .partner_add("Dns", Branding::default())
        .await
        .unwrap();
    directory.domain_add(&domain, "Dns").await.unwrap();
    assert!(matches!(
        directory
            .dkim_keys_ensure(&domain, vec![key("bad.selector", 1)])
            .await,
        Err(StoreError::Refused(_))
    ));
    let before = directory.generation().await.unwrap();
    let (first, second) = tokio::join!(
        directory.dkim_keys_ensure(&domain, vec![key("one", 1), key("two", 2)]),
        directory.dkim_keys_ensure(&domain, vec![key("three", 3)]),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.len(), second.len(), "one set of keys wins");
    let selectors: Vec<&str> = first.iter().map(|key| key.selector.as_str()).collect();
    assert!(
        selectors == ["one", "two"] || selectors == ["three"],
        "{selectors:?}"
    );
    assert!(directory.generation().await.unwrap() > before);
    let listed = directory.dkim_key_list(None).await.unwrap();
    assert_eq!(listed.len(), first.len());
    let byte = listed[0].public_key[0];
    assert_eq!(listed[0].private_key_pkcs8.expose(), &vec![byte; 48]);
    assert_eq!(listed[0].algorithm, DkimAlgorithm::Ed25519Sha256);
    assert!(
        serde_json::to_string(&listed[0])
            .unwrap()
            .contains("\"private_key_pkcs8\":\"[redacted]\""),
        "the private key is never shown"
    );

    let record = |name: &str, value: &str| NewDnsRecord {
        domain: domain.clone(),
        name: name.to_owned(),
        record_type: "TXT".to_owned(),
        ttl_seconds: 300,
        value: value.to_owned(),
    };
    let before = directory.generation().await.unwrap();
    let added = directory
        .dns_record_add(record("@", "\"site-verification=1\""))
        .await
        .unwrap();
    assert!(directory.generation().await.unwrap() > before);
    assert!(matches!(
        directory
            .dns_record_add(record("@", "\"site-verification=1\""))
            .await,
        Err(StoreError::AlreadyExists { .. })
    ));
    let other = Domain::parse("other.example").unwrap();
    assert!(matches!(
        directory
            .dns_record_add(NewDnsRecord {
                domain: other.clone(),
                ..record("@", "x")
            })
            .await,
        Err(StoreError::NotFound { .. })
    ));
    directory
        .dns_record_add(record("www", "\"hello\""))
        .await
        .unwrap();
    let listed = directory.dns_record_list(Some(&domain)).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|record| record.name.as_str())
            .collect::<Vec<_>>(),
        ["@", "www"]
    );
    assert_eq!(listed[0], added);
    assert!(matches!(
        directory.dns_record_remove(&other, added.id).await,
        Err(StoreError::NotFound { .. })
    ));
    directory
        .dns_record_remove(&domain, added.id)
        .await
        .unwrap();
    assert_eq!(directory.dns_record_list(None).await.unwrap().len(), 1);

    directory.domain_remove(&domain).await.unwrap();
    assert!(directory.dkim_key_list(None).await.unwrap().is_empty());
    assert!(directory.dns_record_list(None).await.unwrap().is_empty());
}

/// A login lock is kept until lifted, replaced by a later one on the same key, listed by
/// key; lifting one also forgets the locks that have expired.
pub async fn login_locks_are_kept_listed_and_lifted(store: &Store) {
    let lock = |key: &str, failures: u32, until: i64| crate::LoginLock {
        key: key.to_owned(),
        failures,
        locked_unix: 1_000,
        locked_until_unix: until,
    };
    let far = i64::MAX / 2;
    let directory = &store.directory;
    directory
        .login_lock_put(&lock("ip:192.0.2.1", 20, far))
        .await
        .unwrap();
    directory
        .login_lock_put(&lock("account:a@example.org", 10, 2_000))
        .await
        .unwrap();
    directory
        .login_lock_put(&lock("ip:192.0.2.1", 25, far))
        .await
        .unwrap();
    let listed = directory.login_lock_list().await.unwrap();
    assert_eq!(
        listed,
        vec![
            lock("account:a@example.org", 10, 2_000),
            lock("ip:192.0.2.1", 25, far)
        ],
        "locks are listed by key, a later lock replacing an earlier one"
    );
    assert_eq!(
        directory.login_lock_get("ip:192.0.2.1").await.unwrap(),
        Some(lock("ip:192.0.2.1", 25, far))
    );
    assert_eq!(
        directory.login_lock_get("ip:192.0.2.9").await.unwrap(),
        None
    );
    assert!(!directory.login_lock_remove("ip:192.0.2.9").await.unwrap());
    assert_eq!(
        directory.login_lock_list().await.unwrap(),
        vec![lock("ip:192.0.2.1", 25, far)],
        "lifting a lock forgets expired ones"
    );
    assert!(directory.login_lock_remove("ip:192.0.2.1").await.unwrap());
    assert!(directory.login_lock_list().await.unwrap().is_empty());
}

/// A web session is found by its token hash, listed with its account's (newest first),
/// revoked only by its own account, and goes with its account; a second session with the
/// same hash is refused; adding one forgets the expired ones.
pub async fn web_sessions_are_kept_per_account_and_revoked(store: &Store) {
    let alice = account(store, "alice@example.org", 1 << 20).await;
    let bob = account(store, "bob@example.org", 1 << 20).await;
    let far = i64::MAX / 2;
    let session = |hash: &str, account_id: AccountId, created_unix: i64, expires_unix: i64| {
        crate::WebSession {
            token_hash: hash.repeat(64),
            account_id,
            created_unix,
            expires_unix,
            client_address: "192.0.2.1".to_owned(),
            user_agent: "conformance".to_owned(),
            app_password_id: None,
        }
    };
    let directory = &store.directory;
    let expired = session("0", alice, 1_000, 2_000);
    directory.web_session_add(&expired).await.unwrap();
    assert_eq!(
        directory
            .web_session_get(&expired.token_hash)
            .await
            .unwrap(),
        Some(expired.clone()),
        "an expired session is returned: the caller checks the time"
    );
    let first = session("a", alice, 3_000, far);
    let second = session("b", alice, 4_000, far);
    let bobs = session("c", bob, 3_500, far);
    for added in [&first, &second, &bobs] {
        directory.web_session_add(added).await.unwrap();
    }
    assert!(matches!(
        directory.web_session_add(&first).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    assert_eq!(
        directory
            .web_session_get(&expired.token_hash)
            .await
            .unwrap(),
        None,
        "adding a session forgets the expired ones"
    );
    assert_eq!(
        directory.web_session_list(alice).await.unwrap(),
        vec![second.clone(), first.clone()],
        "an account's sessions, newest first, and no other account's"
    );
    let long_agent = crate::WebSession {
        user_agent: "x".repeat(1_000),
        ..session("d", bob, 5_000, far)
    };
    directory.web_session_add(&long_agent).await.unwrap();
    assert_eq!(
        directory
            .web_session_get(&long_agent.token_hash)
            .await
            .unwrap()
            .unwrap()
            .user_agent
            .chars()
            .count(),
        crate::WEB_SESSION_USER_AGENT_CHARS_MAX
    );
    assert!(
        !directory
            .web_session_remove(bob, &first.token_hash)
            .await
            .unwrap(),
        "an account cannot revoke another account's session"
    );
    assert!(
        directory
            .web_session_remove(alice, &first.token_hash)
            .await
            .unwrap()
    );
    assert_eq!(
        directory.web_session_get(&first.token_hash).await.unwrap(),
        None
    );
    directory.account_remove(bob).await.unwrap();
    assert_eq!(
        directory.web_session_get(&bobs.token_hash).await.unwrap(),
        None,
        "sessions go with their account"
    );
    assert_eq!(
        directory.web_session_list(alice).await.unwrap(),
        vec![second]
    );
}

pub async fn signatures_are_kept_per_account(store: &Store) {
    let alice = account(store, "alice@example.org", 1 << 20).await;
    let bob = account(store, "bob@example.org", 1 << 20).await;
    let directory = &store.directory;
    assert_eq!(directory.account_signature_get(alice).await.unwrap(), None);
    directory
        .account_signature_set(alice, Some("-- \nAlice"))
        .await
        .unwrap();
    assert_eq!(
        directory.account_signature_get(alice).await.unwrap(),
        Some("-- \nAlice".to_owned())
    );
    assert_eq!(
        directory.account_signature_get(bob).await.unwrap(),
        None,
        "one account's signature is not another's"
    );
    directory
        .account_signature_set(alice, Some("Alice again"))
        .await
        .unwrap();
    assert_eq!(
        directory.account_signature_get(alice).await.unwrap(),
        Some("Alice again".to_owned())
    );
    let too_long = "x".repeat(crate::ACCOUNT_SIGNATURE_CHARS_MAX + 1);
    assert!(matches!(
        directory
            .account_signature_set(alice, Some(&too_long))
            .await,
        Err(StoreError::Refused(_))
    ));
    directory
        .account_signature_set(alice, Some(""))
        .await
        .unwrap();
    assert_eq!(
        directory.account_signature_get(alice).await.unwrap(),
        None,
        "an empty signature removes it"
    );
    assert!(matches!(
        directory
            .account_signature_set(9_999_999, Some("nobody"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    directory
        .account_signature_set(bob, Some("Bob"))
        .await
        .unwrap();
    directory.account_remove(bob).await.unwrap();
    assert_eq!(
        directory.account_signature_get(bob).await.unwrap(),
        None,
        "the signature goes with its account"
    );
}

pub async fn vacations_answer_each_sender_once_a_period(store: &Store) {
    let alice = account(store, "alice@example.org", 1 << 20).await;
    let bob = account(store, "bob@example.org", 1 << 20).await;
    let directory = &store.directory;
    assert_eq!(
        directory.account_vacation_get(alice).await.unwrap(),
        crate::Vacation::default(),
        "no vacation set: disabled"
    );
    let vacation = crate::Vacation {
        enabled: true,
        subject: "Away".to_owned(),
        body: "Back on Monday.\nÀ bientôt".to_owned(),
        first_day_epoch_days: Some(20_000),
        last_day_epoch_days: Some(20_007),
    };
    directory
        .account_vacation_set(alice, &vacation)
        .await
        .unwrap();
    assert_eq!(
        directory.account_vacation_get(alice).await.unwrap(),
        vacation
    );
    assert_eq!(
        directory.account_vacation_get(bob).await.unwrap(),
        crate::Vacation::default(),
        "one account's vacation is not another's"
    );
    let too_long = crate::Vacation {
        body: "x".repeat(crate::VACATION_BODY_CHARS_MAX + 1),
        ..vacation.clone()
    };
    assert!(matches!(
        directory.account_vacation_set(alice, &too_long).await,
        Err(StoreError::Refused(_))
    ));
    let subject_too_long = crate::Vacation {
        subject: "x".repeat(crate::VACATION_SUBJECT_CHARS_MAX + 1),
        ..vacation.clone()
    };
    assert!(matches!(
        directory
            .account_vacation_set(alice, &subject_too_long)
            .await,
        Err(StoreError::Refused(_))
    ));
    let backwards = crate::Vacation {
        first_day_epoch_days: Some(20_007),
        last_day_epoch_days: Some(20_000),
        ..vacation.clone()
    };
    assert!(matches!(
        directory.account_vacation_set(alice, &backwards).await,
        Err(StoreError::Refused(_))
    ));
    assert!(matches!(
        directory.account_vacation_set(9_999_999, &vacation).await,
        Err(StoreError::NotFound { .. })
    ));

    let week = 7 * 86_400;
    let now = 1_700_000_000;
    assert!(
        directory
            .vacation_reply_claim(alice, "Carol@Example.com", now, week)
            .await
            .unwrap(),
        "the first message from a sender is answered"
    );
    assert!(
        !directory
            .vacation_reply_claim(alice, "carol@example.com", now + 60, week)
            .await
            .unwrap(),
        "not twice within the period, whatever the case of the address"
    );
    assert!(
        directory
            .vacation_reply_claim(bob, "carol@example.com", now + 60, week)
            .await
            .unwrap(),
        "each account answers for itself"
    );
    assert!(
        directory
            .vacation_reply_claim(alice, "carol@example.com", now + week + 1, week)
            .await
            .unwrap(),
        "again once the period is over"
    );
    directory
        .account_vacation_set(alice, &vacation)
        .await
        .unwrap();
    assert!(
        directory
            .vacation_reply_claim(alice, "carol@example.com", now + week + 2, week)
            .await
            .unwrap(),
        "a reply set again starts afresh"
    );
    directory.account_remove(alice).await.unwrap();
    assert_eq!(
        directory.account_vacation_get(alice).await.unwrap(),
        crate::Vacation::default(),
        "the vacation goes with its account"
    );
}

/// App passwords are listed per account in the order made, removed only by their own
/// account; a removal takes the web sessions logged in with it and bumps the generation
/// (sessions opened with one watch it); so do a password change and a suspension, but not
/// a new app password.
pub async fn app_passwords_are_listed_and_revoked(store: &Store) {
    let alice = account(store, "alice@example.com", 1 << 20).await;
    let bob = account(store, "bob@example.com", 1 << 20).await;
    let directory = store.directory.as_ref();
    let before = directory.generation().await.unwrap();
    let phone = directory
        .app_password_add(alice, "phone", "hash-1")
        .await
        .unwrap();
    directory
        .app_password_add(alice, "laptop", "hash-2")
        .await
        .unwrap();
    assert_eq!(
        directory.generation().await.unwrap(),
        before,
        "a new app password changes nothing held"
    );
    let labels = |list: Vec<crate::AppPassword>| {
        list.into_iter()
            .map(|app_password| (app_password.label, app_password.password_hash))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        labels(directory.app_password_list(alice).await.unwrap()),
        [
            ("phone".to_owned(), "hash-1".to_owned()),
            ("laptop".to_owned(), "hash-2".to_owned())
        ]
    );
    assert!(directory.app_password_list(bob).await.unwrap().is_empty());
    assert!(matches!(
        directory.app_password_remove(bob, phone.id).await,
        Err(StoreError::NotFound { .. })
    ));
    // Web sessions: one logged in with the phone's app password, one with the password.
    let web_session = |hash: &str, app_password_id| crate::WebSession {
        token_hash: hash.repeat(64),
        account_id: alice,
        created_unix: 1_000,
        expires_unix: i64::MAX / 2,
        client_address: "192.0.2.1".to_owned(),
        user_agent: "conformance".to_owned(),
        app_password_id,
    };
    let by_phone = web_session("p", Some(phone.id));
    let by_password = web_session("q", None);
    for session in [&by_phone, &by_password] {
        directory.web_session_add(session).await.unwrap();
    }
    assert_eq!(
        directory
            .web_session_get(&by_phone.token_hash)
            .await
            .unwrap(),
        Some(by_phone.clone())
    );
    directory
        .app_password_remove(alice, phone.id)
        .await
        .unwrap();
    assert_eq!(
        directory
            .web_session_get(&by_phone.token_hash)
            .await
            .unwrap(),
        None,
        "a web session goes with the app password it logged in with"
    );
    assert_eq!(
        directory
            .web_session_get(&by_password.token_hash)
            .await
            .unwrap(),
        Some(by_password)
    );
    let after_revoke = directory.generation().await.unwrap();
    assert!(after_revoke > before, "a revocation is noticed");
    assert_eq!(
        labels(directory.app_password_list(alice).await.unwrap()),
        [("laptop".to_owned(), "hash-2".to_owned())]
    );
    assert!(matches!(
        directory.app_password_remove(alice, phone.id).await,
        Err(StoreError::NotFound { .. })
    ));
    directory
        .account_set_password_hash(alice, "new-hash")
        .await
        .unwrap();
    let after_password = directory.generation().await.unwrap();
    assert!(
        after_password > after_revoke,
        "a password change is noticed"
    );
    directory
        .account_set_state(alice, crate::AccountState::Suspended)
        .await
        .unwrap();
    assert!(directory.generation().await.unwrap() > after_password);
}
