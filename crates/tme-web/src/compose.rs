//! Writing mail: the compose form (new, reply, reply-all, forward inline or as an
//! attachment, a draft reopened), sending it through the node's submission pipeline with a
//! copy in Sent, and saving it as a draft in Drafts.
//!
//! Rules it keeps:
//! - a message goes out only through `tme_queue::Submitter`, the pipeline of the submission
//!   listeners: the same sender checks (the account may send, and as its own address only),
//!   Bcc removed, DKIM, local delivery or the queue;
//! - the From of every message is the session's account (with its display name): nothing in
//!   the form names the author;
//! - every message it reads (the one replied to, forwarded, or a draft) is looked up with
//!   the session's account, so another account's ids find nothing (404);
//! - single-line fields lose CR and LF before they reach a header, and uploaded file names
//!   are sanitised (`multipart::sanitize_file_name`) and written as RFC 2231 parameters.
//!
//! The message is built by `mail-builder`; reading the original (quote, attachments) is
//! `mail-parser`'s. It must not speak SMTP or write SQL.

use std::borrow::Cow;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::text::Text;
use mail_builder::mime::{BodyPart, MimePart};
use mail_parser::{HeaderValue, MessageParser, MimeHeaders, PartType};
use serde::Deserialize;
use tme_core::EmailAddress;
use tme_queue::submit::{OutgoingRecipient, RouteRefusal, SenderRefusal, SubmitRefusal};
use tme_store::mail::{FlagChange, SpecialUse};
use tme_store::{Delivery, Flags, Mailbox, MailboxId, MessageRecord, Notify};

use crate::WebState;
use crate::current::Current;
use crate::multipart::{FormInput, MultipartForm, UPLOAD_BODY_OCTETS_MAX};
use crate::pages;
use crate::respond::{WebError, now_unix, page, page_ok, redirect};

/// The most recipients (To, Cc and Bcc together) of one message.
pub const RECIPIENTS_MAX: usize = 100;
/// The longest subject kept, in characters.
pub const SUBJECT_CHARS_MAX: usize = 998;
/// The most message ids kept in References (the oldest, then the newest, RFC 5322
/// §3.6.4 lets a long chain be trimmed).
pub const REFERENCES_MAX: usize = 30;
/// The most of the original's text quoted in a reply or forward, in octets.
pub const QUOTED_OCTETS_MAX: usize = 256 * 1024;
/// The most attachment octets (uploads and carried ones) of one message.
pub const ATTACHMENTS_OCTETS_MAX: usize = UPLOAD_BODY_OCTETS_MAX;

/// The routes of writing.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/compose", get(compose_page))
        .route("/compose/send", post(send))
        .route("/compose/draft", post(save_draft))
}

/// A message of the account: a mailbox id and a UID, written `MAILBOX/UID` in forms and
/// query strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef {
    pub mailbox: MailboxId,
    pub uid: u32,
}

impl MessageRef {
    pub fn parse(text: &str) -> Option<MessageRef> {
        let (mailbox, uid) = text.trim().split_once('/')?;
        Some(MessageRef {
            mailbox: mailbox.parse().ok()?,
            uid: uid.parse().ok()?,
        })
    }
}

impl std::fmt::Display for MessageRef {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}/{}", self.mailbox, self.uid)
    }
}

/// What the compose form holds, as shown and as posted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComposeFields {
    pub to: String,
    pub cc: String,
    pub bcc: String,
    pub subject: String,
    pub body: String,
    /// Message ids without angle brackets.
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// The draft this form was opened from: replaced when saved, removed when sent.
    pub draft: Option<MessageRef>,
    /// The message replied to: flagged \Answered when sent.
    pub replied: Option<MessageRef>,
    /// Forwarded as an attachment: the whole original as a message/rfc822 part.
    pub attached_message: Option<MessageRef>,
    /// The message whose attachments are carried over (a forward, a reopened draft), and
    /// which of them (by position among its attachments) are kept.
    pub attachments_from: Option<MessageRef>,
    pub keep_attachments: Vec<usize>,
}

impl ComposeFields {
    /// The fields of a posted form.
    pub fn from_form(form: &MultipartForm) -> ComposeFields {
        let text = |name: &str| form.field(name).unwrap_or("").to_owned();
        let reference = |name: &str| form.field(name).and_then(MessageRef::parse);
        ComposeFields {
            to: single_line(&text("to")),
            cc: single_line(&text("cc")),
            bcc: single_line(&text("bcc")),
            subject: single_line(&text("subject"))
                .chars()
                .take(SUBJECT_CHARS_MAX)
                .collect(),
            body: text("body"),
            in_reply_to: message_ids(&text("in_reply_to")),
            references: message_ids(&text("references")),
            draft: reference("draft"),
            replied: reference("replied"),
            attached_message: reference("attached_message"),
            attachments_from: reference("attachments_from"),
            keep_attachments: form
                .all("keep_attachment")
                .filter_map(|index| index.parse().ok())
                .collect(),
        }
    }
}

/// A header value typed on one line: CR and LF (header injection) become spaces.
pub fn single_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ").trim().to_owned()
}

/// Message ids from a space-separated list, angle brackets dropped; anything that cannot
/// be a msg-id (RFC 5322 §3.6.4: printable ASCII, no brackets or spaces) is left out.
pub fn message_ids(text: &str) -> Vec<String> {
    text.split_ascii_whitespace()
        .map(|id| id.trim_start_matches('<').trim_end_matches('>'))
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 250
                && id
                    .bytes()
                    .all(|octet| octet.is_ascii_graphic() && octet != b'<' && octet != b'>')
        })
        .map(str::to_owned)
        .collect()
}

/// An attachment the form carries over from another message, as listed in the form.
#[derive(Debug, Clone)]
pub struct CarriedAttachment {
    pub index: usize,
    pub name: String,
    pub media_type: String,
    pub size_octets: u64,
}

