//! RDS, MongoDB and PolarDB watched end to end, through real sockets and
//! the fake's product APIs: discovered (`--discovery.products`) or given
//! (`--rds.instance-id`, `--mongodb.instance-id`, `--polardb.cluster-id`,
//! the config file's product sections), each product's instances with
//! their per-node series (a sharded MongoDB cluster one per shard), and a
//! product whose calls are refused failing only its own instances.

use std::collections::BTreeMap;

use aliyun_backup_exporter::app::Running;
use aliyun_backup_exporter::fake_api::scenario::product_samples;
use aliyun_backup_exporter::fake_api::{FakeApi, Fault};
use chrono::{DateTime, SubsecRound, Utc};
use clap::Parser;

use crate::helpers::*;

const FAST: &[&str] = &[
    "--discovery.interval=300ms",
    "--poll.interval=1s",
    "--aliyun.rate-limit=0",
];

const ALL_PRODUCTS: &str = "--discovery.products=redis,rds,mongodb,polardb";

/// A fake serving the product samples (as of `now`), plus one Redis
/// instance.
async fn fake_with_samples(now: DateTime<Utc>) -> FakeApi {
    let fake = fake().await;
    for (id, instance) in product_samples(now) {
        fake.set_instance(&id, instance);
    }
    fake.set_instance(
        "r-redis-1",
        aliyun_backup_exporter::fake_api::FakeInstance::with_backups(vec![
            aliyun_backup_exporter::fake_api::FakeBackup::success(
                "r-redis-1",
                now - chrono::Duration::hours(3),
                std::time::Duration::from_secs(60),
                1024,
            ),
        ]),
    );
    fake
}

async fn start(fake: &FakeApi, extra: &[&str]) -> Running {
    let mut args = FAST.to_vec();
    args.extend_from_slice(extra);
    start_exporter(flags_config(fake, &args), &env_credentials(None)).await
}

/// (product, instance, node) → value of `name`.
fn by_node(samples: &[Sample], name: &str) -> BTreeMap<(String, String, String), f64> {
    find(samples, name, &[])
        .into_iter()
        .map(|s| {
            let label = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
            (
                (label("product"), label("instance_id"), label("node_id")),
                s.value,
            )
        })
        .collect()
}

fn key(product: &str, instance: &str, node: &str) -> (String, String, String) {
    (product.into(), instance.into(), node.into())
}

/// The end of the sample backup `days` days before `now` (they start two
/// hours before that day's `now` and take ten minutes).
fn sample_end(now: DateTime<Utc>, days: i64) -> f64 {
    (now - chrono::Duration::days(days) - chrono::Duration::hours(2)
        + chrono::Duration::minutes(10))
    .timestamp() as f64
}

/// Every node of the samples with whether its newest backup succeeded.
fn expected_attempts() -> BTreeMap<(String, String, String), f64> {
    BTreeMap::from([
        (key("rds", "rm-demo-healthy", "rm-demo-healthy"), 1.0),
        (key("rds", "rm-demo-failed", "rm-demo-failed"), 0.0),
        (key("mongodb", "dds-demo-replica", "dds-demo-replica"), 1.0),
        (key("mongodb", "dds-demo-sharded", "d-demo-shard-0"), 1.0),
        (key("mongodb", "dds-demo-sharded", "d-demo-shard-1"), 0.0),
        (key("polardb", "pc-demo-healthy", "pc-demo-healthy"), 1.0),
        (key("polardb", "pc-demo-failed", "pc-demo-failed"), 0.0),
        (key("redis", "r-redis-1", "r-redis-1"), 1.0),
    ])
}

