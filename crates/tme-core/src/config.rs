//! The node's configuration: `tme.toml`, typed and validated, with environment overrides.
//!
//! This module owns the shape of the config file (a **contract**, see the README), the rule
//! that every key can be overridden by `TME_` + the key path upper-cased with `__` between
//! levels (`TME_LISTEN__SMTP=127.0.0.1:12525`), and the error that names the key and the file
//! when something is wrong. It reads one file and the environment; it opens no socket and no
//! store.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The name of the config file inside a data directory.
pub const CONFIG_FILE_NAME: &str = "tme.toml";

/// Environment variables with the `TME_` prefix that are not config keys.
const ENVIRONMENT_VARIABLES_NOT_CONFIG: &[&str] = &["TME_DATA_DIR", "TME_LOG", "TME_LOG_FORMAT"];

/// Everything a node is configured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub node: NodeConfig,
    #[serde(default)]
    pub listen: ListenConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub directory: DirectoryConfig,
    #[serde(default)]
    pub smtp: SmtpConfig,
    #[serde(default)]
    pub resolver: ResolverConfig,
    #[serde(default)]
    pub filter: FilterConfig,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub dns: DnsConfig,
    #[serde(default)]
    pub login: LoginConfig,
    #[serde(default)]
    pub imap: ImapConfig,
    #[serde(default)]
    pub pop3: Pop3Config,
    #[serde(default)]
    pub search: SearchConfig,
    #[serde(default)]
    pub http: HttpConfig,
}

/// Who this node is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The host name the node announces (SMTP greeting, Received headers, certificates).
    pub hostname: String,
    /// The site this node runs at; every site runs MX and DNS (DESIGN §4).
    pub site: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            hostname: "localhost".to_owned(),
            site: "default".to_owned(),
        }
    }
}

/// The listeners, keyed by role (**contract**: DESIGN §5). A role whose listener is absent
/// does not listen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    pub smtp: Option<SocketAddr>,
    pub submission: Option<SocketAddr>,
    pub submissions: Option<SocketAddr>,
    pub imap: Option<SocketAddr>,
    pub imaps: Option<SocketAddr>,
    pub pop3: Option<SocketAddr>,
    pub pop3s: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    /// The same HTTP surface with TLS from the first byte (the node's certificate).
    pub https: Option<SocketAddr>,
    pub dns: Option<SocketAddr>,
}

impl ListenConfig {
    /// The quick-start defaults that `tme init` writes (DESIGN §5).
    pub fn quick_start() -> Self {
        let loopback = |port: u16| Some(SocketAddr::from(([127, 0, 0, 1], port)));
        ListenConfig {
            smtp: loopback(2525),
            submission: loopback(2587),
            submissions: loopback(2465),
            imap: loopback(2143),
            imaps: loopback(2993),
            pop3: loopback(2110),
            pop3s: loopback(2995),
            http: loopback(8080),
            https: loopback(8443),
            dns: loopback(5353),
        }
    }

    /// Every configured listener with its role name, in a stable order.
    pub fn listeners(&self) -> Vec<(&'static str, SocketAddr)> {
        [
            ("smtp", self.smtp),
            ("submission", self.submission),
            ("submissions", self.submissions),
            ("imap", self.imap),
            ("imaps", self.imaps),
            ("pop3", self.pop3),
            ("pop3s", self.pop3s),
            ("http", self.http),
            ("https", self.https),
            ("dns", self.dns),
        ]
        .into_iter()
        .filter_map(|(role, address)| address.map(|address| (role, address)))
        .collect()
    }
}

/// The certificate the TLS listeners present. Relative paths are under the data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            certificate: PathBuf::from("tls/certificate.pem"),
            private_key: PathBuf::from("tls/private-key.pem"),
        }
    }
}

/// Which storage backend holds the directory, the mail store and the blobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite` (the embedded default, files under the data directory).
    pub backend: StoreBackend,
    /// How long expunged messages and deleted mailboxes stay restorable.
    pub retention_days: u32,
    /// How long a write waits for the store while another process holds its write lock
    /// before it fails as temporarily unavailable (SQLite's busy timeout). Inbound SMTP then
    /// spools the message instead of answering 451.
    #[serde(default = "StoreConfig::busy_timeout_ms_default")]
    pub busy_timeout_ms: u64,
}

impl StoreConfig {
    fn busy_timeout_ms_default() -> u64 {
        30_000
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Sqlite,
            retention_days: 30,
            busy_timeout_ms: StoreConfig::busy_timeout_ms_default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    Sqlite,
}

/// Defaults applied to new accounts and addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// The quota a new account gets when `account add` names none.
    pub default_quota_bytes: u64,
    /// The character that separates a local part from its tag (`user+tag@domain`).
    pub plus_separator: char,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            default_quota_bytes: 10 * 1024 * 1024 * 1024,
            plus_separator: '+',
        }
    }
}

/// The inbound SMTP (MX) limits an operator may tune. Every key has a default, so one key can
/// be set alone (`TME_SMTP__RECIPIENTS_MAX=50`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// The largest message accepted, in octets (announced as SIZE, RFC 1870).
    pub message_bytes_max: u64,
    /// Recipients per transaction; more get `452 4.5.3` (RFC 5321 §4.5.3.1.8 asks for 100).
    pub recipients_max: usize,
    /// Concurrent connections; more get `421`.
    pub connections_max: usize,
    /// Concurrent connections from one client address; more get `421`.
    pub connections_per_ip_max: usize,
    /// The longest command line, CRLF included; a longer one gets `500 5.5.2`. RFC 5321
    /// §4.5.3.1.4 sets 512 and lets extensions (SIZE, DSN, SMTPUTF8) add to it.
    pub command_line_octets_max: usize,
    /// How long we wait for a command before `421 4.4.2` (RFC 5321 §4.5.3.2.7: at least 5
    /// minutes).
    pub command_timeout_seconds: u64,
    /// How long we wait for each read of message content (RFC 5321 §4.5.3.2.5: 3 minutes).
    pub data_block_timeout_seconds: u64,
    /// How long a whole message may take to arrive, however it trickles.
    pub message_timeout_seconds: u64,
    /// Negative replies a session may collect before we answer `421 4.7.0` and close.
    pub session_errors_max: u32,
    /// The most the inbound spool (`DATA_DIR/spool`) may hold, in octets: mail acknowledged
    /// while the store was unavailable, waiting to be delivered. Past it, such mail gets
    /// `451` instead of being spooled.
    pub spool_bytes_max: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            message_bytes_max: 50 * 1024 * 1024,
            recipients_max: 100,
            connections_max: 1000,
            connections_per_ip_max: 20,
            command_line_octets_max: 2048,
            command_timeout_seconds: 5 * 60,
            data_block_timeout_seconds: 5 * 60,
            message_timeout_seconds: 30 * 60,
            session_errors_max: 10,
            spool_bytes_max: 10 * 1024 * 1024 * 1024,
        }
    }
}

