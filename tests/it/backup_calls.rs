//! Which call lists an instance's backups, and what its backup policy
//! expects, through real sockets: cloud-native clusters found by discovery
//! are polled with DescribeClusterBackupList, one series per shard; a call
//! that answers "not supported" is switched for the other; the config file
//! can force the call; the policy is read once per discovery interval, and a
//! policy that cannot be read never fails the backup poll.

use std::time::Duration;

use aliyun_backup_exporter::fake_api::{
    FakeApi, FakeBackup, FakeClusterBackup, FakeInfo, FakeInstance, FakePolicy, Fault,
};
use chrono::{SubsecRound, Utc};

use crate::helpers::*;

const SHARDS: [&str; 2] = ["r-native-db-0", "r-native-db-1"];

/// A cloud-native cluster: daily complete backups, and the newest one
/// failed on shard 1 (two hours ago). `honest` says whether DescribeInstances
/// shows it as one (cluster, ShardCount) or as a standard instance.
fn cloud_native(honest: bool) -> FakeInstance {
    let now = Utc::now().trunc_subsecs(0);
    let day = |d: i64| now - chrono::Duration::days(d) - chrono::Duration::hours(2);
    let mut backups: Vec<FakeClusterBackup> = (1..=3)
        .map(|d| FakeClusterBackup::ok(&SHARDS, day(d), Duration::from_secs(300), 1000))
        .collect();
    backups.push(
        FakeClusterBackup::ok(&SHARDS, day(0), Duration::from_secs(300), 1000)
            .with_shard_failed(SHARDS[1]),
    );
    let info = if honest {
        FakeInfo {
            architecture: "cluster".into(),
            instance_class: "redis.shard.small.2.ce".into(),
            shard_count: Some(2),
            ..FakeInfo::in_region("cn-hangzhou")
        }
    } else {
        FakeInfo::in_region("cn-hangzhou")
    };
    FakeInstance {
        cloud_native: true,
        cluster_backups: backups,
        info,
        ..Default::default()
    }
}

fn standard(id: &str) -> FakeInstance {
    let start = Utc::now().trunc_subsecs(0) - chrono::Duration::hours(3);
    FakeInstance {
        info: FakeInfo::in_region("cn-hangzhou"),
        ..FakeInstance::with_backups(vec![FakeBackup::success(
            id,
            start,
            Duration::from_secs(60),
            10,
        )])
    }
}

/// Requests of `action` for `instance_id`, from the fake's log.
fn calls(fake: &FakeApi, action: &str, instance_id: &str) -> usize {
    fake.received()
        .iter()
        .filter(|r| r.action == action && r.instance_id == instance_id)
        .count()
}

fn backup_api(samples: &[Sample], instance_id: &str) -> String {
    find(
        samples,
        "aliyun_backup_instance_info",
        &[("instance_id", instance_id)],
    )
    .first()
    .and_then(|s| s.labels.get("backup_api").cloned())
    .unwrap_or_default()
}

