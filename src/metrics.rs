//! Snapshot → Prometheus exposition. The backup gauges are built from the
//! current snapshot at every scrape (so an instance no longer watched leaves
//! no series behind, and ages are computed against "now"); the API counters
//! and the latency histogram are ordinary live metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::sync::watch;

use crate::aliyun::CallObserver;
use crate::clock::Clock;
use crate::snapshot::Snapshot;

/// The Prometheus text format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const NS: &str = "aliyun_backup_";
const CACHED: &str = "(from the exporter's last cached poll)";

/// The metric families built from snapshots: (name, help, labels).
const SNAPSHOT_FAMILIES: &[(&str, &str, &[&str])] = &[
    ("last_success_timestamp_seconds", "End time of the newest successful backup in the lookback window", NODE),
    ("last_success_age_seconds", "Seconds since the end of the newest successful backup, computed at scrape time", NODE),
    ("last_success_size_bytes", "Size of the newest successful backup", NODE),
    ("last_success_duration_seconds", "Duration (end - start) of the newest successful backup", NODE),
    ("last_success_info", "Kind of the newest successful backup; always 1", INFO),
    ("last_attempt_timestamp_seconds", "Start time of the newest backup of any status", NODE),
    ("last_attempt_success", "1 if the newest backup of any status succeeded, else 0", NODE),
    ("backups", "Backups in the lookback window by status", STATUS),
    ("poll_success", "1 if the last poll of the instance succeeded, else 0", COMMON),
    ("poll_success_timestamp_seconds", "When the instance was last polled successfully", COMMON),
    ("poll_cycle_duration_seconds", "From the first start to the last finish of the last complete round of polls over all instances", &[]),
];
const COMMON: &[&str] = &["product", "region_id", "instance_id"];
const NODE: &[&str] = &["product", "region_id", "instance_id", "node_id"];
const INFO: &[&str] = &[
    "product",
    "region_id",
    "instance_id",
    "node_id",
    "backup_type",
    "backup_mode",
    "backup_method",
];
const STATUS: &[&str] = &["product", "region_id", "instance_id", "status"];

/// Counts and times every API attempt; the client reports to it.
pub struct ApiMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl CallObserver for ApiMetrics {
    fn attempt(&self, action: &str, code: &str, elapsed: Duration) {
        self.requests.with_label_values(&[action, code]).inc();
        self.duration
            .with_label_values(&[action])
            .observe(elapsed.as_secs_f64());
    }
}

/// Builds the registry: snapshot gauges, API metrics, build info and, when
/// `process` is set, the standard `process_*` metrics.
pub fn registry(
    snapshots: watch::Receiver<Arc<Snapshot>>,
    clock: Arc<dyn Clock>,
    process: bool,
) -> Result<(Registry, Arc<ApiMetrics>), prometheus::Error> {
    let registry = Registry::new();
    registry.register(Box::new(SnapshotCollector::new(snapshots, clock)?))?;

    let requests = IntCounterVec::new(
        Opts::new(
            format!("{NS}api_requests_total"),
            "Alibaba Cloud API requests, every attempt, by action and result code",
        ),
        &["action", "code"],
    )?;
    let duration = HistogramVec::new(
        HistogramOpts::new(
            format!("{NS}api_request_duration_seconds"),
            "Alibaba Cloud API request latency, every attempt",
        )
        .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
        &["action"],
    )?;
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(duration.clone()))?;

    let build_info = IntGaugeVec::new(
        Opts::new(
            format!("{NS}exporter_build_info"),
            "Version and revision of the exporter; always 1",
        ),
        &["version", "revision"],
    )?;
    build_info
        .with_label_values(&[
            env!("CARGO_PKG_VERSION"),
            option_env!("GIT_REVISION").unwrap_or("unknown"),
        ])
        .set(1);
    registry.register(Box::new(build_info))?;

    #[cfg(target_os = "linux")]
    if process {
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = process;

    Ok((registry, Arc::new(ApiMetrics { requests, duration })))
}

/// Renders the registry in the text format.
pub fn render(registry: &Registry) -> Result<String, prometheus::Error> {
    let mut out = Vec::with_capacity(16 * 1024);
    TextEncoder::new().encode(&registry.gather(), &mut out)?;
    String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
}

