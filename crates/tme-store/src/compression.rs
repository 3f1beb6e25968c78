//! zstd decompression of the store's compressed bytes (blob bodies, message summaries) into a
//! buffer of exactly the expected size, with one decompression context kept per thread.
//!
//! `zstd::bulk::decompress` makes a new context (about 100 KiB) and a buffer of the given
//! capacity for every call; for summaries read by the thousand that meant an `mmap` and a
//! `munmap` per summary. This module owns neither what is compressed nor the limits: callers
//! say how large the result may be.

use std::cell::RefCell;

thread_local! {
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// Decompresses one zstd frame whose decoded size must be exactly `expected_bytes`, or, when
/// `expected_bytes` is None, whatever size its header records, up to `bytes_max`. None when
/// the frame is damaged, records no size, or decodes to another size than expected.
pub(crate) fn decompress_exact(
    compressed: &[u8],
    expected_bytes: Option<usize>,
    bytes_max: usize,
) -> Option<Vec<u8>> {
    let recorded = zstd::zstd_safe::get_frame_content_size(compressed).ok()??;
    let size = usize::try_from(recorded)
        .ok()
        .filter(|size| *size <= bytes_max)?;
    if expected_bytes.is_some_and(|expected| expected != size) {
        return None;
    }
    let mut decoded = Vec::with_capacity(size);
    let written = DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new().ok()?);
        }
        slot.as_mut()?
            .decompress_to_buffer(compressed, &mut decoded)
            .ok()
    })?;
    (written == size).then_some(decoded)
}

#[cfg(test)]
mod tests {
    use super::decompress_exact;

    #[test]
    fn decodes_only_frames_of_the_expected_size() {
        let raw = b"a summary, a summary, a summary, a summary".repeat(40);
        let compressed = zstd::bulk::compress(&raw, 3).expect("compress");
        assert_eq!(
            decompress_exact(&compressed, None, raw.len()).as_deref(),
            Some(&raw[..])
        );
        assert_eq!(
            decompress_exact(&compressed, Some(raw.len()), usize::MAX).as_deref(),
            Some(&raw[..])
        );
        // Twice on one thread: the kept context is reused.
        assert!(decompress_exact(&compressed, Some(raw.len()), usize::MAX).is_some());
        assert_eq!(
            decompress_exact(&compressed, Some(raw.len() - 1), usize::MAX),
            None
        );
        assert_eq!(decompress_exact(&compressed, None, raw.len() - 1), None);
        assert_eq!(
            decompress_exact(&compressed[..compressed.len() / 2], None, usize::MAX),
            None
        );
        assert_eq!(decompress_exact(b"not zstd at all", None, usize::MAX), None);
        // A frame that records a size its blocks do not decode to: the header of this one
        // (magic, descriptor and a 2-octet size, single segment) on the blocks of a shorter one.
        let other = zstd::bulk::compress(&raw[..raw.len() / 2], 3).expect("compress");
        let mut liar = compressed[..7].to_vec();
        liar.extend_from_slice(&other[7..]);
        assert_eq!(decompress_exact(&liar, None, usize::MAX), None);
    }
}
