//! SORT (RFC 5256 §3) with the DISPLAYFROM and DISPLAYTO keys (RFC 5957): each message's
//! sort values from its record and summary, and the order they give.
//!
//! Values follow RFC 5256 §3 as Dovecot reads it: FROM, TO and CC compare the mailbox
//! (local part) of the field's first address, or a group's name; DISPLAYFROM and
//! DISPLAYTO the first address's decoded display name, else its `mailbox@host`; SUBJECT
//! the base subject; DATE the sent date (the Date header in UTC, else the internal date,
//! §2.2); ARRIVAL the internal date; SIZE RFC822.SIZE. Text compares under
//! `i;unicode-casemap` (`collation`). Messages equal under every key keep mailbox order,
//! whatever REVERSE says (§3: REVERSE turns a key's order, not the final tie-break).
//!
//! Pure: no I/O. The session finds the messages and loads the summaries.

use std::cmp::Ordering;

use imap_codec::imap_types::extensions::sort::{SortCriterion, SortKey};
use tme_message::{EnvelopeAddress, MessageSummary};
use tme_store::MessageRecord;

use crate::collation;

/// One message's value under one sort key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortValue {
    Number(i64),
    /// Casemapped: compare as octets.
    Text(String),
}

/// Whether any key needs the message's summary (all but ARRIVAL and SIZE).
pub fn needs_summary(criteria: &[SortCriterion]) -> bool {
    criteria
        .iter()
        .any(|criterion| !matches!(criterion.key, SortKey::Arrival | SortKey::Size))
}

