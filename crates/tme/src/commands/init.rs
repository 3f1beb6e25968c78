//! `tme init` and `tme quickstart`: a new data directory, and a demo on top of it.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use tme_core::config::{
    CONFIG_FILE_NAME, Config, DirectoryConfig, FilterConfig, ListenConfig, NodeConfig, QueueConfig,
    ResolverConfig, SmtpConfig, StoreConfig, TlsConfig,
};
use tme_core::{Domain, EmailAddress};
use tme_store::{Branding, NewAccount};

use crate::data_dir::DataDir;

const DEMO_PARTNER: &str = "Demo";
const DEMO_DOMAIN: &str = "demo.test";
const DEMO_ADDRESS: &str = "demo@demo.test";

/// Creates `path` with `tme.toml`, the store and a self-signed certificate. Refuses to touch
/// an existing data directory.
pub async fn init(path: &Path, hostname: &str) -> Result<()> {
    if path.join(CONFIG_FILE_NAME).exists() {
        bail!(
            "{} already holds a tme data directory; remove it or choose another --data-dir",
            path.display()
        );
    }
    if Domain::parse(hostname).is_err() && hostname != "localhost" {
        bail!("--hostname {hostname:?} is not a valid host name");
    }
    std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
    let config = Config {
        node: NodeConfig {
            hostname: hostname.to_owned(),
            ..NodeConfig::default()
        },
        listen: ListenConfig::quick_start(),
        tls: TlsConfig::default(),
        store: StoreConfig::default(),
        directory: DirectoryConfig::default(),
        smtp: SmtpConfig::default(),
        resolver: ResolverConfig::default(),
        filter: FilterConfig::default(),
        queue: QueueConfig::default(),
        dns: tme_core::config::DnsConfig::default(),
        login: tme_core::config::LoginConfig::default(),
        imap: tme_core::config::ImapConfig::default(),
        pop3: tme_core::config::Pop3Config::default(),
        search: tme_core::config::SearchConfig::default(),
        http: tme_core::config::HttpConfig::default(),
    };
    write_certificate(path, &config, hostname)?;
    let store = tme_store::Store::open(path, &config.store)
        .await
        .with_context(|| format!("cannot create the store in {}", path.display()))?;
    store.close().await;
    let text = format!(
        "# tme node configuration. Every key can be overridden by an environment variable:\n\
         # TME_ + the key path upper-cased with __ between levels, e.g. TME_LISTEN__SMTP.\n\n{}",
        config.to_toml()
    );
    // Written last, through a temporary file: a directory with tme.toml is a complete one.
    let temporary = path.join(format!("{CONFIG_FILE_NAME}.tmp"));
    let mut file = std::fs::File::create(&temporary)
        .with_context(|| format!("cannot create {}", temporary.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path.join(CONFIG_FILE_NAME))?;
    Ok(())
}

fn write_certificate(path: &Path, config: &Config, hostname: &str) -> Result<()> {
    let certificate_path = path.join(&config.tls.certificate);
    let key_path = path.join(&config.tls.private_key);
    if let Some(directory) = certificate_path.parent() {
        std::fs::create_dir_all(directory)?;
    }
    let names = vec![hostname.to_owned(), "localhost".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names)
        .context("cannot generate a self-signed certificate")?;
    std::fs::write(&certificate_path, certified.cert.pem())
        .with_context(|| format!("cannot write {}", certificate_path.display()))?;
    write_private(&key_path, certified.signing_key.serialize_pem().as_bytes())
        .with_context(|| format!("cannot write {}", key_path.display()))?;
    Ok(())
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Init if needed, add the demo partner, domain and account, print how to reach them, serve.
pub async fn quickstart(path: &Path, hostname: &str) -> Result<()> {
    if !path.join(CONFIG_FILE_NAME).exists() {
        init(path, hostname).await?;
    }
    let data_dir = DataDir::open(path)?;
    let store = data_dir.open_store().await?;
    let directory = &store.directory;
    if directory.partner_get(DEMO_PARTNER).await?.is_none() {
        let branding = Branding {
            product_name: Some("Demo Mail".to_owned()),
            ..Branding::default()
        };
        directory.partner_add(DEMO_PARTNER, branding).await?;
    }
    let domain = Domain::parse(DEMO_DOMAIN)?;
    if directory.domain_get(&domain).await?.is_none() {
        directory.domain_add(&domain, DEMO_PARTNER).await?;
        super::dns::make_dkim_keys(&store, &domain).await?;
    }
    let address = EmailAddress::parse(DEMO_ADDRESS)?;
    let password_file = path.join("demo-password.txt");
    let password = match directory.account_get(&address).await? {
        Some(_) => std::fs::read_to_string(&password_file)
            .map(|text| text.trim().to_owned())
            .unwrap_or_else(|_| "(set earlier; see `tme account set --password-stdin`)".to_owned()),
        None => {
            let password = tme_core::password::generate_app_password();
            let hash = tme_core::password::hash_password(&password)?;
            store
                .account_create(NewAccount {
                    address: address.clone(),
                    display_name: Some("Demo User".to_owned()),
                    password_hash: hash,
                    quota_bytes_max: data_dir.config.directory.default_quota_bytes,
                })
                .await?;
            write_private(&password_file, password.as_bytes()).ok();
            password
        }
    };
    store.close().await;
    println!("tme quick start: data in {}", path.display());
    println!();
    println!("  account   {DEMO_ADDRESS}");
    println!("  password  {password}");
    println!();
    for (role, address) in data_dir.config.listen.listeners() {
        let url = match role {
            "http" => format!("http://{address}/"),
            "https" => format!("https://{address}/ (the certificate is self-signed)"),
            _ => address.to_string(),
        };
        println!("  {role:<12} {url}");
    }
    println!();
    println!(
        "  health    http://{}/healthz",
        data_dir
            .config
            .listen
            .http
            .map_or("-".to_owned(), |a| a.to_string())
    );
    println!("Stop with Ctrl-C.");
    crate::serve::serve(data_dir).await
}
