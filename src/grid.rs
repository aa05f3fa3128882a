//! A process-wide time grid that timers round their deadlines up to.
//!
//! What a timer that fires costs at rest is mostly the wake-up of a worker
//! thread, not the work it does. Deadlines rounded up to one grid fall into
//! the same slot of tokio's timer wheel when they are close, so a thousand
//! sockets' pings are served by one wake-up instead of a thousand, and rooms
//! whose typing windows close within the same tick share one. Every user of
//! the grid shares its origin, so ticks that divide each other coincide.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

/// The grid's origin: the first time anything asked for it.
pub fn origin() -> Instant {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    Instant::from_std(*ORIGIN.get_or_init(std::time::Instant::now))
}

/// `at`, rounded up to the next point of the grid of `tick`. (A time before
/// the grid's origin — only under a test's paused clock — is left as is.)
pub fn on_tick(at: Instant, tick: Duration) -> Instant {
    let origin = origin();
    if at < origin || tick.is_zero() {
        return at;
    }
    let since = at - origin;
    let tick = tick.as_nanos();
    let ticks = since.as_nanos().div_ceil(tick);
    let rounded = u64::try_from(ticks * tick).unwrap_or(u64::MAX);
    origin + Duration::from_nanos(rounded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deadlines_within_one_tick_share_its_end() {
        let _ = origin();
        tokio::time::advance(Duration::from_secs(10)).await;
        let tick = Duration::from_millis(250);
        let first = on_tick(Instant::now(), tick);
        assert!(first >= Instant::now() && first - Instant::now() <= tick);
        // Any instant up to that grid point rounds to it; just after, to the next.
        assert_eq!(on_tick(first - Duration::from_millis(249), tick), first);
        assert_eq!(on_tick(first, tick), first);
        assert_eq!(
            on_tick(first + Duration::from_millis(1), tick),
            first + tick
        );
        // A zero tick leaves every instant as it is.
        let now = Instant::now();
        assert_eq!(on_tick(now, Duration::ZERO), now);
    }
}
