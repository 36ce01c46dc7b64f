//! The flags (`cli`) and the config file (`file`) turned into a validated
//! `Config`, every field documented. Validation is pure: it reads no file,
//! asks no credential source and touches no network (the caller passes the
//! file's text and the environment); a bad setting is one line naming it.

pub mod file;

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::aliyun::credentials::chain::Pin;
use crate::aliyun::credentials::Credentials;
use crate::aliyun::{endpoint, SignatureVersion};
use crate::cli::Cli;
use crate::model::BackupApi;
use crate::products::{self, Product};

/// The most tag pairs DescribeInstances takes (`Tag.1` … `Tag.5`).
pub const MAX_TAGS: usize = 5;

/// The name of the account that the command-line flags describe.
pub const DEFAULT_ACCOUNT: &str = "default";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Logfmt,
    Json,
}

/// The validated configuration. `Debug` shows no secret (they are wrapped).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen_address: SocketAddr,
    /// Starts with `/`, and is not one of the other endpoints.
    pub telemetry_path: String,
    /// Serve `POST /-/reload`.
    pub enable_lifecycle: bool,
    /// Open HTTP connections at most (`--web.max-connections`).
    pub max_connections: usize,
    /// `--web.config.file`: TLS, basic auth and headers for the server
    /// (read and checked when the exporter starts: `web::Web::load`).
    pub web_config_file: Option<PathBuf>,
    /// Watch the demo's sample instances in an in-process fake API; the
    /// accounts are then built when the exporter starts.
    pub demo: bool,
    /// The config file, re-read on SIGHUP and `/-/reload`.
    pub config_file: Option<PathBuf>,
    /// Every account: the flags' `default` one first, then the file's.
    pub accounts: Vec<AccountConfig>,
    /// What the flags say, kept to rebuild `accounts` when the file changes.
    pub flag_account: Option<AccountConfig>,
    pub file_defaults: file::Defaults,
    pub discovery_interval: Duration,
    /// Tag keys shown as `tag_<key>` labels on `aliyun_backup_instance_info`.
    pub tag_labels: Vec<TagLabel>,
    pub poll: PollConfig,
    pub backup: BackupExpectation,
    pub shard: ShardConfig,
    pub credentials: CredentialSettings,
    pub log_level: tracing::Level,
    pub log_format: LogFormat,
}

/// How each instance is polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollConfig {
    pub interval: Duration,
    pub lookback: Duration,
    pub concurrency: usize,
    /// Deadline of one API request.
    pub timeout: Duration,
}

/// How old an instance's newest successful backup may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupExpectation {
    /// When the backup policy is unknown.
    pub max_age: Duration,
    /// Added to what the policy implies.
    pub grace: Duration,
}

/// One Alibaba Cloud account and what to watch in it.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountConfig {
    /// Unique; the `account` label.
    pub name: String,
    pub credentials: AccountCredentials,
    /// Assumed with STS `AssumeRole` on top of `credentials`.
    pub role: Option<RoleConfig>,
    /// Requests per second to the database APIs; 0 is unlimited.
    pub rate_limit: f64,
    /// Replaces every derived host (VPC endpoints, proxies, tests).
    pub endpoint: Option<String>,
    /// How the account's API requests are signed.
    pub signature_version: SignatureVersion,
    /// What to watch of each product; at least one.
    pub products: BTreeMap<Product, ProductConfig>,
}

/// Where an account's base credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCredentials {
    /// The default chain (env, RRSA, profile files, ECS role), as
    /// `--aliyun.credentials-provider` pins it.
    Chain,
    /// A profile of the Alibaba CLI config, or a section of the credentials file.
    Profile(String),
    /// Environment variables, by name (never the values).
    Env {
        access_key_id: String,
        access_key_secret: String,
        security_token: Option<String>,
    },
    /// Given credentials: the demo's, or a test's.
    Static(Credentials),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleConfig {
    /// `acs:ram::<account-id>:role/<name>`
    pub arn: String,
    pub session_name: String,
}

/// One product's instances in an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductConfig {
    /// Where the account's instances are: listed when `discovery` is on,
    /// and where static instances are looked up.
    pub regions: Regions,
    /// The region of the static instances when it is known up front (one
    /// region configured, or `--aliyun.region`): they are then polled from
    /// the start, before any lookup. Otherwise each is watched in the region
    /// where DescribeInstances finds it.
    pub static_region: Option<String>,
    /// Static instance IDs, deduplicated, in the order given.
    pub instance_ids: Vec<String>,
    /// Find every instance of the regions (with these tags).
    pub discovery: Option<DiscoveryConfig>,
    /// Per instance: the call that lists its backups, when what
    /// DescribeInstances says would choose wrong.
    pub backup_api: BTreeMap<String, BackupApi>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Regions {
    List(Vec<String>),
    /// Every region DescribeRegions names.
    All,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiscoveryConfig {
    /// An instance must carry every pair; at most `MAX_TAGS`.
    pub tags: Vec<(String, String)>,
}

/// A tag key and the label name it is shown under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagLabel {
    pub key: String,
    /// `tag_` + the key with every character outside `[a-zA-Z0-9_]` as `_`.
    pub label: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardConfig {
    pub count: u32,
    pub index: ShardIndex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardIndex {
    Fixed(u32),
    /// The StatefulSet ordinal at the end of the host name, read at start-up.
    FromHostname,
}

/// What the credential sources need besides the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSettings {
    pub pin: Pin,
    /// `None`: from `ALIBABA_CLOUD_STS_REGION`, else `sts.aliyuncs.com`.
    pub sts_endpoint: Option<String>,
    pub metadata_endpoint: String,
}

/// A bad setting: the flag, its environment variable, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

/// A flag's error: `--flag (ALIYUN_BACKUP_EXPORTER_FLAG): message`.
pub fn bad(flag: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: format!("--{flag} ({})", env_name(flag)),
        message: message.into(),
    }
}

