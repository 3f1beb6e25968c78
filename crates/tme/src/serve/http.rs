//! The `http` role: `/healthz`, `/readyz` and `/metrics` (Prometheus), the client set-up
//! documents (`client_setup`) and the webmail (`tme_web`, at `/`); JMAP, the admin API and
//! the status page join this router as their issues land (DESIGN §7).

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
}

pub async fn run(address: SocketAddr, context: HttpContext, role: RoleContext) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (listen.http)"))?;
    let router = Router::new()
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
        }));
    role.running();
    tracing::info!(%address, "http listening");
    let shutdown = role.shutdown.clone();
    // The webmail's login throttle needs the client's address.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
    .context("http server failed")
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
