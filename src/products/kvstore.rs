//! ApsaraDB for Redis / Tair (`R-kvstore`, API version 2015-01-01) calls,
//! decoded into model types.

use chrono::{DateTime, Duration as ChronoDuration, Timelike, Utc};
use serde::de::MapAccess;

use tokio::time::Instant;

use super::common::{bounded, listed_id, listed_region};
use crate::aliyun::endpoint;
use crate::aliyun::lenient::{self, Fields, Flag, ListSeed, Object, Text, Time, Whole, Within};
use crate::aliyun::{ApiError, RpcClient};
use crate::model::{
    interned, label_value, normalize_backup_type, normalize_word, Backup, BackupStatus,
    InstanceInfo,
};
use crate::policy::{BackupPolicy, Weekdays};

/// One page of a DescribeBackups answer.
pub use super::backups::Page;

/// The R-kvstore API version all these calls belong to.
pub const API_VERSION: &str = "2015-01-01";

/// Backups asked for per page. The API takes 30, 50, 100, 200 or 300; the
/// older documentation lists only up to 100, which every version accepts.
pub const PAGE_SIZE: usize = 100;

/// A runaway `TotalCount` must not make us loop for ever.
const MAX_PAGES: usize = 200;

/// The backups of `instance_id` that started in the window, all pages,
/// retries included, by `deadline`. A page that fails fails the whole call:
/// no half-counted windows.
pub async fn describe_backups(
    client: &RpcClient,
    instance_id: &str,
    window: &Window,
    deadline: Instant,
) -> Result<Vec<Backup>, ApiError> {
    let mut backups = Vec::new();
    for page_number in 1..=MAX_PAGES {
        let params = [
            ("InstanceId", instance_id.to_string()),
            ("StartTime", window.start_param()),
            ("EndTime", window.end_param()),
            ("PageSize", PAGE_SIZE.to_string()),
            ("PageNumber", page_number.to_string()),
        ];
        let answer = client
            .call(
                "DescribeBackups",
                &params,
                |body| decode_page(body, instance_id),
                deadline,
            )
            .await?;
        let page = answer.value;
        let got = page.backups.len();
        backups.extend(page.backups);
        // Without a total, go on while pages come back full.
        let done = match page.total_count {
            Some(total) => backups.len() >= total,
            None => got < PAGE_SIZE,
        };
        if got == 0 || done {
            return Ok(backups);
        }
    }
    Err(ApiError::Decode {
        detail: format!("more than {MAX_PAGES} pages of backups"),
        request_id: None,
    })
}

/// The time window of a DescribeBackups call, in the API's minute format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    /// `now - lookback` to `now` rounded up to the next whole minute (the
    /// API takes minutes only, and the end must not cut off the present).
    pub fn ending_at(now: DateTime<Utc>, lookback: std::time::Duration) -> Self {
        let floor = |t: DateTime<Utc>| {
            t.with_second(0)
                .and_then(|t| t.with_nanosecond(0))
                .unwrap_or(t)
        };
        // Config bounds the lookback; saturate anyway rather than panic.
        let lookback = ChronoDuration::from_std(lookback).unwrap_or(ChronoDuration::days(7));
        let start = now
            .checked_sub_signed(lookback)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let end = floor(now)
            .checked_add_signed(ChronoDuration::minutes(1))
            .unwrap_or(now);
        Window {
            start: floor(start),
            end,
        }
    }

    pub fn start_param(&self) -> String {
        format_minute(self.start)
    }

    pub fn end_param(&self) -> String {
        format_minute(self.end)
    }
}

/// `yyyy-MM-ddTHH:mmZ`.
pub fn format_minute(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%MZ").to_string()
}

/// Decodes a DescribeBackups page (the R-kvstore envelope of the one
/// DescribeBackups decoder, `backups::decode_page`): lenient where Alibaba
/// is inconsistent (types, case, missing optional fields), strict where
/// facts would be wrong. Download URLs are never read.
pub fn decode_page(body: &[u8], instance_id: &str) -> Result<Page, String> {
    super::backups::decode_page(body, &super::envelopes::KVSTORE, instance_id)
}

/// Asks `DescribeBackupPolicy` what schedule the instance's automatic
/// backups follow, by `deadline`.
pub async fn describe_backup_policy(
    client: &RpcClient,
    instance_id: &str,
    deadline: Instant,
) -> Result<BackupPolicy, ApiError> {
    let params = [("InstanceId", instance_id.to_string())];
    let answer = client
        .call(
            "DescribeBackupPolicy",
            &non_empty(&params),
            decode_backup_policy,
            deadline,
        )
        .await?;
    Ok(answer.value)
}

/// `PreferredBackupTime` becomes a label: at most this many bytes.
const MAX_WINDOW_LEN: usize = 64;

/// Decodes DescribeBackupPolicy. Every field may be missing or sent as
/// another type (`BackupRetentionPeriod` a string or a number,
/// `EnableBackupLog` a number, a string or a boolean); only a weekday name
/// that is not one fails, since leaving that day out would shorten the
/// expected interval and page for nothing.
pub fn decode_backup_policy(body: &[u8]) -> Result<BackupPolicy, String> {
    let doc = lenient::decode(body, Object(PolicyDoc::default()))?;
    let days = match doc.period.get() {
        None => Weekdays::default(),
        Some(raw) => Weekdays::parse(raw).map_err(|e| format!("PreferredBackupPeriod: {e}"))?,
    };
    // Kept as given even when `policy::window_length` cannot read it: it
    // then only leaves the expected age to the default.
    let window = label_value(doc.window.get().unwrap_or_default(), MAX_WINDOW_LEN);
    Ok(BackupPolicy {
        days,
        window,
        retention_days: doc.retention.value(),
        log_backup_enabled: doc.log_backup.0,
    })
}

/// The fields of DescribeBackupPolicy the exporter reads.
#[derive(Default)]
struct PolicyDoc<'de> {
    period: Text<'de>,
    window: Text<'de>,
    retention: Whole,
    log_backup: Flag,
}

impl<'de> Fields<'de> for PolicyDoc<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "PreferredBackupPeriod" => self.period = map.next_value()?,
            "PreferredBackupTime" => self.window = map.next_value()?,
            "BackupRetentionPeriod" => self.retention = map.next_value()?,
            "EnableBackupLog" => self.log_backup = map.next_value()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The parameters whose value is not empty: the API refuses an empty one.
fn non_empty<'a>(params: &[(&'a str, String)]) -> Vec<(&'a str, String)> {
    params
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .cloned()
        .collect()
}

/// Cluster backups asked for per DescribeClusterBackupList page (the API
/// takes 5, 10, 15, 20, 30, 50, 100, 200 or 300).
pub const CLUSTER_PAGE_SIZE: usize = 100;