#[tokio::test]
async fn every_product_is_discovered_and_polled_per_node() {
    let now = Utc::now().trunc_subsecs(0);
    let fake = fake_with_samples(now).await;
    let running = start(&fake, &["--discovery.regions=cn-hangzhou", ALL_PRODUCTS]).await;
    wait_ready(&running).await;
    let samples = scrape(&running).await;

    assert_eq!(
        by_node(&samples, "aliyun_backup_last_attempt_success"),
        expected_attempts()
    );
    // The newest success: today's, or yesterday's where today's failed.
    let last = by_node(&samples, "aliyun_backup_last_success_timestamp_seconds");
    let today = sample_end(now, 0);
    let yesterday = sample_end(now, 1);
    for ((product, instance, node), expected) in [
        (("rds", "rm-demo-healthy", "rm-demo-healthy"), today),
        (("rds", "rm-demo-failed", "rm-demo-failed"), yesterday),
        (("mongodb", "dds-demo-replica", "dds-demo-replica"), today),
        (("mongodb", "dds-demo-sharded", "d-demo-shard-0"), today),
        (("mongodb", "dds-demo-sharded", "d-demo-shard-1"), yesterday),
        (("polardb", "pc-demo-healthy", "pc-demo-healthy"), today),
        (("polardb", "pc-demo-failed", "pc-demo-failed"), yesterday),
    ] {
        assert_eq!(
            last.get(&key(product, instance, node)),
            Some(&expected),
            "{product} {instance} {node}"
        );
    }
    // Sizes: a week of backups, the newest successful one 1 GiB (today's)
    // or 2 GiB (yesterday's).
    let size = by_node(&samples, "aliyun_backup_last_success_size_bytes");
    assert_eq!(
        size.get(&key("polardb", "pc-demo-failed", "pc-demo-failed")),
        Some(&f64::from(2u32 << 30))
    );
    assert_eq!(
        size.get(&key("rds", "rm-demo-healthy", "rm-demo-healthy")),
        Some(&f64::from(1u32 << 30))
    );

    // What discovery said, with the product label; one target count each.
    for (product, id, name) in [
        ("rds", "rm-demo-failed", "billing"),
        ("mongodb", "dds-demo-sharded", "events"),
        ("polardb", "pc-demo-healthy", "ledger"),
    ] {
        let info = find(
            &samples,
            "aliyun_backup_instance_info",
            &[("product", product), ("instance_id", id)],
        );
        assert_eq!(info.len(), 1, "{product} {id}: {info:?}");
        assert_eq!(info[0].labels["instance_name"], name);
        assert_eq!(info[0].labels["backup_api"], "describe_backups");
    }
    for (product, n) in [
        ("redis", 1.0),
        ("rds", 2.0),
        ("mongodb", 2.0),
        ("polardb", 2.0),
    ] {
        assert_eq!(
            value(
                &samples,
                "aliyun_backup_targets",
                &[("product", product), ("region_id", "cn-hangzhou")]
            ),
            n,
            "{product}"
        );
        assert_eq!(
            value(
                &samples,
                "aliyun_backup_discovery_success",
                &[("product", product), ("region_id", "cn-hangzhou")]
            ),
            1.0
        );
    }
    // The policy of each product: daily, so a day between backups; PolarDB's
    // retention from its level-1 field.
    for id in ["rm-demo-healthy", "dds-demo-sharded", "pc-demo-failed"] {
        assert_eq!(
            value(
                &samples,
                "aliyun_backup_policy_max_interval_seconds",
                &[("instance_id", id)]
            ),
            86_400.0,
            "{id}"
        );
        assert_eq!(
            value(
                &samples,
                "aliyun_backup_expected_max_age_seconds",
                &[("instance_id", id)]
            ),
            86_400.0 + 3_600.0 + 7_200.0,
            "{id}"
        );
    }

    // Each product was asked with its own version and ID parameter; the
    // sharded cluster once per shard node, the replica set without one.
    let received = fake.received();
    let backups_of = |id: &str| -> Vec<(String, Option<String>)> {
        let mut calls: Vec<_> = received
            .iter()
            .filter(|r| r.action == "DescribeBackups" && r.instance_id == id)
            .map(|r| (r.version.clone(), r.node_id.clone()))
            .collect();
        calls.sort();
        calls.dedup();
        calls
    };
    assert_eq!(
        backups_of("dds-demo-sharded"),
        [
            ("2015-12-01".to_string(), Some("d-demo-shard-0".to_string())),
            ("2015-12-01".to_string(), Some("d-demo-shard-1".to_string())),
        ]
    );
    assert_eq!(
        backups_of("dds-demo-replica"),
        [("2015-12-01".to_string(), None)]
    );
    assert_eq!(
        backups_of("rm-demo-failed"),
        [("2014-08-15".to_string(), None)]
    );
    assert_eq!(
        backups_of("pc-demo-failed"),
        [("2017-08-01".to_string(), None)]
    );
    assert!(
        received.iter().all(|r| r.outcome == "Success"),
        "{received:?}"
    );
    // The download URLs never leave the exporter.
    let text = get(&running, "/metrics").await.text().await.unwrap();
    assert_no_secret(&text);
}

#[tokio::test]
async fn the_default_discovers_redis_only() {
    let now = Utc::now().trunc_subsecs(0);
    let fake = fake_with_samples(now).await;
    let running = start(&fake, &["--discovery.regions=cn-hangzhou"]).await;
    wait_ready(&running).await;
    let samples = scrape(&running).await;
    let nodes = by_node(&samples, "aliyun_backup_last_attempt_success");
    assert_eq!(
        nodes.keys().collect::<Vec<_>>(),
        [&key("redis", "r-redis-1", "r-redis-1")]
    );
    assert!(fake.received().iter().all(|r| r.version == "2015-01-01"));
}

