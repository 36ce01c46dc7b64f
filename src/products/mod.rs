//! The Alibaba Cloud database products the exporter watches, one file each.
//!
//! - `kvstore`: ApsaraDB for Redis / Tair (`R-kvstore`): backups, instances, regions.
//! - `backups`: the one DescribeBackups decoder, driven by a description of
//!   each product's envelope.
//! - `envelopes`: those descriptions (R-kvstore, RDS, MongoDB, PolarDB) and
//!   the products' status words.

pub mod backups;
pub mod envelopes;
pub mod kvstore;

/// The `product` label of ApsaraDB for Redis / Tair.
pub const REDIS: &str = "redis";
