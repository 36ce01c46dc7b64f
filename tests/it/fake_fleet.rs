//! The fake API serving a whole fleet, through real sockets: DescribeInstances
//! (paging, filters, limits), DescribeRegions, accounts, released instances,
//! faults and latency of the list calls, and STS AssumeRole through the
//! `AssumeRoleFetcher` (minted keys, trust, expiry, secrets).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aliyun_backup_exporter::aliyun::credentials::assume_role::{
    AssumeRoleFetcher, AssumeRoleSettings,
};
use aliyun_backup_exporter::aliyun::credentials::refresh::{Fetch, NoRefreshObserver, Refreshing};
use aliyun_backup_exporter::aliyun::{sign, ApiError, RpcClient, StaticProvider};
use aliyun_backup_exporter::clock::{self, Clock, ManualClock};
use aliyun_backup_exporter::fake_api::{
    FakeApi, FakeBackup, FakeInfo, FakeInstance, FakeKey, FakeRole, Fault,
};
use chrono::Utc;
use serde_json::Value;

use crate::helpers::*;

const ROLE_ARN: &str = "acs:ram::1234567890123456:role/backup-reader";
const OTHER_KEY_ID: &str = "LTAI5tOtherAccountKey";
const OTHER_SECRET: &str = "OtherAccountSecretValue42";

/// Half a minute from now, in whichever `Instant` the client takes.
fn deadline<I: From<Instant>>() -> I {
    (Instant::now() + Duration::from_secs(30)).into()
}

