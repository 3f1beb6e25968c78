//! The node's account indexes: opened lazily, at most `search.indexes_open_max` kept open
//! (least recently used closed first), at most `search.writers_concurrent_max` writers at
//! once, each with `search.writer_heap_bytes`; and the catch-up that brings an index to the
//! store's change log before it answers.
//!
//! Invariants: an index answers only once it holds every change up to the MODSEQ it
//! reports (`Prefilter::modseq`), so the caller knows which messages it may rule out (those
//! whose MODSEQ is at or below it); a search that would need more than
//! `search.catch_up_inline_messages_max` messages indexed first is answered by reading
//! (`None`) while the catch-up goes on in the background; an index that cannot be read is
//! removed (logged, `tme_search_rebuilds_total`) and built again on the next search.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tme_core::config::SearchConfig;
use tme_message::{MessageSummary, SearchableKind, for_each_searchable_text};
use tme_store::{AccountId, ChangeKind, MessageId, ModSeq, Store, StoreError};
use tokio::sync::Semaphore;

use crate::index::{AccountIndex, IndexedMessage, TextScope};
use crate::metrics::Metrics;
use crate::text::{normalise, query_grams};
use crate::{SEARCH_DIRECTORY_NAME, SearchError};

/// Change-log entries read and committed at a time.
const CHANGES_PER_BATCH: u32 = 500;
/// How long a writer waits for another process's writer (`tme search reindex`).
const BUSY_RETRIES_MAX: u32 = 50;
const BUSY_RETRY_WAIT: Duration = Duration::from_millis(200);

/// One search string of a search.
#[derive(Debug, Clone, Copy)]
pub struct TextQuery<'a> {
    pub scope: TextScope,
    pub needle: &'a [u8],
}

/// What the index says about the strings of one search.
#[derive(Debug, Clone)]
pub struct Prefilter {
    /// The index holds every change up to here: a message whose MODSEQ is above it (added
    /// since) was not looked at and must be read.
    pub modseq: ModSeq,
    /// Per query, in order: the messages that may match, or None when the index cannot tell
    /// (a string shorter than a trigram) and every message must be read.
    pub candidates: Vec<Option<HashSet<MessageId>>>,
}

#[derive(Debug)]
struct Entry {
    index: AccountIndex,
    /// One catch-up at a time per account in this process.
    catch_up: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct OpenIndexes {
    entries: HashMap<AccountId, (u64, Arc<Entry>)>,
    clock: u64,
}

/// The indexes of every account of the node.
#[derive(Debug)]
pub struct SearchIndexes {
    root: PathBuf,
    config: SearchConfig,
    store: Store,
    metrics: Arc<Metrics>,
    open: tokio::sync::Mutex<OpenIndexes>,
    writers: Semaphore,
    catching_up: Mutex<HashSet<AccountId>>,
}

impl SearchIndexes {
    pub fn new(
        data_directory: &Path,
        config: SearchConfig,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> Arc<SearchIndexes> {
        Arc::new(SearchIndexes {
            root: data_directory.join(SEARCH_DIRECTORY_NAME),
            writers: Semaphore::new(config.writers_concurrent_max.max(1)),
            config,
            store,
            metrics,
            open: tokio::sync::Mutex::new(OpenIndexes::default()),
            catching_up: Mutex::new(HashSet::new()),
        })
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    fn path_of(&self, account: AccountId) -> PathBuf {
        self.root.join(format!("account-{account}"))
    }

    async fn entry(&self, account: AccountId) -> Result<Arc<Entry>, SearchError> {
        let mut open = self.open.lock().await;
        open.clock += 1;
        let now = open.clock;
        if let Some((used, entry)) = open.entries.get_mut(&account) {
            *used = now;
            return Ok(entry.clone());
        }
        let path = self.path_of(account);
        let index = blocking(move || match AccountIndex::open(&path) {
            Ok(index) => Ok((index, false)),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "search index unreadable, rebuilding it from the store");
                remove_index(&path)?;
                Ok((AccountIndex::open(&path)?, true))
            }
        })
        .await?;
        if index.1 {
            self.metrics.rebuilds.inc();
        }
        let entry = Arc::new(Entry {
            index: index.0,
            catch_up: tokio::sync::Mutex::new(()),
        });
        open.entries.insert(account, (now, entry.clone()));
        while open.entries.len() > self.config.indexes_open_max.max(1) {
            let Some(oldest) = open
                .entries
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(account, _)| *account)
            else {
                break;
            };
            open.entries.remove(&oldest);
        }
        self.metrics
            .indexes_open
            .set(i64::try_from(open.entries.len()).unwrap_or(i64::MAX));
        Ok(entry)
    }

