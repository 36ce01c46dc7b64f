//! Command-line flags (each with an environment fallback) → a validated
//! `Config`. Every bad setting is reported as one line naming it.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::Parser;

use crate::aliyun::credentials::chain::{self, Pin, Source};
use crate::aliyun::endpoint;

/// The raw flags, as typed. Durations and addresses stay text here so that
/// `Config::from_cli` can say which setting is wrong, in one line.
#[derive(Debug, Parser)]
#[command(
    name = "aliyun-backup-exporter",
    version,
    about = "Prometheus exporter for the backups of Alibaba Cloud ApsaraDB for Redis / Tair",
    after_help = "Credentials: ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET and optional ALIBABA_CLOUD_SECURITY_TOKEN."
)]
pub struct Cli {
    /// Address to serve /metrics on.
    #[arg(
        long = "web.listen-address",
        env = "ALIYUN_BACKUP_EXPORTER_WEB_LISTEN_ADDRESS",
        default_value = "0.0.0.0:9817"
    )]
    pub listen_address: String,

    /// Path under which to expose metrics.
    #[arg(
        long = "web.telemetry-path",
        env = "ALIYUN_BACKUP_EXPORTER_WEB_TELEMETRY_PATH",
        default_value = "/metrics"
    )]
    pub telemetry_path: String,

    /// Region of the watched instances (also ALIBABA_CLOUD_REGION_ID). Required unless --demo.
    #[arg(long = "aliyun.region", env = "ALIYUN_BACKUP_EXPORTER_ALIYUN_REGION")]
    pub region: Option<String>,

    /// Base URL of the API instead of the region's public host (VPC endpoints, proxies, tests).
    #[arg(
        long = "aliyun.endpoint",
        env = "ALIYUN_BACKUP_EXPORTER_ALIYUN_ENDPOINT"
    )]
    pub endpoint: Option<String>,

    /// Where credentials come from: auto (the official chain: env, oidc, cli-profile,
    /// credentials-file, ecs-ram-role), or one of those only.
    #[arg(
        long = "aliyun.credentials-provider",
        env = "ALIYUN_BACKUP_EXPORTER_ALIYUN_CREDENTIALS_PROVIDER",
        default_value = "auto"
    )]
    pub credentials_provider: String,

    /// STS base URL for RRSA/OIDC [default: https://sts.aliyuncs.com, or from ALIBABA_CLOUD_STS_REGION].
    #[arg(
        long = "aliyun.sts-endpoint",
        env = "ALIYUN_BACKUP_EXPORTER_ALIYUN_STS_ENDPOINT"
    )]
    pub sts_endpoint: Option<String>,

    /// ECS metadata service base URL, for the instance RAM role.
    #[arg(long = "aliyun.metadata-endpoint", env = "ALIYUN_BACKUP_EXPORTER_ALIYUN_METADATA_ENDPOINT", default_value = chain::DEFAULT_METADATA_ENDPOINT)]
    pub metadata_endpoint: String,

    /// Instance to watch; repeatable and comma-separated.
    #[arg(
        long = "redis.instance-id",
        env = "ALIYUN_BACKUP_EXPORTER_REDIS_INSTANCE_ID",
        value_delimiter = ','
    )]
    pub instance_ids: Vec<String>,

    /// Time between the starts of two polls of an instance [default: 5m; 15s with --demo].
    #[arg(long = "poll.interval", env = "ALIYUN_BACKUP_EXPORTER_POLL_INTERVAL")]
    pub poll_interval: Option<String>,

    /// How far back to ask for backups (StartTime = now - lookback).
    #[arg(
        long = "poll.lookback",
        env = "ALIYUN_BACKUP_EXPORTER_POLL_LOOKBACK",
        default_value = "7d"
    )]
    pub poll_lookback: String,

    /// Instances polled at once.
    #[arg(
        long = "poll.concurrency",
        env = "ALIYUN_BACKUP_EXPORTER_POLL_CONCURRENCY",
        default_value = "4"
    )]
    pub poll_concurrency: String,

    /// Deadline of one API request (connect, send, receive).
    #[arg(
        long = "poll.timeout",
        env = "ALIYUN_BACKUP_EXPORTER_POLL_TIMEOUT",
        default_value = "10s"
    )]
    pub poll_timeout: String,

    /// Log level: error, warn, info, debug or trace.
    #[arg(
        long = "log.level",
        env = "ALIYUN_BACKUP_EXPORTER_LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: String,

    /// Log format: logfmt or json.
    #[arg(
        long = "log.format",
        env = "ALIYUN_BACKUP_EXPORTER_LOG_FORMAT",
        default_value = "logfmt"
    )]
    pub log_format: String,

    /// Serve built-in sample instances from an in-process fake API: no cloud account needed.
    #[arg(long = "demo", env = "ALIYUN_BACKUP_EXPORTER_DEMO")]
    pub demo: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Logfmt,
    Json,
}

