//! ApsaraDB RDS's calls (API 2014-08-15): `DescribeBackups` (time window,
//! pagination, faults per instance), `DescribeBackupPolicy` and
//! `DescribeDBInstances` (pagination and filters), in RDS's own shapes:
//! `Items.Backup[]`, the envelope's counts as strings (`PageNumber`,
//! `PageRecordCount`, `TotalRecordCount`), `BackupId` a string,
//! `BackupSize` a number, `IsAvail` 0/1 and the node in `HostInstanceID`.
//! Unknown instances are `InvalidDBInstanceId.NotFound`.

use serde_json::{json, Value};

use super::kvstore::{next_backup_time, window_and_page};
use super::scenario::{fake_download_url, time, FakeBackup, FakeInstance, FakeProduct};
use super::{
    backups_in_window, list_json, listed, ok_json, page_of, play_fault, policy_lookup,
    product_fail, FakeKey, Params, Shared,
};
use crate::http::Response;

const PRODUCT: FakeProduct = FakeProduct::Rds;

/// The page sizes RDS's DescribeBackups accepts.
const BACKUP_PAGE_SIZES: [usize; 3] = [30, 50, 100];

/// DescribeDBInstances' page sizes: 1 to 100, default 30.
const INSTANCES_DEFAULT_PAGE_SIZE: usize = 30;
const INSTANCES_MAX_PAGE_SIZE: usize = 100;

fn missing_instance_id(request_id: &str) -> Response {
    product_fail(
        PRODUCT,
        400,
        "MissingDBInstanceId",
        "DBInstanceId is mandatory for this action.",
        request_id,
    )
}

pub(super) async fn describe_backups(
    shared: &Shared,
    key: &FakeKey,
    params: &Params,
    request_id: &str,
) -> Response {
    let Some(instance_id) = params.get("DBInstanceId").filter(|s| !s.is_empty()) else {
        return missing_instance_id(request_id);
    };
    let (start, end, page_size, page_number) =
        match window_and_page(params, &BACKUP_PAGE_SIZES, request_id) {
            Ok(found) => found,
            Err(answer) => return *answer,
        };
    let status = params.get("BackupStatus").filter(|s| !s.is_empty());
    let (backups, quirky) = match backups_in_window(
        shared,
        key,
        PRODUCT,
        instance_id,
        (start, end),
        status,
        request_id,
    )
    .await
    {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let page = page_of(&backups, page_number, page_size);
    let items: Vec<Value> = page
        .iter()
        .map(|(n, b)| render_backup(instance_id, b, backup_id(instance_id, *n), quirky))
        .collect();
    // Strings, as RDS sends them (numbers for an instance with quirks).
    let count = |n: usize| {
        if quirky {
            json!(n)
        } else {
            json!(n.to_string())
        }
    };
    let body = json!({
        "RequestId": request_id,
        "PageNumber": count(page_number),
        "PageRecordCount": count(items.len()),
        "TotalRecordCount": count(backups.len()),
        "TotalEcsSnapshotSize": 0,
        "Items": { "Backup": items },
    });
    list_json(shared, body, "TotalRecordCount", request_id)
}

/// A stable ID for the `n`th backup of an instance.
fn backup_id(instance_id: &str, n: usize) -> u64 {
    let h = instance_id
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    300_000_000 + (h % 1000) * 100_000 + n as u64
}

/// One backup as RDS's DescribeBackups returns it.
pub(super) fn render_backup(
    instance_id: &str,
    backup: &FakeBackup,
    backup_id: u64,
    quirky: bool,
) -> Value {
    let success = backup.status.eq_ignore_ascii_case("Success");
    let mut item = json!({
        "BackupId": backup_id.to_string(),
        "DBInstanceId": instance_id,
        "BackupStatus": backup.status,
        "BackupStartTime": time(backup.start),
        "BackupType": backup.backup_type,
        "BackupMode": backup.backup_mode,
        "BackupMethod": backup.backup_method,
        "BackupInitiator": if backup.backup_mode.eq_ignore_ascii_case("Manual") { "User" } else { "System" },
        "BackupDownloadURL": fake_download_url(backup_id),
        "BackupIntranetDownloadURL": fake_download_url(backup_id).replace(".aliyuncs.com", "-internal.aliyuncs.com"),
        "BackupDownloadLinkByDB": { "BackupDownloadLinkByDB": [] },
        "IsAvail": u8::from(success),
        "Engine": "MySQL",
        "EngineVersion": "8.0",
        "StoreStatus": "Disabled",
        "StorageClass": "0",
        "Encryption": "{}",
        "CopyOnlyBackup": "0",
        "MetaStatus": "OK",
        "Checksum": "",
        "ExpectExpireTime": time(backup.start + chrono::Duration::days(7)),
    });
    let Value::Object(map) = &mut item else {
        unreachable!("built as an object")
    };
    if let Some(end) = backup.end {
        map.insert("BackupEndTime".into(), json!(time(end)));
        map.insert("ConsistentTime".into(), json!(end.timestamp()));
    }
    if let Some(size) = backup.size {
        map.insert("BackupSize".into(), json!(size));
    }
    if let Some(node) = &backup.node_id {
        map.insert("HostInstanceID".into(), json!(node));
    }
    if quirky {
        // Numbers as strings, a status in capitals, an unknown field.
        if let Some(size) = backup.size {
            map.insert("BackupSize".into(), json!(size.to_string()));
        }
        map.insert("IsAvail".into(), json!(u8::from(success).to_string()));
        map.insert(
            "BackupStatus".into(),
            json!(backup.status.to_ascii_uppercase()),
        );
        map.insert("SomethingNew".into(), json!({"Nested": [1, "two"]}));
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
        // A number here (R-kvstore and MongoDB send a string).
        "BackupRetentionPeriod": policy.retention_days,
        // Text, `True` or `False`.
        "EnableBackupLog": if policy.log_backup { "True" } else { "False" },
        "BackupLog": if policy.log_backup { "Enable" } else { "Disabled" },
        "LogBackupRetentionPeriod": policy.retention_days,
        "LocalLogRetentionHours": 18,
        "LocalLogRetentionSpace": "30",
        "HighSpaceUsageProtection": "Enable",
        "BackupMethod": "Physical",
        "Category": "Standard",
        "BackupInterval": "-1",
        "CompressType": "4",
        "ReleasedKeepPolicy": "Lastest",
        "SupportReleasedKeep": 1,
        "SupportVolumeShadowCopy": 0,
    });
    ok_json(&body, request_id)
}

