//! A per-connection token bucket for publishes (error 111 when empty). One bucket lives in
//! one connection's task, so it needs no synchronisation.

use tokio::time::Instant;

/// `rate` tokens per second, up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. A rate of 0 or less disables the limit.
    pub fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_then_the_rate_refills() {
        let mut bucket = TokenBucket::new(2.0, 3);
        assert!((0..3).all(|_| bucket.try_take()));
        assert!(!bucket.try_take());
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(bucket.try_take());
        assert!(!bucket.try_take());
    }

    #[test]
    fn a_zero_rate_means_unlimited() {
        let mut bucket = TokenBucket::new(0.0, 1);
        assert!((0..100).all(|_| bucket.try_take()));
    }
}
