//! Which secret a login used, and whether it still stands, so that a session ends when its
//! secret is taken away: a session logged in with an app password once that app password
//! is revoked; one logged in with the account's password once the password changes; every
//! session once the account is suspended or deleted.
//!
//! Sessions ask `CredentialWatch::still_valid` before each command (and while idling). At
//! most every `CREDENTIAL_RECHECK` it looks at the directory's generation, which every
//! revocation, password change and suspension raises (`Directory::generation`), as the
//! node read it in the last `GENERATION_CACHE` (one read for all sessions); only when that
//! number moved does the session read its account and app passwords again. So a
//! revocation, made by the webmail, the CLI or another node on the same directory, ends the
//! sessions it concerns within `CREDENTIAL_RECHECK + GENERATION_CACHE` of their next
//! activity, and ten thousand idle sessions cost the directory one small read every two
//! seconds. Only a fingerprint of the password hash is kept, never the hash.

use std::time::{Duration, Instant};

use tme_store::{Account, AccountId, AccountState, Directory, StoreError};

/// How often a session looks again whether its credential may have changed, at most.
pub const CREDENTIAL_RECHECK: Duration = Duration::from_secs(5);
/// How long the node keeps the directory's generation for every session's recheck.
pub const GENERATION_CACHE: Duration = Duration::from_secs(2);

/// The secret a login was made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The account's password, as its hash was at login (a BLAKE3 fingerprint of it).
    Password { hash_fingerprint: [u8; 32] },
    /// One of the account's app passwords.
    AppPassword { id: i64 },
}

impl Credential {
    /// The account's password as `password_hash` is now.
    pub fn password(password_hash: &str) -> Credential {
        Credential::Password {
            hash_fingerprint: *blake3::hash(password_hash.as_bytes()).as_bytes(),
        }
    }
}

/// A successful login: the account (Active or SendLocked) and the secret that opened it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub account: Account,
    pub credential: Credential,
}

/// Whether `credential` still opens `account` (callers ask `Authenticator::credential_stands`).
pub(crate) async fn credential_stands(
    directory: &dyn Directory,
    account: AccountId,
    credential: &Credential,
) -> Result<bool, StoreError> {
    let Some(record) = directory.account_get_by_id(account).await? else {
        return Ok(false);
    };
    if record.state == AccountState::Suspended {
        return Ok(false);
    }
    Ok(match credential {
        Credential::Password { .. } => Credential::password(&record.password_hash) == *credential,
        Credential::AppPassword { id } => directory
            .app_password_list(account)
            .await?
            .iter()
            .any(|app_password| app_password.id == *id),
    })
}

/// A session's hold on the credential it logged in with.
#[derive(Debug, Clone)]
pub struct CredentialWatch {
    account: AccountId,
    credential: Credential,
    checked: Instant,
    /// The directory's generation when the credential was last read and stood.
    generation: Option<i64>,
}

impl CredentialWatch {
    /// Watches the credential of `login`, checked just now.
    pub fn new(login: &Login) -> CredentialWatch {
        CredentialWatch {
            account: login.account.id,
            credential: login.credential.clone(),
            checked: Instant::now(),
            generation: None,
        }
    }

    /// False once the credential no longer opens the account. Looks only when
    /// `CREDENTIAL_RECHECK` has passed since the last look, and reads the credential again
    /// only when the directory's generation moved since it last stood. A directory that
    /// cannot be read counts as valid (an outage must not end every session: their commands
    /// fail, or not, on their own).
    pub async fn still_valid(&mut self, authenticator: &crate::Authenticator) -> bool {
        if self.checked.elapsed() < CREDENTIAL_RECHECK {
            return true;
        }
        // The generation first: a change after this read moves it again, and is seen next
        // time.
        let result = match authenticator.directory_generation().await {
            Ok(generation) if self.generation == Some(generation) => Ok(true),
            Ok(generation) => authenticator
                .credential_stands(self.account, &self.credential)
                .await
                .inspect(|stands| {
                    if *stands {
                        self.generation = Some(generation);
                    }
                }),
            Err(error) => Err(error),
        };
        match result {
            Ok(stands) => {
                self.checked = Instant::now();
                stands
            }
            Err(error) => {
                tracing::warn!(%error, account = self.account, "cannot recheck a session's credential");
                true
            }
        }
    }
}
