//! A scrape's body, written while it is sent, so that ten concurrent
//! scrapes of a large fleet hold a chunk or a few each, not ten whole
//! bodies. Without compression (`RenderedBody`), the connection asks for
//! the next chunk when it has sent the last, and the chunk is made then,
//! on the connection's own task: copying rendered text is cheap, and no
//! other thread is woken for it. With gzip, the exposition is written on a
//! blocking thread into chunks that go out as they fill, as one gzip member
//! whose deflate stream is made of one fragment per block of the
//! exposition; the fragment made of a block is kept, so a block whose bytes
//! did not change since the last scrape is not compressed again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};
use tokio::sync::mpsc;

use crate::exposition::{Numbers, Sink};
use crate::prerender::{Cursor, Rendered};
use crate::snapshot::Snapshot;

/// Bytes per chunk handed to the connection: each is a write to the
/// socket (and, for gzip, a handover between two threads), so not too
/// small; each scrape holds one or two (gzip: up to `CHUNKS_IN_FLIGHT` +
/// 2), so not too large either. 128 KiB cost no less CPU and 1 MB more
/// with ten scrapers at 10,000 instances.
const CHUNK: usize = 64 * 1024;

/// Instances per piece of an identity body: a chunk is filled piece by
/// piece up to `CHUNK` bytes, and a piece this small (a few KiB) rarely
/// makes it outgrow its buffer.
const PIECE: usize = 16;

/// Chunk buffers kept for reuse, at most (half a MiB).
const POOLED: usize = 8;

/// Chunk buffers the connections have sent, for the next chunks: a chunk
/// allocated and freed each time costs its page faults each time (malloc
/// gives a freed block at the top of its heap back to the kernel).
static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer for a chunk, from the pool if it has one.
fn chunk_buffer() -> Vec<u8> {
    POOL.lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop()
        .unwrap_or_else(|| Vec::with_capacity(CHUNK + 4096))
}

/// A chunk handed to the connection, its buffer back to the pool when sent.
struct Pooled(Vec<u8>);

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        // A chunk that grew past twice the size (a very large block) is
        // not kept.
        if buf.capacity() >= CHUNK && buf.capacity() <= 2 * CHUNK {
            buf.clear();
            let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < POOLED {
                pool.push(buf);
            }
        }
    }
}

fn pooled(buf: Vec<u8>) -> Bytes {
    Bytes::from_owner(Pooled(buf))
}

/// Chunks waiting for the connection, per scrape.
pub const CHUNKS_IN_FLIGHT: usize = 2;

/// A scraper that takes no chunk for this long is given up on: the render
/// stops and its thread is free again (the scrape ends short).
const STALLED_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// Fills chunks and hands them over, waiting while the connection is
/// behind (at most `CHUNKS_IN_FLIGHT` wait). A scraper that went away
/// ends the writing: what follows is dropped.
pub struct ChunkSink {
    buf: Vec<u8>,
    tx: mpsc::Sender<Bytes>,
    gone: bool,
}

impl ChunkSink {
    pub fn new(tx: mpsc::Sender<Bytes>) -> Self {
        ChunkSink {
            buf: chunk_buffer(),
            tx,
            gone: false,
        }
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        if self.gone {
            return;
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= CHUNK {
            self.send();
        }
    }

    fn send(&mut self) {
        if self.buf.is_empty() || self.gone {
            return;
        }
        // Handed over as is (no copy); the next chunk gets another buffer.
        let full = std::mem::replace(&mut self.buf, chunk_buffer());
        let chunk = pooled(full);
        // Called on a blocking thread, never on an async worker.
        let sent = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .block_on(tokio::time::timeout(STALLED_AFTER, self.tx.send(chunk)))
                .is_ok_and(|sent| sent.is_ok()),
            Err(_) => self.tx.blocking_send(chunk).is_ok(),
        };
        if !sent {
            self.gone = true;
        }
    }

    /// Sends what is left; the body ends when the sink is dropped.
    pub fn finish(mut self) {
        self.send();
    }
}

