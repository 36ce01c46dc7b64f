//! The sample instances `--demo` serves from the fake API: one of each state
//! an operator cares about, with times relative to the start of the demo.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::fake_api::{FakeApi, FakeBackup, FakeInstance, FakeKey, Fault};

pub const REGION_ID: &str = "cn-hangzhou";

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

pub const INSTANCE_IDS: &[&str] = &[
    HEALTHY, CLUSTER, THROTTLED, FAILED, STALE, ALL_FAILED, RELEASED,
];

pub fn key() -> FakeKey {
    FakeKey {
        id: ACCESS_KEY_ID.into(),
        secret: ACCESS_KEY_SECRET.into(),
        security_token: None,
    }
}

const GIB: u64 = 1 << 30;

/// A daily backup `days` days and three hours before `now` (around the
/// default 02:00–03:00 window when started in the morning).
fn day(now: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    now - chrono::Duration::days(days) - chrono::Duration::hours(3)
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

    vec![
        (
            HEALTHY,
            FakeInstance::with_backups(daily(now, HEALTHY, 0..=6, 2 * GIB)),
        ),
        // Numbers as strings, odd enum case: Alibaba's inconsistencies.
        (
            CLUSTER,
            FakeInstance {
                quirky_types: true,
                ..FakeInstance::with_backups(cluster)
            },
        ),
        (
            THROTTLED,
            FakeInstance {
                throttle_every: Some(3),
                ..FakeInstance::with_backups(daily(now, THROTTLED, 0..=6, GIB / 2))
            },
        ),
        (FAILED, FakeInstance::with_backups(failed)),
        (
            STALE,
            FakeInstance::with_backups(daily(now, STALE, 3..=6, GIB)),
        ),
        (ALL_FAILED, FakeInstance::with_backups(all_failed)),
        (
            RELEASED,
            FakeInstance {
                always: Some(Fault::NotFound),
                ..Default::default()
            },
        ),
    ]
}

/// Starts the fake API on `127.0.0.1` with the demo instances.
pub async fn start_fake_api(now: DateTime<Utc>) -> std::io::Result<FakeApi> {
    let fake = FakeApi::start(vec![key()]).await?;
    for (id, instance) in instances(now) {
        fake.set_instance(id, instance);
    }
    Ok(fake)
}
