//! Watching a fleet, through real sockets: discovery finds instances as
//! they come and go, survives outages without losing a series, filters by
//! tags, covers every region and several accounts (one through an assumed
//! role), reloads its config file, and shards the fleet between replicas.

use std::time::Duration;

use aliyun_backup_exporter::app::Running;
use aliyun_backup_exporter::fake_api::{
    FakeApi, FakeBackup, FakeInfo, FakeInstance, FakeKey, FakeRole, Fault,
};
use chrono::{SubsecRound, Utc};

use crate::helpers::*;

/// Fast rounds, fast polls, no rate limit: tests wait on what they check.
const FAST: &[&str] = &[
    "--discovery.interval=300ms",
    "--poll.interval=1s",
    "--aliyun.rate-limit=0",
];

const ROLE_ARN: &str = "acs:ram::1234567890123456:role/backup-reader";

/// A Normal instance in `region` with one successful backup two hours ago.
fn instance(id: &str, region: &str, tags: &[(&str, &str)]) -> FakeInstance {
    let start = Utc::now().trunc_subsecs(0) - chrono::Duration::hours(2);
    FakeInstance {
        info: FakeInfo {
            name: format!("{id}-name"),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..FakeInfo::in_region(region)
        },
        ..FakeInstance::with_backups(vec![FakeBackup::success(
            id,
            start,
            Duration::from_secs(60),
            1024,
        )])
    }
}

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = FAST.to_vec();
    args.extend_from_slice(extra);
    args
}

async fn start(fake: &FakeApi, extra: &[&str]) -> Running {
    start_exporter(flags_config(fake, &args(extra)), &env_credentials(None)).await
}

/// The instance IDs that have a `name` series, sorted.
fn ids_of(samples: &[Sample], name: &str) -> Vec<String> {
    let mut ids: Vec<String> = find(samples, name, &[])
        .iter()
        .filter_map(|s| s.labels.get("instance_id").cloned())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Every series of an instance, as `name{labels}` lines.
fn series_of(samples: &[Sample], id: &str) -> Vec<String> {
    let mut lines: Vec<String> = samples
        .iter()
        .filter(|s| s.labels.get("instance_id").map(String::as_str) == Some(id))
        .filter(|s| s.name != "aliyun_backup_last_success_age_seconds")
        .map(|s| format!("{}{:?}={}", s.name, s.labels, s.value))
        .collect();
    lines.sort();
    lines
}

#[tokio::test]
async fn instances_are_followed_as_they_are_created_and_released() {
    let fake = fake().await;
    fake.set_instance("r-a", instance("r-a", "cn-hangzhou", &[]));
    fake.set_instance("r-b", instance("r-b", "cn-hangzhou", &[]));
    let running = start(&fake, &["--discovery.regions=cn-hangzhou"]).await;
    wait_ready(&running).await;
    let m = scrape(&running).await;
    assert_eq!(ids_of(&m, "aliyun_backup_poll_success"), ["r-a", "r-b"]);
    assert_eq!(
        value(&m, "aliyun_backup_targets", &[("region_id", "cn-hangzhou")]),
        2.0
    );
    assert_eq!(
        value(
            &m,
            "aliyun_backup_discovery_success",
            &[("account", "default"), ("region_id", "cn-hangzhou")]
        ),
        1.0
    );
    let info = find(&m, "aliyun_backup_instance_info", &[("instance_id", "r-a")]);
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].labels["instance_name"], "r-a-name");
    assert_eq!(info[0].labels["status"], "Normal");
    assert_eq!(info[0].labels["account"], "default");
    assert!(!find(
        &m,
        "aliyun_backup_instance_created_timestamp_seconds",
        &[("instance_id", "r-a")]
    )
    .is_empty());

    // Created while the exporter runs: polled after the next round, that is
    // within one discovery interval. Each round here is one DescribeInstances
    // call, and at most one was in flight when the instance was created.
    let seen_before = fake.received().len();
    fake.set_instance("r-new", instance("r-new", "cn-hangzhou", &[]));
    eventually("r-new to be polled", || async {
        let m = scrape(&running).await;
        (find(
            &m,
            "aliyun_backup_poll_success",
            &[("instance_id", "r-new")],
        )
        .first()
        .map(|s| s.value)
            == Some(1.0))
        .then_some(())
    })
    .await;
    let since: Vec<_> = fake.received().into_iter().skip(seen_before).collect();
    let first_poll = since
        .iter()
        .position(|r| r.action == "DescribeBackups" && r.instance_id == "r-new")
        .expect("r-new was polled");
    let rounds = since[..first_poll]
        .iter()
        .filter(|r| r.action == "DescribeInstances")
        .count();
    assert!((1..=2).contains(&rounds), "polled after {rounds} rounds");

    // Released: every series of it vanishes with the next round.
    fake.update_instance("r-a", |i| i.released = true);
    let m = eventually("r-a's series to vanish", || async {
        let m = scrape(&running).await;
        series_of(&m, "r-a").is_empty().then_some(m)
    })
    .await;
    assert_eq!(ids_of(&m, "aliyun_backup_poll_success"), ["r-b", "r-new"]);
    assert_eq!(
        value(&m, "aliyun_backup_targets", &[("region_id", "cn-hangzhou")]),
        2.0
    );
    running.stop().await;
}

