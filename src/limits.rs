//! Per-user message rate limits (governor), keyed by user within one limiter
//! per message kind, with the product's quotas as defaults, and the
//! per-address quota on WebSocket upgrade attempts. A comment costs the same
//! quota whether it arrives on a socket or over REST; other REST writes share
//! `RestWrite`. Keyed state is pruned periodically ([`RateLimits::prune`]) so
//! it does not grow with every user ever seen.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use vridge_protocol::UserId;

use crate::config::LimitsConfig;

/// The kinds that have their own quota; everything else shares `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitedKind {
    CommentAdd,
    Typing,
    /// `reaction_add` and `reaction_remove`: one quota, so toggling a
    /// reaction costs the same as adding one.
    ReactionAdd,
    /// `comment_edit`, `comment_delete`, `comment_resolve`, `comment_reopen`.
    CommentChange,
    Other,
    /// A REST write other than a comment (projects, members, feedback,
    /// token refresh and sign-out).
    RestWrite,
}

impl LimitedKind {
    pub fn of(message_type: &str) -> Self {
        match message_type {
            "comment_add" => LimitedKind::CommentAdd,
            "typing_indicator" => LimitedKind::Typing,
            "reaction_add" | "reaction_remove" => LimitedKind::ReactionAdd,
            "comment_edit" | "comment_delete" | "comment_resolve" | "comment_reopen" => {
                LimitedKind::CommentChange
            }
            _ => LimitedKind::Other,
        }
    }
}

/// One keyed limiter per kind, and one per address for upgrades; `None`
/// when limits are lifted.
pub struct RateLimits {
    limiters: Option<[DefaultKeyedRateLimiter<UserId>; 6]>,
    upgrades: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("enabled", &self.limiters.is_some())
            .finish()
    }
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

impl RateLimits {
    /// The limiters the limits section asks for.
    pub fn from_config(config: &LimitsConfig) -> Self {
        let clock = DefaultClock::default();
        if config.no_rate_limits {
            return Self {
                limiters: None,
                upgrades: None,
                clock,
            };
        }
        Self {
            limiters: Some([
                RateLimiter::keyed(per_minute(config.limit_comment_add)),
                RateLimiter::keyed(per_minute(config.limit_typing)),
                RateLimiter::keyed(per_minute(config.limit_reaction_add)),
                RateLimiter::keyed(per_minute(config.limit_other)),
                RateLimiter::keyed(per_minute(config.limit_rest_write)),
                RateLimiter::keyed(per_minute(config.limit_comment_change)),
            ]),
            upgrades: Some(RateLimiter::keyed(per_minute(config.limit_upgrades_per_ip))),
            clock,
        }
    }

    /// True when `user` may send one more message of `kind` now.
    pub fn allow(&self, user: UserId, kind: LimitedKind) -> bool {
        self.check(user, kind).is_ok()
    }

    /// Counts one `kind` for `user`; `Err(wait)` when over quota.
    pub fn check(&self, user: UserId, kind: LimitedKind) -> Result<(), Duration> {
        let Some(limiters) = &self.limiters else {
            return Ok(());
        };
        let i = match kind {
            LimitedKind::CommentAdd => 0,
            LimitedKind::Typing => 1,
            LimitedKind::ReactionAdd => 2,
            LimitedKind::Other => 3,
            LimitedKind::RestWrite => 4,
            LimitedKind::CommentChange => 5,
        };
        limiters[i]
            .check_key(&user)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Counts one WebSocket upgrade attempt from `ip`; `Err(wait)` when over quota.
    pub fn check_upgrade(&self, ip: IpAddr) -> Result<(), Duration> {
        let Some(upgrades) = &self.upgrades else {
            return Ok(());
        };
        upgrades
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets users whose quota has fully replenished.
    pub fn prune(&self) {
        if let Some(limiters) = &self.limiters {
            for l in limiters {
                l.retain_recent();
                l.shrink_to_fit();
            }
        }
        if let Some(upgrades) = &self.upgrades {
            upgrades.retain_recent();
            upgrades.shrink_to_fit();
        }
    }

    /// Users with live limiter state, summed over kinds (for tests and metrics).
    pub fn tracked_keys(&self) -> usize {
        self.limiters
            .as_ref()
            .map_or(0, |ls| ls.iter().map(|l| l.len()).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &[&str]) -> LimitsConfig {
        let mut args = vec!["--bind", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        crate::Config::from_args(args).unwrap().limits
    }

    #[test]
    fn comment_quota_is_ten_then_refused_per_user() {
        let limits = RateLimits::from_config(&config(&[]));
        for _ in 0..10 {
            assert!(limits.allow(1, LimitedKind::CommentAdd));
        }
        assert!(!limits.allow(1, LimitedKind::CommentAdd));
        assert!(
            limits.allow(2, LimitedKind::CommentAdd),
            "another user has their own quota"
        );
        assert!(
            limits.allow(1, LimitedKind::Typing),
            "another kind has its own quota"
        );
    }

    #[test]
    fn comment_changes_share_one_quota_and_reaction_removal_the_reactions() {
        let limits = RateLimits::from_config(&config(&["--limit-comment-change", "2"]));
        assert_eq!(LimitedKind::of("comment_edit"), LimitedKind::CommentChange);
        assert_eq!(LimitedKind::of("reaction_remove"), LimitedKind::ReactionAdd);
        assert!(limits.allow(1, LimitedKind::of("comment_edit")));
        assert!(limits.allow(1, LimitedKind::of("comment_resolve")));
        assert!(!limits.allow(1, LimitedKind::of("comment_delete")));
        assert!(limits.allow(1, LimitedKind::of("comment_add")));
    }

    #[test]
    fn upgrades_are_limited_per_address_and_rest_writes_per_user() {
        let limits = RateLimits::from_config(&config(&[
            "--limit-upgrades-per-ip",
            "3",
            "--limit-rest-write",
            "2",
        ]));
        let a: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..3 {
            assert!(limits.check_upgrade(a).is_ok());
        }
        let wait = limits.check_upgrade(a).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(20));
        assert!(limits.check_upgrade([10, 0, 0, 2].into()).is_ok());
        assert!(limits.check(1, LimitedKind::RestWrite).is_ok());
        assert!(limits.check(1, LimitedKind::RestWrite).is_ok());
        assert!(limits.check(1, LimitedKind::RestWrite).is_err());
        assert!(limits.check(1, LimitedKind::CommentAdd).is_ok());
        let lifted = RateLimits::from_config(&config(&["--no-rate-limits"]));
        assert!((0..1000).all(|_| lifted.check_upgrade(a).is_ok()));
    }

    #[test]
    fn lifted_limits_allow_everything() {
        let limits = RateLimits::from_config(&config(&["--no-rate-limits"]));
        assert!((0..1000).all(|_| limits.allow(1, LimitedKind::CommentAdd)));
    }

    #[test]
    fn prune_keeps_users_still_limited() {
        let limits = RateLimits::from_config(&config(&[]));
        for _ in 0..11 {
            limits.allow(1, LimitedKind::CommentAdd);
        }
        limits.prune();
        assert!(limits.tracked_keys() >= 1);
        assert!(!limits.allow(1, LimitedKind::CommentAdd));
    }
}
