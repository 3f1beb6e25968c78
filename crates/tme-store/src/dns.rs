//! What the directory keeps for a domain's DNS: its DKIM keys and the custom records an
//! operator added.
//!
//! This module owns these types and their length limits. It does not know DNS syntax: a
//! custom record's value is presentation-format text that `tme-dns` parsed and checked before
//! it was stored, and checks again when it builds the zone. Keys are made elsewhere
//! (`tme-dns`); the store only keeps them, and never shows a private key (`Secret`).

use serde::{Deserialize, Serialize};
use tme_core::{Domain, Secret};

/// How many custom records one domain may have.
pub const DNS_RECORDS_PER_DOMAIN_MAX: usize = 1_000;
/// The longest owner name of a custom record, relative to its domain.
pub const DNS_RECORD_NAME_OCTETS_MAX: usize = 253;
/// The longest value of a custom record in presentation format (a long TXT fits).
pub const DNS_RECORD_VALUE_OCTETS_MAX: usize = 4_000;
/// How many DKIM keys one domain may have (rotation keeps the old beside the new).
pub const DKIM_KEYS_PER_DOMAIN_MAX: usize = 16;

/// The signing algorithm of a DKIM key (RFC 6376 §3.3, RFC 8463).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DkimAlgorithm {
    /// `rsa-sha256`, `k=rsa`: every verifier knows it.
    RsaSha256,
    /// `ed25519-sha256`, `k=ed25519` (RFC 8463): small, signed beside the RSA one.
    Ed25519Sha256,
}

impl DkimAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            DkimAlgorithm::RsaSha256 => "rsa-sha256",
            DkimAlgorithm::Ed25519Sha256 => "ed25519-sha256",
        }
    }

    pub fn parse(text: &str) -> Option<DkimAlgorithm> {
        match text {
            "rsa-sha256" => Some(DkimAlgorithm::RsaSha256),
            "ed25519-sha256" => Some(DkimAlgorithm::Ed25519Sha256),
            _ => None,
        }
    }

    /// The `k=` tag of the key record.
    pub fn key_type(self) -> &'static str {
        match self {
            DkimAlgorithm::RsaSha256 => "rsa",
            DkimAlgorithm::Ed25519Sha256 => "ed25519",
        }
    }
}

/// A DKIM key to store.
#[derive(Debug, Clone)]
pub struct NewDkimKey {
    /// The selector (`s=`), a DNS label: the key's record is `SELECTOR._domainkey.DOMAIN`.
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// What the key record's `p=` carries: the SubjectPublicKeyInfo DER of an RSA key, the 32
    /// octets of an Ed25519 key.
    pub public_key: Vec<u8>,
    /// The private key, PKCS #8 DER, for signing. Never logged or shown.
    pub private_key_pkcs8: Secret<Vec<u8>>,
}

/// A domain's DKIM key.
#[derive(Debug, Clone, Serialize)]
pub struct DkimKey {
    pub domain: Domain,
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    pub public_key: Vec<u8>,
    /// Serialises as `[redacted]`.
    pub private_key_pkcs8: Secret<Vec<u8>>,
    pub created_unix: i64,
}

/// A custom record to store for a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDnsRecord {
    pub domain: Domain,
    /// The owner, relative to the domain, lower case; `@` is the domain itself.
    pub name: String,
    /// The type's mnemonic, upper case (`A`, `TXT`, `CAA`...).
    pub record_type: String,
    pub ttl_seconds: u32,
    /// The RDATA in zone-file presentation format.
    pub value: String,
}

/// A custom record of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    pub id: i64,
    pub domain: Domain,
    pub name: String,
    pub record_type: String,
    pub ttl_seconds: u32,
    pub value: String,
    pub created_unix: i64,
}
