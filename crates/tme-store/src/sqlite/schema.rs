//! Versioned schema migrations for the SQLite files.
//!
//! The version lives in SQLite's `user_version`. Migrations only ever append: a release adds
//! a step, never edits one. A file from a newer tme is refused with a clear error instead of
//! being half-understood.

use std::path::Path;

use sqlx::{Executor, Row, SqlitePool};

use crate::error::{StoreError, StoreResult};

/// The migration steps of one database file; step N takes the file to version N + 1.
#[derive(Debug)]
pub(crate) struct Schema {
    pub steps: &'static [&'static str],
}

pub(crate) async fn migrate(pool: &SqlitePool, path: &Path, schema: &Schema) -> StoreResult<()> {
    let supported = schema.steps.len() as i64;
    let mut connection = pool.acquire().await?;
    let found: i64 = sqlx::query("PRAGMA user_version")
        .fetch_one(&mut *connection)
        .await?
        .get(0);
    // The writer pool has one connection: give it back before the migration takes it.
    drop(connection);
    if found > supported {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported,
        });
    }
    for (index, step) in schema.steps.iter().enumerate().skip(found as usize) {
        let version = index as i64 + 1;
        // Each step and its version number commit together, or not at all.
        let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await?;
        transaction.execute(*step).await?;
        transaction
            .execute(sqlx::AssertSqlSafe(format!(
                "PRAGMA user_version = {version}"
            )))
            .await?;
        transaction.commit().await?;
        tracing::info!(path = %path.display(), version, "schema migrated");
    }
    Ok(())
}

