//! Per-user message rate limits (governor), keyed by user within one limiter
//! per message kind, with the product's quotas as defaults. Keyed state is
//! pruned periodically ([`RateLimits::prune`]) so it does not grow with every
//! user ever seen.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use vridge_protocol::UserId;

use crate::config::Config;

/// The kinds that have their own quota; everything else shares `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitedKind {
    CommentAdd,
    Typing,
    ReactionAdd,
    Other,
}

impl LimitedKind {
    pub fn of(message_type: &str) -> Self {
        match message_type {
            "comment_add" => LimitedKind::CommentAdd,
            "typing_indicator" => LimitedKind::Typing,
            "reaction_add" => LimitedKind::ReactionAdd,
            _ => LimitedKind::Other,
        }
    }
}

/// One keyed limiter per kind; `None` when limits are lifted.
pub struct RateLimits {
    limiters: Option<[DefaultKeyedRateLimiter<UserId>; 4]>,
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
    pub fn from_config(config: &Config) -> Self {
        if config.no_rate_limits {
            return Self { limiters: None };
        }
        Self {
            limiters: Some([
                RateLimiter::keyed(per_minute(config.limit_comment_add)),
                RateLimiter::keyed(per_minute(config.limit_typing)),
                RateLimiter::keyed(per_minute(config.limit_reaction_add)),
                RateLimiter::keyed(per_minute(config.limit_other)),
            ]),
        }
    }

    /// True when `user` may send one more message of `kind` now.
    pub fn allow(&self, user: UserId, kind: LimitedKind) -> bool {
        let Some(limiters) = &self.limiters else {
            return true;
        };
        let i = match kind {
            LimitedKind::CommentAdd => 0,
            LimitedKind::Typing => 1,
            LimitedKind::ReactionAdd => 2,
            LimitedKind::Other => 3,
        };
        limiters[i].check_key(&user).is_ok()
    }

    /// Forgets users whose quota has fully replenished.
    pub fn prune(&self) {
        if let Some(limiters) = &self.limiters {
            for l in limiters {
                l.retain_recent();
                l.shrink_to_fit();
            }
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

    fn config(extra: &[&str]) -> Config {
        let mut args = vec!["--bind", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        Config::from_args(args).unwrap()
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
