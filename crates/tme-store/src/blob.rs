//! The blob store: raw messages as content-addressed files on local disk.
//!
//! A blob is named by the BLAKE3 hash of its raw bytes, so identical messages are stored once.
//! It is written durably before anything may refer to it: write a temporary file, fsync it,
//! rename it into place, fsync the directory. The file holds a small header and the bytes,
//! zstd-compressed when that makes them smaller; reading back checks length and hash, so a
//! corrupt file is reported, never served.
//!
//! Garbage collection and writers meet at a lock file: every writer holds a shared lock from
//! the moment it writes (or finds) a blob until the metadata that refers to it is committed,
//! and the collector holds the exclusive lock while it reads the set of referenced blobs and
//! deletes the rest. So a blob that a writer is about to refer to is never deleted, across
//! processes too (`tme import` beside `tme serve`).
//!
//! This module does blocking file I/O; async callers run it on a blocking thread. It knows
//! nothing of accounts or messages.

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::durable::{sync_directory, write_and_rename};
use crate::error::{StoreError, StoreResult};

/// The largest blob accepted: a message larger than this is refused before it is written.
pub const BLOB_BYTES_MAX: usize = 256 * 1024 * 1024;

const FILE_MAGIC: &[u8; 4] = b"TMEB";
const FILE_FORMAT_VERSION: u8 = 1;
const CODEC_RAW: u8 = 0;
const CODEC_ZSTD: u8 = 1;
/// magic, version, codec, raw length (u64 little-endian).
const FILE_HEADER_BYTES: usize = 4 + 1 + 1 + 8;
const ZSTD_LEVEL: i32 = 3;
/// Names of blobs being written; never a hex digit, so never taken for a blob.
const TEMPORARY_PREFIX: &str = "tmp.";
/// Compressed blobs of at least this many raw octets are decoded as they are read (a
/// decoder and its read buffer per read); smaller ones whole, with the thread's kept context.
const STREAMED_DECODE_BYTES_MIN: usize = 1024 * 1024;
/// Blobs smaller than this are stored raw: compression would gain less than a disk block.
const COMPRESSION_BYTES_MIN: usize = 512;

/// The BLAKE3 hash of a blob's raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId([u8; 32]);

impl BlobId {
    pub fn of(raw: &[u8]) -> BlobId {
        BlobId(*blake3::hash(raw).as_bytes())
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<BlobId> {
        Some(BlobId(bytes.try_into().ok()?))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<BlobId> {
        let bytes = hex::decode(text).ok()?;
        BlobId::from_bytes(&bytes)
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "BlobId({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_hex())
    }
}

/// Local content-addressed blob files under one root directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

/// Held by a writer from writing a blob until the metadata referring to it is committed.
#[derive(Debug)]
pub struct BlobWriteGuard {
    _lock: File,
}

/// Held by the garbage collector while it reads references and deletes.
#[derive(Debug)]
pub struct BlobCollectGuard {
    _lock: File,
}

/// What one garbage collection did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CollectReport {
    pub blobs_kept: u64,
    pub blobs_deleted: u64,
    pub bytes_deleted: u64,
}

impl BlobStore {
    /// Opens (creating if needed) the blob store at `root`.
    pub fn open(root: &Path) -> StoreResult<BlobStore> {
        fs::create_dir_all(root)
            .map_err(|error| StoreError::io(format!("cannot create {}", root.display()), error))?;
        let mut created_any = false;
        for prefix in 0..=255u8 {
            let directory = root.join(format!("{prefix:02x}"));
            if !directory.is_dir() {
                fs::create_dir(&directory).map_err(|error| {
                    StoreError::io(format!("cannot create {}", directory.display()), error)
                })?;
                created_any = true;
            }
        }
        if created_any {
            sync_directory(root)?;
        }
        let store = BlobStore {
            root: root.to_path_buf(),
        };
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock_file(&self) -> StoreResult<File> {
        let path = self.root.join("gc.lock");
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|error| StoreError::io(format!("cannot open {}", path.display()), error))
    }

    /// Takes the shared lock that keeps the collector away while a writer works.
    pub fn lock_for_write(&self) -> StoreResult<BlobWriteGuard> {
        let lock = self.lock_file()?;
        lock.lock_shared()
            .map_err(|error| StoreError::io("cannot lock the blob store", error))?;
        Ok(BlobWriteGuard { _lock: lock })
    }

