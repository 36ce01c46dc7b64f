//! The fake's RDS, MongoDB and PolarDB APIs through real sockets and the
//! exporter's own signed `RpcClient` (V2 and V3): each product's
//! DescribeBackups, policy and discovery answers have that product's
//! shapes; pages, windows and MongoDB's per-node calls; signatures checked;
//! unknown instances get the product's NotFound code; each product sees
//! only its own instances.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use aliyun_backup_exporter::aliyun::{
    ApiError, CallLabels, ClientSettings, RpcClient, SignatureVersion, StaticProvider,
};
use aliyun_backup_exporter::clock;
use aliyun_backup_exporter::fake_api::scenario::product_samples;
use aliyun_backup_exporter::fake_api::{
    FakeApi, FakeBackup, FakeInstance, FakePolicy, FakeProduct, Fault,
};
use chrono::{SubsecRound, Utc};
use serde_json::Value;

use crate::helpers::*;

const BOTH: [SignatureVersion; 2] = [SignatureVersion::V2, SignatureVersion::V3];

/// A client of `product`'s API on the fake, signing with `signature`.
fn client(
    fake: &FakeApi,
    product: FakeProduct,
    signature: SignatureVersion,
    secret: &str,
) -> RpcClient {
    RpcClient::new(
        ClientSettings {
            endpoint: fake.endpoint(),
            labels: CallLabels::default(),
            version: product.version(),
            timeout: Duration::from_secs(5),
            retry: fast_retries(1),
        },
        Arc::new(StaticProvider::new("test", credentials(secret, None))),
        Arc::new(Attempts::default()),
        clock::system(),
    )
    .expect("client builds")
    .with_signature_version(signature)
}

async fn call(
    client: &RpcClient,
    action: &str,
    params: &[(&str, &str)],
) -> Result<Value, ApiError> {
    let params: Vec<(&str, String)> = params.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let decode = |body: &[u8]| serde_json::from_slice::<Value>(body).map_err(|e| e.to_string());
    let deadline = Instant::now() + Duration::from_secs(10);
    client
        .call(action, &params, decode, deadline)
        .await
        .map(|answer| answer.value)
}

/// The API's error code and HTTP status, or a panic if it was no API error.
fn api_error(result: Result<Value, ApiError>) -> (String, u16) {
    match result {
        Err(ApiError::Api { code, status, .. }) => (code, status),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A fake serving the product samples (and one Redis instance).
async fn fake_with_samples() -> FakeApi {
    let fake = fake().await;
    for (id, instance) in product_samples(Utc::now().trunc_subsecs(0)) {
        fake.set_instance(&id, instance);
    }
    let start = Utc::now().trunc_subsecs(0) - chrono::Duration::hours(3);
    fake.set_instance(
        "r-redis-1",
        FakeInstance::with_backups(vec![FakeBackup::success(
            "r-redis-1",
            start,
            Duration::from_secs(60),
            10,
        )]),
    );
    fake
}

/// The last week, in the minutes the APIs take.
fn week() -> (String, String) {
    let now = Utc::now();
    let fmt = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%MZ").to_string();
    (
        fmt(now - chrono::Duration::days(7) - chrono::Duration::hours(1)),
        fmt(now + chrono::Duration::minutes(1)),
    )
}

fn backups<'a>(body: &'a Value, list: &str) -> &'a Vec<Value> {
    body[list]["Backup"]
        .as_array()
        .unwrap_or_else(|| panic!("no {list}.Backup in {body}"))
}

