//! The IMAP ENVELOPE of a message (RFC 9051 §7.5.2, RFC 3501 §7.4.2), kept raw.
//!
//! This module owns `Envelope`, `EnvelopeAddress` and the RFC 5322 §3.4 address-list
//! syntax needed to split From/To/... into IMAP address structures. Values are kept as the
//! header has them, the way IMAP servers send them: unfolded and trimmed, RFC 2047 encoded
//! words not decoded, 8-bit bytes kept. It must not decode anything (decoded, display-ready
//! values are in `decoded_fields`) and must not apply FETCH-time rules: RFC 3501 says that
//! when Sender or Reply-To is absent or empty the server returns From in its place; that
//! is done by the IMAP layer when it writes the ENVELOPE, so here `sender` and `reply_to`
//! hold only what those headers say (usually nothing).

use serde::{Deserialize, Serialize};

use crate::header_index::{HeaderBlock, field_value, unfolded_value};
use crate::limits::{ADDRESSES_MAX, LIST_FIELD_BYTES_MAX};
use crate::raw_bytes::RawBytes;

/// ENVELOPE fields in IMAP order. `None` (or an empty list) is NIL: the header is absent,
/// or for address lists present but with no address in it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub date: Option<RawBytes>,
    pub subject: Option<RawBytes>,
    pub from: Vec<EnvelopeAddress>,
    /// Only what the Sender header says; the IMAP layer substitutes `from` when empty.
    pub sender: Vec<EnvelopeAddress>,
    /// Only what the Reply-To header says; the IMAP layer substitutes `from` when empty.
    pub reply_to: Vec<EnvelopeAddress>,
    pub to: Vec<EnvelopeAddress>,
    pub cc: Vec<EnvelopeAddress>,
    pub bcc: Vec<EnvelopeAddress>,
    pub in_reply_to: Option<RawBytes>,
    pub message_id: Option<RawBytes>,
}

/// One IMAP address structure: `(name adl mailbox host)`.
///
/// Group syntax is represented as IMAP does (RFC 3501 §7.4.2): a group starts with an
/// entry whose `host` is `None` and whose `mailbox` holds the group name, and ends with an
/// entry whose fields are all `None`. A real address always has `Some` host, empty when
/// the address has no domain, so it is never mistaken for a group marker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeAddress {
    /// Display name with the quotes of quoted strings removed, words separated by one
    /// space, encoded words kept; the last comment, as in `addr (Name)`, when there is no
    /// display name.
    pub name: Option<RawBytes>,
    /// Obsolete source route (`@a,@b`) of RFC 5322 §4.4, without the trailing colon.
    pub adl: Option<RawBytes>,
    /// Local part as written (a quoted local part keeps its quotes), or the group name.
    pub mailbox: Option<RawBytes>,
    pub host: Option<RawBytes>,
}

impl Envelope {
    /// Bytes of all values, for the summary's size budget.
    pub(crate) fn value_bytes(&self) -> usize {
        let text = |value: &Option<RawBytes>| value.as_ref().map_or(0, |bytes| bytes.0.len());
        let addresses = |list: &[EnvelopeAddress]| {
            list.iter()
                .map(|address| {
                    text(&address.name)
                        + text(&address.adl)
                        + text(&address.mailbox)
                        + text(&address.host)
                })
                .sum::<usize>()
        };
        text(&self.date)
            + text(&self.subject)
            + text(&self.in_reply_to)
            + text(&self.message_id)
            + addresses(&self.from)
            + addresses(&self.sender)
            + addresses(&self.reply_to)
            + addresses(&self.to)
            + addresses(&self.cc)
            + addresses(&self.bcc)
    }
}

impl EnvelopeAddress {
    pub fn is_group_start(&self) -> bool {
        self.host.is_none() && self.mailbox.is_some()
    }

    pub fn is_group_end(&self) -> bool {
        self.host.is_none() && self.mailbox.is_none()
    }
}

