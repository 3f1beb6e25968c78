//! Message records shared between sessions: every session that has a mailbox selected keeps
//! a record per message (UID, flags, MODSEQ, size, blob), and most sessions of an account look
//! at the same messages in the same state. Here equal records are handed out as one `Arc`, so
//! a session's view costs a pointer per message instead of a copy of each record.
//!
//! Only sharing, never a source of truth: a record is reused only when it is equal, field by
//! field, to the one the caller read from the store, so what a session sees is exactly what
//! it read. Must not hold a record alive by itself: it keeps `Weak` pointers, and forgets the
//! dead ones as it grows.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use tme_store::{MessageId, MessageRecord};

/// Entries kept before the first sweep of dead ones; after a sweep, the next comes when the
/// map has doubled from what the sweep left.
const SWEEP_ENTRIES_MIN: usize = 4_096;

/// The records of this process, by message id. A message id is unique within one store; two
/// stores in one process (tests) share the map, and an equal record from another store is as
/// good as its own.
static RECORDS: LazyLock<SharedRecords> = LazyLock::new(SharedRecords::default);

#[derive(Default)]
struct SharedRecords {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    by_id: HashMap<MessageId, Weak<MessageRecord>>,
    sweep_at_entries: usize,
}

/// `records` as shared records: each one the `Arc` another session holds for an equal
/// record, or a new one that later sessions will share. Takes the lock once for them all.
pub fn share(records: impl IntoIterator<Item = MessageRecord>) -> Vec<Arc<MessageRecord>> {
    let records = records.into_iter();
    let mut shared = Vec::with_capacity(records.size_hint().0);
    // A poisoned lock only means another thread panicked while holding it; the map is
    // still a valid cache (every entry is checked before use).
    let mut state = RECORDS
        .state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for record in records {
        shared.push(state.share(record));
    }
    state.sweep_if_grown();
    shared
}

/// One record as a shared record (see `share`).
pub fn share_one(record: MessageRecord) -> Arc<MessageRecord> {
    let mut state = RECORDS
        .state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let shared = state.share(record);
    state.sweep_if_grown();
    shared
}

impl State {
    fn share(&mut self, record: MessageRecord) -> Arc<MessageRecord> {
        if let Some(existing) = self.by_id.get(&record.id).and_then(Weak::upgrade)
            && *existing == record
        {
            return existing;
        }
        let id = record.id;
        let shared = Arc::new(record);
        self.by_id.insert(id, Arc::downgrade(&shared));
        shared
    }

    fn sweep_if_grown(&mut self) {
        if self.by_id.len() < self.sweep_at_entries.max(SWEEP_ENTRIES_MIN) {
            return;
        }
        self.by_id.retain(|_, record| record.strong_count() > 0);
        self.by_id.shrink_to_fit();
        self.sweep_at_entries = self.by_id.len() * 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tme_store::{BlobId, Flags};

    fn record(id: MessageId, uid: u32, modseq: i64) -> MessageRecord {
        MessageRecord {
            id,
            account_id: 1,
            mailbox_id: 1,
            uid,
            blob_id: BlobId::from_bytes(&[7; 32]).expect("blob id"),
            size_bytes: 100,
            internal_date_unix: 0,
            flags: Flags::default(),
            modseq,
            expunged_unix: None,
            thread_id: 0,
        }
    }

    #[test]
    fn equal_records_are_one_and_changed_ones_are_not() {
        // Ids far from other tests' so the process-wide map does not mix them.
        let first = share([record(9_000_001, 1, 5), record(9_000_002, 2, 6)]);
        let second = share([record(9_000_001, 1, 5), record(9_000_002, 2, 7)]);
        assert!(Arc::ptr_eq(&first[0], &second[0]), "equal: shared");
        assert!(!Arc::ptr_eq(&first[1], &second[1]), "changed: not shared");
        assert_eq!(
            second[1].modseq, 7,
            "the caller's record, not the older one"
        );
        let again = share_one(record(9_000_002, 2, 7));
        assert!(Arc::ptr_eq(&again, &second[1]));
    }

    #[test]
    fn dead_records_are_swept() {
        for round in 0..3 {
            let ids = 8_000_000 + round * 10_000;
            drop(share(
                (ids..ids + SWEEP_ENTRIES_MIN as i64).map(|id| record(id, 1, 1)),
            ));
        }
        let state = RECORDS.state.lock().expect("lock");
        assert!(
            state.by_id.len() < 3 * SWEEP_ENTRIES_MIN,
            "{} entries kept",
            state.by_id.len()
        );
    }
}
