//! MTA-STS (RFC 8461): a receiving domain's published demand that mail to it travel over
//! TLS, to MX hosts it names, with certificates that verify.
//!
//! This module owns the policy: reading the `_mta-sts` TXT record (§3.1), parsing the policy
//! file (§3.2), matching MX host names against its `mx` patterns (§4.1), and the cache
//! (§5.1) that keeps a policy for its `max_age` so that an attacker who strips the TXT record
//! does not downgrade delivery. `MtaSts::policy` does the I/O: the TXT lookup through the
//! node's resolver, and the HTTPS fetch of `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`
//! (HTTP/1.0, so never chunked; no redirects, §3.3; at most `POLICY_BYTES_MAX`), with the
//! verifying TLS config of `tls::verifying`.
//!
//! It must not decide how to deliver: the runner applies an `enforce` policy (only matching
//! MX hosts, TLS with a verified certificate, no plain-text retry) and only logs what a
//! `testing` policy would have refused. The cache lives in memory, backed by the queue
//! store when one is given (`with_store`): a restarted node, or another node of the
//! cluster, still honours a policy until its `max_age` ends, even while an attacker hides
//! the TXT record and the policy host (RFC 8461 §10.2).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail_auth::MessageAuthenticator;
use mail_auth::hickory_resolver::proto::rr::RData;
use tme_store::{QueueStore, StoredPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest policy file read (RFC 8461 §3.3: "such as 64 KiB").
pub const POLICY_BYTES_MAX: usize = 64 * 1024;
/// The longest `max_age` honoured (RFC 8461 §3.2: 31557600, about a year).
pub const MAX_AGE_SECONDS_MAX: u64 = 31_557_600;
/// The most `mx` patterns kept from one policy.
pub const MX_PATTERNS_MAX: usize = 64;
/// Policies kept in memory; past this the oldest fetched is forgotten.
pub const CACHED_POLICIES_MAX: usize = 10_000;

/// What a policy asks for (RFC 8461 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deliver only as the policy says.
    Enforce,
    /// Deliver as usual; report what would have failed (here: log it).
    Testing,
    /// The domain withdrew its policy.
    None,
}

/// A parsed policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// `mx` patterns, lower-cased: `mail.example.com` or `*.example.net`.
    pub mx: Vec<String>,
    pub max_age_seconds: u64,
}

/// Why a policy file was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("no `version: STSv1` line")]
    Version,
    #[error("no valid `mode`")]
    Mode,
    #[error("no valid `max_age`")]
    MaxAge,
    #[error("mode {0} without any `mx` pattern")]
    NoMx(&'static str),
}

/// Parses a policy file (RFC 8461 §3.2): `key: value` lines ended by CRLF or LF; unknown
/// keys are ignored, as the grammar's extension fields allow.
pub fn parse_policy(text: &str) -> Result<Policy, PolicyError> {
    let mut version = None;
    let mut mode = None;
    let mut max_age = None;
    let mut mx = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            // The first of each single-valued key counts.
            "version" if version.is_none() => version = Some(value == "STSv1"),
            "mode" if mode.is_none() => {
                mode = Some(match value {
                    "enforce" => Some(Mode::Enforce),
                    "testing" => Some(Mode::Testing),
                    "none" => Some(Mode::None),
                    _ => None,
                });
            }
            "max_age" if max_age.is_none() => {
                // RFC 8461 §3.2: max_age is 1*10DIGIT.
                let valid = !value.is_empty()
                    && value.len() <= 10
                    && value.bytes().all(|octet| octet.is_ascii_digit());
                max_age = Some(valid.then(|| value.parse::<u64>().ok()).flatten());
            }
            "mx" if mx.len() < MX_PATTERNS_MAX && !value.is_empty() => {
                mx.push(value.to_ascii_lowercase());
            }
            _ => {}
        }
    }
    if version != Some(true) {
        return Err(PolicyError::Version);
    }
    let mode = mode.flatten().ok_or(PolicyError::Mode)?;
    let max_age_seconds = max_age
        .flatten()
        .ok_or(PolicyError::MaxAge)?
        .min(MAX_AGE_SECONDS_MAX);
    match mode {
        Mode::Enforce if mx.is_empty() => return Err(PolicyError::NoMx("enforce")),
        Mode::Testing if mx.is_empty() => return Err(PolicyError::NoMx("testing")),
        _ => {}
    }
    Ok(Policy {
        mode,
        mx,
        max_age_seconds,
    })
}

