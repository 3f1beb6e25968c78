//! What the message view shows of a message's body: its HTML part sanitised, or its text
//! part as text, and the list of its attachments.
//!
//! The parts are found with `mail-parser` (its idea of the body the author meant to show:
//! the HTML alternative when there is one, the text otherwise). HTML goes through
//! `sanitize_html` before it goes anywhere near a page: an allow-list of tags and attributes
//! (ammonia's), no scripts, no event handlers, no styles, no `javascript:` or relative URLs.
//! Images: an inline image (`cid:`, RFC 2392) becomes a link to its part of this message
//! (`part_url`); a remote image (a tracking pixel, often) is removed unless the user asked to
//! see remote images for this message (`Images::Remote`), and the view says how many were
//! held back. Text is returned as text: the template escapes it. `message_part` gives one part
//! for download.
//!
//! This module does no I/O and never panics on any input; what it shows is bounded by
//! `BODY_SHOWN_OCTETS_MAX` and `ATTACHMENTS_LISTED_MAX`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

/// The most of one body the view shows, in octets of decoded text; the rest is cut (and
/// the view says so).
pub const BODY_SHOWN_OCTETS_MAX: usize = 2 * 1024 * 1024;
/// The most attachments the view lists.
pub const ATTACHMENTS_LISTED_MAX: usize = 500;
/// The longest attachment name shown, in characters.
pub const ATTACHMENT_NAME_CHARS_MAX: usize = 200;

/// The body as the view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// Sanitised HTML, safe to insert into the page as it is.
    Html(String),
    /// Plain text, to be escaped by the template.
    Text(String),
    /// The message has no text or HTML body.
    Nothing,
}

/// One attachment as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The part's number in the message (mail-parser's part id), for `message_part`.
    pub part: u32,
    /// The file name the message gives, or None.
    pub name: Option<String>,
    /// `type/subtype`, lowercase.
    pub media_type: String,
    pub size_octets: u64,
}

/// What the message view shows of a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody {
    pub shown: Shown,
    /// The body was longer than `BODY_SHOWN_OCTETS_MAX` and was cut.
    pub truncated: bool,
    pub attachments: Vec<Attachment>,
    /// More attachments than `ATTACHMENTS_LISTED_MAX`: the rest are not listed.
    pub attachments_truncated: bool,
    /// Remote images removed from the HTML because the user has not allowed them.
    pub remote_images_blocked: usize,
}

/// Which images of the HTML are shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// The URL of this message's parts, to which the part number is appended (for example
    /// `/mail/3/17/part/`): `cid:` images are shown from there.
    pub part_url: String,
    /// Remote (`http`, `https`) images are shown: the user asked for them.
    pub remote: bool,
}

/// One part of a message, for download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartContent {
    pub name: Option<String>,
    /// `type/subtype`, lowercase.
    pub media_type: String,
    /// The decoded content (the whole message, for an attached message).
    pub bytes: Vec<u8>,
}

/// The media types of inline images a browser may show from our origin. SVG is not among
/// them: it can carry script.
pub const INLINE_IMAGE_TYPES: [&str; 5] = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
];

/// Finds the body to show and the attachments of the raw message `raw`.
pub fn message_body(raw: &[u8], images: &Images) -> MessageBody {
    let Some(message) = MessageParser::default().parse(raw) else {
        return MessageBody {
            shown: Shown::Nothing,
            truncated: false,
            attachments: Vec::new(),
            attachments_truncated: false,
            remote_images_blocked: 0,
        };
    };
    let mut truncated = false;
    let mut remote_images_blocked = 0;
    // mail-parser lists a text part among the HTML bodies when an alternative has no HTML:
    // only a real text/html part is shown as HTML.
    let html = message.html_bodies().find_map(|part| match &part.body {
        PartType::Html(html) => Some(html),
        _ => None,
    });
    let shown = if let Some(html) = html {
        let (html, cut) = bounded(html);
        truncated = cut;
        let sanitized = sanitize_html(html, &inline_images(&message), images);
        remote_images_blocked = sanitized.remote_images_blocked;
        Shown::Html(sanitized.html)
    } else {
        let mut text = String::new();
        for part in message.text_bodies() {
            if let PartType::Text(part_text) = &part.body {
                if !text.is_empty() {
                    text.push_str("\n\n");
                }
                text.push_str(part_text);
                if text.len() > BODY_SHOWN_OCTETS_MAX {
                    break;
                }
            }
        }
        if text.is_empty() {
            Shown::Nothing
        } else {
            let (bounded_text, cut) = bounded(&text);
            truncated = cut;
            Shown::Text(bounded_text.to_owned())
        }
    };
    let mut attachments = Vec::new();
    let mut attachments_truncated = false;
    for &part_id in &message.attachments {
        let Some(part) = message.part(part_id) else {
            continue;
        };
        if attachments.len() >= ATTACHMENTS_LISTED_MAX {
            attachments_truncated = true;
            break;
        }
        let size_octets = match &part.body {
            PartType::Message(nested) => nested.raw_message.len(),
            _ => part.len(),
        } as u64;
        attachments.push(Attachment {
            part: part_id,
            name: part_name(part),
            media_type: media_type(part),
            size_octets,
        });
    }
    MessageBody {
        shown,
        truncated,
        attachments,
        attachments_truncated,
        remote_images_blocked,
    }
}

