//! The polling loop. One coordinator owns all mutable state: the schedule
//! of every watched instance, at most `--poll.concurrency` polls in flight,
//! and each instance's last facts. It reconciles the live target set (a new
//! key is polled at once, a removed one stops and its series vanish at the
//! next publish, which is immediate) and publishes immutable snapshots,
//! coalescing the polls that finish close together into one swap, so that
//! publishing costs time linear in the instances, not in instances × polls.
//! The HTTP side only ever reads snapshots: a scrape never waits for the API.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use crate::aliyun::{ApiError, RpcClient};
use crate::clock::Clock;
use crate::model::{Backup, BackupApi, InstanceInfo};
use crate::policy::{self, BackupPolicy};
use crate::products::{self, PollTarget, Window};
use crate::snapshot::{screen, summarize, Implausible, InstanceView, Snapshot};
use crate::targets::shard::fnv1a64;
use crate::targets::{InstanceKey, TargetSet};

/// What the poller needs to know.
#[derive(Debug, Clone, Copy)]
pub struct PollerSettings {
    pub interval: Duration,
    pub lookback: Duration,
    pub concurrency: usize,
    /// How often an instance's backup policy is read again (the discovery
    /// interval: policies change about as often as the fleet does).
    pub policy_every: Duration,
    /// `--backup.grace` and `--backup.max-age`.
    pub expectation: crate::config::BackupExpectation,
}

/// Finished polls are published together when they come closer than this:
/// a snapshot swap copies the map of all instances, and fresher than this
/// matters to nobody (Prometheus scrapes every 15 s or more).
pub const PUBLISH_EVERY: Duration = Duration::from_millis(200);
/// How often, at most, freed memory is given back while polls finish.
const GIVE_BACK_EVERY: Duration = Duration::from_secs(1);

/// The result of one poll of one instance.
struct Outcome {
    key: InstanceKey,
    poll_id: u64,
    started: Instant,
    finished: Instant,
    polled_at: DateTime<Utc>,
    result: Result<Vec<Backup>, ApiError>,
    /// The call that answered (or failed last).
    api: BackupApi,
    /// The planned call answered that it does not apply; `api` is the other.
    switched: bool,
    /// The backup policy, when it was due to be read.
    policy: Option<Result<BackupPolicy, ApiError>>,
    /// What the backups' answer held that cannot be true.
    implausible: Implausible,
}

/// One polled instance's schedule.
struct Entry {
    client: Arc<RpcClient>,
    /// When its next poll is due; `None` while one is in flight.
    due: Option<Instant>,
    /// When its first poll after the one at joining is due.
    second: Instant,
    /// Planned start of its latest poll.
    scheduled: Instant,
    /// Polls started so far.
    round: u64,
    /// The poll in flight, to abort when the instance leaves.
    in_flight: Option<(u64, AbortHandle)>,
    /// Still owes a poll to the current pass (see `Pass`).
    owed: bool,
    /// What the target set says to call, and what is called: they differ
    /// once a call answered that it does not apply to the instance.
    planned_api: BackupApi,
    api: BackupApi,
    /// The switch was logged (once per instance).
    switch_logged: bool,
    /// When its backup policy was last asked for.
    policy_asked: Option<Instant>,
    /// Its policy cannot be read right now (logged once per streak).
    policy_failing: bool,
    /// Implausible backups were logged for it (once per instance).
    implausible_logged: bool,
}

/// A pass over every instance watched when it began, for
/// `aliyun_backup_poll_cycle_duration_seconds`: from the first start to the
/// last finish of one poll of each.
#[derive(Default)]
struct Pass {
    began: Option<Instant>,
    owed: usize,
    first_start: Option<Instant>,
    last_finish: Option<Instant>,
}

