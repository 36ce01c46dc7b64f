//! What the fake API knows: keys, roles, instances, their backups, and the
//! faults it should inject, plus how it renders them as the real API does.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Map, Value};

/// An AccessKey the fake accepts.
#[derive(Debug, Clone)]
pub struct FakeKey {
    pub id: String,
    pub secret: String,
    /// When set, requests must carry exactly this `SecurityToken`.
    pub security_token: Option<String>,
    /// The account the key belongs to: it sees that account's instances
    /// (and those without an account) only.
    pub account: String,
}

/// A RAM role that `AssumeRole` hands out credentials for.
#[derive(Debug, Clone)]
pub struct FakeRole {
    /// `acs:ram::<account-id>:role/<name>`.
    pub arn: String,
    /// The account whose instances the minted credentials see.
    pub account: String,
    /// AccessKey IDs allowed to assume the role; any other gets `NoPermission`.
    pub trusted_key_ids: Vec<String>,
    /// Overrides the asked `DurationSeconds`, e.g. to mint credentials that
    /// expire within a test.
    pub lifetime: Option<Duration>,
}

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

/// An instance's backup policy, as DescribeBackupPolicy gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct FakePolicy {
    /// `PreferredBackupPeriod`: `Monday,Thursday`.
    pub period: String,
    /// `PreferredBackupTime`: `02:00Z-03:00Z`.
    pub time: String,
    /// `BackupRetentionPeriod` (sent as a string).
    pub retention_days: u32,
    /// `EnableBackupLog` (sent as a number).
    pub log_backup: bool,
}

impl Default for FakePolicy {
    /// Every day, 02:00 to 03:00 UTC, kept a week, no log backup.
    fn default() -> Self {
        FakePolicy {
            period: "Monday,Tuesday,Wednesday,Thursday,Friday,Saturday,Sunday".into(),
            time: "02:00Z-03:00Z".into(),
            retention_days: 7,
            log_backup: false,
        }
    }
}

/// One backup of a cloud-native cluster, as DescribeClusterBackupList
/// gives it: the cluster's outcome and one part per shard.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeClusterBackup {
    /// `ClusterBackupStatus`: `OK`, `RUNNING`, `Failed`.
    pub status: String,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    /// `ClusterBackupMode`: `Automated` or `Manual`.
    pub mode: String,
    pub shards: Vec<FakeShardBackup>,
}

/// One shard's part of a cluster backup.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeShardBackup {
    /// `InstanceName`: the shard node, e.g. `r-bp1xxx-db-0`.
    pub instance_name: String,
    /// `BackupStatus`: `OK`, `ERROR`, `RUNNING`.
    pub status: String,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    pub size: Option<u64>,
}

impl FakeClusterBackup {
    /// A successful automated backup: every shard `OK`, `size_per_shard`
    /// bytes each, all done `took` after `start`.
    pub fn ok(
        shard_names: &[&str],
        start: DateTime<Utc>,
        took: Duration,
        size_per_shard: u64,
    ) -> Self {
        let end = start + chrono::Duration::from_std(took).unwrap_or_default();
        FakeClusterBackup {
            status: "OK".into(),
            start,
            end: Some(end),
            mode: "Automated".into(),
            shards: shard_names
                .iter()
                .map(|name| FakeShardBackup {
                    instance_name: name.to_string(),
                    status: "OK".into(),
                    start,
                    end: Some(end),
                    size: Some(size_per_shard),
                })
                .collect(),
        }
    }

    /// The same with shard `name` failed (`ERROR`, no size): the cluster
    /// backup then `Failed` as a whole.
    pub fn with_shard_failed(mut self, name: &str) -> Self {
        for shard in self.shards.iter_mut().filter(|s| s.instance_name == name) {
            shard.status = "ERROR".into();
            shard.size = None;
        }
        self.status = "Failed".into();
        self
    }