/// The backups of a cloud-native cluster instance that started in the
/// window: one `Backup` per shard of each cluster backup, all pages, by
/// `deadline`. The answer has no total count, so pages are followed while
/// they come back full. A failed page fails the whole call.
pub async fn describe_cluster_backups(
    client: &RpcClient,
    region_id: &str,
    instance_id: &str,
    window: &Window,
    deadline: Instant,
) -> Result<Vec<Backup>, ApiError> {
    let mut backups = Vec::new();
    // Pages shift when a backup starts meanwhile: never count one twice.
    let mut seen = std::collections::HashSet::new();
    for page_number in 1..=MAX_PAGES {
        let params = [
            ("RegionId", region_id.to_string()),
            ("InstanceId", instance_id.to_string()),
            ("StartTime", window.start_param()),
            ("EndTime", window.end_param()),
            ("PageSize", CLUSTER_PAGE_SIZE.to_string()),
            ("PageNumber", page_number.to_string()),
        ];
        let answer = client
            .call(
                "DescribeClusterBackupList",
                &non_empty(&params),
                |body| decode_cluster_backups(body, instance_id),
                deadline,
            )
            .await?;
        let page = answer.value;
        let got = page.len();
        for cluster in page {
            let new = match &cluster.id {
                Some(id) => seen.insert(id.clone()),
                None => true,
            };
            if new {
                backups.extend(cluster.backups);
            }
        }
        if got < CLUSTER_PAGE_SIZE {
            return Ok(backups);
        }
    }
    Err(ApiError::Decode {
        detail: format!("more than {MAX_PAGES} pages of cluster backups"),
        request_id: None,
    })
}

/// One cluster backup of a DescribeClusterBackupList page.
struct ClusterBackup {
    /// `ClusterBackupId`, only to skip a repeat on the next page.
    id: Option<String>,
    backups: Vec<Backup>,
}

/// Decodes a DescribeClusterBackupList page into one `Backup` per shard of
/// each cluster backup (one for the whole cluster when it lists no shard).
/// Lenient about types, case and the `Z` of times; strict where facts would
/// be wrong, as `decode_page`. Download URLs are never read.
pub fn decode_cluster_page(body: &[u8], instance_id: &str) -> Result<Vec<Backup>, String> {
    Ok(decode_cluster_backups(body, instance_id)?
        .into_iter()
        .flat_map(|c| c.backups)
        .collect())
}

/// A DescribeClusterBackupList page may hold this many times the cluster
/// backups asked for (see `backups::MAX_PAGE_FACTOR`).
const MAX_CLUSTER_BACKUPS: usize = CLUSTER_PAGE_SIZE * super::backups::MAX_PAGE_FACTOR;

/// Shards listed in one cluster backup: Tair's largest cluster instances
/// have 256 shards; four times as many is an answer gone wrong.
const MAX_SHARDS: usize = 1024;

fn decode_cluster_backups(body: &[u8], instance_id: &str) -> Result<Vec<ClusterBackup>, String> {
    let page = lenient::decode(
        body,
        Object(ClusterPage {
            instance_id,
            clusters: Vec::new(),
        }),
    )?;
    Ok(page.clusters)
}

/// A DescribeClusterBackupList page: its cluster backups, decoded as they
/// come.
struct ClusterPage<'s> {
    instance_id: &'s str,
    clusters: Vec<ClusterBackup>,
}

impl<'de> Fields<'de> for ClusterPage<'_> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        if key != "ClusterBackups" {
            return Ok(false);
        }
        let (instance_id, clusters) = (self.instance_id, &mut self.clusters);
        map.next_value_seed(ListSeed {
            field: "ClusterBackups",
            wrapper: "ClusterBackup",
            path: "ClusterBackups",
            within: Within::default(),
            max_items: MAX_CLUSTER_BACKUPS,
            item: |i| Object(RawCluster::at(i)),
            each: |i, item: Option<RawCluster>| {
                let item = item.ok_or_else(|| format!("ClusterBackups[{i}] is not an object"))?;
                let cluster = decode_cluster_backup(item, instance_id)
                    .map_err(|e| format!("ClusterBackups[{i}]: {e}"))?;
                clusters.push(cluster);
                Ok(())
            },
        })?;
        Ok(true)
    }
}

/// The fields of one cluster backup the exporter reads; its shards as
/// they were given (their times fall back on the cluster's, which may come
/// after them).
#[derive(Default)]
struct RawCluster<'de> {
    /// Its position on the page, for the errors of its shard list.
    index: usize,
    id: Text<'de>,
    status: Text<'de>,
    start: Time,
    end: Time,
    available: Flag,
    mode: Text<'de>,
    size: Whole,
    shards: Vec<Option<RawShard<'de>>>,
}

impl RawCluster<'_> {
    fn at(index: usize) -> Self {
        RawCluster {
            index,
            ..RawCluster::default()
        }
    }
}

impl<'de> Fields<'de> for RawCluster<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "ClusterBackupId" => self.id = map.next_value()?,
            "ClusterBackupStatus" => self.status = map.next_value()?,
            "ClusterBackupStartTime" => self.start = map.next_value()?,
            "ClusterBackupEndTime" => self.end = map.next_value()?,
            "IsAvail" => self.available = map.next_value()?,
            "ClusterBackupMode" => self.mode = map.next_value()?,
            "ClusterBackupSize" => self.size = map.next_value()?,
            "Backups" => {
                let shards = &mut self.shards;
                map.next_value_seed(ListSeed {
                    field: "Backups",
                    wrapper: "Backup",
                    path: "Backups",
                    within: Within(Some(("ClusterBackups", self.index))),
                    max_items: MAX_SHARDS,
                    item: |_| Object(RawShard::default()),
                    each: |_, shard| {
                        shards.push(shard);
                        Ok(())
                    },
                })?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The fields of one shard's backup the exporter reads.
#[derive(Default)]
struct RawShard<'de> {
    status: Text<'de>,
    start: Time,
    end: Time,
    available: Flag,
    name: Text<'de>,
    size: Whole,
    backup_type: Text<'de>,
    backup_method: Text<'de>,
}

impl<'de> Fields<'de> for RawShard<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "BackupStatus" => self.status = map.next_value()?,
            "BackupStartTime" => self.start = map.next_value()?,
            "BackupEndTime" => self.end = map.next_value()?,
            "IsAvail" => self.available = map.next_value()?,
            "InstanceName" => self.name = map.next_value()?,
            "BackupSize" => self.size = map.next_value()?,
            "BackupType" => self.backup_type = map.next_value()?,
            "BackupMethod" => self.backup_method = map.next_value()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A cluster or shard status in the words of `BackupStatus`: `OK` is a
/// success, `ERROR` a failure, `RUNNING` in progress, any case.
fn ok_status(raw: &str) -> BackupStatus {
    super::backups::status(raw, super::envelopes::KVSTORE_CLUSTER_STATUSES)
}