/// Login throttling, shared by every role that takes a password (IMAP, POP3, submission,
/// webmail): failures from one client address or for one account address are slowed down,
/// then locked out for a while (`tme login locks` lists the locks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginConfig {
    /// Failures (per address and per account) answered at once; each one past this waits
    /// `delay_ms_per_failure` more before the answer.
    pub failures_before_delay: u32,
    pub delay_ms_per_failure: u64,
    /// The longest wait before a failed login is answered.
    pub delay_ms_max: u64,
    /// Failures for one account address before it is locked (for everyone).
    pub failures_per_account_max: u32,
    /// Failures from one client IP address before it is locked (for every account).
    pub failures_per_ip_max: u32,
    /// A failure is forgotten this long after it happened.
    pub failure_window_seconds: u64,
    /// How long a lock lasts.
    pub lock_seconds: u64,
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            failures_before_delay: 3,
            delay_ms_per_failure: 500,
            delay_ms_max: 5_000,
            failures_per_account_max: 10,
            failures_per_ip_max: 30,
            failure_window_seconds: 15 * 60,
            lock_seconds: 15 * 60,
        }
    }
}

/// The IMAP server's limits (`imap` and `imaps` listeners).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImapConfig {
    /// The largest literal, and so the largest message APPEND takes (announced as
    /// APPENDLIMIT, RFC 7889); a larger one gets `NO [TOOBIG]`.
    pub literal_octets_max: u32,
    /// The longest command line (without its literals); a longer one gets `BAD`.
    pub command_line_octets_max: u32,
    /// Concurrent connections; more get `BYE`.
    pub connections_max: usize,
    /// Concurrent connections from one client address; more get `BYE`.
    pub connections_per_ip_max: usize,
    /// Silence before an authenticated session is closed (RFC 9051 §5.4: at least 30 min).
    pub idle_timeout_seconds: u64,
    /// Silence before a session that has not logged in is closed.
    pub login_timeout_seconds: u64,
    /// How often IDLE asks the store for changes made by another process (changes made by
    /// this node wake it at once).
    pub idle_poll_seconds: u64,
    /// Commands answered `BAD` before the session is closed with `BYE`.
    pub session_errors_max: u32,
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            literal_octets_max: 50 * 1024 * 1024,
            command_line_octets_max: 64 * 1024,
            connections_max: 10_000,
            connections_per_ip_max: 50,
            idle_timeout_seconds: 30 * 60,
            login_timeout_seconds: 60,
            idle_poll_seconds: 5,
            session_errors_max: 20,
        }
    }
}

/// The HTTP surface (`http` and `https` listeners).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Reverse proxies in front of the `http` listener, by address: a request from one of
    /// them is taken to come from the client its `X-Forwarded-For` names (the last address
    /// there that is not itself a trusted proxy), for the login throttle, the session list
    /// and the logs. Empty (the default): no header is believed, every request comes from
    /// its TCP peer.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// The POP3 server's limits (`pop3` and `pop3s` listeners).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pop3Config {
    /// Concurrent connections; more get `-ERR [SYS/TEMP]`.
    pub connections_max: usize,
    /// Concurrent connections from one client address; more get `-ERR [SYS/TEMP]`.
    pub connections_per_ip_max: usize,
    /// Silence before the session is closed (RFC 1939 §3: at least 10 minutes). A closed
    /// session deletes nothing.
    pub command_timeout_seconds: u64,
    /// Protocol errors (unknown commands, bad syntax, wrong state) before the session is
    /// closed.
    pub session_errors_max: u32,
}

impl Default for Pop3Config {
    fn default() -> Self {
        Pop3Config {
            connections_max: 10_000,
            connections_per_ip_max: 50,
            command_timeout_seconds: 10 * 60,
            session_errors_max: 20,
        }
    }
}

/// The full-text index behind IMAP SEARCH BODY and TEXT (`tme-search`), one per account
/// under `DATA_DIR/search/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Whether searches use the index; without it BODY and TEXT read every message.
    pub enabled: bool,
    /// Account indexes kept open at once (least recently used closed first).
    pub indexes_open_max: usize,
    /// Index writers at once across the node, each holding `writer_heap_bytes`.
    pub writers_concurrent_max: usize,
    /// Memory of one index writer before it writes a segment (tantivy's least: 15 MB).
    pub writer_heap_bytes: usize,
    /// Messages a search indexes before it answers; an index further behind answers by
    /// reading the messages this time and catches up in the background.
    pub catch_up_inline_messages_max: usize,
    /// Decoded text indexed per message; a message with more is always read by the search.
    pub text_bytes_per_message_max: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            enabled: true,
            indexes_open_max: 64,
            writers_concurrent_max: 2,
            writer_heap_bytes: 15_000_000,
            catch_up_inline_messages_max: 2_000,
            text_bytes_per_message_max: 1024 * 1024,
        }
    }
}

/// The DNS resolver every role asks (authenticity checks, blocklists, outbound MX lookups).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResolverConfig {
    /// Recursive resolvers to ask, as `address:port`, each over UDP and TCP; empty means the
    /// system's (`/etc/resolv.conf`). Tests point this at a local authoritative server.
    pub nameservers: Vec<SocketAddr>,
    /// How long one attempt of a query may take (a query makes at most two attempts) before
    /// it counts as a temporary failure.
    pub timeout_ms: u64,
    /// DNSKEY records (zone-file syntax) trusted as DNSSEC trust anchors by the validating
    /// resolver the queue uses for DANE (`queue.dane`); unset means the root zone's own keys
    /// (KSK-2017 and KSK-2024) as built into hickory-resolver. Tests point it at the key of
    /// their own signed root.
    pub dnssec_trust_anchor_file: Option<std::path::PathBuf>,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            nameservers: Vec::new(),
            timeout_ms: 5_000,
            dnssec_trust_anchor_file: None,
        }
    }
}

