//! FETCH data from what the store kept at delivery: ENVELOPE and BODYSTRUCTURE from the
//! `MessageSummary`, `BODY[section]` and `BINARY[section]` as slices of the raw message at
//! the summary's offsets, INTERNALDATE and FLAGS from the record.
//!
//! It never parses a message: the only scanning is of a header block already cut out by
//! the summary's offsets, to pick the fields `HEADER.FIELDS` names. No I/O.

use tme_message::{BodyPart, Envelope, EnvelopeAddress, MessageSummary, Parameter};
use tme_store::Flags;

use crate::response::{push_nstring, push_string};

/// ENVELOPE (RFC 9051 §7.5.2). Sender and Reply-To default to From.
pub fn envelope(out: &mut Vec<u8>, envelope: &Envelope) {
    out.push(b'(');
    push_nstring(out, envelope.date.as_ref().map(|value| value.as_bytes()));
    out.push(b' ');
    push_nstring(out, envelope.subject.as_ref().map(|value| value.as_bytes()));
    for (index, list) in [
        &envelope.from,
        if envelope.sender.is_empty() {
            &envelope.from
        } else {
            &envelope.sender
        },
        if envelope.reply_to.is_empty() {
            &envelope.from
        } else {
            &envelope.reply_to
        },
        &envelope.to,
        &envelope.cc,
        &envelope.bcc,
    ]
    .into_iter()
    .enumerate()
    {
        let _ = index;
        out.push(b' ');
        addresses(out, list);
    }
    out.push(b' ');
    push_nstring(
        out,
        envelope.in_reply_to.as_ref().map(|value| value.as_bytes()),
    );
    out.push(b' ');
    push_nstring(
        out,
        envelope.message_id.as_ref().map(|value| value.as_bytes()),
    );
    out.push(b')');
}

fn addresses(out: &mut Vec<u8>, list: &[EnvelopeAddress]) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for address in list {
        out.push(b'(');
        push_nstring(out, address.name.as_ref().map(|value| value.as_bytes()));
        out.push(b' ');
        push_nstring(out, address.adl.as_ref().map(|value| value.as_bytes()));
        out.push(b' ');
        push_nstring(out, address.mailbox.as_ref().map(|value| value.as_bytes()));
        out.push(b' ');
        push_nstring(out, address.host.as_ref().map(|value| value.as_bytes()));
        out.push(b')');
    }
    out.push(b')');
}

fn parameters(out: &mut Vec<u8>, list: &[Parameter]) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (index, parameter) in list.iter().enumerate() {
        if index > 0 {
            out.push(b' ');
        }
        push_string(out, parameter.name.as_bytes());
        out.push(b' ');
        push_string(out, parameter.value.as_bytes());
    }
    out.push(b')');
}

/// Whether a part is text/plain with no parameter but a US-ASCII charset: RFC 2045 §5.2's
/// default, however it is spelled.
fn is_default_text(part: &BodyPart) -> bool {
    part.is_media_type("text", "plain")
        && part.content_type_parameters.iter().all(|parameter| {
            parameter.name.eq_ignore_ascii_case("charset")
                && parameter.value.as_bytes().eq_ignore_ascii_case(b"us-ascii")
        })
        && part.content_type_parameters.len() <= 1
}

/// A text part's parameters as IMAP servers report them (Dovecot, and RFC 2045 §5.2's
/// default): a charset is always there, `us-ascii` when the header names none.
fn text_parameters(list: &[Parameter]) -> Vec<Parameter> {
    let mut list = list.to_vec();
    let has_charset = list
        .iter()
        .any(|parameter| parameter.name.eq_ignore_ascii_case("charset"));
    if !has_charset {
        list.push(Parameter {
            name: "charset".to_owned(),
            value: tme_message::RawBytes(b"us-ascii".to_vec()),
        });
    }
    list
}

