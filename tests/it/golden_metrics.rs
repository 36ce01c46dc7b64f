//! The whole `/metrics` body for a fixed snapshot and clock, compared with
//! a checked-in file. Regenerate with `UPDATE_GOLDEN=1 cargo test golden`
//! and review the diff: it is the metrics contract.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aliyun_backup_exporter::aliyun::{CallLabels, CallObserver};
use aliyun_backup_exporter::clock::ManualClock;
use aliyun_backup_exporter::config::{tag_label_name, TagLabel};
use aliyun_backup_exporter::metrics;
use aliyun_backup_exporter::model::{Backup, BackupApi, BackupStatus, InstanceInfo};
use aliyun_backup_exporter::policy::{BackupPolicy, ExpectationSource, Weekdays};
use aliyun_backup_exporter::snapshot::{summarize, InstanceView, Snapshot};
use aliyun_backup_exporter::targets::{DiscoveryStatus, InstanceKey, Target, TargetSet};
use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::watch;

fn at(day: u32, hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, minute, second)
        .unwrap()
}

fn backup(node: &str, status: &str, start: DateTime<Utc>, secs: i64, size: Option<u64>) -> Backup {
    Backup {
        node_id: node.into(),
        status: BackupStatus::parse(status),
        start,
        end: Some(start + chrono::Duration::seconds(secs)),
        size_bytes: size,
        backup_type: "full".into(),
        backup_mode: "automated".into(),
        backup_method: "physical".into(),
        restorable: true,
    }
}

fn key(account: &str, region: &str, id: &str) -> InstanceKey {
    InstanceKey::new(account.into(), "redis", region.into(), id.into())
}

fn info(id: &str, name: &str, status: &str, tags: &[(&str, &str)]) -> Option<Arc<InstanceInfo>> {
    Some(Arc::new(InstanceInfo {
        instance_id: id.into(),
        region_id: "cn-hangzhou".into(),
        name: name.into(),
        zone_id: "cn-hangzhou-h".into(),
        engine_version: "5.0".into(),
        architecture: "standard".into(),
        instance_class: "redis.master.small.default".into(),
        status: status.into(),
        shard_count: None,
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        created: Some(at(1, 8, 40, 5)),
        nodes: Vec::new(),
    }))
}

/// What discovery knows: two accounts, the second with the region list of
/// `all`, a failed region and an empty one; a static instance never found
/// (no info) and one still being created (info, but not polled).
fn fixed_targets() -> TargetSet {
    let client = Arc::new(
        crate::helpers::ClientBuilder::new("http://127.0.0.1:9".into())
            .build()
            .0,
    );
    let target = |info: Option<Arc<InstanceInfo>>, polled: bool| Target {
        backup_api: info.as_ref().map(|i| i.backup_api()).unwrap_or_default(),
        info,
        polled,
        client: client.clone(),
    };
    let mut targets = BTreeMap::new();
    targets.insert(
        key("default", "cn-hangzhou", "r-std"),
        target(
            info(
                "r-std",
                "orders",
                "Normal",
                &[("env", "prod"), ("cost-center", "42"), ("other", "x")],
            ),
            true,
        ),
    );
    let mut cluster = info("r-cls", "sessions \"eu\"", "Normal", &[("env", "prod")]);
    if let Some(c) = cluster.as_mut().and_then(Arc::get_mut) {
        c.architecture = "cluster".into();
        c.instance_class = "redis.logic.sharding.2g.2db.0rodb.4proxy.default".into();
        c.shard_count = Some(2);
    }
    targets.insert(
        key("default", "cn-hangzhou", "r-cls"),
        target(cluster, true),
    );
    targets.insert(key("default", "cn-hangzhou", "r-gone"), target(None, true));
    targets.insert(
        key("default", "cn-hangzhou", "r-new"),
        target(info("r-new", "", "Creating", &[]), false),
    );
    let status = |success: bool, last: Option<DateTime<Utc>>| DiscoveryStatus {
        success,
        last_success: last,
    };
    let discovery = BTreeMap::from([
        (
            ("default".into(), "redis", "cn-hangzhou".into()),
            status(true, Some(at(26, 6, 20, 0))),
        ),
        (
            ("prod".into(), "redis", "all".into()),
            status(true, Some(at(26, 6, 20, 0))),
        ),
        (
            ("prod".into(), "redis", "cn-shanghai".into()),
            status(false, Some(at(25, 23, 0, 0))),
        ),
        (
            ("prod".into(), "redis", "eu-central-1".into()),
            status(true, Some(at(26, 6, 20, 1))),
        ),
    ]);
    TargetSet {
        targets,
        discovery,
        initial_round_done: true,
        ..Default::default()
    }
}

