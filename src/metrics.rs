//! Snapshot → Prometheus exposition. The backup gauges are written from the
//! current snapshot at every scrape (so an instance no longer watched leaves
//! no series behind, and ages are computed against "now"); the API counters
//! and the latency histogram are ordinary live metrics.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use tokio::sync::watch;

use crate::aliyun::credentials::refresh::RefreshObserver;
use crate::aliyun::{CallLabels, CallObserver};
use crate::clock::Clock;
use crate::config::TagLabel;
use crate::snapshot::{InstanceView, NodeSummary, Snapshot};
use crate::targets::InstanceKey;

/// The Prometheus text format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const NS: &str = "aliyun_backup_";

/// The HELP texts of the families built from snapshots.
const SNAPSHOT_FAMILIES: &[(&str, &str)] = &[
    ("last_success_timestamp_seconds", "End time of the newest successful backup in the lookback window (from the exporter's last cached poll)."),
    ("last_success_age_seconds", "Seconds since the end of the newest successful backup, computed at scrape time (from the exporter's last cached poll)."),
    ("last_success_size_bytes", "Size of the newest successful backup (from the exporter's last cached poll)."),
    ("last_success_duration_seconds", "Duration (end - start) of the newest successful backup (from the exporter's last cached poll)."),
    ("last_success_info", "Kind of the newest successful backup; always 1 (from the exporter's last cached poll)."),
    ("last_attempt_timestamp_seconds", "Start time of the newest backup of any status (from the exporter's last cached poll)."),
    ("last_attempt_success", "1 if the newest backup of any status succeeded, else 0 (from the exporter's last cached poll)."),
    ("backups", "Backups in the lookback window by status (from the exporter's last cached poll)."),
    ("poll_success", "1 if the last poll of the instance succeeded, else 0 (from the exporter's last cached poll)."),
    ("poll_success_timestamp_seconds", "When the instance was last polled successfully (from the exporter's last cached poll)."),
    ("poll_cycle_duration_seconds", "From the first start to the last finish of the last complete round of polls over all instances (from the exporter's last cached poll)."),
    ("policy_info", "An instance's backup policy: the weekdays it backs up on and its window (DescribeBackupPolicy); always 1."),
    ("policy_max_interval_seconds", "Longest gap between two consecutive scheduled backup days of the instance's weekly policy."),
    ("policy_retention_seconds", "How long the instance's backups are kept: BackupRetentionPeriod (days) in seconds."),
    ("policy_log_backup_enabled", "1 if the instance's log (incremental, AOF) backup is on (EnableBackupLog), else 0."),
    ("expected_max_age_seconds", "Age above which the instance's newest successful backup is overdue: from its backup policy (source=\"policy\": longest gap + window + --backup.grace) or --backup.max-age (source=\"default\") when the policy is unknown."),
    ("instance_info", "What DescribeInstances says of a watched instance; always 1 (from the exporter's last discovery round)."),
    ("instance_created_timestamp_seconds", "When the instance was created: DescribeInstances' CreateTime (from the exporter's last discovery round)."),
    ("discovery_success", "1 if the last discovery round of the account and region succeeded (DescribeInstances; DescribeRegions for region_id=\"all\"), else 0."),
    ("discovery_timestamp_seconds", "When discovery last succeeded for the account and region."),
    ("targets", "Instances this replica polls, by account and region; instances in Creating are not counted."),
];

/// Counts and times every API attempt; the client reports to it.
pub struct ApiMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl CallObserver for ApiMetrics {
    fn attempt(&self, call: &CallLabels, action: &str, code: &str, elapsed: Duration) {
        let (account, region) = (&*call.account, &*call.region_id);
        self.requests
            .with_label_values(&[account, region, action, code])
            .inc();
        self.duration
            .with_label_values(&[account, region, action])
            .observe(elapsed.as_secs_f64());
    }
}

/// Credentials refreshes and the expiry of the credentials in use, per
/// account (each has its own source, and maybe its own role).
pub struct CredentialsMetrics {
    expiry: GaugeVec,
    refreshes: IntCounterVec,
}