impl Policy {
    /// Whether an MX host name matches one of the `mx` patterns (RFC 8461 §4.1): exactly,
    /// ignoring case and a trailing dot, or a `*.` pattern standing for exactly one label.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|pattern| {
            let pattern = pattern.trim_end_matches('.');
            match pattern.strip_prefix("*.") {
                Some(suffix) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
                None => host == pattern,
            }
        })
    }
}

/// The `id` of a domain's `_mta-sts` TXT records (RFC 8461 §3.1): records not starting with
/// `v=STSv1;` are discarded; unless exactly one is left and it is valid, the domain has no
/// policy (None).
pub fn parse_txt_records(records: &[Vec<u8>]) -> Option<String> {
    let candidates: Vec<&Vec<u8>> = records
        .iter()
        .filter(|record| record.starts_with(b"v=STSv1;") || record.starts_with(b"v=STSv1 ;"))
        .collect();
    let [record] = candidates.as_slice() else {
        return None;
    };
    let text = std::str::from_utf8(record).ok()?;
    let mut id = None;
    for field in text.split(';').skip(1) {
        let Some((key, value)) = field.split_once('=') else {
            if field.trim().is_empty() {
                continue;
            }
            return None;
        };
        if key.trim() == "id" && id.is_none() {
            let value = value.trim();
            // sts-id = 1*32(ALPHA / DIGIT)
            if value.is_empty()
                || value.len() > 32
                || !value.bytes().all(|octet| octet.is_ascii_alphanumeric())
            {
                return None;
            }
            id = Some(value.to_owned());
        }
    }
    id
}

/// A policy in the cache.
#[derive(Debug, Clone)]
struct Cached {
    id: String,
    policy: Arc<Policy>,
    fetched_unix: i64,
}

impl Cached {
    fn fresh(&self, now_unix: i64) -> bool {
        now_unix
            < self
                .fetched_unix
                .saturating_add_unsigned(self.policy.max_age_seconds)
    }
}

/// Finds and caches the policies of destination domains.
#[derive(Clone)]
pub struct MtaSts {
    resolver: Arc<MessageAuthenticator>,
    tls: Arc<rustls::ClientConfig>,
    /// The port the policy host is reached on: 443, but tests need another.
    https_port: u16,
    timeout: Duration,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
    /// Where policies outlive the process, when set.
    store: Option<Arc<dyn QueueStore>>,
}

impl std::fmt::Debug for MtaSts {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("MtaSts")
            .field("https_port", &self.https_port)
            .finish_non_exhaustive()
    }
}

impl MtaSts {
    pub fn new(
        resolver: Arc<MessageAuthenticator>,
        tls: Arc<rustls::ClientConfig>,
        https_port: u16,
        timeout: Duration,
    ) -> MtaSts {
        MtaSts {
            resolver,
            tls,
            https_port,
            timeout,
            cache: Arc::new(Mutex::new(HashMap::new())),
            store: None,
        }
    }

    /// Keeps fetched policies in `store` too, and reads them back after a restart.
    pub fn with_store(mut self, store: Arc<dyn QueueStore>) -> MtaSts {
        self.store = Some(store);
        self
    }

