//! The MIME body-structure tree with byte offsets into the raw message.
//!
//! This module owns `BodyPart` and the walk that builds it: finding each part's header and
//! body, multipart delimiters (RFC 2046 §5.1.1) and encapsulated messages (RFC 2046
//! §5.2.1), with the RFC 2045 defaults, under the limits of `limits`. Offsets follow the
//! IMAP section semantics of RFC 3501 §6.4.5 / RFC 9051 §6.4.5 so that every `BODY[...]`
//! section is a slice of the raw message. It must not decode bodies or copy them; it reads
//! the raw bytes and writes offsets and header values only.
//!
//! The walk is done here rather than with mail-parser's part tree because that tree does
//! not suit untrusted input stored for IMAP: its header parser can run past the end of a
//! header (after `Date: ... UT` it takes the whole body for header, so its body offset is
//! wrong), it matches a boundary anywhere in a line and as a prefix of a longer one, gives
//! the parts of an encoded message/rfc822 offsets into the decoded bytes, keeps offsets in
//! `u32`, decodes every part body, allocates about 175 bytes per part however small the
//! part (a 5 MB message of a million empty parts costs 175 MB), and
//! drops nested messages recursively (300,000 nested message/rfc822 headers, 9 MB,
//! overflow an 8 MiB stack in a release build; 30,000 overflow a 2 MiB thread stack in a
//! debug build).

use serde::{Deserialize, Serialize};

use crate::envelope::{Envelope, envelope_from_header};
use crate::header_index::{HeaderBlock, field_value, line_end, unfolded_value};
use crate::limits::{BOUNDARY_BYTES_MAX, NESTING_DEPTH_MAX, PART_VALUE_BYTES_TOTAL_MAX, PARTS_MAX};
use crate::mime_fields::{
    Parameter, parameter_value, parse_content_type, parse_disposition, parse_language_list,
    parse_token_field,
};
use crate::raw_bytes::RawBytes;

/// One node of the body structure: what IMAP BODYSTRUCTURE says about a part, and where
/// its header and body are in the raw message.
///
/// Type and subtype are kept as written (case kept, as Dovecot sends them); compare them
/// with [`BodyPart::is_media_type`]. When Content-Type is missing or has no usable
/// `type/subtype`, RFC 2045 §5.2 applies: `text/plain; charset=us-ascii`, or
/// `message/rfc822` with no parameters for a part directly inside multipart/digest
/// (RFC 2046 §5.1.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyPart {
    pub content_type: String,
    pub content_subtype: String,
    /// Content-Type parameters in header order (for a multipart, `boundary` among them).
    pub content_type_parameters: Vec<Parameter>,
    /// Content-ID as written, angle brackets included.
    pub content_id: Option<RawBytes>,
    /// Content-Description as written (encoded words not decoded).
    pub content_description: Option<RawBytes>,
    /// As written; `7bit` when the header is missing (RFC 2045 §6.1).
    pub content_transfer_encoding: String,
    pub content_md5: Option<RawBytes>,
    pub disposition: Option<Disposition>,
    /// Content-Language tags (RFC 3282).
    pub language: Vec<String>,
    /// Content-Location as written (RFC 2557).
    pub location: Option<RawBytes>,
    /// Offset of the part's MIME header: `raw[header_start..body_start]` is `BODY[n.MIME]`
    /// (for the top-level part, and for the root of a nested message, the message header,
    /// `BODY[HEADER]` or `BODY[n.HEADER]`).
    pub header_start: u64,
    /// Just past the blank line ending the header; equals `body_end` when the part has no
    /// blank line (then it is all header).
    pub body_start: u64,
    /// `raw[body_start..body_end]` is `BODY[n]` (for a nested message root, `BODY[n.TEXT]`).
    /// Inside a multipart it stops before the line break that precedes the next delimiter
    /// (RFC 2046 §5.1.1), so it includes no trailing CRLF of the delimiter's.
    pub body_end: u64,
    /// `body_end - body_start`: the body size IMAP reports, in its transfer encoding.
    pub body_size_octets: u64,
    /// Lines in the body: its line feeds (a last line without one is not counted, as Dovecot
    /// counts; RFC 3501 leaves it open). Counted for every part that is not a multipart;
    /// IMAP sends it for text/* and message/rfc822.
    pub body_lines: u64,
    /// For a multipart, its parts in order. Empty for other parts, and also for a
    /// multipart without a usable boundary or delimiter, or one cut by `NESTING_DEPTH_MAX`:
    /// IMAP cannot express a multipart with no parts, so the IMAP layer describes such a
    /// part as an empty text/plain part, as Dovecot does.
    pub children: Vec<BodyPart>,
    /// For message/rfc822 and message/global with an identity transfer encoding (7bit,
    /// 8bit, binary; RFC 2046 §5.2.1), the encapsulated message. `None` for other parts,
    /// and for an encapsulated message that is base64 or quoted-printable (RFC 6532 §3.5
    /// allows it for message/global; offsets into decoded bytes could not serve `BODY[]`) or
    /// is cut by the limits: the IMAP layer then describes the part as a basic part,
    /// since body-type-msg needs an envelope and a body.
    pub message: Option<Box<NestedMessage>>,
}

