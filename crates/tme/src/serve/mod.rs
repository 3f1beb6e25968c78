//! `tme serve`: run every role the node has, each supervised, until SIGTERM or SIGINT.
//!
//! Shutdown is a first-class path: the signal cancels one token; each role stops accepting,
//! finishes what is in flight, and returns; the store closes last. A second signal, or a role
//! that does not finish within `SHUTDOWN_GRACE`, ends the process at once.

mod client_setup;
mod dns;
mod health;
mod http;
mod imap;
mod indexer;
mod listeners;
mod maintenance;
mod pop3;
mod queue;
mod smtp;
mod spool;
mod submission;
mod supervisor;
mod tls_listener;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::data_dir::DataDir;
pub use health::Health;

/// How long roles get to finish their work in flight after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The listener roles this build serves; the rest of `[listen]` waits for later releases.
const ROLES_SERVED: &[&str] = &[
    "http",
    "https",
    "smtp",
    "submission",
    "submissions",
    "dns",
    "imap",
    "imaps",
    "pop3",
    "pop3s",
];

pub async fn serve(data_dir: DataDir) -> Result<()> {
    let store = data_dir.open_store().await?;
    let health = Arc::new(Health::default());
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let config = Arc::new(data_dir.config.clone());
    // Every role registers its metrics here before it starts; `/metrics` renders them all.
    let mut registry = prometheus_client::registry::Registry::with_prefix("tme");
    let smtp_metrics = Arc::new(tme_smtp::Metrics::register(
        registry.sub_registry_with_prefix("smtp"),
    ));
    let submission_metrics = Arc::new(tme_smtp::Metrics::register(
        registry.sub_registry_with_prefix("submission"),
    ));
    let queue_metrics =
        tme_queue::QueueMetrics::register(registry.sub_registry_with_prefix("queue"));
    let imap_metrics = Arc::new(tme_imap::Metrics::register(
        registry.sub_registry_with_prefix("imap"),
    ));
    let pop3_metrics = Arc::new(tme_pop3::Metrics::register(
        registry.sub_registry_with_prefix("pop3"),
    ));
    // One authenticator for every role that takes a password: one throttle sees them all.
    let authenticator = Arc::new(tme_auth::Authenticator::new(
        store.directory.clone(),
        config.login.clone(),
        Arc::new(tme_auth::Metrics::register(
            registry.sub_registry_with_prefix("login"),
        )),
    ));
    let dns_metrics = Arc::new(tme_dns::Metrics::register(
        registry.sub_registry_with_prefix("dns"),
    ));
    // The full-text index behind IMAP SEARCH BODY/TEXT, kept in step by the `indexer` role
    // (and by each search, which catches it up first).
    let search_metrics = Arc::new(tme_search::Metrics::register(
        registry.sub_registry_with_prefix("search"),
    ));
    let search_indexes = config.search.enabled.then(|| {
        tme_search::SearchIndexes::new(
            &data_dir.path,
            config.search.clone(),
            store.clone(),
            search_metrics,
        )
    });
    let registry = Arc::new(registry);
    let queue_runner = queue::runner(&config, store.clone(), queue_metrics)?;
    let submitter = tme_queue::Submitter::new(
        store.clone(),
        queue_runner.clone(),
        tme_queue::Schedule::from_config(&config.queue),
        config.node.hostname.clone(),
        config.directory.plus_separator,
    );
    // The node's one vacation auto-responder, for every path that stores mail locally (the
    // submitter makes its own from itself for its local copies).
    let auto_responder = tme_queue::AutoResponder::new(submitter.clone());

    let spool_path = data_dir.path.join(tme_store::SPOOL_DIRECTORY_NAME);
    let spool = tme_store::spool::InboundSpool::open(&spool_path, config.smtp.spool_bytes_max)
        .with_context(|| format!("cannot open the inbound spool {}", spool_path.display()))?;

    // Every role registers in `health` when its supervisor is made, and all are made before
    // any is spawned: `/readyz` cannot report ready while some role has not even started.
    let zone_settings = tme_dns::ZoneSettings::from_config(&config).context("the [dns] config")?;
    let http_role = (config.listen.http.is_some() || config.listen.https.is_some()).then(|| {
        let context = http::HttpContext {
            health: health.clone(),
            store: store.clone(),
            metrics: registry.clone(),
            zone_settings: zone_settings.clone(),
            authenticator: authenticator.clone(),
            search: search_indexes.clone(),
            submitter: submitter.clone(),
            config: config.clone(),
            data_directory: data_dir.path.clone(),
        };
        supervisor::supervise("http", health.clone(), shutdown.clone(), move |role| {
            http::run(context.clone(), role)
        })
    });
    let smtp_role = config.listen.smtp.map(|address| {
        let context = smtp::SmtpContext {
            store: store.clone(),
            spool: spool.clone(),
            config: config.clone(),
            data_directory: data_dir.path.clone(),
            metrics: smtp_metrics.clone(),
            auto_responder: auto_responder.clone(),
        };
        supervisor::supervise("smtp", health.clone(), shutdown.clone(), move |role| {
            smtp::run(address, context.clone(), role)
        })
    });
    let submission_role =
        (config.listen.submission.is_some() || config.listen.submissions.is_some()).then(|| {
            let context = submission::SubmissionContext {
                store: store.clone(),
                spool: spool.clone(),
                config: config.clone(),
                data_directory: data_dir.path.clone(),
                authenticator: authenticator.clone(),
                submitter: submitter.clone(),
                auto_responder: auto_responder.clone(),
                metrics: submission_metrics.clone(),
            };
            supervisor::supervise(
                "submission",
                health.clone(),
                shutdown.clone(),
                move |role| submission::run(context.clone(), role),
            )
        });
    let dns_role = config.listen.dns.map(|address| {
        let context = dns::DnsContext {
            store: store.clone(),
            config: config.clone(),
            metrics: dns_metrics.clone(),
        };
        supervisor::supervise("dns", health.clone(), shutdown.clone(), move |role| {
            dns::run(address, context.clone(), role)
        })
    });
    let imap_role = (config.listen.imap.is_some() || config.listen.imaps.is_some()).then(|| {
        let context = imap::ImapContext {
            store: store.clone(),
            config: config.clone(),
            data_directory: data_dir.path.clone(),
            authenticator: authenticator.clone(),
            metrics: imap_metrics.clone(),
            search: search_indexes.clone(),
        };
        supervisor::supervise("imap", health.clone(), shutdown.clone(), move |role| {
            imap::run(context.clone(), role)
        })
    });
    let pop3_role = (config.listen.pop3.is_some() || config.listen.pop3s.is_some()).then(|| {
        let context = pop3::Pop3Context {
            store: store.clone(),
            config: config.clone(),
            data_directory: data_dir.path.clone(),
            authenticator: authenticator.clone(),
            metrics: pop3_metrics.clone(),
        };
        supervisor::supervise("pop3", health.clone(), shutdown.clone(), move |role| {
            pop3::run(context.clone(), role)
        })
    });
    // Runs whether or not this node listens for SMTP now: the spool may hold mail from an
    // earlier run.
    let spool_role = {
        let store = store.clone();
        supervisor::supervise("spool", health.clone(), shutdown.clone(), move |role| {
            spool::run(
                spool.clone(),
                store.clone(),
                smtp_metrics.clone(),
                auto_responder.clone(),
                role,
            )
        })
    };
    let queue_role =
        supervisor::supervise("queue", health.clone(), shutdown.clone(), move |role| {
            queue::run(queue_runner.clone(), role)
        });
    let indexer_role = search_indexes.clone().map(|indexes| {
        let store = store.clone();
        supervisor::supervise("indexer", health.clone(), shutdown.clone(), move |role| {
            indexer::run(store.clone(), indexes.clone(), role)
        })
    });
    let maintenance_role = {
        let store = store.clone();
        supervisor::supervise(
            "maintenance",
            health.clone(),
            shutdown.clone(),
            move |role| maintenance::run(store.clone(), role),
        )
    };
    if let Some(role) = http_role {
        tracker.spawn(role);
    }
    if let Some(role) = smtp_role {
        tracker.spawn(role);
    }
    if let Some(role) = submission_role {
        tracker.spawn(role);
    }
    if let Some(role) = dns_role {
        tracker.spawn(role);
    }
    if let Some(role) = imap_role {
        tracker.spawn(role);
    }
    if let Some(role) = pop3_role {
        tracker.spawn(role);
    }
    tracker.spawn(spool_role);
    tracker.spawn(queue_role);
    if let Some(role) = indexer_role {
        tracker.spawn(role);
    }
    tracker.spawn(maintenance_role);
    tracker.close();

    let waiting: Vec<&str> = config
        .listen
        .listeners()
        .into_iter()
        .map(|(role, _)| role)
        .filter(|role| !ROLES_SERVED.contains(role))
        .collect();
    if !waiting.is_empty() {
        tracing::info!(roles = ?waiting, "configured listeners whose roles this build does not serve yet");
    }
    tracing::info!(
        data_dir = %data_dir.path.display(),
        hostname = %config.node.hostname,
        site = %config.node.site,
        "tme node started"
    );

    wait_for_signal().await;
    tracing::info!("shutting down: finishing work in flight");
    shutdown.cancel();
    tokio::select! {
        _ = tracker.wait() => {}
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!(grace_seconds = SHUTDOWN_GRACE.as_secs(), "roles did not stop in time");
        }
        _ = wait_for_signal() => {
            tracing::warn!("second signal: stopping at once");
        }
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn wait_for_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
