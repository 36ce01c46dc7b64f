//! How long to wait before trying a failed call again.

use std::time::Duration;

/// Exponential backoff with jitter, bounded in attempts and in total time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
    /// The wait before the first retry, doubled for each further one.
    pub base_delay: Duration,
    /// No single wait is longer than this (unless the server asks for more).
    pub max_delay: Duration,
    /// No retry is started once this much time has passed since the first
    /// attempt began, or if its wait would end later than that.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retries at all (unit tests).
    #[cfg(test)]
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        }
    }

    /// The wait before retry number `retry` (1 for the first retry), or
    /// `None` when the budget of attempts or time is spent. `retry_after` is
    /// the server's own ask (`x-acs-retry-after`), never waited less than.
    /// `random` is a number in [0, 1) for the jitter.
    pub fn next_delay(
        &self,
        retry: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
        random: f64,
    ) -> Option<Duration> {
        if retry >= self.max_attempts {
            return None;
        }
        let exp = self
            .base_delay
            .saturating_mul(1u32 << (retry.saturating_sub(1)).min(16))
            .min(self.max_delay);
        // "Equal jitter": half fixed, half random, so retries of many
        // instances throttled together spread out but never fire at once.
        let jittered = exp / 2 + exp.mul_f64(random.clamp(0.0, 1.0) / 2.0);
        let delay = retry_after.map_or(jittered, |asked| asked.max(jittered));
        if elapsed.saturating_add(delay) > self.max_elapsed {
            return None;
        }
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            max_elapsed: Duration::from_secs(2),
        }
    }

    #[test]
    fn grows_exponentially_within_jitter_bounds() {
        let p = policy();
        let zero = Duration::ZERO;
        assert_eq!(
            p.next_delay(1, zero, None, 0.0),
            Some(Duration::from_millis(50))
        );
        assert_eq!(
            p.next_delay(1, zero, None, 0.999_999)
                .map(|d| d.as_millis()),
            Some(99)
        );
        assert_eq!(
            p.next_delay(2, zero, None, 0.0),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            p.next_delay(3, zero, None, 0.0),
            Some(Duration::from_millis(175))
        );
        // capped by max_delay
        assert_eq!(
            p.next_delay(4, zero, None, 0.0),
            Some(Duration::from_millis(175))
        );
    }

    #[test]
    fn bounded_in_attempts_and_time() {
        let p = policy();
        assert!(p.next_delay(4, Duration::ZERO, None, 0.5).is_some());
        assert_eq!(p.next_delay(5, Duration::ZERO, None, 0.5), None);
        assert_eq!(
            p.next_delay(1, Duration::from_millis(1990), None, 0.0),
            None
        );
        assert_eq!(
            RetryPolicy::none().next_delay(1, Duration::ZERO, None, 0.0),
            None
        );
    }

    #[test]
    fn server_retry_after_is_honoured() {
        let p = policy();
        let asked = Duration::from_millis(900);
        assert_eq!(
            p.next_delay(1, Duration::ZERO, Some(asked), 0.0),
            Some(asked)
        );
        // an ask that would break the time budget ends the retries
        assert_eq!(
            p.next_delay(1, Duration::from_millis(1500), Some(asked), 0.0),
            None
        );
    }
}
