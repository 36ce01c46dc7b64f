//! The HTTP endpoints: the telemetry path, /healthz, /readyz, a landing
//! page, and `POST /-/reload` with `--web.enable-lifecycle`. They only read
//! the latest snapshot; nothing here calls the cloud.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::Method;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::http::{respond, Request, Response};
use crate::metrics;
use crate::snapshot::{InstanceView, Snapshot};
use crate::targets::{DiscoveryStatus, InstanceKey, RegionKey, Target, ALL_REGIONS};

/// Whether `Accept-Encoding` allows gzip (`gzip`, `x-gzip` or `*`, with a
/// q-value other than 0).
fn accepts_gzip(req: &Request) -> bool {
    req.headers()
        .get_all(hyper::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("").to_ascii_lowercase();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            matches!(name.as_str(), "gzip" | "x-gzip" | "*") && !refused
        })
}

/// Re-reads the config file and applies it; the answer says what happened.
pub type ReloadFn =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Send + Sync>;

/// What the handlers read.
pub struct Endpoints {
    pub telemetry_path: String,
    pub exposition: Arc<metrics::Exposition>,
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub clock: Arc<dyn Clock>,
    /// `POST /-/reload`, with `--web.enable-lifecycle`.
    pub reload: Option<ReloadFn>,
}

impl Endpoints {
    pub async fn handle(&self, req: &Request) -> Response {
        let path = req.uri().path();
        if path == "/-/reload" && self.reload.is_some() {
            return self.reload(req).await;
        }
        let known = path == self.telemetry_path || matches!(path, "/" | "/healthz" | "/readyz");
        if !known {
            return respond(404, "text/plain; charset=utf-8", "404 page not found\n");
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return method_not_allowed("GET, HEAD");
        }
        let response = match path {
            "/healthz" => self.healthz(),
            "/readyz" => self.readyz(),
            "/" => self.landing_page(),
            _ => {
                self.metrics(accepts_gzip(req), req.method() == Method::HEAD)
                    .await
            }
        };
        if req.method() == Method::HEAD {
            // Same headers, no body.
            let (mut parts, _) = response.into_parts();
            parts.headers.remove(hyper::header::CONTENT_LENGTH);
            return hyper::Response::from_parts(parts, Default::default());
        }
        response
    }

    /// As Prometheus does it: POST (or PUT) only; 200 when the new config
    /// is in use, 500 with the reason (and the old config kept) when not.
    async fn reload(&self, req: &Request) -> Response {
        if req.method() != Method::POST && req.method() != Method::PUT {
            return method_not_allowed("POST, PUT");
        }
        let Some(reload) = &self.reload else {
            return respond(404, "text/plain; charset=utf-8", "404 page not found\n");
        };
        match reload().await {
            Ok(summary) => respond(200, "text/plain; charset=utf-8", format!("{summary}\n")),
            Err(e) => respond(
                500,
                "text/plain; charset=utf-8",
                format!("failed to reload config: {e}\n"),
            ),
        }
    }