fn extension_tail(out: &mut Vec<u8>, part: &BodyPart) {
    out.push(b' ');
    match &part.disposition {
        Some(disposition) => {
            out.push(b'(');
            push_string(out, disposition.disposition_type.as_bytes());
            out.push(b' ');
            parameters(out, &disposition.parameters);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    // Always a list, even of one (both forms are valid, RFC 9051 body-fld-lang; Dovecot).
    match part.language.as_slice() {
        [] => out.extend_from_slice(b"NIL"),
        many => {
            out.push(b'(');
            for (index, language) in many.iter().enumerate() {
                if index > 0 {
                    out.push(b' ');
                }
                push_string(out, language.as_bytes());
            }
            out.push(b')');
        }
    }
    out.push(b' ');
    push_nstring(out, part.location.as_ref().map(|value| value.as_bytes()));
}

/// BODYSTRUCTURE (`extended`) or BODY (RFC 9051 §7.5.2).
pub fn body_structure(out: &mut Vec<u8>, part: &BodyPart, extended: bool) {
    if part.is_multipart() && !part.children.is_empty() {
        out.push(b'(');
        for child in &part.children {
            body_structure(out, child, extended);
        }
        out.push(b' ');
        push_string(out, part.content_subtype.as_bytes());
        if extended {
            out.push(b' ');
            parameters(out, &part.content_type_parameters);
            extension_tail(out, part);
        }
        out.push(b')');
        return;
    }
    if part.is_multipart() {
        // IMAP cannot express a multipart without parts: it gets one empty text/plain part,
        // as Dovecot describes it.
        out.extend_from_slice(
            b"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0",
        );
        if extended {
            out.extend_from_slice(b" NIL NIL NIL NIL");
        }
        out.extend_from_slice(b") ");
        push_string(out, part.content_subtype.as_bytes());
        if extended {
            out.push(b' ');
            parameters(out, &part.content_type_parameters);
            extension_tail(out, part);
        }
        out.push(b')');
        return;
    }
    // Type, subtype and parameters as written, except the RFC 2045 §5.2 default in any
    // spelling (text/plain, at most a US-ASCII charset), which is written in its canonical
    // form, as Dovecot does.
    out.push(b'(');
    if is_default_text(part) {
        out.extend_from_slice(b"\"text\" \"plain\" (\"charset\" \"us-ascii\")");
    } else {
        push_string(out, part.content_type.as_bytes());
        out.push(b' ');
        push_string(out, part.content_subtype.as_bytes());
        out.push(b' ');
        if part.content_type.eq_ignore_ascii_case("text") {
            parameters(out, &text_parameters(&part.content_type_parameters));
        } else {
            parameters(out, &part.content_type_parameters);
        }
    }
    out.push(b' ');
    push_nstring(out, part.content_id.as_ref().map(|value| value.as_bytes()));
    out.push(b' ');
    push_nstring(
        out,
        part.content_description
            .as_ref()
            .map(|value| value.as_bytes()),
    );
    out.push(b' ');
    push_string(out, part.content_transfer_encoding.as_bytes());
    out.extend_from_slice(format!(" {}", part.body_size_octets).as_bytes());
    if let Some(message) = &part.message {
        out.push(b' ');
        envelope(out, &message.envelope);
        out.push(b' ');
        body_structure(out, &message.body, extended);
        out.extend_from_slice(format!(" {}", part.body_lines).as_bytes());
    } else if part.content_type.eq_ignore_ascii_case("text") {
        out.extend_from_slice(format!(" {}", part.body_lines).as_bytes());
    }
    if extended {
        out.push(b' ');
        push_nstring(out, part.content_md5.as_ref().map(|value| value.as_bytes()));
        extension_tail(out, part);
    }
    out.push(b')');
}

/// What a section names (RFC 9051 §6.4.5), with the part numbers resolved by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    Whole,
    Header,
    HeaderFields { names: Vec<Vec<u8>>, not: bool },
    Text,
    Mime,
}

/// Where the octets of a section are: a range of the raw message, written from it without a
/// copy however large the message, or octets made for the answer (HEADER.FIELDS, a BINARY
/// part with its transfer encoding undone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionBytes {
    Raw(std::ops::Range<usize>),
    Made(Vec<u8>),
}

