//! SEARCH (RFC 9051 §6.4.4): whether one message matches a search key, from its record,
//! its summary and, for the keys that look into the text (HEADER, BODY, TEXT), its raw
//! bytes. Without a full-text index, BODY and TEXT scan the decoded text parts.
//!
//! No I/O: the session loads what `needs_raw` says and asks `matches` per message.

use imap_codec::imap_types::search::SearchKey;
use tme_message::{Addr, MessageSummary};
use tme_store::MessageRecord;
use tme_store::mail::SystemFlags;

use crate::view::NumberSet;

/// What one message offers to the search.
#[derive(Debug)]
pub struct Candidate<'a> {
    pub sequence: u32,
    pub record: &'a MessageRecord,
    pub summary: &'a MessageSummary,
    /// Present when `needs_raw` said so.
    pub raw: Option<&'a [u8]>,
}

/// Sets resolved by the session (`*` needs the mailbox), in the key's walk order.
#[derive(Debug, Default)]
pub struct ResolvedSets {
    pub sets: Vec<NumberSet>,
}

/// Whether any key needs the message's raw bytes.
pub fn needs_raw(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::Header(..) | SearchKey::Body(_) | SearchKey::Text(_) => true,
        SearchKey::And(keys) => keys.as_ref().iter().any(needs_raw),
        SearchKey::Not(key) => needs_raw(key),
        SearchKey::Or(left, right) => needs_raw(left) || needs_raw(right),
        _ => false,
    }
}

/// Whether the summary alone is not enough (every key but flags, sizes, dates and sets).
pub fn needs_summary(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::Bcc(_)
        | SearchKey::Cc(_)
        | SearchKey::From(_)
        | SearchKey::To(_)
        | SearchKey::Subject(_)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_) => true,
        SearchKey::And(keys) => keys.as_ref().iter().any(needs_summary),
        SearchKey::Not(key) => needs_summary(key),
        SearchKey::Or(left, right) => needs_summary(left) || needs_summary(right),
        other => needs_raw(other),
    }
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
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

fn addresses_contain(list: &[Addr], needle: &[u8]) -> bool {
    list.iter().any(|address| {
        contains_ignore_case(address.email.as_bytes(), needle)
            || address
                .name
                .as_ref()
                .is_some_and(|name| contains_ignore_case(name.as_bytes(), needle))
    })
}

/// Days since the epoch of a UNIX time (dates compare by day, RFC 9051 §6.4.4, in UTC).
fn day_of(unix: i64) -> i64 {
    unix.div_euclid(86_400)
}

