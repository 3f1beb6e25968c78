//! The mail store: each account's mailboxes, messages, flags and change log.
//!
//! This module owns the mail types and the `MailStore` trait every backend implements. The
//! rules a backend must keep (checked by the conformance suite):
//! - UIDs in a mailbox are given in increasing order and never reused within a UIDVALIDITY;
//! - every change takes the next MODSEQ of the account and is written to the change log in
//!   the same transaction, so `changes_since` misses nothing;
//! - an append counts against the quota in the same transaction that checks it;
//! - expunged messages and deleted mailboxes stay restorable until the retention purge.
//!
//! It refers to blobs by id only: writing a blob before its metadata is the caller's job
//! (see `Store::deliver`).

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tme_message::MessageSummary;

use crate::blob::BlobId;
use crate::directory::AccountId;
use crate::error::{StoreError, StoreResult};
use crate::threads::ThreadId;

pub type MailboxId = i64;
pub type MessageId = i64;
pub type Uid = u32;
pub type ModSeq = i64;

/// The hierarchy delimiter of mailbox names (IMAP LIST reports it).
pub const MAILBOX_DELIMITER: char = '/';
/// The longest mailbox name, in octets.
pub const MAILBOX_NAME_OCTETS_MAX: usize = 512;
/// How many levels a mailbox name may have.
pub const MAILBOX_DEPTH_MAX: usize = 32;
/// How many mailboxes one account may have.
pub const MAILBOXES_PER_ACCOUNT_MAX: usize = 10_000;
/// The longest keyword, in octets.
pub const KEYWORD_OCTETS_MAX: usize = 128;
/// How many keywords one message may carry.
pub const KEYWORDS_PER_MESSAGE_MAX: usize = 64;

/// RFC 6154 special-use attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SpecialUse {
    Inbox,
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
    All,
    Flagged,
}

impl SpecialUse {
    pub fn as_str(self) -> &'static str {
        match self {
            SpecialUse::Inbox => "inbox",
            SpecialUse::Sent => "sent",
            SpecialUse::Drafts => "drafts",
            SpecialUse::Trash => "trash",
            SpecialUse::Junk => "junk",
            SpecialUse::Archive => "archive",
            SpecialUse::All => "all",
            SpecialUse::Flagged => "flagged",
        }
    }

    pub fn parse(text: &str) -> Option<SpecialUse> {
        [
            SpecialUse::Inbox,
            SpecialUse::Sent,
            SpecialUse::Drafts,
            SpecialUse::Trash,
            SpecialUse::Junk,
            SpecialUse::Archive,
            SpecialUse::All,
            SpecialUse::Flagged,
        ]
        .into_iter()
        .find(|special_use| special_use.as_str().eq_ignore_ascii_case(text))
    }

    /// The mailboxes every new account gets, with their names.
    pub const DEFAULT_MAILBOXES: [(&'static str, SpecialUse); 6] = [
        ("INBOX", SpecialUse::Inbox),
        ("Sent", SpecialUse::Sent),
        ("Drafts", SpecialUse::Drafts),
        ("Trash", SpecialUse::Trash),
        ("Junk", SpecialUse::Junk),
        ("Archive", SpecialUse::Archive),
    ];
}

/// Checks a mailbox name: UTF-8 (IMAP4rev2 and UTF8=ACCEPT), no control characters, no empty
/// level, bounded length and depth. `INBOX` in any case is the Inbox (RFC 9051 §5.1).
pub fn validate_mailbox_name(name: &str) -> StoreResult<String> {
    let refuse = |why: &str| Err(StoreError::Refused(format!("mailbox name {name:?} {why}")));
    if name.is_empty() {
        return refuse("is empty");
    }
    if name.len() > MAILBOX_NAME_OCTETS_MAX {
        return refuse(&format!("is longer than {MAILBOX_NAME_OCTETS_MAX} octets"));
    }
    if name.chars().any(char::is_control) {
        return refuse("contains a control character");
    }
    let levels: Vec<&str> = name.split(MAILBOX_DELIMITER).collect();
    if levels.iter().any(|level| level.is_empty()) {
        return refuse("has an empty level");
    }
    if levels.len() > MAILBOX_DEPTH_MAX {
        return refuse(&format!("has more than {MAILBOX_DEPTH_MAX} levels"));
    }
    if levels[0].eq_ignore_ascii_case("INBOX") {
        let mut canonical = String::from("INBOX");
        for level in &levels[1..] {
            canonical.push(MAILBOX_DELIMITER);
            canonical.push_str(level);
        }
        return Ok(canonical);
    }
    Ok(name.to_owned())
}

