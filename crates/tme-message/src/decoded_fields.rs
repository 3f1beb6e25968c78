//! Display-ready header values for webmail, JMAP, search and threading.
//!
//! This module owns turning the top-level header fields into decoded text: RFC 2047 words
//! and charsets decoded, addresses split into name and email, the Date as a Unix time,
//! message ids without angle brackets. The field syntax work is done by mail-parser's
//! field parsers, each given one field value; this module only picks fields and applies
//! the limits. It must not keep anything raw (that is `envelope`'s job).

use mail_parser::parsers::MessageStream;
use mail_parser::{Address, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::header_index::{HeaderBlock, field_value};
use crate::limits::{ADDRESSES_MAX, LIST_FIELD_BYTES_MAX, MESSAGE_IDS_MAX};
use crate::raw_bytes::truncate_string;

/// A decoded address: what webmail shows and JMAP calls an EmailAddress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addr {
    pub name: Option<String>,
    /// As written (not lower-cased); empty when the header gave a name but no address.
    pub email: String,
}

/// The decoded values of one header block.
#[derive(Debug, Default)]
pub(crate) struct DecodedHeader {
    pub subject: Option<String>,
    pub from: Vec<Addr>,
    pub sender: Vec<Addr>,
    pub to: Vec<Addr>,
    pub cc: Vec<Addr>,
    pub bcc: Vec<Addr>,
    pub reply_to: Vec<Addr>,
    pub date_unix: Option<i64>,
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
}

/// Decodes the first occurrence of each field of interest in `block`.
pub(crate) fn decode_header(raw: &[u8], block: &HeaderBlock) -> DecodedHeader {
    let value = |name: &str| block.first(raw, name).map(|span| field_value(raw, &span));
    let list_value =
        |name: &str| value(name).map(|value| value.get(..LIST_FIELD_BYTES_MAX).unwrap_or(value));
    let addresses = |name: &str| list_value(name).map(decoded_addresses).unwrap_or_default();
    let mut references = value("References")
        .map(|value| message_ids(tail_of_id_list(value)))
        .unwrap_or_default();
    // Threading needs the nearest ancestors most, and they are listed last.
    if references.len() > MESSAGE_IDS_MAX {
        references.drain(..references.len() - MESSAGE_IDS_MAX);
    }
    let mut in_reply_to = list_value("In-Reply-To")
        .map(message_ids)
        .unwrap_or_default();
    in_reply_to.truncate(MESSAGE_IDS_MAX);
    DecodedHeader {
        subject: value("Subject").map(decoded_text),
        from: addresses("From"),
        sender: addresses("Sender"),
        to: addresses("To"),
        cc: addresses("Cc"),
        bcc: addresses("Bcc"),
        reply_to: addresses("Reply-To"),
        date_unix: value("Date").and_then(unix_time),
        message_id: value("Message-ID").and_then(|value| message_ids(value).into_iter().next()),
        in_reply_to,
        references,
    }
}

/// The last `LIST_FIELD_BYTES_MAX` bytes of a message-id list, starting at a `<` so that
/// no id is cut in half.
fn tail_of_id_list(value: &[u8]) -> &[u8] {
    let Some(cut) = value.len().checked_sub(LIST_FIELD_BYTES_MAX) else {
        return value;
    };
    let tail = value.get(cut..).unwrap_or_default();
    let first_id = tail
        .iter()
        .position(|&byte| byte == b'<')
        .unwrap_or(tail.len());
    tail.get(first_id..).unwrap_or_default()
}

/// Unstructured text with RFC 2047 words decoded and folds removed.
fn decoded_text(value: &[u8]) -> String {
    match MessageStream::new(value).parse_unstructured() {
        HeaderValue::Text(text) => truncate_string(text.trim().to_owned()),
        HeaderValue::TextList(texts) => truncate_string(texts.join(" ").trim().to_owned()),
        _ => String::new(),
    }
}

/// Every mailbox of an address list, group members flattened into the list (JMAP's
/// non-grouped form), entries with neither name nor address dropped.
pub(crate) fn decoded_addresses(value: &[u8]) -> Vec<Addr> {
    let HeaderValue::Address(address) = MessageStream::new(value).parse_address() else {
        return Vec::new();
    };
    let members: Box<dyn Iterator<Item = &mail_parser::Addr<'_>>> = match &address {
        Address::List(list) => Box::new(list.iter()),
        Address::Group(groups) => Box::new(groups.iter().flat_map(|group| group.addresses.iter())),
    };
    members
        .filter_map(|member| {
            let name = member
                .name
                .as_deref()
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(|name| truncate_string(name.to_owned()));
            let mut email = member.address.as_deref().map(str::trim).unwrap_or_default();
            // An obsolete source route (`@relay:user@host`, RFC 5322 §4.4) is not part of
            // the address a reader or JMAP wants.
            if email.starts_with('@')
                && let Some((_, address)) = email.rsplit_once(':')
            {
                email = address;
            }
            (name.is_some() || !email.is_empty()).then(|| Addr {
                name,
                email: truncate_string(email.to_owned()),
            })
        })
        .take(ADDRESSES_MAX)
        .collect()
}

/// The Date header as seconds since the Unix epoch; `None` when it does not parse.
fn unix_time(value: &[u8]) -> Option<i64> {
    let parse = |value: &[u8]| match MessageStream::new(value).parse_date() {
        HeaderValue::DateTime(date_time) if date_time.is_valid() => Some(date_time.to_timestamp()),
        _ => None,
    };
    parse(value).or_else(|| {
        // A date and time without a zone (`Tue, 3 Dec 2002 08:14:54`, common in old spam)
        // is read as UTC, as Dovecot reads it, rather than as no date at all; mail-parser
        // wants the zone. Only when there is a time: a lone date stays unreadable.
        if !value.contains(&b':') {
            return None;
        }
        let mut with_zone = value.trim_ascii_end().to_vec();
        with_zone.extend_from_slice(b" +0000");
        parse(&with_zone)
    })
}

/// Message ids without their angle brackets, in header order.
fn message_ids(value: &[u8]) -> Vec<String> {
    match MessageStream::new(value).parse_id() {
        HeaderValue::Text(id) => vec![truncate_string(id.into_owned())],
        HeaderValue::TextList(ids) => ids
            .into_iter()
            .map(|id| truncate_string(id.into_owned()))
            .collect(),
        _ => Vec::new(),
    }
}
