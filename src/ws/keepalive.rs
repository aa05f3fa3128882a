//! The schedule of a socket's one timer: keepalive pings, the token's
//! `token_expiring` warning and the token's deadline. The writer owns it and
//! does what it says is due; the decisions live here so they can be tested
//! under paused time without a socket.

use std::time::Duration;

use tokio::time::Instant;
use vridge_protocol::close;

use super::clock::LastSeen;

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
    next_ping: Instant,
    /// The token expiry the client was last warned about (0: none yet).
    warned: u64,
}

impl Keepalive {
    pub fn new(ping_interval: Duration, pong_timeout: Duration) -> Self {
        Self {
            ping_interval,
            pong_timeout,
            next_ping: Instant::now() + ping_interval,
            warned: 0,
        }
    }

    /// The next moment the timer has work: a ping, the token's warning (if
    /// not yet given for this expiry), or the token's deadline.
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
    /// when its next ping falls due instead of being pinged again.
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
            self.next_ping = now + self.ping_interval;
            if clock.silent_for() > self.pong_timeout {
                due.close = Some(close::KEEPALIVE_TIMEOUT);
            } else {
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

    #[tokio::test(start_paused = true)]
    async fn an_answering_peer_is_pinged_every_interval_and_a_silent_one_closed() {
        let clock = LastSeen::new();
        let mut keepalive = Keepalive::new(PING, PONG);
        let ping = Due {
            ping: true,
            ..Due::default()
        };
        // The peer answers (any frame counts): pinged every interval.
        for _ in 0..5 {
            let (waited, due) = wake(&mut keepalive, &clock).await;
            assert_eq!((waited, due), (PING, ping));
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
        assert_eq!(
            pings, 3,
            "silent for 60 s at 20 s pings: 3 unanswered pings"
        );
        assert!(clock.silent_for() > PONG);
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
        clock.touch();
        // Then the ping at 20 s, with no second warning for the same token.
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
