//! The inbound spool: mail that inbound SMTP acknowledged (`250`) while the store could not
//! take it, kept durably on this node's local disk until it can be delivered. DESIGN §4:
//! mail reaching a site whose home store is unreachable is spooled at that site and forwarded
//! when the store returns; so the spool is local files, not a table in the store that failed.
//!
//! This module owns the entry format and the files. It does not deliver: the SMTP crate's
//! spool worker does, through `Store::deliver_once` with the entry id as the delivery key, so
//! a crash between the commit and `remove` delivers nothing twice.
//!
//! Layout under `DATA_DIR/spool/`:
//! - `inbound/ID.entry`: one entry per SMTP transaction, holding every copy to store
//!   (account, mailbox, the exact raw bytes with their trace headers, internal date, flags);
//! - `inbound/tmp.INSTANCE.ID`: an entry being written, never read; what a killed process
//!   left is removed by `remove_stale_temporaries`;
//! - `quarantine/ID.entry` and `quarantine/ID.reason`: entries that cannot be read back or
//!   delivered. They are kept and reported, never dropped: an operator may move one back to
//!   `inbound/` to retry it (the delivery key keeps the accounts already served from a
//!   second copy).
//!
//! An entry is written like a blob (temporary file, fsync, rename, fsync the folder): once
//! `put` returns, it survives a crash. Format version 1, integers little-endian:
//!
//! ```text
//! header   "TMESPOOL" | version u16 | reserved u16 (0) | body length u64
//! body     id (u16 length, UTF-8) | transaction id (u16 length, UTF-8) | spooled_unix i64
//!          | shared suffix (u64 length, bytes) | copy count u32
//!          | per copy: account i64 | mailbox i64 | has internal date u8 | internal date i64
//!                      | system flags u8 | keywords (u32 length, UTF-8) | prefix (u64 length, bytes)
//! trailer  BLAKE3 of header and body (32 octets)
//! ```
//!
//! A copy's raw message is its prefix followed by the shared suffix: the copies of one SMTP
//! transaction differ only in their trace headers, so the message is stored once, not once
//! per recipient. Reading back checks every length, the checksum and the version; a torn or
//! damaged entry is an error the caller quarantines, never a panic.
//!
//! Blocking file I/O runs on tokio's blocking threads inside the async methods.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::Notify;

use crate::Delivery;
use crate::blob::BLOB_BYTES_MAX;
use crate::directory::AccountId;
use crate::durable::{sync_directory, write_and_rename};
use crate::error::{StoreError, StoreResult};
use crate::mail::{Flags, MailboxId};

/// The largest entry file, in octets: a message of the largest blob size with room for the
/// trace headers of many copies.
pub const ENTRY_BYTES_MAX: u64 = BLOB_BYTES_MAX as u64 + 64 * 1024 * 1024;
/// The most copies (accounts) one entry holds.
pub const COPIES_PER_ENTRY_MAX: usize = 10_000;
/// The longest transaction id kept in an entry id, in characters.
const TRANSACTION_ID_CHARACTERS_MAX: usize = 32;
/// The longest entry id: 13 digits of milliseconds, a dash, the transaction id.
const ENTRY_ID_CHARACTERS_MAX: usize = 14 + TRANSACTION_ID_CHARACTERS_MAX;
/// The longest keyword list of one copy, in octets.
const KEYWORDS_OCTETS_MAX: u64 = 64 * 1024;

const MAGIC: &[u8; 8] = b"TMESPOOL";
const FORMAT_VERSION: u16 = 1;
/// magic, version, reserved, body length.
const HEADER_BYTES: usize = 8 + 2 + 2 + 8;
const CHECKSUM_BYTES: usize = 32;
const ENTRY_SUFFIX: &str = ".entry";
const REASON_SUFFIX: &str = ".reason";
const TEMPORARY_PREFIX: &str = "tmp.";
const INBOUND_FOLDER: &str = "inbound";
const QUARANTINE_FOLDER: &str = "quarantine";

/// Why the spool could not do what was asked. Each says whose fault and whether a retry helps.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The spool holds its configured maximum already. The environment's; a retry helps once
    /// the spool has been delivered.
    #[error(
        "the spool is full: {bytes_used} of {bytes_max} bytes used, {bytes_requested} more requested"
    )]
    Full {
        bytes_used: u64,
        bytes_requested: u64,
        bytes_max: u64,
    },
    /// The entry is larger than the format allows. The caller's; a retry will not help.
    #[error("the entry is too large for the spool: {0}")]
    TooLarge(String),
    /// A file could not be read or written. The environment's; a retry may help.
    #[error("spool I/O failed: {context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// An entry fails its checks on reading back (torn, damaged, unknown format version).
    /// Nobody's request; a retry will not help; it is quarantined for an operator.
    #[error("spool entry is unreadable: {0}")]
    Corrupt(String),
}