    /// Takes the exclusive lock the collector needs; waits for writers in flight.
    pub fn lock_for_collect(&self) -> StoreResult<BlobCollectGuard> {
        let lock = self.lock_file()?;
        lock.lock()
            .map_err(|error| StoreError::io("cannot lock the blob store", error))?;
        Ok(BlobCollectGuard { _lock: lock })
    }

    /// `ROOT/ab/cdef…`: one level of 256 folders, made when the store is opened, so a write
    /// never has to create (and fsync) a folder.
    fn path_of(&self, id: &BlobId) -> PathBuf {
        let hex = id.to_hex();
        self.root.join(&hex[0..2]).join(&hex[2..])
    }

    pub fn exists(&self, id: &BlobId) -> bool {
        self.path_of(id).is_file()
    }

    /// Stores `raw` durably and returns its id. The caller holds a write guard until the
    /// metadata that refers to the blob is committed.
    pub fn put(&self, _guard: &BlobWriteGuard, raw: &[u8]) -> StoreResult<BlobId> {
        let ids = self.put_many(_guard, &[raw])?;
        ids.into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt("put wrote nothing".to_owned()))
    }

    /// Stores several blobs with one round of directory fsyncs: how import and a delivery to
    /// many recipients keep thousands of messages a second durable.
    pub fn put_many(&self, _guard: &BlobWriteGuard, raws: &[&[u8]]) -> StoreResult<Vec<BlobId>> {
        let mut ids = Vec::with_capacity(raws.len());
        let mut new_blobs: Vec<(BlobId, &[u8])> = Vec::new();
        let mut seen: HashSet<BlobId> = HashSet::new();
        for raw in raws {
            if raw.len() > BLOB_BYTES_MAX {
                return Err(StoreError::Refused(format!(
                    "message of {} bytes exceeds the limit of {BLOB_BYTES_MAX} bytes",
                    raw.len()
                )));
            }
            let id = BlobId::of(raw);
            ids.push(id);
            // Identical messages are kept once.
            if seen.insert(id) && !self.path_of(&id).is_file() {
                new_blobs.push((id, raw));
            }
        }
        // Compress and write each new blob to a temporary file in its own folder (so the
        // filesystem spreads the inodes over the folders), fsync it, then rename it into
        // place; then fsync the folders. Many fsyncs in flight at once let the filesystem
        // commit its journal for all of them together.
        parallel(&new_blobs, |(id, raw)| self.write_durably(id, raw))?;
        let pending: Vec<PathBuf> = new_blobs.iter().map(|(id, _)| self.path_of(id)).collect();
        let directories_to_sync: Vec<PathBuf> = pending
            .iter()
            .filter_map(|final_path| final_path.parent().map(Path::to_path_buf))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        parallel(&directories_to_sync, |directory| sync_directory(directory))?;
        Ok(ids)
    }

    /// Writes one blob under a temporary name in its folder, fsyncs it and renames it into
    /// place. The folder's own fsync is the caller's.
    fn write_durably(&self, id: &BlobId, raw: &[u8]) -> StoreResult<()> {
        let final_path = self.path_of(id);
        let folder = final_path.parent().unwrap_or(&self.root);
        let temporary_path = folder.join(format!(
            "{TEMPORARY_PREFIX}{}.{}.{}",
            &id.to_hex()[2..18],
            std::process::id(),
            rand::random::<u64>()
        ));
        encode(raw)
            .and_then(|encoded| write_and_rename(&temporary_path, &final_path, &encoded))
            .map_err(|error| {
                StoreError::io(
                    format!("cannot write blob {id} to {}", final_path.display()),
                    error,
                )
            })
    }

