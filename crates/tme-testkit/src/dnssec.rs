//! DNSSEC-signed zones for tests, made with Debian's ldnsutils (`scripts/test.sh` installs
//! it): `ldns-keygen` makes a key-signing and a zone-signing key (ECDSA P-256, algorithm 13),
//! `ldns-signzone` signs the zone (NSEC chain, signatures valid for four weeks from now), and
//! the key-signing key's DS record goes into the parent zone, its DNSKEY into a trust-anchor
//! file when the zone is the root. NSD serves the signed text as it is (`dns::Zone`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::dns::Zone;

const KEYGEN: &str = "/usr/bin/ldns-keygen";
const SIGNZONE: &str = "/usr/bin/ldns-signzone";

/// A signed zone, its DS record (for the parent) and the DNSKEY of its key-signing key (a
/// trust anchor), each a line of zone-file text.
#[derive(Debug)]
pub struct SignedZone {
    pub zone: Zone,
    pub ds: String,
    pub key_signing_dnskey: String,
    /// Holds the keys and files until the test ends.
    directory: tempfile::TempDir,
}

impl SignedZone {
    /// Writes the key-signing key's DNSKEY to a file in the zone's directory (the trust
    /// anchor file of `resolver.dnssec_trust_anchor_file`) and returns its path.
    pub fn write_trust_anchor(&self) -> Result<PathBuf> {
        let path = self.directory.path().join("trust-anchor.key");
        std::fs::write(&path, format!("{}\n", self.key_signing_dnskey))?;
        Ok(path)
    }
}

/// Signs the zone `origin` (`"."`, `"example.test."`) holding `records` (zone-file syntax,
/// absolute names; SOA and NS are added as `dns::Zone` adds them).
pub fn sign(origin: &str, records: &str) -> Result<SignedZone> {
    for tool in [KEYGEN, SIGNZONE] {
        if !Path::new(tool).exists() {
            bail!("{tool} is missing (scripts/test.sh installs it: apt-get install ldnsutils)");
        }
    }
    let directory = tempfile::Builder::new().prefix("tme-dnssec-").tempdir()?;
    let unsigned = crate::dns::zone_file(&Zone {
        origin: origin.to_owned(),
        records: records.to_owned(),
    });
    let unsigned_path = directory.path().join("zone");
    std::fs::write(&unsigned_path, unsigned)?;
    let key_signing = keygen(directory.path(), origin, true)?;
    let zone_signing = keygen(directory.path(), origin, false)?;
    let signed_path = directory.path().join("zone.signed");
    run(Command::new(SIGNZONE)
        .current_dir(directory.path())
        .arg("-f")
        .arg(&signed_path)
        .arg(&unsigned_path)
        .arg(&zone_signing)
        .arg(&key_signing))?;
    let signed = std::fs::read_to_string(&signed_path)?;
    let ds = first_record(&directory.path().join(format!("{key_signing}.ds")))?;
    let key_signing_dnskey = first_record(&directory.path().join(format!("{key_signing}.key")))?;
    Ok(SignedZone {
        zone: Zone {
            origin: origin.to_owned(),
            records: format!("$ORIGIN {origin}\n{signed}"),
        },
        ds,
        key_signing_dnskey,
        directory,
    })
}

/// Makes a key for `origin` in `directory`; returns its base name (`Korigin+013+id`).
fn keygen(directory: &Path, origin: &str, key_signing: bool) -> Result<String> {
    let mut command = Command::new(KEYGEN);
    command
        .current_dir(directory)
        .args(["-a", "ECDSAP256SHA256"]);
    if key_signing {
        command.arg("-k");
    }
    let output = run(command.arg(origin))?;
    let name = output.trim().to_owned();
    if name.is_empty() {
        bail!("ldns-keygen printed no key name");
    }
    Ok(name)
}

/// Runs `command`; its stdout, or an error with its stderr.
fn run(command: &mut Command) -> Result<String> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The first record line of a key or DS file (ldns appends `;{id = ...}` comments).
fn first_record(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .map(|line| line.split(';').next().unwrap_or("").trim())
        .find(|line| !line.is_empty())
        .map(str::to_owned)
        .with_context(|| format!("no record in {}", path.display()))
}
