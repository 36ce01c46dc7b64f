//! The raw command-line flags, each with an environment fallback
//! (`ALIYUN_BACKUP_EXPORTER_` + the flag in upper case, dots and dashes as
//! underscores). Values stay text here so that validation (`config`) can
//! say which setting is wrong, in one line.

use clap::Parser;

use crate::aliyun::credentials::chain;

/// The raw flags, as typed. Durations and addresses stay text here so that
/// `Config::from_cli` can say which setting is wrong, in one line.
#[derive(Debug, Parser)]
#[command(
    name = "aliyun-backup-exporter",
    version,
    about = "Prometheus exporter for the backups of Alibaba Cloud databases: ApsaraDB for Redis / Tair, RDS, MongoDB and PolarDB",
    after_help = "Credentials: ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET and optional ALIBABA_CLOUD_SECURITY_TOKEN, or RRSA, a profile file or the ECS instance role; several accounts through --config.file."
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

    /// Region of the instances given by --redis.instance-id (also ALIBABA_CLOUD_REGION_ID).
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

    /// ApsaraDB RDS instance to watch; repeatable and comma-separated.
    #[arg(
        long = "rds.instance-id",
        env = "ALIYUN_BACKUP_EXPORTER_RDS_INSTANCE_ID",
        value_delimiter = ','
    )]
    pub rds_instance_ids: Vec<String>,

    /// ApsaraDB for MongoDB instance to watch; repeatable and comma-separated.
    #[arg(
        long = "mongodb.instance-id",
        env = "ALIYUN_BACKUP_EXPORTER_MONGODB_INSTANCE_ID",
        value_delimiter = ','
    )]
    pub mongodb_instance_ids: Vec<String>,

    /// PolarDB cluster to watch; repeatable and comma-separated.
    #[arg(
        long = "polardb.cluster-id",
        env = "ALIYUN_BACKUP_EXPORTER_POLARDB_CLUSTER_ID",
        value_delimiter = ','
    )]
    pub polardb_cluster_ids: Vec<String>,

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

    /// Expected maximum age of the newest successful backup when an instance's backup policy is unknown.
    #[arg(
        long = "backup.max-age",
        env = "ALIYUN_BACKUP_EXPORTER_BACKUP_MAX_AGE",
        default_value = "36h"
    )]
    pub backup_max_age: String,

    /// Slack added to the age an instance's backup policy implies (backups take time).
    #[arg(
        long = "backup.grace",
        env = "ALIYUN_BACKUP_EXPORTER_BACKUP_GRACE",
        default_value = "2h"
    )]
    pub backup_grace: String,

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

    /// YAML file with accounts (credentials, roles, regions, instances, discovery); see examples/.
    #[arg(long = "config.file", env = "ALIYUN_BACKUP_EXPORTER_CONFIG_FILE")]
    pub config_file: Option<String>,

    /// Validate the flags and the config file, print a one-line summary, exit 0 (valid) or 2.
    #[arg(long = "config.check", env = "ALIYUN_BACKUP_EXPORTER_CONFIG_CHECK")]
    pub config_check: bool,

    /// Find every instance in these regions (comma-separated region IDs, or `all`).
    #[arg(
        long = "discovery.regions",
        env = "ALIYUN_BACKUP_EXPORTER_DISCOVERY_REGIONS",
        value_delimiter = ','
    )]
    pub discovery_regions: Vec<String>,

    /// The products --discovery.regions finds instances of: comma-separated redis, rds, mongodb, polardb.
    #[arg(
        long = "discovery.products",
        env = "ALIYUN_BACKUP_EXPORTER_DISCOVERY_PRODUCTS",
        value_delimiter = ',',
        default_value = "redis"
    )]
    pub discovery_products: Vec<String>,

    /// Only instances with this tag (`key=value`); repeatable, every one must match.
    #[arg(
        long = "discovery.tag",
        env = "ALIYUN_BACKUP_EXPORTER_DISCOVERY_TAG",
        value_delimiter = ','
    )]
    pub discovery_tags: Vec<String>,

    /// Time between two discovery rounds [default: 10m; 20s with --demo].
    #[arg(
        long = "discovery.interval",
        env = "ALIYUN_BACKUP_EXPORTER_DISCOVERY_INTERVAL"
    )]
    pub discovery_interval: Option<String>,

    /// Tag keys copied onto aliyun_backup_instance_info as tag_<key> labels (comma-separated).
    #[arg(
        long = "discovery.tag-labels",
        env = "ALIYUN_BACKUP_EXPORTER_DISCOVERY_TAG_LABELS",
        value_delimiter = ','
    )]
    pub discovery_tag_labels: Vec<String>,

    /// Number of replicas sharing the instances.
    #[arg(
        long = "shard.count",
        env = "ALIYUN_BACKUP_EXPORTER_SHARD_COUNT",
        default_value = "1"
    )]
    pub shard_count: String,

    /// This replica's shard, from 0 to --shard.count - 1 [default: 0].
    #[arg(long = "shard.index", env = "ALIYUN_BACKUP_EXPORTER_SHARD_INDEX")]
    pub shard_index: Option<String>,

    /// Take the shard index from the StatefulSet ordinal at the end of the host name.
    #[arg(
        long = "shard.from-hostname",
        env = "ALIYUN_BACKUP_EXPORTER_SHARD_FROM_HOSTNAME"
    )]
    pub shard_from_hostname: bool,

    /// API requests per second per account (token bucket, burst of the same size); 0 = unlimited.
    #[arg(
        long = "aliyun.rate-limit",
        env = "ALIYUN_BACKUP_EXPORTER_ALIYUN_RATE_LIMIT",
        default_value = "20"
    )]
    pub rate_limit: String,

    /// How API requests are signed: v2 (HMAC-SHA1 parameters) or v3 (ACS3-HMAC-SHA256 headers).
    #[arg(
        long = "aliyun.signature-version",
        env = "ALIYUN_BACKUP_EXPORTER_ALIYUN_SIGNATURE_VERSION",
        default_value = "v2"
    )]
    pub signature_version: String,

    /// Path to configuration file that can enable TLS or authentication. See: https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md
    #[arg(
        long = "web.config.file",
        env = "ALIYUN_BACKUP_EXPORTER_WEB_CONFIG_FILE"
    )]
    pub web_config_file: Option<String>,

    /// Serve POST /-/reload (re-read --config.file, as SIGHUP does).
    #[arg(
        long = "web.enable-lifecycle",
        env = "ALIYUN_BACKUP_EXPORTER_WEB_ENABLE_LIFECYCLE"
    )]
    pub enable_lifecycle: bool,

    /// Open HTTP connections at most; past it the oldest idle one is closed (and lowered to half the open-files limit).
    #[arg(
        long = "web.max-connections",
        env = "ALIYUN_BACKUP_EXPORTER_WEB_MAX_CONNECTIONS",
        default_value = "512"
    )]
    pub max_connections: String,

    /// Serve built-in sample instances from an in-process fake API: no cloud account needed.
    #[arg(long = "demo", env = "ALIYUN_BACKUP_EXPORTER_DEMO")]
    pub demo: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_has_its_environment_variable() {
        for arg in Cli::command().get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            let expected = format!(
                "ALIYUN_BACKUP_EXPORTER_{}",
                long.to_ascii_uppercase().replace(['.', '-'], "_")
            );
            let env = arg.get_env().map(|e| e.to_string_lossy().to_string());
            assert_eq!(env.as_deref(), Some(expected.as_str()), "--{long}");
        }
    }
}
