//! `rate_limit`: one token bucket for the whole server, read once at
//! start-up. A request that finds it empty gets 429 at once (before any
//! bcrypt is spent); nothing waits.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::config::RateLimit;

pub struct Limiter {
    /// One token every `interval`.
    interval: Duration,
    /// The most tokens kept: `burst`, at least one (a bucket of zero
    /// would refuse every request, which no one configures on purpose).
    capacity: f64,
    state: Mutex<(f64, Instant)>,
}

impl Limiter {
    pub fn new(limit: RateLimit) -> Limiter {
        let capacity = f64::from(limit.burst.max(1));
        Limiter {
            interval: limit.interval,
            capacity,
            state: Mutex::new((capacity, Instant::now())),
        }
    }

    /// Takes a token if there is one.
    pub fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, since) = *state;
        let earned =
            now.saturating_duration_since(since).as_secs_f64() / self.interval.as_secs_f64();
        let tokens = (tokens + earned).min(self.capacity);
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            true
        } else {
            *state = (tokens, now);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_token_per_interval() {
        let limiter = Limiter::new(RateLimit {
            interval: Duration::from_secs(1),
            burst: 3,
        });
        let start = Instant::now();
        assert!((0..3).all(|_| limiter.allow_at(start)));
        assert!(!limiter.allow_at(start));
        assert!(!limiter.allow_at(start + Duration::from_millis(500)));
        assert!(limiter.allow_at(start + Duration::from_millis(1000)));
        assert!(!limiter.allow_at(start + Duration::from_millis(1100)));
        // A long pause refills up to the burst only.
        let later = start + Duration::from_secs(60);
        assert!((0..3).all(|_| limiter.allow_at(later)));
        assert!(!limiter.allow_at(later));
    }

    #[test]
    fn burst_zero_lets_one_request_through_per_interval() {
        let limiter = Limiter::new(RateLimit {
            interval: Duration::from_secs(1),
            burst: 0,
        });
        let start = Instant::now();
        assert!(limiter.allow_at(start));
        assert!(!limiter.allow_at(start));
        assert!(limiter.allow_at(start + Duration::from_secs(1)));
    }
}
