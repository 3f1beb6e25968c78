//! Login for every role that takes a password (IMAP, POP3, submission and the webmail's
//! login form): an address and a password checked against the directory, and login
//! throttling.
//!
//! This crate owns the rules of a login: the password is the account's or one of its app
//! passwords (argon2id, `tme_core::password`); an unknown address costs the same Argon2
//! computation as a known one (`dummy_verify`), so timing does not tell which exist; a
//! suspended account is refused, but only once its password was right (a wrong password
//! never learns the account's state); failures from one client address and for one account
//! address are slowed down and then locked for `login.lock_seconds` (`throttle`). Locks are
//! written to the directory (`Directory::login_lock_*`), which is the truth about them: an
//! operator sees them with `tme login locks` and lifts one with `tme login unlock`, and a
//! lock holds across restarts and for every process on the same directory.
//!
//! It must not speak any protocol (each role maps `LoginRefusal` to its own reply), and
//! never logs or keeps a password: it only passes one to the verifier.

pub mod credential;
pub mod metrics;
pub mod throttle;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tme_core::config::LoginConfig;
use tme_core::password::{dummy_verify, verify_password};
use tme_core::{EmailAddress, Secret};
use tme_store::{AccountState, Directory, LoginLock};
use tokio::sync::Semaphore;

pub use credential::{Credential, CredentialWatch, Login};
pub use metrics::Metrics;
pub use throttle::{Throttle, Verdict};

/// How many password verifications run at once. Each costs 19 MiB of memory and tens of
/// milliseconds of CPU (argon2id); more would only queue on the cores and grow memory.
pub const VERIFICATIONS_CONCURRENT_MAX: usize = 4;

/// Why a login was refused. The protocol layer maps each to its reply (IMAP:
/// `AUTHENTICATIONFAILED`, `CONTACTADMIN`, `UNAVAILABLE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    /// Unknown address or wrong password: the client's fault; a retry with the right
    /// credentials helps (until a lock).
    BadCredentials,
    /// Too many failures from this client address or for this account: retry after the
    /// lock ends, or ask an operator.
    Locked { until_unix: i64 },
    /// The password was right but the account is suspended: ask the provider.
    AccountSuspended,
    /// The directory could not be read: our fault; a retry later may help.
    Unavailable,
}

/// Checks credentials and keeps the throttle. One per node, shared by every role.
#[derive(Debug)]
pub struct Authenticator {
    directory: Arc<dyn Directory>,
    config: LoginConfig,
    throttle: Mutex<Throttle>,
    verifications: Semaphore,
    metrics: Arc<Metrics>,
    /// The directory's generation and when it was read (`directory_generation`).
    generation: Mutex<Option<(i64, std::time::Instant)>>,
}

/// The throttle key of a client address.
pub fn ip_key(client_ip: IpAddr) -> String {
    format!("ip:{}", client_ip.to_canonical())
}

