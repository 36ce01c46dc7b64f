//! The live set of instances to watch, between the config and the poller.
//!
//! - `mod` (here): `InstanceKey`, an account's runtime (`Account`), what
//!   discovery learned per account (`AccountState`), and the pure assembly
//!   of all of it into one `TargetSet`.
//! - `discovery`: one discovery round of an account (DescribeRegions,
//!   DescribeInstances), and the loop that repeats it.
//! - `manager`: the task that owns every account's state, reloads
//!   accounts, and publishes each new `TargetSet`.
//! - `shard`: which instances this replica owns.
//!
//! A failed round never drops an instance: the last known list of a region
//! stays until a round in that region succeeds again.

pub mod discovery;
pub mod manager;
pub mod shard;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::aliyun::{endpoint, RpcClient};
use crate::config::{AccountConfig, ProductConfig, Regions};
use crate::model::{interned, BackupApi, InstanceInfo};
use crate::products::kvstore::RegionInfo;
use crate::products::Product;
#[cfg(test)]
use crate::products::REDIS;
pub use shard::Shard;

/// One watched instance. Ordered by account, product, region, instance.
/// Shared: the target set, the poller, the snapshot and the rendered
/// series each key their instances by it, so a copy is one pointer (at
/// 10,000 instances, four strings per copy were megabytes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceKey(Arc<KeyParts>);

/// What names a watched instance (`InstanceKey` derefs to it).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyParts {
    pub account: Arc<str>,
    pub product: &'static str,
    pub region_id: Arc<str>,
    pub instance_id: Arc<str>,
}

impl InstanceKey {
    pub fn new(
        account: Arc<str>,
        product: &'static str,
        region_id: Arc<str>,
        instance_id: Arc<str>,
    ) -> Self {
        InstanceKey(Arc::new(KeyParts {
            account,
            product,
            region_id,
            instance_id,
        }))
    }
}

impl std::ops::Deref for InstanceKey {
    type Target = KeyParts;

    fn deref(&self) -> &KeyParts {
        &self.0
    }
}

/// An (account, product, region) triple: where discovery runs.
pub type RegionKey = (Arc<str>, &'static str, Arc<str>);

/// The `region_id` of the DescribeRegions call of `--discovery.regions=all`.
pub const ALL_REGIONS: &str = "all";

/// An account at run time: its config and its API clients (one per product
/// and region, built once and shared, all with the account's credentials
/// and rate limit).
pub struct Account {
    pub name: Arc<str>,
    pub config: AccountConfig,
    /// A client for the account; `for_endpoint` derives the regional ones.
    template: RpcClient,
    clients: Mutex<HashMap<(Product, String), Arc<RpcClient>>>,
}

impl Account {
    pub fn new(config: AccountConfig, template: RpcClient) -> Account {
        Account {
            name: config.name.as_str().into(),
            config,
            template,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `product` in `region`, at the account's endpoint
    /// override, else at the host DescribeRegions named (R-kvstore's
    /// only), else at the product's host for the region.
    pub fn client_for(
        &self,
        product: Product,
        region: &str,
        region_host: Option<&str>,
    ) -> Arc<RpcClient> {
        let region_host = region_host.filter(|_| product == Product::Redis);
        let endpoint = match (self.config.endpoint.as_deref(), region_host) {
            (None, None) => product.endpoint(region),
            (url, host) => endpoint_for(url, region, host),
        };
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let key = (product, region.to_string());
        if let Some(client) = clients.get(&key).filter(|c| c.endpoint() == endpoint) {
            return client.clone();
        }
        let client = Arc::new(
            self.template
                .for_endpoint(endpoint, region.into())
                .with_version(product.api_version()),
        );
        clients.insert(key, client.clone());
        client
    }

    /// The client for DescribeRegions: the central host (or the override).
    pub fn regions_client(&self) -> Arc<RpcClient> {
        let endpoint = self
            .config
            .endpoint
            .clone()
            .unwrap_or_else(|| endpoint::KVSTORE_CENTRAL.to_string());
        Arc::new(self.template.for_endpoint(endpoint, ALL_REGIONS.into()))
    }

    /// Requests per second this account may send; `None` is unlimited.
    pub fn rate_limit(&self) -> Option<f64> {
        (self.config.rate_limit > 0.0).then_some(self.config.rate_limit)
    }
}

/// `--aliyun.endpoint` (or the account's `endpoint`) wins over every
/// derived host, DescribeRegions' `RegionEndpoint` included.
pub fn endpoint_for(override_url: Option<&str>, region: &str, region_host: Option<&str>) -> String {
    match (override_url, region_host) {
        (Some(url), _) => url.to_string(),
        (None, Some(host)) => format!("https://{host}"),
        (None, None) => endpoint::kvstore_endpoint(region),
    }
}

/// How the last discovery round of a region (or of the region list) went.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiscoveryStatus {
    pub success: bool,
    pub last_success: Option<DateTime<Utc>>,
}

impl DiscoveryStatus {
    pub fn record(&mut self, ok: bool, now: DateTime<Utc>) {
        self.success = ok;
        if ok {
            self.last_success = Some(now);
        }
    }
}

/// What discovery knows of one region of an account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegionState {
    pub status: DiscoveryStatus,
    /// The instances last found here (discovered, or static ones looked
    /// up), by instance ID; kept through failed rounds.
    pub instances: BTreeMap<Arc<str>, Arc<InstanceInfo>>,
}

/// What discovery knows of one product of an account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProductState {
    pub regions: BTreeMap<String, RegionState>,
    /// Where static instances were found, when their region was not given.
    pub static_homes: BTreeMap<String, String>,
}

