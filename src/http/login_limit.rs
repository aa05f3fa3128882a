//! Sign-in and sign-up throttling: governor quotas per email and per client
//! IP, so that password guessing against one account, or from one address,
//! slows to a crawl (429 with Retry-After), and so that one address cannot
//! make the server hash passwords for thousands of sign-ups. Every attempt
//! counts. Keyed state is pruned by [`LoginLimits::prune`] so it does not
//! grow with every email ever tried.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::AuthConfig;

pub struct LoginLimits {
    per_email: DefaultKeyedRateLimiter<String>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    register_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl std::fmt::Debug for LoginLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLimits").finish_non_exhaustive()
    }
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

impl LoginLimits {
    pub fn from_config(config: &AuthConfig) -> Self {
        Self {
            per_email: RateLimiter::keyed(per_minute(config.login_attempts_per_email)),
            per_ip: RateLimiter::keyed(per_minute(config.login_attempts_per_ip)),
            register_per_ip: RateLimiter::keyed(per_minute(config.register_attempts_per_ip)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one attempt; `Err(wait)` when the email or the IP is over quota.
    pub fn attempt(&self, email: &str, ip: IpAddr) -> Result<(), Duration> {
        let now = self.clock.now();
        let by_ip = self.per_ip.check_key(&ip);
        let by_email = self.per_email.check_key(&email.to_owned());
        match (by_ip, by_email) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(a), Ok(())) | (Ok(()), Err(a)) => Err(a.wait_time_from(now)),
            (Err(a), Err(b)) => Err(a.wait_time_from(now).max(b.wait_time_from(now))),
        }
    }

    /// Counts one sign-up from `ip`; `Err(wait)` when over quota.
    pub fn register(&self, ip: IpAddr) -> Result<(), Duration> {
        self.register_per_ip
            .check_key(&ip)
            .map_err(|a| a.wait_time_from(self.clock.now()))
    }

    /// Forgets keys whose quota has fully replenished.
    pub fn prune(&self) {
        self.per_email.retain_recent();
        self.per_ip.retain_recent();
        self.register_per_ip.retain_recent();
        self.per_email.shrink_to_fit();
        self.per_ip.shrink_to_fit();
        self.register_per_ip.shrink_to_fit();
    }
}
