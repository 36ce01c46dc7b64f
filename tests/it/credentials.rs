//! Credentials: each provider against fake STS and metadata servers (real
//! HTTP on loopback), the chain's order, refresh ahead of expiry through an
//! injectable clock (credentials of any lifetime), failures, many requests
//! sharing one refresh, and STS requests stamped with the injected clock.
//! Every chain built here has its metadata endpoint on loopback or disabled.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aliyun_backup_exporter::aliyun::credentials::assume_role::{
    AssumeRoleFetcher, AssumeRoleSettings,
};
use aliyun_backup_exporter::aliyun::credentials::chain::{self, Endpoints, Pin, Source};
use aliyun_backup_exporter::aliyun::credentials::ecs::{EcsFetcher, EcsSettings};
use aliyun_backup_exporter::aliyun::credentials::refresh::{
    Fetch, NoRefreshObserver, RefreshObserver, Refreshing,
};
use aliyun_backup_exporter::aliyun::credentials::sts::{OidcFetcher, OidcSettings};
use aliyun_backup_exporter::aliyun::{CredentialsProvider, RpcClient, StaticProvider};
use aliyun_backup_exporter::app;
use aliyun_backup_exporter::cli::Cli;
use aliyun_backup_exporter::clock::{Clock, ManualClock};
use aliyun_backup_exporter::config::Config;
use aliyun_backup_exporter::fake_api::{
    FakeApi, FakeBackup, FakeInstance, FakeKey, FakeRole, Fault,
};
use chrono::{DateTime, Utc};
use clap::Parser;

use crate::fake_cloud::*;
use crate::helpers::*;

/// A fresh directory for token and profile files, removed when dropped.
struct TestDir(tempfile::TempDir);

impl std::ops::Deref for TestDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        self.0.path()
    }
}

fn temp_dir(name: &str) -> TestDir {
    TestDir(
        tempfile::Builder::new()
            .prefix(&format!("abe-creds-{name}-"))
            .tempdir()
            .expect("a temporary directory"),
    )
}

fn oidc_settings(sts: &FakeSts, token_file: PathBuf) -> OidcSettings {
    OidcSettings {
        role_arn: "acs:ram::123:role/backup-reader".into(),
        provider_arn: "acs:ram::123:oidc-provider/ack-rrsa-c1".into(),
        token_file,
        session_name: "test".into(),
        duration_seconds: 3600,
        sts_endpoint: sts.endpoint.clone(),
    }
}

fn env_of(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    move |k| map.get(k).cloned()
}

fn loopback_endpoints() -> Endpoints {
    Endpoints {
        sts: "http://127.0.0.1:9".into(),
        metadata: "http://127.0.0.1:9".into(),
    }
}