/// What discovery knows of one account. A plain value: a round takes the
/// previous one and returns the next.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountState {
    /// The regions of `--discovery.regions=all`, from the last successful
    /// DescribeRegions (R-kvstore's, with its endpoints; the list of every
    /// product whose regions are `all`).
    pub all_regions: Option<Vec<RegionInfo>>,
    /// The DescribeRegions call itself, for `regions: [all]`.
    pub region_list: Option<DiscoveryStatus>,
    pub products: BTreeMap<Product, ProductState>,
    /// Rounds finished (either way).
    pub rounds: u64,
}

impl AccountState {
    /// The state to start a changed account from: what the old config's
    /// rounds learned that the new config still covers, so that instances
    /// that stay watched keep their series until the first new round.
    pub fn carried_over(&self, config: &AccountConfig) -> AccountState {
        let any_all = config
            .products
            .values()
            .any(|p| matches!(p.regions, Regions::All));
        let products = config
            .products
            .iter()
            .filter_map(|(product, wanted)| {
                let old = self.products.get(product)?;
                Some((*product, old.carried_over(wanted)))
            })
            .collect();
        AccountState {
            all_regions: any_all.then(|| self.all_regions.clone()).flatten(),
            region_list: any_all.then(|| self.region_list.clone()).flatten(),
            products,
            // Not a round of the new config: readiness waits for one.
            rounds: 0,
        }
    }
}

impl ProductState {
    fn carried_over(&self, config: &ProductConfig) -> ProductState {
        let wanted = |region: &str| match &config.regions {
            Regions::All => true,
            Regions::List(list) => list.iter().any(|r| r == region),
        } || config.static_region.as_deref() == Some(region);
        let statics: BTreeSet<&str> = config.instance_ids.iter().map(String::as_str).collect();
        let tags = config.discovery.as_ref().map(|d| d.tags.as_slice());
        let regions = self
            .regions
            .iter()
            .filter(|(region, _)| wanted(region))
            .map(|(region, state)| {
                let instances = state
                    .instances
                    .iter()
                    .filter(|(id, info)| {
                        statics.contains(&**id as &str) || tags.is_some_and(|t| info.has_tags(t))
                    })
                    .map(|(id, info)| (id.clone(), info.clone()))
                    .collect();
                let state = RegionState {
                    status: state.status.clone(),
                    instances,
                };
                (region.clone(), state)
            })
            .collect();
        ProductState {
            regions,
            static_homes: self
                .static_homes
                .iter()
                .filter(|(id, _)| statics.contains(id.as_str()))
                .map(|(id, home)| (id.clone(), home.clone()))
                .collect(),
        }
    }
}