#[derive(Debug, Deserialize, Default)]
struct ComposeQuery {
    reply: Option<String>,
    reply_all: Option<String>,
    forward: Option<String>,
    forward_attached: Option<String>,
    draft: Option<String>,
    to: Option<String>,
    saved: Option<String>,
}

/// A message of the session's account, with its raw bytes; NotFound for anything else.
async fn load_message(
    state: &WebState,
    current: &Current,
    reference: MessageRef,
) -> Result<(Mailbox, MessageRecord, Vec<u8>), WebError> {
    let mailbox = state
        .store
        .mail
        .mailbox_get(current.account.id, reference.mailbox)
        .await?;
    if mailbox.deleted_unix.is_some() || mailbox.account_id != current.account.id {
        return Err(WebError::NotFound);
    }
    let record = state
        .store
        .mail
        .message_list(current.account.id, mailbox.id)
        .await?
        .into_iter()
        .find(|record| record.uid == reference.uid)
        .ok_or(WebError::NotFound)?;
    let raw = state.store.message_raw(&record).await?;
    Ok((mailbox, record, raw))
}

fn reference_query(text: &str) -> Result<MessageRef, WebError> {
    MessageRef::parse(text).ok_or(WebError::NotFound)
}

async fn compose_page(
    State(state): State<WebState>,
    current: Current,
    Query(query): Query<ComposeQuery>,
) -> Result<Response, WebError> {
    let own = current.account.address.to_string();
    let (start, text) = if let Some(text) = &query.reply {
        (Start::Reply { all: false }, text)
    } else if let Some(text) = &query.reply_all {
        (Start::Reply { all: true }, text)
    } else if let Some(text) = &query.forward {
        (Start::Forward { attached: false }, text)
    } else if let Some(text) = &query.forward_attached {
        (Start::Forward { attached: true }, text)
    } else if let Some(text) = &query.draft {
        (Start::Draft, text)
    } else {
        let fields = ComposeFields {
            to: single_line(query.to.as_deref().unwrap_or("")),
            ..ComposeFields::default()
        };
        return Ok(page_ok(pages::compose::compose(
            current.viewer(),
            &fields,
            &[],
            None,
            None,
        )));
    };
    let reference = reference_query(text)?;
    let (_, _, raw) = load_message(&state, &current, reference).await?;
    let (fields, carried) = tokio::task::spawn_blocking(move || {
        let fields = prefill(start, &raw, reference, &own);
        let carried = match fields.attachments_from {
            Some(_) => carried_attachments(&raw),
            None => Vec::new(),
        };
        (fields, carried)
    })
    .await
    .map_err(|_| WebError::Unavailable)?;
    let notice = query.saved.is_some().then_some("Draft saved.");
    Ok(page_ok(pages::compose::compose(
        current.viewer(),
        &fields,
        &carried,
        notice,
        None,
    )))
}

/// How the form starts from an existing message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Reply { all: bool },
    Forward { attached: bool },
    Draft,
}

