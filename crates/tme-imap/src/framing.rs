//! Cuts the client's byte stream into whole commands (lines and the literals they announce)
//! before anything parses them, with every length bounded.
//!
//! This module owns the literal rules: a synchronising literal `{N}` is taken only after the
//! server said `+` (the framer asks for it with `Frame::ContinueLiteral`); a non-synchronising
//! one `{N+}` (LITERAL+, RFC 7888) follows at once. A literal over `literal_octets_max`
//! is refused: a synchronising one is never sent by the client, so the command ends there;
//! a non-synchronising one is on its way and must be read and thrown away (RFC 7888 §4)
//! together with the rest of its command, so that literal bytes are never taken for a
//! command. A line over `line_octets_max` is thrown away up to its line feed.
//! It does no I/O and parses nothing but line ends, literal announcements and the tag.

use std::collections::VecDeque;

/// What the framer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole command: its lines (CRLF included) and literals, as sent.
    Command(Vec<u8>),
    /// A synchronising literal of acceptable size was announced: the server answers `+`
    /// and the client sends it.
    ContinueLiteral,
    /// A literal larger than the limit was announced; the command is dropped (its bytes,
    /// when non-synchronising, are read and thrown away).
    LiteralTooLarge { tag: String, length: u64 },
    /// A command line longer than the limit; thrown away to its line feed.
    LineTooLong { tag: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a line of the current command.
    Line,
    /// Reading (or, when `discard`, skipping) literal bytes.
    Literal { remaining: u64, discard: bool },
    /// Skipping the rest of a line that was too long; then the rest of the command.
    DiscardLine,
}

/// The framer of one connection.
#[derive(Debug)]
pub struct CommandFramer {
    line_octets_max: usize,
    literal_octets_max: u64,
    input: VecDeque<u8>,
    command: Vec<u8>,
    /// The current line starts at this offset of `command`.
    line_start: usize,
    state: State,
    /// Set when the current command has been refused: its remaining lines and literals are
    /// read and thrown away until a line that announces no literal ends it.
    discarding_command: bool,
    /// The last octets of a line being discarded, to find a literal announcement at its end.
    discarded_tail: Vec<u8>,
}

/// How many octets of a discarded line are kept to see whether it announced a literal.
const DISCARDED_TAIL_OCTETS: usize = 32;

impl CommandFramer {
    pub fn new(line_octets_max: usize, literal_octets_max: u64) -> CommandFramer {
        CommandFramer {
            line_octets_max,
            literal_octets_max,
            input: VecDeque::new(),
            command: Vec::new(),
            line_start: 0,
            state: State::Line,
            discarding_command: false,
            discarded_tail: Vec::new(),
        }
    }

    /// Adds bytes read from the client. The caller reads only when `next_frame` returns None, so
    /// this holds at most one read's worth beyond what the framer keeps.
    pub fn push(&mut self, bytes: &[u8]) {
        self.input.extend(bytes);
    }

    /// Gives back the memory a large command left behind, when nothing is buffered: called
    /// before the connection waits for the client, so an idle connection holds no buffer.
    pub fn release_spare_capacity(&mut self) {
        if self.input.is_empty() && self.input.capacity() > 0 {
            self.input = VecDeque::new();
        }
        if self.command.is_empty() && self.command.capacity() > 0 {
            self.command = Vec::new();
        }
    }

    /// Whether bytes are waiting that were not framed yet (a client that pipelines).
    pub fn has_input(&self) -> bool {
        !self.input.is_empty()
    }

    /// Takes the bytes not framed yet (after STARTTLS they must be thrown away: RFC 9051
    /// §6.2.1, nothing sent before the handshake counts).
    pub fn take_input(&mut self) -> Vec<u8> {
        self.input.drain(..).collect()
    }

    /// Reads one whole line (for AUTHENTICATE responses and IDLE's DONE), without literal
    /// handling. None when no whole line is there yet; `Some(Err(()))` when it is too long
    /// (thrown away).
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, ()>> {
        let position = self.input.iter().position(|&byte| byte == b'\n');
        match position {
            Some(end) if end < self.line_octets_max => Some(Ok(self.input.drain(..=end).collect())),
            Some(end) => {
                self.input.drain(..=end);
                Some(Err(()))
            }
            None if self.input.len() > self.line_octets_max => {
                self.command.clear();
                self.line_start = 0;
                self.state = State::DiscardLine;
                self.discarding_command = false;
                self.input.clear();
                Some(Err(()))
            }
            None => None,
        }
    }

