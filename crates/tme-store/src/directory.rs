//! The directory: partners → domains → accounts and aliases, and how an address resolves.
//!
//! This module owns the directory's types and the `Directory` trait that every backend
//! implements. It knows nothing of mailboxes or messages: an account here is an identity with
//! credentials, a quota and a state; its mail lives in the `MailStore`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tme_core::{Domain, EmailAddress};

use crate::error::StoreResult;

/// An account's stable number; every mail table is keyed by it first.
pub type AccountId = i64;

/// How deep alias chains are followed before resolution gives up (a loop guard).
pub const ALIAS_CHAIN_DEPTH_MAX: usize = 8;
/// How many addresses one resolution may expand to.
pub const RESOLVED_TARGETS_MAX: usize = 1_000;

/// A white-label reseller and its brand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partner {
    pub name: String,
    pub branding: Branding,
    pub created_unix: i64,
}

/// What a partner's users see: the product's name, logo and colours.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branding {
    pub product_name: Option<String>,
    pub logo_url: Option<String>,
    pub colour_primary: Option<String>,
    pub colour_accent: Option<String>,
}

/// A hosted domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRecord {
    pub domain: Domain,
    pub partner: String,
    pub created_unix: i64,
}

/// Whether an account may log in and send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccountState {
    /// Receives, logs in and sends.
    Active,
    /// Receives and logs in, but may not send (abuse control, DESIGN §abuse).
    SendLocked,
    /// Neither logs in nor receives: mail to it is refused.
    Suspended,
}

impl AccountState {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountState::Active => "active",
            AccountState::SendLocked => "send-locked",
            AccountState::Suspended => "suspended",
        }
    }

    pub fn parse(text: &str) -> Option<AccountState> {
        match text {
            "active" => Some(AccountState::Active),
            "send-locked" => Some(AccountState::SendLocked),
            "suspended" => Some(AccountState::Suspended),
            _ => None,
        }
    }
}

/// An end user's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub address: EmailAddress,
    pub display_name: Option<String>,
    /// The argon2id PHC string; never shown.
    #[serde(skip_serializing)]
    pub password_hash: String,
    pub quota_bytes_max: u64,
    pub state: AccountState,
    /// The mail-store shard that holds this account's mail.
    pub shard: u32,
    pub created_unix: i64,
}

/// What `account_add` needs.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub address: EmailAddress,
    pub display_name: Option<String>,
    pub password_hash: String,
    pub quota_bytes_max: u64,
}

/// A password for one client, usable in place of the account's password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPassword {
    pub id: i64,
    pub account_id: AccountId,
    pub label: String,
    #[serde(skip_serializing)]
    pub password_hash: String,
    pub created_unix: i64,
    pub last_used_unix: Option<i64>,
}

/// The address an alias answers for: one address, or every address of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AliasSource {
    Address(EmailAddress),
    /// `@domain`: catch-all, used only when nothing else matches.
    CatchAll(Domain),
}

impl AliasSource {
    /// `user@domain` or `@domain`.
    pub fn parse(text: &str) -> Result<AliasSource, tme_core::AddressError> {
        match text.strip_prefix('@') {
            Some(domain) => Ok(AliasSource::CatchAll(Domain::parse(domain)?)),
            None => Ok(AliasSource::Address(EmailAddress::parse(text)?)),
        }
    }

    pub fn domain(&self) -> &Domain {
        match self {
            AliasSource::Address(address) => address.domain(),
            AliasSource::CatchAll(domain) => domain,
        }
    }

    /// The key the directory stores: the canonical address, or `@domain`.
    pub fn canonical(&self) -> String {
        match self {
            AliasSource::Address(address) => address.canonical(),
            AliasSource::CatchAll(domain) => format!("@{}", domain.as_str()),
        }
    }
}

impl std::fmt::Display for AliasSource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AliasSource::Address(address) => write!(formatter, "{address}"),
            AliasSource::CatchAll(domain) => write!(formatter, "@{domain}"),
        }
    }
}