/// The environment variable of a flag.
pub fn env_name(flag: &str) -> String {
    format!(
        "ALIYUN_BACKUP_EXPORTER_{}",
        flag.to_ascii_uppercase().replace(['.', '-'], "_")
    )
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

const DAY: u64 = 86_400;

/// `value`, unless it is under `min`.
fn at_least(flag: &str, value: Duration, min: Duration) -> Result<Duration, ConfigError> {
    if value < min {
        return Err(bad(
            flag,
            format!(
                "{} is shorter than the minimum of {}",
                humantime::format_duration(value),
                humantime::format_duration(min)
            ),
        ));
    }
    Ok(value)
}

impl Config {
    /// Validates the flags and, when `--config.file` is given, the file's
    /// `file_text`; `env` looks up the environment variables that are not
    /// flags (`ALIBABA_CLOUD_REGION_ID`).
    pub fn from_cli(
        cli: &Cli,
        env: impl Fn(&str) -> Option<String>,
        file_text: Option<&str>,
    ) -> Result<Config, ConfigError> {
        let listen_address = parse_listen_address(&cli.listen_address).ok_or_else(|| {
            bad(
                "web.listen-address",
                format!("{:?} is not a host:port address", cli.listen_address),
            )
        })?;

        let telemetry_path = cli.telemetry_path.trim().to_string();
        // A path a request can reach: no query, fragment, space or other
        // character a client would encode (it would never match).
        let reachable = telemetry_path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b));
        if !reachable {
            return Err(bad(
                "web.telemetry-path",
                format!(
                    "{telemetry_path:?} cannot be requested: use letters, digits and - . _ ~ / only (no query, fragment or space)"
                ),
            ));
        }
        if !telemetry_path.starts_with('/')
            || ["/", "/healthz", "/readyz", "/-/reload"].contains(&telemetry_path.as_str())
        {
            return Err(bad(
                "web.telemetry-path",
                format!(
                    "{telemetry_path:?} must start with / and not be /, /healthz, /readyz or /-/reload"
                ),
            ));
        }

        let poll = PollConfig {
            // A typo such as 5ms for 5m would send hundreds of requests a
            // second: no interval under a second, no timeout under 100 ms.
            interval: at_least(
                "poll.interval",
                duration(
                    "poll.interval",
                    cli.poll_interval
                        .as_deref()
                        .unwrap_or(if cli.demo { "15s" } else { "5m" }),
                    DAY,
                )?,
                Duration::from_secs(1),
            )?,
            lookback: duration("poll.lookback", &cli.poll_lookback, 366 * DAY)?,
            timeout: at_least(
                "poll.timeout",
                duration("poll.timeout", &cli.poll_timeout, 300)?,
                Duration::from_millis(100),
            )?,
            concurrency: cli
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
                })?,
        };
        let backup = BackupExpectation {
            max_age: duration("backup.max-age", &cli.backup_max_age, 366 * DAY)?,
            // No slack at all is a choice (zero is refused elsewhere).
            grace: match humantime::parse_duration(cli.backup_grace.trim()) {
                Ok(zero) if zero.is_zero() => zero,
                _ => duration("backup.grace", &cli.backup_grace, 7 * DAY)?,
            },
        };
        let discovery_interval = duration(
            "discovery.interval",
            cli.discovery_interval
                .as_deref()
                .unwrap_or(if cli.demo { "20s" } else { "10m" }),
            DAY,
        )?;
        let tag_labels = tag_labels(&cli.discovery_tag_labels)?;
        let shard = shard(cli)?;
        let rate_limit = rate_limit(&cli.rate_limit).map_err(|m| bad("aliyun.rate-limit", m))?;
        let signature_version = cli
            .signature_version
            .parse::<SignatureVersion>()
            .map_err(|m| bad("aliyun.signature-version", m))?;

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

        let credentials = CredentialSettings {
            pin: cli
                .credentials_provider
                .parse()
                .map_err(|m: String| bad("aliyun.credentials-provider", m))?,
            sts_endpoint: cli
                .sts_endpoint
                .as_deref()
                .map(|url| parse_endpoint("aliyun.sts-endpoint", url))
                .transpose()?,
            metadata_endpoint: parse_endpoint("aliyun.metadata-endpoint", &cli.metadata_endpoint)?,
        };
        let endpoint = cli
            .endpoint
            .as_deref()
            .map(|url| parse_endpoint("aliyun.endpoint", url))
            .transpose()?;
        let region = cli
            .region
            .clone()
            .or_else(|| env("ALIBABA_CLOUD_REGION_ID"))
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        if let Some(region) = &region {
            if !endpoint::is_valid_region(region) {
                return Err(bad(
                    "aliyun.region",
                    format!("{region:?} is not a region ID like cn-hangzhou"),
                ));
            }
        }
        let tags = cli
            .discovery_tags
            .iter()
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .map(|t| parse_tag(t).map_err(|m| bad("discovery.tag", m)))
            .collect::<Result<Vec<_>, _>>()?;
        check_tags(&tags).map_err(|m| bad("discovery.tag", m))?;

        let max_connections = cli
            .max_connections
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| {
                bad(
                    "web.max-connections",
                    format!(
                        "{:?} is not a number from 1 to 1000000",
                        cli.max_connections
                    ),
                )
            })?;

        let mut config = Config {
            listen_address,
            telemetry_path,
            enable_lifecycle: cli.enable_lifecycle,
            max_connections,
            web_config_file: cli
                .web_config_file
                .as_deref()
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            demo: cli.demo,
            config_file: cli
                .config_file
                .as_deref()
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            accounts: Vec::new(),
            flag_account: None,
            file_defaults: file::Defaults {
                region: region.clone(),
                endpoint: endpoint.clone(),
                rate_limit,
                signature_version,
                tags: tags.clone(),
            },
            discovery_interval,
            tag_labels,
            poll,
            backup,
            shard,
            credentials,
            log_level,
            log_format,
        };

        products::parse_list(&cli.discovery_products)
            .ok()
            .filter(|list| !list.is_empty())
            .ok_or_else(|| {
                bad(
                    "discovery.products",
                    format!(
                        "{:?} is not a comma-separated list of redis, rds, mongodb, polardb",
                        cli.discovery_products.join(",")
                    ),
                )
            })?;

        if cli.demo {
            // The demo builds its own account around its fake API.
            for (given, flag) in [
                (!cli.instance_ids.is_empty(), "redis.instance-id"),
                (!cli.rds_instance_ids.is_empty(), "rds.instance-id"),
                (!cli.mongodb_instance_ids.is_empty(), "mongodb.instance-id"),
                (!cli.polardb_cluster_ids.is_empty(), "polardb.cluster-id"),
                (!cli.discovery_regions.is_empty(), "discovery.regions"),
                (config.config_file.is_some(), "config.file"),
                (cli.endpoint.is_some(), "aliyun.endpoint"),
            ] {
                if given {
                    return Err(bad(
                        flag,
                        "--demo watches its own sample instances; leave this out",
                    ));
                }
            }
            return Ok(config);
        }

        config.flag_account = flag_account(
            cli,
            region,
            endpoint,
            rate_limit,
            signature_version,
            tags,
            config.config_file.is_some(),
        )?;
        config.accounts = config.with_file(file_text)?;
        if config.accounts.is_empty() {
            return Err(bad(
                "redis.instance-id",
                "nothing to watch: give instance IDs, --discovery.regions or --config.file",
            ));
        }
        Ok(config)
    }

    /// The accounts for a (new) text of the config file: the flags' account
    /// and the file's. Used at start-up and on every reload.
    pub fn with_file(&self, file_text: Option<&str>) -> Result<Vec<AccountConfig>, ConfigError> {
        let mut accounts: Vec<AccountConfig> = self.flag_account.iter().cloned().collect();
        if let (Some(path), Some(text)) = (&self.config_file, file_text) {
            let from_file =
                file::parse(text, &self.file_defaults).map_err(|message| ConfigError {
                    setting: format!(
                        "--config.file ({}) {}",
                        env_name("config.file"),
                        path.display()
                    ),
                    message,
                })?;
            for account in from_file {
                if accounts.iter().any(|a| a.name == account.name) {
                    return Err(bad(
                        "config.file",
                        format!(
                            "account {:?} is also made by --redis.instance-id / --discovery.regions; rename it",
                            account.name
                        ),
                    ));
                }
                accounts.push(account);
            }
        }
        Ok(accounts)
    }
}

