//! The way our own users' mail leaves: the submission pipeline shared by the submission
//! listeners (`tme-smtp`) and, later, webmail.
//!
//! It owns the rules of sending (RFC 6409): which addresses a user may send as (the
//! directory's own delivery test, `address_owned_by`), the fix-ups a submission server makes
//! (`tme_message::prepare_submission`: `Date`, `Message-ID`, a missing `From`, `Bcc`
//! removed), DKIM signing with the author domain's keys (`sign`), and where each copy goes:
//! straight into local mailboxes, or into the outbound queue for everyone else, after which
//! the runner is woken.
//!
//! Order matters for "never lost, at most one duplicate": the local copies commit first, then
//! the message is queued; only when both are durable is the submission acknowledged. A
//! failure after the local commit makes the client retry, which may deliver the local copies
//! twice but never sends a remote copy the client was told failed.
//!
//! It must not speak SMTP (the caller maps `SubmitRefusal` to its replies) and must not
//! deliver to remote hosts itself (the runner does).

use std::collections::HashSet;

use tme_core::{Domain, EmailAddress};
use tme_store::directory::{address_owned_by, resolve_recipient};
use tme_store::{
    AccountId, AccountState, Delivery, DsnReturn, Flags, MailboxId, NewQueued, NewRecipient,
    Notify, QueueId, Resolution, Store, StoreError,
};

use crate::runner::Runner;
use crate::schedule::Schedule;
use crate::sign::SignerCache;
use crate::vacation::{AutoResponder, DeliveredCopy};

/// A local mailbox a copy goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTarget {
    pub account: AccountId,
    pub mailbox: MailboxId,
    /// The account's address.
    pub address: EmailAddress,
}

/// Where one recipient's copies go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    /// Local accounts and the mailbox (INBOX) of each.
    pub local: Vec<LocalTarget>,
    /// Addresses the queue delivers to: the recipient when its domain is not hosted here,
    /// or the external targets of a local alias.
    pub remote: Vec<EmailAddress>,
}

/// Why a recipient cannot be routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteRefusal {
    /// A hosted domain with nothing behind the address: the user's typo, permanent.
    UnknownAddress,
    /// Every local account it reaches is suspended.
    AccountSuspended,
    /// Every local account it reaches is over quota (a retry may work later).
    OverQuota,
    /// The directory could not be read: retry.
    TemporaryFailure,
}

/// Why the sender (envelope or author) may not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderRefusal {
    /// Not one of the account's addresses.
    NotOwned { address: String },
    /// The account may not send (an operator or the abuse control locked it).
    SendLocked,
    /// The directory could not be read: retry.
    TemporaryFailure,
}

/// Why a submitted message was not accepted. Nothing was stored or queued, except with
/// `TemporaryFailure`, where local copies may have been (the retry may duplicate them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitRefusal {
    Sender(SenderRefusal),
    /// The `From` field has no usable address and there is no envelope sender to make one.
    NoAuthor,
    /// A local recipient's account went over quota since its route was found.
    OverQuota,
    /// The store failed; a retry may work.
    TemporaryFailure,
}

/// One accepted recipient of a submission.
#[derive(Debug, Clone)]
pub struct OutgoingRecipient {
    /// The address as given (RCPT TO), for ORCPT and logs.
    pub address: EmailAddress,
    pub route: Route,
    pub notify: Notify,
    /// ORCPT as given (RFC 3461 §4.2).
    pub original_recipient: Option<String>,
}

/// A message a user submits.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub account: AccountId,
    /// MAIL FROM, empty for `<>` (an MDN, RFC 8098 §2.1).
    pub envelope_sender: &'a str,
    pub recipients: Vec<OutgoingRecipient>,
    /// The `Received` field of the submission hop, prepended as it is.
    pub received_field: &'a [u8],
    /// The message as the client sent it.
    pub message: &'a [u8],
    pub envelope_id: Option<String>,
    pub dsn_return: Option<DsnReturn>,
    pub requiretls: bool,
    pub smtputf8: bool,
    pub body_8bit: bool,
    /// The current time, for `Date` and the queue's clock.
    pub now_unix: i64,
    /// `now_unix` as an RFC 5322 date-time, for a missing `Date`.
    pub date: &'a str,
}