#[tokio::test]
async fn a_cloud_native_cluster_is_polled_shard_by_shard_with_its_own_call() {
    let fake = fake().await;
    fake.set_instance("r-native", cloud_native(true));
    fake.set_instance("r-std", standard("r-std"));
    let config = flags_config(
        &fake,
        &[
            "--discovery.regions=cn-hangzhou",
            "--aliyun.rate-limit=0",
            "--poll.interval=1m",
        ],
    );
    let running = start_exporter(config, &env_credentials(None)).await;
    wait_ready(&running).await;
    let m = scrape(&running).await;

    assert_eq!(backup_api(&m, "r-native"), "cluster_backup_list");
    assert_eq!(backup_api(&m, "r-std"), "describe_backups");
    assert_eq!(calls(&fake, "DescribeBackups", "r-native"), 0);
    assert_eq!(calls(&fake, "DescribeClusterBackupList", "r-native"), 1);
    assert_eq!(calls(&fake, "DescribeClusterBackupList", "r-std"), 0);

    // One series per shard, named after the shard.
    let native = [("instance_id", "r-native")];
    let mut nodes: Vec<String> = find(&m, "aliyun_backup_last_attempt_success", &native)
        .iter()
        .map(|s| s.labels["node_id"].clone())
        .collect();
    nodes.sort();
    assert_eq!(nodes, SHARDS);
    fn node(shard: &str) -> [(&str, &str); 2] {
        [("instance_id", "r-native"), ("node_id", shard)]
    }
    // The failed shard's newest attempt failed; the other's own part worked.
    assert_eq!(
        value(&m, "aliyun_backup_last_attempt_success", &node(SHARDS[0])),
        1.0
    );
    assert_eq!(
        value(&m, "aliyun_backup_last_attempt_success", &node(SHARDS[1])),
        0.0
    );
    // Neither shard has the failed cluster backup as a restore point: both
    // last succeeded a day earlier.
    let age0 = value(
        &m,
        "aliyun_backup_last_success_age_seconds",
        &node(SHARDS[0]),
    );
    let age1 = value(
        &m,
        "aliyun_backup_last_success_age_seconds",
        &node(SHARDS[1]),
    );
    assert!((age0 - age1).abs() < 1.0, "{age0} {age1}");
    assert!(age0 > 25.0 * 3600.0 && age0 < 27.0 * 3600.0, "{age0}");
    assert_eq!(
        value(
            &m,
            "aliyun_backup_last_success_size_bytes",
            &node(SHARDS[0])
        ),
        1000.0
    );
    assert_eq!(value(&m, "aliyun_backup_poll_success", &native), 1.0);
    running.stop().await;
}

#[tokio::test]
async fn a_call_that_does_not_apply_is_switched_for_the_other_once() {
    let fake = fake().await;
    // DescribeInstances makes it look standard: DescribeBackups is tried first.
    fake.set_instance("r-native", cloud_native(false));
    let config = flags_config(
        &fake,
        &[
            "--aliyun.region=cn-hangzhou",
            "--redis.instance-id=r-native",
            "--aliyun.rate-limit=0",
            "--poll.interval=1s",
        ],
    );
    let running = start_exporter(config, &env_credentials(None)).await;
    wait_ready(&running).await;
    eventually("three cluster backup listings", || async {
        (calls(&fake, "DescribeClusterBackupList", "r-native") >= 3).then_some(())
    })
    .await;
    // Asked once, answered "not supported", never asked again.
    assert_eq!(calls(&fake, "DescribeBackups", "r-native"), 1);
    let m = scrape(&running).await;
    assert_eq!(
        value(
            &m,
            "aliyun_backup_poll_success",
            &[("instance_id", "r-native")]
        ),
        1.0
    );
    assert_eq!(backup_api(&m, "r-native"), "cluster_backup_list");
    assert_eq!(
        value(
            &m,
            "aliyun_backup_api_requests_total",
            &[
                ("action", "DescribeBackups"),
                ("code", "InstanceType.NotSupport")
            ]
        ),
        1.0
    );
    assert_eq!(
        find(
            &m,
            "aliyun_backup_last_attempt_success",
            &[("instance_id", "r-native")]
        )
        .len(),
        2
    );
    running.stop().await;
}

#[tokio::test]
async fn the_config_file_forces_the_call() {
    let fake = fake().await;
    fake.set_instance("r-native", cloud_native(false));
    fake.set_instance("r-std", standard("r-std"));
    let file = "accounts:
  - name: prod
    redis:
      regions: [cn-hangzhou]
      instance_ids: [r-native, r-std]
      backup_api:
        r-native: cluster_backup_list
";
    let path = config_file("forced", file);
    let config_flag = format!("--config.file={}", path.display());
    let config = flags_config_with_file(
        &fake,
        &[&config_flag, "--aliyun.rate-limit=0", "--poll.interval=1m"],
        Some(file),
    );
    let running = start_exporter(config, &env_credentials(None)).await;
    wait_ready(&running).await;
    assert_eq!(calls(&fake, "DescribeBackups", "r-native"), 0);
    assert_eq!(calls(&fake, "DescribeClusterBackupList", "r-native"), 1);
    let m = scrape(&running).await;
    assert_eq!(backup_api(&m, "r-native"), "cluster_backup_list");
    assert_eq!(backup_api(&m, "r-std"), "describe_backups");
    running.stop().await;
}