/// A mailbox as IMAP and JMAP see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mailbox {
    pub id: MailboxId,
    pub account_id: AccountId,
    pub name: String,
    pub special_use: Option<SpecialUse>,
    pub uid_validity: u32,
    pub uid_next: Uid,
    pub highest_modseq: ModSeq,
    pub subscribed: bool,
    /// Set when the mailbox was deleted and is waiting out its retention.
    pub deleted_unix: Option<i64>,
}

/// Counts for STATUS and the webmail folder list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxCounts {
    pub messages: u64,
    pub unseen: u64,
    pub size_bytes: u64,
}

/// IMAP system flags (RFC 9051 §2.3.2), kept as bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SystemFlags(pub u8);

impl SystemFlags {
    pub const SEEN: u8 = 1;
    pub const ANSWERED: u8 = 2;
    pub const FLAGGED: u8 = 4;
    pub const DELETED: u8 = 8;
    pub const DRAFT: u8 = 16;
    const NAMES: [(u8, &'static str); 5] = [
        (Self::SEEN, "\\Seen"),
        (Self::ANSWERED, "\\Answered"),
        (Self::FLAGGED, "\\Flagged"),
        (Self::DELETED, "\\Deleted"),
        (Self::DRAFT, "\\Draft"),
    ];

    pub fn contains(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

/// A message's flags: system flags and keywords (`$Forwarded`, `$Junk`, user keywords).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flags {
    pub system: SystemFlags,
    /// Sorted, without duplicates.
    pub keywords: Vec<String>,
}

impl Flags {
    /// Parses IMAP flag names; `\Recent` is ignored (it is not stored, RFC 9051 §2.3.2).
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> StoreResult<Flags> {
        let mut flags = Flags::default();
        for name in names {
            if let Some((bit, _)) = SystemFlags::NAMES
                .iter()
                .find(|(_, known)| known.eq_ignore_ascii_case(name))
            {
                flags.system.0 |= bit;
            } else if name.eq_ignore_ascii_case("\\Recent") {
                continue;
            } else {
                flags.add_keyword(name)?;
            }
        }
        Ok(flags)
    }

    fn add_keyword(&mut self, keyword: &str) -> StoreResult<()> {
        // A keyword is an IMAP atom (RFC 9051 §9 flag-keyword): no specials, no backslash.
        let valid = !keyword.is_empty()
            && keyword.len() <= KEYWORD_OCTETS_MAX
            && keyword
                .bytes()
                .all(|byte| byte > b' ' && byte < 0x7f && !b"(){%*\"\\]".contains(&byte));
        if !valid {
            return Err(StoreError::Refused(format!(
                "{keyword:?} is not a valid keyword"
            )));
        }
        if let Err(position) = self.keywords.binary_search(&keyword.to_owned()) {
            if self.keywords.len() >= KEYWORDS_PER_MESSAGE_MAX {
                return Err(StoreError::Refused(format!(
                    "a message may carry at most {KEYWORDS_PER_MESSAGE_MAX} keywords"
                )));
            }
            self.keywords.insert(position, keyword.to_owned());
        }
        Ok(())
    }

    /// IMAP flag names, system flags first.
    pub fn names(&self) -> Vec<String> {
        SystemFlags::NAMES
            .iter()
            .filter(|(bit, _)| self.system.contains(*bit))
            .map(|(_, name)| (*name).to_owned())
            .chain(self.keywords.iter().cloned())
            .collect()
    }

    pub fn keywords_text(&self) -> String {
        self.keywords.join(" ")
    }

    pub fn from_stored(system: i64, keywords: &str) -> Flags {
        Flags {
            system: SystemFlags(u8::try_from(system & 0x1f).unwrap_or(0)),
            keywords: keywords
                .split(' ')
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    pub fn union(&self, other: &Flags) -> Flags {
        let mut keywords = self.keywords.clone();
        keywords.extend(other.keywords.iter().cloned());
        keywords.sort();
        keywords.dedup();
        Flags {
            system: SystemFlags(self.system.0 | other.system.0),
            keywords,
        }
    }

    pub fn difference(&self, other: &Flags) -> Flags {
        Flags {
            system: SystemFlags(self.system.0 & !other.system.0),
            keywords: self
                .keywords
                .iter()
                .filter(|keyword| !other.keywords.contains(keyword))
                .cloned()
                .collect(),
        }
    }
}

/// How a STORE changes flags (RFC 9051 §6.4.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagChange {
    Add(Flags),
    Remove(Flags),
    Replace(Flags),
}

impl FlagChange {
    pub fn apply(&self, current: &Flags) -> Flags {
        match self {
            FlagChange::Add(flags) => current.union(flags),
            FlagChange::Remove(flags) => current.difference(flags),
            FlagChange::Replace(flags) => flags.clone(),
        }
    }
}

/// A message to append.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub mailbox_id: MailboxId,
    pub blob_id: BlobId,
    pub size_bytes: u64,
    pub internal_date_unix: i64,
    pub flags: Flags,
    pub summary: MessageSummary,
}

/// A message's place and state, without its parsed summary (what a listing needs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub id: MessageId,
    pub account_id: AccountId,
    pub mailbox_id: MailboxId,
    pub uid: Uid,
    pub blob_id: BlobId,
    pub size_bytes: u64,
    pub internal_date_unix: i64,
    pub flags: Flags,
    pub modseq: ModSeq,
    /// Set when the message was expunged and is waiting out its retention.
    pub expunged_unix: Option<i64>,
    /// Its conversation (`crate::threads`): the same in every mailbox it is copied to.
    #[serde(default)]
    pub thread_id: ThreadId,
}

/// One conversation of a mailbox, as its list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadEntry {
    pub thread_id: ThreadId,
    /// Its newest message (by arrival) in the mailbox.
    pub newest: MessageRecord,
    /// How many of its messages are in the mailbox, and how many of those are unseen.
    pub messages: u32,
    pub unseen: u32,
}

