//! The short text shown under the subject in a message list, and whether a message has
//! attachments.
//!
//! This module owns choosing the part that stands for the message's text, turning a
//! bounded prefix of it into one line of plain text (`PREVIEW_CHARS_MAX` characters,
//! white space collapsed), and the has-attachment rule. It reads only the bytes of the
//! chosen part, at most `PREVIEW_SOURCE_BYTES_MAX` of them; it must not walk MIME syntax
//! (the tree comes from `body_structure`).

use crate::body_structure::BodyPart;
use crate::limits::{PREVIEW_CHARS_MAX, PREVIEW_SOURCE_BYTES_MAX};

/// Bytes of the chosen part decoded on the first try; see `preview_of_part`.
const PREVIEW_SOURCE_BYTES_FIRST_TRY: usize = 4 * 1024;
use crate::transfer_decoding::{decode_transfer_encoding, text_in_charset};

/// The preview of the message whose root part is `root`: from the first text/plain part
/// that is not an attachment and gives some text, or failing that the first such text/html
/// part. Parts of attached messages (message/rfc822) are not looked at: they are not this
/// message's text.
pub(crate) fn preview(raw: &[u8], root: &BodyPart) -> String {
    let mut plain_parts = Vec::new();
    let mut html_parts = Vec::new();
    collect_text_parts(root, &mut plain_parts, &mut html_parts);
    for part in plain_parts {
        let line = preview_of_part(raw, part, |text| text);
        if !line.is_empty() {
            return line;
        }
    }
    for part in html_parts {
        let line = preview_of_part(raw, part, |text| html_to_text(&text));
        if !line.is_empty() {
            return line;
        }
    }
    String::new()
}

/// How many parts of each kind are tried before giving up on a preview.
const PREVIEW_CANDIDATES_MAX: usize = 4;

/// The non-empty text/plain and text/html parts in depth-first order, not entering
/// message/rfc822 and skipping `Content-Disposition: attachment`, at most
/// `PREVIEW_CANDIDATES_MAX` of each.
fn collect_text_parts<'a>(
    part: &'a BodyPart,
    plain: &mut Vec<&'a BodyPart>,
    html: &mut Vec<&'a BodyPart>,
) {
    if part.is_disposition_attachment() {
        return;
    }
    let is_empty = part.body_end <= part.body_start;
    if part.is_media_type("text", "plain") && !is_empty && plain.len() < PREVIEW_CANDIDATES_MAX {
        plain.push(part);
    } else if part.is_media_type("text", "html") && !is_empty && html.len() < PREVIEW_CANDIDATES_MAX
    {
        html.push(part);
    }
    for child in &part.children {
        collect_text_parts(child, plain, html);
    }
}

/// Decodes a small prefix first, which is enough for most messages, and the whole
/// `PREVIEW_SOURCE_BYTES_MAX` only when that prefix gave too little text (HTML with a long
/// style sheet, text starting with many blank lines).
fn preview_of_part(raw: &[u8], part: &BodyPart, to_text: impl Fn(String) -> String) -> String {
    let mut line = String::new();
    for window_bytes in [PREVIEW_SOURCE_BYTES_FIRST_TRY, PREVIEW_SOURCE_BYTES_MAX] {
        line = collapsed(&to_text(decoded_prefix(raw, part, window_bytes)));
        let body_bytes = part.body_end.saturating_sub(part.body_start);
        if line.chars().count() + 1 >= PREVIEW_CHARS_MAX || body_bytes <= window_bytes as u64 {
            break;
        }
    }
    line
}

/// Whether the message has something a reader would call an attachment: a part below the
/// top-level one that is marked `attachment`, or an attached message, or a part that is
/// neither text nor multipart (images inside multipart/related count only when marked
/// `attachment`, since they are usually pictures of an HTML body); or a top-level part
/// that is not text. Text parts other than plain and HTML (text/csv, text/calendar) count
/// when they are not the only part.
pub(crate) fn has_attachment(root: &BodyPart) -> bool {
    if root.children.is_empty() {
        return !root.content_type.eq_ignore_ascii_case("text") || root.is_disposition_attachment();
    }
    has_attachment_below(root)
}

fn has_attachment_below(parent: &BodyPart) -> bool {
    let in_related = parent.is_media_type("multipart", "related");
    parent.children.iter().any(|child| {
        if child.is_disposition_attachment() || child.message.is_some() {
            return true;
        }
        if child.is_multipart() {
            return has_attachment_below(child);
        }
        let is_body_text =
            child.is_media_type("text", "plain") || child.is_media_type("text", "html");
        !is_body_text && !in_related
    })
}

/// The first `window_bytes` bytes of the part's body (cut after a line break when the body
/// is longer, so no base64 group or `=XX` is split), decoded.
fn decoded_prefix(raw: &[u8], part: &BodyPart, window_bytes: usize) -> String {
    let body_start = usize::try_from(part.body_start).unwrap_or(usize::MAX);
    let body_end = usize::try_from(part.body_end).unwrap_or(usize::MAX);
    let Some(body) = raw.get(body_start..body_end) else {
        return String::new();
    };
    let mut encoded = body;
    if body.len() > window_bytes {
        encoded = body.get(..window_bytes).unwrap_or(body);
        if let Some(last_line_feed) = encoded.iter().rposition(|&byte| byte == b'\n') {
            encoded = encoded.get(..=last_line_feed).unwrap_or(encoded);
        }
    }
    let decoded = decode_transfer_encoding(&part.content_transfer_encoding, encoded)
        .unwrap_or_else(|| encoded.to_vec());
    text_in_charset(
        &decoded,
        part.content_type_parameter("charset")
            .map(|charset| charset.as_bytes()),
    )
}