/// Runs until `shutdown` turns true. An error when a poll panicked or the
/// target set went away (the exporter must not go on with frozen facts).
pub async fn run(
    settings: PollerSettings,
    mut targets: watch::Receiver<Arc<TargetSet>>,
    clock: Arc<dyn Clock>,
    publish: watch::Sender<Arc<Snapshot>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut state = State {
        settings,
        clock,
        entries: HashMap::new(),
        schedule: BinaryHeap::new(),
        views: BTreeMap::new(),
        polls: JoinSet::new(),
        next_poll_id: 0,
        pass: Pass::default(),
        cycle_seconds: None,
        ready: false,
        unpolled: 0,
        published: 0,
        targets: targets.borrow_and_update().clone(),
    };
    state.reconcile(Instant::now());
    publish.send_replace(state.snapshot());
    let mut last_publish = Instant::now();
    let mut last_give_back = last_publish;
    let mut dirty = false;

    loop {
        let now = Instant::now();
        let due = state
            .next_due()
            .filter(|_| state.polls.len() < state.settings.concurrency);
        let publish_at = dirty.then_some(last_publish + PUBLISH_EVERY);
        let wake = [due, publish_at].into_iter().flatten().min();
        tokio::select! {
            Some(joined) = state.polls.join_next() => match joined {
                Ok(outcome) => {
                    state.apply(outcome);
                    dirty = true;
                }
                Err(e) if e.is_cancelled() => {}
                Err(e) => {
                    tracing::error!(error = %e, "a poll panicked; stopping the poll loop");
                    return Err(format!("a poll panicked: {e}"));
                }
            },
            changed = targets.changed() => {
                if changed.is_err() {
                    return if *shutdown.borrow() { Ok(()) } else { Err("the target set is gone".into()) };
                }
                state.targets = targets.borrow_and_update().clone();
                state.reconcile(now);
                // Removed instances vanish at once.
                publish.send_replace(state.snapshot());
                last_publish = Instant::now();
                dirty = false;
            }
            _ = sleep_until_some(wake) => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    tracing::debug!("poller stopped");
                    return Ok(());
                }
            }
        }
        state.start_due_polls(Instant::now());
        if dirty && Instant::now() >= last_publish + PUBLISH_EVERY {
            publish.send_replace(state.snapshot());
            last_publish = Instant::now();
            dirty = false;
            // The polls' answers are dropped by now: their memory, free
            // among the instances' state, back to the kernel.
            if last_publish >= last_give_back + GIVE_BACK_EVERY {
                last_give_back = last_publish;
                tokio::task::spawn_blocking(crate::memory::give_back);
            }
        }
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

struct State {
    settings: PollerSettings,
    clock: Arc<dyn Clock>,
    entries: HashMap<InstanceKey, Entry>,
    /// Due times; an item whose entry is gone or has another due time is
    /// stale and skipped.
    schedule: BinaryHeap<Reverse<(Instant, InstanceKey)>>,
    views: BTreeMap<InstanceKey, Arc<InstanceView>>,
    polls: JoinSet<Outcome>,
    next_poll_id: u64,
    pass: Pass,
    cycle_seconds: Option<f64>,
    /// Latched: once ready, a newly discovered instance does not take the
    /// replica out of its Service.
    ready: bool,
    /// Polled instances without a view yet (kept as a count, so that
    /// readiness is not a scan of every instance after every poll).
    unpolled: usize,
    /// Snapshots published so far.
    published: u64,
    targets: Arc<TargetSet>,
}

