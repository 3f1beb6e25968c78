//! FETCH (RFC 9051 §6.4.5), one message at a time: `fetch` checks the command, sets
//! `\Seen` and keeps a `FetchPlan`; the server then asks `fetch_next` for each message's
//! response and writes it (in pieces, `FetchOutput::fill`) before the next message is
//! loaded; `fetch_end` gives the command's end. So a FETCH holds one message's raw bytes
//! at a time, whatever the number of messages or their size.

use std::num::NonZeroU32;
use std::sync::Arc;

use imap_codec::imap_types::fetch::{MessageDataItemName, Part, Section};
use imap_codec::imap_types::sequence::SequenceSet;
use tme_store::mail::SystemFlags;
use tme_store::{FlagChange, Flags, MessageRecord};

use super::{MESSAGES_PER_COMMAND_MAX, Session, bytes_to_text};
use crate::fetch_output::FetchOutput;
use crate::render::{self, SectionBytes, SectionText};
use crate::response::{push_astring, status};

/// A FETCH item with what it names resolved once for the whole command.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FetchItem {
    Flags,
    Uid,
    InternalDate,
    Rfc822Size,
    ModSeq,
    Envelope,
    BodyStructure,
    Body,
    /// RFC822, RFC822.HEADER, RFC822.TEXT: the name and what it sends.
    Rfc822 {
        name: &'static str,
        text: SectionText,
    },
    /// `BODY[section]<partial>`.
    Section {
        numbers: Vec<u32>,
        text: SectionText,
        label: String,
        partial: Option<(u32, NonZeroU32)>,
    },
    Binary {
        numbers: Vec<u32>,
        label: String,
        partial: Option<(u32, NonZeroU32)>,
    },
    BinarySize {
        numbers: Vec<u32>,
        label: String,
    },
}

impl FetchItem {
    fn of(item: &MessageDataItemName<'_>) -> FetchItem {
        match item {
            MessageDataItemName::Flags => FetchItem::Flags,
            MessageDataItemName::Uid => FetchItem::Uid,
            MessageDataItemName::InternalDate => FetchItem::InternalDate,
            MessageDataItemName::Rfc822Size => FetchItem::Rfc822Size,
            MessageDataItemName::ModSeq => FetchItem::ModSeq,
            MessageDataItemName::Envelope => FetchItem::Envelope,
            MessageDataItemName::BodyStructure => FetchItem::BodyStructure,
            MessageDataItemName::Body => FetchItem::Body,
            MessageDataItemName::Rfc822 => FetchItem::Rfc822 {
                name: "RFC822",
                text: SectionText::Whole,
            },
            MessageDataItemName::Rfc822Header => FetchItem::Rfc822 {
                name: "RFC822.HEADER",
                text: SectionText::Header,
            },
            MessageDataItemName::Rfc822Text => FetchItem::Rfc822 {
                name: "RFC822.TEXT",
                text: SectionText::Text,
            },
            MessageDataItemName::BodyExt {
                section, partial, ..
            } => {
                let (numbers, text, label) = section_parts(section.as_ref());
                FetchItem::Section {
                    numbers,
                    text,
                    label,
                    partial: *partial,
                }
            }
            MessageDataItemName::Binary {
                section, partial, ..
            } => {
                let (numbers, label) = binary_section(section);
                FetchItem::Binary {
                    numbers,
                    label,
                    partial: *partial,
                }
            }
            MessageDataItemName::BinarySize { section } => {
                let (numbers, label) = binary_section(section);
                FetchItem::BinarySize { numbers, label }
            }
        }
    }

    /// Whether the item needs the message's summary (structure and header offsets).
    fn needs_summary(&self) -> bool {
        !matches!(
            self,
            FetchItem::Flags
                | FetchItem::InternalDate
                | FetchItem::Rfc822Size
                | FetchItem::Uid
                | FetchItem::ModSeq
        )
    }

    /// Whether the item needs the message's raw bytes.
    fn needs_raw(&self) -> bool {
        matches!(
            self,
            FetchItem::Rfc822 { .. }
                | FetchItem::Section { .. }
                | FetchItem::Binary { .. }
                | FetchItem::BinarySize { .. }
        )
    }
}