impl CredentialsMetrics {
    /// The observer of one account's credentials.
    pub fn for_account(self: &Arc<Self>, account: &str) -> Arc<dyn RefreshObserver> {
        Arc::new(AccountCredentialsMetrics {
            account: account.to_string(),
            metrics: self.clone(),
        })
    }
}

struct AccountCredentialsMetrics {
    account: String,
    metrics: Arc<CredentialsMetrics>,
}

impl RefreshObserver for AccountCredentialsMetrics {
    fn refreshed(
        &self,
        provider: &'static str,
        ok: bool,
        expiration: Option<chrono::DateTime<chrono::Utc>>,
    ) {
        let result = if ok { "success" } else { "failure" };
        let account = self.account.as_str();
        self.metrics
            .refreshes
            .with_label_values(&[account, provider, result])
            .inc();
        if let Some(expiration) = expiration {
            self.metrics
                .expiry
                .with_label_values(&[account, provider])
                .set(expiration.timestamp() as f64);
        }
    }
}

/// The exporter's own state: its shard and its config reloads.
pub struct ExporterMetrics {
    poll_interval: Gauge,
    shard_ordinal: IntGauge,
    total_shards: IntGauge,
    reload_ok: IntGauge,
    reload_ok_at: Gauge,
}

impl ExporterMetrics {
    /// `--poll.interval`, so that a staleness rule needs no constant.
    pub fn set_poll_interval(&self, interval: Duration) {
        self.poll_interval.set(interval.as_secs_f64());
    }

    pub fn set_shard(&self, index: u32, count: u32) {
        self.shard_ordinal.set(i64::from(index));
        self.total_shards.set(i64::from(count));
    }

    /// After loading the config (at start-up, on SIGHUP or `/-/reload`).
    pub fn config_loaded(&self, ok: bool, at: chrono::DateTime<chrono::Utc>) {
        self.reload_ok.set(i64::from(ok));
        if ok {
            self.reload_ok_at.set(at.timestamp() as f64);
        }
    }
}

/// The live metrics and the handles that feed them.
pub struct Live {
    pub registry: Registry,
    pub api: Arc<ApiMetrics>,
    pub credentials: Arc<CredentialsMetrics>,
    pub exporter: Arc<ExporterMetrics>,
}

/// Builds the registry of live metrics: API and credentials metrics, build
/// info and, when `process` is set, the standard `process_*` metrics.
pub fn registry(process: bool) -> Result<Live, prometheus::Error> {
    let registry = Registry::new();
    let requests = IntCounterVec::new(
        Opts::new(
            format!("{NS}api_requests_total"),
            "Alibaba Cloud API requests, every attempt, by account, region, action and result code",
        ),
        &["account", "region_id", "action", "code"],
    )?;
    let duration = HistogramVec::new(
        HistogramOpts::new(
            format!("{NS}api_request_duration_seconds"),
            "Alibaba Cloud API request latency, every attempt",
        )
        .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
        &["account", "region_id", "action"],
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
            "When the temporary credentials in use expire, by account and provider",
        ),
        &["account", "provider"],
    )?;
    let refreshes = IntCounterVec::new(
        Opts::new(
            format!("{NS}credentials_refreshes_total"),
            "Refreshes of temporary credentials, by account, provider and result",
        ),
        &["account", "provider", "result"],
    )?;
    registry.register(Box::new(expiry.clone()))?;
    registry.register(Box::new(refreshes.clone()))?;

    let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
        let gauge = IntGauge::new(format!("{NS}{name}"), help)?;
        registry.register(Box::new(gauge.clone()))?;
        Ok(gauge)
    };
    let exporter = ExporterMetrics {
        poll_interval: {
            let g = Gauge::new(
                format!("{NS}poll_interval_seconds"),
                "Time between two polls of an instance (--poll.interval)",
            )?;
            registry.register(Box::new(g.clone()))?;
            g
        },
        shard_ordinal: gauge(
            "exporter_shard_ordinal",
            "This replica's shard (--shard.index or the StatefulSet ordinal)",
        )?,
        total_shards: gauge(
            "exporter_total_shards",
            "Replicas sharing the instances (--shard.count)",
        )?,
        reload_ok: gauge(
            "exporter_config_last_reload_successful",
            "1 if the last load of the config file succeeded, else 0",
        )?,
        reload_ok_at: {
            let g = Gauge::new(
                format!("{NS}exporter_config_last_reload_success_timestamp_seconds"),
                "When the config was last loaded successfully",
            )?;
            registry.register(Box::new(g.clone()))?;
            g
        },
    };
    exporter.set_shard(0, 1);

    Ok(Live {
        registry,
        api: Arc::new(ApiMetrics { requests, duration }),
        credentials: Arc::new(CredentialsMetrics { expiry, refreshes }),
        exporter: Arc::new(exporter),
    })
}