/// The sent date of RFC 5256 §2.2: the Date header, else the internal date. A Date of
/// exactly the epoch counts as none, as in Dovecot, which cannot tell the two apart.
pub fn sent_date_unix(record: &MessageRecord, summary: &MessageSummary) -> i64 {
    summary
        .date_unix
        .filter(|&date| date != 0)
        .unwrap_or(record.internal_date_unix)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The local part of an address as compared: without the quotes of a quoted local part.
fn local_part(address: &EnvelopeAddress) -> String {
    let mailbox = address
        .mailbox
        .as_ref()
        .map(|mailbox| text(&mailbox.0))
        .unwrap_or_default();
    match mailbox
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
    {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => mailbox,
    }
}

/// FROM, TO, CC: the first address's mailbox (a group's name when the field starts with
/// a group).
fn first_mailbox(addresses: &[EnvelopeAddress]) -> String {
    addresses.first().map(local_part).unwrap_or_default()
}

/// DISPLAYFROM, DISPLAYTO (RFC 5957 §2): the first address's display name, decoded; when
/// it has none, its `mailbox@host`; a group's name when the field starts with a group.
fn first_display(addresses: &[EnvelopeAddress], decoded: &[tme_message::Addr]) -> String {
    let Some(first) = addresses.first() else {
        return String::new();
    };
    if first.host.is_none() {
        // A group: `(NIL NIL "group name" NIL)`.
        return local_part(first);
    }
    if let Some(name) = decoded
        .first()
        .and_then(|address| address.name.as_deref())
        .filter(|name| !name.is_empty())
    {
        return name.to_owned();
    }
    let host = first
        .host
        .as_ref()
        .map(|host| text(&host.0))
        .unwrap_or_default();
    let mailbox = local_part(first);
    if host.is_empty() {
        mailbox
    } else {
        format!("{mailbox}@{host}")
    }
}

/// The message's values under `criteria`, in order. `summary` is needed when
/// `needs_summary` says so; without it those values are empty.
pub fn values(
    criteria: &[SortCriterion],
    record: &MessageRecord,
    summary: Option<&MessageSummary>,
) -> Vec<SortValue> {
    criteria
        .iter()
        .map(|criterion| match (&criterion.key, summary) {
            (SortKey::Arrival, _) => SortValue::Number(record.internal_date_unix),
            (SortKey::Size, _) => {
                SortValue::Number(i64::try_from(record.size_bytes).unwrap_or(i64::MAX))
            }
            (SortKey::Date, Some(summary)) => SortValue::Number(sent_date_unix(record, summary)),
            (SortKey::Date, None) => SortValue::Number(record.internal_date_unix),
            (key, Some(summary)) => {
                let value = match key {
                    SortKey::Subject => {
                        return SortValue::Text(
                            collation::base_subject(summary.subject.as_deref().unwrap_or("")).0,
                        );
                    }
                    SortKey::From => first_mailbox(&summary.envelope.from),
                    SortKey::To => first_mailbox(&summary.envelope.to),
                    SortKey::Cc => first_mailbox(&summary.envelope.cc),
                    SortKey::DisplayFrom => first_display(&summary.envelope.from, &summary.from),
                    SortKey::DisplayTo => first_display(&summary.envelope.to, &summary.to),
                    SortKey::Arrival | SortKey::Size | SortKey::Date => String::new(),
                };
                SortValue::Text(collation::casemap(&value))
            }
            (_, None) => SortValue::Text(String::new()),
        })
        .collect()
}

/// The order of `rows` (each a message's values, in mailbox order): indexes into `rows`.
pub fn order(criteria: &[SortCriterion], rows: &[Vec<SortValue>]) -> Vec<usize> {
    let mut indexes: Vec<usize> = (0..rows.len()).collect();
    indexes.sort_by(|&left, &right| {
        for (position, criterion) in criteria.iter().enumerate() {
            let ordering = rows[left].get(position).cmp(&rows[right].get(position));
            let ordering = if criterion.reverse {
                ordering.reverse()
            } else {
                ordering
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        left.cmp(&right)
    });
    indexes
}

#[cfg(test)]
mod tests {
    use super::*;
    use tme_store::{BlobId, Flags};

    fn record(uid: u32, internal_date_unix: i64, size_bytes: u64) -> MessageRecord {
        MessageRecord {
            id: i64::from(uid),
            account_id: 1,
            mailbox_id: 1,
            uid,
            blob_id: BlobId::from_hex(&"00".repeat(32)).unwrap_or_else(|| panic!("blob id")),
            size_bytes,
            internal_date_unix,
            flags: Flags::default(),
            modseq: 1,
            expunged_unix: None,
            thread_id: 0,
        }
    }

    fn criteria(text: &[(&str, bool)]) -> Vec<SortCriterion> {
        text.iter()
            .map(|(key, reverse)| SortCriterion {
                reverse: *reverse,
                key: match *key {
                    "ARRIVAL" => SortKey::Arrival,
                    "CC" => SortKey::Cc,
                    "DATE" => SortKey::Date,
                    "FROM" => SortKey::From,
                    "SIZE" => SortKey::Size,
                    "SUBJECT" => SortKey::Subject,
                    "TO" => SortKey::To,
                    "DISPLAYFROM" => SortKey::DisplayFrom,
                    _ => SortKey::DisplayTo,
                },
            })
            .collect()
    }

    /// Sorts messages given as (internal date, raw header) and returns their 1-based
    /// numbers in order.
    fn check(keys: &[(&str, bool)], messages: &[(i64, &str)], expected: &[usize]) {
        let criteria = criteria(keys);
        let rows: Vec<Vec<SortValue>> = messages
            .iter()
            .enumerate()
            .map(|(index, (date, header))| {
                let raw = format!("{header}\r\n\r\nbody\r\n");
                let summary = tme_message::summarize(raw.as_bytes());
                let record = record(index as u32 + 1, *date, raw.len() as u64);
                values(&criteria, &record, Some(&summary))
            })
            .collect();
        let numbers: Vec<usize> = order(&criteria, &rows)
            .into_iter()
            .map(|index| index + 1)
            .collect();
        assert_eq!(numbers, expected, "{keys:?}");
    }

    #[test]
    fn keys() {
        let messages = [
            (
                300,
                "From: \"Zed\" <alice@example.org>\r\nSubject: Re: beta\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nTo: x@y",
            ),
            (
                100,
                "From: bob@example.org\r\nSubject: Alpha\r\nDate: Mon, 1 Jan 2024 09:00:00 +0100\r\nCc: c@d",
            ),
            (
                200,
                "From: =?utf-8?q?=C3=89mile?= <carol@example.org>\r\nSubject: [list] gamma",
            ),
        ];
        check(&[("ARRIVAL", false)], &messages, &[2, 3, 1]);
        check(&[("ARRIVAL", true)], &messages, &[1, 3, 2]);
        // Message 3 has no Date: its internal date (200) stands in, before both.
        check(&[("DATE", false)], &messages, &[3, 2, 1]);
        check(&[("SUBJECT", false)], &messages, &[2, 1, 3]);
        check(&[("FROM", false)], &messages, &[1, 2, 3]);
        // Display names: Émile (decoded), bob@example.org, Zed.
        check(&[("DISPLAYFROM", false)], &messages, &[2, 3, 1]);
        // No To or Cc sorts first (empty), then mailbox order.
        check(&[("TO", false)], &messages, &[2, 3, 1]);
        check(&[("CC", true)], &messages, &[2, 1, 3]);
        check(&[("SIZE", false)], &messages, &[3, 2, 1]);
    }

    #[test]
    fn ties_keep_mailbox_order_even_reversed() {
        let messages = [
            (5, "Subject: same"),
            (5, "Subject: Re: same"),
            (1, "Subject: other"),
        ];
        check(&[("SUBJECT", false)], &messages, &[3, 1, 2]);
        check(&[("SUBJECT", true)], &messages, &[1, 2, 3]);
        check(
            &[("SUBJECT", true), ("ARRIVAL", false)],
            &messages,
            &[1, 2, 3],
        );
        check(
            &[("ARRIVAL", true), ("SUBJECT", false)],
            &messages,
            &[1, 2, 3],
        );
    }

    #[test]
    fn groups_and_quoted_local_parts() {
        let messages = [
            (1, "To: undisclosed-recipients:;"),
            (2, "To: \"quoted name\"@example.org"),
            (3, "To: Team: a@b, c@d;"),
        ];
        check(&[("TO", false)], &messages, &[2, 3, 1]);
        check(&[("DISPLAYTO", false)], &messages, &[2, 3, 1]);
    }
}