    /// Reads a blob back, checking its header, length and hash.
    pub fn get(&self, id: &BlobId) -> StoreResult<Vec<u8>> {
        let path = self.path_of(id);
        let mut file = File::open(&path).map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                StoreError::Corrupt(format!("blob {id} is referenced but missing"))
            } else {
                StoreError::io(format!("cannot open {}", path.display()), error)
            }
        })?;
        // Decoded straight from the file into a buffer of the message's size: a large
        // message costs its size once, not once encoded and once decoded (IMAP FETCH and
        // POP3 RETR serve from it).
        let raw = decode(&mut file)
            .map_err(|error| StoreError::io(format!("cannot read {}", path.display()), error))?
            .ok_or_else(|| {
                StoreError::Corrupt(format!("blob {id} has a damaged header or body"))
            })?;
        if BlobId::of(&raw) != *id {
            return Err(StoreError::Corrupt(format!(
                "blob {id} does not match its hash"
            )));
        }
        Ok(raw)
    }

    /// Deletes every blob not in `referenced`. The caller took the collect guard before it
    /// read `referenced` from the store.
    pub fn collect_garbage(
        &self,
        _guard: &BlobCollectGuard,
        referenced: &HashSet<BlobId>,
    ) -> StoreResult<CollectReport> {
        let mut report = CollectReport::default();
        let read = |path: &Path| {
            fs::read_dir(path)
                .map_err(|error| StoreError::io(format!("cannot list {}", path.display()), error))
        };
        for folder in read(&self.root)?.flatten() {
            let prefix = folder.file_name().to_string_lossy().into_owned();
            if prefix.len() != 2 || !folder.path().is_dir() {
                continue;
            }
            for blob in read(&folder.path())?.flatten() {
                let file_name = blob.file_name().to_string_lossy().into_owned();
                if file_name.starts_with(TEMPORARY_PREFIX) {
                    // No writer is in flight while the collector holds its lock: this was
                    // left by a process killed mid-write, and nothing refers to it.
                    let _ = fs::remove_file(blob.path());
                    continue;
                }
                let Some(id) = BlobId::from_hex(&format!("{prefix}{file_name}")) else {
                    continue;
                };
                if referenced.contains(&id) {
                    report.blobs_kept += 1;
                    continue;
                }
                let bytes = blob.metadata().map(|metadata| metadata.len()).unwrap_or(0);
                fs::remove_file(blob.path()).map_err(|error| {
                    StoreError::io(format!("cannot delete {}", blob.path().display()), error)
                })?;
                report.blobs_deleted += 1;
                report.bytes_deleted += bytes;
            }
        }
        Ok(report)
    }
}

fn encode(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoded = Vec::with_capacity(FILE_HEADER_BYTES + raw.len());
    encoded.extend_from_slice(FILE_MAGIC);
    encoded.push(FILE_FORMAT_VERSION);
    let compressed = if raw.len() >= COMPRESSION_BYTES_MIN {
        Some(zstd::bulk::compress(raw, ZSTD_LEVEL)?)
    } else {
        None
    };
    match compressed {
        Some(compressed) if compressed.len() < raw.len() => {
            encoded.push(CODEC_ZSTD);
            encoded.extend_from_slice(&(raw.len() as u64).to_le_bytes());
            encoded.extend_from_slice(&compressed);
        }
        _ => {
            encoded.push(CODEC_RAW);
            encoded.extend_from_slice(&(raw.len() as u64).to_le_bytes());
            encoded.extend_from_slice(raw);
        }
    }
    Ok(encoded)
}

/// Reads a blob file: Ok(None) when its header or body is damaged (a wrong magic, version or
/// codec, a length over `BLOB_BYTES_MAX`, a body that does not decode to that length).
fn decode(file: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; FILE_HEADER_BYTES];
    if let Err(error) = file.read_exact(&mut header) {
        return match error.kind() {
            std::io::ErrorKind::UnexpectedEof => Ok(None),
            _ => Err(error),
        };
    }
    if &header[0..4] != FILE_MAGIC || header[4] != FILE_FORMAT_VERSION {
        return Ok(None);
    }
    let mut length_bytes = [0u8; 8];
    length_bytes.copy_from_slice(&header[6..14]);
    let Some(raw_length) = usize::try_from(u64::from_le_bytes(length_bytes))
        .ok()
        .filter(|length| *length <= BLOB_BYTES_MAX)
    else {
        return Ok(None);
    };
    match header[5] {
        CODEC_RAW => {
            let mut raw = Vec::with_capacity(raw_length);
            // One octet more than the length, to see a body that is too long.
            file.take(raw_length as u64 + 1).read_to_end(&mut raw)?;
            Ok((raw.len() == raw_length).then_some(raw))
        }
        CODEC_ZSTD if raw_length < STREAMED_DECODE_BYTES_MIN => {
            // A compressed body is never longer than its raw length plus zstd's framing; one
            // octet more than that bound shows a body that is too long. Decoded whole with
            // the thread's kept context: no allocation beyond the two buffers.
            let bound = zstd::zstd_safe::compress_bound(raw_length) as u64 + 1;
            let mut compressed = Vec::new();
            file.take(bound).read_to_end(&mut compressed)?;
            // A body that does not decode to the recorded length is damage, like a wrong
            // length, not a failing disk.
            Ok(crate::compression::decompress_exact(
                &compressed,
                Some(raw_length),
                BLOB_BYTES_MAX,
            ))
        }
        CODEC_ZSTD => {
            // A large body is decoded as it is read, straight into a buffer of the recorded
            // length: the message costs its size once, not also its compressed size (or the
            // doublings of a buffer that grows to hold it).
            let mut file = FailureKept::new(file);
            let decoded = decode_zstd_exact(&mut file, raw_length);
            match (decoded, file.failure.take()) {
                // The file could not be read: a failing disk, reported as one.
                (_, Some(error)) => Err(error),
                // The file was read but does not decode to the recorded length: damage, like
                // a wrong length.
                (Err(_), None) => Ok(None),
                (Ok(raw), None) => Ok(raw),
            }
        }
        _ => Ok(None),
    }
}

