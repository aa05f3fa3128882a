//! The schedule of a socket's one timer: keepalive pings, the token's
//! `token_expiring` warning and the token's deadline. The writer owns it and
//! does what it says is due; the decisions live here so they can be tested
//! under paused time without a socket.
//!
//! Pings are coalesced. At rest, what an idle socket costs is not the ping
//! itself but the wake-up it causes: sockets opened at scattered instants
//! had scattered ping deadlines, so every ping woke a worker thread from
//! sleep on its own (on a 2-vCPU VM, 500 pings/s kept 3 % of a core busy,
//! most of it in the scheduler's context switches). Every ping deadline is
//! therefore rounded up to a process-wide [`TICK`] grid: all sockets due
//! within one tick fire in the timer's same slot and are served in one
//! wake-up. And a peer heard from recently (any frame, pongs included) is
//! not pinged at all: only silence for about a ping interval earns a ping.
//! (The grid is [`crate::grid`], which held typing shares.)

use std::time::Duration;

use tokio::time::Instant;
use vridge_protocol::close;

use super::clock::LastSeen;
use crate::grid::on_tick;

/// The grid ping deadlines are rounded up to: pings are at most this late,
/// and all sockets due within one tick are pinged in the same wake-up.
/// (Shorter for ping intervals under 2 s, so that a tick stays an eighth of
/// an interval at most: see [`tick_for`].)
pub const TICK: Duration = Duration::from_millis(250);

/// The grid tick for sockets pinged every `ping_interval`.
fn tick_for(ping_interval: Duration) -> Duration {
    TICK.min(ping_interval / 8).max(Duration::from_millis(1))
}

/// What the timer found due, in the order the writer acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Due {
    /// Close the socket with this code (token expired, or peer silent).
    pub close: Option<u16>,
    /// Warn the client that its token (with this `exp`) expires soon.
    pub warn: Option<u64>,
    /// Send a ping.
    pub ping: bool,
}

/// A socket's timer schedule; lives as long as its writer.
#[derive(Debug)]
pub struct Keepalive {
    ping_interval: Duration,
    pong_timeout: Duration,
    /// The grid's tick for this interval.
    tick: Duration,
    /// When to look at the peer's silence next (on the grid).
    next_ping: Instant,
    /// The token expiry the client was last warned about (0: none yet).
    warned: u64,
}

impl Keepalive {
    pub fn new(ping_interval: Duration, pong_timeout: Duration) -> Self {
        let tick = tick_for(ping_interval);
        Self {
            ping_interval,
            pong_timeout,
            tick,
            next_ping: on_tick(Instant::now() + ping_interval, tick),
            warned: 0,
        }
    }

    /// The next moment the timer has work: a ping, the token's warning (if
    /// not yet given for this expiry), or the token's deadline. The token's
    /// times are kept exact: they come once per token, not every interval.
    pub fn next_wake(&self, clock: &LastSeen) -> Instant {
        let mut wake = self.next_ping;
        if let Some(deadline) = clock.token_deadline() {
            wake = wake.min(deadline);
        }
        if self.warned != clock.token_expires_at()
            && let Some(warn) = clock.token_warn_at()
        {
            wake = wake.min(warn);
        }
        wake
    }