/// One line: runs of white space and control characters become one space, leading and
/// trailing ones go, and at most `PREVIEW_CHARS_MAX` characters are kept.
fn collapsed(text: &str) -> String {
    let mut line = String::new();
    let mut characters = 0usize;
    let mut pending_space = false;
    for character in text.chars() {
        if character.is_whitespace() || character.is_control() || character == '\u{FEFF}' {
            pending_space = characters > 0;
            continue;
        }
        if pending_space {
            if characters + 1 >= PREVIEW_CHARS_MAX {
                break;
            }
            line.push(' ');
            characters += 1;
            pending_space = false;
        }
        if characters >= PREVIEW_CHARS_MAX {
            break;
        }
        line.push(character);
        characters += 1;
    }
    line
}

/// Plain text from HTML, good enough for a preview: tags removed (block tags become a
/// space), the content of head, style, script, title and comments dropped, common
/// character references decoded.
fn html_to_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len() / 2);
    let mut rest = html;
    let mut skip_until: Option<&'static str> = None;
    while !rest.is_empty() {
        if let Some(closing) = skip_until {
            match find_ignoring_ascii_case(rest, closing) {
                Some(found) => {
                    rest = rest.get(found + closing.len()..).unwrap_or_default();
                    if closing.starts_with("</") {
                        // The rest of the closing tag, up to its `>`.
                        rest = rest
                            .find('>')
                            .and_then(|end| rest.get(end + 1..))
                            .unwrap_or_default();
                    }
                    skip_until = None;
                    continue;
                }
                None => break,
            }
        }
        let Some(next_special) = rest.find(['<', '&']) else {
            text.push_str(rest);
            break;
        };
        text.push_str(rest.get(..next_special).unwrap_or_default());
        rest = rest.get(next_special..).unwrap_or_default();
        if rest.starts_with("<!--") {
            skip_until = Some("-->");
            rest = rest.get(4..).unwrap_or_default();
        } else if rest.starts_with('<') {
            let tag_end = rest.find('>').map_or(rest.len(), |end| end + 1);
            let tag = rest.get(1..tag_end).unwrap_or_default();
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|character| character.is_ascii_alphanumeric())
                .map(|character| character.to_ascii_lowercase())
                .collect();
            if !tag.starts_with('/') {
                skip_until = match name.as_str() {
                    "head" => Some("</head"),
                    "style" => Some("</style"),
                    "script" => Some("</script"),
                    "title" => Some("</title"),
                    _ => None,
                };
            }
            if is_block_tag(&name) {
                text.push(' ');
            }
            rest = rest.get(tag_end..).unwrap_or_default();
        } else {
            let (decoded, consumed) = character_reference(rest);
            text.push_str(&decoded);
            rest = rest.get(consumed..).unwrap_or_default();
        }
    }
    text
}

fn is_block_tag(name: &str) -> bool {
    matches!(
        name,
        "br" | "p"
            | "div"
            | "tr"
            | "td"
            | "th"
            | "li"
            | "ul"
            | "ol"
            | "table"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "blockquote"
            | "hr"
            | "pre"
            | "body"
            | "section"
    )
}

/// Decodes a character reference at the start of `text` (which starts with `&`); returns
/// the text and how many bytes it used. Unknown references are kept as written.
fn character_reference(text: &str) -> (String, usize) {
    let end = text
        .char_indices()
        .skip(1)
        .take(10)
        .find(|&(_, character)| !(character.is_ascii_alphanumeric() || character == '#'))
        .filter(|&(_, character)| character == ';');
    let Some((semicolon, _)) = end else {
        return ("&".to_owned(), 1);
    };
    let name = text.get(1..semicolon).unwrap_or_default();
    let decoded = match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some(' '),
        _ => name.strip_prefix('#').and_then(|number| {
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok(),
                None => number.parse::<u32>().ok(),
            };
            code.and_then(char::from_u32)
        }),
    };
    match decoded {
        Some(character) => (character.to_string(), semicolon + 1),
        None => ("&".to_owned(), 1),
    }
}

fn find_ignoring_ascii_case(haystack: &str, needle: &str) -> Option<usize> {
    let needle = needle.as_bytes();
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_text() {
        let html = "<html><head><title>T</title><style>p{}</style></head><body>\
                    <p>Hello&nbsp;<b>wor</b>ld &amp; &#233;&#x41; &bogus; a&b</p><!-- c -->\
                    <div>next</div></body></html>";
        assert_eq!(
            collapsed(&html_to_text(html)),
            "Hello world & éA &bogus; a&b next"
        );
    }

    #[test]
    fn collapsing() {
        assert_eq!(collapsed("  a \r\n\t b  "), "a b");
        let long: String = "x ".repeat(400);
        assert_eq!(collapsed(&long).chars().count(), PREVIEW_CHARS_MAX - 1);
    }
}
