//! `tme domain show` (its DNS records), `tme domain record add|list|remove` and
//! `tme domain check`: the DNS side of a domain from the shell. The records and the checks
//! are `tme-dns`'s; this module reads the directory, prints, and makes keys on `domain add`.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tme_core::Domain;
use tme_dns::check::{CheckFinding, CheckState, compare, expected_rrsets};
use tme_dns::{DomainInput, ZoneSettings, build_zone};
use tme_store::Store;

use super::admin::{parse_domain, print_json, print_table};
use crate::cli::DomainRecordCommand;
use crate::data_dir::DataDir;

/// Makes a new domain's DKIM keys (RSA-2048 and Ed25519) and stores them.
pub async fn make_dkim_keys(store: &Store, domain: &Domain) -> Result<()> {
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |duration| duration.as_secs() as i64);
    let keys = tokio::task::spawn_blocking(move || tme_dns::dkim::generate_domain_keys(now_unix))
        .await
        .context("DKIM key generation stopped")??;
    store.directory.dkim_keys_ensure(domain, keys).await?;
    Ok(())
}

async fn zone_of(store: &Store, data_dir: &DataDir, domain: &Domain) -> Result<tme_dns::Zone> {
    let settings = ZoneSettings::from_config(&data_dir.config)?;
    let keys = store.directory.dkim_key_list(Some(domain)).await?;
    let records = store.directory.dns_record_list(Some(domain)).await?;
    let (zone, problems) = build_zone(
        &settings,
        DomainInput {
            domain,
            dkim_keys: &keys,
            custom_records: &records,
        },
        0,
    )?;
    for problem in problems {
        eprintln!("warning: {problem}");
    }
    Ok(zone)
}

/// The records the `dns` role serves for `domain`, in zone-file syntax (the SOA aside: its
/// serial is the server's).
pub async fn print_records(store: &Store, data_dir: &DataDir, domain: &Domain) -> Result<()> {
    let zone = zone_of(store, data_dir, domain).await?;
    println!("dns records");
    for record in zone.records() {
        println!("  {}", tme_dns::zone::record_text(record));
    }
    Ok(())
}

pub async fn record(store: &Store, data_dir: &DataDir, command: DomainRecordCommand) -> Result<()> {
    let directory = &store.directory;
    match command {
        DomainRecordCommand::Add {
            domain,
            name,
            record_type,
            value,
            ttl,
        } => {
            let domain = parse_domain(&domain)?;
            if directory.domain_get(&domain).await?.is_none() {
                return Err(anyhow!(
                    "domain {domain} is not hosted here; see `tme domain list`"
                ));
            }
            let settings = ZoneSettings::from_config(&data_dir.config)?;
            let keys = directory.dkim_key_list(Some(&domain)).await?;
            let existing = directory.dns_record_list(Some(&domain)).await?;
            let new = tme_dns::custom::prepare(
                &settings,
                &domain,
                &keys,
                &existing,
                tme_dns::custom::RecordRequest {
                    name: &name,
                    record_type: &record_type,
                    value: &value,
                    ttl_seconds: ttl,
                },
            )
            .map_err(|error| anyhow!("record refused: {error}"))?;
            let added = directory.dns_record_add(new).await?;
            println!(
                "added record {}: {} {} {} {}",
                added.id, added.name, added.ttl_seconds, added.record_type, added.value
            );
        }
        DomainRecordCommand::List { domain, list } => {
            let domain = parse_domain(&domain)?;
            let records = directory.dns_record_list(Some(&domain)).await?;
            if list.json {
                return print_json(&records);
            }
            let rows = records
                .iter()
                .map(|record| {
                    vec![
                        record.id.to_string(),
                        record.name.clone(),
                        record.ttl_seconds.to_string(),
                        record.record_type.clone(),
                        record.value.clone(),
                    ]
                })
                .collect();
            print_table(&["ID", "NAME", "TTL", "TYPE", "VALUE"], rows);
        }
        DomainRecordCommand::Remove { domain, id } => {
            let domain = parse_domain(&domain)?;
            directory.dns_record_remove(&domain, id).await?;
            println!("removed record {id} of {domain}");
        }
    }
    Ok(())
}

/// Asks the public DNS for every RRset tme serves for `domain` and says what differs.
pub async fn check(store: &Store, data_dir: &DataDir, domain: &Domain, json: bool) -> Result<()> {
    if store.directory.domain_get(domain).await?.is_none() {
        return Err(anyhow!(
            "domain {domain} is not hosted here; see `tme domain list`"
        ));
    }
    let zone = zone_of(store, data_dir, domain).await?;
    let servers = tme_dns::lookup::servers(&data_dir.config.resolver.nameservers);
    let timeout = Duration::from_millis(data_dir.config.resolver.timeout_ms);
    let mut findings: Vec<CheckFinding> = Vec::new();
    for (name, record_type, expected) in expected_rrsets(&zone) {
        let found = tme_dns::lookup::lookup(&servers, &name, record_type, timeout).await;
        findings.push(compare(&expected, found));
    }
    if json {
        return print_json(&findings);
    }
    let mut wrong = 0;
    for finding in &findings {
        match &finding.state {
            CheckState::Ok => println!("ok        {} {}", finding.name, finding.record_type),
            CheckState::Missing => {
                wrong += 1;
                println!("missing   {} {}; set:", finding.name, finding.record_type);
                for record in &finding.expected {
                    println!("            {record}");
                }
            }
            CheckState::Different { found } => {
                wrong += 1;
                println!("different {} {}; found:", finding.name, finding.record_type);
                for record in found {
                    println!("            {record}");
                }
                println!("          set:");
                for record in &finding.expected {
                    println!("            {record}");
                }
            }
            CheckState::Unknown { error } => {
                wrong += 1;
                println!(
                    "unknown   {} {}: {error}",
                    finding.name, finding.record_type
                );
            }
        }
    }
    if wrong > 0 {
        return Err(anyhow!(
            "{wrong} of {} record sets of {domain} are not as tme serves them",
            findings.len()
        ));
    }
    println!("every record set of {domain} is as tme serves it");
    Ok(())
}
