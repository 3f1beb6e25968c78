//! The directory's DNS tables on SQLite: DKIM keys and custom records (`crate::dns`).

use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use tme_core::{Domain, Secret};

use super::{Database, already_exists_if_unique, now_unix, row_exists};
use crate::dns::{
    DKIM_KEYS_PER_DOMAIN_MAX, DNS_RECORD_NAME_OCTETS_MAX, DNS_RECORD_VALUE_OCTETS_MAX,
    DNS_RECORDS_PER_DOMAIN_MAX, DkimAlgorithm, DkimKey, DnsRecord, NewDkimKey, NewDnsRecord,
};
use crate::error::{StoreError, StoreResult};

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("stored {what} {value:?} is not valid"))
}

fn dkim_key_from_row(row: &SqliteRow) -> StoreResult<DkimKey> {
    let domain: String = row.try_get("domain")?;
    let algorithm: String = row.try_get("algorithm")?;
    Ok(DkimKey {
        domain: Domain::parse(&domain).map_err(|_| corrupt("domain", &domain))?,
        selector: row.try_get("selector")?,
        algorithm: DkimAlgorithm::parse(&algorithm)
            .ok_or_else(|| corrupt("DKIM algorithm", &algorithm))?,
        public_key: row.try_get("public_key")?,
        private_key_pkcs8: Secret::new(row.try_get("private_key_pkcs8")?),
        created_unix: row.try_get("created_unix")?,
    })
}

fn dns_record_from_row(row: &SqliteRow) -> StoreResult<DnsRecord> {
    let domain: String = row.try_get("domain")?;
    let ttl_seconds: i64 = row.try_get("ttl_seconds")?;
    Ok(DnsRecord {
        id: row.try_get("dns_record_id")?,
        domain: Domain::parse(&domain).map_err(|_| corrupt("domain", &domain))?,
        name: row.try_get("name")?,
        record_type: row.try_get("record_type")?,
        ttl_seconds: u32::try_from(ttl_seconds)
            .map_err(|_| corrupt("TTL", &ttl_seconds.to_string()))?,
        value: row.try_get("value")?,
        created_unix: row.try_get("created_unix")?,
    })
}

fn is_selector(selector: &str) -> bool {
    (1..=63).contains(&selector.len())
        && selector
            .bytes()
            .all(|octet| octet.is_ascii_alphanumeric() || octet == b'-')
}