fn fixed_snapshot() -> Snapshot {
    let mut instances = BTreeMap::new();
    let polled = at(26, 6, 0, 0);
    instances.insert(
        key("default", "cn-hangzhou", "r-std"),
        Arc::new(InstanceView {
            last_poll_success: true,
            last_success_poll_at: Some(polled),
            summary: Some(summarize(&[
                backup(
                    "r-std",
                    "Success",
                    at(25, 2, 0, 0),
                    300,
                    Some(1_073_741_824),
                ),
                backup(
                    "r-std",
                    "Success",
                    at(26, 2, 0, 0),
                    312,
                    Some(1_073_745_920),
                ),
                backup("r-std", "Failed", at(26, 4, 0, 0), 12, None),
            ])),
            last_error: None,
            backup_api: BackupApi::DescribeBackups,
            policy: Some(Arc::new(BackupPolicy {
                days: Weekdays::parse("Monday,Thursday").unwrap(),
                window: "23:00Z-01:00Z".into(),
                retention_days: Some(7),
                log_backup_enabled: Some(false),
            })),
            expected_max_age: Duration::from_secs(4 * 86400 + 4 * 3600),
            expected_source: ExpectationSource::Policy,
            implausible: Default::default(),
        }),
    );
    instances.insert(
        key("default", "cn-hangzhou", "r-cls"),
        Arc::new(InstanceView {
            // The latest poll failed: the facts of the one before stay.
            last_poll_success: false,
            last_success_poll_at: Some(at(26, 5, 55, 0)),
            summary: Some(summarize(&[
                backup("r-cls-db-0", "Success", at(26, 1, 0, 0), 60, Some(10)),
                backup("r-cls-db-1", "Success", at(26, 1, 0, 0), 90, None),
                backup("r-cls-db-1", "Running", at(26, 5, 0, 0), 0, None),
            ])),
            last_error: Some("Throttling.User".into()),
            // A cloud-native cluster: one series per shard.
            backup_api: BackupApi::ClusterBackupList,
            // A policy that names no day: the default is expected.
            policy: Some(Arc::new(BackupPolicy {
                window: "05:00Z-06:00Z".into(),
                retention_days: Some(3),
                log_backup_enabled: Some(true),
                ..Default::default()
            })),
            expected_max_age: Duration::from_secs(36 * 3600),
            expected_source: ExpectationSource::Default,
            implausible: Default::default(),
        }),
    );
    instances.insert(
        key("default", "cn-hangzhou", "r-gone"),
        Arc::new(InstanceView {
            last_poll_success: false,
            last_success_poll_at: None,
            summary: None,
            last_error: Some("InvalidInstanceId.NotFound".into()),
            backup_api: BackupApi::DescribeBackups,
            policy: None,
            expected_max_age: Duration::from_secs(36 * 3600),
            expected_source: ExpectationSource::Default,
            implausible: Default::default(),
        }),
    );
    Snapshot {
        // r-new is watched but not polled (Creating): only its info series.
        targets: Arc::new(fixed_targets()),
        instances,
        polling: 3,
        poll_cycle_seconds: Some(1.25),
        ready: true,
        sequence: 7,
    }
}

/// Every byte of a body.
async fn collect(body: aliyun_backup_exporter::http::Body) -> Vec<u8> {
    use http_body_util::BodyExt;
    body.collect().await.unwrap().to_bytes().to_vec()
}

