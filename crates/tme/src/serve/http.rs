//! The `http` role: `/healthz`, `/readyz` and `/metrics` (Prometheus), the client set-up
//! documents (`client_setup`) and the webmail (`tme_web`, at `/`); JMAP, the admin API and
//! the status page join this router as their issues land (DESIGN §7). One router, served on
//! `listen.http` (plain: for the loopback and trusted proxies in front; the webmail's
//! visitors from elsewhere are sent to HTTPS) and on `listen.https` (TLS from the first
//! byte, `tls_listener`, with HSTS).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use prometheus_client::registry::Registry;
use serde_json::json;
use tme_store::Store;

use super::health::Health;
use super::supervisor::RoleContext;

#[derive(Debug, Clone)]
pub struct HttpContext {
    pub health: Arc<Health>,
    pub store: Store,
    /// Every role's metrics.
    pub metrics: Arc<Registry>,
    /// What the client set-up documents (MTA-STS, autoconfig) say; see `client_setup`.
    pub zone_settings: tme_dns::ZoneSettings,
    /// The node's one login authenticator: the webmail's login shares its throttle.
    pub authenticator: Arc<tme_auth::Authenticator>,
    /// The full-text index, when `[search]` is on: the webmail's search asks it first.
    pub search: Option<Arc<tme_search::SearchIndexes>>,
    /// The node's submission pipeline, shared with the submission role: the webmail sends
    /// through it.
    pub submitter: tme_queue::Submitter,
    /// The listeners (`listen.http`, `listen.https`) and the certificate (`[tls]`).
    pub config: Arc<tme_core::config::Config>,
    pub data_directory: std::path::PathBuf,
}

/// How long browsers keep to HTTPS once they saw the `https` listener (RFC 6797): a year.
const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

/// Serves the router on `listen.http` (plain) and `listen.https` (TLS from the first byte,
/// with the node's certificate; without one, only plain). Either may be absent.
pub async fn run(context: HttpContext, role: RoleContext) -> Result<()> {
    let tls = match super::listeners::node_tls(&context.config, &context.data_directory) {
        Ok(tls) => Some(https_tls(&tls)),
        Err(error) => {
            if context.config.listen.https.is_some() {
                tracing::warn!(%error, "https: no certificate");
            }
            None
        }
    };
    let (plain, implicit) = super::listeners::bind_pair(
        "http",
        context.config.listen.http,
        context.config.listen.https,
        tls.is_some(),
    )
    .await?;
    // Off the loopback, the plain listener sends the webmail's visitors to HTTPS when this
    // node serves it (the loopback is a proxy in front, a test, or the operator; a trusted
    // proxy elsewhere has TLS on its side).
    let redirect = match (&implicit, context.config.listen.https) {
        (Some(_), Some(https)) => Some(HttpsRedirect {
            port: https.port(),
            hostname: context.config.node.hostname.clone(),
            trusted_proxies: context.config.http.trusted_proxies.clone(),
        }),
        _ => None,
    };
    let plain_router = router(&context, &role, redirect);
    let tls_router = router(&context, &role, None);
    role.running();
    let shutdown = role.shutdown.clone();
    let plain = async {
        let Some(listener) = plain else {
            return Ok(());
        };
        // The webmail's login throttle needs the client's address.
        axum::serve(
            listener,
            plain_router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await
        .context("http server failed")
    };
    let implicit = async {
        let (Some(listener), Some(tls)) = (implicit, tls) else {
            return Ok(());
        };
        let listener = super::tls_listener::TlsListener::new(listener, tls)
            .context("cannot listen (listen.https)")?
            // A tap that does nothing: through it axum hands handlers the client's address
            // (`ConnectInfo`), which it does for plain TCP listeners only.
            .tap_io(|_| {});
        let router = tls_router.layer(axum::middleware::map_response(strict_transport_security));
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await
        .context("https server failed")
    };
    tokio::try_join!(plain, implicit)?;
    Ok(())
}

/// The node's TLS configuration with HTTP/1.1 named for ALPN (RFC 7301): the server speaks
/// only it.
fn https_tls(node_tls: &Arc<rustls::ServerConfig>) -> Arc<rustls::ServerConfig> {
    let mut tls = rustls::ServerConfig::clone(node_tls);
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(tls)
}

/// What a listener serves: health, metrics and the client set-up documents as they are (on
/// plain HTTP too: monitors, and mail clients that look for autoconfig over HTTP), and the
/// webmail, behind `redirect` when there is one.
fn router(context: &HttpContext, role: &RoleContext, redirect: Option<HttpsRedirect>) -> Router {
    let mut webmail = tme_web::router(tme_web::WebState {
        store: context.store.clone(),
        authenticator: context.authenticator.clone(),
        search: context.search.clone(),
        shutdown: role.shutdown.clone(),
        submitter: context.submitter.clone(),
    });
    // Inside the redirect, which judges the TCP peer: the proxy's client comes after it.
    if !context.config.http.trusted_proxies.is_empty() {
        webmail = webmail.layer(axum::middleware::from_fn_with_state(
            Arc::new(context.config.http.trusted_proxies.clone()),
            client_behind_proxy,
        ));
    }
    if let Some(redirect) = redirect {
        webmail = webmail.layer(axum::middleware::from_fn_with_state(
            Arc::new(redirect),
            redirect_to_https,
        ));
    }
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(context.clone())
        .merge(super::client_setup::router(
            context.store.clone(),
            context.zone_settings.clone(),
        ))
        .merge(webmail)
}

/// A request from a trusted proxy (`http.trusted_proxies`) is handed on as coming from the
/// client its `X-Forwarded-For` names: handlers see that address as `ConnectInfo`.
async fn client_behind_proxy(
    State(trusted): State<Arc<Vec<std::net::IpAddr>>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let forwarded: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    let client = forwarded_client(peer.ip(), &trusted, &forwarded);
    if client != peer.ip() {
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(SocketAddr::new(client, 0)));
    }
    next.run(request).await
}

