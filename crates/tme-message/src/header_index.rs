//! Finding the fields of a header block and where the block ends.
//!
//! This module owns the line-level view of a header (RFC 5322 §2.2): which bytes belong to
//! which field, including folded continuation lines, and where the blank line that ends the
//! header is. It records byte ranges only; it must not interpret field values (other modules
//! do that) and it never copies the message.

use serde::{Deserialize, Serialize};

use crate::limits::HEADER_FIELDS_MAX;

/// One field of the top-level header, so that `BODY[HEADER.FIELDS (...)]` can be served by
/// slicing the raw message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderField {
    /// The field name as written (case kept, whitespace before the colon dropped).
    pub name: String,
    /// Offset of the first byte of the field name in the raw message.
    pub start: u64,
    /// Offset just past the field's final line break (continuation lines included), so
    /// `raw[start..end]` is the whole field as IMAP returns it.
    pub end: u64,
}

/// Byte positions of one field, absolute in the raw message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldSpan {
    pub start: usize,
    pub name_end: usize,
    /// Just past the colon.
    pub value_start: usize,
    /// Just past the last line break of the field (or the end of the scanned range).
    pub end: usize,
}

/// Field names that summarizing looks up. Past `HEADER_FIELDS_MAX` their first occurrence
/// is still recorded (in `late_fields`), so a header stuffed with junk fields cannot hide
/// the Subject or the Content-Type.
const LOOKED_UP_FIELDS: &[&str] = &[
    "Date",
    "Subject",
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Bcc",
    "In-Reply-To",
    "Message-ID",
    "References",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-ID",
    "Content-Description",
    "Content-MD5",
    "Content-Disposition",
    "Content-Language",
    "Content-Location",
];

/// The fields of one header block and where its body starts.
#[derive(Debug)]
pub(crate) struct HeaderBlock {
    /// The first `HEADER_FIELDS_MAX` fields, in order.
    pub fields: Vec<FieldSpan>,
    /// After those, the first occurrence of each of `LOOKED_UP_FIELDS` (at most one each).
    late_fields: Vec<FieldSpan>,
    /// Just past the blank line that ends the header; the end of the scanned range when
    /// there is no blank line (then the whole range is header and the body is empty).
    pub body_start: usize,
    /// More than `HEADER_FIELDS_MAX` fields: the later ones are not in `fields`.
    pub fields_truncated: bool,
}

impl HeaderBlock {
    /// Scans the header that starts at `start`, looking no further than `end`.
    ///
    /// A line that starts with a space or tab continues the field before it (RFC 5322
    /// §2.2.3). An empty line (LF, CRLF) ends the header. A line that is neither and has no
    /// valid field name before a colon (an mbox `From ` line, garbage) belongs to the header
    /// but is not a field, as are its continuation lines.
    pub fn scan(raw: &[u8], start: usize, end: usize) -> HeaderBlock {
        let end = end.min(raw.len());
        let mut fields = Vec::new();
        let mut late_fields: Vec<FieldSpan> = Vec::new();
        let mut fields_truncated = false;
        let mut position = start.min(end);
        loop {
            if position >= end {
                return HeaderBlock {
                    fields,
                    late_fields,
                    body_start: end,
                    fields_truncated,
                };
            }
            let line_after = line_end(raw, position, end);
            let line = raw.get(position..line_after).unwrap_or_default();
            if is_blank_line(line) {
                return HeaderBlock {
                    fields,
                    late_fields,
                    body_start: line_after,
                    fields_truncated,
                };
            }
            let field_start = position;
            position = line_after;
            // Gather continuation lines whatever the first line turns out to be.
            while position < end && matches!(raw.get(position), Some(b' ' | b'\t')) {
                position = line_end(raw, position, end);
            }
            let Some((name_end, value_start)) = field_name_bounds(line) else {
                continue;
            };
            let span = FieldSpan {
                start: field_start,
                name_end: field_start + name_end,
                value_start: field_start + value_start,
                end: position,
            };
            if fields.len() < HEADER_FIELDS_MAX {
                fields.push(span);
                continue;
            }
            fields_truncated = true;
            let name = field_name(raw, &span);
            let is_looked_up = LOOKED_UP_FIELDS
                .iter()
                .any(|wanted| name.eq_ignore_ascii_case(wanted.as_bytes()));
            let is_first_late = !late_fields
                .iter()
                .any(|late| field_name(raw, late).eq_ignore_ascii_case(name));
            if is_looked_up && is_first_late {
                late_fields.push(span);
            }
        }
    }

