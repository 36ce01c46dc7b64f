//! `--web.config.file`: TLS, client certificates, basic auth, response
//! headers and a rate limit for the exporter's own server, in the
//! exporter-toolkit format that every Prometheus exporter reads.
//!
//! - `config`: the file → a checked `WebConfig` (strict YAML, toolkit
//!   defaults and wordings).
//! - `tls`: `tls_server_config` → a rustls `ServerConfig`, client
//!   certificate policies, `client_allowed_sans`.
//! - `san`: the subject alternative names of a certificate.
//! - `auth`: `basic_auth_users`: bcrypt, its cache, the fake hash.
//! - `headers`: the five headers a file may set.
//! - `limit`: `rate_limit`'s token bucket.
//!
//! This module's `Web` is what the server holds: the file is checked once
//! at start-up (a bad one stops the exporter, exit 2); after that the TLS
//! config is rebuilt for each new connection (certificates and client
//! policy re-read) and users and headers are re-read when the file
//! changes, as the toolkit does. TLS on or off and the rate limit are
//! decided at start-up.

pub mod auth;
pub mod config;
pub mod headers;
pub mod limit;
pub mod san;
pub mod tls;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::net::TcpStream;
use tokio_rustls::rustls::server::Acceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use crate::http::{respond, Request, Response};

pub use config::{WebConfig, WebConfigError};

/// A client gets this long to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a plain HTTP client gets on the TLS port (Go's words).
const PLAIN_HTTP_ANSWER: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Answered without credentials, and never rate limited: kubelet probes
/// must reach them, and they say nothing about the estate.
const OPEN_PATHS: &[&str] = &["/healthz", "/readyz"];

/// The web config in use, and how to re-read it.
pub struct Web {
    path: PathBuf,
    /// Decided at start-up, as the toolkit does.
    tls: bool,
    limiter: Option<limit::Limiter>,
    auth: auth::BasicAuth,
    current: Mutex<Current>,
    /// A broken file is logged once, not at every request ...
    request_errors: Once,
    /// ... nor at every connection (a broken certificate too); two
    /// records, so that a request that finds the file fine does not make
    /// the next handshake log the certificate's error again.
    handshake_errors: Once,
}

/// The last error logged, to log each new error once, and its end.
#[derive(Default)]
struct Once(Mutex<Option<String>>);

impl Once {
    fn report<T>(&self, result: &Result<T, String>, what: &str) {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Err(error) if last.as_deref() != Some(error) => {
                tracing::error!(error = %error, "{what}");
                *last = Some(error.clone());
            }
            Err(_) => {}
            Ok(_) => {
                if last.take().is_some() {
                    tracing::info!("web config file and certificates are usable again");
                }
            }
        }
    }
}

/// The file as last read, and what identified that version of it.
struct Current {
    stamp: Option<Stamp>,
    config: Result<Arc<WebConfig>, String>,
}

/// Changes when the file is written or replaced (a Kubernetes Secret
/// update swaps a symlink: `metadata` follows it).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: u64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let meta = std::fs::metadata(path)?;
    Ok(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        #[cfg(unix)]
        inode: std::os::unix::fs::MetadataExt::ino(&meta),
    })
}

/// Reads and checks the file (certificates included when TLS is on).
fn read(path: &Path) -> Result<WebConfig, WebConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| WebConfigError(format!("cannot read the file: {e}")))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let config = config::parse(&text, dir)?;
    if let Some(settings) = &config.tls {
        tls::server_config(settings).map_err(WebConfigError)?;
    }
    Ok(config)
}

impl Web {
    /// Reads and checks the file at start-up; every error is one line.
    pub fn load(path: &Path) -> Result<Arc<Web>, WebConfigError> {
        let before = stamp(path).ok();
        let config = read(path)?;
        let limiter = config.rate_limit.map(limit::Limiter::new);
        if config.tls.is_some() && config.http2 {
            tracing::debug!(
                "HTTP/1.1 only (ALPN http/1.1): http_server_config.http2 has no effect"
            );
        }
        Ok(Arc::new(Web {
            path: path.to_path_buf(),
            tls: config.tls.is_some(),
            limiter,
            auth: auth::BasicAuth::default(),
            current: Mutex::new(Current {
                stamp: before,
                config: Ok(Arc::new(config)),
            }),
            request_errors: Once::default(),
            handshake_errors: Once::default(),
        }))
    }

    /// Whether connections are TLS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// How many basic auth users the file names (the start-up log line).
    pub fn users(&self) -> usize {
        self.config().map_or(0, |c| c.users.len())
    }

    /// The file as it is now: a stat per call, a read only when it changed
    /// (microseconds: not worth a hop to a blocking thread).
    fn config(&self) -> Result<Arc<WebConfig>, String> {
        let now = stamp(&self.path).ok();
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if now.is_none() || current.stamp != now {
            current.stamp = now;
            current.config = std::fs::read_to_string(&self.path)
                .map_err(|e| format!("cannot read {}: {e}", self.path.display()))
                .and_then(|text| {
                    config::parse(&text, self.path.parent().unwrap_or(Path::new(".")))
                        .map(Arc::new)
                        .map_err(|e| format!("{}: {e}", self.path.display()))
                });
            if current.config.is_ok() {
                tracing::info!(file = %self.path.display(), "web config file changed: users and headers re-read");
            }
        }
        current.config.clone()
    }