/// The client a request comes from: its TCP peer, unless that is a trusted proxy; then the
/// last address of `X-Forwarded-For` (all its fields, in order; each proxy appends the
/// peer it saw) that is not a trusted proxy itself. Anything unreadable there ends the
/// walk at the proxy that wrote it: a client can put anything at the start of the list,
/// never after the trusted proxies' entries.
fn forwarded_client(
    peer: std::net::IpAddr,
    trusted: &[std::net::IpAddr],
    forwarded: &[&str],
) -> std::net::IpAddr {
    let is_trusted = |address| is_trusted_proxy(trusted, address);
    let mut client = peer;
    let entries = forwarded
        .iter()
        .flat_map(|field| field.split(','))
        .collect::<Vec<_>>();
    for entry in entries.iter().rev() {
        if !is_trusted(client) {
            break;
        }
        match entry.trim().parse::<std::net::IpAddr>() {
            Ok(address) => client = address,
            Err(_) => break,
        }
    }
    client.to_canonical()
}

/// Whether `address` is one of `trusted` (`http.trusted_proxies`), IPv4-mapped or not.
fn is_trusted_proxy(trusted: &[std::net::IpAddr], address: std::net::IpAddr) -> bool {
    trusted
        .iter()
        .any(|proxy| proxy.to_canonical() == address.to_canonical())
}

/// Where the plain listener sends the webmail's visitors from off the loopback.
#[derive(Debug, Clone)]
struct HttpsRedirect {
    port: u16,
    /// For a request without a usable Host.
    hostname: String,
    /// Their requests are served as they come (`http.trusted_proxies`).
    trusted_proxies: Vec<std::net::IpAddr>,
}

async fn redirect_to_https(
    State(redirect): State<Arc<HttpsRedirect>>,
    axum::extract::ConnectInfo(client): axum::extract::ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let host = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|value| value.to_str().ok());
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str());
    match https_location(client.ip(), host, &redirect, path) {
        // RFC 9110 §15.4.9: 308 keeps the method and body (a form posted over plain HTTP
        // is not turned into a GET); browsers then stay on HTTPS (HSTS).
        Some(location) => (
            StatusCode::PERMANENT_REDIRECT,
            [(axum::http::header::LOCATION, location)],
        )
            .into_response(),
        None => next.run(request).await,
    }
}

/// The HTTPS URL of a plain request from `client`, or None to serve it as it is (from the
/// loopback or a trusted proxy). The host is the request's Host without its port when it is a plain host
/// name or address, else the node's name.
fn https_location(
    client: std::net::IpAddr,
    host: Option<&str>,
    redirect: &HttpsRedirect,
    path_and_query: &str,
) -> Option<String> {
    if client.to_canonical().is_loopback() || is_trusted_proxy(&redirect.trusted_proxies, client) {
        return None;
    }
    let host = host
        .map(without_port)
        .filter(|host| {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b".-[]:".contains(&byte))
        })
        .unwrap_or(&redirect.hostname);
    let port = match redirect.port {
        443 => String::new(),
        port => format!(":{port}"),
    };
    let path = if path_and_query.starts_with('/') {
        path_and_query
    } else {
        "/"
    };
    Some(format!("https://{host}{port}{path}"))
}

/// RFC 6797: over HTTPS, the browser is told to come back only over HTTPS.
async fn strict_transport_security(
    mut response: axum::response::Response,
) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::STRICT_TRANSPORT_SECURITY,
        axum::http::HeaderValue::from_static(STRICT_TRANSPORT_SECURITY),
    );
    response
}