/// The throttle key of an account address.
pub fn account_key(address: &EmailAddress) -> String {
    format!("account:{}", address.canonical())
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Authenticator {
    pub fn new(
        directory: Arc<dyn Directory>,
        config: LoginConfig,
        metrics: Arc<Metrics>,
    ) -> Authenticator {
        Authenticator {
            directory,
            throttle: Mutex::new(Throttle::new(config.clone())),
            config,
            verifications: Semaphore::new(VERIFICATIONS_CONCURRENT_MAX),
            metrics,
            generation: Mutex::new(None),
        }
    }

    fn throttle(&self) -> std::sync::MutexGuard<'_, Throttle> {
        self.throttle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Logs `address` in with `password` from `client_ip`. On success the account is
    /// returned (its state is Active or SendLocked).
    pub async fn login(
        &self,
        client_ip: IpAddr,
        address: &str,
        password: &Secret<String>,
    ) -> Result<Login, LoginRefusal> {
        let outcome = self.login_inner(client_ip, address, password).await;
        let label = match &outcome {
            Ok(_) => "accepted",
            Err(LoginRefusal::BadCredentials) => "bad_credentials",
            Err(LoginRefusal::Locked { .. }) => "locked",
            Err(LoginRefusal::AccountSuspended) => "suspended",
            Err(LoginRefusal::Unavailable) => "unavailable",
        };
        Metrics::count(&self.metrics.logins, label);
        let active = self.throttle().locks(now_unix()).len();
        self.metrics
            .locks_active
            .set(i64::try_from(active).unwrap_or(i64::MAX));
        outcome
    }

    async fn login_inner(
        &self,
        client_ip: IpAddr,
        address: &str,
        password: &Secret<String>,
    ) -> Result<Login, LoginRefusal> {
        let parsed = EmailAddress::parse(address).ok();
        let ip_key = ip_key(client_ip);
        let account_key = parsed.as_ref().map(account_key);
        let mut keys: Vec<&str> = vec![&ip_key];
        if let Some(account_key) = &account_key {
            keys.push(account_key);
        }
        let now = now_unix();
        // The directory says what is locked (an operator may have lifted a lock; another
        // process may have set one).
        for key in &keys {
            match self.directory.login_lock_get(key).await {
                Ok(Some(lock)) if lock.locked_until_unix > now => {
                    return Err(LoginRefusal::Locked {
                        until_unix: lock.locked_until_unix,
                    });
                }
                Ok(_) => self.throttle().unlock_if_locked(key, now),
                Err(error) => {
                    tracing::warn!(%error, "login: cannot read the login locks");
                    return Err(LoginRefusal::Unavailable);
                }
            }
        }
        let delay_ms = match self.throttle().check(&keys, now) {
            Verdict::Allow | Verdict::Locked { .. } => 0,
            Verdict::DelayFailure { delay_ms } => delay_ms,
        };
        let account = match &parsed {
            Some(parsed) => match self.directory.account_get(parsed).await {
                Ok(account) => account,
                Err(error) => {
                    tracing::warn!(%error, "login: cannot read the directory");
                    return Err(LoginRefusal::Unavailable);
                }
            },
            None => None,
        };
        // The account's password first, then its app passwords, each with the credential
        // it is.
        let mut hashes: Vec<String> = Vec::new();
        let mut credentials: Vec<Credential> = Vec::new();
        if let Some(account) = &account {
            hashes.push(account.password_hash.clone());
            credentials.push(Credential::password(&account.password_hash));
            match self.directory.app_password_list(account.id).await {
                Ok(app_passwords) => {
                    for app_password in app_passwords {
                        hashes.push(app_password.password_hash);
                        credentials.push(Credential::AppPassword {
                            id: app_password.id,
                        });
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "login: cannot read app passwords");
                    return Err(LoginRefusal::Unavailable);
                }
            }
        }
        let matched = self.verify(password, hashes).await;
        match (matched.and_then(|index| credentials.get(index)), account) {
            (Some(credential), Some(account)) => {
                if account.state == AccountState::Suspended {
                    return Err(LoginRefusal::AccountSuspended);
                }
                if let Some(account_key) = &account_key {
                    self.throttle().record_success(account_key);
                }
                Ok(Login {
                    account,
                    credential: credential.clone(),
                })
            }
            _ => {
                let locks = self.throttle().record_failure(&keys, now);
                for lock in locks {
                    let kind = if lock.key.starts_with("ip:") {
                        "ip"
                    } else {
                        "account"
                    };
                    self.metrics.count_lock(kind);
                    tracing::warn!(
                        key = %lock.key,
                        failures = lock.failures,
                        locked_seconds = self.config.lock_seconds,
                        "login: locked after repeated failures"
                    );
                    let record = LoginLock {
                        key: lock.key,
                        failures: lock.failures,
                        locked_unix: now,
                        locked_until_unix: lock.locked_until_unix,
                    };
                    if let Err(error) = self.directory.login_lock_put(&record).await {
                        tracing::warn!(%error, "login: cannot record a lock");
                    }
                }
                if delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                }
                Err(LoginRefusal::BadCredentials)
            }
        }
    }

    /// Which of `hashes` `password` matches (the first, should two); with none, spends the
    /// time of one verification (`dummy_verify`) so an unknown address answers as slowly as
    /// a known one.
    async fn verify(&self, password: &Secret<String>, hashes: Vec<String>) -> Option<usize> {
        let Ok(_permit) = self.verifications.acquire().await else {
            return None;
        };
        let password = password.expose().clone();
        tokio::task::spawn_blocking(move || {
            if hashes.is_empty() {
                dummy_verify(&password);
                return None;
            }
            // Every hash is tried, also after a match, so the time depends only on how many
            // app passwords the account has, not on which one matched.
            let mut matched = None;
            for (index, hash) in hashes.iter().enumerate() {
                if verify_password(&password, hash) && matched.is_none() {
                    matched = Some(index);
                }
            }
            matched
        })
        .await
        .ok()
        .flatten()
    }

    /// The directory's generation as read in the last `credential::GENERATION_CACHE`: one
    /// read serves every session's recheck.
    pub async fn directory_generation(&self) -> Result<i64, tme_store::StoreError> {
        let cached = *self
            .generation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((generation, read)) = cached
            && read.elapsed() < credential::GENERATION_CACHE
        {
            return Ok(generation);
        }
        let generation = self.directory.generation().await?;
        *self
            .generation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Some((generation, std::time::Instant::now()));
        Ok(generation)
    }

    /// Whether `credential` still opens `account` (`credential::credential_stands`).
    pub async fn credential_stands(
        &self,
        account: tme_store::AccountId,
        credential: &Credential,
    ) -> Result<bool, tme_store::StoreError> {
        credential::credential_stands(self.directory.as_ref(), account, credential).await
    }

    /// The locks recorded in the directory that have not ended.
    pub async fn locks(&self) -> Result<Vec<LoginLock>, tme_store::StoreError> {
        let now = now_unix();
        Ok(self
            .directory
            .login_lock_list()
            .await?
            .into_iter()
            .filter(|lock| lock.locked_until_unix > now)
            .collect())
    }
}

impl Throttle {
    /// Lifts the in-memory lock of `key` when the directory no longer has one.
    fn unlock_if_locked(&mut self, key: &str, now_unix: i64) {
        if matches!(self.check(&[key], now_unix), Verdict::Locked { .. }) {
            self.unlock(key);
        }
    }
}