    /// The verifying TLS config, for MX hosts under an `enforce` policy too.
    pub fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The policy in force for `domain` at `now_unix`, if any (RFC 8461 §5.1): the TXT
    /// record's id is compared with the cached policy's; a new id fetches the policy again;
    /// when the TXT record or the fetch fails, a cached policy still fresh is used.
    pub async fn policy(&self, domain: &str, now_unix: i64) -> Option<Arc<Policy>> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let cached = self.cache().get(&domain).cloned();
        let cached = match cached {
            Some(cached) => Some(cached),
            None => self.stored(&domain, now_unix).await,
        };
        let cached_fresh = cached.filter(|cached| cached.fresh(now_unix));
        let id = match self.txt_id(&domain).await {
            Some(id) => id,
            None => return cached_fresh.map(|cached| cached.policy),
        };
        if let Some(cached) = &cached_fresh
            && cached.id == id
        {
            return Some(cached.policy.clone());
        }
        match self.fetch(&domain).await {
            Ok((policy, text)) => {
                let policy = Arc::new(policy);
                self.store_policy(&domain, &id, &text, &policy, now_unix)
                    .await;
                let mut cache = self.cache();
                if cache.len() >= CACHED_POLICIES_MAX
                    && let Some(oldest) = cache
                        .iter()
                        .min_by_key(|(_, cached)| cached.fetched_unix)
                        .map(|(name, _)| name.clone())
                {
                    cache.remove(&oldest);
                }
                cache.insert(
                    domain,
                    Cached {
                        id,
                        policy: policy.clone(),
                        fetched_unix: now_unix,
                    },
                );
                Some(policy)
            }
            Err(error) => {
                tracing::info!(%domain, %error, "MTA-STS policy not fetched");
                cached_fresh.map(|cached| cached.policy)
            }
        }
    }

    async fn txt_id(&self, domain: &str) -> Option<String> {
        let name = format!("_mta-sts.{domain}.");
        let lookup = self
            .resolver
            .resolver()
            .txt_lookup(name.as_str())
            .await
            .ok()?;
        let records: Vec<Vec<u8>> = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::TXT(txt) => Some(txt.txt_data.iter().flatten().copied().collect()),
                _ => None,
            })
            .collect();
        parse_txt_records(&records)
    }

    /// Fetches and parses `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` (RFC 8461 §3.3):
    /// the certificate must verify for `mta-sts.DOMAIN`, the status must be 200 (no
    /// redirects), the media type `text/plain`.
    async fn fetch(&self, domain: &str) -> Result<(Policy, String), String> {
        let host = format!("mta-sts.{domain}");
        let work = async {
            // The node's resolver, not the system's: the same answers as for the MX.
            let addresses = self
                .resolver
                .resolver()
                .lookup_ip(format!("{host}.").as_str())
                .await
                .map_err(|error| format!("cannot resolve {host}: {error}"))?;
            let address = addresses
                .iter()
                .next()
                .ok_or_else(|| format!("{host} has no address"))?;
            let tcp = TcpStream::connect((address, self.https_port))
                .await
                .map_err(|error| format!("cannot connect to {host}: {error}"))?;
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|_| format!("{host} is not a valid server name"))?;
            let mut tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|error| format!("TLS with {host}: {error}"))?;
            let request = format!(
                "GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: {host}\r\nUser-Agent: tme\r\nConnection: close\r\n\r\n"
            );
            tls.write_all(request.as_bytes())
                .await
                .map_err(|error| format!("writing to {host}: {error}"))?;
            let mut response = Vec::new();
            let limit = POLICY_BYTES_MAX + 16 * 1024;
            let mut chunk = [0u8; 8192];
            loop {
                let count = match tls.read(&mut chunk).await {
                    Ok(0) => break,
                    Ok(count) => count,
                    // Many servers close without close_notify; what came is complete
                    // when the headers say how long it is, checked below.
                    Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(error) => return Err(format!("reading from {host}: {error}")),
                };
                response.extend_from_slice(&chunk[..count]);
                if response.len() > limit {
                    return Err(format!("the policy of {domain} is too large"));
                }
            }
            Ok(response)
        };
        let response = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| format!("fetching the policy of {domain} timed out"))??;
        let body = http_body(&response)?;
        let text = std::str::from_utf8(body)
            .map_err(|_| format!("the policy of {domain} is not UTF-8"))?;
        let policy =
            parse_policy(text).map_err(|error| format!("the policy of {domain}: {error}"))?;
        Ok((policy, text.to_owned()))
    }

    /// The policy kept in the store for `domain`, when there is one that has not expired
    /// and still parses; it joins the memory cache.
    async fn stored(&self, domain: &str, now_unix: i64) -> Option<Cached> {
        let store = self.store.as_ref()?;
        let stored = match store.mta_sts_policy(domain, now_unix).await {
            Ok(stored) => stored?,
            Err(error) => {
                tracing::warn!(%domain, %error, "cannot read the stored MTA-STS policy");
                return None;
            }
        };
        let policy = match parse_policy(&stored.text) {
            Ok(policy) => policy,
            Err(error) => {
                tracing::warn!(%domain, %error, "a stored MTA-STS policy no longer parses");
                return None;
            }
        };
        let cached = Cached {
            id: stored.policy_id,
            policy: Arc::new(policy),
            fetched_unix: stored.fetched_unix,
        };
        self.cache().insert(domain.to_owned(), cached.clone());
        Some(cached)
    }

    /// Keeps a fetched policy in the store; a failure is logged (the memory cache still
    /// has it).
    async fn store_policy(
        &self,
        domain: &str,
        id: &str,
        text: &str,
        policy: &Policy,
        now_unix: i64,
    ) {
        let Some(store) = &self.store else {
            return;
        };
        let stored = StoredPolicy {
            domain: domain.to_owned(),
            policy_id: id.to_owned(),
            text: text.to_owned(),
            fetched_unix: now_unix,
            expires_unix: now_unix.saturating_add_unsigned(policy.max_age_seconds),
        };
        if let Err(error) = store.mta_sts_policy_put(&stored).await {
            tracing::warn!(%domain, %error, "cannot keep the MTA-STS policy in the store");
        }
    }
}

