//! The fake Alibaba API on its own, for outside clients (Alibaba's Python
//! SDK in CI, the benchmark, curl):
//!
//!     cargo run --example fake_api -- --listen 127.0.0.1:18080 --demo
//!     cargo run --example fake_api -- --demo --products
//!     cargo run --release --example fake_api -- --instances 1000 --product-instances 100
//!     cargo run --release --example fake_api -- --instances 1000
//!     cargo run --release --example fake_api -- --instances 5000 \
//!         --regions cn-hangzhou,cn-shanghai --latency 50ms
//!     cargo run --release --example fake_api -- --instances 10000 \
//!         --cluster-every 10 --latency 50ms --request-log /tmp/requests.log
//!
//! It prints `listening on http://ADDR` once it accepts requests, and runs
//! until interrupted.

use std::net::SocketAddr;
use std::time::Duration;

use aliyun_backup_exporter::clock;
use aliyun_backup_exporter::demo;
use aliyun_backup_exporter::fake_api::scenario::product_samples;
use aliyun_backup_exporter::fake_api::{FakeApi, FakeBackup, FakeInfo, FakeInstance, FakeKey};
use chrono::Utc;
use clap::Parser;

#[derive(Parser)]
#[command(
    about = "A fake Alibaba Cloud database API (R-kvstore, RDS, MongoDB, PolarDB) that checks real signatures"
)]
struct Args {
    /// Address to listen on (loopback only is sensible).
    #[arg(long, default_value = "127.0.0.1:18080")]
    listen: SocketAddr,
    /// AccessKey ID accepted.
    #[arg(long, default_value = "testid")]
    access_key_id: String,
    /// AccessKey secret accepted.
    #[arg(long, default_value = "testsecret")]
    access_key_secret: String,
    /// If set, requests must carry this SecurityToken.
    #[arg(long)]
    security_token: Option<String>,
    /// Serve the demo's sample instances (and accept the demo's key too).
    #[arg(long)]
    demo: bool,
    /// Serve this many instances `r-bench-0000`… with a week of daily
    /// backups; every `--cluster-every`th is a classic cluster with two
    /// shard nodes.
    #[arg(long, default_value_t = 0)]
    instances: usize,
    /// Every Kth generated instance (the first, the K+1th…) is a two-shard
    /// classic cluster; 0 for none.
    #[arg(long, value_name = "K", default_value_t = 50)]
    cluster_every: usize,
    /// Also serve RDS, MongoDB and PolarDB sample instances (in cn-hangzhou,
    /// a week of daily backups, one failed instance per product, a sharded
    /// MongoDB cluster): `rm-demo-healthy`, `rm-demo-failed`,
    /// `dds-demo-replica`, `dds-demo-sharded` (shards `d-demo-shard-0`,
    /// `d-demo-shard-1`), `pc-demo-healthy`, `pc-demo-failed`.
    #[arg(long, env = "FAKE_API_PRODUCTS")]
    products: bool,
    /// Serve this many generated instances of each of RDS, MongoDB and
    /// PolarDB (`rm-bench-0000`, `dds-bench-0000`, `pc-bench-0000`…), with a
    /// week of daily backups, over `--regions`.
    #[arg(long, value_name = "N", default_value_t = 0)]
    product_instances: usize,
    /// Regions the generated instances are spread over, round-robin.
    #[arg(long, value_delimiter = ',', default_value = "cn-hangzhou")]
    regions: Vec<String>,
    /// Every answer waits this long first, e.g. `50ms`.
    #[arg(long, value_parser = humantime::parse_duration)]
    latency: Option<Duration>,
    /// Write to FILE (truncated first) one line per request, as it arrives:
    /// monotonic seconds since the fake started, with microseconds, and the
    /// action, e.g. `12.345678 DescribeBackups`.
    #[arg(long, value_name = "FILE")]
    request_log: Option<std::path::PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut keys = vec![FakeKey {
        id: args.access_key_id.clone(),
        secret: args.access_key_secret.clone(),
        security_token: args.security_token.clone(),
        account: "main".into(),
    }];
    if args.demo {
        keys.push(demo::key());
    }
    let fake = FakeApi::start_on(args.listen, keys, clock::system()).await?;
    if let Some(latency) = args.latency {
        fake.set_latency(latency);
    }
    if let Some(path) = &args.request_log {
        let file = std::fs::File::create(path)?;
        // A line at a time: the benchmark stops the fake with a signal.
        fake.log_requests(Box::new(std::io::LineWriter::new(file)));
    }
    let now = Utc::now();
    if args.demo {
        for (id, instance) in demo::instances(now) {
            fake.set_instance(id, instance);
        }
    }
    let regions: Vec<&str> = args
        .regions
        .iter()
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .collect();
    let regions = if regions.is_empty() {
        vec!["cn-hangzhou"]
    } else {
        regions
    };
    for i in 0..args.instances {
        let id = format!("r-bench-{i:04}");
        let cluster = args.cluster_every > 0 && i % args.cluster_every == 0;
        let nodes: Vec<String> = if cluster {
            vec![format!("{id}-db-0"), format!("{id}-db-1")]
        } else {
            vec![id.clone()]
        };
        let backups = nodes
            .iter()
            .flat_map(|node| {
                (0..7).map(move |d| {
                    let start = now - chrono::Duration::days(d) - chrono::Duration::hours(2);
                    FakeBackup::success(node, start, Duration::from_secs(300), 1 << 30)
                })
            })
            .collect();
        let region = regions[i % regions.len()];
        let info = FakeInfo {
            name: format!("bench-{i:04}"),
            tags: vec![("env".into(), "bench".into())],
            ..if cluster {
                FakeInfo {
                    architecture: "cluster".into(),
                    instance_class: "redis.logic.sharding.2g.2db.0rodb.4proxy.default".into(),
                    ..FakeInfo::in_region(region)
                }
            } else {
                FakeInfo::in_region(region)
            }
        };
        fake.set_instance(
            &id,
            FakeInstance {
                info,
                ..FakeInstance::with_backups(backups)
            },
        );
    }
    if args.products {
        for (id, instance) in product_samples(now) {
            fake.set_instance(&id, instance);
        }
    }
    for i in 0..args.product_instances {
        let region = regions[i % regions.len()];
        let week = |node: &str| -> Vec<FakeBackup> {
            (0..7)
                .map(|d| {
                    let start = now - chrono::Duration::days(d) - chrono::Duration::hours(2);
                    FakeBackup::success(node, start, Duration::from_secs(300), 1 << 30)
                })
                .collect()
        };
        let named = |mut instance: FakeInstance| {
            instance.info.name = format!("bench-{i:04}");
            instance.info.tags = vec![("env".into(), "bench".into())];
            instance
        };
        let rds = format!("rm-bench-{i:04}");
        let dds = format!("dds-bench-{i:04}");
        let polardb = format!("pc-bench-{i:04}");
        fake.set_instance(&rds, named(FakeInstance::rds(region, week("5882781"))));
        fake.set_instance(
            &dds,
            named(FakeInstance::mongodb_replica_set(region, week(&dds))),
        );
        fake.set_instance(
            &polardb,
            named(FakeInstance::polardb(region, week(&polardb))),
        );
    }
    println!("listening on {}", fake.endpoint());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
