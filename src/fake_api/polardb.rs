//! PolarDB's calls (API 2017-08-01): `DescribeBackups` (time window,
//! pagination, faults per cluster), `DescribeBackupPolicy` and
//! `DescribeDBClusters` (pagination and filters), in PolarDB's own shapes:
//! `DBClusterId`, `Items.Backup[]` with every field a string (the size in
//! `BackupSetSize`, `IsAvail` `"1"`/`"0"`), the backup listing's envelope
//! counts strings too. Unknown clusters are `InvalidDBClusterId.NotFound`.

use serde_json::{json, Value};

use super::kvstore::{next_backup_time, window_and_page};
use super::scenario::{time, FakeBackup, FakeInstance, FakeProduct};
use super::{
    backups_in_window, list_json, list_page, listed, ok_json, page_of, play_fault, policy_lookup,
    product_fail, tag_params, FakeKey, Params, Shared,
};
use crate::http::Response;

const PRODUCT: FakeProduct = FakeProduct::PolarDb;

/// The page sizes PolarDB's DescribeBackups and DescribeDBClusters accept.
const PAGE_SIZES: [usize; 3] = [30, 50, 100];

fn missing_cluster_id(request_id: &str) -> Response {
    product_fail(
        PRODUCT,
        400,
        "MissingDBClusterId",
        "DBClusterId is mandatory for this action.",
        request_id,
    )
}

