//! DKIM signing of outgoing mail (RFC 6376) with the sending domain's own keys: one
//! signature per key the directory holds (RSA-SHA256 and Ed25519-SHA256, RFC 8463),
//! relaxed/relaxed canonicalisation. The signatures are header fields to put above the
//! message; the message itself is not changed.
//!
//! Reading an RSA private key (ring checks the key pair) costs about as much as a
//! signature, so `SignerCache` keeps each key's signer ready; signing is CPU work that the
//! caller should run off the async workers.

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::HeaderWriter;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tme_store::{DkimAlgorithm, DkimKey};

/// The header fields signed when present, and once more each where it matters to forbid
/// adding one (RFC 6376 §8.15: over-signing From, Subject and the like).
const SIGNED_FIELDS: &[&str] = &[
    "From",
    "From",
    "Reply-To",
    "Subject",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// Why a message could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the DKIM key {selector} of {domain} cannot be read: {reason}")]
    Key {
        domain: String,
        selector: String,
        reason: String,
    },
    #[error("signing with {selector}: {reason}")]
    Sign { selector: String, reason: String },
}

/// The `DKIM-Signature` fields for `message`, one per key, ready to prepend (CRLF-ended).
pub fn signature_fields(message: &[u8], keys: &[DkimKey]) -> Result<Vec<u8>, SignError> {
    let mut fields = Vec::new();
    for key in keys {
        fields.extend_from_slice(&Signer::new(key)?.field(message)?);
    }
    Ok(fields)
}

/// The most signers a cache keeps; past it, the cache starts again empty.
const SIGNERS_CACHED_MAX: usize = 4096;

/// A key's name in the cache: domain, selector, creation time.
type KeyName = (String, String, i64);

/// Ready signers by key (domain, selector, creation time: a rotated key is a new entry).
#[derive(Debug, Default, Clone)]
pub struct SignerCache {
    signers: Arc<Mutex<HashMap<KeyName, Arc<Signer>>>>,
}

impl SignerCache {
    /// Like `signature_fields`, with each key's signer read once.
    pub fn signature_fields(&self, message: &[u8], keys: &[DkimKey]) -> Result<Vec<u8>, SignError> {
        let mut fields = Vec::new();
        for key in keys {
            fields.extend_from_slice(&self.signer(key)?.field(message)?);
        }
        Ok(fields)
    }

    fn signer(&self, key: &DkimKey) -> Result<Arc<Signer>, SignError> {
        let name = (
            key.domain.to_string(),
            key.selector.clone(),
            key.created_unix,
        );
        if let Some(signer) = self.lock().get(&name) {
            return Ok(signer.clone());
        }
        let signer = Arc::new(Signer::new(key)?);
        let mut signers = self.lock();
        if signers.len() >= SIGNERS_CACHED_MAX {
            signers.clear();
        }
        signers.insert(name, signer.clone());
        Ok(signer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<KeyName, Arc<Signer>>> {
        // Insert and clear only: a panic elsewhere cannot leave the map inconsistent.
        self.signers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One key's signer, configured (domain, selector, fields, canonicalisation).
pub struct Signer {
    selector: String,
    kind: SignerKind,
}

enum SignerKind {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Signer")
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

impl Signer {
    fn new(key: &DkimKey) -> Result<Signer, SignError> {
        let domain = key.domain.to_string();
        let key_error = |reason: String| SignError::Key {
            domain: domain.clone(),
            selector: key.selector.clone(),
            reason,
        };
        let der = key.private_key_pkcs8.expose();
        let kind = match key.algorithm {
            DkimAlgorithm::RsaSha256 => {
                let signing = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(
                    PrivatePkcs8KeyDer::from(der.as_slice()),
                ))
                .map_err(|error| key_error(error.to_string()))?;
                SignerKind::Rsa(configured(signing, &domain, &key.selector))
            }
            DkimAlgorithm::Ed25519Sha256 => {
                let signing = Ed25519Key::from_pkcs8_maybe_unchecked_der(der)
                    .map_err(|error| key_error(error.to_string()))?;
                SignerKind::Ed25519(configured(signing, &domain, &key.selector))
            }
        };
        Ok(Signer {
            selector: key.selector.clone(),
            kind,
        })
    }

    /// The `DKIM-Signature` field for `message` (CRLF-ended).
    fn field(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let signature = match &self.kind {
            SignerKind::Rsa(signer) => signer.sign(message),
            SignerKind::Ed25519(signer) => signer.sign(message),
        }
        .map_err(|error| SignError::Sign {
            selector: self.selector.clone(),
            reason: error.to_string(),
        })?;
        Ok(without_fold_before_end(&signature.to_header()).into_bytes())
    }
}

/// A signer of `domain` and `selector` over `SIGNED_FIELDS`, relaxed/relaxed.
fn configured<K: SigningKey>(key: K, domain: &str, selector: &str) -> DkimSigner<K, Done> {
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_FIELDS.iter().copied())
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

/// The field with no folding whitespace between the end of `b=` and the closing `;`.
/// mail-auth may fold there when the signature fills a line; RFC 6376 §3.7 deletes the b=
/// value with its surrounding whitespace before hashing, but verifiers that keep the
/// whitespace (dkimpy does) then see another header. Removing it changes nothing for
/// verifiers that follow the RFC.
fn without_fold_before_end(field: &str) -> String {
    let body = field.trim_end_matches(['\r', '\n']);
    match body.strip_suffix(';') {
        Some(before) => format!("{};\r\n", before.trim_end_matches([' ', '\t', '\r', '\n'])),
        None => field.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn each_key_gives_a_relaxed_signature_of_its_algorithm() {
        let domain = tme_core::Domain::parse("example.com").unwrap();
        let keys: Vec<DkimKey> = tme_dns::dkim::generate_domain_keys(1_800_000_000)
            .unwrap()
            .into_iter()
            .map(|new| DkimKey {
                domain: domain.clone(),
                selector: new.selector,
                algorithm: new.algorithm,
                public_key: new.public_key,
                private_key_pkcs8: new.private_key_pkcs8,
                created_unix: 1_800_000_000,
            })
            .collect();
        let message = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n";
        let fields = String::from_utf8(signature_fields(message, &keys).unwrap()).unwrap();
        assert_eq!(fields.matches("DKIM-Signature:").count(), 2, "{fields}");
        assert!(fields.contains("a=rsa-sha256"));
        assert!(fields.contains("a=ed25519-sha256"));
        assert!(fields.contains("c=relaxed/relaxed"));
        assert!(fields.contains("d=example.com"));
        assert!(fields.ends_with("\r\n"));
    }

    #[test]
    fn no_fold_is_left_before_the_closing_semicolon() {
        assert_eq!(
            without_fold_before_end("DKIM-Signature: a=1; b=abc==\r\n\t;\r\n"),
            "DKIM-Signature: a=1; b=abc==;\r\n"
        );
        assert_eq!(
            without_fold_before_end("DKIM-Signature: a=1; b=abc==;\r\n"),
            "DKIM-Signature: a=1; b=abc==;\r\n"
        );
    }
}