fn day_of_date(date: &imap_codec::imap_types::datetime::NaiveDate) -> i64 {
    // chrono's date prints as `YYYY-MM-DD`; going through text avoids depending on chrono.
    chrono_epoch_days(date.as_ref().to_string())
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
fn chrono_epoch_days(text: String) -> i64 {
    let mut parts = text.split('-');
    let year: i64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(1970);
    let month: u8 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(1);
    let day: u8 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(1);
    let month = time::Month::try_from(month).unwrap_or(time::Month::January);
    let year = i32::try_from(year).unwrap_or(1970);
    time::Date::from_calendar_date(year, month, day)
        .map(|date| i64::from(date.to_julian_day()) - 2_440_588)
        .unwrap_or(0)
}

fn text_contains(raw: &[u8], summary: &MessageSummary, needle: &[u8], with_header: bool) -> bool {
    if with_header {
        let header_end = usize::try_from(summary.header_end).unwrap_or(raw.len());
        if contains_ignore_case(raw.get(..header_end).unwrap_or(raw), needle) {
            return true;
        }
    }
    let mut stack = vec![&summary.body];
    let mut visited = 0usize;
    while let Some(part) = stack.pop() {
        visited += 1;
        if visited > 10_000 {
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
            && let Some(text) = tme_message::decoded_text(raw, part)
            && contains_ignore_case(text.as_bytes(), needle)
        {
            return true;
        }
    }
    false
}

/// Whether `candidate` matches `key`. `sets` yields the resolved sets of the key's
/// sequence-set and UID keys, in walk order; `last_sequence`/`last_uid` resolve nothing
/// here (the session resolved them).
pub fn matches(
    key: &SearchKey<'_>,
    candidate: &Candidate<'_>,
    sets: &mut dyn Iterator<Item = NumberSet>,
) -> bool {
    let flags = &candidate.record.flags;
    let system = |bit| flags.system.contains(bit);
    let summary = candidate.summary;
    match key {
        SearchKey::And(keys) => {
            let mut all = true;
            for key in keys.as_ref() {
                // Every key is walked, so the sets stay in step.
                all &= matches(key, candidate, sets);
            }
            all
        }
        SearchKey::SequenceSet(_) => sets
            .next()
            .is_some_and(|set| set.contains(candidate.sequence)),
        SearchKey::Uid(_) => sets
            .next()
            .is_some_and(|set| set.contains(candidate.record.uid)),
        SearchKey::All => true,
        SearchKey::Answered => system(SystemFlags::ANSWERED),
        SearchKey::Unanswered => !system(SystemFlags::ANSWERED),
        SearchKey::Deleted => system(SystemFlags::DELETED),
        SearchKey::Undeleted => !system(SystemFlags::DELETED),
        SearchKey::Draft => system(SystemFlags::DRAFT),
        SearchKey::Undraft => !system(SystemFlags::DRAFT),
        SearchKey::Flagged => system(SystemFlags::FLAGGED),
        SearchKey::Unflagged => !system(SystemFlags::FLAGGED),
        SearchKey::Seen => system(SystemFlags::SEEN),
        SearchKey::Unseen => !system(SystemFlags::SEEN),
        // No message is \Recent (RFC 9051 drops it; we never set it).
        SearchKey::Recent => false,
        SearchKey::New => false,
        SearchKey::Old => true,
        SearchKey::Keyword(keyword) => flags
            .keywords
            .iter()
            .any(|have| have.eq_ignore_ascii_case(keyword.as_ref())),
        SearchKey::Unkeyword(keyword) => !flags
            .keywords
            .iter()
            .any(|have| have.eq_ignore_ascii_case(keyword.as_ref())),
        SearchKey::Larger(size) => candidate.record.size_bytes > u64::from(*size),
        SearchKey::Smaller(size) => candidate.record.size_bytes < u64::from(*size),
        SearchKey::Before(date) => day_of(candidate.record.internal_date_unix) < day_of_date(date),
        SearchKey::On(date) => day_of(candidate.record.internal_date_unix) == day_of_date(date),
        SearchKey::Since(date) => day_of(candidate.record.internal_date_unix) >= day_of_date(date),
        SearchKey::SentBefore(date) => summary
            .date_unix
            .is_some_and(|unix| day_of(unix) < day_of_date(date)),
        SearchKey::SentOn(date) => summary
            .date_unix
            .is_some_and(|unix| day_of(unix) == day_of_date(date)),
        SearchKey::SentSince(date) => summary
            .date_unix
            .is_some_and(|unix| day_of(unix) >= day_of_date(date)),
        SearchKey::From(value) => addresses_contain(&summary.from, value.as_ref()),
        SearchKey::To(value) => addresses_contain(&summary.to, value.as_ref()),
        SearchKey::Cc(value) => addresses_contain(&summary.cc, value.as_ref()),
        SearchKey::Bcc(value) => addresses_contain(&summary.bcc, value.as_ref()),
        SearchKey::Subject(value) => summary
            .subject
            .as_ref()
            .is_some_and(|subject| contains_ignore_case(subject.as_bytes(), value.as_ref())),
        SearchKey::Header(name, value) => {
            let Some(raw) = candidate.raw else {
                return false;
            };
            summary.headers.iter().any(|field| {
                field.name.as_bytes().eq_ignore_ascii_case(name.as_ref()) && {
                    let start = usize::try_from(field.start).unwrap_or(usize::MAX);
                    let end = usize::try_from(field.end).unwrap_or(0);
                    raw.get(start..end).is_some_and(|bytes| {
                        let value_start = bytes
                            .iter()
                            .position(|&byte| byte == b':')
                            .map_or(bytes.len(), |colon| colon + 1);
                        contains_ignore_case(&bytes[value_start..], value.as_ref())
                    })
                }
            })
        }
        SearchKey::Body(value) => candidate
            .raw
            .is_some_and(|raw| text_contains(raw, summary, value.as_ref(), false)),
        SearchKey::Text(value) => candidate
            .raw
            .is_some_and(|raw| text_contains(raw, summary, value.as_ref(), true)),
        SearchKey::Not(key) => !matches(key, candidate, sets),
        SearchKey::Or(left, right) => {
            let left = matches(left, candidate, sets);
            let right = matches(right, candidate, sets);
            left || right
        }
        SearchKey::ModSequence { modseq, .. } => {
            u64::try_from(candidate.record.modseq).unwrap_or(0) >= *modseq
        }
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// The sequence sets and UID sets inside `key`, in walk order (for the session to resolve).
pub fn collect_sets<'k>(
    key: &'k SearchKey<'k>,
    found: &mut Vec<(&'k imap_codec::imap_types::sequence::SequenceSet, bool)>,
) {
    match key {
        SearchKey::SequenceSet(set) => found.push((set, false)),
        SearchKey::Uid(set) => found.push((set, true)),
        SearchKey::And(keys) => {
            for key in keys.as_ref() {
                collect_sets(key, found);
            }
        }
        SearchKey::Not(key) => collect_sets(key, found),
        SearchKey::Or(left, right) => {
            collect_sets(left, found);
            collect_sets(right, found);
        }
        _ => {}
    }
}
