//! The wire form of a stored message: what RETR and TOP send, and the size LIST and STAT
//! report. The two are made by the same line walk, so they cannot disagree.
//!
//! tme stores messages byte for byte as they came (SMTP keeps bare LF and bare CR; `tme
//! import` keeps a Maildir's LF line ends). POP3 sends lines ending in CRLF (RFC 1939 §3), so
//! every line end becomes CRLF on the wire: a LF without a CR before it gets one, and a last
//! line without a line end gets CRLF, as the terminating `.` must start a line. A bare CR
//! inside a line is sent as it is (clients split lines at LF). A message stored with CRLF
//! line ends and a final CRLF (everything SMTP delivers from a well-behaved MTA) is sent
//! exactly as stored.
//!
//! The size of a message is the octets of that wire form before byte-stuffing (RFC 1939 §11:
//! "lines in the message which start with the termination octet need not (and must not) be
//! counted twice"): the octets a client holds once it took the stuffing off.
//!
//! `Transfer` streams the wire form with byte-stuffing (a line starting with `.` gets another,
//! RFC 1939 §3) in chunks, so a large message costs its stored bytes and one chunk of output,
//! never a second copy. It does no I/O.

/// How much `Transfer::fill` adds to the output at most per call (plus at most the few octets
/// of a line end, a stuffed dot and the terminator): the servers' shared write size.
pub const CHUNK_OCTETS: usize = tme_net::WRITE_CHUNK_OCTETS;