/// The `default` account the flags describe, if they describe one.
fn flag_account(
    cli: &Cli,
    region: Option<String>,
    endpoint: Option<String>,
    rate_limit: f64,
    signature_version: SignatureVersion,
    tags: Vec<(String, String)>,
    has_file: bool,
) -> Result<Option<AccountConfig>, ConfigError> {
    let discovery_products =
        products::parse_list(&cli.discovery_products).map_err(|m| bad("discovery.products", m))?;
    if discovery_products.is_empty() {
        return Err(bad(
            "discovery.products",
            "name at least one of redis, rds, mongodb, polardb",
        ));
    }
    let mut statics: BTreeMap<Product, Vec<String>> = BTreeMap::new();
    for (product, flag, raw) in [
        (Product::Redis, "redis.instance-id", &cli.instance_ids),
        (Product::Rds, "rds.instance-id", &cli.rds_instance_ids),
        (
            Product::MongoDb,
            "mongodb.instance-id",
            &cli.mongodb_instance_ids,
        ),
        (
            Product::PolarDb,
            "polardb.cluster-id",
            &cli.polardb_cluster_ids,
        ),
    ] {
        let ids = instance_ids(raw).map_err(|m| bad(flag, m))?;
        if !ids.is_empty() {
            statics.insert(product, ids);
        }
    }
    let discovery_regions =
        regions(&cli.discovery_regions).map_err(|m| bad("discovery.regions", m))?;
    if statics.is_empty() && discovery_regions.is_none() {
        // Without a file to be the default for, tags alone filter nothing.
        if !tags.is_empty() && !has_file {
            return Err(bad(
                "discovery.tag",
                "needs --discovery.regions (or discovery in --config.file)",
            ));
        }
        return Ok(None);
    }
    let static_region = match (&region, &discovery_regions) {
        (Some(region), _) => Some(region.clone()),
        (None, Some(Regions::List(list))) if list.len() == 1 => Some(list[0].clone()),
        (None, Some(_)) => None,
        (None, None) => {
            return Err(bad(
                "aliyun.region",
                "is required (or ALIBABA_CLOUD_REGION_ID), e.g. cn-hangzhou",
            ))
        }
    };
    let regions = match (&discovery_regions, &region) {
        (Some(regions), _) => regions.clone(),
        (None, Some(region)) => Regions::List(vec![region.clone()]),
        (None, None) => unreachable!("checked above"),
    };
    // Each product with static IDs, or discovered (`--discovery.products`).
    let mut products = BTreeMap::new();
    for product in Product::ALL {
        let discovered = discovery_regions.is_some() && discovery_products.contains(&product);
        let instance_ids = statics.remove(&product).unwrap_or_default();
        if instance_ids.is_empty() && !discovered {
            continue;
        }
        products.insert(
            product,
            ProductConfig {
                regions: regions.clone(),
                static_region: static_region.clone(),
                instance_ids,
                discovery: discovered.then(|| DiscoveryConfig { tags: tags.clone() }),
                backup_api: Default::default(),
            },
        );
    }
    Ok(Some(AccountConfig {
        name: DEFAULT_ACCOUNT.to_string(),
        credentials: AccountCredentials::Chain,
        role: None,
        rate_limit,
        endpoint,
        signature_version,
        products,
    }))
}

