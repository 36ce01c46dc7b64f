//! The HTTP endpoints: the telemetry path, /healthz, /readyz and a landing
//! page. They only read the latest snapshot; nothing here calls the cloud.

use std::fmt::Write;
use std::sync::Arc;

use hyper::Method;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::http::{respond, Request, Response};
use crate::metrics;
use crate::snapshot::Snapshot;

/// What the handlers read.
pub struct Endpoints {
    pub telemetry_path: String,
    pub exposition: Arc<metrics::Exposition>,
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub clock: Arc<dyn Clock>,
}

impl Endpoints {
    pub fn handle(&self, req: &Request) -> Response {
        let path = req.uri().path();
        let known = path == self.telemetry_path || matches!(path, "/" | "/healthz" | "/readyz");
        if !known {
            return respond(404, "text/plain; charset=utf-8", "404 page not found\n");
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut response =
                respond(405, "text/plain; charset=utf-8", "405 method not allowed\n");
            response.headers_mut().insert(
                hyper::header::ALLOW,
                hyper::header::HeaderValue::from_static("GET, HEAD"),
            );
            return response;
        }
        let response = match path {
            "/healthz" => self.healthz(),
            "/readyz" => self.readyz(),
            "/" => self.landing_page(),
            _ => self.metrics(),
        };
        if req.method() == Method::HEAD {
            // Same headers, no body.
            let (mut parts, _) = response.into_parts();
            parts.headers.remove(hyper::header::CONTENT_LENGTH);
            return hyper::Response::from_parts(parts, Default::default());
        }
        response
    }

    fn metrics(&self) -> Response {
        match self.exposition.render() {
            Ok(text) => respond(200, metrics::CONTENT_TYPE, text),
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

    fn readyz(&self) -> Response {
        let snapshot = self.snapshots.borrow().clone();
        let polled = snapshot.instances.len();
        let watched = snapshot.watched.len();
        if snapshot.ready() {
            respond(
                200,
                "text/plain; charset=utf-8",
                format!("ready: {polled}/{watched} instances polled\n"),
            )
        } else {
            respond(
                503,
                "text/plain; charset=utf-8",
                format!("not ready: {polled}/{watched} instances polled\n"),
            )
        }
    }

    fn landing_page(&self) -> Response {
        let snapshot = self.snapshots.borrow().clone();
        let now = self.clock.now();
        let mut rows = String::new();
        for id in snapshot.watched.iter() {
            let (age, poll) = match snapshot.instances.get(id) {
                None => ("-".to_string(), "not polled yet".to_string()),
                Some(view) => {
                    // The oldest node decides: a cluster is backed up only
                    // when every node is.
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
            };
            let _ = writeln!(
                rows,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(id),
                escape(&age),
                escape(&poll)
            );
        }
        let path = escape(&self.telemetry_path);
        let body = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Alibaba Cloud backup exporter</title></head>\n<body>\n<h1>Alibaba Cloud backup exporter</h1>\n<p>Version {}. Region {}. <a href=\"{path}\">Metrics</a> · <a href=\"/healthz\">healthz</a> · <a href=\"/readyz\">readyz</a></p>\n<table border=\"1\" cellpadding=\"4\">\n<tr><th>instance</th><th>last successful backup</th><th>last poll</th></tr>\n{rows}</table>\n</body></html>\n",
            env!("CARGO_PKG_VERSION"),
            escape(&snapshot.region_id),
        );
        respond(200, "text/html; charset=utf-8", body)
    }
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
