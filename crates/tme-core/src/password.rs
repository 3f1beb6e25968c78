//! Password and app-password hashing with Argon2id, and constant-time comparison.
//!
//! This module owns how secrets that people type are stored (PHC strings from Argon2id),
//! how they are checked, how app passwords are generated, and the dummy check that keeps
//! the time of a failed login the same whether or not the account exists. It must not
//! store or look up anything, log a password, or decide login policy (lockouts, rate
//! limits): callers do that, with [`Secret`](crate::Secret) around what they hold.
//!
//! Parameters: Argon2id v1.3 with m = 19456 KiB (19 MiB), t = 2 iterations, p = 1 lane,
//! a 16-octet random salt from the operating system and a 32-octet output: the first of
//! the OWASP Password Storage Cheat Sheet's recommended configurations, and the `argon2`
//! crate's defaults. They are written out here so a new crate version cannot change them
//! silently. A hash records its own parameters, so raising them later keeps old hashes
//! verifiable; [`needs_rehash`] says when to re-hash after a successful login.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::Rng;
use rand::rngs::OsRng;
use subtle::ConstantTimeEq;

/// Argon2 memory cost, in KiB (OWASP: 19 MiB).
pub const ARGON2_MEMORY_KIB: u32 = 19_456;
/// Argon2 time cost: passes over the memory.
pub const ARGON2_ITERATIONS: u32 = 2;
/// Argon2 degree of parallelism, in lanes.
pub const ARGON2_PARALLELISM: u32 = 1;
/// Length of the Argon2 output stored in the hash, in octets.
pub const ARGON2_OUTPUT_OCTETS: usize = 32;

/// Longest password accepted, in octets. Far above anything a person types or a password
/// manager makes, low enough that hostile input cannot make hashing costly.
pub const PASSWORD_OCTETS_MAX: usize = 1024;

/// Characters of generated app passwords: lower-case letters and digits without the ones
/// that are easy to confuse (`0`/`o`, `1`/`l`/`i`). 31 characters, about 4.95 bits each.
pub const APP_PASSWORD_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// Number of groups in a generated app password.
pub const APP_PASSWORD_GROUPS: usize = 5;
/// Characters per group.
pub const APP_PASSWORD_GROUP_CHARACTERS: usize = 4;
/// Written between groups.
pub const APP_PASSWORD_GROUP_SEPARATOR: char = '-';

/// A valid Argon2id hash with the parameters above that no password is known to match:
/// salt "tme-dummy-salt!!", output all zeros. [`dummy_verify`] checks against it.
const DUMMY_HASH_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$dG1lLWR1bW15LXNhbHQhIQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    #[error("the password is empty")]
    Empty,

    #[error("the password is {length_octets} octets long; the limit is {limit_octets}")]
    TooLong {
        length_octets: usize,
        limit_octets: usize,
    },

    #[error("password hashing failed: {0}")]
    Hashing(argon2::password_hash::Error),
}

fn check_length(password: &str) -> Result<(), PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    if password.len() > PASSWORD_OCTETS_MAX {
        return Err(PasswordError::TooLong {
            length_octets: password.len(),
            limit_octets: PASSWORD_OCTETS_MAX,
        });
    }
    Ok(())
}

fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_PARALLELISM,
        Some(ARGON2_OUTPUT_OCTETS),
    )
    .map_err(|error| PasswordError::Hashing(error.into()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password (or an app password) for storage, as a PHC string such as
/// `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`. Takes tens of milliseconds on purpose.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    check_length(password)?;
    let salt = SaltString::generate(&mut OsRng);
    let hash = hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(PasswordError::Hashing)?;
    Ok(hash.to_string())
}

/// Whether `password` matches the stored PHC string `phc`. Uses the parameters recorded in
/// the hash and compares in constant time. Returns false, without panicking, for a
/// malformed or non-Argon2 hash, and for an empty or over-long password.
pub fn verify_password(password: &str, phc: &str) -> bool {
    if check_length(password).is_err() {
        return false;
    }
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    // The algorithm, version and parameters come from `hash`, not from this instance.
    Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok()
}

/// Spends the time of a [`verify_password`] and returns false. Call it when the account
/// being logged into does not exist: answering at once would tell an attacker which
/// accounts exist (a failed login to a real account costs an Argon2 computation, a login
/// to a missing one would cost nothing). It follows the same early returns as
/// `verify_password`, so the two take the same time for the same password.
///
/// ```
/// # use tme_core::password::{dummy_verify, verify_password};
/// # let stored_hash: Option<&str> = None;
/// let accepted = match stored_hash {
///     Some(phc) => verify_password("typed", phc),
///     None => dummy_verify("typed"),
/// };
/// assert!(!accepted);
/// ```
pub fn dummy_verify(password: &str) -> bool {
    let outcome = verify_password(password, DUMMY_HASH_PHC);
    // Nobody knows a password for the dummy hash; even if someone found one, never accept.
    std::hint::black_box(outcome);
    false
}

/// Whether a stored hash should be replaced by a fresh one (computed from the password
/// just verified): true when it is not Argon2id with the current parameters, or cannot be
/// read.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return true;
    };
    if Algorithm::try_from(hash.algorithm) != Ok(Algorithm::Argon2id)
        || hash.version != Some(Version::V0x13.into())
    {
        return true;
    }
    match Params::try_from(&hash) {
        Ok(params) => {
            params.m_cost() != ARGON2_MEMORY_KIB
                || params.t_cost() != ARGON2_ITERATIONS
                || params.p_cost() != ARGON2_PARALLELISM
                || hash.hash.map(|output| output.len()) != Some(ARGON2_OUTPUT_OCTETS)
        }
        Err(_) => true,
    }
}