/// Alive: the process answers. Lists each role's state for operators.
async fn healthz(State(context): State<HttpContext>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "roles": context.health.snapshot() }))
}

/// Ready: every role runs and the store answers.
async fn readyz(State(context): State<HttpContext>) -> (StatusCode, Json<serde_json::Value>) {
    let store_ok = context.store.directory.generation().await.is_ok();
    let ready = store_ok && context.health.ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "ready": ready,
            "store": if store_ok { "ok" } else { "unavailable" },
            "roles": context.health.snapshot(),
        })),
    )
}

/// The metrics of every role, in the OpenMetrics text format that Prometheus scrapes.
async fn metrics(State(context): State<HttpContext>) -> impl IntoResponse {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &context.metrics) {
        Ok(()) => (
            StatusCode::OK,
            [(
                CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            "cannot render the metrics\n".to_owned(),
        ),
    }
}

/// A Host value without its port (RFC 9110 §7.2); an IPv6 literal keeps its brackets.
fn without_port(host: &str) -> &str {
    if let Some(literal) = host.strip_prefix('[') {
        return match literal.find(']') {
            Some(end) => &host[..end + 2],
            None => host,
        };
    }
    host.split(':').next().unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::{HttpsRedirect, forwarded_client, https_location};

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let ip = |text: &str| text.parse::<std::net::IpAddr>().expect("ip");
        let trusted = [ip("127.0.0.1"), ip("10.0.0.2")];
        let client = |peer, forwarded: &[&str]| forwarded_client(ip(peer), &trusted, forwarded);
        // No trusted peer: no header is believed.
        assert_eq!(client("192.0.2.9", &["203.0.113.1"]), ip("192.0.2.9"));
        assert_eq!(client("127.0.0.1", &[]), ip("127.0.0.1"));
        assert_eq!(client("127.0.0.1", &["203.0.113.1"]), ip("203.0.113.1"));
        // What the client wrote itself comes first; the proxies' entries decide.
        assert_eq!(
            client("127.0.0.1", &["198.51.100.7, 203.0.113.1"]),
            ip("203.0.113.1")
        );
        assert_eq!(
            client("127.0.0.1", &["198.51.100.7", "203.0.113.1, 10.0.0.2"]),
            ip("203.0.113.1"),
            "two proxies, two fields"
        );
        assert_eq!(
            client("127.0.0.1", &["203.0.113.1, not-an-address"]),
            ip("127.0.0.1"),
            "an unreadable entry from the proxy: the proxy itself"
        );
        assert_eq!(client("127.0.0.1", &["2001:db8::5"]), ip("2001:db8::5"));
        assert_eq!(
            client("127.0.0.1", &["::ffff:203.0.113.1"]),
            ip("203.0.113.1")
        );
    }

    #[test]
    fn plain_visitors_off_the_loopback_go_to_https() {
        let redirect = |port| HttpsRedirect {
            port,
            hostname: "mail.example.org".to_owned(),
            trusted_proxies: vec!["10.0.0.2".parse().expect("ip")],
        };
        let location = |client: &str, host: Option<&str>, port, path| {
            https_location(client.parse().expect("ip"), host, &redirect(port), path)
        };
        assert_eq!(
            location("127.0.0.1", Some("mail.example.org"), 443, "/mail"),
            None
        );
        assert_eq!(location("::1", None, 443, "/"), None);
        assert_eq!(location("::ffff:127.0.0.1", None, 443, "/"), None);
        assert_eq!(
            location("10.0.0.2", Some("mail.example.org"), 443, "/"),
            None,
            "a trusted proxy has TLS on its side"
        );
        assert_eq!(
            location(
                "192.0.2.7",
                Some("webmail.example.com:80"),
                443,
                "/mail?page=2"
            ),
            Some("https://webmail.example.com/mail?page=2".to_owned())
        );
        assert_eq!(
            location("192.0.2.7", Some("webmail.example.com"), 8443, "/login"),
            Some("https://webmail.example.com:8443/login".to_owned())
        );
        assert_eq!(
            location("2001:db8::7", Some("[2001:db8::1]:80"), 443, "/"),
            Some("https://[2001:db8::1]/".to_owned())
        );
        assert_eq!(
            location("2001:db8::7", Some("[2001:db8::1]"), 443, "/"),
            Some("https://[2001:db8::1]/".to_owned())
        );
        // No Host, or one that could carry something else: the node's own name.
        for host in [None, Some(""), Some("evil.example/@x"), Some("a b")] {
            assert_eq!(
                location("192.0.2.7", host, 443, "/mail"),
                Some("https://mail.example.org/mail".to_owned()),
                "{host:?}"
            );
        }
    }
}