/// The body of an HTTP/1.x response that must be `200` with a `text/plain` body; with a
/// `Content-Length`, the body must be that long.
fn http_body(response: &[u8]) -> Result<&[u8], String> {
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or("no complete HTTP header")?;
    let head = std::str::from_utf8(&response[..split]).map_err(|_| "a header that is not UTF-8")?;
    let body = &response[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line.split(' ').nth(1).unwrap_or_default();
    if !status_line.starts_with("HTTP/1.") || status != "200" {
        return Err(format!("HTTP status {status_line:?}, 200 wanted"));
    }
    let mut content_type = None;
    let mut content_length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-type") {
                content_type = Some(value.to_ascii_lowercase());
            } else if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse::<usize>().ok();
            }
        }
    }
    if !content_type
        .as_deref()
        .is_some_and(|media| media.starts_with("text/plain"))
    {
        return Err(format!("media type {content_type:?}, text/plain wanted"));
    }
    if body.len() > POLICY_BYTES_MAX {
        return Err("the policy is too large".to_owned());
    }
    match content_length {
        Some(length) if length != body.len() => Err(format!(
            "the body is {} bytes, Content-Length says {length}",
            body.len()
        )),
        _ => Ok(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_example_policy() {
        // RFC 8461 §3.2.
        let policy = parse_policy(
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
        )
        .expect("valid");
        assert_eq!(policy.mode, Mode::Enforce);
        assert_eq!(policy.max_age_seconds, 604_800);
        assert!(policy.matches("mail.example.com"));
        assert!(policy.matches("MAIL.example.com."));
        assert!(policy.matches("mx1.example.net"));
        // A wildcard stands for exactly one label (RFC 8461 §4.1).
        assert!(!policy.matches("a.b.example.net"));
        assert!(!policy.matches("example.net"));
        assert!(!policy.matches("mail.example.org"));
    }

    #[test]
    fn bad_policies_are_refused() {
        assert_eq!(
            parse_policy("mode: enforce\nmx: a\nmax_age: 1\n"),
            Err(PolicyError::Version)
        );
        assert_eq!(
            parse_policy("version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n"),
            Err(PolicyError::Mode)
        );
        assert_eq!(
            parse_policy("version: STSv1\nmode: enforce\nmx: a\nmax_age: -1\n"),
            Err(PolicyError::MaxAge)
        );
        assert_eq!(
            parse_policy("version: STSv1\nmode: enforce\nmax_age: 10\n"),
            Err(PolicyError::NoMx("enforce"))
        );
        let none = parse_policy("version: STSv1\nmode: none\nmax_age: 99999999999\n");
        assert_eq!(none, Err(PolicyError::MaxAge), "11 digits");
        let none = parse_policy("version: STSv1\nmode: none\nmax_age: 9999999999\nx: y\n")
            .expect("none needs no mx");
        assert_eq!(none.max_age_seconds, MAX_AGE_SECONDS_MAX);
    }

    #[test]
    fn txt_records() {
        let record = |text: &str| text.as_bytes().to_vec();
        assert_eq!(
            parse_txt_records(&[record("v=STSv1; id=20160831085700Z;")]),
            Some("20160831085700Z".to_owned())
        );
        assert_eq!(
            parse_txt_records(&[record("v=spf1 -all"), record("v=STSv1; id=abc")]),
            Some("abc".to_owned())
        );
        // Two STS records, or a bad id: no policy.
        assert_eq!(
            parse_txt_records(&[record("v=STSv1; id=a;"), record("v=STSv1; id=b;")]),
            None
        );
        assert_eq!(parse_txt_records(&[record("v=STSv1; id=a-b;")]), None);
        assert_eq!(parse_txt_records(&[record("v=STSv1;")]), None);
        assert_eq!(parse_txt_records(&[]), None);
    }

    #[test]
    fn http_responses() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(http_body(ok), Ok(&b"hello"[..]));
        assert!(http_body(b"HTTP/1.1 301 Moved\r\nLocation: x\r\n\r\n").is_err());
        assert!(http_body(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\nx").is_err());
        assert!(
            http_body(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nshort"
            )
            .is_err()
        );
        assert!(http_body(b"garbage").is_err());
    }
}