impl Drop for ChunkSink {
    fn drop(&mut self) {
        // Its last buffer, unused, back to the pool.
        drop(Pooled(std::mem::take(&mut self.buf)));
    }
}

impl Sink for ChunkSink {
    #[inline]
    fn push(&mut self, text: &str) {
        self.write(text.as_bytes());
    }
}

/// An exposition without compression, made chunk by chunk as the
/// connection asks for it: the live metrics, then the rendered instances
/// and the few series that are not per instance. Its length is known
/// beforehand (`Rendered::length`), so it goes out with a Content-Length
/// rather than chunked: a scraper can read it into one buffer.
pub struct RenderedBody {
    /// Bytes still to send.
    remaining: usize,
    registry: Option<String>,
    rendered: std::sync::Arc<Rendered>,
    snapshot: std::sync::Arc<Snapshot>,
    now: chrono::DateTime<chrono::Utc>,
    cursor: Cursor,
    numbers: Numbers,
    done: bool,
}

impl RenderedBody {
    pub fn new(
        registry: String,
        rendered: std::sync::Arc<Rendered>,
        snapshot: std::sync::Arc<Snapshot>,
        now: chrono::DateTime<chrono::Utc>,
        length: usize,
    ) -> Self {
        RenderedBody {
            remaining: length,
            registry: Some(registry),
            rendered,
            snapshot,
            now,
            cursor: Cursor::with_blocks_of(PIECE),
            numbers: Numbers::default(),
            done: false,
        }
    }

    /// The next chunk: whole blocks until `CHUNK` bytes or more; `None` at
    /// the end.
    fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let mut chunk = chunk_buffer();
        if let Some(registry) = self.registry.take() {
            chunk.extend_from_slice(registry.as_bytes());
        }
        while chunk.len() < CHUNK {
            if !self.rendered.write_next(
                &mut chunk,
                &self.snapshot,
                self.now,
                &mut self.cursor,
                &mut self.numbers,
            ) {
                self.done = true;
                break;
            }
        }
        // Never more than announced (hyper would fail the connection):
        // were the count wrong, the body ends short rather than long.
        debug_assert!(
            chunk.len() <= self.remaining && (!self.done || chunk.len() == self.remaining)
        );
        chunk.truncate(self.remaining);
        self.remaining -= chunk.len();
        Some(pooled(chunk)).filter(|c| !c.is_empty())
    }
}

impl hyper::body::Body for RenderedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(
            self.next_chunk()
                .map(|chunk| Ok(hyper::body::Frame::data(chunk))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.remaining == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining as u64)
    }
}

/// One gzip member made of blocks compressed apart: each block is a raw
/// deflate fragment ending in a full flush (no final bit, no reference to
/// what came before), so fragments compressed at different times follow
/// each other in one deflate stream; the stream ends with an empty final
/// block, and the trailer's CRC-32 is the blocks' CRCs combined. One member,
/// not one per block: every gzip reader reads it (curl's `--compressed`
/// stops after a first member), and a block whose bytes did not change is
/// not compressed again.
#[derive(Clone)]
struct Fragment {
    deflate: Bytes,
    crc: u32,
    len: u64,
}

/// Fragments by their block's content (a 128-bit hash), shared by every
/// gzip scrape. Fragments no scrape used in the last two renders are
/// dropped, so the cache holds about one compressed body.
#[derive(Default)]
pub struct MemberCache {
    fragments: Mutex<HashMap<u128, (Fragment, u64)>>,
    renders: AtomicU64,
}

