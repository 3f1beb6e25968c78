//! The full-text index of each account's mail (tantivy), which IMAP SEARCH BODY and TEXT
//! ask before reading any message.
//!
//! The index is a **prefilter**, not the answer: for a search string of three characters
//! or more it names the messages that hold every trigram of the string (`text`), a
//! superset of those that hold the string, and the caller confirms each of them with the
//! substring search on the message itself. Results are therefore exactly those of reading
//! every message; the index only spares reading the messages it rules out.
//!
//! This crate owns the index files (`DATA_DIR/search/account-{id}/`, one tantivy index per
//! account), their schema (`index`), the text rules (`text`), and keeping each index in
//! step with the store (`indexes`): an index records the MODSEQ of the last change-log entry
//! it holds and, before it answers, applies the account's changes since then (messages
//! added, restored, expunged). It knows nothing of IMAP: it is given search strings and
//! answers with message ids. The index is derived data: one that cannot be read is removed
//! and built again from the store, and any trouble makes the caller read the messages
//! instead; a search never fails because of the index.

mod index;
mod indexes;
pub mod metrics;
pub mod text;

pub use index::{AccountIndex, IndexedMessage, TextScope};
pub use indexes::{Prefilter, SearchIndexes, TextQuery};
pub use metrics::Metrics;

use std::path::Path;

/// The folder of the indexes inside a data directory.
pub const SEARCH_DIRECTORY_NAME: &str = "search";

/// What went wrong with an index. None of it reaches an IMAP client: the search reads the
/// messages instead.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The index could not be read or written (tantivy's error): rebuilt from the store.
    #[error("index: {0}")]
    Index(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The store could not answer; retrying later can help.
    #[error("store: {0}")]
    Store(#[from] tme_store::StoreError),
    /// Another writer (another process's `tme search reindex`) holds the index.
    #[error("the index is being written by another process")]
    Busy,
    #[error("index task failed: {0}")]
    Task(String),
}

impl SearchError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> SearchError {
        SearchError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Whether the index itself is at fault (so rebuilding it helps).
    pub fn is_damage(&self) -> bool {
        matches!(self, SearchError::Index(_) | SearchError::Io { .. })
    }
}

impl From<tantivy::TantivyError> for SearchError {
    fn from(error: tantivy::TantivyError) -> SearchError {
        SearchError::Index(error.to_string())
    }
}
