//! The extension syntax imap-codec 2.0.0-alpha.10 does not parse, taken out of a command
//! before it does: ESEARCH's `SEARCH RETURN (...)` (RFC 4731), LIST-EXTENDED's selection
//! and return options with LIST-STATUS (RFC 5258, RFC 5819), and CREATE-SPECIAL-USE's
//! `(USE (...))` (RFC 6154 §3), and SEARCHRES's `$` (RFC 5182, RFC 9051 §6.4.4.1), the
//! saved search result where a sequence set goes. What is left is the base command, which
//! imap-codec parses. Only plain atoms are taken: anything unusual stays and makes the
//! parse fail (`BAD`). No I/O.
//!
//! imap-codec has no `$` in its sequence sets, so a `$` is replaced by
//! `SAVED_RESULT_MARKER` (a number no sequence number or UID can be: the store never gives
//! out UID 4294967295) and `saved_result_used` is set; the session reads that set as the
//! saved result.

/// Options found and removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extracted {
    /// `SEARCH RETURN (...)`'s options, upper-cased; Some(empty) for `RETURN ()`.
    pub search_return: Option<Vec<String>>,
    /// LIST selection options, upper-cased (`SUBSCRIBED`, `RECURSIVEMATCH`, `SPECIAL-USE`).
    pub list_selection: Vec<String>,
    /// LIST return options (`SUBSCRIBED`, `CHILDREN`, `SPECIAL-USE`); STATUS separately.
    pub list_return: Vec<String>,
    /// LIST-STATUS items, upper-cased.
    pub list_status: Option<Vec<String>>,
    /// CREATE's USE attributes, as written (`\Sent`).
    pub create_use: Option<Vec<String>>,
    /// A `$` was replaced by `SAVED_RESULT_MARKER`.
    pub saved_result_used: bool,
}

/// What a `$` becomes: the sequence set `4294967295`, which the session reads as the saved
/// search result when `saved_result_used` is set.
pub const SAVED_RESULT_MARKER: u32 = u32::MAX;

/// Search keys whose next argument is a string, so a `$` there is text, not a set.
const KEYS_TAKING_A_STRING: &[&[u8]] = &[
    b"BCC",
    b"BODY",
    b"CC",
    b"FROM",
    b"KEYWORD",
    b"SUBJECT",
    b"TEXT",
    b"TO",
    b"UNKEYWORD",
    b"HEADER",
    b"CHARSET",
];

/// The positions of the `$` tokens of a command that stand where a sequence set may:
/// alone between spaces or parentheses, outside quoted strings and literals, after the
/// tag, and not the argument of a key that takes a string.
fn saved_result_positions(bytes: &[u8]) -> Vec<usize> {
    let mut positions = Vec::new();
    let Some(tag_end) = bytes.iter().position(|&byte| byte == b' ') else {
        return positions;
    };
    let mut index = tag_end;
    // The last two atoms before the current position, for `KEY $` and `HEADER name $`.
    let mut previous: [&[u8]; 2] = [b"", b""];
    while index < bytes.len() {
        match bytes[index] {
            b'"' => {
                // A quoted string: skip to its closing quote.
                index += 1;
                while index < bytes.len() && bytes[index] != b'"' {
                    index += if bytes[index] == b'\\' { 2 } else { 1 };
                }
                index += 1;
                previous = [previous[1], b"\"\""];
            }
            b'{' => {
                // A literal: `{N}` or `{N+}`, CRLF, N octets.
                let digits_end = bytes[index + 1..]
                    .iter()
                    .position(|byte| !byte.is_ascii_digit())
                    .map_or(bytes.len(), |offset| index + 1 + offset);
                let length: Option<usize> = std::str::from_utf8(&bytes[index + 1..digits_end])
                    .ok()
                    .and_then(|digits| digits.parse().ok());
                let mut after = digits_end;
                if bytes.get(after) == Some(&b'+') {
                    after += 1;
                }
                match (length, bytes.get(after..after + 3)) {
                    (Some(length), Some(b"}\r\n")) => {
                        index = after + 3 + length;
                        previous = [previous[1], b"{}"];
                    }
                    _ => index += 1,
                }
            }
            b' ' | b'(' | b')' | b'\r' | b'\n' => index += 1,
            _ => {
                let end = bytes[index..]
                    .iter()
                    .position(|&byte| matches!(byte, b' ' | b'(' | b')' | b'\r' | b'\n'))
                    .map_or(bytes.len(), |offset| index + offset);
                let word = &bytes[index..end];
                let after_string_key = KEYS_TAKING_A_STRING
                    .iter()
                    .any(|key| previous[1].eq_ignore_ascii_case(key))
                    || previous[0].eq_ignore_ascii_case(b"HEADER");
                if word == b"$" && !after_string_key {
                    positions.push(index);
                }
                previous = [previous[1], word];
                index = end;
            }
        }
    }
    positions
}

fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle))
}

/// The words of a parenthesised list of atoms starting at `open` (which is `(`), and the
/// offset just past its `)`. Nested lists only one deep, for STATUS.
fn atom_list(bytes: &[u8], open: usize) -> Option<(Vec<String>, Option<Vec<String>>, usize)> {
    let close_of = |from: usize| {
        bytes[from..]
            .iter()
            .position(|&byte| byte == b')')
            .map(|offset| from + offset)
    };
    let mut words = Vec::new();
    let mut nested = None;
    let mut position = open + 1;
    loop {
        let rest = bytes.get(position..)?;
        let skip = rest.iter().take_while(|&&byte| byte == b' ').count();
        position += skip;
        match bytes.get(position)? {
            b')' => return Some((words, nested, position + 1)),
            b'(' => {
                let close = close_of(position)?;
                let inner = std::str::from_utf8(&bytes[position + 1..close]).ok()?;
                nested = Some(
                    inner
                        .split_ascii_whitespace()
                        .map(str::to_ascii_uppercase)
                        .collect(),
                );
                position = close + 1;
            }
            _ => {
                let end = bytes[position..]
                    .iter()
                    .position(|&byte| byte == b' ' || byte == b')' || byte == b'(')
                    .map(|offset| position + offset)?;
                let word = std::str::from_utf8(&bytes[position..end]).ok()?;
                if word
                    .bytes()
                    .any(|byte| !byte.is_ascii_graphic() || byte == b'"')
                {
                    return None;
                }
                words.push(word.to_owned());
                position = end;
            }
        }
    }
}

