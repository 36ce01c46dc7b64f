//! The signed client and DescribeBackups against the fake API, through real
//! sockets: signing, pagination, every fault kind, retries and secrets; and
//! the cloud-native cluster calls (DescribeClusterBackupList) and
//! DescribeBackupPolicy the same way.

use std::time::{Duration, Instant};

use aliyun_backup_exporter::aliyun::credentials::{CredentialsError, CredentialsFuture};
use aliyun_backup_exporter::aliyun::sign;
use aliyun_backup_exporter::aliyun::{ApiError, CredentialsProvider, RetryPolicy};
use aliyun_backup_exporter::clock::ManualClock;
use aliyun_backup_exporter::fake_api::{
    FakeApi, FakeBackup, FakeClusterBackup, FakeInstance, FakeKey, FakePolicy, Fault,
};
use aliyun_backup_exporter::model::BackupStatus;
use aliyun_backup_exporter::products::kvstore::{self, Window};
use chrono::{DateTime, SubsecRound, TimeZone, Utc};

use crate::helpers::*;

const HOUR: Duration = Duration::from_secs(3600);

/// DescribeBackups over the last week, with a deadline far enough away
/// that only the retry policy bounds the call.
async fn describe(
    client: &aliyun_backup_exporter::aliyun::RpcClient,
    instance_id: &str,
) -> Result<Vec<aliyun_backup_exporter::model::Backup>, ApiError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    kvstore::describe_backups(client, instance_id, &week_window(), deadline).await
}

fn week_window() -> Window {
    Window::ending_at(Utc::now(), Duration::from_secs(7 * 86400))
}

/// `n` successful backups an hour apart, the newest an hour ago.
fn hourly_backups(node: &str, n: usize) -> Vec<FakeBackup> {
    let now = Utc::now();
    (1..=n)
        .map(|i| {
            let start = now - chrono::Duration::hours(i as i64);
            FakeBackup::success(
                node,
                start,
                Duration::from_secs(60 + i as u64),
                1000 + i as u64,
            )
        })
        .collect()
}

#[tokio::test]
async fn follows_every_page_of_a_long_window() {
    let fake = fake().await;
    fake.set_instance(
        "r-many",
        FakeInstance::with_backups(hourly_backups("r-many", 150)),
    );
    // Older than the window: must not be served.
    fake.update_instance("r-many", |i| {
        let old = Utc::now() - chrono::Duration::days(30);
        i.backups.push(FakeBackup::success("r-many", old, HOUR, 1));
        // 100 per page: 250 in the window means three pages.
        i.backups.extend(hourly_backups("r-many-db-1", 100));
    });
    let (client, attempts) = ClientBuilder::new(fake.endpoint()).build();

    let backups = describe(&client, "r-many").await.unwrap();

    assert_eq!(backups.len(), 250);
    let pages: Vec<usize> = fake.received().iter().map(|r| r.page_number).collect();
    assert_eq!(pages, vec![1, 2, 3]);
    assert!(fake.received().iter().all(|r| r.page_size >= 100));
    assert_eq!(attempts.codes(), vec!["Success"; 3]);
    let mut starts: Vec<DateTime<Utc>> = backups.iter().map(|b| b.start).collect();
    starts.sort();
    starts.dedup();
    assert_eq!(
        starts.len(),
        150,
        "the two nodes share start times; no duplicates otherwise"
    );
    assert_eq!(
        backups
            .iter()
            .filter(|b| b.node_id == "r-many-db-1")
            .count(),
        100
    );
}