    /// An automated backup still running on every shard: no end, no size.
    pub fn running(shard_names: &[&str], start: DateTime<Utc>) -> Self {
        FakeClusterBackup {
            status: "RUNNING".into(),
            start,
            end: None,
            mode: "Automated".into(),
            shards: shard_names
                .iter()
                .map(|name| FakeShardBackup {
                    instance_name: name.to_string(),
                    status: "RUNNING".into(),
                    start,
                    end: None,
                    size: None,
                })
                .collect(),
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
    /// HTTP 403 `Forbidden.RAM`, as when a RAM policy does not allow the
    /// action.
    Forbidden,
    /// Any status and body.
    Raw { status: u16, body: String },
}

/// What DescribeInstances says of an instance.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeInfo {
    pub region_id: String,
    pub zone_id: String,
    pub name: String,
    /// `Normal`, `Creating`, `Changing`, …
    pub status: String,
    /// `Redis`, `Tair`, `Memcache`.
    pub instance_type: String,
    /// `standard`, `cluster` or `rwsplit`.
    pub architecture: String,
    pub instance_class: String,
    pub engine_version: String,
    /// Only cloud-native cluster and read/write splitting instances have one.
    pub shard_count: Option<u32>,
    pub tags: Vec<(String, String)>,
    pub create_time: DateTime<Utc>,
}

impl Default for FakeInfo {
    fn default() -> Self {
        FakeInfo {
            region_id: "cn-hangzhou".into(),
            zone_id: "cn-hangzhou-h".into(),
            name: String::new(),
            status: "Normal".into(),
            instance_type: "Redis".into(),
            architecture: "standard".into(),
            instance_class: "redis.master.small.default".into(),
            engine_version: "5.0".into(),
            shard_count: None,
            tags: Vec::new(),
            create_time: Utc
                .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
        }
    }
}

impl FakeInfo {
    /// Defaults in `region` (zone `<region>-a`).
    pub fn in_region(region: &str) -> Self {
        FakeInfo {
            region_id: region.to_string(),
            zone_id: format!("{region}-a"),
            ..Default::default()
        }
    }

    /// Whether the instance carries `key`, with `value` when one is given.
    pub fn has_tag(&self, key: &str, value: Option<&str>) -> bool {
        self.tags
            .iter()
            .any(|(k, v)| k == key && value.is_none_or(|want| want == v))
    }
}

/// Which product's API serves an instance: the fake answers a request with
/// the instances of the product whose API `Version` it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FakeProduct {
    /// ApsaraDB for Redis / Tair (`R-kvstore`, 2015-01-01).
    #[default]
    Redis,
    /// ApsaraDB RDS (2014-08-15).
    Rds,
    /// ApsaraDB for MongoDB (`dds`, 2015-12-01).
    MongoDb,
    /// PolarDB (2017-08-01).
    PolarDb,
}

impl FakeProduct {
    pub const ALL: [FakeProduct; 4] = [
        FakeProduct::Redis,
        FakeProduct::Rds,
        FakeProduct::MongoDb,
        FakeProduct::PolarDb,
    ];

    /// The API version that names the product in a request.
    pub fn version(self) -> &'static str {
        match self {
            FakeProduct::Redis => crate::products::kvstore::API_VERSION,
            FakeProduct::Rds => "2014-08-15",
            FakeProduct::MongoDb => "2015-12-01",
            FakeProduct::PolarDb => "2017-08-01",
        }
    }

    /// The product whose API `version` is.
    pub fn from_version(version: &str) -> Option<FakeProduct> {
        Self::ALL.into_iter().find(|p| p.version() == version)
    }

    /// The central host, as error documents name it (`HostId`).
    pub fn host(self) -> &'static str {
        match self {
            FakeProduct::Redis => "r-kvstore.aliyuncs.com",
            FakeProduct::Rds => "rds.aliyuncs.com",
            FakeProduct::MongoDb => "mongodb.aliyuncs.com",
            FakeProduct::PolarDb => "polardb.aliyuncs.com",
        }
    }

    /// The code and message of "no such instance" (unknown, released, of
    /// another account or region), HTTP 404.
    pub fn not_found(self) -> (&'static str, &'static str) {
        match self {
            FakeProduct::Redis => (
                "InvalidInstanceId.NotFound",
                "The specified instance is not found.",
            ),
            FakeProduct::Rds => (
                "InvalidDBInstanceId.NotFound",
                "Specified instance does not exist or not support.",
            ),
            FakeProduct::MongoDb => (
                "InvalidDBInstanceId.NotFound",
                "Specified instance does not exist.",
            ),
            FakeProduct::PolarDb => (
                "InvalidDBClusterId.NotFound",
                "The DBClusterId provided does not exist in our records.",
            ),
        }
    }
}

