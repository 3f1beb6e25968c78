//! The `queue` role: works the outbound queue (`tme_queue::Runner`). Runs on every node,
//! listener or not: any node may deliver any queued message, under a lease.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tme_core::config::Config;
use tme_queue::client::ClientSettings;
use tme_queue::{QueueMetrics, Runner, RunnerSettings, Schedule, SystemClock};
use tme_store::Store;

use super::supervisor::RoleContext;

/// The runner this node's config describes.
pub fn runner(config: &Config, store: Store, metrics: QueueMetrics) -> Result<Runner> {
    let queue = &config.queue;
    let resolver = tme_resolver::build(&config.resolver)?;
    let credentials = match (&queue.relay_username, &queue.relay_password_file) {
        (Some(user), Some(path)) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read queue.relay_password_file {}", path.display())
            })?;
            let password = text.lines().next().unwrap_or_default().to_owned();
            Some((user.clone(), tme_core::Secret::new(password)))
        }
        _ => None,
    };
    let seconds = Duration::from_secs;
    let settings = RunnerSettings {
        schedule: Schedule::from_config(queue),
        hostname: config.node.hostname.clone(),
        // One owner per node: a restarted node takes back its own leases at once.
        owner: config.node.hostname.clone(),
        lease_seconds: i64::try_from(queue.lease_seconds).unwrap_or(i64::MAX),
        remote_port: queue.remote_port,
        relay_host: queue.relay_host.clone(),
        connections_max: queue.connections_max,
        connections_per_domain_max: queue.connections_per_domain_max,
        messages_per_connection_max: queue.messages_per_connection_max,
        client: ClientSettings {
            helo_name: config.node.hostname.clone(),
            connect_timeout: seconds(queue.connect_timeout_seconds),
            command_timeout: seconds(queue.command_timeout_seconds),
            data_end_timeout: seconds(queue.data_end_timeout_seconds),
            credentials,
            tls: tme_queue::tls::opportunistic().context("cannot set up outbound TLS")?,
        },
        mta_sts: None,
        dane: None,
    };
    let resolver = Arc::new(resolver);
    let mut settings = settings;
    if queue.mta_sts {
        // Without trust anchors no policy could be fetched: say so loudly and deliver with
        // opportunistic TLS, rather than stop all outbound mail.
        match tme_queue::tls::verifying(queue.tls_trust_anchors_file.as_deref()) {
            Ok(verifying) => {
                settings.mta_sts = Some(
                    tme_queue::mta_sts::MtaSts::new(
                        resolver.clone(),
                        verifying,
                        queue.mta_sts_https_port,
                        seconds(queue.mta_sts_fetch_timeout_seconds),
                    )
                    .with_store(store.queue.clone()),
                );
            }
            Err(tme_queue::tls::TrustAnchorsError::Empty) => {
                tracing::error!(
                    "queue: no trust anchors (install ca-certificates): MTA-STS policies are not honoured"
                );
            }
            Err(error) => {
                return Err(error).context("queue.tls_trust_anchors_file");
            }
        }
    }
    if queue.dane {
        // Its own resolver: DNSSEC validation is asked for DANE only (tme-resolver).
        settings.dane = Some(
            tme_resolver::build_validating(&config.resolver)
                .context("the validating resolver for queue.dane")?,
        );
    }
    Ok(Runner::new(
        store,
        resolver,
        settings,
        Arc::new(SystemClock),
        metrics,
    ))
}

pub async fn run(runner: Runner, role: RoleContext) -> Result<()> {
    role.running();
    runner.run(role.shutdown.clone()).await;
    Ok(())
}