/// One address forwarding to one or more others (local accounts or external addresses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    pub source: AliasSource,
    pub targets: Vec<EmailAddress>,
    pub created_unix: i64,
}

/// A login lock: repeated failed logins from one client address or for one account address
/// (`tme-auth`'s throttle) keep `key` from logging in until `locked_until_unix`. Kept in the
/// directory so operators see and lift locks with the CLI while the node runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginLock {
    /// `ip:ADDRESS` or `account:CANONICAL-ADDRESS`.
    pub key: String,
    /// Failed logins counted when the lock was set.
    pub failures: u32,
    pub locked_unix: i64,
    pub locked_until_unix: i64,
}

/// A webmail session: who is logged in under a session cookie, until when. The directory
/// keeps only a hash of the cookie's token (`token_hash`, 64 hex digits), so whoever reads
/// the directory cannot take over a session; sessions are keyed by account so an account's
/// can be listed and revoked (and go with the account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebSession {
    pub token_hash: String,
    pub account_id: AccountId,
    pub created_unix: i64,
    pub expires_unix: i64,
    /// The client address the session logged in from, as text, for the list of sessions.
    pub client_address: String,
    /// The browser's User-Agent at login, cut to `WEB_SESSION_USER_AGENT_CHARS_MAX`.
    pub user_agent: String,
    /// The app password the session logged in with (None: the account's password). The
    /// session goes when that app password is removed.
    pub app_password_id: Option<i64>,
}

/// The longest User-Agent a web session keeps, in characters.
pub const WEB_SESSION_USER_AGENT_CHARS_MAX: usize = 200;

/// The longest signature an account keeps, in characters.
pub const ACCOUNT_SIGNATURE_CHARS_MAX: usize = 4_000;

/// The longest vacation auto-reply subject an account keeps, in characters.
pub const VACATION_SUBJECT_CHARS_MAX: usize = 200;
/// The longest vacation auto-reply text an account keeps, in characters.
pub const VACATION_BODY_CHARS_MAX: usize = 5_000;

/// An account's vacation auto-reply (RFC 5230's semantics, set in the webmail): while it is
/// enabled and today (UTC) lies within its days, mail to the account's INBOX is answered,
/// at most once a period per sender (`Directory::vacation_reply_claim`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vacation {
    pub enabled: bool,
    /// The reply's subject; empty means "Auto: " and the original's (RFC 3834 §3.1.5).
    pub subject: String,
    /// The reply's plain text.
    pub body: String,
    /// The first day it answers, in days since 1970-01-01 (UTC); None: from now.
    pub first_day_epoch_days: Option<i64>,
    /// The last day it answers, in days since 1970-01-01 (UTC); None: until turned off.
    pub last_day_epoch_days: Option<i64>,
}

impl Vacation {
    /// Whether it answers mail arriving at `now_unix`: enabled, and the day within its days.
    pub fn active_at(&self, now_unix: i64) -> bool {
        let today = now_unix.div_euclid(86_400);
        self.enabled
            && self.first_day_epoch_days.is_none_or(|first| first <= today)
            && self.last_day_epoch_days.is_none_or(|last| today <= last)
    }
}

/// Where mail for an address goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Deliver to these: local accounts and external addresses (forwarding).
    Deliver {
        accounts: Vec<Account>,
        external: Vec<EmailAddress>,
    },
    /// The domain is hosted but nothing answers for this address.
    UnknownAddress,
    /// We do not host this domain.
    DomainNotHosted,
}

/// The directory, as every backend provides it. Names given to it are validated types; what
/// it returns was validated when stored.
#[async_trait]
pub trait Directory: Send + Sync + std::fmt::Debug {
    async fn partner_add(&self, name: &str, branding: Branding) -> StoreResult<Partner>;
    async fn partner_get(&self, name: &str) -> StoreResult<Option<Partner>>;
    async fn partner_list(&self) -> StoreResult<Vec<Partner>>;
    async fn partner_set_branding(&self, name: &str, branding: Branding) -> StoreResult<()>;
    /// Refused while the partner still has domains.
    async fn partner_remove(&self, name: &str) -> StoreResult<()>;

