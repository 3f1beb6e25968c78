//! Session tokens, their cookies and the CSRF tokens derived from them.
//!
//! A session token is 256 random bits from the OS, sent to the browser as 64 hex digits in the
//! `tme_session` cookie. The directory keeps only its BLAKE3 hash (`WebSession::token_hash`),
//! so a copy of the directory logs nobody in. The session's CSRF token is derived from the
//! session token with BLAKE3's key derivation, so it is per session, never stored, and cannot
//! be computed without the cookie. Every comparison of a token a client sent is constant-time.
//!
//! This module does no I/O: it makes, reads and compares strings.

use rand::RngCore;
use rand::rngs::OsRng;
use subtle::ConstantTimeEq;

/// The cookie that carries the session token.
pub const SESSION_COOKIE: &str = "tme_session";
/// The cookie that carries the login form's token (a double-submit token: the login form
/// has no session yet to derive one from).
pub const LOGIN_COOKIE: &str = "tme_login";
/// How long a session lasts after its login, whatever happens in between.
pub const SESSION_LIFETIME_SECONDS: i64 = 7 * 24 * 3600;
/// How long a login form may be used after it was shown.
pub const LOGIN_FORM_LIFETIME_SECONDS: i64 = 3600;
/// The hex digits of a session token (256 bits).
pub const SESSION_TOKEN_HEX_DIGITS: usize = 64;
/// The hex digits of a login form token (128 bits).
pub const LOGIN_TOKEN_HEX_DIGITS: usize = 32;
/// The longest Cookie header read, in octets: more is not ours.
pub const COOKIE_HEADER_OCTETS_MAX: usize = 8 * 1024;

/// The context string of the CSRF token's key derivation (BLAKE3 `derive_key`).
const CSRF_CONTEXT: &str = "tme webmail 2026-11 CSRF token of a session";

/// A fresh session token: 256 random bits as hex.
pub fn new_session_token() -> String {
    random_hex::<32>()
}

/// A fresh login form token: 128 random bits as hex.
pub fn new_login_token() -> String {
    random_hex::<16>()
}

fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What the directory keeps of a session token.
pub fn token_hash(session_token: &str) -> String {
    blake3::hash(session_token.as_bytes()).to_hex().to_string()
}

/// The CSRF token of the session whose token is `session_token`.
pub fn csrf_token(session_token: &str) -> String {
    hex::encode(blake3::derive_key(CSRF_CONTEXT, session_token.as_bytes()))
}

/// Whether `sent` equals `expected`, in time that does not depend on where they differ.
pub fn tokens_equal(sent: &str, expected: &str) -> bool {
    // The length of our tokens is public; only their content is secret.
    sent.len() == expected.len() && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

/// Whether `token` looks like one of ours: `digits` lowercase hex digits.
pub fn well_formed(token: &str, digits: usize) -> bool {
    token.len() == digits
        && token
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// The value of cookie `name` in a Cookie header (RFC 6265 §5.4: `name=value; name=value`).
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    if header.len() > COOKIE_HEADER_OCTETS_MAX {
        return None;
    }
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

/// A Set-Cookie value: `HttpOnly; SameSite=Strict` always, `Secure` when `secure` (the
/// webmail always sets it: browsers keep a `Secure` cookie on `http://127.0.0.1` and
/// `http://localhost`, potentially trustworthy origins, so only a plain-HTTP listener on
/// another address loses its sessions, and that one should not carry passwords anyway).
/// `max_age_seconds` 0 removes the cookie.
pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age_seconds: i64,
    secure: bool,
) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{name}={value}; Path={path}; Max-Age={max_age_seconds}; HttpOnly; SameSite=Strict{secure}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fresh_hex_and_csrf_is_per_session() {
        let first = new_session_token();
        let second = new_session_token();
        assert!(well_formed(&first, SESSION_TOKEN_HEX_DIGITS));
        assert!(well_formed(&new_login_token(), LOGIN_TOKEN_HEX_DIGITS));
        assert_ne!(first, second);
        assert_ne!(csrf_token(&first), csrf_token(&second));
        assert_eq!(csrf_token(&first), csrf_token(&first));
        assert_ne!(token_hash(&first), first);
        assert_eq!(token_hash(&first).len(), 64);
    }

    #[test]
    fn comparisons_and_shapes() {
        assert!(tokens_equal("abc", "abc"));
        assert!(!tokens_equal("abc", "abd"));
        assert!(!tokens_equal("abc", "abcd"));
        assert!(!tokens_equal("", "abc"));
        assert!(!well_formed("ABCDEF", 6));
        assert!(!well_formed("abcdeg", 6));
        assert!(!well_formed("abcde", 6));
    }

    #[test]
    fn cookies_are_read_and_written() {
        let header = "a=1; tme_session=abc; tme_login=def";
        assert_eq!(cookie_value(header, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie_value(header, LOGIN_COOKIE), Some("def"));
        assert_eq!(cookie_value(header, "missing"), None);
        assert_eq!(
            cookie_value(&"x".repeat(COOKIE_HEADER_OCTETS_MAX + 1), "x"),
            None
        );
        assert_eq!(
            set_cookie(SESSION_COOKIE, "abc", "/", 60, true),
            "tme_session=abc; Path=/; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
        assert_eq!(
            set_cookie(SESSION_COOKIE, "", "/", 0, false),
            "tme_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
        );
    }
}
