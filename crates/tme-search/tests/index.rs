//! The index against a real store in a temporary directory: messages in several charsets
//! and transfer encodings are found by their decoded text, case ignored; an expunged
//! message leaves the index; a deleted or damaged index is built again; and on corpus
//! messages the index never rules out a message the substring search finds.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;

use tme_core::config::{SearchConfig, StoreConfig};
use tme_core::password::hash_password;
use tme_core::{Domain, EmailAddress};
use tme_search::{Metrics, SearchIndexes, TextQuery, TextScope};
use tme_store::{AccountId, Branding, Delivery, Flags, MailboxId, MessageId, NewAccount, Store};

struct Fixture {
    directory: tempfile::TempDir,
    store: Store,
    account: AccountId,
    inbox: MailboxId,
    indexes: Arc<SearchIndexes>,
}

async fn fixture() -> Fixture {
    let directory = tempfile::tempdir().unwrap();
    let store = Store::open(directory.path(), &StoreConfig::default())
        .await
        .unwrap();
    store
        .directory
        .partner_add("p", Branding::default())
        .await
        .unwrap();
    store
        .directory
        .domain_add(&Domain::parse("example.org").unwrap(), "p")
        .await
        .unwrap();
    let account = store
        .account_create(NewAccount {
            address: EmailAddress::parse("alice@example.org").unwrap(),
            display_name: None,
            password_hash: hash_password("password").unwrap(),
            quota_bytes_max: 1 << 40,
        })
        .await
        .unwrap();
    let inbox = store
        .mail
        .mailbox_find(account.id, "INBOX")
        .await
        .unwrap()
        .unwrap()
        .id;
    let indexes = SearchIndexes::new(
        directory.path(),
        SearchConfig::default(),
        store.clone(),
        Arc::new(Metrics::default()),
    );
    Fixture {
        directory,
        store,
        account: account.id,
        inbox,
        indexes,
    }
}

impl Fixture {
    async fn deliver(&self, raw: &[u8]) -> MessageId {
        let flags = Flags::default();
        self.store
            .deliver(&[Delivery {
                account: self.account,
                mailbox: self.inbox,
                raw,
                internal_date_unix: Some(0),
                flags: &flags,
            }])
            .await
            .unwrap()[0]
            .message_id
    }

    /// The messages the index names for `needle`; panics when it cannot answer.
    async fn candidates(&self, scope: TextScope, needle: &str) -> HashSet<MessageId> {
        let prefilter = self
            .indexes
            .prefilter(
                self.account,
                &[TextQuery {
                    scope,
                    needle: needle.as_bytes(),
                }],
            )
            .await
            .expect("the index answers");
        prefilter.candidates.into_iter().next().unwrap().unwrap()
    }
}

const LATIN1_QP: &[u8] = b"From: a@example.org\r\nSubject: latin\r\n\
Content-Type: text/plain; charset=ISO-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\n\
Le caf=E9 est CHAUD ce matin.\r\n";

const UTF8_BASE64: &[u8] = b"From: b@example.org\r\nSubject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\r\n\
w5xiZXJncsO2w59lIGF1cyBNw7xuY2hlbg==\r\n";

const LATIN1_8BIT: &[u8] = b"From: c@example.org\r\nSubject: raw\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: 8bit\r\n\r\n\
Sch\xf6ne Gr\xfc\xdfe, Fran\xe7oise\r\n";

const MULTIPART: &[u8] = b"From: d@example.org\r\nSubject: parts\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nplain words here\r\n\
--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n\
c2VjcmV0IGF0dGFjaG1lbnQ=\r\n\
--b--\r\n";