#[tokio::test]
async fn rrsa_exporter_polls_with_sts_credentials_and_refreshes_before_expiry() {
    let clock = ManualClock::new(Utc::now());
    let shared_clock: Arc<dyn Clock> = Arc::new(clock.clone());
    let sts = fake_sts(
        shared_clock.clone(),
        Duration::from_secs(600),
        Duration::ZERO,
    )
    .await;
    let dir = temp_dir("rrsa");
    let token_file = dir.join("token");
    std::fs::write(&token_file, "oidc-token-A\n").unwrap();

    // The fake API accepts the first two STS credentials, each with its token.
    let keys = (1..=2)
        .map(|n| FakeKey {
            id: format!("STS.{n}"),
            secret: format!("sts-secret-{n}"),
            security_token: Some(format!("token-{n}")),
            account: "main".into(),
        })
        .collect();
    let api = FakeApi::start(keys).await.unwrap();
    let end = Utc::now() - chrono::Duration::hours(2);
    api.set_instance(
        "r-1",
        FakeInstance::with_backups(vec![FakeBackup::success(
            "r-1",
            end,
            Duration::from_secs(60),
            1,
        )]),
    );

    // Only the three RRSA variables, as the ACK webhook injects them.
    let env = env_of(&[
        (
            "ALIBABA_CLOUD_ROLE_ARN",
            "acs:ram::123:role/backup-reader".into(),
        ),
        (
            "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
            "acs:ram::123:oidc-provider/ack-rrsa-c1".into(),
        ),
        (
            "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
            token_file.display().to_string(),
        ),
        ("HOME", dir.display().to_string()),
    ]);
    let cli = Cli::try_parse_from([
        "aliyun-backup-exporter",
        "--aliyun.region=cn-hangzhou",
        "--redis.instance-id=r-1",
        "--web.listen-address=127.0.0.1:0",
        "--poll.interval=1s",
        &format!("--aliyun.endpoint={}", api.endpoint()),
        &format!("--aliyun.sts-endpoint={}", sts.endpoint),
        "--aliyun.metadata-endpoint=http://127.0.0.1:9",
    ])
    .unwrap();
    let config = Config::from_cli(&cli, &env, None).unwrap();
    let running = app::start_with_env(config, shared_clock, Arc::new(env))
        .await
        .unwrap();
    let metrics_url = format!("http://{}/metrics", running.addr);
    let scrape = || async {
        parse_exposition(
            &reqwest::get(&metrics_url)
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
    };

    eventually("a first successful poll", || async {
        let m = scrape().await;
        (find(&m, "aliyun_backup_poll_success", &[])
            .first()
            .map(|s| s.value)
            == Some(1.0))
        .then_some(())
    })
    .await;
    assert_eq!(sts.state.lock().unwrap().calls, 1);
    assert_eq!(api.received()[0].security_token.as_deref(), Some("token-1"));
    let m = scrape().await;
    let first_expiry = value(
        &m,
        "aliyun_backup_credentials_expiry_timestamp_seconds",
        &[("provider", "oidc")],
    );

    // Eight minutes later two are left: inside the refresh window. The
    // kubelet has rotated the token file meanwhile.
    std::fs::write(&token_file, "oidc-token-B\n").unwrap();
    clock.advance(chrono::Duration::minutes(8));
    eventually("requests signed with the refreshed credentials", || async {
        api.received()
            .iter()
            .any(|r| r.security_token.as_deref() == Some("token-2"))
            .then_some(())
    })
    .await;

    let m = scrape().await;
    assert_eq!(
        sts.state.lock().unwrap().tokens,
        vec!["oidc-token-A", "oidc-token-B"]
    );
    assert_eq!(
        value(
            &m,
            "aliyun_backup_credentials_refreshes_total",
            &[("provider", "oidc"), ("result", "success")]
        ),
        2.0
    );
    let second_expiry = value(
        &m,
        "aliyun_backup_credentials_expiry_timestamp_seconds",
        &[("provider", "oidc")],
    );
    assert_eq!(second_expiry - first_expiry, 480.0);
    // Not one failed poll or call on the way (DescribeBackups, and the
    // DescribeInstances lookup of the static instance).
    let codes: Vec<&str> = find(&m, "aliyun_backup_api_requests_total", &[])
        .iter()
        .map(|s| s.labels["code"].as_str())
        .collect();
    assert!(
        !codes.is_empty() && codes.iter().all(|c| *c == "Success"),
        "{codes:?}"
    );
    assert!(api.received().iter().all(|r| r.outcome == "Success"));
    running.stop().await;
}

#[tokio::test]
async fn many_concurrent_requests_share_one_refresh() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Utc::now()));
    let sts = fake_sts(
        clock.clone(),
        Duration::from_secs(3600),
        Duration::from_millis(200),
    )
    .await;
    let dir = temp_dir("concurrent");
    std::fs::write(dir.join("token"), "t").unwrap();
    let provider = Arc::new(Refreshing::new(
        OidcFetcher::new(oidc_settings(&sts, dir.join("token"))).unwrap(),
        clock,
        Arc::new(NoRefreshObserver),
    ));

    let calls: Vec<_> = (0..50)
        .map(|_| {
            let p = provider.clone();
            tokio::spawn(async move { p.credentials().await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().access_key_id, "STS.1");
    }
    assert_eq!(sts.state.lock().unwrap().calls, 1);
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_valid_credentials_and_retries_with_backoff() {
    let clock = ManualClock::new(Utc::now());
    let sts = fake_sts(
        Arc::new(clock.clone()),
        Duration::from_secs(600),
        Duration::ZERO,
    )
    .await;
    let dir = temp_dir("failing");
    std::fs::write(dir.join("token"), "t").unwrap();
    let provider = Refreshing::new(
        OidcFetcher::new(oidc_settings(&sts, dir.join("token"))).unwrap(),
        Arc::new(clock.clone()),
        Arc::new(NoRefreshObserver),
    );
    assert_eq!(provider.credentials().await.unwrap().access_key_id, "STS.1");

    // Inside the refresh window, STS down: still the valid ones.
    sts.state.lock().unwrap().always_failing = true;
    clock.advance(chrono::Duration::minutes(8));
    assert_eq!(provider.credentials().await.unwrap().access_key_id, "STS.1");
    assert_eq!(sts.state.lock().unwrap().calls, 2);
    // Backoff: no new attempt at once…
    assert_eq!(provider.credentials().await.unwrap().access_key_id, "STS.1");
    assert_eq!(sts.state.lock().unwrap().calls, 2);
    // …but one after the wait.
    clock.advance(chrono::Duration::seconds(2));
    sts.state.lock().unwrap().always_failing = false;
    assert_eq!(provider.credentials().await.unwrap().access_key_id, "STS.3");

    // Expired and STS down: a clear error naming the source.
    sts.state.lock().unwrap().always_failing = true;
    clock.advance(chrono::Duration::minutes(30));
    let err = provider.credentials().await.unwrap_err();
    assert_eq!(err.source_name, "oidc");
    assert!(err.message.contains("ServiceUnavailable"), "{err}");
}

#[tokio::test]
async fn broken_sts_answers_and_token_files_are_clear_errors() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Utc::now()));
    let sts = fake_sts(clock.clone(), Duration::from_secs(600), Duration::ZERO).await;
    let dir = temp_dir("broken");
    let fetch_error = |file: PathBuf| {
        let settings = oidc_settings(&sts, file);
        let clock = clock.clone();
        async move {
            Refreshing::new(
                OidcFetcher::new(settings).unwrap(),
                clock,
                Arc::new(NoRefreshObserver),
            )
            .credentials()
            .await
            .unwrap_err()
            .to_string()
        }
    };

    let missing = dir.join("no-such-token");
    let err = fetch_error(missing.clone()).await;
    assert!(
        err.starts_with("oidc:") && err.contains(&missing.display().to_string()),
        "{err}"
    );
    assert_eq!(
        sts.state.lock().unwrap().calls,
        0,
        "no STS call without a token"
    );

    std::fs::write(dir.join("token"), "t").unwrap();
    sts.state.lock().unwrap().troubles.push_back(Trouble::Body(
        r#"{"Credentials":{"AccessKeyId":"a","AccessKeySecret":"s","Expiration":"2030-01-01T00:00:00Z"}}"#.into(),
    ));
    let err = fetch_error(dir.join("token")).await;
    assert!(err.contains("SecurityToken"), "{err}");
    sts.state
        .lock()
        .unwrap()
        .troubles
        .push_back(Trouble::Body("<html>".into()));
    assert!(fetch_error(dir.join("token")).await.contains("not JSON"));
    sts.state
        .lock()
        .unwrap()
        .troubles
        .push_back(Trouble::Status(403));
    assert!(fetch_error(dir.join("token"))
        .await
        .contains("ServiceUnavailable"));
}

