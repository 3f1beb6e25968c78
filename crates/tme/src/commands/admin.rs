//! `tme partner|domain|account|alias add|list|show|set|remove`: the directory from the shell.
//!
//! These work on the data directory whether or not `tme serve` runs on it: both go through
//! the store, whose write transactions serialise them, and a running node reads the
//! directory afresh on every lookup.

use std::io::BufRead;

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use tme_core::{Domain, EmailAddress};
use tme_store::{Account, AccountState, AliasSource, Branding, NewAccount, Store};

use crate::cli::{
    AccountCommand, AliasCommand, AppPasswordCommand, BrandingArgs, DomainCommand, PartnerCommand,
};
use crate::data_dir::DataDir;
use crate::units::{format_bytes, parse_bytes};

pub(crate) fn print_json(value: &impl Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints rows as aligned columns under a header.
pub(crate) fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|title| title.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|title| title.to_string()).collect());
    for row in rows {
        line(row);
    }
}

fn read_password_from_stdin() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("the password read from standard input is empty");
    }
    Ok(password)
}

pub(crate) fn parse_domain(text: &str) -> Result<Domain> {
    Domain::parse(text).map_err(|error| anyhow!("{text:?} is not a valid domain: {error}"))
}

fn parse_address(text: &str) -> Result<EmailAddress> {
    EmailAddress::parse(text).map_err(|error| anyhow!("{text:?} is not a valid address: {error}"))
}

fn branding_from(args: BrandingArgs, mut branding: Branding) -> Result<Branding> {
    for colour in [&args.colour_primary, &args.colour_accent]
        .into_iter()
        .flatten()
    {
        let valid = colour.len() <= 32
            && colour
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "#(),. %".contains(c));
        if !valid {
            bail!("{colour:?} is not a CSS colour (write e.g. #1a73e8)");
        }
    }
    if args.product_name.is_some() {
        branding.product_name = args.product_name;
    }
    if args.logo_url.is_some() {
        branding.logo_url = args.logo_url;
    }
    if args.colour_primary.is_some() {
        branding.colour_primary = args.colour_primary;
    }
    if args.colour_accent.is_some() {
        branding.colour_accent = args.colour_accent;
    }
    Ok(branding)
}

pub async fn partner(store: &Store, _data_dir: &DataDir, command: PartnerCommand) -> Result<()> {
    let directory = &store.directory;
    match command {
        PartnerCommand::Add { name, branding } => {
            directory
                .partner_add(&name, branding_from(branding, Branding::default())?)
                .await?;
            println!("added partner {name}");
        }
        PartnerCommand::List(list) => {
            let partners = directory.partner_list().await?;
            if list.json {
                return print_json(&partners);
            }
            let rows = partners
                .iter()
                .map(|partner| {
                    vec![
                        partner.name.clone(),
                        partner.branding.product_name.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            print_table(&["NAME", "PRODUCT"], rows);
        }
        PartnerCommand::Show { name, list } => {
            let partner = directory
                .partner_get(&name)
                .await?
                .ok_or_else(|| anyhow!("no partner named {name:?}; see `tme partner list`"))?;
            let domains = directory.domain_list(Some(&name)).await?;
            #[derive(Serialize)]
            struct View<'a> {
                #[serde(flatten)]
                partner: &'a tme_store::Partner,
                domains: Vec<String>,
            }
            let view = View {
                partner: &partner,
                domains: domains.iter().map(|d| d.domain.to_string()).collect(),
            };
            if list.json {
                return print_json(&view);
            }
            println!("name          {}", partner.name);
            println!(
                "product name  {}",
                partner.branding.product_name.as_deref().unwrap_or("-")
            );
            println!(
                "logo          {}",
                partner.branding.logo_url.as_deref().unwrap_or("-")
            );
            println!(
                "colours       {} {}",
                partner.branding.colour_primary.as_deref().unwrap_or("-"),
                partner.branding.colour_accent.as_deref().unwrap_or("-")
            );
            println!(
                "domains       {}",
                if view.domains.is_empty() {
                    "-".to_owned()
                } else {
                    view.domains.join(", ")
                }
            );
        }
        PartnerCommand::Set { name, branding } => {
            let partner = directory
                .partner_get(&name)
                .await?
                .ok_or_else(|| anyhow!("no partner named {name:?}; see `tme partner list`"))?;
            directory
                .partner_set_branding(&name, branding_from(branding, partner.branding)?)
                .await?;
            println!("updated partner {name}");
        }
        PartnerCommand::Remove { name } => {
            directory.partner_remove(&name).await?;
            println!("removed partner {name}");
        }
    }
    Ok(())
}

pub async fn domain(store: &Store, data_dir: &DataDir, command: DomainCommand) -> Result<()> {
    let directory = &store.directory;
    match command {
        DomainCommand::Add {
            domains,
            partner,
            file,
            skip_existing,
        } => {
            super::dns::domains_add(store, domains, file, &partner, skip_existing).await?;
        }
        DomainCommand::List { partner, list } => {
            let domains = directory.domain_list(partner.as_deref()).await?;
            if list.json {
                return print_json(&domains);
            }
            let rows = domains
                .iter()
                .map(|record| {
                    vec![
                        record.domain.to_string(),
                        record.domain.to_unicode(),
                        record.partner.clone(),
                    ]
                })
                .collect();
            print_table(&["DOMAIN", "UNICODE", "PARTNER"], rows);
        }
        DomainCommand::Show { domain, list } => {
            let domain = parse_domain(&domain)?;
            let record = directory.domain_get(&domain).await?.ok_or_else(|| {
                anyhow!("domain {domain} is not hosted here; see `tme domain list`")
            })?;
            let accounts = directory.account_list(Some(&domain)).await?.len();
            let aliases = directory.alias_list(Some(&domain)).await?.len();
            #[derive(Serialize)]
            struct View<'a> {
                #[serde(flatten)]
                record: &'a tme_store::DomainRecord,
                accounts: usize,
                aliases: usize,
            }
            if list.json {
                return print_json(&View {
                    record: &record,
                    accounts,
                    aliases,
                });
            }
            println!(
                "domain    {} ({})",
                record.domain,
                record.domain.to_unicode()
            );
            println!("partner   {}", record.partner);
            println!("accounts  {accounts}");
            println!("aliases   {aliases}");
            super::dns::print_records(store, data_dir, &domain).await?;
        }
        DomainCommand::Set { domain, partner } => {
            let domain = parse_domain(&domain)?;
            directory.domain_set_partner(&domain, &partner).await?;
            println!("domain {domain} now belongs to partner {partner}");
        }
        DomainCommand::Remove { domain } => {
            let domain = parse_domain(&domain)?;
            directory.domain_remove(&domain).await?;
            println!("removed domain {domain}");
        }
        DomainCommand::Record { command } => super::dns::record(store, data_dir, command).await?,
        DomainCommand::Check { domain, list } => {
            super::dns::check(store, data_dir, &parse_domain(&domain)?, list.json).await?
        }
    }
    Ok(())
}

async fn find_account(store: &Store, address: &str) -> Result<Account> {
    let address = parse_address(address)?;
    store
        .directory
        .account_get(&address)
        .await?
        .ok_or_else(|| anyhow!("no account {address}; see `tme account list`"))
}

#[derive(Serialize)]
struct AccountView<'a> {
    #[serde(flatten)]
    account: &'a Account,
    used_bytes: u64,
    messages: u64,
}