/// A shard's `InstanceName` is its node ID when it looks like one
/// (`r-bp1xxx-db-0`); anything else (a file or backup name) is not used.
fn is_node_id(name: &str) -> bool {
    let b = name.as_bytes();
    name.len() <= 64
        && b.len() > 2
        && b[0].is_ascii_lowercase()
        && b[1] == b'-'
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn decode_cluster_backup(item: RawCluster, instance_id: &str) -> Result<ClusterBackup, String> {
    let cluster_status = item.status.get().map(ok_status);
    let cluster_start = item.start.get("ClusterBackupStartTime")?;
    let cluster_end = item.end.get("ClusterBackupEndTime")?;
    // IsAvail 0: some shard failed or is not done. Unreadable: not told.
    let cluster_avail = item.available.0;
    let mode = item
        .mode
        .get()
        .map(normalize_word)
        .unwrap_or_else(|| "unknown".into());

    let cluster_ok = cluster_status == Some(BackupStatus::Success) && cluster_avail != Some(false);
    let mut backups = Vec::new();
    if item.shards.is_empty() {
        // No shard details: the cluster backup as a whole.
        let status = cluster_status.ok_or("ClusterBackupStatus is missing")?;
        let start = cluster_start.ok_or("ClusterBackupStartTime is missing")?;
        if status == BackupStatus::Success && cluster_end.is_none() {
            return Err("a successful cluster backup has no ClusterBackupEndTime".into());
        }
        backups.push(Backup {
            node_id: instance_id.to_string(),
            status,
            start,
            end: cluster_end,
            size_bytes: item.size.size("ClusterBackupSize")?,
            backup_type: "full".into(),
            backup_mode: mode,
            backup_method: "unknown".into(),
            restorable: cluster_ok,
        });
    } else {
        let mut all_shards_ok = true;
        for (position, shard) in item.shards.into_iter().enumerate() {
            let path = |e: String| format!("Backups[{position}]: {e}");
            let shard = shard.ok_or(format!("Backups[{position}] is not an object"))?;
            let status = shard
                .status
                .get()
                .map(ok_status)
                .ok_or_else(|| path("BackupStatus is missing".into()))?;
            let start = shard
                .start
                .get("BackupStartTime")
                .map_err(path)?
                .or(cluster_start)
                .ok_or_else(|| path("BackupStartTime is missing".into()))?;
            let end = shard
                .end
                .get("BackupEndTime")
                .map_err(path)?
                .or(cluster_end);
            if status == BackupStatus::Success && end.is_none() {
                return Err(path("a successful backup has no BackupEndTime".into()));
            }
            let available = shard.available.0 != Some(false);
            all_shards_ok &= status == BackupStatus::Success && available;
            let node_id = shard
                .name
                .get()
                .filter(|n| is_node_id(n))
                .map(str::to_string)
                .unwrap_or_else(|| format!("{instance_id}-shard-{position}"));
            backups.push(Backup {
                node_id,
                status,
                start,
                end,
                size_bytes: shard.size.size("BackupSize").map_err(path)?,
                backup_type: shard
                    .backup_type
                    .get()
                    .map(normalize_backup_type)
                    .unwrap_or_else(|| "full".into()),
                backup_mode: mode.clone(),
                backup_method: shard
                    .backup_method
                    .get()
                    .map(normalize_word)
                    .unwrap_or_else(|| "unknown".into()),
                restorable: false,
            });
        }
        // A restore point only when the cluster backup succeeded as a whole.
        for backup in &mut backups {
            backup.restorable = cluster_ok && all_shards_ok;
        }
    }
    Ok(ClusterBackup {
        id: item.id.into_string(),
        backups,
    })
}

/// Whether the API refused the call because it does not apply to the
/// instance's architecture (DescribeBackups on a cloud-native cluster, or
/// DescribeClusterBackupList on anything else), so the other call is the
/// one to use.
///
/// A heuristic: Alibaba does not document the codes. It matches, in any
/// case, a code containing `notsupport`, `unsupported`,
/// `incorrectarchitecture` or `incorrectinstancetype` (e.g.
/// `InstanceType.NotSupport`, `IncorrectInstanceType`,
/// `OperationUnsupported`), and nothing that is not an API error answer.
pub fn is_not_applicable(error: &ApiError) -> bool {
    let ApiError::Api { code, .. } = error else {
        return false;
    };
    let code = code.to_ascii_lowercase();
    [
        "notsupport",
        "unsupported",
        "incorrectarchitecture",
        "incorrectinstancetype",
    ]
    .iter()
    .any(|marker| code.contains(marker))
}

/// Instances asked for per DescribeInstances page: the API's maximum.
pub const INSTANCE_PAGE_SIZE: usize = 50;
/// IDs per DescribeInstances call with `InstanceIds`: the API's maximum.
pub const MAX_IDS_PER_CALL: usize = 30;
/// 50,000 instances in one region is beyond any real estate.
const MAX_INSTANCE_PAGES: usize = 1000;

/// What to list in one region.
#[derive(Debug, Clone, Copy)]
pub struct InstanceQuery<'a> {
    pub region_id: &'a str,
    /// Only these instances (at most `MAX_IDS_PER_CALL`); empty for all.
    pub instance_ids: &'a [String],
    /// An instance must carry every pair (sent as `Tag.N.*`, at most five,
    /// and checked again here: whether the API ANDs them is not documented).
    pub tags: &'a [(String, String)],
}

/// Every instance of a region matching `query`, all pages, by `deadline`.
/// A failed page fails the whole call: a half list would drop instances.
pub async fn describe_instances(
    client: &RpcClient,
    query: &InstanceQuery<'_>,
    deadline: Instant,
) -> Result<Vec<InstanceInfo>, ApiError> {
    let mut found: Vec<InstanceInfo> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut listed = 0;
    for page_number in 1..=MAX_INSTANCE_PAGES {
        let mut params = vec![
            ("RegionId", query.region_id.to_string()),
            ("PageSize", INSTANCE_PAGE_SIZE.to_string()),
            ("PageNumber", page_number.to_string()),
        ];
        if !query.instance_ids.is_empty() {
            params.push(("InstanceIds", query.instance_ids.join(",")));
        }
        let tag_params: Vec<(String, String)> = query
            .tags
            .iter()
            .take(crate::config::MAX_TAGS)
            .enumerate()
            .flat_map(|(i, (k, v))| {
                [
                    (format!("Tag.{}.Key", i + 1), k.clone()),
                    (format!("Tag.{}.Value", i + 1), v.clone()),
                ]
            })
            .collect();
        params.extend(tag_params.iter().map(|(k, v)| (k.as_str(), v.clone())));
        let answer = client
            .call(
                "DescribeInstances",
                &params,
                |body| decode_instances(body, query.region_id),
                deadline,
            )
            .await?;
        let page = answer.value;
        let got = page.instances.len();
        listed += got;
        // Pages can shift while instances come and go: never count one twice.
        for instance in page.instances {
            if seen.insert(instance.instance_id.clone()) && instance.has_tags(query.tags) {
                found.push(instance);
            }
        }
        // Without a total, go on while pages come back full.
        let done = match page.total_count {
            Some(total) => listed >= total,
            None => got < INSTANCE_PAGE_SIZE,
        };
        if got == 0 || done {
            return Ok(found);
        }
    }
    Err(ApiError::Decode {
        detail: format!("more than {MAX_INSTANCE_PAGES} pages of instances"),
        request_id: None,
    })
}

/// One page of a DescribeInstances answer.
#[derive(Debug)]
pub struct InstancePage {
    pub instances: Vec<InstanceInfo>,
    pub total_count: Option<usize>,
}

/// Label values are bounded: an instance name is the user's free text.
/// Decodes a DescribeInstances page. Strict about what identifies an
/// instance (a missing or malformed `InstanceId` fails the page, so the
/// last known list is kept rather than an instance dropped), lenient about
/// everything else.
pub fn decode_instances(body: &[u8], queried_region: &str) -> Result<InstancePage, String> {
    let doc = lenient::decode(
        body,
        Object(InstancesDoc {
            queried_region,
            total: Whole::Absent,
            instances: Vec::new(),
        }),
    )?;
    Ok(InstancePage {
        total_count: doc.total.count("TotalCount")?,
        instances: doc.instances,
    })
}

/// A DescribeInstances page may hold this many times the instances asked
/// for (see `backups::MAX_PAGE_FACTOR`).
const MAX_INSTANCES: usize = INSTANCE_PAGE_SIZE * super::backups::MAX_PAGE_FACTOR;

/// Tags listed on one instance: Alibaba allows 20 per resource.
const MAX_INSTANCE_TAGS: usize = 256;

/// A DescribeInstances page: the total and the instances, decoded as they
/// come.
struct InstancesDoc<'s> {
    queried_region: &'s str,
    total: Whole,
    instances: Vec<InstanceInfo>,
}

