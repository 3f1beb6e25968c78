//! The directory on SQLite (`directory.sqlite`).

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use tme_core::{Domain, EmailAddress};

use super::{Database, already_exists_if_unique, now_unix, row_exists, schema, to_i64, to_u64};
use crate::directory::{
    ACCOUNT_SIGNATURE_CHARS_MAX, Account, AccountId, AccountState, Alias, AliasSource, AppPassword,
    Branding, Directory, DomainRecord, LoginLock, NewAccount, Partner, VACATION_BODY_CHARS_MAX,
    VACATION_SUBJECT_CHARS_MAX, Vacation, WEB_SESSION_USER_AGENT_CHARS_MAX, WebSession,
};
use crate::error::{StoreError, StoreResult};

/// The longest partner name, in characters.
const PARTNER_NAME_CHARS_MAX: usize = 100;
/// How many targets one alias may have.
const ALIAS_TARGETS_MAX: usize = 1_000;

#[derive(Debug, Clone)]
pub struct SqliteDirectory {
    database: Database,
}

impl SqliteDirectory {
    pub async fn open(path: &Path, busy_timeout: Duration) -> StoreResult<SqliteDirectory> {
        Ok(SqliteDirectory {
            database: Database::open(path, &schema::DIRECTORY, busy_timeout).await?,
        })
    }

    pub async fn close(&self) {
        self.database.close().await;
    }
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("stored {what} {value:?} is not valid"))
}

fn partner_from_row(row: &SqliteRow) -> StoreResult<Partner> {
    Ok(Partner {
        name: row.try_get("name")?,
        branding: Branding {
            product_name: row.try_get("product_name")?,
            logo_url: row.try_get("logo_url")?,
            colour_primary: row.try_get("colour_primary")?,
            colour_accent: row.try_get("colour_accent")?,
        },
        created_unix: row.try_get("created_unix")?,
    })
}

fn domain_from_row(row: &SqliteRow) -> StoreResult<DomainRecord> {
    let domain: String = row.try_get("domain")?;
    Ok(DomainRecord {
        domain: Domain::parse(&domain).map_err(|_| corrupt("domain", &domain))?,
        partner: row.try_get("partner")?,
        created_unix: row.try_get("created_unix")?,
    })
}

fn account_from_row(row: &SqliteRow) -> StoreResult<Account> {
    let address: String = row.try_get("address")?;
    let state: String = row.try_get("state")?;
    Ok(Account {
        id: row.try_get("account_id")?,
        address: EmailAddress::parse(&address).map_err(|_| corrupt("address", &address))?,
        display_name: row.try_get("display_name")?,
        password_hash: row.try_get("password_hash")?,
        quota_bytes_max: to_u64(row.try_get("quota_bytes_max")?),
        state: AccountState::parse(&state).ok_or_else(|| corrupt("account state", &state))?,
        shard: u32::try_from(row.try_get::<i64, _>("shard")?).unwrap_or(0),
        created_unix: row.try_get("created_unix")?,
    })
}

fn app_password_from_row(row: &SqliteRow) -> StoreResult<AppPassword> {
    Ok(AppPassword {
        id: row.try_get("app_password_id")?,
        account_id: row.try_get("account_id")?,
        label: row.try_get("label")?,
        password_hash: row.try_get("password_hash")?,
        created_unix: row.try_get("created_unix")?,
        last_used_unix: row.try_get("last_used_unix")?,
    })
}

fn web_session_from_row(row: &SqliteRow) -> StoreResult<WebSession> {
    Ok(WebSession {
        token_hash: row.try_get("token_hash")?,
        account_id: row.try_get("account_id")?,
        created_unix: row.try_get("created_unix")?,
        expires_unix: row.try_get("expires_unix")?,
        client_address: row.try_get("client_address")?,
        user_agent: row.try_get("user_agent")?,
        app_password_id: row.try_get("app_password_id")?,
    })
}