pub async fn account(store: &Store, data_dir: &DataDir, command: AccountCommand) -> Result<()> {
    let directory = &store.directory;
    match command {
        AccountCommand::Add {
            address,
            password_stdin,
            display_name,
            quota,
        } => {
            let address = parse_address(&address)?;
            if !password_stdin {
                bail!(
                    "give the password on standard input with --password-stdin (never on the command line, where other users can see it)"
                );
            }
            let password = read_password_from_stdin()?;
            let quota_bytes_max = match quota {
                Some(quota) => parse_bytes(&quota).map_err(|error| anyhow!(error))?,
                None => data_dir.config.directory.default_quota_bytes,
            };
            let password_hash = tme_core::password::hash_password(&password)?;
            store
                .account_create(NewAccount {
                    address: address.clone(),
                    display_name,
                    password_hash,
                    quota_bytes_max,
                })
                .await?;
            println!("added account {address}");
        }
        AccountCommand::List { domain, list } => {
            let domain = domain.as_deref().map(parse_domain).transpose()?;
            let accounts = directory.account_list(domain.as_ref()).await?;
            let mut views = Vec::with_capacity(accounts.len());
            for account in &accounts {
                let usage = store
                    .mail
                    .account_usage(account.id)
                    .await
                    .unwrap_or_default();
                views.push(AccountView {
                    account,
                    used_bytes: usage.used_bytes,
                    messages: usage.messages,
                });
            }
            if list.json {
                return print_json(&views);
            }
            let rows = views
                .iter()
                .map(|view| {
                    vec![
                        view.account.address.to_string(),
                        view.account.state.as_str().to_owned(),
                        format!(
                            "{} / {}",
                            format_bytes(view.used_bytes),
                            format_bytes(view.account.quota_bytes_max)
                        ),
                        view.messages.to_string(),
                    ]
                })
                .collect();
            print_table(&["ADDRESS", "STATE", "USED / QUOTA", "MESSAGES"], rows);
        }
        AccountCommand::Show { address, list } => {
            let account = find_account(store, &address).await?;
            let usage = store
                .mail
                .account_usage(account.id)
                .await
                .unwrap_or_default();
            let view = AccountView {
                account: &account,
                used_bytes: usage.used_bytes,
                messages: usage.messages,
            };
            if list.json {
                return print_json(&view);
            }
            println!("address       {}", account.address);
            println!(
                "display name  {}",
                account.display_name.as_deref().unwrap_or("-")
            );
            println!("state         {}", account.state.as_str());
            println!(
                "quota         {} of {} used, {} messages",
                format_bytes(usage.used_bytes),
                format_bytes(account.quota_bytes_max),
                usage.messages
            );
            println!(
                "app passwords {}",
                directory.app_password_list(account.id).await?.len()
            );
        }
        AccountCommand::Set {
            address,
            password_stdin,
            display_name,
            quota,
            state,
        } => {
            let account = find_account(store, &address).await?;
            if password_stdin {
                let hash = tme_core::password::hash_password(&read_password_from_stdin()?)?;
                directory
                    .account_set_password_hash(account.id, &hash)
                    .await?;
            }
            if let Some(name) = display_name {
                let name = Some(name).filter(|name| !name.is_empty());
                directory
                    .account_set_display_name(account.id, name.as_deref())
                    .await?;
            }
            if let Some(quota) = quota {
                let quota_bytes_max = parse_bytes(&quota).map_err(|error| anyhow!(error))?;
                directory
                    .account_set_quota(account.id, quota_bytes_max)
                    .await?;
                store
                    .mail
                    .account_ensure(account.id, quota_bytes_max)
                    .await?;
            }
            if let Some(state) = state {
                let state = AccountState::parse(&state).ok_or_else(|| {
                    anyhow!("state {state:?} is not one of active, send-locked, suspended")
                })?;
                directory.account_set_state(account.id, state).await?;
            }
            println!("updated account {}", account.address);
        }
        AccountCommand::Remove { address } => {
            let account = find_account(store, &address).await?;
            store.account_delete(&account).await?;
            println!("removed account {} and all its mail", account.address);
        }
        AccountCommand::AppPassword { command } => match command {
            AppPasswordCommand::Add { address, label } => {
                let account = find_account(store, &address).await?;
                let password = tme_core::password::generate_app_password();
                let hash = tme_core::password::hash_password(&password)?;
                let created = directory
                    .app_password_add(account.id, &label, &hash)
                    .await?;
                println!(
                    "app password {} ({label}) for {}: {password}",
                    created.id, account.address
                );
                println!("It is shown only now; store it in the client.");
            }
            AppPasswordCommand::List { address, list } => {
                let account = find_account(store, &address).await?;
                let passwords = directory.app_password_list(account.id).await?;
                if list.json {
                    return print_json(&passwords);
                }
                let rows = passwords
                    .iter()
                    .map(|password| {
                        vec![
                            password.id.to_string(),
                            password.label.clone(),
                            password.created_unix.to_string(),
                        ]
                    })
                    .collect();
                print_table(&["ID", "LABEL", "CREATED (UNIX)"], rows);
            }
            AppPasswordCommand::Remove { address, id } => {
                let account = find_account(store, &address).await?;
                directory.app_password_remove(account.id, id).await?;
                println!("removed app password {id} of {}", account.address);
            }
        },
    }
    Ok(())
}

