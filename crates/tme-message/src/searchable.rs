//! The text of a message that IMAP SEARCH BODY and TEXT look into (RFC 9051 §6.4.4), in
//! one place, so that the full-text index (`tme-search`) and the search that reads the
//! message (`tme-imap`) see the same text and so give the same answers.
//!
//! Two kinds of text: the **header** (the top-level header as it is stored, read as UTF-8
//! with U+FFFD for bytes that are not, and the decoded Subject and display names, so a
//! RFC 2047 encoded word is found by its text) and the **body** (every text/* part, nested
//! messages included, with its transfer encoding undone and its charset applied:
//! `decoded_text`). BODY looks into the body; TEXT into both.
//!
//! No I/O; the walk is bounded by `SEARCHABLE_PARTS_MAX` parts.

use std::ops::ControlFlow;

use crate::transfer_decoding::decoded_text;
use crate::{Addr, MessageSummary};

/// Parts visited at most (a summary holds at most `limits::PARTS_MAX` already).
pub const SEARCHABLE_PARTS_MAX: usize = 10_000;

/// Which of the two texts a piece belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchableKind {
    Header,
    Body,
}

/// Calls `visit` with each piece of searchable text of the message, the header's first
/// (only when `with_header`), until it breaks. `raw` is the message `summary` was made of.
pub fn for_each_searchable_text(
    raw: &[u8],
    summary: &MessageSummary,
    with_header: bool,
    mut visit: impl FnMut(SearchableKind, &str) -> ControlFlow<()>,
) {
    if with_header {
        let header_end = usize::try_from(summary.header_end).unwrap_or(raw.len());
        let header = String::from_utf8_lossy(raw.get(..header_end).unwrap_or(raw));
        if visit(SearchableKind::Header, &header).is_break() {
            return;
        }
        if let Some(subject) = &summary.subject
            && visit(SearchableKind::Header, subject).is_break()
        {
            return;
        }
        let lists = [
            &summary.from,
            &summary.sender,
            &summary.to,
            &summary.cc,
            &summary.bcc,
            &summary.reply_to,
        ];
        for name in lists
            .into_iter()
            .flatten()
            .filter_map(|address| address.name.as_deref())
        {
            if visit(SearchableKind::Header, name).is_break() {
                return;
            }
        }
    }
    let mut stack = vec![&summary.body];
    let mut visited = 0usize;
    while let Some(part) = stack.pop() {
        visited += 1;
        if visited > SEARCHABLE_PARTS_MAX {
            break;
        }
        if part.is_multipart() {
            stack.extend(part.children.iter());
            continue;
        }
        if let Some(message) = &part.message {
            stack.push(&message.body);
            continue;
        }
        if part.content_type.eq_ignore_ascii_case("text")
            && let Some(text) = decoded_text(raw, part)
            && visit(SearchableKind::Body, &text).is_break()
        {
            return;
        }
    }
}

/// Whether `haystack` holds `needle`, ignoring case: ASCII case for an ASCII needle,
/// Unicode lowercase otherwise (RFC 9051 §6.4.4: SEARCH strings match case-insensitively).
pub fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    let needle_lower: Vec<u8> = needle.iter().map(u8::to_ascii_lowercase).collect();
    let needle_text = String::from_utf8_lossy(needle).to_lowercase();
    if needle.is_ascii() {
        haystack.windows(needle.len()).any(|window| {
            window
                .iter()
                .zip(&needle_lower)
                .all(|(a, b)| a.to_ascii_lowercase() == *b)
        })
    } else {
        String::from_utf8_lossy(haystack)
            .to_lowercase()
            .contains(&needle_text)
    }
}

/// Whether an address of `list`, or its display name, holds `needle` (ignoring case).
pub fn addresses_contain(list: &[Addr], needle: &[u8]) -> bool {
    list.iter().any(|address| {
        contains_ignore_case(address.email.as_bytes(), needle)
            || address
                .name
                .as_ref()
                .is_some_and(|name| contains_ignore_case(name.as_bytes(), needle))
    })
}

/// Whether the searchable text of the message holds `needle` (ignoring case): its body,
/// and its header too when `with_header` (IMAP's BODY and TEXT).
pub fn searchable_text_contains(
    raw: &[u8],
    summary: &MessageSummary,
    needle: &[u8],
    with_header: bool,
) -> bool {
    let mut found = false;
    for_each_searchable_text(raw, summary, with_header, |_, text| {
        if contains_ignore_case(text.as_bytes(), needle) {
            found = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(raw: &[u8], with_header: bool) -> Vec<(SearchableKind, String)> {
        let summary = crate::summarize(raw);
        let mut found = Vec::new();
        for_each_searchable_text(raw, &summary, with_header, |kind, text| {
            found.push((kind, text.to_owned()));
            ControlFlow::Continue(())
        });
        found
    }

    #[test]
    fn header_words_and_parts_are_decoded() {
        let raw = b"From: =?ISO-8859-1?Q?Andr=E9?= <a@example.com>\r\n\
Subject: =?UTF-8?B?w6l0w6k=?=\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9\r\n";
        let found = texts(raw, true);
        assert!(found.contains(&(SearchableKind::Header, "\u{e9}t\u{e9}".to_owned())));
        assert!(found.contains(&(SearchableKind::Header, "Andr\u{e9}".to_owned())));
        assert!(
            found
                .iter()
                .any(|(kind, text)| *kind == SearchableKind::Body && text.contains("Caf\u{e9}"))
        );
        assert!(
            texts(raw, false)
                .iter()
                .all(|(kind, _)| *kind == SearchableKind::Body)
        );
    }
}
