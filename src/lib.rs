//! aliyun-backup-exporter: a Prometheus exporter for the backups of Alibaba
//! Cloud managed databases: ApsaraDB for Redis / Tair, RDS, MongoDB and
//! PolarDB.
//!
//! Layout (data flows one way: config → targets → poller → snapshot → /metrics):
//!
//! - `cli`: the raw command-line flags, each with an environment fallback.
//! - `config`: flags and the YAML config file → a validated `Config`
//!   (pure: the caller reads the file and the environment).
//! - `accounts`: each account's runtime: credentials, role, rate limit, clients.
//! - `targets`: the live set of watched instances: static lists plus
//!   discovery (DescribeRegions, each product's instance list) per account,
//!   product and region,
//!   this replica's shard of them, reloads.
//! - `poller`: polls each target on its schedule, at most N at once; owns
//!   all mutable state and publishes snapshots.
//! - `app`: wires the parts together; `run(config, shutdown)`.
//! - `aliyun`: the generic Alibaba Cloud RPC client (signing, retries, rate
//!   limit, errors, streaming and bounded lenient decoding) and the
//!   credentials chain.
//! - `products`: one file per database product behind one seam
//!   (`ProductApi`: list an instance's backups, discover a region's
//!   instances, read the backup policy), dispatched by `Product`: `kvstore`
//!   (Redis / Tair), `rds`, `mongodb` (one call per shard node), `polardb`;
//!   `common`, `backups` and `envelopes`: the decoders they share, driven by
//!   a description of each product's answer.
//! - `model`: product-neutral backup and instance records.
//! - `snapshot`: pure functions from backups to per-node summaries; the
//!   snapshot the HTTP side reads.
//! - `metrics`: the live metrics, and the Prometheus exposition of them and a
//!   snapshot, at scrape time.
//! - `exposition`: the text format (families, labels, numbers); `prerender`:
//!   each instance's series rendered once per change, copied by scrapes.
//! - `server`: the HTTP endpoints (/metrics, /healthz, /readyz, /, /-/reload).
//! - `http`: accept loop and graceful shutdown shared by server and fake API.
//! - `web`: `--web.config.file` (exporter-toolkit format): TLS, client
//!   certificates, basic auth, response headers, rate limit.
//! - `fake_api`: an in-process fake of the Alibaba API (real HTTP, real
//!   signature checks), used by `--demo` and the tests.
//! - `demo`: the sample instances `--demo` serves.
//! - `logging`: logfmt or JSON logs.
//! - `clock`, `secret`: injectable time; values that never print.

pub mod accounts;
pub mod aliyun;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connections;
pub mod demo;
pub mod exposition;
pub mod fake_api;
pub mod http;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod policy;
pub mod poller;
pub mod prerender;
pub mod products;
pub mod redact;
pub mod scrape;
pub mod secret;
pub mod server;
pub mod snapshot;
pub mod stall;
pub mod targets;
pub mod web;

pub use app::run;