/// The outbound queue (`tme-queue`): retries, lifetime, connections, an optional relay host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// How long a message is retried before its pending recipients bounce (RFC 5321
    /// §4.5.4.1 suggests at least 4–5 days).
    pub message_lifetime_seconds: u64,
    /// The wait after the first failed attempt; each further failure doubles it.
    pub retry_first_seconds: u64,
    /// The longest wait between attempts.
    pub retry_max_seconds: u64,
    /// After this long undelivered, the sender gets one delay notice (a DSN, RFC 3464).
    pub delay_notice_seconds: u64,
    /// The port outbound connections go to: 25 on the Internet (tests use another).
    pub remote_port: u16,
    /// Deliver everything through this host (`host:port`) instead of by MX: a smart host.
    pub relay_host: Option<String>,
    /// The user name for AUTH PLAIN at the relay host (with `relay_password_file`).
    pub relay_username: Option<String>,
    /// A file holding the relay host's password (its first line), so that the secret is
    /// neither in the config file nor in the environment.
    pub relay_password_file: Option<std::path::PathBuf>,
    /// At most this many outbound connections at once, in total.
    pub connections_max: usize,
    /// At most this many outbound connections at once to one destination domain.
    pub connections_per_domain_max: usize,
    /// How many messages one connection carries before it is closed (connection reuse).
    pub messages_per_connection_max: usize,
    /// How long connecting to a host may take.
    pub connect_timeout_seconds: u64,
    /// How long the remote server may take to answer a command (RFC 5321 §4.5.3.2 gives
    /// 5 minutes for most; the end of the data gets `data_end_timeout_seconds`).
    pub command_timeout_seconds: u64,
    /// How long the remote server may take to answer the end of the data (10 minutes).
    pub data_end_timeout_seconds: u64,
    /// How long a node's claim on a message lasts before another node may take it over.
    pub lease_seconds: u64,
    /// Honour the MTA-STS policies of destination domains (RFC 8461): with `enforce`, mail
    /// goes only to the MX hosts a policy names, over TLS with a verified certificate.
    pub mta_sts: bool,
    /// The port MTA-STS policy hosts are reached on: 443 (tests use another).
    pub mta_sts_https_port: u16,
    /// How long fetching one MTA-STS policy may take.
    pub mta_sts_fetch_timeout_seconds: u64,
    /// PEM certificates trusted besides the system's (Debian's ca-certificates) when a
    /// certificate must verify (MTA-STS): a private PKI.
    pub tls_trust_anchors_file: Option<std::path::PathBuf>,
    /// Honour DANE (RFC 7672): MX hosts whose DNSSEC-signed TLSA records say so get mail only
    /// over TLS with a certificate those records authenticate. On by default. It needs
    /// resolvers that pass DNSSEC records through (`resolver.nameservers`, or the system's):
    /// the queue checks that the root's keys validate before each pass (hourly while they
    /// do) and sends as without DANE while they do not, so a resolver that strips
    /// signatures costs DANE, not mail.
    pub dane: bool,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            message_lifetime_seconds: 5 * 86_400,
            retry_first_seconds: 300,
            retry_max_seconds: 3_600,
            delay_notice_seconds: 4 * 3_600,
            remote_port: 25,
            relay_host: None,
            relay_username: None,
            relay_password_file: None,
            connections_max: 64,
            connections_per_domain_max: 4,
            messages_per_connection_max: 100,
            connect_timeout_seconds: 30,
            command_timeout_seconds: 300,
            data_end_timeout_seconds: 600,
            lease_seconds: 900,
            mta_sts: true,
            mta_sts_https_port: 443,
            mta_sts_fetch_timeout_seconds: 60,
            tls_trust_anchors_file: None,
            dane: true,
        }
    }
}

/// How inbound mail is judged before it is stored (`tme-filter`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// A message whose spam score reaches this goes to the recipient's Junk.
    pub junk_score_min: f64,
    /// rspamd's normal worker (`http://127.0.0.1:11333`); every message is also checked
    /// there. Empty: no rspamd.
    #[serde(
        serialize_with = "http_url_or_empty_serialize",
        deserialize_with = "http_url_or_empty_deserialize"
    )]
    pub rspamd_url: Option<HttpUrl>,
    /// How long one rspamd check may take (connect, send, answer); past it the message is
    /// accepted unchecked. Above rspamd's own `task_timeout` (8 s by default), so that rspamd
    /// answers first when it is merely slow.
    pub rspamd_timeout_ms: u64,
    /// What rspamd's `reject` action does: refuse the message (5xx) or file it in Junk.
    pub rspamd_reject_action: RspamdRejectAction,
    /// DNS blocklists the client's address is looked up in (RFC 5782); none by default.
    pub dnsbl_zones: Vec<DnsblZone>,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            junk_score_min: 5.0,
            rspamd_url: None,
            rspamd_timeout_ms: 10_000,
            rspamd_reject_action: RspamdRejectAction::Refuse,
            dnsbl_zones: Vec::new(),
        }
    }
}

/// What to do with a message for which rspamd answers `reject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RspamdRejectAction {
    Refuse,
    Junk,
}

/// An `http://host[:port][/path]` URL: a peer reached over plain HTTP (rspamd). Valid by
/// construction: the scheme is `http`, the host is an IP address or a name, the port is
/// 1–65535 (80 when absent), and there is no user, query or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// A name or an IP address; IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// Empty, or starting with `/` and not ending with it.
    pub path: String,
}

impl HttpUrl {
    pub fn parse(text: &str) -> Result<HttpUrl, String> {
        let error = |why: &str| format!("`{text}` is not an http:// URL: {why}");
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(error("no scheme"));
        };
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(error(
                "only plain http is supported (the peer runs on this host or a trusted network)",
            ));
        }
        if rest.contains(['?', '#']) {
            return Err(error("a query or fragment is not allowed"));
        }
        let (authority, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(error("a user name is not allowed"));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| error("an IPv6 address without its closing ]"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(error("a bad IPv6 address"));
            }
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| error("text after the IPv6 address"))?,
                ),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let host_valid = !host.is_empty()
            && (host.parse::<std::net::IpAddr>().is_ok()
                || host
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.'));
        if !host_valid {
            return Err(error("a bad host"));
        }
        let port = match port {
            None => 80,
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => return Err(error("a bad port")),
            },
        };
        Ok(HttpUrl {
            host: host.to_owned(),
            port,
            path: path.trim_end_matches('/').to_owned(),
        })
    }

    /// `host:port` as the `Host` header field wants it (RFC 9110 §7.2).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "http://{}{}", self.authority(), self.path)
    }
}

