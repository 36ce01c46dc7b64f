//! Temporary credentials kept fresh, whatever their lifetime.
//!
//! Credentials that were obtained at `obtained` and expire at `expiration`
//! have the lifetime `expiration − obtained`; then (see [`Schedule`]):
//!
//! - they are refreshed from `expiration − min(3 min, lifetime / 2)` on;
//! - they are handed out until `expiration − min(30 s, lifetime / 10)`.
//!
//! A refresh is one fetch at a time that every concurrent request shares; a
//! failed one is retried with backoff while the credentials in hand are still
//! usable, so a poll never fails because they expired.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::{Credentials, CredentialsError, CredentialsFuture, CredentialsProvider};
use crate::clock::Clock;

/// Credentials with the time they stop working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Temporary {
    pub credentials: Credentials,
    pub expiration: DateTime<Utc>,
}

pub type FetchFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Temporary, CredentialsError>> + Send + 'a>,
>;

/// A source of temporary credentials (STS, the ECS metadata service).
pub trait Fetch: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn fetch(&self) -> FetchFuture<'_>;
    /// Takes what the fetcher's requests say the time is (STS's signed
    /// `Timestamp`) from `clock`. [`Refreshing::new`] calls it with its own
    /// clock, so that one idea of "now" decides both when to refresh and
    /// what STS is told; a fetcher whose requests carry no time ignores it.
    fn set_clock(&mut self, clock: Arc<dyn Clock>);
}

/// Told about every refresh, for the credentials metrics.
pub trait RefreshObserver: Send + Sync + 'static {
    fn refreshed(&self, provider: &'static str, ok: bool, expiration: Option<DateTime<Utc>>);
}

pub struct NoRefreshObserver;

impl RefreshObserver for NoRefreshObserver {
    fn refreshed(&self, _: &'static str, _: bool, _: Option<DateTime<Utc>>) {}
}

/// Refresh at most this long before expiry (the official libraries' 180 s);
/// credentials that live less are refreshed at half their lifetime.
pub const REFRESH_AHEAD: Duration = Duration::minutes(3);
/// Credentials are not handed out this close to expiry: a request signed
/// with them must still reach the API before they expire. The credentials
/// are asked for again before every attempt, so this covers one attempt's
/// way to the API (a short rate-limit wait, then connecting and sending,
/// within the request timeout, 10 s by default) and a little clock skew.
/// Capped at a tenth of the lifetime, so that short-lived credentials stay
/// usable for most of it.
pub const USE_MARGIN: Duration = Duration::seconds(30);

/// How long before expiry credentials of `lifetime` are refreshed:
/// `min(3 min, lifetime / 2)`.
pub fn refresh_ahead(lifetime: Duration) -> Duration {
    REFRESH_AHEAD.min(lifetime / 2)
}

/// How long before expiry credentials of `lifetime` stop being handed out:
/// `min(30 s, lifetime / 10)`, always shorter than [`refresh_ahead`], so
/// that there is a window to refresh (and retry) in while they still work.
pub fn use_margin(lifetime: Duration) -> Duration {
    USE_MARGIN.min(lifetime / 10)
}

/// When credentials are refreshed and until when they are handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// From then on, each request first tries a refresh (with backoff after
    /// a failure).
    pub refresh_at: DateTime<Utc>,
    /// From then on, they are not handed out any more.
    pub usable_until: DateTime<Utc>,
}

impl Schedule {
    /// The schedule of credentials obtained at `obtained` that expire at
    /// `expiration`; `None` when they are expired already (lifetime ≤ 0).
    pub fn new(obtained: DateTime<Utc>, expiration: DateTime<Utc>) -> Option<Schedule> {
        let lifetime = expiration - obtained;
        (lifetime > Duration::zero()).then(|| Schedule {
            refresh_at: expiration - refresh_ahead(lifetime),
            usable_until: expiration - use_margin(lifetime),
        })
    }

    pub fn fresh(&self, now: DateTime<Utc>) -> bool {
        now < self.refresh_at
    }

    pub fn usable(&self, now: DateTime<Utc>) -> bool {
        now < self.usable_until
    }
}

/// The credentials in hand.
struct Held {
    temporary: Temporary,
    schedule: Schedule,
}

#[derive(Default)]
struct State {
    current: Option<Held>,
    failures: u32,
    next_attempt: Option<DateTime<Utc>>,
    /// Why the last refresh failed, answered again while backing off.
    last_error: Option<CredentialsError>,
}