impl SpoolError {
    fn io(context: impl Into<String>, source: std::io::Error) -> SpoolError {
        SpoolError::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<StoreError> for SpoolError {
    /// Only the file errors of the helpers this module shares with the blob store.
    fn from(error: StoreError) -> SpoolError {
        match error {
            StoreError::Io { context, source } => SpoolError::Io { context, source },
            other => SpoolError::io(other.to_string(), std::io::Error::other("spool failure")),
        }
    }
}

/// An entry's id: `MILLISECONDS-TRANSACTION`, so that names sort by the time they were
/// spooled. It is also the delivery key the entry is delivered under.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SpoolEntryId(String);

impl SpoolEntryId {
    fn new(spooled_unix_ms: i64, transaction_id: &str) -> SpoolEntryId {
        let mut transaction: String = transaction_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(TRANSACTION_ID_CHARACTERS_MAX)
            .collect();
        if transaction.is_empty() {
            transaction = format!("{:016X}", rand::random::<u64>());
        }
        SpoolEntryId(format!("{:013}-{transaction}", spooled_unix_ms.max(0)))
    }

    /// Checks a name read from disk: digits, a dash, letters and digits.
    pub fn parse(text: &str) -> Option<SpoolEntryId> {
        let (milliseconds, transaction) = text.split_once('-')?;
        let valid = text.len() <= ENTRY_ID_CHARACTERS_MAX
            && !milliseconds.is_empty()
            && milliseconds.bytes().all(|byte| byte.is_ascii_digit())
            && !transaction.is_empty()
            && transaction.bytes().all(|byte| byte.is_ascii_alphanumeric());
        valid.then(|| SpoolEntryId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// When the entry was spooled, from its name.
    pub fn spooled_unix_ms(&self) -> Option<i64> {
        self.0.split_once('-')?.0.parse().ok()
    }
}

impl std::fmt::Display for SpoolEntryId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// One spooled message, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolEntry {
    pub id: SpoolEntryId,
    /// The SMTP transaction id the client was given with its `250`.
    pub transaction_id: String,
    pub spooled_unix: i64,
    pub copies: Vec<SpooledCopy>,
    /// What every copy's raw bytes end with.
    shared_suffix: Vec<u8>,
}

/// One account's copy inside an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledCopy {
    pub account: AccountId,
    pub mailbox: MailboxId,
    pub internal_date_unix: Option<i64>,
    pub flags: Flags,
    /// The raw bytes before the shared suffix (the copy's trace headers).
    prefix: Vec<u8>,
}

impl SpoolEntry {
    /// A copy's raw message, exactly as it was given to `put`.
    pub fn raw(&self, copy: &SpooledCopy) -> Vec<u8> {
        let mut raw = Vec::with_capacity(copy.prefix.len() + self.shared_suffix.len());
        raw.extend_from_slice(&copy.prefix);
        raw.extend_from_slice(&self.shared_suffix);
        raw
    }
}

/// Where an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpoolState {
    /// In `inbound/`, waiting to be delivered.
    Waiting,
    /// In `quarantine/`, for an operator.
    Quarantined,
}

/// An entry as `tme spool list` shows it (from the file names, without reading entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpoolListing {
    pub id: SpoolEntryId,
    pub state: SpoolState,
    pub bytes: u64,
    pub spooled_unix_ms: Option<i64>,
    /// Why it was quarantined.
    pub reason: Option<String>,
}

/// How much the spool holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SpoolDepth {
    pub entries_waiting: u64,
    /// Waiting and quarantined entries together: what counts against the maximum.
    pub bytes_used: u64,
}

/// The inbound spool of one node. Cheap to clone; clones share their counts.
#[derive(Debug, Clone)]
pub struct InboundSpool {
    inner: Arc<SpoolInner>,
}

#[derive(Debug)]
struct SpoolInner {
    inbound: PathBuf,
    quarantine: PathBuf,
    bytes_max: u64,
    bytes_used: AtomicU64,
    entries_waiting: AtomicU64,
    /// Names this process's temporary files, so that a left-over of another (killed) process
    /// can be told from a write in flight.
    instance: String,
    added: Notify,
}

impl InboundSpool {
    /// Opens (creating if needed) the spool at `root`, holding at most `bytes_max` octets.
    pub fn open(root: &Path, bytes_max: u64) -> StoreResult<InboundSpool> {
        let inbound = root.join(INBOUND_FOLDER);
        let quarantine = root.join(QUARANTINE_FOLDER);
        let mut created = false;
        for folder in [root, &inbound, &quarantine] {
            if !folder.is_dir() {
                fs::create_dir_all(folder).map_err(|error| {
                    StoreError::io(format!("cannot create {}", folder.display()), error)
                })?;
                created = true;
            }
        }
        if created {
            sync_directory(root)?;
            if let Some(parent) = root.parent() {
                sync_directory(parent)?;
            }
        }
        let spool = InboundSpool {
            inner: Arc::new(SpoolInner {
                inbound,
                quarantine,
                bytes_max,
                bytes_used: AtomicU64::new(0),
                entries_waiting: AtomicU64::new(0),
                instance: format!("{:016x}", rand::random::<u64>()),
                added: Notify::new(),
            }),
        };
        spool.recount()?;
        Ok(spool)
    }