impl State {
    /// Starts polling new keys, stops removed ones (and instances that went
    /// back to not being polled), and points the others at their current
    /// client (an account's changed config gives it new ones).
    fn reconcile(&mut self, now: Instant) {
        let targets = self.targets.clone();
        let gone: Vec<InstanceKey> = self
            .entries
            .keys()
            .filter(|k| !targets.targets.get(*k).is_some_and(|t| t.polled))
            .cloned()
            .collect();
        for key in gone {
            if let Some(entry) = self.entries.remove(&key) {
                if let Some((_, handle)) = entry.in_flight {
                    handle.abort();
                }
                if entry.owed {
                    self.pass.owed -= 1;
                }
            }
            // Views exist only for entries; Creating instances have none.
            if self.views.remove(&key).is_none() {
                self.unpolled -= 1;
            }
        }
        for (key, target) in targets.targets.iter().filter(|(_, t)| t.polled) {
            match self.entries.get_mut(key) {
                Some(entry) => {
                    if !Arc::ptr_eq(&entry.client, &target.client) {
                        entry.client = target.client.clone();
                    }
                    if entry.planned_api != target.backup_api {
                        entry.planned_api = target.backup_api;
                        entry.api = target.backup_api;
                        entry.switch_logged = false;
                    }
                }
                None => {
                    let offset = spread_offset(self.settings.interval, &key.instance_id);
                    self.entries.insert(
                        key.clone(),
                        Entry {
                            client: target.client.clone(),
                            due: Some(now),
                            second: now + self.settings.interval + offset,
                            scheduled: now,
                            round: 0,
                            in_flight: None,
                            owed: false,
                            planned_api: target.backup_api,
                            api: target.backup_api,
                            switch_logged: false,
                            policy_asked: None,
                            policy_failing: false,
                            implausible_logged: false,
                        },
                    );
                    self.schedule.push(Reverse((now, key.clone())));
                    self.unpolled += 1;
                }
            }
        }
        self.finish_pass_if_done(now);
        self.check_ready();
    }

    /// The earliest due time, dropping stale items.
    fn next_due(&mut self) -> Option<Instant> {
        while let Some(Reverse((due, key))) = self.schedule.peek() {
            if self.entries.get(key).is_some_and(|e| e.due == Some(*due)) {
                return Some(*due);
            }
            self.schedule.pop();
        }
        None
    }

    /// Starts every poll that is due, up to the concurrency.
    fn start_due_polls(&mut self, now: Instant) {
        while self.polls.len() < self.settings.concurrency {
            match self.next_due() {
                Some(due) if due <= now => {}
                _ => return,
            }
            let Some(Reverse((_, key))) = self.schedule.pop() else {
                return;
            };
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            entry.due = None;
            entry.round += 1;
            self.next_poll_id += 1;
            let poll_id = self.next_poll_id;
            let read_policy = entry
                .policy_asked
                .is_none_or(|at| now.duration_since(at) >= self.settings.policy_every);
            if read_policy {
                entry.policy_asked = Some(now);
            }
            let info = self.targets.targets.get(&key).and_then(|t| t.info.clone());
            let handle = self.polls.spawn(poll(
                key,
                info,
                poll_id,
                entry.client.clone(),
                entry.api,
                read_policy,
                self.settings,
                self.clock.clone(),
            ));
            entry.in_flight = Some((poll_id, handle));
        }
    }

    /// Folds a finished poll into the instance's view and schedules its next.
    fn apply(&mut self, outcome: Outcome) {
        let Some(entry) = self.entries.get_mut(&outcome.key) else {
            return; // Left the set while the poll was in flight.
        };
        if entry.in_flight.as_ref().map(|(id, _)| *id) != Some(outcome.poll_id) {
            return;
        }
        entry.in_flight = None;
        let now = Instant::now();
        let next = next_start(
            entry.round - 1,
            entry.scheduled,
            entry.second,
            self.settings.interval,
            now,
        );
        entry.scheduled = next;
        entry.due = Some(next);
        self.schedule.push(Reverse((next, outcome.key.clone())));
        if entry.owed && self.pass.began.is_some_and(|b| outcome.started >= b) {
            entry.owed = false;
            self.pass.owed -= 1;
            self.pass.first_start = Some(
                self.pass
                    .first_start
                    .map_or(outcome.started, |s| s.min(outcome.started)),
            );
            self.pass.last_finish = Some(
                self.pass
                    .last_finish
                    .map_or(outcome.finished, |f| f.max(outcome.finished)),
            );
        }
        note_switch(entry, &outcome);
        note_policy(entry, &outcome);
        note_implausible(entry, &outcome);
        let previous = self.views.get(&outcome.key).cloned();
        let view = apply(
            previous.as_deref(),
            &outcome.key,
            Polled {
                at: outcome.polled_at,
                result: outcome.result,
                api: outcome.api,
                policy: outcome.policy.and_then(Result::ok),
                implausible: outcome.implausible,
            },
            self.settings.expectation,
        );
        if self.views.insert(outcome.key, Arc::new(view)).is_none() {
            self.unpolled -= 1;
        }
        self.finish_pass_if_done(now);
        self.check_ready();
    }