/// One instance: its backups and how the fake misbehaves for it.
#[derive(Debug, Clone, Default)]
pub struct FakeInstance {
    /// The product it is an instance of (R-kvstore unless said otherwise).
    /// Each product's calls see only its own instances.
    pub product: FakeProduct,
    /// The shard nodes (`d-…`) of a sharded MongoDB cluster: its backups
    /// are listed per node (`NodeId`), each backup's `node_id` naming its
    /// node. Empty for every other instance.
    pub shard_nodes: Vec<String>,
    /// The account that owns it; `None` = visible to every key.
    pub account: Option<String>,
    /// Released: never listed, and DescribeBackups answers
    /// `InvalidInstanceId.NotFound` as for an unknown instance.
    pub released: bool,
    pub info: FakeInfo,
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
    /// What DescribeBackupPolicy answers.
    pub policy: FakePolicy,
    /// Answered to every DescribeBackupPolicy of the instance (the queued
    /// and `always` faults are for the backup listings only).
    pub policy_fault: Option<Fault>,
    /// A cloud-native cluster: DescribeClusterBackupList serves it
    /// (`cluster_backups`) and DescribeBackups refuses it with
    /// `InstanceType.NotSupport`; for any other instance it is the other way
    /// round. (`info` is not changed by it: see `cloud_native_cluster`.)
    pub cloud_native: bool,
    /// What DescribeClusterBackupList serves when `cloud_native`.
    pub cluster_backups: Vec<FakeClusterBackup>,
}

impl FakeInstance {
    pub fn with_backups(backups: Vec<FakeBackup>) -> Self {
        FakeInstance {
            backups,
            ..Default::default()
        }
    }