impl SectionBytes {
    /// The octets, `raw` being the message the range is of.
    pub fn of<'a>(&'a self, raw: &'a [u8]) -> &'a [u8] {
        match self {
            SectionBytes::Raw(range) => raw.get(range.clone()).unwrap_or_default(),
            SectionBytes::Made(bytes) => bytes,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            SectionBytes::Raw(range) => range.len(),
            SectionBytes::Made(bytes) => bytes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A partial fetch's octets: from `origin`, at most `length` (RFC 9051 §6.4.5: past the
    /// end gives no octets, not an error).
    pub fn part(self, origin: usize, length: usize) -> SectionBytes {
        let start = origin.min(self.len());
        let end = start.saturating_add(length).min(self.len());
        match self {
            SectionBytes::Raw(range) => SectionBytes::Raw(range.start + start..range.start + end),
            SectionBytes::Made(mut bytes) => {
                bytes.truncate(end);
                bytes.drain(..start);
                SectionBytes::Made(bytes)
            }
        }
    }
}

/// `range` of `raw`, when it lies within it.
fn range(raw: &[u8], range: std::ops::Range<u64>) -> Option<std::ops::Range<usize>> {
    let start = usize::try_from(range.start).ok()?;
    let end = usize::try_from(range.end).ok()?;
    (start <= end && end <= raw.len()).then_some(start..end)
}

/// The bytes of `BODY[part.text]`; None when the part does not exist.
pub fn section_bytes(
    raw: &[u8],
    summary: &MessageSummary,
    part_numbers: &[u32],
    text: &SectionText,
) -> Option<Vec<u8>> {
    section(raw, summary, part_numbers, text).map(|bytes| bytes.of(raw).to_vec())
}

/// Where the bytes of `BODY[part.text]` are; None when the part does not exist.
pub fn section(
    raw: &[u8],
    summary: &MessageSummary,
    part_numbers: &[u32],
    text: &SectionText,
) -> Option<SectionBytes> {
    let made = |header: &[u8], names: &[Vec<u8>], not: bool| {
        SectionBytes::Made(header_fields(header, names, not))
    };
    if part_numbers.is_empty() {
        let header = range(raw, 0..summary.header_end)?;
        return Some(match text {
            SectionText::Whole => SectionBytes::Raw(0..raw.len()),
            SectionText::Header => SectionBytes::Raw(header),
            SectionText::HeaderFields { names, not } => made(&raw[header], names, *not),
            SectionText::Text => {
                SectionBytes::Raw(range(raw, summary.header_end..summary.size_bytes)?)
            }
            SectionText::Mime => return None,
        });
    }
    let part = summary.part(part_numbers)?;
    match text {
        SectionText::Whole => Some(SectionBytes::Raw(range(raw, part.body_range())?)),
        SectionText::Mime => Some(SectionBytes::Raw(range(raw, part.mime_header_range())?)),
        SectionText::Header | SectionText::HeaderFields { .. } | SectionText::Text => {
            // HEADER and TEXT of a part are those of the message it encapsulates.
            let nested = &part.message.as_ref()?.body;
            let header = range(raw, nested.mime_header_range())?;
            Some(match text {
                SectionText::Header => SectionBytes::Raw(header),
                SectionText::HeaderFields { names, not } => made(&raw[header], names, *not),
                _ => SectionBytes::Raw(range(raw, nested.body_range())?),
            })
        }
    }
}

/// The fields of `header` named (or, with `not`, not named) in `names`, with their
/// continuation lines, then the blank line (RFC 9051 §6.4.5 HEADER.FIELDS).
pub fn header_fields(header: &[u8], names: &[Vec<u8>], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in header.split_inclusive(|&byte| byte == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        let continuation = line
            .first()
            .is_some_and(|&byte| byte == b' ' || byte == b'\t');
        if !continuation {
            let name_end = line.iter().position(|&byte| byte == b':');
            keep = match name_end {
                Some(end) => {
                    let name = line[..end].trim_ascii_end();
                    let listed = names.iter().any(|wanted| wanted.eq_ignore_ascii_case(name));
                    listed != not
                }
                None => false,
            };
        }
        if keep {
            out.extend_from_slice(line);
            if !line.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// `BINARY[part]`: the part's body with its transfer encoding undone. `Err(())` for an
/// encoding we cannot undo (the client gets `NO [UNKNOWN-CTE]`, RFC 3516 §4.3).
pub fn binary_bytes(
    raw: &[u8],
    summary: &MessageSummary,
    part_numbers: &[u32],
) -> Option<Result<SectionBytes, ()>> {
    if part_numbers.is_empty() {
        return Some(Ok(SectionBytes::Raw(0..raw.len())));
    }
    let part = summary.part(part_numbers)?;
    if part.is_multipart() {
        return Some(Ok(SectionBytes::Raw(range(raw, part.body_range())?)));
    }
    Some(
        tme_message::decoded_body(raw, part)
            .map(SectionBytes::Made)
            .ok_or(()),
    )
}

/// INTERNALDATE as `"dd-Mon-yyyy hh:mm:ss +0000"` (RFC 9051 §9 date-time).
pub fn internal_date(unix: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let moment =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "\"{:02}-{}-{:04} {:02}:{:02}:{:02} +0000\"",
        moment.day(),
        MONTHS[usize::from(u8::from(moment.month())) - 1],
        moment.year(),
        moment.hour(),
        moment.minute(),
        moment.second()
    )
}

/// `(\Seen $Forwarded ...)`.
pub fn flags(flags: &Flags) -> String {
    format!("({})", flags.names().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn structure(raw: &str) -> String {
        let summary = tme_message::summarize(raw.as_bytes());
        let mut out = Vec::new();
        body_structure(&mut out, &summary.body, true);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn body_structures() {
        expect_test::expect![[
            r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1 NIL NIL NIL NIL)"#
        ]]
        .assert_eq(&structure("Subject: x\r\n\r\nab\r\ncd"));
        expect_test::expect![[r#"(("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 3 0 NIL NIL NIL NIL)("application" "pdf" ("name" "a.pdf") NIL NIL "base64" 4 NIL ("attachment" ("filename" "a.pdf")) NIL NIL) "mixed" ("boundary" "b") NIL NIL NIL)"#]]
        .assert_eq(&structure(
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nhi!\r\n--b\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=a.pdf\r\n\r\nAAAA\r\n--b--\r\n",
        ));
    }

    #[test]
    fn sections() {
        let raw = b"From: a@b\r\nSubject: s\r\n t\r\nTo: c@d\r\n\r\nbody\r\n";
        let summary = tme_message::summarize(raw);
        let fields = |names: &[&str], not: bool| {
            let names = names.iter().map(|name| name.as_bytes().to_vec()).collect();
            String::from_utf8_lossy(
                &section_bytes(
                    raw,
                    &summary,
                    &[],
                    &SectionText::HeaderFields { names, not },
                )
                .unwrap_or_default(),
            )
            .into_owned()
        };
        assert_eq!(
            fields(&["subject", "TO"], false),
            "Subject: s\r\n t\r\nTo: c@d\r\n\r\n"
        );
        assert_eq!(fields(&["subject"], true), "From: a@b\r\nTo: c@d\r\n\r\n");
        assert_eq!(
            section_bytes(raw, &summary, &[], &SectionText::Text),
            Some(b"body\r\n".to_vec())
        );
        assert_eq!(
            section_bytes(raw, &summary, &[1], &SectionText::Whole),
            Some(b"body\r\n".to_vec())
        );
        assert_eq!(
            section_bytes(raw, &summary, &[2], &SectionText::Whole),
            None
        );
        // Whole sections and parts are ranges of the message, never copies.
        assert_eq!(
            section(raw, &summary, &[], &SectionText::Whole),
            Some(SectionBytes::Raw(0..raw.len()))
        );
        assert_eq!(
            section(raw, &summary, &[], &SectionText::Text),
            Some(SectionBytes::Raw(raw.len() - 6..raw.len()))
        );
        assert_eq!(internal_date(0), "\"01-Jan-1970 00:00:00 +0000\"");
    }
}
