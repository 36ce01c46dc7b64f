//! One discovery round of an account, and the loop that repeats it every
//! `--discovery.interval`: the region list (DescribeRegions, for `all`),
//! then per region every instance (DescribeInstances, with the tags) and
//! the static instances not found that way (DescribeInstances with
//! `InstanceIds`, 30 a call). A region whose calls fail keeps what the last
//! good round found there.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Account, AccountState, DiscoveryStatus, ProductState};
use crate::aliyun::ApiError;
use crate::clock::Clock;
use crate::config::{ProductConfig, Regions};
use crate::model::InstanceInfo;
use crate::products::kvstore::{self, InstanceQuery, RegionInfo, MAX_IDS_PER_CALL};
use crate::products::Product;

/// A finished round: the account, the generation of its loop (so that a
/// late result of a replaced account is ignored), and the new state.
pub struct RoundResult {
    pub account: Arc<str>,
    pub generation: u64,
    pub state: Arc<AccountState>,
}

/// Runs rounds for ever (until aborted): the first at once, then every
/// `interval` after the start of the previous one.
pub async fn run(
    account: Arc<Account>,
    mut state: AccountState,
    generation: u64,
    interval: Duration,
    clock: Arc<dyn Clock>,
    results: mpsc::Sender<RoundResult>,
) {
    loop {
        let started = Instant::now();
        // A round ends before the next is due, retries included.
        state = round(&account, &state, clock.as_ref(), started + interval).await;
        let result = RoundResult {
            account: account.name.clone(),
            generation,
            state: Arc::new(state.clone()),
        };
        if results.send(result).await.is_err() {
            return;
        }
        tokio::time::sleep_until((started + interval).max(Instant::now())).await;
    }
}

/// One round: the previous state in, the next out.
pub async fn round(
    account: &Account,
    previous: &AccountState,
    clock: &dyn Clock,
    deadline: Instant,
) -> AccountState {
    let started = Instant::now();
    let mut next = previous.clone();
    next.rounds += 1;

    // The region list of `all`, asked once for every product that wants it.
    let any_all = account
        .config
        .products
        .values()
        .any(|p| matches!(p.regions, Regions::All));
    if any_all {
        let result = kvstore::describe_regions(&account.regions_client(), deadline).await;
        let status = next
            .region_list
            .get_or_insert_with(DiscoveryStatus::default);
        status.record(result.is_ok(), clock.now());
        match result {
            Ok(list) => next.all_regions = Some(list),
            Err(e) => log_failure(account, Product::Redis, "all", "DescribeRegions", &e),
        }
    }
    // A product no longer configured is forgotten, with its instances.
    next.products
        .retain(|product, _| account.config.products.contains_key(product));
    let mut queries = 0usize;
    for (&product, config) in &account.config.products {
        let previous_homes = previous
            .products
            .get(&product)
            .map(|p| p.static_homes.clone())
            .unwrap_or_default();
        let all_regions = next.all_regions.clone();
        let state = next.products.entry(product).or_default();
        queries += product_round(
            account,
            product,
            config,
            all_regions.as_deref(),
            &previous_homes,
            state,
            clock,
            deadline,
        )
        .await;
    }
    let regions = || next.products.values().flat_map(|p| p.regions.values());
    let instances: usize = regions().map(|r| r.instances.len()).sum();
    let failed = regions().filter(|r| !r.status.success).count()
        + usize::from(next.region_list.as_ref().is_some_and(|s| !s.success));
    tracing::info!(
        account = %account.name,
        regions = regions().count(),
        instances,
        failed_regions = failed,
        queries,
        duration_ms = started.elapsed().as_millis() as u64,
        "discovery round finished"
    );
    next
}