    async fn domain_add(&self, domain: &Domain, partner: &str) -> StoreResult<DomainRecord>;
    async fn domain_get(&self, domain: &Domain) -> StoreResult<Option<DomainRecord>>;
    async fn domain_list(&self, partner: Option<&str>) -> StoreResult<Vec<DomainRecord>>;
    /// Moves a domain to another partner.
    async fn domain_set_partner(&self, domain: &Domain, partner: &str) -> StoreResult<()>;
    /// Refused while the domain still has accounts or aliases.
    async fn domain_remove(&self, domain: &Domain) -> StoreResult<()>;

    /// Refused when the domain is not hosted or the address is taken by an account or alias.
    async fn account_add(&self, account: NewAccount) -> StoreResult<Account>;
    async fn account_get(&self, address: &EmailAddress) -> StoreResult<Option<Account>>;
    async fn account_get_by_id(&self, id: AccountId) -> StoreResult<Option<Account>>;
    async fn account_list(&self, domain: Option<&Domain>) -> StoreResult<Vec<Account>>;
    async fn account_set_password_hash(&self, id: AccountId, hash: &str) -> StoreResult<()>;
    async fn account_set_state(&self, id: AccountId, state: AccountState) -> StoreResult<()>;
    async fn account_set_quota(&self, id: AccountId, quota_bytes_max: u64) -> StoreResult<()>;
    async fn account_set_display_name(&self, id: AccountId, name: Option<&str>) -> StoreResult<()>;
    async fn account_remove(&self, id: AccountId) -> StoreResult<()>;
    /// The text the account's new mail ends with (the webmail's compose form puts it in),
    /// if one is set.
    async fn account_signature_get(&self, id: AccountId) -> StoreResult<Option<String>>;
    /// Sets the signature, or (`None`, or an empty text) removes it. A signature longer than
    /// `ACCOUNT_SIGNATURE_CHARS_MAX` is `Refused`; an unknown account is `NotFound`.
    async fn account_signature_set(
        &self,
        id: AccountId,
        signature: Option<&str>,
    ) -> StoreResult<()>;

    /// The account's vacation auto-reply; the default (disabled) when none was set.
    async fn account_vacation_get(&self, id: AccountId) -> StoreResult<Vacation>;
    /// Sets the vacation auto-reply, and forgets whom it answered (a new reply starts
    /// afresh, as RFC 5230 §4.2 allows). A subject or text past `VACATION_SUBJECT_CHARS_MAX`
    /// or `VACATION_BODY_CHARS_MAX`, or a last day before the first, is `Refused`; an
    /// unknown account is `NotFound`.
    async fn account_vacation_set(&self, id: AccountId, vacation: &Vacation) -> StoreResult<()>;
    /// Claims the auto-reply to `sender` (compared lower-cased) at `now_unix`, atomically:
    /// true when none was recorded for the account within the last `period_seconds` (the
    /// reply is recorded now and the caller sends it); false when one was (RFC 3834 §2,
    /// RFC 5230 §4.6: no second reply within the period). Older records are forgotten.
    async fn vacation_reply_claim(
        &self,
        account: AccountId,
        sender: &str,
        now_unix: i64,
        period_seconds: i64,
    ) -> StoreResult<bool>;

    async fn app_password_add(
        &self,
        account: AccountId,
        label: &str,
        hash: &str,
    ) -> StoreResult<AppPassword>;
    async fn app_password_list(&self, account: AccountId) -> StoreResult<Vec<AppPassword>>;
    async fn app_password_remove(&self, account: AccountId, id: i64) -> StoreResult<()>;

    /// Refused when the source's domain is not hosted or an account has that address.
    async fn alias_add(&self, source: &AliasSource, targets: &[EmailAddress])
    -> StoreResult<Alias>;
    async fn alias_get(&self, source: &AliasSource) -> StoreResult<Option<Alias>>;
    async fn alias_list(&self, domain: Option<&Domain>) -> StoreResult<Vec<Alias>>;
    async fn alias_set_targets(
        &self,
        source: &AliasSource,
        targets: &[EmailAddress],
    ) -> StoreResult<()>;
    async fn alias_remove(&self, source: &AliasSource) -> StoreResult<()>;