/// One watched instance.
#[derive(Clone)]
pub struct Target {
    /// What DescribeInstances said; `None` until a static instance is found.
    pub info: Option<Arc<InstanceInfo>>,
    /// Everything but instances in `Creating` is polled.
    pub polled: bool,
    /// The client its polls go through.
    pub client: Arc<RpcClient>,
    /// The call that lists its backups: the config file's override, else
    /// what DescribeInstances says of it, else DescribeBackups.
    pub backup_api: BackupApi,
}

/// Everything this replica watches, swapped whole.
#[derive(Clone, Default)]
pub struct TargetSet {
    pub targets: BTreeMap<InstanceKey, Target>,
    /// Every (account, product, region) discovery or a lookup ran in, with
    /// `region_id="all"` for DescribeRegions.
    pub discovery: BTreeMap<RegionKey, DiscoveryStatus>,
    /// Every account has finished its first round.
    pub initial_round_done: bool,
    pub shard: Shard,
    /// Static instances found in none of their account's regions (yet).
    pub unresolved: Vec<(Arc<str>, String)>,
}

impl TargetSet {
    /// Polled instances per (account, product, region); every region that
    /// discovery knows is present, with 0 when it holds none.
    pub fn counts(&self) -> BTreeMap<RegionKey, usize> {
        let mut counts: BTreeMap<RegionKey, usize> = self
            .discovery
            .keys()
            .filter(|(_, _, region)| &**region != ALL_REGIONS)
            .map(|k| (k.clone(), 0))
            .collect();
        // The targets are sorted by account, product and region: count runs.
        let mut run: Option<(&InstanceKey, usize)> = None;
        for (key, _) in self.targets.iter().filter(|(_, t)| t.polled) {
            match &mut run {
                Some((first, n)) if same_region(first, key) => *n += 1,
                _ => {
                    if let Some((first, n)) = run.replace((key, 1)) {
                        counts.insert(region_key(first), n);
                    }
                }
            }
        }
        if let Some((first, n)) = run {
            counts.insert(region_key(first), n);
        }
        counts
    }
}

fn region_key(key: &InstanceKey) -> RegionKey {
    (key.account.clone(), key.product, key.region_id.clone())
}

/// Cheap when the keys share their strings, as those of one account do.
fn same_region(a: &InstanceKey, b: &InstanceKey) -> bool {
    let same = |x: &Arc<str>, y: &Arc<str>| Arc::ptr_eq(x, y) || x == y;
    same(&a.account, &b.account) && a.product == b.product && same(&a.region_id, &b.region_id)
}

/// Builds the target set from every account's state, in config order:
/// static instances, then what discovery found; this replica's shard only;
/// an instance ID watched twice (two accounts naming the same one) is kept
/// once, under the first account.
pub fn assemble(accounts: &[(Arc<Account>, Arc<AccountState>)], shard: Shard) -> TargetSet {
    let mut set = TargetSet {
        shard,
        initial_round_done: accounts.iter().all(|(_, s)| s.rounds > 0),
        ..Default::default()
    };
    let mut owners: HashMap<Arc<str>, Arc<str>> = HashMap::new();
    let empty = ProductState::default();
    for (account, state) in accounts {
        for (&product, config) in &account.config.products {
            let pstate = state.products.get(&product).unwrap_or(&empty);
            add_product(
                &mut set,
                &mut owners,
                account,
                state,
                product,
                config,
                pstate,
            );
        }
    }
    set
}