/// The directory file.
pub(crate) const DIRECTORY: Schema = Schema {
    steps: &[
        // 1: partners, domains, accounts, app passwords, aliases, the generation counter.
        r#"
CREATE TABLE partners (
    name TEXT PRIMARY KEY,
    product_name TEXT,
    logo_url TEXT,
    colour_primary TEXT,
    colour_accent TEXT,
    created_unix INTEGER NOT NULL
);
CREATE TABLE domains (
    domain TEXT PRIMARY KEY,
    partner TEXT NOT NULL REFERENCES partners(name),
    created_unix INTEGER NOT NULL
);
CREATE INDEX domains_partner ON domains(partner);
CREATE TABLE accounts (
    account_id INTEGER PRIMARY KEY AUTOINCREMENT,
    address_canonical TEXT NOT NULL UNIQUE,
    address TEXT NOT NULL,
    domain TEXT NOT NULL REFERENCES domains(domain),
    display_name TEXT,
    password_hash TEXT NOT NULL,
    quota_bytes_max INTEGER NOT NULL,
    state TEXT NOT NULL,
    shard INTEGER NOT NULL DEFAULT 0,
    created_unix INTEGER NOT NULL
);
CREATE INDEX accounts_domain ON accounts(domain);
CREATE TABLE app_passwords (
    app_password_id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_unix INTEGER NOT NULL,
    last_used_unix INTEGER
);
CREATE INDEX app_passwords_account ON app_passwords(account_id);
CREATE TABLE aliases (
    source_canonical TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    domain TEXT NOT NULL REFERENCES domains(domain),
    targets TEXT NOT NULL,
    created_unix INTEGER NOT NULL
);
CREATE INDEX aliases_domain ON aliases(domain);
CREATE TABLE generation (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    value INTEGER NOT NULL
);
INSERT INTO generation (id, value) VALUES (0, 0);
CREATE TRIGGER partners_insert AFTER INSERT ON partners BEGIN UPDATE generation SET value = value + 1; END;
CREATE TRIGGER partners_update AFTER UPDATE ON partners BEGIN UPDATE generation SET value = value + 1; END;
CREATE TRIGGER partners_delete AFTER DELETE ON partners BEGIN UPDATE generation SET value = value + 1; END;
CREATE TRIGGER domains_insert AFTER INSERT ON domains BEGIN UPDATE generation SET value = value + 1; END;
CREATE TRIGGER domains_update AFTER UPDATE ON domains BEGIN UPDATE generation SET value = value + 1; END;
CREATE TRIGGER domains_delete AFTER DELETE ON domains BEGIN UPDATE generation SET value = value + 1; END;
CREATE TRIGGER accounts_insert AFTER INSERT ON accounts BEGIN UPDATE generation SET value = value + 1; END;
CREATE TRIGGER accounts_update AFTER UPDATE ON accounts BEGIN UPDATE generation SET value = value + 1; END;
CREATE TRIGGER accounts_delete AFTER DELETE ON accounts BEGIN UPDATE generation SET value = value + 1; END;
CREATE TRIGGER aliases_insert AFTER INSERT ON aliases BEGIN UPDATE generation SET value = value + 1; END;
CREATE TRIGGER aliases_update AFTER UPDATE ON aliases BEGIN UPDATE generation SET value = value + 1; END;
CREATE TRIGGER aliases_delete AFTER DELETE ON aliases BEGIN UPDATE generation SET value = value + 1; END;
"#,
        // 2: DNS: each domain's DKIM keys (the private key for signing, the public one for its
        // TXT record) and the custom records an operator adds. Both go with their domain, and
        // both bump `generation`, which is how the `dns` role sees a change made by the CLI.
        r#"
CREATE TABLE dkim_keys (
    domain TEXT NOT NULL REFERENCES domains(domain) ON DELETE CASCADE,
    selector TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    public_key BLOB NOT NULL,
    private_key_pkcs8 BLOB NOT NULL,
    created_unix INTEGER NOT NULL,
    PRIMARY KEY (domain, selector)
);
CREATE TABLE dns_records (
    dns_record_id INTEGER PRIMARY KEY AUTOINCREMENT,
    domain TEXT NOT NULL REFERENCES domains(domain) ON DELETE CASCADE,
    name TEXT NOT NULL,
    record_type TEXT NOT NULL,
    ttl_seconds INTEGER NOT NULL,
    value TEXT NOT NULL,
    created_unix INTEGER NOT NULL
);
CREATE UNIQUE INDEX dns_records_unique ON dns_records(domain, name, record_type, value);
CREATE TRIGGER dkim_keys_insert AFTER INSERT ON dkim_keys BEGIN UPDATE generation SET value = value + 1; END;
CREATE TRIGGER dkim_keys_update AFTER UPDATE ON dkim_keys BEGIN UPDATE generation SET value = value + 1; END;
CREATE TRIGGER dkim_keys_delete AFTER DELETE ON dkim_keys BEGIN UPDATE generation SET value = value + 1; END;
CREATE TRIGGER dns_records_insert AFTER INSERT ON dns_records BEGIN UPDATE generation SET value = value + 1; END;
CREATE TRIGGER dns_records_update AFTER UPDATE ON dns_records BEGIN UPDATE generation SET value = value + 1; END;
CREATE TRIGGER dns_records_delete AFTER DELETE ON dns_records BEGIN UPDATE generation SET value = value + 1; END;
"#,
        // 3: login locks (tme-auth's throttle), so operators see and lift them with the CLI.
        // No generation trigger: a lock is not a directory change a cache must notice.
        r#"
CREATE TABLE login_locks (
    lock_key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    locked_unix INTEGER NOT NULL,
    locked_until_unix INTEGER NOT NULL
) WITHOUT ROWID;
"#,
        // 4: webmail sessions, by the hash of their cookie's token, listed per account; they
        // go with their account. No generation trigger: a login is not a directory change.
        r#"
CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
    created_unix INTEGER NOT NULL,
    expires_unix INTEGER NOT NULL,
    client_address TEXT NOT NULL,
    user_agent TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX web_sessions_account ON web_sessions(account_id);
CREATE INDEX web_sessions_expires ON web_sessions(expires_unix);
"#,
        // 5: account settings of the webmail (the signature); they go with their account.
        // No generation trigger: nothing cached depends on them.
        r#"
CREATE TABLE account_settings (
    account_id INTEGER PRIMARY KEY REFERENCES accounts(account_id) ON DELETE CASCADE,
    signature TEXT
);
"#,
        // 6: the vacation auto-reply of each account, and whom it answered when (the BLAKE3
        // hash of the sender's lower-cased address, so the file lists no correspondents).
        // Both go with their account. No generation trigger: nothing cached depends on them.
        r#"
CREATE TABLE account_vacations (
    account_id INTEGER PRIMARY KEY REFERENCES accounts(account_id) ON DELETE CASCADE,
    enabled INTEGER NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    first_day_epoch_days INTEGER,
    last_day_epoch_days INTEGER
);
CREATE TABLE vacation_replies (
    account_id INTEGER NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
    sender_hash TEXT NOT NULL,
    replied_unix INTEGER NOT NULL,
    PRIMARY KEY (account_id, sender_hash)
) WITHOUT ROWID;
"#,
        // 7: a revoked app password bumps the generation, so that sessions opened with it
        // learn of it from the one number they watch (`tme_auth::CredentialWatch`); a new
        // one changes nothing anyone holds.
        r#"
CREATE TRIGGER app_passwords_delete AFTER DELETE ON app_passwords BEGIN UPDATE generation SET value = value + 1; END;
"#,
        // 8: the app password a web session logged in with; the session goes with it.
        r#"
ALTER TABLE web_sessions ADD COLUMN app_password_id INTEGER
    REFERENCES app_passwords(app_password_id) ON DELETE CASCADE;
CREATE INDEX web_sessions_app_password ON web_sessions(app_password_id);
"#,
    ],
};