/// An encapsulated message: its envelope and the root part of its body. The root's
/// `header_start` is the enclosing part's `body_start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NestedMessage {
    pub envelope: Envelope,
    pub body: BodyPart,
}

/// Content-Disposition (RFC 2183): its type as written and its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disposition {
    pub disposition_type: String,
    pub parameters: Vec<Parameter>,
}

impl BodyPart {
    /// Whether the part is `type_name/subtype_name`, ASCII case ignored.
    pub fn is_media_type(&self, type_name: &str, subtype_name: &str) -> bool {
        self.content_type.eq_ignore_ascii_case(type_name)
            && self.content_subtype.eq_ignore_ascii_case(subtype_name)
    }

    pub fn is_multipart(&self) -> bool {
        self.content_type.eq_ignore_ascii_case("multipart")
    }

    /// `type/subtype` in lower case, as JMAP reports it.
    pub fn media_type_lowercase(&self) -> String {
        format!("{}/{}", self.content_type, self.content_subtype).to_ascii_lowercase()
    }

    /// The first Content-Type parameter called `name`, ASCII case ignored.
    pub fn content_type_parameter(&self, name: &str) -> Option<&RawBytes> {
        parameter_value(&self.content_type_parameters, name)
    }

    /// Whether Content-Disposition says `attachment`.
    pub fn is_disposition_attachment(&self) -> bool {
        self.disposition.as_ref().is_some_and(|disposition| {
            disposition
                .disposition_type
                .eq_ignore_ascii_case("attachment")
        })
    }

    /// Bytes of the header values the part keeps, for the summary's size budget.
    fn value_bytes(&self) -> usize {
        let text = |value: &Option<RawBytes>| value.as_ref().map_or(0, |bytes| bytes.0.len());
        let parameters = |list: &[Parameter]| {
            list.iter()
                .map(|parameter| parameter.name.len() + parameter.value.0.len())
                .sum::<usize>()
        };
        self.content_type.len()
            + self.content_subtype.len()
            + parameters(&self.content_type_parameters)
            + text(&self.content_id)
            + text(&self.content_description)
            + self.content_transfer_encoding.len()
            + text(&self.content_md5)
            + self.disposition.as_ref().map_or(0, |disposition| {
                disposition.disposition_type.len() + parameters(&disposition.parameters)
            })
            + self.language.iter().map(String::len).sum::<usize>()
            + text(&self.location)
    }

    /// Byte range of `BODY[n.MIME]` (the part header with its blank line).
    pub fn mime_header_range(&self) -> std::ops::Range<u64> {
        self.header_start..self.body_start
    }

    /// Byte range of `BODY[n]`.
    pub fn body_range(&self) -> std::ops::Range<u64> {
        self.body_start..self.body_end
    }
}

/// Which default applies when a part has no usable Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DefaultMediaType {
    TextPlain,
    /// Inside multipart/digest (RFC 2046 §5.1.5).
    MessageRfc822,
}