/// `None` is written as `""`, so that `tme init` shows the key.
fn http_url_or_empty_serialize<S: serde::Serializer>(
    url: &Option<HttpUrl>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => serializer.collect_str(url),
        None => serializer.serialize_str(""),
    }
}

/// `""` (or only spaces) means none.
fn http_url_or_empty_deserialize<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<HttpUrl>, D::Error> {
    let text = String::deserialize(deserializer)?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    HttpUrl::parse(text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// One DNS blocklist: `{ zone = "zen.spamhaus.org", action = "reject" }` or
/// `{ zone = "bl.example", action = "score", points = 3.0 }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsblZone {
    /// The zone queried as `<reversed address>.<zone>`.
    pub zone: String,
    #[serde(default)]
    pub action: DnsblAction,
    /// Spam points a listing adds when the action is `score`.
    #[serde(default = "DnsblZone::points_default")]
    pub points: f64,
}

impl DnsblZone {
    fn points_default() -> f64 {
        3.0
    }
}

/// What a listing on a blocklist does to the message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsblAction {
    /// Refuse the message (`554 5.7.1`).
    Reject,
    /// Add the zone's points to the spam score.
    #[default]
    Score,
}

/// The authoritative DNS server (the `dns` role, `tme-dns`): what goes into the zone made for
/// every hosted domain, who may transfer it, and the server's limits. Every key has a default;
/// an empty name means `node.hostname`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// The name servers of every zone (NS records); the first is the SOA's primary (MNAME).
    /// Empty: `node.hostname`.
    pub name_servers: Vec<String>,
    /// The SOA's responsible mailbox, as an address. Empty: `hostmaster@` + `node.hostname`.
    pub hostmaster: String,
    /// The MX targets, one per site with the site's priority (lower is preferred, RFC 5321
    /// §5.1), and each host's addresses (A/AAAA records, made when the host's name lies
    /// inside a hosted domain). Empty: `node.hostname` at priority 10.
    pub mail_hosts: Vec<DnsMailHost>,
    /// The host mail clients reach (the SRV targets of RFC 6186 / RFC 8314, and the name
    /// `autoconfig.`, `autodiscover.` and `mta-sts.` of each domain point to). Empty:
    /// `node.hostname`.
    pub client_host: String,
    /// The ports mail clients use on `client_host`, as the world reaches them (behind a
    /// load balancer or NAT they may differ from `[listen]`): published in the SRV records
    /// and the autoconfig, autodiscover and Apple documents.
    pub client_ports: ClientPorts,
    /// The TTL of every record made, in seconds.
    pub ttl_seconds: u32,
    /// The TTL of negative answers (the SOA's MINIMUM, RFC 2308 §4).
    pub negative_ttl_seconds: u32,
    /// The domain's SPF record (RFC 7208).
    pub spf: String,
    /// The `_dmarc` record (RFC 9989); `{domain}` is replaced by the domain.
    pub dmarc: String,
    /// The `_smtp._tls` TLS-RPT record (RFC 8460); `{domain}` is replaced by the domain.
    pub tls_rpt: String,
    /// The MTA-STS policy mode (RFC 8461 §3.2): `enforce`, `testing` or `none`.
    pub mta_sts_mode: MtaStsMode,
    /// The MTA-STS policy's `max_age`, in seconds.
    pub mta_sts_max_age_seconds: u32,
    /// Addresses allowed to transfer every zone (AXFR over TCP); none by default.
    pub transfer_allow: Vec<IpAddr>,
    /// Secondaries sent a NOTIFY (RFC 1996, over UDP) whenever a zone changes.
    pub notify: Vec<SocketAddr>,
    /// UDP responses per second to one client network (an IPv4 /24, an IPv6 /56); past it
    /// answers are dropped, every other one sent truncated so a real client retries over
    /// TCP. A guard against reflection attacks; 0 turns it off.
    pub responses_per_second_max: u32,
    /// The largest UDP response, whatever the client offers with EDNS (RFC 6891 §6.2.5);
    /// larger answers are truncated (TC) so the client asks again over TCP.
    pub udp_payload_octets_max: u16,
    /// Concurrent TCP connections; more wait.
    pub tcp_connections_max: usize,
    /// How often the directory's change counter is read; a change is served within it.
    pub poll_interval_ms: u64,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            name_servers: Vec::new(),
            hostmaster: String::new(),
            mail_hosts: Vec::new(),
            client_host: String::new(),
            client_ports: ClientPorts::default(),
            ttl_seconds: 3600,
            negative_ttl_seconds: 300,
            spf: "v=spf1 mx ~all".to_owned(),
            dmarc: "v=DMARC1; p=none".to_owned(),
            tls_rpt: "v=TLSRPTv1; rua=mailto:postmaster@{domain}".to_owned(),
            mta_sts_mode: MtaStsMode::Testing,
            mta_sts_max_age_seconds: 604_800,
            transfer_allow: Vec::new(),
            notify: Vec::new(),
            responses_per_second_max: 100,
            udp_payload_octets_max: 1232,
            tcp_connections_max: 256,
            poll_interval_ms: 250,
        }
    }
}

impl DnsConfig {
    fn validate(&self) -> Result<(), String> {
        for name in &self.name_servers {
            if !is_dns_name(name) {
                return Err(format!("dns.name_servers: `{name}` is not a host name"));
            }
        }
        for host in &self.mail_hosts {
            if !is_dns_name(&host.host) {
                return Err(format!(
                    "dns.mail_hosts: `{}` is not a host name",
                    host.host
                ));
            }
        }
        if !self.client_host.is_empty() && !is_dns_name(&self.client_host) {
            return Err(format!(
                "dns.client_host: `{}` is not a host name",
                self.client_host
            ));
        }
        if !self.hostmaster.is_empty()
            && !self
                .hostmaster
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && is_dns_name(domain))
        {
            return Err(format!(
                "dns.hostmaster: `{}` is not an address",
                self.hostmaster
            ));
        }
        for (key, text) in [
            ("dns.spf", &self.spf),
            ("dns.dmarc", &self.dmarc),
            ("dns.tls_rpt", &self.tls_rpt),
        ] {
            if text.is_empty()
                || text.len() > 1000
                || !text.bytes().all(|octet| (0x20..0x7f).contains(&octet))
            {
                return Err(format!(
                    "{key} must be 1 to 1000 printable ASCII characters"
                ));
            }
        }
        for (key, port) in [
            ("dns.client_ports.imaps", self.client_ports.imaps),
            (
                "dns.client_ports.submissions",
                self.client_ports.submissions,
            ),
            ("dns.client_ports.pop3s", self.client_ports.pop3s),
            ("dns.client_ports.https", self.client_ports.https),
        ] {
            if port == 0 {
                return Err(format!("{key} must be a port from 1 to 65535"));
            }
        }
        // RFC 6891 §6.2.5: below 512 is treated as 512.
        if self.udp_payload_octets_max < 512 {
            return Err("dns.udp_payload_octets_max must be at least 512".to_owned());
        }
        for (key, value) in [
            ("dns.ttl_seconds", u64::from(self.ttl_seconds)),
            ("dns.tcp_connections_max", self.tcp_connections_max as u64),
            ("dns.poll_interval_ms", self.poll_interval_ms),
            (
                "dns.mta_sts_max_age_seconds",
                u64::from(self.mta_sts_max_age_seconds),
            ),
        ] {
            if value == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        Ok(())
    }
}