fn login_lock_from_row(row: &SqliteRow) -> StoreResult<LoginLock> {
    Ok(LoginLock {
        key: row.try_get("lock_key")?,
        failures: u32::try_from(row.try_get::<i64, _>("failures")?).unwrap_or(u32::MAX),
        locked_unix: row.try_get("locked_unix")?,
        locked_until_unix: row.try_get("locked_until_unix")?,
    })
}

fn alias_from_row(row: &SqliteRow) -> StoreResult<Alias> {
    let source: String = row.try_get("source")?;
    let targets_text: String = row.try_get("targets")?;
    let target_strings: Vec<String> =
        serde_json::from_str(&targets_text).map_err(|_| corrupt("alias targets", &targets_text))?;
    let targets = target_strings
        .iter()
        .map(|target| EmailAddress::parse(target).map_err(|_| corrupt("alias target", target)))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Alias {
        source: AliasSource::parse(&source).map_err(|_| corrupt("alias", &source))?,
        targets,
        created_unix: row.try_get("created_unix")?,
    })
}

fn validate_partner_name(name: &str) -> StoreResult<()> {
    let valid = !name.is_empty()
        && name.chars().count() <= PARTNER_NAME_CHARS_MAX
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || " -_.&'".contains(c))
        && name.trim() == name;
    if valid {
        Ok(())
    } else {
        Err(StoreError::Refused(format!(
            "partner name {name:?} must be 1 to {PARTNER_NAME_CHARS_MAX} letters, digits, spaces or - _ . & ' (no leading or trailing space)"
        )))
    }
}

fn targets_json(targets: &[EmailAddress]) -> StoreResult<String> {
    if targets.is_empty() {
        return Err(StoreError::Refused(
            "an alias needs at least one target".to_owned(),
        ));
    }
    if targets.len() > ALIAS_TARGETS_MAX {
        return Err(StoreError::Refused(format!(
            "an alias may have at most {ALIAS_TARGETS_MAX} targets"
        )));
    }
    let strings: Vec<String> = targets.iter().map(ToString::to_string).collect();
    serde_json::to_string(&strings).map_err(|error| StoreError::Refused(error.to_string()))
}