fn media_type(part: &mail_parser::MessagePart<'_>) -> String {
    let media_type = part
        .content_type()
        .map(|content_type| match content_type.subtype() {
            Some(subtype) => format!("{}/{}", content_type.ctype(), subtype),
            None => content_type.ctype().to_owned(),
        })
        .unwrap_or_else(|| match part.body {
            PartType::Message(_) => "message/rfc822".to_owned(),
            PartType::Text(_) => "text/plain".to_owned(),
            PartType::Html(_) => "text/html".to_owned(),
            _ => "application/octet-stream".to_owned(),
        })
        .to_ascii_lowercase();
    // A type is a token "/" token (RFC 2045 §5.1); anything else is not trusted as one.
    let token = |text: &str| {
        !text.is_empty()
            && text.len() <= 127
            && text
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&byte))
    };
    match media_type.split_once('/') {
        Some((kind, subtype)) if token(kind) && token(subtype) => media_type,
        _ => "application/octet-stream".to_owned(),
    }
}

fn part_name(part: &mail_parser::MessagePart<'_>) -> Option<String> {
    part.attachment_name()
        .map(|name| name.chars().take(ATTACHMENT_NAME_CHARS_MAX).collect())
}

/// The message's parts by Content-ID (without its angle brackets, RFC 2392 §2), for `cid:`
/// images.
fn inline_images(message: &Message<'_>) -> HashMap<String, u32> {
    let mut by_content_id = HashMap::new();
    for (index, part) in message.parts.iter().enumerate() {
        if let (Some(content_id), Ok(index)) = (part.content_id(), u32::try_from(index)) {
            let content_id = content_id
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>');
            by_content_id.entry(content_id.to_owned()).or_insert(index);
        }
    }
    by_content_id
}

/// Part `part_id` of the raw message, for download: the decoded content of a leaf part, or
/// the raw bytes of an attached message. None for a multipart container or no such part.
pub fn message_part(raw: &[u8], part_id: u32) -> Option<PartContent> {
    let message = MessageParser::default().parse(raw)?;
    let part = message.part(part_id)?;
    let bytes = match &part.body {
        PartType::Multipart(_) => return None,
        PartType::Message(nested) => nested.raw_message.to_vec(),
        PartType::Text(text) | PartType::Html(text) => text.as_bytes().to_vec(),
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) => bytes.to_vec(),
    };
    Some(PartContent {
        name: part_name(part),
        media_type: media_type(part),
        bytes,
    })
}

/// `text` cut to at most `BODY_SHOWN_OCTETS_MAX` octets at a character boundary, and
/// whether it was cut.
fn bounded(text: &str) -> (&str, bool) {
    if text.len() <= BODY_SHOWN_OCTETS_MAX {
        return (text, false);
    }
    let mut end = BODY_SHOWN_OCTETS_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

/// The sanitised HTML, and how many remote images it held back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sanitized {
    pub html: String,
    pub remote_images_blocked: usize,
}

