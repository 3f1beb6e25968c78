//! The maildrop as one POP3 session sees it: the account's INBOX as it was when the session
//! logged in (RFC 1939 §4: "the POP3 server ... opens the maildrop"), numbered 1..n in UID
//! order, each message with its wire size, unique id and deletion mark. Also the two pieces
//! of state the sessions of a node share: the maildrop locks and the cache of wire sizes.
//!
//! The snapshot never changes during a session: a message delivered meanwhile is seen by the
//! next session, and a message another session (IMAP) expunged keeps its number (the session
//! refuses to RETR it). Marks (DELE, RSET) live here and nowhere else until QUIT: a session
//! that ends any other way changes nothing in the store (RFC 1939 §6).
//! It does no I/O.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tme_store::mail::{MailboxId, Uid};
use tme_store::{AccountId, BlobId, Mailbox, MessageRecord};

/// How many wire sizes the node keeps. A wire size is a function of the blob's content (the
/// blob id is its hash), so an entry never goes stale; when the cache is full it is emptied
/// and fills again. 100,000 entries are a few MiB.
pub const WIRE_SIZES_CACHED_MAX: usize = 100_000;

/// One message of the maildrop.
#[derive(Debug, Clone)]
pub struct DropMessage {
    pub record: MessageRecord,
    /// Octets of the wire form before byte-stuffing (`transfer::wire_size`): what LIST says.
    pub wire_size: u64,
    /// Marked by DELE; expunged at QUIT.
    pub deleted: bool,
    /// Sent whole by RETR; marked \Seen at QUIT.
    pub retrieved: bool,
}

/// Why a message number cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberRefusal {
    NoSuchMessage,
    /// RFC 1939 §5: a message marked as deleted may not be referred to.
    Deleted,
}

/// The maildrop of a session in the TRANSACTION state.
#[derive(Debug)]
pub struct Maildrop {
    pub account_id: AccountId,
    pub mailbox_id: MailboxId,
    pub uid_validity: u32,
    messages: Vec<DropMessage>,
}

impl Maildrop {
    /// The snapshot of `mailbox`: `messages` with their wire sizes, in UID order.
    pub fn new(mailbox: &Mailbox, mut messages: Vec<(MessageRecord, u64)>) -> Maildrop {
        messages.sort_by_key(|(record, _)| record.uid);
        Maildrop {
            account_id: mailbox.account_id,
            mailbox_id: mailbox.id,
            uid_validity: mailbox.uid_validity,
            messages: messages
                .into_iter()
                .map(|(record, wire_size)| DropMessage {
                    record,
                    wire_size,
                    deleted: false,
                    retrieved: false,
                })
                .collect(),
        }
    }

    /// The message numbered `number` (from 1), unless it is marked as deleted.
    pub fn get(&self, number: u64) -> Result<&DropMessage, NumberRefusal> {
        let message = usize::try_from(number)
            .ok()
            .and_then(|number| number.checked_sub(1))
            .and_then(|index| self.messages.get(index))
            .ok_or(NumberRefusal::NoSuchMessage)?;
        if message.deleted {
            return Err(NumberRefusal::Deleted);
        }
        Ok(message)
    }

    fn get_mut(&mut self, number: u64) -> Result<&mut DropMessage, NumberRefusal> {
        self.get(number)?;
        let index = usize::try_from(number - 1).map_err(|_| NumberRefusal::NoSuchMessage)?;
        self.messages
            .get_mut(index)
            .ok_or(NumberRefusal::NoSuchMessage)
    }

    /// DELE: marks the message.
    pub fn mark_deleted(&mut self, number: u64) -> Result<(), NumberRefusal> {
        self.get_mut(number)?.deleted = true;
        Ok(())
    }

    /// RETR sent the message whole.
    pub fn mark_retrieved(&mut self, number: u64) {
        if let Ok(message) = self.get_mut(number) {
            message.retrieved = true;
        }
    }

    /// RSET: no message is marked as deleted any more.
    pub fn reset(&mut self) {
        for message in &mut self.messages {
            message.deleted = false;
        }
    }

    /// STAT: messages not marked as deleted, and their octets (RFC 1939 §5).
    pub fn stat(&self) -> (u64, u64) {
        self.listing()
            .fold((0, 0), |(count, octets), (_, message)| {
                (count + 1, octets + message.wire_size)
            })
    }

    /// The messages not marked as deleted, with their numbers.
    pub fn listing(&self) -> impl Iterator<Item = (u64, &DropMessage)> {
        self.messages
            .iter()
            .zip(1u64..)
            .filter(|(message, _)| !message.deleted)
            .map(|(message, number)| (number, message))
    }

    /// The unique-id listing's id of a message (RFC 1939 §7): the mailbox's UIDVALIDITY and
    /// the message's UID, 8 hex digits each. UIDs are never reused within a UIDVALIDITY, so
    /// the id is unique within the maildrop and the same in every session; a mailbox that
    /// gets a new UIDVALIDITY (restored) gives every message a new id, and the client fetches
    /// them again rather than miss one.
    pub fn unique_id(&self, message: &DropMessage) -> String {
        format!("{:08x}{:08x}", self.uid_validity, message.record.uid)
    }

    /// UIDs marked as deleted (expunged at QUIT).
    pub fn deleted_uids(&self) -> Vec<Uid> {
        self.messages
            .iter()
            .filter(|message| message.deleted)
            .map(|message| message.record.uid)
            .collect()
    }