/// Everything `/metrics` shows: the live metrics of the registry, then the
/// backup gauges of the current snapshot.
pub struct Exposition {
    pub registry: Registry,
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub clock: Arc<dyn Clock>,
    /// Tag keys shown as labels on `aliyun_backup_instance_info`.
    pub tag_labels: Vec<TagLabel>,
}

impl Exposition {
    /// Renders the whole exposition in the text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let snapshot = self.snapshots.borrow().clone();
        let mut out = Vec::with_capacity(64 * 1024 + snapshot.targets.targets.len() * 2560);
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        let mut text = String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))?;
        write_snapshot(&mut text, &snapshot, self.clock.now(), &self.tag_labels);
        Ok(text)
    }
}

/// Writes the snapshot's gauges in the text format, straight from the
/// snapshot: with a thousand instances this is several times faster, and
/// far lighter on memory, than building the client library's metric
/// objects for every scrape. Families without samples are left out.
pub fn write_snapshot(
    out: &mut String,
    snapshot: &Snapshot,
    now: chrono::DateTime<chrono::Utc>,
    tag_labels: &[TagLabel],
) {
    let seconds = |t: chrono::DateTime<chrono::Utc>| t.timestamp_millis() as f64 / 1000.0;
    let millis = |d: chrono::TimeDelta| d.num_milliseconds() as f64 / 1000.0;
    let common = |key: &InstanceKey| {
        let mut labels = Labels::default();
        labels
            .add("product", key.product)
            .add("region_id", &key.region_id)
            .add("instance_id", &key.instance_id);
        labels
    };
    // Each label set is rendered once per scrape and shared by the families:
    // every watched instance's, with its facts (polled or not) and its info.
    type Watched<'s> = (
        Labels,
        &'s InstanceKey,
        Option<&'s InstanceView>,
        Option<&'s crate::model::InstanceInfo>,
        crate::model::BackupApi,
    );
    // Both maps are sorted by key, and views exist only for targets: one
    // walk pairs them, without a lookup per instance.
    let mut views = snapshot.instances.iter().peekable();
    let watched: Vec<Watched> = snapshot
        .targets
        .targets
        .iter()
        .filter_map(|(key, target)| {
            while views.next_if(|(k, _)| *k < key).is_some() {}
            let view = views.next_if(|(k, _)| *k == key).map(|(_, v)| v.as_ref());
            let info = target.info.as_deref();
            // The call in use: the poller's (it may have switched), else the plan.
            let api = view.map_or(target.backup_api, |v| v.backup_api);
            (view.is_some() || info.is_some()).then(|| (common(key), key, view, info, api))
        })
        .collect();
    let instances: Vec<(&Labels, &InstanceView)> = watched
        .iter()
        .filter_map(|(labels, _, view, _, _)| view.map(|v| (labels, v)))
        .collect();
    let nodes: Vec<(Labels, &NodeSummary)> = instances
        .iter()
        .copied()
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
            .copied()
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
            .copied()
            .map(|(l, v)| (l, None, bool_value(v.last_poll_success))),
    );
    w.write(
        "poll_success_timestamp_seconds",
        instances
            .iter()
            .copied()
            .filter_map(|(l, v)| v.last_success_poll_at.map(|at| (l, None, seconds(at)))),
    );
    // What the backup policy says, and what is expected of the instance.
    let policies = || {
        instances
            .iter()
            .copied()
            .filter_map(|(l, v)| v.policy.as_deref().map(|p| (l, p)))
    };
    w.write(
        "policy_info",
        policies().map(|(l, p)| {
            let mut extra = Labels::default();
            extra.add("days", &p.days.label()).add("window", &p.window);
            (l, Some(extra), 1.0)
        }),
    );
    w.write(
        "policy_max_interval_seconds",
        policies().filter_map(|(l, p)| p.max_interval().map(|d| (l, None, d.as_secs_f64()))),
    );
    w.write(
        "policy_retention_seconds",
        policies().filter_map(|(l, p)| p.retention_days.map(|d| (l, None, d as f64 * 86400.0))),
    );
    w.write(
        "policy_log_backup_enabled",
        policies().filter_map(|(l, p)| p.log_backup_enabled.map(|on| (l, None, bool_value(on)))),
    );
    w.write(
        "expected_max_age_seconds",
        instances.iter().copied().map(|(l, v)| {
            let mut extra = Labels::default();
            extra.add("source", v.expected_source.label());
            (l, Some(extra), v.expected_max_age.as_secs_f64())
        }),
    );
    let no_labels = Labels::default();
    w.write(
        "poll_cycle_duration_seconds",
        snapshot.poll_cycle_seconds.map(|s| (&no_labels, None, s)),
    );

    // What discovery knows: every watched instance with its info, polled or not.
    let infos: Vec<(
        &Labels,
        &crate::model::InstanceInfo,
        &InstanceKey,
        crate::model::BackupApi,
    )> = watched
        .iter()
        .filter_map(|(labels, key, _, info, api)| info.map(|info| (labels, info, *key, *api)))
        .collect();
    w.write(
        "instance_info",
        infos.iter().copied().map(|(l, info, key, api)| {
            let mut extra = Labels::default();
            extra
                .add("account", &key.account)
                .add("instance_name", &info.name)
                .add("zone_id", &info.zone_id)
                .add("engine_version", &info.engine_version)
                .add("architecture", &info.architecture)
                .add("instance_class", &info.instance_class)
                .add("status", &info.status)
                .add("backup_api", api.label());
            for tag in tag_labels {
                if let Some((_, value)) = info.tags.iter().find(|(k, _)| *k == tag.key) {
                    extra.add(&tag.label, value);
                }
            }
            (l, Some(extra), 1.0)
        }),
    );
    w.write(
        "instance_created_timestamp_seconds",
        infos
            .iter()
            .copied()
            .filter_map(|(l, info, _, _)| info.created.map(|at| (l, None, seconds(at)))),
    );
    let regions: Vec<(Labels, &crate::targets::DiscoveryStatus)> = snapshot
        .targets
        .discovery
        .iter()
        .map(|((account, product, region), status)| {
            let mut labels = Labels::default();
            labels
                .add("account", account)
                .add("product", product)
                .add("region_id", region);
            (labels, status)
        })
        .collect();
    w.write(
        "discovery_success",
        regions
            .iter()
            .map(|(l, status)| (l, None, bool_value(status.success))),
    );
    w.write(
        "discovery_timestamp_seconds",
        regions
            .iter()
            .filter_map(|(l, status)| status.last_success.map(|at| (l, None, seconds(at)))),
    );
    let counts: Vec<(Labels, usize)> = snapshot
        .targets
        .counts()
        .into_iter()
        .map(|((account, product, region), n)| {
            let mut labels = Labels::default();
            labels
                .add("account", &account)
                .add("product", product)
                .add("region_id", &region);
            (labels, n)
        })
        .collect();
    w.write("targets", counts.iter().map(|(l, n)| (l, None, *n as f64)));
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
        // The text format's escapes for label values (rarely needed).
        if !value.contains(['\\', '"', '\n']) {
            self.0.push_str(value);
            self.0.push('"');
            return self;
        }
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
        let _ = writeln!(self.out, "# HELP {NS}{name} {help}");
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
        write_snapshot(&mut out, &Snapshot::default(), chrono::Utc::now(), &[]);
        assert_eq!(out, "");
    }
}