/// Builds the envelope from the first occurrence of each field in `block`.
pub(crate) fn envelope_from_header(raw: &[u8], block: &HeaderBlock) -> Envelope {
    let text = |name: &str| {
        block
            .first(raw, name)
            .map(|span| RawBytes::from_header(&unfolded_value(field_value(raw, &span))))
    };
    let addresses = |name: &str| {
        block
            .first(raw, name)
            .map(|span| {
                let value = field_value(raw, &span);
                let value = value.get(..LIST_FIELD_BYTES_MAX).unwrap_or(value);
                parse_address_list(&unfolded_value(value))
            })
            .unwrap_or_default()
    };
    Envelope {
        date: text("Date"),
        subject: text("Subject"),
        from: addresses("From"),
        sender: addresses("Sender"),
        reply_to: addresses("Reply-To"),
        to: addresses("To"),
        cc: addresses("Cc"),
        bcc: addresses("Bcc"),
        in_reply_to: text("In-Reply-To"),
        message_id: text("Message-ID"),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenKind {
    /// A run of atom text; dots included, so dot-atoms and obsolete phrases stay whole.
    Word,
    /// A quoted string; `content` has the quotes removed and quoted-pairs undone.
    Quoted(Vec<u8>),
    /// A comment; `content` is what is between the outer parentheses.
    Comment(Vec<u8>),
    /// `[...]` domain literal.
    DomainLiteral,
    /// One of `<>@,;:`.
    Special(u8),
}

#[derive(Debug, Clone)]
struct Token<'a> {
    kind: TokenKind,
    /// The token's bytes as written.
    raw: &'a [u8],
    /// White space came before it, which a phrase keeps as one space.
    after_white_space: bool,
}

/// Splits an unfolded address header value into RFC 5322 lexical tokens. Lenient: an
/// unterminated quoted string, comment or domain literal runs to the end.
struct Tokens<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let mut after_white_space = false;
        while self
            .bytes
            .get(self.position)
            .is_some_and(u8::is_ascii_whitespace)
        {
            self.position += 1;
            after_white_space = true;
        }
        let start = self.position;
        let first = *self.bytes.get(start)?;
        self.position += 1;
        let kind = match first {
            b'<' | b'>' | b'@' | b',' | b';' | b':' => TokenKind::Special(first),
            b'"' => {
                let mut content = Vec::new();
                while let Some(&byte) = self.bytes.get(self.position) {
                    self.position += 1;
                    match byte {
                        b'"' => break,
                        b'\\' => {
                            if let Some(&escaped) = self.bytes.get(self.position) {
                                content.push(escaped);
                                self.position += 1;
                            }
                        }
                        _ => content.push(byte),
                    }
                }
                TokenKind::Quoted(content)
            }
            b'(' => {
                let mut depth = 1usize;
                let content_start = self.position;
                let mut content_end = self.bytes.len();
                while let Some(&byte) = self.bytes.get(self.position) {
                    self.position += 1;
                    match byte {
                        b'\\' => self.position += 1,
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                content_end = self.position - 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                self.position = self.position.min(self.bytes.len());
                let content = self
                    .bytes
                    .get(content_start..content_end)
                    .unwrap_or_default();
                TokenKind::Comment(content.to_vec())
            }
            b'[' => {
                while let Some(&byte) = self.bytes.get(self.position) {
                    self.position += 1;
                    if byte == b']' {
                        break;
                    }
                }
                TokenKind::DomainLiteral
            }
            _ => {
                while let Some(&byte) = self.bytes.get(self.position) {
                    if byte.is_ascii_whitespace() || b"<>@,;:\"([".contains(&byte) {
                        break;
                    }
                    self.position += 1;
                }
                TokenKind::Word
            }
        };
        Some(Token {
            kind,
            raw: self.bytes.get(start..self.position).unwrap_or_default(),
            after_white_space,
        })
    }
}

/// Parses an unfolded address-list value (RFC 5322 §3.4, with the obsolete forms of §4.4
/// that still occur) into IMAP address structures, group markers included. Never fails:
/// whatever does not parse yields the closest address, and empty items are dropped.
pub(crate) fn parse_address_list(value: &[u8]) -> Vec<EnvelopeAddress> {
    let mut addresses = Vec::new();
    let mut item: Vec<Token<'_>> = Vec::new();
    let mut in_group = false;
    let mut in_angle = false;
    for token in (Tokens {
        bytes: value,
        position: 0,
    }) {
        if addresses.len() >= ADDRESSES_MAX {
            return addresses;
        }
        match token.kind {
            TokenKind::Special(b'<') => in_angle = true,
            TokenKind::Special(b'>') => in_angle = false,
            TokenKind::Special(b':') if !in_angle && !in_group && !has_special(&item, b'@') => {
                // `display-name ":" [group-list] ";"` (RFC 5322 §3.4).
                addresses.push(EnvelopeAddress {
                    mailbox: Some(RawBytes::from_header(&phrase(&item))),
                    ..EnvelopeAddress::default()
                });
                in_group = true;
                item.clear();
                continue;
            }
            TokenKind::Special(b',') if !in_angle => {
                addresses.extend(address_from_item(&item));
                item.clear();
                continue;
            }
            TokenKind::Special(b';') if !in_angle => {
                addresses.extend(address_from_item(&item));
                item.clear();
                if in_group {
                    addresses.push(EnvelopeAddress::default());
                    in_group = false;
                }
                continue;
            }
            _ => {}
        }
        item.push(token);
    }
    addresses.extend(address_from_item(&item));
    if in_group {
        // An unterminated group still needs its end marker for the IMAP structure to balance.
        addresses.push(EnvelopeAddress::default());
    }
    addresses.truncate(ADDRESSES_MAX);
    addresses
}

fn has_special(tokens: &[Token<'_>], special: u8) -> bool {
    tokens
        .iter()
        .any(|token| token.kind == TokenKind::Special(special))
}

/// One mailbox from the tokens between two separators; `None` when there is nothing but
/// white space and comments.
fn address_from_item(item: &[Token<'_>]) -> Option<EnvelopeAddress> {
    let has_content = item
        .iter()
        .any(|token| !matches!(token.kind, TokenKind::Comment(_)));
    if !has_content {
        return None;
    }
    // `addr (Name)`: the comment after the address is the old way to give a name.
    let last_comment = item.iter().rev().find_map(|token| match &token.kind {
        TokenKind::Comment(content) => Some(content.as_slice()),
        _ => None,
    });
    let angle = item
        .iter()
        .position(|token| token.kind == TokenKind::Special(b'<'));
    let (display_name, address_tokens) = match angle {
        Some(open) => {
            let before = item.get(..open).unwrap_or_default();
            let inside = item.get(open + 1..).unwrap_or_default();
            let close = inside
                .iter()
                .position(|token| token.kind == TokenKind::Special(b'>'))
                .unwrap_or(inside.len());
            (phrase(before), inside.get(..close).unwrap_or_default())
        }
        None => (Vec::new(), item),
    };
    // Obsolete route: `<@a,@b:local@host>` (RFC 5322 §4.4).
    let route_colon = address_tokens
        .iter()
        .rposition(|token| token.kind == TokenKind::Special(b':'));
    let (route, address_spec) = match route_colon {
        Some(colon) => (
            Some(concatenated(
                address_tokens.get(..colon).unwrap_or_default(),
            )),
            address_tokens.get(colon + 1..).unwrap_or_default(),
        ),
        None => (None, address_tokens),
    };
    let at = address_spec
        .iter()
        .rposition(|token| token.kind == TokenKind::Special(b'@'));
    let (mailbox, host) = match at {
        Some(at) => (
            concatenated(address_spec.get(..at).unwrap_or_default()),
            concatenated(address_spec.get(at + 1..).unwrap_or_default()),
        ),
        None => (concatenated(address_spec), Vec::new()),
    };
    let name = if display_name.is_empty() {
        last_comment
            .map(crate::header_index::trim_white_space)
            .filter(|comment| !comment.is_empty())
            .map(RawBytes::from_header)
    } else {
        Some(RawBytes::from_header(&display_name))
    };
    Some(EnvelopeAddress {
        name,
        adl: route
            .filter(|route| !route.is_empty())
            .map(|route| RawBytes::from_header(&route)),
        mailbox: Some(RawBytes::from_header(&mailbox)),
        host: Some(RawBytes::from_header(&host)),
    })
}

/// A display name: words and quoted-string contents, one space where the source had white
/// space, comments dropped.
fn phrase(tokens: &[Token<'_>]) -> Vec<u8> {
    let mut text = Vec::new();
    for token in tokens {
        let bytes = match &token.kind {
            TokenKind::Comment(_) => continue,
            TokenKind::Quoted(content) => content.as_slice(),
            _ => token.raw,
        };
        if token.after_white_space && !text.is_empty() {
            text.push(b' ');
        }
        text.extend_from_slice(bytes);
    }
    text
}

/// An address component as written, with comments, white space and stray angle brackets
/// removed (RFC 5322 allows CFWS around the dots and the `@`).
fn concatenated(tokens: &[Token<'_>]) -> Vec<u8> {
    let mut text = Vec::new();
    for token in tokens {
        match token.kind {
            TokenKind::Comment(_) | TokenKind::Special(b'<' | b'>') => {}
            _ => text.extend_from_slice(token.raw),
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(value: &str) -> String {
        let show = |field: &Option<RawBytes>| match field {
            None => "NIL".to_owned(),
            Some(bytes) => format!("{:?}", bytes),
        };
        parse_address_list(value.as_bytes())
            .iter()
            .map(|address| {
                format!(
                    "({} {} {} {})",
                    show(&address.name),
                    show(&address.adl),
                    show(&address.mailbox),
                    show(&address.host)
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn address_forms() {
        assert_eq!(
            rendered("\"Doe, John\" <john.doe@example.com>, jane@example.org (Jane)"),
            "(\"Doe, John\" NIL \"john.doe\" \"example.com\") (\"Jane\" NIL \"jane\" \"example.org\")"
        );
        assert_eq!(
            rendered("A Group:Ed Jones <c@a.test>,joe@where.test;, x@y"),
            "(NIL NIL \"A Group\" NIL) (\"Ed Jones\" NIL \"c\" \"a.test\") \
             (NIL NIL \"joe\" \"where.test\") (NIL NIL NIL NIL) (NIL NIL \"x\" \"y\")"
        );
        assert_eq!(
            rendered("undisclosed-recipients:;"),
            "(NIL NIL \"undisclosed-recipients\" NIL) (NIL NIL NIL NIL)"
        );
        assert_eq!(
            rendered("=?utf-8?q?J=C3=B6rg?=  Smith <@r1.test,@r2.test:\"j s\"@[1.2.3.4]>"),
            "(\"=?utf-8?q?J=C3=B6rg?= Smith\" \"@r1.test,@r2.test\" \"\\\"j s\\\"\" \"[1.2.3.4]\")"
        );
        assert_eq!(rendered("nobody"), "(NIL NIL \"nobody\" \"\")");
        assert_eq!(rendered(" , (just a comment) ,"), "");
        assert_eq!(
            rendered("g: a@b"),
            "(NIL NIL \"g\" NIL) (NIL NIL \"a\" \"b\") (NIL NIL NIL NIL)"
        );
        // An unterminated quoted string swallows the rest; the result is still one address.
        assert_eq!(
            rendered("\"unterminated <a@b>"),
            "(NIL NIL \"\\\"unterminated <a@b>\" \"\")"
        );
    }
}