    /// Forgets a damaged index and removes its files; the next search builds it again.
    async fn discard(&self, account: AccountId) {
        self.open.lock().await.entries.remove(&account);
        let path = self.path_of(account);
        let removed = blocking(move || remove_index(&path)).await;
        if let Err(error) = removed {
            tracing::warn!(account, %error, "cannot remove a damaged search index");
        }
        self.metrics.rebuilds.inc();
    }

    /// The messages each of `queries` may match, or None when the messages must all be read
    /// (the index is off, behind, or in trouble: logged, never an error to the client).
    pub async fn prefilter(
        self: &Arc<Self>,
        account: AccountId,
        queries: &[TextQuery<'_>],
    ) -> Option<Prefilter> {
        if !self.config.enabled {
            return None;
        }
        let grams: Vec<Option<Vec<String>>> = queries
            .iter()
            .map(|query| query_grams(query.needle))
            .collect();
        if grams.iter().all(Option::is_none) {
            self.metrics.answered("scan");
            return None;
        }
        match self.try_prefilter(account, queries, grams).await {
            Ok(Some(prefilter)) => {
                self.metrics.answered("index");
                Some(prefilter)
            }
            Ok(None) => {
                self.metrics.answered("scan");
                None
            }
            Err(error) => {
                tracing::warn!(account, %error, "search index unavailable, reading the messages");
                if error.is_damage() {
                    self.discard(account).await;
                }
                self.metrics.answered("scan");
                None
            }
        }
    }

    async fn try_prefilter(
        self: &Arc<Self>,
        account: AccountId,
        queries: &[TextQuery<'_>],
        grams: Vec<Option<Vec<String>>>,
    ) -> Result<Option<Prefilter>, SearchError> {
        let entry = self.entry(account).await?;
        let caught_up = {
            let _guard = entry.catch_up.lock().await;
            self.catch_up(
                account,
                &entry,
                Some(self.config.catch_up_inline_messages_max),
            )
            .await?
        };
        let Some(modseq) = caught_up else {
            self.catch_up_in_background(account);
            return Ok(None);
        };
        let scopes: Vec<TextScope> = queries.iter().map(|query| query.scope).collect();
        let index = entry.index.clone();
        let candidates = blocking(move || {
            scopes
                .into_iter()
                .zip(grams)
                .map(|(scope, grams)| match grams {
                    Some(grams) => index.candidates(scope, &grams).map(Some),
                    None => Ok(None),
                })
                .collect::<Result<Vec<_>, SearchError>>()
        })
        .await?;
        Ok(Some(Prefilter { modseq, candidates }))
    }

    fn catch_up_in_background(self: &Arc<Self>, account: AccountId) {
        if !self.start_catching_up(account) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move { this.catch_up_and_finish(account).await });
    }

    /// Brings the index of an account that changed up to the store (the node's indexer,
    /// woken by deliveries and expunges), so a later search finds it ready. Errors are
    /// logged; a damaged index is removed to be built again. Does nothing while another
    /// catch-up of the account runs in the background.
    pub async fn follow_change(self: &Arc<Self>, account: AccountId) {
        if self.config.enabled && self.start_catching_up(account) {
            self.catch_up_and_finish(account).await;
        }
    }

    /// Marks the account's background catch-up as running; false when one already is.
    fn start_catching_up(&self, account: AccountId) -> bool {
        self.catching_up
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(account)
    }

    async fn catch_up_and_finish(&self, account: AccountId) {
        let result = async {
            let entry = self.entry(account).await?;
            let _guard = entry.catch_up.lock().await;
            self.catch_up(account, &entry, None).await
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(account, %error, "search index catch-up failed");
            if error.is_damage() {
                self.discard(account).await;
            }
        }
        self.catching_up
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&account);
    }

