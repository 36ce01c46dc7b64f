//! The HTTP plumbing shared by the exporter's server and the fake API:
//! accept connections, serve each with hyper, and on shutdown let the
//! requests in flight finish.

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

/// Serves `handler` on `listener` until `shutdown` completes, then waits
/// (up to a bound) for the requests in flight.
pub async fn serve<H, F>(listener: TcpListener, handler: H, shutdown: impl Future<Output = ()>)
where
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    serve_with(listener, handler, None, shutdown).await
}

/// `serve`, with a TLS handshake on each connection when one is given.
pub async fn serve_with<H, F>(
    listener: TcpListener,
    handler: H,
    handshake: Option<Handshake>,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
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
        spawn_connection(
            stream,
            handler.clone(),
            handshake.clone(),
            graceful.watcher(),
        );
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; stopping anyway");
    }
}

/// Serves one accepted connection on its own task, after the TLS
/// handshake when there is one; shutdown waits for it (`watcher`).
fn spawn_connection<H, F>(
    stream: TcpStream,
    handler: H,
    handshake: Option<Handshake>,
    watcher: Watcher,
) where
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    // Bodies go out in chunks as they are written: without this, Nagle's
    // algorithm and the client's delayed ACKs add tens of milliseconds.
    let _ = stream.set_nodelay(true);
    tokio::spawn(async move {
        match handshake {
            None => serve_connection(stream, handler, watcher).await,
            Some(handshake) => {
                if let Some(tls) = handshake(stream).await {
                    serve_connection(tls, handler, watcher).await;
                }
            }
        }
    });
}

async fn serve_connection<I, H, F>(io: I, handler: H, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let service = service_fn(move |req| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler(req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "connection ended with an error");
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
