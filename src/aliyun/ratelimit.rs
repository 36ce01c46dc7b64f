//! A token bucket per account, in front of the retry layer: every request
//! to the database APIs (each retry too) takes a token; STS calls do not.
//! Reservation style, as Go's `rate.Limiter`: a caller that finds the
//! bucket empty books the next token and sleeps until it is due, so waiters
//! are served in order and the grants never exceed `burst + rate × t`.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub struct RateLimiter {
    /// Tokens per second.
    rate: f64,
    /// Bucket size: at most this many requests at once after a quiet spell.
    burst: f64,
    state: Mutex<Bucket>,
}

struct Bucket {
    /// Below zero when tokens are booked ahead of time.
    tokens: f64,
    refilled: Instant,
}

/// Taking a token would wait past the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WouldExceedDeadline {
    pub wait: Duration,
}

impl RateLimiter {
    /// `rate` requests per second with a burst of the same number (at least
    /// one); `None` for 0, which means unlimited.
    pub fn new(rate: f64) -> Option<RateLimiter> {
        if !(rate.is_finite() && rate > 0.0) {
            return None;
        }
        let burst = rate.max(1.0);
        Some(RateLimiter {
            rate,
            burst,
            state: Mutex::new(Bucket {
                tokens: burst,
                refilled: Instant::now(),
            }),
        })
    }

    /// Takes a token, sleeping until it is due; gives up at once (and books
    /// nothing) when it would be due after `deadline`. Returns the wait.
    pub async fn acquire(&self, deadline: Instant) -> Result<Duration, WouldExceedDeadline> {
        let wait = self.reserve(Instant::now(), deadline)?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(wait)
    }

    /// Books a token at `now`: how long until it is due.
    fn reserve(&self, now: Instant, deadline: Instant) -> Result<Duration, WouldExceedDeadline> {
        // A std mutex: held for a few arithmetic operations, never across an await.
        let mut bucket = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.refilled = now;
        let missing = 1.0 - bucket.tokens;
        let wait = if missing <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(missing / self.rate)
        };
        if now + wait > deadline {
            return Err(WouldExceedDeadline { wait });
        }
        bucket.tokens -= 1.0;
        Ok(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[test]
    fn zero_means_unlimited() {
        assert!(RateLimiter::new(0.0).is_none());
        assert!(RateLimiter::new(f64::NAN).is_none());
        assert!(RateLimiter::new(0.5).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_one_token_per_interval() {
        let limiter = RateLimiter::new(10.0).unwrap();
        let start = Instant::now();
        let mut granted = Vec::new();
        for _ in 0..30 {
            limiter.acquire(far()).await.unwrap();
            granted.push(start.elapsed());
        }
        // The first ten at once, then one every 100 ms.
        assert!(granted[..10].iter().all(|t| t.is_zero()), "{granted:?}");
        for (i, t) in granted[10..].iter().enumerate() {
            let expected = Duration::from_millis(100 * (i as u64 + 1));
            assert!(
                t.abs_diff(expected) < Duration::from_millis(2),
                "{i}: {t:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_takers_never_exceed_the_bucket() {
        let limiter = std::sync::Arc::new(RateLimiter::new(20.0).unwrap());
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..200 {
            let limiter = limiter.clone();
            tasks.spawn(async move {
                limiter.acquire(far()).await.unwrap();
                start.elapsed()
            });
        }
        let mut times: Vec<Duration> = tasks.join_all().await;
        times.sort();
        // In every window of length t, at most burst + rate × t grants.
        for (i, a) in times.iter().enumerate() {
            for (j, b) in times.iter().enumerate().skip(i) {
                let window = (*b - *a).as_secs_f64();
                let grants = (j - i + 1) as f64;
                assert!(
                    grants <= 20.0 + 20.0 * window + 1e-6,
                    "{grants} in {window}s"
                );
            }
        }
        // And 200 tokens at 20/s after a burst of 20 take 9 s.
        let last = times.last().unwrap().as_secs_f64();
        assert!((last - 9.0).abs() < 0.01, "{last}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_deadline_books_nothing() {
        let limiter = RateLimiter::new(1.0).unwrap();
        limiter.acquire(far()).await.unwrap();
        let soon = Instant::now() + Duration::from_millis(500);
        let err = limiter.acquire(soon).await.unwrap_err();
        assert!(err.wait > Duration::from_millis(900), "{err:?}");
        // Nothing was booked: the next token is still due in one second.
        let start = Instant::now();
        limiter.acquire(far()).await.unwrap();
        assert!(start.elapsed() <= Duration::from_secs(1));
        assert!(start.elapsed() > Duration::from_millis(900));
    }
}