/// Sanitises the HTML of a message for the message view: ammonia's allow-list (no
/// `script`, `style`, `iframe`, `object`, forms, event handlers or `style` attributes;
/// URLs only of ammonia's safe schemes, so no `javascript:` or `data:`), and relative URLs
/// removed (they would point into the webmail itself), but for the `cid:` images of this
/// message, which become links to its parts (`inline_images`: Content-ID to part number).
/// Remote images are removed unless `images.remote`.
pub fn sanitize_html(
    html: &str,
    inline_images: &HashMap<String, u32>,
    images: &Images,
) -> Sanitized {
    let blocked = Arc::new(AtomicUsize::new(0));
    let blocked_in_filter = Arc::clone(&blocked);
    let inline_images = inline_images.clone();
    let part_url = images.part_url.clone();
    let remote = images.remote;
    let part_url_allowed = images.part_url.clone();
    let mut schemes = ammonia::Builder::default().clone_url_schemes();
    schemes.insert("cid");
    let html = ammonia::Builder::default()
        .url_schemes(schemes)
        .attribute_filter(move |element, attribute, value| {
            let lower = value.trim_start().to_ascii_lowercase();
            let is_cid = lower.starts_with("cid:");
            if element == "img" && attribute == "src" {
                if is_cid {
                    // RFC 2392 §2: the URL is percent-encoded.
                    let content_id = percent_decode(&value.trim_start()[4..]);
                    return inline_images
                        .get(&content_id)
                        .map(|part| Cow::Owned(format!("{part_url}{part}")));
                }
                if lower.starts_with("http:") || lower.starts_with("https:") {
                    if remote {
                        return Some(Cow::Borrowed(value));
                    }
                    blocked_in_filter.fetch_add(1, Ordering::Relaxed);
                }
                return None;
            }
            if element == "img" && attribute == "srcset" {
                return None;
            }
            // A `cid:` URL means nothing anywhere else.
            if is_cid {
                return None;
            }
            Some(Cow::Borrowed(value))
        })
        // Relative URLs are dropped, but for the part links made from `cid:` above.
        .url_relative(ammonia::UrlRelative::Custom(Box::new(PartLinksOnly {
            part_url: part_url_allowed,
        })))
        .clean(html)
        .to_string();
    Sanitized {
        html,
        remote_images_blocked: blocked.load(Ordering::Relaxed),
    }
}

/// The one kind of relative URL the sanitised HTML keeps: a link to a part of this message.
struct PartLinksOnly {
    part_url: String,
}

impl ammonia::UrlRelativeEvaluate<'static> for PartLinksOnly {
    fn evaluate<'url>(&self, url: &'url str) -> Option<Cow<'url, str>> {
        let rest = url.strip_prefix(self.part_url.as_str())?;
        (!rest.is_empty() && rest.bytes().all(|byte| byte.is_ascii_digit()))
            .then_some(Cow::Borrowed(url))
    }
}