/// A new random app password such as `k7m2-xq9d-4hfa-tnw3-pe8r`: 5 groups of 4 characters
/// from [`APP_PASSWORD_ALPHABET`], about 99 bits of entropy, drawn uniformly from the
/// operating system's generator. Easy to type on a phone; store it with [`hash_password`]
/// and check it with [`verify_password`], exactly as a password (separators included).
pub fn generate_app_password() -> String {
    let mut generator = OsRng;
    let mut password =
        String::with_capacity(APP_PASSWORD_GROUPS * (APP_PASSWORD_GROUP_CHARACTERS + 1));
    for group in 0..APP_PASSWORD_GROUPS {
        if group > 0 {
            password.push(APP_PASSWORD_GROUP_SEPARATOR);
        }
        for _ in 0..APP_PASSWORD_GROUP_CHARACTERS {
            let index = generator.gen_range(0..APP_PASSWORD_ALPHABET.len());
            password.push(char::from(APP_PASSWORD_ALPHABET[index]));
        }
    }
    password
}

/// Whether two byte strings are equal, in time that depends on their lengths but not on
/// their contents. The lengths themselves are not hidden; compare fixed-length values
/// (digests, tokens) to hide everything.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each Argon2 computation takes a noticeable time in debug builds: keep them few.

    #[test]
    fn hash_then_verify() {
        let phc = match hash_password("correct horse battery staple") {
            Ok(phc) => phc,
            Err(error) => panic!("{error}"),
        };
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!needs_rehash(&phc));
        assert!(verify_password("correct horse battery staple", &phc));
        assert!(!verify_password("correct horse battery stapler", &phc));
    }

    #[test]
    fn app_password_hashes_like_a_password() {
        let app_password = generate_app_password();
        let phc = match hash_password(&app_password) {
            Ok(phc) => phc,
            Err(error) => panic!("{error}"),
        };
        assert!(verify_password(&app_password, &phc));
    }

    #[test]
    fn app_password_shape_and_entropy() {
        let first = generate_app_password();
        let groups: Vec<&str> = first.split(APP_PASSWORD_GROUP_SEPARATOR).collect();
        assert_eq!(groups.len(), APP_PASSWORD_GROUPS, "{first}");
        for group in groups {
            assert_eq!(group.len(), APP_PASSWORD_GROUP_CHARACTERS, "{first}");
            assert!(
                group
                    .bytes()
                    .all(|byte| APP_PASSWORD_ALPHABET.contains(&byte)),
                "{first}"
            );
        }
        assert_ne!(first, generate_app_password());
        let entropy_bits = (APP_PASSWORD_GROUPS * APP_PASSWORD_GROUP_CHARACTERS) as f64
            * (APP_PASSWORD_ALPHABET.len() as f64).log2();
        assert!(entropy_bits > 80.0, "{entropy_bits}");
        // No ambiguous characters, no repeats in the alphabet.
        for ambiguous in [b'0', b'o', b'1', b'l', b'i'] {
            assert!(!APP_PASSWORD_ALPHABET.contains(&ambiguous));
        }
        let mut sorted = APP_PASSWORD_ALPHABET.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), APP_PASSWORD_ALPHABET.len());
    }

    #[test]
    fn malformed_hashes_never_verify() {
        for phc in [
            "",
            "not a hash",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$dG1lLWR1bW15LXNhbHQhIQ",
            "$argon2id$v=19$m=1,t=2,p=1$dG1lLWR1bW15LXNhbHQhIQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$argon2id$v=99$m=19456,t=2,p=1$dG1lLWR1bW15LXNhbHQhIQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        ] {
            assert!(!verify_password("password", phc), "{phc}");
            assert!(needs_rehash(phc), "{phc}");
        }
    }

    #[test]
    fn empty_and_over_long_passwords() {
        assert!(matches!(hash_password(""), Err(PasswordError::Empty)));
        let long = "x".repeat(PASSWORD_OCTETS_MAX + 1);
        let error = hash_password(&long).err().map(|error| error.to_string());
        assert_eq!(
            error.as_deref(),
            Some("the password is 1025 octets long; the limit is 1024")
        );
        assert!(!verify_password(&long, DUMMY_HASH_PHC));
        assert!(!verify_password("", DUMMY_HASH_PHC));
    }

    #[test]
    fn dummy_hash_costs_what_a_real_hash_costs() {
        // Its parameters must follow the constants, or the dummy check would take a
        // different time than a real one.
        assert!(!needs_rehash(DUMMY_HASH_PHC));
        assert!(!dummy_verify("anything"));
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"token", b"token"));
        assert!(!constant_time_eq(b"token", b"tokem"));
        assert!(!constant_time_eq(b"token", b"token2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
