//! Waiting for a peer process (tme, NSD, rspamd) to answer after it was spawned: one loop for
//! all of them, so each says only how to ask whether it is ready.

use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// Polls `ready` every `poll` until it says yes, for at most `limit`. Fails, with `log()`, if
/// the process in `child` exits first (then `child` becomes None) or the limit passes.
pub(crate) fn wait_until_ready(
    name: &str,
    child: &mut Option<Child>,
    limit: Duration,
    poll: Duration,
    log: impl Fn() -> String,
    mut ready: impl FnMut() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
        {
            *child = None;
            bail!(
                "{name} exited with {status} before it was ready; log:\n{}",
                log()
            );
        }
        if ready() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{name} was not ready within {limit:?}; log:\n{}", log());
        }
        std::thread::sleep(poll);
    }
}
