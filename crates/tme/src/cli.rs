//! The command line (**contract**: README "Command line"): what each subcommand takes.
//!
//! Parsing only; what a command does lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tme",
    version,
    about = "The Messaging Engine: mail hosting in one binary"
)]
pub struct Cli {
    /// The data directory: config, store and certificates.
    #[arg(
        long,
        global = true,
        env = "TME_DATA_DIR",
        default_value = "./tme-data"
    )]
    pub data_dir: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a data directory with tme.toml, the embedded store and a self-signed certificate.
    Init {
        /// The host name the node announces.
        #[arg(long, default_value = "localhost")]
        hostname: String,
    },
    /// Run the node in the foreground until SIGTERM or SIGINT.
    Serve,
    /// Init (if needed), add a demo partner, domain and account, print how to reach them, serve.
    Quickstart {
        #[arg(long, default_value = "localhost")]
        hostname: String,
    },
    /// Show the effective configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Partners: white-label resellers and their branding.
    Partner {
        #[command(subcommand)]
        command: PartnerCommand,
    },
    /// Hosted domains.
    Domain {
        #[command(subcommand)]
        command: DomainCommand,
    },
    /// End-user accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Aliases: addresses that forward to others; `@domain` is a catch-all.
    Alias {
        #[command(subcommand)]
        command: AliasCommand,
    },
    /// Import an mbox file, a Maildir folder (with Maildir++ subfolders) or a folder of .eml
    /// files into an account.
    Import {
        address: String,
        path: PathBuf,
        /// The mailbox to import into (created if missing).
        #[arg(long, default_value = "INBOX")]
        mailbox: String,
    },
    /// Store maintenance.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// The inbound spool: mail accepted while the store was unavailable.
    Spool {
        #[command(subcommand)]
        command: SpoolCommand,
    },
    /// The outbound queue: mail waiting to leave.
    Queue {
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// Login throttling: the client addresses and accounts locked after failed logins.
    Login {
        #[command(subcommand)]
        command: LoginCommand,
    },
    /// The full-text index behind IMAP SEARCH BODY and TEXT.
    Search {
        #[command(subcommand)]
        command: SearchCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum SearchCommand {
    /// Empty an account's index and build it again from its mail (a running node keeps
    /// answering searches meanwhile, by reading the messages while the index is written).
    Reindex {
        /// The account's address.
        address: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List the queued messages: sender, recipients waiting, attempts, next attempt.
    List(ListArgs),
    /// Show one message: its envelope and each recipient's state and last reply.
    Show {
        id: i64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Try a message again now (a running node picks it up within seconds).
    Retry { id: i64 },
    /// Hold a message: no attempts until it is released.
    Hold { id: i64 },
    /// Release a held message.
    Release { id: i64 },
    /// Remove a message without delivering it or telling its sender.
    Remove { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum LoginCommand {
    /// List the locks in force: key (`ip:ADDRESS` or `account:ADDRESS`), failures, end.
    Locks(ListArgs),
    /// Lift a lock at once (a running node sees it at the next login).
    Unlock {
        /// The key as `tme login locks` shows it.
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SpoolCommand {
    /// List the entries waiting for delivery and those in quarantine, with the reason.
    List(ListArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the config in force (file plus TME_* overrides), secrets redacted.
    Show,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Purge what is past retention and delete blobs nothing refers to.
    Gc,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Default)]
pub struct BrandingArgs {
    #[arg(long)]
    pub product_name: Option<String>,
    #[arg(long)]
    pub logo_url: Option<String>,
    /// A CSS colour such as #1a73e8.
    #[arg(long)]
    pub colour_primary: Option<String>,
    #[arg(long)]
    pub colour_accent: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PartnerCommand {
    Add {
        name: String,
        #[command(flatten)]
        branding: BrandingArgs,
    },
    List(ListArgs),
    Show {
        name: String,
        #[command(flatten)]
        list: ListArgs,
    },
    Set {
        name: String,
        #[command(flatten)]
        branding: BrandingArgs,
    },
    Remove {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DomainCommand {
    /// Add domains, each with its DKIM keys (made in parallel, one thread per core).
    Add {
        /// The domains; `--file` adds those of a file too.
        #[arg(required_unless_present = "file")]
        domains: Vec<String>,
        #[arg(long)]
        partner: String,
        /// A file with one domain per line (`#` starts a comment), `-` for standard input.
        #[arg(long, value_name = "FILE")]
        file: Option<std::path::PathBuf>,
        /// Skip domains already hosted instead of refusing them all (to resume an import).
        #[arg(long)]
        skip_existing: bool,
    },
    List {
        #[arg(long)]
        partner: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },
    Show {
        domain: String,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Move the domain to another partner.
    Set {
        domain: String,
        #[arg(long)]
        partner: String,
    },
    Remove {
        domain: String,
    },
    /// Custom DNS records served beside the generated ones.
    Record {
        #[command(subcommand)]
        command: DomainRecordCommand,
    },
    /// Ask the public DNS (through [resolver]) whether it says what tme serves.
    Check {
        domain: String,
        #[command(flatten)]
        list: ListArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DomainRecordCommand {
    /// Add a record: NAME relative to the domain (@ for the domain itself), TYPE one of A,
    /// AAAA, CNAME, TXT, MX, SRV, CAA, VALUE in zone-file syntax.
    Add {
        domain: String,
        name: String,
        #[arg(value_name = "TYPE")]
        record_type: String,
        value: String,
        /// Seconds (default 3600).
        #[arg(long)]
        ttl: Option<u32>,
    },
    List {
        domain: String,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Remove a record by the ID `list` shows.
    Remove { domain: String, id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    Add {
        address: String,
        /// Read the password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        display_name: Option<String>,
        /// The quota, in bytes or with a unit: 500M, 10G.
        #[arg(long)]
        quota: Option<String>,
    },
    List {
        #[arg(long)]
        domain: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },
    Show {
        address: String,
        #[command(flatten)]
        list: ListArgs,
    },
    Set {
        address: String,
        /// Read a new password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        quota: Option<String>,
        /// active, send-locked or suspended.
        #[arg(long)]
        state: Option<String>,
    },
    Remove {
        address: String,
    },
    /// App passwords: one per client, usable in place of the account's password.
    AppPassword {
        #[command(subcommand)]
        command: AppPasswordCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AppPasswordCommand {
    /// Create one and print it once.
    Add {
        address: String,
        label: String,
    },
    List {
        address: String,
        #[command(flatten)]
        list: ListArgs,
    },
    Remove {
        address: String,
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    Add {
        /// `user@domain`, or `@domain` for a catch-all.
        address: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    List {
        #[arg(long)]
        domain: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },
    Show {
        address: String,
        #[command(flatten)]
        list: ListArgs,
    },
    Set {
        address: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    Remove {
        address: String,
    },
}