pub(super) async fn describe_backups(
    shared: &Shared,
    key: &FakeKey,
    params: &Params,
    request_id: &str,
) -> Response {
    let Some(cluster_id) = params.get("DBClusterId").filter(|s| !s.is_empty()) else {
        return missing_cluster_id(request_id);
    };
    let (start, end, page_size, page_number) =
        match window_and_page(params, &PAGE_SIZES, request_id) {
            Ok(found) => found,
            Err(answer) => return *answer,
        };
    let status = params.get("BackupStatus").filter(|s| !s.is_empty());
    let (backups, quirky) = match backups_in_window(
        shared,
        key,
        PRODUCT,
        cluster_id,
        (start, end),
        status,
        request_id,
    )
    .await
    {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let items: Vec<Value> = page_of(&backups, page_number, page_size)
        .iter()
        .map(|(n, b)| render_backup(cluster_id, b, backup_id(cluster_id, *n), quirky))
        .collect();
    let body = json!({
        "RequestId": request_id,
        "PageNumber": page_number.to_string(),
        "PageRecordCount": items.len().to_string(),
        "TotalRecordCount": backups.len().to_string(),
        "Items": { "Backup": items },
    });
    list_json(shared, body, "TotalRecordCount", request_id)
}

/// A stable ID for the `n`th backup of a cluster.
fn backup_id(cluster_id: &str, n: usize) -> u64 {
    let h = cluster_id
        .bytes()
        .fold(13u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    100_000_000 + (h % 1000) * 100_000 + n as u64
}

/// One backup as PolarDB's DescribeBackups returns it: every field text.
pub(super) fn render_backup(
    cluster_id: &str,
    backup: &FakeBackup,
    backup_id: u64,
    quirky: bool,
) -> Value {
    let success = backup.status.eq_ignore_ascii_case("Success");
    let mut item = json!({
        "BackupId": backup_id.to_string(),
        "DBClusterId": cluster_id,
        "BackupStatus": backup.status,
        "BackupStartTime": time(backup.start),
        "BackupType": backup.backup_type,
        "BackupMode": backup.backup_mode,
        "BackupMethod": backup.backup_method,
        "BackupsLevel": "Level-1",
        "IsAvail": if success { "1" } else { "0" },
        "ExpectExpireTime": time(backup.start + chrono::Duration::days(7)),
        "ExpectExpireType": "EXPIRED",
    });
    let Value::Object(map) = &mut item else {
        unreachable!("built as an object")
    };
    if let Some(end) = backup.end {
        map.insert("BackupEndTime".into(), json!(time(end)));
        map.insert("ConsistentTime".into(), json!(end.timestamp().to_string()));
    }
    if let Some(size) = backup.size {
        map.insert("BackupSetSize".into(), json!(size.to_string()));
    }
    if quirky {
        // The documented strings as numbers, a status in capitals.
        map.insert("IsAvail".into(), json!(u8::from(success)));
        if let Some(size) = backup.size {
            map.insert("BackupSetSize".into(), json!(size));
        }
        map.insert(
            "BackupStatus".into(),
            json!(backup.status.to_ascii_uppercase()),
        );
        map.insert("SomethingNew".into(), json!({"a": [1]}));
    }
    item
}

pub(super) async fn describe_backup_policy(
    shared: &Shared,
    key: &FakeKey,
    params: &Params,
    request_id: &str,
) -> Response {
    let Some(cluster_id) = params.get("DBClusterId").filter(|s| !s.is_empty()) else {
        return missing_cluster_id(request_id);
    };
    let (fault, policy) = match policy_lookup(shared, key, PRODUCT, cluster_id, request_id) {
        Ok(found) => found,
        Err(answer) => return *answer,
    };
    if let Some(answer) = play_fault(PRODUCT, fault, "DescribeBackupPolicy", request_id).await {
        return answer;
    }
    // PolarDB has no `BackupRetentionPeriod` nor `EnableBackupLog`: the
    // retention of level-1 backups is `DataLevel1BackupRetentionPeriod`.
    let body = json!({
        "RequestId": request_id,
        "PreferredBackupPeriod": policy.period,
        "PreferredBackupTime": policy.time,
        "PreferredNextBackupTime": next_backup_time(&policy, shared.clock.now()),
        "DataLevel1BackupRetentionPeriod": policy.retention_days.to_string(),
        "DataLevel1BackupPeriod": policy.period,
        "DataLevel1BackupTime": policy.time,
        "DataLevel1BackupFrequency": "Normal",
        "DataLevel2BackupRetentionPeriod": "0",
        "DataLevel2BackupPeriod": "",
        "BackupFrequency": "Normal",
        "BackupRetentionPolicyOnClusterDeletion": "NONE",
        "BackupPolicyLevel": "Normal",
    });
    ok_json(&body, request_id)
}

/// DescribeDBClusters' filters, checked.
struct ClusterFilter {
    region_id: String,
    ids: Option<Vec<String>>,
    status: Option<String>,
    db_type: Option<String>,
    tags: Vec<(String, Option<String>)>,
    page_size: usize,
    page_number: usize,
}

fn cluster_filter(params: &Params) -> Result<ClusterFilter, (&'static str, String)> {
    let invalid = |name: String| {
        (
            "InvalidParameter",
            format!("The specified parameter {name} is not valid."),
        )
    };
    let given = |name: &str| params.get(name).filter(|v| !v.is_empty());
    let Some(region_id) = given("RegionId") else {
        return Err((
            "MissingRegionId",
            "RegionId is mandatory for this action.".into(),
        ));
    };
    let tags = tag_params(params).map_err(invalid)?;
    let (page_size, page_number) = list_page(params, &PAGE_SIZES, 30).map_err(invalid)?;
    Ok(ClusterFilter {
        region_id: region_id.to_string(),
        ids: given("DBClusterIds").map(|list| {
            list.split(',')
                .map(|id| id.trim().to_string())
                .filter(|id| !id.is_empty())
                .collect()
        }),
        status: given("DBClusterStatus").map(str::to_string),
        db_type: given("DBType").map(str::to_string),
        tags,
        page_size,
        page_number,
    })
}

impl ClusterFilter {
    fn matches(&self, id: &str, instance: &FakeInstance) -> bool {
        let info = &instance.info;
        let same = |want: &Option<String>, have: &str| {
            want.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(have))
        };
        self.region_id == info.region_id
            && self
                .ids
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|i| i == id))
            && same(&self.status, &info.status)
            && same(&self.db_type, &info.instance_type)
            && self.tags.iter().all(|(k, v)| info.has_tag(k, v.as_deref()))
    }
}

