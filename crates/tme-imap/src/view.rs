//! The selected mailbox as one session sees it: message sequence numbers, the flags it last
//! reported, and how the store's current state becomes untagged responses.
//!
//! RFC 9051 §7.5.1 and §5.5: sequence numbers change only when this session is told, by
//! EXPUNGE; an EXPUNGE response may not be sent while a FETCH, STORE or SEARCH is in
//! progress (nor after a UID command... it may, except during those three), so a message
//! another session expunged stays in this view (its number valid, its data what we last
//! knew) until a command that allows it; a client that enabled QRESYNC is told with one
//! `VANISHED` of UIDs instead (RFC 7162 §3.2.10). New messages are appended (EXISTS), flag
//! changes are reported as `FETCH (FLAGS ...)`. UIDs only grow.
//!
//! No I/O: the session hands in the store's list and writes what comes back.

use std::sync::Arc;

use tme_store::{Flags, MailboxId, MessageRecord, ModSeq, Uid};

use crate::render;

/// The selected mailbox.
#[derive(Debug, Clone)]
pub struct SelectedView {
    pub mailbox_id: MailboxId,
    pub name: String,
    pub read_only: bool,
    pub uid_validity: u32,
    /// The messages in sequence-number order. The outer `Arc` is shared with the server's
    /// latest list of the mailbox (`crate::mailbox_lists`), and so with the other sessions
    /// that see it, as long as this view equals that list: an idle session's messages cost
    /// a pointer, not a pointer per message. Changed copy-on-write.
    records: Arc<Vec<Arc<MessageRecord>>>,
    /// The UIDs, sorted, of messages another session expunged that this one was not told
    /// of yet: they keep their sequence numbers, with the data last known.
    expunged: Vec<Uid>,
    /// The mailbox's HIGHESTMODSEQ as of the last refresh.
    pub highest_modseq: ModSeq,
    /// The account's MODSEQ as of the last refresh: nothing changed if it still is.
    pub account_modseq: ModSeq,
    /// The saved search result (RFC 5182), as sorted UIDs: it names messages, so an
    /// expunge takes a message out of it, and new messages never come in.
    pub saved_result: Vec<Uid>,
}

/// What a sequence set names: `*` resolved, ranges in either order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberSet(pub Vec<(u32, u32)>);

impl NumberSet {
    pub fn contains(&self, value: u32) -> bool {
        self.0
            .iter()
            .any(|&(low, high)| low <= value && value <= high)
    }
}

impl SelectedView {
    /// A view of `records` (the mailbox's live messages in UID order, as of
    /// `account_modseq`), none of them expunged.
    pub fn new(
        mailbox_id: MailboxId,
        name: String,
        read_only: bool,
        uid_validity: u32,
        records: Arc<Vec<Arc<MessageRecord>>>,
        highest_modseq: ModSeq,
        account_modseq: ModSeq,
    ) -> SelectedView {
        SelectedView {
            mailbox_id,
            name,
            read_only,
            uid_validity,
            records,
            expunged: Vec::new(),
            highest_modseq,
            account_modseq,
            saved_result: Vec::new(),
        }
    }

    /// The messages in sequence-number order (index 0 is message 1), expunged ones too.
    pub fn records(&self) -> &[Arc<MessageRecord>] {
        &self.records
    }

    /// Whether the message at `index` was expunged by another session (not yet reported).
    pub fn is_expunged(&self, index: usize) -> bool {
        !self.expunged.is_empty()
            && self
                .records
                .get(index)
                .is_some_and(|record| self.expunged.binary_search(&record.uid).is_ok())
    }

    /// Whether an expunge waits to be reported.
    pub fn has_pending_expunges(&self) -> bool {
        !self.expunged.is_empty()
    }

    /// The messages not expunged, in UID order.
    pub fn live_records(&self) -> impl Iterator<Item = &Arc<MessageRecord>> {
        self.records
            .iter()
            .filter(|record| self.expunged.binary_search(&record.uid).is_err())
    }

    /// Replaces the message at `index` with a newer record of it (same UID).
    pub fn set_record(&mut self, index: usize, record: Arc<MessageRecord>) {
        if let Some(slot) = Arc::make_mut(&mut self.records).get_mut(index) {
            *slot = record;
        }
    }

    pub fn exists(&self) -> u32 {
        u32::try_from(self.records.len()).unwrap_or(u32::MAX)
    }

    pub fn uid_of(&self, sequence: u32) -> Option<Uid> {
        let index = usize::try_from(sequence.checked_sub(1)?).ok()?;
        self.records.get(index).map(|record| record.uid)
    }

    pub fn last_uid(&self) -> Uid {
        self.records.last().map_or(0, |record| record.uid)
    }

    /// The saved search result as a set of UIDs, or of the sequence numbers of its
    /// messages that are still in the mailbox (`$`, RFC 5182 §2.1). Empty when nothing
    /// was saved.
    pub fn saved_set(&self, by_uid: bool) -> NumberSet {
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        for (index, record) in self.records.iter().enumerate() {
            if self.expunged.binary_search(&record.uid).is_ok()
                || self.saved_result.binary_search(&record.uid).is_err()
            {
                continue;
            }
            let number = if by_uid {
                record.uid
            } else {
                u32::try_from(index + 1).unwrap_or(u32::MAX)
            };
            match ranges.last_mut() {
                Some((_, high)) if high.checked_add(1) == Some(number) => *high = number,
                _ => ranges.push((number, number)),
            }
        }
        NumberSet(ranges)
    }