/// The public ports of the client services, the implicit-TLS ones of RFC 8314 §3.3 and §5.1
/// by default: `{ imaps = 993, submissions = 465, pop3s = 995, https = 443 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientPorts {
    /// IMAP over TLS (`_imaps._tcp`).
    pub imaps: u16,
    /// Message submission over TLS (`_submissions._tcp`).
    pub submissions: u16,
    /// POP3 over TLS (`_pop3s._tcp`).
    pub pop3s: u16,
    /// HTTPS: JMAP (`_jmap._tcp`, RFC 8620 §2.2) and Outlook's `_autodiscover._tcp`.
    pub https: u16,
}

impl Default for ClientPorts {
    fn default() -> Self {
        ClientPorts {
            imaps: 993,
            submissions: 465,
            pop3s: 995,
            https: 443,
        }
    }
}

/// One MX target: `{ host = "mx1.example.net", site = "paris", priority = 10, addresses =
/// ["192.0.2.25"] }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsMailHost {
    pub host: String,
    #[serde(default)]
    pub site: String,
    #[serde(default = "DnsMailHost::priority_default")]
    pub priority: u16,
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
}

impl DnsMailHost {
    fn priority_default() -> u16 {
        10
    }
}

/// How senders treat the MTA-STS policy (RFC 8461 §5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MtaStsMode {
    Enforce,
    #[default]
    Testing,
    None,
}

impl MtaStsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MtaStsMode::Enforce => "enforce",
            MtaStsMode::Testing => "testing",
            MtaStsMode::None => "none",
        }
    }
}

/// A config that could not be read, with the place at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("environment variable {variable}: {message}")]
    Environment { variable: String, message: String },
}

impl Config {
    /// Reads `tme.toml` from `path` and applies the `TME_*` variables of `environment`.
    pub fn load(
        path: &Path,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml_with_environment(&text, path, environment)
    }

