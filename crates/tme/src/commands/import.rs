//! `tme import ADDRESS PATH [--mailbox NAME]`: move someone's old mail in.
//!
//! Messages are stored in batches, each batch durable and atomic, so a killed import leaves
//! whole batches and nothing half-written. Running the same import again resumes: a message
//! is skipped when its mailbox already holds as many copies of it (same bytes) as the source
//! has shown so far.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use indicatif::{ProgressBar, ProgressStyle};
use tme_core::EmailAddress;
use tme_store::{AccountId, BlobId, Delivery, Flags, MailboxId, Store, StoreError};

use crate::import::{self, SourceMessage};
use crate::units::format_bytes;

/// A batch is stored when it holds this many messages or bytes, whichever comes first.
const BATCH_MESSAGES_MAX: usize = 1024;
const BATCH_BYTES_MAX: usize = 32 * 1024 * 1024;

pub async fn import(store: &Store, address: &str, path: &Path, mailbox: &str) -> Result<()> {
    let address = EmailAddress::parse(address)
        .map_err(|error| anyhow!("{address:?} is not a valid address: {error}"))?;
    let account = store.account_open(&address).await.with_context(|| {
        format!("cannot import into {address}; create the account first with `tme account add`")
    })?;
    let mut source = import::open(path)?;
    let kind = source.kind();
    let (total, _) = source.progress();
    let progress = ProgressBar::new(total);
    progress.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {percent}% ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut importer = Importer {
        store,
        account: account.id,
        target: mailbox.to_owned(),
        mailboxes: HashMap::new(),
        seen: HashMap::new(),
        queued: HashMap::new(),
        batch: Vec::new(),
        batch_bytes: 0,
        imported_messages: 0,
        imported_bytes: 0,
        skipped_present: 0,
        skipped_unreadable: 0,
    };
    let started = Instant::now();
    while let Some(message) = source.next() {
        match message {
            Ok(message) => importer.add(message).await?,
            Err(error) => {
                // One unreadable message must not stop a migration; it is reported.
                importer.skipped_unreadable += 1;
                progress.suspend(|| eprintln!("warning: skipped: {error:#}"));
            }
        }
        let (_, done) = source.progress();
        progress.set_position(done);
        progress.set_message(format!("{} messages", importer.imported_messages));
    }
    importer.flush().await?;
    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "imported {} message(s) ({}) from {kind} {} into {address} in {seconds:.1}s ({:.0} messages/s); {} already present, {} unreadable",
        importer.imported_messages,
        format_bytes(importer.imported_bytes),
        path.display(),
        importer.imported_messages as f64 / seconds.max(0.001),
        importer.skipped_present,
        importer.skipped_unreadable,
    );
    Ok(())
}

struct Importer<'a> {
    store: &'a Store,
    account: AccountId,
    target: String,
    mailboxes: HashMap<Option<String>, MailboxId>,
    /// How many times each (mailbox, message bytes) has come from the source so far.
    seen: HashMap<(MailboxId, BlobId), u64>,
    /// How many copies of each (mailbox, message bytes) wait in the unstored batch.
    queued: HashMap<(MailboxId, BlobId), u64>,
    batch: Vec<(MailboxId, SourceMessage)>,
    batch_bytes: usize,
    imported_messages: u64,
    imported_bytes: u64,
    skipped_present: u64,
    skipped_unreadable: u64,
}

impl Importer<'_> {
    async fn mailbox_for(&mut self, folder: &Option<String>) -> Result<MailboxId> {
        if let Some(id) = self.mailboxes.get(folder) {
            return Ok(*id);
        }
        let name = match folder {
            None => self.target.clone(),
            Some(folder) if self.target.eq_ignore_ascii_case("INBOX") => folder.clone(),
            Some(folder) => format!("{}/{folder}", self.target),
        };
        let mail = &self.store.mail;
        let mailbox = match mail.mailbox_find(self.account, &name).await? {
            Some(mailbox) => mailbox,
            None => match mail.mailbox_create(self.account, &name, None).await {
                Ok(mailbox) => mailbox,
                Err(StoreError::AlreadyExists { .. }) => mail
                    .mailbox_find(self.account, &name)
                    .await?
                    .ok_or_else(|| anyhow!("mailbox {name} vanished while importing"))?,
                Err(error) => {
                    return Err(error).with_context(|| format!("cannot create mailbox {name}"));
                }
            },
        };
        self.mailboxes.insert(folder.clone(), mailbox.id);
        Ok(mailbox.id)
    }

    async fn add(&mut self, message: SourceMessage) -> Result<()> {
        let mailbox = self.mailbox_for(&message.folder).await?;
        let blob_id = BlobId::of(&message.raw);
        let occurrence = {
            let count = self.seen.entry((mailbox, blob_id)).or_insert(0);
            *count += 1;
            *count
        };
        let present = self
            .store
            .mail
            .message_count_by_blob(self.account, mailbox, &blob_id)
            .await?;
        let queued = self.queued.entry((mailbox, blob_id)).or_insert(0);
        if present + *queued >= occurrence {
            self.skipped_present += 1;
            return Ok(());
        }
        *queued += 1;
        self.batch_bytes += message.raw.len();
        self.batch.push((mailbox, message));
        if self.batch.len() >= BATCH_MESSAGES_MAX || self.batch_bytes >= BATCH_BYTES_MAX {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let flags: Vec<Flags> = self
            .batch
            .iter()
            .map(|(_, message)| Flags::parse(message.flags.iter().copied()))
            .collect::<Result<_, _>>()?;
        let deliveries: Vec<Delivery<'_>> = self
            .batch
            .iter()
            .zip(&flags)
            .map(|((mailbox, message), flags)| Delivery {
                account: self.account,
                mailbox: *mailbox,
                raw: &message.raw,
                internal_date_unix: message.internal_date_unix,
                flags,
            })
            .collect();
        self.store.deliver(&deliveries).await.with_context(|| {
            format!(
                "cannot store the batch starting at {}; messages before it are imported, run the same import again to resume",
                self.batch[0].1.origin
            )
        })?;
        self.imported_messages += self.batch.len() as u64;
        self.imported_bytes += self.batch_bytes as u64;
        self.batch.clear();
        self.queued.clear();
        self.batch_bytes = 0;
        Ok(())
    }
}