    /// What is due now. An expired token closes the socket (4002) before
    /// anything else; a peer silent past the pong timeout is closed (4009)
    /// when its next ping falls due instead of being pinged again; a peer
    /// heard from within the last interval (less a tick, so that a pong
    /// answered just after the last ping does not push the next one a tick
    /// late) is not pinged, and is looked at again an interval after it
    /// was last heard.
    pub fn due(&mut self, clock: &LastSeen) -> Due {
        let now = Instant::now();
        if clock.token_expired() {
            return Due {
                close: Some(close::TOKEN_EXPIRED),
                ..Due::default()
            };
        }
        let mut due = Due::default();
        let expires_at = clock.token_expires_at();
        if self.warned != expires_at && clock.token_warn_at().is_some_and(|at| now >= at) {
            self.warned = expires_at;
            due.warn = Some(expires_at);
        }
        if now >= self.next_ping {
            let silent = clock.silent_for();
            if silent > self.pong_timeout {
                due.close = Some(close::KEEPALIVE_TIMEOUT);
            } else if silent + self.tick < self.ping_interval {
                let heard = now.checked_sub(silent).unwrap_or(now);
                self.next_ping = on_tick(heard + self.ping_interval, self.tick);
            } else {
                self.next_ping = on_tick(now + self.ping_interval, self.tick);
                due.ping = true;
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AccessGrant;
    use crate::ws::clock::unix_secs;

    const PING: Duration = Duration::from_secs(20);
    const PONG: Duration = Duration::from_secs(60);

    /// Advances paused time to the schedule's next wake and reads what is due.
    async fn wake(keepalive: &mut Keepalive, clock: &LastSeen) -> (Duration, Due) {
        let start = Instant::now();
        tokio::time::advance(keepalive.next_wake(clock) - start).await;
        (start.elapsed(), keepalive.due(clock))
    }

    /// Moves paused time well past the grid's origin, which the first test
    /// of the process to schedule a ping fixes on the real clock.
    async fn past_the_grid_origin() {
        let _ = crate::grid::origin();
        tokio::time::advance(Duration::from_secs(3600)).await;
    }

    const PINGED: Due = Due {
        close: None,
        warn: None,
        ping: true,
    };

    #[tokio::test(start_paused = true)]
    async fn an_answering_peer_is_pinged_every_interval_and_a_silent_one_closed() {
        past_the_grid_origin().await;
        let clock = LastSeen::new();
        let mut keepalive = Keepalive::new(PING, PONG);
        // The first ping waits for the grid: an interval, at most a tick more.
        let (waited, due) = wake(&mut keepalive, &clock).await;
        assert!(waited >= PING && waited <= PING + TICK, "{waited:?}");
        assert_eq!(due, PINGED);
        clock.touch();
        // The peer answers (any frame counts): pinged every interval.
        for _ in 0..5 {
            let (waited, due) = wake(&mut keepalive, &clock).await;
            assert_eq!((waited, due), (PING, PINGED));
            clock.touch();
        }
        // Silent from now: pinged until the pong timeout has passed, then closed.
        let mut pings = 0;
        let closed = loop {
            let (_, due) = wake(&mut keepalive, &clock).await;
            if due.close.is_some() {
                break due;
            }
            assert!(due.ping);
            pings += 1;
        };
        assert_eq!(closed.close, Some(close::KEEPALIVE_TIMEOUT));
        assert!(!closed.ping);
        // Silent for 60 s at 20 s pings: the third unanswered ping falls on
        // the 60 s mark itself, so whether it goes out or the socket closes
        // there instead depends on the clock's millisecond rounding.
        assert!(
            (2..=3).contains(&pings),
            "{pings} unanswered pings before the close"
        );
        assert!(clock.silent_for() > PONG);
    }

    #[tokio::test(start_paused = true)]
    async fn sockets_opened_at_scattered_instants_are_pinged_in_the_same_wake_up() {
        past_the_grid_origin().await;
        // Start just after a point of the grid, so five sockets fit in one tick.
        let now = Instant::now();
        tokio::time::advance(on_tick(now, TICK) - now + Duration::from_millis(1)).await;
        let clock = LastSeen::new();
        let mut wakes = Vec::new();
        for _ in 0..5 {
            wakes.push(Keepalive::new(PING, PONG).next_wake(&clock));
            tokio::time::advance(TICK / 5 - Duration::from_millis(1)).await;
        }
        // Five sockets opened within one tick share one deadline on the grid.
        assert!(wakes.windows(2).all(|w| w[0] == w[1]), "{wakes:?}");
        assert_eq!(on_tick(wakes[0], TICK), wakes[0]);
        // A sixth, a tick later, falls in the next slot, a tick later.
        tokio::time::advance(TICK).await;
        let later = Keepalive::new(PING, PONG).next_wake(&clock);
        assert_eq!(later, wakes[0] + TICK);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_heard_from_within_the_interval_is_not_pinged() {
        past_the_grid_origin().await;
        let clock = LastSeen::new();
        let mut keepalive = Keepalive::new(PING, PONG);
        let opened = Instant::now();
        // The peer sends something 15 s in: at the 20 s mark it needs no ping.
        tokio::time::advance(Duration::from_secs(15)).await;
        clock.touch();
        let (_, due) = wake(&mut keepalive, &clock).await;
        assert_eq!(due, Due::default());
        // It is looked at again an interval after it was heard, and pinged
        // then if it stayed silent.
        let (_, due) = wake(&mut keepalive, &clock).await;
        let at = opened.elapsed();
        assert_eq!(due, PINGED);
        assert!(
            at >= Duration::from_secs(35) && at <= Duration::from_secs(35) + TICK,
            "{at:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_is_warned_once_then_closes_the_socket_at_its_deadline() {
        let clock = LastSeen::new();
        let now = unix_secs();
        clock.set_token(&AccessGrant {
            user: 1,
            expires_at: now + 30,
            valid_until: now + 30,
        });
        let mut keepalive = Keepalive::new(PING, PONG);
        // A 30 s token is warned at half its life (15 s), before the first ping.
        let (waited, due) = wake(&mut keepalive, &clock).await;
        assert!(waited <= Duration::from_secs(15), "{waited:?}");
        assert_eq!(due.warn, Some(now + 30));
        // Then (the peer silent since it opened) the ping at 20 s, with no
        // second warning for the same token.
        let (_, due) = wake(&mut keepalive, &clock).await;
        assert!(
            due.ping && due.warn.is_none() && due.close.is_none(),
            "{due:?}"
        );
        clock.touch();
        // Then the deadline closes with 4002, whatever else is due.
        let (_, due) = wake(&mut keepalive, &clock).await;
        assert_eq!(due.close, Some(close::TOKEN_EXPIRED));
        assert!(!due.ping && due.warn.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_refreshed_token_is_warned_again_before_its_new_expiry() {
        let clock = LastSeen::new();
        let now = unix_secs();
        let grant = |secs| AccessGrant {
            user: 1,
            expires_at: now + secs,
            valid_until: now + secs,
        };
        clock.set_token(&grant(10));
        let mut keepalive = Keepalive::new(Duration::from_secs(3600), Duration::from_secs(7200));
        let (_, due) = wake(&mut keepalive, &clock).await;
        assert_eq!(due.warn, Some(now + 10));
        clock.set_token(&grant(100));
        let (_, due) = wake(&mut keepalive, &clock).await;
        assert_eq!(due.warn, Some(now + 100));
    }
}