    /// Spools the deliveries of one SMTP transaction durably: when this returns Ok, the entry
    /// survives a crash. On an error nothing is left behind.
    pub async fn put(
        &self,
        transaction_id: &str,
        deliveries: &[Delivery<'_>],
    ) -> Result<SpoolEntryId, SpoolError> {
        let spooled = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let id = SpoolEntryId::new(spooled.as_millis() as i64, transaction_id);
        // Encoding compares and copies up to every copy's bytes: off the async worker when
        // the runtime can spare the thread (the deliveries are borrowed, so not on a
        // blocking task).
        let encode_now = || encode(&id, transaction_id, spooled.as_secs() as i64, deliveries);
        let encoded =
            match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
                Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                    tokio::task::block_in_place(encode_now)
                }
                _ => encode_now(),
            }?;
        let length = encoded.len() as u64;
        self.reserve(length)?;
        let inner = self.inner.clone();
        let written_id = id.clone();
        let written = tokio::task::spawn_blocking(move || inner.write_entry(&written_id, &encoded))
            .await
            .map_err(|error| {
                SpoolError::io("spool write task failed", std::io::Error::other(error))
            })
            .and_then(|result| result);
        match written {
            Ok(()) => {
                self.inner.entries_waiting.fetch_add(1, Ordering::Relaxed);
                self.inner.added.notify_one();
                Ok(id)
            }
            Err(error) => {
                self.inner.bytes_used.fetch_sub(length, Ordering::Relaxed);
                Err(error)
            }
        }
    }

    /// Resolves once an entry was put after the last call returned (at once if one was).
    pub async fn added(&self) {
        self.inner.added.notified().await;
    }

    /// The waiting entries, oldest first.
    pub async fn waiting(&self) -> StoreResult<Vec<SpoolEntryId>> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut ids: Vec<SpoolEntryId> = inner
                .entry_files(&inner.inbound)?
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            ids.sort();
            inner
                .entries_waiting
                .store(ids.len() as u64, Ordering::Relaxed);
            Ok(ids)
        })
        .await
        .map_err(|error| StoreError::Refused(format!("spool task failed: {error}")))?
    }

    /// Reads a waiting entry back, checking it whole. `Corrupt` means: quarantine it.
    pub async fn read(&self, id: &SpoolEntryId) -> Result<SpoolEntry, SpoolError> {
        let path = self.inner.entry_path(id);
        let id = id.clone();
        tokio::task::spawn_blocking(move || {
            let length = fs::metadata(&path)
                .map_err(|error| SpoolError::io(format!("cannot read {}", path.display()), error))?
                .len();
            if length > ENTRY_BYTES_MAX {
                return Err(SpoolError::Corrupt(format!(
                    "{id} is {length} bytes, more than the {ENTRY_BYTES_MAX} an entry may have"
                )));
            }
            let bytes = fs::read(&path).map_err(|error| {
                SpoolError::io(format!("cannot read {}", path.display()), error)
            })?;
            let entry = decode(&bytes)?;
            if entry.id != id {
                return Err(SpoolError::Corrupt(format!(
                    "{id} holds the entry {}",
                    entry.id
                )));
            }
            Ok(entry)
        })
        .await
        .map_err(|error| SpoolError::io("spool read task failed", std::io::Error::other(error)))?
    }

    /// Removes a delivered entry.
    pub async fn remove(&self, id: &SpoolEntryId) -> StoreResult<()> {
        let inner = self.inner.clone();
        let id = id.clone();
        tokio::task::spawn_blocking(move || {
            let path = inner.entry_path(&id);
            let length = fs::metadata(&path).map(|metadata| metadata.len()).ok();
            fs::remove_file(&path).map_err(|error| {
                StoreError::io(format!("cannot remove {}", path.display()), error)
            })?;
            inner.release(length.unwrap_or(0));
            inner.entries_waiting_decrement();
            // Not strictly needed: an entry that comes back after a crash is delivered again
            // under the same key, which stores nothing twice.
            sync_directory(&inner.inbound)
        })
        .await
        .map_err(|error| StoreError::Refused(format!("spool task failed: {error}")))?
    }

    /// Moves an entry to `quarantine/` with the reason beside it.
    pub async fn quarantine(&self, id: &SpoolEntryId, reason: &str) -> StoreResult<()> {
        let inner = self.inner.clone();
        let id = id.clone();
        let reason = format!("{reason}\n");
        tokio::task::spawn_blocking(move || {
            let from = inner.entry_path(&id);
            let to = inner
                .quarantine
                .join(format!("{}{ENTRY_SUFFIX}", id.as_str()));
            // The reason first: an entry in quarantine without one is still reported.
            let reason_path = inner
                .quarantine
                .join(format!("{}{REASON_SUFFIX}", id.as_str()));
            let temporary = inner.quarantine.join(format!(
                "{TEMPORARY_PREFIX}{}.{}",
                inner.instance,
                id.as_str()
            ));
            if let Err(error) = write_and_rename(&temporary, &reason_path, reason.as_bytes()) {
                tracing::warn!(entry = %id, %error, "cannot write the quarantine reason");
            }
            fs::rename(&from, &to).map_err(|error| {
                StoreError::io(
                    format!("cannot move {} to {}", from.display(), to.display()),
                    error,
                )
            })?;
            inner.entries_waiting_decrement();
            sync_directory(&inner.quarantine)?;
            sync_directory(&inner.inbound)
        })
        .await
        .map_err(|error| StoreError::Refused(format!("spool task failed: {error}")))?
    }

    /// Every entry, waiting and quarantined, from the file names (entries are not read).
    pub fn list(&self) -> StoreResult<Vec<SpoolListing>> {
        let mut listings = Vec::new();
        for (folder, state) in [
            (&self.inner.inbound, SpoolState::Waiting),
            (&self.inner.quarantine, SpoolState::Quarantined),
        ] {
            for (id, bytes) in self.inner.entry_files(folder)? {
                let reason = (state == SpoolState::Quarantined)
                    .then(|| {
                        fs::read_to_string(folder.join(format!("{}{REASON_SUFFIX}", id.as_str())))
                            .ok()
                    })
                    .flatten()
                    .map(|reason| reason.trim_end().to_owned());
                listings.push(SpoolListing {
                    spooled_unix_ms: id.spooled_unix_ms(),
                    id,
                    state,
                    bytes,
                    reason,
                });
            }
        }
        listings.sort_by(|left, right| left.id.cmp(&right.id));
        Ok(listings)
    }

    /// Removes the temporary files other processes left (killed mid-write: never
    /// acknowledged, so nothing is lost). Returns how many.
    pub fn remove_stale_temporaries(&self) -> StoreResult<u64> {
        let own_prefix = format!("{TEMPORARY_PREFIX}{}.", self.inner.instance);
        let mut removed = 0;
        for folder in [&self.inner.inbound, &self.inner.quarantine] {
            for file in read_folder(folder)? {
                let name = file.file_name().to_string_lossy().into_owned();
                if name.starts_with(TEMPORARY_PREFIX) && !name.starts_with(&own_prefix) {
                    fs::remove_file(file.path()).map_err(|error| {
                        StoreError::io(format!("cannot remove {}", file.path().display()), error)
                    })?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    pub fn depth(&self) -> SpoolDepth {
        SpoolDepth {
            entries_waiting: self.inner.entries_waiting.load(Ordering::Relaxed),
            bytes_used: self.inner.bytes_used.load(Ordering::Relaxed),
        }
    }

    /// Counts what the folders hold (at open; the counts are kept up to date afterwards).
    fn recount(&self) -> StoreResult<()> {
        let waiting = self.inner.entry_files(&self.inner.inbound)?;
        let quarantined = self.inner.entry_files(&self.inner.quarantine)?;
        let bytes: u64 = waiting
            .iter()
            .chain(&quarantined)
            .map(|(_, bytes)| bytes)
            .sum();
        self.inner.bytes_used.store(bytes, Ordering::Relaxed);
        self.inner
            .entries_waiting
            .store(waiting.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Counts `length` against the maximum, or refuses.
    fn reserve(&self, length: u64) -> Result<(), SpoolError> {
        let before = self.inner.bytes_used.fetch_add(length, Ordering::Relaxed);
        if before.saturating_add(length) > self.inner.bytes_max {
            self.inner.bytes_used.fetch_sub(length, Ordering::Relaxed);
            return Err(SpoolError::Full {
                bytes_used: before,
                bytes_requested: length,
                bytes_max: self.inner.bytes_max,
            });
        }
        Ok(())
    }
}

impl SpoolInner {
    fn entry_path(&self, id: &SpoolEntryId) -> PathBuf {
        self.inbound.join(format!("{}{ENTRY_SUFFIX}", id.as_str()))
    }

    fn write_entry(&self, id: &SpoolEntryId, encoded: &[u8]) -> Result<(), SpoolError> {
        let final_path = self.entry_path(id);
        let temporary_path = self.inbound.join(format!(
            "{TEMPORARY_PREFIX}{}.{}",
            self.instance,
            id.as_str()
        ));
        if final_path.exists() {
            // Ids carry the time and a random transaction id; a clash is a caller's bug, and
            // the rename would silently replace the other entry.
            return Err(SpoolError::io(
                format!("{} exists already", final_path.display()),
                std::io::ErrorKind::AlreadyExists.into(),
            ));
        }
        write_and_rename(&temporary_path, &final_path, encoded).map_err(|error| {
            SpoolError::io(format!("cannot write {}", final_path.display()), error)
        })?;
        if let Err(error) = sync_directory(&self.inbound) {
            // Not known durable, so not acknowledged: take it back, or a client's retry would
            // be delivered besides it.
            let _ = fs::remove_file(&final_path);
            return Err(error.into());
        }
        Ok(())
    }

    /// The entries in `folder` with their sizes; other names are skipped.
    fn entry_files(&self, folder: &Path) -> StoreResult<Vec<(SpoolEntryId, u64)>> {
        let mut entries = Vec::new();
        for file in read_folder(folder)? {
            let name = file.file_name().to_string_lossy().into_owned();
            let Some(id) = name
                .strip_suffix(ENTRY_SUFFIX)
                .and_then(SpoolEntryId::parse)
            else {
                continue;
            };
            let bytes = file.metadata().map(|metadata| metadata.len()).unwrap_or(0);
            entries.push((id, bytes));
        }
        Ok(entries)
    }

    fn release(&self, length: u64) {
        let _ = self
            .bytes_used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(length))
            });
    }

    fn entries_waiting_decrement(&self) {
        let _ = self
            .entries_waiting
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |count| {
                Some(count.saturating_sub(1))
            });
    }
}

fn read_folder(folder: &Path) -> StoreResult<Vec<fs::DirEntry>> {
    let entries = fs::read_dir(folder)
        .map_err(|error| StoreError::io(format!("cannot list {}", folder.display()), error))?;
    Ok(entries.flatten().collect())
}

/// The length of the longest suffix every raw message shares.
fn shared_suffix_length(raws: &[&[u8]]) -> usize {
    let Some((first, rest)) = raws.split_first() else {
        return 0;
    };
    let mut length = first.len();
    for raw in rest {
        length = common_suffix_length(&first[first.len() - length..], raw);
    }
    length
}

/// How many final bytes `left` and `right` share, compared a block at a time (the copies of a
/// large message share megabytes).
fn common_suffix_length(left: &[u8], right: &[u8]) -> usize {
    const BLOCK_BYTES: usize = 4096;
    let limit = left.len().min(right.len());
    let mut shared = 0;
    while shared < limit {
        let step = BLOCK_BYTES.min(limit - shared);
        let left_block = &left[left.len() - shared - step..left.len() - shared];
        let right_block = &right[right.len() - shared - step..right.len() - shared];
        if left_block == right_block {
            shared += step;
            continue;
        }
        let matching = left_block
            .iter()
            .rev()
            .zip(right_block.iter().rev())
            .take_while(|(left, right)| left == right)
            .count();
        return shared + matching;
    }
    shared
}

fn encode(
    id: &SpoolEntryId,
    transaction_id: &str,
    spooled_unix: i64,
    deliveries: &[Delivery<'_>],
) -> Result<Vec<u8>, SpoolError> {
    if deliveries.is_empty() || deliveries.len() > COPIES_PER_ENTRY_MAX {
        return Err(SpoolError::TooLarge(format!(
            "{} copies (1 to {COPIES_PER_ENTRY_MAX} allowed)",
            deliveries.len()
        )));
    }
    if let Some(delivery) = deliveries
        .iter()
        .find(|delivery| delivery.raw.len() > BLOB_BYTES_MAX)
    {
        return Err(SpoolError::TooLarge(format!(
            "a message of {} bytes (at most {BLOB_BYTES_MAX})",
            delivery.raw.len()
        )));
    }
    let raws: Vec<&[u8]> = deliveries.iter().map(|delivery| delivery.raw).collect();
    let suffix_length = shared_suffix_length(&raws);
    let suffix = &raws[0][raws[0].len() - suffix_length..];
    let prefixes_bytes: usize = raws.iter().map(|raw| raw.len() - suffix_length).sum();
    let keywords: Vec<String> = deliveries
        .iter()
        .map(|delivery| delivery.flags.keywords_text())
        .collect();
    let transaction_id = &transaction_id[..transaction_id.len().min(u16::MAX as usize)];
    let body_bytes = 2
        + id.as_str().len()
        + 2
        + transaction_id.len()
        + 8
        + 8
        + suffix.len()
        + 4
        + deliveries.len() * (8 + 8 + 1 + 8 + 1 + 4 + 8)
        + keywords.iter().map(String::len).sum::<usize>()
        + prefixes_bytes;
    let total_bytes = HEADER_BYTES + body_bytes + CHECKSUM_BYTES;
    if total_bytes as u64 > ENTRY_BYTES_MAX {
        return Err(SpoolError::TooLarge(format!(
            "{total_bytes} bytes (at most {ENTRY_BYTES_MAX})"
        )));
    }
    if keywords
        .iter()
        .any(|keywords| keywords.len() as u64 > KEYWORDS_OCTETS_MAX)
    {
        return Err(SpoolError::TooLarge("a keyword list too long".to_owned()));
    }
    let mut out = Vec::with_capacity(total_bytes);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(body_bytes as u64).to_le_bytes());
    put_short_text(&mut out, id.as_str());
    put_short_text(&mut out, transaction_id);
    out.extend_from_slice(&spooled_unix.to_le_bytes());
    out.extend_from_slice(&(suffix.len() as u64).to_le_bytes());
    out.extend_from_slice(suffix);
    out.extend_from_slice(&(deliveries.len() as u32).to_le_bytes());
    for ((delivery, raw), keywords) in deliveries.iter().zip(&raws).zip(&keywords) {
        out.extend_from_slice(&delivery.account.to_le_bytes());
        out.extend_from_slice(&delivery.mailbox.to_le_bytes());
        out.push(u8::from(delivery.internal_date_unix.is_some()));
        out.extend_from_slice(&delivery.internal_date_unix.unwrap_or(0).to_le_bytes());
        out.push(delivery.flags.system.0);
        out.extend_from_slice(&(keywords.len() as u32).to_le_bytes());
        out.extend_from_slice(keywords.as_bytes());
        let prefix = &raw[..raw.len() - suffix_length];
        out.extend_from_slice(&(prefix.len() as u64).to_le_bytes());
        out.extend_from_slice(prefix);
    }
    debug_assert_eq!(out.len(), HEADER_BYTES + body_bytes);
    let checksum = blake3::hash(&out);
    out.extend_from_slice(checksum.as_bytes());
    Ok(out)
}

fn put_short_text(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// Reads an entry back; every length is checked before it is used.
fn decode(bytes: &[u8]) -> Result<SpoolEntry, SpoolError> {
    let corrupt = |why: String| SpoolError::Corrupt(why);
    if bytes.len() < HEADER_BYTES + CHECKSUM_BYTES {
        return Err(corrupt(format!(
            "{} bytes, shorter than a header and checksum (torn write?)",
            bytes.len()
        )));
    }
    if &bytes[..8] != MAGIC {
        return Err(corrupt("not a spool entry (bad magic)".to_owned()));
    }
    let mut header = Reader::new(&bytes[8..HEADER_BYTES]);
    let version = header.u16()?;
    if version != FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {version}, this tme reads version {FORMAT_VERSION}"
        )));
    }
    let _reserved = header.u16()?;
    let body_bytes = header.u64()?;
    let expected_bytes = (HEADER_BYTES + CHECKSUM_BYTES) as u64 + body_bytes;
    if bytes.len() as u64 != expected_bytes {
        return Err(corrupt(format!(
            "{} bytes where the header announces {expected_bytes} (torn write?)",
            bytes.len()
        )));
    }
    let (content, checksum) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
    if blake3::hash(content).as_bytes() != checksum {
        return Err(corrupt("checksum mismatch".to_owned()));
    }
    let mut body = Reader::new(&content[HEADER_BYTES..]);
    let id_text = body.text_u16()?;
    let id = SpoolEntryId::parse(&id_text)
        .ok_or_else(|| corrupt(format!("bad entry id {id_text:?}")))?;
    let transaction_id = body.text_u16()?;
    let spooled_unix = body.i64()?;
    let suffix_length = body.length_u64(BLOB_BYTES_MAX as u64)?;
    let shared_suffix = body.take(suffix_length)?.to_vec();
    let copy_count = body.u32()? as usize;
    if copy_count == 0 || copy_count > COPIES_PER_ENTRY_MAX {
        return Err(corrupt(format!("{copy_count} copies")));
    }
    let mut copies = Vec::with_capacity(copy_count);
    for _ in 0..copy_count {
        let account = body.i64()?;
        let mailbox = body.i64()?;
        let has_internal_date = body.u8()?;
        let internal_date = body.i64()?;
        let internal_date_unix = match has_internal_date {
            0 => None,
            1 => Some(internal_date),
            other => return Err(corrupt(format!("internal date marker {other}"))),
        };
        let system_flags = body.u8()?;
        let keywords_length = body.length_u32(KEYWORDS_OCTETS_MAX)?;
        let keywords = std::str::from_utf8(body.take(keywords_length)?)
            .map_err(|_| corrupt("keywords are not UTF-8".to_owned()))?;
        let prefix_length = body.length_u64(BLOB_BYTES_MAX as u64)?;
        let prefix = body.take(prefix_length)?.to_vec();
        if prefix.len() + shared_suffix.len() > BLOB_BYTES_MAX {
            return Err(corrupt("a copy larger than a message may be".to_owned()));
        }
        copies.push(SpooledCopy {
            account,
            mailbox,
            internal_date_unix,
            flags: Flags::from_stored(i64::from(system_flags), keywords),
            prefix,
        });
    }
    if !body.is_empty() {
        return Err(corrupt("bytes after the last copy".to_owned()));
    }
    Ok(SpoolEntry {
        id,
        transaction_id,
        spooled_unix,
        copies,
        shared_suffix,
    })
}