/// Builds the backup gauges from the latest snapshot at scrape time.
struct SnapshotCollector {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    clock: Arc<dyn Clock>,
    descs: Vec<Desc>,
}

impl SnapshotCollector {
    fn new(
        snapshots: watch::Receiver<Arc<Snapshot>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, prometheus::Error> {
        let descs = SNAPSHOT_FAMILIES
            .iter()
            .map(|(name, help, labels)| {
                Desc::new(
                    format!("{NS}{name}"),
                    format!("{help} {CACHED}."),
                    labels.iter().map(|l| l.to_string()).collect(),
                    HashMap::new(),
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(SnapshotCollector {
            snapshots,
            clock,
            descs,
        })
    }
}

impl Collector for SnapshotCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let snapshot = self.snapshots.borrow().clone();
        let now = self.clock.now();
        let mut families: Vec<Vec<Metric>> = vec![Vec::new(); SNAPSHOT_FAMILIES.len()];
        let [ts, age, size, duration, info, attempt_ts, attempt_ok, backups, poll_ok, poll_ts, cycle] =
            &mut families[..]
        else {
            unreachable!("one vector per family")
        };
        let seconds = |t: chrono::DateTime<chrono::Utc>| t.timestamp_millis() as f64 / 1000.0;
        let region = snapshot.region_id.as_str();
        for (instance_id, view) in &snapshot.instances {
            let common = [
                ("product", snapshot.product),
                ("region_id", region),
                ("instance_id", instance_id.as_str()),
            ];
            poll_ok.push(gauge(
                &common,
                if view.last_poll_success { 1.0 } else { 0.0 },
            ));
            if let Some(at) = view.last_success_poll_at {
                poll_ts.push(gauge(&common, seconds(at)));
            }
            let Some(summary) = &view.summary else {
                continue;
            };
            for (status, count) in &summary.counts {
                let labels = [common[0], common[1], common[2], ("status", status.as_str())];
                backups.push(gauge(&labels, *count as f64));
            }
            for (node_id, node) in &summary.nodes {
                let labels = [
                    common[0],
                    common[1],
                    common[2],
                    ("node_id", node_id.as_str()),
                ];
                if let Some(last) = &node.last_success {
                    ts.push(gauge(&labels, seconds(last.end)));
                    age.push(gauge(
                        &labels,
                        (now - last.end).num_milliseconds() as f64 / 1000.0,
                    ));
                    if let Some(bytes) = last.size_bytes {
                        size.push(gauge(&labels, bytes as f64));
                    }
                    duration.push(gauge(
                        &labels,
                        (last.end - last.start).num_milliseconds() as f64 / 1000.0,
                    ));
                    let kind = [
                        labels[0],
                        labels[1],
                        labels[2],
                        labels[3],
                        ("backup_type", last.backup_type.as_str()),
                        ("backup_mode", last.backup_mode.as_str()),
                        ("backup_method", last.backup_method.as_str()),
                    ];
                    info.push(gauge(&kind, 1.0));
                }
                if let Some(attempt) = &node.last_attempt {
                    attempt_ts.push(gauge(&labels, seconds(attempt.start)));
                    attempt_ok.push(gauge(&labels, if attempt.success { 1.0 } else { 0.0 }));
                }
            }
        }
        if let Some(secs) = snapshot.poll_cycle_seconds {
            cycle.push(gauge(&[], secs));
        }
        SNAPSHOT_FAMILIES
            .iter()
            .zip(families)
            .map(|((name, help, _), metrics)| {
                let mut family = MetricFamily::default();
                family.set_name(format!("{NS}{name}"));
                family.set_help(format!("{help} {CACHED}."));
                family.set_field_type(MetricType::GAUGE);
                family.set_metric(metrics);
                family
            })
            .collect()
    }
}

fn gauge(labels: &[(&str, &str)], value: f64) -> Metric {
    let pairs = labels
        .iter()
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name(name.to_string());
            pair.set_value(value.to_string());
            pair
        })
        .collect();
    let mut metric = Metric::from_label(pairs);
    let mut g = Gauge::default();
    g.set_value(value);
    metric.set_gauge(g);
    metric
}
