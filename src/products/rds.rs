//! ApsaraDB RDS (API 2014-08-15, host `rds.aliyuncs.com`): DescribeBackups
//! (`DBInstanceId`; `Items.Backup[]`, see `envelopes::RDS`: an RDS
//! instance is its own node), DescribeDBInstances (`Items.DBInstance[]`,
//! tags filtered by the `Tags` JSON parameter and not listed) and
//! DescribeBackupPolicy (`BackupRetentionPeriod`, `EnableBackupLog`).
//!
//! RAM actions: `rds:DescribeBackups`, `rds:DescribeDBInstances`,
//! `rds:DescribeBackupPolicy`.

use tokio::time::Instant;

use super::common::{self, InstancesEnvelope, PolicyFields, TagsParam};
use super::envelopes;
use super::{InstanceQuery, PollTarget, ProductApi, Window};
use crate::aliyun::{endpoint, ApiError, RpcClient};
use crate::model::{Backup, InstanceInfo};
use crate::policy::BackupPolicy;

pub struct Rds;

/// DescribeDBInstances: page sizes 1 to 100.
pub const INSTANCES: InstancesEnvelope = InstancesEnvelope {
    action: "DescribeDBInstances",
    list: ("Items", "DBInstance"),
    path: "Items.DBInstance",
    total: "TotalRecordCount",
    ids_param: "DBInstanceId",
    tags_param: TagsParam::JsonObject,
    page_size: 100,
    id: "DBInstanceId",
    name: "DBInstanceDescription",
    status: "DBInstanceStatus",
    class: "DBInstanceClass",
    architecture: "DBInstanceType",
    engine_version: "EngineVersion",
    created: "CreateTime",
    tags_listed: false,
    shards: None,
};

const POLICY: PolicyFields = PolicyFields {
    retention: Some("BackupRetentionPeriod"),
    log_backup: Some("EnableBackupLog"),
};

impl ProductApi for Rds {
    const API_VERSION: &'static str = "2014-08-15";
    const DISCOVERY_ACTION: &'static str = INSTANCES.action;

    fn endpoint(region: &str) -> String {
        endpoint::product_endpoint("rds", region)
    }

    async fn list_backups(
        client: &RpcClient,
        target: &PollTarget<'_>,
        window: &Window,
        deadline: Instant,
    ) -> Result<Vec<Backup>, ApiError> {
        let id = [("DBInstanceId", target.instance_id.to_string())];
        common::describe_backups(
            client,
            &envelopes::RDS,
            &id,
            target.instance_id,
            window,
            deadline,
        )
        .await
    }

    async fn describe_instances(
        client: &RpcClient,
        query: &InstanceQuery<'_>,
        deadline: Instant,
    ) -> Result<Vec<InstanceInfo>, ApiError> {
        common::describe_instances(client, &INSTANCES, &[], query, deadline).await
    }

    async fn describe_backup_policy(
        client: &RpcClient,
        instance_id: &str,
        deadline: Instant,
    ) -> Result<BackupPolicy, ApiError> {
        common::describe_backup_policy(client, ("DBInstanceId", instance_id), &POLICY, deadline)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_api::FakePolicy;

    #[test]
    fn discovery_and_policy_answers_decode() {
        // As the fake (and the API reference) shape one.
        let body = serde_json::json!({
            "TotalRecordCount": 1,
            "Items": {"DBInstance": [{
                "DBInstanceId": "rm-1", "DBInstanceDescription": "orders",
                "RegionId": "cn-beijing", "ZoneId": "cn-beijing-a", "Engine": "MySQL",
                "EngineVersion": "8.0", "DBInstanceClass": "mysql.n2.medium.2c",
                "DBInstanceStatus": "Running", "DBInstanceType": "Primary",
                "CreateTime": "2026-01-01T00:00:00Z", "TipsLevel": 0,
                "ReadOnlyDBInstanceIds": {"ReadOnlyDBInstanceId": []},
            }]},
        });
        let (list, total) =
            common::decode_instances(body.to_string().as_bytes(), &INSTANCES, "cn-beijing")
                .unwrap();
        assert_eq!(total, Some(1));
        let i = &list[0];
        assert_eq!(
            (&*i.instance_id, i.name.as_str(), &*i.status),
            ("rm-1", "orders", "Running")
        );
        assert_eq!(&*i.architecture, "primary");
        assert_eq!(&*i.instance_class, "mysql.n2.medium.2c");
        assert!(i.created.is_some() && i.nodes.is_empty());

        let policy = FakePolicy::default();
        let body = format!(
            r#"{{"PreferredBackupPeriod":"{}","PreferredBackupTime":"{}","BackupRetentionPeriod":7,"EnableBackupLog":"True"}}"#,
            policy.period, policy.time
        );
        let p = common::decode_backup_policy(body.as_bytes(), &POLICY).unwrap();
        assert_eq!(p.retention_days, Some(7));
        assert_eq!(p.log_backup_enabled, Some(true));
        assert_eq!(p.window, "02:00Z-03:00Z");
        // An ID that is not one fails the page.
        let bad = r#"{"Items":{"DBInstance":[{"DBInstanceId":"rm 1"}]}}"#;
        let err = common::decode_instances(bad.as_bytes(), &INSTANCES, "cn-beijing").unwrap_err();
        assert!(
            err.starts_with("Items.DBInstance[0]: DBInstanceId"),
            "{err}"
        );
    }
}