/// Builds body-structure trees, counting parts against `PARTS_MAX`.
#[derive(Debug)]
pub(crate) struct StructureWalker<'a> {
    raw: &'a [u8],
    parts_remaining: usize,
    /// What is left of `PART_VALUE_BYTES_TOTAL_MAX`.
    value_bytes_remaining: usize,
    /// A limit cut the tree somewhere.
    pub limits_reached: bool,
}

impl<'a> StructureWalker<'a> {
    pub fn new(raw: &'a [u8]) -> StructureWalker<'a> {
        StructureWalker {
            raw,
            parts_remaining: PARTS_MAX,
            value_bytes_remaining: PART_VALUE_BYTES_TOTAL_MAX,
            limits_reached: false,
        }
    }

    /// The top-level part of a message whose header `block` was scanned from offset 0.
    pub fn top_level_part(&mut self, block: &HeaderBlock) -> BodyPart {
        self.part(block, 0, self.raw.len(), DefaultMediaType::TextPlain, 0)
    }

    /// One part spanning `header_start..end` whose header is `block`, at nesting `depth`.
    /// The header may reach past `end` by the line break that `end` excludes (see
    /// `children`); the body is then empty.
    fn part(
        &mut self,
        block: &HeaderBlock,
        header_start: usize,
        end: usize,
        default: DefaultMediaType,
        depth: usize,
    ) -> BodyPart {
        self.parts_remaining = self.parts_remaining.saturating_sub(1);
        let raw = self.raw;
        let body_start = block.body_start.max(header_start);
        let end = end.max(body_start);
        let value = |name: &str| {
            block
                .first(raw, name)
                .map(|span| unfolded_value(field_value(raw, &span)))
        };
        let raw_value = |name: &str| {
            value(name)
                .filter(|value| !value.is_empty())
                .map(|value| RawBytes::from_header(&value))
        };
        let (content_type, content_subtype, content_type_parameters) = match value("Content-Type")
            .as_deref()
            .and_then(parse_content_type)
        {
            Some(media) => (media.type_name, media.subtype_name, media.parameters),
            None => match default {
                DefaultMediaType::TextPlain => (
                    "text".to_owned(),
                    "plain".to_owned(),
                    vec![Parameter {
                        name: "charset".to_owned(),
                        value: RawBytes::from("us-ascii"),
                    }],
                ),
                DefaultMediaType::MessageRfc822 => {
                    ("message".to_owned(), "rfc822".to_owned(), Vec::new())
                }
            },
        };
        let mut part = BodyPart {
            content_type,
            content_subtype,
            content_type_parameters,
            content_id: raw_value("Content-ID"),
            content_description: raw_value("Content-Description"),
            content_transfer_encoding: value("Content-Transfer-Encoding")
                .as_deref()
                .and_then(parse_token_field)
                .unwrap_or_else(|| "7bit".to_owned()),
            content_md5: raw_value("Content-MD5"),
            disposition: value("Content-Disposition")
                .as_deref()
                .and_then(parse_disposition)
                .map(|(disposition_type, parameters)| Disposition {
                    disposition_type,
                    parameters,
                }),
            language: value("Content-Language")
                .as_deref()
                .map(parse_language_list)
                .unwrap_or_default(),
            location: raw_value("Content-Location"),
            header_start: header_start as u64,
            body_start: body_start as u64,
            body_end: end as u64,
            body_size_octets: (end - body_start) as u64,
            body_lines: 0,
            children: Vec::new(),
            message: None,
        };

        // Read before the budget may strip the parameters.
        let boundary = part
            .content_type_parameter("boundary")
            .map(|boundary| boundary.as_bytes().to_vec())
            .filter(|boundary| !boundary.is_empty() && boundary.len() <= BOUNDARY_BYTES_MAX);
        self.charge_part_values(&mut part);

        if part.is_multipart() {
            if let Some(boundary) = boundary {
                if depth >= NESTING_DEPTH_MAX {
                    self.limits_reached = true;
                } else {
                    let child_default = if part.content_subtype.eq_ignore_ascii_case("digest") {
                        DefaultMediaType::MessageRfc822
                    } else {
                        DefaultMediaType::TextPlain
                    };
                    part.children =
                        self.children(&boundary, body_start, end, child_default, depth + 1);
                }
            }
            return part;
        }

        part.body_lines = count_lines(raw.get(body_start..end).unwrap_or_default());
        let is_encapsulated_message = part.content_type.eq_ignore_ascii_case("message")
            && (part.content_subtype.eq_ignore_ascii_case("rfc822")
                || part.content_subtype.eq_ignore_ascii_case("global"));
        let is_identity_encoding = ["7bit", "8bit", "binary"].iter().any(|identity| {
            part.content_transfer_encoding
                .eq_ignore_ascii_case(identity)
        });
        if is_encapsulated_message && is_identity_encoding {
            if depth >= NESTING_DEPTH_MAX || self.parts_remaining == 0 {
                self.limits_reached = true;
            } else {
                let nested_block = HeaderBlock::scan(raw, body_start, end);
                let mut envelope = envelope_from_header(raw, &nested_block);
                let envelope_bytes = envelope.value_bytes();
                if envelope_bytes <= self.value_bytes_remaining {
                    self.value_bytes_remaining -= envelope_bytes;
                } else {
                    envelope = Envelope::default();
                    self.limits_reached = true;
                }
                let body = self.part(
                    &nested_block,
                    body_start,
                    end,
                    DefaultMediaType::TextPlain,
                    depth + 1,
                );
                part.message = Some(Box::new(NestedMessage { envelope, body }));
            }
        }
        part
    }

    /// Charges the part's header values to `PART_VALUE_BYTES_TOTAL_MAX`; when they do not
    /// fit, keeps only what reading the part needs (the charset) and drops the rest.
    fn charge_part_values(&mut self, part: &mut BodyPart) {
        let cost = part.value_bytes();
        if cost <= self.value_bytes_remaining {
            self.value_bytes_remaining -= cost;
            return;
        }
        self.limits_reached = true;
        part.content_type_parameters.retain(|parameter| {
            parameter.name.eq_ignore_ascii_case("charset") && parameter.value.0.len() <= 64
        });
        part.content_id = None;
        part.content_description = None;
        part.content_md5 = None;
        part.location = None;
        part.language.clear();
        if let Some(disposition) = &mut part.disposition {
            disposition.parameters.clear();
        }
        self.value_bytes_remaining = self
            .value_bytes_remaining
            .saturating_sub(part.value_bytes());
    }

    /// The parts of a multipart whose body is `body_start..end`.
    fn children(
        &mut self,
        boundary: &[u8],
        body_start: usize,
        end: usize,
        default: DefaultMediaType,
        depth: usize,
    ) -> Vec<BodyPart> {
        let mut delimiters = Delimiters {
            raw: self.raw,
            boundary,
            position: body_start,
            end,
        };
        let mut children = Vec::new();
        // Everything before the first delimiter is the preamble (RFC 2046 §5.1.1).
        let Some(mut delimiter) = delimiters.next() else {
            return children;
        };
        while !delimiter.is_close {
            if self.parts_remaining == 0 {
                self.limits_reached = true;
                break;
            }
            let child_start = delimiter.line_after;
            let next = delimiters.next();
            // A part without a closing delimiter (truncated message) runs to the end of
            // its parent.
            let child_end = next.as_ref().map_or(end, |next| {
                without_preceding_line_break(self.raw, next.line_start, child_start)
            });
            // The header may end on the very line break that precedes the next delimiter
            // (a part with an empty body: `...header\r\n\r\n--boundary`). That line break
            // is then both the header's blank line and the delimiter's CRLF: it is given
            // to the header, so `BODY[n.MIME]` ends with its blank line, and the body is
            // empty.
            let header_scan_end = next.as_ref().map_or(end, |next| next.line_start);
            let block = HeaderBlock::scan(self.raw, child_start, header_scan_end);
            children.push(self.part(&block, child_start, child_end, default, depth));
            match next {
                Some(next) => delimiter = next,
                None => break,
            }
        }
        children
    }
}

/// A delimiter line found in a multipart body.
#[derive(Debug)]
struct Delimiter {
    /// Offset of the `--` that starts the line.
    line_start: usize,
    /// Just past the line's line break: where the next part's header starts.
    line_after: usize,
    /// `--boundary--`: the end of the multipart.
    is_close: bool,
}

/// Finds delimiter lines one by one, reading each line of the multipart body once.
#[derive(Debug)]
struct Delimiters<'a> {
    raw: &'a [u8],
    boundary: &'a [u8],
    /// Always at the start of a line.
    position: usize,
    end: usize,
}

