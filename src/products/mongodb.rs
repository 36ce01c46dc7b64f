//! ApsaraDB for MongoDB (`dds`, API 2015-12-01, host `dds.aliyuncs.com`):
//! DescribeBackups (`DBInstanceId`; `Backups.Backup[]`, see
//! `envelopes::MONGODB`), asked once per shard node (`NodeId`) of a
//! sharded cluster, each shard its own node; a replica set is its own
//! node. DescribeDBInstances lists replica sets unless asked for
//! `DBInstanceType=sharding`, so discovery asks for both; a sharded
//! cluster's shards are its `ShardList.ShardAttribute[].NodeId`.
//! DescribeBackupPolicy: `BackupRetentionPeriod`, `EnableBackupLog`.
//!
//! RAM actions: `dds:DescribeBackups`, `dds:DescribeDBInstances`,
//! `dds:DescribeBackupPolicy`.

use tokio::time::Instant;

use super::common::{self, InstancesEnvelope, PolicyFields, TagsParam};
use super::envelopes;
use super::{InstanceQuery, PollTarget, ProductApi, Window};
use crate::aliyun::{endpoint, ApiError, RpcClient};
use crate::model::{Backup, InstanceInfo};
use crate::policy::BackupPolicy;

pub struct MongoDb;

/// DescribeDBInstances: page sizes 30, 50 or 100.
pub const INSTANCES: InstancesEnvelope = InstancesEnvelope {
    action: "DescribeDBInstances",
    list: ("DBInstances", "DBInstance"),
    path: "DBInstances.DBInstance",
    total: "TotalCount",
    ids_param: "DBInstanceId",
    tags_param: TagsParam::Numbered,
    page_size: 100,
    id: "DBInstanceId",
    name: "DBInstanceDescription",
    status: "DBInstanceStatus",
    class: "DBInstanceClass",
    architecture: "DBInstanceType",
    engine_version: "EngineVersion",
    created: "CreationTime",
    tags_listed: true,
    shards: Some(("ShardList", "ShardAttribute", "NodeId")),
};

/// The instance types discovery asks for, one call (and page loop) each.
const TYPES: [&str; 2] = ["replicate", "sharding"];

const POLICY: PolicyFields = PolicyFields {
    retention: Some("BackupRetentionPeriod"),
    log_backup: Some("EnableBackupLog"),
};

impl ProductApi for MongoDb {
    const API_VERSION: &'static str = "2015-12-01";
    const DISCOVERY_ACTION: &'static str = INSTANCES.action;

    fn endpoint(region: &str) -> String {
        endpoint::product_endpoint("dds", region)
    }

    /// A sharded cluster's shards one after the other (a failed shard
    /// fails the poll: no half-counted cluster). Its shards are what
    /// discovery found; an instance not looked up yet (a static one before
    /// its first round) is looked up here first.
    async fn list_backups(
        client: &RpcClient,
        target: &PollTarget<'_>,
        window: &Window,
        deadline: Instant,
    ) -> Result<Vec<Backup>, ApiError> {
        let looked_up;
        let info = match target.info {
            Some(info) => info,
            None => {
                looked_up = look_up(client, target, deadline).await?;
                &looked_up
            }
        };
        let instance = || ("DBInstanceId", target.instance_id.to_string());
        if info.nodes.is_empty() {
            return common::describe_backups(
                client,
                &envelopes::MONGODB,
                &[instance()],
                target.instance_id,
                window,
                deadline,
            )
            .await;
        }
        let mut backups = Vec::new();
        for node in &info.nodes {
            let id = [instance(), ("NodeId", node.clone())];
            backups.extend(
                common::describe_backups(client, &envelopes::MONGODB, &id, node, window, deadline)
                    .await?,
            );
        }
        Ok(backups)
    }

    async fn describe_instances(
        client: &RpcClient,
        query: &InstanceQuery<'_>,
        deadline: Instant,
    ) -> Result<Vec<InstanceInfo>, ApiError> {
        let mut found = Vec::new();
        for kind in TYPES {
            let extra = [("DBInstanceType", kind.to_string())];
            found.extend(
                common::describe_instances(client, &INSTANCES, &extra, query, deadline).await?,
            );
        }
        Ok(found)
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

/// What DescribeDBInstances says of one instance (of either type); not
/// listed is a replica set as far as its backups go (DescribeBackups then
/// says whether it exists).
async fn look_up(
    client: &RpcClient,
    target: &PollTarget<'_>,
    deadline: Instant,
) -> Result<InstanceInfo, ApiError> {
    let ids = [target.instance_id.to_string()];
    let query = InstanceQuery {
        region_id: target.region_id,
        instance_ids: &ids,
        tags: &[],
    };
    let found = MongoDb::describe_instances(client, &query, deadline).await?;
    Ok(found
        .into_iter()
        .find(|i| *i.instance_id == *target.instance_id)
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharded_clusters_list_their_shard_nodes() {
        let body = r#"{"TotalCount":2,"DBInstances":{"DBInstance":[
            {"DBInstanceId":"dds-rs","DBInstanceType":"replicate","DBInstanceStatus":"Running",
             "CreationTime":"2026-01-01T00:00:00Z","Tags":{"Tag":[{"Key":"env","Value":"prod"}]}},
            {"DBInstanceId":"dds-sh","DBInstanceType":"sharding","DBInstanceDescription":"events",
             "ShardList":{"ShardAttribute":[{"NodeId":"d-1","NodeClass":"x"},{"NodeId":"d-2"}]},
             "MongosList":{"MongosAttribute":[{"NodeId":"s-1"}]}}]}}"#;
        let (list, total) =
            common::decode_instances(body.as_bytes(), &INSTANCES, "cn-hangzhou").unwrap();
        assert_eq!(total, Some(2));
        assert!(list[0].nodes.is_empty());
        assert_eq!(&*list[0].architecture, "replicate");
        assert!(list[0].created.is_some());
        assert_eq!(list[1].nodes, ["d-1", "d-2"], "mongos nodes hold no data");
        assert_eq!(list[1].shard_count, Some(2));
        let bad = r#"{"DBInstances":{"DBInstance":[{"DBInstanceId":"dds-sh","ShardList":{"ShardAttribute":[{"NodeClass":"x"}]}}]}}"#;
        let err = common::decode_instances(bad.as_bytes(), &INSTANCES, "x").unwrap_err();
        assert!(err.contains("ShardList[0]: NodeId is missing"), "{err}");
    }
}