#[tokio::test]
async fn static_ids_of_each_product() {
    let now = Utc::now().trunc_subsecs(0);
    let fake = fake_with_samples(now).await;
    let running = start(
        &fake,
        &[
            "--aliyun.region=cn-hangzhou",
            "--rds.instance-id=rm-demo-failed",
            "--mongodb.instance-id=dds-demo-sharded,dds-demo-replica",
            "--polardb.cluster-id=pc-demo-healthy",
        ],
    )
    .await;
    wait_ready(&running).await;
    let samples = eventually("the static instances' info and series", || async {
        let samples = scrape(&running).await;
        let infos = find(&samples, "aliyun_backup_instance_info", &[]).len();
        (infos == 4).then_some(samples)
    })
    .await;
    let expected: BTreeMap<_, _> = expected_attempts()
        .into_iter()
        .filter(|((_, id, _), _)| {
            [
                "rm-demo-failed",
                "dds-demo-sharded",
                "dds-demo-replica",
                "pc-demo-healthy",
            ]
            .contains(&id.as_str())
        })
        .collect();
    assert_eq!(expected.len(), 5);
    assert_eq!(
        by_node(&samples, "aliyun_backup_last_attempt_success"),
        expected
    );
    // Looked up with each product's own discovery call, no Redis call.
    let received = fake.received();
    for (action, version) in [
        ("DescribeDBInstances", "2014-08-15"),
        ("DescribeDBInstances", "2015-12-01"),
        ("DescribeDBClusters", "2017-08-01"),
    ] {
        assert!(
            received
                .iter()
                .any(|r| r.action == action && r.version == version && r.outcome == "Success"),
            "{action} {version}"
        );
    }
    assert!(
        !received.iter().any(|r| r.version == "2015-01-01"),
        "no Redis call"
    );
}

#[tokio::test]
async fn a_refused_product_fails_only_its_own_polls() {
    let now = Utc::now().trunc_subsecs(0);
    let fake = fake_with_samples(now).await;
    // The RAM policy does not allow rds:DescribeBackups.
    for id in ["rm-demo-healthy", "rm-demo-failed"] {
        fake.update_instance(id, |i| i.always = Some(Fault::Forbidden));
    }
    let running = start(&fake, &["--discovery.regions=cn-hangzhou", ALL_PRODUCTS]).await;
    wait_ready(&running).await;
    let samples = scrape(&running).await;
    let polls = by_node(&samples, "aliyun_backup_poll_success");
    let failed: Vec<_> = polls
        .iter()
        .filter(|(_, v)| **v == 0.0)
        .map(|((product, id, _), _)| (product.as_str(), id.as_str()))
        .collect();
    assert_eq!(
        failed,
        [("rds", "rm-demo-failed"), ("rds", "rm-demo-healthy")]
    );
    assert_eq!(polls.len(), 7, "{polls:?}");
    // The others' backups are all there.
    let attempts = by_node(&samples, "aliyun_backup_last_attempt_success");
    let mut expected = expected_attempts();
    expected.retain(|(product, _, _), _| product != "rds");
    assert_eq!(attempts, expected);
    // The refusal is counted.
    assert!(find(
        &samples,
        "aliyun_backup_api_requests_total",
        &[("action", "DescribeBackups"), ("code", "Forbidden.RAM")]
    )
    .iter()
    .any(|s| s.value >= 2.0));
}

#[tokio::test]
async fn the_config_file_has_a_section_per_product() {
    let now = Utc::now().trunc_subsecs(0);
    let fake = fake_with_samples(now).await;
    let file = config_file(
        "products",
        "accounts:
  - name: prod
    rds: {regions: [cn-hangzhou], instance_ids: [rm-demo-healthy]}
    mongodb:
      regions: [cn-hangzhou]
      discovery: {tags: {env: prod}}
    polardb: {regions: [cn-hangzhou], instance_ids: [pc-demo-failed]}
",
    );
    let path = format!("--config.file={}", file.display());
    let text = std::fs::read_to_string(&*file).unwrap();
    let mut args = FAST.to_vec();
    args.push(&path);
    let config = flags_config_with_file(&fake, &args, Some(&text));
    let running = start_exporter(config, &env_credentials(None)).await;
    wait_ready(&running).await;
    let samples = scrape(&running).await;
    let nodes: Vec<_> = by_node(&samples, "aliyun_backup_last_attempt_success")
        .into_keys()
        .map(|(_, id, node)| format!("{id}/{node}"))
        .collect();
    assert_eq!(
        nodes,
        [
            "dds-demo-replica/dds-demo-replica",
            "dds-demo-sharded/d-demo-shard-0",
            "dds-demo-sharded/d-demo-shard-1",
            "pc-demo-failed/pc-demo-failed",
            "rm-demo-healthy/rm-demo-healthy",
        ]
    );
}

