//! Temporary credentials kept fresh: fetched again when three minutes or
//! less remain, by one refresh at a time that every concurrent request
//! shares; a failed refresh is retried with backoff while the credentials in
//! hand are still valid, so a poll never fails because they expired.

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
}

/// Told about every refresh, for the credentials metrics.
pub trait RefreshObserver: Send + Sync + 'static {
    fn refreshed(&self, provider: &'static str, ok: bool, expiration: Option<DateTime<Utc>>);
}

pub struct NoRefreshObserver;

impl RefreshObserver for NoRefreshObserver {
    fn refreshed(&self, _: &'static str, _: bool, _: Option<DateTime<Utc>>) {}
}

/// Refresh when this little validity is left (the official libraries' 180 s).
pub const REFRESH_AHEAD: Duration = Duration::minutes(3);
/// Credentials closer than this to expiry are not handed out: a request
/// signed with them could outlive them (timeout and retries included).
pub const MIN_VALIDITY: Duration = Duration::seconds(60);

#[derive(Default)]
struct State {
    current: Option<Temporary>,
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
    pub fn new(fetcher: F, clock: Arc<dyn Clock>, observer: Arc<dyn RefreshObserver>) -> Self {
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
        let left = state.current.as_ref().map(|t| t.expiration - now);
        match left {
            Some(left) if left > REFRESH_AHEAD => {}
            Some(left) if left > MIN_VALIDITY => {
                // Time to refresh, but what we have still works: a failure
                // only delays the next try.
                if state.next_attempt.is_none_or(|at| now >= at) {
                    if let Err(e) = self.refresh(&mut state, now).await {
                        tracing::warn!(provider = self.fetcher.name(), error = %e, expires_in_s = left.num_seconds(), "credentials refresh failed; still using the current ones");
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
        match &state.current {
            Some(t) => Ok(t.credentials.clone()),
            None => Err(CredentialsError {
                source_name: self.fetcher.name(),
                message: "no credentials".into(),
            }),
        }
    }

    async fn refresh(&self, state: &mut State, now: DateTime<Utc>) -> Result<(), CredentialsError> {
        let fetched = self.fetcher.fetch().await.and_then(|fresh| {
            if fresh.expiration - now < MIN_VALIDITY + REFRESH_AHEAD {
                Err(CredentialsError {
                    source_name: self.fetcher.name(),
                    message: format!("the new credentials expire too soon ({})", fresh.expiration),
                })
            } else {
                Ok(fresh)
            }
        });
        match fetched {
            Ok(fresh) => {
                tracing::info!(provider = self.fetcher.name(), expiration = %fresh.expiration, "credentials refreshed");
                self.observer
                    .refreshed(self.fetcher.name(), true, Some(fresh.expiration));
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
                let expiration = state.current.as_ref().map(|t| t.expiration);
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
