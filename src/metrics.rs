//! The live metrics (API calls, credentials, the exporter's own state) and
//! `Exposition`: those plus the snapshot's gauges (`exposition.rs`), as a
//! string or as a scrape's streamed body (`scrape.rs`).

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use tokio::sync::{mpsc, watch};

use crate::aliyun::credentials::refresh::RefreshObserver;
use crate::aliyun::{CallLabels, CallObserver};
use crate::clock::Clock;
use crate::config::TagLabel;
use crate::exposition::Sink;
use crate::http::{self, Body};
use crate::prerender::Rendered;
use crate::scrape::{ChunkSink, GzipSink, MemberCache, RenderedBody, CHUNKS_IN_FLIGHT};
use crate::snapshot::Snapshot;

/// The Prometheus text format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const NS: &str = "aliyun_backup_";

/// Counts and times every API attempt; the client reports to it.
pub struct ApiMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    /// The `code` values seen so far: an API that answered a new error code
    /// at every call would otherwise make a new series at every call.
    codes: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Distinct `code` values kept; later new ones are counted as `other`.
pub const MAX_CODES: usize = 50;

impl ApiMetrics {
    /// `code` if it is known or there is room for it, else `other` (said
    /// once in the log).
    fn code_label<'c>(&self, code: &'c str) -> &'c str {
        let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
        if codes.contains(code) {
            return code;
        }
        if codes.len() < MAX_CODES {
            codes.insert(code.to_string());
            return code;
        }
        if codes.insert("other".to_string()) {
            tracing::warn!(
                max = MAX_CODES,
                "the API answered more distinct error codes than kept as labels; later new ones are counted as code=\"other\""
            );
        }
        "other"
    }
}

impl CallObserver for ApiMetrics {
    fn attempt(&self, call: &CallLabels, action: &str, code: &str, elapsed: Duration) {
        let (account, region) = (&*call.account, &*call.region_id);
        let code = self.code_label(code);
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
        api: Arc::new(ApiMetrics {
            requests,
            duration,
            codes: Default::default(),
        }),
        credentials: Arc::new(CredentialsMetrics { expiry, refreshes }),
        exporter: Arc::new(exporter),
    })
}

/// A scrape renders a newer snapshot than the cached form's only if that
/// form is at least this old. The poller publishes a snapshot every 200 ms
/// while polls finish; scrapes that overlap (an HA pair, several
/// Prometheus servers, a slow reader) then share one rendered form instead
/// of each keeping its own alive (megabytes at 10,000 instances). A scrape
/// may so miss the polls of the last second, which nobody scraping every
/// 15 s or more can tell.
const RENDER_EVERY: Duration = Duration::from_secs(1);

/// `rendered` may be written for a scrape of `snapshot`: made from it, or
/// less than `reuse` ago.
fn serves(rendered: &Rendered, snapshot: &Arc<Snapshot>, reuse: Duration) -> bool {
    rendered.is_of(snapshot) || rendered.age() < reuse
}

/// Everything `/metrics` shows: the live metrics of the registry, then the
/// backup gauges of the current snapshot.
pub struct Exposition {
    registry: Registry,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    clock: Arc<dyn Clock>,
    /// Tag keys shown as labels on `aliyun_backup_instance_info`.
    tag_labels: Vec<TagLabel>,
    gzip_members: MemberCache,
    renders: Arc<tokio::sync::Semaphore>,
    /// The instances of the latest snapshot scraped, rendered: a scrape
    /// renders again only the instances that changed since.
    rendered: std::sync::Mutex<Option<Arc<Rendered>>>,
}

impl Exposition {
    pub fn new(
        registry: Registry,
        snapshots: watch::Receiver<Arc<Snapshot>>,
        clock: Arc<dyn Clock>,
        tag_labels: Vec<TagLabel>,
    ) -> Self {
        Exposition {
            registry,
            snapshots,
            clock,
            tag_labels,
            gzip_members: MemberCache::default(),
            rendered: Default::default(),
            renders: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
        }
    }

