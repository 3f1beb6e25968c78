//! Decoded message summaries kept in memory, shared by every reader of one mail store.
//!
//! A summary is a function of the message's bytes, which never change, and message ids are
//! never reused (AUTOINCREMENT), so a cached summary is never stale: nothing needs to be
//! invalidated. What this module owns is the bound: two generations of at most half the byte
//! budget each; when the young one fills, the old one is dropped and the young one becomes
//! old, and a summary found in the old generation moves back to the young one. So the
//! summaries read recently stay, and the cache never holds much more than its budget.
//!
//! Sizes are estimates (the encoded size, doubled for the decoded form's pointers and
//! allocations), good enough for a bound; they are not an accounting of the heap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tme_message::MessageSummary;

use crate::directory::AccountId;
use crate::mail::MessageId;

/// The memory the cache may use, in bytes (estimated).
pub const SUMMARY_CACHE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// What a cached summary costs beyond its encoded size: pointers, capacities, the map entry.
const DECODED_BYTES_PER_ENCODED_BYTE: usize = 2;
const ENTRY_OVERHEAD_BYTES: usize = 64;

type Key = (AccountId, MessageId);

pub struct SummaryCache {
    generation_bytes_max: usize,
    state: Mutex<Generations>,
}

#[derive(Default)]
struct Generations {
    young: HashMap<Key, (Arc<MessageSummary>, usize)>,
    young_bytes: usize,
    old: HashMap<Key, (Arc<MessageSummary>, usize)>,
}

impl std::fmt::Debug for SummaryCache {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (summaries, bytes) = self.held();
        formatter
            .debug_struct("SummaryCache")
            .field("summaries", &summaries)
            .field("bytes", &bytes)
            .finish()
    }
}

impl SummaryCache {
    pub fn new(bytes_max: usize) -> SummaryCache {
        SummaryCache {
            generation_bytes_max: bytes_max / 2,
            state: Mutex::new(Generations::default()),
        }
    }

    /// The cached summary of the account's message, if it is held.
    pub fn get(&self, account: AccountId, id: MessageId) -> Option<Arc<MessageSummary>> {
        let mut state = self.lock();
        if let Some((summary, _)) = state.young.get(&(account, id)) {
            return Some(summary.clone());
        }
        let (summary, bytes) = state.old.remove(&(account, id))?;
        let found = summary.clone();
        self.insert_locked(&mut state, (account, id), summary, bytes);
        Some(found)
    }

    /// Keeps a summary just decoded from `encoded_bytes` octets.
    pub fn insert(
        &self,
        account: AccountId,
        id: MessageId,
        summary: Arc<MessageSummary>,
        encoded_bytes: usize,
    ) {
        let bytes = encoded_bytes
            .saturating_mul(DECODED_BYTES_PER_ENCODED_BYTE)
            .saturating_add(ENTRY_OVERHEAD_BYTES);
        if bytes > self.generation_bytes_max {
            return;
        }
        let mut state = self.lock();
        self.insert_locked(&mut state, (account, id), summary, bytes);
    }

    fn insert_locked(
        &self,
        state: &mut Generations,
        key: Key,
        summary: Arc<MessageSummary>,
        bytes: usize,
    ) {
        if state.young_bytes + bytes > self.generation_bytes_max {
            state.old = std::mem::take(&mut state.young);
            state.young_bytes = 0;
        }
        if let Some((_, replaced)) = state.young.insert(key, (summary, bytes)) {
            state.young_bytes -= replaced;
        }
        state.young_bytes += bytes;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // A panic while holding the lock leaves whole entries only: the cache stays usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Summaries held, and their estimated bytes (for tests and metrics).
    pub fn held(&self) -> (usize, usize) {
        let state = self.lock();
        let old_bytes: usize = state.old.values().map(|(_, bytes)| bytes).sum();
        (
            state.young.len() + state.old.len(),
            state.young_bytes + old_bytes,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::SummaryCache;

    #[test]
    fn keeps_recent_summaries_within_the_budget() {
        let summary = Arc::new(tme_message::summarize(b"Subject: hello\r\n\r\nbody\r\n"));
        // Each entry costs 100 * 2 + 64 = 264 bytes; a generation holds 3 of them.
        let cache = SummaryCache::new(2 * 800);
        for id in 1..=3 {
            cache.insert(7, id, summary.clone(), 100);
        }
        assert!(cache.get(7, 1).is_some());
        assert!(
            cache.get(8, 1).is_none(),
            "another account's message is not handed out"
        );
        // The fourth starts a new generation: 1-3 are old, still found.
        cache.insert(7, 4, summary.clone(), 100);
        assert!(
            cache.get(7, 2).is_some(),
            "found in the old generation, moved back"
        );
        // 5 and 6 fill the young generation (4, 2, 5); 6 drops the old one (1 and 3).
        cache.insert(7, 5, summary.clone(), 100);
        cache.insert(7, 6, summary.clone(), 100);
        assert!(cache.get(7, 1).is_none());
        assert!(cache.get(7, 3).is_none());
        for id in [2, 4, 5, 6] {
            assert!(cache.get(7, id).is_some(), "message {id}");
        }
        let (count, bytes) = cache.held();
        assert!(
            count <= 6 && bytes <= 1600,
            "{count} summaries, {bytes} bytes"
        );
        // One too large for a generation is not kept at all.
        cache.insert(7, 9, summary, 10_000);
        assert!(cache.get(7, 9).is_none());
    }
}