#[tokio::test]
async fn ecs_role_hardened_mode_discovers_the_role() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Utc::now()));
    let md = fake_metadata(clock.clone(), "backup-reader", true).await;
    let settings = EcsSettings {
        role_name: None,
        metadata_endpoint: md.endpoint.clone(),
        hardened_only: true,
    };
    let provider = Refreshing::new(
        EcsFetcher::new(settings).unwrap(),
        clock,
        Arc::new(NoRefreshObserver),
    );

    let creds = provider.credentials().await.unwrap();

    assert_eq!(creds.access_key_id, "STS.ecs1");
    assert_eq!(
        creds.security_token.as_ref().map(|t| t.expose()),
        Some("ecs-token-1")
    );
    let s = md.state.lock().unwrap();
    assert_eq!(
        (s.token_requests, s.reads_with_token, s.reads_without_token),
        (1, 2, 0)
    );
}

#[tokio::test]
async fn ecs_role_falls_back_to_plain_reads_unless_disabled() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Utc::now()));
    let md = fake_metadata(clock.clone(), "backup-reader", false).await;
    let plain = EcsSettings {
        role_name: Some("backup-reader".into()),
        metadata_endpoint: md.endpoint.clone(),
        hardened_only: false,
    };
    let provider = Refreshing::new(
        EcsFetcher::new(plain.clone()).unwrap(),
        clock.clone(),
        Arc::new(NoRefreshObserver),
    );
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id,
        "STS.ecs1"
    );
    assert_eq!(md.state.lock().unwrap().reads_without_token, 1);

    let hardened = EcsSettings {
        hardened_only: true,
        ..plain
    };
    let provider = Refreshing::new(
        EcsFetcher::new(hardened).unwrap(),
        clock,
        Arc::new(NoRefreshObserver),
    );
    let err = provider.credentials().await.unwrap_err().to_string();
    assert!(
        err.starts_with("ecs-ram-role") && err.contains("ALIBABA_CLOUD_IMDSV1_DISABLED"),
        "{err}"
    );
}