pub(super) async fn dkim_keys_ensure(
    database: &Database,
    domain: &Domain,
    keys: Vec<NewDkimKey>,
) -> StoreResult<Vec<DkimKey>> {
    if keys.is_empty() || keys.len() > DKIM_KEYS_PER_DOMAIN_MAX {
        return Err(StoreError::Refused(format!(
            "a domain has 1 to {DKIM_KEYS_PER_DOMAIN_MAX} DKIM keys"
        )));
    }
    if let Some(key) = keys.iter().find(|key| !is_selector(&key.selector)) {
        return Err(StoreError::Refused(format!(
            "DKIM selector {:?} must be one DNS label of letters, digits and -",
            key.selector
        )));
    }
    let mut transaction = database.begin_write().await?;
    let hosted = row_exists(
        &mut transaction,
        "SELECT 1 FROM domains WHERE domain = ?",
        domain.as_str(),
    )
    .await?;
    if !hosted {
        return Err(StoreError::NotFound {
            kind: "domain",
            name: domain.to_string(),
        });
    }
    let has_keys = row_exists(
        &mut transaction,
        "SELECT 1 FROM dkim_keys WHERE domain = ?",
        domain.as_str(),
    )
    .await?;
    if !has_keys {
        let created_unix = now_unix();
        for key in &keys {
            let result = sqlx::query(
                "INSERT INTO dkim_keys (domain, selector, algorithm, public_key, private_key_pkcs8, created_unix)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(domain.as_str())
            .bind(&key.selector)
            .bind(key.algorithm.as_str())
            .bind(&key.public_key)
            .bind(key.private_key_pkcs8.expose())
            .bind(created_unix)
            .execute(&mut *transaction)
            .await;
            already_exists_if_unique(result, "DKIM selector", || key.selector.clone())?;
        }
        transaction.commit().await?;
    } else {
        drop(transaction);
    }
    dkim_key_list(database, Some(domain)).await
}

pub(super) async fn dkim_key_list(
    database: &Database,
    domain: Option<&Domain>,
) -> StoreResult<Vec<DkimKey>> {
    let rows = sqlx::query(
        "SELECT * FROM dkim_keys WHERE ?1 IS NULL OR domain = ?1 ORDER BY domain, selector",
    )
    .bind(domain.map(Domain::as_str))
    .fetch_all(&database.reader)
    .await?;
    rows.iter().map(dkim_key_from_row).collect()
}

pub(super) async fn dns_record_add(
    database: &Database,
    record: NewDnsRecord,
) -> StoreResult<DnsRecord> {
    if record.name.is_empty() || record.name.len() > DNS_RECORD_NAME_OCTETS_MAX {
        return Err(StoreError::Refused(format!(
            "a record name has 1 to {DNS_RECORD_NAME_OCTETS_MAX} octets"
        )));
    }
    if record.value.is_empty() || record.value.len() > DNS_RECORD_VALUE_OCTETS_MAX {
        return Err(StoreError::Refused(format!(
            "a record value has 1 to {DNS_RECORD_VALUE_OCTETS_MAX} octets"
        )));
    }
    let mut transaction = database.begin_write().await?;
    let hosted = row_exists(
        &mut transaction,
        "SELECT 1 FROM domains WHERE domain = ?",
        record.domain.as_str(),
    )
    .await?;
    if !hosted {
        return Err(StoreError::NotFound {
            kind: "domain",
            name: record.domain.to_string(),
        });
    }
    let count: i64 = sqlx::query("SELECT COUNT(*) FROM dns_records WHERE domain = ?")
        .bind(record.domain.as_str())
        .fetch_one(&mut *transaction)
        .await?
        .get(0);
    if count >= DNS_RECORDS_PER_DOMAIN_MAX as i64 {
        return Err(StoreError::Refused(format!(
            "domain {} has {DNS_RECORDS_PER_DOMAIN_MAX} custom records already",
            record.domain
        )));
    }
    let created_unix = now_unix();
    let result = sqlx::query(
        "INSERT INTO dns_records (domain, name, record_type, ttl_seconds, value, created_unix)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(record.domain.as_str())
    .bind(&record.name)
    .bind(&record.record_type)
    .bind(i64::from(record.ttl_seconds))
    .bind(&record.value)
    .bind(created_unix)
    .execute(&mut *transaction)
    .await;
    let id = already_exists_if_unique(result, "record", || {
        format!("{} {} {}", record.name, record.record_type, record.value)
    })?
    .last_insert_rowid();
    transaction.commit().await?;
    Ok(DnsRecord {
        id,
        domain: record.domain,
        name: record.name,
        record_type: record.record_type,
        ttl_seconds: record.ttl_seconds,
        value: record.value,
        created_unix,
    })
}

pub(super) async fn dns_record_list(
    database: &Database,
    domain: Option<&Domain>,
) -> StoreResult<Vec<DnsRecord>> {
    let rows = sqlx::query(
        "SELECT * FROM dns_records WHERE ?1 IS NULL OR domain = ?1
         ORDER BY domain, name, record_type, dns_record_id",
    )
    .bind(domain.map(Domain::as_str))
    .fetch_all(&database.reader)
    .await?;
    rows.iter().map(dns_record_from_row).collect()
}

pub(super) async fn dns_record_remove(
    database: &Database,
    domain: &Domain,
    id: i64,
) -> StoreResult<()> {
    let result = sqlx::query("DELETE FROM dns_records WHERE domain = ? AND dns_record_id = ?")
        .bind(domain.as_str())
        .bind(id)
        .execute(&database.writer)
        .await?;
    if result.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            kind: "record",
            name: format!("{id} of {domain}"),
        });
    }
    Ok(())
}