fn parse_alias_source(text: &str) -> Result<AliasSource> {
    AliasSource::parse(text)
        .map_err(|error| anyhow!("{text:?} is not an address or @domain: {error}"))
}

fn parse_targets(targets: &[String]) -> Result<Vec<EmailAddress>> {
    targets.iter().map(|target| parse_address(target)).collect()
}

pub async fn alias(store: &Store, _data_dir: &DataDir, command: AliasCommand) -> Result<()> {
    let directory = &store.directory;
    match command {
        AliasCommand::Add { address, targets } => {
            let source = parse_alias_source(&address)?;
            directory
                .alias_add(&source, &parse_targets(&targets)?)
                .await?;
            println!("added alias {source}");
        }
        AliasCommand::List { domain, list } => {
            let domain = domain.as_deref().map(parse_domain).transpose()?;
            let aliases = directory.alias_list(domain.as_ref()).await?;
            if list.json {
                return print_json(&aliases);
            }
            let rows = aliases
                .iter()
                .map(|alias| {
                    let targets: Vec<String> =
                        alias.targets.iter().map(ToString::to_string).collect();
                    vec![alias.source.to_string(), targets.join(", ")]
                })
                .collect();
            print_table(&["ALIAS", "TARGETS"], rows);
        }
        AliasCommand::Show { address, list } => {
            let source = parse_alias_source(&address)?;
            let alias = directory
                .alias_get(&source)
                .await?
                .ok_or_else(|| anyhow!("no alias {source}; see `tme alias list`"))?;
            if list.json {
                return print_json(&alias);
            }
            println!("alias    {}", alias.source);
            for target in &alias.targets {
                println!("target   {target}");
            }
        }
        AliasCommand::Set { address, targets } => {
            let source = parse_alias_source(&address)?;
            directory
                .alias_set_targets(&source, &parse_targets(&targets)?)
                .await?;
            println!("updated alias {source}");
        }
        AliasCommand::Remove { address } => {
            let source = parse_alias_source(&address)?;
            directory.alias_remove(&source).await?;
            println!("removed alias {source}");
        }
    }
    Ok(())
}