/// Instance IDs: trimmed, checked, deduplicated in order.
pub fn instance_ids<S: AsRef<str>>(raw: &[S]) -> Result<Vec<String>, String> {
    let mut ids: Vec<String> = Vec::new();
    for id in raw
        .iter()
        .map(|s| s.as_ref().trim())
        .filter(|s| !s.is_empty())
    {
        if !is_valid_instance_id(id) {
            return Err(format!(
                "{id:?} is not an instance ID like r-bp1zxszhcgatnx"
            ));
        }
        if !ids.iter().any(|known| known == id) {
            ids.push(id.to_string());
        }
    }
    Ok(ids)
}

/// Letters, digits, `-` and `_`, at most 64: what Alibaba's IDs are made
/// of, and safe in a label, a log line and a query string.
pub fn is_valid_instance_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Region IDs, or `all` alone; `None` when empty.
pub fn regions<S: AsRef<str>>(raw: &[S]) -> Result<Option<Regions>, String> {
    let list: Vec<&str> = raw
        .iter()
        .map(|s| s.as_ref().trim())
        .filter(|s| !s.is_empty())
        .collect();
    if list.is_empty() {
        return Ok(None);
    }
    if list.contains(&"all") {
        return if list.len() == 1 {
            Ok(Some(Regions::All))
        } else {
            Err("`all` cannot be combined with region IDs".into())
        };
    }
    let mut regions: Vec<String> = Vec::new();
    for region in list {
        if !endpoint::is_valid_region(region) {
            return Err(format!("{region:?} is not a region ID like cn-hangzhou"));
        }
        if !regions.iter().any(|r| r == region) {
            regions.push(region.to_string());
        }
    }
    Ok(Some(Regions::List(regions)))
}

/// `key=value`.
fn parse_tag(raw: &str) -> Result<(String, String), String> {
    let (key, value) = raw
        .split_once('=')
        .ok_or_else(|| format!("{raw:?} is not key=value"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("{raw:?} has an empty key"));
    }
    Ok((key.to_string(), value.trim().to_string()))
}

/// At most `MAX_TAGS` pairs, no key twice, nothing absurdly long.
pub fn check_tags(tags: &[(String, String)]) -> Result<(), String> {
    if tags.len() > MAX_TAGS {
        return Err(format!(
            "{} tags given; DescribeInstances takes at most {MAX_TAGS}",
            tags.len()
        ));
    }
    for (i, (key, value)) in tags.iter().enumerate() {
        if key.is_empty() || key.len() > 128 || value.len() > 128 {
            return Err(format!(
                "tag {key:?}: keys of 1 to 128 characters, values up to 128"
            ));
        }
        if tags[..i].iter().any(|(k, _)| k == key) {
            return Err(format!("tag {key:?} is given twice"));
        }
    }
    Ok(())
}