    /// Records (or replaces) a login lock.
    async fn login_lock_put(&self, lock: &LoginLock) -> StoreResult<()>;
    /// Every login lock recorded, expired or not, by key.
    async fn login_lock_list(&self) -> StoreResult<Vec<LoginLock>>;
    /// The lock on `key`, if one is recorded.
    async fn login_lock_get(&self, key: &str) -> StoreResult<Option<LoginLock>>;
    /// Lifts a lock; false when there was none. Also forgets expired locks.
    async fn login_lock_remove(&self, key: &str) -> StoreResult<bool>;

    /// Records a new web session (a session with the same `token_hash` is refused:
    /// `AlreadyExists`). Also forgets the sessions that have expired.
    async fn web_session_add(&self, session: &WebSession) -> StoreResult<()>;
    /// The session whose token hashes to `token_hash`, expired or not (the caller checks).
    async fn web_session_get(&self, token_hash: &str) -> StoreResult<Option<WebSession>>;
    /// The account's sessions, newest first.
    async fn web_session_list(&self, account: AccountId) -> StoreResult<Vec<WebSession>>;
    /// Ends one of the account's sessions; false when the account has no such session.
    async fn web_session_remove(&self, account: AccountId, token_hash: &str) -> StoreResult<bool>;

    /// A number that grows with every change to the directory that something may hold
    /// (partners, domains, accounts, aliases, DKIM keys, DNS records, and the removal of an
    /// app password), so a running node notices a change made by another process (`tme
    /// account add` beside `tme serve`). Web sessions, settings, vacation records and login
    /// locks do not count.
    async fn generation(&self) -> StoreResult<i64>;

    /// Stores `keys` for `domain` when it has no DKIM key yet, in one transaction, and
    /// returns the domain's keys either way (so two processes racing store one set).
    async fn dkim_keys_ensure(
        &self,
        domain: &Domain,
        keys: Vec<crate::dns::NewDkimKey>,
    ) -> StoreResult<Vec<crate::dns::DkimKey>>;
    /// The DKIM keys of one domain, or of every domain; by domain, then selector.
    async fn dkim_key_list(&self, domain: Option<&Domain>)
    -> StoreResult<Vec<crate::dns::DkimKey>>;
    /// Refused when the domain is not hosted or has `DNS_RECORDS_PER_DOMAIN_MAX` records;
    /// the same name, type and value twice is `AlreadyExists`.
    async fn dns_record_add(
        &self,
        record: crate::dns::NewDnsRecord,
    ) -> StoreResult<crate::dns::DnsRecord>;
    /// The custom records of one domain, or of every domain; by domain, name, type, id.
    async fn dns_record_list(
        &self,
        domain: Option<&Domain>,
    ) -> StoreResult<Vec<crate::dns::DnsRecord>>;
    async fn dns_record_remove(&self, domain: &Domain, id: i64) -> StoreResult<()>;
}

/// Resolves a recipient address: the account with that address; else an alias with that
/// address; else the same two for the address without its `+tag`; else the domain's
/// catch-all. Aliases are followed through chains up to `ALIAS_CHAIN_DEPTH_MAX`.
pub async fn resolve_recipient(
    directory: &dyn Directory,
    address: &EmailAddress,
    plus_separator: char,
) -> StoreResult<Resolution> {
    resolve(directory, address, plus_separator, CatchAll::Included).await
}

/// Whether the domain's catch-all counts when an address is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CatchAll {
    Included,
    Excluded,
}