    /// The next frame, or None when more input is needed.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match self.state {
                State::Literal { remaining, discard } => {
                    if remaining == 0 {
                        self.state = State::Line;
                        self.line_start = self.command.len();
                        continue;
                    }
                    if self.input.is_empty() {
                        return None;
                    }
                    let take = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(self.input.len());
                    if discard {
                        self.input.drain(..take);
                    } else {
                        self.command.extend(self.input.drain(..take));
                    }
                    self.state = State::Literal {
                        remaining: remaining - take as u64,
                        discard,
                    };
                }
                State::DiscardLine => {
                    let position = self.input.iter().position(|&byte| byte == b'\n');
                    let take = position.map_or(self.input.len(), |end| end + 1);
                    self.discarded_tail.extend(self.input.drain(..take));
                    let keep_from = self
                        .discarded_tail
                        .len()
                        .saturating_sub(DISCARDED_TAIL_OCTETS);
                    self.discarded_tail.drain(..keep_from);
                    position?;
                    let tail = std::mem::take(&mut self.discarded_tail);
                    match literal_announcement(&tail) {
                        // The client may go on sending a non-synchronising literal.
                        Some((length, false)) => {
                            self.state = State::Literal {
                                remaining: length,
                                discard: true,
                            };
                        }
                        _ => {
                            self.state = State::Line;
                            self.discarding_command = false;
                            self.command.clear();
                            self.line_start = 0;
                        }
                    }
                }
                State::Line => {
                    let Some(end) = self.input.iter().position(|&byte| byte == b'\n') else {
                        if self.input.len() > self.line_octets_max {
                            return Some(self.line_too_long());
                        }
                        return None;
                    };
                    if end >= self.line_octets_max {
                        return Some(self.line_too_long());
                    }
                    self.command.extend(self.input.drain(..=end));
                    let line = &self.command[self.line_start..];
                    let announcement = literal_announcement(line);
                    match announcement {
                        None => {
                            let command = std::mem::take(&mut self.command);
                            self.line_start = 0;
                            if std::mem::take(&mut self.discarding_command) {
                                continue;
                            }
                            return Some(Frame::Command(command));
                        }
                        Some((length, synchronising)) => {
                            let over = length > self.literal_octets_max
                                || self.command.len() as u64 + length
                                    > self.literal_octets_max + self.line_octets_max as u64;
                            if self.discarding_command || over {
                                let tag = self.tag();
                                let first_refusal = !self.discarding_command;
                                if synchronising {
                                    // The client waits for `+`, which never comes: the
                                    // command ends here.
                                    self.command.clear();
                                    self.line_start = 0;
                                    self.discarding_command = false;
                                } else {
                                    self.state = State::Literal {
                                        remaining: length,
                                        discard: true,
                                    };
                                    self.discarding_command = true;
                                }
                                if first_refusal {
                                    return Some(Frame::LiteralTooLarge { tag, length });
                                }
                                continue;
                            }
                            self.state = State::Literal {
                                remaining: length,
                                discard: false,
                            };
                            if synchronising {
                                return Some(Frame::ContinueLiteral);
                            }
                        }
                    }
                }
            }
        }
    }

    fn line_too_long(&mut self) -> Frame {
        let tag = self.tag_of_input();
        self.state = State::DiscardLine;
        self.discarded_tail.clear();
        self.command.clear();
        self.line_start = 0;
        self.discarding_command = false;
        Frame::LineTooLong { tag }
    }

    fn tag(&self) -> String {
        tag_of(&self.command)
    }

    fn tag_of_input(&self) -> String {
        if !self.command.is_empty() {
            return self.tag();
        }
        let head: Vec<u8> = self.input.iter().take(64).copied().collect();
        tag_of(&head)
    }
}

/// The tag a command starts with, when it is a valid one (RFC 9051 §9 `tag`); else `*`.
pub fn tag_of(command: &[u8]) -> String {
    let end = command
        .iter()
        .position(|&byte| matches!(byte, b' ' | b'\r' | b'\n'))
        .unwrap_or(command.len());
    let tag = &command[..end];
    let valid = !tag.is_empty()
        && tag.len() <= 64
        && tag
            .iter()
            .all(|&byte| byte.is_ascii_graphic() && !b"(){%*\"\\+".contains(&byte));
    if valid {
        String::from_utf8_lossy(tag).into_owned()
    } else {
        "*".to_owned()
    }
}

