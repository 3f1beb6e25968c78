//! `tme search reindex ADDRESS`: builds an account's full-text index again from its mail
//! (`tme-search`). A node running on the same data directory needs no restart: its next
//! search reads the rebuilt index.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use tme_core::EmailAddress;
use tme_store::Store;

use crate::cli::SearchCommand;
use crate::data_dir::DataDir;

pub async fn run(store: &Store, data_dir: &DataDir, command: SearchCommand) -> Result<()> {
    match command {
        SearchCommand::Reindex { address } => {
            let address = EmailAddress::parse(&address)
                .map_err(|error| anyhow!("{address:?} is not a valid address: {error}"))?;
            let account = store
                .account_open(&address)
                .await
                .with_context(|| format!("no account {address}"))?;
            let indexes = tme_search::SearchIndexes::new(
                &data_dir.path,
                data_dir.config.search.clone(),
                store.clone(),
                Arc::new(tme_search::Metrics::default()),
            );
            let started = std::time::Instant::now();
            let documents = indexes
                .reindex(account.id)
                .await
                .with_context(|| format!("cannot rebuild the search index of {address}"))?;
            println!(
                "rebuilt the search index of {address}: {documents} message(s) in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}
