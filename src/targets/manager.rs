//! The task that owns every account's discovery state: it starts one
//! discovery loop per account, folds each finished round into a new
//! `TargetSet` for the poller, and applies reloads: an account whose config
//! did not change keeps its loop, clients and state; a changed one starts
//! from what its old state still covers, so its instances keep their series.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{AbortHandle, JoinSet};

use super::discovery::{self, RoundResult};
use super::{assemble, Account, AccountState, Shard, TargetSet};
use crate::clock::Clock;
use crate::config::AccountConfig;

/// Builds an account's runtime: credentials (and role), rate limit, clients.
pub type BuildAccount = Arc<
    dyn Fn(AccountConfig) -> Pin<Box<dyn Future<Output = Result<Arc<Account>, String>> + Send>>
        + Send
        + Sync,
>;

/// Asks the manager to switch to new accounts; the answer says whether it did.
pub struct Reload {
    pub accounts: Vec<AccountConfig>,
    pub reply: oneshot::Sender<Result<String, String>>,
}

pub struct ManagerSettings {
    pub discovery_interval: Duration,
    pub poll_interval: Duration,
    pub shard: Shard,
}

struct Entry {
    account: Arc<Account>,
    state: Arc<AccountState>,
    generation: u64,
    task: AbortHandle,
}

/// Runs until `shutdown`; an error when a discovery loop died (a bug), so
/// that the exporter stops instead of serving a set that never changes.
pub async fn run(
    accounts: Vec<Arc<Account>>,
    build: BuildAccount,
    settings: ManagerSettings,
    clock: Arc<dyn Clock>,
    publish: watch::Sender<Arc<TargetSet>>,
    mut reloads: mpsc::Receiver<Reload>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let (results_tx, mut results) = mpsc::channel::<RoundResult>(16);
    // Dropping the set (when this function returns) aborts every loop.
    let mut tasks = JoinSet::new();
    let mut generation = 0u64;
    let mut spawn = |tasks: &mut JoinSet<()>, account: &Arc<Account>, state: AccountState| {
        generation += 1;
        let task = tasks.spawn(discovery::run(
            account.clone(),
            state,
            generation,
            settings.discovery_interval,
            clock.clone(),
            results_tx.clone(),
        ));
        (generation, task)
    };
    let mut entries: Vec<Entry> = accounts
        .into_iter()
        .map(|account| {
            let (generation, task) = spawn(&mut tasks, &account, AccountState::default());
            Entry {
                account,
                state: Arc::new(AccountState::default()),
                generation,
                task,
            }
        })
        .collect();
    let publish_set = |entries: &[Entry]| {
        let pairs: Vec<_> = entries
            .iter()
            .map(|e| (e.account.clone(), e.state.clone()))
            .collect();
        let set = assemble(&pairs, settings.shard);
        publish.send_replace(Arc::new(set));
    };
    publish_set(&entries);
    for entry in &entries {
        check_capacity(&entry.account, &publish.borrow(), settings.poll_interval);
    }

    loop {
        tokio::select! {
            Some(result) = results.recv() => {
                let mut changed = Vec::new();
                let mut next = Some(result);
                // Coalesce rounds that finished together into one set.
                while let Some(result) = next {
                    if let Some(entry) = entries
                        .iter_mut()
                        .find(|e| e.account.name == result.account && e.generation == result.generation)
                    {
                        entry.state = result.state;
                        changed.push(entry.account.clone());
                    }
                    next = results.try_recv().ok();
                }
                publish_set(&entries);
                for account in changed {
                    check_capacity(&account, &publish.borrow(), settings.poll_interval);
                }
            }
            Some(reload) = reloads.recv() => {
                let answer = apply_reload(&mut entries, reload.accounts, &build, &mut tasks, &mut spawn).await;
                if answer.is_ok() {
                    publish_set(&entries);
                }
                let _ = reload.reply.send(answer);
            }
            Some(ended) = tasks.join_next() => {
                if let Err(e) = ended {
                    if e.is_panic() {
                        return Err(format!("a discovery loop panicked: {e}"));
                    }
                }
            }
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return Ok(());
                }
            }
        }
    }
}

/// Switches to `configs`: all accounts are built first, so that a bad one
/// leaves everything as it was.
async fn apply_reload(
    entries: &mut Vec<Entry>,
    configs: Vec<AccountConfig>,
    build: &BuildAccount,
    tasks: &mut JoinSet<()>,
    spawn: &mut impl FnMut(&mut JoinSet<()>, &Arc<Account>, AccountState) -> (u64, AbortHandle),
) -> Result<String, String> {
    enum Plan {
        Keep(usize),
        Start(Arc<Account>, AccountState),
    }
    let mut plans = Vec::new();
    for config in configs {
        let old = entries
            .iter()
            .position(|e| e.account.name.as_ref() == config.name);
        match old {
            Some(i) if entries[i].account.config == config => plans.push(Plan::Keep(i)),
            _ => {
                let state = old
                    .map(|i| entries[i].state.carried_over(&config))
                    .unwrap_or_default();
                let name = config.name.clone();
                let account = build(config)
                    .await
                    .map_err(|e| format!("account {name:?}: {e}"))?;
                plans.push(Plan::Start(account, state));
            }
        }
    }
    let kept: Vec<usize> = plans
        .iter()
        .filter_map(|p| match p {
            Plan::Keep(i) => Some(*i),
            Plan::Start(..) => None,
        })
        .collect();
    let mut old: Vec<Option<Entry>> = std::mem::take(entries).into_iter().map(Some).collect();
    for (i, entry) in old.iter().enumerate() {
        if let (false, Some(entry)) = (kept.contains(&i), entry) {
            entry.task.abort();
        }
    }
    let (mut started, mut unchanged) = (0, 0);
    for plan in plans {
        match plan {
            Plan::Keep(i) => {
                if let Some(entry) = old[i].take() {
                    unchanged += 1;
                    entries.push(entry);
                }
            }
            Plan::Start(account, state) => {
                started += 1;
                let (generation, task) = spawn(tasks, &account, state.clone());
                entries.push(Entry {
                    account,
                    state: Arc::new(state),
                    generation,
                    task,
                });
            }
        }
    }
    Ok(format!(
        "{} accounts: {unchanged} unchanged, {started} new or changed",
        entries.len()
    ))
}

/// Says so when the account's rate limit cannot poll all its instances
/// once per poll interval.
fn check_capacity(account: &Account, set: &TargetSet, poll_interval: Duration) {
    let Some(rate) = account.rate_limit() else {
        return;
    };
    let instances = set
        .targets
        .iter()
        .filter(|(k, t)| k.account == account.name && t.polled)
        .count();
    let capacity = rate * poll_interval.as_secs_f64();
    if instances as f64 > capacity {
        tracing::warn!(
            account = %account.name,
            instances,
            rate_limit = rate,
            poll_interval = ?poll_interval,
            at_most = capacity as u64,
            "the rate limit cannot poll every instance once per poll interval; raise --aliyun.rate-limit (or the account's rate_limit) or --poll.interval"
        );
    }
}
