//! One message's FETCH response on its way to the client: the response's text, and the
//! octets of its literals, which stay where they are (a range of the message's raw bytes,
//! or octets made for the answer) until the server writes them.
//!
//! `fill` hands out the response in pieces of about `tme_net::WRITE_CHUNK_OCTETS`, so a
//! FETCH of a large message costs the message (read once from its blob) and one piece of
//! output, never a copy of the message in a response buffer; and the server writes each
//! message's response before the session loads the next message, so `FETCH 1:* BODY[]`
//! holds one message at a time, not the mailbox.
//!
//! It does no I/O and decides nothing about what a response says (the session does).

use std::collections::VecDeque;

use crate::render::SectionBytes;

/// The most octets `fill` adds to its output per call (plus at most one text piece, which
/// is short: a FETCH item's name and a literal's length).
pub const CHUNK_OCTETS: usize = tme_net::WRITE_CHUNK_OCTETS;

/// One message's untagged FETCH response, ready to be written.
#[derive(Debug, Default)]
pub struct FetchOutput {
    /// The message the literals' ranges are of (empty when no item needs it).
    raw: Vec<u8>,
    pieces: VecDeque<Piece>,
    /// Octets of the first piece written already.
    written: usize,
}

#[derive(Debug)]
enum Piece {
    Text(Vec<u8>),
    Literal(SectionBytes),
}

impl FetchOutput {
    /// A response whose literals are ranges of `raw`.
    pub fn new(raw: Vec<u8>) -> FetchOutput {
        FetchOutput {
            raw,
            pieces: VecDeque::new(),
            written: 0,
        }
    }

    /// Response text, written as it is.
    pub fn text(&mut self, bytes: &[u8]) {
        if let Some(Piece::Text(last)) = self.pieces.back_mut() {
            last.extend_from_slice(bytes);
        } else {
            self.pieces.push_back(Piece::Text(bytes.to_vec()));
        }
    }

    /// A literal: `{N}` CRLF and the section's octets (`~{N}`, a literal8, when `binary`
    /// says so; RFC 3516 §4.2).
    pub fn literal(&mut self, bytes: SectionBytes, binary: bool) {
        let marker = if binary { "~" } else { "" };
        self.text(format!("{marker}{{{}}}\r\n", bytes.len()).as_bytes());
        self.pieces.push_back(Piece::Literal(bytes));
    }

    /// The raw message, for what is decided from its octets (whether a BINARY part holds
    /// NUL).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Appends the next piece of the response (at most about `CHUNK_OCTETS`) to `out`;
    /// returns whether the whole response has been handed out.
    pub fn fill(&mut self, out: &mut Vec<u8>) -> bool {
        let budget_end = out.len() + CHUNK_OCTETS;
        while out.len() < budget_end {
            let Some(piece) = self.pieces.front() else {
                break;
            };
            let bytes: &[u8] = match piece {
                Piece::Text(text) => text,
                Piece::Literal(section) => section.of(&self.raw),
            };
            let rest = &bytes[self.written.min(bytes.len())..];
            let take = rest.len().min(budget_end - out.len());
            out.extend_from_slice(&rest[..take]);
            if take == rest.len() {
                self.pieces.pop_front();
                self.written = 0;
            } else {
                self.written += take;
            }
        }
        self.pieces.is_empty()
    }

    /// The whole response at once (for tests and small responses).
    pub fn fill_all(&mut self, out: &mut Vec<u8>) {
        while !self.fill(out) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_literal_goes_out_in_chunks_from_the_message() {
        let raw: Vec<u8> = (0..(3 * CHUNK_OCTETS + 17))
            .map(|index| (index % 251) as u8)
            .collect();
        let mut output = FetchOutput::new(raw.clone());
        output.text(b"* 1 FETCH (UID 7 BODY[] ");
        output.literal(SectionBytes::Raw(0..raw.len()), false);
        output.text(b" BODY[HEADER.FIELDS (A)] ");
        output.literal(SectionBytes::Made(b"A: b\r\n\r\n".to_vec()), false);
        output.text(b")\r\n");
        let mut all = Vec::new();
        let mut calls = 0;
        loop {
            let mut chunk = Vec::new();
            let done = output.fill(&mut chunk);
            calls += 1;
            assert!(chunk.len() <= CHUNK_OCTETS, "{}", chunk.len());
            all.extend_from_slice(&chunk);
            if done {
                break;
            }
        }
        assert_eq!(calls, 4);
        let mut expected = format!("* 1 FETCH (UID 7 BODY[] {{{}}}\r\n", raw.len()).into_bytes();
        expected.extend_from_slice(&raw);
        expected.extend_from_slice(b" BODY[HEADER.FIELDS (A)] {8}\r\nA: b\r\n\r\n)\r\n");
        assert_eq!(all, expected);
    }

    #[test]
    fn partial_and_binary_literals() {
        let raw = b"0123456789".to_vec();
        let mut output = FetchOutput::new(raw);
        output.literal(SectionBytes::Raw(0..10).part(3, 4), false);
        output.text(b" ");
        output.literal(SectionBytes::Raw(2..10).part(20, 4), true);
        output.text(b" ");
        output.literal(SectionBytes::Made(b"abc\0def".to_vec()).part(2, 100), true);
        let mut out = Vec::new();
        output.fill_all(&mut out);
        assert_eq!(out, b"{4}\r\n3456 ~{0}\r\n ~{5}\r\nc\0def".to_vec());
    }
}