    /// Ends the pass once nothing is owed, and begins the next one with
    /// every instance now polled (once per pass: linear).
    fn finish_pass_if_done(&mut self, now: Instant) {
        if self.pass.owed > 0 {
            return;
        }
        if let (Some(start), Some(finish)) = (self.pass.first_start, self.pass.last_finish) {
            self.cycle_seconds = Some((finish - start).as_secs_f64());
        }
        if self.entries.is_empty() {
            self.pass = Pass::default();
            return;
        }
        for entry in self.entries.values_mut() {
            entry.owed = true;
        }
        self.pass = Pass {
            began: Some(now),
            owed: self.entries.len(),
            first_start: None,
            last_finish: None,
        };
    }

    fn check_ready(&mut self) {
        if !self.ready && self.targets.initial_round_done && self.unpolled == 0 {
            self.ready = true;
            tracing::info!(
                instances = self.entries.len(),
                "every instance polled once: ready"
            );
        }
    }

    fn snapshot(&mut self) -> Arc<Snapshot> {
        self.published += 1;
        Arc::new(Snapshot {
            targets: self.targets.clone(),
            instances: self.views.clone(),
            polling: self.entries.len(),
            poll_cycle_seconds: self.cycle_seconds,
            ready: self.ready,
            sequence: self.published - 1,
        })
    }
}

/// One poll: the window up to now, every page, retries included, ending
/// before the next poll of the instance is due; and its backup policy when
/// due, at the same time (a policy that cannot be read never fails the poll).
#[allow(clippy::too_many_arguments)]
async fn poll(
    key: InstanceKey,
    info: Option<Arc<InstanceInfo>>,
    poll_id: u64,
    client: Arc<RpcClient>,
    api: BackupApi,
    read_policy: bool,
    settings: PollerSettings,
    clock: Arc<dyn Clock>,
) -> Outcome {
    let started = Instant::now();
    let polled_at = clock.now();
    let window = Window::ending_at(polled_at, settings.lookback);
    let deadline = started + settings.interval;
    let info = info.as_deref();
    let backups = async {
        match list_backups(&client, api, &key, info, &window, deadline).await {
            // Which call applies is a guess from DescribeInstances: the
            // other one answers if this one says it does not apply.
            Err(e) if products::is_not_applicable(key.product, &e) => (
                list_backups(&client, api.other(), &key, info, &window, deadline).await,
                api.other(),
                true,
            ),
            result => (result, api, false),
        }
    };
    let policy = async {
        if read_policy {
            Some(
                products::describe_backup_policy(&client, key.product, &key.instance_id, deadline)
                    .await,
            )
        } else {
            None
        }
    };
    let ((result, api, switched), policy) = tokio::join!(backups, policy);
    let (result, implausible) = match result {
        Ok(backups) => {
            let (kept, implausible) = screen(backups, window.start, window.end, clock.now());
            (Ok(kept), implausible)
        }
        Err(e) => (Err(e), Implausible::default()),
    };
    Outcome {
        key,
        poll_id,
        started,
        finished: Instant::now(),
        polled_at,
        result,
        api,
        switched,
        policy,
        implausible,
    }
}

async fn list_backups(
    client: &RpcClient,
    api: BackupApi,
    key: &InstanceKey,
    info: Option<&InstanceInfo>,
    window: &Window,
    deadline: Instant,
) -> Result<Vec<Backup>, ApiError> {
    let target = PollTarget {
        instance_id: &key.instance_id,
        region_id: &key.region_id,
        api,
        info,
    };
    products::list_backups(client, key.product, &target, window, deadline).await
}

/// Remembers a switch of call, and says so once per instance.
fn note_switch(entry: &mut Entry, outcome: &Outcome) {
    if !outcome.switched {
        return;
    }
    entry.api = outcome.api;
    if !entry.switch_logged {
        entry.switch_logged = true;
        tracing::warn!(
            account = %outcome.key.account,
            region_id = %outcome.key.region_id,
            instance_id = %outcome.key.instance_id,
            from = outcome.api.other().action(),
            to = outcome.api.action(),
            "the backup call does not apply to this instance; using the other one from now on"
        );
    }
}

