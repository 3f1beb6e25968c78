//! What each command does. One module per group of commands; each returns `anyhow::Result`
//! with context that tells the user what to fix.

mod admin;
mod dns;
mod import;
mod init;
mod login;
mod queue;
mod search;
mod spool;

use anyhow::Result;

use crate::cli::{Cli, Command, ConfigCommand, SpoolCommand, StoreCommand};
use crate::data_dir::DataDir;

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init { hostname } => {
            init::init(&cli.data_dir, &hostname).await?;
            println!("created {}", cli.data_dir.display());
            Ok(())
        }
        Command::Quickstart { hostname } => init::quickstart(&cli.data_dir, &hostname).await,
        Command::Serve => {
            let data_dir = DataDir::open(&cli.data_dir)?;
            crate::serve::serve(data_dir).await
        }
        Command::Config {
            command: ConfigCommand::Show,
        } => {
            let data_dir = DataDir::open(&cli.data_dir)?;
            print!("{}", data_dir.config.to_toml());
            Ok(())
        }
        Command::Store {
            command: StoreCommand::Gc,
        } => {
            let data_dir = DataDir::open(&cli.data_dir)?;
            let store = data_dir.open_store().await?;
            let (purged, collected) = store.collect_garbage(now_unix()).await?;
            println!(
                "purged {} message(s) and {} mailbox(es) past retention and {} old delivery key(s); deleted {} unreferenced blob(s) ({}), kept {}",
                purged.messages_purged,
                purged.mailboxes_purged,
                purged.delivery_keys_purged,
                collected.blobs_deleted,
                crate::units::format_bytes(collected.bytes_deleted),
                collected.blobs_kept
            );
            store.close().await;
            Ok(())
        }
        Command::Spool {
            command: SpoolCommand::List(list),
        } => {
            let data_dir = DataDir::open(&cli.data_dir)?;
            spool::list(&data_dir, list.json)
        }
        Command::Queue { command } => {
            with_store(&cli.data_dir, |store, _| {
                Box::pin(queue::run(store, command))
            })
            .await
        }
        Command::Login { command } => {
            with_store(&cli.data_dir, |store, _| {
                Box::pin(login::run(store, command))
            })
            .await
        }
        Command::Search { command } => {
            with_store(&cli.data_dir, |store, data_dir| {
                Box::pin(search::run(store, data_dir, command))
            })
            .await
        }
        Command::Import {
            address,
            path,
            mailbox,
        } => {
            let data_dir = DataDir::open(&cli.data_dir)?;
            let store = data_dir.open_store().await?;
            let result = import::import(&store, &address, &path, &mailbox).await;
            store.close().await;
            result
        }
        Command::Partner { command } => {
            with_store(&cli.data_dir, |store, data_dir| {
                Box::pin(admin::partner(store, data_dir, command))
            })
            .await
        }
        Command::Domain { command } => {
            with_store(&cli.data_dir, |store, data_dir| {
                Box::pin(admin::domain(store, data_dir, command))
            })
            .await
        }
        Command::Account { command } => {
            with_store(&cli.data_dir, |store, data_dir| {
                Box::pin(admin::account(store, data_dir, command))
            })
            .await
        }
        Command::Alias { command } => {
            with_store(&cli.data_dir, |store, data_dir| {
                Box::pin(admin::alias(store, data_dir, command))
            })
            .await
        }
    }
}

type CommandFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + 'a>>;

/// Opens the data directory and its store, runs `command`, and closes the store cleanly
/// whether or not the command failed.
async fn with_store(
    path: &std::path::Path,
    command: impl for<'a> FnOnce(&'a tme_store::Store, &'a DataDir) -> CommandFuture<'a>,
) -> Result<()> {
    let data_dir = DataDir::open(path)?;
    let store = data_dir.open_store().await?;
    let result = command(&store, &data_dir).await;
    store.close().await;
    result
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|duration| duration.as_secs() as i64)
        .unwrap_or(0)
}
