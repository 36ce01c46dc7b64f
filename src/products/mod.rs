//! The Alibaba Cloud database products the exporter watches, one file each,
//! behind one seam (`ProductApi`) and dispatched by `Product` here, the one
//! place that names them all.
//!
//! - `kvstore`: ApsaraDB for Redis / Tair (`R-kvstore`): backups (both
//!   calls), instances, regions.
//! - `rds`, `mongodb`, `polardb`: ApsaraDB RDS, ApsaraDB for MongoDB
//!   (`dds`, one DescribeBackups per shard node of a sharded cluster) and
//!   PolarDB: their DescribeBackups, discovery and DescribeBackupPolicy.
//! - `common`: what those three share: the paged DescribeBackups loop, one
//!   discovery decoder driven by a description of each product's instance
//!   list, one backup policy decoder.
//! - `backups`: the one DescribeBackups decoder, driven by a description of
//!   each product's envelope.
//! - `envelopes`: those descriptions (R-kvstore, RDS, MongoDB, PolarDB) and
//!   the products' status words.
//!
//! Adding a product: its file (a `ProductApi`), a `Product` variant with
//! its arms below, its config-file section and flag, its fake and fixtures.

pub mod backups;
pub mod common;
pub mod envelopes;
pub mod kvstore;
pub mod mongodb;
pub mod polardb;
pub mod rds;

use std::fmt;

use tokio::time::Instant;

use crate::aliyun::{ApiError, RpcClient};
use crate::model::{Backup, BackupApi, InstanceInfo};
use crate::policy::BackupPolicy;
pub use kvstore::{InstanceQuery, Window};

/// The `product` label of ApsaraDB for Redis / Tair.
pub const REDIS: &str = "redis";

/// A watched database product. Ordered as the `product` label sorts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Product {
    /// ApsaraDB for Redis / Tair (`R-kvstore`, 2015-01-01).
    Redis,
    /// ApsaraDB RDS (2014-08-15).
    Rds,
    /// ApsaraDB for MongoDB (`dds`, 2015-12-01).
    MongoDb,
    /// PolarDB (2017-08-01).
    PolarDb,
}

/// One poll's instance, as the product's backup call needs it.
#[derive(Debug, Clone, Copy)]
pub struct PollTarget<'a> {
    pub instance_id: &'a str,
    pub region_id: &'a str,
    /// R-kvstore only: which of its two backup calls.
    pub api: BackupApi,
    /// What discovery said of it (MongoDB: its shard nodes), if known yet.
    pub info: Option<&'a InstanceInfo>,
}

/// What the exporter asks of a product. Static dispatch: `Product` picks
/// the implementation (see the functions below).
pub(crate) trait ProductApi {
    /// The `Version` of every call.
    const API_VERSION: &'static str;

    /// The call that lists a region's instances.
    const DISCOVERY_ACTION: &'static str;

    /// The base URL of the product's API in `region` (the account's
    /// endpoint override wins over it).
    fn endpoint(region: &str) -> String;

    /// Every backup of the instance (all its nodes) that started in the
    /// window, all pages, by `deadline`. A failed page or node fails it all.
    async fn list_backups(
        client: &RpcClient,
        target: &PollTarget<'_>,
        window: &Window,
        deadline: Instant,
    ) -> Result<Vec<Backup>, ApiError>;

    /// Every instance of a region matching `query`, all pages, by `deadline`.
    async fn describe_instances(
        client: &RpcClient,
        query: &InstanceQuery<'_>,
        deadline: Instant,
    ) -> Result<Vec<InstanceInfo>, ApiError>;

    /// The schedule the instance's automatic backups follow.
    async fn describe_backup_policy(
        client: &RpcClient,
        instance_id: &str,
        deadline: Instant,
    ) -> Result<BackupPolicy, ApiError>;
}

impl Product {
    pub const ALL: [Product; 4] = [
        Product::Redis,
        Product::Rds,
        Product::MongoDb,
        Product::PolarDb,
    ];

