//! aliyun-backup-exporter: a Prometheus exporter for the backups of Alibaba
//! Cloud managed databases, starting with ApsaraDB for Redis / Tair.
//!
//! Layout (data flows one way: config → poller → snapshot → /metrics):
//!
//! - `config`: command-line flags and environment → a validated `Config`.
//! - `app`: wires the parts together; `run(config, shutdown)`.
//! - `aliyun`: the generic Alibaba Cloud RPC client (signing, retries, errors)
//!   and the credentials chain (env, RRSA, profiles, ECS role; refresh).
//! - `products`: one file per database product; `kvstore` (Redis / Tair):
//!   `DescribeBackups` decoded into `model` types.
//! - `model`: product-neutral backup records.
//! - `poller`: the polling loop; owns all mutable state, publishes snapshots.
//! - `snapshot`: pure functions from backups to per-node summaries.
//! - `metrics`: renders a snapshot as the Prometheus exposition at scrape time.
//! - `server`: the HTTP endpoints (/metrics, /healthz, /readyz, /).
//! - `http`: accept loop and graceful shutdown shared by server and fake API.
//! - `fake_api`: an in-process fake of the Alibaba API (real HTTP, real
//!   signature checks), used by `--demo` and the tests.
//! - `demo`: the sample instances `--demo` serves.
//! - `logging`: logfmt or JSON logs.
//! - `clock`, `secret`: injectable time; values that never print.

pub mod aliyun;
pub mod app;
pub mod clock;
pub mod config;
pub mod demo;
pub mod fake_api;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod poller;
pub mod products;
pub mod secret;
pub mod server;
pub mod snapshot;

pub use app::run;
