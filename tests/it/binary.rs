//! The built binary as a user runs it: configuration errors, logs, signals.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aliyun_backup_exporter::fake_api::{FakeInstance, Fault};

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_aliyun-backup-exporter");

/// The binary with an empty environment but for `env`. The ECS metadata
/// fallback is disabled unless a test turns it on with its own (loopback)
/// metadata endpoint: no test may ever reach the real metadata address.
fn exporter(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// A child that is killed when the test ends, passed or failed: a leftover
/// exporter would hold the test runner's output open.
struct Reaped(Child);

impl std::ops::Deref for Reaped {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const CREDS: &[(&str, &str)] = &[
    ("ALIBABA_CLOUD_ACCESS_KEY_ID", KEY_ID),
    ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", KEY_SECRET),
];

#[test]
fn bad_configuration_exits_2_with_one_line_naming_the_setting() {
    let closed_metadata = format!(
        "--aliyun.metadata-endpoint=http://127.0.0.1:{}",
        free_port()
    );
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(&[&str], Env, &str)] = &[
        (&["--redis.instance-id=r-1"], CREDS, "--aliyun.region"),
        (
            &["--aliyun.region=cn-hangzhou"],
            CREDS,
            "--redis.instance-id",
        ),
        (
            &["--aliyun.region=cn-hangzhou", "--redis.instance-id=r-1"],
            &[],
            "ALIBABA_CLOUD_ACCESS_KEY_ID",
        ),
        // Nothing configured and the ECS fallback on, pointed at a closed
        // loopback port: the start-up probe fails and says what to set.
        (
            &[
                "--aliyun.region=cn-hangzhou",
                "--redis.instance-id=r-1",
                &closed_metadata,
            ],
            &[("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "false")],
            "ALIBABA_CLOUD_ACCESS_KEY_ID",
        ),
        (
            &[
                "--aliyun.region=cn-hangzhou",
                "--redis.instance-id=r-1",
                "--poll.interval=often",
            ],
            CREDS,
            "--poll.interval",
        ),
        (
            &[
                "--discovery.regions=cn-hangzhou",
                "--discovery.products=redis,mysql",
            ],
            CREDS,
            "--discovery.products",
        ),
        (
            &["--aliyun.region=cn-hangzhou", "--rds.instance-id=rm 1"],
            CREDS,
            "--rds.instance-id",
        ),
        (
            &[
                "--aliyun.region=cn-hangzhou",
                "--redis.instance-id=r-1",
                "--aliyun.endpoint=not a url",
            ],
            CREDS,
            "--aliyun.endpoint",
        ),
        (
            &[
                "--aliyun.region=cn-hangzhou",
                "--redis.instance-id=r-1",
                "--aliyun.signature-version=v4",
            ],
            CREDS,
            "--aliyun.signature-version",
        ),
        (
            &["--aliyun.region=cn-hangzhou", "--redis.instance-id=r-1"],
            &[
                ("ALIYUN_BACKUP_EXPORTER_ALIYUN_SIGNATURE_VERSION", "hmac"),
                CREDS[0],
                CREDS[1],
            ],
            "ALIYUN_BACKUP_EXPORTER_ALIYUN_SIGNATURE_VERSION",
        ),
        (
            &[
                "--aliyun.region=cn-hangzhou",
                "--redis.instance-id=r-1",
                "--no-such-flag",
            ],
            CREDS,
            "--no-such-flag",
        ),
        (
            &["--redis.instance-id=r-1"],
            &[
                ("ALIYUN_BACKUP_EXPORTER_ALIYUN_REGION", "cn-hangzhou"),
                ("ALIYUN_BACKUP_EXPORTER_POLL_TIMEOUT", "0s"),
                CREDS[0],
                CREDS[1],
            ],
            "ALIYUN_BACKUP_EXPORTER_POLL_TIMEOUT",
        ),
    ];
    // A port already in use is a setting too: one line, exit 2.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_listen = format!("--web.listen-address={}", busy.local_addr().unwrap());
    let busy_args = [
        "--aliyun.region=cn-hangzhou",
        "--redis.instance-id=r-1",
        busy_listen.as_str(),
    ];
    let busy_case: (&[&str], Env, &str) = (&busy_args, CREDS, "--web.listen-address");
    for (args, env, named) in cases.iter().chain([&busy_case]) {
        let out = exporter(args, env).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains(named),
            "{args:?} should name {named}: {stderr}"
        );
        assert!(!stderr.contains(KEY_SECRET));
    }
}

/// A bad `--web.config.file` stops the start (after the port is bound)
/// and `--config.check` alike: exit 2, one line naming the flag and the
/// setting in the file.
#[test]
fn a_bad_web_config_file_exits_2_with_one_line() {
    let web = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/web/");
    let cases = [
        (
            "web_config_auth_user_list_invalid.bad.yml",
            "basic_auth_users",
        ),
        (
            "web_config_noAuth_certPath_invalid.bad.yml",
            "tls_server_config.cert_file",
        ),
        (
            "web_config_noAuth_tls10.bad.yml",
            "tls_server_config.min_version",
        ),
        ("web_config_junk_key.yml", "cert_filse"),
        ("no-such-file.yml", "cannot read"),
    ];
    for (file, setting) in cases {
        let flag = format!("--web.config.file={web}{file}");
        for check in [false, true] {
            let mut args = vec![
                "--aliyun.region=cn-hangzhou",
                "--redis.instance-id=r-1",
                "--web.listen-address=127.0.0.1:0",
                flag.as_str(),
            ];
            if check {
                args.push("--config.check");
            }
            let out = exporter(&args, CREDS).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{file} (check {check}): {stderr}"
            );
            assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
            assert!(
                stderr.contains("--web.config.file") && stderr.contains(setting),
                "{file} should name {setting}: {stderr}"
            );
        }
    }
    let good = format!("--web.config.file={web}web_config_all_keys.good.yml");
    let out = exporter(
        &[
            "--aliyun.region=cn-hangzhou",
            "--redis.instance-id=r-1",
            &good,
            "--config.check",
        ],
        CREDS,
    )
    .output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn help_and_version_exit_0() {
    let out = exporter(&["--version"], &[])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = exporter(&["--help"], &[])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--poll.interval"));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_http(port: u16, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::Write;
            let _ = write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{path} never answered 200 on port {port}");
}

/// Everything the child wrote to its (piped) stderr, once it has exited.
fn stderr_of(child: &mut Child) -> String {
    let mut log = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        stderr.read_to_string(&mut log).expect("stderr is text");
    }
    log
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not exit after the signal");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_and_sigint_stop_gracefully_with_exit_0() {
    for sig in ["TERM", "INT"] {
        let port = free_port();
        let listen = format!("--web.listen-address=127.0.0.1:{port}");
        let mut child = exporter(&["--demo", &listen], &[])
            .stderr(Stdio::piped())
            .spawn()
            .map(Reaped)
            .unwrap();
        wait_http(port, "/readyz");
        signal(&child, sig);
        assert_eq!(wait_exit(&mut child), 0, "SIG{sig}");
        let log = stderr_of(&mut child);
        assert!(log.contains(&format!("SIG{sig} received")), "{log}");
        assert!(log.contains("stopped"), "{log}");
    }
}

#[test]
fn idle_and_half_sent_connections_do_not_hold_the_shutdown() {
    let port = free_port();
    let listen = format!("--web.listen-address=127.0.0.1:{port}");
    let mut child = exporter(&["--demo", &listen], &[])
        .stderr(Stdio::piped())
        .spawn()
        .map(Reaped)
        .unwrap();
    wait_http(port, "/readyz");
    // One connection that never says anything, one whose request head
    // never finishes arriving, one idle after a finished request.
    let _silent = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut half = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut kept = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    {
        use std::io::Write;
        write!(half, "GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
        write!(kept, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut answer = [0u8; 512];
        let n = kept.read(&mut answer).unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    }
    std::thread::sleep(Duration::from_millis(200));
    let asked = Instant::now();
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child), 0);
    // Before, the half-sent head held the drain for its whole ten seconds.
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "stopped at once: {:?}",
        asked.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_during_the_drain_exits_at_once_with_exit_1() {
    let fake = fake().await;
    fake.set_instance("r-hz", FakeInstance::default());
    let path = config_file(
        "drain",
        "accounts:\n  - name: a\n    redis: {regions: [cn-hangzhou], discovery: {}}\n",
    );
    let port = free_port();
    let listen = format!("--web.listen-address=127.0.0.1:{port}");
    let endpoint = format!("--aliyun.endpoint={}", fake.endpoint());
    let file = format!("--config.file={}", path.display());
    let args = [listen.as_str(), &endpoint, &file, "--web.enable-lifecycle"];
    let mut child = exporter(&args, CREDS)
        .stderr(Stdio::piped())
        .spawn()
        .map(Reaped)
        .unwrap();
    tokio::task::spawn_blocking(move || wait_http(port, "/readyz"))
        .await
        .unwrap();
    // A request still being answered keeps the drain waiting (up to its
    // ten-second bound): a reload reading a named pipe that no one writes.
    std::fs::remove_file(&*path).unwrap();
    let made = Command::new("mkfifo").arg(&*path).status().unwrap();
    assert!(made.success());
    let mut busy = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    {
        use std::io::Write;
        write!(
            busy,
            "POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&child, "TERM");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "still draining after the first SIGTERM"
    );
    let asked = Instant::now();
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child), 1);
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "exited at once, not at the end of the drain: {:?}",
        asked.elapsed()
    );
    let log = stderr_of(&mut child);
    assert!(
        log.contains("SIGTERM received during the shutdown, exiting at once"),
        "{log}"
    );
    drop(busy);
}

