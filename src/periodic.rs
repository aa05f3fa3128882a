//! Background chores on a fixed period that end with the server: keyed
//! rate-limit state (socket messages, sign-in attempts) is pruned this way
//! so it does not grow with every key ever seen.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Runs `work` every `every` until `shutdown` fires.
pub fn spawn_periodic<F>(every: Duration, shutdown: CancellationToken, work: F) -> JoinHandle<()>
where
    F: Fn() + Send + 'static,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => work(),
            }
        }
    })
}