#[tokio::test]
async fn the_policy_is_read_per_discovery_interval_and_never_fails_a_poll() {
    let fake = fake().await;
    fake.set_instance(
        "r-a",
        FakeInstance {
            policy: FakePolicy {
                period: "Monday,Thursday".into(),
                time: "23:00Z-01:00Z".into(),
                retention_days: 14,
                log_backup: true,
            },
            ..standard("r-a")
        },
    );
    fake.set_instance(
        "r-denied",
        FakeInstance {
            policy_fault: Some(Fault::Forbidden),
            ..standard("r-denied")
        },
    );
    let config = flags_config(
        &fake,
        &[
            "--aliyun.region=cn-hangzhou",
            "--redis.instance-id=r-a,r-denied",
            "--aliyun.rate-limit=0",
            "--poll.interval=1s",
            "--discovery.interval=1h",
            "--backup.grace=1h",
            "--backup.max-age=2d",
        ],
    );
    let running = start_exporter(config, &env_credentials(None)).await;
    wait_ready(&running).await;
    eventually("three polls of r-a", || async {
        (calls(&fake, "DescribeBackups", "r-a") >= 3).then_some(())
    })
    .await;
    // Once per discovery interval (an hour), not once per poll.
    assert_eq!(calls(&fake, "DescribeBackupPolicy", "r-a"), 1);

    let m = scrape(&running).await;
    let a = [("instance_id", "r-a")];
    // Thursday to Monday, the two-hour window across midnight, the grace.
    assert_eq!(
        value(
            &m,
            "aliyun_backup_expected_max_age_seconds",
            &[("instance_id", "r-a"), ("source", "policy")]
        ),
        (4.0 * 24.0 + 2.0 + 1.0) * 3600.0
    );
    assert_eq!(
        value(&m, "aliyun_backup_policy_max_interval_seconds", &a),
        4.0 * 86400.0
    );
    assert_eq!(
        value(&m, "aliyun_backup_policy_retention_seconds", &a),
        14.0 * 86400.0
    );
    assert_eq!(
        value(&m, "aliyun_backup_policy_log_backup_enabled", &a),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "aliyun_backup_policy_info",
            &[
                ("instance_id", "r-a"),
                ("days", "mon,thu"),
                ("window", "23:00Z-01:00Z")
            ]
        ),
        1.0
    );
    // Not allowed: counted, the default expected, and the backups polled.
    let denied = [("instance_id", "r-denied")];
    assert_eq!(value(&m, "aliyun_backup_poll_success", &denied), 1.0);
    assert_eq!(
        value(
            &m,
            "aliyun_backup_expected_max_age_seconds",
            &[("instance_id", "r-denied"), ("source", "default")]
        ),
        2.0 * 86400.0
    );
    assert!(find(&m, "aliyun_backup_policy_info", &denied).is_empty());
    assert_eq!(
        value(
            &m,
            "aliyun_backup_api_requests_total",
            &[
                ("action", "DescribeBackupPolicy"),
                ("code", "Forbidden.RAM")
            ]
        ),
        1.0
    );
    running.stop().await;
}

#[tokio::test]
async fn a_changed_policy_is_seen_within_a_discovery_interval() {
    let fake = fake().await;
    fake.set_instance("r-a", standard("r-a"));
    let config = flags_config(
        &fake,
        &[
            "--aliyun.region=cn-hangzhou",
            "--redis.instance-id=r-a",
            "--aliyun.rate-limit=0",
            "--poll.interval=1s",
            "--discovery.interval=500ms",
        ],
    );
    let running = start_exporter(config, &env_credentials(None)).await;
    wait_ready(&running).await;
    let expected = |m: &[Sample]| {
        value(
            m,
            "aliyun_backup_policy_max_interval_seconds",
            &[("instance_id", "r-a")],
        )
    };
    assert_eq!(expected(&scrape(&running).await), 86400.0);
    fake.update_instance("r-a", |i| i.policy.period = "Sunday".into());
    eventually("the new policy", || async {
        (expected(&scrape(&running).await) == 7.0 * 86400.0).then_some(())
    })
    .await;
    running.stop().await;
}
