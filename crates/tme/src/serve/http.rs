//! The `http` role: `/healthz`, `/readyz` and `/metrics` (Prometheus), the client set-up
//! documents (`client_setup`) and the webmail (`tme_web`, at `/`); JMAP, the admin API and
//! the status page join this router as their issues land (DESIGN §7). One router, served on
//! `listen.http` (plain: for the loopback, a proxy in front, or a redirect later) and on
//! `listen.https` (TLS from the first byte, `tls_listener`, with HSTS).

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
    let router = router(&context, &role);
    role.running();
    let shutdown = role.shutdown.clone();
    let plain = async {
        let Some(listener) = plain else {
            return Ok(());
        };
        // The webmail's login throttle needs the client's address.
        axum::serve(
            listener,
            router
                .clone()
                .into_make_service_with_connect_info::<SocketAddr>(),
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
        let router = router
            .clone()
            .layer(axum::middleware::map_response(strict_transport_security));
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

/// What both listeners serve.
fn router(context: &HttpContext, role: &RoleContext) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(context.clone())
        .merge(super::client_setup::router(
            context.store.clone(),
            context.zone_settings.clone(),
        ))
        .merge(tme_web::router(tme_web::WebState {
            store: context.store.clone(),
            authenticator: context.authenticator.clone(),
            search: context.search.clone(),
            shutdown: role.shutdown.clone(),
            submitter: context.submitter.clone(),
        }))
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