/// Splits `command` into the base command and the extension options found.
pub fn extract(command: &[u8]) -> (Vec<u8>, Extracted) {
    let mut extracted = Extracted::default();
    let mut bytes = command.to_vec();
    // tag SP [UID SP] name SP
    let mut words = bytes.splitn(4, |&byte| byte == b' ');
    let tag_length = words.next().map_or(0, <[u8]>::len);
    let second = words.next().unwrap_or_default();
    let (name, name_end) = if second.eq_ignore_ascii_case(b"UID") {
        let third = words.next().unwrap_or_default();
        (
            third.to_vec(),
            tag_length + 1 + second.len() + 1 + third.len(),
        )
    } else {
        (second.to_vec(), tag_length + 1 + second.len())
    };
    let name = name.to_ascii_uppercase();
    let after_name = name_end + 1;
    if name == b"SEARCH" {
        if let Some(rest) = bytes.get(after_name..)
            && rest.len() > 8
            && rest[..8].eq_ignore_ascii_case(b"RETURN (")
            && let Some((options, _, end)) = atom_list(&bytes, after_name + 7)
        {
            extracted.search_return = Some(
                options
                    .into_iter()
                    .map(|option| option.to_ascii_uppercase())
                    .collect(),
            );
            let end = if bytes.get(end) == Some(&b' ') {
                end + 1
            } else {
                end
            };
            bytes.drain(after_name..end);
        }
    } else if name == b"LIST" {
        if bytes.get(after_name) == Some(&b'(')
            && let Some((options, _, end)) = atom_list(&bytes, after_name)
        {
            extracted.list_selection = options
                .into_iter()
                .map(|option| option.to_ascii_uppercase())
                .collect();
            let end = if bytes.get(end) == Some(&b' ') {
                end + 1
            } else {
                end
            };
            bytes.drain(after_name..end);
        }
        let last_line_start = bytes[..bytes.len().saturating_sub(1)]
            .iter()
            .rposition(|&byte| byte == b'\n')
            .map_or(0, |position| position + 1);
        if let Some(found) = find_ignore_case(&bytes[last_line_start..], b" RETURN (") {
            let start = last_line_start + found;
            if let Some((options, status, end)) = atom_list(&bytes, start + 8) {
                extracted.list_return = options
                    .into_iter()
                    .map(|option| option.to_ascii_uppercase())
                    .filter(|option| option != "STATUS")
                    .collect();
                extracted.list_status = status;
                bytes.drain(start..end);
            }
        }
    } else if name == b"CREATE" {
        let last_line_start = bytes[..bytes.len().saturating_sub(1)]
            .iter()
            .rposition(|&byte| byte == b'\n')
            .map_or(0, |position| position + 1);
        if let Some(found) = find_ignore_case(&bytes[last_line_start..], b" (USE (") {
            let start = last_line_start + found;
            if let Some((_, uses, end)) = atom_list(&bytes, start + 1) {
                extracted.create_use = Some(
                    uses.unwrap_or_default()
                        .into_iter()
                        .map(|attribute| attribute.to_ascii_lowercase())
                        .collect(),
                );
                bytes.drain(start..end);
            }
        }
    }
    let positions = saved_result_positions(&bytes);
    if !positions.is_empty() {
        extracted.saved_result_used = true;
        let marker = SAVED_RESULT_MARKER.to_string();
        for position in positions.into_iter().rev() {
            bytes.splice(position..position + 1, marker.bytes());
        }
    }
    (bytes, extracted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(command: &str) -> (String, Extracted) {
        let (rest, extracted) = extract(command.as_bytes());
        (String::from_utf8_lossy(&rest).into_owned(), extracted)
    }

    #[test]
    fn search_return() {
        let (rest, extracted) = check("a UID SEARCH RETURN (MIN count) UNSEEN\r\n");
        assert_eq!(rest, "a UID SEARCH UNSEEN\r\n");
        assert_eq!(
            extracted.search_return,
            Some(vec!["MIN".to_owned(), "COUNT".to_owned()])
        );
        let (rest, extracted) = check("a SEARCH RETURN () ALL\r\n");
        assert_eq!(rest, "a SEARCH ALL\r\n");
        assert_eq!(extracted.search_return, Some(vec![]));
    }

    #[test]
    fn list_options() {
        let (rest, extracted) = check(
            "a LIST (SUBSCRIBED) \"\" \"*\" RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN))\r\n",
        );
        assert_eq!(rest, "a LIST \"\" \"*\"\r\n");
        assert_eq!(extracted.list_selection, vec!["SUBSCRIBED".to_owned()]);
        assert_eq!(extracted.list_return, vec!["SPECIAL-USE".to_owned()]);
        assert_eq!(
            extracted.list_status,
            Some(vec!["MESSAGES".to_owned(), "UNSEEN".to_owned()])
        );
    }

    #[test]
    fn saved_result() {
        let (rest, extracted) = check("a UID FETCH $ (FLAGS)\r\n");
        assert_eq!(rest, "a UID FETCH 4294967295 (FLAGS)\r\n");
        assert!(extracted.saved_result_used);
        let (rest, _) = check("a SEARCH RETURN (SAVE) UID $ OR $ 1:5 SUBJECT $ HEADER $ $\r\n");
        assert_eq!(
            rest,
            "a SEARCH UID 4294967295 OR 4294967295 1:5 SUBJECT $ HEADER $ $\r\n"
        );
        // Keywords, quoted strings and literals are not sets.
        let (rest, extracted) =
            check("a STORE 1 +FLAGS ($Forwarded)\r\nb SEARCH TEXT \"$\" BODY {1}\r\n$ $\r\n");
        assert_eq!(
            rest,
            "a STORE 1 +FLAGS ($Forwarded)\r\nb SEARCH TEXT \"$\" BODY {1}\r\n$ 4294967295\r\n"
        );
        assert!(extracted.saved_result_used);
        let (rest, extracted) = check("$ NOOP\r\n");
        assert_eq!(rest, "$ NOOP\r\n");
        assert!(!extracted.saved_result_used);
    }

    #[test]
    fn create_use() {
        let (rest, extracted) = check("a CREATE MySent (USE (\\Sent))\r\n");
        assert_eq!(rest, "a CREATE MySent\r\n");
        assert_eq!(extracted.create_use, Some(vec!["\\sent".to_owned()]));
    }
}