fn json(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

async fn call(
    client: &RpcClient,
    action: &str,
    params: &[(&str, &str)],
) -> Result<Value, ApiError> {
    let params: Vec<(&str, String)> = params.iter().map(|(k, v)| (*k, v.to_string())).collect();
    client
        .call(action, &params, json, deadline())
        .await
        .map(|answer| answer.value)
}

async fn list(client: &RpcClient, params: &[(&str, &str)]) -> Result<Value, ApiError> {
    call(client, "DescribeInstances", params).await
}

/// The ids of a DescribeInstances page, in the order given.
fn ids(page: &Value) -> Vec<String> {
    page["Instances"]["KVStoreInstance"]
        .as_array()
        .expect("a list of instances")
        .iter()
        .map(|i| i["InstanceId"].as_str().expect("an id").to_string())
        .collect()
}

/// DescribeBackups over the last week.
async fn backups(client: &RpcClient, instance_id: &str) -> Result<Value, ApiError> {
    let now = Utc::now();
    let start = (now - chrono::Duration::days(7))
        .format("%Y-%m-%dT%H:%MZ")
        .to_string();
    let end = (now + chrono::Duration::minutes(1))
        .format("%Y-%m-%dT%H:%MZ")
        .to_string();
    call(
        client,
        "DescribeBackups",
        &[
            ("InstanceId", instance_id),
            ("StartTime", &start),
            ("EndTime", &end),
            ("PageSize", "100"),
        ],
    )
    .await
}

fn api_error(err: &ApiError) -> (String, u16) {
    match err {
        ApiError::Api { code, status, .. } => (code.clone(), *status),
        other => panic!("not an API error: {other:?}"),
    }
}

fn in_region(region: &str, tags: &[(&str, &str)]) -> FakeInstance {
    FakeInstance {
        info: FakeInfo {
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..FakeInfo::in_region(region)
        },
        ..Default::default()
    }
}

fn one_backup(node: &str) -> Vec<FakeBackup> {
    let start = Utc::now() - chrono::Duration::hours(2);
    vec![FakeBackup::success(node, start, Duration::from_secs(60), 1)]
}

fn other_key() -> FakeKey {
    FakeKey {
        id: OTHER_KEY_ID.into(),
        secret: OTHER_SECRET.into(),
        security_token: None,
        account: "other".into(),
    }
}

fn settings(fake: &FakeApi) -> AssumeRoleSettings {
    AssumeRoleSettings {
        role_arn: ROLE_ARN.into(),
        session_name: "aliyun-backup-exporter".into(),
        duration_seconds: 3600,
        sts_endpoint: fake.endpoint(),
    }
}

fn role(trusted: &[&str]) -> FakeRole {
    FakeRole {
        arn: ROLE_ARN.into(),
        account: "prod".into(),
        trusted_key_ids: trusted.iter().map(|s| s.to_string()).collect(),
        lifetime: None,
    }
}

fn base(secret: &str, token: Option<&str>) -> Arc<StaticProvider> {
    Arc::new(StaticProvider::new("test", credentials(secret, token)))
}

#[tokio::test]
async fn describe_instances_pages_through_a_large_fleet() {
    let fake = fake().await;
    // Inserted out of order: the answer is sorted by id all the same.
    for i in (0..120).rev() {
        fake.set_instance(&format!("r-fleet-{i:03}"), FakeInstance::default());
    }
    let (client, attempts) = ClientBuilder::new(fake.endpoint()).build();

    let mut seen = Vec::new();
    for page in 1..=3 {
        let answer = list(
            &client,
            &[("PageSize", "50"), ("PageNumber", &page.to_string())],
        )
        .await
        .unwrap();
        assert_eq!(answer["TotalCount"], 120);
        assert_eq!(answer["PageNumber"], page);
        assert_eq!(answer["PageSize"], 50);
        assert!(answer["RequestId"].is_string());
        seen.extend(ids(&answer));
    }
    let expected: Vec<String> = (0..120).map(|i| format!("r-fleet-{i:03}")).collect();
    assert_eq!(seen, expected, "every instance once, in id order");
    let past_the_end = list(&client, &[("PageSize", "50"), ("PageNumber", "4")])
        .await
        .unwrap();
    assert!(ids(&past_the_end).is_empty());
    assert_eq!(past_the_end["TotalCount"], 120);

    // Without PageSize, the real API's default of 30.
    let default = list(&client, &[]).await.unwrap();
    assert_eq!(ids(&default).len(), 30);
    assert_eq!(default["PageSize"], 30);
    assert_eq!(attempts.codes(), vec!["Success"; 5]);

    let first = &default["Instances"]["KVStoreInstance"][0];
    for field in [
        "InstanceName",
        "RegionId",
        "ZoneId",
        "InstanceType",
        "ArchitectureType",
        "EngineVersion",
        "InstanceClass",
        "InstanceStatus",
        "CreateTime",
        "Port",
        "ConnectionDomain",
    ] {
        assert!(first.get(field).is_some(), "{field} in {first}");
    }
    assert_eq!(first["CreateTime"], "2026-01-01T00:00:00Z");
    assert_eq!(first["InstanceStatus"], "Normal");
    assert!(first["Tags"]["Tag"].as_array().unwrap().is_empty());
    assert!(first.get("ShardCount").is_none());
}

#[tokio::test]
async fn describe_instances_refuses_what_the_real_api_refuses() {
    let fake = fake().await;
    fake.set_instance("r-1", FakeInstance::default());
    let (client, attempts) = ClientBuilder::new(fake.endpoint()).build();
    let thirty_one: Vec<String> = (0..31).map(|i| format!("r-{i}")).collect();
    let thirty_one = thirty_one.join(",");

    for (params, code) in [
        (vec![("PageSize", "100")], "InvalidParameter"),
        (vec![("PageSize", "0")], "InvalidParameter"),
        (
            vec![("InstanceIds", thirty_one.as_str())],
            "InvalidParameter",
        ),
        (vec![("Tag.1.Key", "env")], "MissingRegionId"),
        (
            vec![("RegionId", "cn-hangzhou"), ("Tag.6.Key", "env")],
            "InvalidParameter",
        ),
    ] {
        let err = list(&client, &params).await.unwrap_err();
        assert_eq!(api_error(&err), (code.to_string(), 400), "{params:?}");
    }
    assert_eq!(
        attempts.codes().len(),
        5,
        "parameter errors are not retried"
    );
    // 30 ids and 50 per page are fine.
    let thirty: Vec<String> = (0..30).map(|i| format!("r-{i}")).collect();
    let answer = list(
        &client,
        &[("InstanceIds", &thirty.join(",")), ("PageSize", "50")],
    )
    .await
    .unwrap();
    assert_eq!(ids(&answer), vec!["r-1"]);
}

#[tokio::test]
async fn tags_regions_ids_and_status_filter_the_list() {
    let fake = fake().await;
    let prod_pay = [("env", "prod"), ("team", "payments")];
    fake.set_instance("r-a", in_region("cn-hangzhou", &prod_pay));
    fake.set_instance("r-b", in_region("cn-hangzhou", &[("env", "prod")]));
    fake.set_instance("r-c", in_region("cn-shanghai", &prod_pay));
    fake.set_instance(
        "r-d",
        in_region("cn-hangzhou", &[("env", "prod"), ("team", "search")]),
    );
    fake.update_instance("r-d", |i| i.info.status = "Creating".into());
    let (client, _) = ClientBuilder::new(fake.endpoint()).build();

    let both = list(
        &client,
        &[
            ("RegionId", "cn-hangzhou"),
            ("Tag.1.Key", "env"),
            ("Tag.1.Value", "prod"),
            ("Tag.2.Key", "team"),
            ("Tag.2.Value", "payments"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(ids(&both), vec!["r-a"], "every tag must match");
    assert_eq!(both["TotalCount"], 1);
    let tags = &both["Instances"]["KVStoreInstance"][0]["Tags"]["Tag"];
    assert_eq!(tags[0]["Key"], "env");
    assert_eq!(tags[1]["Value"], "payments");

    let one_tag = list(
        &client,
        &[
            ("RegionId", "cn-hangzhou"),
            ("Tag.1.Key", "env"),
            ("Tag.1.Value", "prod"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(ids(&one_tag), vec!["r-a", "r-b", "r-d"]);

    let shanghai = list(&client, &[("RegionId", "cn-shanghai")]).await.unwrap();
    assert_eq!(ids(&shanghai), vec!["r-c"]);
    assert_eq!(
        shanghai["Instances"]["KVStoreInstance"][0]["RegionId"],
        "cn-shanghai"
    );
    let chosen = list(&client, &[("InstanceIds", "r-c,r-a,r-nope")])
        .await
        .unwrap();
    assert_eq!(ids(&chosen), vec!["r-a", "r-c"]);
    let creating = list(&client, &[("InstanceStatus", "Creating")])
        .await
        .unwrap();
    assert_eq!(ids(&creating), vec!["r-d"]);

    let regions: Vec<Option<String>> = fake
        .received()
        .iter()
        .map(|r| r.region_id.clone())
        .collect();
    assert_eq!(
        regions,
        vec![
            Some("cn-hangzhou".into()),
            Some("cn-hangzhou".into()),
            Some("cn-shanghai".into()),
            None,
            None
        ]
    );
}

#[tokio::test]
async fn quirky_instances_send_numbers_as_strings() {
    let fake = fake().await;
    fake.set_instance(
        "r-q",
        FakeInstance {
            quirky_types: true,
            info: FakeInfo {
                architecture: "cluster".into(),
                shard_count: Some(2),
                ..FakeInfo::default()
            },
            ..Default::default()
        },
    );
    let (client, _) = ClientBuilder::new(fake.endpoint()).build();
    let answer = list(&client, &[]).await.unwrap();
    let q = &answer["Instances"]["KVStoreInstance"][0];
    assert_eq!(q["ShardCount"], "2");
    assert_eq!(q["Port"], "6379");
    assert!(q["Capacity"].is_string());
    assert!(q.get("SomethingNew").is_some());
}

#[tokio::test]
async fn each_key_sees_its_own_account_and_released_instances_are_gone() {
    let fake = FakeApi::start(vec![key(), other_key()]).await.unwrap();
    let mine = |backups| FakeInstance {
        account: Some("main".into()),
        ..FakeInstance::with_backups(backups)
    };
    fake.set_instance("r-main", mine(one_backup("r-main")));
    fake.set_instance(
        "r-other",
        FakeInstance {
            account: Some("other".into()),
            ..FakeInstance::with_backups(one_backup("r-other"))
        },
    );
    fake.set_instance(
        "r-shared",
        FakeInstance::with_backups(one_backup("r-shared")),
    );
    fake.set_instance(
        "r-gone",
        FakeInstance {
            released: true,
            ..FakeInstance::with_backups(one_backup("r-gone"))
        },
    );
    let (main, _) = ClientBuilder::new(fake.endpoint()).build();
    let mut other = ClientBuilder::new(fake.endpoint());
    other.provider = Some(Arc::new(StaticProvider::new(
        "other",
        aliyun_backup_exporter::aliyun::Credentials {
            access_key_id: OTHER_KEY_ID.into(),
            access_key_secret: aliyun_backup_exporter::secret::Secret::new(OTHER_SECRET),
            security_token: None,
        },
    )));
    let (other, _) = other.build();

    assert_eq!(
        ids(&list(&main, &[]).await.unwrap()),
        vec!["r-main", "r-shared"]
    );
    assert_eq!(
        ids(&list(&other, &[]).await.unwrap()),
        vec!["r-other", "r-shared"]
    );

    let served = backups(&main, "r-main").await.unwrap();
    assert_eq!(served["TotalCount"], 1);
    assert_eq!(backups(&other, "r-shared").await.unwrap()["TotalCount"], 1);
    for (client, id) in [(&main, "r-other"), (&other, "r-main"), (&main, "r-gone")] {
        let err = backups(client, id).await.unwrap_err();
        assert_eq!(
            api_error(&err),
            ("InvalidInstanceId.NotFound".to_string(), 404),
            "{id}"
        );
    }
    let keys: Vec<String> = fake
        .received()
        .iter()
        .map(|r| r.access_key_id.clone())
        .collect();
    assert_eq!(
        keys,
        vec![
            KEY_ID,
            OTHER_KEY_ID,
            KEY_ID,
            OTHER_KEY_ID,
            KEY_ID,
            OTHER_KEY_ID,
            KEY_ID
        ]
    );
}

#[tokio::test]
async fn instances_come_and_go_while_the_fake_runs() {
    let fake = fake().await;
    fake.set_instance("r-1", FakeInstance::default());
    let (client, _) = ClientBuilder::new(fake.endpoint()).build();
    assert_eq!(ids(&list(&client, &[]).await.unwrap()), vec!["r-1"]);

    fake.set_instance("r-2", in_region("cn-shanghai", &[]));
    let answer = list(&client, &[]).await.unwrap();
    assert_eq!(ids(&answer), vec!["r-1", "r-2"]);
    assert_eq!(answer["TotalCount"], 2);

    fake.update_instance("r-1", |i| i.released = true);
    assert_eq!(ids(&list(&client, &[]).await.unwrap()), vec!["r-2"]);
    fake.remove_instance("r-2");
    let empty = list(&client, &[]).await.unwrap();
    assert!(ids(&empty).is_empty());
    assert_eq!(empty["TotalCount"], 0);
}

#[tokio::test]
async fn describe_regions_names_each_region_and_its_host() {
    let fake = fake().await;
    fake.set_instance("r-sh", in_region("cn-shanghai", &[]));
    fake.set_instance("r-zjk", in_region("cn-zhangjiakou", &[]));
    let (client, _) = ClientBuilder::new(fake.endpoint()).build();

    let answer = call(&client, "DescribeRegions", &[]).await.unwrap();
    assert!(answer["RequestId"].is_string());
    let regions = answer["RegionIds"]["KVStoreRegion"].as_array().unwrap();
    let names: Vec<&str> = regions
        .iter()
        .map(|r| r["RegionId"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["cn-hangzhou", "cn-shanghai", "cn-zhangjiakou"]);
    let endpoint = |i: usize| regions[i]["RegionEndpoint"].as_str().unwrap();
    assert_eq!(endpoint(0), "r-kvstore.aliyuncs.com");
    assert_eq!(endpoint(1), "r-kvstore.aliyuncs.com");
    assert_eq!(endpoint(2), "r-kvstore.cn-zhangjiakou.aliyuncs.com");
    assert_eq!(regions[2]["ZoneIds"], "cn-zhangjiakou-a");
    assert!(regions[0]["LocalName"].is_string());

    fake.set_regions(vec!["eu-central-1".into(), "cn-beijing".into()]);
    let answer = call(&client, "DescribeRegions", &[]).await.unwrap();
    let regions = answer["RegionIds"]["KVStoreRegion"].as_array().unwrap();
    assert_eq!(regions.len(), 2);
    assert_eq!(regions[0]["RegionId"], "eu-central-1");
    assert_eq!(
        regions[0]["RegionEndpoint"],
        "r-kvstore.eu-central-1.aliyuncs.com"
    );
    assert_eq!(regions[1]["RegionEndpoint"], "r-kvstore.aliyuncs.com");
}

#[tokio::test]
async fn list_calls_take_injected_faults() {
    let fake = fake().await;
    fake.set_instance("r-1", FakeInstance::with_backups(one_backup("r-1")));
    let (client, attempts) = ClientBuilder::new(fake.endpoint()).build();

    // One-shot faults, retried by the client.
    fake.push_action_faults(
        "DescribeInstances",
        [
            Fault::Throttle {
                retry_after_ms: Some(1),
            },
            Fault::TooManyRequests,
            Fault::ServerError,
        ],
    );
    assert_eq!(ids(&list(&client, &[]).await.unwrap()), vec!["r-1"]);
    assert_eq!(
        attempts.codes(),
        vec!["Throttling.User", "Throttling", "InternalError", "Success"]
    );
    let outcomes: Vec<String> = fake.received().iter().map(|r| r.outcome.clone()).collect();
    assert_eq!(
        outcomes,
        vec!["Throttling.User", "Throttling", "InternalError", "Success"]
    );

    // A standing fault, until cleared.
    fake.set_action_fault("DescribeRegions", Some(Fault::Unavailable));
    let err = call(&client, "DescribeRegions", &[]).await.unwrap_err();
    assert_eq!(err.code_label(), "http_503");
    // Other actions are untouched by DescribeRegions' fault.
    assert_eq!(backups(&client, "r-1").await.unwrap()["TotalCount"], 1);
    fake.set_action_fault("DescribeRegions", None);
    call(&client, "DescribeRegions", &[]).await.unwrap();

    fake.set_action_fault("DescribeInstances", Some(Fault::InvalidJson));
    let err = list(&client, &[]).await.unwrap_err();
    assert_eq!(err.code_label(), "decode");
    fake.set_action_fault(
        "DescribeInstances",
        Some(Fault::Raw {
            status: 403,
            body: r#"{"Code":"Forbidden.RAM","Message":"no"}"#.into(),
        }),
    );
    let err = list(&client, &[]).await.unwrap_err();
    assert_eq!(api_error(&err), ("Forbidden.RAM".to_string(), 403));
    fake.set_action_fault(
        "DescribeInstances",
        Some(Fault::Slow(Duration::from_millis(300))),
    );
    let started = Instant::now();
    assert_eq!(ids(&list(&client, &[]).await.unwrap()), vec!["r-1"]);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn latency_delays_every_answer() {
    let fake = fake().await;
    fake.set_latency(Duration::from_millis(250));
    let (client, _) = ClientBuilder::new(fake.endpoint()).build();
    for action in ["DescribeInstances", "DescribeRegions"] {
        let started = Instant::now();
        call(&client, action, &[]).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(250), "{action}");
    }
    fake.set_latency(Duration::ZERO);
    let started = Instant::now();
    list(&client, &[]).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(250));
}

#[tokio::test]
async fn assumed_role_credentials_see_only_the_role_account() {
    let fake = fake().await;
    fake.add_role(role(&[KEY_ID]));
    fake.set_instance(
        "r-prod",
        FakeInstance {
            account: Some("prod".into()),
            ..FakeInstance::with_backups(one_backup("r-prod"))
        },
    );
    fake.set_instance(
        "r-main",
        FakeInstance {
            account: Some("main".into()),
            ..FakeInstance::with_backups(one_backup("r-main"))
        },
    );
    let fetcher = AssumeRoleFetcher::new(settings(&fake), base(KEY_SECRET, None)).unwrap();
    let provider = Arc::new(Refreshing::new(
        fetcher,
        clock::system(),
        Arc::new(NoRefreshObserver),
    ));
    let mut builder = ClientBuilder::new(fake.endpoint());
    builder.provider = Some(provider);
    let (client, _) = builder.build();

    assert_eq!(backups(&client, "r-prod").await.unwrap()["TotalCount"], 1);
    let err = backups(&client, "r-main").await.unwrap_err();
    assert_eq!(err.code_label(), "InvalidInstanceId.NotFound");
    assert_eq!(ids(&list(&client, &[]).await.unwrap()), vec!["r-prod"]);
    assert_eq!(fake.assume_role_calls(), 1, "the credentials are reused");

    let received = fake.received();
    assert_eq!(received[0].action, "AssumeRole");
    assert_eq!(received[0].access_key_id, KEY_ID);
    assert_eq!(received[0].outcome, "Success");
    assert_eq!(received[0].security_token, None);
    for r in &received[1..] {
        assert!(r.access_key_id.starts_with("STS."), "{r:?}");
        assert!(
            r.security_token
                .as_deref()
                .is_some_and(|t| t.starts_with("CAIS")),
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn assume_role_answers_credentials_of_the_asked_duration() {
    let fake = FakeApi::start(vec![FakeKey {
        security_token: Some(TOKEN.into()),
        ..key()
    }])
    .await
    .unwrap();
    fake.add_role(role(&[KEY_ID]));
    let mut asked = settings(&fake);
    asked.duration_seconds = 900;
    // A bare `http://` endpoint with a trailing slash works too.
    asked.sts_endpoint = format!("{}/", fake.endpoint());
    let fetcher = AssumeRoleFetcher::new(asked, base(KEY_SECRET, Some(TOKEN))).unwrap();

    let before = Utc::now();
    let first = fetcher.fetch().await.unwrap();
    let second = fetcher.fetch().await.unwrap();
    let lifetime = first.expiration - before;
    assert!(
        lifetime <= chrono::Duration::seconds(901) && lifetime >= chrono::Duration::seconds(895),
        "{lifetime}"
    );
    assert_ne!(
        first.credentials.access_key_id,
        second.credentials.access_key_id
    );
    assert!(first.credentials.security_token.is_some());
    // The base token went along, and everything travelled in the form body.
    let received = fake.received();
    assert_eq!(received[0].security_token.as_deref(), Some(TOKEN));
    assert_eq!(fake.assume_role_calls(), 2);

    // A role's own lifetime wins over the asked duration.
    fake.add_role(FakeRole {
        lifetime: Some(Duration::from_secs(120)),
        ..role(&[KEY_ID])
    });
    let short = fetcher.fetch().await.unwrap();
    assert!(short.expiration - Utc::now() <= chrono::Duration::seconds(121));
}

#[tokio::test]
async fn assume_role_refusals_name_the_code_and_no_secret() {
    let fake = FakeApi::start(vec![FakeKey {
        security_token: Some(TOKEN.into()),
        ..key()
    }])
    .await
    .unwrap();
    fake.add_role(role(&["someone-else"]));

    let untrusted = AssumeRoleFetcher::new(settings(&fake), base(KEY_SECRET, Some(TOKEN))).unwrap();
    let err = untrusted.fetch().await.unwrap_err();
    assert_eq!(err.source_name, "assume-role");
    assert!(err.message.contains("NoPermission"), "{err}");
    assert_no_secret(&format!("{err} {err:?}"));

    let mut unknown = settings(&fake);
    unknown.role_arn = "acs:ram::1234567890123456:role/nobody".into();
    let err = AssumeRoleFetcher::new(unknown, base(KEY_SECRET, Some(TOKEN)))
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert!(err.message.contains("EntityNotExist.Role"), "{err}");

    // A wrong secret: the fake echoes its string-to-sign, token included.
    let wrong =
        AssumeRoleFetcher::new(settings(&fake), base("not-the-secret", Some(TOKEN))).unwrap();
    let err = wrong.fetch().await.unwrap_err();
    assert!(err.message.contains("SignatureDoesNotMatch"), "{err}");
    let text = format!("{err} {err:?}");
    assert_no_secret(&text);
    assert!(!text.contains("not-the-secret"), "{text}");

    fake.push_action_faults("AssumeRole", [Fault::ServerError]);
    let err = untrusted.fetch().await.unwrap_err();
    assert!(err.message.contains("InternalError"), "{err}");
    fake.set_action_fault("AssumeRole", Some(Fault::InvalidJson));
    let err = untrusted.fetch().await.unwrap_err();
    assert!(err.message.contains("not JSON"), "{err}");
    assert_no_secret(&format!("{err} {err:?}"));

    // Nothing answers: the error names the endpoint, never a query.
    let mut nowhere = settings(&fake);
    nowhere.sts_endpoint = "http://127.0.0.1:9".into();
    let err = AssumeRoleFetcher::new(nowhere, base(KEY_SECRET, Some(TOKEN)))
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert!(err.message.contains("cannot reach STS"), "{err}");
    assert_no_secret(&format!("{err} {err:?}"));
    assert_eq!(fake.assume_role_calls(), 5);
}

#[tokio::test]
async fn expired_sts_credentials_are_refused() {
    let clock = ManualClock::new(Utc::now());
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let fake = FakeApi::start_on(([127, 0, 0, 1], 0).into(), vec![key()], shared.clone())
        .await
        .unwrap();
    fake.add_role(role(&[KEY_ID]));
    fake.set_instance(
        "r-prod",
        FakeInstance {
            account: Some("prod".into()),
            ..FakeInstance::with_backups(one_backup("r-prod"))
        },
    );
    let mut asked = settings(&fake);
    asked.duration_seconds = 900;
    let fetcher = AssumeRoleFetcher::new(asked, base(KEY_SECRET, None))
        .unwrap()
        .with_clock(shared.clone());
    let minted = fetcher.fetch().await.unwrap();
    assert_eq!(minted.expiration.timestamp(), clock.now().timestamp() + 900);

    let mut builder = ClientBuilder::new(fake.endpoint());
    builder.provider = Some(Arc::new(StaticProvider::new("sts", minted.credentials)));
    builder.clock = shared.clone();
    let (client, _) = builder.build();
    assert_eq!(backups(&client, "r-prod").await.unwrap()["TotalCount"], 1);

    clock.advance(chrono::Duration::seconds(900));
    let err = backups(&client, "r-prod").await.unwrap_err();
    assert_eq!(
        api_error(&err),
        ("InvalidSecurityToken.Expired".to_string(), 400)
    );
    assert_no_secret(&format!("{err} {err:?}"));

    // Fresh credentials work again.
    let fresh = fetcher.fetch().await.unwrap();
    let mut builder = ClientBuilder::new(fake.endpoint());
    builder.provider = Some(Arc::new(StaticProvider::new("sts", fresh.credentials)));
    builder.clock = shared;
    let (client, _) = builder.build();
    assert_eq!(backups(&client, "r-prod").await.unwrap()["TotalCount"], 1);
}

#[tokio::test]
async fn sts_calls_stay_out_of_describe_backups_fault_counters() {
    let fake = fake().await;
    fake.add_role(role(&[KEY_ID]));
    fake.set_instance(
        "r-t",
        FakeInstance {
            throttle_every: Some(2),
            ..FakeInstance::with_backups(one_backup("r-t"))
        },
    );
    let mut builder = ClientBuilder::new(fake.endpoint());
    builder.retry = fast_retries(1);
    let (client, _) = builder.build();
    let fetcher = AssumeRoleFetcher::new(settings(&fake), base(KEY_SECRET, None)).unwrap();

    backups(&client, "r-t").await.unwrap();
    for _ in 0..3 {
        fetcher.fetch().await.unwrap();
    }
    // The second DescribeBackups is the throttled one: the AssumeRole
    // calls in between were not counted.
    let err = backups(&client, "r-t").await.unwrap_err();
    assert_eq!(err.code_label(), "Throttling.User");
    // And AssumeRole's faults are AssumeRole's alone.
    fake.set_action_fault("AssumeRole", Some(Fault::ServerError));
    assert!(fetcher.fetch().await.is_err());
    backups(&client, "r-t").await.unwrap();
    assert_eq!(fake.requests_for("r-t"), 3);
}

/// Sends a request signed with the test key, without the client (to send
/// what the client never would).
async fn raw(fake: &FakeApi, method: &str, params: &[(&str, &str)]) -> (u16, String) {
    let nonce = format!("nonce-{}", fastrand_u64());
    let timestamp = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut all: Vec<(&str, &str)> = vec![
        ("Format", "JSON"),
        ("AccessKeyId", KEY_ID),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", &nonce),
        ("Timestamp", &timestamp),
    ];
    all.extend_from_slice(params);
    let signature = sign::sign(method, &all, KEY_SECRET);
    all.push(("Signature", &signature));
    let client = reqwest::Client::new();
    let request = if method == "GET" {
        client.get(format!(
            "{}/?{}",
            fake.endpoint(),
            sign::canonical_query(&all)
        ))
    } else {
        client
            .post(format!("{}/", fake.endpoint()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(sign::canonical_query(&all))
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn fastrand_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn assume_role_checks_its_parameters_and_version() {
    let fake = fake().await;
    fake.add_role(role(&[KEY_ID]));
    let sts = [("Action", "AssumeRole"), ("Version", "2015-04-01")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut p = sts.to_vec();
        p.push(("RoleArn", ROLE_ARN));
        p.extend_from_slice(extra);
        p
    };

    let (status, body) = raw(&fake, "GET", &with(&[("RoleSessionName", "ok-name")])).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer["AssumedRoleUser"]["Arn"],
        "acs:ram::1234567890123456:assumed-role/backup-reader/ok-name"
    );
    assert!(answer["Credentials"]["Expiration"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let (status, body) = raw(&fake, "POST", &with(&[("RoleSessionName", "posted")])).await;
    assert_eq!(status, 200, "{body}");

    for (extra, status_code, code) in [
        (
            vec![("RoleSessionName", "x")],
            400,
            "InvalidParameter.RoleSessionName",
        ),
        (
            vec![("RoleSessionName", "no spaces")],
            400,
            "InvalidParameter.RoleSessionName",
        ),
        (
            vec![("RoleSessionName", "ok"), ("DurationSeconds", "899")],
            400,
            "InvalidParameter.DurationSeconds",
        ),
        (
            vec![("RoleSessionName", "ok"), ("DurationSeconds", "43201")],
            400,
            "InvalidParameter.DurationSeconds",
        ),
        (vec![], 400, "MissingRoleSessionName"),
    ] {
        let (status, body) = raw(&fake, "GET", &with(&extra)).await;
        assert_eq!(status, status_code, "{extra:?}: {body}");
        assert!(body.contains(&format!("\"Code\":\"{code}\"")), "{body}");
    }
    // Each product checks its own version.
    let (status, body) = raw(
        &fake,
        "GET",
        &[
            ("Action", "AssumeRole"),
            ("Version", "2015-01-01"),
            ("RoleArn", ROLE_ARN),
            ("RoleSessionName", "ok"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("InvalidVersion"), "{body}");
    let (_, body) = raw(
        &fake,
        "GET",
        &[("Action", "DescribeInstances"), ("Version", "2015-04-01")],
    )
    .await;
    assert!(body.contains("InvalidVersion"), "{body}");
    assert_eq!(fake.assume_role_calls(), 8);
}
