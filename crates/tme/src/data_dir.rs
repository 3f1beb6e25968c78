//! A data directory: where its config, store and certificate are, and how to open them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tme_core::config::{CONFIG_FILE_NAME, Config};
use tme_store::Store;

/// An opened data directory: its config (with `TME_*` overrides applied) and its path.
#[derive(Debug, Clone)]
pub struct DataDir {
    pub path: PathBuf,
    pub config: Config,
}

impl DataDir {
    /// Reads the config of an existing data directory.
    pub fn open(path: &Path) -> Result<DataDir> {
        let config_path = path.join(CONFIG_FILE_NAME);
        if !config_path.is_file() {
            bail!(
                "{} is not a tme data directory (no {CONFIG_FILE_NAME}); create one with `tme init --data-dir {}` or point --data-dir / TME_DATA_DIR at one",
                path.display(),
                path.display()
            );
        }
        let config = Config::load(&config_path, std::env::vars())?;
        Ok(DataDir {
            path: path.to_path_buf(),
            config,
        })
    }

    /// Opens the store the config names.
    pub async fn open_store(&self) -> Result<Store> {
        Store::open(&self.path, &self.config.store)
            .await
            .with_context(|| format!("cannot open the store in {}", self.path.display()))
    }
}