#[tokio::test]
async fn rds_backups_have_rds_shapes_signed_either_way() {
    let fake = fake_with_samples().await;
    let (start, end) = week();
    for signature in BOTH {
        let rds = client(&fake, FakeProduct::Rds, signature, KEY_SECRET);
        let params = [
            ("DBInstanceId", "rm-demo-failed"),
            ("StartTime", &start),
            ("EndTime", &end),
            ("PageSize", "100"),
        ];
        let body = call(&rds, "DescribeBackups", &params)
            .await
            .expect("accepted");
        assert_eq!(body["TotalRecordCount"], "7", "{signature:?}: {body}");
        assert_eq!(body["PageRecordCount"], "7");
        assert_eq!(body["PageNumber"], "1");
        let items = backups(&body, "Items");
        assert_eq!(items.len(), 7);
        for b in items {
            assert!(b["BackupId"].is_string(), "{b}");
            assert_eq!(b["HostInstanceID"], "5882790");
            assert_eq!(b["DBInstanceId"], "rm-demo-failed");
            assert_eq!(b["BackupMethod"], "Snapshot");
            assert!(b["BackupStartTime"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')));
        }
        let failed: Vec<&Value> = items
            .iter()
            .filter(|b| b["BackupStatus"] == "Failed")
            .collect();
        assert_eq!(failed.len(), 1, "{body}");
        assert_eq!(failed[0]["IsAvail"], 0);
        assert!(failed[0].get("BackupSize").is_none());
        let ok = items
            .iter()
            .find(|b| b["BackupStatus"] == "Success")
            .expect("a success");
        assert!(ok["BackupSize"].is_u64() && ok["IsAvail"] == 1, "{ok}");
    }
    let versions: Vec<String> = fake.received().iter().map(|r| r.version.clone()).collect();
    assert_eq!(versions, ["2014-08-15", "2014-08-15"]);
    let kinds: Vec<&str> = fake
        .received()
        .iter()
        .map(|r| r.signature_version)
        .collect();
    assert_eq!(kinds, ["v2", "v3"]);
    assert_eq!(fake.requests_for("rm-demo-failed"), 2);
}

#[tokio::test]
async fn rds_pages_and_windows() {
    let fake = fake().await;
    let now = Utc::now().trunc_subsecs(0);
    let hourly: Vec<FakeBackup> = (0..40)
        .map(|h| {
            FakeBackup::success(
                "5882781",
                now - chrono::Duration::hours(h + 1),
                Duration::from_secs(60),
                5,
            )
        })
        .collect();
    fake.set_instance("rm-many", FakeInstance::rds("cn-hangzhou", hourly));
    let rds = client(&fake, FakeProduct::Rds, SignatureVersion::V3, KEY_SECRET);
    let (start, end) = week();
    let page = |n: &'static str| {
        let (start, end) = (start.clone(), end.clone());
        let rds = &rds;
        async move {
            let params = [
                ("DBInstanceId", "rm-many"),
                ("StartTime", start.as_str()),
                ("EndTime", end.as_str()),
                ("PageSize", "30"),
                ("PageNumber", n),
            ];
            call(rds, "DescribeBackups", &params).await
        }
    };
    let first = page("1").await.expect("page 1");
    let second = page("2").await.expect("page 2");
    assert_eq!(backups(&first, "Items").len(), 30);
    assert_eq!(backups(&second, "Items").len(), 10);
    assert_eq!(second["TotalRecordCount"], "40");
    assert_eq!(second["PageRecordCount"], "10");
    let mut ids: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|b| {
            backups(b, "Items")
                .iter()
                .map(|i| i["BackupId"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "every backup once across the pages");

    // A window of the last ten hours and a half.
    let fmt = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%MZ").to_string();
    let narrow = [
        ("DBInstanceId", "rm-many".to_string()),
        ("StartTime", fmt(now - chrono::Duration::minutes(630))),
        ("EndTime", fmt(now + chrono::Duration::minutes(1))),
    ];
    let narrow: Vec<(&str, &str)> = narrow.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let body = call(&rds, "DescribeBackups", &narrow)
        .await
        .expect("window");
    assert_eq!(body["TotalRecordCount"], "10", "{body}");

    // RDS takes 30, 50 or 100 only; windows in minutes.
    let refused = [
        ("DBInstanceId", "rm-many"),
        ("StartTime", start.as_str()),
        ("EndTime", end.as_str()),
        ("PageSize", "200"),
    ];
    assert_eq!(
        api_error(call(&rds, "DescribeBackups", &refused).await),
        ("InvalidPageSize.Malformed".into(), 400)
    );
    let seconds = [
        ("DBInstanceId", "rm-many"),
        ("StartTime", "2026-01-01T00:00:00Z"),
        ("EndTime", end.as_str()),
    ];
    assert_eq!(
        api_error(call(&rds, "DescribeBackups", &seconds).await).0,
        "InvalidStartTime.Malformed"
    );
}

#[tokio::test]
async fn mongodb_backups_per_shard_node_and_replica_set() {
    let fake = fake_with_samples().await;
    let (start, end) = week();
    for signature in BOTH {
        let dds = client(&fake, FakeProduct::MongoDb, signature, KEY_SECRET);
        // A replica set: no NodeId, and no window needed.
        let body = call(
            &dds,
            "DescribeBackups",
            &[("DBInstanceId", "dds-demo-replica")],
        )
        .await
        .expect("replica set");
        assert_eq!(body["TotalCount"], 7, "{body}");
        assert_eq!(body["PageSize"], 30);
        for b in backups(&body, "Backups") {
            assert!(
                b["BackupId"].is_string() && b["BackupJobId"].is_string(),
                "{b}"
            );
            assert!(b["IsAvail"].is_boolean() && b["BackupSize"].is_u64(), "{b}");
        }
        // A sharded cluster: one call per shard node.
        let window = |node: &'static str| {
            [
                ("DBInstanceId", "dds-demo-sharded"),
                ("NodeId", node),
                ("StartTime", start.as_str()),
                ("EndTime", end.as_str()),
            ]
        };
        let healthy = call(&dds, "DescribeBackups", &window("d-demo-shard-0"))
            .await
            .expect("shard 0");
        assert!(backups(&healthy, "Backups")
            .iter()
            .all(|b| b["BackupStatus"] == "Success" && b["IsAvail"] == true));
        assert_eq!(healthy["TotalCount"], 7);
        let failing = call(&dds, "DescribeBackups", &window("d-demo-shard-1"))
            .await
            .expect("shard 1");
        let statuses: Vec<&str> = backups(&failing, "Backups")
            .iter()
            .filter_map(|b| b["BackupStatus"].as_str())
            .collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == "Failed").count(),
            1,
            "{statuses:?}"
        );
        let failed = backups(&failing, "Backups")
            .iter()
            .find(|b| b["BackupStatus"] == "Failed")
            .expect("failed");
        assert_eq!(failed["IsAvail"], false);

        let no_node = call(
            &dds,
            "DescribeBackups",
            &[("DBInstanceId", "dds-demo-sharded")],
        )
        .await;
        assert_eq!(api_error(no_node), ("InvalidParameter".into(), 400));
        let unknown = call(&dds, "DescribeBackups", &window("d-no-such-shard")).await;
        assert_eq!(api_error(unknown), ("InvalidNodeId.NotFound".into(), 404));
    }
    let nodes: Vec<Option<String>> = fake
        .received()
        .iter()
        .filter(|r| r.instance_id == "dds-demo-sharded" && r.outcome == "Success")
        .map(|r| r.node_id.clone())
        .collect();
    assert_eq!(nodes.len(), 4);
    assert!(nodes
        .iter()
        .all(|n| n.as_deref().is_some_and(|n| n.starts_with("d-demo-shard-"))));
}