impl Serialize for BlobId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for BlobId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        BlobId::from_hex(&text).ok_or_else(|| serde::de::Error::custom("not a blob id"))
    }
}

/// What an append gave the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub message_id: MessageId,
    pub mailbox_id: MailboxId,
    pub uid: Uid,
    pub modseq: ModSeq,
}

/// An account's use of its quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub used_bytes: u64,
    pub quota_bytes_max: u64,
    pub messages: u64,
}

/// What a change-log entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    MailboxCreated,
    MailboxChanged,
    MailboxDeleted,
    MessageAdded,
    MessageFlagsChanged,
    MessageExpunged,
}

impl ChangeKind {
    pub(crate) fn code(self) -> i64 {
        match self {
            ChangeKind::MailboxCreated => 1,
            ChangeKind::MailboxChanged => 2,
            ChangeKind::MailboxDeleted => 3,
            ChangeKind::MessageAdded => 4,
            ChangeKind::MessageFlagsChanged => 5,
            ChangeKind::MessageExpunged => 6,
        }
    }

    pub(crate) fn from_code(code: i64) -> Option<ChangeKind> {
        Some(match code {
            1 => ChangeKind::MailboxCreated,
            2 => ChangeKind::MailboxChanged,
            3 => ChangeKind::MailboxDeleted,
            4 => ChangeKind::MessageAdded,
            5 => ChangeKind::MessageFlagsChanged,
            6 => ChangeKind::MessageExpunged,
            _ => return None,
        })
    }
}

/// One entry of an account's change log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub modseq: ModSeq,
    pub kind: ChangeKind,
    pub mailbox_id: MailboxId,
    /// For message changes: the message and its UID.
    pub message: Option<(MessageId, Uid)>,
}

/// What one retention purge removed for good.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub messages_purged: u64,
    pub mailboxes_purged: u64,
    /// Delivery keys past `DELIVERY_KEYS_KEPT_DAYS`.
    pub delivery_keys_purged: u64,
}

/// The longest delivery key, in octets.
pub const DELIVERY_KEY_OCTETS_MAX: usize = 128;
/// How long a delivery key is remembered. It only has to outlive the moment between a commit
/// and the removal of the spool entry that caused it (a crash there is redelivered at the
/// next start), so this is far more than needed.
pub const DELIVERY_KEYS_KEPT_DAYS: i64 = 90;

/// Checks a delivery key: 1 to `DELIVERY_KEY_OCTETS_MAX` printable ASCII octets.
pub fn validate_delivery_key(key: &str) -> StoreResult<()> {
    let valid = !key.is_empty()
        && key.len() <= DELIVERY_KEY_OCTETS_MAX
        && key.bytes().all(|byte| byte.is_ascii_graphic());
    if valid {
        Ok(())
    } else {
        Err(StoreError::Refused(format!(
            "delivery key {key:?} is not 1 to {DELIVERY_KEY_OCTETS_MAX} printable ASCII characters"
        )))
    }
}

/// What `messages_append_once` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendedOnce {
    /// The messages appended by this call, grouped by account in the order given.
    pub appended: Vec<Appended>,
    /// The accounts that had taken a delivery under this key before: nothing was appended
    /// to them now.
    pub accounts_already_delivered: Vec<AccountId>,
}

