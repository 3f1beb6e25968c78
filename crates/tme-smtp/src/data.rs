//! Receives message content: DATA with its dot-stuffing (RFC 5321 §4.5.2), and BDAT chunks
//! (RFC 3030), into one buffer bounded by the message size limit.
//!
//! Decisions, so that the stored message is the message as sent:
//! - Only CRLF `.` CRLF ends DATA (RFC 5321 §4.1.1.4). A `.` line after a bare LF or bare CR
//!   is content, not the end: this is what closes the "SMTP smuggling" hole, where servers
//!   that disagree on line ends see different messages in one stream.
//! - A bare LF or bare CR (RFC 5321 §2.3.8 forbids clients to send them) is accepted and kept
//!   as sent, neither refused nor rewritten: refusing loses real mail from old software,
//!   rewriting breaks byte-for-byte storage (and signatures). They are counted for the log.
//!   Dot-unstuffing applies only at the start of a line, i.e. after CRLF.
//! - A line longer than 1000 octets (RFC 5321 §4.5.3.1.6) is accepted and kept; it is counted.
//! - Past the size limit, content is read and dropped (the buffer is freed) until the end of
//!   DATA, so the session stays in step and answers `552`; memory never holds more than the
//!   limit.
//!
//! No I/O: the server feeds bytes in and learns how many were consumed.

use crate::limits::TEXT_LINE_OCTETS_MAX;

/// The message as received, bounded by its limit.
#[derive(Debug, Default)]
pub struct MessageBuffer {
    bytes: Vec<u8>,
    octets_max: u64,
    octets_received: u64,
    exceeded: bool,
}

impl MessageBuffer {
    pub fn new(octets_max: u64) -> MessageBuffer {
        MessageBuffer {
            bytes: Vec::new(),
            octets_max,
            octets_received: 0,
            exceeded: false,
        }
    }

    /// Appends content; once past the limit, keeps only the count.
    pub fn append(&mut self, content: &[u8]) {
        self.octets_received = self.octets_received.saturating_add(content.len() as u64);
        if self.exceeded {
            return;
        }
        if self.octets_received > self.octets_max {
            self.exceeded = true;
            self.bytes = Vec::new();
            return;
        }
        self.bytes.extend_from_slice(content);
    }