    /// Applies the account's change log since the index's MODSEQ. Returns the MODSEQ it
    /// reached, or None when it stopped after `messages_max` messages with more to do.
    /// The caller holds `entry.catch_up`.
    async fn catch_up(
        &self,
        account: AccountId,
        entry: &Entry,
        messages_max: Option<usize>,
    ) -> Result<Option<ModSeq>, SearchError> {
        let index = entry.index.clone();
        let mut modseq = blocking(move || index.modseq()).await?;
        let mut changes_seen = 0usize;
        let mut indexed = 0usize;
        let mut uncommitted = 0usize;
        loop {
            let changes = self
                .store
                .mail
                .changes_since(account, modseq, CHANGES_PER_BATCH)
                .await?;
            let Some(last) = changes.last() else {
                if uncommitted >= CHANGES_PER_BATCH as usize {
                    self.write(entry, Vec::new(), Vec::new(), modseq).await?;
                }
                self.metrics
                    .index_lag_changes
                    .set(i64::try_from(changes_seen).unwrap_or(i64::MAX));
                return Ok(Some(modseq));
            };
            if let Some(max) = messages_max
                && indexed >= max
            {
                return Ok(None);
            }
            let batch_modseq = last.modseq;
            changes_seen += changes.len();
            // The last word on each message in this batch (added, or expunged).
            let mut latest: BTreeMap<MessageId, bool> = BTreeMap::new();
            for change in &changes {
                if let Some((message, _)) = change.message {
                    match change.kind {
                        ChangeKind::MessageAdded => {
                            latest.insert(message, true);
                        }
                        ChangeKind::MessageExpunged => {
                            latest.insert(message, false);
                        }
                        _ => {}
                    }
                }
            }
            let mut removed = Vec::new();
            let mut loaded: Vec<(MessageId, Vec<u8>, Arc<MessageSummary>)> = Vec::new();
            for (message, added) in latest {
                if !added {
                    removed.push(message);
                    continue;
                }
                match self.load(account, message).await? {
                    Some((raw, summary)) => loaded.push((message, raw, summary)),
                    None => removed.push(message),
                }
            }
            if removed.is_empty() && loaded.is_empty() {
                // Only flag and mailbox changes: nothing to write. The MODSEQ is committed
                // with the next write, or below once enough such changes piled up.
                modseq = batch_modseq;
                uncommitted += changes.len();
                continue;
            }
            let added_count = loaded.len();
            let text_bytes_max = self.config.text_bytes_per_message_max;
            let messages: Vec<IndexedMessage> = blocking(move || {
                Ok(loaded
                    .into_iter()
                    .map(|(id, raw, summary)| indexed_message(id, &raw, &summary, text_bytes_max))
                    .collect())
            })
            .await?;
            self.write(entry, removed, messages, batch_modseq).await?;
            uncommitted = 0;
            self.metrics.messages_indexed.inc_by(added_count as u64);
            indexed += added_count;
            modseq = batch_modseq;
        }
    }

