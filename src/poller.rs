//! The polling loop. It owns all mutable state: one task per watched
//! instance asks the API on its own schedule; a single coordinator applies
//! each outcome and publishes a new immutable snapshot. The HTTP side only
//! ever reads snapshots, so a scrape never waits for the API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::aliyun::{ApiError, RpcClient};
use crate::clock::Clock;
use crate::model::Backup;
use crate::products::kvstore::{self, Window};
use crate::snapshot::{summarize, InstanceView, Snapshot};

/// What the poller needs to know.
#[derive(Clone)]
pub struct PollerSettings {
    pub product: &'static str,
    pub region_id: String,
    pub instance_ids: Vec<String>,
    pub interval: Duration,
    pub lookback: Duration,
    pub concurrency: usize,
}

/// The result of one poll of one instance.
struct Outcome {
    index: usize,
    round: u64,
    started: Instant,
    finished: Instant,
    polled_at: DateTime<Utc>,
    result: Result<Vec<Backup>, ApiError>,
}

/// What each instance's task needs of the settings (not the whole list of
/// instances: a copy per task would cost memory quadratic in their number).
#[derive(Clone, Copy)]
struct Schedule {
    interval: Duration,
    lookback: Duration,
}

/// Start and finish of one round over all instances.
#[derive(Default)]
struct Round {
    first_start: Option<Instant>,
    last_finish: Option<Instant>,
    done: usize,
}

/// Runs until `shutdown` turns true (or its sender goes away), publishing
/// snapshots on `publish`.
pub async fn run(
    settings: PollerSettings,
    client: Arc<RpcClient>,
    clock: Arc<dyn Clock>,
    publish: watch::Sender<Arc<Snapshot>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let n = settings.instance_ids.len();
    let mut snapshot = Snapshot {
        product: settings.product,
        region_id: settings.region_id.clone(),
        watched: Arc::new(settings.instance_ids.clone()),
        ..Default::default()
    };
    publish.send_replace(Arc::new(snapshot.clone()));

    // Bounded, so that a coordinator that falls behind slows the pollers
    // instead of piling up outcomes.
    let (outcomes_tx, mut outcomes) = mpsc::channel::<Outcome>(64);
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let first_pass = Instant::now();
    // Dropping the set (when this function returns) aborts every poll task.
    let mut tasks = JoinSet::new();
    for (index, instance_id) in settings.instance_ids.iter().enumerate() {
        // After the first pass (all at once), instance i is polled at
        // offset i/n of the interval, so polls spread over it evenly.
        let offset = spread_offset(settings.interval, index, n);
        tasks.spawn(poll_instance(
            index,
            instance_id.clone(),
            first_pass,
            first_pass + settings.interval + offset,
            Schedule {
                interval: settings.interval,
                lookback: settings.lookback,
            },
            client.clone(),
            clock.clone(),
            permits.clone(),
            outcomes_tx.clone(),
        ));
    }
    drop(outcomes_tx);

    let mut rounds: BTreeMap<u64, Round> = BTreeMap::new();
    loop {
        let outcome = tokio::select! {
            outcome = outcomes.recv() => match outcome {
                Some(outcome) => outcome,
                None => break,
            },
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
                continue;
            }
            // Poll tasks never end on their own; one that does has panicked.
            // Stop, so that /healthz reports the loop dead instead of
            // serving that instance's last facts for ever.
            Some(ended) = tasks.join_next() => {
                tracing::error!(error = ?ended.err(), "a poll task ended unexpectedly; stopping the poll loop");
                break;
            }
        };
        let round = rounds.entry(outcome.round).or_default();
        round.first_start = Some(
            round
                .first_start
                .map_or(outcome.started, |s| s.min(outcome.started)),
        );
        round.last_finish = Some(
            round
                .last_finish
                .map_or(outcome.finished, |f| f.max(outcome.finished)),
        );
        round.done += 1;
        if round.done == n {
            if let (Some(start), Some(finish)) = (round.first_start, round.last_finish) {
                snapshot.poll_cycle_seconds = Some((finish - start).as_secs_f64());
            }
            // Older rounds can never complete now that a newer one has.
            let complete = outcome.round;
            rounds.retain(|r, _| *r > complete);
        }
        let instance_id = &settings.instance_ids[outcome.index];
        let previous = snapshot.instances.get(instance_id).cloned();
        let view = apply(
            previous.as_deref(),
            instance_id,
            outcome.polled_at,
            outcome.result,
        );
        snapshot
            .instances
            .insert(instance_id.clone(), Arc::new(view));
        publish.send_replace(Arc::new(snapshot.clone()));
    }
    tracing::debug!("poller stopped");
}

