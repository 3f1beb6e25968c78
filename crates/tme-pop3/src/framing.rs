//! Cuts the client's byte stream into command lines before anything parses them, with the
//! length bounded: a line longer than `line_octets_max` (its line end included) is thrown
//! away up to its line feed and reported once as `Line::TooLong`.
//!
//! A line ends at LF; a CR before it is taken off too (RFC 1939 §3 asks for CRLF; a bare LF is
//! accepted, as every POP3 server does). It does no I/O and parses nothing but line ends.

use std::collections::VecDeque;

/// What the framer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A whole line, without its line end.
    Complete(Vec<u8>),
    /// A line over the limit; it was (or is being) thrown away.
    TooLong,
}

/// The framer of one connection.
#[derive(Debug)]
pub struct LineFramer {
    line_octets_max: usize,
    input: VecDeque<u8>,
    /// Throwing away the rest of a line that was too long (already reported).
    discarding: bool,
}

impl LineFramer {
    pub fn new(line_octets_max: usize) -> LineFramer {
        LineFramer {
            line_octets_max,
            input: VecDeque::new(),
            discarding: false,
        }
    }

    /// Adds bytes read from the client. The server reads only when `next_line` returns None,
    /// so this holds at most a line's limit plus one read.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.discarding {
            if let Some(end) = bytes.iter().position(|&byte| byte == b'\n') {
                self.discarding = false;
                self.input.extend(&bytes[end + 1..]);
            }
            return;
        }
        self.input.extend(bytes);
    }

    /// Whether a whole line (or a too-long one) is waiting: a pipelining client sent more
    /// than one command, and the answers can wait to go out together.
    pub fn has_line(&self) -> bool {
        self.input.contains(&b'\n') || self.input.len() >= self.line_octets_max
    }

    /// Takes the bytes not framed yet: after STLS they must be thrown away (RFC 2595 §4:
    /// nothing sent before the TLS negotiation counts).
    pub fn take_input(&mut self) -> Vec<u8> {
        self.discarding = false;
        self.input.drain(..).collect()
    }

    /// The next line, or None when more input is needed.
    pub fn next_line(&mut self) -> Option<Line> {
        match self.input.iter().position(|&byte| byte == b'\n') {
            Some(end) if end < self.line_octets_max => {
                let mut line: Vec<u8> = self.input.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Some(Line::Complete(line))
            }
            Some(end) => {
                self.input.drain(..=end);
                Some(Line::TooLong)
            }
            None if self.input.len() >= self.line_octets_max => {
                self.input.clear();
                self.discarding = true;
                Some(Line::TooLong)
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(limit: usize, chunks: &[&[u8]]) -> Vec<Line> {
        let mut framer = LineFramer::new(limit);
        let mut found = Vec::new();
        for chunk in chunks {
            framer.push(chunk);
            while let Some(line) = framer.next_line() {
                found.push(line);
            }
        }
        found
    }

    fn complete(text: &str) -> Line {
        Line::Complete(text.as_bytes().to_vec())
    }

    #[test]
    fn lines_end_at_crlf_or_lf_across_reads() {
        assert_eq!(
            lines(255, &[b"CA", b"PA\r", b"\nNOOP\nST", b"AT\r\n"]),
            vec![complete("CAPA"), complete("NOOP"), complete("STAT")]
        );
    }

    #[test]
    fn a_line_at_the_limit_passes_and_one_over_is_thrown_away_to_its_line_feed() {
        // The limit counts the line end: "123456\r\n" is 8 octets.
        assert_eq!(lines(8, &[b"123456\r\n"]), vec![complete("123456")]);
        assert_eq!(
            lines(8, &[b"1234567\r\nNOOP\r\n"]),
            vec![Line::TooLong, complete("NOOP")]
        );
        // Longer than the limit before its line feed arrived: reported once, the rest of
        // the line (in later reads) thrown away.
        assert_eq!(
            lines(8, &[b"123456789", b"0123", b"456\r\nSTAT\r\n"]),
            vec![Line::TooLong, complete("STAT")]
        );
    }

    #[test]
    fn input_stays_bounded_while_a_long_line_streams_in() {
        let mut framer = LineFramer::new(16);
        framer.push(&[b'x'; 100]);
        assert_eq!(framer.next_line(), Some(Line::TooLong));
        for _ in 0..1000 {
            framer.push(&[b'x'; 100]);
            assert_eq!(framer.next_line(), None);
            assert!(framer.input.is_empty());
        }
        framer.push(b"x\r\nQUIT\r\n");
        assert_eq!(framer.next_line(), Some(complete("QUIT")));
    }

    #[test]
    fn after_stls_the_rest_is_taken() {
        let mut framer = LineFramer::new(255);
        framer.push(b"STLS\r\nUSER injected\r\n");
        assert_eq!(framer.next_line(), Some(complete("STLS")));
        assert!(framer.has_line());
        assert_eq!(framer.take_input(), b"USER injected\r\n".to_vec());
        assert_eq!(framer.next_line(), None);
    }
}