/// Runs the binary under an open-files limit of `limit` (soft and hard).
fn exporter_with_open_files(limit: u32, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(args)
        .env_clear()
        .env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

#[test]
fn a_flood_of_idle_and_half_sent_connections_does_not_lock_scrapes_out() {
    let port = free_port();
    let listen = format!("--web.listen-address=127.0.0.1:{port}");
    let mut child = exporter_with_open_files(64, &["--demo", &listen])
        .stderr(Stdio::piped())
        .spawn()
        .map(Reaped)
        .unwrap();
    wait_http(port, "/readyz");
    // More connections than the process has file descriptors: without a
    // cap, accept() fails from the 60th or so and scrapes time out.
    let mut flood = Vec::new();
    for i in 0..150 {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            continue;
        };
        if i % 3 == 0 {
            use std::io::Write;
            let _ = write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n");
        }
        flood.push(s);
    }
    for _ in 0..5 {
        let mut scrape = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        scrape
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        use std::io::Write;
        write!(
            scrape,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        scrape
            .read_to_string(&mut answer)
            .expect("a scrape answered within 5 s during the flood");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.200}");
        assert!(answer.contains("aliyun_backup_last_success_timestamp_seconds"));
    }
    drop(flood);
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child), 0);
    let log = stderr_of(&mut child);
    assert!(log.contains("max_connections=32"), "{log}");
}

