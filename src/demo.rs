//! The sample instances `--demo` serves from the fake API: one of each state
//! an operator cares about, in two regions, with times relative to the
//! start of the demo; and for RDS, MongoDB and PolarDB the fake's product
//! samples (`scenario::product_samples`: a healthy and a failing instance
//! of each, the MongoDB one a sharded cluster whose second shard failed).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::products::Product;

use crate::fake_api::scenario::product_samples;
use crate::fake_api::{
    FakeApi, FakeBackup, FakeClusterBackup, FakeInfo, FakeInstance, FakeKey, FakePolicy, Fault,
};

pub const REGION_ID: &str = "cn-hangzhou";

/// The regions the demo's DescribeRegions lists.
pub const REGIONS: &[&str] = &["cn-hangzhou", "cn-shanghai"];

/// The demo's own AccessKey, known only to the in-process fake.
pub const ACCESS_KEY_ID: &str = "demo-access-key-id";
pub const ACCESS_KEY_SECRET: &str = "demo-access-key-secret";

pub const HEALTHY: &str = "r-demo-healthy";
pub const CLUSTER: &str = "r-demo-cluster";
pub const THROTTLED: &str = "r-demo-throttled";
pub const FAILED: &str = "r-demo-failed";
pub const STALE: &str = "r-demo-stale";
pub const ALL_FAILED: &str = "r-demo-all-failed";
pub const RELEASED: &str = "r-demo-released";
/// Backs up on Mondays and Thursdays; its newest backup is three days old,
/// which is on schedule.
pub const TWICE_WEEKLY: &str = "r-demo-twice-weekly";
/// Backs up daily; its newest success ended 30 hours ago: one is missing.
pub const DAILY_MISSED: &str = "r-demo-daily-missed";
/// Created an hour ago: no backup yet, and none due.
pub const YOUNG: &str = "r-demo-young";
/// A cloud-native cluster (DescribeClusterBackupList); its newest cluster
/// backup failed on one shard.
pub const NATIVE: &str = "r-demo-native";
pub const NATIVE_SHARDS: [&str; 2] = ["r-demo-native-db-0", "r-demo-native-db-1"];

#[cfg(test)]
const INSTANCE_IDS: &[&str] = &[
    HEALTHY,
    CLUSTER,
    THROTTLED,
    FAILED,
    STALE,
    ALL_FAILED,
    RELEASED,
    TWICE_WEEKLY,
    DAILY_MISSED,
    YOUNG,
    NATIVE,
];

/// The products the demo discovers besides Redis, in `REGIONS`.
pub const OTHER_PRODUCTS: [Product; 3] = [Product::Rds, Product::MongoDb, Product::PolarDb];

/// Listed by DescribeInstances (status `Creating`), never backed up; not in
/// `INSTANCE_IDS`.
pub const CREATING: &str = "r-demo-creating";
/// Not there at the start: `late_instance` is for adding it during a demo
/// (an instance that discovery should pick up).
pub const LATE: &str = "r-demo-new";

/// The demo's key, of account `main`.
pub fn key() -> FakeKey {
    FakeKey {
        id: ACCESS_KEY_ID.into(),
        secret: ACCESS_KEY_SECRET.into(),
        security_token: None,
        account: "main".into(),
    }
}

/// What DescribeInstances says of a demo instance.
fn info(region: &str, zone: &str, name: &str, status: &str) -> FakeInfo {
    FakeInfo {
        region_id: region.into(),
        zone_id: format!("{region}-{zone}"),
        name: name.into(),
        status: status.into(),
        ..FakeInfo::default()
    }
}

fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const GIB: u64 = 1 << 30;

/// A daily backup `days` days and two hours before `now`: the newest is
/// well within the 27 hours a daily policy allows (a day, the one-hour
/// window and two hours of grace), for an hour-long demo at least.
fn day(now: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    now - chrono::Duration::days(days) - chrono::Duration::hours(2)
}

/// A week of daily successful backups of one node; sizes grow a little.
fn daily(
    now: DateTime<Utc>,
    node: &str,
    days: std::ops::RangeInclusive<i64>,
    base_size: u64,
) -> Vec<FakeBackup> {
    days.map(|d| {
        let took = Duration::from_secs(240 + 7 * d as u64);
        FakeBackup::success(
            node,
            day(now, d),
            took,
            base_size - d as u64 * 8 * (1 << 20),
        )
    })
    .collect()
}