#[tokio::test]
async fn polardb_backups_are_all_strings() {
    let fake = fake_with_samples().await;
    let (start, end) = week();
    for signature in BOTH {
        let polardb = client(&fake, FakeProduct::PolarDb, signature, KEY_SECRET);
        let params = [
            ("DBClusterId", "pc-demo-failed"),
            ("StartTime", start.as_str()),
            ("EndTime", end.as_str()),
            ("PageSize", "30"),
        ];
        let body = call(&polardb, "DescribeBackups", &params)
            .await
            .expect("accepted");
        assert_eq!(body["TotalRecordCount"], "7", "{body}");
        assert_eq!(body["PageRecordCount"], "7");
        let items = backups(&body, "Items");
        for b in items {
            for (field, value) in b.as_object().expect("an object") {
                assert!(value.is_string(), "{field} is not a string: {b}");
            }
            assert_eq!(b["DBClusterId"], "pc-demo-failed");
            assert!(b.get("BackupSize").is_none());
        }
        let failed = items
            .iter()
            .find(|b| b["BackupStatus"] == "Failed")
            .expect("failed");
        assert_eq!(failed["IsAvail"], "0");
        assert!(failed.get("BackupSetSize").is_none());
        let ok = items
            .iter()
            .find(|b| b["BackupStatus"] == "Success")
            .expect("success");
        assert!(
            ok["BackupSetSize"]
                .as_str()
                .is_some_and(|s| s.parse::<u64>().is_ok()),
            "{ok}"
        );
        // The window is required here.
        let unwindowed = call(
            &polardb,
            "DescribeBackups",
            &[("DBClusterId", "pc-demo-failed")],
        )
        .await;
        assert_eq!(api_error(unwindowed), ("MissingStartTime".into(), 400));
    }
}

