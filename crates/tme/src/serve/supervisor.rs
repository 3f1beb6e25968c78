//! Runs one role, restarting it with exponential backoff when it fails or panics, until
//! shutdown. A role is an async function that runs until its `RoleContext::shutdown` fires;
//! returning earlier, with or without an error, counts as a failure.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::health::{Health, RoleState};

const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A role that ran this long before failing starts its backoff afresh.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// What a role gets: when to stop, and how to say it is up.
#[derive(Debug, Clone)]
pub struct RoleContext {
    pub name: &'static str,
    pub shutdown: CancellationToken,
    health: Arc<Health>,
}

impl RoleContext {
    /// Marks the role running (a listener calls this once it is bound).
    pub fn running(&self) {
        self.health.set(self.name, RoleState::Running, None);
    }
}

/// Registers the role in `health` (as starting) at once, and returns the supervising task.
pub fn supervise<F, Fut>(
    name: &'static str,
    health: Arc<Health>,
    shutdown: CancellationToken,
    mut start: F,
) -> impl Future<Output = ()> + use<F, Fut>
where
    F: FnMut(RoleContext) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    health.set(name, RoleState::Starting, None);
    async move {
        let mut backoff = BACKOFF_FIRST;
        loop {
            health.set(name, RoleState::Starting, None);
            let context = RoleContext {
                name,
                shutdown: shutdown.clone(),
                health: health.clone(),
            };
            let started = Instant::now();
            // A task of its own, so a panic in the role is caught here as a JoinError.
            let outcome = tokio::spawn(start(context)).await;
            if shutdown.is_cancelled() {
                if let Ok(Err(error)) = &outcome {
                    tracing::warn!(role = name, error = %format!("{error:#}"), "role failed while stopping");
                }
                health.set(name, RoleState::Stopped, None);
                return;
            }
            let error = match outcome {
                Ok(Ok(())) => "stopped unexpectedly".to_owned(),
                Ok(Err(error)) => format!("{error:#}"),
                Err(join_error) => format!("panicked: {join_error}"),
            };
            if started.elapsed() >= HEALTHY_RUN {
                backoff = BACKOFF_FIRST;
            }
            tracing::error!(role = name, %error, retry_in_ms = backoff.as_millis() as u64, "role failed; restarting");
            health.set(name, RoleState::Restarting, Some(error));
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.cancelled() => {
                    health.set(name, RoleState::Stopped, None);
                    return;
                }
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn restarts_a_failing_role_until_shutdown() {
        let health = Arc::new(Health::default());
        let shutdown = CancellationToken::new();
        let attempts = Arc::new(AtomicU32::new(0));
        let counter = attempts.clone();
        let task = tokio::spawn(supervise(
            "flaky",
            health.clone(),
            shutdown.clone(),
            move |role| {
                let attempt = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    match attempt {
                        0 => anyhow::bail!("first attempt fails"),
                        1 => panic!("second attempt panics"),
                        _ => {
                            role.running();
                            role.shutdown.cancelled().await;
                            Ok(())
                        }
                    }
                }
            },
        ));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        let snapshot = health.snapshot();
        assert_eq!(snapshot["flaky"].state, RoleState::Running);
        assert_eq!(snapshot["flaky"].restarts, 2);
        assert!(health.ready());
        shutdown.cancel();
        task.await.expect("supervisor ends");
        assert_eq!(health.snapshot()["flaky"].state, RoleState::Stopped);
    }
}