/// Adds one product of an account to the set (see `assemble`).
fn add_product(
    set: &mut TargetSet,
    owners: &mut HashMap<Arc<str>, Arc<str>>,
    account: &Arc<Account>,
    state: &AccountState,
    product: Product,
    config: &ProductConfig,
    pstate: &ProductState,
) {
    let label = product.label();
    let shard = set.shard;
    let host_of = |region: &str| {
        state
            .all_regions
            .as_ref()
            .and_then(|all| all.iter().find(|r| r.region_id == region))
            .and_then(|r| r.endpoint_host.clone())
    };
    if let (Some(status), Regions::All) = (&state.region_list, &config.regions) {
        set.discovery.insert(
            (account.name.clone(), label, ALL_REGIONS.into()),
            status.clone(),
        );
    }
    // The ID is discovery's own (shared with its map and the instance's
    // info), or a static instance's.
    let mut add = |set: &mut TargetSet,
                   region: &str,
                   id: Arc<str>,
                   info: Option<Arc<InstanceInfo>>| {
        if !shard.owns(&id) {
            return;
        }
        if let Some(owner) = owners.get(&id) {
            if owner != &account.name {
                tracing::warn!(instance_id = %id, account = %account.name, watched_by = %owner, "instance is watched by two accounts; keeping the first");
            }
            return;
        }
        owners.insert(id.clone(), account.name.clone());
        let polled = !info.as_ref().is_some_and(|i| i.is_creating());
        let backup_api = config
            .backup_api
            .get(&*id)
            .copied()
            .or_else(|| info.as_ref().map(|i| i.backup_api()))
            .unwrap_or_default();
        let key = InstanceKey::new(account.name.clone(), label, interned(region), id);
        let target = Target {
            info,
            polled,
            client: account.client_for(product, region, host_of(region).as_deref()),
            backup_api,
        };
        set.targets.insert(key, target);
    };
    // Static instances whose region is known are watched from the start.
    if let Some(region) = &config.static_region {
        let found = pstate.regions.get(region);
        for id in &config.instance_ids {
            let info = found.and_then(|r| r.instances.get(id.as_str())).cloned();
            add(set, region, id.as_str().into(), info);
        }
    }
    for (region, region_state) in &pstate.regions {
        set.discovery.insert(
            (account.name.clone(), label, region.as_str().into()),
            region_state.status.clone(),
        );
        for (id, info) in &region_state.instances {
            add(set, region, id.clone(), Some(info.clone()));
        }
    }
    // Static instances looked up across regions: watched where found
    // (and kept there should a later lookup miss them: a released
    // instance then fails its polls, visibly).
    if config.static_region.is_none() {
        for id in &config.instance_ids {
            match pstate.static_homes.get(id) {
                Some(home) => add(set, home, id.as_str().into(), None),
                None => set.unresolved.push((account.name.clone(), id.to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aliyun::{ClientSettings, Credentials, NoObserver, RetryPolicy, StaticProvider};
    use crate::config::{AccountCredentials, DiscoveryConfig, ProductConfig};
    use crate::secret::Secret;

    fn account(name: &str, redis: ProductConfig) -> Arc<Account> {
        let template = RpcClient::new(
            ClientSettings {
                endpoint: "http://127.0.0.1:9".into(),
                labels: Default::default(),
                version: "2015-01-01",
                timeout: std::time::Duration::from_secs(1),
                retry: RetryPolicy::none(),
            },
            Arc::new(StaticProvider::new(
                "test",
                Credentials {
                    access_key_id: "id".into(),
                    access_key_secret: Secret::new("s"),
                    security_token: None,
                },
            )),
            Arc::new(NoObserver),
            crate::clock::system(),
        )
        .unwrap();
        Arc::new(Account::new(
            AccountConfig {
                name: name.into(),
                credentials: AccountCredentials::Chain,
                role: None,
                rate_limit: 0.0,
                endpoint: None,
                signature_version: Default::default(),
                products: BTreeMap::from([(Product::Redis, redis)]),
            },
            template,
        ))
    }

    /// An account state's products: Redis only.
    fn redis_only(
        regions: BTreeMap<String, RegionState>,
        static_homes: BTreeMap<String, String>,
    ) -> BTreeMap<Product, ProductState> {
        BTreeMap::from([(
            Product::Redis,
            ProductState {
                regions,
                static_homes,
            },
        )])
    }

    fn info(id: &str, region: &str, status: &str, tags: &[(&str, &str)]) -> Arc<InstanceInfo> {
        Arc::new(InstanceInfo {
            instance_id: id.into(),
            region_id: region.into(),
            status: status.into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        })
    }

    fn region(ok: bool, instances: &[Arc<InstanceInfo>]) -> RegionState {
        RegionState {
            status: DiscoveryStatus {
                success: ok,
                last_success: None,
            },
            instances: instances
                .iter()
                .map(|i| (i.instance_id.clone(), i.clone()))
                .collect(),
        }
    }

    fn ids(set: &TargetSet) -> Vec<String> {
        set.targets
            .keys()
            .map(|k| format!("{}/{}/{}", k.account, k.region_id, k.instance_id))
            .collect()
    }

    #[test]
    fn statics_with_a_known_region_are_watched_before_any_round() {
        let a = account(
            "default",
            ProductConfig {
                regions: Regions::List(vec!["cn-hangzhou".into()]),
                static_region: Some("cn-hangzhou".into()),
                instance_ids: vec!["r-1".into(), "r-2".into()],
                discovery: None,
                backup_api: Default::default(),
            },
        );
        let set = assemble(&[(a, Arc::new(AccountState::default()))], Shard::default());
        assert_eq!(
            ids(&set),
            ["default/cn-hangzhou/r-1", "default/cn-hangzhou/r-2"]
        );
        assert!(set.targets.values().all(|t| t.polled && t.info.is_none()));
        assert!(!set.initial_round_done);
        assert!(set.discovery.is_empty());
    }

    #[test]
    fn discovered_creating_and_unresolved_instances() {
        let a = account(
            "prod",
            ProductConfig {
                regions: Regions::All,
                static_region: None,
                instance_ids: vec!["r-static".into(), "r-lost".into()],
                discovery: Some(DiscoveryConfig::default()),
                backup_api: Default::default(),
            },
        );
        let state = AccountState {
            region_list: Some(DiscoveryStatus {
                success: true,
                last_success: None,
            }),
            products: redis_only(
                BTreeMap::from([
                    (
                        "cn-beijing".to_string(),
                        region(true, &[info("r-new", "cn-beijing", "Creating", &[])]),
                    ),
                    (
                        "cn-shanghai".to_string(),
                        region(
                            false,
                            &[
                                info("r-a", "cn-shanghai", "Normal", &[]),
                                info("r-static", "cn-shanghai", "Normal", &[]),
                            ],
                        ),
                    ),
                    ("eu-central-1".to_string(), region(true, &[])),
                ]),
                BTreeMap::from([("r-static".to_string(), "cn-shanghai".to_string())]),
            ),
            rounds: 1,
            ..Default::default()
        };
        let set = assemble(&[(a, Arc::new(state))], Shard::default());
        assert_eq!(
            ids(&set),
            [
                "prod/cn-beijing/r-new",
                "prod/cn-shanghai/r-a",
                "prod/cn-shanghai/r-static"
            ]
        );
        let creating = set.targets.values().find(|t| !t.polled).unwrap();
        assert_eq!(&*creating.info.as_ref().unwrap().instance_id, "r-new");
        assert_eq!(set.unresolved, vec![("prod".into(), "r-lost".to_string())]);
        assert!(set.initial_round_done);
        let counts: Vec<(String, usize)> = set
            .counts()
            .into_iter()
            .map(|((a, _, r), n)| (format!("{a}/{r}"), n))
            .collect();
        // Creating instances are not counted; an empty region is 0.
        assert_eq!(
            counts,
            [
                ("prod/cn-beijing".to_string(), 0),
                ("prod/cn-shanghai".to_string(), 2),
                ("prod/eu-central-1".to_string(), 0)
            ]
        );
        assert!(set
            .discovery
            .contains_key(&("prod".into(), REDIS, "all".into())));
        assert!(!set.discovery[&("prod".into(), REDIS, "cn-shanghai".into())].success);
    }

    #[test]
    fn the_backup_call_comes_from_the_override_then_describe_instances() {
        let cloud_native = |id: &str| {
            Arc::new(InstanceInfo {
                architecture: "cluster".into(),
                instance_class: "redis.shard.small.2.ce".into(),
                shard_count: Some(2),
                ..(*info(id, "cn-hangzhou", "Normal", &[])).clone()
            })
        };
        let a = account(
            "prod",
            ProductConfig {
                regions: Regions::List(vec!["cn-hangzhou".into()]),
                static_region: Some("cn-hangzhou".into()),
                instance_ids: vec!["r-unknown".into()],
                discovery: Some(DiscoveryConfig::default()),
                // Forced back to DescribeBackups, whatever the API says.
                backup_api: BTreeMap::from([("r-forced".to_string(), BackupApi::DescribeBackups)]),
            },
        );
        let state = AccountState {
            products: redis_only(
                BTreeMap::from([(
                    "cn-hangzhou".to_string(),
                    region(
                        true,
                        &[
                            cloud_native("r-native"),
                            cloud_native("r-forced"),
                            info("r-plain", "cn-hangzhou", "Normal", &[]),
                        ],
                    ),
                )]),
                BTreeMap::new(),
            ),
            rounds: 1,
            ..Default::default()
        };
        let set = assemble(&[(a, Arc::new(state))], Shard::default());
        let api: BTreeMap<&str, BackupApi> = set
            .targets
            .iter()
            .map(|(k, t)| (&*k.instance_id, t.backup_api))
            .collect();
        assert_eq!(
            api,
            BTreeMap::from([
                ("r-forced", BackupApi::DescribeBackups),
                ("r-native", BackupApi::ClusterBackupList),
                ("r-plain", BackupApi::DescribeBackups),
                // Not found (yet): the common call.
                ("r-unknown", BackupApi::DescribeBackups),
            ])
        );
    }

    #[test]
    fn shards_split_the_set_and_duplicates_are_kept_once() {
        let product = |ids: &[&str]| ProductConfig {
            regions: Regions::List(vec!["cn-hangzhou".into()]),
            static_region: Some("cn-hangzhou".into()),
            instance_ids: ids.iter().map(|s| s.to_string()).collect(),
            discovery: None,
            backup_api: Default::default(),
        };
        let all: Vec<String> = (0..100).map(|i| format!("r-{i}")).collect();
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let a = account("a", product(&refs));
        let b = account("b", product(&["r-1", "r-other"]));
        let states = [
            (a, Arc::new(AccountState::default())),
            (b, Arc::new(AccountState::default())),
        ];
        let whole = assemble(&states, Shard::default());
        assert_eq!(whole.targets.len(), 101, "r-1 once, under account a");
        assert!(whole
            .targets
            .keys()
            .any(|k| &*k.instance_id == "r-1" && &*k.account == "a"));
        let mut seen = 0;
        for index in 0..3 {
            let part = assemble(&states, Shard { index, count: 3 });
            assert!(part.targets.keys().all(|k| part.shard.owns(&k.instance_id)));
            seen += part.targets.len();
        }
        assert_eq!(seen, 101);
    }

    #[test]
    fn a_changed_account_keeps_what_it_still_covers() {
        let old = AccountState {
            products: redis_only(
                BTreeMap::from([
                    (
                        "cn-hangzhou".to_string(),
                        region(
                            true,
                            &[
                                info("r-prod", "cn-hangzhou", "Normal", &[("env", "prod")]),
                                info("r-dev", "cn-hangzhou", "Normal", &[("env", "dev")]),
                                info("r-static", "cn-hangzhou", "Normal", &[]),
                            ],
                        ),
                    ),
                    (
                        "cn-beijing".to_string(),
                        region(
                            true,
                            &[info("r-bj", "cn-beijing", "Normal", &[("env", "prod")])],
                        ),
                    ),
                ]),
                BTreeMap::new(),
            ),
            rounds: 4,
            ..Default::default()
        };
        let config = AccountConfig {
            name: "prod".into(),
            credentials: AccountCredentials::Chain,
            role: None,
            rate_limit: 5.0,
            endpoint: None,
            signature_version: Default::default(),
            products: BTreeMap::from([(
                Product::Redis,
                ProductConfig {
                    regions: Regions::List(vec!["cn-hangzhou".into()]),
                    static_region: Some("cn-hangzhou".into()),
                    instance_ids: vec!["r-static".into()],
                    discovery: Some(DiscoveryConfig {
                        tags: vec![("env".into(), "prod".into())],
                    }),
                    backup_api: Default::default(),
                },
            )]),
        };
        let carried = old.carried_over(&config);
        assert_eq!(carried.rounds, 0);
        let carried = &carried.products[&Product::Redis];
        assert_eq!(carried.regions.len(), 1);
        let kept: Vec<&str> = carried.regions["cn-hangzhou"]
            .instances
            .keys()
            .map(|k| &**k)
            .collect();
        assert_eq!(kept, ["r-prod", "r-static"]);
    }

    #[test]
    fn each_product_and_region_has_its_own_client_at_its_own_host() {
        let product = ProductConfig {
            regions: Regions::List(vec!["cn-hangzhou".into()]),
            static_region: None,
            instance_ids: Vec::new(),
            discovery: None,
            backup_api: Default::default(),
        };
        let a = account("a", product);
        let rds = a.client_for(Product::Rds, "eu-central-1", None);
        assert_eq!(rds.endpoint(), "https://rds.eu-central-1.aliyuncs.com");
        assert!(Arc::ptr_eq(
            &rds,
            &a.client_for(Product::Rds, "eu-central-1", None)
        ));
        assert_eq!(
            a.client_for(Product::MongoDb, "cn-hangzhou", None)
                .endpoint(),
            "https://dds.aliyuncs.com"
        );
        // DescribeRegions' endpoints are R-kvstore's: not for the others.
        let host = Some("r-kvstore.eu-central-1.aliyuncs.com");
        assert_eq!(
            a.client_for(Product::PolarDb, "eu-central-1", host)
                .endpoint(),
            "https://polardb.eu-central-1.aliyuncs.com"
        );
        assert_eq!(
            a.client_for(Product::Redis, "eu-central-1", host)
                .endpoint(),
            "https://r-kvstore.eu-central-1.aliyuncs.com"
        );
    }

    #[test]
    fn the_endpoint_override_wins_over_every_derived_host() {
        assert_eq!(
            endpoint_for(
                Some("http://127.0.0.1:1"),
                "eu-central-1",
                Some("r-kvstore.x.aliyuncs.com")
            ),
            "http://127.0.0.1:1"
        );
        assert_eq!(
            endpoint_for(
                None,
                "eu-central-1",
                Some("r-kvstore.eu-central-1.aliyuncs.com")
            ),
            "https://r-kvstore.eu-central-1.aliyuncs.com"
        );
        assert_eq!(
            endpoint_for(None, "cn-zhangjiakou", None),
            "https://r-kvstore.cn-zhangjiakou.aliyuncs.com"
        );
    }
}
