//! `tme domain show` (its DNS records), `tme domain record add|list|remove` and
//! `tme domain check`: the DNS side of a domain from the shell. The records and the checks
//! are `tme-dns`'s; this module reads the directory, prints, and runs `domain add` (many
//! domains at once, their keys made in parallel).

use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tme_core::Domain;
use tme_dns::check::{CheckFinding, CheckState, compare, expected_rrsets};
use tme_dns::{DomainInput, ZoneSettings, build_zone};
use tme_store::{Store, StoreError};

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

/// `tme domain add DOMAIN... [--file FILE]`: every name is checked first, and nothing is
/// added when one is not a domain, or is hosted already (unless `skip_existing`, which makes
/// an interrupted import safe to run again). The DKIM keys are made on every core (an
/// RSA-2048 key takes a noticeable fraction of a second, so a thousand domains would take
/// minutes on one), and each domain is stored with its keys as soon as they are ready, so a
/// running node serves it at once, keys and all.
pub async fn domains_add(
    store: &Store,
    names: Vec<String>,
    file: Option<PathBuf>,
    partner: &str,
    skip_existing: bool,
) -> Result<()> {
    let mut texts: Vec<(String, String)> = names
        .into_iter()
        .map(|name| ("argument".to_owned(), name))
        .collect();
    if let Some(path) = &file {
        let content = if path.as_os_str() == "-" {
            let mut content = String::new();
            std::io::stdin()
                .read_to_string(&mut content)
                .context("cannot read the domains from standard input")?;
            content
        } else {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?
        };
        for (index, line) in content.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if !line.is_empty() {
                texts.push((format!("{}:{}", path.display(), index + 1), line.to_owned()));
            }
        }
    }
    let mut domains: Vec<Domain> = Vec::with_capacity(texts.len());
    let mut seen = HashSet::new();
    for (place, text) in &texts {
        let domain = parse_domain(text).with_context(|| format!("{place}: nothing added"))?;
        if seen.insert(domain.clone()) {
            domains.push(domain);
        }
    }
    if store.directory.partner_get(partner).await?.is_none() {
        bail!("no partner named {partner:?}; see `tme partner list`");
    }
    let hosted: HashSet<Domain> = store
        .directory
        .domain_list(None)
        .await?
        .into_iter()
        .map(|record| record.domain)
        .collect();
    let (existing, new): (Vec<Domain>, Vec<Domain>) = domains
        .into_iter()
        .partition(|domain| hosted.contains(domain));
    if !existing.is_empty() && !skip_existing {
        let named: Vec<String> = existing.iter().take(5).map(Domain::to_string).collect();
        let more = existing.len().saturating_sub(named.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        bail!(
            "already hosted: {}{more}; nothing added (--skip-existing adds the others)",
            named.join(", ")
        );
    }
    if new.is_empty() {
        println!("nothing to add: every domain is hosted already");
        return Ok(());
    }

    let started = std::time::Instant::now();
    let progress = ProgressBar::new(new.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{spinner} DKIM keys [{bar:30}] {pos}/{len} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |duration| duration.as_secs() as i64);
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(new.len());
    let next = Arc::new(AtomicUsize::new(0));
    let (sender, mut receiver) = tokio::sync::mpsc::channel(workers * 2);
    for _ in 0..workers {
        let (next, sender, count) = (next.clone(), sender.clone(), new.len());
        tokio::task::spawn_blocking(move || {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return;
                }
                let keys = tme_dns::dkim::generate_domain_keys(now_unix);
                // The receiver is gone when storing failed: stop making keys.
                if sender.blocking_send((index, keys)).is_err() {
                    return;
                }
            }
        });
    }
    drop(sender);
    let mut added = 0;
    while let Some((index, keys)) = receiver.recv().await {
        let domain = &new[index];
        let stored = async {
            let keys = keys?;
            match store.directory.domain_add(domain, partner).await {
                Ok(_) => {}
                // Added meanwhile by another process.
                Err(StoreError::AlreadyExists { .. }) if skip_existing => {}
                Err(error) => return Err(anyhow::Error::from(error)),
            }
            store.directory.dkim_keys_ensure(domain, keys).await?;
            anyhow::Ok(())
        };
        stored.await.with_context(|| {
            format!(
                "cannot add {domain} ({added} of {} added before it)",
                new.len()
            )
        })?;
        added += 1;
        progress.suspend(|| println!("added domain {domain}"));
        progress.inc(1);
    }
    progress.finish_and_clear();
    if added != new.len() {
        bail!(
            "key generation stopped: {added} of {} domains added",
            new.len()
        );
    }
    if texts.len() > 1 {
        println!(
            "added {added} domain{} ({} hosted already, skipped) in {:.1} s, keys made on {workers} thread{}",
            if added == 1 { "" } else { "s" },
            existing.len(),
            started.elapsed().as_secs_f64(),
            if workers == 1 { "" } else { "s" },
        );
    }
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