/// A FETCH between `fetch` and `fetch_end`.
#[derive(Debug)]
pub(super) struct FetchPlan {
    tag: String,
    items: Vec<FetchItem>,
    /// The messages still to answer for, as indexes into the selected view (which does
    /// not change until the command ends: nothing else runs in the session meanwhile).
    indexes: std::vec::IntoIter<usize>,
    by_uid: bool,
    condstore: bool,
    /// The UIDs this FETCH set `\Seen` on (their FLAGS are reported, RFC 9051 §6.4.5).
    seen_now: Vec<u32>,
    need_summary: bool,
    need_raw: bool,
    /// A BINARY part's encoding is unknown: the command ends with NO [UNKNOWN-CTE]
    /// (RFC 3516 §4.3); the responses written before stand.
    unknown_cte: bool,
}

impl Session {
    /// Checks a FETCH and gets it ready: the messages resolved, `\Seen` set first, so each
    /// response reports the flags as they are after it (RFC 9051 §6.4.5). Errors go to
    /// `out`; otherwise the plan is kept for `fetch_next`.
    pub(super) async fn fetch(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        items: &[MessageDataItemName<'_>],
        by_uid: bool,
        changed_since: Option<u64>,
        out: &mut Vec<u8>,
    ) {
        self.fetch_plan = None;
        let Some(account_id) = self.account_id() else {
            return;
        };
        if changed_since.is_some() || items.contains(&MessageDataItemName::ModSeq) {
            self.condstore = true;
        }
        let numbers = self.resolve_set(set, by_uid);
        let Some(selected) = &self.selected else {
            return;
        };
        let mut indexes = match selected.resolve(&numbers, by_uid) {
            Ok(indexes) => indexes,
            Err(text) => {
                self.bad(out, tag, &text);
                return;
            }
        };
        if let Some(since) = changed_since {
            indexes.retain(|&index| {
                u64::try_from(selected.records()[index].modseq).unwrap_or(0) > since
            });
        }
        indexes.truncate(MESSAGES_PER_COMMAND_MAX);
        let fetch_items: Vec<FetchItem> = items.iter().map(FetchItem::of).collect();
        let sets_seen = !selected.read_only
            && items.iter().any(|item| {
                matches!(
                    item,
                    MessageDataItemName::BodyExt { peek: false, .. }
                        | MessageDataItemName::Binary { peek: false, .. }
                        | MessageDataItemName::Rfc822
                        | MessageDataItemName::Rfc822Text
                )
            });
        let mut seen_now: Vec<u32> = Vec::new();
        if sets_seen {
            let unseen: Vec<u32> = indexes
                .iter()
                .filter(|&&index| {
                    !selected.is_expunged(index)
                        && !selected.records()[index]
                            .flags
                            .system
                            .contains(SystemFlags::SEEN)
                })
                .map(|&index| selected.records()[index].uid)
                .collect();
            if !unseen.is_empty() {
                let mut seen = Flags::default();
                seen.system.0 |= SystemFlags::SEEN;
                if let Ok(changed) = self
                    .store
                    .mail
                    .messages_set_flags(
                        account_id,
                        selected.mailbox_id,
                        &unseen,
                        &FlagChange::Add(seen),
                        None,
                    )
                    .await
                {
                    self.store.changes.notify(account_id);
                    if let Some(selected) = self.selected.as_mut() {
                        for record in changed {
                            seen_now.push(record.uid);
                            if let Some(index) = selected
                                .records()
                                .iter()
                                .position(|known| known.uid == record.uid)
                            {
                                selected.set_record(index, crate::records::share_one(record));
                            }
                        }
                    }
                }
            }
        }
        self.fetch_plan = Some(FetchPlan {
            tag: tag.to_owned(),
            need_summary: fetch_items.iter().any(FetchItem::needs_summary),
            need_raw: fetch_items.iter().any(FetchItem::needs_raw),
            items: fetch_items,
            indexes: indexes.into_iter(),
            by_uid,
            condstore: self.condstore,
            seen_now,
            unknown_cte: false,
        });
    }

    /// The next message's untagged FETCH response; None when every message was answered
    /// (then `fetch_end`). A message whose summary or raw bytes cannot be read is left
    /// out, as before streaming.
    pub async fn fetch_next(&mut self) -> Option<FetchOutput> {
        let account_id = self.account_id()?;
        loop {
            let plan = self.fetch_plan.as_mut()?;
            if plan.unknown_cte {
                return None;
            }
            let index = plan.indexes.next()?;
            let record = Arc::clone(self.selected.as_ref()?.records().get(index)?);
            let summary = if plan.need_summary {
                match self.store.mail.message_summary(account_id, record.id).await {
                    Ok(summary) => Some(summary),
                    Err(_) => continue,
                }
            } else {
                None
            };
            let raw = if plan.need_raw {
                match self.store.message_raw(&record).await {
                    Ok(raw) => raw,
                    Err(_) => continue,
                }
            } else {
                Vec::new()
            };
            let plan = self.fetch_plan.as_mut()?;
            match render_message(plan, index, &record, summary.as_deref(), raw) {
                Some(output) => return Some(output),
                None => {
                    plan.unknown_cte = true;
                    return None;
                }
            }
        }
    }

    /// The end of a FETCH: what changed meanwhile and the tagged response.
    pub async fn fetch_end(&mut self, out: &mut Vec<u8>) {
        let Some(plan) = self.fetch_plan.take() else {
            return;
        };
        if plan.unknown_cte {
            status(
                out,
                &plan.tag,
                "NO",
                Some("UNKNOWN-CTE"),
                "Unknown Content-Transfer-Encoding",
            );
            return;
        }
        self.refresh(plan.by_uid, out).await;
        status(out, &plan.tag, "OK", None, "FETCH completed");
    }

    /// A whole FETCH's responses at once, as `fetch_next` and `fetch_end` give them (for
    /// callers that do not stream: tests).
    pub async fn fetch_all(&mut self, out: &mut Vec<u8>) {
        while let Some(mut output) = self.fetch_next().await {
            output.fill_all(out);
        }
        self.fetch_end(out).await;
    }
}

/// One message's response; None when a BINARY item meets an encoding it cannot undo.
fn render_message(
    plan: &FetchPlan,
    index: usize,
    record: &MessageRecord,
    summary: Option<&tme_message::MessageSummary>,
    raw: Vec<u8>,
) -> Option<FetchOutput> {
    let mut output = FetchOutput::new(raw);
    output.text(format!("* {} FETCH (", index + 1).as_bytes());
    let mut first = true;
    let mut next_item = |output: &mut FetchOutput, text: &str| {
        if !first {
            output.text(b" ");
        }
        first = false;
        output.text(text.as_bytes());
    };
    if plan.by_uid && !plan.items.contains(&FetchItem::Uid) {
        next_item(&mut output, &format!("UID {}", record.uid));
    }
    for item in &plan.items {
        match item {
            FetchItem::Flags => {
                next_item(
                    &mut output,
                    &format!("FLAGS {}", render::flags(&record.flags)),
                );
            }
            FetchItem::Uid => next_item(&mut output, &format!("UID {}", record.uid)),
            FetchItem::InternalDate => next_item(
                &mut output,
                &format!(
                    "INTERNALDATE {}",
                    render::internal_date(record.internal_date_unix)
                ),
            ),
            FetchItem::Rfc822Size => {
                next_item(&mut output, &format!("RFC822.SIZE {}", record.size_bytes))
            }
            FetchItem::ModSeq => next_item(&mut output, &format!("MODSEQ ({})", record.modseq)),
            FetchItem::Envelope | FetchItem::BodyStructure | FetchItem::Body => {
                let Some(summary) = summary else {
                    continue;
                };
                let mut text = Vec::new();
                match item {
                    FetchItem::Envelope => {
                        text.extend_from_slice(b"ENVELOPE ");
                        render::envelope(&mut text, &summary.envelope);
                    }
                    FetchItem::BodyStructure => {
                        text.extend_from_slice(b"BODYSTRUCTURE ");
                        render::body_structure(&mut text, &summary.body, true);
                    }
                    _ => {
                        text.extend_from_slice(b"BODY ");
                        render::body_structure(&mut text, &summary.body, false);
                    }
                }
                next_item(&mut output, "");
                output.text(&text);
            }
            FetchItem::Rfc822 { name, text } => {
                let Some(summary) = summary else {
                    continue;
                };
                let bytes = render::section(output.raw(), summary, &[], text)
                    .unwrap_or(SectionBytes::Made(Vec::new()));
                next_item(&mut output, &format!("{name} "));
                output.literal(bytes, false);
            }
            FetchItem::Section {
                numbers,
                text,
                label,
                partial,
            } => {
                let Some(summary) = summary else {
                    continue;
                };
                let bytes = render::section(output.raw(), summary, numbers, text);
                next_item(&mut output, &format!("BODY[{label}]"));
                match (bytes, partial) {
                    (None, _) => output.text(b" NIL"),
                    (Some(bytes), Some((origin, length))) => {
                        output.text(format!("<{origin}> ").as_bytes());
                        output.literal(bytes.part(*origin as usize, length.get() as usize), false);
                    }
                    (Some(bytes), None) => {
                        output.text(b" ");
                        output.literal(bytes, false);
                    }
                }
            }
            FetchItem::Binary {
                numbers,
                label,
                partial,
            } => {
                let Some(summary) = summary else {
                    continue;
                };
                match render::binary_bytes(output.raw(), summary, numbers) {
                    Some(Err(())) => return None,
                    Some(Ok(bytes)) => {
                        next_item(&mut output, &format!("BINARY[{label}]"));
                        let bytes = match partial {
                            Some((origin, length)) => {
                                output.text(format!("<{origin}>").as_bytes());
                                bytes.part(*origin as usize, length.get() as usize)
                            }
                            None => bytes,
                        };
                        output.text(b" ");
                        // A literal8 when the octets hold NUL (RFC 3516 §4.2).
                        let binary = bytes.of(output.raw()).contains(&0);
                        output.literal(bytes, binary);
                    }
                    None => next_item(&mut output, &format!("BINARY[{label}] NIL")),
                }
            }
            FetchItem::BinarySize { numbers, label } => {
                let Some(summary) = summary else {
                    continue;
                };
                match render::binary_bytes(output.raw(), summary, numbers) {
                    Some(Err(())) => return None,
                    Some(Ok(bytes)) => next_item(
                        &mut output,
                        &format!("BINARY.SIZE[{label}] {}", bytes.len()),
                    ),
                    None => next_item(&mut output, &format!("BINARY.SIZE[{label}] 0")),
                }
            }
        }
    }
    if plan.seen_now.contains(&record.uid) && !plan.items.contains(&FetchItem::Flags) {
        next_item(
            &mut output,
            &format!("FLAGS {}", render::flags(&record.flags)),
        );
    }
    if plan.condstore && !plan.items.contains(&FetchItem::ModSeq) {
        next_item(&mut output, &format!("MODSEQ ({})", record.modseq));
    }
    output.text(b")\r\n");
    Some(output)
}

/// Part numbers, the section's text and its label as the response names it.
fn section_parts(section: Option<&Section<'_>>) -> (Vec<u32>, SectionText, String) {
    let numbers = |part: Option<&Part>| -> Vec<u32> {
        part.map(|part| part.0.as_ref().iter().map(|number| number.get()).collect())
            .unwrap_or_default()
    };
    let prefix = |numbers: &[u32]| -> String {
        if numbers.is_empty() {
            String::new()
        } else {
            format!(
                "{}.",
                numbers
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(".")
            )
        }
    };
    let names_label = |names: &[imap_codec::imap_types::core::AString<'_>]| -> String {
        let mut label = Vec::new();
        for (index, name) in names.iter().enumerate() {
            if index > 0 {
                label.push(b' ');
            }
            push_astring(&mut label, name.as_ref());
        }
        bytes_to_text(&label)
    };
    match section {
        None => (Vec::new(), SectionText::Whole, String::new()),
        Some(Section::Part(part)) => {
            let numbers = numbers(Some(part));
            let label = numbers
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(".");
            (numbers, SectionText::Whole, label)
        }
        Some(Section::Header(part)) => {
            let numbers = numbers(part.as_ref());
            let label = format!("{}HEADER", prefix(&numbers));
            (numbers, SectionText::Header, label)
        }
        Some(Section::Text(part)) => {
            let numbers = numbers(part.as_ref());
            let label = format!("{}TEXT", prefix(&numbers));
            (numbers, SectionText::Text, label)
        }
        Some(Section::Mime(part)) => {
            let numbers = numbers(Some(part));
            let label = format!("{}MIME", prefix(&numbers));
            (numbers, SectionText::Mime, label)
        }
        Some(Section::HeaderFields(part, names)) | Some(Section::HeaderFieldsNot(part, names)) => {
            let not = matches!(section, Some(Section::HeaderFieldsNot(..)));
            let numbers = numbers(part.as_ref());
            let names_list = names.as_ref();
            let label = format!(
                "{}HEADER.FIELDS{} ({})",
                prefix(&numbers),
                if not { ".NOT" } else { "" },
                names_label(names_list)
            );
            let names = names_list
                .iter()
                .map(|name| name.as_ref().to_vec())
                .collect();
            (numbers, SectionText::HeaderFields { names, not }, label)
        }
    }
}

/// A BINARY section's part numbers and their label as written back (`1.2`).
fn binary_section(section: &[std::num::NonZeroU32]) -> (Vec<u32>, String) {
    let numbers: Vec<u32> = section.iter().map(|number| number.get()).collect();
    let label = numbers
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".");
    (numbers, label)
}