impl<'de> Fields<'de> for InstancesDoc<'_> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "TotalCount" => self.total = map.next_value()?,
            "Instances" => {
                let (queried_region, instances) = (self.queried_region, &mut self.instances);
                map.next_value_seed(ListSeed {
                    field: "Instances",
                    wrapper: "KVStoreInstance",
                    path: "Instances.KVStoreInstance",
                    within: Within::default(),
                    max_items: MAX_INSTANCES,
                    item: |i| Object(RawInstance::at(i)),
                    each: |i, item: Option<RawInstance>| {
                        let item = item.ok_or_else(|| {
                            format!("Instances.KVStoreInstance[{i}] is not an object")
                        })?;
                        let instance = decode_instance(item, queried_region)
                            .map_err(|e| format!("Instances.KVStoreInstance[{i}]: {e}"))?;
                        instances.push(instance);
                        Ok(())
                    },
                })?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The fields of one instance the exporter reads; its tags already
/// bounded.
#[derive(Default)]
struct RawInstance<'de> {
    /// Its position on the page, for the errors of its tag list.
    index: usize,
    instance_id: Text<'de>,
    region_id: Text<'de>,
    name: Text<'de>,
    zone_id: Text<'de>,
    engine_version: Text<'de>,
    architecture: Text<'de>,
    instance_class: Text<'de>,
    status: Text<'de>,
    shard_count: Whole,
    created: Time,
    tags: Vec<(String, String)>,
}

impl RawInstance<'_> {
    fn at(index: usize) -> Self {
        RawInstance {
            index,
            ..RawInstance::default()
        }
    }
}

impl<'de> Fields<'de> for RawInstance<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "InstanceId" => self.instance_id = map.next_value()?,
            "RegionId" => self.region_id = map.next_value()?,
            "InstanceName" => self.name = map.next_value()?,
            "ZoneId" => self.zone_id = map.next_value()?,
            "EngineVersion" => self.engine_version = map.next_value()?,
            "ArchitectureType" => self.architecture = map.next_value()?,
            "InstanceClass" => self.instance_class = map.next_value()?,
            "InstanceStatus" => self.status = map.next_value()?,
            "ShardCount" => self.shard_count = map.next_value()?,
            "CreateTime" => self.created = map.next_value()?,
            "Tags" => {
                let tags = &mut self.tags;
                map.next_value_seed(ListSeed {
                    field: "Tags",
                    wrapper: "Tag",
                    path: "Tags.Tag",
                    within: Within(Some(("Instances.KVStoreInstance", self.index))),
                    max_items: MAX_INSTANCE_TAGS,
                    item: |_| Object(RawTag::default()),
                    // A tag that is not an object or has no key is left out.
                    each: |_, tag: Option<RawTag>| {
                        if let Some(key) = tag.as_ref().and_then(|t| t.key.get()) {
                            let value =
                                tag.as_ref().and_then(|t| t.value.get()).unwrap_or_default();
                            tags.push((bounded(key), bounded(value)));
                        }
                        Ok(())
                    },
                })?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// One tag of an instance.
#[derive(Default)]
struct RawTag<'de> {
    key: Text<'de>,
    value: Text<'de>,
}

impl<'de> Fields<'de> for RawTag<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "Key" => self.key = map.next_value()?,
            "Value" => self.value = map.next_value()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn decode_instance(item: RawInstance, queried_region: &str) -> Result<InstanceInfo, String> {
    let instance_id = listed_id("InstanceId", &item.instance_id)?;
    let region_id = listed_region(&item.region_id, queried_region);
    let field = |text: &Text| bounded(text.get().unwrap_or_default());
    let mut tags = item.tags;
    // Kept for as long as the instance is watched: no spare room.
    tags.shrink_to_fit();
    Ok(InstanceInfo {
        instance_id: instance_id.into(),
        region_id: interned(&region_id),
        name: field(&item.name),
        zone_id: interned(&field(&item.zone_id)),
        engine_version: interned(&field(&item.engine_version)),
        architecture: interned(&field(&item.architecture).to_ascii_lowercase()),
        instance_class: interned(&field(&item.instance_class)),
        status: interned(&field(&item.status)),
        shard_count: item.shard_count.value().and_then(|n| u32::try_from(n).ok()),
        tags,
        // A creation time that cannot be read only leaves out its series.
        created: item.created.ok(),
        nodes: Vec::new(),
    })
}

/// A region and the host DescribeRegions says serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionInfo {
    pub region_id: String,
    /// `RegionEndpoint`, when it is a plausible Alibaba host name.
    pub endpoint_host: Option<String>,
}

/// Every region R-kvstore is offered in, by `deadline`.
pub async fn describe_regions(
    client: &RpcClient,
    deadline: Instant,
) -> Result<Vec<RegionInfo>, ApiError> {
    let answer = client
        .call("DescribeRegions", &[], decode_regions, deadline)
        .await?;
    Ok(answer.value)
}

/// Decodes DescribeRegions. A region ID that could not be a region is
/// skipped (it would end up in a host name); an endpoint that is not an
/// `*.aliyuncs.com` host is ignored, so the signed requests never go to a
/// host that an answer made up.
pub fn decode_regions(body: &[u8]) -> Result<Vec<RegionInfo>, String> {
    let doc = lenient::decode(body, Object(RegionsDoc::default()))?;
    if doc.regions.is_empty() {
        return Err("RegionIds.KVStoreRegion names no region".into());
    }
    Ok(doc.regions)
}

/// Regions listed in one answer: R-kvstore is offered in about 30.
const MAX_REGIONS: usize = 1000;

/// A DescribeRegions answer: the usable regions, decoded as they come.
#[derive(Default)]
struct RegionsDoc {
    regions: Vec<RegionInfo>,
}

impl<'de> Fields<'de> for RegionsDoc {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        if key != "RegionIds" {
            return Ok(false);
        }
        let regions = &mut self.regions;
        map.next_value_seed(ListSeed {
            field: "RegionIds",
            wrapper: "KVStoreRegion",
            path: "RegionIds.KVStoreRegion",
            within: Within::default(),
            max_items: MAX_REGIONS,
            item: |_| Object(RawRegion::default()),
            each: |_, item: Option<RawRegion>| {
                let Some(item) = item else { return Ok(()) };
                let Some(region_id) = item
                    .region_id
                    .get()
                    .filter(|r| endpoint::is_valid_region(r))
                else {
                    return Ok(());
                };
                if regions.iter().any(|r| r.region_id == region_id) {
                    return Ok(());
                }
                let endpoint_host = item
                    .endpoint
                    .get()
                    .filter(|h| endpoint::is_alibaba_host(h))
                    .map(str::to_string);
                regions.push(RegionInfo {
                    region_id: region_id.to_string(),
                    endpoint_host,
                });
                Ok(())
            },
        })?;
        Ok(true)
    }
}

/// One region of DescribeRegions.
#[derive(Default)]
struct RawRegion<'de> {
    region_id: Text<'de>,
    endpoint: Text<'de>,
}

impl<'de> Fields<'de> for RawRegion<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "RegionId" => self.region_id = map.next_value()?,
            "RegionEndpoint" => self.endpoint = map.next_value()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// R-kvstore behind the product seam.
pub struct Kvstore;

impl super::ProductApi for Kvstore {
    const API_VERSION: &'static str = API_VERSION;
    const DISCOVERY_ACTION: &'static str = "DescribeInstances";

    fn endpoint(region: &str) -> String {
        endpoint::kvstore_endpoint(region)
    }