#[async_trait]
impl Directory for SqliteDirectory {
    async fn partner_add(&self, name: &str, branding: Branding) -> StoreResult<Partner> {
        validate_partner_name(name)?;
        let created_unix = now_unix();
        let result = sqlx::query(
            "INSERT INTO partners (name, product_name, logo_url, colour_primary, colour_accent, created_unix)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(name)
        .bind(&branding.product_name)
        .bind(&branding.logo_url)
        .bind(&branding.colour_primary)
        .bind(&branding.colour_accent)
        .bind(created_unix)
        .execute(&self.database.writer)
        .await;
        already_exists_if_unique(result, "partner", || name.to_owned())?;
        Ok(Partner {
            name: name.to_owned(),
            branding,
            created_unix,
        })
    }

    async fn partner_get(&self, name: &str) -> StoreResult<Option<Partner>> {
        let row = sqlx::query("SELECT * FROM partners WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.database.reader)
            .await?;
        row.as_ref().map(partner_from_row).transpose()
    }

    async fn partner_list(&self) -> StoreResult<Vec<Partner>> {
        let rows = sqlx::query("SELECT * FROM partners ORDER BY name")
            .fetch_all(&self.database.reader)
            .await?;
        rows.iter().map(partner_from_row).collect()
    }

    async fn partner_set_branding(&self, name: &str, branding: Branding) -> StoreResult<()> {
        let result = sqlx::query(
            "UPDATE partners SET product_name = ?, logo_url = ?, colour_primary = ?, colour_accent = ?
             WHERE name = ?",
        )
        .bind(&branding.product_name)
        .bind(&branding.logo_url)
        .bind(&branding.colour_primary)
        .bind(&branding.colour_accent)
        .bind(name)
        .execute(&self.database.writer)
        .await?;
        found_if_affected(result.rows_affected(), "partner", || name.to_owned())?;
        Ok(())
    }

    async fn partner_remove(&self, name: &str) -> StoreResult<()> {
        let mut transaction = self.database.begin_write().await?;
        let domains: i64 = sqlx::query("SELECT COUNT(*) FROM domains WHERE partner = ?")
            .bind(name)
            .fetch_one(&mut *transaction)
            .await?
            .get(0);
        if domains > 0 {
            return Err(StoreError::Refused(format!(
                "partner {name} still has {domains} domain(s); remove them first"
            )));
        }
        let result = sqlx::query("DELETE FROM partners WHERE name = ?")
            .bind(name)
            .execute(&mut *transaction)
            .await?;
        found_if_affected(result.rows_affected(), "partner", || name.to_owned())?;
        transaction.commit().await?;
        Ok(())
    }

    async fn domain_add(&self, domain: &Domain, partner: &str) -> StoreResult<DomainRecord> {
        let mut transaction = self.database.begin_write().await?;
        let partner_exists = row_exists(
            &mut transaction,
            "SELECT 1 FROM partners WHERE name = ?",
            partner,
        )
        .await?;
        if !partner_exists {
            return Err(StoreError::NotFound {
                kind: "partner",
                name: partner.to_owned(),
            });
        }
        let created_unix = now_unix();
        let result =
            sqlx::query("INSERT INTO domains (domain, partner, created_unix) VALUES (?, ?, ?)")
                .bind(domain.as_str())
                .bind(partner)
                .bind(created_unix)
                .execute(&mut *transaction)
                .await;
        already_exists_if_unique(result, "domain", || domain.to_string())?;
        transaction.commit().await?;
        Ok(DomainRecord {
            domain: domain.clone(),
            partner: partner.to_owned(),
            created_unix,
        })
    }

    async fn domain_get(&self, domain: &Domain) -> StoreResult<Option<DomainRecord>> {
        let row = sqlx::query("SELECT * FROM domains WHERE domain = ?")
            .bind(domain.as_str())
            .fetch_optional(&self.database.reader)
            .await?;
        row.as_ref().map(domain_from_row).transpose()
    }

    async fn domain_list(&self, partner: Option<&str>) -> StoreResult<Vec<DomainRecord>> {
        let rows =
            sqlx::query("SELECT * FROM domains WHERE ?1 IS NULL OR partner = ?1 ORDER BY domain")
                .bind(partner)
                .fetch_all(&self.database.reader)
                .await?;
        rows.iter().map(domain_from_row).collect()
    }

    async fn domain_set_partner(&self, domain: &Domain, partner: &str) -> StoreResult<()> {
        let mut transaction = self.database.begin_write().await?;
        let partner_exists = row_exists(
            &mut transaction,
            "SELECT 1 FROM partners WHERE name = ?",
            partner,
        )
        .await?;
        if !partner_exists {
            return Err(StoreError::NotFound {
                kind: "partner",
                name: partner.to_owned(),
            });
        }
        let result = sqlx::query("UPDATE domains SET partner = ? WHERE domain = ?")
            .bind(partner)
            .bind(domain.as_str())
            .execute(&mut *transaction)
            .await?;
        found_if_affected(result.rows_affected(), "domain", || domain.to_string())?;
        transaction.commit().await?;
        Ok(())
    }

    async fn domain_remove(&self, domain: &Domain) -> StoreResult<()> {
        let mut transaction = self.database.begin_write().await?;
        let users: i64 = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM accounts WHERE domain = ?1)
                  + (SELECT COUNT(*) FROM aliases WHERE domain = ?1)",
        )
        .bind(domain.as_str())
        .fetch_one(&mut *transaction)
        .await?
        .get(0);
        if users > 0 {
            return Err(StoreError::Refused(format!(
                "domain {domain} still has {users} account(s) or alias(es); remove them first"
            )));
        }
        let result = sqlx::query("DELETE FROM domains WHERE domain = ?")
            .bind(domain.as_str())
            .execute(&mut *transaction)
            .await?;
        found_if_affected(result.rows_affected(), "domain", || domain.to_string())?;
        transaction.commit().await?;
        Ok(())
    }

