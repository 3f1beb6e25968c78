//! The one error type of the storage layer.
//!
//! Every variant says whose fault it is (the caller's request, the stored data, or the
//! environment) and whether a retry can help, so that each protocol maps it to its own reply
//! in exactly one place (SMTP 4xx/5xx, IMAP NO/BAD, HTTP status).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist. The caller's fault; a retry will not help.
    #[error("{kind} not found: {name}")]
    NotFound { kind: &'static str, name: String },
    /// The named thing exists already. The caller's fault; a retry will not help.
    #[error("{kind} already exists: {name}")]
    AlreadyExists { kind: &'static str, name: String },
    /// The request breaks a rule of the directory or the mail store (a domain that still has
    /// accounts, a mailbox name with a bad character...). The caller's fault.
    #[error("{0}")]
    Refused(String),
    /// Storing this would take the account over its quota. The caller's (or the account
    /// owner's) fault; a retry helps only once space is freed.
    #[error(
        "quota exceeded: {used_bytes} of {quota_bytes_max} bytes used, {requested_bytes} more requested"
    )]
    QuotaExceeded {
        used_bytes: u64,
        quota_bytes_max: u64,
        requested_bytes: u64,
    },
    /// The data directory was written by a newer tme. The operator's fault; upgrade tme.
    #[error(
        "{path} has schema version {found}, newer than this tme understands ({supported}); run a newer tme or restore a backup"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// The database failed or is busy. The environment's fault; a retry may help.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A write shared with others (a group commit) could not begin or commit: the database
    /// is busy, locked or failing. The environment's fault; a retry may help.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A file could not be read or written (disk full, permissions). The environment's fault;
    /// a retry may help once the cause is fixed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// Stored data fails a check made when it is read back. Nobody's request caused it; a retry
    /// will not help; an operator must look.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the same request may succeed later without any change by the caller.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(error) => !matches!(
                error,
                sqlx::Error::RowNotFound
                    | sqlx::Error::ColumnDecode { .. }
                    | sqlx::Error::Decode(_)
            ),
            StoreError::Io { .. } | StoreError::Unavailable(_) => true,
            _ => false,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> StoreError {
        StoreError::Io {
            context: context.into(),
            source,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