    /// One commit: `removed` out, `messages` in, the index at `modseq`; waits for a writer
    /// slot, and for another process's writer a little.
    async fn write(
        &self,
        entry: &Entry,
        removed: Vec<MessageId>,
        messages: Vec<IndexedMessage>,
        modseq: ModSeq,
    ) -> Result<(), SearchError> {
        let heap_bytes = self.config.writer_heap_bytes;
        let _permit = self
            .writers
            .acquire()
            .await
            .map_err(|error| SearchError::Task(error.to_string()))?;
        let removed = Arc::new(removed);
        let messages = Arc::new(messages);
        let mut attempt = 0;
        loop {
            let index = entry.index.clone();
            let removed = removed.clone();
            let messages = messages.clone();
            match blocking(move || index.apply(&removed, &messages, modseq, heap_bytes)).await {
                Err(SearchError::Busy) if attempt < BUSY_RETRIES_MAX => {
                    attempt += 1;
                    tokio::time::sleep(BUSY_RETRY_WAIT).await;
                }
                other => return other,
            }
        }
    }

    /// A live message's raw bytes and summary; None when it is gone, expunged, or its blob
    /// is damaged (the search cannot read it either, so it cannot match).
    async fn load(
        &self,
        account: AccountId,
        message: MessageId,
    ) -> Result<Option<(Vec<u8>, Arc<MessageSummary>)>, SearchError> {
        let record = match self.store.mail.message_get(account, message).await {
            Ok(record) if record.expunged_unix.is_none() => record,
            Ok(_) | Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let summary = self.store.mail.message_summary(account, message).await?;
        match self.store.message_raw(&record).await {
            Ok(raw) => Ok(Some((raw, summary))),
            Err(StoreError::Corrupt(reason)) => {
                tracing::warn!(account, message, %reason, "message not indexed");
                Ok(None)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Empties the account's index and builds it again from the store. Returns the number
    /// of messages it holds after.
    pub async fn reindex(&self, account: AccountId) -> Result<u64, SearchError> {
        let entry = match self.entry(account).await {
            Ok(entry) => entry,
            Err(error) => {
                // Unreadable even after the rebuild `entry` tries: remove and start over.
                tracing::warn!(account, %error, "search index unreadable, removing it");
                self.discard(account).await;
                self.entry(account).await?
            }
        };
        let _guard = entry.catch_up.lock().await;
        let heap_bytes = self.config.writer_heap_bytes;
        let mut attempt = 0;
        loop {
            let index = entry.index.clone();
            match blocking(move || index.clear(heap_bytes)).await {
                Err(SearchError::Busy) if attempt < BUSY_RETRIES_MAX => {
                    attempt += 1;
                    tokio::time::sleep(BUSY_RETRY_WAIT).await;
                }
                other => break other?,
            }
        }
        self.metrics.rebuilds.inc();
        self.catch_up(account, &entry, None).await?;
        let index = entry.index.clone();
        blocking(move || index.documents()).await
    }

    /// Brings the account's index up to the store now (the background indexer and tests).
    pub async fn catch_up_account(&self, account: AccountId) -> Result<ModSeq, SearchError> {
        let entry = self.entry(account).await?;
        let _guard = entry.catch_up.lock().await;
        let modseq = self.catch_up(account, &entry, None).await?;
        Ok(modseq.unwrap_or(0))
    }
}

/// The message as the index takes it: every searchable text normalised, up to
/// `text_bytes_max` bytes in all.
pub(crate) fn indexed_message(
    message_id: MessageId,
    raw: &[u8],
    summary: &MessageSummary,
    text_bytes_max: usize,
) -> IndexedMessage {
    let mut message = IndexedMessage {
        message_id,
        ..IndexedMessage::default()
    };
    let mut bytes = 0usize;
    for_each_searchable_text(raw, summary, true, |kind, text| {
        let text = normalise(text);
        bytes = bytes.saturating_add(text.len());
        if bytes > text_bytes_max {
            message.truncated = true;
            return ControlFlow::Break(());
        }
        match kind {
            SearchableKind::Header => message.header.push(text),
            SearchableKind::Body => message.body.push(text),
        }
        ControlFlow::Continue(())
    });
    message
}

fn remove_index(path: &Path) -> Result<(), SearchError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(SearchError::io(path, error)),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SearchError> + Send + 'static,
) -> Result<T, SearchError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| SearchError::Task(error.to_string()))?
}
