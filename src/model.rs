//! Product-neutral facts about backups, as the exporter needs them.

use chrono::{DateTime, Utc};

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
        match raw.trim().to_ascii_lowercase().as_str() {
            "success" => BackupStatus::Success,
            "failed" => BackupStatus::Failed,
            other => BackupStatus::Other(other.to_string()),
        }
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
    match raw.trim().to_ascii_lowercase().as_str() {
        "fullbackup" | "full" => "full".into(),
        "incrementalbackup" | "incremental" => "incremental".into(),
        other => other.into(),
    }
}

/// `backup_mode` and `backup_method` labels: the API's word in lower case
/// (`automated`, `manual`; `physical`, `logical`, `snapshot`).
pub fn normalize_word(raw: &str) -> String {
    raw.trim().to_ascii_lowercase()
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
}

/// What DescribeInstances says of an instance; label values are bounded
/// in length when decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceInfo {
    pub instance_id: String,
    pub region_id: String,
    pub name: String,
    pub zone_id: String,
    pub engine_version: String,
    /// `standard`, `cluster`, `rwsplit` (the API's `ArchitectureType`).
    pub architecture: String,
    pub instance_class: String,
    /// As the API spells it: `Normal`, `Creating`, `Changing`, …
    pub status: String,
    pub shard_count: Option<u32>,
    pub tags: Vec<(String, String)>,
    pub created: Option<DateTime<Utc>>,
}

impl InstanceInfo {
    /// Not polled yet: it has no backups to ask about.
    pub fn is_creating(&self) -> bool {
        self.status.eq_ignore_ascii_case("creating")
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
    }
}