#[test]
fn an_oversized_request_head_is_refused_with_431() {
    let port = free_port();
    let listen = format!("--web.listen-address=127.0.0.1:{port}");
    let mut child = exporter(&["--demo", &listen], &[])
        .spawn()
        .map(Reaped)
        .unwrap();
    wait_http(port, "/readyz");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    {
        use std::io::Write;
        // 64 KiB of header: hyper's default (about 400 KiB) took it.
        let _ = write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n",
            "a".repeat(64 * 1024)
        );
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "got {:?}",
        &answer[..answer.len().min(200)]
    );
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_polls_are_logged_with_code_and_request_id_and_never_a_secret() {
    let fake = fake().await;
    fake.set_instance("r-ok", FakeInstance::default());
    let endpoint = format!("--aliyun.endpoint={}", fake.endpoint());
    let mut env = CREDS.to_vec();
    // Sent (and signed) with every request, but it must never be logged.
    env.push(("ALIBABA_CLOUD_SECURITY_TOKEN", TOKEN));
    for format in ["logfmt", "json"] {
        let port = free_port();
        let listen = format!("--web.listen-address=127.0.0.1:{port}");
        let log_format = format!("--log.format={format}");
        let args = [
            "--aliyun.region=cn-hangzhou",
            "--redis.instance-id=r-ok,r-gone",
            &listen,
            &endpoint,
            &log_format,
            "--log.level=debug",
        ];
        let mut child = exporter(&args, &env)
            .stderr(Stdio::piped())
            .spawn()
            .map(Reaped)
            .unwrap();
        tokio::task::spawn_blocking(move || wait_http(port, "/readyz"))
            .await
            .unwrap();
        signal(&child, "TERM");
        let log = stderr_of(&mut child);
        assert_eq!(child.wait().unwrap().code(), Some(0));
        let failure = log
            .lines()
            .find(|l| l.contains("poll failed"))
            .unwrap_or_else(|| panic!("a failed-poll line in {log}"));
        if format == "json" {
            let line: serde_json::Value = serde_json::from_str(failure).expect("JSON log line");
            assert_eq!(line["instance_id"], "r-gone");
            assert_eq!(line["code"], "InvalidInstanceId.NotFound");
            assert!(
                line["request_id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("FAKE")),
                "{line}"
            );
        } else {
            assert!(
                failure.starts_with("ts=") && failure.contains("level=warn"),
                "{failure}"
            );
            assert!(failure.contains("instance_id=r-gone"), "{failure}");
            assert!(
                failure.contains("code=InvalidInstanceId.NotFound"),
                "{failure}"
            );
            assert!(failure.contains("request_id=FAKE"), "{failure}");
        }
        assert_no_secret(&log);
    }
    let tokens: Vec<_> = fake
        .received()
        .into_iter()
        .filter_map(|r| r.security_token)
        .collect();
    assert!(
        !tokens.is_empty() && tokens.iter().all(|t| t == TOKEN),
        "the token was sent"
    );
}

/// RFC 3986 percent-encoding, in upper or lower hex.
fn percent(text: &str, upper: bool) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else if upper {
                format!("%{b:02X}")
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_echoed_in_any_encoding_never_reaches_the_logs() {
    // Every encoding of this token holds its unreserved tail as is.
    const ODD_TOKEN: &str = "CAIS/odd+token=with/specials-0123456789";
    const TAIL: &str = "specials-0123456789";
    let upper = percent(ODD_TOKEN, true);
    let lower = percent(ODD_TOKEN, false);
    let twice = percent(&upper, true);
    let json = ODD_TOKEN.replace('/', "\\/");
    let fake = fake().await;
    let echo = format!(
        r#"{{"Code":"Odd.Echo","Message":"we were handed [{upper}] (or {twice}, {lower}) by you","RequestId":"R-1"}}"#
    );
    let a = FakeInstance {
        always: Some(Fault::Raw {
            status: 400,
            body: echo,
        }),
        ..Default::default()
    };
    fake.set_instance("r-echo", a);
    let junk = format!("<html>your token: {ODD_TOKEN} or {json}</html>");
    let b = FakeInstance {
        always: Some(Fault::Raw {
            status: 200,
            body: junk,
        }),
        ..Default::default()
    };
    fake.set_instance("r-junk", b);

    let port = free_port();
    let listen = format!("--web.listen-address=127.0.0.1:{port}");
    let endpoint = format!("--aliyun.endpoint={}", fake.endpoint());
    let mut env = CREDS.to_vec();
    env.push(("ALIBABA_CLOUD_SECURITY_TOKEN", ODD_TOKEN));
    let args = [
        "--aliyun.region=cn-hangzhou",
        "--redis.instance-id=r-echo,r-junk",
        listen.as_str(),
        &endpoint,
        "--log.level=trace",
    ];
    let mut child = exporter(&args, &env)
        .stderr(Stdio::piped())
        .spawn()
        .map(Reaped)
        .unwrap();
    tokio::task::spawn_blocking(move || {
        wait_metric(
            port,
            "aliyun_backup_poll_success{product=\"redis\",region_id=\"cn-hangzhou\",instance_id=\"r-junk\"}",
            0.0,
        );
        wait_metric(
            port,
            "aliyun_backup_poll_success{product=\"redis\",region_id=\"cn-hangzhou\",instance_id=\"r-echo\"}",
            0.0,
        );
    })
    .await
    .unwrap();
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child), 0);
    let log = stderr_of(&mut child);
    assert!(log.contains("Odd.Echo"), "the echo was logged: {log}");
    assert!(log.contains("we were handed [***]"), "{log}");
    assert!(!log.contains(TAIL), "the token leaked: {log}");
}