/// What happened to a submitted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The message's id in the queue, when some recipient is remote.
    pub queue_id: Option<QueueId>,
    pub local_copies: usize,
    pub remote_recipients: usize,
    /// Header fields the pipeline added (`Date`, `Message-ID`, `From`).
    pub fields_added: Vec<&'static str>,
    /// DKIM signatures added (0 when the author domain has no key).
    pub signatures: usize,
}

/// The submission pipeline of one node.
#[derive(Debug, Clone)]
pub struct Submitter {
    store: Store,
    runner: Runner,
    schedule: Schedule,
    hostname: String,
    plus_separator: char,
    signers: SignerCache,
}

impl Submitter {
    pub fn new(
        store: Store,
        runner: Runner,
        schedule: Schedule,
        hostname: String,
        plus_separator: char,
    ) -> Submitter {
        Submitter {
            store,
            runner,
            schedule,
            hostname,
            plus_separator,
            signers: SignerCache::default(),
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The node's host name (trace fields, message ids).
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    pub(crate) fn plus_separator(&self) -> char {
        self.plus_separator
    }

    /// Whether `account` may send with `address` as envelope sender or author. The null
    /// sender is allowed in the envelope (MDNs use it); the author check covers the header.
    pub async fn check_sender(
        &self,
        account: AccountId,
        address: &str,
    ) -> Result<(), SenderRefusal> {
        let directory = self.store.directory.as_ref();
        let record = directory
            .account_get_by_id(account)
            .await
            .map_err(|error| temporary_sender(&error))?
            .ok_or(SenderRefusal::NotOwned {
                address: address.to_owned(),
            })?;
        if record.state != AccountState::Active {
            return Err(SenderRefusal::SendLocked);
        }
        if address.is_empty() {
            return Ok(());
        }
        self.check_address(account, address).await
    }

    async fn check_address(&self, account: AccountId, address: &str) -> Result<(), SenderRefusal> {
        let not_owned = || SenderRefusal::NotOwned {
            address: address.to_owned(),
        };
        let parsed = EmailAddress::parse(address).map_err(|_| not_owned())?;
        let owned = address_owned_by(
            self.store.directory.as_ref(),
            &parsed,
            account,
            self.plus_separator,
        )
        .await
        .map_err(|error| temporary_sender(&error))?;
        if owned { Ok(()) } else { Err(not_owned()) }
    }

    /// Where mail for `address` goes, for a message of `size_declared_octets`.
    pub async fn route(
        &self,
        address: &EmailAddress,
        size_declared_octets: Option<u64>,
    ) -> Result<Route, RouteRefusal> {
        let resolution =
            resolve_recipient(self.store.directory.as_ref(), address, self.plus_separator)
                .await
                .map_err(|error| {
                    tracing::warn!(%error, "directory lookup failed");
                    RouteRefusal::TemporaryFailure
                })?;
        let (accounts, remote) = match resolution {
            Resolution::DomainNotHosted => {
                return Ok(Route {
                    local: Vec::new(),
                    remote: vec![address.clone()],
                });
            }
            Resolution::UnknownAddress => return Err(RouteRefusal::UnknownAddress),
            Resolution::Deliver { accounts, external } => (accounts, external),
        };
        let mut local = Vec::new();
        let (mut suspended, mut over_quota) = (0usize, 0usize);
        for account in accounts {
            if account.state == AccountState::Suspended {
                suspended += 1;
                continue;
            }
            match self
                .store
                .inbox_for_delivery(&account, size_declared_octets)
                .await
            {
                Ok(Some(inbox)) => local.push(LocalTarget {
                    account: account.id,
                    mailbox: inbox,
                    address: account.address,
                }),
                Ok(None) => over_quota += 1,
                Err(error) => {
                    tracing::warn!(%error, account = %account.address, "cannot read the account's mail store");
                    return Err(RouteRefusal::TemporaryFailure);
                }
            }
        }
        if local.is_empty() && remote.is_empty() {
            return Err(if over_quota > 0 {
                RouteRefusal::OverQuota
            } else if suspended > 0 {
                RouteRefusal::AccountSuspended
            } else {
                RouteRefusal::UnknownAddress
            });
        }
        Ok(Route { local, remote })
    }

    /// Checks, fixes up, signs and sends `outgoing`: local copies stored, the rest queued.
    pub async fn submit(&self, outgoing: &Outgoing<'_>) -> Result<Submitted, SubmitRefusal> {
        self.check_sender(outgoing.account, outgoing.envelope_sender)
            .await
            .map_err(SubmitRefusal::Sender)?;
        let message_id = format!(
            "<{:016x}.{}@{}>",
            rand::random::<u64>(),
            outgoing.now_unix,
            self.hostname
        );
        let prepared = tme_message::prepare_submission(
            outgoing.message,
            &tme_message::SubmissionContext {
                envelope_sender: outgoing.envelope_sender,
                date: outgoing.date,
                message_id: &message_id,
            },
        );
        if prepared.from_unusable || prepared.from_addresses.is_empty() {
            return Err(SubmitRefusal::NoAuthor);
        }
        for author in prepared
            .from_addresses
            .iter()
            .chain(&prepared.sender_addresses)
        {
            self.check_address(outgoing.account, author)
                .await
                .map_err(SubmitRefusal::Sender)?;
        }
        let mut message = outgoing.received_field.to_vec();
        message.extend_from_slice(&prepared.message);
        // RFC 6409 §8.5 lets the MSA sign; the author's domain signs (DMARC aligns on From).
        let signatures = self.signatures(&prepared.from_addresses, &message).await;
        let signature_count = count_fields(&signatures);
        let mut signed = signatures;
        signed.extend_from_slice(&message);

        let local_copies = self.store_local(outgoing, &signed).await?;
        let remote = remote_recipients(&outgoing.recipients);
        let remote_count = remote.len();
        let queue_id = if remote.is_empty() {
            None
        } else {
            let queued = NewQueued {
                // `Store::enqueue` writes the blob and sets both.
                blob_id: tme_store::BlobId::of(b""),
                size_bytes: 0,
                return_path: outgoing.envelope_sender.to_owned(),
                sender_account: Some(outgoing.account),
                envelope_id: outgoing.envelope_id.clone(),
                dsn_return: outgoing.dsn_return,
                requiretls: outgoing.requiretls,
                smtputf8: outgoing.smtputf8,
                body_8bit: outgoing.body_8bit,
                created_unix: outgoing.now_unix,
                expires_unix: outgoing
                    .now_unix
                    .saturating_add(self.schedule.lifetime_seconds),
                recipients: remote,
            };
            let id = self.store.enqueue(&signed, queued).await.map_err(|error| {
                tracing::warn!(%error, local_copies, "cannot queue a submitted message");
                SubmitRefusal::TemporaryFailure
            })?;
            self.runner.wake();
            Some(id)
        };
        Ok(Submitted {
            queue_id,
            local_copies,
            remote_recipients: remote_count,
            fields_added: prepared.fields_added,
            signatures: signature_count,
        })
    }

    /// The DKIM-Signature fields of the first author's domain, when it is hosted and has
    /// keys. A key that cannot be used is logged and the message goes out unsigned: a
    /// broken key must not stop a user's mail, and the operator sees the warning.
    async fn signatures(&self, authors: &[String], message: &[u8]) -> Vec<u8> {
        let Some(domain) = authors
            .first()
            .and_then(|author| author.rsplit_once('@'))
            .and_then(|(_, domain)| Domain::parse(domain).ok())
        else {
            return Vec::new();
        };
        let keys = match self.store.directory.dkim_key_list(Some(&domain)).await {
            Ok(keys) => keys,
            Err(error) => {
                tracing::warn!(%error, %domain, "cannot read DKIM keys; sending unsigned");
                return Vec::new();
            }
        };
        if keys.is_empty() {
            return Vec::new();
        }
        // Signing is CPU work: off the async workers, so that other sessions keep going.
        let signers = self.signers.clone();
        let message = message.to_vec();
        let signed =
            tokio::task::spawn_blocking(move || signers.signature_fields(&message, &keys)).await;
        match signed {
            Ok(Ok(fields)) => fields,
            Err(error) => {
                tracing::warn!(%error, %domain, "the DKIM signing task failed; sending unsigned");
                Vec::new()
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, %domain, "cannot DKIM-sign; sending unsigned");
                Vec::new()
            }
        }
    }

    /// Stores one copy per local account (an account reached twice gets one), each with
    /// its `Return-Path` and `Delivered-To`, in one transaction.
    async fn store_local(
        &self,
        outgoing: &Outgoing<'_>,
        signed: &[u8],
    ) -> Result<usize, SubmitRefusal> {
        let mut seen = HashSet::new();
        let mut copies = Vec::new();
        for recipient in &outgoing.recipients {
            for target in &recipient.route.local {
                if !seen.insert(target.account) {
                    continue;
                }
                let mut raw = tme_message::trace::delivery_fields(
                    outgoing.envelope_sender,
                    &recipient.address.to_string(),
                );
                raw.extend_from_slice(signed);
                copies.push((target.account, target.mailbox, raw));
            }
        }
        if copies.is_empty() {
            return Ok(0);
        }
        copies.sort_by_key(|(account, _, _)| *account);
        let flags = Flags::default();
        let deliveries: Vec<Delivery<'_>> = copies
            .iter()
            .map(|(account, mailbox, raw)| Delivery {
                account: *account,
                mailbox: *mailbox,
                raw,
                internal_date_unix: Some(outgoing.now_unix),
                flags: &flags,
            })
            .collect();
        match self.store.deliver(&deliveries).await {
            Ok(_) => {
                // Our own users write to each other: a colleague on vacation answers too.
                if !outgoing.envelope_sender.is_empty() {
                    AutoResponder::new(self.clone())
                        .delivered(outgoing.envelope_sender, DeliveredCopy::of_copies(&copies));
                }
                Ok(deliveries.len())
            }
            Err(StoreError::QuotaExceeded { .. }) => Err(SubmitRefusal::OverQuota),
            Err(error) => {
                tracing::warn!(%error, "cannot store the local copies of a submitted message");
                Err(SubmitRefusal::TemporaryFailure)
            }
        }
    }
}

/// The queue's recipients: every remote address once (compared canonically), with the
/// DSN parameters of the recipient that brought it.
fn remote_recipients(recipients: &[OutgoingRecipient]) -> Vec<NewRecipient> {
    let mut seen = HashSet::new();
    let mut remote = Vec::new();
    for recipient in recipients {
        for address in &recipient.route.remote {
            if !seen.insert(address.canonical()) {
                continue;
            }
            remote.push(NewRecipient {
                address: address.to_string(),
                domain: address.domain().to_string(),
                original_recipient: recipient.original_recipient.clone(),
                notify: recipient.notify,
            });
        }
    }
    remote
}

fn temporary_sender(error: &StoreError) -> SenderRefusal {
    tracing::warn!(%error, "directory lookup failed");
    SenderRefusal::TemporaryFailure
}

/// How many header fields `fields` holds (lines not starting with white space).
fn count_fields(fields: &[u8]) -> usize {
    fields
        .split(|octet| *octet == b'\n')
        .filter(|line| {
            line.first()
                .is_some_and(|first| !first.is_ascii_whitespace())
        })
        .count()
}
