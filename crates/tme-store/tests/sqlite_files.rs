//! What only the SQLite backend can be asked: files from a newer tme, and a full disk.

use std::process::Command;

use tme_core::EmailAddress;
use tme_core::config::StoreConfig;
use tme_store::{Branding, Delivery, Flags, NewAccount, Store, StoreError};

#[tokio::test]
async fn a_newer_schema_is_refused_with_a_clear_error() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store = Store::open(directory.path(), &StoreConfig::default())
        .await
        .expect("open");
    store.close().await;
    let path = directory.path().join(tme_store::DIRECTORY_FILE_NAME);
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
    let pool = sqlx::SqlitePool::connect_with(options)
        .await
        .expect("connect");
    sqlx::query("PRAGMA user_version = 999")
        .execute(&pool)
        .await
        .expect("pragma");
    pool.close().await;
    let error = Store::open(directory.path(), &StoreConfig::default())
        .await
        .expect_err("refused");
    assert!(
        matches!(error, StoreError::SchemaTooNew { found: 999, .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("newer than this tme understands"),
        "{error}"
    );
}

#[tokio::test]
async fn reopening_keeps_everything() {
    let directory = tempfile::tempdir().expect("tempdir");
    let address = EmailAddress::parse("user@example.com").expect("address");
    {
        let (store, _) = store_with_account(directory.path(), &address, 1 << 20).await;
        store.close().await;
    }
    let store = Store::open(directory.path(), &StoreConfig::default())
        .await
        .expect("reopen");
    let account = store.account_open(&address).await.expect("account");
    assert_eq!(
        store
            .mail
            .mailbox_list(account.id)
            .await
            .expect("list")
            .len(),
        6
    );
}

/// A data directory on a 1 MiB tmpfs fills up: deliveries fail with an I/O error that says
/// so, nothing half-written is visible, and the store opens cleanly afterwards. Needs root to
/// mount; skipped (with a note) where mounting is not allowed.
#[tokio::test]
async fn a_full_disk_fails_cleanly() {
    let mount_point = tempfile::tempdir().expect("tempdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(mount_point.path())
        .status()
        .is_ok_and(|status| status.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    // Unmounted when the test ends, even by a panic.
    let _unmount = Unmount(mount_point.path().to_path_buf());
    fill_the_disk(mount_point.path()).await;
}

struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

async fn fill_the_disk(root: &std::path::Path) {
    let address = EmailAddress::parse("user@example.com").expect("address");
    let (store, account) = store_with_account(root, &address, 1 << 40).await;
    let inbox = store
        .mail
        .mailbox_find(account.id, "INBOX")
        .await
        .expect("find")
        .expect("inbox");
    let flags = Flags::default();
    let mut stored = 0u32;
    let mut failure = None;
    for number in 0..1000u32 {
        // Incompressible bodies, so each message really takes its size on disk.
        let mut raw = format!("Subject: filler {number}\r\n\r\n").into_bytes();
        let mut state = u64::from(number) * 2_654_435_761 + 1;
        for _ in 0..16_384 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            raw.push(b'a' + (state % 26) as u8);
        }
        let delivery = Delivery {
            account: account.id,
            mailbox: inbox.id,
            raw: &raw,
            internal_date_unix: None,
            flags: &flags,
        };
        match store.deliver(&[delivery]).await {
            Ok(_) => stored += 1,
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    let failure = failure.expect("a 1 MiB disk fills before 1000 messages of 16 KiB");
    let text = failure.to_string();
    assert!(
        text.contains("No space left on device") || text.contains("full"),
        "the error says the disk is full: {text}"
    );
    store.close().await;
    let store = Store::open(root, &StoreConfig::default())
        .await
        .expect("reopens after a full disk");
    let listed = store
        .mail
        .message_list(account.id, inbox.id)
        .await
        .expect("list");
    assert_eq!(
        listed.len() as u32,
        stored,
        "exactly the acknowledged messages are there"
    );
    for record in &listed {
        store
            .message_raw(record)
            .await
            .expect("every listed message reads back");
    }
    store.close().await;
}

/// Opens a store in `root` with one account (and its partner and domain).
async fn store_with_account(
    root: &std::path::Path,
    address: &EmailAddress,
    quota_bytes_max: u64,
) -> (Store, tme_store::Account) {
    let store = Store::open(root, &StoreConfig::default())
        .await
        .expect("open");
    store
        .directory
        .partner_add("P", Branding::default())
        .await
        .expect("partner");
    store
        .directory
        .domain_add(address.domain(), "P")
        .await
        .expect("domain");
    let account = store
        .account_create(NewAccount {
            address: address.clone(),
            display_name: None,
            password_hash: "x".to_owned(),
            quota_bytes_max,
        })
        .await
        .expect("account");
    (store, account)
}