#[test]
fn config_check_validates_and_exits_0_or_2() {
    let good = config_file(
        "check-good",
        "accounts:
  - name: prod
    credentials: {access_key_id_env: PROD_ID, access_key_secret_env: PROD_SECRET}
    redis: {regions: [all], discovery: {tags: {env: prod}}}
  - name: ops
    redis: {regions: [cn-beijing], instance_ids: [r-a, r-b]}
",
    );
    let file = format!("--config.file={}", good.display());
    let mut env = CREDS.to_vec();
    env.extend([("PROD_ID", "id"), ("PROD_SECRET", "not-printed-secret")]);
    let out = exporter(&[&file, "--config.check"], &env)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout} {:?}", out.stderr);
    assert_eq!(stdout.trim_end().lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("configuration OK"), "{stdout}");
    assert!(
        stdout.contains("prod (env)") && stdout.contains("ops (env)"),
        "{stdout}"
    );
    assert!(stdout.contains("static instances: 2"), "{stdout}");
    assert!(!stdout.contains("not-printed-secret"));

    // A variable the file names is not set: 2, naming the account and it.
    let out = exporter(&[&file, "--config.check"], CREDS)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("\"prod\"") && stderr.contains("PROD_ID is not set"),
        "{stderr}"
    );

    // A broken file: 2, one line, the file and the line.
    let bad = config_file(
        "check-bad",
        "accounts:\n  - name: a\n    redis: {regions: [all], discovery: {}}\n    colour: blue\n",
    );
    let file = format!("--config.file={}", bad.display());
    let out = exporter(&[&file, "--config.check"], CREDS)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&bad.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("line 4") && stderr.contains("colour"),
        "{stderr}"
    );

    // A file that is not there.
    let out = exporter(
        &["--config.file=/nonexistent/x.yml", "--config.check"],
        CREDS,
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/x.yml"));
}

