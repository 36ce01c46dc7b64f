//! Snapshot → Prometheus exposition. The backup gauges are written from the
//! current snapshot at every scrape (so an instance no longer watched leaves
//! no series behind, and ages are computed against "now"); the API counters
//! and the latency histogram are ordinary live metrics.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use tokio::sync::watch;

use crate::aliyun::credentials::refresh::RefreshObserver;
use crate::aliyun::CallObserver;
use crate::clock::Clock;
use crate::snapshot::{InstanceView, NodeSummary, Snapshot};

/// The Prometheus text format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const NS: &str = "aliyun_backup_";
const CACHED: &str = "(from the exporter's last cached poll)";

/// The HELP texts of the families built from snapshots.
const SNAPSHOT_FAMILIES: &[(&str, &str)] = &[
    ("last_success_timestamp_seconds", "End time of the newest successful backup in the lookback window"),
    ("last_success_age_seconds", "Seconds since the end of the newest successful backup, computed at scrape time"),
    ("last_success_size_bytes", "Size of the newest successful backup"),
    ("last_success_duration_seconds", "Duration (end - start) of the newest successful backup"),
    ("last_success_info", "Kind of the newest successful backup; always 1"),
    ("last_attempt_timestamp_seconds", "Start time of the newest backup of any status"),
    ("last_attempt_success", "1 if the newest backup of any status succeeded, else 0"),
    ("backups", "Backups in the lookback window by status"),
    ("poll_success", "1 if the last poll of the instance succeeded, else 0"),
    ("poll_success_timestamp_seconds", "When the instance was last polled successfully"),
    ("poll_cycle_duration_seconds", "From the first start to the last finish of the last complete round of polls over all instances"),
];

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

/// Credentials refreshes and the expiry of the credentials in use.
pub struct CredentialsMetrics {
    expiry: GaugeVec,
    refreshes: IntCounterVec,
}

impl RefreshObserver for CredentialsMetrics {
    fn refreshed(
        &self,
        provider: &'static str,
        ok: bool,
        expiration: Option<chrono::DateTime<chrono::Utc>>,
    ) {
        let result = if ok { "success" } else { "failure" };
        self.refreshes.with_label_values(&[provider, result]).inc();
        if let Some(expiration) = expiration {
            self.expiry
                .with_label_values(&[provider])
                .set(expiration.timestamp() as f64);
        }
    }
}

/// The live metrics and the handles that feed them.
pub struct Live {
    pub registry: Registry,
    pub api: Arc<ApiMetrics>,
    pub credentials: Arc<CredentialsMetrics>,
}

/// Builds the registry of live metrics: API and credentials metrics, build
/// info and, when `process` is set, the standard `process_*` metrics.
pub fn registry(process: bool) -> Result<Live, prometheus::Error> {
    let registry = Registry::new();
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

    let expiry = GaugeVec::new(
        Opts::new(
            format!("{NS}credentials_expiry_timestamp_seconds"),
            "When the temporary credentials in use expire",
        ),
        &["provider"],
    )?;
    let refreshes = IntCounterVec::new(
        Opts::new(
            format!("{NS}credentials_refreshes_total"),
            "Refreshes of temporary credentials, by provider and result",
        ),
        &["provider", "result"],
    )?;
    registry.register(Box::new(expiry.clone()))?;
    registry.register(Box::new(refreshes.clone()))?;

    Ok(Live {
        registry,
        api: Arc::new(ApiMetrics { requests, duration }),
        credentials: Arc::new(CredentialsMetrics { expiry, refreshes }),
    })
}

/// Everything `/metrics` shows: the live metrics of the registry, then the
/// backup gauges of the current snapshot.
pub struct Exposition {
    pub registry: Registry,
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub clock: Arc<dyn Clock>,
}

impl Exposition {
    /// Renders the whole exposition in the text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let snapshot = self.snapshots.borrow().clone();
        let mut out = Vec::with_capacity(64 * 1024 + snapshot.instances.len() * 2048);
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        let mut text = String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))?;
        write_snapshot(&mut text, &snapshot, self.clock.now());
        Ok(text)
    }
}