/// The orders `MailStore::message_page` reads a mailbox in. Ties (same date or size) go by
/// UID, so a page boundary never shows a message twice or skips one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageOrder {
    /// Newest arrival first: descending UID.
    #[default]
    ArrivalNewestFirst,
    /// Oldest arrival first: ascending UID.
    ArrivalOldestFirst,
    /// By internal date (when the message arrived, or the date an import or APPEND gave),
    /// newest first.
    DateNewestFirst,
    DateOldestFirst,
    /// Largest first.
    SizeLargestFirst,
    SizeSmallestFirst,
}

impl MessageOrder {
    /// Every order, for lists and tests.
    pub const ALL: [MessageOrder; 6] = [
        MessageOrder::ArrivalNewestFirst,
        MessageOrder::ArrivalOldestFirst,
        MessageOrder::DateNewestFirst,
        MessageOrder::DateOldestFirst,
        MessageOrder::SizeLargestFirst,
        MessageOrder::SizeSmallestFirst,
    ];
}

/// The mail store, as every backend provides it. Every call names the account first.
#[async_trait]
pub trait MailStore: Send + Sync + std::fmt::Debug {
    /// Makes sure the account exists here with its default mailboxes, and sets its quota.
    /// Idempotent: safe to call again after a crash between the directory and this.
    async fn account_ensure(&self, account: AccountId, quota_bytes_max: u64) -> StoreResult<()>;
    async fn account_usage(&self, account: AccountId) -> StoreResult<Usage>;
    /// Deletes every mailbox and message of the account at once (not kept for retention).
    async fn account_delete(&self, account: AccountId) -> StoreResult<()>;

