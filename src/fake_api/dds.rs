//! ApsaraDB for MongoDB's calls (`dds`, API 2015-12-01): `DescribeBackups`
//! (optional time window, pagination, and one call per shard node of a
//! sharded cluster: `NodeId`), `DescribeBackupPolicy` and
//! `DescribeDBInstances` (replica sets by default, `DBInstanceType=sharding`
//! for sharded clusters, whose shards are listed in `ShardList`), in
//! MongoDB's own shapes: `Backups.Backup[]`, `BackupId` and `BackupJobId`
//! strings, `BackupSize` a number, `IsAvail` a boolean, numeric envelope.
//! Unknown instances are `InvalidDBInstanceId.NotFound`.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::kvstore::{next_backup_time, page, window_and_page};
use super::scenario::{fake_download_url, time, FakeBackup, FakeInstance, FakeProduct};
use super::{
    list_json, list_page, listed, listing_lookup, ok_json, page_of, play_fault, policy_lookup,
    product_fail, tag_params, FakeKey, Params, Shared,
};
use crate::http::Response;

const PRODUCT: FakeProduct = FakeProduct::MongoDb;

/// The page sizes MongoDB's DescribeBackups accepts.
const BACKUP_PAGE_SIZES: [usize; 3] = [30, 50, 100];

/// DescribeDBInstances' page sizes.
const INSTANCES_PAGE_SIZES: [usize; 3] = [30, 50, 100];

fn missing_instance_id(request_id: &str) -> Response {
    product_fail(
        PRODUCT,
        400,
        "MissingDBInstanceId",
        "DBInstanceId is mandatory for this action.",
        request_id,
    )
}

/// The window, when one is given: both ends then, as for R-kvstore.
type Window = Option<(DateTime<Utc>, DateTime<Utc>)>;

pub(super) async fn describe_backups(
    shared: &Shared,
    key: &FakeKey,
    params: &Params,
    request_id: &str,
) -> Response {
    let Some(instance_id) = params.get("DBInstanceId").filter(|s| !s.is_empty()) else {
        return missing_instance_id(request_id);
    };
    // The time range is optional here; when one end is given, both must be.
    let windowed = params.get("StartTime").is_some() || params.get("EndTime").is_some();
    let checked: Result<(Window, usize, usize), Box<Response>> = if windowed {
        window_and_page(params, &BACKUP_PAGE_SIZES, request_id)
            .map(|(start, end, size, number)| (Some((start, end)), size, number))
    } else {
        page(params, &BACKUP_PAGE_SIZES, request_id).map(|(size, number)| (None, size, number))
    };
    let (window, page_size, page_number) = match checked {
        Ok(found) => found,
        Err(answer) => return *answer,
    };
    let node = params.get("NodeId").filter(|s| !s.is_empty());
    let looked_up = listing_lookup(shared, key, PRODUCT, instance_id, None, request_id, |i| {
        let sharded = !i.shard_nodes.is_empty();
        let known_node = node.is_none_or(|n| i.shard_nodes.iter().any(|s| s == n));
        let mut backups: Vec<(usize, FakeBackup)> = i
            .backups
            .iter()
            .cloned()
            .enumerate()
            .filter(|(_, b)| window.is_none_or(|(start, end)| b.start >= start && b.start <= end))
            .filter(|(_, b)| !sharded || node.is_some_and(|n| b.node_id.as_deref() == Some(n)))
            .collect();
        // Newest first, like the real API; the client must not rely on it.
        backups.sort_by_key(|(_, b)| std::cmp::Reverse(b.start));
        (sharded, known_node, backups, i.quirky_types)
    });
    let (fault, (sharded, known_node, backups, quirky)) = match looked_up {
        Ok(found) => found,
        Err(answer) => return *answer,
    };
    if let Some(answer) = play_fault(PRODUCT, fault, "DescribeBackups", request_id).await {
        return answer;
    }
    match (sharded, node) {
        (true, None) => {
            return product_fail(
                PRODUCT,
                400,
                "InvalidParameter",
                "NodeId is mandatory for a sharded cluster instance.",
                request_id,
            )
        }
        (true, Some(_)) if !known_node => {
            return product_fail(
                PRODUCT,
                404,
                "InvalidNodeId.NotFound",
                "The specified node is not found.",
                request_id,
            )
        }
        (false, Some(_)) => {
            return product_fail(
                PRODUCT,
                400,
                "InvalidParameter",
                "NodeId is valid only for a sharded cluster instance.",
                request_id,
            )
        }
        _ => {}
    }
    let items: Vec<Value> = page_of(&backups, page_number, page_size)
        .iter()
        .map(|(n, b)| render_backup(b, backup_id(instance_id, *n), quirky))
        .collect();
    let total = if quirky {
        json!(backups.len().to_string())
    } else {
        json!(backups.len())
    };
    let body = json!({
        "RequestId": request_id,
        "PageNumber": page_number,
        "PageSize": page_size,
        "TotalCount": total,
        "Backups": { "Backup": items },
    });
    list_json(shared, body, "TotalCount", request_id)
}