    /// A cloud-native cluster instance with `shards` shards (as
    /// DescribeInstances describes one: `cluster`, a non-classic class and a
    /// `ShardCount`) and these cluster backups.
    pub fn cloud_native_cluster(shards: u32, cluster_backups: Vec<FakeClusterBackup>) -> Self {
        FakeInstance {
            cloud_native: true,
            cluster_backups,
            info: FakeInfo {
                architecture: "cluster".into(),
                instance_class: "redis.shard.small.2.ce".into(),
                shard_count: Some(shards),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// An RDS instance (MySQL 8.0, high availability) with these backups;
    /// a backup's `node_id` is its `HostInstanceID`.
    pub fn rds(region: &str, backups: Vec<FakeBackup>) -> Self {
        FakeInstance {
            product: FakeProduct::Rds,
            backups,
            info: FakeInfo {
                instance_type: "MySQL".into(),
                architecture: "Primary".into(),
                instance_class: "mysql.n2.medium.2c".into(),
                engine_version: "8.0".into(),
                status: "Running".into(),
                ..FakeInfo::in_region(region)
            },
            ..Default::default()
        }
    }

    /// A MongoDB replica set instance with these backups (listed without
    /// `NodeId`).
    pub fn mongodb_replica_set(region: &str, backups: Vec<FakeBackup>) -> Self {
        FakeInstance {
            product: FakeProduct::MongoDb,
            backups,
            info: FakeInfo {
                instance_type: "MongoDB".into(),
                architecture: "replicate".into(),
                instance_class: "dds.mongo.mid".into(),
                engine_version: "6.0".into(),
                status: "Running".into(),
                ..FakeInfo::in_region(region)
            },
            ..Default::default()
        }
    }

    /// A MongoDB sharded cluster with `shard_nodes` shards; each backup's
    /// `node_id` names its shard, and DescribeBackups wants a `NodeId`.
    pub fn mongodb_sharded(region: &str, shard_nodes: &[&str], backups: Vec<FakeBackup>) -> Self {
        FakeInstance {
            shard_nodes: shard_nodes.iter().map(|n| n.to_string()).collect(),
            info: FakeInfo {
                architecture: "sharding".into(),
                instance_class: "dds.sharding".into(),
                ..FakeInstance::mongodb_replica_set(region, Vec::new()).info
            },
            ..FakeInstance::mongodb_replica_set(region, backups)
        }
    }

    /// A PolarDB for MySQL cluster with these backups (`node_id` unused:
    /// PolarDB backs up the cluster's shared storage).
    pub fn polardb(region: &str, backups: Vec<FakeBackup>) -> Self {
        FakeInstance {
            product: FakeProduct::PolarDb,
            backups,
            info: FakeInfo {
                instance_type: "MySQL".into(),
                architecture: "Normal".into(),
                instance_class: "polar.mysql.x4.medium".into(),
                engine_version: "8.0".into(),
                status: "Running".into(),
                ..FakeInfo::in_region(region)
            },
            ..Default::default()
        }
    }

    /// Whether a key of `account` may see it.
    pub fn visible_to(&self, account: &str) -> bool {
        self.account.as_deref().is_none_or(|a| a == account)
    }
}

/// RDS, MongoDB and PolarDB sample instances (`--products` of the
/// `fake_api` example, the SDK cross-check, tests): in `cn-hangzhou`, a
/// week of daily automated backups two hours after midnight of `now`'s
/// clock, one healthy and one whose newest backup failed per product, and
/// a MongoDB sharded cluster (two shards, the newest backup of the second
/// failed). Tagged `env=prod`.
pub fn product_samples(now: DateTime<Utc>) -> Vec<(String, FakeInstance)> {
    let took = Duration::from_secs(600);
    let day = |d: i64| now - chrono::Duration::days(d) - chrono::Duration::hours(2);
    // A week of successes on `node`, the newest failed when `fail_newest`.
    let week = |node: &str, method: &str, fail_newest: bool| -> Vec<FakeBackup> {
        (0..7)
            .map(|d| {
                let mut backup = if d == 0 && fail_newest {
                    FakeBackup::failed(node, day(d), took)
                } else {
                    FakeBackup::success(node, day(d), took, (d as u64 + 1) << 30)
                };
                backup.backup_method = method.into();
                backup
            })
            .collect()
    };
    let region = "cn-hangzhou";
    let tagged = |mut instance: FakeInstance, name: &str| {
        instance.info.name = name.into();
        instance.info.tags = vec![("env".into(), "prod".into())];
        instance
    };
    let shards = ["d-demo-shard-0", "d-demo-shard-1"];
    let sharded_backups = [
        week(shards[0], "Physical", false),
        week(shards[1], "Physical", true),
    ]
    .concat();
    vec![
        (
            "rm-demo-healthy".into(),
            tagged(
                FakeInstance::rds(region, week("5882781", "Physical", false)),
                "orders",
            ),
        ),
        (
            "rm-demo-failed".into(),
            tagged(
                FakeInstance::rds(region, week("5882790", "Snapshot", true)),
                "billing",
            ),
        ),
        (
            "dds-demo-replica".into(),
            tagged(
                FakeInstance::mongodb_replica_set(
                    region,
                    week("dds-demo-replica", "Physical", false),
                ),
                "catalog",
            ),
        ),
        (
            "dds-demo-sharded".into(),
            tagged(
                FakeInstance::mongodb_sharded(region, &shards, sharded_backups),
                "events",
            ),
        ),
        (
            "pc-demo-healthy".into(),
            tagged(
                FakeInstance::polardb(region, week("pc-demo-healthy", "Snapshot", false)),
                "ledger",
            ),
        ),
        (
            "pc-demo-failed".into(),
            tagged(
                FakeInstance::polardb(region, week("pc-demo-failed", "Snapshot", true)),
                "search",
            ),
        ),
    ]
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

/// The JSON of one cluster backup, as DescribeClusterBackupList returns
/// it: `ids` is a number unique to it (for its `cb-` ID and the shards'
/// `BackupId`s); `with_shards` false leaves out `Backups` (`NoShardBackup`).
pub fn render_cluster_backup(backup: &FakeClusterBackup, ids: u64, with_shards: bool) -> Value {
    let ok = |status: &str| status.eq_ignore_ascii_case("OK");
    let whole = ok(&backup.status) && backup.shards.iter().all(|s| ok(&s.status));
    let size: u64 = backup.shards.iter().filter_map(|s| s.size).sum();
    let mut item = json!({
        "ClusterBackupId": format!("cb-fake{ids:012x}"),
        "ClusterBackupStatus": backup.status,
        "IsAvail": u8::from(whole),
        "ClusterBackupSize": size.to_string(),
        "ClusterBackupStartTime": time(backup.start),
        "ClusterBackupMode": backup.mode,
        "ShardClassMemory": 1024,
        "ExpectExpireTime": time(backup.start + chrono::Duration::days(7)),
    });
    let Value::Object(map) = &mut item else {
        unreachable!("built as an object")
    };
    if let Some(end) = backup.end {
        map.insert("ClusterBackupEndTime".into(), json!(time(end)));
    }
    if backup.status.eq_ignore_ascii_case("RUNNING") {
        map.insert("Progress".into(), json!("100%"));
    }
    if with_shards {
        let shards: Vec<Value> = backup
            .shards
            .iter()
            .enumerate()
            .map(|(i, shard)| render_shard_backup(shard, ids * 1000 + i as u64))
            .collect();
        map.insert("Backups".into(), Value::Array(shards));
    }
    item
}

/// One shard's part: numbers as strings, and times without their `Z`, as
/// the real API sends them.
fn render_shard_backup(shard: &FakeShardBackup, backup_id: u64) -> Value {
    let no_z = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let file = format!(
        "hins{backup_id}_data_{}.rdb",
        shard.start.format("%Y%m%d%H%M%S")
    );
    let mut item = json!({
        "BackupId": backup_id.to_string(),
        "BackupName": file,
        "InstanceName": shard.instance_name,
        "BackupStatus": shard.status,
        "IsAvail": if shard.status.eq_ignore_ascii_case("OK") { "1" } else { "0" },
        "BackupSize": shard.size.map(|s| s.to_string()).unwrap_or_default(),
        "BackupStartTime": no_z(shard.start),
        "Engine": "redis",
        "ExtraInfo": {"CustinsDbVersion": "7.0"},
        "BackupDownloadURL": fake_download_url(backup_id),
        "BackupIntranetDownloadURL": fake_download_url(backup_id).replace(".aliyuncs.com", "-internal.aliyuncs.com"),
    });
    if let (Some(end), Value::Object(map)) = (shard.end, &mut item) {
        map.insert("BackupEndTime".into(), json!(no_z(end)));
    }
    item
}

/// `yyyy-MM-ddTHH:mm:ssZ`, the API's form of a time.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A number, or its text when the instance has quirky types.
fn number(n: u64, quirky: bool) -> Value {
    if quirky {
        json!(n.to_string())
    } else {
        json!(n)
    }
}

/// A small stable hash of an instance id, for noise fields that must not
/// change between two answers.
fn seed(instance_id: &str) -> u64 {
    instance_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The JSON of one instance, as DescribeInstances returns it: the fields the
/// exporter reads plus some of the many it does not.
pub fn render_instance(instance_id: &str, instance: &FakeInstance) -> Value {
    let info = &instance.info;
    let quirky = instance.quirky_types;
    let h = seed(instance_id);
    let tags: Vec<Value> = info
        .tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    let mut item = json!({
        "InstanceId": instance_id,
        "InstanceName": info.name,
        "RegionId": info.region_id,
        "ZoneId": info.zone_id,
        "InstanceType": info.instance_type,
        "ArchitectureType": info.architecture,
        "EngineVersion": info.engine_version,
        "InstanceClass": info.instance_class,
        "InstanceStatus": info.status,
        "CreateTime": time(info.create_time),
        "Tags": {"Tag": tags},
        // Noise: real answers carry these, the exporter must ignore them.
        "ConnectionDomain": format!("{instance_id}.redis.rds.aliyuncs.com"),
        "Port": number(6379, quirky),
        "Capacity": number(1024 << (h % 4), quirky),
        "Bandwidth": number(96, quirky),
        "Connections": number(10_000, quirky),
        "QPS": number(100_000, quirky),
        "ChargeType": "PrePaid",
        "NetworkType": "VPC",
        "VpcId": format!("vpc-fake{:012x}", h >> 16),
        "VSwitchId": format!("vsw-fake{:012x}", h >> 20),
        "PrivateIp": format!("172.16.{}.{}", (h >> 8) % 250 + 1, h % 250 + 1),
        "ResourceGroupId": "rg-acfmfakegroup",
        "EditionType": "Community",
        "NodeType": "double",
        "PackageType": "standard",
        "ConnectionMode": "Standard",
        "HasRenewChangeOrder": false,
        "IsRds": true,
        "EndTime": "2099-01-01T00:00:00Z",
        "Config": "{\"maxmemory-policy\":\"volatile-lru\"}",
    });
    let Value::Object(map) = &mut item else {
        unreachable!("built as an object")
    };
    if let Some(shards) = info.shard_count {
        map.insert("ShardCount".into(), number(u64::from(shards), quirky));
    }
    if quirky {
        // The engine version as a number, an object where text is usual,
        // and a field nobody has heard of.
        if let Ok(v) = info.engine_version.parse::<f64>() {
            map.insert("EngineVersion".into(), json!(v));
        }
        map.insert("Config".into(), json!({"maxmemory-policy": "volatile-lru"}));
        map.insert("SomethingNew".into(), json!([1, "two", {"three": 3}]));
    }
    item
}

/// The JSON of one region, as DescribeRegions returns it.
pub fn render_region(region_id: &str, zones: &[String]) -> Value {
    let zone_ids = if zones.is_empty() {
        format!("{region_id}-a,{region_id}-b")
    } else {
        zones.join(",")
    };
    let mut region = Map::new();
    region.insert("RegionId".into(), json!(region_id));
    region.insert(
        "RegionEndpoint".into(),
        json!(crate::aliyun::endpoint::kvstore_host(region_id)),
    );
    region.insert("LocalName".into(), json!(local_name(region_id)));
    region.insert("ZoneIds".into(), json!(zone_ids));
    region.insert(
        "ZoneIdList".into(),
        json!({"ZoneId": zone_ids.split(',').collect::<Vec<_>>()}),
    );
    Value::Object(region)
}

/// The name the console shows for a region (Chinese, as the API's default
/// language gives it).
fn local_name(region_id: &str) -> String {
    let known = [
        ("cn-hangzhou", "华东1（杭州）"),
        ("cn-shanghai", "华东2（上海）"),
        ("cn-qingdao", "华北1（青岛）"),
        ("cn-beijing", "华北2（北京）"),
        ("cn-zhangjiakou", "华北3（张家口）"),
        ("cn-shenzhen", "华南1（深圳）"),
        ("cn-hongkong", "中国香港"),
        ("ap-southeast-1", "新加坡"),
        ("eu-central-1", "德国（法兰克福）"),
        ("us-west-1", "美国（硅谷）"),
    ];
    known
        .iter()
        .find(|(id, _)| *id == region_id)
        .map_or_else(|| region_id.to_string(), |(_, name)| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_render_with_their_info_and_quirks() {
        let mut instance = FakeInstance::default();
        instance.info.tags = vec![("env".into(), "prod".into())];
        instance.info.shard_count = Some(2);
        let plain = render_instance("r-1", &instance);
        assert_eq!(plain["InstanceId"], "r-1");
        assert_eq!(plain["RegionId"], "cn-hangzhou");
        assert_eq!(plain["CreateTime"], "2026-01-01T00:00:00Z");
        assert_eq!(plain["ShardCount"], 2);
        assert_eq!(plain["Port"], 6379);
        assert_eq!(plain["Tags"]["Tag"][0]["Key"], "env");
        assert_eq!(plain["Tags"]["Tag"][0]["Value"], "prod");
        assert!(plain.get("SomethingNew").is_none());

        instance.quirky_types = true;
        let quirky = render_instance("r-1", &instance);
        assert_eq!(quirky["ShardCount"], "2");
        assert_eq!(quirky["Port"], "6379");
        assert!(quirky["Capacity"].is_string());
        assert_eq!(quirky["EngineVersion"], 5.0);
        assert!(quirky.get("SomethingNew").is_some());
        // The noise is stable from one answer to the next.
        assert_eq!(quirky, render_instance("r-1", &instance));

        instance.info.shard_count = None;
        assert!(render_instance("r-1", &instance)
            .get("ShardCount")
            .is_none());
    }

    #[test]
    fn regions_name_their_host() {
        let central = render_region("cn-hangzhou", &[]);
        assert_eq!(central["RegionEndpoint"], "r-kvstore.aliyuncs.com");
        assert_eq!(central["ZoneIds"], "cn-hangzhou-a,cn-hangzhou-b");
        let own = render_region("cn-zhangjiakou", &["cn-zhangjiakou-c".into()]);
        assert_eq!(
            own["RegionEndpoint"],
            "r-kvstore.cn-zhangjiakou.aliyuncs.com"
        );
        assert_eq!(own["ZoneIds"], "cn-zhangjiakou-c");
        assert_eq!(own["LocalName"], "华北3（张家口）");
    }

    #[test]
    fn cluster_backups_render_as_the_real_api_sends_them() {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap();
        let took = Duration::from_secs(90);
        let ok = FakeClusterBackup::ok(&["r-1-db-0", "r-1-db-1"], start, took, 100);
        let json = render_cluster_backup(&ok, 7, true);
        assert_eq!(json["ClusterBackupId"], "cb-fake000000000007");
        assert_eq!(json["ClusterBackupStatus"], "OK");
        assert_eq!(json["IsAvail"], 1);
        assert_eq!(json["ClusterBackupSize"], "200");
        assert_eq!(json["ClusterBackupEndTime"], "2026-01-01T10:01:30Z");
        assert!(json.get("Progress").is_none());
        let shard = &json["Backups"][1];
        assert_eq!(shard["BackupId"], "7001");
        assert_eq!(shard["InstanceName"], "r-1-db-1");
        assert_eq!(shard["IsAvail"], "1");
        assert_eq!(shard["BackupSize"], "100");
        assert_eq!(shard["BackupStartTime"], "2026-01-01T10:00:00");
        assert_eq!(shard["BackupEndTime"], "2026-01-01T10:01:30");

        let failed = ok.clone().with_shard_failed("r-1-db-1");
        let json = render_cluster_backup(&failed, 8, true);
        assert_eq!(json["ClusterBackupStatus"], "Failed");
        assert_eq!(json["IsAvail"], 0);
        assert_eq!(json["ClusterBackupSize"], "100");
        assert_eq!(json["Backups"][0]["BackupStatus"], "OK");
        assert_eq!(json["Backups"][1]["BackupStatus"], "ERROR");
        assert_eq!(json["Backups"][1]["IsAvail"], "0");
        assert_eq!(json["Backups"][1]["BackupSize"], "");

        let running = FakeClusterBackup::running(&["r-1-db-0"], start);
        let json = render_cluster_backup(&running, 9, false);
        assert_eq!(json["ClusterBackupStatus"], "RUNNING");
        assert_eq!(json["Progress"], "100%");
        assert!(json.get("ClusterBackupEndTime").is_none());
        assert!(json.get("Backups").is_none());

        let instance = FakeInstance::cloud_native_cluster(2, vec![ok]);
        assert!(instance.cloud_native);
        assert_eq!(instance.info.shard_count, Some(2));
        assert_eq!(instance.policy, FakePolicy::default());
        assert_eq!(
            render_instance("r-1", &instance)["ArchitectureType"],
            "cluster"
        );
    }

    #[test]
    fn accounts_and_tags() {
        let mut instance = FakeInstance::default();
        assert!(instance.visible_to("main") && instance.visible_to("other"));
        instance.account = Some("main".into());
        assert!(instance.visible_to("main") && !instance.visible_to("other"));
        instance.info.tags = vec![("env".into(), "prod".into())];
        assert!(instance.info.has_tag("env", Some("prod")));
        assert!(instance.info.has_tag("env", None));
        assert!(!instance.info.has_tag("env", Some("dev")));
        assert!(!instance.info.has_tag("team", None));
    }
}