/// `tag_` + the key with every character outside `[a-zA-Z0-9_]` as `_`.
pub fn tag_label_name(key: &str) -> String {
    let clean: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("tag_{clean}")
}

fn tag_labels(raw: &[String]) -> Result<Vec<TagLabel>, ConfigError> {
    let mut labels: Vec<TagLabel> = Vec::new();
    for key in raw.iter().map(|k| k.trim()).filter(|k| !k.is_empty()) {
        if key.len() > 128 {
            return Err(bad("discovery.tag-labels", format!("{key:?} is too long")));
        }
        let label = tag_label_name(key);
        if let Some(other) = labels.iter().find(|l| l.label == label) {
            if other.key == key {
                continue;
            }
            return Err(bad(
                "discovery.tag-labels",
                format!(
                    "{:?} and {key:?} would both be the label {label}",
                    other.key
                ),
            ));
        }
        labels.push(TagLabel {
            key: key.to_string(),
            label,
        });
    }
    Ok(labels)
}

/// Requests per second: a number from 0 (unlimited) to 10,000.
pub fn rate_limit(raw: &str) -> Result<f64, String> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && (0.0..=10_000.0).contains(r))
        .ok_or_else(|| format!("{raw:?} is not a number from 0 (unlimited) to 10000"))
}