#[tokio::test]
async fn without_a_total_count_pages_are_followed_while_they_come_back_full() {
    let fake = fake().await;
    fake.omit_total_count(true);
    // 250 backups: pages of 100, 100 and 50; then exactly 200: a third,
    // empty page says the list is done.
    // (Two nodes: a week holds 168 hourly backups of one.)
    for (id, n, pages) in [("r-250", 250, vec![1, 2, 3]), ("r-200", 200, vec![1, 2, 3])] {
        let mut backups = hourly_backups(id, n - 100);
        backups.extend(hourly_backups(&format!("{id}-db-1"), 100));
        fake.set_instance(id, FakeInstance::with_backups(backups));
        let (client, _) = ClientBuilder::new(fake.endpoint()).build();
        let backups = describe(&client, id).await.unwrap();
        assert_eq!(backups.len(), n, "{id}");
        let asked: Vec<usize> = fake
            .received()
            .iter()
            .filter(|r| r.instance_id == id)
            .map(|r| r.page_number)
            .collect();
        assert_eq!(asked, pages, "{id}");
    }
    // DescribeInstances likewise: 120 instances in pages of 50.
    for i in 0..120 {
        fake.set_instance(&format!("r-list-{i:03}"), FakeInstance::default());
    }
    let (client, _) = ClientBuilder::new(fake.endpoint()).build();
    let query = kvstore::InstanceQuery {
        region_id: "cn-hangzhou",
        instance_ids: &[],
        tags: &[],
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let listed = kvstore::describe_instances(&client, &query, deadline)
        .await
        .unwrap();
    assert_eq!(
        listed
            .iter()
            .filter(|i| i.instance_id.starts_with("r-list-"))
            .count(),
        120
    );
}

#[tokio::test]
async fn a_failing_page_fails_the_whole_call() {
    let fake = fake().await;
    fake.set_instance(
        "r-many",
        FakeInstance::with_backups(hourly_backups("r-many", 150)),
    );
    let (client, _) = ClientBuilder::new(fake.endpoint()).build();
    // First page fine, second page broken.
    fake.push_faults("r-many", [Fault::Slow(Duration::ZERO), Fault::InvalidJson]);

    let err = describe(&client, "r-many").await.unwrap_err();

    assert!(matches!(err, ApiError::Decode { .. }), "{err:?}");
    assert_eq!(fake.requests_for("r-many"), 2);
}

#[tokio::test]
async fn quirky_types_and_spellings_are_accepted() {
    let fake = fake().await;
    let mut instance = FakeInstance::with_backups(hourly_backups("r-q", 3));
    instance.quirky_types = true;
    fake.set_instance("r-q", instance);
    let (client, _) = ClientBuilder::new(fake.endpoint()).build();

    let backups = describe(&client, "r-q").await.unwrap();

    assert_eq!(backups.len(), 3);
    assert!(backups
        .iter()
        .all(|b| b.status == BackupStatus::Success && b.backup_type == "full"));
    let sizes: Vec<u64> = backups.iter().filter_map(|b| b.size_bytes).collect();
    assert_eq!(sizes, vec![1001, 1002, 1003]);
    assert_no_secret(&format!("{backups:?}"));
}

#[tokio::test]
async fn wrong_secret_is_refused_once_and_nothing_leaks() {
    let fake = fake().await;
    fake.set_instance("r-1", FakeInstance::default());
    let mut builder = ClientBuilder::new(fake.endpoint());
    builder.credentials = credentials("not-the-secret", Some(TOKEN));
    let (client, attempts) = builder.build();

    let err = describe(&client, "r-1").await.unwrap_err();

    let ApiError::Api {
        code,
        status,
        request_id,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!((code.as_str(), *status), ("SignatureDoesNotMatch", 400));
    assert!(request_id
        .as_deref()
        .is_some_and(|id| id.starts_with("FAKE")));
    assert_eq!(
        attempts.codes(),
        vec!["SignatureDoesNotMatch"],
        "auth errors are not retried"
    );
    assert_no_secret(&format!("{err} {err:?}"));
    assert!(!format!("{err:?}").contains("not-the-secret"));
}

#[tokio::test]
async fn security_token_is_sent_and_checked() {
    let fake = FakeApi::start(vec![FakeKey {
        security_token: Some(TOKEN.into()),
        ..key()
    }])
    .await
    .unwrap();
    fake.set_instance("r-1", FakeInstance::with_backups(hourly_backups("r-1", 2)));

    let mut with_token = ClientBuilder::new(fake.endpoint());
    with_token.credentials = credentials(KEY_SECRET, Some(TOKEN));
    let (client, _) = with_token.build();
    assert_eq!(describe(&client, "r-1").await.unwrap().len(), 2);
    assert_eq!(fake.received()[0].security_token.as_deref(), Some(TOKEN));

    let (no_token, _) = ClientBuilder::new(fake.endpoint()).build();
    let err = describe(&no_token, "r-1").await.unwrap_err();
    assert_eq!(err.code_label(), "InvalidSecurityToken.Mismatch");
}

#[tokio::test]
async fn throttling_is_retried_until_it_passes() {
    let fake = fake().await;
    fake.set_instance("r-1", FakeInstance::with_backups(hourly_backups("r-1", 1)));
    fake.push_faults(
        "r-1",
        [
            Fault::Throttle {
                retry_after_ms: None,
            },
            Fault::TooManyRequests,
        ],
    );
    let (client, attempts) = ClientBuilder::new(fake.endpoint()).build();

    let backups = describe(&client, "r-1").await.unwrap();

    assert_eq!(backups.len(), 1);
    assert_eq!(
        attempts.codes(),
        vec!["Throttling.User", "Throttling", "Success"]
    );
}

#[tokio::test]
async fn server_errors_and_unreadable_error_pages_are_retried() {
    let fake = fake().await;
    fake.set_instance("r-1", FakeInstance::with_backups(hourly_backups("r-1", 1)));
    fake.push_faults("r-1", [Fault::ServerError, Fault::Unavailable]);
    let (client, attempts) = ClientBuilder::new(fake.endpoint()).build();

    describe(&client, "r-1").await.unwrap();

    assert_eq!(
        attempts.codes(),
        vec!["InternalError", "http_503", "Success"]
    );
}

#[tokio::test]
async fn gives_up_after_the_attempt_budget() {
    let fake = fake().await;
    fake.update_instance("r-1", |i| i.always = Some(Fault::Unavailable));
    let mut builder = ClientBuilder::new(fake.endpoint());
    builder.retry = fast_retries(3);
    let (client, attempts) = builder.build();

    let err = describe(&client, "r-1").await.unwrap_err();

    assert_eq!(err, ApiError::Http { status: 503 });
    assert_eq!(attempts.codes(), vec!["http_503"; 3]);
}

#[tokio::test]
async fn gives_up_when_the_time_budget_is_spent_honouring_retry_after() {
    let fake = fake().await;
    fake.update_instance("r-1", |i| {
        i.always = Some(Fault::Throttle {
            retry_after_ms: Some(400),
        })
    });
    let mut builder = ClientBuilder::new(fake.endpoint());
    builder.retry = RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
        max_elapsed: Duration::from_millis(1000),
    };
    let (client, attempts) = builder.build();
    let started = Instant::now();

    let err = describe(&client, "r-1").await.unwrap_err();

    // Waits of 400 ms as asked: attempts at ~0, ~0.4 and ~0.8 s; a fourth
    // would start after the 1 s budget, so it is not made.
    assert_eq!(err.code_label(), "Throttling.User");
    assert_eq!(attempts.codes().len(), 3, "{:?}", attempts.codes());
    assert!(started.elapsed() >= Duration::from_millis(800));
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_retried() {
    let fake = fake().await;
    fake.set_instance("r-1", FakeInstance::with_backups(hourly_backups("r-1", 1)));
    fake.push_faults("r-1", [Fault::Slow(Duration::from_secs(3))]);
    let mut builder = ClientBuilder::new(fake.endpoint());
    builder.timeout = Duration::from_millis(300);
    let (client, attempts) = builder.build();

    let backups = describe(&client, "r-1").await.unwrap();

    assert_eq!(backups.len(), 1);
    assert_eq!(attempts.codes(), vec!["timeout", "Success"]);
}

#[tokio::test]
async fn released_instance_is_not_retried() {
    let fake = fake().await;
    let (client, attempts) = ClientBuilder::new(fake.endpoint()).build();

    let err = describe(&client, "r-gone").await.unwrap_err();

    assert_eq!(err.code_label(), "InvalidInstanceId.NotFound");
    assert!(matches!(err, ApiError::Api { status: 404, .. }));
    assert_eq!(attempts.codes().len(), 1);
}

#[tokio::test]
async fn decode_errors_name_the_field_and_carry_the_request_id() {
    let fake = fake().await;
    let (client, attempts) = ClientBuilder::new(fake.endpoint()).build();
    let cases = [
        (Fault::InvalidJson, "not JSON"),
        (
            Fault::Raw {
                status: 200,
                body: r#"{"RequestId":"REQ-7","TotalCount":1,"Backups":{"Backup":[{"BackupStartTime":"2026-01-01T00:00:00Z"}]}}"#.into(),
            },
            "BackupStatus",
        ),
        (
            Fault::Raw {
                status: 200,
                body: r#"{"RequestId":"REQ-8","TotalCount":1,"Backups":{"Backup":[{"BackupStatus":"Success","BackupStartTime":"2026-01-01T00:00:00Z","BackupEndTime":"soon"}]}}"#.into(),
            },
            "BackupEndTime",
        ),
    ];
    for (fault, field) in cases {
        fake.push_faults("r-1", [fault]);
        let err = describe(&client, "r-1").await.unwrap_err();
        let ApiError::Decode { detail, request_id } = &err else {
            panic!("{err:?}")
        };
        assert!(detail.contains(field), "{detail}");
        assert!(
            request_id.as_deref().is_some_and(|id| !id.is_empty()),
            "{err:?}"
        );
        assert_no_secret(&format!("{err} {err:?}"));
    }
    assert_eq!(
        attempts.codes(),
        vec!["decode"; 3],
        "decode errors are not retried"
    );
}

#[tokio::test]
async fn connection_errors_are_retried_and_say_nothing_secret() {
    // A port nothing listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut builder = ClientBuilder::new(format!("http://127.0.0.1:{port}"));
    builder.retry = fast_retries(2);
    builder.credentials = credentials(KEY_SECRET, Some(TOKEN));
    let (client, attempts) = builder.build();

    let err = describe(&client, "r-1").await.unwrap_err();

    assert!(matches!(err, ApiError::Transport(_)), "{err:?}");
    assert_eq!(attempts.codes(), vec!["transport"; 2]);
    assert_no_secret(&format!("{err} {err:?}"));
    assert!(
        !format!("{err:?}").contains("AccessKeyId"),
        "no URL in errors: {err:?}"
    );
}

#[tokio::test]
async fn clock_skew_is_refused_like_the_real_api() {
    let fake = fake().await;
    fake.set_instance("r-1", FakeInstance::default());
    let mut builder = ClientBuilder::new(fake.endpoint());
    builder.clock =
        std::sync::Arc::new(ManualClock::new(Utc::now() - chrono::Duration::minutes(20)));
    let (client, _) = builder.build();

    let err = describe(&client, "r-1").await.unwrap_err();

    assert_eq!(err.code_label(), "InvalidTimeStamp.Expired");
}

/// Sends a request signed by hand, to probe the fake's checks directly.
async fn raw_request(
    fake: &FakeApi,
    method: &str,
    params: &[(&str, &str)],
    secret: &str,
) -> (u16, String) {
    let signature = sign::sign(method, params, secret);
    let mut all: Vec<(&str, &str)> = params.to_vec();
    all.push(("Signature", &signature));
    let url = format!("{}/?{}", fake.endpoint(), sign::canonical_query(&all));
    let client = reqwest::Client::new();
    let response = if method == "GET" {
        client.get(url)
    } else {
        client.post(url)
    }
    .send()
    .await
    .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn common_params(nonce: &'static str, now: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Action", "DescribeBackups".into()),
        ("Version", "2015-01-01".into()),
        ("Format", "JSON".into()),
        ("AccessKeyId", KEY_ID.into()),
        ("SignatureMethod", "HMAC-SHA1".into()),
        ("SignatureVersion", "1.0".into()),
        ("SignatureNonce", nonce.into()),
        ("Timestamp", now.into()),
        ("InstanceId", "r-1".into()),
        ("StartTime", "2026-01-01T00:00Z".into()),
        ("EndTime", "2026-01-02T00:00Z".into()),
    ]
}

#[tokio::test]
async fn fake_checks_nonces_page_sizes_windows_and_methods() {
    let fake = fake().await;
    fake.set_instance("r-1", FakeInstance::default());
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let as_refs = |p: &[(&'static str, String)]| -> Vec<(&'static str, String)> { p.to_vec() };
    let send = |params: Vec<(&'static str, String)>, method: &'static str| {
        let fake = &fake;
        async move {
            let refs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            raw_request(fake, method, &refs, KEY_SECRET).await
        }
    };

    let (status, body) = send(as_refs(&common_params("n-1", &now)), "GET").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(as_refs(&common_params("n-1", &now)), "GET").await;
    assert_eq!(status, 400);
    assert!(body.contains("SignatureNonceUsed"), "{body}");
    // POST is signed with its own method name.
    let (status, body) = send(as_refs(&common_params("n-2", &now)), "POST").await;
    assert_eq!(status, 200, "{body}");

    let mut bad_page = common_params("n-3", &now);
    bad_page.push(("PageSize", "20".into()));
    let (status, body) = send(bad_page, "GET").await;
    assert!(
        status == 400 && body.contains("InvalidPageSize.Malformed"),
        "{body}"
    );

    let mut bad_window = common_params("n-4", &now);
    bad_window.retain(|(k, _)| *k != "EndTime");
    bad_window.push(("EndTime", "2025-12-31T00:00Z".into()));
    let (_, body) = send(bad_window, "GET").await;
    assert!(
        body.contains("InvalidStartTimeAndEndTime.Malformed"),
        "{body}"
    );

    let mut seconds = common_params("n-5", &now);
    seconds.retain(|(k, _)| *k != "StartTime");
    seconds.push(("StartTime", "2026-01-01T00:00:00Z".into()));
    let (_, body) = send(seconds, "GET").await;
    assert!(body.contains("InvalidStartTime.Malformed"), "{body}");

    let mut version = common_params("n-6", &now);
    version.retain(|(k, _)| *k != "Version");
    version.push(("Version", "2014-05-26".into()));
    let (_, body) = send(version, "GET").await;
    assert!(body.contains("InvalidVersion"), "{body}");

    let old = Utc
        .with_ymd_and_hms(2016, 2, 23, 12, 46, 24)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let (_, body) = send(as_refs(&common_params("n-7", &old)), "GET").await;
    assert!(body.contains("InvalidTimeStamp.Expired"), "{body}");
}

/// Credentials that take a while to come, or never come.
struct SlowCredentials {
    delay: Duration,
    fail: bool,
}

impl CredentialsProvider for SlowCredentials {
    fn name(&self) -> &'static str {
        "slow"
    }

    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            if self.fail {
                return Err(CredentialsError {
                    source_name: "slow",
                    message: "STS is down".into(),
                });
            }
            Ok(credentials(KEY_SECRET, None))
        })
    }
}