#[tokio::test]
async fn metrics_body_matches_the_golden_file() {
    let (_tx, rx) = watch::channel(Arc::new(fixed_snapshot()));
    let clock = Arc::new(ManualClock::new(at(26, 6, 30, 0)));
    let metrics::Live {
        registry,
        api,
        exporter,
        ..
    } = metrics::registry(false).unwrap();
    exporter.set_poll_interval(Duration::from_secs(300));
    let calls = CallLabels {
        account: "default".into(),
        region_id: "cn-hangzhou".into(),
    };
    api.attempt(
        &calls,
        "DescribeBackups",
        "Success",
        Duration::from_millis(80),
    );
    api.attempt(
        &calls,
        "DescribeBackups",
        "Success",
        Duration::from_millis(300),
    );
    api.attempt(
        &calls,
        "DescribeBackups",
        "Throttling.User",
        Duration::from_millis(40),
    );
    let regions = CallLabels {
        account: "prod".into(),
        region_id: "all".into(),
    };
    api.attempt(
        &regions,
        "DescribeRegions",
        "Success",
        Duration::from_millis(120),
    );

    let exposition = Arc::new(metrics::Exposition::new(
        registry,
        rx,
        clock,
        ["env", "cost-center"]
            .iter()
            .map(|k| TagLabel {
                key: k.to_string(),
                label: tag_label_name(k),
            })
            .collect(),
    ));
    let body = exposition.render().unwrap();
    // What a scrape receives, streamed, plain or gzip (twice: the second
    // from cached blocks), is the very same text, gzip in one member.
    for gzip in [false, true, true] {
        let streamed = collect(exposition.stream(gzip).await.unwrap()).await;
        let text = if gzip {
            let mut text = String::new();
            let mut one = flate2::read::GzDecoder::new(&streamed[..]);
            std::io::Read::read_to_string(&mut one, &mut text).unwrap();
            assert!(one.into_inner().is_empty(), "more than one gzip member");
            text
        } else {
            String::from_utf8(streamed).unwrap()
        };
        assert!(text == body, "the streamed body (gzip: {gzip}) differs");
    }
    let revision = option_env!("GIT_REVISION").unwrap_or("unknown");
    let normalised = body
        .replace(
            &format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
            "version=\"@VERSION@\"",
        )
        .replace(
            &format!("revision=\"{revision}\""),
            "revision=\"@REVISION@\"",
        );

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/golden/metrics.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        // Rewriting the file makes this test pass; never in CI.
        assert!(
            std::env::var_os("CI").is_none(),
            "UPDATE_GOLDEN is not for CI"
        );
        std::fs::write(path, &normalised).unwrap();
    }
    let expected =
        std::fs::read_to_string(path).expect("golden file exists (UPDATE_GOLDEN=1 to create)");
    assert_eq!(
        normalised, expected,
        "the /metrics body changed; if intended, UPDATE_GOLDEN=1 and review"
    );
}

/// Scrapes within a second of a rendered form share it (the poller may
/// publish a snapshot every 200 ms), the per-instance series and the
/// families that are not per instance alike, all from one snapshot; a
/// scrape after that renders the newest snapshot.
#[tokio::test]
async fn scrapes_within_a_second_share_one_snapshot_and_later_ones_see_the_next() {
    let (tx, rx) = watch::channel(Arc::new(fixed_snapshot()));
    let clock = Arc::new(ManualClock::new(at(26, 6, 30, 0)));
    let exposition = Arc::new(metrics::Exposition::new(
        metrics::registry(false).unwrap().registry,
        rx,
        clock,
        Vec::new(),
    ));
    let scrape = |gzip: bool| {
        let exposition = exposition.clone();
        async move {
            let body = collect(exposition.stream(gzip).await.unwrap()).await;
            let text = if gzip {
                let mut text = String::new();
                std::io::Read::read_to_string(
                    &mut flate2::read::GzDecoder::new(&body[..]),
                    &mut text,
                )
                .unwrap();
                text
            } else {
                String::from_utf8(body).unwrap()
            };
            // What comes from snapshots, not the live registry.
            text.lines()
                .filter(|l| l.contains("r-std") || l.starts_with("aliyun_backup_poll_cycle"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        }
    };
    let std_polled = |lines: &[String]| {
        lines
            .iter()
            .any(|l| l.starts_with("aliyun_backup_poll_success{") && l.contains("r-std"))
    };
    let first = scrape(false).await;
    assert!(std_polled(&first), "{first:?}");
    assert!(first.contains(&"aliyun_backup_poll_cycle_duration_seconds 1.25".to_string()));
    // A newer snapshot: r-std's poll results gone, another poll cycle.
    let mut next = fixed_snapshot();
    next.instances
        .remove(&key("default", "cn-hangzhou", "r-std"));
    next.poll_cycle_seconds = Some(42.0);
    tx.send_replace(Arc::new(next));
    for gzip in [false, true] {
        assert_eq!(
            scrape(gzip).await,
            first,
            "within the second (gzip: {gzip})"
        );
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for gzip in [false, true] {
        let later = scrape(gzip).await;
        assert!(!std_polled(&later), "{later:?}");
        assert!(later.contains(&"aliyun_backup_poll_cycle_duration_seconds 42".to_string()));
    }
}