#[tokio::test]
async fn discovery_lists_each_products_own_instances() {
    let fake = fake_with_samples().await;
    fake.update_instance("rm-demo-failed", |i| {
        i.info.region_id = "cn-shanghai".into()
    });
    let ids = |body: &Value, list: &str, item: &str, field: &str| -> Vec<String> {
        let mut ids: Vec<String> = body[list][item]
            .as_array()
            .unwrap_or_else(|| panic!("no {list}.{item} in {body}"))
            .iter()
            .filter_map(|i| i[field].as_str().map(str::to_string))
            .collect();
        ids.sort();
        ids
    };
    for signature in BOTH {
        let rds = client(&fake, FakeProduct::Rds, signature, KEY_SECRET);
        let body = call(&rds, "DescribeDBInstances", &[("RegionId", "cn-hangzhou")])
            .await
            .expect("rds");
        assert_eq!(
            ids(&body, "Items", "DBInstance", "DBInstanceId"),
            ["rm-demo-healthy"]
        );
        assert_eq!(body["TotalRecordCount"], 1);
        assert_eq!(body["Items"]["DBInstance"][0]["Engine"], "MySQL");
        let tagged = call(
            &rds,
            "DescribeDBInstances",
            &[("RegionId", "cn-shanghai"), ("Tags", r#"{"env":"prod"}"#)],
        )
        .await
        .expect("tags");
        assert_eq!(
            ids(&tagged, "Items", "DBInstance", "DBInstanceId"),
            ["rm-demo-failed"]
        );
        let none = call(
            &rds,
            "DescribeDBInstances",
            &[("RegionId", "cn-shanghai"), ("Tags", r#"{"env":"dev"}"#)],
        )
        .await
        .expect("tags");
        assert!(ids(&none, "Items", "DBInstance", "DBInstanceId").is_empty());
        assert_eq!(
            api_error(call(&rds, "DescribeDBInstances", &[]).await).0,
            "MissingRegionId"
        );

        let dds = client(&fake, FakeProduct::MongoDb, signature, KEY_SECRET);
        // Replica sets unless asked for sharded clusters, as the real API.
        let replica = call(&dds, "DescribeDBInstances", &[("RegionId", "cn-hangzhou")])
            .await
            .expect("dds");
        assert_eq!(
            ids(&replica, "DBInstances", "DBInstance", "DBInstanceId"),
            ["dds-demo-replica"]
        );
        assert_eq!(replica["TotalCount"], 1);
        let sharded = call(
            &dds,
            "DescribeDBInstances",
            &[
                ("RegionId", "cn-hangzhou"),
                ("DBInstanceType", "sharding"),
                ("Tag.1.Key", "env"),
                ("Tag.1.Value", "prod"),
            ],
        )
        .await
        .expect("sharded");
        assert_eq!(
            ids(&sharded, "DBInstances", "DBInstance", "DBInstanceId"),
            ["dds-demo-sharded"]
        );
        let shard = &sharded["DBInstances"]["DBInstance"][0];
        assert_eq!(shard["DBInstanceType"], "sharding");
        assert_eq!(
            ids(shard, "ShardList", "ShardAttribute", "NodeId"),
            ["d-demo-shard-0", "d-demo-shard-1"]
        );
        assert_eq!(shard["Tags"]["Tag"][0]["Key"], "env");

        let polardb = client(&fake, FakeProduct::PolarDb, signature, KEY_SECRET);
        let clusters = call(
            &polardb,
            "DescribeDBClusters",
            &[("RegionId", "cn-hangzhou"), ("PageSize", "30")],
        )
        .await
        .expect("polardb");
        assert_eq!(
            ids(&clusters, "Items", "DBCluster", "DBClusterId"),
            ["pc-demo-failed", "pc-demo-healthy"]
        );
        assert_eq!(clusters["TotalRecordCount"], 2);
        assert_eq!(
            clusters["Items"]["DBCluster"][0]["DBNodes"]["DBNode"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        let page = call(
            &polardb,
            "DescribeDBClusters",
            &[("RegionId", "cn-hangzhou"), ("PageSize", "7")],
        )
        .await;
        assert_eq!(api_error(page).0, "InvalidParameter");

        // R-kvstore's discovery lists none of them.
        let redis = client(&fake, FakeProduct::Redis, signature, KEY_SECRET);
        let listed = call(&redis, "DescribeInstances", &[("RegionId", "cn-hangzhou")])
            .await
            .expect("redis");
        assert_eq!(
            ids(&listed, "Instances", "KVStoreInstance", "InstanceId"),
            ["r-redis-1"]
        );
    }
}

#[tokio::test]
async fn policies_in_each_products_types() {
    let fake = fake_with_samples().await;
    fake.update_instance("pc-demo-healthy", |i| {
        i.policy = FakePolicy {
            period: "Monday,Thursday".into(),
            retention_days: 14,
            ..Default::default()
        }
    });
    let rds = client(&fake, FakeProduct::Rds, SignatureVersion::V3, KEY_SECRET);
    let body = call(
        &rds,
        "DescribeBackupPolicy",
        &[("DBInstanceId", "rm-demo-healthy")],
    )
    .await
    .expect("rds");
    assert_eq!(body["BackupRetentionPeriod"], 7);
    assert_eq!(body["EnableBackupLog"], "False");
    assert_eq!(body["PreferredBackupTime"], "02:00Z-03:00Z");
    let dds = client(
        &fake,
        FakeProduct::MongoDb,
        SignatureVersion::V2,
        KEY_SECRET,
    );
    let body = call(
        &dds,
        "DescribeBackupPolicy",
        &[("DBInstanceId", "dds-demo-sharded")],
    )
    .await
    .expect("dds");
    assert_eq!(body["BackupRetentionPeriod"], "7");
    assert_eq!(body["EnableBackupLog"], 0);
    let polardb = client(
        &fake,
        FakeProduct::PolarDb,
        SignatureVersion::V3,
        KEY_SECRET,
    );
    let body = call(
        &polardb,
        "DescribeBackupPolicy",
        &[("DBClusterId", "pc-demo-healthy")],
    )
    .await
    .expect("polardb");
    assert_eq!(body["PreferredBackupPeriod"], "Monday,Thursday");
    assert_eq!(body["DataLevel1BackupRetentionPeriod"], "14");
    assert!(body.get("BackupRetentionPeriod").is_none());
    assert!(body["PreferredNextBackupTime"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    fake.update_instance("rm-demo-healthy", |i| {
        i.policy_fault = Some(Fault::Forbidden)
    });
    let refused = call(
        &rds,
        "DescribeBackupPolicy",
        &[("DBInstanceId", "rm-demo-healthy")],
    )
    .await;
    assert_eq!(api_error(refused), ("Forbidden.RAM".into(), 403));
}

#[tokio::test]
async fn unknown_instances_get_each_products_not_found() {
    let fake = fake_with_samples().await;
    fake.update_instance("pc-demo-failed", |i| i.released = true);
    let (start, end) = week();
    let cases = [
        (
            FakeProduct::Rds,
            "DBInstanceId",
            "rm-no-such",
            "InvalidDBInstanceId.NotFound",
        ),
        // Another product's instance does not exist for this one.
        (
            FakeProduct::Rds,
            "DBInstanceId",
            "pc-demo-healthy",
            "InvalidDBInstanceId.NotFound",
        ),
        (
            FakeProduct::MongoDb,
            "DBInstanceId",
            "dds-no-such",
            "InvalidDBInstanceId.NotFound",
        ),
        (
            FakeProduct::MongoDb,
            "DBInstanceId",
            "r-redis-1",
            "InvalidDBInstanceId.NotFound",
        ),
        (
            FakeProduct::PolarDb,
            "DBClusterId",
            "pc-demo-failed",
            "InvalidDBClusterId.NotFound",
        ),
        (
            FakeProduct::PolarDb,
            "DBClusterId",
            "rm-demo-healthy",
            "InvalidDBClusterId.NotFound",
        ),
        (
            FakeProduct::Redis,
            "InstanceId",
            "rm-demo-healthy",
            "InvalidInstanceId.NotFound",
        ),
    ];
    for (product, name, id, code) in cases {
        let client = client(&fake, product, SignatureVersion::V3, KEY_SECRET);
        let params = [
            (name, id),
            ("StartTime", start.as_str()),
            ("EndTime", end.as_str()),
        ];
        let got = api_error(call(&client, "DescribeBackups", &params).await);
        assert_eq!(got, (code.to_string(), 404), "{product:?} {id}");
        let policy = api_error(call(&client, "DescribeBackupPolicy", &[(name, id)]).await);
        assert_eq!(policy, (code.to_string(), 404), "{product:?} {id} policy");
    }
    // A fault injected for an RDS instance answers RDS's code.
    fake.update_instance("rm-demo-healthy", |i| i.always = Some(Fault::NotFound));
    let rds = client(&fake, FakeProduct::Rds, SignatureVersion::V2, KEY_SECRET);
    let params = [
        ("DBInstanceId", "rm-demo-healthy"),
        ("StartTime", start.as_str()),
        ("EndTime", end.as_str()),
    ];
    assert_eq!(
        api_error(call(&rds, "DescribeBackups", &params).await).0,
        "InvalidDBInstanceId.NotFound"
    );
    // Another product's action is not there.
    let missing = call(&rds, "DescribeDBClusters", &[("RegionId", "cn-hangzhou")]).await;
    assert_eq!(api_error(missing), ("InvalidAction.NotFound".into(), 404));
}

#[tokio::test]
async fn wrong_signatures_are_refused_for_every_product() {
    let fake = fake_with_samples().await;
    let (start, end) = week();
    let cases = [
        (FakeProduct::Rds, "DBInstanceId", "rm-demo-healthy"),
        (FakeProduct::MongoDb, "DBInstanceId", "dds-demo-replica"),
        (FakeProduct::PolarDb, "DBClusterId", "pc-demo-healthy"),
    ];
    for (product, name, id) in cases {
        for signature in BOTH {
            let bad = client(&fake, product, signature, "not-the-secret");
            let params = [
                (name, id),
                ("StartTime", start.as_str()),
                ("EndTime", end.as_str()),
            ];
            let result = call(&bad, "DescribeBackups", &params).await;
            assert_eq!(
                api_error(result),
                ("SignatureDoesNotMatch".into(), 400),
                "{product:?} {signature:?}"
            );
            let good = client(&fake, product, signature, KEY_SECRET);
            assert!(
                call(&good, "DescribeBackups", &params).await.is_ok(),
                "{product:?} {signature:?}"
            );
        }
    }
    let outcomes: Vec<String> = fake.received().iter().map(|r| r.outcome.clone()).collect();
    assert_eq!(
        outcomes.iter().filter(|o| *o == "Success").count(),
        6,
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn totals_can_be_left_out_of_every_products_lists() {
    let fake = fake_with_samples().await;
    fake.omit_total_count(true);
    let (start, end) = week();
    let window = [("StartTime", start.as_str()), ("EndTime", end.as_str())];
    let cases = [
        (
            FakeProduct::Rds,
            "DescribeBackups",
            ("DBInstanceId", "rm-demo-healthy"),
            "Items",
            "TotalRecordCount",
        ),
        (
            FakeProduct::MongoDb,
            "DescribeBackups",
            ("DBInstanceId", "dds-demo-replica"),
            "Backups",
            "TotalCount",
        ),
        (
            FakeProduct::PolarDb,
            "DescribeBackups",
            ("DBClusterId", "pc-demo-healthy"),
            "Items",
            "TotalRecordCount",
        ),
        (
            FakeProduct::Rds,
            "DescribeDBInstances",
            ("RegionId", "cn-hangzhou"),
            "Items",
            "TotalRecordCount",
        ),
        (
            FakeProduct::MongoDb,
            "DescribeDBInstances",
            ("RegionId", "cn-hangzhou"),
            "DBInstances",
            "TotalCount",
        ),
        (
            FakeProduct::PolarDb,
            "DescribeDBClusters",
            ("RegionId", "cn-hangzhou"),
            "Items",
            "TotalRecordCount",
        ),
    ];
    for (product, action, id, list, total) in cases {
        let client = client(&fake, product, SignatureVersion::V3, KEY_SECRET);
        let mut params = vec![id];
        if action == "DescribeBackups" {
            params.extend(window);
        }
        let body = call(&client, action, &params).await.expect("accepted");
        assert!(body.get(total).is_none(), "{product:?} {action}: {body}");
        assert!(body.get(list).is_some(), "{product:?} {action}: {body}");
    }
    fake.omit_total_count(false);
    let rds = client(&fake, FakeProduct::Rds, SignatureVersion::V2, KEY_SECRET);
    let body = call(&rds, "DescribeDBInstances", &[("RegionId", "cn-hangzhou")])
        .await
        .expect("accepted");
    assert_eq!(body["TotalRecordCount"], 2);
}