    async fn account_add(&self, account: NewAccount) -> StoreResult<Account> {
        let canonical = account.address.canonical();
        let domain = account.address.domain().as_str().to_owned();
        let mut transaction = self.database.begin_write().await?;
        let hosted = row_exists(
            &mut transaction,
            "SELECT 1 FROM domains WHERE domain = ?",
            &domain,
        )
        .await?;
        if !hosted {
            return Err(StoreError::NotFound {
                kind: "domain",
                name: domain,
            });
        }
        let alias_exists = row_exists(
            &mut transaction,
            "SELECT 1 FROM aliases WHERE source_canonical = ?",
            &canonical,
        )
        .await?;
        if alias_exists {
            return Err(StoreError::AlreadyExists {
                kind: "alias with this address",
                name: account.address.to_string(),
            });
        }
        let created_unix = now_unix();
        let result = sqlx::query(
            "INSERT INTO accounts (address_canonical, address, domain, display_name, password_hash,
                                   quota_bytes_max, state, shard, created_unix)
             VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
        )
        .bind(&canonical)
        .bind(account.address.to_string())
        .bind(&domain)
        .bind(&account.display_name)
        .bind(&account.password_hash)
        .bind(to_i64(account.quota_bytes_max)?)
        .bind(AccountState::Active.as_str())
        .bind(created_unix)
        .execute(&mut *transaction)
        .await;
        let id = already_exists_if_unique(result, "account", || account.address.to_string())?
            .last_insert_rowid();
        transaction.commit().await?;
        Ok(Account {
            id,
            address: account.address,
            display_name: account.display_name,
            password_hash: account.password_hash,
            quota_bytes_max: account.quota_bytes_max,
            state: AccountState::Active,
            shard: 0,
            created_unix,
        })
    }

    async fn account_get(&self, address: &EmailAddress) -> StoreResult<Option<Account>> {
        let row = sqlx::query("SELECT * FROM accounts WHERE address_canonical = ?")
            .bind(address.canonical())
            .fetch_optional(&self.database.reader)
            .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn account_get_by_id(&self, id: AccountId) -> StoreResult<Option<Account>> {
        let row = sqlx::query("SELECT * FROM accounts WHERE account_id = ?")
            .bind(id)
            .fetch_optional(&self.database.reader)
            .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn account_list(&self, domain: Option<&Domain>) -> StoreResult<Vec<Account>> {
        let rows = sqlx::query(
            "SELECT * FROM accounts WHERE ?1 IS NULL OR domain = ?1 ORDER BY domain, address_canonical",
        )
        .bind(domain.map(Domain::as_str))
        .fetch_all(&self.database.reader)
        .await?;
        rows.iter().map(account_from_row).collect()
    }

    async fn account_set_password_hash(&self, id: AccountId, hash: &str) -> StoreResult<()> {
        self.update_account(
            id,
            "UPDATE accounts SET password_hash = ? WHERE account_id = ?",
            hash,
        )
        .await
    }

    async fn account_set_state(&self, id: AccountId, state: AccountState) -> StoreResult<()> {
        self.update_account(
            id,
            "UPDATE accounts SET state = ? WHERE account_id = ?",
            state.as_str(),
        )
        .await
    }

    async fn account_set_quota(&self, id: AccountId, quota_bytes_max: u64) -> StoreResult<()> {
        let result = sqlx::query("UPDATE accounts SET quota_bytes_max = ? WHERE account_id = ?")
            .bind(to_i64(quota_bytes_max)?)
            .bind(id)
            .execute(&self.database.writer)
            .await?;
        found_if_affected(result.rows_affected(), "account", || id.to_string())
    }

    async fn account_set_display_name(&self, id: AccountId, name: Option<&str>) -> StoreResult<()> {
        let result = sqlx::query("UPDATE accounts SET display_name = ? WHERE account_id = ?")
            .bind(name)
            .bind(id)
            .execute(&self.database.writer)
            .await?;
        found_if_affected(result.rows_affected(), "account", || id.to_string())
    }

    async fn account_remove(&self, id: AccountId) -> StoreResult<()> {
        let result = sqlx::query("DELETE FROM accounts WHERE account_id = ?")
            .bind(id)
            .execute(&self.database.writer)
            .await?;
        found_if_affected(result.rows_affected(), "account", || id.to_string())
    }

    async fn account_signature_get(&self, id: AccountId) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT signature FROM account_settings WHERE account_id = ?")
            .bind(id)
            .fetch_optional(&self.database.reader)
            .await?;
        match row {
            Some(row) => Ok(row.try_get::<Option<String>, _>(0)?),
            None => Ok(None),
        }
    }

    async fn account_signature_set(
        &self,
        id: AccountId,
        signature: Option<&str>,
    ) -> StoreResult<()> {
        let signature = signature.filter(|text| !text.is_empty());
        if signature.is_some_and(|text| text.chars().count() > ACCOUNT_SIGNATURE_CHARS_MAX) {
            return Err(StoreError::Refused(format!(
                "a signature has at most {ACCOUNT_SIGNATURE_CHARS_MAX} characters"
            )));
        }
        let mut transaction = self.database.begin_write().await?;
        account_must_exist(&mut transaction, id).await?;
        sqlx::query(
            "INSERT INTO account_settings (account_id, signature) VALUES (?, ?) ON CONFLICT (account_id) DO UPDATE SET signature = excluded.signature",
        )
        .bind(id)
        .bind(signature)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn account_vacation_get(&self, id: AccountId) -> StoreResult<Vacation> {
        let row = sqlx::query(
            "SELECT enabled, subject, body, first_day_epoch_days, last_day_epoch_days FROM account_vacations WHERE account_id = ?",
        )
        .bind(id)
        .fetch_optional(&self.database.reader)
        .await?;
        let Some(row) = row else {
            return Ok(Vacation::default());
        };
        Ok(Vacation {
            enabled: row.try_get::<i64, _>(0)? != 0,
            subject: row.try_get(1)?,
            body: row.try_get(2)?,
            first_day_epoch_days: row.try_get(3)?,
            last_day_epoch_days: row.try_get(4)?,
        })
    }

    async fn account_vacation_set(&self, id: AccountId, vacation: &Vacation) -> StoreResult<()> {
        if vacation.subject.chars().count() > VACATION_SUBJECT_CHARS_MAX {
            return Err(StoreError::Refused(format!(
                "a vacation subject has at most {VACATION_SUBJECT_CHARS_MAX} characters"
            )));
        }
        if vacation.body.chars().count() > VACATION_BODY_CHARS_MAX {
            return Err(StoreError::Refused(format!(
                "a vacation reply has at most {VACATION_BODY_CHARS_MAX} characters"
            )));
        }
        if let (Some(first), Some(last)) =
            (vacation.first_day_epoch_days, vacation.last_day_epoch_days)
            && last < first
        {
            return Err(StoreError::Refused(
                "a vacation's last day is before its first".to_owned(),
            ));
        }
        let mut transaction = self.database.begin_write().await?;
        account_must_exist(&mut transaction, id).await?;
        sqlx::query(
            "INSERT INTO account_vacations (account_id, enabled, subject, body, first_day_epoch_days, last_day_epoch_days) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE SET enabled = excluded.enabled, subject = excluded.subject, body = excluded.body, first_day_epoch_days = excluded.first_day_epoch_days, last_day_epoch_days = excluded.last_day_epoch_days",
        )
        .bind(id)
        .bind(i64::from(vacation.enabled))
        .bind(&vacation.subject)
        .bind(&vacation.body)
        .bind(vacation.first_day_epoch_days)
        .bind(vacation.last_day_epoch_days)
        .execute(&mut *transaction)
        .await?;
        sqlx::query("DELETE FROM vacation_replies WHERE account_id = ?")
            .bind(id)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn vacation_reply_claim(
        &self,
        account: AccountId,
        sender: &str,
        now_unix: i64,
        period_seconds: i64,
    ) -> StoreResult<bool> {
        let sender_hash = blake3::hash(sender.to_lowercase().as_bytes())
            .to_hex()
            .to_string();
        let since_unix = now_unix.saturating_sub(period_seconds);
        let mut transaction = self.database.begin_write().await?;
        sqlx::query("DELETE FROM vacation_replies WHERE account_id = ? AND replied_unix <= ?")
            .bind(account)
            .bind(since_unix)
            .execute(&mut *transaction)
            .await?;
        let replied =
            sqlx::query("SELECT 1 FROM vacation_replies WHERE account_id = ? AND sender_hash = ?")
                .bind(account)
                .bind(&sender_hash)
                .fetch_optional(&mut *transaction)
                .await?
                .is_some();
        if replied {
            transaction.commit().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO vacation_replies (account_id, sender_hash, replied_unix) VALUES (?, ?, ?)",
        )
        .bind(account)
        .bind(&sender_hash)
        .bind(now_unix)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(true)
    }

    async fn app_password_add(
        &self,
        account: AccountId,
        label: &str,
        hash: &str,
    ) -> StoreResult<AppPassword> {
        let created_unix = now_unix();
        let result = sqlx::query(
            "INSERT INTO app_passwords (account_id, label, password_hash, created_unix) VALUES (?, ?, ?, ?)",
        )
        .bind(account)
        .bind(label)
        .bind(hash)
        .bind(created_unix)
        .execute(&self.database.writer)
        .await?;
        Ok(AppPassword {
            id: result.last_insert_rowid(),
            account_id: account,
            label: label.to_owned(),
            password_hash: hash.to_owned(),
            created_unix,
            last_used_unix: None,
        })
    }

    async fn app_password_list(&self, account: AccountId) -> StoreResult<Vec<AppPassword>> {
        let rows = sqlx::query(
            "SELECT * FROM app_passwords WHERE account_id = ? ORDER BY app_password_id",
        )
        .bind(account)
        .fetch_all(&self.database.reader)
        .await?;
        rows.iter().map(app_password_from_row).collect()
    }

    async fn app_password_remove(&self, account: AccountId, id: i64) -> StoreResult<()> {
        let result =
            sqlx::query("DELETE FROM app_passwords WHERE account_id = ? AND app_password_id = ?")
                .bind(account)
                .bind(id)
                .execute(&self.database.writer)
                .await?;
        found_if_affected(result.rows_affected(), "app password", || id.to_string())?;
        Ok(())
    }

    async fn alias_add(
        &self,
        source: &AliasSource,
        targets: &[EmailAddress],
    ) -> StoreResult<Alias> {
        let targets_text = targets_json(targets)?;
        let mut transaction = self.database.begin_write().await?;
        let domain = source.domain().as_str().to_owned();
        let hosted = row_exists(
            &mut transaction,
            "SELECT 1 FROM domains WHERE domain = ?",
            &domain,
        )
        .await?;
        if !hosted {
            return Err(StoreError::NotFound {
                kind: "domain",
                name: domain,
            });
        }
        let account_exists = row_exists(
            &mut transaction,
            "SELECT 1 FROM accounts WHERE address_canonical = ?",
            &source.canonical(),
        )
        .await?;
        if account_exists {
            return Err(StoreError::AlreadyExists {
                kind: "account with this address",
                name: source.to_string(),
            });
        }
        let created_unix = now_unix();
        let result = sqlx::query(
            "INSERT INTO aliases (source_canonical, source, domain, targets, created_unix) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(source.canonical())
        .bind(source.to_string())
        .bind(&domain)
        .bind(&targets_text)
        .bind(created_unix)
        .execute(&mut *transaction)
        .await;
        already_exists_if_unique(result, "alias", || source.to_string())?;
        transaction.commit().await?;
        Ok(Alias {
            source: source.clone(),
            targets: targets.to_vec(),
            created_unix,
        })
    }

    async fn alias_get(&self, source: &AliasSource) -> StoreResult<Option<Alias>> {
        let row = sqlx::query("SELECT * FROM aliases WHERE source_canonical = ?")
            .bind(source.canonical())
            .fetch_optional(&self.database.reader)
            .await?;
        row.as_ref().map(alias_from_row).transpose()
    }

    async fn alias_list(&self, domain: Option<&Domain>) -> StoreResult<Vec<Alias>> {
        let rows = sqlx::query(
            "SELECT * FROM aliases WHERE ?1 IS NULL OR domain = ?1 ORDER BY domain, source_canonical",
        )
        .bind(domain.map(Domain::as_str))
        .fetch_all(&self.database.reader)
        .await?;
        rows.iter().map(alias_from_row).collect()
    }

    async fn alias_set_targets(
        &self,
        source: &AliasSource,
        targets: &[EmailAddress],
    ) -> StoreResult<()> {
        let result = sqlx::query("UPDATE aliases SET targets = ? WHERE source_canonical = ?")
            .bind(targets_json(targets)?)
            .bind(source.canonical())
            .execute(&self.database.writer)
            .await?;
        found_if_affected(result.rows_affected(), "alias", || source.to_string())?;
        Ok(())
    }

    async fn alias_remove(&self, source: &AliasSource) -> StoreResult<()> {
        let result = sqlx::query("DELETE FROM aliases WHERE source_canonical = ?")
            .bind(source.canonical())
            .execute(&self.database.writer)
            .await?;
        found_if_affected(result.rows_affected(), "alias", || source.to_string())?;
        Ok(())
    }

    async fn login_lock_put(&self, lock: &LoginLock) -> StoreResult<()> {
        sqlx::query(
            "INSERT OR REPLACE INTO login_locks (lock_key, failures, locked_unix, locked_until_unix) VALUES (?, ?, ?, ?)",
        )
        .bind(&lock.key)
        .bind(i64::from(lock.failures))
        .bind(lock.locked_unix)
        .bind(lock.locked_until_unix)
        .execute(&self.database.writer)
        .await?;
        Ok(())
    }

    async fn login_lock_list(&self) -> StoreResult<Vec<LoginLock>> {
        let rows = sqlx::query("SELECT * FROM login_locks ORDER BY lock_key")
            .fetch_all(&self.database.reader)
            .await?;
        rows.iter().map(login_lock_from_row).collect()
    }

    async fn login_lock_get(&self, key: &str) -> StoreResult<Option<LoginLock>> {
        let row = sqlx::query("SELECT * FROM login_locks WHERE lock_key = ?")
            .bind(key)
            .fetch_optional(&self.database.reader)
            .await?;
        row.as_ref().map(login_lock_from_row).transpose()
    }

    async fn login_lock_remove(&self, key: &str) -> StoreResult<bool> {
        let mut transaction = self.database.begin_write().await?;
        let removed = sqlx::query("DELETE FROM login_locks WHERE lock_key = ?")
            .bind(key)
            .execute(&mut *transaction)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM login_locks WHERE locked_until_unix < ?")
            .bind(now_unix())
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(removed > 0)
    }

    async fn web_session_add(&self, session: &WebSession) -> StoreResult<()> {
        let user_agent: String = session
            .user_agent
            .chars()
            .take(WEB_SESSION_USER_AGENT_CHARS_MAX)
            .collect();
        let mut transaction = self.database.begin_write().await?;
        sqlx::query("DELETE FROM web_sessions WHERE expires_unix < ?")
            .bind(now_unix())
            .execute(&mut *transaction)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO web_sessions (token_hash, account_id, created_unix, expires_unix, client_address, user_agent, app_password_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&session.token_hash)
        .bind(session.account_id)
        .bind(session.created_unix)
        .bind(session.expires_unix)
        .bind(&session.client_address)
        .bind(&user_agent)
        .bind(session.app_password_id)
        .execute(&mut *transaction)
        .await;
        already_exists_if_unique(inserted, "web session", || "(token)".to_owned())?;
        transaction.commit().await?;
        Ok(())
    }

    async fn web_session_get(&self, token_hash: &str) -> StoreResult<Option<WebSession>> {
        let row = sqlx::query("SELECT * FROM web_sessions WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(&self.database.reader)
            .await?;
        row.as_ref().map(web_session_from_row).transpose()
    }

    async fn web_session_list(&self, account: AccountId) -> StoreResult<Vec<WebSession>> {
        let rows = sqlx::query(
            "SELECT * FROM web_sessions WHERE account_id = ? ORDER BY created_unix DESC, token_hash",
        )
        .bind(account)
        .fetch_all(&self.database.reader)
        .await?;
        rows.iter().map(web_session_from_row).collect()
    }

    async fn web_session_remove(&self, account: AccountId, token_hash: &str) -> StoreResult<bool> {
        let removed =
            sqlx::query("DELETE FROM web_sessions WHERE account_id = ? AND token_hash = ?")
                .bind(account)
                .bind(token_hash)
                .execute(&self.database.writer)
                .await?
                .rows_affected();
        Ok(removed > 0)
    }

    async fn generation(&self) -> StoreResult<i64> {
        Ok(sqlx::query("SELECT value FROM generation WHERE id = 0")
            .fetch_one(&self.database.reader)
            .await?
            .try_get(0)?)
    }

    async fn dkim_keys_ensure(
        &self,
        domain: &Domain,
        keys: Vec<crate::dns::NewDkimKey>,
    ) -> StoreResult<Vec<crate::dns::DkimKey>> {
        super::dns::dkim_keys_ensure(&self.database, domain, keys).await
    }

    async fn dkim_key_list(
        &self,
        domain: Option<&Domain>,
    ) -> StoreResult<Vec<crate::dns::DkimKey>> {
        super::dns::dkim_key_list(&self.database, domain).await
    }

    async fn dns_record_add(
        &self,
        record: crate::dns::NewDnsRecord,
    ) -> StoreResult<crate::dns::DnsRecord> {
        super::dns::dns_record_add(&self.database, record).await
    }

    async fn dns_record_list(
        &self,
        domain: Option<&Domain>,
    ) -> StoreResult<Vec<crate::dns::DnsRecord>> {
        super::dns::dns_record_list(&self.database, domain).await
    }

    async fn dns_record_remove(&self, domain: &Domain, id: i64) -> StoreResult<()> {
        super::dns::dns_record_remove(&self.database, domain, id).await
    }
}

impl SqliteDirectory {
    async fn update_account(
        &self,
        id: AccountId,
        sql: &'static str,
        value: &str,
    ) -> StoreResult<()> {
        let result = sqlx::query(sql)
            .bind(value)
            .bind(id)
            .execute(&self.database.writer)
            .await?;
        found_if_affected(result.rows_affected(), "account", || id.to_string())
    }
}

/// `NotFound { kind, name }` when a statement touched no row: the thing it named is not there.
fn found_if_affected(
    rows_affected: u64,
    kind: &'static str,
    name: impl FnOnce() -> String,
) -> StoreResult<()> {
    if rows_affected == 0 {
        return Err(StoreError::NotFound { kind, name: name() });
    }
    Ok(())
}

/// NotFound unless the account `id` exists (read inside the write that depends on it).
async fn account_must_exist(
    transaction: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    id: AccountId,
) -> StoreResult<()> {
    let exists = sqlx::query("SELECT 1 FROM accounts WHERE account_id = ?")
        .bind(id)
        .fetch_optional(&mut **transaction)
        .await?
        .is_some();
    if exists {
        Ok(())
    } else {
        Err(StoreError::NotFound {
            kind: "account",
            name: id.to_string(),
        })
    }
}
