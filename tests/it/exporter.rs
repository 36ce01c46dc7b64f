//! The whole exporter against the fake API, through real sockets: start,
//! wait for /readyz, scrape, and check values against the fake's data.

use std::sync::Arc;
use std::time::Duration;

use aliyun_backup_exporter::app::Running;
use aliyun_backup_exporter::config::Config;
use aliyun_backup_exporter::fake_api::{FakeApi, FakeBackup, FakeInstance, FakeKey, Fault};
use chrono::{DateTime, SubsecRound, Utc};

use crate::helpers::*;

/// Flags-only use, as before the fleet work: instances by ID in one region.
fn config(fake: &FakeApi, instances: &[&str], interval: Duration) -> Config {
    let ids = format!("--redis.instance-id={}", instances.join(","));
    let interval = format!("--poll.interval={}ms", interval.as_millis());
    flags_config(
        fake,
        &[
            "--aliyun.region=cn-test-1",
            &ids,
            &interval,
            "--poll.concurrency=2",
            "--poll.timeout=5s",
        ],
    )
}

/// Sends `request` as is and reads the answer until the server closes.
async fn raw_http(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

async fn start(config: Config) -> Running {
    start_exporter(config, &env_credentials(None)).await
}

fn secs(t: DateTime<Utc>) -> f64 {
    t.timestamp() as f64
}

#[tokio::test]
async fn scrape_matches_the_data_given_to_the_fake() {
    let fake = fake().await;
    let now = Utc::now().trunc_subsecs(0);
    let h = |hours: i64| now - chrono::Duration::hours(hours);
    // Standard instance: newest success ended 2h ago after 5 minutes; an
    // older one; the newest attempt failed 1h ago.
    fake.set_instance(
        "r-std",
        FakeInstance::with_backups(vec![
            FakeBackup::success("r-std", h(26), Duration::from_secs(600), 111),
            FakeBackup::success(
                "r-std",
                h(2) - chrono::Duration::minutes(5),
                Duration::from_secs(300),
                2222,
            ),
            FakeBackup::failed("r-std", h(1), Duration::from_secs(30)),
        ]),
    );
    // Classic cluster: one series per shard node.
    fake.set_instance(
        "r-cls",
        FakeInstance::with_backups(vec![
            FakeBackup::success("r-cls-db-0", h(3), Duration::from_secs(60), 30),
            FakeBackup::success("r-cls-db-1", h(4), Duration::from_secs(120), 40),
        ]),
    );
    let running = start(config(
        &fake,
        &["r-std", "r-cls", "r-gone"],
        Duration::from_secs(300),
    ))
    .await;

    wait_ready(&running).await;
    let m = scrape(&running).await;

    let std = [
        ("product", "redis"),
        ("region_id", "cn-test-1"),
        ("instance_id", "r-std"),
        ("node_id", "r-std"),
    ];
    assert_eq!(
        value(&m, "aliyun_backup_last_success_timestamp_seconds", &std),
        secs(h(2))
    );
    assert_eq!(
        value(&m, "aliyun_backup_last_success_size_bytes", &std),
        2222.0
    );
    assert_eq!(
        value(&m, "aliyun_backup_last_success_duration_seconds", &std),
        300.0
    );
    let age = value(&m, "aliyun_backup_last_success_age_seconds", &std);
    assert!((7200.0..7200.0 + 60.0).contains(&age), "age {age}");
    assert_eq!(
        value(&m, "aliyun_backup_last_attempt_timestamp_seconds", &std),
        secs(h(1))
    );
    assert_eq!(value(&m, "aliyun_backup_last_attempt_success", &std), 0.0);
    let info = find(&m, "aliyun_backup_last_success_info", &std);
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].labels["backup_type"], "full");
    assert_eq!(info[0].labels["backup_mode"], "automated");
    assert_eq!(info[0].labels["backup_method"], "physical");
    assert_eq!(
        value(
            &m,
            "aliyun_backup_backups",
            &[("instance_id", "r-std"), ("status", "success")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &m,
            "aliyun_backup_backups",
            &[("instance_id", "r-std"), ("status", "failed")]
        ),
        1.0
    );

    let nodes = find(
        &m,
        "aliyun_backup_last_success_timestamp_seconds",
        &[("instance_id", "r-cls")],
    );
    let mut node_ids: Vec<&str> = nodes.iter().map(|s| s.labels["node_id"].as_str()).collect();
    node_ids.sort();
    assert_eq!(node_ids, ["r-cls-db-0", "r-cls-db-1"]);
    assert_eq!(
        value(
            &m,
            "aliyun_backup_last_success_duration_seconds",
            &[("node_id", "r-cls-db-1")]
        ),
        120.0
    );
    assert_eq!(
        value(
            &m,
            "aliyun_backup_backups",
            &[("instance_id", "r-cls"), ("status", "failed")]
        ),
        0.0
    );

    // The released instance: a failed poll, and no backup series at all.
    assert_eq!(
        value(
            &m,
            "aliyun_backup_poll_success",
            &[("instance_id", "r-gone")]
        ),
        0.0
    );
    assert!(find(&m, "aliyun_backup_backups", &[("instance_id", "r-gone")]).is_empty());
    assert!(find(
        &m,
        "aliyun_backup_poll_success_timestamp_seconds",
        &[("instance_id", "r-gone")]
    )
    .is_empty());
    assert_eq!(
        value(
            &m,
            "aliyun_backup_poll_success",
            &[("instance_id", "r-std")]
        ),
        1.0
    );
    let polled_at = value(
        &m,
        "aliyun_backup_poll_success_timestamp_seconds",
        &[("instance_id", "r-std")],
    );
    assert!((polled_at - secs(now)).abs() < 60.0);

    assert_eq!(
        value(
            &m,
            "aliyun_backup_api_requests_total",
            &[("action", "DescribeBackups"), ("code", "Success")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &m,
            "aliyun_backup_api_requests_total",
            &[
                ("action", "DescribeBackups"),
                ("code", "InvalidInstanceId.NotFound")
            ]
        ),
        1.0
    );
    // Each instance's backup policy, read with its first poll: the fake's
    // default (daily, 02:00Z-03:00Z, kept 7 days) gives 24 h + 1 h + 2 h.
    assert_eq!(
        value(
            &m,
            "aliyun_backup_expected_max_age_seconds",
            &[("instance_id", "r-std"), ("source", "policy")]
        ),
        27.0 * 3600.0
    );
    assert_eq!(
        value(
            &m,
            "aliyun_backup_policy_max_interval_seconds",
            &[("instance_id", "r-std")]
        ),
        86400.0
    );
    assert_eq!(
        value(
            &m,
            "aliyun_backup_policy_retention_seconds",
            &[("instance_id", "r-std")]
        ),
        7.0 * 86400.0
    );
    assert_eq!(
        value(
            &m,
            "aliyun_backup_policy_info",
            &[
                ("instance_id", "r-std"),
                ("days", "mon,tue,wed,thu,fri,sat,sun"),
                ("window", "02:00Z-03:00Z")
            ]
        ),
        1.0
    );
    // The released one's policy cannot be read: counted, and the default
    // (--backup.max-age, 36 h) is expected.
    assert_eq!(
        value(
            &m,
            "aliyun_backup_api_requests_total",
            &[
                ("action", "DescribeBackupPolicy"),
                ("code", "InvalidInstanceId.NotFound")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "aliyun_backup_expected_max_age_seconds",
            &[("instance_id", "r-gone"), ("source", "default")]
        ),
        36.0 * 3600.0
    );
    assert!(find(
        &m,
        "aliyun_backup_policy_info",
        &[("instance_id", "r-gone")]
    )
    .is_empty());
    assert_eq!(
        value(
            &m,
            "aliyun_backup_api_request_duration_seconds_count",
            &[("action", "DescribeBackups")]
        ),
        3.0
    );
    assert!(value(&m, "aliyun_backup_poll_cycle_duration_seconds", &[]) > 0.0);
    assert_eq!(value(&m, "aliyun_backup_exporter_build_info", &[]), 1.0);
    assert!(!find(&m, "process_resident_memory_bytes", &[]).is_empty());
    running.stop().await;
}

#[tokio::test]
async fn a_failed_poll_keeps_the_last_known_facts_and_others_go_on() {
    let fake = fake().await;
    let now = Utc::now().trunc_subsecs(0);
    for id in ["r-a", "r-b"] {
        fake.set_instance(
            id,
            FakeInstance::with_backups(vec![FakeBackup::success(
                id,
                now - chrono::Duration::hours(5),
                Duration::from_secs(60),
                5,
            )]),
        );
    }
    let running = start(config(&fake, &["r-a", "r-b"], Duration::from_secs(1))).await;
    wait_ready(&running).await;
    let before = scrape(&running).await;
    let ts = value(
        &before,
        "aliyun_backup_last_success_timestamp_seconds",
        &[("instance_id", "r-a")],
    );

    fake.update_instance("r-a", |i| i.always = Some(Fault::NotFound));
    let after = eventually("r-a's poll to fail", || async {
        let m = scrape(&running).await;
        (value(&m, "aliyun_backup_poll_success", &[("instance_id", "r-a")]) == 0.0).then_some(m)
    })
    .await;

    assert_eq!(
        value(
            &after,
            "aliyun_backup_last_success_timestamp_seconds",
            &[("instance_id", "r-a")]
        ),
        ts
    );
    assert_eq!(
        value(
            &after,
            "aliyun_backup_backups",
            &[("instance_id", "r-a"), ("status", "success")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "aliyun_backup_poll_success_timestamp_seconds",
            &[("instance_id", "r-a")]
        ),
        value(
            &before,
            "aliyun_backup_poll_success_timestamp_seconds",
            &[("instance_id", "r-a")]
        ),
    );
    // The other instance is still polled, and still succeeds.
    let b_polls = fake.requests_for("r-b");
    eventually("r-b to be polled again", || async {
        (fake.requests_for("r-b") > b_polls).then_some(())
    })
    .await;
    let m = scrape(&running).await;
    assert_eq!(
        value(&m, "aliyun_backup_poll_success", &[("instance_id", "r-b")]),
        1.0
    );
    running.stop().await;
}

#[tokio::test]
async fn a_slow_instance_delays_no_other_and_its_poll_ends_before_the_next_is_due() {
    let fake = fake().await;
    let ids = ["r-1", "r-2", "r-3", "r-slow"];
    for id in ids {
        fake.set_instance(id, FakeInstance::default());
    }
    fake.update_instance("r-slow", |i| {
        i.always = Some(Fault::Slow(Duration::from_secs(3)))
    });
    let mut cfg = config(&fake, &ids, Duration::from_secs(1));
    cfg.poll.timeout = Duration::from_secs(10);
    let running = start(cfg).await;

    // Not ready until the slow instance's first poll has ended.
    assert_eq!(get(&running, "/readyz").await.status(), 503);
    // r-slow holds one of the two permits; the others keep going.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for id in ["r-1", "r-2", "r-3"] {
        assert!(
            fake.requests_for(id) >= 2,
            "{id} polled {} times",
            fake.requests_for(id)
        );
    }
    wait_ready(&running).await;
    // The whole poll of r-slow (retries included) is cut at the interval,
    // well before its 10 s request timeout.
    let m = scrape(&running).await;
    assert_eq!(
        value(
            &m,
            "aliyun_backup_poll_success",
            &[("instance_id", "r-slow")]
        ),
        0.0
    );
    assert!(
        value(
            &m,
            "aliyun_backup_api_requests_total",
            &[("code", "timeout")]
        ) >= 1.0
    );
    assert_eq!(
        value(&m, "aliyun_backup_poll_success", &[("instance_id", "r-1")]),
        1.0
    );
    running.stop().await;
}

#[tokio::test]
async fn http_endpoints_answer_as_documented() {
    let fake = fake().await;
    fake.set_instance("r-1", FakeInstance::default());
    let running = start(config(&fake, &["r-1"], Duration::from_secs(300))).await;
    wait_ready(&running).await;
    let client = reqwest::Client::new();
    let url = |p: &str| format!("http://{}{p}", running.addr);

    assert_eq!(get(&running, "/healthz").await.status(), 200);
    assert_eq!(get(&running, "/nope").await.status(), 404);
    assert_eq!(get(&running, "/metrics/extra").await.status(), 404);
    let post = client.post(url("/metrics")).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    assert_eq!(client.delete(url("/")).send().await.unwrap().status(), 405);
    let head = client.head(url("/metrics")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    // Through a raw socket, since HTTP clients never read a HEAD body:
    // the headers of GET, and nothing after them.
    let raw = raw_http(
        running.addr,
        "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (head_headers, head_body) = raw.split_once("\r\n\r\n").expect("a header block");
    assert!(head_headers.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(head_headers
        .to_ascii_lowercase()
        .contains("content-type: text/plain; version=0.0.4; charset=utf-8"));
    assert_eq!(head_body, "", "HEAD has no body");

    // gzip when asked for (as Prometheus always does), identity otherwise,
    // the same series either way; HEAD says which, without a body.
    // One gzip member, read whole by a reader that stops after the first
    // (as curl's does), nothing after it.
    let gunzip = |bytes: &[u8]| {
        let mut text = String::new();
        let mut one = flate2::read::GzDecoder::new(bytes);
        std::io::Read::read_to_string(&mut one, &mut text).expect("a gzip stream");
        assert!(one.into_inner().is_empty(), "more than one gzip member");
        text
    };
    let series = |text: &str| -> Vec<String> {
        let mut names: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("process_"))
            .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series.to_string()))
            .filter(|s| !s.contains("api_request_duration") && !s.contains("api_requests_total"))
            .collect();
        names.sort();
        names
    };
    let plain = client.get(url("/metrics")).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.headers()["vary"], "Accept-Encoding");
    // Counted before it is sent: a Content-Length, not chunks, and exact.
    assert!(plain.headers().get("transfer-encoding").is_none());
    let length: usize = plain.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let plain = plain.text().await.unwrap();
    assert_eq!(plain.len(), length);
    assert!(plain.ends_with('\n') && plain.contains("aliyun_backup_targets"));
    for accept in ["gzip", "deflate, gzip;q=0.5", "*", "GZIP"] {
        let zipped = client
            .get(url("/metrics"))
            .header("accept-encoding", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(zipped.headers()["content-encoding"], "gzip", "{accept}");
        let text = gunzip(&zipped.bytes().await.unwrap());
        assert_eq!(series(&text), series(&plain), "{accept}");
    }
    for refused in ["identity", "gzip;q=0", "br, deflate"] {
        let answer = client
            .get(url("/metrics"))
            .header("accept-encoding", refused)
            .send()
            .await
            .unwrap();
        assert!(
            answer.headers().get("content-encoding").is_none(),
            "{refused}"
        );
    }
    let head = client
        .head(url("/metrics"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["content-encoding"], "gzip");

    let page = get(&running, "/").await.text().await.unwrap();
    assert!(
        page.contains("href=\"/metrics\"") && page.contains("r-1"),
        "{page}"
    );
    assert!(page.contains("<td>ok</td>"), "{page}");
    running.stop().await;
}

#[tokio::test]
async fn nothing_secret_reaches_the_exposition_or_the_page() {
    // STS-style credentials with a token; one instance polled fine, one
    // failing with the server echoing its string-to-sign (it holds the token).
    let fake = FakeApi::start(vec![FakeKey {
        security_token: Some(TOKEN.into()),
        ..key()
    }])
    .await
    .unwrap();
    let now = Utc::now();
    fake.set_instance(
        "r-1",
        FakeInstance::with_backups(vec![FakeBackup::success(
            "r-1",
            now - chrono::Duration::hours(1),
            Duration::from_secs(5),
            1,
        )]),
    );
    fake.set_instance("r-2", FakeInstance::default());
    let cfg = config(&fake, &["r-1", "r-2"], Duration::from_secs(300));
    let echo = format!(
        r#"{{"Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched. server string to sign is:GET&%2F&SecurityToken%3D{TOKEN}"}}"#
    );
    fake.push_faults(
        "r-2",
        [Fault::Raw {
            status: 400,
            body: echo,
        }],
    );
    let running = start_exporter(cfg, &env_credentials(Some(TOKEN))).await;
    wait_ready(&running).await;
    let metrics = get(&running, "/metrics").await.text().await.unwrap();
    let page = get(&running, "/").await.text().await.unwrap();
    assert!(page.contains("failed (SignatureDoesNotMatch)"), "{page}");
    for text in [&metrics, &page] {
        assert_no_secret(text);
        assert!(!text.contains(TOKEN));
        // As a label value (a number could hold these digits by chance).
        assert!(!text.contains("\"100000\""), "no backup ID in labels");
        assert!(!text.contains("100000</"), "no backup ID on the page");
        assert!(!text.contains("rdsbak"), "no download host");
    }
    running.stop().await;
}

/// A clock that panics once armed: only poll tasks read it then (no scrape
/// runs, and discovery's next round is an hour away).
struct ArmedClock(std::sync::atomic::AtomicBool);

impl aliyun_backup_exporter::clock::Clock for ArmedClock {
    fn now(&self) -> DateTime<Utc> {
        if self.0.load(std::sync::atomic::Ordering::SeqCst) {
            panic!("a poll task dies (test)");
        }
        Utc::now()
    }
}

#[tokio::test]
async fn a_poll_task_that_dies_stops_the_exporter_with_exit_code_1() {
    let fake = fake().await;
    fake.set_instance("r-a", FakeInstance::default());
    let config = flags_config(
        &fake,
        &[
            "--aliyun.region=cn-hangzhou",
            "--redis.instance-id=r-a",
            "--poll.interval=1s",
            "--discovery.interval=1h",
        ],
    );
    let clock = Arc::new(ArmedClock(std::sync::atomic::AtomicBool::new(false)));
    let env = env_credentials(None);
    let run = tokio::spawn(aliyun_backup_exporter::app::run_with(
        config,
        clock.clone(),
        Arc::new(move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())),
        std::future::pending(),
    ));
    eventually("a first poll", || async {
        (fake.requests_for("r-a") > 0).then_some(())
    })
    .await;
    assert!(!run.is_finished(), "running before the panic");
    clock.0.store(true, std::sync::atomic::Ordering::SeqCst);
    // The next poll (within a second) panics: the exporter must not go on
    // serving frozen facts, it stops with an error and exit code 1.
    let ended = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the exporter stops by itself")
        .expect("run does not panic itself");
    let error = ended.expect_err("an error, not a clean stop");
    assert_eq!(error.exit_code(), 1, "{error}");
    let message = error.to_string();
    assert!(
        message.contains("the poll loop ended") && message.contains("panicked"),
        "{message}"
    );
}

#[tokio::test]
async fn backups_that_cannot_be_true_are_set_aside_and_counted() {
    let fake = fake().await;
    let now = Utc::now().trunc_subsecs(0);
    let real = FakeBackup::success(
        "r-a",
        now - chrono::Duration::hours(30),
        Duration::from_secs(60),
        5,
    );
    // A success from the year 9999 would hide that the real one is old.
    let year_9999 = chrono::TimeZone::with_ymd_and_hms(&Utc, 9999, 1, 1, 0, 0, 0).unwrap();
    let mut future = FakeBackup::success(
        "r-a",
        now - chrono::Duration::hours(1),
        Duration::from_secs(60),
        5,
    );
    future.end = Some(year_9999);
    let mut backwards = FakeBackup::success(
        "r-a",
        now - chrono::Duration::hours(2),
        Duration::from_secs(60),
        5,
    );
    backwards.end = Some(backwards.start - chrono::Duration::hours(1));
    let mut huge = FakeBackup::success(
        "r-a",
        now - chrono::Duration::hours(3),
        Duration::from_secs(60),
        0,
    );
    huge.size = Some(10u64.pow(19));
    fake.set_instance(
        "r-a",
        FakeInstance::with_backups(vec![real, future, backwards, huge]),
    );
    let running = start(config(&fake, &["r-a"], Duration::from_secs(300))).await;
    wait_ready(&running).await;
    let m = scrape(&running).await;
    let a = [("instance_id", "r-a")];
    let reason = |r: &str| {
        value(
            &m,
            "aliyun_backup_implausible_backups",
            &[("instance_id", "r-a"), ("reason", r)],
        )
    };
    assert_eq!(reason("in_the_future"), 1.0);
    assert_eq!(reason("end_before_start"), 1.0);
    assert_eq!(reason("size_too_large"), 1.0);
    // The newest believable success: the one three hours ago (its size set
    // aside), not the one that "ends" in 9999.
    let age = value(&m, "aliyun_backup_last_success_age_seconds", &a);
    assert!((age - (3.0 * 3600.0 - 60.0)).abs() < 120.0, "{age}");
    assert!(find(&m, "aliyun_backup_last_success_size_bytes", &a).is_empty());
    assert_eq!(value(&m, "aliyun_backup_poll_success", &a), 1.0);
    running.stop().await;
}
