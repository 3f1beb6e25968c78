//! A store with one partner, one domain and one account in it: the starting point of the
//! tests (and benchmarks) of the crates built on the store, so each does not repeat the
//! directory's setup. Nothing in the node calls it.

use std::path::Path;

use tme_core::config::StoreConfig;
use tme_core::password::hash_password;
use tme_core::{Domain, EmailAddress};

use crate::directory::{Account, Branding, NewAccount};
use crate::{Store, StoreError, StoreResult};

/// The partner every fixture account belongs to.
pub const FIXTURE_PARTNER: &str = "p";

/// Opens a store in `directory` holding the account `address` (its domain and the partner
/// `FIXTURE_PARTNER` made for it) with `password` and a quota of `quota_bytes_max`.
pub async fn store_with_account(
    directory: &Path,
    address: &str,
    password: &str,
    quota_bytes_max: u64,
) -> StoreResult<(Store, Account)> {
    let store = Store::open(directory, &StoreConfig::default()).await?;
    let address = EmailAddress::parse(address)
        .map_err(|error| StoreError::Refused(format!("fixture address: {error}")))?;
    let domain: Domain = address.domain().clone();
    store
        .directory
        .partner_add(FIXTURE_PARTNER, Branding::default())
        .await?;
    store.directory.domain_add(&domain, FIXTURE_PARTNER).await?;
    let password_hash = hash_password(password)
        .map_err(|error| StoreError::Refused(format!("fixture password: {error}")))?;
    let account = store
        .account_create(NewAccount {
            address,
            display_name: None,
            password_hash,
            quota_bytes_max,
        })
        .await?;
    Ok((store, account))
}