/// Logs, once per instance, that its answer held backups that cannot be
/// true (they are counted in its `aliyun_backup_implausible_backups`).
fn note_implausible(entry: &mut Entry, outcome: &Outcome) {
    if outcome.implausible.is_empty() || entry.implausible_logged {
        return;
    }
    entry.implausible_logged = true;
    let key = &outcome.key;
    let reasons: Vec<String> = outcome
        .implausible
        .reasons()
        .map(|(reason, n)| format!("{reason}={n}"))
        .collect();
    tracing::warn!(
        account = %key.account,
        region_id = %key.region_id,
        instance_id = %key.instance_id,
        reasons = %reasons.join(","),
        "backups that cannot be true were set aside (said once per instance)"
    );
}

/// Logs a policy that cannot be read once per streak (a missing RAM
/// permission would otherwise log every instance every round).
fn note_policy(entry: &mut Entry, outcome: &Outcome) {
    let key = &outcome.key;
    match &outcome.policy {
        Some(Err(error)) if !entry.policy_failing => {
            entry.policy_failing = true;
            tracing::warn!(
                account = %key.account,
                region_id = %key.region_id,
                instance_id = %key.instance_id,
                code = %error.code_label(),
                request_id = error.request_id().unwrap_or("-"),
                error = %error,
                "cannot read the backup policy; expecting backups by --backup.max-age (or the last policy read) until it can be"
            );
        }
        Some(Err(error)) => {
            tracing::debug!(instance_id = %key.instance_id, code = %error.code_label(), "backup policy still unreadable");
        }
        Some(Ok(_)) if entry.policy_failing => {
            entry.policy_failing = false;
            tracing::info!(instance_id = %key.instance_id, "backup policy readable again");
        }
        _ => {}
    }
}

/// What one poll brought back, as `apply` takes it.
struct Polled {
    at: DateTime<Utc>,
    result: Result<Vec<Backup>, ApiError>,
    api: BackupApi,
    /// The policy, when it was read this time and could be.
    policy: Option<BackupPolicy>,
    implausible: Implausible,
}

/// The new view of an instance after a poll. A policy read this time
/// replaces the last one; otherwise (not due, or unreadable) the last one
/// stays, as facts do through failed polls.
fn apply(
    previous: Option<&InstanceView>,
    key: &InstanceKey,
    polled: Polled,
    expectation: crate::config::BackupExpectation,
) -> InstanceView {
    let Polled {
        at: polled_at,
        result,
        api: backup_api,
        policy,
        implausible,
    } = polled;
    let policy = policy
        .map(BackupPolicy::shared)
        .or_else(|| previous.and_then(|p| p.policy.clone()));
    let (expected_max_age, expected_source) =
        policy::expected_max_age(policy.as_deref(), expectation.grace, expectation.max_age);
    match result {
        Ok(backups) => {
            let summary = summarize(&backups);
            tracing::debug!(account = %key.account, region_id = %key.region_id, instance_id = %key.instance_id, backups = backups.len(), "poll succeeded");
            InstanceView {
                last_poll_success: true,
                last_success_poll_at: Some(polled_at),
                summary: Some(summary),
                last_error: None,
                backup_api,
                policy,
                expected_max_age,
                expected_source,
                implausible,
            }
        }
        Err(error) => {
            tracing::warn!(
                account = %key.account,
                region_id = %key.region_id,
                instance_id = %key.instance_id,
                action = backup_api.action(),
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
                backup_api,
                policy,
                expected_max_age,
                expected_source,
                implausible: previous.map(|p| p.implausible).unwrap_or_default(),
            }
        }
    }
}

/// Where in the interval an instance is polled after its first poll: a
/// stable fraction of the interval from its ID, so that instances spread
/// over the interval however and whenever they joined (mixed, so that it
/// does not follow the shard hash of the same ID).
fn spread_offset(interval: Duration, instance_id: &str) -> Duration {
    let mut x = fnv1a64(instance_id.as_bytes());
    // splitmix64's finaliser.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    interval.mul_f64((x >> 11) as f64 / (1u64 << 53) as f64)
}