#[tokio::test]
async fn broken_metadata_answers_are_clear_errors() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Utc::now()));
    let md = fake_metadata(clock.clone(), "backup-reader", true).await;
    let settings = EcsSettings {
        role_name: None,
        metadata_endpoint: md.endpoint.clone(),
        hardened_only: false,
    };
    let cases = [
        (
            r#"{"Code":"Failed","Message":"role detached"}"#,
            "Code Some(\"Failed\")",
        ),
        ("<html>oops</html>", "not JSON"),
        (
            r#"{"Code":"Success","AccessKeyId":"a","AccessKeySecret":"s","SecurityToken":"t","Expiration":"soon"}"#,
            "Expiration",
        ),
        (
            r#"{"Code":"Success","AccessKeyId":"a","SecurityToken":"t","Expiration":"2030-01-01T00:00:00Z"}"#,
            "AccessKeySecret",
        ),
    ];
    for (body, expected) in cases {
        md.state.lock().unwrap().credentials_body = Some(body.to_string());
        let provider = Refreshing::new(
            EcsFetcher::new(settings.clone()).unwrap(),
            clock.clone(),
            Arc::new(NoRefreshObserver),
        );
        let err = provider.credentials().await.unwrap_err().to_string();
        assert!(
            err.starts_with("ecs-ram-role") && err.contains(expected),
            "{err} should mention {expected}"
        );
        assert!(err.contains("backup-reader"), "names the role: {err}");
    }
}