/// A zstd body that must decode to exactly `raw_length` octets: Some(raw), or None when it
/// decodes to fewer or more. An error when it is not zstd, or when reading failed.
fn decode_zstd_exact(file: &mut impl Read, raw_length: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut decoder = zstd::stream::read::Decoder::new(file)?.single_frame();
    let mut raw = vec![0u8; raw_length];
    if let Err(error) = decoder.read_exact(&mut raw) {
        return match error.kind() {
            std::io::ErrorKind::UnexpectedEof => Ok(None),
            _ => Err(error),
        };
    }
    // One octet more than the length shows a frame that decodes to too much; one after the
    // frame, a body longer than its frame.
    let mut extra = [0u8; 1];
    if decoder.read(&mut extra)? != 0 {
        return Ok(None);
    }
    Ok((decoder.finish().read(&mut extra)? == 0).then_some(raw))
}

/// A reader that keeps the first error of the reader under it, so that an error of the
/// decoder above can be told apart from one of the file.
struct FailureKept<R> {
    inner: R,
    failure: Option<std::io::Error>,
}

impl<R> FailureKept<R> {
    fn new(inner: R) -> FailureKept<R> {
        FailureKept {
            inner,
            failure: None,
        }
    }
}

impl<R: Read> Read for FailureKept<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buffer) {
            Err(error) if error.kind() != std::io::ErrorKind::Interrupted => {
                let kind = error.kind();
                self.failure.get_or_insert(error);
                Err(kind.into())
            }
            result => result,
        }
    }
}

/// How many fsyncs a batch keeps in flight at once.
const SYNC_THREADS_MAX: usize = 16;