impl Iterator for Delimiters<'_> {
    type Item = Delimiter;

    fn next(&mut self) -> Option<Delimiter> {
        while self.position < self.end {
            let line_start = self.position;
            let line_after = line_end(self.raw, line_start, self.end);
            self.position = line_after;
            let line = self.raw.get(line_start..line_after).unwrap_or_default();
            if let Some(is_close) = delimiter_kind(line, self.boundary) {
                return Some(Delimiter {
                    line_start,
                    line_after,
                    is_close,
                });
            }
        }
        None
    }
}

/// Whether `line` is a delimiter line for `boundary` (RFC 2046 §5.1.1): `--boundary` at the
/// start of the line followed only by transport padding (white space) up to the line break
/// (`Some(false)`), or followed by `--` (`Some(true)`, the close delimiter). Requiring
/// white space after a delimiter keeps a boundary from matching a longer boundary that it
/// is a prefix of (`abc` against `--abcd`). After the close delimiter anything is
/// tolerated, because real mail has `--boundary--</BODY></HTML>`; the price is that a
/// boundary that is another one plus `--...` would be mistaken for its close delimiter,
/// which no common mail program produces.
fn delimiter_kind(line: &[u8], boundary: &[u8]) -> Option<bool> {
    let rest = line.strip_prefix(b"--")?.strip_prefix(boundary)?;
    if rest.starts_with(b"--") {
        return Some(true);
    }
    rest.iter()
        .all(|&byte| matches!(byte, b' ' | b'\t' | b'\r' | b'\n'))
        .then_some(false)
}