    /// The account's mailboxes that are not deleted, by name.
    async fn mailbox_list(&self, account: AccountId) -> StoreResult<Vec<Mailbox>>;
    async fn mailbox_get(&self, account: AccountId, id: MailboxId) -> StoreResult<Mailbox>;
    async fn mailbox_find(&self, account: AccountId, name: &str) -> StoreResult<Option<Mailbox>>;
    async fn mailbox_counts(&self, account: AccountId, id: MailboxId)
    -> StoreResult<MailboxCounts>;
    async fn mailbox_create(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> StoreResult<Mailbox>;
    /// Renames a mailbox and its children (RFC 9051 §6.3.6). Renaming INBOX is refused here;
    /// IMAP's special INBOX rename moves messages instead.
    async fn mailbox_rename(
        &self,
        account: AccountId,
        id: MailboxId,
        name: &str,
    ) -> StoreResult<()>;
    async fn mailbox_set_subscribed(
        &self,
        account: AccountId,
        id: MailboxId,
        subscribed: bool,
    ) -> StoreResult<()>;
    /// Deletes a mailbox, keeping it and its messages restorable. INBOX cannot be deleted.
    async fn mailbox_delete(&self, account: AccountId, id: MailboxId) -> StoreResult<()>;
    async fn mailbox_list_deleted(&self, account: AccountId) -> StoreResult<Vec<Mailbox>>;
    /// Brings a deleted mailbox back with its messages, under its old name when that is free
    /// and under "NAME (restored)" otherwise, with a new UIDVALIDITY.
    async fn mailbox_restore(&self, account: AccountId, id: MailboxId) -> StoreResult<Mailbox>;

    /// Appends messages atomically: all or none, each checked against the quota.
    async fn messages_append(
        &self,
        account: AccountId,
        messages: &[NewMessage],
    ) -> StoreResult<Vec<Appended>>;
    /// Appends messages for several accounts of this store atomically: all or none. A
    /// delivery to many recipients uses it so a failure never leaves some of them served.
    async fn messages_append_for_accounts(
        &self,
        batches: &[(AccountId, &[NewMessage])],
    ) -> StoreResult<Vec<Appended>>;
    /// Like `messages_append_for_accounts`, but at most once per account and `delivery_key`:
    /// the key is recorded for each account in the same transaction as its messages, and an
    /// account that has it already is skipped (and listed in the result). A retried delivery
    /// (the inbound spool after a crash between commit and cleanup) so stores nothing twice.
    async fn messages_append_once(
        &self,
        delivery_key: &str,
        batches: &[(AccountId, &[NewMessage])],
    ) -> StoreResult<AppendedOnce>;
    /// Forgets the delivery keys recorded before `cutoff_unix`; returns how many.
    async fn delivery_keys_purge(&self, cutoff_unix: i64) -> StoreResult<u64>;
    /// The live messages of a mailbox in UID order.
    async fn message_list(
        &self,
        account: AccountId,
        mailbox: MailboxId,
    ) -> StoreResult<Vec<MessageRecord>>;
    async fn message_get(&self, account: AccountId, id: MessageId) -> StoreResult<MessageRecord>;
    /// One page of the mailbox's conversations: the one with the newest arrival first.
    async fn thread_page(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        offset: u64,
        limit: u32,
    ) -> StoreResult<Vec<ThreadEntry>>;
    /// How many conversations the mailbox's live messages make.
    async fn thread_count(&self, account: AccountId, mailbox: MailboxId) -> StoreResult<u64>;
    /// The conversation's live messages in all of the account's mailboxes, oldest first,
    /// at most `limit`.
    async fn thread_messages(
        &self,
        account: AccountId,
        thread: ThreadId,
        limit: u32,
    ) -> StoreResult<Vec<MessageRecord>>;
    /// Gives up to `limit` messages stored before conversations were kept their thread,
    /// oldest first; returns how many, 0 when none is left. Until then each such message
    /// is a conversation of its own.
    async fn threads_backfill(&self, limit: u32) -> StoreResult<u64>;
    /// One page of a mailbox's live messages, in `order`: at most `limit` of them, after
    /// skipping `offset`. A web page of a 50,000-message folder reads 50 records, not all.
    async fn message_page(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        order: MessageOrder,
        offset: u64,
        limit: u32,
    ) -> StoreResult<Vec<MessageRecord>>;
    /// The live message of a mailbox with `uid`, if there is one.
    async fn message_by_uid(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uid: Uid,
    ) -> StoreResult<Option<MessageRecord>>;
    async fn message_summary(
        &self,
        account: AccountId,
        id: MessageId,
    ) -> StoreResult<Arc<MessageSummary>>;
    /// The summaries of several messages of the account (expunged ones too), in the order
    /// of `ids`; a message that does not exist is left out. One read for many messages, so a
    /// SEARCH, SORT or THREAD over a mailbox does not make one round trip per message.
    async fn message_summaries(
        &self,
        account: AccountId,
        ids: &[MessageId],
    ) -> StoreResult<Vec<(MessageId, Arc<MessageSummary>)>>;
    /// Counts live messages of the mailbox whose blob is `blob_id` (import uses it to resume).
    async fn message_count_by_blob(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        blob_id: &BlobId,
    ) -> StoreResult<u64>;
    /// Changes flags; with `unchanged_since` (CONDSTORE), messages changed after it are left
    /// alone and not returned. Returns the records that changed.
    async fn messages_set_flags(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
        change: &FlagChange,
        unchanged_since: Option<ModSeq>,
    ) -> StoreResult<Vec<MessageRecord>>;
    /// Expunges messages, keeping them restorable. Returns the UIDs expunged.
    async fn messages_expunge(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> StoreResult<Vec<Uid>>;
    /// The expunged messages of a mailbox still within retention.
    async fn message_list_expunged(
        &self,
        account: AccountId,
        mailbox: MailboxId,
    ) -> StoreResult<Vec<MessageRecord>>;
    /// Brings expunged messages back into their mailbox under new UIDs.
    async fn messages_restore(
        &self,
        account: AccountId,
        ids: &[MessageId],
    ) -> StoreResult<Vec<Appended>>;

    /// The account's change log after `modseq`, oldest first: at most `limit` entries, except
    /// that the entries of one MODSEQ are never split. One write (an expunge of many
    /// messages, a batch of appends) logs all its entries under one MODSEQ, and a reader
    /// goes on from the last MODSEQ it was given; a batch that ended inside a MODSEQ would
    /// make it skip the rest of that write. So the last MODSEQ returned comes whole, even
    /// when that passes `limit`.
    async fn changes_since(
        &self,
        account: AccountId,
        modseq: ModSeq,
        limit: u32,
    ) -> StoreResult<Vec<Change>>;
    async fn highest_modseq(&self, account: AccountId) -> StoreResult<ModSeq>;
    /// The UIDs expunged from a mailbox at a MODSEQ above `modseq`, ascending, from the
    /// change log (which keeps them after the messages are purged), for QRESYNC's VANISHED
    /// (RFC 7162 §3.2.5, §3.2.6).
    async fn expunged_uids_since(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        modseq: ModSeq,
    ) -> StoreResult<Vec<Uid>>;

    /// Removes for good what was expunged or deleted before `cutoff_unix`.
    async fn retention_purge(&self, cutoff_unix: i64) -> StoreResult<PurgeReport>;
    /// Every blob any message refers to, live or retained.
    async fn blob_references(&self) -> StoreResult<std::collections::HashSet<BlobId>>;
}