/// The size of `raw`'s wire form before byte-stuffing.
pub fn wire_size(raw: &[u8]) -> u64 {
    let mut size = 0u64;
    let mut rest = raw;
    while !rest.is_empty() {
        let (content, after) = match rest.iter().position(|&byte| byte == b'\n') {
            Some(end) => (&rest[..end], &rest[end + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        size += content.len() as u64 + 2;
        rest = after;
    }
    size
}

/// One RETR or TOP answer's body, sent in chunks, ending with the terminating `.` line.
#[derive(Debug)]
pub struct Transfer {
    raw: Vec<u8>,
    position: usize,
    at_line_start: bool,
    /// Past the blank line that ends the header (TOP counts body lines from there).
    in_body: bool,
    /// For TOP: body lines still to send; None sends everything (RETR).
    body_lines_left: Option<u64>,
    done: bool,
}

impl Transfer {
    /// The whole message (RETR).
    pub fn whole(raw: Vec<u8>) -> Transfer {
        Transfer::new(raw, None)
    }

    /// The header, the blank line and the first `lines` lines of the body (TOP, RFC 1939 §7).
    /// Without a blank line the whole message is header, and all of it is sent.
    pub fn top(raw: Vec<u8>, lines: u64) -> Transfer {
        Transfer::new(raw, Some(lines))
    }

    fn new(raw: Vec<u8>, body_lines_left: Option<u64>) -> Transfer {
        Transfer {
            raw,
            position: 0,
            at_line_start: true,
            in_body: false,
            body_lines_left,
            done: false,
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Appends the next chunk (about `CHUNK_OCTETS`) of the stuffed wire form to `out`; the
    /// last one ends with `.` CRLF. Returns whether the transfer is complete.
    pub fn fill(&mut self, out: &mut Vec<u8>) -> bool {
        let budget_end = out.len() + CHUNK_OCTETS;
        while !self.done && out.len() < budget_end {
            if self.at_line_start {
                let rest = &self.raw[self.position..];
                if rest.is_empty() || (self.in_body && self.body_lines_left == Some(0)) {
                    out.extend_from_slice(b".\r\n");
                    self.done = true;
                    break;
                }
                if self.in_body {
                    if let Some(left) = &mut self.body_lines_left {
                        *left -= 1;
                    }
                } else if rest.starts_with(b"\n") || rest.starts_with(b"\r\n") {
                    // The blank line that ends the header: sent, but not a body line.
                    self.in_body = true;
                }
                if rest.starts_with(b".") {
                    out.push(b'.');
                }
                self.at_line_start = false;
            }
            let room = budget_end.saturating_sub(out.len()).max(2);
            let window_end = self.raw.len().min(self.position + room);
            let window = &self.raw[self.position..window_end];
            match window.iter().position(|&byte| byte == b'\n') {
                Some(end) => {
                    let content = &window[..end];
                    out.extend_from_slice(content.strip_suffix(b"\r").unwrap_or(content));
                    out.extend_from_slice(b"\r\n");
                    self.position += end + 1;
                    self.at_line_start = true;
                }
                None if window_end == self.raw.len() => {
                    // The last line, without a line end.
                    out.extend_from_slice(window.strip_suffix(b"\r").unwrap_or(window));
                    out.extend_from_slice(b"\r\n");
                    self.position = window_end;
                    self.at_line_start = true;
                }
                None => {
                    // Part of a long line. A CR at the end of the window is kept back: the
                    // next window decides whether it starts the line end.
                    let take = if window.ends_with(b"\r") {
                        window.len() - 1
                    } else {
                        window.len()
                    };
                    out.extend_from_slice(&window[..take]);
                    self.position += take;
                }
            }
        }
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every chunk of a transfer, joined.
    fn sent(mut transfer: Transfer) -> Vec<u8> {
        let mut out = Vec::new();
        let mut chunks = 0;
        while !transfer.fill(&mut out) {
            chunks += 1;
            assert!(chunks < 100_000, "the transfer ends");
        }
        out
    }

    /// What a client holds after taking the stuffing and the terminator off (RFC 1939 §3).
    fn unstuffed(wire: &[u8]) -> Vec<u8> {
        let body = wire.strip_suffix(b".\r\n").expect("terminated");
        let mut message = Vec::new();
        for line in body.split_inclusive(|&byte| byte == b'\n') {
            assert!(line.ends_with(b"\r\n"), "every line ends in CRLF: {line:?}");
            message.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        }
        message
    }

    fn check(raw: &[u8], wire: &[u8]) {
        let out = sent(Transfer::whole(raw.to_vec()));
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(wire),
            "raw {raw:?}"
        );
        assert_eq!(wire_size(raw), unstuffed(&out).len() as u64, "raw {raw:?}");
    }

    #[test]
    fn line_ends_become_crlf_and_dots_are_stuffed() {
        check(b"", b".\r\n");
        check(b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n");
        check(b"a\nb\n", b"a\r\nb\r\n.\r\n");
        check(b"a\r\nb", b"a\r\nb\r\n.\r\n");
        check(b"a\r", b"a\r\n.\r\n");
        check(b"a\rb\r\n", b"a\rb\r\n.\r\n");
        check(b"a\r\r\n", b"a\r\r\n.\r\n");
        check(b".\r\n..x\n.", b"..\r\n...x\r\n..\r\n.\r\n");
        check(b"x\r\n.\r\n", b"x\r\n..\r\n.\r\n");
        check(b"\n\n", b"\r\n\r\n.\r\n");
    }

    #[test]
    fn top_sends_the_header_the_blank_line_and_n_body_lines() {
        let raw = b"A: 1\nB: 2\r\n\r\none\r\n.two\nthree\r\n".to_vec();
        let top =
            |lines| String::from_utf8_lossy(&sent(Transfer::top(raw.clone(), lines))).into_owned();
        assert_eq!(top(0), "A: 1\r\nB: 2\r\n\r\n.\r\n");
        assert_eq!(top(2), "A: 1\r\nB: 2\r\n\r\none\r\n..two\r\n.\r\n");
        assert_eq!(top(3), "A: 1\r\nB: 2\r\n\r\none\r\n..two\r\nthree\r\n.\r\n");
        assert_eq!(top(u64::MAX), top(3));
        // No blank line: all of it is header.
        let header_only = b"A: 1\r\nB: 2".to_vec();
        assert_eq!(
            sent(Transfer::top(header_only, 0)),
            b"A: 1\r\nB: 2\r\n.\r\n".to_vec()
        );
    }

    #[test]
    fn long_lines_are_chunked_without_splitting_a_line_end() {
        // A CR at every possible chunk boundary, and lines longer than a chunk.
        for offset in 0..4 {
            let mut raw = vec![b'x'; CHUNK_OCTETS - offset];
            raw.extend_from_slice(b"\r\n.\r\r\n");
            raw.extend(std::iter::repeat_n(b'y', 3 * CHUNK_OCTETS + 7));
            raw.extend_from_slice(b"\n.end");
            let mut transfer = Transfer::whole(raw.clone());
            let mut out = Vec::new();
            loop {
                let before = out.len();
                let done = transfer.fill(&mut out);
                assert!(out.len() - before <= CHUNK_OCTETS + 8, "a chunk is bounded");
                if done {
                    break;
                }
            }
            let expected = {
                let mut expected = vec![b'x'; CHUNK_OCTETS - offset];
                expected.extend_from_slice(b"\r\n..\r\r\n");
                expected.extend(std::iter::repeat_n(b'y', 3 * CHUNK_OCTETS + 7));
                expected.extend_from_slice(b"\r\n..end\r\n.\r\n");
                expected
            };
            assert!(out == expected, "offset {offset}");
            assert_eq!(wire_size(&raw), unstuffed(&out).len() as u64);
        }
    }

    #[test]
    fn sizes_match_what_is_sent_for_every_small_message_of_awkward_bytes() {
        // Every string of up to 6 octets over the alphabet that matters.
        let alphabet = [b'a', b'.', b'\r', b'\n'];
        let mut raw = Vec::new();
        for length in 0..=6u32 {
            for mut code in 0..4usize.pow(length) {
                raw.clear();
                for _ in 0..length {
                    raw.push(alphabet[code % 4]);
                    code /= 4;
                }
                let out = sent(Transfer::whole(raw.clone()));
                let message = unstuffed(&out);
                assert_eq!(wire_size(&raw), message.len() as u64, "{raw:?}");
                // The only change is a CR before a lone LF, and a final line end.
                let without_cr: Vec<u8> = message.iter().copied().filter(|&b| b != b'\r').collect();
                let raw_without_cr: Vec<u8> = raw.iter().copied().filter(|&b| b != b'\r').collect();
                let mut expected = raw_without_cr;
                if !raw.is_empty() && !raw.ends_with(b"\n") {
                    expected.push(b'\n');
                }
                assert_eq!(without_cr, expected, "{raw:?}");
                if raw.ends_with(b"\r\n")
                    && !raw.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r')
                    && raw[0] != b'\n'
                {
                    assert_eq!(message, raw, "CRLF messages are sent as stored");
                }
            }
        }
    }
}