#[tokio::test]
async fn credentials_time_is_not_api_latency_and_no_credentials_is_no_call() {
    let fake = fake().await;
    fake.set_instance("r-1", FakeInstance::default());
    let mut builder = ClientBuilder::new(fake.endpoint());
    builder.provider = Some(std::sync::Arc::new(SlowCredentials {
        delay: Duration::from_millis(400),
        fail: false,
    }));
    let (client, attempts) = builder.build();
    let started = Instant::now();
    describe(&client, "r-1").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(attempts.codes(), vec!["Success"]);
    assert!(
        attempts.durations()[0] < Duration::from_millis(400),
        "{:?}",
        attempts.durations()
    );

    let mut builder = ClientBuilder::new(fake.endpoint());
    builder.provider = Some(std::sync::Arc::new(SlowCredentials {
        delay: Duration::ZERO,
        fail: true,
    }));
    let (client, attempts) = builder.build();
    let err = describe(&client, "r-1").await.unwrap_err();
    assert_eq!(err.code_label(), "credentials");
    assert!(err.to_string().contains("STS is down"), "{err}");
    assert!(
        attempts.codes().is_empty(),
        "nothing was sent, nothing is counted"
    );
    assert_eq!(fake.requests_for("r-1"), 1);
}

// --- Cloud-native clusters (DescribeClusterBackupList) and backup policies.