    /// The exposition, streamed; gzip when the scraper accepts it (as
    /// Prometheus always does). `HEAD` renders nothing.
    async fn metrics(&self, gzip: bool, head: bool) -> Response {
        let body = if head {
            Ok(Default::default())
        } else {
            self.exposition.stream(gzip).await
        };
        match body {
            Ok(body) => {
                let mut response = hyper::Response::new(body);
                let headers = response.headers_mut();
                headers.insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static(metrics::CONTENT_TYPE),
                );
                headers.insert(
                    hyper::header::VARY,
                    hyper::header::HeaderValue::from_static("Accept-Encoding"),
                );
                if gzip {
                    headers.insert(
                        hyper::header::CONTENT_ENCODING,
                        hyper::header::HeaderValue::from_static("gzip"),
                    );
                }
                response
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot render metrics");
                respond(
                    500,
                    "text/plain; charset=utf-8",
                    format!("cannot render metrics: {e}\n"),
                )
            }
        }
    }

    /// Alive while the poll loop is: it holds the snapshot sender.
    fn healthz(&self) -> Response {
        if self.snapshots.has_changed().is_ok() {
            respond(200, "text/plain; charset=utf-8", "ok\n")
        } else {
            respond(503, "text/plain; charset=utf-8", "poll loop stopped\n")
        }
    }

    /// Says nothing about the estate but counts.
    fn readyz(&self) -> Response {
        let snapshot = self.snapshots.borrow().clone();
        let polled = snapshot.instances.len();
        let polling = snapshot.polling;
        if snapshot.ready {
            respond(
                200,
                "text/plain; charset=utf-8",
                format!("ready: {polled}/{polling} instances polled\n"),
            )
        } else if !snapshot.targets.initial_round_done {
            respond(
                503,
                "text/plain; charset=utf-8",
                format!("not ready: first discovery round running; {polled}/{polling} instances polled\n"),
            )
        } else {
            respond(
                503,
                "text/plain; charset=utf-8",
                format!("not ready: {polled}/{polling} instances polled\n"),
            )
        }
    }

    fn landing_page(&self) -> Response {
        let snapshot = self.snapshots.borrow().clone();
        let now = self.clock.now();
        let set = &snapshot.targets;
        // One section per (account, product, region): discovery's status,
        // then its instances.
        let mut groups: BTreeMap<RegionKey, Vec<(&InstanceKey, &Target)>> = set
            .discovery
            .keys()
            .filter(|(_, _, r)| &**r != ALL_REGIONS)
            .map(|k| (k.clone(), Vec::new()))
            .collect();
        for (key, target) in &set.targets {
            groups
                .entry((key.account.clone(), key.product, key.region_id.clone()))
                .or_default()
                .push((key, target));
        }
        let mut sections = String::new();
        if let Some(status) = set
            .discovery
            .iter()
            .filter(|((_, _, r), _)| &**r == ALL_REGIONS)
            .map(|((account, _, _), status)| {
                format!("{}: {}", escape(account), discovery_text(Some(status), now))
            })
            .reduce(|a, b| format!("{a}; {b}"))
        {
            let _ = writeln!(sections, "<p>Region lists (DescribeRegions): {status}</p>");
        }
        for ((account, product, region), members) in &groups {
            let status = set
                .discovery
                .get(&(account.clone(), *product, region.clone()));
            let _ = writeln!(
                sections,
                "<h2>{} · {} · {}</h2>\n<p>Discovery: {}. {} instances.</p>",
                escape(account),
                escape(product),
                escape(region),
                discovery_text(status, now),
                members.len()
            );
            let mut rows = String::new();
            for (key, target) in members {
                let view = snapshot.instances.get(*key);
                let name = target.info.as_ref().map_or("", |i| i.name.as_str());
                let status = target.info.as_ref().map_or("-", |i| &*i.status);
                let (age, poll) = describe_view(view.map(|v| v.as_ref()), target.polled, now);
                let _ = writeln!(
                    rows,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&key.instance_id),
                    escape(name),
                    escape(status),
                    escape(&age),
                    escape(&poll)
                );
            }
            let _ = writeln!(
                sections,
                "<table border=\"1\" cellpadding=\"4\">\n<tr><th>instance</th><th>name</th><th>status</th><th>last successful backup</th><th>last poll</th></tr>\n{rows}</table>"
            );
        }
        if !set.unresolved.is_empty() {
            let list: Vec<String> = set
                .unresolved
                .iter()
                .map(|(account, id)| format!("{} ({})", escape(id), escape(account)))
                .collect();
            let _ = writeln!(
                sections,
                "<p>Static instances not found in their account's regions (not watched): {}</p>",
                list.join(", ")
            );
        }
        let shard = if set.shard.count > 1 {
            format!(" Shard {} of {}.", set.shard.index, set.shard.count)
        } else {
            String::new()
        };
        let path = escape(&self.telemetry_path);
        let body = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Alibaba Cloud backup exporter</title></head>\n<body>\n<h1>Alibaba Cloud backup exporter</h1>\n<p>Version {}.{shard} <a href=\"{path}\">Metrics</a> · <a href=\"/healthz\">healthz</a> · <a href=\"/readyz\">readyz</a></p>\n{sections}</body></html>\n",
            env!("CARGO_PKG_VERSION"),
        );
        respond(200, "text/html; charset=utf-8", body)
    }
}

fn method_not_allowed(allow: &'static str) -> Response {
    let mut response = respond(405, "text/plain; charset=utf-8", "405 method not allowed\n");
    response.headers_mut().insert(
        hyper::header::ALLOW,
        hyper::header::HeaderValue::from_static(allow),
    );
    response
}

fn discovery_text(status: Option<&DiscoveryStatus>, now: chrono::DateTime<chrono::Utc>) -> String {
    match status {
        None => "not run yet".into(),
        Some(s) => {
            let last = s.last_success.map_or("never succeeded".to_string(), |t| {
                format!("last success {}", human_age(now - t))
            });
            if s.success {
                format!("ok ({last})")
            } else {
                format!("FAILED, keeping the last known instances ({last})")
            }
        }
    }
}

/// The age of the newest successful backup (the oldest node's, for a
/// cluster: it is backed up only when every node is) and the last poll.
fn describe_view(
    view: Option<&InstanceView>,
    polled: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> (String, String) {
    let Some(view) = view else {
        let poll = if polled {
            "not polled yet"
        } else {
            "not polled (creating)"
        };
        return ("-".into(), poll.into());
    };
    let oldest = view.summary.as_ref().and_then(|s| {
        let ends: Vec<_> = s
            .nodes
            .values()
            .map(|n| n.last_success.as_ref().map(|l| l.end))
            .collect();
        if ends.is_empty() || ends.iter().any(Option::is_none) {
            None
        } else {
            ends.into_iter().flatten().min()
        }
    });
    let age = match (&view.summary, oldest) {
        (None, _) => "unknown (never polled successfully)".to_string(),
        (Some(_), None) => "none in the lookback window".to_string(),
        (Some(_), Some(end)) => human_age(now - end),
    };
    let poll = match (&view.last_error, view.last_poll_success) {
        (_, true) => "ok".to_string(),
        (Some(code), false) => format!("failed ({code})"),
        (None, false) => "failed".to_string(),
    };
    (age, poll)
}

/// `3d 4h ago`, `25m ago`.
fn human_age(age: chrono::Duration) -> String {
    let secs = age.num_seconds().max(0);
    let (d, h, m) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60);
    match (d, h) {
        (0, 0) => format!("{m}m ago"),
        (0, _) => format!("{h}h {m}m ago"),
        _ => format!("{d}d {h}h ago"),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
