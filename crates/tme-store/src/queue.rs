//! The outbound queue's records: messages waiting to leave, and each recipient's state.
//!
//! A queued message is its raw bytes (a blob, written before the record refers to it), the
//! envelope it was accepted with (RFC 5321 return path, RFC 3461 DSN parameters, RFC 8689
//! REQUIRETLS) and one row per recipient. The queue runner claims due messages under a lease
//! (so that several nodes can work one queue and a crashed node's claims expire), records
//! each attempt's outcome per recipient, and removes the message once every recipient is
//! final. What this module must not do: speak SMTP or decide the retry schedule; that is
//! `tme-queue`'s.

use std::collections::HashSet;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::blob::BlobId;
use crate::directory::AccountId;
use crate::error::{StoreError, StoreResult};

/// A queued message's id.
pub type QueueId = i64;

/// The longest reply text kept per recipient (the remote server's words, for the DSN).
pub const REPLY_OCTETS_MAX: usize = 1000;

/// What the sender asked to get back in a DSN (RFC 3461 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DsnReturn {
    Full,
    Headers,
}

/// When the sender asked to be told about a recipient (RFC 3461 §4.1). None of them set
/// means the default: failures and delays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notify {
    pub never: bool,
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl Notify {
    fn to_bits(self) -> i64 {
        i64::from(self.never)
            | i64::from(self.success) << 1
            | i64::from(self.failure) << 2
            | i64::from(self.delay) << 3
    }

    fn from_bits(bits: i64) -> Notify {
        Notify {
            never: bits & 1 != 0,
            success: bits & 2 != 0,
            failure: bits & 4 != 0,
            delay: bits & 8 != 0,
        }
    }

    /// Whether the sender wants a DSN on failure: asked for, or nothing asked at all.
    pub fn on_failure(self) -> bool {
        !self.never && (self.failure || !(self.success || self.delay))
    }

    /// Whether the sender wants a DSN when delivery is delayed.
    pub fn on_delay(self) -> bool {
        !self.never && (self.delay || !(self.success || self.failure))
    }

    pub fn on_success(self) -> bool {
        !self.never && self.success
    }
}

/// Where a recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecipientState {
    /// Not delivered yet: tried again at the message's next attempt.
    Pending,
    /// The receiving server took it (2xx after the data).
    Delivered,
    /// It will never be delivered (5xx, or the message expired); the sender is told.
    Failed,
}

impl RecipientState {
    fn code(self) -> i64 {
        match self {
            RecipientState::Pending => 0,
            RecipientState::Delivered => 1,
            RecipientState::Failed => 2,
        }
    }

    fn from_code(code: i64) -> RecipientState {
        match code {
            1 => RecipientState::Delivered,
            2 => RecipientState::Failed,
            _ => RecipientState::Pending,
        }
    }

    pub fn is_final(self) -> bool {
        self != RecipientState::Pending
    }
}

/// One recipient of a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedRecipient {
    /// Its place in the envelope, from 0.
    pub position: u32,
    pub address: String,
    /// The domain part, lower case, in ASCII (IDNA): what the runner groups by.
    pub domain: String,
    /// RFC 3461 ORCPT, as given (`rfc822;user@example.com`).
    pub original_recipient: Option<String>,
    pub notify: Notify,
    pub state: RecipientState,
    pub attempts: u32,
    /// The last reply or error for this recipient, for `tme queue show` and the DSN.
    pub last_reply: Option<String>,
    /// The host that gave the last reply.
    pub remote_host: Option<String>,
    pub last_attempt_unix: Option<i64>,
}

/// A message in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedMessage {
    pub id: QueueId,
    pub blob_id: BlobId,
    pub size_bytes: u64,
    /// The envelope sender; empty for the null sender (DSNs themselves).
    pub return_path: String,
    /// The local account that sent it: bounces go to its Inbox.
    pub sender_account: Option<AccountId>,
    pub envelope_id: Option<String>,
    pub dsn_return: Option<DsnReturn>,
    pub requiretls: bool,
    pub smtputf8: bool,
    pub body_8bit: bool,
    pub created_unix: i64,
    /// Past this, pending recipients fail (the queue lifetime).
    pub expires_unix: i64,
    pub next_attempt_unix: i64,
    pub attempts: u32,
    pub held: bool,
    /// Whether the sender was told of the delay already (once per message).
    pub delay_notified: bool,
    pub recipients: Vec<QueuedRecipient>,
}

impl QueuedMessage {
    pub fn pending_recipients(&self) -> impl Iterator<Item = &QueuedRecipient> {
        self.recipients
            .iter()
            .filter(|recipient| recipient.state == RecipientState::Pending)
    }
}

/// A recipient of a message to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecipient {
    pub address: String,
    pub domain: String,
    pub original_recipient: Option<String>,
    pub notify: Notify,
}

/// A message to queue; its blob must be durable already (see `Store::enqueue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewQueued {
    pub blob_id: BlobId,
    pub size_bytes: u64,
    pub return_path: String,
    pub sender_account: Option<AccountId>,
    pub envelope_id: Option<String>,
    pub dsn_return: Option<DsnReturn>,
    pub requiretls: bool,
    pub smtputf8: bool,
    pub body_8bit: bool,
    pub created_unix: i64,
    pub expires_unix: i64,
    pub recipients: Vec<NewRecipient>,
}

/// The outcome of one attempt for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientOutcome {
    pub position: u32,
    pub state: RecipientState,
    pub reply: String,
    pub remote_host: Option<String>,
}