/// The new view of an instance after a poll.
fn apply(
    previous: Option<&InstanceView>,
    instance_id: &str,
    polled_at: DateTime<Utc>,
    result: Result<Vec<Backup>, ApiError>,
) -> InstanceView {
    match result {
        Ok(backups) => {
            let summary = summarize(&backups);
            tracing::debug!(instance_id, backups = backups.len(), "poll succeeded");
            InstanceView {
                last_poll_success: true,
                last_success_poll_at: Some(polled_at),
                summary: Some(summary),
                last_error: None,
            }
        }
        Err(error) => {
            tracing::warn!(
                instance_id,
                code = %error.code_label(),
                request_id = error.request_id().unwrap_or("-"),
                error = %error,
                "poll failed; keeping the last known backup facts"
            );
            InstanceView {
                last_poll_success: false,
                last_success_poll_at: previous.and_then(|p| p.last_success_poll_at),
                summary: previous.and_then(|p| p.summary.clone()),
                last_error: Some(error.code_label()),
            }
        }
    }
}

/// Where in the interval instance `index` of `n` is polled after the first
/// pass: evenly spread, so that n instances never hit the API at once.
fn spread_offset(interval: Duration, index: usize, n: usize) -> Duration {
    interval.mul_f64(index as f64 / n.max(1) as f64)
}

/// When poll `round + 1` of an instance starts: at `second` after the first
/// pass, then an interval after the planned start of the previous one. No
/// catch-up burst after a stall: never earlier than `now`.
fn next_start(
    round: u64,
    scheduled: Instant,
    second: Instant,
    interval: Duration,
    now: Instant,
) -> Instant {
    let planned = if round == 0 {
        second
    } else {
        scheduled + interval
    };
    planned.max(now)
}

/// Polls one instance for ever: now, then at `second`, then every interval.
#[allow(clippy::too_many_arguments)]
async fn poll_instance(
    index: usize,
    instance_id: String,
    first: Instant,
    second: Instant,
    schedule: Schedule,
    client: Arc<RpcClient>,
    clock: Arc<dyn Clock>,
    permits: Arc<Semaphore>,
    outcomes: mpsc::Sender<Outcome>,
) {
    let mut scheduled = first;
    for round in 0u64.. {
        tokio::time::sleep_until(scheduled).await;
        let Ok(permit) = permits.acquire().await else {
            return;
        };
        let started = Instant::now();
        let polled_at = clock.now();
        let window = Window::ending_at(polled_at, schedule.lookback);
        // A poll, every page and retry included, ends before the next one
        // is due.
        let deadline = std::time::Instant::now()
            .checked_add(schedule.interval)
            .unwrap_or_else(|| std::time::Instant::now() + Duration::from_secs(86_400));
        let result = kvstore::describe_backups(&client, &instance_id, &window, deadline).await;
        drop(permit);
        let finished = Instant::now();
        let outcome = Outcome {
            index,
            round,
            started,
            finished,
            polled_at,
            result,
        };
        if outcomes.send(outcome).await.is_err() {
            return;
        }
        scheduled = next_start(round, scheduled, second, schedule.interval, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::BackupSummary;

    #[test]
    fn polls_are_spread_evenly_over_the_interval() {
        let minute = Duration::from_secs(60);
        let offsets: Vec<u64> = (0..4)
            .map(|i| spread_offset(minute, i, 4).as_secs())
            .collect();
        assert_eq!(offsets, vec![0, 15, 30, 45]);
        assert_eq!(spread_offset(minute, 0, 1), Duration::ZERO);
    }

    #[test]
    fn polls_follow_the_plan_without_drift_or_bursts() {
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        let second = t0 + minute + Duration::from_secs(15);
        // After the first pass: the spread slot.
        assert_eq!(
            next_start(0, t0, second, minute, t0 + Duration::from_secs(1)),
            second
        );
        // Then every interval after the planned start, however long the poll took.
        assert_eq!(
            next_start(1, second, second, minute, second + Duration::from_secs(20)),
            second + minute
        );
        // A poll that overran its slot: the next starts now, not in a burst.
        let late = second + minute * 3;
        assert_eq!(next_start(1, second, second, minute, late), late);
    }

    #[test]
    fn a_failed_poll_keeps_the_last_known_facts() {
        let t0 = Utc::now();
        let ok = apply(None, "r", t0, Ok(vec![]));
        assert!(ok.last_poll_success);
        let failed = apply(
            Some(&ok),
            "r",
            t0 + chrono::Duration::minutes(5),
            Err(ApiError::Http { status: 503 }),
        );
        assert!(!failed.last_poll_success);
        assert_eq!(failed.last_success_poll_at, Some(t0));
        assert_eq!(failed.summary, ok.summary);
        assert_eq!(failed.last_error.as_deref(), Some("http_503"));
        let never = apply(
            None,
            "r",
            t0,
            Err(ApiError::Timeout(Duration::from_secs(1))),
        );
        assert_eq!(never.summary, None::<BackupSummary>);
        assert_eq!(never.last_success_poll_at, None);
    }
}