fn metric(port: u16, name: &str) -> Option<f64> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    use std::io::Write;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    answer
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn wait_metric(port: u16, name: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if metric(port, name) == Some(want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{name} never became {want}: {:?}", metric(port, name));
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_config_file_and_a_bad_one_is_kept_out() {
    let fake = fake().await;
    for (id, region) in [("r-hz", "cn-hangzhou"), ("r-bj", "cn-beijing")] {
        let mut i = FakeInstance::default();
        i.info.region_id = region.into();
        fake.set_instance(id, i);
    }
    let path = config_file(
        "sighup",
        "accounts:\n  - name: a\n    redis: {regions: [cn-hangzhou], discovery: {}}\n",
    );
    let port = free_port();
    let listen = format!("--web.listen-address=127.0.0.1:{port}");
    let endpoint = format!("--aliyun.endpoint={}", fake.endpoint());
    let file = format!("--config.file={}", path.display());
    let args = [
        listen.as_str(),
        &endpoint,
        &file,
        "--discovery.interval=300ms",
        "--poll.interval=1s",
    ];
    let mut child = exporter(&args, CREDS)
        .stderr(Stdio::piped())
        .spawn()
        .map(Reaped)
        .unwrap();
    let targets = "aliyun_backup_targets{account=\"a\",product=\"redis\",region_id=\"cn-beijing\"}";
    tokio::task::spawn_blocking(move || {
        wait_http(port, "/readyz");
        assert_eq!(metric(port, targets), None);
    })
    .await
    .unwrap();

    std::fs::write(
        &path,
        "accounts:\n  - name: a\n    redis: {regions: [cn-hangzhou, cn-beijing], discovery: {}}\n",
    )
    .unwrap();
    signal(&child, "HUP");
    let reloaded = "aliyun_backup_exporter_config_last_reload_successful";
    tokio::task::spawn_blocking(move || {
        wait_metric(port, targets, 1.0);
        assert_eq!(metric(port, reloaded), Some(1.0));
    })
    .await
    .unwrap();

    std::fs::write(&path, "accounts: [\n").unwrap();
    signal(&child, "HUP");
    tokio::task::spawn_blocking(move || {
        wait_metric(port, reloaded, 0.0);
        // Still running, still watching what the good file said.
        assert_eq!(metric(port, targets), Some(1.0));
    })
    .await
    .unwrap();
    signal(&child, "TERM");
    let log = stderr_of(&mut child);
    assert_eq!(child.wait().unwrap().code(), Some(0), "{log}");
    assert!(log.contains("SIGHUP received"), "{log}");
    assert!(log.contains("config reload failed"), "{log}");
    assert!(log.contains("unclosed bracket"), "{log}");
}

#[test]
fn the_shard_comes_from_the_statefulset_host_name() {
    let port = free_port();
    let listen = format!("--web.listen-address=127.0.0.1:{port}");
    let args = [
        "--demo",
        listen.as_str(),
        "--shard.count=3",
        "--shard.from-hostname",
    ];
    let mut child = exporter(&args, &[("HOSTNAME", "aliyun-backup-exporter-2")])
        .spawn()
        .map(Reaped)
        .unwrap();
    wait_http(port, "/healthz");
    assert_eq!(
        metric(port, "aliyun_backup_exporter_shard_ordinal"),
        Some(2.0)
    );
    assert_eq!(
        metric(port, "aliyun_backup_exporter_total_shards"),
        Some(3.0)
    );
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child), 0);

    for (hostname, expected) in [
        ("aliyun-backup-exporter-3", "not below --shard.count=3"),
        ("exporter", "does not end in -<ordinal>"),
    ] {
        let out = exporter(&args, &[("HOSTNAME", hostname)]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("--shard.from-hostname") && stderr.contains(expected),
            "{stderr}"
        );
    }
}