/// A stable ID for the `n`th backup of an instance.
fn backup_id(instance_id: &str, n: usize) -> u64 {
    let h = instance_id
        .bytes()
        .fold(11u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    200_000_000 + (h % 1000) * 100_000 + n as u64
}

/// One backup as MongoDB's DescribeBackups returns it. No node field: the
/// node is the one the request named.
pub(super) fn render_backup(backup: &FakeBackup, backup_id: u64, quirky: bool) -> Value {
    let success = backup.status.eq_ignore_ascii_case("Success");
    let mut item = json!({
        "BackupId": backup_id.to_string(),
        "BackupJobId": (backup_id + 1_000_000).to_string(),
        "BackupName": format!("hins{backup_id}_data_{}", backup.start.format("%Y%m%d%H%M%S")),
        "BackupStatus": backup.status,
        "BackupStartTime": time(backup.start),
        "BackupType": backup.backup_type,
        "BackupMode": backup.backup_mode,
        "BackupMethod": backup.backup_method,
        "BackupDBNames": "",
        "BackupScale": "DBInstance",
        "BackupDownloadURL": fake_download_url(backup_id),
        "BackupIntranetDownloadURL": fake_download_url(backup_id).replace(".aliyuncs.com", "-internal.aliyuncs.com"),
        "IsAvail": success,
        "EngineVersion": "6.0",
        "BackupExpireTime": time(backup.start + chrono::Duration::days(7)),
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
    if quirky {
        // IsAvail as a number, the size as text, a status in capitals.
        map.insert("IsAvail".into(), json!(u8::from(success)));
        if let Some(size) = backup.size {
            map.insert("BackupSize".into(), json!(size.to_string()));
        }
        map.insert(
            "BackupStatus".into(),
            json!(backup.status.to_ascii_uppercase()),
        );
        map.insert("SomethingNew".into(), json!([1, "two"]));
    }
    item
}

pub(super) async fn describe_backup_policy(
    shared: &Shared,
    key: &FakeKey,
    params: &Params,
    request_id: &str,
) -> Response {
    let Some(instance_id) = params.get("DBInstanceId").filter(|s| !s.is_empty()) else {
        return missing_instance_id(request_id);
    };
    let (fault, policy) = match policy_lookup(shared, key, PRODUCT, instance_id, request_id) {
        Ok(found) => found,
        Err(answer) => return *answer,
    };
    if let Some(answer) = play_fault(PRODUCT, fault, "DescribeBackupPolicy", request_id).await {
        return answer;
    }
    let body = json!({
        "RequestId": request_id,
        "PreferredBackupPeriod": policy.period,
        "PreferredBackupTime": policy.time,
        "PreferredNextBackupTime": next_backup_time(&policy, shared.clock.now()),
        // A string and a number, as MongoDB sends them.
        "BackupRetentionPeriod": policy.retention_days.to_string(),
        "EnableBackupLog": u8::from(policy.log_backup),
        "LogBackupRetentionPeriod": policy.retention_days,
        "BackupInterval": -1,
        "SnapshotBackupType": "Standard",
        "BackupRetentionPolicyOnClusterDeletion": 0,
        "HighFrequencyBackupRetention": "1",
        "EnableCrossLogBackup": 0,
        "PreserveOneEachHour": false,
    });
    ok_json(&body, request_id)
}

/// DescribeDBInstances' filters, checked.
struct InstanceFilter {
    region_id: Option<String>,
    ids: Option<Vec<String>>,
    /// `replicate` unless asked otherwise, as the real API does.
    instance_type: String,
    status: Option<String>,
    tags: Vec<(String, Option<String>)>,
    page_size: usize,
    page_number: usize,
}

fn instance_filter(params: &Params) -> Result<InstanceFilter, String> {
    let given = |name: &str| params.get(name).filter(|v| !v.is_empty());
    let tags = tag_params(params)?;
    let (page_size, page_number) = list_page(params, &INSTANCES_PAGE_SIZES, 30)?;
    let instance_type = given("DBInstanceType").unwrap_or("replicate").to_string();
    if !["replicate", "sharding", "serverless"].contains(&instance_type.as_str()) {
        return Err("DBInstanceType".into());
    }
    Ok(InstanceFilter {
        region_id: given("RegionId").map(str::to_string),
        ids: given("DBInstanceId").map(|list| {
            list.split(',')
                .map(|id| id.trim().to_string())
                .filter(|id| !id.is_empty())
                .collect()
        }),
        instance_type,
        status: given("DBInstanceStatus").map(str::to_string),
        tags,
        page_size,
        page_number,
    })
}

impl InstanceFilter {
    fn matches(&self, id: &str, instance: &FakeInstance) -> bool {
        let info = &instance.info;
        self.region_id
            .as_deref()
            .is_none_or(|r| r == info.region_id)
            && self
                .ids
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|i| i == id))
            && self.instance_type.eq_ignore_ascii_case(&info.architecture)
            && self
                .status
                .as_deref()
                .is_none_or(|s| s.eq_ignore_ascii_case(&info.status))
            && self.tags.iter().all(|(k, v)| info.has_tag(k, v.as_deref()))
    }
}

pub(super) fn describe_db_instances(
    shared: &Shared,
    key: &FakeKey,
    params: &Params,
    request_id: &str,
) -> Response {
    let filter = match instance_filter(params) {
        Ok(filter) => filter,
        Err(name) => {
            let message = format!("The specified parameter {name} is not valid.");
            return product_fail(PRODUCT, 400, "InvalidParameter", &message, request_id);
        }
    };
    let all = listed(
        shared,
        key,
        PRODUCT,
        |id, i| filter.matches(id, i),
        render_instance,
    );
    let items = page_of(&all, filter.page_number, filter.page_size);
    let body = json!({
        "RequestId": request_id,
        "PageNumber": filter.page_number,
        "PageSize": filter.page_size,
        "TotalCount": all.len(),
        "DBInstances": { "DBInstance": items },
    });
    list_json(shared, body, "TotalCount", request_id)
}

/// One instance as DescribeDBInstances returns it; a sharded cluster lists
/// its shard nodes (whose `NodeId`s DescribeBackups wants) and mongos.
pub(super) fn render_instance(id: &str, instance: &FakeInstance) -> Value {
    let info = &instance.info;
    let tags: Vec<Value> = info
        .tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    let mut item = json!({
        "DBInstanceId": id,
        "DBInstanceDescription": info.name,
        "RegionId": info.region_id,
        "ZoneId": info.zone_id,
        "Engine": "MongoDB",
        "EngineVersion": info.engine_version,
        "DBInstanceClass": info.instance_class,
        "DBInstanceStatus": info.status,
        "DBInstanceType": info.architecture,
        "DBInstanceStorage": 20,
        "CreationTime": time(info.create_time),
        "ExpireTime": "",
        "ChargeType": "PostPaid",
        "NetworkType": "VPC",
        "LockMode": "Unlock",
        "StorageType": "cloud_essd1",
        "ReplicationFactor": "3",
        "KindCode": "18",
        "ResourceGroupId": "rg-acfmfakegroup",
        "VpcAuthMode": "Open",
        "BackupRetentionPolicy": 0,
        "Tags": { "Tag": tags },
    });
    if !instance.shard_nodes.is_empty() {
        let shards: Vec<Value> = instance
            .shard_nodes
            .iter()
            .map(|node| {
                json!({
                    "NodeId": node,
                    "NodeClass": "dds.shard.mid",
                    "NodeStorage": 20,
                    "NodeDescription": "",
                    "ReadonlyReplicas": 0,
                })
            })
            .collect();
        let mongos = json!([{
            "NodeId": format!("s-{}", id.trim_start_matches("dds-")),
            "NodeClass": "dds.mongos.mid",
            "NodeDescription": "",
        }]);
        if let Value::Object(map) = &mut item {
            map.insert("ShardList".into(), json!({ "ShardAttribute": shards }));
            map.insert("MongosList".into(), json!({ "MongosAttribute": mongos }));
        }
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::time::Duration;

    #[test]
    fn backups_have_the_mongodb_shapes() {
        let start: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 1, 1, 2, 0, 0).unwrap();
        let ok = FakeBackup::success("d-1", start, Duration::from_secs(60), 1024);
        let json = render_backup(&ok, 7, false);
        assert_eq!(json["BackupId"], "7");
        assert_eq!(json["BackupJobId"], "1000007");
        assert_eq!(json["BackupSize"], 1024);
        assert_eq!(json["IsAvail"], true);
        assert!(json.get("NodeId").is_none());
        let failed = FakeBackup::failed("d-1", start, Duration::from_secs(60));
        let json = render_backup(&failed, 8, true);
        assert_eq!(json["IsAvail"], 0);
        assert!(json.get("BackupSize").is_none());
    }
}