/// A cursor over bytes that reports, instead of panicking, when they run out.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, position: 0 }
    }

    fn is_empty(&self) -> bool {
        self.position == self.bytes.len()
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8], SpoolError> {
        let end = self
            .position
            .checked_add(length)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| {
                SpoolError::Corrupt(format!(
                    "a field of {length} bytes runs past the end at offset {}",
                    self.position
                ))
            })?;
        let taken = &self.bytes[self.position..end];
        self.position = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SpoolError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8, SpoolError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, SpoolError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, SpoolError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, SpoolError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, SpoolError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn length_u64(&mut self, maximum: u64) -> Result<usize, SpoolError> {
        let length = self.u64()?;
        usize::try_from(length)
            .ok()
            .filter(|_| length <= maximum)
            .ok_or_else(|| SpoolError::Corrupt(format!("a length of {length} (at most {maximum})")))
    }

    fn length_u32(&mut self, maximum: u64) -> Result<usize, SpoolError> {
        let length = u64::from(self.u32()?);
        usize::try_from(length)
            .ok()
            .filter(|_| length <= maximum)
            .ok_or_else(|| SpoolError::Corrupt(format!("a length of {length} (at most {maximum})")))
    }

    fn text_u16(&mut self) -> Result<String, SpoolError> {
        let length = usize::from(self.u16()?);
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| SpoolError::Corrupt("a text field is not UTF-8".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deliveries<'a>(raws: &'a [Vec<u8>], flags: &'a Flags) -> Vec<Delivery<'a>> {
        raws.iter()
            .enumerate()
            .map(|(index, raw)| Delivery {
                account: index as i64 + 1,
                mailbox: index as i64 + 10,
                raw,
                internal_date_unix: (index % 2 == 0).then_some(1_700_000_000 + index as i64),
                flags,
            })
            .collect()
    }

    fn copies_of(entry: &SpoolEntry) -> Vec<Vec<u8>> {
        entry.copies.iter().map(|copy| entry.raw(copy)).collect()
    }

    fn sample() -> (Vec<Vec<u8>>, Flags) {
        let body = [
            b"Subject: hello\r\n\r\n".as_slice(),
            "a line of the body\r\n".repeat(200).as_bytes(),
        ]
        .concat();
        let raws = vec![
            [b"Delivered-To: a@example.com\r\n".as_slice(), &body].concat(),
            [b"Delivered-To: bb@example.com\r\n".as_slice(), &body].concat(),
            [b"Delivered-To: c@example.com\r\n".as_slice(), &body].concat(),
        ];
        let flags = Flags::parse(["\\Seen", "$Junk"]).expect("flags");
        (raws, flags)
    }

    #[tokio::test]
    async fn round_trips_every_field_and_stores_the_message_once() {
        let directory = tempfile::tempdir().expect("tempdir");
        let spool = InboundSpool::open(directory.path(), 1 << 20).expect("open");
        let (raws, flags) = sample();
        let id = spool
            .put("0123456789ABCDEF", &deliveries(&raws, &flags))
            .await
            .expect("put");
        assert!(id.as_str().ends_with("-0123456789ABCDEF"), "{id}");
        assert_eq!(spool.depth().entries_waiting, 1);
        assert_eq!(spool.waiting().await.expect("waiting"), vec![id.clone()]);
        let entry = spool.read(&id).await.expect("read");
        assert_eq!(entry.id, id);
        assert_eq!(entry.transaction_id, "0123456789ABCDEF");
        assert_eq!(copies_of(&entry), raws);
        for (index, copy) in entry.copies.iter().enumerate() {
            assert_eq!(copy.account, index as i64 + 1);
            assert_eq!(copy.mailbox, index as i64 + 10);
            assert_eq!(
                copy.internal_date_unix,
                (index % 2 == 0).then_some(1_700_000_000 + index as i64)
            );
            assert_eq!(copy.flags, flags);
        }
        // The shared message is stored once: the file is about one copy plus the prefixes.
        let on_disk = spool.depth().bytes_used;
        assert!(on_disk < raws[0].len() as u64 + 400, "{on_disk}");
        spool.remove(&id).await.expect("remove");
        assert_eq!(spool.depth(), SpoolDepth::default());
        assert!(spool.waiting().await.expect("waiting").is_empty());
    }

    #[test]
    fn the_shared_suffix_is_found_across_blocks() {
        let body = "x".repeat(10_000).into_bytes();
        let first = [b"A: 1\r\n".as_slice(), &body].concat();
        let second = [b"B: 22\r\n".as_slice(), &body].concat();
        let third = [b"\n".as_slice(), &body].concat();
        assert_eq!(
            shared_suffix_length(&[&first, &second, &third]),
            body.len() + 1
        );
        assert_eq!(shared_suffix_length(&[&first]), first.len());
        assert_eq!(shared_suffix_length(&[&first, b"y"]), 0);
        assert_eq!(shared_suffix_length(&[]), 0);
    }

    #[test]
    fn copies_that_share_nothing_round_trip_too() {
        let raws = vec![b"abc".to_vec(), b"xyz".to_vec(), Vec::new()];
        let flags = Flags::default();
        let id = SpoolEntryId::new(1, "T");
        let encoded = encode(&id, "T", 1, &deliveries(&raws, &flags)).expect("encode");
        assert_eq!(copies_of(&decode(&encoded).expect("decode")), raws);
    }

    /// Every way an entry can be damaged is reported as `Corrupt`, never a panic.
    #[test]
    fn damaged_entries_are_reported_not_panicked_on() {
        let (raws, flags) = sample();
        let id = SpoolEntryId::new(1_700_000_000_000, "ABC");
        let encoded = encode(&id, "ABC", 1, &deliveries(&raws, &flags)).expect("encode");
        assert!(decode(&encoded).is_ok());
        let check = |bytes: &[u8], expected: &str| match decode(bytes) {
            Err(SpoolError::Corrupt(why)) => assert!(why.contains(expected), "{why}"),
            other => panic!("expected Corrupt({expected}), got {other:?}"),
        };
        // Torn writes: every prefix of the file.
        for length in 0..encoded.len() {
            assert!(
                matches!(decode(&encoded[..length]), Err(SpoolError::Corrupt(_))),
                "a file cut at {length} bytes"
            );
        }
        check(&encoded[..encoded.len() - 1], "torn write");
        check(&encoded[..10], "torn write");
        // A flipped bit anywhere.
        for position in [0, 9, HEADER_BYTES + 3, encoded.len() / 2, encoded.len() - 1] {
            let mut flipped = encoded.clone();
            flipped[position] ^= 0x20;
            assert!(
                matches!(decode(&flipped), Err(SpoolError::Corrupt(_))),
                "a bit flipped at {position}"
            );
        }
        let mut flipped = encoded.clone();
        flipped[encoded.len() / 2] ^= 1;
        check(&flipped, "checksum mismatch");
        // A future format version.
        let mut newer = encoded.clone();
        newer[8] = 2;
        check(&newer, "format version 2");
        // Lengths that lie, with a checksum that matches them: checked, not trusted.
        let mut lying = encoded[..encoded.len() - CHECKSUM_BYTES].to_vec();
        let suffix_length_at = HEADER_BYTES + 2 + id.as_str().len() + 2 + 3 + 8;
        lying[suffix_length_at..suffix_length_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        let checksum = blake3::hash(&lying);
        lying.extend_from_slice(checksum.as_bytes());
        check(&lying, "a length of");
    }

    #[tokio::test]
    async fn an_unreadable_entry_is_quarantined_and_listed() {
        let directory = tempfile::tempdir().expect("tempdir");
        let spool = InboundSpool::open(directory.path(), 1 << 20).expect("open");
        let (raws, flags) = sample();
        let id = spool
            .put("T1", &deliveries(&raws, &flags))
            .await
            .expect("put");
        let path = directory.path().join("inbound").join(format!("{id}.entry"));
        let bytes = fs::read(&path).expect("read");
        fs::write(&path, &bytes[..bytes.len() / 2]).expect("tear");
        let Err(SpoolError::Corrupt(why)) = spool.read(&id).await else {
            panic!("a torn entry reads as corrupt");
        };
        spool.quarantine(&id, &why).await.expect("quarantine");
        assert!(spool.waiting().await.expect("waiting").is_empty());
        assert_eq!(spool.depth().entries_waiting, 0);
        let listed = spool.list().expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].state, SpoolState::Quarantined);
        assert!(
            listed[0]
                .reason
                .as_deref()
                .is_some_and(|reason| reason.contains("torn write")),
            "{listed:?}"
        );
        // Reopened, the counts come from the files.
        let reopened = InboundSpool::open(directory.path(), 1 << 20).expect("reopen");
        assert_eq!(reopened.depth().entries_waiting, 0);
        assert_eq!(reopened.depth().bytes_used, (bytes.len() / 2) as u64);
    }

    #[tokio::test]
    async fn a_full_spool_refuses_and_keeps_nothing() {
        let directory = tempfile::tempdir().expect("tempdir");
        let spool = InboundSpool::open(directory.path(), 200).expect("open");
        let (raws, flags) = sample();
        let result = spool.put("T", &deliveries(&raws, &flags)).await;
        assert!(matches!(result, Err(SpoolError::Full { .. })), "{result:?}");
        assert_eq!(spool.depth(), SpoolDepth::default());
        assert!(spool.list().expect("list").is_empty());
    }

    #[tokio::test]
    async fn stale_temporaries_of_other_processes_are_removed() {
        let directory = tempfile::tempdir().expect("tempdir");
        let spool = InboundSpool::open(directory.path(), 1 << 20).expect("open");
        let inbound = directory.path().join("inbound");
        fs::write(inbound.join("tmp.0000000000000000.1-T"), b"half").expect("write");
        let own = inbound.join(format!("tmp.{}.2-T", spool.inner.instance));
        fs::write(&own, b"in flight").expect("write");
        assert_eq!(spool.remove_stale_temporaries().expect("clean"), 1);
        assert!(own.exists());
        assert!(spool.list().expect("list").is_empty());
    }
}