#[tokio::test]
async fn a_discovery_outage_keeps_every_series() {
    let fake = fake().await;
    fake.set_instance("r-a", instance("r-a", "cn-hangzhou", &[]));
    fake.set_instance("r-b", instance("r-b", "cn-shanghai", &[]));
    let running = start(&fake, &["--discovery.regions=all"]).await;
    wait_ready(&running).await;
    let before = scrape(&running).await;
    let region_list = [("account", "default"), ("region_id", "all")];
    assert_eq!(
        value(&before, "aliyun_backup_discovery_success", &region_list),
        1.0
    );

    // Both list calls fail, on every round.
    fake.set_action_fault("DescribeInstances", Some(Fault::ServerError));
    fake.set_action_fault("DescribeRegions", Some(Fault::Unavailable));
    let during = eventually("discovery to fail", || async {
        let m = scrape(&running).await;
        let failed = find(&m, "aliyun_backup_discovery_success", &[])
            .iter()
            .all(|s| s.value == 0.0);
        failed.then_some(m)
    })
    .await;
    for id in ["r-a", "r-b"] {
        let kept: Vec<String> = series_of(&during, id)
            .into_iter()
            .filter(|l| !l.starts_with("aliyun_backup_poll_success_timestamp"))
            .collect();
        let had: Vec<String> = series_of(&before, id)
            .into_iter()
            .filter(|l| !l.starts_with("aliyun_backup_poll_success_timestamp"))
            .collect();
        assert_eq!(kept, had, "{id} keeps every series");
    }
    // Polling goes on meanwhile, and the last success stays visible.
    assert_eq!(
        value(
            &during,
            "aliyun_backup_poll_success",
            &[("instance_id", "r-b")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &during,
            "aliyun_backup_discovery_timestamp_seconds",
            &region_list
        ),
        value(
            &before,
            "aliyun_backup_discovery_timestamp_seconds",
            &region_list
        )
    );
    // The failed calls are counted. Which ones depends on timing: under
    // load the retries of a failing call can spend the round's deadline
    // before a region's DescribeInstances is sent at all.
    let failed_calls: f64 = find(&during, "aliyun_backup_api_requests_total", &[])
        .iter()
        .filter(|s| {
            matches!(
                s.labels.get("action").map(String::as_str),
                Some("DescribeInstances" | "DescribeRegions")
            ) && s.labels.get("code").map(String::as_str) != Some("Success")
        })
        .map(|s| s.value)
        .sum();
    assert!(failed_calls >= 1.0, "failed discovery calls are counted");

    // It recovers, and a release during the outage is seen only now.
    fake.update_instance("r-a", |i| i.released = true);
    fake.set_action_fault("DescribeInstances", None);
    fake.set_action_fault("DescribeRegions", None);
    let after = eventually("discovery to recover", || async {
        let m = scrape(&running).await;
        let ok = find(&m, "aliyun_backup_discovery_success", &[])
            .iter()
            .all(|s| s.value == 1.0);
        (ok && series_of(&m, "r-a").is_empty()).then_some(m)
    })
    .await;
    assert_eq!(ids_of(&after, "aliyun_backup_poll_success"), ["r-b"]);
    running.stop().await;
}

#[tokio::test]
async fn tags_filter_discovery_and_become_labels() {
    let fake = fake().await;
    fake.set_instance(
        "r-prod",
        instance(
            "r-prod",
            "cn-hangzhou",
            &[("env", "prod"), ("cost-center", "42")],
        ),
    );
    fake.set_instance(
        "r-prod-other-team",
        instance(
            "r-prod-other-team",
            "cn-hangzhou",
            &[("env", "prod"), ("team", "x")],
        ),
    );
    fake.set_instance("r-dev", instance("r-dev", "cn-hangzhou", &[("env", "dev")]));
    fake.set_instance("r-untagged", instance("r-untagged", "cn-hangzhou", &[]));
    let running = start(
        &fake,
        &[
            "--discovery.regions=cn-hangzhou",
            "--discovery.tag=env=prod",
            "--discovery.tag-labels=env,cost-center",
        ],
    )
    .await;
    wait_ready(&running).await;
    let m = scrape(&running).await;
    assert_eq!(
        ids_of(&m, "aliyun_backup_instance_info"),
        ["r-prod", "r-prod-other-team"]
    );
    let info = find(
        &m,
        "aliyun_backup_instance_info",
        &[("instance_id", "r-prod")],
    );
    assert_eq!(info[0].labels["tag_env"], "prod");
    assert_eq!(info[0].labels["tag_cost_center"], "42");
    assert!(!info[0].labels.contains_key("tag_team"));
    // The tags went to the API too.
    let listed: Vec<_> = fake
        .received()
        .into_iter()
        .filter(|r| r.action == "DescribeInstances")
        .collect();
    assert!(!listed.is_empty());
    running.stop().await;
}

#[tokio::test]
async fn creating_instances_are_shown_but_polled_only_once_created() {
    let fake = fake().await;
    fake.set_instance("r-ok", instance("r-ok", "cn-hangzhou", &[]));
    let mut creating = instance("r-creating", "cn-hangzhou", &[]);
    creating.info.status = "Creating".into();
    fake.set_instance("r-creating", creating);
    let running = start(&fake, &["--discovery.regions=cn-hangzhou"]).await;
    wait_ready(&running).await;
    let m = scrape(&running).await;
    let info = find(
        &m,
        "aliyun_backup_instance_info",
        &[("instance_id", "r-creating")],
    );
    assert_eq!(info[0].labels["status"], "Creating");
    assert_eq!(ids_of(&m, "aliyun_backup_poll_success"), ["r-ok"]);
    assert_eq!(
        value(&m, "aliyun_backup_targets", &[("region_id", "cn-hangzhou")]),
        1.0
    );
    assert_eq!(fake.requests_for("r-creating"), 0);

    fake.update_instance("r-creating", |i| i.info.status = "Normal".into());
    eventually("r-creating to be polled once created", || async {
        let m = scrape(&running).await;
        (find(
            &m,
            "aliyun_backup_poll_success",
            &[("instance_id", "r-creating")],
        )
        .len()
            == 1)
            .then_some(())
    })
    .await;
    running.stop().await;
}

#[tokio::test]
async fn static_instances_get_their_info_and_combine_with_discovery() {
    let fake = fake().await;
    fake.set_instance(
        "r-static",
        instance("r-static", "cn-shanghai", &[("env", "dev")]),
    );
    fake.set_instance(
        "r-found",
        instance("r-found", "cn-hangzhou", &[("env", "prod")]),
    );
    fake.set_instance(
        "r-hidden",
        instance("r-hidden", "cn-hangzhou", &[("env", "dev")]),
    );
    let running = start(
        &fake,
        &[
            "--discovery.regions=cn-hangzhou,cn-shanghai",
            "--discovery.tag=env=prod",
            // Looked up in both regions; tags do not filter it.
            "--redis.instance-id=r-static",
        ],
    )
    .await;
    wait_ready(&running).await;
    let m = scrape(&running).await;
    assert_eq!(
        ids_of(&m, "aliyun_backup_poll_success"),
        ["r-found", "r-static"]
    );
    let info = find(
        &m,
        "aliyun_backup_instance_info",
        &[("instance_id", "r-static")],
    );
    assert_eq!(info[0].labels["region_id"], "cn-shanghai");
    assert_eq!(
        find(
            &m,
            "aliyun_backup_instance_created_timestamp_seconds",
            &[("instance_id", "r-static")]
        )
        .len(),
        1
    );
    // Looked up 30 at a time with InstanceIds: one call found it.
    running.stop().await;

    // Flags-only, as before the fleet work: info and creation time too.
    let running = start(
        &fake,
        &[
            "--aliyun.region=cn-hangzhou",
            "--redis.instance-id=r-found,r-gone",
        ],
    )
    .await;
    wait_ready(&running).await;
    let m = scrape(&running).await;
    assert_eq!(ids_of(&m, "aliyun_backup_instance_info"), ["r-found"]);
    assert_eq!(
        ids_of(&m, "aliyun_backup_poll_success"),
        ["r-found", "r-gone"]
    );
    assert_eq!(
        value(
            &m,
            "aliyun_backup_poll_success",
            &[("instance_id", "r-gone")]
        ),
        0.0
    );
    running.stop().await;
}

/// Two accounts: `main` with its own key from named variables, `partner`
/// through a role assumed with that key (cross-account), both discovering
/// every region.
fn two_accounts() -> String {
    format!(
        "accounts:
  - name: main
    credentials:
      access_key_id_env: MAIN_AK_ID
      access_key_secret_env: MAIN_AK_SECRET
    redis:
      regions: [all]
      discovery: {{enabled: true}}
  - name: partner
    credentials:
      access_key_id_env: MAIN_AK_ID
      access_key_secret_env: MAIN_AK_SECRET
    role_arn: {ROLE_ARN}
    role_session_name: backup-exporter-test
    redis:
      regions: [all]
      discovery: {{enabled: true}}
"
    )
}

#[tokio::test]
async fn two_accounts_one_through_an_assumed_role_in_every_region() {
    let fake = fake().await;
    fake.add_role(FakeRole {
        arn: ROLE_ARN.into(),
        account: "partner-account".into(),
        trusted_key_ids: vec![KEY_ID.into()],
        lifetime: None,
    });
    for (id, region, account) in [
        ("r-main-hz", "cn-hangzhou", "main"),
        ("r-main-bj", "cn-beijing", "main"),
        ("r-partner-sh", "cn-shanghai", "partner-account"),
        ("r-partner-hz", "cn-hangzhou", "partner-account"),
    ] {
        let mut i = instance(id, region, &[]);
        i.account = Some(account.into());
        fake.set_instance(id, i);
    }
    // flags_config points --aliyun.sts-endpoint at the fake, as a VPC STS
    // endpoint would be given.
    let path = config_file("accounts", &two_accounts());
    let file = format!("--config.file={}", path.display());
    let text = std::fs::read_to_string(&path).unwrap();
    let config = flags_config_with_file(&fake, &args(&[&file]), Some(&text));
    let env = vec![
        ("MAIN_AK_ID".to_string(), KEY_ID.to_string()),
        ("MAIN_AK_SECRET".to_string(), KEY_SECRET.to_string()),
        (
            "ALIBABA_CLOUD_ECS_METADATA_DISABLED".to_string(),
            "true".to_string(),
        ),
    ];
    let running = start_exporter(config, &env).await;
    wait_ready(&running).await;
    let m = scrape(&running).await;
    let accounts: Vec<(String, String)> = {
        let mut v: Vec<_> = find(&m, "aliyun_backup_instance_info", &[])
            .iter()
            .map(|s| (s.labels["instance_id"].clone(), s.labels["account"].clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        accounts,
        [
            ("r-main-bj".to_string(), "main".to_string()),
            ("r-main-hz".into(), "main".into()),
            ("r-partner-hz".into(), "partner".into()),
            ("r-partner-sh".into(), "partner".into()),
        ]
    );
    assert_eq!(
        ids_of(&m, "aliyun_backup_poll_success"),
        ["r-main-bj", "r-main-hz", "r-partner-hz", "r-partner-sh"]
    );
    assert!(find(&m, "aliyun_backup_poll_success", &[])
        .iter()
        .all(|s| s.value == 1.0));
    for account in ["main", "partner"] {
        assert_eq!(
            value(
                &m,
                "aliyun_backup_discovery_success",
                &[("account", account), ("region_id", "all")]
            ),
            1.0
        );
    }
    assert_eq!(
        value(
            &m,
            "aliyun_backup_targets",
            &[("account", "partner"), ("region_id", "cn-shanghai")]
        ),
        1.0
    );
    // Every region of the region list, with 0 where an account has nothing.
    assert_eq!(
        value(
            &m,
            "aliyun_backup_targets",
            &[("account", "main"), ("region_id", "cn-shanghai")]
        ),
        0.0
    );
    // The partner's calls went out with the assumed role's STS key.
    assert_eq!(fake.assume_role_calls(), 1);
    let partner_polls: Vec<_> = fake
        .received()
        .into_iter()
        .filter(|r| r.instance_id.starts_with("r-partner") && r.action == "DescribeBackups")
        .collect();
    assert!(!partner_polls.is_empty());
    assert!(partner_polls
        .iter()
        .all(|r| r.access_key_id.starts_with("STS.") && r.security_token.is_some()));
    assert!(
        value(
            &m,
            "aliyun_backup_api_requests_total",
            &[
                ("account", "partner"),
                ("region_id", "cn-shanghai"),
                ("action", "DescribeBackups"),
                ("code", "Success")
            ]
        ) >= 1.0
    );
    assert!(
        find(
            &m,
            "aliyun_backup_credentials_expiry_timestamp_seconds",
            &[("account", "partner"), ("provider", "assume-role")]
        )
        .len()
            == 1
    );
    let page = reqwest::get(format!("http://{}/", running.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("partner · redis · cn-shanghai"), "{page}");
    assert_no_secret(&page);
    running.stop().await;
}

async fn reload(running: &Running) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("http://{}/-/reload", running.addr))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn reload_applies_a_changed_file_and_keeps_the_running_config_on_a_broken_one() {
    let fake = fake().await;
    fake.set_instance(
        "r-keep",
        instance("r-keep", "cn-hangzhou", &[("env", "prod")]),
    );
    fake.set_instance("r-dev", instance("r-dev", "cn-hangzhou", &[("env", "dev")]));
    fake.set_instance("r-bj", instance("r-bj", "cn-beijing", &[("env", "prod")]));
    let first = "accounts:
  - name: prod
    redis:
      regions: [cn-hangzhou]
      discovery:
        tags: {env: prod}
";
    let path = config_file("reload", first);
    let file = format!("--config.file={}", path.display());
    // Polls every hour: a poll timestamp that moves was a new poll.
    let config = flags_config_with_file(
        &fake,
        &[
            &file,
            "--discovery.interval=300ms",
            "--poll.interval=1h",
            "--aliyun.rate-limit=0",
            "--web.enable-lifecycle",
        ],
        Some(first),
    );
    let running = start_exporter(config, &env_credentials(None)).await;
    wait_ready(&running).await;
    let before = scrape(&running).await;
    assert_eq!(ids_of(&before, "aliyun_backup_poll_success"), ["r-keep"]);
    let keep_polls = fake.requests_for("r-keep");

    // Changed: another region and no tag filter.
    std::fs::write(
        &path,
        "accounts:
  - name: prod
    redis:
      regions: [cn-hangzhou, cn-beijing]
      discovery: {enabled: true}
",
    )
    .unwrap();
    let (status, text) = reload(&running).await;
    assert_eq!(status, 200, "{text}");
    let after = eventually("the new instances", || async {
        let m = scrape(&running).await;
        (ids_of(&m, "aliyun_backup_poll_success") == ["r-bj", "r-dev", "r-keep"]).then_some(m)
    })
    .await;
    // r-keep's key did not change: its state and series stayed, unpolled.
    assert_eq!(series_of(&after, "r-keep"), series_of(&before, "r-keep"));
    assert_eq!(fake.requests_for("r-keep"), keep_polls);
    assert_eq!(
        value(
            &after,
            "aliyun_backup_exporter_config_last_reload_successful",
            &[]
        ),
        1.0
    );

    // Broken: an unknown key. Nothing changes, and it says so.
    std::fs::write(&path, "accounts:\n  - name: prod\n    regoins: [x]\n").unwrap();
    let (status, text) = reload(&running).await;
    assert_eq!(status, 500);
    assert!(text.contains("line 3"), "{text}");
    assert!(text.contains("regoins"), "{text}");
    let broken = scrape(&running).await;
    assert_eq!(
        value(
            &broken,
            "aliyun_backup_exporter_config_last_reload_successful",
            &[]
        ),
        0.0
    );
    assert_eq!(
        value(
            &broken,
            "aliyun_backup_exporter_config_last_reload_success_timestamp_seconds",
            &[]
        ),
        value(
            &after,
            "aliyun_backup_exporter_config_last_reload_success_timestamp_seconds",
            &[]
        )
    );
    assert_eq!(
        ids_of(&broken, "aliyun_backup_poll_success"),
        ["r-bj", "r-dev", "r-keep"]
    );
    // Valid YAML, but credentials that cannot be had: also refused whole.
    std::fs::write(
        &path,
        "accounts:
  - name: prod
    credentials: {access_key_id_env: NOT_SET_ID, access_key_secret_env: NOT_SET_SECRET}
    redis: {regions: [cn-hangzhou], discovery: {enabled: true}}
",
    )
    .unwrap();
    let (status, text) = reload(&running).await;
    assert_eq!(status, 500);
    assert!(text.contains("NOT_SET_ID is not set"), "{text}");
    // GET is not a reload.
    let get = reqwest::get(format!("http://{}/-/reload", running.addr))
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    running.stop().await;
}

#[tokio::test]
async fn reload_is_not_served_without_the_lifecycle_flag() {
    let fake = fake().await;
    fake.set_instance("r-a", instance("r-a", "cn-hangzhou", &[]));
    let running = start(&fake, &["--discovery.regions=cn-hangzhou"]).await;
    let (status, _) = reload(&running).await;
    assert_eq!(status, 404);
    running.stop().await;
}

#[tokio::test]
async fn shards_split_the_fleet_between_replicas() {
    let fake = fake().await;
    let ids: Vec<String> = (0..40).map(|i| format!("r-shard-{i:02}")).collect();
    for id in &ids {
        fake.set_instance(id, instance(id, "cn-hangzhou", &[]));
    }
    let mut seen: Vec<String> = Vec::new();
    for index in 0..3 {
        let index_flag = format!("--shard.index={index}");
        let running = start(
            &fake,
            &[
                "--discovery.regions=cn-hangzhou",
                "--shard.count=3",
                &index_flag,
            ],
        )
        .await;
        wait_ready(&running).await;
        let m = scrape(&running).await;
        assert_eq!(
            value(&m, "aliyun_backup_exporter_shard_ordinal", &[]),
            f64::from(index)
        );
        assert_eq!(value(&m, "aliyun_backup_exporter_total_shards", &[]), 3.0);
        let mine = ids_of(&m, "aliyun_backup_poll_success");
        assert!(!mine.is_empty() && mine.len() < ids.len(), "{mine:?}");
        assert_eq!(
            value(&m, "aliyun_backup_targets", &[("region_id", "cn-hangzhou")]),
            mine.len() as f64
        );
        seen.extend(mine);
        running.stop().await;
    }
    seen.sort();
    assert_eq!(seen, ids, "every instance watched by exactly one replica");
}

#[tokio::test]
async fn readiness_waits_for_the_first_round_and_its_polls() {
    let fake = fake().await;
    fake.set_instance("r-a", instance("r-a", "cn-hangzhou", &[]));
    fake.push_action_faults(
        "DescribeInstances",
        [Fault::Slow(Duration::from_millis(1500))],
    );
    let running = start(&fake, &["--discovery.regions=cn-hangzhou"]).await;
    let readyz = || async {
        let r = reqwest::get(format!("http://{}/readyz", running.addr))
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    let (status, text) = readyz().await;
    assert_eq!(status, 503);
    assert!(text.contains("first discovery round"), "{text}");
    wait_ready(&running).await;
    // Once ready, a newly found instance does not take it out of service.
    fake.set_instance("r-b", instance("r-b", "cn-hangzhou", &[]));
    fake.set_latency(Duration::from_millis(300));
    for _ in 0..10 {
        assert_eq!(readyz().await.0, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.stop().await;
}

#[tokio::test]
async fn an_account_that_cannot_see_an_instance_does_not_poll_it() {
    // Two keys of two accounts; one instance each. The default account (the
    // test key, account "main") never sees the other's instance.
    let fake = FakeApi::start(vec![
        key(),
        FakeKey {
            id: "LTAIother".into(),
            secret: "other-secret".into(),
            security_token: None,
            account: "other".into(),
        },
    ])
    .await
    .unwrap();
    let mut mine = instance("r-mine", "cn-hangzhou", &[]);
    mine.account = Some("main".into());
    fake.set_instance("r-mine", mine);
    let mut theirs = instance("r-theirs", "cn-hangzhou", &[]);
    theirs.account = Some("other".into());
    fake.set_instance("r-theirs", theirs);
    let running = start(&fake, &["--discovery.regions=cn-hangzhou"]).await;
    wait_ready(&running).await;
    let m = scrape(&running).await;
    assert_eq!(ids_of(&m, "aliyun_backup_instance_info"), ["r-mine"]);
    assert_eq!(fake.requests_for("r-theirs"), 0);
    running.stop().await;
}

#[tokio::test]
async fn the_rate_limit_caps_the_requests_of_an_account() {
    let fake = fake().await;
    for i in 0..30 {
        let id = format!("r-rl-{i:02}");
        fake.set_instance(&id, instance(&id, "cn-hangzhou", &[]));
    }
    let started = std::time::Instant::now();
    let config = flags_config(
        &fake,
        &[
            "--discovery.regions=cn-hangzhou",
            "--aliyun.rate-limit=10",
            "--poll.concurrency=8",
            "--poll.interval=1m",
        ],
    );
    let running = start_exporter(config, &env_credentials(None)).await;
    // Never more than the bucket (10) plus 10 a second since it was filled.
    let mut seen = 0;
    while seen < 31 {
        seen = fake.received().len();
        let elapsed = started.elapsed().as_secs_f64();
        assert!(
            seen as f64 <= 10.0 + 10.0 * elapsed + 1.0,
            "{seen} requests after {elapsed:.2} s"
        );
        assert!(elapsed < 30.0, "only {seen} requests after {elapsed:.1} s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_ready(&running).await;
    // Waiting for a token is not API latency: loopback answers in
    // milliseconds, while the last polls waited about two seconds.
    let m = scrape(&running).await;
    let sum = value(
        &m,
        "aliyun_backup_api_request_duration_seconds_sum",
        &[("action", "DescribeBackups")],
    );
    let count = value(
        &m,
        "aliyun_backup_api_request_duration_seconds_count",
        &[("action", "DescribeBackups")],
    );
    assert_eq!(count, 30.0);
    assert!(sum / count < 0.5, "mean latency {} s", sum / count);
    running.stop().await;
}

#[tokio::test]
async fn finished_polls_are_published_together_not_one_snapshot_each() {
    let fake = fake().await;
    for i in 0..300 {
        let id = format!("r-many-{i:03}");
        fake.set_instance(&id, instance(&id, "cn-hangzhou", &[]));
    }
    let started = std::time::Instant::now();
    let running = start(
        &fake,
        &["--discovery.regions=cn-hangzhou", "--poll.concurrency=16"],
    )
    .await;
    let mut snapshots = running.snapshots.clone();
    let ready = snapshots
        .wait_for(|s| s.ready)
        .await
        .expect("the poller runs")
        .clone();
    // At most one swap per 200 ms, plus one per change of the target set
    // (a few discovery rounds at most): far fewer than the 300 polls.
    let published = ready.sequence + 1;
    let bound = (started.elapsed().as_secs_f64() / 0.2).ceil() as u64 + 10;
    assert_eq!(ready.instances.len(), 300);
    assert!(
        published <= bound,
        "{published} snapshots for 300 polls, bound {bound}"
    );
    assert!(published < 300, "{published}");
    running.stop().await;
}