    /// Whether the content passed the limit (and was dropped).
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }

    pub fn octets_received(&self) -> u64 {
        self.octets_received
    }

    pub fn octets_max(&self) -> u64 {
        self.octets_max
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// What the content of a DATA looked like, for the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataShape {
    pub bare_line_feeds: u64,
    pub bare_carriage_returns: u64,
    /// Lines longer than `TEXT_LINE_OCTETS_MAX`, CRLF included.
    pub lines_too_long: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataState {
    /// Just after CRLF (or at the start of DATA).
    LineStart,
    /// Inside a line.
    InLine,
    /// After a CR inside a line.
    AfterCarriageReturn,
    /// After a `.` at the start of a line.
    AfterLeadingDot,
    /// After `.` CR at the start of a line: LF now ends the message.
    AfterLeadingDotCarriageReturn,
}

/// Reads the content of one DATA command.
#[derive(Debug)]
pub struct DataReceiver {
    state: DataState,
    message: MessageBuffer,
    shape: DataShape,
    line_octets: usize,
}

impl DataReceiver {
    pub fn new(octets_max: u64) -> DataReceiver {
        DataReceiver {
            state: DataState::LineStart,
            message: MessageBuffer::new(octets_max),
            shape: DataShape::default(),
            line_octets: 0,
        }
    }

    /// Consumes content from `input`. Returns how many octets were consumed and whether the
    /// end of data was among them; the octets after the end (pipelined commands) are not
    /// consumed.
    pub fn ingest(&mut self, input: &[u8]) -> (usize, bool) {
        let mut index = 0;
        while index < input.len() {
            let octet = input[index];
            match self.state {
                DataState::InLine => {
                    let rest = &input[index..];
                    match rest
                        .iter()
                        .position(|octet| *octet == b'\r' || *octet == b'\n')
                    {
                        None => {
                            self.emit(rest);
                            index = input.len();
                        }
                        Some(offset) => {
                            self.emit(&rest[..offset]);
                            index += offset + 1;
                            if rest[offset] == b'\r' {
                                self.state = DataState::AfterCarriageReturn;
                            } else {
                                self.shape.bare_line_feeds += 1;
                                self.emit(b"\n");
                            }
                        }
                    }
                }
                DataState::AfterCarriageReturn => {
                    if octet == b'\n' {
                        index += 1;
                        self.emit(b"\r\n");
                        self.end_line();
                        self.state = DataState::LineStart;
                    } else {
                        // A bare CR: kept; the octet after it is read again inside the line.
                        self.shape.bare_carriage_returns += 1;
                        self.emit(b"\r");
                        self.state = DataState::InLine;
                    }
                }
                DataState::LineStart => {
                    if octet == b'.' {
                        index += 1;
                        self.state = DataState::AfterLeadingDot;
                    } else {
                        self.state = DataState::InLine;
                    }
                }
                DataState::AfterLeadingDot => {
                    if octet == b'\r' {
                        index += 1;
                        self.state = DataState::AfterLeadingDotCarriageReturn;
                    } else {
                        // RFC 5321 §4.5.2: a line that starts with a period and has more
                        // characters loses that first period.
                        self.state = DataState::InLine;
                    }
                }
                DataState::AfterLeadingDotCarriageReturn => {
                    if octet == b'\n' {
                        return (index + 1, true);
                    }
                    // `.` CR then something else: the period goes (as above), the CR is
                    // content, and the octet is read again after it.
                    self.state = DataState::AfterCarriageReturn;
                }
            }
        }
        (index, false)
    }

    fn emit(&mut self, content: &[u8]) {
        self.line_octets = self.line_octets.saturating_add(content.len());
        self.message.append(content);
    }

    fn end_line(&mut self) {
        if self.line_octets > TEXT_LINE_OCTETS_MAX {
            self.shape.lines_too_long += 1;
        }
        self.line_octets = 0;
    }

    pub fn shape(&self) -> DataShape {
        self.shape
    }

    pub fn into_message(self) -> MessageBuffer {
        self.message
    }
}

/// Dot-stuffs a message for DATA (RFC 5321 §4.5.2) and appends the end of data; what a client
/// sends. Adds a final CRLF when the message lacks one (DATA cannot carry such a message
/// exactly; BDAT can). Used by tests and, later, by the outbound queue.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut wire = Vec::with_capacity(message.len() + message.len() / 50 + 5);
    let mut at_line_start = true;
    let mut previous = 0u8;
    for &octet in message {
        if at_line_start && octet == b'.' {
            wire.push(b'.');
        }
        wire.push(octet);
        at_line_start = previous == b'\r' && octet == b'\n';
        previous = octet;
    }
    if !message.ends_with(b"\r\n") {
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b".\r\n");
    wire
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` in pieces of `piece` octets; returns (message, consumed, ended).
    fn receive(wire: &[u8], piece: usize, octets_max: u64) -> (Vec<u8>, usize, bool, DataShape) {
        let mut receiver = DataReceiver::new(octets_max);
        let mut consumed = 0;
        let mut ended = false;
        while consumed < wire.len() && !ended {
            let end = (consumed + piece).min(wire.len());
            let (used, done) = receiver.ingest(&wire[consumed..end]);
            consumed += used;
            ended = done;
        }
        let shape = receiver.shape();
        let message = receiver.into_message().into_bytes();
        (message, consumed, ended, shape)
    }

    #[test]
    fn dots_are_unstuffed_at_line_starts_only() {
        let wire = b"a\r\n..b\r\n.c\r\nd.\r\n.\r\nQUIT\r\n";
        for piece in [1, 2, 3, 100] {
            let (message, consumed, ended, _) = receive(wire, piece, 1000);
            assert!(ended);
            assert_eq!(message, b"a\r\n.b\r\nc\r\nd.\r\n", "piece {piece}");
            assert_eq!(&wire[consumed..], b"QUIT\r\n");
        }
    }

    #[test]
    fn an_empty_message_ends_at_once() {
        let (message, consumed, ended, _) = receive(b".\r\n", 1, 10);
        assert!(ended && message.is_empty() && consumed == 3);
    }

    #[test]
    fn only_crlf_dot_crlf_ends_data() {
        // The smuggling shapes: a dot line after a bare LF or a bare CR is content.
        let wire = b"a\n.\nb\r.\r\nc\n.\r\nd\r\n.\r\n";
        for piece in [1, 5, 100] {
            let (message, _, ended, shape) = receive(wire, piece, 1000);
            assert!(ended);
            assert_eq!(message, b"a\n.\nb\r.\r\nc\n.\r\nd\r\n");
            assert_eq!(shape.bare_line_feeds, 3);
            assert_eq!(shape.bare_carriage_returns, 1);
        }
    }

    #[test]
    fn a_dot_then_bare_carriage_return_loses_only_the_dot() {
        let (message, _, ended, _) = receive(b".\rx\r\n.\r\n", 1, 100);
        assert!(ended);
        assert_eq!(message, b"\rx\r\n");
    }

    #[test]
    fn a_message_past_the_limit_is_read_to_its_end_and_dropped() {
        let mut wire = vec![b'x'; 5000];
        wire.extend_from_slice(b"\r\n.\r\nNOOP\r\n");
        let mut receiver = DataReceiver::new(100);
        let (consumed, ended) = receiver.ingest(&wire);
        assert!(ended);
        assert_eq!(&wire[consumed..], b"NOOP\r\n");
        assert_eq!(receiver.shape().lines_too_long, 1);
        let message = receiver.into_message();
        assert!(message.exceeded());
        assert_eq!(message.octets_received(), 5002);
        assert!(message.into_bytes().is_empty());
    }

    #[test]
    fn dot_stuffing_round_trips() {
        for message in [
            &b"Subject: x\r\n\r\n.\r\n..\r\n.x\r\n"[..],
            b"",
            b".",
            b"a\r\n.",
            b"a\n.\nb\r\n",
        ] {
            let wire = dot_stuff(message);
            let (received, consumed, ended, _) = receive(&wire, 7, 1000);
            assert!(ended && consumed == wire.len());
            let mut expected = message.to_vec();
            if !expected.ends_with(b"\r\n") {
                expected.extend_from_slice(b"\r\n");
            }
            assert_eq!(received, expected, "{:?}", String::from_utf8_lossy(message));
        }
    }
}