/// Runs `work` on every item, on up to `SYNC_THREADS_MAX` threads; the first error wins.
fn parallel<T: Sync>(items: &[T], work: impl Fn(&T) -> StoreResult<()> + Sync) -> StoreResult<()> {
    if items.len() <= 1 {
        return items.iter().try_for_each(&work);
    }
    let threads = items.len().min(SYNC_THREADS_MAX);
    let chunk_length = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk_length)
            .map(|chunk| scope.spawn(|| chunk.iter().try_for_each(&work)))
            .collect();
        handles.into_iter().try_for_each(|handle| {
            handle
                .join()
                .unwrap_or_else(|_| Err(StoreError::Corrupt("a sync thread panicked".to_owned())))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_deduplicates() {
        let directory = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(directory.path()).expect("open");
        let guard = store.lock_for_write().expect("lock");
        let small = b"Subject: hi\r\n\r\nhello\r\n".to_vec();
        let large = "All work and no play.\r\n".repeat(1000).into_bytes();
        let ids = store
            .put_many(&guard, &[&small, &large, &small])
            .expect("put");
        assert_eq!(ids[0], ids[2]);
        assert_eq!(store.get(&ids[0]).expect("get"), small);
        assert_eq!(store.get(&ids[1]).expect("get"), large);
        // Compressed on disk.
        let on_disk = fs::metadata(store.path_of(&ids[1]))
            .expect("metadata")
            .len();
        assert!(on_disk < large.len() as u64 / 4, "{on_disk}");
    }

    #[test]
    fn corrupt_file_is_reported() {
        let directory = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(directory.path()).expect("open");
        let guard = store.lock_for_write().expect("lock");
        let id = store.put(&guard, &b"x".repeat(100)).expect("put");
        fs::write(store.path_of(&id), b"TMEB\x01\x00\x64\0\0\0\0\0\0\0yyyy").expect("write");
        assert!(matches!(store.get(&id), Err(StoreError::Corrupt(_))));
        // A header cut short, a raw body longer than its length, a zstd body that does not
        // decode, a length over the maximum: damage, never served, never a panic.
        let mut too_long = b"TMEB\x01\x00\x02\0\0\0\0\0\0\0".to_vec();
        too_long.extend_from_slice(b"xxx");
        let mut bad_zstd = b"TMEB\x01\x01\x64\0\0\0\0\0\0\0".to_vec();
        bad_zstd.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff, 0xff]);
        let huge = b"TMEB\x01\x00\xff\xff\xff\xff\xff\xff\xff\x7f".to_vec();
        // zstd bodies that decode to fewer or more octets than the header's 100, or that
        // have something after their frame.
        let zstd_body = |raw: &[u8], after: &[u8]| {
            let mut file = b"TMEB\x01\x01\x64\0\0\0\0\0\0\0".to_vec();
            file.extend_from_slice(&zstd::bulk::compress(raw, 3).expect("compress"));
            file.extend_from_slice(after);
            file
        };
        let decodes_short = zstd_body(&b"x".repeat(99), b"");
        let decodes_long = zstd_body(&b"x".repeat(101), b"");
        let trailing = zstd_body(&b"x".repeat(100), b"more");
        for damaged in [
            b"TMEB\x01".to_vec(),
            too_long,
            bad_zstd,
            huge,
            decodes_short,
            decodes_long,
            trailing,
        ] {
            fs::write(store.path_of(&id), &damaged).expect("write");
            assert!(
                matches!(store.get(&id), Err(StoreError::Corrupt(_))),
                "{damaged:?}"
            );
        }
    }

    #[test]
    fn a_failing_read_is_an_error_not_damage() {
        /// The first 20 octets of a good zstd blob file, then a read error.
        struct FailingDisk(std::io::Cursor<Vec<u8>>);
        impl Read for FailingDisk {
            fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
                if self.0.position() >= 20 {
                    return Err(std::io::Error::other("disk failed"));
                }
                let end = buffer.len().min(20 - self.0.position() as usize);
                self.0.read(&mut buffer[..end])
            }
        }
        // Both ways of decoding: whole (small) and as read (large).
        for length in [3_300, STREAMED_DECODE_BYTES_MIN + 33] {
            let raw = b"a message, a message, a message. ".repeat(length / 33);
            let encoded = encode(&raw).expect("encode");
            assert_eq!(encoded[5], CODEC_ZSTD);
            assert_eq!(decode(&mut &encoded[..]).expect("decode"), Some(raw));
            let error = decode(&mut FailingDisk(std::io::Cursor::new(encoded))).expect_err("error");
            assert_eq!(error.to_string(), "disk failed");
        }
    }

    #[test]
    fn large_zstd_bodies_must_decode_to_their_length() {
        let length = STREAMED_DECODE_BYTES_MIN + 10;
        let file = |recorded: usize, raw_length: usize, after: &[u8]| {
            let mut file = FILE_MAGIC.to_vec();
            file.extend_from_slice(&[FILE_FORMAT_VERSION, CODEC_ZSTD]);
            file.extend_from_slice(&(recorded as u64).to_le_bytes());
            let raw: Vec<u8> = (0..raw_length)
                .map(|index| b"0123456789"[index % 10])
                .collect();
            file.extend_from_slice(&zstd::bulk::compress(&raw, 3).expect("compress"));
            file.extend_from_slice(after);
            file
        };
        let decoded = decode(&mut &file(length, length, b"")[..]).expect("decode");
        assert_eq!(decoded.map(|raw| raw.len()), Some(length));
        for damaged in [
            file(length, length - 10, b""),
            file(length, length + 10, b""),
            file(length, length, b"more"),
            file(length, length, &[0x28, 0xb5, 0x2f, 0xfd, 0xff]),
        ] {
            assert_eq!(decode(&mut &damaged[..]).expect("no read error"), None);
        }
        let mut cut = file(length, length, b"");
        cut.truncate(cut.len() / 2);
        assert_eq!(decode(&mut &cut[..]).expect("no read error"), None);
    }

    #[test]
    fn collector_keeps_referenced_blobs() {
        let directory = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(directory.path()).expect("open");
        let kept;
        let dropped;
        {
            let guard = store.lock_for_write().expect("lock");
            kept = store.put(&guard, b"keep me").expect("put");
            dropped = store.put(&guard, b"drop me").expect("put");
        }
        let guard = store.lock_for_collect().expect("lock");
        let report = store
            .collect_garbage(&guard, &HashSet::from([kept]))
            .expect("collect");
        assert_eq!((report.blobs_kept, report.blobs_deleted), (1, 1));
        // A temporary file left by a killed writer goes too.
        let stale = store.path_of(&kept).with_file_name("tmp.0123.1.2");
        fs::write(&stale, b"half").expect("write");
        store
            .collect_garbage(&guard, &HashSet::from([kept]))
            .expect("collect");
        assert!(!stale.exists());
        assert!(store.exists(&kept));
        assert!(!store.exists(&dropped));
    }
}