/// DescribeDBInstances' filters, checked.
struct InstanceFilter {
    region_id: String,
    ids: Option<Vec<String>>,
    status: Option<String>,
    engine: Option<String>,
    /// `Tags`: a JSON object of key → value, every pair required.
    tags: Vec<(String, String)>,
    page_size: usize,
    page_number: usize,
}

fn instance_filter(params: &Params) -> Result<InstanceFilter, (&'static str, String)> {
    let invalid = |name: &str| {
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
    let page_size = match params.get("PageSize").map(str::parse::<usize>) {
        None => INSTANCES_DEFAULT_PAGE_SIZE,
        Some(Ok(n)) if (1..=INSTANCES_MAX_PAGE_SIZE).contains(&n) => n,
        Some(_) => return Err(invalid("PageSize")),
    };
    let page_number = match params.get("PageNumber").map(str::parse::<usize>) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => return Err(invalid("PageNumber")),
    };
    let tags = match given("Tags") {
        None => Vec::new(),
        Some(raw) => match serde_json::from_str::<serde_json::Map<String, Value>>(raw) {
            Ok(map) => map
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(v) => Ok((k, v)),
                    _ => Err(invalid("Tags")),
                })
                .collect::<Result<_, _>>()?,
            Err(_) => return Err(invalid("Tags")),
        },
    };
    Ok(InstanceFilter {
        region_id: region_id.to_string(),
        ids: given("DBInstanceId").map(|list| {
            list.split(',')
                .map(|id| id.trim().to_string())
                .filter(|id| !id.is_empty())
                .collect()
        }),
        status: given("DBInstanceStatus").map(str::to_string),
        engine: given("Engine").map(str::to_string),
        tags,
        page_size,
        page_number,
    })
}

impl InstanceFilter {
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
            && same(&self.engine, &info.instance_type)
            && self.tags.iter().all(|(k, v)| info.has_tag(k, Some(v)))
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
        Err((code, message)) => return product_fail(PRODUCT, 400, code, &message, request_id),
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
        "PageRecordCount": items.len(),
        "TotalRecordCount": all.len(),
        "Items": { "DBInstance": items },
    });
    list_json(shared, body, "TotalRecordCount", request_id)
}

/// One instance as DescribeDBInstances returns it: the fields an exporter
/// reads plus some of the many it does not. (No tags: RDS lists them with
/// another call.)
pub(super) fn render_instance(id: &str, instance: &FakeInstance) -> Value {
    let info = &instance.info;
    json!({
        "DBInstanceId": id,
        "DBInstanceDescription": info.name,
        "RegionId": info.region_id,
        "ZoneId": info.zone_id,
        "Engine": info.instance_type,
        "EngineVersion": info.engine_version,
        "DBInstanceClass": info.instance_class,
        "DBInstanceStatus": info.status,
        "DBInstanceType": info.architecture,
        "Category": "HighAvailability",
        "CreateTime": time(info.create_time),
        "ExpireTime": "",
        "PayType": "Postpaid",
        "LockMode": "Unlock",
        "LockReason": "",
        "InstanceNetworkType": "VPC",
        "DBInstanceNetType": "Intranet",
        "ConnectionMode": "Standard",
        "VpcId": "vpc-fakerds0000000001",
        "VSwitchId": "vsw-fakerds0000000001",
        "ResourceGroupId": "rg-acfmfakegroup",
        "DBInstanceStorageType": "cloud_essd",
        "MutriORsignle": false,
        "DeletionProtection": false,
        "ReadOnlyDBInstanceIds": { "ReadOnlyDBInstanceId": [] },
        "TipsLevel": 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};
    use std::time::Duration;

    #[test]
    fn backups_have_the_rds_shapes() {
        let start: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 1, 1, 2, 0, 0).unwrap();
        let ok = FakeBackup::success("5882781", start, Duration::from_secs(60), 1024);
        let json = render_backup("rm-1", &ok, 7, false);
        assert_eq!(json["BackupId"], "7");
        assert_eq!(json["BackupSize"], 1024);
        assert_eq!(json["IsAvail"], 1);
        assert_eq!(json["HostInstanceID"], "5882781");
        assert_eq!(json["BackupEndTime"], "2026-01-01T02:01:00Z");
        let failed = FakeBackup::failed("5882781", start, Duration::from_secs(60));
        let json = render_backup("rm-1", &failed, 8, true);
        assert_eq!(json["IsAvail"], "0");
        assert_eq!(json["BackupStatus"], "FAILED");
        assert!(json.get("BackupSize").is_none());
    }
}