/// A mail shard file.
pub(crate) const MAIL: Schema = Schema {
    steps: &[
        // 1: accounts, mailboxes, messages, change log.
        r#"
CREATE TABLE mail_accounts (
    account_id INTEGER PRIMARY KEY,
    quota_bytes_max INTEGER NOT NULL,
    used_bytes INTEGER NOT NULL DEFAULT 0,
    message_count INTEGER NOT NULL DEFAULT 0,
    highest_modseq INTEGER NOT NULL DEFAULT 0,
    uid_validity_last INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE mailboxes (
    mailbox_id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES mail_accounts(account_id),
    name TEXT NOT NULL,
    special_use TEXT,
    uid_validity INTEGER NOT NULL,
    uid_next INTEGER NOT NULL,
    highest_modseq INTEGER NOT NULL,
    subscribed INTEGER NOT NULL,
    deleted_unix INTEGER
);
CREATE UNIQUE INDEX mailboxes_live_name ON mailboxes(account_id, name) WHERE deleted_unix IS NULL;
CREATE INDEX mailboxes_account ON mailboxes(account_id, deleted_unix);
CREATE TABLE messages (
    message_id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL,
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(mailbox_id),
    uid INTEGER NOT NULL,
    blob_id BLOB NOT NULL,
    size_bytes INTEGER NOT NULL,
    internal_date_unix INTEGER NOT NULL,
    system_flags INTEGER NOT NULL,
    keywords TEXT NOT NULL,
    modseq INTEGER NOT NULL,
    expunged_unix INTEGER,
    summary BLOB NOT NULL
);
CREATE UNIQUE INDEX messages_uid ON messages(account_id, mailbox_id, uid);
CREATE INDEX messages_blob ON messages(account_id, mailbox_id, blob_id);
CREATE INDEX messages_expunged ON messages(expunged_unix) WHERE expunged_unix IS NOT NULL;
CREATE TABLE changes (
    change_id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    mailbox_id INTEGER NOT NULL,
    message_id INTEGER,
    uid INTEGER
);
CREATE INDEX changes_account_modseq ON changes(account_id, modseq);
"#,
        // 2: delivery keys, so the inbound spool delivers each entry once per account even when
        // a crash comes between the commit and the removal of the entry.
        r#"
CREATE TABLE delivery_keys (
    account_id INTEGER NOT NULL,
    delivery_key TEXT NOT NULL,
    created_unix INTEGER NOT NULL,
    PRIMARY KEY (account_id, delivery_key)
) WITHOUT ROWID;
CREATE INDEX delivery_keys_created ON delivery_keys(created_unix);
"#,
        // 3: a mailbox read a page at a time (the webmail's lists by arrival, date and size)
        // and counted (its messages, unseen messages and size) from indexes of its live
        // messages alone, never its rows: a page of a 50,000-message folder costs what a page
        // of a small one does.
        r#"
CREATE INDEX messages_live_uid ON messages(account_id, mailbox_id, uid)
    WHERE expunged_unix IS NULL;
CREATE INDEX messages_live_date ON messages(account_id, mailbox_id, internal_date_unix, uid)
    WHERE expunged_unix IS NULL;
CREATE INDEX messages_live_size ON messages(account_id, mailbox_id, size_bytes, uid)
    WHERE expunged_unix IS NULL;
CREATE INDEX messages_live_unseen ON messages(account_id, mailbox_id)
    WHERE expunged_unix IS NULL AND (system_flags & 1) = 0;
"#,
        // 4: conversations (`crate::threads`). Each message's thread, the map of message ids
        // (64-bit keys) to threads per account, a mailbox's threads read from an index of its
        // live messages alone, and the messages older files hold, which get their thread
        // later (`MailStore::threads_backfill`); until then a message is a thread of its own.
        r#"
ALTER TABLE messages ADD COLUMN thread_id INTEGER;
CREATE TABLE thread_keys (
    account_id INTEGER NOT NULL,
    thread_key INTEGER NOT NULL,
    thread_id INTEGER NOT NULL,
    PRIMARY KEY (account_id, thread_key)
) WITHOUT ROWID;
CREATE INDEX thread_keys_thread ON thread_keys(account_id, thread_id);
CREATE INDEX messages_thread ON messages(account_id, thread_id);
CREATE INDEX messages_live_thread
    ON messages(account_id, mailbox_id, thread_id, uid, system_flags)
    WHERE expunged_unix IS NULL;
CREATE INDEX messages_unthreaded ON messages(message_id) WHERE thread_id IS NULL;
"#,
    ],
};

/// The outbound queue's file.
pub(crate) const QUEUE: Schema = Schema {
    steps: &[
        // 1: queued messages and their recipients.
        r#"
CREATE TABLE queue_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    blob_id BLOB NOT NULL,
    size_bytes INTEGER NOT NULL,
    return_path TEXT NOT NULL,
    sender_account_id INTEGER,
    envelope_id TEXT,
    dsn_return INTEGER NOT NULL,
    requiretls INTEGER NOT NULL,
    smtputf8 INTEGER NOT NULL,
    body_8bit INTEGER NOT NULL,
    created_unix INTEGER NOT NULL,
    expires_unix INTEGER NOT NULL,
    next_attempt_unix INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    held INTEGER NOT NULL DEFAULT 0,
    delay_notified INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until_unix INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX queue_messages_due ON queue_messages(held, next_attempt_unix);
CREATE TABLE queue_recipients (
    message_id INTEGER NOT NULL REFERENCES queue_messages(id),
    position INTEGER NOT NULL,
    address TEXT NOT NULL,
    domain TEXT NOT NULL,
    original_recipient TEXT,
    notify INTEGER NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_reply TEXT,
    remote_host TEXT,
    last_attempt_unix INTEGER,
    PRIMARY KEY (message_id, position)
) WITHOUT ROWID;
"#,
        // 2: MTA-STS policies of destinations, kept across restarts (RFC 8461 §5.1).
        r#"
CREATE TABLE mta_sts_policies (
    domain TEXT PRIMARY KEY,
    policy_id TEXT NOT NULL,
    policy_text TEXT NOT NULL,
    fetched_unix INTEGER NOT NULL,
    expires_unix INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX mta_sts_policies_expiry ON mta_sts_policies(expires_unix);
"#,
    ],
};