pub struct Refreshing<F: Fetch> {
    fetcher: F,
    clock: Arc<dyn Clock>,
    observer: Arc<dyn RefreshObserver>,
    /// A tokio mutex, held across the fetch: that is what makes concurrent
    /// requests share one refresh instead of each starting their own.
    state: tokio::sync::Mutex<State>,
}

impl<F: Fetch> Refreshing<F> {
    /// `clock` decides when to refresh, and is also given to the fetcher
    /// (see [`Fetch::set_clock`]).
    pub fn new(mut fetcher: F, clock: Arc<dyn Clock>, observer: Arc<dyn RefreshObserver>) -> Self {
        fetcher.set_clock(clock.clone());
        Refreshing {
            fetcher,
            clock,
            observer,
            state: Default::default(),
        }
    }

    async fn get(&self) -> Result<Credentials, CredentialsError> {
        let mut state = self.state.lock().await;
        let now = self.clock.now();
        match state.current.as_ref().map(|held| held.schedule) {
            Some(schedule) if schedule.fresh(now) => {}
            Some(schedule) if schedule.usable(now) => {
                // Time to refresh, but what we have still works: a failure
                // only delays the next try.
                if state.next_attempt.is_none_or(|at| now >= at) {
                    if let Err(e) = self.refresh(&mut state, now).await {
                        let left = state
                            .current
                            .as_ref()
                            .map_or(0, |held| (held.temporary.expiration - now).num_seconds());
                        tracing::warn!(provider = self.fetcher.name(), error = %e, expires_in_s = left, "credentials refresh failed; still using the current ones");
                    }
                }
            }
            _ => {
                // Nothing usable: refresh now, unless a refresh just failed,
                // in which case every request would hammer STS or the
                // metadata service; answer the same error until the wait is over.
                match (&state.last_error, state.next_attempt) {
                    (Some(error), Some(at)) if now < at => return Err(error.clone()),
                    _ => self.refresh(&mut state, now).await?,
                }
            }
        }
        // Checked again: a slow refresh that failed may have outlived them.
        let now = self.clock.now();
        match &state.current {
            Some(held) if held.schedule.usable(now) => Ok(held.temporary.credentials.clone()),
            _ => Err(state.last_error.clone().unwrap_or(CredentialsError {
                source_name: self.fetcher.name(),
                message: "no usable credentials".into(),
            })),
        }
    }

    async fn refresh(&self, state: &mut State, now: DateTime<Utc>) -> Result<(), CredentialsError> {
        let fetched = self.fetcher.fetch().await.and_then(|fresh| {
            let fail = |message: String| CredentialsError {
                source_name: self.fetcher.name(),
                message,
            };
            // The same credentials again (the ECS metadata service before it
            // rotates them) are no refresh: counted as a failed one, so that
            // the next try backs off while the ones in hand keep their
            // schedule (their lifetime counts from when they were first
            // obtained, not from now).
            if state.current.as_ref().is_some_and(|held| held.temporary == fresh) {
                return Err(fail(format!(
                    "the source answered the same credentials again (expiring at {})",
                    fresh.expiration
                )));
            }
            // Obtained when the answer came: their lifetime counts from then.
            let obtained = self.clock.now();
            match Schedule::new(obtained, fresh.expiration) {
                Some(schedule) => Ok(Held {
                    temporary: fresh,
                    schedule,
                }),
                None => Err(fail(format!(
                    "the new credentials expired already ({}, and it is {obtained}: is the clock right?)",
                    fresh.expiration
                ))),
            }
        });
        match fetched {
            Ok(fresh) => {
                let expiration = fresh.temporary.expiration;
                tracing::info!(provider = self.fetcher.name(), %expiration, refresh_at = %fresh.schedule.refresh_at, "credentials refreshed");
                self.observer
                    .refreshed(self.fetcher.name(), true, Some(expiration));
                state.current = Some(fresh);
                state.failures = 0;
                state.next_attempt = None;
                state.last_error = None;
                Ok(())
            }
            Err(e) => {
                state.failures += 1;
                // 1 s, 2 s, 4 s … at most a minute between tries.
                let wait =
                    Duration::seconds((1i64 << state.failures.min(7).saturating_sub(1)).min(60));
                state.next_attempt = Some(now + wait);
                state.last_error = Some(e.clone());
                let expiration = state.current.as_ref().map(|held| held.temporary.expiration);
                self.observer
                    .refreshed(self.fetcher.name(), false, expiration);
                Err(e)
            }
        }
    }
}

