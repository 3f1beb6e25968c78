//! The vacation auto-responder: after a local delivery committed, answers each INBOX copy
//! whose account has a vacation reply on, at most once per sender per
//! `VACATION_REPLY_PERIOD_SECONDS` (RFC 3834 §2, RFC 5230 §4.6).
//!
//! The rules of whether to answer and what the reply says are `tme_message::autoreply`'s;
//! the record of whom it answered is the directory's (`Directory::vacation_reply_claim`).
//! This module does the I/O between: reading the account and its settings, claiming the
//! reply, and sending it through the submission pipeline (`Submitter::submit`) with the
//! null envelope sender (RFC 3834 §3.3), which signs it, stores a local recipient's copy
//! directly and queues the rest.
//!
//! It must never fail or delay a delivery: callers hand it what they committed and go on;
//! the work runs in a spawned task, and a failure is a warning in the log (without any of
//! the message's content).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tme_core::EmailAddress;
use tme_store::directory::address_names_account;
use tme_store::{AccountId, AccountState, MailboxId, Notify, StoreError};

use crate::runner::{Clock, SystemClock};
use crate::submit::{Outgoing, OutgoingRecipient, Submitter};

/// A sender gets at most one auto-reply from an account within this period (RFC 5230
/// §4.6's default of 7 days).
pub const VACATION_REPLY_PERIOD_SECONDS: i64 = 7 * 86_400;
/// The mailbox whose deliveries are answered.
const INBOX: &str = "INBOX";

/// One committed copy of a delivered message.
#[derive(Debug, Clone)]
pub struct DeliveredCopy {
    pub account: AccountId,
    pub mailbox: MailboxId,
    /// The copy as stored, trace fields included.
    pub message: Arc<[u8]>,
}

impl DeliveredCopy {
    /// The copies of one delivery as the delivery paths keep them (account, mailbox, the
    /// stored bytes).
    pub fn of_copies(copies: &[(AccountId, MailboxId, Vec<u8>)]) -> Vec<DeliveredCopy> {
        copies
            .iter()
            .map(|(account, mailbox, raw)| DeliveredCopy {
                account: *account,
                mailbox: *mailbox,
                message: raw.as_slice().into(),
            })
            .collect()
    }
}

/// Answers deliveries for the accounts on vacation. Cheap to clone: one per node, shared by
/// the MX, the spool worker and the submission pipeline.
#[derive(Debug, Clone)]
pub struct AutoResponder {
    submitter: Submitter,
}

/// What became of one copy (for the log and the tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// The reply was submitted.
    Replied,
    /// The account has no vacation reply on now, or the copy is not in its INBOX.
    NotOnVacation,
    /// The rules say no (`tme_message::NoAutoReply`).
    NotAnswered(tme_message::NoAutoReply),
    /// This sender got a reply within the period.
    AnsweredLately,
}

/// Why a reply could not be sent.
#[derive(Debug, thiserror::Error)]
enum ResponseError {
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    #[error("the reply was not submitted: {0:?}")]
    Submit(crate::submit::SubmitRefusal),
    #[error("the sender cannot be routed: {0:?}")]
    Route(crate::submit::RouteRefusal),
    #[error("the sender is not a valid address")]
    Sender,
}

impl AutoResponder {
    pub fn new(submitter: Submitter) -> AutoResponder {
        AutoResponder { submitter }
    }