#[test]
fn the_chain_follows_the_official_order() {
    let dir = temp_dir("chain");
    let home = dir.display().to_string();
    std::fs::create_dir_all(dir.join(".aliyun")).unwrap();
    std::fs::create_dir_all(dir.join(".alibabacloud")).unwrap();
    let ak = [
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "env-id".to_string()),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "env-secret".to_string()),
    ];
    let token_file = dir.join("token");
    std::fs::write(&token_file, "oidc-token").unwrap();
    let rrsa = [
        ("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1:role/r".to_string()),
        (
            "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
            "acs:ram::1:oidc-provider/p".to_string(),
        ),
        (
            "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
            token_file.display().to_string(),
        ),
    ];
    let select = |pairs: Vec<(&str, String)>| {
        let mut pairs = pairs;
        pairs.push(("HOME", home.clone()));
        chain::select(Pin::Auto, &env_of(&pairs), &loopback_endpoints())
    };
    let all = |extra: &[(&'static str, String)]| -> Vec<(&'static str, String)> { extra.to_vec() };

    // Nothing at all: the ECS role, probed at start-up, on the given endpoint.
    let Source::Ecs {
        settings,
        probe: true,
    } = select(vec![]).unwrap()
    else {
        panic!()
    };
    assert_eq!(settings.metadata_endpoint, "http://127.0.0.1:9");
    // Disabled: a clear error.
    let err = select(vec![("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true".into())]).unwrap_err();
    assert!(err.message.contains("ALIBABA_CLOUD_ACCESS_KEY_ID"), "{err}");

    std::fs::write(
        dir.join(".alibabacloud/credentials"),
        "[default]\ntype = access_key\naccess_key_id = ini-id\naccess_key_secret = s\n",
    )
    .unwrap();
    assert_eq!(select(vec![]).unwrap().name(), "credentials-file");

    std::fs::write(
        dir.join(".aliyun/config.json"),
        r#"{"current":"default","profiles":[{"name":"default","mode":"AK","access_key_id":"cli-id","access_key_secret":"s"}]}"#,
    )
    .unwrap();
    assert_eq!(select(vec![]).unwrap().name(), "cli-profile");

    let Source::Oidc(oidc) = select(all(&rrsa)).unwrap() else {
        panic!()
    };
    assert_eq!(oidc.sts_endpoint, "http://127.0.0.1:9");
    assert_eq!(oidc.session_name, "aliyun-backup-exporter");

    let mut both = all(&rrsa);
    both.extend(ak.iter().cloned());
    let Source::Static { name, credentials } = select(both).unwrap() else {
        panic!()
    };
    assert_eq!(
        (name, credentials.access_key_id.as_str()),
        ("env", "env-id")
    );

    // A token file named but missing stops start-up, naming it.
    let mut missing = all(&rrsa);
    missing[2].1 = dir.join("no-token").display().to_string();
    let err = select(missing).unwrap_err();
    assert!(
        err.to_string().starts_with("oidc") && err.to_string().contains("no-token"),
        "{err}"
    );

    // A half-configured source is an error, not a silent fall-through.
    let err = select(vec![rrsa[0].clone()]).unwrap_err();
    assert!(
        err.to_string().contains("ALIBABA_CLOUD_OIDC_PROVIDER_ARN"),
        "{err}"
    );
    let empty_home_dir = temp_dir("empty-home");
    let empty_home = empty_home_dir.display().to_string();
    let env = env_of(&[
        ("HOME", empty_home),
        (
            "ALIBABA_CLOUD_CREDENTIALS_FILE",
            "/nonexistent/creds".into(),
        ),
    ]);
    let err = chain::select(Pin::Auto, &env, &loopback_endpoints()).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/creds"), "{err}");
}

