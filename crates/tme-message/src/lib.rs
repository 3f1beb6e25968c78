//! Parse a message once, when it is stored, into everything later reads need.
//!
//! `summarize` turns the raw bytes of a message into a `MessageSummary`: the IMAP
//! ENVELOPE with raw values, the body-structure tree with byte offsets of every part's
//! header and body, an index of the top-level header fields, and decoded, display-ready
//! fields for webmail, JMAP, search and threading. The summary is serialized into the
//! store, so FETCH ENVELOPE, BODYSTRUCTURE, `BODY[section]`, BINARY, JMAP Email/get and the
//! message list never parse the message again: a section is a slice of the raw message,
//! which is stored separately, byte for byte.
//!
//! Three small companions write bytes rather than read them: `trace` makes the trace fields
//! (`Received`, `Return-Path`) a hop prepends, `submission` the fix-ups a submission
//! server makes (RFC 6409 §8), and `autoreply` decides whether a delivered message gets a
//! vacation auto-reply and writes it (RFC 3834, RFC 5230).
//!
//! This crate does no I/O and keeps no state: it only reads the bytes it is given. It
//! never panics and bounds its work and output on any input (see `limits`); what a limit
//! cuts stays reachable as raw bytes.
//!
//! Offsets are absolute byte positions in the raw message (`u64`), following RFC 3501
//! §6.4.5: `BODY[n]` is `body_start..body_end`, `BODY[n.MIME]` is `header_start..body_start`,
//! and for a message/rfc822 part `BODY[n.HEADER]` and `BODY[n.TEXT]` are the header and body
//! ranges of `message.body`. See `part_by_section` for the numbering.

pub mod autoreply;
mod body_structure;
mod decoded_fields;
mod envelope;
mod header_index;
pub mod limits;
mod mime_fields;
mod preview;
mod raw_bytes;
mod searchable;
mod section;
mod submission;
pub mod trace;
mod transfer_decoding;

use serde::{Deserialize, Serialize};

pub use autoreply::{
    AutoReply, AutoReplyContext, NoAutoReply, auto_reply_addressees, auto_reply_decision,
    build_auto_reply, return_path,
};
pub use body_structure::{BodyPart, Disposition, NestedMessage};
pub use decoded_fields::Addr;
pub use envelope::{Envelope, EnvelopeAddress};
pub use header_index::HeaderField;
pub use mime_fields::Parameter;
pub use raw_bytes::RawBytes;
pub use searchable::{
    SEARCHABLE_PARTS_MAX, SearchableKind, addresses_contain, contains_ignore_case,
    for_each_searchable_text, searchable_text_contains,
};
pub use section::part_by_section;
pub use submission::{SubmissionContext, SubmittedMessage, prepare_submission};
pub use transfer_decoding::{decode_transfer_encoding, decoded_body, decoded_text};

use body_structure::StructureWalker;
use header_index::{HeaderBlock, field_name};
use limits::FIELD_NAME_BYTES_MAX;

/// What is kept of one message so that no fetch has to parse it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSummary {
    /// Length of the raw message (RFC822.SIZE when the stored bytes are sent as they are).
    pub size_bytes: u64,
    /// Where the top-level body starts, just past the blank line that ends the header;
    /// `size_bytes` when there is no blank line. `raw[..header_end]` is `BODY[HEADER]`,
    /// `raw[header_end..]` is `BODY[TEXT]`.
    pub header_end: u64,
    /// The fields of the top-level header, in order, for `BODY[HEADER.FIELDS (...)]`. Lines
    /// that are not fields (no colon, an mbox `From ` line) are not listed, nor are fields
    /// past `HEADER_FIELDS_MAX`.
    pub headers: Vec<HeaderField>,
    /// IMAP ENVELOPE, raw. Sender and Reply-To are as the headers say: the rule that they
    /// default to From is applied by the IMAP layer at FETCH time.
    pub envelope: Envelope,
    /// Subject with RFC 2047 words decoded; `None` without a Subject header.
    pub subject: Option<String>,
    pub from: Vec<Addr>,
    pub sender: Vec<Addr>,
    pub to: Vec<Addr>,
    pub cc: Vec<Addr>,
    pub bcc: Vec<Addr>,
    pub reply_to: Vec<Addr>,
    /// The Date header as seconds since the Unix epoch; `None` when absent or unparsable.
    pub date_unix: Option<i64>,
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    /// In-Reply-To ids without angle brackets.
    pub in_reply_to: Vec<String>,
    /// References ids without angle brackets, oldest first (at most the last
    /// `MESSAGE_IDS_MAX`).
    pub references: Vec<String>,
    /// Up to `PREVIEW_CHARS_MAX` characters of the message text on one line.
    pub preview: String,
    pub has_attachment: bool,
    /// The body structure; its root is the top-level part (`header_start` 0).
    pub body: BodyPart,
    /// A limit on parts, nesting, header fields or the total of part header values
    /// (`limits`) cut the structure: the summary describes less than the message holds,
    /// though every byte is still in the raw message. Cutting one overlong value or list
    /// (`VALUE_BYTES_MAX`, `ADDRESSES_MAX`, ...) is not flagged.
    pub limits_reached: bool,
}

/// Summarizes a raw message. Never fails and never panics: an empty or broken message
/// gets a summary too (an empty header, a text/plain body), with work and size bounded by
/// `limits`.
pub fn summarize(raw: &[u8]) -> MessageSummary {
    let block = HeaderBlock::scan(raw, 0, raw.len());
    let headers = block
        .fields
        .iter()
        .map(|span| HeaderField {
            name: {
                let name = field_name(raw, span);
                String::from_utf8_lossy(name.get(..FIELD_NAME_BYTES_MAX).unwrap_or(name))
                    .into_owned()
            },
            start: span.start as u64,
            end: span.end as u64,
        })
        .collect();
    let envelope = envelope::envelope_from_header(raw, &block);
    let decoded = decoded_fields::decode_header(raw, &block);
    let mut walker = StructureWalker::new(raw);
    let body = walker.top_level_part(&block);
    MessageSummary {
        size_bytes: raw.len() as u64,
        header_end: block.body_start as u64,
        headers,
        envelope,
        subject: decoded.subject,
        from: decoded.from,
        sender: decoded.sender,
        to: decoded.to,
        cc: decoded.cc,
        bcc: decoded.bcc,
        reply_to: decoded.reply_to,
        date_unix: decoded.date_unix,
        message_id: decoded.message_id,
        in_reply_to: decoded.in_reply_to,
        references: decoded.references,
        preview: preview::preview(raw, &body),
        has_attachment: preview::has_attachment(&body),
        body,
        limits_reached: walker.limits_reached || block.fields_truncated,
    }
}

impl MessageSummary {
    /// The part named by an IMAP section number; see [`part_by_section`].
    pub fn part(&self, section: &[u32]) -> Option<&BodyPart> {
        part_by_section(&self.body, section)
    }
}
