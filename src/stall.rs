//! A connection whose peer stopped reading is closed after a while.
//!
//! A scrape's body is made as the connection takes it (`scrape.rs`), and
//! while it is unsent the scrape holds the rendered series it copies from:
//! megabytes at 10,000 instances, kept whole even after newer ones replaced
//! them. A scraper that stops reading mid-body (hung, or hostile) would hold
//! them for as long as it keeps the connection open; ten such connections
//! made over an hour, ten forms. `WriteStall` fails a write that has made
//! no progress for `limit`, and hyper then drops the connection and its
//! body. Reads are not guarded here: a head that never ends is hyper's
//! header timeout's, an idle connection the connection cap's.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `io` whose writes fail once none has made progress for `limit`.
pub struct WriteStall<I> {
    io: I,
    limit: Duration,
    /// Armed at the first write that could not proceed since the last
    /// that did.
    deadline: Pin<Box<Sleep>>,
    armed: bool,
}

impl<I> WriteStall<I> {
    pub fn new(io: I, limit: Duration) -> Self {
        WriteStall {
            io,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
            armed: false,
        }
    }

    /// The inner write made progress (or failed on its own).
    fn progressed<T>(&mut self, ready: io::Result<T>) -> Poll<io::Result<T>> {
        self.armed = false;
        Poll::Ready(ready)
    }

    /// The inner write cannot proceed: wait, but not past the deadline (the
    /// timer wakes this task too, so a peer that never reads again is
    /// noticed).
    fn blocked<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if !self.armed {
            self.armed = true;
            self.deadline.as_mut().reset(Instant::now() + self.limit);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the peer read nothing for {:?}", self.limit),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for WriteStall<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for WriteStall<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(result) => this.progressed(result),
            Poll::Pending => this.blocked(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => this.progressed(result),
            Poll::Pending => this.blocked(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Ready(result) => this.progressed(result),
            Poll::Pending => this.blocked(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_shutdown(cx) {
            Poll::Ready(result) => this.progressed(result),
            Poll::Pending => this.blocked(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpSocket, TcpStream};

    /// A connected pair over loopback with small buffers: the writer's
    /// (connecting) end and the reader's (accepted) end.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpSocket::new_v4().unwrap();
        listener.set_recv_buffer_size(4096).unwrap();
        listener.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener: TcpListener = listener.listen(1).unwrap();
        let writer = TcpSocket::new_v4().unwrap();
        writer.set_send_buffer_size(4096).unwrap();
        let (writer, accepted) = tokio::join!(
            writer.connect(listener.local_addr().unwrap()),
            listener.accept()
        );
        (writer.unwrap(), accepted.unwrap().0)
    }

    const LIMIT: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn a_peer_that_reads_nothing_fails_the_write_after_the_limit() {
        let (writer, _reader) = pair().await;
        let mut guarded = WriteStall::new(writer, LIMIT);
        let started = std::time::Instant::now();
        let chunk = vec![b'x'; 64 * 1024];
        let error = loop {
            if let Err(e) = guarded.write_all(&chunk).await {
                break e;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "never failed");
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= LIMIT, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_slow_reader_that_keeps_reading_is_not_cut() {
        let (writer, mut reader) = pair().await;
        let mut guarded = WriteStall::new(writer, LIMIT);
        // 256 KiB read a little every 20 ms: several times the limit in all,
        // never the limit without progress.
        let total = 256 * 1024;
        let read = tokio::spawn(async move {
            let mut buf = vec![0; 16 * 1024];
            let mut got = 0;
            while got < total {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let n = reader.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed after {got} bytes");
                got += n;
            }
            got
        });
        let started = std::time::Instant::now();
        guarded.write_all(&vec![b'y'; total]).await.unwrap();
        guarded.flush().await.unwrap();
        assert_eq!(read.await.unwrap(), total);
        assert!(
            started.elapsed() > LIMIT,
            "too fast to tell: {:?}",
            started.elapsed()
        );
    }
}