/// The demo instances as of `now`.
pub fn instances(now: DateTime<Utc>) -> Vec<(&'static str, FakeInstance)> {
    let mut cluster = daily(now, "r-demo-cluster-db-0", 0..=6, 3 * GIB);
    cluster.extend(daily(now, "r-demo-cluster-db-1", 0..=6, 3 * GIB + GIB / 2));
    let mut failed = daily(now, FAILED, 1..=6, GIB);
    failed.push(FakeBackup::failed(
        FAILED,
        day(now, 0),
        Duration::from_secs(95),
    ));
    let all_failed = (0..=6)
        .map(|d| FakeBackup::failed(ALL_FAILED, day(now, d), Duration::from_secs(30)))
        .collect();
    // Ends 30 hours ago, then daily before that.
    let daily_missed = (0..=5)
        .map(|d| {
            let took = Duration::from_secs(300);
            let start = now - chrono::Duration::hours(30 + 24 * d) - chrono::Duration::minutes(5);
            FakeBackup::success(DAILY_MISSED, start, took, GIB)
        })
        .collect();
    let mut native: Vec<FakeClusterBackup> = (1..=6)
        .map(|d| FakeClusterBackup::ok(&NATIVE_SHARDS, day(now, d), Duration::from_secs(420), GIB))
        .collect();
    native.push(
        FakeClusterBackup::ok(&NATIVE_SHARDS, day(now, 0), Duration::from_secs(400), GIB)
            .with_shard_failed(NATIVE_SHARDS[1]),
    );

    let hz = "cn-hangzhou";
    let sh = "cn-shanghai";
    vec![
        (
            HEALTHY,
            FakeInstance {
                info: FakeInfo {
                    tags: tags(&[("env", "prod"), ("team", "payments")]),
                    ..info(hz, "h", "payments-sessions", "Normal")
                },
                ..FakeInstance::with_backups(daily(now, HEALTHY, 0..=6, 2 * GIB))
            },
        ),
        // A classic cluster (one backup per shard node), and numbers as
        // strings, odd enum case: Alibaba's inconsistencies.
        (
            CLUSTER,
            FakeInstance {
                quirky_types: true,
                info: FakeInfo {
                    architecture: "cluster".into(),
                    instance_class: "redis.logic.sharding.2g.2db.0rodb.4proxy.default".into(),
                    shard_count: None,
                    tags: tags(&[("env", "prod"), ("team", "catalog")]),
                    ..info(hz, "i", "catalog-cache", "Normal")
                },
                ..FakeInstance::with_backups(cluster)
            },
        ),
        (
            THROTTLED,
            FakeInstance {
                throttle_every: Some(3),
                info: FakeInfo {
                    tags: tags(&[("env", "staging")]),
                    ..info(hz, "h", "search-ratelimit", "Normal")
                },
                ..FakeInstance::with_backups(daily(now, THROTTLED, 0..=6, GIB / 2))
            },
        ),
        (
            FAILED,
            FakeInstance {
                info: FakeInfo {
                    tags: tags(&[("env", "prod"), ("team", "payments")]),
                    ..info(sh, "e", "payments-queue", "Normal")
                },
                ..FakeInstance::with_backups(failed)
            },
        ),
        // Its backup policy cannot be read (the RAM policy lacks
        // kvstore:DescribeBackupPolicy): --backup.max-age is expected.
        (
            STALE,
            FakeInstance {
                info: info(sh, "f", "analytics-features", "Normal"),
                policy_fault: Some(Fault::Forbidden),
                ..FakeInstance::with_backups(daily(now, STALE, 3..=6, GIB))
            },
        ),
        (
            ALL_FAILED,
            FakeInstance {
                info: info(sh, "e", "legacy-jobs", "Normal"),
                ..FakeInstance::with_backups(all_failed)
            },
        ),
        // Gone: not listed, and DescribeBackups says InvalidInstanceId.NotFound.
        (
            RELEASED,
            FakeInstance {
                released: true,
                info: info(hz, "h", "old-leaderboard", "Normal"),
                ..Default::default()
            },
        ),
        (
            CREATING,
            FakeInstance {
                info: info(sh, "f", "orders-cache", "Creating"),
                ..Default::default()
            },
        ),
        (
            TWICE_WEEKLY,
            FakeInstance {
                info: FakeInfo {
                    tags: tags(&[("env", "prod"), ("team", "catalog")]),
                    ..info(hz, "h", "catalog-archive", "Normal")
                },
                policy: FakePolicy {
                    period: "Monday,Thursday".into(),
                    time: "02:00Z-03:00Z".into(),
                    retention_days: 14,
                    log_backup: true,
                },
                ..FakeInstance::with_backups(
                    [3, 6]
                        .into_iter()
                        .map(|d| {
                            FakeBackup::success(
                                TWICE_WEEKLY,
                                day(now, d),
                                Duration::from_secs(600),
                                5 * GIB,
                            )
                        })
                        .collect(),
                )
            },
        ),
        (
            DAILY_MISSED,
            FakeInstance {
                info: FakeInfo {
                    tags: tags(&[("env", "prod"), ("team", "payments")]),
                    ..info(hz, "i", "payments-ledger", "Normal")
                },
                ..FakeInstance::with_backups(daily_missed)
            },
        ),
        (
            YOUNG,
            FakeInstance {
                info: FakeInfo {
                    create_time: now - chrono::Duration::hours(1),
                    ..info(hz, "h", "search-suggest", "Normal")
                },
                ..Default::default()
            },
        ),
        // Cloud-native: ShardCount is what tells it from a classic cluster.
        (
            NATIVE,
            FakeInstance {
                cloud_native: true,
                cluster_backups: native,
                info: FakeInfo {
                    architecture: "cluster".into(),
                    instance_class: "redis.shard.small.2.ce".into(),
                    shard_count: Some(2),
                    tags: tags(&[("env", "prod"), ("team", "catalog")]),
                    ..info(hz, "j", "catalog-native", "Normal")
                },
                ..Default::default()
            },
        ),
    ]
}