    /// The `product` label, and the spelling of flags and config keys.
    pub fn label(self) -> &'static str {
        match self {
            Product::Redis => REDIS,
            Product::Rds => "rds",
            Product::MongoDb => "mongodb",
            Product::PolarDb => "polardb",
        }
    }

    /// The product of a `product` label.
    pub fn from_label(label: &str) -> Option<Product> {
        Self::ALL.into_iter().find(|p| p.label() == label)
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Product::Redis => kvstore::Kvstore::API_VERSION,
            Product::Rds => rds::Rds::API_VERSION,
            Product::MongoDb => mongodb::MongoDb::API_VERSION,
            Product::PolarDb => polardb::PolarDb::API_VERSION,
        }
    }

    /// The call that lists a region's instances (`DescribeInstances`…).
    pub fn discovery_action(self) -> &'static str {
        match self {
            Product::Redis => kvstore::Kvstore::DISCOVERY_ACTION,
            Product::Rds => rds::Rds::DISCOVERY_ACTION,
            Product::MongoDb => mongodb::MongoDb::DISCOVERY_ACTION,
            Product::PolarDb => polardb::PolarDb::DISCOVERY_ACTION,
        }
    }

    /// The base URL of the product's API in `region`.
    pub fn endpoint(self, region: &str) -> String {
        match self {
            Product::Redis => kvstore::Kvstore::endpoint(region),
            Product::Rds => rds::Rds::endpoint(region),
            Product::MongoDb => mongodb::MongoDb::endpoint(region),
            Product::PolarDb => polardb::PolarDb::endpoint(region),
        }
    }

    /// Whether the answer says the planned backup call does not apply and
    /// the other one should be used (R-kvstore's two calls; the other
    /// products have one).
    pub fn is_not_applicable(self, error: &ApiError) -> bool {
        self == Product::Redis && kvstore::is_not_applicable(error)
    }

    pub async fn list_backups(
        self,
        client: &RpcClient,
        target: &PollTarget<'_>,
        window: &Window,
        deadline: Instant,
    ) -> Result<Vec<Backup>, ApiError> {
        match self {
            Product::Redis => {
                kvstore::Kvstore::list_backups(client, target, window, deadline).await
            }
            Product::Rds => rds::Rds::list_backups(client, target, window, deadline).await,
            Product::MongoDb => {
                mongodb::MongoDb::list_backups(client, target, window, deadline).await
            }
            Product::PolarDb => {
                polardb::PolarDb::list_backups(client, target, window, deadline).await
            }
        }
    }

    pub async fn describe_instances(
        self,
        client: &RpcClient,
        query: &InstanceQuery<'_>,
        deadline: Instant,
    ) -> Result<Vec<InstanceInfo>, ApiError> {
        match self {
            Product::Redis => kvstore::Kvstore::describe_instances(client, query, deadline).await,
            Product::Rds => rds::Rds::describe_instances(client, query, deadline).await,
            Product::MongoDb => mongodb::MongoDb::describe_instances(client, query, deadline).await,
            Product::PolarDb => polardb::PolarDb::describe_instances(client, query, deadline).await,
        }
    }

    pub async fn describe_backup_policy(
        self,
        client: &RpcClient,
        instance_id: &str,
        deadline: Instant,
    ) -> Result<BackupPolicy, ApiError> {
        match self {
            Product::Redis => {
                kvstore::Kvstore::describe_backup_policy(client, instance_id, deadline).await
            }
            Product::Rds => rds::Rds::describe_backup_policy(client, instance_id, deadline).await,
            Product::MongoDb => {
                mongodb::MongoDb::describe_backup_policy(client, instance_id, deadline).await
            }
            Product::PolarDb => {
                polardb::PolarDb::describe_backup_policy(client, instance_id, deadline).await
            }
        }
    }
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The product of a target's `product` label, or the error its poll fails
/// with (a label is only ever made from a `Product`, so this is a bug).
pub fn of_label(label: &str) -> Result<Product, ApiError> {
    Product::from_label(label).ok_or_else(|| ApiError::Decode {
        detail: format!("unknown product {label:?}"),
        request_id: None,
    })
}

/// The backups of a target of the product labelled `product` (see
/// `Product::list_backups`).
pub async fn list_backups(
    client: &RpcClient,
    product: &str,
    target: &PollTarget<'_>,
    window: &Window,
    deadline: Instant,
) -> Result<Vec<Backup>, ApiError> {
    of_label(product)?
        .list_backups(client, target, window, deadline)
        .await
}

/// The backup policy of an instance of the product labelled `product`.
pub async fn describe_backup_policy(
    client: &RpcClient,
    product: &str,
    instance_id: &str,
    deadline: Instant,
) -> Result<BackupPolicy, ApiError> {
    of_label(product)?
        .describe_backup_policy(client, instance_id, deadline)
        .await
}

/// `Product::is_not_applicable` for the product labelled `product`.
pub fn is_not_applicable(product: &str, error: &ApiError) -> bool {
    Product::from_label(product).is_some_and(|p| p.is_not_applicable(error))
}

/// `redis,rds,…`: a comma-separated subset of the products' labels.
pub fn parse_list<S: AsRef<str>>(raw: &[S]) -> Result<Vec<Product>, String> {
    let mut products = Vec::new();
    for word in raw
        .iter()
        .map(|s| s.as_ref().trim())
        .filter(|s| !s.is_empty())
    {
        let product = Product::from_label(&word.to_ascii_lowercase()).ok_or_else(|| {
            let known: Vec<&str> = Product::ALL.iter().map(|p| p.label()).collect();
            format!("{word:?} is not one of {}", known.join(", "))
        })?;
        if !products.contains(&product) {
            products.push(product);
        }
    }
    Ok(products)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_lists() {
        for product in Product::ALL {
            assert_eq!(Product::from_label(product.label()), Some(product));
        }
        assert_eq!(
            parse_list(&["RDS", " redis", "rds", ""]),
            Ok(vec![Product::Rds, Product::Redis])
        );
        let err = parse_list(&["redis", "oracle"]).unwrap_err();
        assert_eq!(err, "\"oracle\" is not one of redis, rds, mongodb, polardb");
        assert!(of_label("oracle").is_err());
        assert_eq!(
            Product::ALL.map(Product::api_version),
            ["2015-01-01", "2014-08-15", "2015-12-01", "2017-08-01"]
        );
    }
}