    /// DescribeBackups, or DescribeClusterBackupList for a cloud-native
    /// cluster (`target.api`).
    async fn list_backups(
        client: &RpcClient,
        target: &super::PollTarget<'_>,
        window: &Window,
        deadline: Instant,
    ) -> Result<Vec<Backup>, ApiError> {
        match target.api {
            crate::model::BackupApi::DescribeBackups => {
                describe_backups(client, target.instance_id, window, deadline).await
            }
            crate::model::BackupApi::ClusterBackupList => {
                describe_cluster_backups(
                    client,
                    target.region_id,
                    target.instance_id,
                    window,
                    deadline,
                )
                .await
            }
        }
    }

    async fn describe_instances(
        client: &RpcClient,
        query: &InstanceQuery<'_>,
        deadline: Instant,
    ) -> Result<Vec<InstanceInfo>, ApiError> {
        describe_instances(client, query, deadline).await
    }

    async fn describe_backup_policy(
        client: &RpcClient,
        instance_id: &str,
        deadline: Instant,
    ) -> Result<BackupPolicy, ApiError> {
        describe_backup_policy(client, instance_id, deadline).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aliyun::json::parse_time;
    use chrono::TimeZone;

    #[test]
    fn label_values_from_an_answer_are_bounded_and_printable() {
        let long_node = "n".repeat(2000);
        let body = format!(
            r#"{{"TotalCount":1,"Backups":{{"Backup":[{{"BackupStatus":"Fail\u0007ed","BackupStartTime":"2019-03-14T05:28:50Z","NodeInstanceId":"{long_node}","BackupMode":"Auto\r\nmated","BackupMethod":"{}"}}]}}}}"#,
            "m".repeat(5000)
        );
        let page = decode_page(body.as_bytes(), "r-1").unwrap();
        let b = &page.backups[0];
        assert_eq!(b.node_id.len(), crate::model::MAX_ID);
        assert_eq!(b.status.label(), "fail_ed");
        assert_eq!(b.backup_mode, "auto__mated");
        assert_eq!(b.backup_method.len(), crate::model::MAX_WORD);
        assert!(![&b.node_id, &b.backup_mode, &b.backup_method]
            .iter()
            .any(|v| v.chars().any(char::is_control)));
    }

    #[test]
    fn a_huge_bad_value_makes_a_short_error() {
        let huge = "9".repeat(1 << 20);
        let body = format!(
            r#"{{"TotalCount":1,"Backups":{{"Backup":[{{"BackupStatus":"Success","BackupStartTime":"{huge}","BackupEndTime":"2019-03-14T05:31:13Z"}}]}}}}"#
        );
        let err = decode_page(body.as_bytes(), "r-1").unwrap_err();
        assert!(err.len() < 200, "{} bytes", err.len());
        assert!(err.contains("BackupStartTime"), "{err}");
        let cluster = format!(
            r#"{{"ClusterBackups":[{{"ClusterBackupStatus":"OK","ClusterBackupStartTime":"{huge}"}}]}}"#
        );
        let err = decode_cluster_page(cluster.as_bytes(), "r-1").unwrap_err();
        assert!(err.len() < 200, "{} bytes", err.len());
    }

    #[test]
    fn answers_far_larger_than_asked_for_are_refused() {
        let list = |item: &str, n: usize| vec![item; n].join(",");
        // Cluster backups: three times the page asked for.
        let cluster =
            r#"{"ClusterBackupStatus":"Failed","ClusterBackupStartTime":"2024-01-09T17:20:39Z"}"#;
        let page = |n| format!(r#"{{"ClusterBackups":[{}]}}"#, list(cluster, n));
        assert_eq!(
            decode_cluster_page(page(300).as_bytes(), "r-x")
                .unwrap()
                .len(),
            300
        );
        let err = decode_cluster_page(page(301).as_bytes(), "r-x").unwrap_err();
        assert_eq!(err, "ClusterBackups has more than 300 items");
        // Shards of one cluster backup.
        let shard = r#"{"BackupStatus":"ERROR"}"#;
        let shards = |n| {
            format!(
                r#"{{"ClusterBackups":[{{"ClusterBackupStatus":"Failed","ClusterBackupStartTime":"2024-01-09T17:20:39Z","Backups":[{}]}}]}}"#,
                list(shard, n)
            )
        };
        assert_eq!(
            decode_cluster_page(shards(1024).as_bytes(), "r-x")
                .unwrap()
                .len(),
            1024
        );
        let err = decode_cluster_page(shards(1025).as_bytes(), "r-x").unwrap_err();
        assert_eq!(err, "ClusterBackups[0]: Backups has more than 1024 items");
        // Instances, and the tags of one.
        let instances = |n| {
            let items = (0..n)
                .map(|i| format!(r#"{{"InstanceId":"r-{i}"}}"#))
                .collect::<Vec<_>>();
            format!(
                r#"{{"Instances":{{"KVStoreInstance":[{}]}}}}"#,
                items.join(",")
            )
        };
        assert_eq!(
            decode_instances(instances(150).as_bytes(), "x")
                .unwrap()
                .instances
                .len(),
            150
        );
        let err = decode_instances(instances(151).as_bytes(), "x").unwrap_err();
        assert_eq!(err, "Instances.KVStoreInstance has more than 150 items");
        let tags = |n| {
            format!(
                r#"{{"Instances":{{"KVStoreInstance":[{{"InstanceId":"r-1","Tags":{{"Tag":[{}]}}}}]}}}}"#,
                list(r#"{"Key":"k","Value":"v"}"#, n)
            )
        };
        assert_eq!(
            decode_instances(tags(256).as_bytes(), "x")
                .unwrap()
                .instances[0]
                .tags
                .len(),
            256
        );
        let err = decode_instances(tags(257).as_bytes(), "x").unwrap_err();
        assert_eq!(
            err,
            "Instances.KVStoreInstance[0]: Tags.Tag has more than 256 items"
        );
        // Regions.
        let regions = |n| {
            format!(
                r#"{{"RegionIds":{{"KVStoreRegion":[{}]}}}}"#,
                list(r#"{"RegionId":"cn-hangzhou"}"#, n)
            )
        };
        assert_eq!(decode_regions(regions(1000).as_bytes()).unwrap().len(), 1);
        let err = decode_regions(regions(1001).as_bytes()).unwrap_err();
        assert_eq!(err, "RegionIds.KVStoreRegion has more than 1000 items");
    }

    #[test]
    fn window_is_in_whole_minutes_and_covers_now() {
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 4, 46, 7).unwrap();
        let w = Window::ending_at(now, std::time::Duration::from_secs(7 * 86400));
        assert_eq!(w.start_param(), "2026-11-19T04:46Z");
        assert_eq!(w.end_param(), "2026-11-26T04:47Z");
        let on_the_minute = Utc.with_ymd_and_hms(2026, 11, 26, 4, 46, 0).unwrap();
        let w = Window::ending_at(on_the_minute, std::time::Duration::from_secs(3600));
        assert_eq!(w.end_param(), "2026-11-26T04:47Z");
    }

    #[test]
    fn lenient_about_types_case_and_missing_fields() {
        let body = br#"{"RequestId":"R","TotalCount":"2","PageNumber":1,
          "Backups":{"Backup":[
            {"BackupId":"123","BackupStatus":"SUCCESS","BackupStartTime":"2019-03-14T05:28:50Z",
             "BackupEndTime":"2019-03-14T05:31:13Z","BackupSize":"1024","BackupType":"Fullbackup",
             "EngineVersion":4,"RecoverConfigMode":{"x":1},"Unknown":[1],
             "BackupDownloadURL":"https://oss/x?Signature=abc"},
            {"BackupId":7,"BackupStatus":"Failed","BackupStartTime":"2019-03-15T05:28:50Z",
             "NodeInstanceId":"r-1-db-0","BackupSize":2048,"BackupMode":"Manual","BackupMethod":"Physical"}
          ]}}"#;
        let page = decode_page(body, "r-1").unwrap();
        assert_eq!(page.total_count, Some(2));
        let [a, b] = &page.backups[..] else {
            panic!("two backups")
        };
        assert_eq!(a.node_id, "r-1");
        assert_eq!(a.status, BackupStatus::Success);
        assert_eq!(a.size_bytes, Some(1024));
        assert_eq!(a.backup_type, "full");
        assert_eq!(a.backup_mode, "unknown");
        assert_eq!(b.node_id, "r-1-db-0");
        assert_eq!(b.status, BackupStatus::Failed);
        assert_eq!(b.end, None);
        assert_eq!(b.backup_method, "physical");
        assert_eq!(b.backup_mode, "manual");
        assert!(!format!("{page:?}").contains("Signature"));
    }

    #[test]
    fn empty_answers() {
        for body in [
            &br#"{"TotalCount":0}"#[..],
            br#"{"TotalCount":0,"Backups":{"Backup":[]}}"#,
            br#"{"TotalCount":0,"Backups":{}}"#,
            br#"{"Backups":[]}"#,
        ] {
            let page = decode_page(body, "r").unwrap();
            assert!(page.backups.is_empty());
        }
    }

    #[test]
    fn strict_where_facts_would_be_wrong() {
        let cases: [(&[u8], &str); 7] = [
            (b"<html>busy</html>", "not JSON"),
            (b"[1,2]", "not a JSON object"),
            (br#"{"Backups":{"Backup":[{"BackupStartTime":"2019-03-14T05:28:50Z"}]}}"#, "BackupStatus is missing"),
            (br#"{"Backups":{"Backup":[{"BackupStatus":"Failed"}]}}"#, "BackupStartTime is missing"),
            (br#"{"Backups":{"Backup":[{"BackupStatus":"Success","BackupStartTime":"2019-03-14T05:28:50Z"}]}}"#, "no BackupEndTime"),
            (br#"{"Backups":{"Backup":[{"BackupStatus":"Failed","BackupStartTime":"14/03/2019"}]}}"#, "BackupStartTime \"14/03/2019\" is not a time"),
            (br#"{"Backups":{"Backup":[{"BackupStatus":"Failed","BackupStartTime":"2019-03-14T05:28:50Z","BackupSize":"big"}]}}"#, "BackupSize"),
        ];
        for (body, expected) in cases {
            let err = decode_page(body, "r").unwrap_err();
            assert!(err.contains(expected), "{err} should mention {expected}");
        }
    }

    const POLICY_FIXTURE: &[u8] =
        include_bytes!("../../tests/fixtures/kvstore/DescribeBackupPolicy.json");
    const CLUSTER_FIXTURE: &[u8] =
        include_bytes!("../../tests/fixtures/kvstore/DescribeClusterBackupList.json");

    fn at(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    #[test]
    fn backup_policy_fixture() {
        let policy = decode_backup_policy(POLICY_FIXTURE).unwrap();
        assert_eq!(policy.days.label(), "mon,wed,fri");
        assert_eq!(policy.window, "05:00Z-06:00Z");
        assert_eq!(policy.retention_days, Some(7));
        assert_eq!(policy.log_backup_enabled, Some(false));
        assert_eq!(
            policy.max_interval(),
            Some(std::time::Duration::from_secs(3 * 86400))
        );
    }

    #[test]
    fn backup_policy_fields_in_any_type() {
        let decode = |body: &str| decode_backup_policy(body.as_bytes()).unwrap();
        for retention in [r#""7""#, "7", r#"" 7 ""#, "7.0"] {
            let p = decode(&format!(r#"{{"BackupRetentionPeriod":{retention}}}"#));
            assert_eq!(p.retention_days, Some(7), "{retention}");
        }
        for (flag, want) in [
            ("1", Some(true)),
            (r#""1""#, Some(true)),
            ("true", Some(true)),
            (r#""True""#, Some(true)),
            ("0", Some(false)),
            (r#""0""#, Some(false)),
            ("false", Some(false)),
            ("2", None),
            (r#""maybe""#, None),
            ("null", None),
        ] {
            let p = decode(&format!(r#"{{"EnableBackupLog":{flag}}}"#));
            assert_eq!(p.log_backup_enabled, want, "{flag}");
        }
        let p = decode(r#"{"PreferredBackupPeriod":"MONDAY, thursday,Sun"}"#);
        assert_eq!(p.days.label(), "mon,thu,sun");
        // Nothing at all: an empty policy, not an error.
        assert_eq!(decode("{}"), BackupPolicy::default());
        let p = decode(r#"{"BackupRetentionPeriod":"a week","PreferredBackupPeriod":""}"#);
        assert_eq!((p.retention_days, p.days.is_empty()), (None, true));
        // A window that cannot be read is kept as given, bounded.
        assert_eq!(
            decode(r#"{"PreferredBackupTime":" nightly "}"#).window,
            "nightly"
        );
        let long = format!(r#"{{"PreferredBackupTime":"{}"}}"#, "é".repeat(100));
        let window = decode(&long).window;
        assert!(window.len() <= 64 && window.starts_with('é'), "{window}");
    }

    #[test]
    fn backup_policy_refuses_what_it_cannot_trust() {
        for (body, expected) in [
            (&b"<html>"[..], "not JSON"),
            (b"[]", "not a JSON object"),
            (
                br#"{"PreferredBackupPeriod":"Monday,Funday"}"#,
                "\"Funday\" is not a weekday",
            ),
        ] {
            let err = decode_backup_policy(body).unwrap_err();
            assert!(err.contains(expected), "{err} should mention {expected}");
        }
    }

    #[test]
    fn cluster_backup_fixture() {
        let backups = decode_cluster_page(CLUSTER_FIXTURE, "r-bp1zxszhcgatnxqw").unwrap();
        assert!(!format!("{backups:?}").contains("Signature"));
        let summary: Vec<(&str, &str, bool, Option<u64>)> = backups
            .iter()
            .map(|b| {
                (
                    b.node_id.as_str(),
                    b.status.label(),
                    b.restorable,
                    b.size_bytes,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                // RUNNING: in progress, not a restore point yet.
                ("r-bp1zxszhcgatnxqw-db-0", "running", false, None),
                // OK: both shards; a name that is not a node ID gives the position.
                ("r-bp1zxszhcgatnxqw-db-0", "success", true, Some(15_630_336)),
                (
                    "r-bp1zxszhcgatnxqw-shard-1",
                    "success",
                    true,
                    Some(15_630_336)
                ),
                // Failed: the shard that succeeded is no restore point either.
                (
                    "r-bp1zxszhcgatnxqw-db-0",
                    "success",
                    false,
                    Some(15_630_336)
                ),
                ("r-bp1zxszhcgatnxqw-db-1", "failed", false, None),
            ]
        );
        assert!(backups[0].status.is_in_progress());
        assert_eq!(backups[0].end, None);
        // The end time without its Z is UTC.
        assert_eq!(backups[1].start, at("2024-01-09T17:20:42Z"));
        assert_eq!(backups[1].end, Some(at("2024-01-09T17:21:57Z")));
        assert_eq!(backups[4].end, Some(at("2024-01-08T17:23:10Z")));
        assert!(backups
            .iter()
            .all(|b| b.backup_type == "full" && b.backup_method == "unknown"));
        let modes: Vec<&str> = backups.iter().map(|b| b.backup_mode.as_str()).collect();
        assert_eq!(
            modes,
            ["automated", "automated", "automated", "manual", "manual"]
        );
    }

    #[test]
    fn cluster_backups_leniently() {
        // The wrapped form, shards wrapped too, statuses in odd case, shard
        // times and sizes missing (the cluster's are used), flags as text.
        let body = br#"{"ClusterBackups":{"ClusterBackup":[
            {"ClusterBackupStatus":"ok","IsAvail":"1","ClusterBackupStartTime":"2024-01-09T17:20:39Z",
             "ClusterBackupEndTime":"2024-01-09T17:22:01","ClusterBackupMode":"MANUAL",
             "Backups":{"Backup":[
                {"InstanceName":"r-x-db-0","BackupStatus":"Ok","BackupType":"FullBackup","BackupMethod":"Physical"},
                {"InstanceName":"R-X-DB-1","BackupStatus":"ok","IsAvail":true,"BackupSize":42}
             ]}}
        ]}}"#;
        let backups = decode_cluster_page(body, "r-x").unwrap();
        let [a, b] = &backups[..] else {
            panic!("two shards: {backups:?}")
        };
        assert_eq!(
            (a.node_id.as_str(), b.node_id.as_str()),
            ("r-x-db-0", "r-x-shard-1")
        );
        assert_eq!(a.start, at("2024-01-09T17:20:39Z"));
        assert_eq!(a.end, Some(at("2024-01-09T17:22:01Z")));
        assert_eq!(
            (a.backup_method.as_str(), a.backup_mode.as_str()),
            ("physical", "manual")
        );
        assert_eq!((a.size_bytes, b.size_bytes), (None, Some(42)));
        assert!(a.restorable && b.restorable);

        // Statuses: OK, ERROR, Failed, RUNNING and others, any case.
        let status = |raw: &str| ok_status(raw);
        assert_eq!(status("OK"), BackupStatus::Success);
        assert_eq!(status("error"), BackupStatus::Failed);
        assert_eq!(status("FAILED"), BackupStatus::Failed);
        assert!(status("Running").is_in_progress());
        assert_eq!(status("Pending").label(), "pending");

        // IsAvail 0 on the cluster or on a shard: no restore point.
        for body in [
            &br#"{"ClusterBackups":[{"ClusterBackupStatus":"OK","IsAvail":0,"ClusterBackupStartTime":"2024-01-09T17:20:39Z","ClusterBackupEndTime":"2024-01-09T17:22:01Z",
                "Backups":[{"InstanceName":"r-x-db-0","BackupStatus":"OK","BackupEndTime":"2024-01-09T17:21:00"}]}]}"#[..],
            br#"{"ClusterBackups":[{"ClusterBackupStatus":"OK","ClusterBackupStartTime":"2024-01-09T17:20:39Z","ClusterBackupEndTime":"2024-01-09T17:22:01Z",
                "Backups":[{"BackupStatus":"OK","IsAvail":"0"},{"BackupStatus":"OK","IsAvail":"1"}]}]}"#,
            // Cluster status missing: not known to be whole.
            br#"{"ClusterBackups":[{"ClusterBackupStartTime":"2024-01-09T17:20:39Z","ClusterBackupEndTime":"2024-01-09T17:22:01Z",
                "Backups":[{"BackupStatus":"OK"}]}]}"#,
        ] {
            let backups = decode_cluster_page(body, "r-x").unwrap();
            assert!(backups.iter().all(|b| !b.restorable), "{backups:?}");
            assert!(backups.iter().all(|b| b.status == BackupStatus::Success));
        }
        // IsAvail missing or unreadable on an OK cluster: a restore point.
        let body = br#"{"ClusterBackups":[{"ClusterBackupStatus":"OK","IsAvail":"n/a","ClusterBackupStartTime":"2024-01-09T17:20:39Z","ClusterBackupEndTime":"2024-01-09T17:22:01Z",
                "Backups":[{"BackupStatus":"OK"}]}]}"#;
        assert!(decode_cluster_page(body, "r-x").unwrap()[0].restorable);
    }

    #[test]
    fn cluster_backups_without_shard_details() {
        let body = br#"{"ClusterBackups":[
            {"ClusterBackupId":"cb-1","ClusterBackupStatus":"OK","IsAvail":1,"ClusterBackupSize":"1024",
             "ClusterBackupStartTime":"2024-01-09T17:20:39Z","ClusterBackupEndTime":"2024-01-09T17:22:01Z",
             "ClusterBackupMode":"Automated"},
            {"ClusterBackupId":"cb-2","ClusterBackupStatus":"Failed","ClusterBackupStartTime":"2024-01-08T17:20:39Z","Backups":[]},
            {"ClusterBackupId":"cb-3","ClusterBackupStatus":"RUNNING","ClusterBackupStartTime":"2024-01-10T17:20:39Z","Backups":null}
        ]}"#;
        let backups = decode_cluster_page(body, "r-x").unwrap();
        let summary: Vec<(&str, &str, bool, Option<u64>, &str)> = backups
            .iter()
            .map(|b| {
                (
                    b.node_id.as_str(),
                    b.status.label(),
                    b.restorable,
                    b.size_bytes,
                    b.backup_mode.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("r-x", "success", true, Some(1024), "automated"),
                ("r-x", "failed", false, None, "unknown"),
                ("r-x", "running", false, None, "unknown"),
            ]
        );
        for body in [
            &br#"{"ClusterBackups":[]}"#[..],
            br#"{}"#,
            br#"{"ClusterBackups":{}}"#,
        ] {
            assert!(decode_cluster_page(body, "r-x").unwrap().is_empty());
        }
    }

    #[test]
    fn node_ids_only_from_names_that_are_node_ids() {
        for good in ["r-bp1xxx-db-0", "r-a", "x-1-2-3"] {
            assert!(is_node_id(good), "{good}");
        }
        let too_long = format!("r-{}", "a".repeat(63));
        for bad in [
            "hins100322106",
            "hins100322106_data_20240109172043.rdb",
            "r-bp1****-db-0",
            "R-bp1-db-0",
            "r-",
            "-r-db",
            "1-db",
            "r-a b",
            too_long.as_str(),
        ] {
            assert!(!is_node_id(bad), "{bad}");
        }
    }

    #[test]
    fn cluster_backups_strict_where_facts_would_be_wrong() {
        let cases: [(&[u8], &str); 9] = [
            (b"<html>busy</html>", "not JSON"),
            (br#"{"ClusterBackups":"x"}"#, "not an object"),
            (br#"{"ClusterBackups":[1]}"#, "ClusterBackups[0] is not an object"),
            (
                br#"{"ClusterBackups":[{"ClusterBackupStartTime":"2024-01-09T17:20:39Z","Backups":[{"InstanceName":"r-x-db-0"}]}]}"#,
                "ClusterBackups[0]: Backups[0]: BackupStatus is missing",
            ),
            (
                br#"{"ClusterBackups":[{"ClusterBackupStatus":"OK","Backups":[{"BackupStatus":"ERROR"}]}]}"#,
                "BackupStartTime is missing",
            ),
            (
                br#"{"ClusterBackups":[{"ClusterBackupStatus":"OK","Backups":[{"BackupStatus":"OK","BackupStartTime":"2024-01-09T17:20:39Z"}]}]}"#,
                "no BackupEndTime",
            ),
            (
                br#"{"ClusterBackups":[{"ClusterBackupStatus":"OK","Backups":[{"BackupStatus":"OK","BackupStartTime":"09/01/2024","BackupEndTime":"2024-01-09T17:22:01"}]}]}"#,
                "BackupStartTime \"09/01/2024\" is not a time",
            ),
            (
                br#"{"ClusterBackups":[{"ClusterBackupStatus":"OK","ClusterBackupStartTime":"2024-01-09T17:20:39Z"}]}"#,
                "no ClusterBackupEndTime",
            ),
            (
                br#"{"ClusterBackups":[{"ClusterBackupStartTime":"2024-01-09T17:20:39Z","Backups":[]}]}"#,
                "ClusterBackupStatus is missing",
            ),
        ];
        for (body, expected) in cases {
            let err = decode_cluster_page(body, "r-x").unwrap_err();
            assert!(err.contains(expected), "{err} should mention {expected}");
        }
        let bad_size = br#"{"ClusterBackups":[{"ClusterBackupStatus":"OK","ClusterBackupStartTime":"2024-01-09T17:20:39Z","ClusterBackupEndTime":"2024-01-09T17:22:01Z",
            "Backups":[{"BackupStatus":"OK","BackupSize":"big"}]}]}"#;
        assert!(decode_cluster_page(bad_size, "r-x")
            .unwrap_err()
            .contains("BackupSize"));
        let bad_cluster_time =
            br#"{"ClusterBackups":[{"ClusterBackupStatus":"OK","ClusterBackupStartTime":"soon"}]}"#;
        assert!(decode_cluster_page(bad_cluster_time, "r-x")
            .unwrap_err()
            .contains("ClusterBackupStartTime \"soon\" is not a time"));
    }

    #[test]
    fn not_applicable_is_told_from_other_errors() {
        let api = |code: &str, status: u16| ApiError::Api {
            code: code.into(),
            message: "m".into(),
            request_id: None,
            status,
        };
        for code in [
            "InstanceType.NotSupport",
            "IncorrectInstanceType",
            "OperationUnsupported",
            "Instance.IncorrectArchitecture",
            "instancetype.notsupported",
        ] {
            assert!(is_not_applicable(&api(code, 400)), "{code}");
        }
        for code in [
            "Throttling",
            "Throttling.User",
            "Forbidden.RAM",
            "InvalidInstanceId.NotFound",
            "InternalError",
        ] {
            assert!(!is_not_applicable(&api(code, 400)), "{code}");
        }
        for other in [
            ApiError::Timeout(std::time::Duration::from_secs(5)),
            ApiError::Http { status: 400 },
            ApiError::Transport("InstanceType.NotSupport".into()),
            ApiError::Decode {
                detail: "NotSupport".into(),
                request_id: None,
            },
        ] {
            assert!(!is_not_applicable(&other), "{other:?}");
        }
    }

    #[test]
    fn instances_decoded_leniently() {
        let body = br#"{"RequestId":"R","TotalCount":"2","PageNumber":1,"PageSize":50,
          "Instances":{"KVStoreInstance":[
            {"InstanceId":"r-a","InstanceName":"orders","RegionId":"cn-shanghai","ZoneId":"cn-shanghai-b",
             "EngineVersion":5,"ArchitectureType":"Cluster","InstanceClass":"redis.logic.sharding.2g.2db.0rodb.4proxy.default",
             "InstanceStatus":"Normal","ShardCount":"2","CreateTime":"2026-01-02T03:04:05Z",
             "Tags":{"Tag":[{"Key":"env","Value":"prod"},{"Key":"team","Value":7}]},"Port":"6379","Unknown":[1]},
            {"InstanceId":"r-b","InstanceStatus":"Creating","CreateTime":"soon","Tags":{}}
          ]}}"#;
        let page = decode_instances(body, "cn-hangzhou").unwrap();
        assert_eq!(page.total_count, Some(2));
        let [a, b] = &page.instances[..] else {
            panic!()
        };
        assert_eq!(&*a.region_id, "cn-shanghai");
        assert_eq!(&*a.engine_version, "5");
        assert_eq!(&*a.architecture, "cluster");
        assert_eq!(a.shard_count, Some(2));
        assert_eq!(
            a.tags,
            vec![("env".into(), "prod".into()), ("team".into(), "7".into())]
        );
        assert_eq!(a.created.map(|t| t.timestamp()), Some(1_767_323_045));
        assert!(a.has_tags(&[("env".into(), "prod".into())]));
        assert!(!a.has_tags(&[("env".into(), "dev".into())]));
        // Fields left out: the queried region, empty labels, no created time.
        assert_eq!(&*b.region_id, "cn-hangzhou");
        assert!(b.is_creating());
        assert_eq!((b.name.as_str(), b.created), ("", None));
        // A single object instead of a list, and an empty answer.
        let one = decode_instances(
            br#"{"Instances":{"KVStoreInstance":{"InstanceId":"r-c"}}}"#,
            "x",
        )
        .unwrap();
        assert_eq!(one.instances.len(), 1);
        assert!(decode_instances(br#"{"TotalCount":0,"Instances":{}}"#, "x")
            .unwrap()
            .instances
            .is_empty());
        // Label values are bounded.
        let long = format!(
            r#"{{"Instances":{{"KVStoreInstance":[{{"InstanceId":"r-d","InstanceName":"{}"}}]}}}}"#,
            "é".repeat(300)
        );
        assert!(
            decode_instances(long.as_bytes(), "x").unwrap().instances[0]
                .name
                .len()
                <= 256
        );
    }

    #[test]
    fn an_instance_without_a_usable_id_fails_the_page() {
        for (body, expected) in [
            (
                &br#"{"Instances":{"KVStoreInstance":[{"InstanceName":"x"}]}}"#[..],
                "InstanceId is missing",
            ),
            (
                br#"{"Instances":{"KVStoreInstance":[{"InstanceId":"r-a b"}]}}"#,
                "not an instance ID",
            ),
            (br#"{"Instances":{"KVStoreInstance":"x"}}"#, "not a list"),
            (b"<html>", "not JSON"),
        ] {
            let err = decode_instances(body, "cn-hangzhou").unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn regions_and_their_endpoints() {
        let body = br#"{"RequestId":"R","RegionIds":{"KVStoreRegion":[
            {"RegionId":"cn-hangzhou","RegionEndpoint":"r-kvstore.aliyuncs.com","LocalName":"x","ZoneIds":"cn-hangzhou-b"},
            {"RegionId":"eu-central-1","RegionEndpoint":"r-kvstore.eu-central-1.aliyuncs.com"},
            {"RegionId":"ap-south-1","RegionEndpoint":"evil.example.com"},
            {"RegionId":"ap-south-1"},
            {"RegionId":"../etc","RegionEndpoint":"r-kvstore.aliyuncs.com"},
            {"RegionId":"me-east-1","RegionEndpoint":"r-kvstore.aliyuncs.com/../x"}
        ]}}"#;
        let regions = decode_regions(body).unwrap();
        let got: Vec<(&str, Option<&str>)> = regions
            .iter()
            .map(|r| (r.region_id.as_str(), r.endpoint_host.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("cn-hangzhou", Some("r-kvstore.aliyuncs.com")),
                ("eu-central-1", Some("r-kvstore.eu-central-1.aliyuncs.com")),
                ("ap-south-1", None),
                ("me-east-1", None),
            ]
        );
        assert!(decode_regions(br#"{"RegionIds":{"KVStoreRegion":[]}}"#).is_err());
    }
}