    /// The 0-based indexes of the messages a set names: by sequence number, or by UID.
    /// Sequence numbers past the end are an error (the client is out of step); UIDs that
    /// name nothing are not (RFC 9051 §6.4.8).
    pub fn resolve(&self, set: &NumberSet, by_uid: bool) -> Result<Vec<usize>, String> {
        if by_uid {
            return Ok(self
                .records
                .iter()
                .enumerate()
                .filter(|(_, record)| set.contains(record.uid))
                .map(|(index, _)| index)
                .collect());
        }
        let exists = self.exists();
        let mut indexes = Vec::new();
        for &(low, high) in &set.0 {
            if high > exists || low == 0 {
                return Err(if exists == 0 {
                    "the mailbox is empty".to_owned()
                } else {
                    format!("message sequence number {high} is past the last message ({exists})")
                });
            }
            indexes.extend((low - 1) as usize..high as usize);
        }
        indexes.sort_unstable();
        indexes.dedup();
        Ok(indexes)
    }

    /// Brings the view to the store's `current` list (UID order) and writes the untagged
    /// responses that say so. Expunges are reported only when `expunge_allowed`, as one
    /// `VANISHED` of their UIDs once the client enabled QRESYNC (`vanished`, RFC 7162
    /// §3.2.10), else as EXPUNGEs; flag changes carry UID (and MODSEQ with CONDSTORE).
    pub fn refresh(
        &mut self,
        current_list: &Arc<Vec<Arc<MessageRecord>>>,
        expunge_allowed: bool,
        condstore: bool,
        vanished: bool,
        out: &mut Vec<u8>,
    ) {
        let mut current = current_list.iter().peekable();
        let mut kept: Vec<Arc<MessageRecord>> = Vec::with_capacity(self.records.len());
        let mut still_expunged: Vec<Uid> = Vec::new();
        let mut expunged_sequences: Vec<usize> = Vec::new();
        let mut expunged_uids: Vec<Uid> = Vec::new();
        let mut flag_updates: Vec<(usize, Arc<MessageRecord>)> = Vec::new();
        for (index, record) in self.records.iter().enumerate() {
            // Skip store messages with UIDs below this one: they cannot be (UIDs only grow
            // and the view had every message up to its last UID), but stay safe.
            while current.peek().is_some_and(|next| next.uid < record.uid) {
                current.next();
            }
            match current.peek() {
                Some(next) if next.uid == record.uid => {
                    let Some(next) = current.next() else { break };
                    if next.flags != record.flags || next.modseq != record.modseq {
                        if next.flags != record.flags {
                            flag_updates.push((kept.len(), next.clone()));
                        }
                        kept.push(next.clone());
                    } else {
                        kept.push(record.clone());
                    }
                }
                _ => {
                    if expunge_allowed {
                        expunged_sequences.push(index + 1);
                        expunged_uids.push(record.uid);
                    } else {
                        still_expunged.push(record.uid);
                        kept.push(record.clone());
                    }
                }
            }
        }
        if vanished {
            if !expunged_uids.is_empty() {
                let uids = crate::session::compress_set(&expunged_uids);
                out.extend_from_slice(format!("* VANISHED {uids}\r\n").as_bytes());
            }
        } else {
            // Expunges from the highest number down, so each number is right when sent.
            for sequence in expunged_sequences.iter().rev() {
                out.extend_from_slice(format!("* {sequence} EXPUNGE\r\n").as_bytes());
            }
        }
        let before = kept.len();
        let last_uid = kept.last().map_or(0, |record| record.uid);
        kept.extend(current.filter(|record| record.uid > last_uid).cloned());
        let exists_changed = kept.len() != before;
        // Every message of the store's list and no other: share that list instead.
        self.records = if still_expunged.is_empty() && kept.len() == current_list.len() {
            current_list.clone()
        } else {
            Arc::new(kept)
        };
        self.expunged = still_expunged;
        if exists_changed {
            out.extend_from_slice(format!("* {} EXISTS\r\n", self.exists()).as_bytes());
        }
        for (index, record) in flag_updates {
            out.extend_from_slice(
                flag_fetch_line(
                    index + 1,
                    &record.flags,
                    record.uid,
                    condstore.then_some(record.modseq),
                )
                .as_bytes(),
            );
        }
    }
}

