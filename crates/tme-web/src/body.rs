//! What the message view shows of a message's body: its HTML part sanitised, or its text
//! part as text, and the list of its attachments.
//!
//! The parts are found with `mail-parser` (its idea of the body the author meant to show:
//! the HTML alternative when there is one, the text otherwise). HTML goes through
//! `sanitize_html` before it goes anywhere near a page: an allow-list of tags and attributes
//! (ammonia's), no scripts, no event handlers, no styles, no `javascript:` or relative URLs,
//! and no image source at all, so a remote image (a tracking pixel) is never loaded; inline
//! images and "show remote images" are for later. Text is returned as text: the template
//! escapes it.
//!
//! This module does no I/O and never panics on any input; what it shows is bounded by
//! `BODY_SHOWN_OCTETS_MAX` and `ATTACHMENTS_LISTED_MAX`.

use std::borrow::Cow;

use mail_parser::{MessageParser, MimeHeaders, PartType};

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
}

/// Finds the body to show and the attachments of the raw message `raw`.
pub fn message_body(raw: &[u8]) -> MessageBody {
    let Some(message) = MessageParser::default().parse(raw) else {
        return MessageBody {
            shown: Shown::Nothing,
            truncated: false,
            attachments: Vec::new(),
            attachments_truncated: false,
        };
    };
    let mut truncated = false;
    // mail-parser lists a text part among the HTML bodies when an alternative has no HTML:
    // only a real text/html part is shown as HTML.
    let html = message.html_bodies().find_map(|part| match &part.body {
        PartType::Html(html) => Some(html),
        _ => None,
    });
    let shown = if let Some(html) = html {
        let (html, cut) = bounded(html);
        truncated = cut;
        Shown::Html(sanitize_html(html))
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
    for part in message.attachments() {
        if attachments.len() >= ATTACHMENTS_LISTED_MAX {
            attachments_truncated = true;
            break;
        }
        let media_type = part
            .content_type()
            .map(|content_type| match content_type.subtype() {
                Some(subtype) => format!("{}/{}", content_type.ctype(), subtype),
                None => content_type.ctype().to_owned(),
            })
            .unwrap_or_else(|| "application/octet-stream".to_owned())
            .to_ascii_lowercase();
        let size_octets = match &part.body {
            PartType::Message(nested) => nested.raw_message.len(),
            _ => part.len(),
        } as u64;
        attachments.push(Attachment {
            name: part
                .attachment_name()
                .map(|name| name.chars().take(ATTACHMENT_NAME_CHARS_MAX).collect()),
            media_type,
            size_octets,
        });
    }
    MessageBody {
        shown,
        truncated,
        attachments,
        attachments_truncated,
    }
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

/// Sanitises the HTML of a message for the message view: ammonia's allow-list (no
/// `script`, `style`, `iframe`, `object`, forms, event handlers or `style` attributes;
/// URLs only of ammonia's safe schemes, so no `javascript:` or `data:`), relative URLs
/// removed (they would point into the webmail itself), and every image source removed
/// (remote images are trackers until the user allows them; inline `cid:` images are not
/// served yet).
pub fn sanitize_html(html: &str) -> String {
    ammonia::Builder::default()
        .url_relative(ammonia::UrlRelative::Deny)
        .attribute_filter(|element, attribute, value| {
            if element == "img" && attribute == "src" {
                None
            } else {
                Some(Cow::Borrowed(value))
            }
        })
        .clean(html)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_clean(html: &str, forbidden: &[&str]) -> String {
        let clean = sanitize_html(html);
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
        let body = message_body(raw);
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
                name: Some("report.pdf".to_owned()),
                media_type: "application/pdf".to_owned(),
                size_octets: 4,
            }]
        );
    }

    #[test]
    fn plain_text_is_text_and_long_bodies_are_cut() {
        let body = message_body(b"Subject: s\r\n\r\n<b>not html</b>\r\n");
        assert_eq!(body.shown, Shown::Text("<b>not html</b>\r\n".to_owned()));
        let mut raw = b"Subject: s\r\n\r\n".to_vec();
        raw.extend(std::iter::repeat_n(b'\xc3', 1).chain(std::iter::repeat_n(b'a', 10)));
        raw.extend("é".repeat(BODY_SHOWN_OCTETS_MAX).as_bytes());
        let body = message_body(&raw);
        assert!(body.truncated);
        match body.shown {
            Shown::Text(text) => assert!(text.len() <= BODY_SHOWN_OCTETS_MAX),
            other => panic!("expected text, got {other:?}"),
        }
        assert_eq!(message_body(b"").shown, Shown::Nothing);
    }
}