#[tokio::test]
async fn the_demo_shows_every_product() {
    let cli = aliyun_backup_exporter::cli::Cli::try_parse_from([
        "aliyun-backup-exporter",
        "--demo",
        "--web.listen-address=127.0.0.1:0",
    ])
    .unwrap();
    let config = aliyun_backup_exporter::config::Config::from_cli(&cli, |_| None, None).unwrap();
    let running = start_exporter(config, &[]).await;
    wait_ready(&running).await;
    let samples = scrape(&running).await;
    let attempts = by_node(&samples, "aliyun_backup_last_attempt_success");
    let mut expected = expected_attempts();
    expected.retain(|(product, _, _), _| product != "redis");
    for (node, want) in &expected {
        assert_eq!(attempts.get(node), Some(want), "{node:?}");
    }
    let products: std::collections::BTreeSet<&str> = attempts
        .keys()
        .map(|(product, _, _)| product.as_str())
        .collect();
    assert_eq!(
        products.into_iter().collect::<Vec<_>>(),
        ["mongodb", "polardb", "rds", "redis"]
    );
}

#[tokio::test]
async fn tags_filter_every_products_discovery() {
    let now = Utc::now().trunc_subsecs(0);
    let fake = fake_with_samples(now).await;
    // One more of each product, without the samples' env=prod tag.
    let week = |id: &str| {
        vec![aliyun_backup_exporter::fake_api::FakeBackup::success(
            id,
            now - chrono::Duration::hours(2),
            std::time::Duration::from_secs(60),
            1024,
        )]
    };
    use aliyun_backup_exporter::fake_api::FakeInstance;
    fake.set_instance(
        "rm-untagged",
        FakeInstance::rds("cn-hangzhou", week("rm-untagged")),
    );
    fake.set_instance(
        "dds-untagged",
        FakeInstance::mongodb_replica_set("cn-hangzhou", week("dds-untagged")),
    );
    fake.set_instance(
        "pc-untagged",
        FakeInstance::polardb("cn-hangzhou", week("pc-untagged")),
    );
    let running = start(
        &fake,
        &[
            "--discovery.regions=cn-hangzhou",
            "--discovery.products=rds,mongodb,polardb",
            "--discovery.tag=env=prod",
            "--discovery.tag-labels=env",
        ],
    )
    .await;
    wait_ready(&running).await;
    let samples = scrape(&running).await;
    let mut ids: Vec<(String, String)> = find(&samples, "aliyun_backup_instance_info", &[])
        .iter()
        .map(|s| (s.labels["instance_id"].clone(), s.labels["tag_env"].clone()))
        .collect();
    ids.sort();
    let prod = |id: &str| (id.to_string(), "prod".to_string());
    assert_eq!(
        ids,
        [
            prod("dds-demo-replica"),
            prod("dds-demo-sharded"),
            prod("pc-demo-failed"),
            prod("pc-demo-healthy"),
            prod("rm-demo-failed"),
            prod("rm-demo-healthy"),
        ]
    );
}

#[tokio::test]
async fn a_broken_answer_fails_only_that_instances_poll() {
    let now = Utc::now().trunc_subsecs(0);
    let fake = fake_with_samples(now).await;
    fake.update_instance("pc-demo-healthy", |i| i.always = Some(Fault::InvalidJson));
    // A shard that cannot be listed fails its whole cluster's poll.
    fake.update_instance("dds-demo-sharded", |i| {
        i.always = Some(Fault::Raw {
            status: 200,
            body: r#"{"TotalCount":1,"Backups":{"Backup":[{"BackupStatus":"Success"}]}}"#.into(),
        })
    });
    let running = start(&fake, &["--discovery.regions=cn-hangzhou", ALL_PRODUCTS]).await;
    wait_ready(&running).await;
    let samples = scrape(&running).await;
    let polls = by_node(&samples, "aliyun_backup_poll_success");
    let failed: Vec<&str> = polls
        .iter()
        .filter(|(_, v)| **v == 0.0)
        .map(|((_, id, _), _)| id.as_str())
        .collect();
    assert_eq!(failed, ["dds-demo-sharded", "pc-demo-healthy"]);
    assert_eq!(polls.len(), 7);
    // No backup facts for them (never polled successfully), all for the others.
    let attempts = by_node(&samples, "aliyun_backup_last_attempt_success");
    let mut expected = expected_attempts();
    expected
        .retain(|(_, id, _), _| !["dds-demo-sharded", "pc-demo-healthy"].contains(&id.as_str()));
    assert_eq!(attempts, expected);
    assert!(find(
        &samples,
        "aliyun_backup_api_requests_total",
        &[("action", "DescribeBackups"), ("code", "decode")]
    )
    .iter()
    .any(|s| s.value >= 2.0));
}