impl<F: Fetch> CredentialsProvider for Refreshing<F> {
    fn name(&self) -> &'static str {
        self.fetcher.name()
    }

    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(self.get())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::clock::ManualClock;
    use crate::secret::Secret;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("a valid time")
    }

    fn ms(ms: i64) -> Duration {
        Duration::milliseconds(ms)
    }

    #[test]
    fn when_to_refresh_and_until_when_to_use() {
        // (lifetime, refreshed from this age on, handed out until this age), in ms.
        let cases = [
            (3_600_000, 3_420_000, 3_570_000), // 1 h: 3 min ahead, 30 s margin
            (900_000, 720_000, 870_000),       // 15 min: 3 min ahead, 30 s margin
            (200_000, 100_000, 180_000),       // 200 s: half-life, 20 s margin
            (60_000, 30_000, 54_000),          // 60 s: half-life, 6 s margin
            (10_000, 5_000, 9_000),            // 10 s: half-life, 1 s margin
        ];
        for (lifetime, refresh_age, usable_age) in cases {
            let obtained = at(0);
            let schedule = Schedule::new(obtained, obtained + ms(lifetime)).unwrap();
            assert_eq!(
                schedule,
                Schedule {
                    refresh_at: obtained + ms(refresh_age),
                    usable_until: obtained + ms(usable_age),
                },
                "lifetime {lifetime} ms"
            );
            let refresh_at = schedule.refresh_at;
            assert!(schedule.fresh(refresh_at - ms(1)) && !schedule.fresh(refresh_at));
            let until = schedule.usable_until;
            assert!(schedule.usable(until - ms(1)) && !schedule.usable(until));
            assert!(refresh_at < until, "a window to refresh in");
        }
    }

    #[test]
    fn expired_credentials_have_no_schedule() {
        assert_eq!(Schedule::new(at(0), at(0)), None);
        assert_eq!(Schedule::new(at(10), at(0)), None);
        assert!(Schedule::new(at(0), at(1)).is_some_and(|s| s.usable(at(0))));
    }

    /// Hands out credentials valid for `lifetime` from the clock's now,
    /// `STS.<n>`, or fails while `failing`, or hands out the last ones again
    /// while `repeating`; notes when it was asked.
    struct Scripted {
        clock: ManualClock,
        lifetime: Duration,
        failing: Mutex<bool>,
        repeating: Mutex<bool>,
        last: Mutex<Option<Temporary>>,
        calls: Mutex<Vec<DateTime<Utc>>>,
    }

    impl Scripted {
        fn new(clock: &ManualClock, lifetime: Duration) -> Arc<Scripted> {
            Arc::new(Scripted {
                clock: clock.clone(),
                lifetime,
                failing: Mutex::new(false),
                repeating: Mutex::new(false),
                last: Mutex::new(None),
                calls: Mutex::new(Vec::new()),
            })
        }

        fn calls(&self) -> Vec<DateTime<Utc>> {
            self.calls.lock().unwrap().clone()
        }

        fn fail(&self, failing: bool) {
            *self.failing.lock().unwrap() = failing;
        }

        fn repeat(&self, repeating: bool) {
            *self.repeating.lock().unwrap() = repeating;
        }
    }

    impl Fetch for Arc<Scripted> {
        fn name(&self) -> &'static str {
            "scripted"
        }

        fn fetch(&self) -> FetchFuture<'_> {
            let now = self.clock.now();
            let result = {
                let mut calls = self.calls.lock().unwrap();
                calls.push(now);
                let last = self.last.lock().unwrap().clone();
                if *self.failing.lock().unwrap() {
                    Err(CredentialsError {
                        source_name: "scripted",
                        message: "unavailable".into(),
                    })
                } else if let Some(last) = last.filter(|_| *self.repeating.lock().unwrap()) {
                    Ok(last)
                } else {
                    Ok(Temporary {
                        credentials: Credentials {
                            access_key_id: format!("STS.{}", calls.len()),
                            access_key_secret: Secret::new("s"),
                            security_token: Some(Secret::new("t")),
                        },
                        expiration: now + self.lifetime,
                    })
                }
            };
            if let Ok(issued) = &result {
                *self.last.lock().unwrap() = Some(issued.clone());
            }
            Box::pin(async move { result })
        }

        fn set_clock(&mut self, _: Arc<dyn Clock>) {}
    }

    fn provider(clock: &ManualClock, fetcher: &Arc<Scripted>) -> Refreshing<Arc<Scripted>> {
        Refreshing::new(
            fetcher.clone(),
            Arc::new(clock.clone()),
            Arc::new(NoRefreshObserver),
        )
    }

    /// Five lifetimes of requests every twentieth of a lifetime: every one
    /// gets credentials that are not within the margin of their expiry, and
    /// STS is asked exactly `min(3 min, lifetime / 2)` before each expiry.
    #[tokio::test]
    async fn credentials_of_any_lifetime_are_refreshed_ahead_and_never_fail() {
        for lifetime_ms in [3_600_000, 900_000, 200_000, 60_000, 10_000] {
            let lifetime = ms(lifetime_ms);
            let clock = ManualClock::new(at(0));
            let fetcher = Scripted::new(&clock, lifetime);
            let provider = provider(&clock, &fetcher);
            let step = lifetime / 20;
            let mut handed_out = Vec::new();
            for _ in 0..100 {
                let credentials = provider.get().await.unwrap_or_else(|e| {
                    panic!("lifetime {lifetime_ms} ms, at {}: {e}", clock.now())
                });
                handed_out.push((clock.now(), credentials.access_key_id));
                clock.advance(step);
            }
            let calls = fetcher.calls();
            let expected: Vec<_> = (0..calls.len() as i32)
                .map(|n| at(0) + (lifetime - refresh_ahead(lifetime)) * n)
                .collect();
            assert_eq!(calls, expected, "lifetime {lifetime_ms} ms");
            assert!(calls.len() >= 5, "lifetime {lifetime_ms} ms: {calls:?}");
            for (now, id) in handed_out {
                let n: usize = id.trim_start_matches("STS.").parse().unwrap();
                let expiration = calls[n - 1] + lifetime;
                assert!(
                    expiration - now > use_margin(lifetime),
                    "lifetime {lifetime_ms} ms: {id} handed out at {now}, expiring at {expiration}"
                );
            }
        }
    }

    /// 60 s credentials while the source is down: used until the margin,
    /// with retries backing off, then a clear error; back when it is up.
    #[tokio::test]
    async fn short_credentials_are_used_until_the_margin_while_refreshes_fail() {
        let clock = ManualClock::new(at(0));
        let fetcher = Scripted::new(&clock, Duration::seconds(60));
        let provider = provider(&clock, &fetcher);
        assert_eq!(provider.get().await.unwrap().access_key_id, "STS.1");
        fetcher.fail(true);
        let mut answers = Vec::new();
        for _ in 0..60 {
            answers.push(provider.get().await.map(|c| c.access_key_id));
            clock.advance(Duration::seconds(1));
        }
        // STS.1 up to 53 s (usable until 54 s), errors from 54 s.
        for (second, answer) in answers.iter().enumerate() {
            match answer {
                Ok(id) => assert!(second < 54 && id == "STS.1", "{second}: {id}"),
                Err(e) => assert!(second >= 54 && e.message == "unavailable", "{second}: {e}"),
            }
        }
        // Retries from 30 s, 1 s, 2 s, 4 s, 8 s … apart.
        let seconds: Vec<i64> = fetcher
            .calls()
            .iter()
            .map(|t| (*t - at(0)).num_seconds())
            .collect();
        assert_eq!(seconds, vec![0, 30, 31, 33, 37, 45]);
        fetcher.fail(false);
        clock.advance(Duration::seconds(60));
        assert_eq!(provider.get().await.unwrap().access_key_id, "STS.7");
    }

    /// A source that answers the same 60 s credentials again (as the ECS
    /// metadata service does until it rotates them): not a refresh; they
    /// keep their first schedule (handed out until 54 s, not later), and
    /// the next tries back off.
    #[tokio::test]
    async fn the_same_credentials_again_are_no_refresh() {
        let clock = ManualClock::new(at(0));
        let fetcher = Scripted::new(&clock, Duration::seconds(60));
        let provider = provider(&clock, &fetcher);
        fetcher.repeat(true);
        let mut answers = Vec::new();
        for _ in 0..60 {
            answers.push(provider.get().await.map(|c| c.access_key_id));
            clock.advance(Duration::seconds(1));
        }
        for (second, answer) in answers.iter().enumerate() {
            match answer {
                Ok(id) => assert!(second < 54 && id == "STS.1", "{second}: {id}"),
                Err(e) => assert!(
                    second >= 54 && e.message.contains("the same credentials again"),
                    "{second}: {e}"
                ),
            }
        }
        let seconds: Vec<i64> = fetcher
            .calls()
            .iter()
            .map(|t| (*t - at(0)).num_seconds())
            .collect();
        assert_eq!(seconds, vec![0, 30, 31, 33, 37, 45]);
        fetcher.repeat(false);
        clock.advance(Duration::seconds(60));
        assert_eq!(provider.get().await.unwrap().access_key_id, "STS.7");
    }
}