/// One product's part of a round: its regions, listed when discovery is
/// on, and its static instances looked up. Returns the calls made.
#[allow(clippy::too_many_arguments)]
async fn product_round(
    account: &Account,
    product: Product,
    config: &ProductConfig,
    all_regions: Option<&[RegionInfo]>,
    previous_homes: &BTreeMap<String, String>,
    next: &mut ProductState,
    clock: &dyn Clock,
    deadline: Instant,
) -> usize {
    // The regions to visit, with the endpoint DescribeRegions gave.
    let mut regions: Vec<(String, Option<String>)> = match &config.regions {
        Regions::List(list) => list.iter().map(|r| (r.clone(), None)).collect(),
        Regions::All => all_regions
            .into_iter()
            .flatten()
            .map(|r| (r.region_id.clone(), r.endpoint_host.clone()))
            .collect(),
    };
    if let Some(home) = &config.static_region {
        if !regions.iter().any(|(r, _)| r == home) {
            regions.push((home.clone(), None));
        }
    }
    // A region no longer visited (left the config or the region list) is
    // forgotten, with its instances.
    next.regions
        .retain(|region, _| regions.iter().any(|(r, _)| r == region));

    let listed_regions: Vec<&str> = match (&config.discovery, &config.regions) {
        (None, _) => Vec::new(),
        (Some(_), Regions::All) => regions.iter().map(|(r, _)| r.as_str()).collect(),
        (Some(_), Regions::List(list)) => list.iter().map(String::as_str).collect(),
    };
    let tags = config.discovery.as_ref().map_or(&[][..], |d| &d.tags[..]);
    let mut queries = 0usize;
    let mut found_statics: Vec<&str> = Vec::new();
    for (region, host) in &regions {
        let client = account.client_for(product, region, host.as_deref());
        let mut found: BTreeMap<Arc<str>, Arc<InstanceInfo>> = BTreeMap::new();
        let mut ok = true;
        if listed_regions.contains(&region.as_str()) {
            let query = InstanceQuery {
                region_id: region,
                instance_ids: &[],
                tags,
            };
            queries += 1;
            match product.describe_instances(&client, &query, deadline).await {
                Ok(list) => found.extend(
                    list.into_iter()
                        .map(|i| (i.instance_id.clone(), Arc::new(i))),
                ),
                Err(e) => {
                    ok = false;
                    log_failure(account, product, region, product.discovery_action(), &e);
                }
            }
        }
        // Static instances: looked up where they are said to be or were
        // found before, else in every region until found; tags do not
        // filter them.
        let wanted: Vec<String> = config
            .instance_ids
            .iter()
            .filter(
                |id| match (&config.static_region, previous_homes.get(*id)) {
                    (Some(home), _) | (None, Some(home)) => home == region,
                    (None, None) => !found_statics.contains(&id.as_str()),
                },
            )
            .filter(|id| !found.contains_key(id.as_str()))
            .cloned()
            .collect();
        for chunk in wanted.chunks(MAX_IDS_PER_CALL) {
            let query = InstanceQuery {
                region_id: region,
                instance_ids: chunk,
                tags: &[],
            };
            queries += 1;
            match product.describe_instances(&client, &query, deadline).await {
                Ok(list) => found.extend(
                    list.into_iter()
                        .filter(|i| chunk.iter().any(|c| **c == *i.instance_id))
                        .map(|i| (i.instance_id.clone(), Arc::new(i))),
                ),
                Err(e) => {
                    ok = false;
                    log_failure(account, product, region, product.discovery_action(), &e);
                }
            }
        }
        for id in &config.instance_ids {
            if found.contains_key(id.as_str()) {
                found_statics.push(id);
                if config.static_region.is_none() {
                    next.static_homes.insert(id.clone(), region.clone());
                }
            }
        }
        let state = next.regions.entry(region.clone()).or_default();
        state.status.record(ok, clock.now());
        if ok {
            state.instances = found;
        } else {
            // Keep the last known list, plus anything this round did find.
            state.instances.extend(found);
        }
    }
    let missing: Vec<&String> = config
        .instance_ids
        .iter()
        .filter(|id| !found_statics.contains(&id.as_str()))
        .collect();
    if !missing.is_empty() {
        tracing::warn!(
            account = %account.name,
            product = product.label(),
            instances = ?missing,
            "static instances not found by discovery in the account's regions"
        );
    }
    queries
}

fn log_failure(account: &Account, product: Product, region: &str, action: &str, error: &ApiError) {
    tracing::warn!(
        account = %account.name,
        product = product.label(),
        region_id = region,
        action,
        code = %error.code_label(),
        request_id = error.request_id().unwrap_or("-"),
        error = %error,
        "discovery failed; keeping the last known instances of the region"
    );
}
