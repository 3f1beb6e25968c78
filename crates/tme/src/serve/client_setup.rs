//! HTTP routes that go with each hosted domain's DNS names: the MTA-STS policy at
//! `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` (RFC 8461 §3.3), Thunderbird's autoconfig
//! file, Outlook's autodiscover answer and an Apple configuration profile. The documents are
//! `tme_dns::client_setup`'s; this module finds the domain (from the Host header or the
//! address asked about), checks that it is hosted, and answers 404 otherwise.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tme_core::{Domain, EmailAddress};
use tme_dns::ZoneSettings;
use tme_dns::client_setup::{
    AUTODISCOVER_REQUEST_OCTETS_MAX, apple_mobileconfig, autodiscover_request_address,
    outlook_autodiscover, thunderbird_autoconfig,
};
use tme_store::Store;

#[derive(Debug, Clone)]
struct SetupState {
    store: Store,
    settings: Arc<ZoneSettings>,
}

/// The routes, with their own state; merged into the `http` role's router.
pub fn router(store: Store, settings: ZoneSettings) -> Router {
    let autoconfig = get(autoconfig);
    Router::new()
        .route("/.well-known/mta-sts.txt", get(mta_sts))
        .route("/mail/config-v1.1.xml", autoconfig.clone())
        .route("/.well-known/autoconfig/mail/config-v1.1.xml", autoconfig)
        .route("/autodiscover/autodiscover.xml", post(autodiscover))
        .route("/Autodiscover/Autodiscover.xml", post(autodiscover))
        .route("/apple/mail.mobileconfig", get(mobileconfig))
        .with_state(SetupState {
            store,
            settings: Arc::new(settings),
        })
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not a hosted domain\n").into_response()
}

fn document(content_type: &'static str, body: String) -> Response {
    (StatusCode::OK, [(CONTENT_TYPE, content_type)], body).into_response()
}

/// The host the request was sent to, without port, lower case.
fn host(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(HOST)?.to_str().ok()?;
    let host = value.rsplit_once(':').map_or(value, |(host, _)| host);
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

/// The hosted domain `name` names, if any.
async fn hosted(state: &SetupState, name: &str) -> Option<Domain> {
    let domain = Domain::parse(name).ok()?;
    state.store.directory.domain_get(&domain).await.ok()??;
    Some(domain)
}

async fn product_name(state: &SetupState, domain: &Domain) -> String {
    let partner = match state.store.directory.domain_get(domain).await {
        Ok(Some(record)) => state
            .store
            .directory
            .partner_get(&record.partner)
            .await
            .ok()
            .flatten(),
        _ => None,
    };
    partner
        .and_then(|partner| partner.branding.product_name)
        .unwrap_or_else(|| domain.to_string())
}

async fn mta_sts(State(state): State<SetupState>, headers: HeaderMap) -> Response {
    let Some(domain) =
        host(&headers).and_then(|host| host.strip_prefix("mta-sts.").map(str::to_owned))
    else {
        return not_found();
    };
    if hosted(&state, &domain).await.is_none() {
        return not_found();
    }
    document("text/plain; charset=utf-8", state.settings.mta_sts_policy())
}

async fn autoconfig(
    State(state): State<SetupState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    // The address Thunderbird asks about, else the Host (`autoconfig.DOMAIN`).
    let name = match query.get("emailaddress") {
        Some(address) => address
            .rsplit_once('@')
            .map(|(_, domain)| domain.to_owned()),
        None => host(&headers).map(|host| {
            host.strip_prefix("autoconfig.")
                .map_or(host.clone(), str::to_owned)
        }),
    };
    let Some(domain) = hosted_name(&state, name).await else {
        return not_found();
    };
    let name = product_name(&state, &domain).await;
    document(
        "application/xml; charset=utf-8",
        thunderbird_autoconfig(&state.settings, domain.as_str(), &name),
    )
}

async fn hosted_name(state: &SetupState, name: Option<String>) -> Option<Domain> {
    hosted(state, &name?).await
}

async fn autodiscover(State(state): State<SetupState>, body: Bytes) -> Response {
    if body.len() > AUTODISCOVER_REQUEST_OCTETS_MAX {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request too large\n").into_response();
    }
    let text = String::from_utf8_lossy(&body);
    let Some(address) =
        autodiscover_request_address(&text).and_then(|address| EmailAddress::parse(&address).ok())
    else {
        return (StatusCode::BAD_REQUEST, "no EMailAddress in the request\n").into_response();
    };
    if hosted(&state, address.domain().as_str()).await.is_none() {
        return not_found();
    }
    document(
        "application/xml; charset=utf-8",
        outlook_autodiscover(&state.settings, &address.to_string()),
    )
}

async fn mobileconfig(
    State(state): State<SetupState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(address) = query
        .get("emailaddress")
        .and_then(|address| EmailAddress::parse(address).ok())
    else {
        return (
            StatusCode::BAD_REQUEST,
            "add ?emailaddress=you@your.domain\n",
        )
            .into_response();
    };
    let Some(domain) = hosted(&state, address.domain().as_str()).await else {
        return not_found();
    };
    let name = product_name(&state, &domain).await;
    document(
        "application/x-apple-aspen-config",
        apple_mobileconfig(&state.settings, &address.to_string(), &name),
    )
}