#[tokio::test]
async fn charsets_and_encodings_are_found_decoded_and_without_case() {
    let fixture = fixture().await;
    let latin1_qp = fixture.deliver(LATIN1_QP).await;
    let utf8_base64 = fixture.deliver(UTF8_BASE64).await;
    let latin1_8bit = fixture.deliver(LATIN1_8BIT).await;
    let multipart = fixture.deliver(MULTIPART).await;

    let body = TextScope::Body;
    assert_eq!(
        fixture.candidates(body, "café").await,
        HashSet::from([latin1_qp])
    );
    assert_eq!(
        fixture.candidates(body, "chaud").await,
        HashSet::from([latin1_qp])
    );
    assert_eq!(
        fixture.candidates(body, "CAFÉ EST").await,
        HashSet::from([latin1_qp])
    );
    assert_eq!(
        fixture.candidates(body, "übergröße").await,
        HashSet::from([utf8_base64])
    );
    assert_eq!(
        fixture.candidates(body, "MÜNCHEN").await,
        HashSet::from([utf8_base64])
    );
    assert_eq!(
        fixture.candidates(body, "grüße, fran").await,
        HashSet::from([latin1_8bit])
    );
    assert_eq!(
        fixture.candidates(body, "françoise").await,
        HashSet::from([latin1_8bit])
    );
    assert_eq!(
        fixture.candidates(body, "ords he").await,
        HashSet::from([multipart])
    );
    // Not a text part: an attachment is not searched.
    assert!(fixture.candidates(body, "secret").await.is_empty());
    // Header only with TEXT, decoded words included.
    assert!(
        fixture
            .candidates(body, "grüße")
            .await
            .contains(&latin1_8bit)
    );
    assert!(
        !fixture
            .candidates(body, "grüße")
            .await
            .contains(&utf8_base64)
    );
    assert!(
        fixture
            .candidates(TextScope::Text, "grüße")
            .await
            .contains(&utf8_base64)
    );
    assert_eq!(
        fixture.candidates(TextScope::Text, "c@example").await,
        HashSet::from([latin1_8bit])
    );
    // Shorter than a trigram: the index cannot say.
    let short = fixture
        .indexes
        .prefilter(
            fixture.account,
            &[TextQuery {
                scope: body,
                needle: b"ca",
            }],
        )
        .await;
    assert!(short.is_none());
}

