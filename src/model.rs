//! Product-neutral facts about backups, as the exporter needs them.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// A value from the API made fit to be a label value: control characters
/// become `_`, and at most `max` bytes are kept (cut on a character
/// boundary; `max` is in bytes). A label is part of every series name it is on: an answer must
/// not be able to make one of megabytes, or write control codes into logs
/// and pages.
pub fn label_value(raw: &str, max: usize) -> String {
    let mut out = String::with_capacity(raw.len().min(max));
    for c in raw.trim().chars() {
        let c = if c.is_control() { '_' } else { c };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

/// The longest enum word kept (`status`, `backup_mode` …).
pub const MAX_WORD: usize = 64;

/// The longest node or instance ID kept.
pub const MAX_ID: usize = 128;

/// A backup's outcome, from the API's spelling in any case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BackupStatus {
    Success,
    Failed,
    /// Any other status, in lower case; neither a success nor a failure.
    Other(String),
}

impl BackupStatus {
    pub fn parse(raw: &str) -> Self {
        match label_value(raw, MAX_WORD).to_ascii_lowercase().as_str() {
            "success" => BackupStatus::Success,
            "failed" => BackupStatus::Failed,
            other => BackupStatus::Other(other.to_string()),
        }
    }

    /// Still running: counted, but not yet an attempt that succeeded or
    /// failed (a long backup must not look like a failed one meanwhile).
    pub fn is_in_progress(&self) -> bool {
        matches!(self, BackupStatus::Other(s) if s == "running")
    }

    /// The `status` label value.
    pub fn label(&self) -> &str {
        match self {
            BackupStatus::Success => "success",
            BackupStatus::Failed => "failed",
            BackupStatus::Other(s) => s,
        }
    }
}

/// `backup_type` label: `full`, `incremental`, or the API's word in lower case.
pub fn normalize_backup_type(raw: &str) -> String {
    match label_value(raw, MAX_WORD).to_ascii_lowercase().as_str() {
        "fullbackup" | "full" => "full".into(),
        "incrementalbackup" | "incremental" => "incremental".into(),
        other => other.into(),
    }
}

/// `backup_mode` and `backup_method` labels: the API's word in lower case
/// (`automated`, `manual`; `physical`, `logical`, `snapshot`).
pub fn normalize_word(raw: &str) -> String {
    label_value(raw, MAX_WORD).to_ascii_lowercase()
}

/// One backup. Deliberately holds no backup ID and no download URL: the
/// first would make a label per backup, the second is a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// The node the backup is of: `NodeInstanceId`, or the instance itself.
    pub node_id: String,
    pub status: BackupStatus,
    pub start: DateTime<Utc>,
    /// Always present on successes; may be missing on other statuses.
    pub end: Option<DateTime<Utc>>,
    pub size_bytes: Option<u64>,
    /// Normalised labels; `unknown` when the API left the field out.
    pub backup_type: String,
    pub backup_mode: String,
    pub backup_method: String,
    /// Whether this is a restore point. For DescribeBackups, true unless
    /// the product's `IsAvail` says no (R-kvstore has none: always); for
    /// a shard's part of a cloud-native cluster backup, true only when the
    /// cluster backup succeeded as a whole (every shard did).
    pub restorable: bool,
}

/// Which call lists an instance's backups: the `backup_api` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum BackupApi {
    /// `DescribeBackups`: standard, read/write splitting and classic
    /// cluster instances.
    #[default]
    DescribeBackups,
    /// `DescribeClusterBackupList`: cloud-native cluster instances.
    ClusterBackupList,
}

impl BackupApi {
    pub fn label(self) -> &'static str {
        match self {
            BackupApi::DescribeBackups => "describe_backups",
            BackupApi::ClusterBackupList => "cluster_backup_list",
        }
    }

    /// The config file's spelling (the label value).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim() {
            "describe_backups" => Some(BackupApi::DescribeBackups),
            "cluster_backup_list" => Some(BackupApi::ClusterBackupList),
            _ => None,
        }
    }

    /// The API action.
    pub fn action(self) -> &'static str {
        match self {
            BackupApi::DescribeBackups => "DescribeBackups",
            BackupApi::ClusterBackupList => "DescribeClusterBackupList",
        }
    }

    pub fn other(self) -> Self {
        match self {
            BackupApi::DescribeBackups => BackupApi::ClusterBackupList,
            BackupApi::ClusterBackupList => BackupApi::DescribeBackups,
        }
    }
}

/// Distinct values kept for sharing, at most: zones, versions, classes and
/// statuses are a few hundred; past this, values are no longer shared.
const INTERNED: usize = 4096;

/// `value`, shared with every other instance that has it: at 10,000
/// instances, six strings of each were megabytes, though most instances
/// share their zone, version, class and status.
pub fn interned(value: &str) -> Arc<str> {
    static VALUES: Mutex<BTreeSet<Arc<str>>> = Mutex::new(BTreeSet::new());
    let mut values = VALUES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(shared) = values.get(value) {
        return shared.clone();
    }
    let value: Arc<str> = value.into();
    if values.len() < INTERNED {
        values.insert(value.clone());
    }
    value
}

