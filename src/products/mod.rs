//! The Alibaba Cloud database products the exporter watches, one file each.
//!
//! - `kvstore`: ApsaraDB for Redis / Tair (`R-kvstore`): backups, instances, regions.

pub mod kvstore;

/// The `product` label of ApsaraDB for Redis / Tair.
pub const REDIS: &str = "redis";