/// The form's fields for a reply, forward or reopened draft of `raw` (at `reference`),
/// for the account whose address is `own`.
pub fn prefill(start: Start, raw: &[u8], reference: MessageRef, own: &str) -> ComposeFields {
    let Some(message) = MessageParser::default().parse(raw) else {
        return ComposeFields::default();
    };
    let subject = message.subject().unwrap_or("").to_owned();
    let list = |address: Option<&mail_parser::Address<'_>>| -> Vec<(Option<String>, String)> {
        address
            .map(|address| {
                address
                    .iter()
                    .filter_map(|addr| {
                        Some((addr.name().map(str::to_owned), addr.address()?.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let from = list(message.from());
    let to = list(message.to());
    let cc = list(message.cc());
    let text = message
        .body_text(0)
        .map(|text| bounded(&text).to_owned())
        .unwrap_or_default();
    let date = message
        .date()
        .map(|date| pages::format_date(date.to_timestamp()))
        .unwrap_or_default();
    match start {
        Start::Draft => ComposeFields {
            to: address_text(&to),
            cc: address_text(&cc),
            bcc: address_text(&list(message.bcc())),
            subject,
            body: text,
            in_reply_to: header_ids(message.in_reply_to()),
            references: header_ids(message.references()),
            draft: Some(reference),
            attachments_from: (message.attachment_count() > 0).then_some(reference),
            keep_attachments: (0..message.attachment_count()).collect(),
            ..ComposeFields::default()
        },
        Start::Reply { all } => {
            let reply_to = list(message.reply_to());
            let mut recipients = if reply_to.is_empty() {
                from.clone()
            } else {
                reply_to
            };
            let mut copies = Vec::new();
            if all {
                recipients.extend(to);
                copies = cc;
            }
            // RFC 5322 §3.6.3: the reply goes to the author (or Reply-To), a reply-all also
            // to the other recipients; never back to ourselves, nor anyone twice.
            let mut seen = vec![own.to_ascii_lowercase()];
            recipients.retain(|(_, email)| remember(&mut seen, email));
            copies.retain(|(_, email)| remember(&mut seen, email));
            let original_id: Vec<String> = message
                .message_id()
                .map(str::to_owned)
                .into_iter()
                .collect();
            ComposeFields {
                to: address_text(&recipients),
                cc: address_text(&copies),
                subject: prefixed_subject("Re", &subject),
                body: quote(&date, &address_text(&from), &text),
                in_reply_to: original_id.clone(),
                references: reply_references(
                    &header_ids(message.references()),
                    &header_ids(message.in_reply_to()),
                    message.message_id(),
                ),
                replied: Some(reference),
                ..ComposeFields::default()
            }
        }
        Start::Forward { attached } => {
            let body = if attached {
                String::new()
            } else {
                format!(
                    "\n\n---------- Forwarded message ----------\nFrom: {}\nDate: {date}\nSubject: {subject}\nTo: {}\n\n{text}",
                    address_text(&from),
                    address_text(&to),
                )
            };
            ComposeFields {
                subject: prefixed_subject("Fwd", &subject),
                body,
                attached_message: attached.then_some(reference),
                attachments_from: (!attached && message.attachment_count() > 0)
                    .then_some(reference),
                keep_attachments: if attached {
                    Vec::new()
                } else {
                    (0..message.attachment_count()).collect()
                },
                ..ComposeFields::default()
            }
        }
    }
}

fn remember(seen: &mut Vec<String>, email: &str) -> bool {
    let lower = email.to_ascii_lowercase();
    if seen.contains(&lower) {
        return false;
    }
    seen.push(lower);
    true
}

/// `text` cut to `QUOTED_OCTETS_MAX` at a character boundary.
fn bounded(text: &str) -> &str {
    if text.len() <= QUOTED_OCTETS_MAX {
        return text;
    }
    let mut end = QUOTED_OCTETS_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Addresses as the form shows them: `Name <email>, email`.
fn address_text(addresses: &[(Option<String>, String)]) -> String {
    addresses
        .iter()
        .map(|(name, email)| match name {
            Some(name) if !name.trim().is_empty() => {
                let name = name.replace(['\r', '\n'], " ");
                // A name with a comma or other specials is quoted, so it parses back whole.
                if name
                    .chars()
                    .any(|character| ",;:<>@\"()[]\\".contains(character))
                {
                    format!("\"{}\" <{email}>", name.replace(['\\', '"'], ""))
                } else {
                    format!("{name} <{email}>")
                }
            }
            _ => email.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn header_ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => message_ids(id),
        HeaderValue::TextList(ids) => ids.iter().flat_map(|id| message_ids(id)).collect(),
        _ => Vec::new(),
    }
}

/// References of a reply (RFC 5322 §3.6.4): the parent's References (or, without them, its
/// single In-Reply-To id) followed by the parent's Message-ID; a long chain keeps its first
/// id and the newest ones.
pub fn reply_references(
    references: &[String],
    in_reply_to: &[String],
    message_id: Option<&str>,
) -> Vec<String> {
    let mut chain: Vec<String> = if !references.is_empty() {
        references.to_vec()
    } else if in_reply_to.len() == 1 {
        in_reply_to.to_vec()
    } else {
        Vec::new()
    };
    chain.extend(message_id.map(str::to_owned));
    if chain.len() > REFERENCES_MAX {
        let first = chain[0].clone();
        let newest = chain.split_off(chain.len() - (REFERENCES_MAX - 1));
        chain = std::iter::once(first).chain(newest).collect();
    }
    chain
}

/// "Re: subject" or "Fwd: subject" without stacking: leading Re:/Fwd:/Fw: (any case, with
/// a `[n]` counter) are taken off first.
pub fn prefixed_subject(prefix: &str, subject: &str) -> String {
    let mut rest = subject.trim();
    loop {
        let lower = rest.to_ascii_lowercase();
        let cut = ["re", "fwd", "fw", "aw", "wg"].iter().find_map(|word| {
            let after = lower.strip_prefix(word)?;
            let after = match after.strip_prefix('[') {
                Some(counter) => {
                    let close = counter.find(']')?;
                    counter[..close]
                        .bytes()
                        .all(|octet| octet.is_ascii_digit())
                        .then(|| &counter[close + 1..])?
                }
                None => after,
            };
            let after = after.strip_prefix(':')?;
            Some(lower.len() - after.len())
        });
        match cut {
            Some(octets) => rest = rest[octets..].trim_start(),
            None => break,
        }
    }
    format!("{prefix}: {rest}")
}

/// The original's text quoted under an attribution line.
fn quote(date: &str, from: &str, text: &str) -> String {
    let mut quoted = format!("\n\nOn {date}, {from} wrote:\n");
    for line in text.lines() {
        quoted.push('>');
        if !line.is_empty() && !line.starts_with('>') {
            quoted.push(' ');
        }
        quoted.push_str(line);
        quoted.push('\n');
    }
    quoted
}

/// The attachments of `raw`, as the form lists them.
fn carried_attachments(raw: &[u8]) -> Vec<CarriedAttachment> {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Vec::new();
    };
    message
        .attachments()
        .enumerate()
        .map(|(index, part)| {
            let (media_type, content) = part_content(part);
            CarriedAttachment {
                index,
                name: part_name(part),
                media_type,
                size_octets: content.len() as u64,
            }
        })
        .collect()
}

fn part_name(part: &mail_parser::MessagePart<'_>) -> String {
    crate::multipart::sanitize_file_name(part.attachment_name().unwrap_or(""))
}

/// A part's media type and decoded content (a nested message: its raw octets).
fn part_content<'a>(part: &'a mail_parser::MessagePart<'a>) -> (String, &'a [u8]) {
    let media_type = match &part.body {
        PartType::Message(_) => "message/rfc822".to_owned(),
        _ => part
            .content_type()
            .map(|content_type| match content_type.subtype() {
                Some(subtype) => format!("{}/{}", content_type.ctype(), subtype),
                None => content_type.ctype().to_owned(),
            })
            .unwrap_or_else(|| "application/octet-stream".to_owned())
            .to_ascii_lowercase(),
    };
    (media_type, part.contents())
}

/// One attachment of the message being built.
#[derive(Debug, Clone)]
pub struct OutgoingAttachment {
    pub name: String,
    pub media_type: String,
    pub content: Vec<u8>,
}

/// A parsed address list, or the pieces that are not addresses.
pub fn parse_addresses(text: &str) -> Result<Vec<(Option<String>, EmailAddress)>, Vec<String>> {
    let text = single_line(text);
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let header = format!("To: {text}\r\n\r\n");
    let parsed = MessageParser::default().parse_headers(header.as_bytes());
    let mut addresses = Vec::new();
    let mut bad = Vec::new();
    if let Some(list) = parsed.as_ref().and_then(|message| message.to()) {
        for addr in list.iter() {
            match addr.address().map(EmailAddress::parse) {
                Some(Ok(email)) => addresses.push((
                    addr.name()
                        .map(str::to_owned)
                        .filter(|name| !name.trim().is_empty()),
                    email,
                )),
                Some(Err(_)) => bad.push(addr.address().unwrap_or("").to_owned()),
                None => bad.push(addr.name().unwrap_or("").to_owned()),
            }
        }
    }
    if addresses.is_empty() && bad.is_empty() {
        bad.push(text);
    }
    if bad.is_empty() {
        Ok(addresses)
    } else {
        Err(bad)
    }
}

fn builder_addresses(addresses: &[(Option<String>, EmailAddress)]) -> Address<'static> {
    Address::new_list(
        addresses
            .iter()
            .map(|(name, email)| Address::new_address(name.clone(), email.to_string()))
            .collect(),
    )
}

/// What the built message says, besides the form.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub from_name: Option<String>,
    pub from_address: String,
    pub to: Vec<(Option<String>, EmailAddress)>,
    pub cc: Vec<(Option<String>, EmailAddress)>,
    pub bcc: Vec<(Option<String>, EmailAddress)>,
    pub message_id: String,
    pub date_unix: i64,
}

/// The MIME message of the form: a text/plain body (UTF-8, quoted-printable when needed),
/// the attachments after it (a forwarded message as message/rfc822, RFC 2046 §5.2.1, never
/// base64), Bcc kept (the pipeline takes it off what is sent; the Sent copy keeps it).
pub fn build_message(
    fields: &ComposeFields,
    envelope: &Envelope,
    attachments: Vec<OutgoingAttachment>,
) -> Vec<u8> {
    let mut builder = MessageBuilder::new()
        .from(Address::new_address(
            envelope.from_name.clone(),
            envelope.from_address.clone(),
        ))
        .message_id(envelope.message_id.clone())
        .date(envelope.date_unix);
    if !envelope.to.is_empty() {
        builder = builder.to(builder_addresses(&envelope.to));
    }
    if !envelope.cc.is_empty() {
        builder = builder.cc(builder_addresses(&envelope.cc));
    }
    if !envelope.bcc.is_empty() {
        builder = builder.bcc(builder_addresses(&envelope.bcc));
    }
    builder = builder.subject(Text::new(fields.subject.clone()));
    if !fields.in_reply_to.is_empty() {
        builder = builder.in_reply_to(MessageId::new_list(fields.in_reply_to.iter().cloned()));
    }
    if !fields.references.is_empty() {
        builder = builder.references(MessageId::new_list(fields.references.iter().cloned()));
    }
    // Text typed in a browser comes with CRLF or LF; the message has CRLF.
    let body = fields.body.replace("\r\n", "\n").replace('\n', "\r\n");
    let text_part = MimePart::new(
        ContentType::new("text/plain").attribute("charset", "utf-8"),
        BodyPart::Text(Cow::Owned(body)),
    );
    if attachments.is_empty() {
        builder = builder.body(text_part);
    } else {
        let mut parts = vec![text_part];
        for attachment in attachments {
            let part = if attachment.media_type == "message/rfc822" {
                let encoding = if attachment.content.is_ascii() {
                    "7bit"
                } else {
                    "8bit"
                };
                MimePart::new(
                    ContentType::new("message/rfc822"),
                    BodyPart::Binary(Cow::Owned(attachment.content)),
                )
                .attachment(attachment.name)
                .transfer_encoding(encoding)
            } else {
                MimePart::new(
                    ContentType::new(attachment.media_type),
                    BodyPart::Binary(Cow::Owned(attachment.content)),
                )
                .attachment(attachment.name)
            };
            parts.push(part);
        }
        builder = builder.body(MimePart::new(
            ContentType::new("multipart/mixed"),
            BodyPart::Multipart(parts),
        ));
    }
    let mut raw = Vec::new();
    builder.serialize(&mut raw);
    raw
}

/// The uploads and carried attachments of the form, in the order shown.
async fn collect_attachments(
    state: &WebState,
    current: &Current,
    fields: &ComposeFields,
    form: &MultipartForm,
) -> Result<Vec<OutgoingAttachment>, WebError> {
    let mut attachments = Vec::new();
    if let Some(reference) = fields.attached_message {
        let (_, _, raw) = load_message(state, current, reference).await?;
        let subject = MessageParser::default()
            .parse_headers(&raw)
            .and_then(|message| message.subject().map(str::to_owned))
            .unwrap_or_default();
        let name = format!(
            "{}.eml",
            if subject.is_empty() {
                "message"
            } else {
                &subject
            }
        );
        attachments.push(OutgoingAttachment {
            name: crate::multipart::sanitize_file_name(&name),
            media_type: "message/rfc822".to_owned(),
            content: raw,
        });
    }
    if let Some(reference) = fields.attachments_from
        && !fields.keep_attachments.is_empty()
    {
        let (_, _, raw) = load_message(state, current, reference).await?;
        let keep = fields.keep_attachments.clone();
        let carried = tokio::task::spawn_blocking(move || {
            let Some(message) = MessageParser::default().parse(&raw) else {
                return Vec::new();
            };
            message
                .attachments()
                .enumerate()
                .filter(|(index, _)| keep.contains(index))
                .map(|(_, part)| {
                    let (media_type, content) = part_content(part);
                    OutgoingAttachment {
                        name: part_name(part),
                        media_type,
                        content: content.to_vec(),
                    }
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|_| WebError::Unavailable)?;
        attachments.extend(carried);
    }
    for upload in &form.files {
        attachments.push(OutgoingAttachment {
            name: upload.file_name.clone(),
            media_type: upload.media_type.clone(),
            content: upload.content.to_vec(),
        });
    }
    let total: usize = attachments
        .iter()
        .map(|attachment| attachment.content.len())
        .sum();
    if total > ATTACHMENTS_OCTETS_MAX {
        return Err(WebError::TooLarge);
    }
    Ok(attachments)
}

/// The account's mailbox of `special_use` (by its special use, else by `name`), made when
/// missing.
async fn special_mailbox(
    state: &WebState,
    current: &Current,
    special_use: SpecialUse,
    name: &str,
) -> Result<Mailbox, WebError> {
    let mailboxes = state.store.mail.mailbox_list(current.account.id).await?;
    if let Some(mailbox) = mailboxes
        .iter()
        .find(|mailbox| mailbox.special_use == Some(special_use))
        .or_else(|| mailboxes.iter().find(|mailbox| mailbox.name == name))
    {
        return Ok(mailbox.clone());
    }
    Ok(state
        .store
        .mail
        .mailbox_create(current.account.id, name, Some(special_use))
        .await?)
}

fn flags(names: &[&str]) -> Flags {
    Flags::parse(names.iter().copied()).unwrap_or_default()
}

/// The form shown again with what went wrong (422): the typed fields are kept, and the
/// attachments carried from a message (a forward, a draft the form saved) listed again, so
/// a send that fixes the mistake carries them; uploads must be chosen again (a browser
/// never refills a file input).
async fn form_again(
    state: &WebState,
    current: &Current,
    fields: &ComposeFields,
    error: &str,
) -> Response {
    let carried = match fields.attachments_from {
        Some(reference) => match load_message(state, current, reference).await {
            Ok((_, _, raw)) => tokio::task::spawn_blocking(move || carried_attachments(&raw))
                .await
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        },
        None => Vec::new(),
    };
    page(
        StatusCode::UNPROCESSABLE_ENTITY,
        pages::compose::compose(current.viewer(), fields, &carried, None, Some(error)),
    )
}

fn envelope_of(
    current: &Current,
    to: Vec<(Option<String>, EmailAddress)>,
    cc: Vec<(Option<String>, EmailAddress)>,
    bcc: Vec<(Option<String>, EmailAddress)>,
) -> Envelope {
    let now = now_unix();
    Envelope {
        from_name: current
            .account
            .display_name
            .clone()
            .filter(|name| !name.trim().is_empty()),
        from_address: current.account.address.to_string(),
        to,
        cc,
        bcc,
        message_id: format!(
            "{:016x}.{now}@{}",
            rand::random::<u64>(),
            current.account.address.domain()
        ),
        date_unix: now,
    }
}

fn sender_refusal(refusal: &SenderRefusal) -> WebError {
    match refusal {
        SenderRefusal::SendLocked => WebError::Refused {
            status: StatusCode::FORBIDDEN,
            title: "Sending is blocked",
            explanation: "This account may not send mail just now. Reading mail still works; ask your provider's support why sending is blocked.".to_owned(),
        },
        SenderRefusal::NotOwned { address } => WebError::Refused {
            status: StatusCode::FORBIDDEN,
            title: "Not your address",
            explanation: format!("This account may not send as {address}."),
        },
        SenderRefusal::TemporaryFailure => WebError::Unavailable,
    }
}

fn route_refusal_text(refusal: RouteRefusal) -> &'static str {
    match refusal {
        RouteRefusal::UnknownAddress => "there is no such address",
        RouteRefusal::AccountSuspended => "that mailbox is disabled",
        RouteRefusal::OverQuota => "that mailbox is full",
        RouteRefusal::TemporaryFailure => "it cannot be checked just now; try again",
    }
}

async fn send(
    State(state): State<WebState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    current: Current,
    FormInput(form): FormInput,
) -> Result<Response, WebError> {
    let fields = ComposeFields::from_form(&form);
    let mut lists = Vec::new();
    for (label, text) in [("To", &fields.to), ("Cc", &fields.cc), ("Bcc", &fields.bcc)] {
        match parse_addresses(text) {
            Ok(list) => lists.push(list),
            Err(bad) => {
                return Ok(form_again(
                    &state,
                    &current,
                    &fields,
                    &format!("{label}: not an email address: {}", bad.join(", ")),
                )
                .await);
            }
        }
    }
    let bcc = lists.pop().unwrap_or_default();
    let cc = lists.pop().unwrap_or_default();
    let to = lists.pop().unwrap_or_default();
    let count = to.len() + cc.len() + bcc.len();
    if count == 0 {
        return Ok(form_again(&state, &current, &fields, "Name at least one recipient.").await);
    }
    if count > RECIPIENTS_MAX {
        return Ok(form_again(
            &state,
            &current,
            &fields,
            &format!("A message may have at most {RECIPIENTS_MAX} recipients."),
        )
        .await);
    }
    let own = current.account.address.to_string();
    // The account may send at all (not send-locked) before anything else is done.
    state
        .submitter
        .check_sender(current.account.id, &own)
        .await
        .map_err(|refusal| sender_refusal(&refusal))?;
    let attachments = collect_attachments(&state, &current, &fields, &form).await?;
    let envelope = envelope_of(&current, to, cc, bcc);
    let recipients_all: Vec<EmailAddress> = envelope
        .to
        .iter()
        .chain(&envelope.cc)
        .chain(&envelope.bcc)
        .map(|(_, email)| email.clone())
        .collect();
    let build_fields = fields.clone();
    let build_envelope = envelope.clone();
    let raw = tokio::task::spawn_blocking(move || {
        build_message(&build_fields, &build_envelope, attachments)
    })
    .await
    .map_err(|_| WebError::Unavailable)?;

    let mut recipients = Vec::new();
    let mut refused = Vec::new();
    let mut seen = Vec::new();
    for address in recipients_all {
        if !remember(&mut seen, &address.to_string()) {
            continue;
        }
        match state
            .submitter
            .route(&address, Some(raw.len() as u64))
            .await
        {
            Ok(route) => recipients.push(OutgoingRecipient {
                address,
                route,
                notify: Notify::default(),
                original_recipient: None,
            }),
            Err(refusal) => refused.push(format!("{address}: {}", route_refusal_text(refusal))),
        }
    }
    if !refused.is_empty() {
        return Ok(form_again(
            &state,
            &current,
            &fields,
            &format!("Not sent. {}.", refused.join("; ")),
        )
        .await);
    }
    let now = envelope.date_unix;
    let date = mail_builder::headers::date::Date::new(now).to_rfc822();
    let transaction_id = format!("{:016X}", rand::random::<u64>());
    let received =
        tme_message::trace::web_received_field(state.submitter.hostname(), &transaction_id, &date);
    let outgoing = tme_queue::submit::Outgoing {
        account: current.account.id,
        envelope_sender: &own,
        recipients,
        received_field: &received,
        message: &raw,
        envelope_id: None,
        dsn_return: None,
        requiretls: false,
        smtputf8: !own.is_ascii() || seen.iter().any(|address| !address.is_ascii()),
        body_8bit: !raw.is_ascii(),
        now_unix: now,
        date: &date,
    };
    match state.submitter.submit(&outgoing).await {
        Ok(submitted) => {
            tracing::info!(account = %own, client = %client.ip(), id = %transaction_id, local_copies = submitted.local_copies, remote_recipients = submitted.remote_recipients, queue_id = ?submitted.queue_id, "webmail: message sent");
        }
        Err(SubmitRefusal::Sender(refusal)) => return Err(sender_refusal(&refusal)),
        Err(SubmitRefusal::OverQuota) => {
            return Ok(form_again(
                &state,
                &current,
                &fields,
                "Not sent: a recipient's mailbox is full.",
            )
            .await);
        }
        Err(SubmitRefusal::NoAuthor | SubmitRefusal::TemporaryFailure) => {
            return Err(WebError::Unavailable);
        }
    }
    // Sent: the copy in Sent (with its Bcc), the draft gone, the original answered. The
    // message is out already: a failure here is logged, not shown as a failed send.
    let sent = special_mailbox(&state, &current, SpecialUse::Sent, "Sent").await?;
    let seen_flags = flags(&["\\Seen"]);
    if let Err(error) = state
        .store
        .deliver(&[Delivery {
            account: current.account.id,
            mailbox: sent.id,
            raw: &raw,
            internal_date_unix: Some(now),
            flags: &seen_flags,
        }])
        .await
    {
        tracing::warn!(%error, account = %own, "webmail: the Sent copy could not be stored");
    }
    if let Some(draft) = fields.draft {
        remove_draft(&state, &current, draft).await;
    }
    if let Some(replied) = fields.replied {
        let answered = FlagChange::Add(flags(&["\\Answered"]));
        if let Err(error) = state
            .store
            .mail
            .messages_set_flags(
                current.account.id,
                replied.mailbox,
                &[replied.uid],
                &answered,
                None,
            )
            .await
        {
            tracing::info!(%error, "webmail: cannot flag the replied message \\Answered");
        }
    }
    Ok(redirect(&format!("/mail/{}", sent.id)))
}

/// Expunges a draft the form replaced or sent; only from the account's Drafts.
async fn remove_draft(state: &WebState, current: &Current, draft: MessageRef) {
    let Ok(mailbox) = state
        .store
        .mail
        .mailbox_get(current.account.id, draft.mailbox)
        .await
    else {
        return;
    };
    if mailbox.account_id != current.account.id || mailbox.special_use != Some(SpecialUse::Drafts) {
        return;
    }
    if let Err(error) = state
        .store
        .mail
        .messages_expunge(current.account.id, mailbox.id, &[draft.uid])
        .await
    {
        tracing::warn!(%error, "webmail: cannot remove the replaced draft");
    }
}

/// The form's state after a save, for the script that saved it (`saved_draft_json`): the
/// new draft to post as `draft` next time, and the attachments now kept in it, which the
/// next save and the send carry from it (`attachments_from` = the draft, one
/// `keep_attachment` per index) instead of uploading or carrying them again.
///
/// `{"mailbox":M,"uid":U,"draft":"M/U","attachments_from":"M/U"|null,
///   "attachments":[{"index":I,"name":N,"media_type":T,"size_octets":S,"size":"12 KB"}]}`
pub fn saved_draft_json(draft: MessageRef, kept: &[CarriedAttachment]) -> String {
    let attachments: Vec<serde_json::Value> = kept
        .iter()
        .map(|attachment| {
            serde_json::json!({
                "index": attachment.index,
                "name": attachment.name,
                "media_type": attachment.media_type,
                "size_octets": attachment.size_octets,
                "size": pages::mail::size_text(attachment.size_octets),
            })
        })
        .collect();
    serde_json::json!({
        "mailbox": draft.mailbox,
        "uid": draft.uid,
        "draft": draft.to_string(),
        "attachments_from": (!kept.is_empty()).then(|| draft.to_string()),
        "attachments": attachments,
    })
    .to_string()
}

/// Saves the form in Drafts (\Draft \Seen), replacing the draft it was opened from.
/// A browser is sent back to the form on the new draft (`/compose?draft=MAILBOX/UID`); a
/// script that asks for JSON (`Accept: application/json`, for saving automatically) gets
/// the form's new state (`saved_draft_json`).
async fn save_draft(
    State(state): State<WebState>,
    current: Current,
    headers: HeaderMap,
    FormInput(form): FormInput,
) -> Result<Response, WebError> {
    let fields = ComposeFields::from_form(&form);
    // A draft keeps what parses; an address still being typed is not an error yet.
    let lenient = |text: &str| parse_addresses(text).unwrap_or_default();
    let attachments = collect_attachments(&state, &current, &fields, &form).await?;
    let envelope = envelope_of(
        &current,
        lenient(&fields.to),
        lenient(&fields.cc),
        lenient(&fields.bcc),
    );
    let build_fields = fields.clone();
    // The attachments are listed as the new draft holds them: numbered as a reopened draft
    // numbers them, which is what the next save's `keep_attachment` values must match.
    let (raw, kept) = tokio::task::spawn_blocking(move || {
        let raw = build_message(&build_fields, &envelope, attachments);
        let kept = carried_attachments(&raw);
        (raw, kept)
    })
    .await
    .map_err(|_| WebError::Unavailable)?;
    let drafts = special_mailbox(&state, &current, SpecialUse::Drafts, "Drafts").await?;
    let draft_flags = flags(&["\\Draft", "\\Seen"]);
    let appended = state
        .store
        .deliver(&[Delivery {
            account: current.account.id,
            mailbox: drafts.id,
            raw: &raw,
            internal_date_unix: Some(now_unix()),
            flags: &draft_flags,
        }])
        .await
        .map_err(|error| match error {
            tme_store::StoreError::QuotaExceeded { .. } => WebError::Refused {
                status: StatusCode::INSUFFICIENT_STORAGE,
                title: "Mailbox full",
                explanation: "The draft was not saved: this account is over its quota. Delete some mail and try again.".to_owned(),
            },
            other => WebError::from(other),
        })?;
    let new = appended
        .first()
        .map(|appended| MessageRef {
            mailbox: appended.mailbox_id,
            uid: appended.uid,
        })
        .ok_or(WebError::Unavailable)?;
    if let Some(old) = fields.draft
        && old != new
    {
        remove_draft(&state, &current, old).await;
    }
    let wants_json = headers
        .get(ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    if wants_json {
        return Ok((
            StatusCode::OK,
            [(CONTENT_TYPE, "application/json")],
            saved_draft_json(new, &kept),
        )
            .into_response());
    }
    Ok(redirect(&format!("/compose?draft={new}&saved=1")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &str = "From: Bob <bob@example.org>\r\n\
To: alice@example.org, Carol <carol@example.net>\r\n\
Cc: dave@example.net, Alice <ALICE@example.org>\r\n\
Subject: Re: RE: Fwd: lunch\r\n\
Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n\
Message-ID: <three@example.org>\r\n\
In-Reply-To: <two@example.org>\r\n\
References: <one@example.org> <two@example.org>\r\n\
\r\n\
Shall we?\r\n> earlier\r\n";

    const HERE: MessageRef = MessageRef { mailbox: 3, uid: 7 };

    #[test]
    fn subjects_do_not_stack() {
        assert_eq!(prefixed_subject("Re", "lunch"), "Re: lunch");
        assert_eq!(prefixed_subject("Re", "Re: lunch"), "Re: lunch");
        assert_eq!(prefixed_subject("Re", "RE: re[2]: Fwd: lunch"), "Re: lunch");
        assert_eq!(prefixed_subject("Fwd", "Re: lunch"), "Fwd: lunch");
        assert_eq!(prefixed_subject("Fwd", "Fw: lunch"), "Fwd: lunch");
        assert_eq!(prefixed_subject("Re", "Rebus: x"), "Re: Rebus: x");
        assert_eq!(prefixed_subject("Re", ""), "Re: ");
    }

    #[test]
    fn reply_quotes_and_threads() {
        let fields = prefill(
            Start::Reply { all: false },
            ORIGINAL.as_bytes(),
            HERE,
            "alice@example.org",
        );
        assert_eq!(fields.to, "Bob <bob@example.org>");
        assert_eq!(fields.cc, "");
        assert_eq!(fields.subject, "Re: lunch");
        assert_eq!(fields.in_reply_to, vec!["three@example.org"]);
        assert_eq!(
            fields.references,
            vec!["one@example.org", "two@example.org", "three@example.org"]
        );
        assert!(
            fields
                .body
                .contains("Bob <bob@example.org> wrote:\n> Shall we?\n>> earlier\n"),
            "{}",
            fields.body
        );
        assert_eq!(fields.replied, Some(HERE));
    }

    #[test]
    fn reply_all_leaves_out_ourselves_and_duplicates() {
        let fields = prefill(
            Start::Reply { all: true },
            ORIGINAL.as_bytes(),
            HERE,
            "alice@example.org",
        );
        assert_eq!(
            fields.to,
            "Bob <bob@example.org>, Carol <carol@example.net>"
        );
        assert_eq!(fields.cc, "dave@example.net");
    }

    #[test]
    fn forwards() {
        let inline = prefill(
            Start::Forward { attached: false },
            ORIGINAL.as_bytes(),
            HERE,
            "alice@example.org",
        );
        assert_eq!(inline.subject, "Fwd: lunch");
        assert!(inline.body.contains("Forwarded message"), "{}", inline.body);
        assert!(inline.body.contains("Shall we?"));
        assert_eq!(inline.attached_message, None);
        let attached = prefill(
            Start::Forward { attached: true },
            ORIGINAL.as_bytes(),
            HERE,
            "alice@example.org",
        );
        assert_eq!(attached.attached_message, Some(HERE));
        assert_eq!(attached.body, "");
    }

    #[test]
    fn references_are_trimmed_keeping_the_first() {
        let long: Vec<String> = (0..50).map(|n| format!("{n}@x")).collect();
        let chain = reply_references(&long, &[], Some("new@x"));
        assert_eq!(chain.len(), REFERENCES_MAX);
        assert_eq!(chain[0], "0@x");
        assert_eq!(chain[REFERENCES_MAX - 1], "new@x");
        assert_eq!(
            reply_references(&[], &["p@x".to_owned()], Some("m@x")),
            vec!["p@x", "m@x"]
        );
    }

    #[test]
    fn addresses_parse_or_say_what_is_wrong() {
        let list =
            parse_addresses("\"Doe, Jane\" <jane@example.org>, bob@example.org").expect("list");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].0.as_deref(), Some("Doe, Jane"));
        assert_eq!(list[1].1.to_string(), "bob@example.org");
        assert!(parse_addresses("not an address").is_err());
        assert_eq!(parse_addresses("  ").expect("empty"), Vec::new());
    }

    #[test]
    fn built_message_has_no_injected_header_and_encodes_names() {
        let fields = ComposeFields {
            subject: single_line("hi\r\nBcc: evil@example.net"),
            body: "line one\nline two\n".to_owned(),
            ..ComposeFields::default()
        };
        let envelope = Envelope {
            from_name: Some("Alice Ä".to_owned()),
            from_address: "alice@example.org".to_owned(),
            to: parse_addresses("bob@example.org").expect("to"),
            cc: Vec::new(),
            bcc: parse_addresses("hidden@example.net").expect("bcc"),
            message_id: "m1@example.org".to_owned(),
            date_unix: 0,
        };
        let raw = build_message(
            &fields,
            &envelope,
            vec![
                OutgoingAttachment {
                    name: "Jahresabschluß.pdf".to_owned(),
                    media_type: "application/pdf".to_owned(),
                    content: vec![0, 1, 2, 255],
                },
                OutgoingAttachment {
                    name: "fwd.eml".to_owned(),
                    media_type: "message/rfc822".to_owned(),
                    content: b"Subject: inner\r\n\r\nbody\r\n".to_vec(),
                },
            ],
        );
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains("\r\nBcc: evil"), "{text}");
        assert!(text.contains("Message-ID: <m1@example.org>"), "{text}");
        assert!(
            text.contains("filename*=UTF-8''Jahresabschlu%C3%9F.pdf"),
            "{text}"
        );
        assert!(
            text.contains("Subject: inner\r\n\r\nbody"),
            "rfc822 kept as it is: {text}"
        );
        let parsed = MessageParser::default().parse(&raw).expect("parses");
        assert_eq!(
            parsed
                .from()
                .and_then(|from| from.first())
                .and_then(|a| a.name()),
            Some("Alice Ä")
        );
        assert_eq!(
            parsed.body_text(0).as_deref(),
            Some("line one\r\nline two\r\n")
        );
        let attachment = parsed.attachment(0).expect("attachment");
        assert_eq!(attachment.contents(), &[0, 1, 2, 255]);
        assert_eq!(
            parsed
                .bcc()
                .and_then(|bcc| bcc.first())
                .and_then(|a| a.address()),
            Some("hidden@example.net")
        );
    }

    fn attachment(name: &str, media_type: &str, content: &[u8]) -> OutgoingAttachment {
        OutgoingAttachment {
            name: name.to_owned(),
            media_type: media_type.to_owned(),
            content: content.to_vec(),
        }
    }

    /// A saved draft lists its attachments in the order they were put in, with the indices
    /// a reopened draft gives them: what the next save and the send carry from it.
    #[test]
    fn saved_draft_lists_its_attachments_as_a_reopened_draft_numbers_them() {
        let envelope = Envelope {
            from_name: None,
            from_address: "alice@example.org".to_owned(),
            to: Vec::new(),
            cc: Vec::new(),
            bcc: Vec::new(),
            message_id: "d1@example.org".to_owned(),
            date_unix: 0,
        };
        let fields = ComposeFields {
            body: "draft text\n".to_owned(),
            ..ComposeFields::default()
        };
        let put_in = vec![
            attachment(
                "inner.eml",
                "message/rfc822",
                b"Subject: inner\r\n\r\nbody\r\n",
            ),
            attachment("notes.txt", "text/plain", b"plain notes\n"),
            attachment("picture.png", "image/png", &[137, 80, 78, 71, 0, 1]),
            attachment(
                "Messwerte \u{fc}.bin",
                "application/octet-stream",
                &[0; 300],
            ),
        ];
        let raw = build_message(&fields, &envelope, put_in);
        let kept = carried_attachments(&raw);
        let listed: Vec<(usize, &str, &str)> = kept
            .iter()
            .map(|kept| (kept.index, kept.name.as_str(), kept.media_type.as_str()))
            .collect();
        assert_eq!(
            listed,
            vec![
                (0, "inner.eml", "message/rfc822"),
                (1, "notes.txt", "text/plain"),
                (2, "picture.png", "image/png"),
                (3, "Messwerte \u{fc}.bin", "application/octet-stream"),
            ]
        );
        assert_eq!(kept[3].size_octets, 300);
        // Reopening the saved draft keeps the same attachments under the same indices.
        let here = MessageRef {
            mailbox: 5,
            uid: 12,
        };
        let reopened = prefill(Start::Draft, &raw, here, "alice@example.org");
        assert_eq!(reopened.attachments_from, Some(here));
        assert_eq!(reopened.keep_attachments, vec![0, 1, 2, 3]);
        assert_eq!(reopened.body, "draft text\r\n");

        let answer: serde_json::Value =
            serde_json::from_str(&saved_draft_json(here, &kept)).expect("JSON");
        assert_eq!(answer["mailbox"], 5);
        assert_eq!(answer["uid"], 12);
        assert_eq!(answer["draft"], "5/12");
        assert_eq!(answer["attachments_from"], "5/12");
        assert_eq!(answer["attachments"][3]["index"], 3);
        assert_eq!(answer["attachments"][3]["name"], "Messwerte \u{fc}.bin");
        assert_eq!(answer["attachments"][3]["size_octets"], 300);
        assert_eq!(answer["attachments"][1]["media_type"], "text/plain");

        let bare: serde_json::Value =
            serde_json::from_str(&saved_draft_json(here, &[])).expect("JSON");
        assert_eq!(bare["attachments_from"], serde_json::Value::Null);
        assert_eq!(bare["attachments"], serde_json::json!([]));
    }
}