/// Where the API calls go and with which credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A real (or user-given) endpoint, and where credentials come from.
    Api {
        endpoint: String,
        credentials: Source,
    },
    /// The in-process fake API with the demo's sample instances.
    Demo,
}

/// The validated configuration. `Debug` shows no secret (they are wrapped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen_address: SocketAddr,
    /// Starts with `/`, and is not one of the other endpoints.
    pub telemetry_path: String,
    pub region_id: String,
    pub target: Target,
    /// Deduplicated, in the order given; the demo's when empty in demo mode.
    pub instance_ids: Vec<String>,
    pub poll_interval: Duration,
    pub poll_lookback: Duration,
    pub poll_concurrency: usize,
    pub poll_timeout: Duration,
    pub log_level: tracing::Level,
    pub log_format: LogFormat,
}

/// A bad setting: the flag, its environment variable, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

fn bad(flag: &str, message: impl Into<String>) -> ConfigError {
    let env = format!(
        "ALIYUN_BACKUP_EXPORTER_{}",
        flag.to_ascii_uppercase().replace(['.', '-'], "_")
    );
    ConfigError {
        setting: format!("--{flag} ({env})"),
        message: message.into(),
    }
}

/// A duration, longer than zero and at most `max_secs`.
fn duration(flag: &str, raw: &str, max_secs: u64) -> Result<Duration, ConfigError> {
    let value = humantime::parse_duration(raw.trim()).map_err(|e| {
        bad(
            flag,
            format!("{raw:?} is not a duration like 30s, 5m or 7d ({e})"),
        )
    })?;
    if value.is_zero() {
        return Err(bad(flag, "must be longer than zero"));
    }
    if value > Duration::from_secs(max_secs) {
        let max = humantime::format_duration(Duration::from_secs(max_secs));
        return Err(bad(
            flag,
            format!("{raw:?} is longer than the maximum of {max}"),
        ));
    }
    Ok(value)
}