    /// The TLS config for a new connection, built from the file and the
    /// certificate files as they are now.
    fn server_config(&self) -> Result<Arc<ServerConfig>, String> {
        let config = self.config()?;
        let Some(settings) = &config.tls else {
            return Err(format!(
                "{}: TLS is no longer configured; restart the exporter to serve plain HTTP",
                self.path.display()
            ));
        };
        tls::server_config(settings)
            .map(Arc::new)
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }

    /// The TLS handshake of an accepted connection; `None` (logged) when
    /// it fails: the client's fault at debug level, a broken config file
    /// or certificate at error level (once).
    pub async fn handshake(self: Arc<Self>, mut stream: TcpStream) -> Option<TlsStream<TcpStream>> {
        let peer = stream.peer_addr().ok();
        // A TLS client starts with a handshake record (22); anything else is
        // most likely plain HTTP: say so, as Go's server does, rather than
        // answer with a TLS alert the client cannot read.
        let mut first = [0u8; 1];
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
            Ok(Ok(1)) if first[0] != 22 => {
                use tokio::io::AsyncWriteExt;
                tracing::debug!(peer = ?peer, "plain HTTP on the TLS port");
                let _ = stream.write_all(PLAIN_HTTP_ANSWER).await;
                let _ = stream.shutdown().await;
                return None;
            }
            Ok(Ok(_)) => {}
            _ => return None,
        }
        let acceptor = LazyConfigAcceptor::new(Acceptor::default(), stream);
        let start = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor).await {
            Ok(Ok(start)) => start,
            Ok(Err(e)) => {
                tracing::debug!(peer = ?peer, error = %e, "TLS handshake failed (not a TLS client?)");
                return None;
            }
            Err(_) => {
                tracing::debug!(peer = ?peer, "TLS handshake timed out");
                return None;
            }
        };
        let web = self.clone();
        let config = match tokio::task::spawn_blocking(move || web.server_config()).await {
            Ok(built) => {
                self.handshake_errors.report(
                    &built,
                    "cannot build the TLS config: new connections fail until the web config file or the certificates are fixed",
                );
                built.ok()?
            }
            Err(e) => {
                tracing::error!(error = %e, "building the TLS config failed");
                return None;
            }
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, start.into_stream(config)).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(e)) => {
                tracing::debug!(peer = ?peer, error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(peer = ?peer, "TLS handshake timed out");
                None
            }
        }
    }

    /// Rate limit, then basic auth, then `inner`; the file's headers on
    /// every answer. `/healthz` and `/readyz` skip the limit and the
    /// credentials.
    pub async fn handle<F, Fut>(&self, req: Request, inner: F) -> Response
    where
        F: FnOnce(Request) -> Fut,
        Fut: Future<Output = Response>,
    {
        let open = OPEN_PATHS.contains(&req.uri().path());
        let config = self.config();
        self.request_errors.report(
            &config,
            "web config file is invalid: requests get 500 (the probes excepted) until it is fixed",
        );
        let config = match config {
            Ok(config) => Some(config),
            // A broken file must not fail the kubelet's probes.
            Err(_) if open => None,
            Err(_) => {
                return respond(500, "text/plain; charset=utf-8", "Internal Server Error\n");
            }
        };
        let mut response = match (&config, open) {
            (Some(config), false) => match self.guard(config, &req).await {
                Some(refusal) => refusal,
                None => inner(req).await,
            },
            _ => inner(req).await,
        };
        if let Some(config) = &config {
            headers::apply(&config.headers, response.headers_mut());
        }
        response
    }

    /// The refusal, if any.
    async fn guard(&self, config: &WebConfig, req: &Request) -> Option<Response> {
        if let Some(limiter) = &self.limiter {
            if !limiter.allow() {
                return Some(respond(
                    429,
                    "text/plain; charset=utf-8",
                    "Too Many Requests\n",
                ));
            }
        }
        if config.users.is_empty() {
            return None;
        }
        let header = req.headers().get(hyper::header::AUTHORIZATION);
        if self.auth.allows(&config.users, header).await {
            return None;
        }
        let mut response = respond(401, "text/plain; charset=utf-8", "Unauthorized\n");
        response.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Basic"),
        );
        Some(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Log lines, captured.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_error_is_logged_once_and_its_end_too() {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let once = Once::default();
            let broken: Result<(), String> = Err("cert_file: broken".into());
            for _ in 0..5 {
                once.report(&broken, "cannot build");
            }
            once.report(&Ok::<(), String>(()), "cannot build");
            once.report(&Ok::<(), String>(()), "cannot build");
            once.report(&broken, "cannot build");
        });
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches("cert_file: broken").count(), 2, "{text}");
        assert_eq!(text.matches("usable again").count(), 1, "{text}");
    }
}
