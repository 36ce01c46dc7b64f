//! Shared set-up: a fresh fake API per test, clients pointed at it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aliyun_backup_exporter::aliyun::{
    CallLabels, CallObserver, ClientSettings, Credentials, CredentialsProvider, RetryPolicy,
    RpcClient, StaticProvider,
};
use aliyun_backup_exporter::app::{self, Running};
use aliyun_backup_exporter::cli::Cli;
use aliyun_backup_exporter::clock::{self, Clock};
use aliyun_backup_exporter::config::Config;
use aliyun_backup_exporter::fake_api::{FakeApi, FakeKey};
use aliyun_backup_exporter::products::kvstore;
use aliyun_backup_exporter::secret::Secret;
use clap::Parser;

pub const KEY_ID: &str = "LTAI5tTestKeyId";
pub const KEY_SECRET: &str = "SuperSecretValue0123456789abcd";
pub const TOKEN: &str = "CAIS-security-token-very-secret";

pub fn key() -> FakeKey {
    FakeKey {
        id: KEY_ID.into(),
        secret: KEY_SECRET.into(),
        security_token: None,
        account: "main".into(),
    }
}

pub async fn fake() -> FakeApi {
    FakeApi::start(vec![key()]).await.expect("fake API starts")
}

pub fn credentials(secret: &str, token: Option<&str>) -> Credentials {
    Credentials {
        access_key_id: KEY_ID.into(),
        access_key_secret: Secret::new(secret),
        security_token: token.map(Secret::new),
    }
}

/// Records every attempt the client reports.
#[derive(Default)]
pub struct Attempts(Mutex<Vec<(String, String, Duration)>>);

impl Attempts {
    pub fn codes(&self) -> Vec<String> {
        let attempts = self.0.lock().unwrap();
        attempts.iter().map(|(_, code, _)| code.clone()).collect()
    }

    pub fn durations(&self) -> Vec<Duration> {
        let attempts = self.0.lock().unwrap();
        attempts.iter().map(|(_, _, elapsed)| *elapsed).collect()
    }
}

impl CallObserver for Attempts {
    fn attempt(&self, _: &CallLabels, action: &str, code: &str, elapsed: Duration) {
        let mut attempts = self.0.lock().unwrap();
        attempts.push((action.to_string(), code.to_string(), elapsed));
    }
}

pub struct ClientBuilder {
    pub endpoint: String,
    pub credentials: Credentials,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    pub clock: Arc<dyn Clock>,
    /// Replaces the static provider built from `credentials`.
    pub provider: Option<Arc<dyn CredentialsProvider>>,
}

impl ClientBuilder {
    pub fn new(endpoint: String) -> Self {
        ClientBuilder {
            endpoint,
            credentials: credentials(KEY_SECRET, None),
            retry: fast_retries(4),
            timeout: Duration::from_secs(5),
            clock: clock::system(),
            provider: None,
        }
    }

    pub fn build(self) -> (RpcClient, Arc<Attempts>) {
        let attempts = Arc::new(Attempts::default());
        let client = RpcClient::new(
            ClientSettings {
                endpoint: self.endpoint,
                labels: CallLabels::default(),
                version: kvstore::API_VERSION,
                timeout: self.timeout,
                retry: self.retry,
            },
            self.provider
                .unwrap_or_else(|| Arc::new(StaticProvider::new("test", self.credentials))),
            attempts.clone(),
            self.clock,
        )
        .expect("client builds");
        (client, attempts)
    }
}

/// Retries that wait milliseconds, so that tests stay quick.
pub fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_elapsed: Duration::from_secs(20),
    }
}

/// Asserts that no secret of the test set-up shows in `text`.
pub fn assert_no_secret(text: &str) {
    for secret in [
        KEY_SECRET,
        TOKEN,
        "Signature=",
        "FAKEdownloadSIGNATURE",
        "OSSAccessKeyId",
        "string to sign",
    ] {
        assert!(!text.contains(secret), "{secret:?} leaked in: {text}");
    }
}

