//! Readers for the formats people migrate from: mbox files, Maildir folders (with Maildir++
//! subfolders) and folders of `.eml` files. Each yields messages byte for byte as stored, with
//! what the format says of flags, dates and folders. Reading only: storing is the import
//! command's job.

mod maildir;
mod mbox;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

pub use maildir::MaildirReader;
pub use mbox::MboxReader;

/// The largest message an import accepts; larger ones are skipped and reported.
pub const IMPORT_MESSAGE_BYTES_MAX: usize = tme_store::blob::BLOB_BYTES_MAX;

/// One message read from a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMessage {
    pub raw: Vec<u8>,
    /// The subfolder it came from, as a mailbox path below the import target (`Sent`,
    /// `Projects/2026`), or None for the top folder.
    pub folder: Option<String>,
    /// IMAP flag names the source recorded (`\Seen`, `\Flagged`...).
    pub flags: Vec<&'static str>,
    /// When the source says the message arrived; None to use its Date header.
    pub internal_date_unix: Option<i64>,
    /// Where it came from, for error messages (`file:line` or a path).
    pub origin: String,
}

/// A source of messages, with how much work it is for the progress bar.
pub trait Source: Iterator<Item = Result<SourceMessage>> {
    /// Total work units (bytes for an mbox, files for folders) and units done so far.
    fn progress(&self) -> (u64, u64);
    /// What kind of source this is, for the summary line.
    fn kind(&self) -> &'static str;
}

/// Opens `path` as whichever source it is.
pub fn open(path: &Path) -> Result<Box<dyn Source>> {
    let metadata =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if metadata.is_file() {
        return Ok(Box::new(MboxReader::open(path)?));
    }
    if !metadata.is_dir() {
        bail!(
            "{} is neither a file (mbox) nor a folder (Maildir or .eml files)",
            path.display()
        );
    }
    if path.join("cur").is_dir() || path.join("new").is_dir() {
        return Ok(Box::new(MaildirReader::open(path)?));
    }
    Ok(Box::new(EmlFolderReader::open(path)?))
}

/// Every `.eml` file below a folder, in path order, into the one target mailbox.
#[derive(Debug)]
pub struct EmlFolderReader {
    files: Vec<PathBuf>,
    next: usize,
}

impl EmlFolderReader {
    pub fn open(root: &Path) -> Result<EmlFolderReader> {
        let mut files = Vec::new();
        let mut pending = vec![root.to_path_buf()];
        while let Some(directory) = pending.pop() {
            for entry in std::fs::read_dir(&directory)
                .with_context(|| format!("cannot list {}", directory.display()))?
            {
                let path = entry?.path();
                if path.is_dir() {
                    pending.push(path);
                } else if path
                    .extension()
                    .is_some_and(|extension| extension.eq_ignore_ascii_case("eml"))
                {
                    files.push(path);
                }
            }
        }
        if files.is_empty() {
            bail!(
                "{} holds no .eml files and is not a Maildir (no cur/ or new/)",
                root.display()
            );
        }
        files.sort();
        Ok(EmlFolderReader { files, next: 0 })
    }
}

impl Iterator for EmlFolderReader {
    type Item = Result<SourceMessage>;

    fn next(&mut self) -> Option<Self::Item> {
        let path = self.files.get(self.next)?.clone();
        self.next += 1;
        Some(read_message_file(&path).map(|raw| SourceMessage {
            raw,
            folder: None,
            flags: Vec::new(),
            internal_date_unix: None,
            origin: path.display().to_string(),
        }))
    }
}

impl Source for EmlFolderReader {
    fn progress(&self) -> (u64, u64) {
        (self.files.len() as u64, self.next as u64)
    }

    fn kind(&self) -> &'static str {
        ".eml folder"
    }
}

/// Reads one message file, refusing one over the size limit before reading it.
pub(crate) fn read_message_file(path: &Path) -> Result<Vec<u8>> {
    let length = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if length > IMPORT_MESSAGE_BYTES_MAX as u64 {
        bail!(
            "{} is {length} bytes, over the {IMPORT_MESSAGE_BYTES_MAX}-byte limit",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}
