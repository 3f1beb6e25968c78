//! SEARCH (RFC 9051 §6.4.4): whether one message matches a search key, from its record,
//! its summary and, for the keys that look into the text (HEADER, BODY, TEXT), its raw
//! bytes. BODY and TEXT look into the text `tme_message::for_each_searchable_text` gives
//! (decoded text parts; for TEXT also the header, raw and decoded).
//!
//! The full-text index (`tme-search`) is asked first, once per search (`TextPrefilter`):
//! for a BODY or TEXT string it names the messages that may hold it, and a message it rules
//! out is not read at all. Every other message is still checked here on its text, so the
//! answer is the same with the index as without it.
//!
//! No I/O here but `TextPrefilter::new` (the index): the session loads what
//! `TextPrefilter::loads` says and asks `matches_with` per message.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use imap_codec::imap_types::search::SearchKey;
use tme_message::{
    MessageSummary, addresses_contain, contains_ignore_case,
    searchable_text_contains as text_contains,
};
use tme_search::{SearchIndexes, TextQuery, TextScope};
use tme_store::mail::SystemFlags;
use tme_store::{AccountId, MessageId, MessageRecord, ModSeq};

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

/// Per (scope, string): the messages that may hold the string.
type CandidateSets = HashMap<(TextScope, Vec<u8>), HashSet<MessageId>>;

/// What the full-text index said about the BODY and TEXT strings of one search.
#[derive(Debug, Default)]
pub struct TextPrefilter {
    /// The MODSEQ the index had reached, and the candidates of each string. A string
    /// missing here (too short) rules nothing out.
    answer: Option<(ModSeq, CandidateSets)>,
}

fn text_queries<'k>(key: &'k SearchKey<'k>, found: &mut Vec<TextQuery<'k>>) {
    match key {
        SearchKey::Body(value) => found.push(TextQuery {
            scope: TextScope::Body,
            needle: value.as_ref(),
        }),
        SearchKey::Text(value) => found.push(TextQuery {
            scope: TextScope::Text,
            needle: value.as_ref(),
        }),
        SearchKey::And(keys) => {
            for key in keys.as_ref() {
                text_queries(key, found);
            }
        }
        SearchKey::Not(key) => text_queries(key, found),
        SearchKey::Or(left, right) => {
            text_queries(left, found);
            text_queries(right, found);
        }
        _ => {}
    }
}

impl TextPrefilter {
    /// Asks the index about `key`'s BODY and TEXT strings; without an index, or when it
    /// cannot answer, rules nothing out.
    pub async fn new(
        indexes: Option<&Arc<SearchIndexes>>,
        account: AccountId,
        key: &SearchKey<'_>,
    ) -> TextPrefilter {
        let Some(indexes) = indexes else {
            return TextPrefilter::default();
        };
        let mut queries = Vec::new();
        text_queries(key, &mut queries);
        if queries.is_empty() {
            return TextPrefilter::default();
        }
        let Some(prefilter) = indexes.prefilter(account, &queries).await else {
            return TextPrefilter::default();
        };
        let mut sets = HashMap::new();
        for (query, candidates) in queries.iter().zip(prefilter.candidates) {
            if let Some(candidates) = candidates {
                sets.insert((query.scope, query.needle.to_vec()), candidates);
            }
        }
        TextPrefilter {
            answer: Some((prefilter.modseq, sets)),
        }
    }

    /// Whether the index shows that `record` does not hold `needle` in `scope`. A message
    /// changed after the index's MODSEQ may be newer than the index: never ruled out.
    fn rules_out(&self, scope: TextScope, needle: &[u8], record: &MessageRecord) -> bool {
        let Some((modseq, sets)) = &self.answer else {
            return false;
        };
        record.modseq <= *modseq
            && sets
                .get(&(scope, needle.to_vec()))
                .is_some_and(|candidates| !candidates.contains(&record.id))
    }

    fn needs_raw(&self, key: &SearchKey<'_>, record: &MessageRecord) -> bool {
        match key {
            SearchKey::Header(..) => true,
            SearchKey::Body(value) => !self.rules_out(TextScope::Body, value.as_ref(), record),
            SearchKey::Text(value) => !self.rules_out(TextScope::Text, value.as_ref(), record),
            SearchKey::And(keys) => keys.as_ref().iter().any(|key| self.needs_raw(key, record)),
            SearchKey::Not(key) => self.needs_raw(key, record),
            SearchKey::Or(left, right) => {
                self.needs_raw(left, record) || self.needs_raw(right, record)
            }
            _ => false,
        }
    }

    /// What the session must load to check `record` against `key`: (summary, raw bytes).
    pub fn loads(&self, key: &SearchKey<'_>, record: &MessageRecord) -> (bool, bool) {
        let raw = needs_raw(key) && self.needs_raw(key, record);
        let summary = raw || needs_summary_without_text(key);
        (summary, raw)
    }
}

/// Whether a key other than HEADER, BODY and TEXT needs the summary.
fn needs_summary_without_text(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::Header(..) | SearchKey::Body(_) | SearchKey::Text(_) => false,
        SearchKey::And(keys) => keys.as_ref().iter().any(needs_summary_without_text),
        SearchKey::Not(key) => needs_summary_without_text(key),
        SearchKey::Or(left, right) => {
            needs_summary_without_text(left) || needs_summary_without_text(right)
        }
        other => needs_summary(other),
    }
}

/// `matches` without the index.
pub fn matches(
    key: &SearchKey<'_>,
    candidate: &Candidate<'_>,
    sets: &mut dyn Iterator<Item = NumberSet>,
) -> bool {
    matches_with(key, candidate, sets, &TextPrefilter::default())
}

/// Whether `candidate` matches `key`. `sets` yields the resolved sets of the key's
/// sequence-set and UID keys, in walk order; `last_sequence`/`last_uid` resolve nothing
/// here (the session resolved them). A BODY or TEXT string `prefilter` rules out for the
/// message does not match; any other is looked for in the message's text.
pub fn matches_with(
    key: &SearchKey<'_>,
    candidate: &Candidate<'_>,
    sets: &mut dyn Iterator<Item = NumberSet>,
    prefilter: &TextPrefilter,
) -> bool {
    let flags = &candidate.record.flags;
    let system = |bit| flags.system.contains(bit);
    let summary = candidate.summary;
    match key {
        SearchKey::And(keys) => {
            let mut all = true;
            for key in keys.as_ref() {
                // Every key is walked, so the sets stay in step.
                all &= matches_with(key, candidate, sets, prefilter);
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
        SearchKey::Body(value) => {
            !prefilter.rules_out(TextScope::Body, value.as_ref(), candidate.record)
                && candidate
                    .raw
                    .is_some_and(|raw| text_contains(raw, summary, value.as_ref(), false))
        }
        SearchKey::Text(value) => {
            !prefilter.rules_out(TextScope::Text, value.as_ref(), candidate.record)
                && candidate
                    .raw
                    .is_some_and(|raw| text_contains(raw, summary, value.as_ref(), true))
        }
        SearchKey::Not(key) => !matches_with(key, candidate, sets, prefilter),
        SearchKey::Or(left, right) => {
            let left = matches_with(left, candidate, sets, prefilter);
            let right = matches_with(right, candidate, sets, prefilter);
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
