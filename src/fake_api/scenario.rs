//! What the fake API knows: instances, their backups, and the faults it
//! should inject, plus how it renders backups as the real API does.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// One backup the fake serves.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeBackup {
    /// `NodeInstanceId`; `None` leaves the field out.
    pub node_id: Option<String>,
    /// As the API spells it: `Success`, `Failed`, …
    pub status: String,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    pub size: Option<u64>,
    pub backup_type: String,
    pub backup_mode: String,
    pub backup_method: String,
}

impl FakeBackup {
    /// A successful automated full physical backup.
    pub fn success(node_id: &str, start: DateTime<Utc>, took: Duration, size: u64) -> Self {
        FakeBackup {
            node_id: Some(node_id.to_string()),
            status: "Success".into(),
            start,
            end: Some(start + chrono::Duration::from_std(took).unwrap_or_default()),
            size: Some(size),
            backup_type: "FullBackup".into(),
            backup_mode: "Automated".into(),
            backup_method: "Physical".into(),
        }
    }

    /// A failed automated backup (it has an end time, but no size).
    pub fn failed(node_id: &str, start: DateTime<Utc>, took: Duration) -> Self {
        FakeBackup {
            status: "Failed".into(),
            size: None,
            ..FakeBackup::success(node_id, start, took, 0)
        }
    }
}

/// Something going wrong, for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// HTTP 400 `Throttling.User`, with `x-acs-retry-after` (ms) if given.
    Throttle { retry_after_ms: Option<u64> },
    /// HTTP 429 `Throttling`.
    TooManyRequests,
    /// HTTP 500 `InternalError` (a JSON error document).
    ServerError,
    /// HTTP 503 with an HTML body, as a load balancer would answer.
    Unavailable,
    /// Wait this long, then answer normally.
    Slow(Duration),
    /// HTTP 200 with a body that is not JSON.
    InvalidJson,
    /// HTTP 404 `InvalidInstanceId.NotFound`, as for a released instance.
    NotFound,
    /// Any status and body.
    Raw { status: u16, body: String },
}

/// One instance: its backups and how the fake misbehaves for it.
#[derive(Debug, Clone, Default)]
pub struct FakeInstance {
    pub backups: Vec<FakeBackup>,
    /// Faults for the next requests about this instance, one each.
    pub queued_faults: VecDeque<Fault>,
    /// A fault for every request (after the queued ones), e.g. `NotFound`.
    pub always: Option<Fault>,
    /// Throttle every n-th request about this instance.
    pub throttle_every: Option<u32>,
    /// Send numbers as strings and strings as numbers, odd enum case, and
    /// objects where text is documented: the inconsistencies seen in
    /// Alibaba's own samples.
    pub quirky_types: bool,
}

impl FakeInstance {
    pub fn with_backups(backups: Vec<FakeBackup>) -> Self {
        FakeInstance {
            backups,
            ..Default::default()
        }
    }
}

/// A pre-signed-looking download URL. It is a secret in real life; the
/// fake sends one so that tests can prove it never leaks.
pub fn fake_download_url(backup_id: u64) -> String {
    format!(
        "https://rdsbak-hz.oss-cn-hangzhou.aliyuncs.com/backup-{backup_id}.rdb?OSSAccessKeyId=LTAIfakeOSSKey&Expires=1900000000&Signature=FAKEdownloadSIGNATURE{backup_id}%3D"
    )
}

/// The JSON of one backup, as DescribeBackups returns it.
pub fn render_backup(backup: &FakeBackup, backup_id: u64, quirky: bool) -> Value {
    let time = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut item = json!({
        "BackupId": backup_id,
        "BackupJobID": backup_id + 1_000_000,
        "BackupStatus": backup.status,
        "BackupStartTime": time(backup.start),
        "BackupType": backup.backup_type,
        "BackupMode": backup.backup_mode,
        "BackupMethod": backup.backup_method,
        "BackupDBNames": "all",
        "BackupDownloadURL": fake_download_url(backup_id),
        "BackupIntranetDownloadURL": fake_download_url(backup_id).replace(".aliyuncs.com", "-internal.aliyuncs.com"),
        "EngineVersion": "5.0",
        "RecoverConfigMode": "",
        "ExpectExpireTime": "",
    });
    let Value::Object(map) = &mut item else {
        unreachable!("built as an object")
    };
    if let Some(end) = backup.end {
        map.insert("BackupEndTime".into(), json!(time(end)));
    }
    if let Some(size) = backup.size {
        map.insert("BackupSize".into(), json!(size));
    }
    if let Some(node) = &backup.node_id {
        map.insert("NodeInstanceId".into(), json!(node));
    }
    if quirky {
        map.insert("BackupId".into(), json!(backup_id.to_string()));
        if let Some(size) = backup.size {
            map.insert("BackupSize".into(), json!(size.to_string()));
        }
        map.insert("EngineVersion".into(), json!(4));
        map.insert("RecoverConfigMode".into(), json!({"customized": true}));
        map.insert(
            "BackupStatus".into(),
            json!(backup.status.to_ascii_uppercase()),
        );
        map.insert(
            "BackupType".into(),
            json!(backup.backup_type.replace("FullBackup", "Fullbackup")),
        );
        map.insert("SomethingNew".into(), json!([1, "two"]));
    }
    item
}