async fn resolve(
    directory: &dyn Directory,
    address: &EmailAddress,
    plus_separator: char,
    catch_all: CatchAll,
) -> StoreResult<Resolution> {
    if directory.domain_get(address.domain()).await?.is_none() {
        return Ok(Resolution::DomainNotHosted);
    }
    let (base, tag) = address.split_plus(plus_separator);
    let mut candidates = vec![AliasSource::Address(address.clone())];
    if tag.is_some() {
        candidates.push(AliasSource::Address(base));
    }
    if catch_all == CatchAll::Included {
        candidates.push(AliasSource::CatchAll(address.domain().clone()));
    }
    for candidate in candidates {
        let mut accounts: Vec<Account> = Vec::new();
        let mut external: Vec<EmailAddress> = Vec::new();
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        if expand(
            directory,
            &candidate,
            0,
            &mut accounts,
            &mut external,
            &mut seen,
        )
        .await?
        {
            return Ok(Resolution::Deliver { accounts, external });
        }
    }
    Ok(Resolution::UnknownAddress)
}

/// Whether `account` may use `address` as its own when sending (RFC 6409 §8 leaves the
/// policy to the submission server): its own address, a plus-address of it, or an address
/// whose mail reaches it (an alias, a catch-all it receives). The test is the same as the
/// delivery's, so what a user receives at, they may send from, and nothing else.
pub async fn address_owned_by(
    directory: &dyn Directory,
    address: &EmailAddress,
    account: AccountId,
    plus_separator: char,
) -> StoreResult<bool> {
    reaches_account(
        directory,
        address,
        account,
        plus_separator,
        CatchAll::Included,
    )
    .await
}

/// Whether `address` names `account` itself: its own address, a plus-address of it, or an
/// alias (followed through chains) that reaches it; not the domain's catch-all, which
/// reaches an account without naming it. The vacation reply answers only mail that names
/// the account this way (RFC 5230 §4.5's `:addresses`).
pub async fn address_names_account(
    directory: &dyn Directory,
    address: &EmailAddress,
    account: AccountId,
    plus_separator: char,
) -> StoreResult<bool> {
    reaches_account(
        directory,
        address,
        account,
        plus_separator,
        CatchAll::Excluded,
    )
    .await
}

async fn reaches_account(
    directory: &dyn Directory,
    address: &EmailAddress,
    account: AccountId,
    plus_separator: char,
    catch_all: CatchAll,
) -> StoreResult<bool> {
    match resolve(directory, address, plus_separator, catch_all).await? {
        Resolution::Deliver { accounts, .. } => {
            Ok(accounts.iter().any(|reached| reached.id == account))
        }
        Resolution::DomainNotHosted | Resolution::UnknownAddress => Ok(false),
    }
}

/// Adds what `source` reaches to `accounts`/`external`; false when nothing answers for it.
fn expand<'a>(
    directory: &'a dyn Directory,
    source: &'a AliasSource,
    depth: usize,
    accounts: &'a mut Vec<Account>,
    external: &'a mut Vec<EmailAddress>,
    seen: &'a mut std::collections::HashSet<String>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = StoreResult<bool>> + Send + 'a>> {
    Box::pin(async move {
        if !seen.insert(source.canonical()) {
            return Ok(true);
        }
        if let AliasSource::Address(address) = source
            && let Some(account) = directory.account_get(address).await?
        {
            if !accounts.iter().any(|known| known.id == account.id) {
                accounts.push(account);
            }
            return Ok(true);
        }
        let Some(alias) = directory.alias_get(source).await? else {
            return Ok(false);
        };
        for target in &alias.targets {
            if accounts.len() + external.len() >= RESOLVED_TARGETS_MAX {
                break;
            }
            let hosted = directory.domain_get(target.domain()).await?.is_some();
            if !hosted {
                if !external.contains(target) {
                    external.push(target.clone());
                }
                continue;
            }
            let target_source = AliasSource::Address(target.clone());
            let found = depth < ALIAS_CHAIN_DEPTH_MAX
                && expand(
                    directory,
                    &target_source,
                    depth + 1,
                    accounts,
                    external,
                    seen,
                )
                .await?;
            if !found {
                // A hosted target that answers for nothing: skip it rather than bounce the
                // whole alias; the other targets still get the mail.
                tracing::warn!(alias = %alias.source, target = %target, "alias target does not exist");
            }
        }
        Ok(true)
    })
}