#[test]
fn a_pinned_provider_is_the_only_one_tried() {
    let dir = temp_dir("pinned");
    let env = env_of(&[
        ("HOME", dir.display().to_string()),
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "id".into()),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "s".into()),
        ("ALIBABA_CLOUD_ECS_METADATA", "my-role".into()),
        ("ALIBABA_CLOUD_IMDSV1_DISABLED", "true".into()),
    ]);
    let Source::Ecs {
        settings,
        probe: false,
    } = chain::select(Pin::EcsRamRole, &env, &loopback_endpoints()).unwrap()
    else {
        panic!()
    };
    assert_eq!(settings.role_name.as_deref(), Some("my-role"));
    assert!(settings.hardened_only);
    let err = chain::select(Pin::Oidc, &env, &loopback_endpoints()).unwrap_err();
    assert!(err.to_string().contains("ALIBABA_CLOUD_ROLE_ARN"), "{err}");
    let err = chain::select(Pin::CliProfile, &env, &loopback_endpoints()).unwrap_err();
    assert!(err.to_string().starts_with("cli-profile"), "{err}");
    // An ECS role named in a profile file.
    std::fs::create_dir_all(dir.join(".alibabacloud")).unwrap();
    std::fs::write(
        dir.join(".alibabacloud/credentials"),
        "[default]\ntype = ecs_ram_role\nrole_name = from-file\n",
    )
    .unwrap();
    let Source::Ecs { settings, .. } =
        chain::select(Pin::CredentialsFile, &env, &loopback_endpoints()).unwrap()
    else {
        panic!()
    };
    assert_eq!(settings.role_name.as_deref(), Some("from-file"));
    assert_eq!(settings.metadata_endpoint, "http://127.0.0.1:9");
}

#[test]
fn default_sts_endpoints() {
    let plain = env_of(&[]);
    assert_eq!(
        chain::default_sts_endpoint(&plain),
        "https://sts.aliyuncs.com"
    );
    let regional = env_of(&[("ALIBABA_CLOUD_STS_REGION", "cn-shanghai".into())]);
    assert_eq!(
        chain::default_sts_endpoint(&regional),
        "https://sts.cn-shanghai.aliyuncs.com"
    );
    let vpc = env_of(&[
        ("ALIBABA_CLOUD_STS_REGION", "cn-shanghai".into()),
        ("ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED", "true".into()),
    ]);
    assert_eq!(
        chain::default_sts_endpoint(&vpc),
        "https://sts-vpc.cn-shanghai.aliyuncs.com"
    );
}

#[test]
fn secrets_of_temporary_credentials_never_print() {
    use aliyun_backup_exporter::aliyun::credentials::refresh::Temporary;
    let temporary = Temporary {
        credentials: credentials(KEY_SECRET, Some(TOKEN)),
        expiration: Utc::now(),
    };
    let text = format!("{temporary:?}");
    assert!(text.contains(KEY_ID), "{text}");
    assert_no_secret(&text);
    assert!(!text.contains(TOKEN));
}

const ROLE_ARN: &str = "acs:ram::1234567890123456:role/backup-reader";

/// Now, to the second: STS expirations are whole seconds, so that the
/// refresh times below come out exact.
fn whole_second_now() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).expect("now is a valid time")
}

/// A refresh: the clock's time then, whether it worked, the expiration.
type Refresh = (DateTime<Utc>, bool, Option<DateTime<Utc>>);

/// Notes every refresh.
struct Refreshes {
    clock: ManualClock,
    seen: Mutex<Vec<Refresh>>,
}

impl RefreshObserver for Refreshes {
    fn refreshed(&self, _: &'static str, ok: bool, expiration: Option<DateTime<Utc>>) {
        self.seen
            .lock()
            .unwrap()
            .push((self.clock.now(), ok, expiration));
    }
}

fn role_settings(fake: &FakeApi) -> AssumeRoleSettings {
    AssumeRoleSettings {
        role_arn: ROLE_ARN.into(),
        session_name: "aliyun-backup-exporter".into(),
        duration_seconds: 3600,
        sts_endpoint: fake.endpoint(),
    }
}

fn trusting_role(lifetime: Option<Duration>) -> FakeRole {
    FakeRole {
        arn: ROLE_ARN.into(),
        account: "prod".into(),
        trusted_key_ids: vec![KEY_ID.into()],
        lifetime,
    }
}

fn base_key() -> Arc<StaticProvider> {
    Arc::new(StaticProvider::new("test", credentials(KEY_SECRET, None)))
}

