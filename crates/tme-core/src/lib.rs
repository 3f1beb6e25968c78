//! Domain types, configuration and errors shared by every tme crate.
//!
//! This crate owns the vocabulary of the system (account, mailbox, message, blob, partner,
//! site, node, shard) as validated types that cannot hold invalid values, and the typed
//! configuration. It does no I/O beyond reading a config file and knows nothing of any
//! protocol or storage backend.

pub mod address;
pub mod config;
pub mod password;
pub mod secret;

pub use address::{AddressError, Domain, EmailAddress, LocalPart};
pub use secret::Secret;
