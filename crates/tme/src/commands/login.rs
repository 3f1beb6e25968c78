//! `tme login locks|unlock`: the login locks that `tme-auth` records in the directory after
//! repeated failures, shown to operators and lifted by them.

use anyhow::{Result, bail};
use tme_store::Store;

use crate::cli::LoginCommand;

pub async fn run(store: &Store, command: LoginCommand) -> Result<()> {
    match command {
        LoginCommand::Locks(list) => {
            let now = super::now_unix();
            let locks: Vec<_> = store
                .directory
                .login_lock_list()
                .await?
                .into_iter()
                .filter(|lock| lock.locked_until_unix > now)
                .collect();
            if list.json {
                println!("{}", serde_json::to_string_pretty(&locks)?);
                return Ok(());
            }
            if locks.is_empty() {
                println!("no login locks");
                return Ok(());
            }
            println!("{:<50} {:>8} {:>12}", "KEY", "FAILURES", "ENDS IN (s)");
            for lock in locks {
                println!(
                    "{:<50} {:>8} {:>12}",
                    lock.key,
                    lock.failures,
                    lock.locked_until_unix - now
                );
            }
            Ok(())
        }
        LoginCommand::Unlock { key } => {
            if !store.directory.login_lock_remove(&key).await? {
                bail!("no login lock on {key:?} (see `tme login locks`)");
            }
            println!("unlocked {key}");
            Ok(())
        }
    }
}
