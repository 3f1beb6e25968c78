//! DKIM keys for a new domain: one RSA-2048 (`rsa-sha256`, which every verifier knows) and
//! one Ed25519 (`ed25519-sha256`, RFC 8463), so that mail can be signed with both (RFC 8463
//! §3 recommends the pair while Ed25519 support spreads).
//!
//! Selectors are `rsa-YYYYMMDD` and `ed25519-YYYYMMDD` (the day the key was made, UTC), so a
//! rotated key gets a new name and the old record can stay while mail signed with it is in
//! flight. Private keys are PKCS #8 DER inside `Secret`, never logged. This module makes keys;
//! it stores nothing.

use ring::signature::KeyPair;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use tme_core::Secret;
use tme_store::{DkimAlgorithm, NewDkimKey};

use crate::DnsError;

/// RSA modulus size: RFC 8301 §3.2 asks for at least 1024 and recommends 2048; 2048 keeps
/// the TXT record within one UDP answer.
pub const RSA_KEY_BITS: usize = 2048;

/// The selectors of keys made on the day of `now_unix`.
pub fn selectors(now_unix: i64) -> (String, String) {
    let day = time::OffsetDateTime::from_unix_timestamp(now_unix)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .date();
    let stamp = format!(
        "{:04}{:02}{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    );
    (format!("rsa-{stamp}"), format!("ed25519-{stamp}"))
}

/// Makes a domain's two keys. RSA generation takes a noticeable fraction of a second.
pub fn generate_domain_keys(now_unix: i64) -> Result<Vec<NewDkimKey>, DnsError> {
    let (rsa_selector, ed25519_selector) = selectors(now_unix);
    let mut rng = rand::rngs::OsRng;
    let rsa_key = rsa::RsaPrivateKey::new(&mut rng, RSA_KEY_BITS)
        .map_err(|error| DnsError::KeyGeneration(error.to_string()))?;
    let rsa_private = rsa_key
        .to_pkcs8_der()
        .map_err(|error| DnsError::KeyGeneration(error.to_string()))?;
    let rsa_public = rsa_key
        .to_public_key()
        .to_public_key_der()
        .map_err(|error| DnsError::KeyGeneration(error.to_string()))?;
    let random = ring::rand::SystemRandom::new();
    let ed25519_private = ring::signature::Ed25519KeyPair::generate_pkcs8(&random)
        .map_err(|error| DnsError::KeyGeneration(error.to_string()))?;
    let ed25519_pair = ring::signature::Ed25519KeyPair::from_pkcs8(ed25519_private.as_ref())
        .map_err(|error| DnsError::KeyGeneration(error.to_string()))?;
    Ok(vec![
        NewDkimKey {
            selector: rsa_selector,
            algorithm: DkimAlgorithm::RsaSha256,
            // RFC 6376 §3.6.1: p= is the SubjectPublicKeyInfo, base64.
            public_key: rsa_public.as_bytes().to_vec(),
            private_key_pkcs8: Secret::new(rsa_private.as_bytes().to_vec()),
        },
        NewDkimKey {
            selector: ed25519_selector,
            algorithm: DkimAlgorithm::Ed25519Sha256,
            // RFC 8463 §4.2: p= is the 32-octet public key itself.
            public_key: ed25519_pair.public_key().as_ref().to_vec(),
            private_key_pkcs8: Secret::new(ed25519_private.as_ref().to_vec()),
        },
    ])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_made_with_dated_selectors() {
        assert_eq!(
            selectors(1_778_716_800),
            ("rsa-20260514".to_owned(), "ed25519-20260514".to_owned())
        );
        let keys = generate_domain_keys(1_778_716_800).unwrap();
        assert_eq!(keys.len(), 2);
        // An RSA-2048 SubjectPublicKeyInfo is 294 octets; Ed25519's key is 32.
        assert_eq!(keys[0].public_key.len(), 294);
        assert_eq!(keys[1].public_key.len(), 32);
        assert!(
            !format!("{keys:?}").contains(&format!("{:?}", keys[1].private_key_pkcs8.expose()))
        );
        // Both private keys load in ring, which signs.
        ring::signature::RsaKeyPair::from_pkcs8(keys[0].private_key_pkcs8.expose()).unwrap();
        ring::signature::Ed25519KeyPair::from_pkcs8(keys[1].private_key_pkcs8.expose()).unwrap();
    }
}
