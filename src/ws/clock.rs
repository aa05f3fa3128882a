//! A socket's clock, shared by its reader and its writer: when the peer was
//! last heard (keepalive), when the last ping went out (pong round trips),
//! and how long the socket's access token lasts (the writer warns with
//! `token_expiring` and closes with 4002 at expiry; the reader moves the
//! expiry on `refresh_token`). Times are milliseconds since the socket's
//! epoch on tokio's clock, so tests can drive them with paused time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::auth::AccessGrant;

/// How long before its token's expiry a socket is sent `token_expiring`, at
/// most: a token that lives less than twice this is warned at half its
/// remaining life, so a client always has time to refresh.
pub const TOKEN_WARN_LEAD: Duration = Duration::from_secs(60);

/// Nothing scheduled (no token deadline, no ping waiting for its pong).
const NONE: u64 = 0;

#[derive(Debug)]
pub struct LastSeen {
    epoch: Instant,
    /// The last frame received from the peer.
    ms: AtomicU64,
    /// The last ping written, +1 (0: none waiting for its pong).
    ping_ms: AtomicU64,
    /// When the token's warning is due, +1 (0: no token limit).
    warn_ms: AtomicU64,
    /// When the token stops being valid, +1 (0: no token limit).
    deadline_ms: AtomicU64,
    /// The token's `exp` (Unix seconds), as told to the client.
    expires_at: AtomicU64,
}

impl LastSeen {
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            ms: AtomicU64::new(0),
            ping_ms: AtomicU64::new(NONE),
            warn_ms: AtomicU64::new(NONE),
            deadline_ms: AtomicU64::new(NONE),
            expires_at: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn at(&self, ms_plus_one: u64) -> Instant {
        self.epoch + Duration::from_millis(ms_plus_one.saturating_sub(1))
    }

    pub fn touch(&self) {
        self.ms.store(self.now_ms(), Relaxed);
    }

    pub fn ping_sent(&self) {
        // +1 keeps a ping sent in the epoch's first millisecond distinct from "none".
        self.ping_ms.store(self.now_ms() + 1, Relaxed);
    }

    /// How long ago the last ping went out, once per ping (a second pong
    /// for the same ping is not timed again).
    pub fn pong_received(&self) -> Option<Duration> {
        let sent = self.ping_ms.swap(NONE, Relaxed);
        (sent != NONE).then(|| Duration::from_millis(self.now_ms().saturating_sub(sent - 1)))
    }

    pub fn silent_for(&self) -> Duration {
        self.epoch
            .elapsed()
            .saturating_sub(Duration::from_millis(self.ms.load(Relaxed)))
    }

    /// Limits the socket's life to `grant` (its first token, or a refresh).
    pub fn set_token(&self, grant: &AccessGrant) {
        let unix_now = unix_ms();
        let left = Duration::from_millis((grant.valid_until * 1000).saturating_sub(unix_now));
        let lead = TOKEN_WARN_LEAD.min(left / 2);
        let now = self.now_ms();
        let deadline = now + left.as_millis() as u64;
        let warn = deadline - lead.as_millis() as u64;
        self.expires_at.store(grant.expires_at, Relaxed);
        self.warn_ms.store(warn + 1, Relaxed);
        self.deadline_ms.store(deadline + 1, Relaxed);
    }

    /// When the token's warning is due (if it is limited).
    pub fn token_warn_at(&self) -> Option<Instant> {
        let ms = self.warn_ms.load(Relaxed);
        (ms != NONE).then(|| self.at(ms))
    }

    /// When the token stops being valid (if it is limited).
    pub fn token_deadline(&self) -> Option<Instant> {
        let ms = self.deadline_ms.load(Relaxed);
        (ms != NONE).then(|| self.at(ms))
    }

    /// The token's `exp`, as told to the client in `token_expiring`.
    pub fn token_expires_at(&self) -> u64 {
        self.expires_at.load(Relaxed)
    }

    /// True once the token is no longer valid: the socket must close.
    pub fn token_expired(&self) -> bool {
        self.token_deadline()
            .is_some_and(|deadline| Instant::now() >= deadline)
    }
}

impl Default for LastSeen {
    fn default() -> Self {
        Self::new()
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The current Unix time in seconds.
pub fn unix_secs() -> u64 {
    unix_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant_for(secs: u64) -> AccessGrant {
        let now = unix_secs();
        AccessGrant {
            user: 1,
            expires_at: now + secs,
            valid_until: now + secs,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_is_warned_at_most_a_minute_before_it_expires() {
        let clock = LastSeen::new();
        assert_eq!(clock.token_deadline(), None);
        assert!(!clock.token_expired());
        clock.set_token(&grant_for(900));
        let deadline = clock.token_deadline().unwrap();
        let warn = clock.token_warn_at().unwrap();
        let lead = deadline - warn;
        assert!(lead <= TOKEN_WARN_LEAD && lead >= TOKEN_WARN_LEAD - Duration::from_secs(1));
        assert!(!clock.token_expired());
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_token_is_warned_at_half_its_life_and_expires_on_time() {
        let clock = LastSeen::new();
        clock.set_token(&grant_for(10));
        let start = Instant::now();
        let warn = clock.token_warn_at().unwrap() - start;
        assert!(
            warn >= Duration::from_secs(4) && warn <= Duration::from_secs(5),
            "{warn:?}"
        );
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(!clock.token_expired());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(clock.token_expired());
        // A refresh moves the deadline.
        clock.set_token(&grant_for(600));
        assert!(!clock.token_expired());
    }
}