/// Writes the snapshot's gauges in the text format, straight from the
/// snapshot: with a thousand instances this is several times faster, and
/// far lighter on memory, than building the client library's metric
/// objects for every scrape. Families without samples are left out.
pub fn write_snapshot(out: &mut String, snapshot: &Snapshot, now: chrono::DateTime<chrono::Utc>) {
    let seconds = |t: chrono::DateTime<chrono::Utc>| t.timestamp_millis() as f64 / 1000.0;
    let millis = |d: chrono::TimeDelta| d.num_milliseconds() as f64 / 1000.0;
    let common = |instance_id: &str| {
        let mut labels = Labels::default();
        labels
            .add("product", snapshot.product)
            .add("region_id", &snapshot.region_id)
            .add("instance_id", instance_id);
        labels
    };
    // Each label set is rendered once per scrape and shared by the families.
    let instances: Vec<(Labels, &InstanceView)> = snapshot
        .instances
        .iter()
        .map(|(id, view)| (common(id), view.as_ref()))
        .collect();
    let nodes: Vec<(Labels, &NodeSummary)> = instances
        .iter()
        .filter_map(|(labels, view)| view.summary.as_ref().map(|s| (labels, s)))
        .flat_map(|(labels, summary)| {
            summary.nodes.iter().map(move |(node_id, node)| {
                let mut node_labels = labels.clone();
                node_labels.add("node_id", node_id);
                (node_labels, node)
            })
        })
        .collect();
    let last_success = || {
        nodes
            .iter()
            .filter_map(|(l, n)| n.last_success.as_ref().map(|s| (l, s)))
    };
    let last_attempt = || {
        nodes
            .iter()
            .filter_map(|(l, n)| n.last_attempt.as_ref().map(|a| (l, a)))
    };
    let mut w = FamilyWriter { out };

    w.write(
        "last_success_timestamp_seconds",
        last_success().map(|(l, s)| (l, None, seconds(s.end))),
    );
    w.write(
        "last_success_age_seconds",
        last_success().map(|(l, s)| (l, None, millis(now - s.end))),
    );
    w.write(
        "last_success_size_bytes",
        last_success().filter_map(|(l, s)| s.size_bytes.map(|b| (l, None, b as f64))),
    );
    w.write(
        "last_success_duration_seconds",
        last_success().map(|(l, s)| (l, None, millis(s.end - s.start))),
    );
    w.write(
        "last_success_info",
        last_success().map(|(l, s)| {
            let mut kind = Labels::default();
            kind.add("backup_type", &s.backup_type)
                .add("backup_mode", &s.backup_mode)
                .add("backup_method", &s.backup_method);
            (l, Some(kind), 1.0)
        }),
    );
    w.write(
        "last_attempt_timestamp_seconds",
        last_attempt().map(|(l, a)| (l, None, seconds(a.start))),
    );
    w.write(
        "last_attempt_success",
        last_attempt().map(|(l, a)| (l, None, bool_value(a.success))),
    );
    w.write(
        "backups",
        instances
            .iter()
            .filter_map(|(l, v)| v.summary.as_ref().map(|s| (l, s)))
            .flat_map(|(l, s)| {
                s.counts.iter().map(move |(status, count)| {
                    let mut extra = Labels::default();
                    extra.add("status", status);
                    (l, Some(extra), *count as f64)
                })
            }),
    );
    w.write(
        "poll_success",
        instances
            .iter()
            .map(|(l, v)| (l, None, bool_value(v.last_poll_success))),
    );
    w.write(
        "poll_success_timestamp_seconds",
        instances
            .iter()
            .filter_map(|(l, v)| v.last_success_poll_at.map(|at| (l, None, seconds(at)))),
    );
    let no_labels = Labels::default();
    w.write(
        "poll_cycle_duration_seconds",
        snapshot.poll_cycle_seconds.map(|s| (&no_labels, None, s)),
    );
}

fn bool_value(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// Label pairs already in the text format, without braces: `a="x",b="y"`.
#[derive(Clone, Default)]
struct Labels(String);

impl Labels {
    fn add(&mut self, name: &str, value: &str) -> &mut Self {
        if !self.0.is_empty() {
            self.0.push(',');
        }
        self.0.push_str(name);
        self.0.push_str("=\"");
        // The text format's escapes for label values.
        for c in value.chars() {
            match c {
                '\\' => self.0.push_str("\\\\"),
                '"' => self.0.push_str("\\\""),
                '\n' => self.0.push_str("\\n"),
                c => self.0.push(c),
            }
        }
        self.0.push('"');
        self
    }
}

struct FamilyWriter<'a> {
    out: &'a mut String,
}

impl FamilyWriter<'_> {
    /// Writes one gauge family, HELP and TYPE first, unless it has no
    /// sample. Each sample: shared labels, its own extra labels, the value.
    fn write<'l>(
        &mut self,
        name: &str,
        samples: impl IntoIterator<Item = (&'l Labels, Option<Labels>, f64)>,
    ) {
        let help = SNAPSHOT_FAMILIES
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, h)| h);
        let mut samples = samples.into_iter().peekable();
        if samples.peek().is_none() {
            return;
        }
        let _ = writeln!(self.out, "# HELP {NS}{name} {help} {CACHED}.");
        let _ = writeln!(self.out, "# TYPE {NS}{name} gauge");
        for (labels, extra, value) in samples {
            self.out.push_str(NS);
            self.out.push_str(name);
            let extra = extra.as_ref().map_or("", |e| e.0.as_str());
            if !labels.0.is_empty() || !extra.is_empty() {
                self.out.push('{');
                self.out.push_str(&labels.0);
                if !labels.0.is_empty() && !extra.is_empty() {
                    self.out.push(',');
                }
                self.out.push_str(extra);
                self.out.push('}');
            }
            self.out.push(' ');
            write_value(self.out, value);
            self.out.push('\n');
        }
    }
}

fn write_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut labels = Labels::default();
        labels.add("a", "x\"y\\z\nw").add("b", "plain");
        assert_eq!(labels.0, r#"a="x\"y\\z\nw",b="plain""#);
    }

    #[test]
    fn values_in_the_text_format() {
        let mut out = String::new();
        for v in [1.0, 0.25, 1795658404.0, f64::INFINITY, f64::NAN] {
            write_value(&mut out, v);
            out.push(' ');
        }
        assert_eq!(out, "1 0.25 1795658404 +Inf NaN ");
    }

    #[test]
    fn an_empty_snapshot_writes_nothing() {
        let mut out = String::new();
        write_snapshot(&mut out, &Snapshot::default(), chrono::Utc::now());
        assert_eq!(out, "");
    }
}
