//! Conversations: which thread a new message joins, decided from its Message-ID,
//! In-Reply-To and References fields (RFC 5322 §3.6.4).
//!
//! A thread is named by the id of its first message (`ThreadId`), given once at append and
//! never changed afterwards, as JMAP's `threadId` must be (RFC 8621 §4.1.1). Each account
//! keeps a map from message ids to threads, keyed by `thread_key` (64 bits of the id's
//! BLAKE3 hash, so that a megabyte-long id costs eight octets): a message joins the thread
//! of the first of its keys the map knows, in the order `thread_keys` gives, and adds its
//! keys to the map (a key keeps the thread it had first). A reply that arrives before the
//! message it answers still joins the other replies to that message, since they share
//! the reference.
//!
//! Only references decide, not subjects: a message without ids, or whose ids are all new,
//! starts a thread. IMAP THREAD (RFC 5256) has its own algorithm over one mailbox in
//! `tme-imap`; this one spans the account and is what the webmail and JMAP show.
//!
//! Pure: no I/O. The SQL is the backend's (`sqlite/threads.rs`).

use tme_message::MessageSummary;

/// A thread's id: the `MessageId` of the message that started it.
pub type ThreadId = i64;

/// How many of a message's references (In-Reply-To, then References from the most
/// recent) are looked up and remembered. The fields may hold hundreds of ids
/// (`tme_message::MESSAGE_IDS_MAX`); the nearest ones decide, and a bound keeps the map's
/// growth per message fixed.
pub const THREAD_REFERENCES_MAX: usize = 32;

/// The map key of one message id (without angle brackets).
pub fn thread_key(message_id: &str) -> i64 {
    let hash = blake3::hash(message_id.trim().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    i64::from_be_bytes(first)
}

/// The keys a message is threaded by, in the order they decide: its own Message-ID (a
/// copy of a message, or the same message delivered twice, stays in its thread), then
/// In-Reply-To, then References from the most recent. Without duplicates; empty ids are
/// skipped; at most `1 + THREAD_REFERENCES_MAX` keys.
pub fn thread_keys(summary: &MessageSummary) -> Vec<i64> {
    let own = summary.message_id.as_deref().into_iter();
    let references = summary
        .in_reply_to
        .iter()
        .chain(summary.references.iter().rev())
        .map(String::as_str)
        .take(THREAD_REFERENCES_MAX);
    let mut keys: Vec<i64> = Vec::with_capacity(1 + THREAD_REFERENCES_MAX);
    for id in own.chain(references) {
        if id.trim().is_empty() {
            continue;
        }
        let key = thread_key(id);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

/// The thread a message joins: the one the map gives its first key that is known
/// (`known` holds the map's answers for some of `keys`), or `None` for a new thread.
pub fn thread_for(keys: &[i64], known: &[(i64, ThreadId)]) -> Option<ThreadId> {
    keys.iter().find_map(|key| {
        known
            .iter()
            .find(|(known_key, _)| known_key == key)
            .map(|(_, thread)| *thread)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(id: Option<&str>, in_reply_to: &[&str], references: &[&str]) -> MessageSummary {
        let mut raw = String::new();
        if let Some(id) = id {
            raw.push_str(&format!("Message-ID: <{id}>\r\n"));
        }
        if !in_reply_to.is_empty() {
            raw.push_str(&format!("In-Reply-To: <{}>\r\n", in_reply_to.join("> <")));
        }
        if !references.is_empty() {
            raw.push_str(&format!("References: <{}>\r\n", references.join("> <")));
        }
        raw.push_str("Subject: x\r\n\r\nbody\r\n");
        tme_message::summarize(raw.as_bytes())
    }

    #[test]
    fn own_id_then_parent_then_nearest_reference() {
        let keys = thread_keys(&summary(Some("c@x"), &["b@x"], &["a@x", "b@x"]));
        assert_eq!(
            keys,
            vec![thread_key("c@x"), thread_key("b@x"), thread_key("a@x")]
        );
    }

    #[test]
    fn a_message_without_ids_has_no_keys() {
        assert!(thread_keys(&summary(None, &[], &[])).is_empty());
    }

    #[test]
    fn references_are_bounded() {
        let many: Vec<String> = (0..200).map(|n| format!("id{n}@x")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let keys = thread_keys(&summary(Some("own@x"), &[], &many));
        assert_eq!(keys.len(), 1 + THREAD_REFERENCES_MAX);
        // The most recent references are the ones kept.
        assert_eq!(keys[1], thread_key("id199@x"));
    }

    #[test]
    fn the_first_known_key_decides() {
        let keys = [1, 2, 3];
        assert_eq!(thread_for(&keys, &[]), None);
        assert_eq!(thread_for(&keys, &[(3, 30), (2, 20)]), Some(20));
        assert_eq!(thread_for(&keys, &[(1, 10), (2, 20)]), Some(10));
    }
}
