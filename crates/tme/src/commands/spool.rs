//! `tme spool list`: what the inbound spool holds, waiting or quarantined. Reads file names
//! only, so it is safe beside a running node.

use anyhow::{Context, Result};
use serde::Serialize;
use tme_store::spool::{InboundSpool, SpoolDepth, SpoolListing, SpoolState};

use super::admin::{print_json, print_table};
use crate::data_dir::DataDir;
use crate::units::format_bytes;

pub fn list(data_dir: &DataDir, json: bool) -> Result<()> {
    let path = data_dir.path.join(tme_store::SPOOL_DIRECTORY_NAME);
    let spool = InboundSpool::open(&path, data_dir.config.smtp.spool_bytes_max)
        .with_context(|| format!("cannot open the inbound spool {}", path.display()))?;
    let entries = spool
        .list()
        .with_context(|| format!("cannot list the inbound spool {}", path.display()))?;
    if json {
        #[derive(Serialize)]
        struct View {
            depth: SpoolDepth,
            bytes_max: u64,
            entries: Vec<SpoolListing>,
        }
        return print_json(&View {
            depth: spool.depth(),
            bytes_max: data_dir.config.smtp.spool_bytes_max,
            entries,
        });
    }
    let rows = entries
        .into_iter()
        .map(|entry| {
            vec![
                entry.id.to_string(),
                match entry.state {
                    SpoolState::Waiting => "waiting".to_owned(),
                    SpoolState::Quarantined => "quarantined".to_owned(),
                },
                format_bytes(entry.bytes),
                entry
                    .spooled_unix_ms
                    .and_then(|milliseconds| {
                        time::OffsetDateTime::from_unix_timestamp(milliseconds / 1000).ok()
                    })
                    .and_then(|when| {
                        when.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_default(),
                entry.reason.unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["ENTRY", "STATE", "SIZE", "SPOOLED", "REASON"], rows);
    Ok(())
}