/// The literal a line announces at its end: `{N}` (synchronising, true) or `{N+}`
/// (false), before CRLF or LF; also `~{N}` (literal8, RFC 3516).
fn literal_announcement(line: &[u8]) -> Option<(u64, bool)> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let (line, synchronising) = match line.strip_suffix(b"+") {
        Some(rest) => (rest, false),
        None => (line, true),
    };
    let open = line.iter().rposition(|&byte| byte == b'{')?;
    let digits = &line[open + 1..];
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let length = std::str::from_utf8(digits).ok()?.parse::<u64>().ok()?;
    Some((length, synchronising))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(framer: &mut CommandFramer, input: &[u8]) -> Vec<Frame> {
        framer.push(input);
        let mut found = Vec::new();
        while let Some(frame) = framer.next_frame() {
            found.push(frame);
        }
        found
    }

    fn command(text: &[u8]) -> Frame {
        Frame::Command(text.to_vec())
    }

    #[test]
    fn lines_and_literals() {
        let mut framer = CommandFramer::new(100, 10);
        assert_eq!(
            frames(&mut framer, b"a NOOP\r\nb LOGIN {3}\r\n"),
            vec![command(b"a NOOP\r\n"), Frame::ContinueLiteral]
        );
        assert_eq!(
            frames(&mut framer, b"bob {2+}\r\npw\r\nc"),
            vec![command(b"b LOGIN {3}\r\nbob {2+}\r\npw\r\n")]
        );
        assert_eq!(frames(&mut framer, b" NOOP\n"), vec![command(b"c NOOP\n")]);
    }

    #[test]
    fn a_synchronising_literal_over_the_limit_ends_the_command() {
        let mut framer = CommandFramer::new(100, 10);
        assert_eq!(
            frames(&mut framer, b"a APPEND INBOX {11}\r\nb NOOP\r\n"),
            vec![
                Frame::LiteralTooLarge {
                    tag: "a".to_owned(),
                    length: 11
                },
                command(b"b NOOP\r\n")
            ]
        );
    }

    #[test]
    fn a_non_synchronising_literal_over_the_limit_is_read_and_thrown_away() {
        let mut framer = CommandFramer::new(100, 10);
        assert_eq!(
            frames(
                &mut framer,
                b"a APPEND INBOX {13+}\r\nb NOOP\r\nc X\r\n {1+}\r\nx\r\nd NOOP\r\n"
            ),
            vec![
                Frame::LiteralTooLarge {
                    tag: "a".to_owned(),
                    length: 13
                },
                command(b"d NOOP\r\n")
            ]
        );
    }

    #[test]
    fn a_long_line_is_thrown_away_to_its_end() {
        let mut framer = CommandFramer::new(10, 10);
        let mut input = b"a ".to_vec();
        input.extend([b'x'; 30]);
        assert_eq!(
            frames(&mut framer, &input),
            vec![Frame::LineTooLong {
                tag: "a".to_owned()
            }]
        );
        assert_eq!(frames(&mut framer, &[b'y'; 1000]), vec![]);
        assert!(
            framer.input.is_empty() && framer.command.is_empty(),
            "nothing is kept"
        );
        assert_eq!(
            frames(&mut framer, b"yy\r\nb NOOP\r\n"),
            vec![command(b"b NOOP\r\n")]
        );
        // A long line that ends announcing a non-synchronising literal: the literal is skipped.
        let mut input = b"c ".to_vec();
        input.extend([b'x'; 30]);
        input.extend(b" {3+}\r\nabcd NOOP\r\n");
        assert_eq!(
            frames(&mut framer, &input),
            vec![
                Frame::LineTooLong {
                    tag: "c".to_owned()
                },
                command(b"d NOOP\r\n")
            ]
        );
    }

    #[test]
    fn tags() {
        assert_eq!(tag_of(b"A001 NOOP"), "A001");
        assert_eq!(tag_of(b"+ x"), "*");
        assert_eq!(tag_of(b"a{b NOOP"), "*");
        assert_eq!(tag_of(b"a]b NOOP"), "a]b");
        assert_eq!(tag_of(b"\xff NOOP"), "*");
        assert_eq!(tag_of(b""), "*");
    }
}