/// Decodes `%XX` escapes; anything malformed is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(hex) = text.get(index + 1..index + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            decoded.push(byte);
            index += 3;
            continue;
        }
        decoded.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(remote: bool) -> Images {
        Images {
            part_url: "/mail/3/17/part/".to_owned(),
            remote,
        }
    }

    fn check_clean(html: &str, forbidden: &[&str]) -> String {
        let clean = sanitize_html(html, &HashMap::new(), &images(false)).html;
        for needle in forbidden {
            assert!(
                !clean.to_ascii_lowercase().contains(needle),
                "{needle:?} survived in {clean:?}"
            );
        }
        clean
    }

    #[test]
    fn hostile_html_is_disarmed() {
        check_clean(
            "<p>hi</p><script>document.title='owned'</script>",
            &["<script", "owned"],
        );
        check_clean(
            r#"<img src="x" onerror="document.title='owned'">"#,
            &["onerror", "owned", "src="],
        );
        check_clean(
            r#"<img src="http://127.0.0.1:9/pixel" alt="p">"#,
            &["http:", "src="],
        );
        check_clean(r#"<a href="javascript:alert(1)">x</a>"#, &["javascript:"]);
        check_clean(
            r#"<p style="background:url(http://x/y)">x</p>"#,
            &["style", "url("],
        );
        check_clean("<style>p{color:red}</style><p>x</p>", &["<style", "color"]);
        check_clean(
            r#"<svg><script>alert(1)</script></svg><iframe src="https://x"></iframe>"#,
            &["<svg", "<script", "<iframe"],
        );
        check_clean(
            r#"<form action="/logout"><button>x</button></form>"#,
            &["<form"],
        );
        check_clean(r#"<a href="/logout">x</a>"#, &["/logout"]);
        let kept = check_clean(r#"<a href="https://example.org/">link</a>"#, &[]);
        assert!(kept.contains(r#"href="https://example.org/""#), "{kept}");
        assert!(kept.contains("noopener"), "{kept}");
    }

    #[test]
    fn html_alternative_is_shown_and_attachments_listed() {
        let raw = b"From: a@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\n\
Content-Type: multipart/alternative; boundary=\"a\"\r\n\r\n--a\r\n\
Content-Type: text/plain\r\n\r\nplain words\r\n--a\r\n\
Content-Type: text/html\r\n\r\n<p>html <b>words</b></p><script>x()</script>\r\n--a--\r\n--m\r\n\
Content-Type: application/pdf; name=\"report.pdf\"\r\n\
Content-Disposition: attachment; filename=\"report.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--m--\r\n";
        let body = message_body(raw, &images(false));
        match &body.shown {
            Shown::Html(html) => {
                assert!(html.contains("<b>words</b>"), "{html}");
                assert!(!html.contains("script"), "{html}");
            }
            other => panic!("expected HTML, got {other:?}"),
        }
        assert_eq!(
            body.attachments,
            vec![Attachment {
                part: 4,
                name: Some("report.pdf".to_owned()),
                media_type: "application/pdf".to_owned(),
                size_octets: 4,
            }]
        );
    }

    #[test]
    fn plain_text_is_text_and_long_bodies_are_cut() {
        let body = message_body(b"Subject: s\r\n\r\n<b>not html</b>\r\n", &images(false));
        assert_eq!(body.shown, Shown::Text("<b>not html</b>\r\n".to_owned()));
        let mut raw = b"Subject: s\r\n\r\n".to_vec();
        raw.extend(std::iter::repeat_n(b'\xc3', 1).chain(std::iter::repeat_n(b'a', 10)));
        raw.extend("é".repeat(BODY_SHOWN_OCTETS_MAX).as_bytes());
        let body = message_body(&raw, &images(false));
        assert!(body.truncated);
        match body.shown {
            Shown::Text(text) => assert!(text.len() <= BODY_SHOWN_OCTETS_MAX),
            other => panic!("expected text, got {other:?}"),
        }
        assert_eq!(message_body(b"", &images(false)).shown, Shown::Nothing);
    }

    const RELATED: &[u8] = b"From: a@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/related; boundary=\"r\"\r\n\r\n--r\r\n\
Content-Type: text/html\r\n\r\n<p><img src=\"cid:logo%40example.org\" alt=\"logo\">\
<img src=\"https://tracker.example/p.gif\"><img src=\"cid:unknown@x\">\
<img src=\"/mail/3/17/part/1\"><img src=\"/mail/3/17/part/1x\"><a href=\"cid:logo@example.org\">l</a></p>\r\n--r\r\n\
Content-Type: image/png\r\nContent-ID: <logo@example.org>\r\nContent-Transfer-Encoding: base64\r\n\r\n\
iVBORw0KGgo=\r\n--r--\r\n";

    #[test]
    fn inline_images_link_to_their_part_and_remote_ones_wait_for_consent() {
        let body = message_body(RELATED, &images(false));
        let Shown::Html(html) = &body.shown else {
            panic!("expected HTML, got {:?}", body.shown);
        };
        assert!(html.contains(r#"src="/mail/3/17/part/2""#), "{html}");
        assert!(!html.contains("tracker"), "{html}");
        assert!(!html.contains("cid:"), "{html}");
        assert!(
            !html.contains("part/1"),
            "only cid: makes a part link: {html}"
        );
        assert_eq!(body.remote_images_blocked, 1);
        let body = message_body(RELATED, &images(true));
        let Shown::Html(html) = &body.shown else {
            panic!("expected HTML");
        };
        assert!(html.contains("https://tracker.example/p.gif"), "{html}");
        assert_eq!(body.remote_images_blocked, 0);
        let part = message_part(RELATED, 2).expect("the image part");
        assert_eq!(part.media_type, "image/png");
        assert_eq!(part.bytes, b"\x89PNG\r\n\x1a\n");
        assert_eq!(message_part(RELATED, 0), None, "a multipart has no content");
        assert_eq!(message_part(RELATED, 99), None);
    }
}