    /// The first field called `name` (compared ignoring ASCII case). Past
    /// `HEADER_FIELDS_MAX` fields, only names in `LOOKED_UP_FIELDS` are found.
    pub fn first(&self, raw: &[u8], name: &str) -> Option<FieldSpan> {
        self.fields
            .iter()
            .chain(&self.late_fields)
            .find(|span| field_name(raw, span).eq_ignore_ascii_case(name.as_bytes()))
            .copied()
    }
}

/// The name bytes of a field, as written.
pub(crate) fn field_name<'a>(raw: &'a [u8], span: &FieldSpan) -> &'a [u8] {
    raw.get(span.start..span.name_end).unwrap_or_default()
}

/// The value bytes of a field: everything after the colon, folds and final line break
/// included.
pub(crate) fn field_value<'a>(raw: &'a [u8], span: &FieldSpan) -> &'a [u8] {
    raw.get(span.value_start..span.end).unwrap_or_default()
}

/// The value unfolded (RFC 5322 §2.2.3: remove each CRLF that precedes white space; here
/// every LF and the CR before it, since inside one field every line break is a fold) and
/// with leading and trailing white space removed.
pub(crate) fn unfolded_value(value: &[u8]) -> Vec<u8> {
    let mut unfolded = Vec::with_capacity(value.len());
    let mut index = 0;
    while let Some(&byte) = value.get(index) {
        let is_line_break =
            byte == b'\n' || (byte == b'\r' && value.get(index + 1) == Some(&b'\n'));
        if !is_line_break {
            unfolded.push(byte);
        }
        index += 1;
    }
    trim_white_space(&unfolded).to_vec()
}

pub(crate) fn trim_white_space(bytes: &[u8]) -> &[u8] {
    let is_white_space = |byte: &u8| matches!(byte, b' ' | b'\t' | b'\r' | b'\n');
    let start = bytes.iter().position(|byte| !is_white_space(byte));
    let end = bytes.iter().rposition(|byte| !is_white_space(byte));
    match (start, end) {
        (Some(start), Some(end)) => bytes.get(start..=end).unwrap_or_default(),
        _ => &[],
    }
}

/// Just past the next LF at or after `position`, or `end` when there is none.
pub(crate) fn line_end(raw: &[u8], position: usize, end: usize) -> usize {
    raw.get(position..end)
        .and_then(|rest| rest.iter().position(|&byte| byte == b'\n'))
        .map_or(end, |offset| position + offset + 1)
}

/// A line with nothing but its line break (a lone CR counts as nothing, for CRCRLF damage).
fn is_blank_line(line: &[u8]) -> bool {
    line.iter().all(|&byte| byte == b'\r' || byte == b'\n')
}

/// For a field's first line, the end of the name (trailing white space before the colon
/// dropped, as the obsolete syntax of RFC 5322 §4.5 allows) and the position just past the
/// colon; `None` when the text before the colon is not a field name (RFC 5322 §3.6.8:
/// printable US-ASCII other than the colon, no spaces).
fn field_name_bounds(line: &[u8]) -> Option<(usize, usize)> {
    let colon = line.iter().position(|&byte| byte == b':')?;
    let name = line.get(..colon)?;
    let name_end = name
        .iter()
        .rposition(|&byte| byte != b' ' && byte != b'\t')
        .map(|last| last + 1)?;
    let name = name.get(..name_end)?;
    name.iter()
        .all(|&byte| (0x21..=0x7E).contains(&byte))
        .then_some((name_end, colon + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_fields_and_blank_line() {
        let raw = b"Subject: a\r\n b\r\nFrom x\r\nTo : y\r\n\r\nbody";
        let block = HeaderBlock::scan(raw, 0, raw.len());
        assert_eq!(block.fields.len(), 2);
        assert_eq!(
            &raw[block.fields[0].start..block.fields[0].end],
            b"Subject: a\r\n b\r\n"
        );
        assert_eq!(field_name(raw, &block.fields[1]), b"To");
        assert_eq!(&raw[block.body_start..], b"body");
        assert_eq!(unfolded_value(field_value(raw, &block.fields[0])), b"a b");
    }

    #[test]
    fn no_blank_line_means_all_header() {
        let raw = b"Subject: a";
        let block = HeaderBlock::scan(raw, 0, raw.len());
        assert_eq!(block.body_start, raw.len());
        assert_eq!(block.fields[0].end, raw.len());
    }
}
