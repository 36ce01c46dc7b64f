//! aliyun-backup-exporter: a Prometheus exporter for the backups of Alibaba
//! Cloud managed databases.
//!
//! Layout (data flows one way: config → poller → snapshot → /metrics):
//!
//! - `config`: command-line flags and environment → a validated `Config`.
//! - `aliyun`: the generic Alibaba Cloud RPC client (signing, retries, errors).
//! - `redis`: R-kvstore calls (`DescribeBackups`) decoded into `model` types.
//! - `model`: product-neutral backup records.
//! - `poller`: the polling loop; owns all mutable state, publishes snapshots.
//! - `snapshot`: pure functions from backups to per-node summaries.
//! - `metrics`: renders a snapshot as the Prometheus exposition at scrape time.
//! - `server`: the HTTP endpoints (/metrics, /healthz, /readyz, /).
//! - `fake_api`: an in-process fake of the Alibaba API (real HTTP, real
//!   signature checks), used by `--demo` and the tests.
//! - `demo`: the sample instances `--demo` serves.
//! - `clock`, `secret`: injectable time; values that never print.

pub mod aliyun;
pub mod clock;
pub mod model;
pub mod redis;
pub mod secret;
pub mod fake_api;
pub mod http;
