//! Splits the command stream into bounded lines before anything parses them.
//!
//! A command line ends at LF (with or without the CR before it: commands are not message
//! content, so accepting a bare LF here opens no smuggling hole). A line longer than
//! the limit (`smtp.command_line_octets_max`) is dropped, never buffered: its start is discarded at once and
//! the rest up to its LF when it arrives, and the session answers it once (RFC 5321
//! §4.5.3.1.4, §4.2.2 `500`). This module does no I/O: the server hands it its input buffer.

/// One framed unit of the command stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandFrame {
    /// A whole command line, its LF (and CR) included.
    Line(Vec<u8>),
    /// A line longer than the limit was dropped, up to and including its LF.
    TooLong,
}

/// Cuts command lines off the front of an input buffer.
#[derive(Debug)]
pub struct CommandFramer {
    /// The longest line, its CRLF included.
    line_octets_max: usize,
    /// Inside an over-long line whose LF has not arrived yet.
    discarding: bool,
}

impl CommandFramer {
    pub fn new(line_octets_max: usize) -> CommandFramer {
        CommandFramer {
            line_octets_max,
            discarding: false,
        }
    }

    /// Takes the next frame off the front of `input`; None when a whole line has not arrived.
    /// On None, `input` holds at most `line_octets_max` octets.
    pub fn next_frame(&mut self, input: &mut Vec<u8>) -> Option<CommandFrame> {
        match input.iter().position(|octet| *octet == b'\n') {
            Some(index) => {
                let line: Vec<u8> = input.drain(..=index).collect();
                if self.discarding || line.len() > self.line_octets_max {
                    self.discarding = false;
                    return Some(CommandFrame::TooLong);
                }
                Some(CommandFrame::Line(line))
            }
            None => {
                if self.discarding || input.len() > self.line_octets_max {
                    input.clear();
                    self.discarding = true;
                }
                None
            }
        }
    }

    /// Forgets a partial line (after STARTTLS, RFC 3207 §4.2: nothing sent before the
    /// handshake counts).
    pub fn reset(&mut self) {
        self.discarding = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE_OCTETS_MAX: usize = 2048;

    #[test]
    fn lines_come_out_one_at_a_time_and_the_rest_stays() {
        let mut framer = CommandFramer::new(LINE_OCTETS_MAX);
        let mut input = b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDA".to_vec();
        assert_eq!(
            framer.next_frame(&mut input),
            Some(CommandFrame::Line(b"MAIL FROM:<a@b.test>\r\n".to_vec()))
        );
        assert_eq!(
            framer.next_frame(&mut input),
            Some(CommandFrame::Line(b"RCPT TO:<c@d.test>\r\n".to_vec()))
        );
        assert_eq!(framer.next_frame(&mut input), None);
        assert_eq!(input, b"DA");
    }

    #[test]
    fn an_over_long_line_is_dropped_without_buffering_it() {
        let mut framer = CommandFramer::new(LINE_OCTETS_MAX);
        let mut input = vec![b'A'; LINE_OCTETS_MAX + 1];
        assert_eq!(framer.next_frame(&mut input), None);
        assert!(input.is_empty(), "the start of the line is not kept");
        input.extend_from_slice(&[b'B'; 10_000]);
        assert_eq!(framer.next_frame(&mut input), None);
        assert!(input.is_empty());
        input.extend_from_slice(b"BBB\r\nNOOP\r\n");
        assert_eq!(framer.next_frame(&mut input), Some(CommandFrame::TooLong));
        assert_eq!(
            framer.next_frame(&mut input),
            Some(CommandFrame::Line(b"NOOP\r\n".to_vec()))
        );
    }

    #[test]
    fn a_whole_over_long_line_is_one_error() {
        let mut framer = CommandFramer::new(LINE_OCTETS_MAX);
        let mut input = vec![b'A'; LINE_OCTETS_MAX + 10];
        input.extend_from_slice(b"\r\nQUIT\r\n");
        assert_eq!(framer.next_frame(&mut input), Some(CommandFrame::TooLong));
        assert_eq!(
            framer.next_frame(&mut input),
            Some(CommandFrame::Line(b"QUIT\r\n".to_vec()))
        );
    }
}
