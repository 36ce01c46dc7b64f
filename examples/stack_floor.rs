//! The memory floor of the exporter's stack, for `bench/stack_floor.py`:
//! the same malloc settings, async runtime (two workers), HTTP client
//! (reqwest, rustls) and HTTP server (hyper, the exporter's buffer limit)
//! doing the same work as the exporter, and nothing else: no instances
//! kept, no rendering, no configuration, no logging.
//!
//! It first makes `--calls` GET requests to `--api`, `--concurrency` at a
//! time, and reads each answer (as the exporter's first pass does; the
//! fake API answers an unsigned request with an error, which is read all
//! the same). It then serves the bytes of `--body` to every request, as
//! they are, or gzip-compressed (once, at start) when the request accepts
//! gzip, and prints `ready` once it listens.
//!
//! Usage: stack_floor --listen 127.0.0.1:PORT --body FILE --api URL
//!        --calls N --concurrency C

use std::convert::Infallible;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ACCEPT_ENCODING, CONTENT_ENCODING};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

struct Args {
    listen: String,
    body: String,
    api: String,
    calls: usize,
    concurrency: usize,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut listen, mut body, mut api) = (None, None, None);
    let (mut calls, mut concurrency) = (0, 1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--listen" => listen = Some(value.clone()),
            "--body" => body = Some(value.clone()),
            "--api" => api = Some(value.clone()),
            "--calls" => calls = number()?,
            "--concurrency" => concurrency = number()?.max(1),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or("--listen is required")?,
        body: body.ok_or("--body is required")?,
        api: api.ok_or("--api is required")?,
        calls,
        concurrency,
    })
}

fn main() -> ExitCode {
    aliyun_backup_exporter::memory::tune_malloc();
    let args = match args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let identity = match std::fs::read(&args.body) {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) => {
            eprintln!("error: --body {}: {e}", args.body);
            return ExitCode::from(2);
        }
    };
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let gzipped = match encoder.write_all(&identity).and_then(|_| encoder.finish()) {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) => {
            eprintln!("error: gzip: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match aliyun_backup_exporter::app::runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, identity, gzipped)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, identity: Bytes, gzipped: Bytes) -> Result<(), String> {
    call_api(&args).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("--listen {}: {e}", args.listen))?;
    println!("ready");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (identity, gzipped) = (identity.clone(), gzipped.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let gzip = req
                    .headers()
                    .get(ACCEPT_ENCODING)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("gzip"));
                let mut response = hyper::Response::new(Full::new(if gzip {
                    gzipped.clone()
                } else {
                    identity.clone()
                }));
                if gzip {
                    response.headers_mut().insert(
                        CONTENT_ENCODING,
                        hyper::header::HeaderValue::from_static("gzip"),
                    );
                }
                async move { Ok::<_, Infallible>(response) }
            });
            // As the exporter's server (`src/http.rs`): hyper's smallest buffer.
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .max_buf_size(16 * 1024)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// `--calls` GETs to `--api`, `--concurrency` at a time, each answer read.
async fn call_api(args: &Args) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (client, next, api, calls) =
            (client.clone(), next.clone(), args.api.clone(), args.calls);
        workers.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < calls {
                let response = client.get(&api).send().await.map_err(|e| e.to_string())?;
                response.bytes().await.map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        });
    }
    while let Some(done) = workers.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    Ok(())
}