    /// UIDs sent whole by RETR, kept, and not yet \Seen (marked \Seen at QUIT).
    pub fn retrieved_unseen_uids(&self) -> Vec<Uid> {
        self.messages
            .iter()
            .filter(|message| message.retrieved && !message.deleted)
            .filter(|message| {
                !message
                    .record
                    .flags
                    .system
                    .contains(tme_store::mail::SystemFlags::SEEN)
            })
            .map(|message| message.record.uid)
            .collect()
    }
}

/// The node's maildrop locks: one session at a time in the TRANSACTION state per account
/// (RFC 1939 §4 asks for an exclusive-access lock; a second session gets `[IN-USE]`,
/// RFC 2449 §8.1.1). The lock is this process's: nodes sharing a store (*planned*) would
/// each hold their own, and IMAP sessions never take it.
#[derive(Debug, Default)]
pub struct MaildropLocks {
    held: Arc<Mutex<HashSet<AccountId>>>,
}

/// A held maildrop lock, released when dropped (however the session ends).
#[derive(Debug)]
pub struct MaildropLock {
    held: Arc<Mutex<HashSet<AccountId>>>,
    account_id: AccountId,
}

impl MaildropLocks {
    pub fn try_lock(&self, account_id: AccountId) -> Option<MaildropLock> {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !held.insert(account_id) {
            return None;
        }
        Some(MaildropLock {
            held: self.held.clone(),
            account_id,
        })
    }
}

impl Drop for MaildropLock {
    fn drop(&mut self) {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.account_id);
    }
}

/// Wire sizes already computed, by blob, so that a client that logs in every few minutes
/// does not make the node read its whole INBOX each time.
#[derive(Debug, Default)]
pub struct WireSizeCache {
    sizes: Mutex<HashMap<BlobId, u64>>,
}

impl WireSizeCache {
    pub fn get(&self, blob_id: &BlobId) -> Option<u64> {
        self.sizes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(blob_id)
            .copied()
    }

    pub fn put(&self, blob_id: BlobId, wire_size: u64) {
        let mut sizes = self
            .sizes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if sizes.len() >= WIRE_SIZES_CACHED_MAX {
            sizes.clear();
        }
        sizes.insert(blob_id, wire_size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tme_store::Flags;

    fn record(uid: Uid) -> MessageRecord {
        MessageRecord {
            id: i64::from(uid) + 100,
            account_id: 1,
            mailbox_id: 2,
            uid,
            blob_id: BlobId::of(&uid.to_be_bytes()),
            size_bytes: 10,
            internal_date_unix: 0,
            flags: Flags::default(),
            modseq: 1,
            expunged_unix: None,
            thread_id: 0,
        }
    }

    fn maildrop() -> Maildrop {
        let mailbox = Mailbox {
            id: 2,
            account_id: 1,
            name: "INBOX".to_owned(),
            special_use: None,
            uid_validity: 0x1234,
            uid_next: 10,
            highest_modseq: 1,
            subscribed: true,
            deleted_unix: None,
        };
        Maildrop::new(
            &mailbox,
            vec![(record(7), 120), (record(3), 30), (record(5), 50)],
        )
    }

    #[test]
    fn numbers_follow_uid_order_and_deleted_messages_are_refused_until_reset() {
        let mut maildrop = maildrop();
        assert_eq!(maildrop.stat(), (3, 200));
        assert_eq!(maildrop.get(1).map(|message| message.record.uid), Ok(3));
        assert_eq!(maildrop.get(3).map(|message| message.record.uid), Ok(7));
        assert_eq!(maildrop.get(0).err(), Some(NumberRefusal::NoSuchMessage));
        assert_eq!(maildrop.get(4).err(), Some(NumberRefusal::NoSuchMessage));
        assert_eq!(
            maildrop.get(u64::MAX).err(),
            Some(NumberRefusal::NoSuchMessage)
        );
        assert_eq!(maildrop.mark_deleted(2), Ok(()));
        assert_eq!(maildrop.mark_deleted(2), Err(NumberRefusal::Deleted));
        assert_eq!(maildrop.get(2).err(), Some(NumberRefusal::Deleted));
        assert_eq!(maildrop.stat(), (2, 150));
        let listed: Vec<u64> = maildrop.listing().map(|(number, _)| number).collect();
        assert_eq!(listed, vec![1, 3]);
        assert_eq!(maildrop.deleted_uids(), vec![5]);
        maildrop.reset();
        assert_eq!(maildrop.stat(), (3, 200));
        assert!(maildrop.deleted_uids().is_empty());
    }

    #[test]
    fn unique_ids_are_uidvalidity_and_uid() {
        let maildrop = maildrop();
        let ids: Vec<String> = maildrop
            .listing()
            .map(|(_, message)| maildrop.unique_id(message))
            .collect();
        assert_eq!(
            ids,
            vec!["0000123400000003", "0000123400000005", "0000123400000007"]
        );
    }

    #[test]
    fn retrieved_messages_kept_are_the_ones_to_mark_seen() {
        let mut maildrop = maildrop();
        maildrop.mark_retrieved(1);
        maildrop.mark_retrieved(2);
        maildrop.mark_deleted(2).expect("dele");
        assert_eq!(maildrop.retrieved_unseen_uids(), vec![3]);
    }

    #[test]
    fn a_maildrop_lock_is_exclusive_until_dropped() {
        let locks = MaildropLocks::default();
        let lock = locks.try_lock(1).expect("first");
        assert!(locks.try_lock(1).is_none());
        assert!(locks.try_lock(2).is_some());
        drop(lock);
        assert!(locks.try_lock(1).is_some());
    }
}
