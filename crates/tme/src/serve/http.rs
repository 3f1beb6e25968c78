//! The `http` role: today `/healthz` and `/readyz`; webmail, JMAP, the admin API, the status
//! page and metrics join this router as their issues land (DESIGN §7).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::json;
use tme_store::Store;

use super::health::Health;
use super::supervisor::RoleContext;

#[derive(Debug, Clone)]
pub struct HttpContext {
    pub health: Arc<Health>,
    pub store: Store,
}

pub async fn run(address: SocketAddr, context: HttpContext, role: RoleContext) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (listen.http)"))?;
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(context);
    role.running();
    tracing::info!(%address, "http listening");
    let shutdown = role.shutdown.clone();
    axum::serve(listener, router)
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