    /// Parses config text; `path` only names the source in errors.
    pub fn from_toml_with_environment(
        text: &str,
        path: &Path,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        // First the file alone, so that its errors carry line and column.
        let mut table: toml::Table =
            toml::from_str(text).map_err(|error| ConfigError::Invalid {
                path: path.to_owned(),
                message: one_line(&error.to_string()),
            })?;
        Config::deserialize(toml::Value::Table(table.clone())).map_err(|error| {
            ConfigError::Invalid {
                path: path.to_owned(),
                message: one_line(&error.to_string()),
            }
        })?;
        // Then each override on its own, so that an error names the variable at fault.
        let overrides: BTreeMap<String, String> = environment
            .into_iter()
            .filter(|(name, _)| {
                name.starts_with("TME_")
                    && !ENVIRONMENT_VARIABLES_NOT_CONFIG.contains(&name.as_str())
            })
            .collect();
        for (variable, value) in &overrides {
            apply_override(&mut table, variable, value)?;
            Config::deserialize(toml::Value::Table(table.clone())).map_err(|error| {
                ConfigError::Environment {
                    variable: variable.clone(),
                    message: one_line(&error.to_string()),
                }
            })?;
        }
        let config = Config::deserialize(toml::Value::Table(table)).map_err(|error| {
            ConfigError::Invalid {
                path: path.to_owned(),
                message: one_line(&error.to_string()),
            }
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Checks what the types alone cannot.
    fn validate(self) -> Result<Config, String> {
        if self.node.hostname.trim().is_empty() {
            return Err("node.hostname must not be empty".to_owned());
        }
        if !self.filter.junk_score_min.is_finite() {
            return Err("filter.junk_score_min must be a number".to_owned());
        }
        if self.filter.rspamd_timeout_ms == 0 {
            return Err("filter.rspamd_timeout_ms must be at least 1".to_owned());
        }
        if self.resolver.timeout_ms == 0 {
            return Err("resolver.timeout_ms must be at least 1".to_owned());
        }
        for blocklist in &self.filter.dnsbl_zones {
            if !is_dns_name(&blocklist.zone) {
                return Err(format!(
                    "filter.dnsbl_zones: `{}` is not a DNS zone name",
                    blocklist.zone
                ));
            }
            if !blocklist.points.is_finite() {
                return Err(format!(
                    "filter.dnsbl_zones: the points of `{}` must be a number",
                    blocklist.zone
                ));
            }
        }
        for (key, value) in [
            (
                "queue.message_lifetime_seconds",
                self.queue.message_lifetime_seconds,
            ),
            ("queue.retry_first_seconds", self.queue.retry_first_seconds),
            ("queue.retry_max_seconds", self.queue.retry_max_seconds),
            ("queue.remote_port", u64::from(self.queue.remote_port)),
            (
                "queue.mta_sts_https_port",
                u64::from(self.queue.mta_sts_https_port),
            ),
            (
                "queue.mta_sts_fetch_timeout_seconds",
                self.queue.mta_sts_fetch_timeout_seconds,
            ),
            ("queue.connections_max", self.queue.connections_max as u64),
            (
                "queue.connections_per_domain_max",
                self.queue.connections_per_domain_max as u64,
            ),
            (
                "queue.messages_per_connection_max",
                self.queue.messages_per_connection_max as u64,
            ),
            (
                "queue.connect_timeout_seconds",
                self.queue.connect_timeout_seconds,
            ),
            (
                "queue.command_timeout_seconds",
                self.queue.command_timeout_seconds,
            ),
            (
                "queue.data_end_timeout_seconds",
                self.queue.data_end_timeout_seconds,
            ),
            ("queue.lease_seconds", self.queue.lease_seconds),
        ] {
            if value == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        if self.queue.relay_username.is_some() != self.queue.relay_password_file.is_some() {
            return Err(
                "queue.relay_username and queue.relay_password_file go together".to_owned(),
            );
        }
        if self.queue.relay_username.is_some() && self.queue.relay_host.is_none() {
            return Err("queue.relay_username needs queue.relay_host".to_owned());
        }
        self.dns.validate()?;
        if self.store.retention_days == 0 {
            return Err("store.retention_days must be at least 1".to_owned());
        }
        for (key, value) in [
            ("smtp.message_bytes_max", self.smtp.message_bytes_max),
            ("smtp.recipients_max", self.smtp.recipients_max as u64),
            ("smtp.connections_max", self.smtp.connections_max as u64),
            (
                "smtp.connections_per_ip_max",
                self.smtp.connections_per_ip_max as u64,
            ),
            (
                "smtp.command_timeout_seconds",
                self.smtp.command_timeout_seconds,
            ),
            (
                "smtp.data_block_timeout_seconds",
                self.smtp.data_block_timeout_seconds,
            ),
            (
                "smtp.message_timeout_seconds",
                self.smtp.message_timeout_seconds,
            ),
            (
                "smtp.session_errors_max",
                u64::from(self.smtp.session_errors_max),
            ),
            ("smtp.spool_bytes_max", self.smtp.spool_bytes_max),
            ("store.busy_timeout_ms", self.store.busy_timeout_ms),
            (
                "login.failures_per_account_max",
                u64::from(self.login.failures_per_account_max),
            ),
            (
                "login.failures_per_ip_max",
                u64::from(self.login.failures_per_ip_max),
            ),
            (
                "login.failure_window_seconds",
                self.login.failure_window_seconds,
            ),
            ("login.lock_seconds", self.login.lock_seconds),
            (
                "imap.literal_octets_max",
                u64::from(self.imap.literal_octets_max),
            ),
            ("imap.connections_max", self.imap.connections_max as u64),
            (
                "imap.connections_per_ip_max",
                self.imap.connections_per_ip_max as u64,
            ),
            ("imap.idle_timeout_seconds", self.imap.idle_timeout_seconds),
            (
                "imap.login_timeout_seconds",
                self.imap.login_timeout_seconds,
            ),
            ("imap.idle_poll_seconds", self.imap.idle_poll_seconds),
            (
                "imap.session_errors_max",
                u64::from(self.imap.session_errors_max),
            ),
            ("pop3.connections_max", self.pop3.connections_max as u64),
            (
                "pop3.connections_per_ip_max",
                self.pop3.connections_per_ip_max as u64,
            ),
            (
                "pop3.session_errors_max",
                u64::from(self.pop3.session_errors_max),
            ),
            (
                "search.indexes_open_max",
                self.search.indexes_open_max as u64,
            ),
            (
                "search.writers_concurrent_max",
                self.search.writers_concurrent_max as u64,
            ),
            (
                "search.text_bytes_per_message_max",
                self.search.text_bytes_per_message_max as u64,
            ),
        ] {
            if value == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        // RFC 5321 §4.5.3.1.4: a server must take command lines of 512 octets.
        if self.smtp.command_line_octets_max < 512 {
            return Err(
                "smtp.command_line_octets_max must be at least 512 (RFC 5321 §4.5.3.1.4)"
                    .to_owned(),
            );
        }
        // RFC 9051 §4.3: lines may be long (a UID set); 1000 octets is the least we take.
        if self.imap.command_line_octets_max < 1000 {
            return Err("imap.command_line_octets_max must be at least 1000".to_owned());
        }
        // RFC 1939 §3: an inactivity timer "MUST be of at least 10 minutes' duration".
        if self.pop3.command_timeout_seconds < 600 {
            return Err(
                "pop3.command_timeout_seconds must be at least 600 (RFC 1939 §3)".to_owned(),
            );
        }
        // tantivy refuses a writer with less than 15 MB (its MEMORY_BUDGET_NUM_BYTES_MIN).
        if self.search.writer_heap_bytes < 15_000_000 {
            return Err("search.writer_heap_bytes must be at least 15000000".to_owned());
        }
        let mut seen: BTreeMap<SocketAddr, &str> = BTreeMap::new();
        for (role, address) in self.listen.listeners() {
            if let Some(other) = seen.insert(address, role) {
                return Err(format!(
                    "listen.{role} and listen.{other} both use {address}"
                ));
            }
        }
        Ok(self)
    }

    /// The config as TOML, for `tme init` and `tme config show`. Holds no secret today; any
    /// secret added later is a `Secret`, which serializes redacted.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|error| format!("# cannot render: {error}\n"))
    }
}

/// Sets the key named by `TME_A__B__C` to `value`. The value is read as a TOML value when it
/// is one (`30`, `true`, `["a"]`) and as a string otherwise (`127.0.0.1:2525`).
fn apply_override(table: &mut toml::Table, variable: &str, value: &str) -> Result<(), ConfigError> {
    let error = |message: String| ConfigError::Environment {
        variable: variable.to_owned(),
        message,
    };
    let key_path: Vec<String> = variable["TME_".len()..]
        .split("__")
        .map(|segment| segment.to_ascii_lowercase())
        .collect();
    if key_path.iter().any(|segment| segment.is_empty()) {
        return Err(error(
            "an empty key segment (use __ only between levels)".to_owned(),
        ));
    }
    let parsed_value = toml::from_str::<toml::Table>(&format!("value = {value}"))
        .ok()
        .and_then(|mut table| table.remove("value"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    let (last, parents) = key_path
        .split_last()
        .ok_or_else(|| error("no key".to_owned()))?;
    let mut current = table;
    for segment in parents {
        let entry = current
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(table) => table,
            _ => return Err(error(format!("`{segment}` is not a table"))),
        };
    }
    current.insert(last.clone(), parsed_value);
    Ok(())
}

/// A DNS name in ASCII (letters, digits, `-`, `_`), labels of 1 to 63 octets, at most 253
/// octets, without the root's final dot (RFC 1035 §2.3.4).
fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|octet| octet.is_ascii_alphanumeric() || octet == b'-' || octet == b'_')
        })
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for StoreBackend {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreBackend::Sqlite => formatter.write_str("sqlite"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    fn check(text: &str, environment: &[(&str, &str)], expected: Expect) {
        let environment = environment
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()));
        let actual = match Config::from_toml_with_environment(
            text,
            Path::new("/data/tme.toml"),
            environment,
        ) {
            Ok(config) => format!("{:?}\n{:?}", config.listen.listeners(), config.store),
            Err(error) => format!("error: {error}"),
        };
        expected.assert_eq(&actual);
    }

    #[test]
    fn empty_file_gives_defaults() {
        check(
            "",
            &[],
            expect![[r#"
                []
                StoreConfig { backend: Sqlite, retention_days: 30, busy_timeout_ms: 30000 }"#]],
        );
    }

    #[test]
    fn environment_overrides_keys() {
        check(
            "[listen]\nsmtp = \"127.0.0.1:2525\"\n",
            &[
                ("TME_LISTEN__SMTP", "127.0.0.1:12525"),
                ("TME_STORE__RETENTION_DAYS", "7"),
                ("TME_DATA_DIR", "/elsewhere"),
                ("PATH", "/bin"),
            ],
            expect![
                "error: environment variable TME_STORE__RETENTION_DAYS: missing field `backend` in `store`"
            ],
        );
    }

    #[test]
    fn unknown_key_names_the_key_and_the_file() {
        check(
            "[listen]\nsmtpp = \"127.0.0.1:2525\"\n",
            &[],
            expect![
                "error: /data/tme.toml: unknown field `smtpp`, expected one of `smtp`, `submission`, `submissions`, `imap`, `imaps`, `pop3`, `pop3s`, `http`, `https`, `dns` in `listen`"
            ],
        );
    }

    #[test]
    fn bad_value_names_the_variable() {
        check(
            "",
            &[("TME_LISTEN__IMAP", "not-an-address")],
            expect![
                "error: environment variable TME_LISTEN__IMAP: invalid socket address syntax in `listen.imap`"
            ],
        );
        check(
            "",
            &[("TME_NODE__COLOUR", "blue")],
            expect![
                "error: environment variable TME_NODE__COLOUR: unknown field `colour`, expected `hostname` or `site` in `node`"
            ],
        );
    }

    #[test]
    fn syntax_error_names_the_line() {
        check(
            "[listen\n",
            &[],
            expect![
                "error: /data/tme.toml: TOML parse error at line 1, column 8 | 1 | [listen | ^ unclosed table, expected `]`"
            ],
        );
    }

    #[test]
    fn smtp_limits_have_defaults_and_take_overrides() {
        let smtp = |text: &str, environment: &[(&str, &str)]| {
            let environment = environment
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()));
            match Config::from_toml_with_environment(text, Path::new("/data/tme.toml"), environment)
            {
                Ok(config) => format!("{:?}", config.smtp),
                Err(error) => format!("error: {error}"),
            }
        };
        expect!["SmtpConfig { message_bytes_max: 52428800, recipients_max: 100, connections_max: 1000, connections_per_ip_max: 20, command_line_octets_max: 2048, command_timeout_seconds: 300, data_block_timeout_seconds: 300, message_timeout_seconds: 1800, session_errors_max: 10, spool_bytes_max: 10737418240 }"]
        .assert_eq(&smtp("", &[]));
        expect!["SmtpConfig { message_bytes_max: 1000, recipients_max: 5, connections_max: 1000, connections_per_ip_max: 20, command_line_octets_max: 2048, command_timeout_seconds: 300, data_block_timeout_seconds: 300, message_timeout_seconds: 1800, session_errors_max: 10, spool_bytes_max: 10737418240 }"]
        .assert_eq(&smtp(
            "[smtp]\nmessage_bytes_max = 1000\n",
            &[("TME_SMTP__RECIPIENTS_MAX", "5")],
        ));
        expect!["error: /data/tme.toml: unknown field `recipient_max`, expected one of `message_bytes_max`, `recipients_max`, `connections_max`, `connections_per_ip_max`, `command_line_octets_max`, `command_timeout_seconds`, `data_block_timeout_seconds`, `message_timeout_seconds`, `session_errors_max`, `spool_bytes_max` in `smtp`"].assert_eq(&smtp("[smtp]\nrecipient_max = 5\n", &[]));
        expect!["error: /data/tme.toml: smtp.connections_max must be at least 1"]
            .assert_eq(&smtp("", &[("TME_SMTP__CONNECTIONS_MAX", "0")]));
        expect!["error: /data/tme.toml: smtp.command_line_octets_max must be at least 512 (RFC 5321 §4.5.3.1.4)"]
            .assert_eq(&smtp("", &[("TME_SMTP__COMMAND_LINE_OCTETS_MAX", "100")]));
    }

    #[test]
    fn rspamd_keys_are_validated() {
        let filter = |text: &str, environment: &[(&str, &str)]| {
            let environment = environment
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()));
            match Config::from_toml_with_environment(text, Path::new("/data/tme.toml"), environment)
            {
                Ok(config) => format!(
                    "{} {} {:?}",
                    config
                        .filter
                        .rspamd_url
                        .map_or("off".to_owned(), |url| url.to_string()),
                    config.filter.rspamd_timeout_ms,
                    config.filter.rspamd_reject_action
                ),
                Err(error) => format!("error: {error}"),
            }
        };
        expect!["off 10000 Refuse"].assert_eq(&filter("", &[]));
        expect!["off 10000 Refuse"].assert_eq(&filter("[filter]\nrspamd_url = \"\"\n", &[]));
        expect!["http://127.0.0.1:11333 500 Junk"].assert_eq(&filter(
            "[filter]\nrspamd_url = \"http://127.0.0.1:11333/\"\nrspamd_timeout_ms = 500\nrspamd_reject_action = \"junk\"\n",
            &[],
        ));
        expect!["http://[::1]:80/rspamd 10000 Refuse"].assert_eq(&filter(
            "",
            &[("TME_FILTER__RSPAMD_URL", "HTTP://[::1]/rspamd")],
        ));
        expect!["http://rspamd.internal:11333 10000 Refuse"].assert_eq(&filter(
            "",
            &[("TME_FILTER__RSPAMD_URL", "http://rspamd.internal:11333")],
        ));
        expect!["error: /data/tme.toml: `https://127.0.0.1:11333` is not an http:// URL: only plain http is supported (the peer runs on this host or a trusted network) in `filter.rspamd_url`"]
            .assert_eq(&filter("[filter]\nrspamd_url = \"https://127.0.0.1:11333\"\n", &[]));
        expect!["error: environment variable TME_FILTER__RSPAMD_URL: `127.0.0.1:11333` is not an http:// URL: no scheme in `filter.rspamd_url`"]
            .assert_eq(&filter("", &[("TME_FILTER__RSPAMD_URL", "127.0.0.1:11333")]));
        expect!["error: environment variable TME_FILTER__RSPAMD_URL: `http://127.0.0.1:0` is not an http:// URL: a bad port in `filter.rspamd_url`"]
            .assert_eq(&filter("", &[("TME_FILTER__RSPAMD_URL", "http://127.0.0.1:0")]));
        expect!["error: environment variable TME_FILTER__RSPAMD_URL: `http://user@host` is not an http:// URL: a user name is not allowed in `filter.rspamd_url`"]
            .assert_eq(&filter("", &[("TME_FILTER__RSPAMD_URL", "http://user@host")]));
        expect!["error: /data/tme.toml: filter.rspamd_timeout_ms must be at least 1"]
            .assert_eq(&filter("[filter]\nrspamd_timeout_ms = 0\n", &[]));
        expect!["error: /data/tme.toml: unknown variant `drop`, expected `refuse` or `junk` in `filter.rspamd_reject_action`"]
            .assert_eq(&filter("[filter]\nrspamd_reject_action = \"drop\"\n", &[]));
        let mut config = Config::from_toml_with_environment("", Path::new("tme.toml"), Vec::new())
            .expect("defaults");
        config.filter.rspamd_url = HttpUrl::parse("http://[::1]:11333/checks").ok();
        let read_back = Config::from_toml_with_environment(
            &config.to_toml(),
            Path::new("tme.toml"),
            Vec::new(),
        );
        assert_eq!(read_back.ok(), Some(config));
    }

    #[test]
    fn store_busy_timeout_defaults_for_files_written_before_it() {
        let store = "[store]\nbackend = \"sqlite\"\nretention_days = 7\n";
        check(
            store,
            &[],
            expect![[r#"
                []
                StoreConfig { backend: Sqlite, retention_days: 7, busy_timeout_ms: 30000 }"#]],
        );
        check(
            store,
            &[("TME_STORE__BUSY_TIMEOUT_MS", "0")],
            expect!["error: /data/tme.toml: store.busy_timeout_ms must be at least 1"],
        );
    }

    #[test]
    fn blocklists_are_validated_and_take_overrides() {
        let filter = |text: &str, environment: &[(&str, &str)]| {
            let environment = environment
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()));
            match Config::from_toml_with_environment(text, Path::new("/data/tme.toml"), environment)
            {
                Ok(config) => format!("{:?}", config.filter.dnsbl_zones),
                Err(error) => format!("error: {error}"),
            }
        };
        expect!["[]"].assert_eq(&filter("", &[]));
        expect![[
            r#"[DnsblZone { zone: "zen.example", action: Reject, points: 3.0 }, DnsblZone { zone: "bl.example", action: Score, points: 1.5 }]"#
        ]]
        .assert_eq(&filter(
            "[filter]\ndnsbl_zones = [{ zone = \"zen.example\", action = \"reject\" }, { zone = \"bl.example\", points = 1.5 }]\n",
            &[],
        ));
        expect![[r#"[DnsblZone { zone: "bl.test", action: Reject, points: 3.0 }]"#]].assert_eq(
            &filter(
                "",
                &[(
                    "TME_FILTER__DNSBL_ZONES",
                    r#"[{ zone = "bl.test", action = "reject" }]"#,
                )],
            ),
        );
        expect!["error: /data/tme.toml: filter.dnsbl_zones: `bl..example` is not a DNS zone name"]
            .assert_eq(&filter(
                "[filter]\ndnsbl_zones = [{ zone = \"bl..example\" }]\n",
                &[],
            ));
        expect!["error: /data/tme.toml: unknown variant `drop`, expected `reject` or `score` in `filter.dnsbl_zones.action`"]
            .assert_eq(&filter(
                "[filter]\ndnsbl_zones = [{ zone = \"bl.example\", action = \"drop\" }]\n",
                &[],
            ));
    }

    #[test]
    fn client_ports_default_to_the_standard_ones_and_may_be_set() {
        let ports = |text: &str, environment: &[(&str, &str)]| {
            let environment: Vec<(String, String)> = environment
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect();
            match Config::from_toml_with_environment(text, Path::new("/data/tme.toml"), environment)
            {
                Ok(config) => format!("{:?}", config.dns.client_ports),
                Err(error) => format!("error: {error}"),
            }
        };
        expect!["ClientPorts { imaps: 993, submissions: 465, pop3s: 995, https: 443 }"]
            .assert_eq(&ports("", &[]));
        expect!["ClientPorts { imaps: 10993, submissions: 465, pop3s: 995, https: 8443 }"]
            .assert_eq(&ports(
                "[dns]\nclient_ports = { imaps = 10993 }\n",
                &[("TME_DNS__CLIENT_PORTS__HTTPS", "8443")],
            ));
        expect!["error: /data/tme.toml: dns.client_ports.pop3s must be a port from 1 to 65535"]
            .assert_eq(&ports("[dns.client_ports]\npop3s = 0\n", &[]));
    }

    #[test]
    fn two_roles_on_one_address_are_refused() {
        check(
            "[listen]\nsmtp = \"127.0.0.1:25\"\nimap = \"127.0.0.1:25\"\n",
            &[],
            expect!["error: /data/tme.toml: listen.imap and listen.smtp both use 127.0.0.1:25"],
        );
    }

    #[test]
    fn pop3_timeout_keeps_the_rfc_minimum() {
        check(
            "[pop3]\ncommand_timeout_seconds = 599\n",
            &[],
            expect![
                "error: /data/tme.toml: pop3.command_timeout_seconds must be at least 600 (RFC 1939 §3)"
            ],
        );
        check(
            "",
            &[("TME_POP3__SESSION_ERRORS_MAX", "0")],
            expect!["error: /data/tme.toml: pop3.session_errors_max must be at least 1"],
        );
    }

    #[test]
    fn quick_start_round_trips() {
        let config = Config {
            node: NodeConfig::default(),
            listen: ListenConfig::quick_start(),
            tls: TlsConfig::default(),
            store: StoreConfig::default(),
            directory: DirectoryConfig::default(),
            smtp: SmtpConfig::default(),
            resolver: ResolverConfig::default(),
            filter: FilterConfig::default(),
            queue: QueueConfig::default(),
            dns: DnsConfig::default(),
            login: LoginConfig::default(),
            imap: ImapConfig::default(),
            pop3: Pop3Config::default(),
            search: SearchConfig::default(),
            http: HttpConfig::default(),
        };
        let text = config.to_toml();
        let read_back =
            Config::from_toml_with_environment(&text, Path::new("tme.toml"), Vec::new());
        assert_eq!(read_back.ok(), Some(config));
    }
}