impl Config {
    /// Validates the flags; `env` looks up the environment variables that
    /// are not flags (credentials, `ALIBABA_CLOUD_REGION_ID`).
    pub fn from_cli(cli: Cli, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let listen_address = parse_listen_address(&cli.listen_address).ok_or_else(|| {
            bad(
                "web.listen-address",
                format!("{:?} is not a host:port address", cli.listen_address),
            )
        })?;

        let telemetry_path = cli.telemetry_path.trim().to_string();
        if !telemetry_path.starts_with('/')
            || ["/", "/healthz", "/readyz"].contains(&telemetry_path.as_str())
        {
            return Err(bad(
                "web.telemetry-path",
                format!("{telemetry_path:?} must start with / and not be /, /healthz or /readyz"),
            ));
        }

        let region_id = cli
            .region
            .clone()
            .or_else(|| env("ALIBABA_CLOUD_REGION_ID"))
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        let region_id = match (region_id, cli.demo) {
            (Some(r), _) => r,
            (None, true) => crate::demo::REGION_ID.to_string(),
            (None, false) => {
                return Err(bad(
                    "aliyun.region",
                    "is required (or ALIBABA_CLOUD_REGION_ID), e.g. cn-hangzhou",
                ))
            }
        };
        if !endpoint::is_valid_region(&region_id) {
            return Err(bad(
                "aliyun.region",
                format!("{region_id:?} is not a region ID like cn-hangzhou"),
            ));
        }

        let mut instance_ids: Vec<String> = Vec::new();
        for id in cli
            .instance_ids
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
        {
            if !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                || id.len() > 64
            {
                return Err(bad(
                    "redis.instance-id",
                    format!("{id:?} is not an instance ID like r-bp1zxszhcgatnx"),
                ));
            }
            if !instance_ids.iter().any(|known| known == id) {
                instance_ids.push(id.to_string());
            }
        }
        if instance_ids.is_empty() {
            if cli.demo {
                instance_ids = crate::demo::INSTANCE_IDS
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
            } else {
                return Err(bad(
                    "redis.instance-id",
                    "at least one instance to watch is required",
                ));
            }
        }

        let default_interval = if cli.demo { "15s" } else { "5m" };
        const DAY: u64 = 86_400;
        let poll_interval = duration(
            "poll.interval",
            cli.poll_interval.as_deref().unwrap_or(default_interval),
            DAY,
        )?;
        let poll_lookback = duration("poll.lookback", &cli.poll_lookback, 366 * DAY)?;
        let poll_timeout = duration("poll.timeout", &cli.poll_timeout, 300)?;
        let poll_concurrency = cli
            .poll_concurrency
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=256).contains(n))
            .ok_or_else(|| {
                bad(
                    "poll.concurrency",
                    format!("{:?} is not a number from 1 to 256", cli.poll_concurrency),
                )
            })?;

        let log_level = cli
            .log_level
            .trim()
            .parse::<tracing::Level>()
            .map_err(|_| {
                bad(
                    "log.level",
                    format!(
                        "{:?} is not one of error, warn, info, debug, trace",
                        cli.log_level
                    ),
                )
            })?;
        let log_format = match cli.log_format.trim().to_ascii_lowercase().as_str() {
            "logfmt" => LogFormat::Logfmt,
            "json" => LogFormat::Json,
            other => {
                return Err(bad(
                    "log.format",
                    format!("{other:?} is not logfmt or json"),
                ))
            }
        };

        let target = if cli.demo {
            Target::Demo
        } else {
            let endpoint = match &cli.endpoint {
                Some(url) => parse_endpoint("aliyun.endpoint", url)?,
                None => endpoint::kvstore_endpoint(&region_id),
            };
            let pin: Pin = cli
                .credentials_provider
                .parse()
                .map_err(|m: String| bad("aliyun.credentials-provider", m))?;
            let endpoints = chain::Endpoints {
                sts: match &cli.sts_endpoint {
                    Some(url) => parse_endpoint("aliyun.sts-endpoint", url)?,
                    None => chain::default_sts_endpoint(&env),
                },
                metadata: parse_endpoint("aliyun.metadata-endpoint", &cli.metadata_endpoint)?,
            };
            let credentials = chain::select(pin, &env, &endpoints).map_err(|e| ConfigError {
                setting: "credentials".into(),
                message: e.to_string(),
            })?;
            Target::Api {
                endpoint,
                credentials,
            }
        };

        Ok(Config {
            listen_address,
            telemetry_path,
            region_id,
            target,
            instance_ids,
            poll_interval,
            poll_lookback,
            poll_concurrency,
            poll_timeout,
            log_level,
            log_format,
        })
    }
}