/// `* n FETCH (UID u FLAGS (...) [MODSEQ (m)])`.
pub fn flag_fetch_line(sequence: usize, flags: &Flags, uid: Uid, modseq: Option<ModSeq>) -> String {
    let modseq = modseq.map_or(String::new(), |modseq| format!(" MODSEQ ({modseq})"));
    format!(
        "* {sequence} FETCH (UID {uid} FLAGS {}{modseq})\r\n",
        render::flags(flags)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tme_store::BlobId;

    fn record(uid: Uid, seen: bool) -> MessageRecord {
        let mut flags = Flags::default();
        if seen {
            flags.system.0 |= tme_store::mail::SystemFlags::SEEN;
        }
        MessageRecord {
            id: i64::from(uid),
            account_id: 1,
            mailbox_id: 1,
            uid,
            blob_id: BlobId::from_hex(&"00".repeat(32)).unwrap_or_else(|| panic!("blob id")),
            size_bytes: 10,
            internal_date_unix: 0,
            flags,
            modseq: i64::from(uid) + i64::from(seen),
            expunged_unix: None,
            thread_id: 0,
        }
    }

    fn view(uids: &[Uid]) -> SelectedView {
        let records = uids
            .iter()
            .map(|&uid| Arc::new(record(uid, false)))
            .collect();
        SelectedView::new(1, "INBOX".to_owned(), false, 1, Arc::new(records), 0, 0)
    }

    fn refresh(view: &mut SelectedView, current: Vec<MessageRecord>, allowed: bool) -> String {
        let mut out = Vec::new();
        let current = Arc::new(current.into_iter().map(Arc::new).collect());
        view.refresh(&current, allowed, false, false, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn expunges_wait_until_allowed_and_come_highest_first() {
        let mut selected = view(&[1, 2, 3, 4]);
        let current = vec![record(1, false), record(3, true), record(5, false)];
        assert_eq!(
            refresh(&mut selected, current.clone(), false),
            "* 5 EXISTS\r\n* 3 FETCH (UID 3 FLAGS (\\Seen))\r\n"
        );
        assert_eq!(selected.exists(), 5, "expunged messages keep their numbers");
        assert_eq!(
            refresh(&mut selected, current, true),
            "* 4 EXPUNGE\r\n* 2 EXPUNGE\r\n"
        );
        assert_eq!(selected.uid_of(3), Some(5));
    }

    #[test]
    fn vanished_instead_of_expunge_with_qresync() {
        let mut selected = view(&[1, 2, 3, 4, 5]);
        let current = Arc::new(vec![Arc::new(record(1, false)), Arc::new(record(4, false))]);
        let mut out = Vec::new();
        selected.refresh(&current, true, true, true, &mut out);
        assert_eq!(String::from_utf8_lossy(&out), "* VANISHED 2:3,5\r\n");
        assert_eq!(selected.uid_of(2), Some(4));
        assert!(
            Arc::ptr_eq(&selected.records, &current),
            "a view equal to the store's list shares it"
        );
    }

    #[test]
    fn a_view_with_pending_expunges_keeps_its_own_list() {
        let mut selected = view(&[1, 2, 3]);
        let current = Arc::new(vec![Arc::new(record(1, false)), Arc::new(record(3, true))]);
        let mut out = Vec::new();
        selected.refresh(&current, false, false, false, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "* 3 FETCH (UID 3 FLAGS (\\Seen))\r\n"
        );
        assert!(!Arc::ptr_eq(&selected.records, &current));
        assert!(selected.is_expunged(1) && !selected.is_expunged(0) && !selected.is_expunged(2));
        assert_eq!(
            selected
                .live_records()
                .map(|record| record.uid)
                .collect::<Vec<_>>(),
            [1, 3]
        );
        out.clear();
        selected.refresh(&current, true, false, false, &mut out);
        assert_eq!(String::from_utf8_lossy(&out), "* 2 EXPUNGE\r\n");
        assert!(Arc::ptr_eq(&selected.records, &current));
        assert!(!selected.has_pending_expunges());
    }

    #[test]
    fn saved_result_follows_expunges() {
        let mut selected = view(&[10, 20, 30, 40]);
        selected.saved_result = vec![20, 30, 40];
        assert_eq!(
            selected.saved_set(true),
            NumberSet(vec![(20, 20), (30, 30), (40, 40)])
        );
        assert_eq!(selected.saved_set(false), NumberSet(vec![(2, 4)]));
        let current = vec![record(10, false), record(30, false), record(40, false)];
        refresh(&mut selected, current.clone(), false);
        // Expunged but not yet reported: out of the result, its number still taken.
        assert_eq!(selected.saved_set(false), NumberSet(vec![(3, 4)]));
        refresh(&mut selected, current, true);
        assert_eq!(selected.saved_set(false), NumberSet(vec![(2, 3)]));
        assert_eq!(
            selected.saved_set(true),
            NumberSet(vec![(30, 30), (40, 40)])
        );
    }

    #[test]
    fn sequence_sets() {
        let selected = view(&[10, 20, 30]);
        assert_eq!(
            selected.resolve(&NumberSet(vec![(2, 3)]), false),
            Ok(vec![1, 2])
        );
        assert!(selected.resolve(&NumberSet(vec![(4, 4)]), false).is_err());
        assert_eq!(
            selected.resolve(&NumberSet(vec![(15, 30)]), true),
            Ok(vec![1, 2])
        );
        assert_eq!(
            selected.resolve(&NumberSet(vec![(40, 50)]), true),
            Ok(vec![])
        );
    }
}
