//! The SQLite backend: the embedded default, a data directory and nothing else to install.
//!
//! Three database files: `directory.sqlite` (partners, domains, accounts, aliases),
//! `mail-shard-0.sqlite` (mailboxes, messages, change log), so that the directory stays one
//! while mail can later be spread over shards, and `queue.sqlite` (the outbound queue), so
//! that queue work never waits for the mail file's writer. Both run in WAL mode with `synchronous=FULL`:
//! a commit is on disk when it returns, which is what lets SMTP say 250.
//!
//! All SQL that only SQLite understands stays in this module.

mod directory;
mod dns;
mod group_commit;
mod mail;
mod queue;
mod schema;
mod threads;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::SqliteSynchronous;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub use directory::SqliteDirectory;
pub use mail::SqliteMailStore;
pub use queue::SqliteQueueStore;

use crate::error::{StoreError, StoreResult};

const READ_CONNECTIONS_MAX: u32 = 8;

/// One database file with a single writer connection and a pool of readers.
#[derive(Debug, Clone)]
pub(crate) struct Database {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl Database {
    /// Opens (creating and migrating) one file. `busy_timeout` is how long a write waits for
    /// another process's write transaction before failing (`store.busy_timeout_ms`).
    pub(crate) async fn open(
        path: &Path,
        schema: &schema::Schema,
        busy_timeout: Duration,
    ) -> StoreResult<Database> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(busy_timeout);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        schema::migrate(&writer, path, schema).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS_MAX)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Database { writer, reader })
    }

    /// Begins a write transaction that holds SQLite's write lock from its first statement,
    /// so two processes never deadlock upgrading a read lock.
    pub(crate) async fn begin_write(
        &self,
    ) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    pub(crate) async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|duration| duration.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) fn to_i64(value: u64) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::Refused(format!("{value} is out of range")))
}

pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Turns SQLite's UNIQUE violation into `AlreadyExists { kind, name }`; other errors pass.
pub(crate) fn already_exists_if_unique<T>(
    result: Result<T, sqlx::Error>,
    kind: &'static str,
    name: impl FnOnce() -> String,
) -> StoreResult<T> {
    result.map_err(|error| match error {
        sqlx::Error::Database(database) if database.is_unique_violation() => {
            StoreError::AlreadyExists { kind, name: name() }
        }
        other => StoreError::Database(other),
    })
}

/// Whether `sql` (a `SELECT 1 ... WHERE key = ?`) finds a row, inside a write transaction.
pub(crate) async fn row_exists(
    transaction: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    sql: &'static str,
    key: &str,
) -> StoreResult<bool> {
    Ok(sqlx::query(sql)
        .bind(key)
        .fetch_optional(&mut **transaction)
        .await?
        .is_some())
}

/// Closes a backend's connections at shutdown.
#[derive(Debug)]
pub(crate) enum Closer {
    Directory(SqliteDirectory),
    Mail(SqliteMailStore),
    Queue(SqliteQueueStore),
}

impl Closer {
    pub(crate) async fn close(&self) {
        match self {
            Closer::Directory(directory) => directory.close().await,
            Closer::Mail(mail) => mail.close().await,
            Closer::Queue(queue) => queue.close().await,
        }
    }
}