#[tokio::test]
async fn a_japanese_corpus_message_is_found() {
    let Some(corpus) = tme_testkit::corpus_dir() else {
        panic!("the corpus is missing (TME_CORPUS_DIR)");
    };
    let raw =
        std::fs::read(corpus.join("spamassassin-tdata/t__data__nice__cjk__iso-2022-jp.1.eml"))
            .unwrap();
    let fixture = fixture().await;
    let id = fixture.deliver(&raw).await;
    // A Shift_JIS part of the message.
    assert_eq!(
        fixture.candidates(TextScope::Body, "ファイルの形式").await,
        HashSet::from([id])
    );
    assert_eq!(
        fixture.candidates(TextScope::Body, "shift_JIS").await,
        HashSet::from([id])
    );
    assert!(
        fixture
            .candidates(TextScope::Body, "形式の")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn expunged_messages_leave_and_restored_ones_come_back() {
    let fixture = fixture().await;
    let first = fixture.deliver(LATIN1_QP).await;
    let second = fixture
        .deliver(b"Subject: x\r\n\r\nLe cafe du coin\r\n")
        .await;
    assert_eq!(
        fixture.candidates(TextScope::Body, "le caf").await,
        HashSet::from([first, second])
    );
    let record = fixture
        .store
        .mail
        .message_get(fixture.account, first)
        .await
        .unwrap();
    fixture
        .store
        .mail
        .messages_expunge(fixture.account, fixture.inbox, &[record.uid])
        .await
        .unwrap();
    assert_eq!(
        fixture.candidates(TextScope::Body, "le caf").await,
        HashSet::from([second])
    );
    fixture
        .store
        .mail
        .messages_restore(fixture.account, &[first])
        .await
        .unwrap();
    assert_eq!(
        fixture.candidates(TextScope::Body, "le caf").await,
        HashSet::from([first, second])
    );
}

#[tokio::test]
async fn a_deleted_or_damaged_index_is_built_again() {
    let fixture = fixture().await;
    let id = fixture.deliver(LATIN1_QP).await;
    assert_eq!(
        fixture.candidates(TextScope::Body, "chaud").await,
        HashSet::from([id])
    );
    let index_directory = fixture
        .directory
        .path()
        .join(tme_search::SEARCH_DIRECTORY_NAME)
        .join(format!("account-{}", fixture.account));
    assert!(index_directory.join("meta.json").exists());

    // Deleted while nobody has it open: a fresh index catches up from MODSEQ 0.
    let fresh = SearchIndexes::new(
        fixture.directory.path(),
        SearchConfig::default(),
        fixture.store.clone(),
        Arc::new(Metrics::default()),
    );
    std::fs::remove_dir_all(&index_directory).unwrap();
    let answer = fresh
        .prefilter(
            fixture.account,
            &[TextQuery {
                scope: TextScope::Body,
                needle: b"chaud",
            }],
        )
        .await
        .unwrap();
    assert_eq!(answer.candidates[0], Some(HashSet::from([id])));

    // Damaged: its meta.json is garbage. The search reads the messages this time (None);
    // the index is removed, and the next search rebuilds it.
    std::fs::write(index_directory.join("meta.json"), b"{ not json").unwrap();
    let metrics = Arc::new(Metrics::default());
    let damaged = SearchIndexes::new(
        fixture.directory.path(),
        SearchConfig::default(),
        fixture.store.clone(),
        metrics.clone(),
    );
    let query = [TextQuery {
        scope: TextScope::Body,
        needle: b"chaud",
    }];
    let first = damaged.prefilter(fixture.account, &query).await;
    let answer = match first {
        Some(answer) => answer,
        None => damaged.prefilter(fixture.account, &query).await.unwrap(),
    };
    assert_eq!(answer.candidates[0], Some(HashSet::from([id])));
    assert!(metrics.rebuilds.get() >= 1);

    // `reindex` empties and refills it.
    assert_eq!(damaged.reindex(fixture.account).await.unwrap(), 1);
}

/// The substring search of `tme-imap`, on the same text (`for_each_searchable_text`) and
/// with the same comparison: what the index must never rule out.
fn scan_finds(raw: &[u8], needle: &str, with_header: bool) -> bool {
    let summary = tme_message::summarize(raw);
    let needle = needle.to_lowercase();
    let mut found = false;
    tme_message::for_each_searchable_text(raw, &summary, with_header, |_, text| {
        if text.to_lowercase().contains(&needle) {
            found = true;
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    });
    found
}

#[tokio::test]
async fn on_corpus_messages_the_index_never_misses_what_the_scan_finds() {
    let files = tme_testkit::corpus_messages();
    assert!(!files.is_empty(), "the corpus is missing (TME_CORPUS_DIR)");
    let fixture = fixture().await;
    let mut messages = Vec::new();
    // Every 10th message: a few hundred, every set and charset among them.
    for path in files.iter().step_by(10) {
        let raw = std::fs::read(path).unwrap();
        let id = fixture.deliver(&raw).await;
        messages.push((id, raw));
    }
    let words = [
        "the",
        "money",
        "Linux",
        "click here",
        "université",
        "spamassassin",
        "http://",
        "unsubscribe",
        "für",
        "größe",
        "日本語",
        "ファイル",
        "résumé",
        "FREE!",
        "=?iso",
        "zzzqqq",
    ];
    let mut compared = 0;
    for word in words {
        for (scope, with_header) in [(TextScope::Body, false), (TextScope::Text, true)] {
            let candidates = fixture.candidates(scope, word).await;
            for (id, raw) in &messages {
                if scan_finds(raw, word, with_header) {
                    assert!(
                        candidates.contains(id),
                        "the index rules out message {id}, which holds {word:?}"
                    );
                }
                compared += 1;
            }
        }
    }
    assert!(compared > 1000);
}