pub(super) fn describe_db_clusters(
    shared: &Shared,
    key: &FakeKey,
    params: &Params,
    request_id: &str,
) -> Response {
    let filter = match cluster_filter(params) {
        Ok(filter) => filter,
        Err((code, message)) => return product_fail(PRODUCT, 400, code, &message, request_id),
    };
    let all = listed(
        shared,
        key,
        PRODUCT,
        |id, i| filter.matches(id, i),
        render_cluster,
    );
    let items = page_of(&all, filter.page_number, filter.page_size);
    // Numbers here, unlike DescribeBackups' envelope.
    let body = json!({
        "RequestId": request_id,
        "PageNumber": filter.page_number,
        "PageRecordCount": items.len(),
        "TotalRecordCount": all.len(),
        "Items": { "DBCluster": items },
    });
    list_json(shared, body, "TotalRecordCount", request_id)
}

/// One cluster as DescribeDBClusters returns it, with its two nodes.
pub(super) fn render_cluster(id: &str, instance: &FakeInstance) -> Value {
    let info = &instance.info;
    let tags: Vec<Value> = info
        .tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    let suffix = id.trim_start_matches("pc-");
    let nodes: Vec<Value> = [("Writer", 0), ("Reader", 1)]
        .iter()
        .map(|(role, n)| {
            json!({
                "DBNodeId": format!("pi-{suffix}{n}"),
                "DBNodeRole": role,
                "DBNodeClass": info.instance_class,
                "ZoneId": info.zone_id,
                "RegionId": info.region_id,
                "HotReplicaMode": "OFF",
                "ImciSwitch": "OFF",
                "Serverless": "",
            })
        })
        .collect();
    json!({
        "DBClusterId": id,
        "DBClusterDescription": info.name,
        "RegionId": info.region_id,
        "ZoneId": info.zone_id,
        "Engine": "POLARDB",
        "DBType": info.instance_type,
        "DBVersion": info.engine_version,
        "DBClusterStatus": info.status,
        "DBNodeClass": info.instance_class,
        "DBNodeNumber": nodes.len(),
        "DBNodes": { "DBNode": nodes },
        "Category": info.architecture,
        "CreateTime": time(info.create_time),
        "ExpireTime": "",
        "Expired": "false",
        "PayType": "Postpaid",
        "LockMode": "Unlock",
        "DeletionLock": 0,
        "DBClusterNetworkType": "VPC",
        "VpcId": "vpc-fakepolardb000001",
        "VswitchId": "vsw-fakepolardb000001",
        "ResourceGroupId": "rg-acfmfakegroup",
        "StorageType": "essdpl1",
        "StoragePayType": "Postpaid",
        "StorageUsed": 3_009_413_120u64,
        "StorageSpace": 0,
        "Tags": { "Tag": tags },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use std::time::Duration;

    #[test]
    fn backups_have_the_polardb_shapes() {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 2, 0, 0).unwrap();
        let ok = FakeBackup::success("pc-1", start, Duration::from_secs(60), 1024);
        let json = render_backup("pc-1", &ok, 7, false);
        for field in ["BackupId", "BackupSetSize", "IsAvail", "ConsistentTime"] {
            assert!(json[field].is_string(), "{field}: {}", json[field]);
        }
        assert_eq!(json["BackupSetSize"], "1024");
        assert_eq!(json["IsAvail"], "1");
        assert!(json.get("BackupSize").is_none());
        let failed = FakeBackup::failed("pc-1", start, Duration::from_secs(60));
        let json = render_backup("pc-1", &failed, 8, true);
        assert_eq!(json["IsAvail"], 0);
        assert!(json.get("BackupSetSize").is_none());
    }
}