const SHARDS: [&str; 3] = ["r-cn-db-0", "r-cn-db-1", "r-cn-db-2"];

async fn cluster_backups(
    client: &aliyun_backup_exporter::aliyun::RpcClient,
    instance_id: &str,
) -> Result<Vec<aliyun_backup_exporter::model::Backup>, ApiError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    kvstore::describe_cluster_backups(client, "cn-hangzhou", instance_id, &week_window(), deadline)
        .await
}

async fn policy(
    client: &aliyun_backup_exporter::aliyun::RpcClient,
    instance_id: &str,
) -> Result<aliyun_backup_exporter::policy::BackupPolicy, ApiError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    kvstore::describe_backup_policy(client, instance_id, deadline).await
}

/// `n` successful one-shard cluster backups an hour apart, the newest an
/// hour ago.
fn hourly_cluster_backups(n: usize) -> Vec<FakeClusterBackup> {
    let now = Utc::now();
    (1..=n)
        .map(|i| {
            let start = now - chrono::Duration::hours(i as i64);
            FakeClusterBackup::ok(&["r-cn-db-0"], start, Duration::from_secs(60), i as u64)
        })
        .collect()
}

#[tokio::test]
async fn cluster_backups_decode_per_shard_through_the_fake() {
    let fake = fake().await;
    let now = Utc::now().trunc_subsecs(0);
    let hours = |h: i64| now - chrono::Duration::hours(h);
    fake.set_instance(
        "r-cn",
        FakeInstance::cloud_native_cluster(
            3,
            vec![
                FakeClusterBackup::ok(&SHARDS, hours(50), Duration::from_secs(120), 1000),
                FakeClusterBackup::ok(&SHARDS, hours(26), Duration::from_secs(90), 2000)
                    .with_shard_failed("r-cn-db-1"),
                FakeClusterBackup::running(&SHARDS, hours(1)),
                // Older than the window: not served.
                FakeClusterBackup::ok(&SHARDS, hours(24 * 30), Duration::from_secs(60), 1),
            ],
        ),
    );
    let (client, attempts) = ClientBuilder::new(fake.endpoint()).build();

    let backups = cluster_backups(&client, "r-cn").await.unwrap();

    assert_eq!(attempts.codes(), vec!["Success"]);
    assert!(!format!("{backups:?}").contains("Signature"));
    let mut got: Vec<(i64, &str, &str, bool, Option<u64>)> = backups
        .iter()
        .map(|b| {
            (
                (now - b.start).num_hours(),
                b.node_id.as_str(),
                b.status.label(),
                b.restorable,
                b.size_bytes,
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (1, "r-cn-db-0", "running", false, None),
            (1, "r-cn-db-1", "running", false, None),
            (1, "r-cn-db-2", "running", false, None),
            (26, "r-cn-db-0", "success", false, Some(2000)),
            (26, "r-cn-db-1", "failed", false, None),
            (26, "r-cn-db-2", "success", false, Some(2000)),
            (50, "r-cn-db-0", "success", true, Some(1000)),
            (50, "r-cn-db-1", "success", true, Some(1000)),
            (50, "r-cn-db-2", "success", true, Some(1000)),
        ]
    );
    // The shards' end times come without their Z: read as UTC.
    let whole: Vec<_> = backups.iter().filter(|b| b.restorable).collect();
    assert!(whole
        .iter()
        .all(|b| b.end == Some(hours(50) + chrono::Duration::seconds(120))));
    assert!(backups
        .iter()
        .all(|b| b.backup_mode == "automated" && b.backup_type == "full"));
    let [request] = &fake.received()[..] else {
        panic!("one request: {:?}", fake.received())
    };
    assert_eq!(request.action, "DescribeClusterBackupList");
    assert_eq!(request.instance_id, "r-cn");
    assert_eq!(request.region_id.as_deref(), Some("cn-hangzhou"));
    assert_eq!(request.page_size, 100);
}

#[tokio::test]
async fn cluster_backups_follow_pages_while_they_come_back_full() {
    let fake = fake().await;
    fake.set_instance(
        "r-cn",
        FakeInstance::cloud_native_cluster(1, hourly_cluster_backups(150)),
    );
    fake.set_instance(
        "r-even",
        FakeInstance::cloud_native_cluster(1, hourly_cluster_backups(100)),
    );
    let (client, attempts) = ClientBuilder::new(fake.endpoint()).build();

    let backups = cluster_backups(&client, "r-cn").await.unwrap();
    assert_eq!(backups.len(), 150);
    let mut sizes: Vec<u64> = backups.iter().filter_map(|b| b.size_bytes).collect();
    sizes.sort();
    assert_eq!(sizes, (1..=150).collect::<Vec<u64>>(), "each backup once");
    let pages = |id: &str| -> Vec<usize> {
        fake.received()
            .iter()
            .filter(|r| r.instance_id == id)
            .map(|r| r.page_number)
            .collect()
    };
    assert_eq!(pages("r-cn"), vec![1, 2]);

    // Exactly one full page: a second (empty) page says it was the last.
    assert_eq!(cluster_backups(&client, "r-even").await.unwrap().len(), 100);
    assert_eq!(pages("r-even"), vec![1, 2]);
    assert_eq!(attempts.codes(), vec!["Success"; 4]);
}

#[tokio::test]
async fn the_wrong_backup_call_is_not_applicable_both_ways() {
    let fake = fake().await;
    fake.set_instance(
        "r-cn",
        FakeInstance::cloud_native_cluster(3, hourly_cluster_backups(2)),
    );
    fake.set_instance(
        "r-std",
        FakeInstance::with_backups(hourly_backups("r-std", 2)),
    );
    let (client, attempts) = ClientBuilder::new(fake.endpoint()).build();

    for err in [
        describe(&client, "r-cn").await.unwrap_err(),
        cluster_backups(&client, "r-std").await.unwrap_err(),
    ] {
        assert!(
            matches!(&err, ApiError::Api { code, status: 400, .. } if code == "InstanceType.NotSupport"),
            "{err:?}"
        );
        assert!(kvstore::is_not_applicable(&err), "{err:?}");
    }
    // Final answers: not retried.
    assert_eq!(attempts.codes(), vec!["InstanceType.NotSupport"; 2]);
    // The right call for each works.
    assert_eq!(describe(&client, "r-std").await.unwrap().len(), 2);
    assert_eq!(cluster_backups(&client, "r-cn").await.unwrap().len(), 2);
    // An unknown instance is not "not applicable".
    let err = cluster_backups(&client, "r-gone").await.unwrap_err();
    assert_eq!(err.code_label(), "InvalidInstanceId.NotFound");
    assert!(!kvstore::is_not_applicable(&err));
}

#[tokio::test]
async fn cluster_backup_listing_has_the_instance_faults_accounts_and_regions() {
    let fake = fake().await;
    let mut instance = FakeInstance::cloud_native_cluster(1, hourly_cluster_backups(3));
    instance.queued_faults.extend([
        Fault::Throttle {
            retry_after_ms: None,
        },
        Fault::ServerError,
    ]);
    fake.set_instance("r-cn", instance);
    let (client, attempts) = ClientBuilder::new(fake.endpoint()).build();

    assert_eq!(cluster_backups(&client, "r-cn").await.unwrap().len(), 3);
    assert_eq!(
        attempts.codes(),
        vec!["Throttling.User", "InternalError", "Success"]
    );

    // Action faults by name, and a broken body.
    fake.push_action_faults("DescribeClusterBackupList", [Fault::InvalidJson]);
    let err = cluster_backups(&client, "r-cn").await.unwrap_err();
    assert!(matches!(err, ApiError::Decode { .. }), "{err:?}");

    // Another account's instance, and one asked for in another region, do
    // not exist for the caller.
    fake.update_instance("r-cn", |i| i.account = Some("other".into()));
    let err = cluster_backups(&client, "r-cn").await.unwrap_err();
    assert_eq!(err.code_label(), "InvalidInstanceId.NotFound");
    fake.update_instance("r-cn", |i| {
        i.account = None;
        i.info.region_id = "cn-shanghai".into();
    });
    let err = cluster_backups(&client, "r-cn").await.unwrap_err();
    assert_eq!(err.code_label(), "InvalidInstanceId.NotFound");
    fake.update_instance("r-cn", |i| i.always = Some(Fault::NotFound));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let err =
        kvstore::describe_cluster_backups(&client, "cn-shanghai", "r-cn", &week_window(), deadline)
            .await
            .unwrap_err();
    assert_eq!(err.code_label(), "InvalidInstanceId.NotFound");
}

#[tokio::test]
async fn backup_policy_through_the_fake() {
    let fake = fake().await;
    fake.set_instance("r-1", FakeInstance::default());
    fake.set_instance(
        "r-2",
        FakeInstance {
            policy: FakePolicy {
                period: "Monday,Thursday".into(),
                time: "23:00Z-01:00Z".into(),
                retention_days: 15,
                log_backup: true,
            },
            ..FakeInstance::cloud_native_cluster(2, Vec::new())
        },
    );
    let (client, attempts) = ClientBuilder::new(fake.endpoint()).build();

    let default = policy(&client, "r-1").await.unwrap();
    assert_eq!(default.days.label(), "mon,tue,wed,thu,fri,sat,sun");
    assert_eq!(default.window, "02:00Z-03:00Z");
    assert_eq!(default.retention_days, Some(7));
    assert_eq!(default.log_backup_enabled, Some(false));
    assert_eq!(
        default.expected_max_age(HOUR),
        Some(Duration::from_secs(26 * 3600))
    );
    let custom = policy(&client, "r-2").await.unwrap();
    assert_eq!(custom.days.label(), "mon,thu");
    assert_eq!(custom.window, "23:00Z-01:00Z");
    assert_eq!(custom.retention_days, Some(15));
    assert_eq!(custom.log_backup_enabled, Some(true));
    assert_eq!(attempts.codes(), vec!["Success"; 2]);
    let received = fake.received();
    assert!(received
        .iter()
        .all(|r| r.action == "DescribeBackupPolicy" && r.outcome == "Success"));
    assert_eq!(
        received
            .iter()
            .map(|r| r.instance_id.as_str())
            .collect::<Vec<_>>(),
        ["r-1", "r-2"]
    );

    // The listing's faults are not the policy's.
    fake.push_faults("r-1", [Fault::NotFound]);
    fake.update_instance("r-1", |i| i.always = Some(Fault::ServerError));
    assert!(policy(&client, "r-1").await.is_ok());
    fake.update_instance("r-1", |i| i.always = None);
    assert_eq!(
        describe(&client, "r-1").await.unwrap_err().code_label(),
        "InvalidInstanceId.NotFound"
    );

    // Unknown, released and another account's instances.
    fake.update_instance("r-2", |i| i.account = Some("other".into()));
    for id in ["r-2", "r-nope"] {
        let err = policy(&client, id).await.unwrap_err();
        assert_eq!(err.code_label(), "InvalidInstanceId.NotFound", "{id}");
    }

    // Throttling of the action is retried.
    fake.push_action_faults(
        "DescribeBackupPolicy",
        [Fault::Throttle {
            retry_after_ms: None,
        }],
    );
    assert!(policy(&client, "r-1").await.is_ok());
}

#[tokio::test]
async fn a_policy_the_ram_policy_forbids_is_final() {
    let fake = fake().await;
    fake.set_instance(
        "r-1",
        FakeInstance {
            policy_fault: Some(Fault::Forbidden),
            ..FakeInstance::with_backups(hourly_backups("r-1", 1))
        },
    );
    let (client, attempts) = ClientBuilder::new(fake.endpoint()).build();

    let err = policy(&client, "r-1").await.unwrap_err();

    assert!(
        matches!(&err, ApiError::Api { code, status: 403, .. } if code == "Forbidden.RAM"),
        "{err:?}"
    );
    assert!(!kvstore::is_not_applicable(&err));
    assert_eq!(attempts.codes(), vec!["Forbidden.RAM"], "not retried");
    // The backups themselves are still listed.
    assert_eq!(describe(&client, "r-1").await.unwrap().len(), 1);
    assert_eq!(
        fake.received()
            .iter()
            .map(|r| r.outcome.as_str())
            .collect::<Vec<_>>(),
        ["Forbidden.RAM", "Success"]
    );
}

/// A request's parameters, and a change made to them.
type RawParams = Vec<(&'static str, String)>;
type Change<'a> = &'a dyn Fn(&mut RawParams);

fn cluster_params(nonce: &'static str, now: &str) -> RawParams {
    let mut params = common_params(nonce, now);
    params.retain(|(k, _)| *k != "Action");
    params.extend([
        ("Action", "DescribeClusterBackupList".into()),
        ("RegionId", "cn-hangzhou".into()),
    ]);
    params
}

#[tokio::test]
async fn fake_checks_cluster_backup_list_parameters_and_answers_real_shapes() {
    let fake = fake().await;
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap();
    fake.set_instance(
        "r-1",
        FakeInstance::cloud_native_cluster(
            2,
            vec![
                FakeClusterBackup::ok(&["r-1-db-0", "r-1-db-1"], start, HOUR, 4096)
                    .with_shard_failed("r-1-db-1"),
            ],
        ),
    );
    let now = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let send = |nonce: &'static str, change: Change<'_>| {
        let mut params = cluster_params(nonce, &now);
        change(&mut params);
        let fake = &fake;
        async move {
            let refs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            raw_request(fake, "GET", &refs, KEY_SECRET).await
        }
    };
    let set = |name: &'static str, value: &'static str| {
        move |p: &mut RawParams| {
            p.retain(|(k, _)| *k != name);
            p.push((name, value.to_string()));
        }
    };
    let drop = |name: &'static str| move |p: &mut RawParams| p.retain(|(k, _)| *k != name);

    let refusals: [(&'static str, Change<'_>, &str); 7] = [
        ("c-1", &drop("StartTime"), "MissingStartTime"),
        (
            "c-2",
            &set("StartTime", "2026-01-01T00:00:00Z"),
            "InvalidStartTime.Malformed",
        ),
        (
            "c-3",
            &set("EndTime", "2026-01-02"),
            "InvalidEndTime.Malformed",
        ),
        ("c-4", &set("PageSize", "7"), "InvalidPageSize.Malformed"),
        ("c-5", &drop("RegionId"), "MissingRegionId"),
        ("c-6", &set("ClusterBackupId", ""), "InvalidParameter"),
        (
            "c-7",
            &set("RegionId", "cn-beijing"),
            "InvalidInstanceId.NotFound",
        ),
    ];
    for (nonce, change, code) in refusals {
        let (status, body) = send(nonce, change).await;
        assert!(
            status >= 400 && body.contains(code),
            "{code}: {status} {body}"
        );
    }

    let (status, body) = send("c-8", &set("PageSize", "5")).await;
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["PageSize"], 5);
    let clusters = doc["ClusterBackups"].as_array().expect("a plain array");
    let [cluster] = &clusters[..] else {
        panic!("{body}")
    };
    assert!(cluster["ClusterBackupId"]
        .as_str()
        .unwrap()
        .starts_with("cb-"));
    assert_eq!(cluster["ClusterBackupStatus"], "Failed");
    assert_eq!(cluster["IsAvail"], 0);
    assert_eq!(cluster["ClusterBackupSize"], "4096");
    assert_eq!(cluster["ClusterBackupStartTime"], "2026-01-01T10:00:00Z");
    assert!(cluster.get("Progress").is_none());
    let shards = cluster["Backups"].as_array().expect("a plain array");
    assert_eq!(shards.len(), 2);
    assert!(shards[0]["BackupId"].is_string());
    assert_eq!(shards[0]["InstanceName"], "r-1-db-0");
    assert_eq!(shards[0]["BackupStatus"], "OK");
    assert_eq!(shards[0]["IsAvail"], "1");
    assert_eq!(shards[0]["BackupSize"], "4096");
    assert_eq!(shards[0]["BackupStartTime"], "2026-01-01T10:00:00");
    assert_eq!(shards[0]["BackupEndTime"], "2026-01-01T11:00:00");
    assert!(shards[0]["BackupDownloadURL"]
        .as_str()
        .unwrap()
        .contains("Signature="));
    assert_eq!(shards[1]["BackupStatus"], "ERROR");
    assert_eq!(shards[1]["IsAvail"], "0");
    let backups = kvstore::decode_cluster_page(body.as_bytes(), "r-1").unwrap();
    assert_eq!(backups.len(), 2);
    assert!(backups.iter().all(|b| !b.restorable));

    // NoShardBackup leaves out the shards.
    let (status, body) = send("c-9", &set("NoShardBackup", "true")).await;
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(doc["ClusterBackups"][0].get("Backups").is_none(), "{body}");
    let whole = kvstore::decode_cluster_page(body.as_bytes(), "r-1").unwrap();
    assert_eq!(
        whole
            .iter()
            .map(|b| (b.node_id.as_str(), b.status.label()))
            .collect::<Vec<_>>(),
        [("r-1", "failed")]
    );

    // DescribeBackupPolicy's answer: a string retention, a numeric flag.
    let mut policy = common_params("c-10", &now);
    policy.retain(|(k, _)| !["Action", "StartTime", "EndTime"].contains(k));
    policy.push(("Action", "DescribeBackupPolicy".into()));
    let refs: Vec<(&str, &str)> = policy.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = raw_request(&fake, "POST", &refs, KEY_SECRET).await;
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["BackupRetentionPeriod"], "7");
    assert_eq!(doc["EnableBackupLog"], 0);
    assert_eq!(doc["PreferredBackupTime"], "02:00Z-03:00Z");
    let next = doc["PreferredNextBackupTime"].as_str().unwrap();
    assert!(next.ends_with("T02:00Z"), "{next}");
}