/// What one attempt at a message did, recorded as one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub attempted_unix: i64,
    pub outcomes: Vec<RecipientOutcome>,
    /// When to try the still-pending recipients again.
    pub next_attempt_unix: i64,
    /// Set when this attempt told the sender of the delay.
    pub delay_notified: bool,
}

/// A receiving domain's MTA-STS policy as fetched (RFC 8461 §5.1), kept so that a restarted
/// node still honours it while an attacker hides the TXT record or the policy host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    /// Lower-case, without the trailing dot.
    pub domain: String,
    /// The `id` of the TXT record the policy came with.
    pub policy_id: String,
    /// The policy file as fetched (at most 64 KiB).
    pub text: String,
    pub fetched_unix: i64,
    /// `fetched_unix` plus the policy's `max_age`: not used after this.
    pub expires_unix: i64,
}

/// The largest policy text kept (RFC 8461 §3.3's 64 KiB).
pub const STORED_POLICY_BYTES_MAX: usize = 64 * 1024;

/// The queue's size, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub messages: u64,
    pub oldest_created_unix: Option<i64>,
}

/// The outbound queue, as every backend provides it.
#[async_trait]
pub trait QueueStore: Send + Sync + std::fmt::Debug {
    /// Adds a message; durable when this returns.
    async fn enqueue(&self, message: &NewQueued) -> StoreResult<QueueId>;
    /// Claims up to `limit` messages that are due (not held, next attempt reached, no live
    /// lease of another owner), leasing them to `owner` until `now_unix + lease_seconds`.
    /// An owner is one node: after a restart it takes back its own leases at once.
    async fn claim_due(
        &self,
        now_unix: i64,
        owner: &str,
        lease_seconds: i64,
        limit: usize,
    ) -> StoreResult<Vec<QueuedMessage>>;
    /// Records an attempt by the lease's `owner` and releases the lease; when no recipient
    /// is left pending, the message leaves the queue in the same transaction (its reports
    /// must have been stored before). Refused (`NotFound`) when the message is gone or
    /// leased to another owner.
    async fn record_attempt(
        &self,
        id: QueueId,
        owner: &str,
        attempt: &AttemptRecord,
    ) -> StoreResult<()>;
    /// Records, during an attempt, that some recipients were delivered (only `Delivered`
    /// outcomes are taken), so that a crash before the attempt ends does not send them again.
    /// Refused (`NotFound`) when the message is gone or leased to another owner.
    async fn record_delivered(
        &self,
        id: QueueId,
        owner: &str,
        attempted_unix: i64,
        outcomes: &[RecipientOutcome],
    ) -> StoreResult<()>;
    /// The earliest next attempt of a message that is not held, if any: when to wake.
    async fn next_due_unix(&self) -> StoreResult<Option<i64>>;
    async fn list(&self) -> StoreResult<Vec<QueuedMessage>>;
    async fn get(&self, id: QueueId) -> StoreResult<QueuedMessage>;
    /// Holds (no attempts) or releases a message.
    async fn set_held(&self, id: QueueId, held: bool) -> StoreResult<()>;
    /// Makes a message due at `now_unix` (and releases any lease on it).
    async fn retry_now(&self, id: QueueId, now_unix: i64) -> StoreResult<()>;
    /// Removes a message (every recipient final, or an operator's order).
    async fn remove(&self, id: QueueId) -> StoreResult<()>;
    /// How many messages wait, and when the oldest was queued (for metrics).
    async fn stats(&self) -> StoreResult<QueueStats>;
    /// The blobs queued messages refer to, for the collector.
    async fn blob_references(&self) -> StoreResult<HashSet<BlobId>>;
    /// The stored MTA-STS policy of `domain` (lower-case), if one has not expired at
    /// `now_unix`.
    async fn mta_sts_policy(
        &self,
        domain: &str,
        now_unix: i64,
    ) -> StoreResult<Option<StoredPolicy>>;
    /// Stores (or replaces) a domain's policy; expired ones are dropped on the way.
    async fn mta_sts_policy_put(&self, policy: &StoredPolicy) -> StoreResult<()>;
}

/// Checks the envelope of a message to queue: at least one recipient, each with a domain.
pub fn validate_new_queued(message: &NewQueued) -> StoreResult<()> {
    if message.recipients.is_empty() {
        return Err(StoreError::Refused(
            "a queued message needs a recipient".to_owned(),
        ));
    }
    if let Some(recipient) = message
        .recipients
        .iter()
        .find(|recipient| recipient.domain.is_empty() || recipient.address.is_empty())
    {
        return Err(StoreError::Refused(format!(
            "queued recipient {:?} has no domain",
            recipient.address
        )));
    }
    Ok(())
}

pub(crate) fn notify_bits(notify: Notify) -> i64 {
    notify.to_bits()
}

pub(crate) fn notify_from_bits(bits: i64) -> Notify {
    Notify::from_bits(bits)
}

pub(crate) fn state_code(state: RecipientState) -> i64 {
    state.code()
}

pub(crate) fn state_from_code(code: i64) -> RecipientState {
    RecipientState::from_code(code)
}

/// Cuts a reply to `REPLY_OCTETS_MAX` on a character boundary.
pub fn bounded_reply(reply: &str) -> String {
    if reply.len() <= REPLY_OCTETS_MAX {
        return reply.to_owned();
    }
    let mut end = REPLY_OCTETS_MAX;
    while !reply.is_char_boundary(end) {
        end -= 1;
    }
    reply[..end].to_owned()
}