/// One DescribeBackups of `r-prod` over the last week of `now`.
async fn describe_backups(client: &RpcClient, now: DateTime<Utc>) -> Result<(), String> {
    let minute = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%MZ").to_string();
    let params = [
        ("InstanceId", "r-prod".to_string()),
        ("StartTime", minute(now - chrono::Duration::days(7))),
        ("EndTime", minute(now + chrono::Duration::minutes(1))),
        ("PageSize", "100".to_string()),
    ];
    client
        .call(
            "DescribeBackups",
            &params,
            |_| Ok(()),
            (Instant::now() + Duration::from_secs(30)).into(),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// AssumeRole credentials that live 200 s, polled every 10 s of a manual
/// clock for 700 s: not one failed call, and STS asked 100 s (half the
/// lifetime) before each expiry; one refresh that fails is retried at the
/// next poll while the credentials in hand still work.
#[tokio::test]
async fn assume_role_credentials_of_200_s_poll_without_a_failure_across_refreshes() {
    let t0 = whole_second_now();
    let clock = ManualClock::new(t0);
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let fake = FakeApi::start_on(([127, 0, 0, 1], 0).into(), vec![key()], shared.clone())
        .await
        .unwrap();
    fake.add_role(trusting_role(Some(Duration::from_secs(200))));
    fake.set_instance(
        "r-prod",
        FakeInstance {
            account: Some("prod".into()),
            ..FakeInstance::with_backups(vec![FakeBackup::success(
                "r-prod",
                t0 - chrono::Duration::hours(2),
                Duration::from_secs(60),
                1,
            )])
        },
    );
    let refreshes = Arc::new(Refreshes {
        clock: clock.clone(),
        seen: Mutex::new(Vec::new()),
    });
    let fetcher = AssumeRoleFetcher::new(role_settings(&fake), base_key()).unwrap();
    let provider = Arc::new(Refreshing::new(fetcher, shared.clone(), refreshes.clone()));
    let mut builder = ClientBuilder::new(fake.endpoint());
    builder.provider = Some(provider);
    builder.clock = shared.clone();
    builder.retry = fast_retries(1);
    let (client, attempts) = builder.build();

    for step in 0..=70 {
        if step == 30 {
            // The fourth refresh, due now, fails once.
            fake.push_action_faults("AssumeRole", [Fault::ServerError]);
        }
        let now = clock.now();
        if let Err(e) = describe_backups(&client, now).await {
            panic!("poll at t0+{}s failed: {e}", (now - t0).num_seconds());
        }
        clock.advance(chrono::Duration::seconds(10));
    }

    let s = |seconds: i64| t0 + chrono::Duration::seconds(seconds);
    assert_eq!(
        *refreshes.seen.lock().unwrap(),
        vec![
            (s(0), true, Some(s(200))),
            (s(100), true, Some(s(300))),
            (s(200), true, Some(s(400))),
            (s(300), false, Some(s(400))),
            (s(310), true, Some(s(510))),
            (s(410), true, Some(s(610))),
            (s(510), true, Some(s(710))),
            (s(610), true, Some(s(810))),
        ]
    );
    assert_eq!(fake.assume_role_calls(), 8);
    assert_eq!(attempts.codes(), vec!["Success".to_string(); 71]);
    let polls: Vec<_> = fake
        .received()
        .into_iter()
        .filter(|r| r.action == "DescribeBackups")
        .collect();
    assert_eq!(polls.len(), 71);
    assert!(
        polls
            .iter()
            .all(|r| r.outcome == "Success" && r.access_key_id.starts_with("STS.")),
        "{polls:?}"
    );
}

/// The fake STS refuses a `Timestamp` more than 15 minutes off its clock.
/// With the exporter's clock 20 minutes behind the system clock (and the
/// fake's clock the exporter's), AssumeRole works only if the request is
/// stamped with the injected clock, as `Refreshing` makes it.
#[tokio::test]
async fn assume_role_requests_are_stamped_with_the_injected_clock() {
    let clock = ManualClock::new(whole_second_now() - chrono::Duration::minutes(20));
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let fake = FakeApi::start_on(([127, 0, 0, 1], 0).into(), vec![key()], shared.clone())
        .await
        .unwrap();
    fake.add_role(trusting_role(None));

    // The fake does check: stamped with the system clock, refused.
    let system_stamped = AssumeRoleFetcher::new(role_settings(&fake), base_key()).unwrap();
    let err = system_stamped.fetch().await.unwrap_err();
    assert!(err.message.contains("InvalidTimeStamp.Expired"), "{err}");

    let provider = Refreshing::new(
        AssumeRoleFetcher::new(role_settings(&fake), base_key()).unwrap(),
        shared,
        Arc::new(NoRefreshObserver),
    );
    let credentials = provider.credentials().await.unwrap();
    assert!(credentials.access_key_id.starts_with("STS."));
    assert_eq!(fake.assume_role_calls(), 2);
}

/// A loopback `AssumeRoleWithOIDC` that, like STS, refuses a `Timestamp`
/// more than 15 minutes off its clock; notes every `Timestamp`.
async fn skew_checking_oidc_sts(
    clock: Arc<dyn Clock>,
) -> (
    String,
    Arc<Mutex<Vec<String>>>,
    tokio::sync::oneshot::Sender<()>,
) {
    use aliyun_backup_exporter::http::{respond, serve, Request};
    let stamps = Arc::new(Mutex::new(Vec::new()));
    let seen = stamps.clone();
    let handler = move |req: Request| {
        let clock = clock.clone();
        let seen = seen.clone();
        async move {
            let query = req.uri().query().unwrap_or("").to_string();
            let stamp = url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "Timestamp")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            seen.lock().unwrap().push(stamp.clone());
            let now = clock.now();
            let in_window = chrono::NaiveDateTime::parse_from_str(&stamp, "%Y-%m-%dT%H:%M:%SZ")
                .is_ok_and(|sent| (now - sent.and_utc()).num_minutes().abs() <= 15);
            if !in_window {
                return respond(
                    400,
                    "application/json",
                    r#"{"Code":"InvalidTimeStamp.Expired","Message":"Specified time stamp or date value is expired."}"#,
                );
            }
            let expiration = (now + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ");
            respond(
                200,
                "application/json",
                format!(
                    r#"{{"RequestId":"r","Credentials":{{"AccessKeyId":"STS.oidc","AccessKeySecret":"s","SecurityToken":"t","Expiration":"{expiration}"}}}}"#
                ),
            )
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, Default::default(), handler, async move {
        let _ = stopped.await;
    }));
    (endpoint, stamps, stop)
}

/// RRSA through the chain as the exporter builds it: `AssumeRoleWithOIDC`
/// carries the injected clock's time (20 minutes behind the system's here),
/// which the skew-checking STS accepts; the system's time it refuses.
#[tokio::test]
async fn oidc_requests_are_stamped_with_the_injected_clock() {
    let at = whole_second_now() - chrono::Duration::minutes(20);
    let shared: Arc<dyn Clock> = Arc::new(ManualClock::new(at));
    let (endpoint, stamps, _stop) = skew_checking_oidc_sts(shared.clone()).await;
    let dir = temp_dir("oidc-clock");
    std::fs::write(dir.join("token"), "t").unwrap();
    let settings = OidcSettings {
        role_arn: "acs:ram::123:role/backup-reader".into(),
        provider_arn: "acs:ram::123:oidc-provider/ack-rrsa-c1".into(),
        token_file: dir.join("token"),
        session_name: "test".into(),
        duration_seconds: 3600,
        sts_endpoint: endpoint,
    };

    let err = OidcFetcher::new(settings.clone())
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert!(err.message.contains("InvalidTimeStamp.Expired"), "{err}");

    let provider =
        chain::build(&Source::Oidc(settings), shared, Arc::new(NoRefreshObserver)).unwrap();
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id,
        "STS.oidc"
    );
    let stamps = stamps.lock().unwrap().clone();
    assert_eq!(stamps.len(), 2);
    assert_eq!(stamps[1], at.format("%Y-%m-%dT%H:%M:%SZ").to_string());
}