/// Where the part before a delimiter line ends: RFC 2046 §5.1.1 says the CRLF before
/// `--boundary` "is conceptually attached to the boundary", so it is not part of the
/// preceding body. Bare LF is accepted like CRLF. Never goes below `floor` (the part's
/// start), so a part with nothing between two delimiter lines is empty.
fn without_preceding_line_break(raw: &[u8], line_start: usize, floor: usize) -> usize {
    let mut end = line_start;
    if end > floor && raw.get(end - 1) == Some(&b'\n') {
        end -= 1;
        if end > floor && raw.get(end - 1) == Some(&b'\r') {
            end -= 1;
        }
    }
    end
}

/// Lines in `body`: each LF ends one, and a last line without LF counts too.
/// Line feeds in the body: a last line without a line break is not counted, as Dovecot
/// counts (inside a multipart every part's last line is such a line: the CRLF before the
/// delimiter belongs to the delimiter, RFC 2046 §5.1.1).
fn count_lines(body: &[u8]) -> u64 {
    body.iter().filter(|&&byte| byte == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiter_lines() {
        assert_eq!(delimiter_kind(b"--abc\r\n", b"abc"), Some(false));
        assert_eq!(delimiter_kind(b"--abc \t\n", b"abc"), Some(false));
        assert_eq!(delimiter_kind(b"--abc", b"abc"), Some(false));
        assert_eq!(delimiter_kind(b"--abc--\r\n", b"abc"), Some(true));
        assert_eq!(delimiter_kind(b"--abc-- \r\n", b"abc"), Some(true));
        assert_eq!(delimiter_kind(b"--abc--</BODY>\r\n", b"abc"), Some(true));
        assert_eq!(delimiter_kind(b"--abcd\r\n", b"abc"), None);
        assert_eq!(delimiter_kind(b" --abc\r\n", b"abc"), None);
    }

    #[test]
    fn line_counts() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"a"), 0);
        assert_eq!(count_lines(b"a\r\n"), 1);
        assert_eq!(count_lines(b"a\r\nb"), 1);
    }
}