    /// The live metrics in the text format (small: the registry's).
    fn registry_text(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::with_capacity(64 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }

    /// The instances of `snapshot`, rendered: those of the last scrape,
    /// with the instances that changed since rendered again (while one
    /// scrape does that, another waits for it rather than doing it twice).
    /// The cache gives up its reference first, so that the previous form
    /// is freed family by family as it is copied when no scrape still
    /// reads it.
    /// With `reuse`, a form made less than `RENDER_EVERY` ago is taken
    /// even if a newer snapshot came since.
    fn rendered(&self, snapshot: &Arc<Snapshot>, reuse: Duration) -> Arc<Rendered> {
        let mut cached = self.rendered.lock().unwrap_or_else(|e| e.into_inner());
        match cached.take() {
            Some(rendered) if serves(&rendered, snapshot, reuse) => {
                *cached = Some(rendered.clone());
                rendered
            }
            previous => {
                let started = std::time::Instant::now();
                let rendered = Arc::new(Rendered::of(previous, snapshot, &self.tag_labels));
                // Counted here, off the async workers, for the scrapes' lengths.
                rendered.length(snapshot, self.clock.now());
                // The previous form (megabytes) was freed while copied.
                crate::memory::give_back();
                tracing::debug!(
                    instances = rendered.len(),
                    bytes = rendered.bytes(),
                    rendered = rendered.fresh(),
                    elapsed = ?started.elapsed(),
                    "instances rendered"
                );
                *cached = Some(rendered.clone());
                rendered
            }
        }
    }

    /// The cached form, if `rendered(snapshot, RENDER_EVERY)` would take it.
    fn cached(&self, snapshot: &Arc<Snapshot>) -> Option<Arc<Rendered>> {
        let cached = self.rendered.lock().unwrap_or_else(|e| e.into_inner());
        cached
            .as_ref()
            .filter(|r| serves(r, snapshot, RENDER_EVERY))
            .cloned()
    }

    /// The whole exposition as one string (tests, the demo's printout).
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let snapshot = self.snapshots.borrow().clone();
        let mut text = self.registry_text()?;
        self.rendered(&snapshot, Duration::ZERO)
            .write(&mut text, &snapshot, self.clock.now());
        Ok(text)
    }

    /// The exposition as a body written while it is sent: without
    /// compression, made chunk by chunk as the connection takes them; with
    /// gzip, compressed on a blocking thread. Rendering the instances that
    /// changed is done off the async workers: a large fleet's scrape
    /// neither holds its whole body nor holds up the async workers.
    pub async fn stream(self: &Arc<Self>, gzip: bool) -> Result<Body, prometheus::Error> {
        if !gzip {
            let registry = self.registry_text()?;
            let snapshot = self.snapshots.borrow().clone();
            let now = self.clock.now();
            let rendered = match self.cached(&snapshot) {
                Some(rendered) => rendered,
                None => {
                    let this = self.clone();
                    let snapshot = snapshot.clone();
                    tokio::task::spawn_blocking(move || this.rendered(&snapshot, RENDER_EVERY))
                        .await
                        .map_err(|e| prometheus::Error::Msg(e.to_string()))?
                }
            };
            // The form may be of an earlier snapshot (`RENDER_EVERY`): the
            // series that are not per instance come from the same one.
            let snapshot = rendered.snapshot().cloned().unwrap_or(snapshot);
            let length = registry.len() + rendered.length(&snapshot, now);
            return Ok(RenderedBody::new(registry, rendered, snapshot, now, length).boxed());
        }
        // As many gzip renders at once as there are cores: more would only
        // share the same CPUs, each holding its buffers and compressor
        // meanwhile. A scraper that stalls is given up on after a while
        // (`scrape.rs`), so a permit is never held for ever.
        let permit = self
            .renders
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| prometheus::Error::Msg(e.to_string()))?;
        let registry = self.registry_text()?;
        let snapshot = self.snapshots.borrow().clone();
        let now = self.clock.now();
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let rendered = this.rendered(&snapshot, RENDER_EVERY);
            let snapshot = rendered.snapshot().cloned().unwrap_or(snapshot);
            let mut sink = GzipSink::new(ChunkSink::new(tx), &this.gzip_members);
            sink.push(&registry);
            sink.boundary();
            rendered.write(&mut sink, &snapshot, now);
            sink.finish();
            tracing::debug!(elapsed = ?started.elapsed(), "gzip scrape rendered");
            drop(permit);
        });
        Ok(http::streamed(rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_error_codes_are_capped() {
        let live = registry(false).unwrap();
        let call = CallLabels {
            account: "default".into(),
            region_id: "cn-hangzhou".into(),
        };
        // An API answering a new code at every call.
        for i in 0..(MAX_CODES * 3) {
            live.api.attempt(
                &call,
                "DescribeBackups",
                &format!("Weird.Code{i}"),
                Duration::from_millis(1),
            );
        }
        live.api.attempt(
            &call,
            "DescribeBackups",
            "Weird.Code0",
            Duration::from_millis(1),
        );
        let text = {
            let mut out = Vec::new();
            TextEncoder::new()
                .encode(&live.registry.gather(), &mut out)
                .unwrap();
            String::from_utf8(out).unwrap()
        };
        let codes: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| l.starts_with("aliyun_backup_api_requests_total{"))
            .filter_map(|l| l.split("code=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(codes.len(), MAX_CODES + 1, "{codes:?}");
        assert!(codes.contains("other") && codes.contains("Weird.Code0"));
        // The known ones keep counting under their own name.
        let first = text
            .lines()
            .find(|l| {
                l.starts_with("aliyun_backup_api_requests_total{") && l.contains("\"Weird.Code0\"")
            })
            .unwrap();
        assert!(first.ends_with(" 2"), "{first}");
    }
}