    /// Answers `copies` (committed, sent by `envelope_sender`, empty for `<>`) in a task of
    /// its own, and returns at once.
    pub fn delivered(&self, envelope_sender: &str, copies: Vec<DeliveredCopy>) {
        // RFC 3834 §2: the null sender is never answered; nothing to look up.
        if envelope_sender.is_empty() || copies.is_empty() {
            return;
        }
        let responder = self.clone();
        let sender = envelope_sender.to_owned();
        // Boxed: the reply goes through `Submitter::submit`, which may call back here for
        // its local copy (that one is from `<>`, so it stops at once).
        let task: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
            for copy in copies {
                let account = copy.account;
                if let Err(error) = responder.respond(&sender, &copy).await {
                    tracing::warn!(%error, account, "vacation auto-reply failed");
                }
            }
        });
        tokio::spawn(task);
    }

    /// Answers one copy now, when the account is on vacation and the rules allow.
    async fn respond(
        &self,
        envelope_sender: &str,
        copy: &DeliveredCopy,
    ) -> Result<Response, ResponseError> {
        let store = self.submitter.store();
        let now_unix = SystemClock.now_unix();
        let vacation = store.directory.account_vacation_get(copy.account).await?;
        if !vacation.active_at(now_unix) {
            return Ok(Response::NotOnVacation);
        }
        let Some(account) = store.directory.account_get_by_id(copy.account).await? else {
            return Ok(Response::NotOnVacation);
        };
        if account.state != AccountState::Active {
            return Ok(Response::NotOnVacation);
        }
        let inbox = store.mail.mailbox_find(copy.account, INBOX).await?;
        if inbox.is_none_or(|inbox| inbox.id != copy.mailbox) {
            return Ok(Response::NotOnVacation);
        }
        // The rules first with the account's own address alone: what they refuse for another
        // reason (bulk, lists, robots, automatic mail) costs no directory read. Only mail
        // they would answer, or that does not name the own address, has its recipients and
        // sender looked up for aliases of the account.
        let decide = |own_addresses: &[String]| {
            tme_message::auto_reply_decision(
                &copy.message,
                &tme_message::AutoReplyContext {
                    envelope_sender,
                    own_addresses,
                },
            )
        };
        match decide(&[account.address.to_string()]) {
            Ok(()) | Err(tme_message::NoAutoReply::NotAddressed) => {}
            Err(reason) => return Ok(Response::NotAnswered(reason)),
        }
        let own_addresses = self
            .own_addresses(&account, envelope_sender, &copy.message)
            .await?;
        if let Err(reason) = decide(&own_addresses) {
            return Ok(Response::NotAnswered(reason));
        }
        let recipient = EmailAddress::parse(envelope_sender).map_err(|_| ResponseError::Sender)?;
        let route = self
            .submitter
            .route(&recipient, None)
            .await
            .map_err(ResponseError::Route)?;
        if !store
            .directory
            .vacation_reply_claim(
                copy.account,
                envelope_sender,
                now_unix,
                VACATION_REPLY_PERIOD_SECONDS,
            )
            .await?
        {
            return Ok(Response::AnsweredLately);
        }
        let message_id = format!(
            "{:016x}.{now_unix}@{}",
            rand::random::<u64>(),
            self.submitter.hostname()
        );
        let reply = tme_message::build_auto_reply(
            &copy.message,
            &tme_message::AutoReply {
                from_address: &account.address.to_string(),
                from_name: account.display_name.as_deref(),
                to: envelope_sender,
                subject: &vacation.subject,
                body: &vacation.body,
                date_unix: now_unix,
                message_id: &message_id,
            },
        );
        let date = crate::dsn::date(now_unix);
        let outgoing = Outgoing {
            account: copy.account,
            // RFC 3834 §3.3: auto-replies go out from the null sender, so nothing answers
            // them in turn.
            envelope_sender: "",
            recipients: vec![OutgoingRecipient {
                address: recipient,
                route,
                notify: Notify::default(),
                original_recipient: None,
            }],
            received_field: b"",
            message: &reply,
            envelope_id: None,
            dsn_return: None,
            requiretls: false,
            smtputf8: !envelope_sender.is_ascii(),
            body_8bit: false,
            now_unix,
            date: &date,
        };
        self.submitter
            .submit(&outgoing)
            .await
            .map_err(ResponseError::Submit)?;
        tracing::info!(account = copy.account, "vacation auto-reply sent");
        Ok(Response::Replied)
    }

    /// The account's addresses among those the decision looks at: its own, then each
    /// recipient of the message and the envelope sender that names it (an alias or a
    /// plus-address of it; `address_names_account`), so mail to an alias is answered and
    /// mail from one is not.
    async fn own_addresses(
        &self,
        account: &tme_store::Account,
        envelope_sender: &str,
        message: &[u8],
    ) -> Result<Vec<String>, StoreError> {
        let own = account.address.to_string();
        let mut own_addresses = vec![own.clone()];
        let candidates = tme_message::auto_reply_addressees(message)
            .into_iter()
            .chain([envelope_sender.to_owned()]);
        for candidate in candidates {
            if candidate.eq_ignore_ascii_case(&own) {
                continue;
            }
            let Ok(address) = EmailAddress::parse(&candidate) else {
                continue;
            };
            if address_names_account(
                self.submitter.store().directory.as_ref(),
                &address,
                account.id,
                self.submitter.plus_separator(),
            )
            .await?
            {
                own_addresses.push(candidate);
            }
        }
        Ok(own_addresses)
    }
}
