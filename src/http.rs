//! The HTTP plumbing shared by the exporter's server and the fake API:
//! accept connections (at most so many; TLS when asked), serve each with
//! hyper, and on shutdown close the idle ones and let the requests in
//! flight finish.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::connections::{Admitted, BusyGuard, Connections};

pub type Request = hyper::Request<Incoming>;
pub type Body = BoxBody<Bytes, Infallible>;
pub type Response = hyper::Response<Body>;

/// Turns an accepted connection into a TLS one, or refuses it (`None`,
/// the reason logged): `--web.config.file`'s TLS.
pub type Handshake = std::sync::Arc<
    dyn Fn(
            TcpStream,
        ) -> std::pin::Pin<
            Box<dyn Future<Output = Option<tokio_rustls::server::TlsStream<TcpStream>>> + Send>,
        > + Send
        + Sync,
>;

/// How long requests in flight get to finish once shutdown is asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What one server lets its clients hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at most; past it the oldest one that is not busy
    /// is closed (see `connections`).
    pub max_connections: usize,
    /// Bytes of a request head (hyper's default is about 400 KiB, which
    /// let 200 unfinished heads hold 63 MiB); a longer head gets a 431.
    pub max_head_bytes: usize,
    /// A connection whose peer reads nothing of a response for this long
    /// is closed (see `stall`).
    pub write_stall: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // As Prometheus's own --web.max-connections.
            max_connections: 512,
            // Prometheus's scrape requests are a few hundred bytes.
            max_head_bytes: 16 * 1024,
            // Longer than any scrape timeout worth having.
            write_stall: Duration::from_secs(30),
        }
    }
}

/// Serves `handler` on `listener` until `shutdown` completes. Then the
/// connections that are idle or still receiving a head are closed at once,
/// and the requests in flight get (up to a bound) to finish.
pub async fn serve<H, F>(
    listener: TcpListener,
    limits: Limits,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    serve_with(listener, limits, handler, None, shutdown).await
}

/// `serve`, with a TLS handshake on each connection when one is given.
pub async fn serve_with<H, F>(
    listener: TcpListener,
    limits: Limits,
    handler: H,
    handshake: Option<Handshake>,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let connections = Connections::new(limits.max_connections);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let admitted = match connections.admit() {
            Ok(admitted) => admitted,
            Err(refused) => {
                tracing::debug!(?refused, cap = connections.cap(), "connection turned away");
                // A TLS client could not read a plain answer: just close.
                if handshake.is_none() {
                    tokio::spawn(turn_away(stream));
                }
                continue;
            }
        };
        spawn_connection(
            stream,
            limits,
            handler.clone(),
            handshake.clone(),
            graceful.watcher(),
            admitted,
        );
    }
    drop(listener);
    connections.close_idle();
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; stopping anyway");
    }
}

/// Serves one accepted connection on its own task, after the TLS
/// handshake when there is one; shutdown waits for it (`watcher`), and it
/// ends at once when the registry closes it (for room, or at shutdown
/// while it is not busy).
fn spawn_connection<H, F>(
    stream: TcpStream,
    limits: Limits,
    handler: H,
    handshake: Option<Handshake>,
    watcher: Watcher,
    mut admitted: Admitted,
) where
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    // Bodies go out in chunks as they are written: without this, Nagle's
    // algorithm and the client's delayed ACKs add tens of milliseconds.
    let _ = stream.set_nodelay(true);
    let busy = admitted.busy.clone();
    tokio::spawn(async move {
        let serving = async move {
            match handshake {
                None => serve_connection(stream, limits, handler, watcher, busy).await,
                Some(handshake) => {
                    if let Some(tls) = handshake(stream).await {
                        serve_connection(tls, limits, handler, watcher, busy).await;
                    }
                }
            }
        };
        tokio::select! {
            _ = serving => {}
            _ = &mut admitted.closed => {
                tracing::debug!("idle connection closed, for room or at shutdown");
            }
        }
    });
}

async fn serve_connection<I, H, F>(
    io: I,
    limits: Limits,
    handler: H,
    watcher: Watcher,
    busy: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let service = service_fn(move |req| {
        // Busy from the head's arrival to the end of the response body.
        let guard = BusyGuard::new(&busy);
        let handler = handler.clone();
        async move {
            let response = handler(req).await;
            Ok::<_, Infallible>(response.map(|body| {
                Guarded {
                    body,
                    _guard: guard,
                }
                .boxed()
            }))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        // hyper refuses less than 8 KiB.
        .max_buf_size(limits.max_head_bytes.max(8192))
        .serve_connection(
            TokioIo::new(crate::stall::WriteStall::new(io, limits.write_stall)),
            service,
        );
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Says no politely to a connection past the cap when every connection is
/// busy: a 503 the client can retry, then the connection is closed.
async fn turn_away(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    const ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 21\r\n\r\ntoo many connections\n";
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(ANSWER)).await;
}

/// A response body that keeps its connection busy until it is sent.
struct Guarded {
    body: Body,
    _guard: BusyGuard,
}

impl hyper::body::Body for Guarded {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// A response with a body and a content type.
pub fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response {
    let mut response = hyper::Response::new(Full::new(body.into()).boxed());
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// A body sent as its chunks come from `chunks`, and ended when the
/// sender is dropped: the exposition is written while it is sent, so a
/// scrape holds a few chunks in memory, never the whole body.
pub fn streamed(chunks: tokio::sync::mpsc::Receiver<Bytes>) -> Body {
    ChannelBody(chunks).boxed()
}

struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}