fn shard(cli: &Cli) -> Result<ShardConfig, ConfigError> {
    let count = cli
        .shard_count
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or_else(|| {
            bad(
                "shard.count",
                format!("{:?} is not a number from 1 to 1000", cli.shard_count),
            )
        })?;
    let index = match (&cli.shard_index, cli.shard_from_hostname) {
        (Some(_), true) => {
            return Err(bad(
                "shard.index",
                "give either --shard.index or --shard.from-hostname, not both",
            ))
        }
        (None, true) => ShardIndex::FromHostname,
        (None, false) => ShardIndex::Fixed(0),
        (Some(raw), false) => ShardIndex::Fixed(
            raw.trim()
                .parse::<u32>()
                .ok()
                .filter(|i| *i < count)
                .ok_or_else(|| {
                    bad(
                        "shard.index",
                        format!("{raw:?} is not a number from 0 to {}", count - 1),
                    )
                })?,
        ),
    };
    Ok(ShardConfig { count, index })
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
pub fn parse_endpoint(flag: &str, raw: &str) -> Result<String, ConfigError> {
    check_endpoint(raw).map_err(|m| bad(flag, m))
}

/// Like `parse_endpoint`, with the bare message (for the config file).
/// The value may hold credentials (`user:password@`, `?token=`), in any
/// spelling, valid or not: an error never shows the value itself, only the
/// scheme, host and port of one that parsed.
pub fn check_endpoint(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| {
        format!(
            "is not an http:// or https:// URL ({e}); the value is not shown, it may hold a secret"
        )
    })?;
    let shown = match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
        (Some(host), None) => format!("{}://{host}", url.scheme()),
        (None, _) => format!("{}:", url.scheme()),
    };
    let invalid = |why: &str| format!("{shown:?} {why}");
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
    use clap::Parser;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        parse_with_file(args, env, None)
    }

    fn parse_with_file(
        args: &[&str],
        env: &[(&str, &str)],
        file: Option<&str>,
    ) -> Result<Config, ConfigError> {
        let mut argv = vec!["aliyun-backup-exporter"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).expect("flags parse");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_cli(
            &cli,
            |name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            file,
        )
    }

    #[test]
    fn product_flags_make_one_section_per_product() {
        let c = parse(
            &[
                "--discovery.regions=cn-hangzhou,cn-beijing",
                "--discovery.products=rds, MongoDB",
                "--polardb.cluster-id=pc-1,pc-2",
                "--rds.instance-id=rm-1",
                "--discovery.tag=env=prod",
            ],
            &[],
        )
        .unwrap();
        let products = &c.accounts[0].products;
        assert_eq!(
            products.keys().copied().collect::<Vec<_>>(),
            [Product::Rds, Product::MongoDb, Product::PolarDb],
            "no Redis: not in --discovery.products and no ID given"
        );
        let rds = &products[&Product::Rds];
        assert_eq!(rds.instance_ids, ["rm-1"]);
        assert_eq!(
            rds.discovery.as_ref().unwrap().tags,
            [("env".to_string(), "prod".to_string())]
        );
        assert!(products[&Product::MongoDb].instance_ids.is_empty());
        assert!(products[&Product::MongoDb].discovery.is_some());
        // Given IDs only: not discovered.
        let polardb = &products[&Product::PolarDb];
        assert_eq!(polardb.instance_ids, ["pc-1", "pc-2"]);
        assert_eq!(polardb.discovery, None);
        assert_eq!(
            polardb.regions,
            Regions::List(vec!["cn-hangzhou".into(), "cn-beijing".into()])
        );

        // Static IDs alone, each product in the one region.
        let c = parse(
            &["--aliyun.region=cn-hangzhou", "--mongodb.instance-id=dds-1"],
            &[],
        )
        .unwrap();
        let products = &c.accounts[0].products;
        assert_eq!(
            products.keys().copied().collect::<Vec<_>>(),
            [Product::MongoDb]
        );
        assert_eq!(
            products[&Product::MongoDb].static_region.as_deref(),
            Some("cn-hangzhou")
        );

        for (args, flag) in [
            (
                &["--discovery.regions=all", "--discovery.products=redis,foo"][..],
                "--discovery.products (ALIYUN_BACKUP_EXPORTER_DISCOVERY_PRODUCTS)",
            ),
            (
                &["--discovery.regions=all", "--discovery.products=,"][..],
                "--discovery.products",
            ),
            (
                &["--aliyun.region=cn-hangzhou", "--polardb.cluster-id=pc/1"][..],
                "--polardb.cluster-id",
            ),
            (
                &["--demo", "--mongodb.instance-id=dds-1"][..],
                "--mongodb.instance-id",
            ),
        ] {
            let err = parse(args, &[]).unwrap_err().to_string();
            assert!(err.starts_with(flag), "{args:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
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
            &[],
        )
        .unwrap();
        let [account] = &c.accounts[..] else {
            panic!("{c:?}")
        };
        assert_eq!(account.name, "default");
        assert_eq!(account.credentials, AccountCredentials::Chain);
        assert_eq!(
            account.products[&Product::Redis].instance_ids,
            vec!["r-a", "r-b"]
        );
        assert_eq!(
            account.products[&Product::Redis].static_region.as_deref(),
            Some("cn-hangzhou")
        );
        assert_eq!(
            account.products[&Product::Redis].regions,
            Regions::List(vec!["cn-hangzhou".into()])
        );
        assert_eq!(account.products[&Product::Redis].discovery, None);
        assert_eq!(account.rate_limit, 20.0);
        assert_eq!(account.endpoint, None);
        assert_eq!(c.listen_address, "0.0.0.0:9817".parse().unwrap());
        assert_eq!(c.poll.interval, Duration::from_secs(300));
        assert_eq!(c.poll.lookback, Duration::from_secs(7 * 86400));
        assert_eq!(c.poll.timeout, Duration::from_secs(10));
        assert_eq!(c.poll.concurrency, 4);
        assert_eq!(c.discovery_interval, Duration::from_secs(600));
        assert_eq!(
            c.shard,
            ShardConfig {
                count: 1,
                index: ShardIndex::Fixed(0)
            }
        );
        assert_eq!(c.credentials.pin, Pin::Auto);
        assert_eq!(c.credentials.metadata_endpoint, "http://100.100.100.200");
    }

    #[test]
    fn an_endpoint_error_never_shows_a_secret() {
        // Passwords and tokens with the characters that cut URLs short.
        for raw in [
            "http://us3r:pa#55word@proxy.example.com:8080/",
            "http://us3r:pa?55word@proxy.example.com:8080/",
            "http://us3r:pa55word@proxy.example.com:8080/?token=t0ken#fr4g",
            "http://[bad:pa55word@host/",
            "pa55word",
            "http://proxy.example.com:8080/x?pa55word",
        ] {
            let flag = format!("--aliyun.endpoint={raw}");
            let err = parse(
                &[
                    "--redis.instance-id=r-1",
                    "--aliyun.region=cn-hangzhou",
                    &flag,
                ],
                &[],
            )
            .unwrap_err()
            .to_string();
            for secret in ["55word", "t0ken", "fr4g", "us3r"] {
                assert!(!err.contains(secret), "{raw}: {err}");
            }
            assert!(err.contains("--aliyun.endpoint"), "{err}");
        }
        let err = check_endpoint("http://u:p@proxy.example.com:8080/").unwrap_err();
        assert!(
            err.starts_with("\"http://proxy.example.com:8080\" must not"),
            "{err}"
        );
    }

    #[test]
    fn region_from_alibaba_variable_and_endpoint_override() {
        let env = [("ALIBABA_CLOUD_REGION_ID", "eu-central-1")];
        let c = parse(&["--redis.instance-id=r-a"], &env).unwrap();
        assert_eq!(
            c.accounts[0].products[&Product::Redis]
                .static_region
                .as_deref(),
            Some("eu-central-1")
        );
        let c = parse(
            &[
                "--redis.instance-id=r-a",
                "--aliyun.endpoint=http://127.0.0.1:8080/",
            ],
            &env,
        )
        .unwrap();
        assert_eq!(
            c.accounts[0].endpoint.as_deref(),
            Some("http://127.0.0.1:8080")
        );
    }

    #[test]
    fn discovery_flags_make_the_default_account() {
        let c = parse(
            &[
                "--discovery.regions=all",
                "--discovery.tag=env=prod",
                "--discovery.tag",
                "team = payments",
                "--discovery.tag-labels=env,cost-center",
                "--aliyun.rate-limit=2.5",
            ],
            &[],
        )
        .unwrap();
        let redis = &c.accounts[0].products[&Product::Redis];
        assert_eq!(redis.regions, Regions::All);
        assert_eq!(redis.static_region, None);
        assert_eq!(
            redis.discovery.as_ref().unwrap().tags,
            vec![
                ("env".to_string(), "prod".to_string()),
                ("team".to_string(), "payments".to_string())
            ]
        );
        assert_eq!(c.accounts[0].rate_limit, 2.5);
        assert_eq!(c.accounts[0].signature_version, SignatureVersion::V2);
        let v3 = parse(
            &["--discovery.regions=all", "--aliyun.signature-version=v3"],
            &[],
        )
        .unwrap();
        assert_eq!(v3.accounts[0].signature_version, SignatureVersion::V3);
        assert_eq!(v3.file_defaults.signature_version, SignatureVersion::V3);
        let labels: Vec<&str> = c.tag_labels.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["tag_env", "tag_cost_center"]);

        // Statics and one discovery region: the statics live there.
        let c = parse(
            &["--discovery.regions=cn-shanghai", "--redis.instance-id=r-x"],
            &[],
        )
        .unwrap();
        assert_eq!(
            c.accounts[0].products[&Product::Redis]
                .static_region
                .as_deref(),
            Some("cn-shanghai")
        );
        // Several regions: the statics are looked up.
        let c = parse(
            &[
                "--discovery.regions=cn-shanghai,cn-beijing",
                "--redis.instance-id=r-x",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.accounts[0].products[&Product::Redis].static_region, None);
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
            (&["--poll.interval=5ms"], "--poll.interval"),
            (&["--poll.interval=999ms"], "--poll.interval"),
            (&["--poll.timeout=99ms"], "--poll.timeout"),
            (&["--poll.timeout=1h"], "--poll.timeout"),
            (&["--poll.timeout=soon"], "--poll.timeout"),
            (&["--poll.concurrency=0"], "--poll.concurrency"),
            (&["--web.max-connections=0"], "--web.max-connections"),
            (&["--web.max-connections=many"], "--web.max-connections"),
            (&["--web.listen-address=nowhere"], "--web.listen-address"),
            (&["--web.telemetry-path=metrics"], "--web.telemetry-path"),
            (&["--web.telemetry-path=/-/reload"], "--web.telemetry-path"),
            (&["--web.telemetry-path=/a b"], "--web.telemetry-path"),
            (
                &["--web.telemetry-path=/metrics?x=1"],
                "--web.telemetry-path",
            ),
            (&["--web.telemetry-path=/metrics#x"], "--web.telemetry-path"),
            (&["--web.telemetry-path=/métriques"], "--web.telemetry-path"),
            (&["--aliyun.endpoint=ftp://x"], "--aliyun.endpoint"),
            (&["--aliyun.endpoint=http://h/?a=b"], "--aliyun.endpoint"),
            (
                &["--aliyun.endpoint=http://user:pa55word@h/?token=t0ken"],
                "--aliyun.endpoint",
            ),
            (&["--log.level=loud"], "--log.level"),
            (&["--log.format=xml"], "--log.format"),
            (
                &["--aliyun.credentials-provider=magic"],
                "--aliyun.credentials-provider",
            ),
            (&["--aliyun.sts-endpoint=sts"], "--aliyun.sts-endpoint"),
            (&["--discovery.interval=never"], "--discovery.interval"),
            (
                &["--discovery.regions=all,cn-beijing"],
                "--discovery.regions",
            ),
            (&["--discovery.regions=Mars"], "--discovery.regions"),
            (
                &["--discovery.regions=all", "--discovery.tag=env"],
                "--discovery.tag",
            ),
            (
                &[
                    "--discovery.regions=all",
                    "--discovery.tag=a=1,b=2,c=3,d=4,e=5,f=6",
                ],
                "--discovery.tag",
            ),
            (
                &["--discovery.regions=all", "--discovery.tag=a=1,a=2"],
                "--discovery.tag",
            ),
            (
                &["--discovery.tag-labels=a-b,a_b"],
                "--discovery.tag-labels",
            ),
            (&["--shard.count=0"], "--shard.count"),
            (&["--shard.count=2", "--shard.index=2"], "--shard.index"),
            (
                &["--shard.index=1", "--shard.from-hostname"],
                "--shard.index",
            ),
            (&["--aliyun.rate-limit=-1"], "--aliyun.rate-limit"),
            (&["--aliyun.rate-limit=fast"], "--aliyun.rate-limit"),
            (
                &["--aliyun.signature-version=v4"],
                "--aliyun.signature-version",
            ),
            (
                &["--aliyun.signature-version="],
                "--aliyun.signature-version",
            ),
            (&["--redis.instance-id=r a"], "--redis.instance-id"),
        ];
        for (extra, setting) in cases {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            let err = parse(&args, &[]).unwrap_err();
            assert!(
                err.to_string().starts_with(setting),
                "{extra:?}: {err} should name {setting}"
            );
            assert!(!err.to_string().contains('\n'));
            assert!(
                !err.to_string().contains("pa55word") && !err.to_string().contains("t0ken"),
                "{err}"
            );
        }
        assert!(parse(&["--redis.instance-id=r-a"], &[])
            .unwrap_err()
            .setting
            .contains("--aliyun.region"));
        let evil = parse(
            &["--redis.instance-id=r-a", "--aliyun.region=evil.com/x"],
            &[],
        )
        .unwrap_err();
        assert!(evil.setting.contains("--aliyun.region"), "{evil}");
        let nothing = parse(&["--aliyun.region=cn-hangzhou"], &[]).unwrap_err();
        assert!(nothing.setting.contains("--redis.instance-id"), "{nothing}");
        assert!(nothing.message.contains("--config.file"), "{nothing}");
        let lone_tag = parse(&["--discovery.tag=a=b"], &[]).unwrap_err();
        assert!(lone_tag.setting.contains("--discovery.tag"), "{lone_tag}");
    }

    #[test]
    fn shards() {
        let base = ["--aliyun.region=cn-hangzhou", "--redis.instance-id=r-a"];
        let mut args = base.to_vec();
        args.extend(["--shard.count=3", "--shard.index=2"]);
        assert_eq!(
            parse(&args, &[]).unwrap().shard,
            ShardConfig {
                count: 3,
                index: ShardIndex::Fixed(2)
            }
        );
        let mut args = base.to_vec();
        args.extend(["--shard.count=3", "--shard.from-hostname"]);
        assert_eq!(
            parse(&args, &[]).unwrap().shard.index,
            ShardIndex::FromHostname
        );
    }

    #[test]
    fn the_file_adds_accounts_after_the_flags_one() {
        let file = "accounts:\n  - name: prod\n    redis:\n      regions: [cn-beijing]\n      instance_ids: [r-p]\n";
        let c = parse_with_file(
            &[
                "--aliyun.region=cn-hangzhou",
                "--redis.instance-id=r-a",
                "--config.file=/etc/x.yml",
            ],
            &[],
            Some(file),
        )
        .unwrap();
        let names: Vec<&str> = c.accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["default", "prod"]);
        // The file alone is enough.
        let c = parse_with_file(&["--config.file=/etc/x.yml"], &[], Some(file)).unwrap();
        assert_eq!(c.accounts.len(), 1);
        assert_eq!(c.flag_account, None);
        // Reloading with another text keeps the flags' account.
        let c = parse_with_file(
            &[
                "--redis.instance-id=r-a",
                "--aliyun.region=cn-hangzhou",
                "--config.file=x",
            ],
            &[],
            Some(file),
        )
        .unwrap();
        let reloaded = c
            .with_file(Some("accounts:\n  - name: other\n    redis:\n      regions: [cn-beijing]\n      instance_ids: [r-o]\n"))
            .unwrap();
        let names: Vec<&str> = reloaded.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["default", "other"]);
        // A file account may not take the flags' name.
        let clash = "accounts:\n  - name: default\n    redis:\n      regions: [cn-beijing]\n      instance_ids: [r-p]\n";
        let err = parse_with_file(
            &[
                "--redis.instance-id=r-a",
                "--aliyun.region=cn-hangzhou",
                "--config.file=x",
            ],
            &[],
            Some(clash),
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"default\""), "{err}");
        // A broken file names the file and the line.
        let err = parse_with_file(
            &["--config.file=/etc/x.yml"],
            &[],
            Some("accounts:\n  - nmae: x\n"),
        )
        .unwrap_err();
        assert!(err.setting.starts_with("--config.file"), "{err}");
        assert!(err.to_string().contains("/etc/x.yml"), "{err}");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn demo_needs_nothing_and_takes_no_accounts() {
        let c = parse(&["--demo"], &[]).unwrap();
        assert!(c.demo);
        assert!(c.accounts.is_empty());
        assert_eq!(c.poll.interval, Duration::from_secs(15));
        assert_eq!(c.discovery_interval, Duration::from_secs(20));
        let c = parse(
            &["--demo", "--poll.interval=1m", "--web.listen-address=:9999"],
            &[],
        )
        .unwrap();
        assert_eq!(c.poll.interval, Duration::from_secs(60));
        assert_eq!(c.listen_address.port(), 9999);
        let err = parse(&["--demo", "--redis.instance-id=r-a"], &[]).unwrap_err();
        assert!(err.setting.contains("--redis.instance-id"), "{err}");
    }

    #[test]
    fn tag_label_names_are_sanitised() {
        assert_eq!(tag_label_name("cost-center"), "tag_cost_center");
        assert_eq!(
            tag_label_name("app.kubernetes.io/name"),
            "tag_app_kubernetes_io_name"
        );
        assert_eq!(tag_label_name("env"), "tag_env");
        assert_eq!(tag_label_name("团队"), "tag___");
    }
}
