//! Durable writes of whole files on local disk, shared by the blob store and the inbound
//! spool: write a temporary file beside the final name, fsync it, rename it into place, and
//! fsync the folder so the rename itself survives a crash. A reader never sees a half-written
//! file under a final name.
//!
//! Blocking file I/O only; it knows nothing of what the files hold.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use crate::error::{StoreError, StoreResult};

/// Writes `bytes` to `temporary_path`, fsyncs it and renames it to `final_path` (both in the
/// same folder). The temporary file is removed when any step fails. The folder's fsync is the
/// caller's, so a batch of files can share one (`sync_directory`).
pub(crate) fn write_and_rename(
    temporary_path: &Path,
    final_path: &Path,
    bytes: &[u8],
) -> io::Result<()> {
    let written = File::create(temporary_path).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| fs::rename(temporary_path, final_path));
    if renamed.is_err() {
        let _ = fs::remove_file(temporary_path);
    }
    renamed
}

/// Makes a folder's entries (a rename into it, a removal) durable.
pub(crate) fn sync_directory(directory: &Path) -> StoreResult<()> {
    File::open(directory)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| StoreError::io(format!("cannot fsync {}", directory.display()), error))
}