/// The instance `LATE` as of `now`, for adding during a demo: one
/// successful backup an hour ago.
pub fn late_instance(now: DateTime<Utc>) -> FakeInstance {
    let start = now - chrono::Duration::hours(1);
    FakeInstance {
        info: info("cn-hangzhou", "h", "checkout-sessions", "Normal"),
        ..FakeInstance::with_backups(vec![FakeBackup::success(
            LATE,
            start,
            Duration::from_secs(180),
            GIB / 4,
        )])
    }
}

/// Starts the fake API on `127.0.0.1` with the demo instances and regions.
pub async fn start_fake_api(now: DateTime<Utc>) -> std::io::Result<FakeApi> {
    let fake = FakeApi::start(vec![key()]).await?;
    for (id, instance) in instances(now) {
        fake.set_instance(id, instance);
    }
    for (id, instance) in product_samples(now) {
        fake.set_instance(&id, instance);
    }
    fake.set_regions(REGIONS.iter().map(|r| r.to_string()).collect());
    Ok(fake)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_watched_instance_is_served_and_regions_are_listed() {
        let now = Utc::now();
        let served = instances(now);
        for id in INSTANCE_IDS {
            assert!(served.iter().any(|(s, _)| s == id), "{id}");
        }
        assert!(!INSTANCE_IDS.contains(&CREATING) && !INSTANCE_IDS.contains(&LATE));
        for (id, instance) in &served {
            assert!(REGIONS.contains(&instance.info.region_id.as_str()), "{id}");
            assert!(!instance.info.name.is_empty(), "{id}");
        }
        assert_eq!(late_instance(now).backups.len(), 1);
        // Two samples of each other product, all in a demo region.
        let samples = product_samples(now);
        for product in OTHER_PRODUCTS {
            let n = samples
                .iter()
                .filter(|(_, i)| i.product.version() == product.api_version())
                .inspect(|(_, i)| assert!(REGIONS.contains(&i.info.region_id.as_str())))
                .count();
            assert_eq!(n, 2, "{product}");
        }
    }
}
