//! Rate limits on token requests, per client IP and per username (GCRA, in process).
//!
//! A password-guessing client is slowed whichever it varies: many names from one address hit
//! the per-IP limit, one name from many addresses hits the per-username limit. Both are
//! configurable (`HERALD_RATE_LIMIT__TOKEN_PER_IP_PER_MINUTE`,
//! `HERALD_RATE_LIMIT__TOKEN_PER_USERNAME_PER_MINUTE`; 0 disables one). The client IP honours
//! `HERALD_TRUSTED_PROXIES`. Limits are per auth instance: with N replicas behind a balancer a
//! client gets up to N times the budget, which still bounds guessing.

use std::{net::IpAddr, num::NonZeroU32, time::Duration};

use governor::{DefaultKeyedRateLimiter, Quota, clock::Clock as _};
use serde::{Deserialize, Serialize};

/// Limits on `POST /auth/token` (and refresh, per IP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct RateLimitSettings {
    /// Token requests per minute from one client IP (burst of the same size); 0 = unlimited.
    pub token_per_ip_per_minute: u32,
    /// Token requests per minute for one username (burst of the same size); 0 = unlimited.
    pub token_per_username_per_minute: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            token_per_ip_per_minute: 30,
            token_per_username_per_minute: 10,
        }
    }
}

/// The keyed limiters. Share one per process (`web::Data`).
pub struct TokenRateLimits {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_username: Option<DefaultKeyedRateLimiter<String>>,
}

impl std::fmt::Debug for TokenRateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRateLimits")
            .field("per_ip", &self.per_ip.is_some())
            .field("per_username", &self.per_username.is_some())
            .finish()
    }
}

impl TokenRateLimits {
    /// Limiters for `settings`.
    pub fn new(settings: RateLimitSettings) -> Self {
        let quota = |n: u32| NonZeroU32::new(n).map(Quota::per_minute);
        Self {
            per_ip: quota(settings.token_per_ip_per_minute).map(DefaultKeyedRateLimiter::keyed),
            per_username: quota(settings.token_per_username_per_minute)
                .map(DefaultKeyedRateLimiter::keyed),
        }
    }

    /// Counts a request from `ip`; `Err(wait)` when over the limit.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Duration> {
        check(self.per_ip.as_ref(), &ip)
    }

    /// Counts a request for `username` (case-folded); `Err(wait)` when over the limit.
    pub fn check_username(&self, folded_username: &str) -> Result<(), Duration> {
        check(self.per_username.as_ref(), &folded_username.to_owned())
    }

    /// Forgets keys whose budget is full again, bounding memory; call it periodically.
    pub fn sweep(&self) {
        if let Some(limiter) = &self.per_ip {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.per_username {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: Option<&DefaultKeyedRateLimiter<K>>,
    key: &K,
) -> Result<(), Duration> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    limiter.check_key(key).map_err(|not_until| {
        not_until.wait_time_from(governor::clock::DefaultClock::default().now())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_applies_per_key_and_says_how_long_to_wait() {
        let limits = TokenRateLimits::new(RateLimitSettings {
            token_per_ip_per_minute: 2,
            token_per_username_per_minute: 0,
        });
        let a: IpAddr = "1.1.1.1".parse().unwrap();
        let b: IpAddr = "2.2.2.2".parse().unwrap();
        assert!(limits.check_ip(a).is_ok());
        assert!(limits.check_ip(a).is_ok());
        let wait = limits.check_ip(a).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(30));
        assert!(limits.check_ip(b).is_ok());
        for _ in 0..100 {
            assert!(limits.check_username("alice").is_ok());
        }
    }
}