/// One sample of the text exposition.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text format (enough of it for our own output).
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), Default::default()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels end with }");
                let mut labels = std::collections::BTreeMap::new();
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").expect("label is k=\"v\"");
                    labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (name.to_string(), labels)
            }
        };
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().expect("value is a number"),
        };
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

/// The samples of `name` whose labels include all of `labels`.
pub fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The single value of `name` with `labels`; panics if not exactly one.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = find(samples, name, labels);
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0].value
}

/// Waits (bounded) until `probe` returns `Some`.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A config from flags, as a user would give them, against `fake` (which
/// also serves STS AssumeRole): a loopback listener, and the ECS metadata
/// endpoint on a closed loopback port.
pub fn flags_config(fake: &FakeApi, args: &[&str]) -> Config {
    flags_config_with_file(fake, args, None)
}

/// `flags_config`, with the text of `--config.file` (the test names a path).
pub fn flags_config_with_file(fake: &FakeApi, args: &[&str], file: Option<&str>) -> Config {
    let endpoint = format!("--aliyun.endpoint={}", fake.endpoint());
    let sts = format!("--aliyun.sts-endpoint={}", fake.endpoint());
    let mut argv = vec![
        "aliyun-backup-exporter",
        "--web.listen-address=127.0.0.1:0",
        "--aliyun.metadata-endpoint=http://127.0.0.1:9",
        &sts,
        &endpoint,
    ];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).expect("flags parse");
    Config::from_cli(&cli, |_| None, file).expect("valid config")
}

/// The environment of the default credentials chain: the test key (and a
/// security token), no ECS metadata.
pub fn env_credentials(token: Option<&str>) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "ALIBABA_CLOUD_ACCESS_KEY_ID".to_string(),
            KEY_ID.to_string(),
        ),
        (
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET".to_string(),
            KEY_SECRET.to_string(),
        ),
        (
            "ALIBABA_CLOUD_ECS_METADATA_DISABLED".to_string(),
            "true".to_string(),
        ),
    ];
    if let Some(token) = token {
        env.push((
            "ALIBABA_CLOUD_SECURITY_TOKEN".to_string(),
            token.to_string(),
        ));
    }
    env
}

/// Starts the exporter in-process with `env` as its environment.
pub async fn start_exporter(config: Config, env: &[(String, String)]) -> Running {
    let env = env.to_vec();
    app::start_with_env(
        config,
        clock::system(),
        Arc::new(move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())),
    )
    .await
    .expect("exporter starts")
}

/// A config file in a fresh directory of its own, removed (directory
/// and all) when the value is dropped.
pub struct ConfigFile {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for ConfigFile {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.path
    }
}

impl AsRef<std::path::Path> for ConfigFile {
    fn as_ref(&self) -> &std::path::Path {
        &self.path
    }
}

/// `text` as `config.yml` in a fresh directory of its own.
pub fn config_file(name: &str, text: &str) -> ConfigFile {
    let dir = tempfile::Builder::new()
        .prefix(&format!("abe-{name}-"))
        .tempdir()
        .expect("a temporary directory");
    let path = dir.path().join("config.yml");
    std::fs::write(&path, text).unwrap();
    ConfigFile { path, _dir: dir }
}

/// GET `path` of a running exporter.
pub async fn get(running: &Running, path: &str) -> reqwest::Response {
    reqwest::get(format!("http://{}{path}", running.addr))
        .await
        .expect("exporter answers")
}

/// `/metrics`, checked for its status and content type, parsed.
pub async fn scrape(running: &Running) -> Vec<Sample> {
    let response = get(running, "/metrics").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    parse_exposition(&response.text().await.unwrap())
}

/// Waits (bounded) until `/readyz` answers 200.
pub async fn wait_ready(running: &Running) {
    eventually("/readyz", || async {
        (get(running, "/readyz").await.status() == 200).then_some(())
    })
    .await;
}

#[test]
fn config_files_leave_nothing_behind() {
    let file = config_file("gone", "accounts: []\n");
    let dir = file.parent().expect("a directory").to_path_buf();
    assert_eq!(std::fs::read_to_string(&*file).unwrap(), "accounts: []\n");
    drop(file);
    assert!(!dir.exists(), "{} is left behind", dir.display());
}