/// What DescribeInstances says of an instance; label values are bounded
/// in length when decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceInfo {
    /// Shared with discovery's map and the instance's key.
    pub instance_id: Arc<str>,
    pub name: String,
    // The values most instances share are shared (`interned`).
    pub region_id: Arc<str>,
    pub zone_id: Arc<str>,
    pub engine_version: Arc<str>,
    /// `standard`, `cluster`, `rwsplit` (the API's `ArchitectureType`).
    pub architecture: Arc<str>,
    pub instance_class: Arc<str>,
    /// As the API spells it: `Normal`, `Creating`, `Changing`, …
    pub status: Arc<str>,
    pub shard_count: Option<u32>,
    pub tags: Vec<(String, String)>,
    pub created: Option<DateTime<Utc>>,
    /// The nodes whose backups are listed one call each: a sharded
    /// MongoDB cluster's shard `NodeId`s. Empty: the instance is asked for
    /// as a whole.
    pub nodes: Vec<String>,
}

impl InstanceInfo {
    /// Not polled yet: it has no backups to ask about.
    pub fn is_creating(&self) -> bool {
        self.status.eq_ignore_ascii_case("creating")
    }

    /// The call its backups need, from what DescribeInstances says: a
    /// cluster that reports `ShardCount` or whose class is not a classic
    /// `*logic.sharding*` one is cloud-native (Alibaba has no single flag
    /// for it; see the API reference, section 7).
    pub fn backup_api(&self) -> BackupApi {
        let cluster = self.architecture.eq_ignore_ascii_case("cluster");
        let classic_class = self
            .instance_class
            .to_ascii_lowercase()
            .contains("logic.sharding");
        if cluster && (self.shard_count.is_some() || !classic_class) {
            BackupApi::ClusterBackupList
        } else {
            BackupApi::DescribeBackups
        }
    }

    /// Whether it carries every one of `tags`.
    pub fn has_tags(&self, tags: &[(String, String)]) -> bool {
        tags.iter()
            .all(|(k, v)| self.tags.iter().any(|(tk, tv)| tk == k && tv == v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_spellings_in_any_case() {
        assert_eq!(BackupStatus::parse("Success"), BackupStatus::Success);
        assert_eq!(BackupStatus::parse("SUCCESS"), BackupStatus::Success);
        assert_eq!(BackupStatus::parse("failed"), BackupStatus::Failed);
        assert_eq!(BackupStatus::parse("Running").label(), "running");
        assert_eq!(normalize_backup_type("FullBackup"), "full");
        assert_eq!(normalize_backup_type("Fullbackup"), "full");
        assert_eq!(normalize_backup_type("IncrementalBackup"), "incremental");
        assert_eq!(normalize_backup_type("Snapshot"), "snapshot");
        assert_eq!(normalize_word("Automated"), "automated");
        assert_eq!(normalize_word("Physical"), "physical");
        assert!(BackupStatus::parse("RUNNING").is_in_progress());
        assert!(!BackupStatus::parse("Failed").is_in_progress());
    }

    #[test]
    fn label_values_are_bounded_and_printable() {
        assert_eq!(label_value("  r-bp1\u{0}x\r\ny  ", 128), "r-bp1_x__y");
        assert_eq!(label_value(&"é".repeat(500), 65), "é".repeat(32));
        assert_eq!(BackupStatus::parse("Run\u{7}ning").label(), "run_ning");
        assert_eq!(
            BackupStatus::parse(&"x".repeat(2000)).label().len(),
            MAX_WORD
        );
        assert_eq!(normalize_word("Auto\tmated").len(), "auto_mated".len());
        assert!(normalize_backup_type(&"Full".repeat(1000)).len() <= MAX_WORD);
    }

    #[test]
    fn cloud_native_clusters_need_the_cluster_backup_list() {
        let info = |architecture: &str, class: &str, shards: Option<u32>| InstanceInfo {
            architecture: architecture.into(),
            instance_class: class.into(),
            shard_count: shards,
            ..Default::default()
        };
        let cases = [
            // Classic cluster: a logic.sharding class and no ShardCount.
            (
                info(
                    "cluster",
                    "redis.logic.sharding.2g.2db.0rodb.4proxy.default",
                    None,
                ),
                BackupApi::DescribeBackups,
            ),
            // Cloud-native cluster: ShardCount present.
            (
                info("cluster", "redis.shard.small.2.ce", Some(2)),
                BackupApi::ClusterBackupList,
            ),
            // ShardCount present wins even with a logic.sharding class.
            (
                info("cluster", "redis.logic.sharding.1g.2db", Some(2)),
                BackupApi::ClusterBackupList,
            ),
            // A cluster class that is not classic, ShardCount missing.
            (
                info("Cluster", "tair.rdb.with.proxy.1g", None),
                BackupApi::ClusterBackupList,
            ),
            // Not clusters: ShardCount (read/write splitting) does not matter.
            (
                info("rwsplit", "redis.amber.master.2g", Some(1)),
                BackupApi::DescribeBackups,
            ),
            (
                info("standard", "redis.master.small.default", None),
                BackupApi::DescribeBackups,
            ),
            (info("", "", None), BackupApi::DescribeBackups),
        ];
        for (info, want) in cases {
            assert_eq!(info.backup_api(), want, "{info:?}");
        }
        for api in [BackupApi::DescribeBackups, BackupApi::ClusterBackupList] {
            assert_eq!(BackupApi::parse(api.label()), Some(api));
            assert_eq!(api.other().other(), api);
        }
        assert_eq!(BackupApi::parse("DescribeBackups"), None);
    }
}
