//! COMPRESS=DEFLATE (RFC 4978): the raw deflate (RFC 1951, no zlib header) streams of one
//! connection, once the client's COMPRESS was answered OK.
//!
//! `Deflate::compress` turns one batch of responses into deflate data ending in a sync flush
//! (RFC 4978 §4: the client must be able to read every response without waiting for more),
//! so IDLE's untagged responses and a tagged OK reach the client at once. `decompress` turns
//! what the client sent back into command bytes, as much as fits the caller's buffer, so
//! memory stays bounded however well the client's data compresses. A client that ends its
//! deflate stream or sends corrupt data gets the connection closed: there is no way back to
//! plain text on a connection (RFC 4978 §3).
//!
//! No I/O: the server feeds bytes in and writes what comes out.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The compression level: deflate's fast end. IMAP responses (headers, flags, lists of
/// numbers) compress well already at level 1, and the server's CPU is shared by every
/// connection.
const COMPRESSION_LEVEL: u32 = 1;

/// Why the client's deflate stream cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DeflateError {
    #[error("the client's deflate data is corrupt: {0}")]
    Corrupt(#[from] flate2::DecompressError),
    #[error("the client ended its deflate stream")]
    StreamEnded,
    #[error("our deflate stream failed: {0}")]
    Compress(#[from] flate2::CompressError),
}

/// Both directions of one connection's compression.
pub struct Deflate {
    compressor: Compress,
    decompressor: Decompress,
}

impl std::fmt::Debug for Deflate {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Deflate")
            .field("octets_in", &self.decompressor.total_in())
            .field("octets_out", &self.compressor.total_out())
            .finish()
    }
}

impl Default for Deflate {
    fn default() -> Self {
        Deflate::new()
    }
}

impl Deflate {
    pub fn new() -> Deflate {
        Deflate {
            // `false`: raw deflate, no zlib header or checksum (RFC 4978 §2).
            compressor: Compress::new(Compression::new(COMPRESSION_LEVEL), false),
            decompressor: Decompress::new(false),
        }
    }

    /// Appends `bytes` compressed and sync-flushed to `out`: everything up to here can be
    /// decompressed from what was appended.
    pub fn compress(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), DeflateError> {
        let mut consumed = 0usize;
        loop {
            // Room for the data (deflate's worst case is a little over its input) and the
            // flush marker; the loop goes round again only if the output filled up.
            out.reserve(bytes.len() - consumed + 64);
            let before = self.compressor.total_in();
            self.compressor
                .compress_vec(&bytes[consumed..], out, FlushCompress::Sync)?;
            consumed += usize::try_from(self.compressor.total_in() - before).unwrap_or(0);
            // The flush is complete when all input is in and the output did not fill up.
            if consumed >= bytes.len() && out.len() < out.capacity() {
                return Ok(());
            }
        }
    }

    /// Decompresses from `input` into `output`: how many octets of `input` it took and how
    /// many of `output` it filled. (0, 0) means it needs more input.
    pub fn decompress(
        &mut self,
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(usize, usize), DeflateError> {
        let (before_in, before_out) = (self.decompressor.total_in(), self.decompressor.total_out());
        let status = self
            .decompressor
            .decompress(input, output, FlushDecompress::None)?;
        let consumed = usize::try_from(self.decompressor.total_in() - before_in).unwrap_or(0);
        let produced = usize::try_from(self.decompressor.total_out() - before_out).unwrap_or(0);
        if status == Status::StreamEnd {
            return Err(DeflateError::StreamEnded);
        }
        Ok((consumed, produced))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inflates everything `compressed` holds, the way a client would.
    fn inflate_all(deflate: &mut Deflate, compressed: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut input = compressed;
        let mut buffer = [0u8; 7];
        loop {
            let (consumed, produced) = deflate
                .decompress(input, &mut buffer)
                .unwrap_or_else(|error| panic!("{error}"));
            input = &input[consumed..];
            out.extend_from_slice(&buffer[..produced]);
            if consumed == 0 && produced == 0 {
                return out;
            }
        }
    }

    #[test]
    fn each_batch_can_be_read_without_the_next() {
        let mut server = Deflate::new();
        let mut client = Deflate::new();
        let mut wire = Vec::new();
        for batch in [
            &b"* OK [CAPABILITY IMAP4rev2] ready\r\n"[..],
            b"* 3 EXISTS\r\n",
            b"",
            &b"* 1 FETCH (FLAGS (\\Seen))\r\n".repeat(1000),
        ] {
            wire.clear();
            server
                .compress(batch, &mut wire)
                .unwrap_or_else(|error| panic!("{error}"));
            // A sync flush ends every batch with the empty stored block 00 00 FF FF.
            assert!(wire.ends_with(&[0, 0, 0xff, 0xff]), "{wire:?}");
            assert_eq!(inflate_all(&mut client, &wire), batch);
        }
        // Repetitive responses shrink: 27,000 octets of FETCH lines to a few hundred.
        assert!(wire.len() < 1000, "{}", wire.len());
    }

    #[test]
    fn garbage_and_a_finished_stream_are_errors() {
        let mut server = Deflate::new();
        let mut buffer = [0u8; 64];
        assert!(matches!(
            server.decompress(&[0xff; 16], &mut buffer),
            Err(DeflateError::Corrupt(_))
        ));
        // A final empty block: the client ended its stream.
        let mut server = Deflate::new();
        let mut finished = Compress::new(Compression::new(1), false);
        let mut wire = Vec::with_capacity(64);
        finished
            .compress_vec(b"a", &mut wire, FlushCompress::Finish)
            .unwrap_or_else(|error| panic!("{error}"));
        assert!(matches!(
            server.decompress(&wire, &mut buffer),
            Err(DeflateError::StreamEnded)
        ));
    }
}