/// When poll `round + 1` of an instance starts: at `second` after the first
/// poll, then an interval after the planned start of the previous one. No
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::BackupSummary;

    #[test]
    fn polls_spread_over_the_interval() {
        let minute = Duration::from_secs(60);
        let offsets: Vec<Duration> = (0..10_000)
            .map(|i| spread_offset(minute, &format!("r-bp1{i:010x}")))
            .collect();
        assert!(offsets.iter().all(|o| *o < minute));
        // Every 6 s slice of the minute holds close to a tenth of them.
        let mut slices = [0usize; 10];
        for o in &offsets {
            slices[(o.as_secs_f64() / 6.0) as usize] += 1;
        }
        for n in slices {
            assert!(n.abs_diff(1000) < 100, "{slices:?}");
        }
        // Stable: the same ID, the same slot.
        assert_eq!(spread_offset(minute, "r-a"), spread_offset(minute, "r-a"));
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

    fn key() -> InstanceKey {
        InstanceKey::new("default".into(), "redis", "cn-hangzhou".into(), "r".into())
    }

    const EXPECT: crate::config::BackupExpectation = crate::config::BackupExpectation {
        max_age: Duration::from_secs(36 * 3600),
        grace: Duration::from_secs(2 * 3600),
    };

    fn view(
        previous: Option<&InstanceView>,
        at: DateTime<Utc>,
        result: Result<Vec<Backup>, ApiError>,
        policy: Option<BackupPolicy>,
    ) -> InstanceView {
        apply(
            previous,
            &key(),
            Polled {
                at,
                result,
                api: BackupApi::DescribeBackups,
                policy,
                implausible: Implausible::default(),
            },
            EXPECT,
        )
    }

    #[test]
    fn a_failed_poll_keeps_the_last_known_facts() {
        let t0 = Utc::now();
        let ok = view(None, t0, Ok(vec![]), None);
        assert!(ok.last_poll_success);
        let failed = view(
            Some(&ok),
            t0 + chrono::Duration::minutes(5),
            Err(ApiError::Http { status: 503 }),
            None,
        );
        assert!(!failed.last_poll_success);
        assert_eq!(failed.last_success_poll_at, Some(t0));
        assert_eq!(failed.summary, ok.summary);
        assert_eq!(failed.last_error.as_deref(), Some("http_503"));
        let never = view(
            None,
            t0,
            Err(ApiError::Timeout(Duration::from_secs(1))),
            None,
        );
        assert_eq!(never.summary, None::<BackupSummary>);
        assert_eq!(never.last_success_poll_at, None);
    }

    #[test]
    fn the_expected_age_follows_the_last_policy_read() {
        use crate::policy::{ExpectationSource, Weekdays};
        let t0 = Utc::now();
        let twice_weekly = BackupPolicy {
            days: Weekdays::parse("Monday,Thursday").unwrap(),
            window: "05:00Z-06:00Z".into(),
            retention_days: Some(7),
            log_backup_enabled: Some(true),
        };
        // Never read: the default.
        let unknown = view(None, t0, Ok(vec![]), None);
        assert_eq!(
            (unknown.expected_max_age, unknown.expected_source),
            (EXPECT.max_age, ExpectationSource::Default)
        );
        // Read: 4 days + the 1 h window + 2 h of grace.
        let known = view(Some(&unknown), t0, Ok(vec![]), Some(twice_weekly.clone()));
        assert_eq!(
            (known.expected_max_age, known.expected_source),
            (
                Duration::from_secs(4 * 86400 + 3 * 3600),
                ExpectationSource::Policy
            )
        );
        // Not read again (not due, or unreadable), and a failed poll: kept.
        let later = view(Some(&known), t0, Err(ApiError::Http { status: 500 }), None);
        assert_eq!(later.policy.as_deref(), Some(&twice_weekly));
        assert_eq!(later.expected_source, ExpectationSource::Policy);
    }
}