impl MemberCache {
    fn get_or_compress(
        &self,
        block: &[u8],
        render: u64,
        deflate: &mut Option<Deflate>,
    ) -> Fragment {
        let hash = xxhash_rust::xxh3::xxh3_128(block);
        if let Some((fragment, used)) = self.lock().get_mut(&hash) {
            *used = render;
            return fragment.clone();
        }
        let mut compressed = deflate.get_or_insert_with(Deflate::new).fragment(block);
        // Kept for the next scrapes: without the room made for the
        // compressor's output (a quarter of the block, for a fragment about
        // a twenty-fifth of it).
        compressed.shrink_to_fit();
        let mut crc = crc32fast::Hasher::new();
        crc.update(block);
        let fragment = Fragment {
            deflate: Bytes::from(compressed),
            crc: crc.finalize(),
            len: block.len() as u64,
        };
        self.lock().insert(hash, (fragment.clone(), render));
        fragment
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u128, (Fragment, u64)>> {
        self.fragments.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fragments cached now (tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The gzip header: magic, deflate, no flags, no mtime, no extra flags, OS
/// unknown (RFC 1952).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// A final, empty deflate block (fixed Huffman codes: BFINAL, BTYPE 01,
/// end of block), as zlib ends a stream after a flush.
const FINAL_EMPTY_BLOCK: [u8; 2] = [0x03, 0x00];

/// Writes the exposition as one gzip member, block by block.
pub struct GzipSink<'c> {
    block: Vec<u8>,
    out: ChunkSink,
    cache: &'c MemberCache,
    render: u64,
    /// Made at the first block not cached (a compressor is a few hundred
    /// KiB, and a scrape of an unchanged exposition needs none).
    deflate: Option<Deflate>,
    /// The CRC-32 and length of what was written so far.
    crc: crc32fast::Hasher,
    len: u64,
}

impl<'c> GzipSink<'c> {
    pub fn new(mut out: ChunkSink, cache: &'c MemberCache) -> Self {
        let render = cache.renders.fetch_add(1, Ordering::Relaxed) + 1;
        out.write(&GZIP_HEADER);
        GzipSink {
            // A block is a few dozen KiB (BLOCK instances of one family);
            // it grows if need be.
            block: Vec::with_capacity(64 * 1024),
            out,
            cache,
            render,
            deflate: None,
            crc: crc32fast::Hasher::new(),
            len: 0,
        }
    }

    pub fn finish(mut self) {
        self.boundary();
        self.cache
            .lock()
            .retain(|_, (_, used)| *used + 1 >= self.render);
        self.out.write(&FINAL_EMPTY_BLOCK);
        let crc = std::mem::take(&mut self.crc).finalize();
        self.out.write(&crc.to_le_bytes());
        // ISIZE: the length modulo 2^32 (RFC 1952).
        self.out.write(&(self.len as u32).to_le_bytes());
        self.out.finish();
    }
}

impl Sink for GzipSink<'_> {
    fn push(&mut self, text: &str) {
        self.block.extend_from_slice(text.as_bytes());
    }

    fn boundary(&mut self) {
        if self.block.is_empty() || self.out.gone {
            self.block.clear();
            return;
        }
        let fragment = self
            .cache
            .get_or_compress(&self.block, self.render, &mut self.deflate);
        self.block.clear();
        self.crc.combine(&crc32fast::Hasher::new_with_initial_len(
            fragment.crc,
            fragment.len,
        ));
        self.len += fragment.len;
        self.out.write(&fragment.deflate);
    }
}

/// One deflate compressor, reset for each block (its tables are large:
/// allocating one per block would cost more than the compression).
pub struct Deflate(Compress);

impl Default for Deflate {
    fn default() -> Self {
        Self::new()
    }
}

impl Deflate {
    pub fn new() -> Self {
        // Level 1: the exposition is repetitive text; higher levels cost
        // far more time for a few percent. Raw deflate: the gzip framing
        // is the sink's.
        Deflate(Compress::new(Compression::fast(), false))
    }

    /// `data` as raw deflate blocks ending in a full flush: not final, and
    /// referring to nothing before it, so it can follow any such fragment.
    fn fragment(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() / 4 + 64);
        self.0.reset();
        let mut input = data;
        loop {
            if out.capacity() - out.len() < 1024 {
                out.reserve(out.capacity().max(4096));
            }
            let (before_in, before_out) = (self.0.total_in(), out.len());
            let status = self.0.compress_vec(input, &mut out, FlushCompress::Full);
            let consumed = (self.0.total_in() - before_in) as usize;
            input = &input[consumed..];
            // Done when all is in and the flush stopped short of the end of
            // the room it had (a full buffer may have more to come).
            let room_left = out.len() < out.capacity();
            let stuck = consumed == 0 && out.len() == before_out && !input.is_empty();
            match status {
                Ok(_) if input.is_empty() && room_left => break,
                // Neither can happen with a valid compressor and room to
                // write; what was made is still a valid fragment.
                Err(_) => break,
                Ok(_) if stuck => break,
                Ok(_) => {}
            }
        }
        out
    }

    /// A whole gzip member (RFC 1952) holding `data`: a fragment framed.
    #[cfg(test)]
    pub fn member(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = GZIP_HEADER.to_vec();
        out.extend(self.fragment(data));
        out.extend_from_slice(&FINAL_EMPTY_BLOCK);
        let mut crc = crc32fast::Hasher::new();
        crc.update(data);
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// The one gzip member at the start of `data` (a reader that stops
    /// after a first member, as curl's does), and what follows it.
    fn gunzip_one(data: &[u8]) -> (String, usize) {
        let mut decoder = flate2::read::GzDecoder::new(data);
        let mut out = String::new();
        decoder.read_to_string(&mut out).unwrap();
        (out, decoder.into_inner().len())
    }

    #[test]
    fn a_member_is_valid_gzip_and_compresses() {
        let mut deflate = Deflate::new();
        let big = "aliyun_backup_x{a=\"b\"} 1\n".repeat(20_000);
        for data in ["", "hello", big.as_str()] {
            let member = deflate.member(data.as_bytes());
            assert_eq!(gunzip_one(&member), (data.to_string(), 0));
        }
        assert!(deflate.member(big.as_bytes()).len() * 20 < big.len());
    }

    fn render(cache: &MemberCache, blocks: &[&str]) -> Vec<u8> {
        let (tx, mut rx) = mpsc::channel(1024);
        let mut sink = GzipSink::new(ChunkSink::new(tx), cache);
        for block in blocks {
            sink.push(block);
            sink.boundary();
        }
        sink.finish();
        let mut body = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            body.extend_from_slice(&chunk);
        }
        body
    }

    #[test]
    fn a_body_is_one_member_whatever_its_blocks() {
        let cache = MemberCache::default();
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..50 {
            let blocks: Vec<String> = (0..rng.usize(0..6))
                .map(|_| {
                    let line = ["a 1\n", "é{x=\"\\n\"} 2\n", ""][rng.usize(..3)];
                    line.repeat(rng.usize(0..5000))
                })
                .collect();
            let blocks: Vec<&str> = blocks.iter().map(String::as_str).collect();
            let body = render(&cache, &blocks);
            // Read whole by a reader of one member, with nothing after it:
            // the CRC and the length in the trailer are checked.
            assert_eq!(gunzip_one(&body), (blocks.concat(), 0));
        }
    }

    #[test]
    fn unchanged_blocks_reuse_their_fragment_and_stale_ones_go() {
        let cache = MemberCache::default();
        let first = render(&cache, &["a 1\n", "b 2\n", "c 3\n"]);
        assert_eq!(gunzip_one(&first).0, "a 1\nb 2\nc 3\n");
        assert_eq!(cache.len(), 3);
        // One block changed: one more fragment; the unchanged ones are the
        // very same bytes.
        let second = render(&cache, &["a 1\n", "b 9\n", "c 3\n"]);
        assert_eq!(gunzip_one(&second).0, "a 1\nb 9\nc 3\n");
        assert_eq!(cache.len(), 4);
        assert_eq!(&second[..16], &first[..16]);
        // Fragments unused for two renders are dropped.
        render(&cache, &["a 1\n"]);
        render(&cache, &["a 1\n"]);
        assert_eq!(cache.len(), 1);
    }
}
