//! PolarDB (API 2017-08-01, host `polardb.aliyuncs.com`): DescribeBackups
//! (`DBClusterId`; `Items.Backup[]`, every field a string, see
//! `envelopes::POLARDB`: a cluster's backups are of its shared storage, so
//! the cluster is its own node), DescribeDBClusters (`Items.DBCluster[]`,
//! `DBClusterIds`, `Tag.N.*`) and DescribeBackupPolicy (no
//! `BackupRetentionPeriod` nor `EnableBackupLog`: the retention of the
//! level-1 backups DescribeBackups lists is
//! `DataLevel1BackupRetentionPeriod`; log backup stays unknown).
//!
//! RAM actions: `polardb:DescribeBackups`, `polardb:DescribeDBClusters`,
//! `polardb:DescribeBackupPolicy`.

use tokio::time::Instant;

use super::common::{self, InstancesEnvelope, PolicyFields, TagsParam};
use super::envelopes;
use super::{InstanceQuery, PollTarget, ProductApi, Window};
use crate::aliyun::{endpoint, ApiError, RpcClient};
use crate::model::{Backup, InstanceInfo};
use crate::policy::BackupPolicy;

pub struct PolarDb;

/// DescribeDBClusters: page sizes 30, 50 or 100.
pub const CLUSTERS: InstancesEnvelope = InstancesEnvelope {
    action: "DescribeDBClusters",
    list: ("Items", "DBCluster"),
    path: "Items.DBCluster",
    total: "TotalRecordCount",
    ids_param: "DBClusterIds",
    tags_param: TagsParam::Numbered,
    page_size: 100,
    id: "DBClusterId",
    name: "DBClusterDescription",
    status: "DBClusterStatus",
    class: "DBNodeClass",
    architecture: "Category",
    engine_version: "DBVersion",
    created: "CreateTime",
    tags_listed: true,
    shards: None,
};

const POLICY: PolicyFields = PolicyFields {
    retention: Some("DataLevel1BackupRetentionPeriod"),
    log_backup: None,
};

impl ProductApi for PolarDb {
    const API_VERSION: &'static str = "2017-08-01";
    const DISCOVERY_ACTION: &'static str = CLUSTERS.action;

    fn endpoint(region: &str) -> String {
        endpoint::product_endpoint("polardb", region)
    }

    async fn list_backups(
        client: &RpcClient,
        target: &PollTarget<'_>,
        window: &Window,
        deadline: Instant,
    ) -> Result<Vec<Backup>, ApiError> {
        let id = [("DBClusterId", target.instance_id.to_string())];
        common::describe_backups(
            client,
            &envelopes::POLARDB,
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
        common::describe_instances(client, &CLUSTERS, &[], query, deadline).await
    }

    async fn describe_backup_policy(
        client: &RpcClient,
        instance_id: &str,
        deadline: Instant,
    ) -> Result<BackupPolicy, ApiError> {
        common::describe_backup_policy(client, ("DBClusterId", instance_id), &POLICY, deadline)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_and_policy_answers_decode() {
        let body = r#"{"PageNumber":1,"TotalRecordCount":1,"Items":{"DBCluster":[{
            "DBClusterId":"pc-1","DBClusterDescription":"ledger","RegionId":"cn-hangzhou",
            "ZoneId":"cn-hangzhou-a","DBType":"MySQL","DBVersion":"8.0","DBClusterStatus":"Running",
            "DBNodeClass":"polar.mysql.x4.medium","Category":"Normal","CreateTime":"2026-01-01T00:00:00Z",
            "DBNodes":{"DBNode":[{"DBNodeId":"pi-10","DBNodeRole":"Writer"}]},
            "Tags":{"Tag":[{"Key":"env","Value":"prod"}]}}]}}"#;
        let (list, total) = common::decode_instances(body.as_bytes(), &CLUSTERS, "x").unwrap();
        assert_eq!(total, Some(1));
        let c = &list[0];
        assert_eq!((&*c.instance_id, c.name.as_str()), ("pc-1", "ledger"));
        assert_eq!((&*c.engine_version, &*c.architecture), ("8.0", "normal"));
        assert_eq!(c.tags, vec![("env".to_string(), "prod".to_string())]);
        assert!(c.nodes.is_empty(), "DB nodes are not backup nodes");

        let body = r#"{"PreferredBackupPeriod":"Monday,Thursday","PreferredBackupTime":"02:00Z-03:00Z",
            "DataLevel1BackupRetentionPeriod":"7","BackupRetentionPeriod":"x"}"#;
        let p = common::decode_backup_policy(body.as_bytes(), &POLICY).unwrap();
        assert_eq!(p.retention_days, Some(7));
        assert_eq!(p.log_backup_enabled, None);
        assert_eq!(
            p.max_interval(),
            Some(std::time::Duration::from_secs(4 * 86_400))
        );
    }
}