/// `host:port`, `[::1]:port`, or `:port` (all interfaces, as Prometheus
/// exporters accept).
fn parse_listen_address(raw: &str) -> Option<SocketAddr> {
    let raw = raw.trim();
    let raw = if raw.starts_with(':') {
        format!("0.0.0.0{raw}")
    } else {
        raw.to_string()
    };
    if let Ok(addr) = raw.parse() {
        return Some(addr);
    }
    // A host name such as localhost:9817.
    raw.to_socket_addrs().ok()?.next()
}

/// An http(s) base URL without query or fragment; no trailing slash.
fn parse_endpoint(flag: &str, raw: &str) -> Result<String, ConfigError> {
    // The value may hold credentials (user:password@, ?token=): the error
    // shows only what comes before them.
    let shown: String = raw
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .chars()
        .take(100)
        .collect();
    let invalid = |why: &str| bad(flag, format!("{shown:?} {why}"));
    let url = url::Url::parse(raw.trim()).map_err(|e| invalid(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid("must be an http:// or https:// URL with a host"));
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(invalid(
            "must not carry a query, a fragment or user information",
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut argv = vec!["aliyun-backup-exporter"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).expect("flags parse");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_cli(cli, |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    const CREDS: &[(&str, &str)] = &[
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "id"),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "very-secret"),
    ];

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_and_lists() {
        let c = parse(
            &[
                "--aliyun.region=cn-hangzhou",
                "--redis.instance-id=r-a,r-b",
                "--redis.instance-id",
                "r-a",
            ],
            CREDS,
        )
        .unwrap();
        assert_eq!(c.instance_ids, vec!["r-a", "r-b"]);
        assert_eq!(c.listen_address, "0.0.0.0:9817".parse().unwrap());
        assert_eq!(c.poll_interval, Duration::from_secs(300));
        assert_eq!(c.poll_lookback, Duration::from_secs(7 * 86400));
        assert_eq!(c.poll_timeout, Duration::from_secs(10));
        assert_eq!(c.poll_concurrency, 4);
        let Target::Api {
            endpoint,
            credentials: Source::Static { name, credentials },
        } = &c.target
        else {
            panic!("{c:?}")
        };
        assert_eq!(endpoint, "https://r-kvstore.aliyuncs.com");
        assert_eq!((*name, credentials.access_key_id.as_str()), ("env", "id"));
        assert!(!format!("{c:?}").contains("very-secret"));
    }

    #[test]
    fn region_from_alibaba_variable_and_endpoint_override() {
        let mut env = CREDS.to_vec();
        env.push(("ALIBABA_CLOUD_REGION_ID", "eu-central-1"));
        let c = parse(&["--redis.instance-id=r-a"], &env).unwrap();
        assert_eq!(c.region_id, "eu-central-1");
        let Target::Api { endpoint, .. } = &c.target else {
            panic!()
        };
        assert_eq!(endpoint, "https://r-kvstore.eu-central-1.aliyuncs.com");
        let c = parse(
            &[
                "--redis.instance-id=r-a",
                "--aliyun.endpoint=http://127.0.0.1:8080/",
            ],
            &env,
        )
        .unwrap();
        let Target::Api { endpoint, .. } = &c.target else {
            panic!()
        };
        assert_eq!(endpoint, "http://127.0.0.1:8080");
    }

    #[test]
    fn each_bad_setting_is_named() {
        let base = ["--aliyun.region=cn-hangzhou", "--redis.instance-id=r-a"];
        let cases: &[(&[&str], &str)] = &[
            (
                &["--poll.interval=5x"],
                "--poll.interval (ALIYUN_BACKUP_EXPORTER_POLL_INTERVAL)",
            ),
            (&["--poll.lookback=0s"], "--poll.lookback"),
            (&["--poll.lookback=270000y"], "--poll.lookback"),
            (&["--poll.interval=400d"], "--poll.interval"),
            (&["--poll.timeout=1h"], "--poll.timeout"),
            (&["--poll.timeout=soon"], "--poll.timeout"),
            (&["--poll.concurrency=0"], "--poll.concurrency"),
            (&["--web.listen-address=nowhere"], "--web.listen-address"),
            (&["--web.telemetry-path=metrics"], "--web.telemetry-path"),
            (&["--aliyun.endpoint=ftp://x"], "--aliyun.endpoint"),
            (&["--aliyun.endpoint=http://h/?a=b"], "--aliyun.endpoint"),
            (
                &["--aliyun.endpoint=http://user:pa55word@h/?token=t0ken"],
                "--aliyun.endpoint",
            ),
            (&["--log.level=loud"], "--log.level"),
            (&["--log.format=xml"], "--log.format"),
        ];
        for (extra, setting) in cases {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            let err = parse(&args, CREDS).unwrap_err();
            assert!(
                err.to_string().starts_with(setting),
                "{err} should name {setting}"
            );
            assert!(!err.to_string().contains('\n'));
            assert!(
                !err.to_string().contains("pa55word") && !err.to_string().contains("t0ken"),
                "{err}"
            );
        }
        assert!(parse(&["--redis.instance-id=r-a"], CREDS)
            .unwrap_err()
            .setting
            .contains("--aliyun.region"));
        let evil = parse(
            &["--redis.instance-id=r-a", "--aliyun.region=evil.com/x"],
            CREDS,
        )
        .unwrap_err();
        assert!(evil.setting.contains("--aliyun.region"), "{evil}");
        assert!(parse(&["--aliyun.region=cn-hangzhou"], CREDS)
            .unwrap_err()
            .setting
            .contains("--redis.instance-id"));
        let no_creds =
            parse(&base, &[("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")]).unwrap_err();
        assert_eq!(no_creds.setting, "credentials");
        assert!(no_creds.message.contains("ALIBABA_CLOUD_ACCESS_KEY_ID"));
        let mut args = base.to_vec();
        args.push("--aliyun.credentials-provider=magic");
        assert!(parse(&args, CREDS)
            .unwrap_err()
            .setting
            .contains("--aliyun.credentials-provider"));
        let mut args = base.to_vec();
        args.push("--aliyun.sts-endpoint=sts");
        assert!(parse(&args, CREDS)
            .unwrap_err()
            .setting
            .contains("--aliyun.sts-endpoint"));
    }

    #[test]
    fn nothing_configured_falls_back_to_the_ecs_role_without_touching_the_network() {
        let base = ["--aliyun.region=cn-hangzhou", "--redis.instance-id=r-a"];
        let c = parse(&base, &[]).unwrap();
        let Target::Api {
            credentials: Source::Ecs { settings, probe },
            ..
        } = &c.target
        else {
            panic!("{c:?}")
        };
        assert!(*probe);
        assert_eq!(settings.metadata_endpoint, "http://100.100.100.200");
        let mut args = base.to_vec();
        args.push("--aliyun.metadata-endpoint=http://127.0.0.1:9");
        let c = parse(&args, &[("ALIBABA_CLOUD_STS_REGION", "cn-shanghai")]).unwrap();
        let Target::Api {
            credentials: Source::Ecs { settings, .. },
            ..
        } = &c.target
        else {
            panic!()
        };
        assert_eq!(settings.metadata_endpoint, "http://127.0.0.1:9");
    }

    #[test]
    fn demo_needs_nothing() {
        let c = parse(&["--demo"], &[]).unwrap();
        assert_eq!(c.target, Target::Demo);
        assert_eq!(c.poll_interval, Duration::from_secs(15));
        assert_eq!(c.instance_ids.len(), crate::demo::INSTANCE_IDS.len());
        let c = parse(
            &["--demo", "--poll.interval=1m", "--web.listen-address=:9999"],
            &[],
        )
        .unwrap();
        assert_eq!(c.poll_interval, Duration::from_secs(60));
        assert_eq!(c.listen_address.port(), 9999);
    }
}
