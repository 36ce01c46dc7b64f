//! A scrape's body, written while it is sent, so that ten concurrent
//! scrapes of a large fleet hold a chunk or a few each, not ten whole
//! bodies. Without compression (`RenderedBody`), the connection asks for
//! the next chunk when it has sent the last, and the chunk is made then,
//! on the connection's own task: copying rendered text is cheap, and no
//! other thread is woken for it. A scrape alone gets larger chunks, an
//! eighth of the body up to a megabyte (fewer writes cost the kernel
//! less); several at once get 64 KiB each. With gzip, the exposition is
//! written on a blocking thread into chunks that go out as they fill, as
//! one gzip member whose deflate stream is made of one fragment per block
//! of the exposition; the fragment made of a block is kept, so a block
//! whose bytes did not change since the last scrape is not compressed
//! again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};
use tokio::sync::mpsc;

use crate::exposition::{Numbers, Sink};
use crate::prerender::{Cursor, Rendered};
use crate::snapshot::Snapshot;

/// Bytes per chunk of a gzip body (compressed: a megabyte at 10,000
/// instances), and the least an identity chunk is. Each chunk is a write
/// to the socket (and, for gzip, a handover between two threads), so not
/// too small; each scrape holds one or two (gzip: up to
/// `CHUNKS_IN_FLIGHT` + 2), so not too large either.
const CHUNK: usize = 64 * 1024;

/// The largest identity chunk, when the scrape is the only one being sent
/// (`lone_chunk`). On loopback the kernel's cost is per write as much as
/// per byte (a write also runs the receiver's side and wakes it): a 26 MB
/// body took 15.5 ms of CPU in 64 KiB chunks and 12.5 ms in 1 MiB ones,
/// and the scrape's p50 went from 17 to 12.5 ms. Several scrapes at once
/// get `CHUNK` each, so that ten hold no more than before.
const LONE_CHUNK: usize = 1024 * 1024;

/// A lone scrape's chunks are about this fraction of its body: a few
/// writes, and the two buffers it uses (one sent while the next is filled)
/// hold a quarter of the body at most, not a megabyte each: 1,000
/// instances' 2.65 MB went out in three 1 MiB chunks (now in about six of
/// 512 KiB).
const LONE_PARTS: usize = 8;

/// Room past a chunk's size: it is filled piece by piece, and the last
/// piece may go past it.
const SLACK: usize = 4096;

/// Instances per piece of an identity body: a chunk is filled piece by
/// piece up to its size, and a piece this small (a few KiB) rarely makes
/// it outgrow its buffer.
const PIECE: usize = 16;

/// Chunk buffers kept for reuse, at most: of `CHUNK` (half a MiB), and
/// larger ones for a lone scrape (`lone_chunk`; its two take turns: one is
/// sent while the next is filled).
const POOLED: usize = 8;
const POOLED_LONE: usize = 1;

/// Chunk buffers the connections have sent, for the next chunks: a chunk
/// allocated and freed each time costs its page faults each time (a block
/// of 64 KiB or more is a mapping of its own, `memory`).
static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// Bodies being made or sent now, identity or gzip (`InFlight`).
static SCRAPES: AtomicUsize = AtomicUsize::new(0);

/// A body being made or sent: counted in `SCRAPES` while it lives.
struct InFlight(());

impl InFlight {
    /// Counts a body in; `identity`: one without compression.
    fn new(identity: bool) -> Self {
        if SCRAPES.fetch_add(1, Ordering::Relaxed) >= 1 || !identity {
            // No lone identity scrape now: the large buffers kept for one
            // are freed now rather than when one comes again.
            POOL.lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|b| !is_large(b.capacity()));
        }
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        SCRAPES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The size of the next identity chunk of a body of `length` bytes while
/// `scrapes` bodies are being made or sent (0: counted before the body
/// exists).
fn identity_chunk(scrapes: usize, length: usize) -> usize {
    if scrapes <= 1 {
        lone_chunk(length)
    } else {
        CHUNK
    }
}

/// A lone scrape's chunk: a `LONE_PARTS`th of the body, as a power of two
/// (bodies of about the same length get buffers of the same size, which
/// the pool can reuse), from `CHUNK` to `LONE_CHUNK`.
fn lone_chunk(length: usize) -> usize {
    (length / LONE_PARTS)
        .next_power_of_two()
        .clamp(CHUNK, LONE_CHUNK)
}

/// Whether a buffer of `capacity` is too large for chunks of `CHUNK`: one
/// made for a lone scrape. (A lone chunk of 128 KiB, for a body of 0.5 to
/// 1 MB, gets a buffer that still fits `CHUNK`: the pool keeps it among
/// the small ones, and chunks of several scrapes use it.)
fn is_large(capacity: usize) -> bool {
    capacity > 2 * CHUNK + SLACK
}

/// Whether a buffer of `capacity` serves chunks of `size` (a buffer made
/// for them, or one that grew a little past it).
fn fits(capacity: usize, size: usize) -> bool {
    (size + SLACK..=2 * size + SLACK).contains(&capacity)
}

/// An empty buffer for a chunk of `size` bytes, from the pool if it has
/// one that fits.
fn chunk_buffer(size: usize) -> Vec<u8> {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    match pool.iter().rposition(|b| fits(b.capacity(), size)) {
        Some(at) => pool.swap_remove(at),
        None => {
            // A large buffer kept for bodies of another length: freed.
            if size > CHUNK {
                pool.retain(|b| !is_large(b.capacity()));
            }
            drop(pool);
            Vec::with_capacity(size + SLACK)
        }
    }
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
        let scrapes = SCRAPES.load(Ordering::Relaxed);
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if worth_keeping(buf.capacity(), scrapes, &pool) {
            buf.clear();
            pool.push(buf);
        }
    }
}

/// Whether a sent chunk's buffer of `capacity` goes back to `pool` while
/// `scrapes` bodies are being made or sent: a buffer of `CHUNK` if the
/// pool has fewer than it keeps, a lone scrape's larger one only while a
/// scrape is alone, and if the pool has none. A lone scraper's large
/// buffers are so freed (unmapped) once several scrape at once, and a
/// buffer that grew past twice the largest chunk (a very large block) is
/// never kept.
fn worth_keeping(capacity: usize, scrapes: usize, pool: &[Vec<u8>]) -> bool {
    if fits(capacity, CHUNK) {
        pool.iter().filter(|b| fits(b.capacity(), CHUNK)).count() < POOLED
    } else {
        scrapes <= 1
            && is_large(capacity)
            && capacity <= 2 * LONE_CHUNK + SLACK
            && pool.iter().filter(|b| is_large(b.capacity())).count() < POOLED_LONE
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
    _in_flight: InFlight,
}

impl ChunkSink {
    pub fn new(tx: mpsc::Sender<Bytes>) -> Self {
        ChunkSink {
            _in_flight: InFlight::new(false),
            buf: chunk_buffer(CHUNK),
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
        let full = std::mem::replace(&mut self.buf, chunk_buffer(CHUNK));
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
    /// Bytes still to send, of `length`.
    remaining: usize,
    length: usize,
    registry: Option<String>,
    rendered: std::sync::Arc<Rendered>,
    snapshot: std::sync::Arc<Snapshot>,
    now: chrono::DateTime<chrono::Utc>,
    cursor: Cursor,
    numbers: Numbers,
    done: bool,
    _in_flight: InFlight,
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
            _in_flight: InFlight::new(true),
            remaining: length,
            length,
            registry: Some(registry),
            rendered,
            snapshot,
            now,
            cursor: Cursor::with_blocks_of(PIECE),
            numbers: Numbers::default(),
            done: false,
        }
    }

    /// The next chunk: whole pieces until its size (`identity_chunk`) or
    /// more; `None` at the end.
    fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        // The first chunk is small: scrapers that come together (at every
        // interval) each find themselves alone at first.
        let size = match self.registry {
            Some(_) => CHUNK,
            None => identity_chunk(SCRAPES.load(Ordering::Relaxed), self.length),
        };
        let mut chunk = chunk_buffer(size);
        if let Some(registry) = self.registry.take() {
            chunk.extend_from_slice(registry.as_bytes());
        }
        while chunk.len() < size {
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
    fn a_lone_identity_scrape_gets_large_chunks_and_several_small_ones() {
        // 10,000 instances' 26 MB: the largest chunks.
        assert_eq!(identity_chunk(0, 26_400_000), LONE_CHUNK);
        assert_eq!(identity_chunk(1, 26_400_000), LONE_CHUNK);
        // 1,000 instances' 2.65 MB: an eighth of it, as a power of two.
        assert_eq!(identity_chunk(1, 2_650_000), 512 * 1024);
        assert_eq!(identity_chunk(1, 1_000_000), 128 * 1024);
        // A small body: no less than a chunk of several scrapes.
        assert_eq!(identity_chunk(1, 150_000), CHUNK);
        assert_eq!(identity_chunk(0, 0), CHUNK);
        assert_eq!(identity_chunk(2, 26_400_000), CHUNK);
        assert_eq!(identity_chunk(10, 2_650_000), CHUNK);
    }

    #[test]
    fn the_pool_keeps_what_the_next_chunks_need_and_no_more() {
        let lone = || Vec::<u8>::with_capacity(LONE_CHUNK + SLACK);
        let small = || Vec::<u8>::with_capacity(CHUNK + SLACK);
        let (lone_cap, small_cap) = (lone().capacity(), small().capacity());
        // A lone scraper's large buffer is kept, once, whatever its size.
        assert!(worth_keeping(lone_cap, 1, &[]));
        assert!(!worth_keeping(lone_cap, 1, &[lone()]));
        let quarter = Vec::<u8>::with_capacity(256 * 1024 + SLACK);
        assert!(worth_keeping(quarter.capacity(), 0, &[]));
        assert!(!worth_keeping(quarter.capacity(), 1, &[lone()]));
        assert!(!worth_keeping(lone_cap, 1, &[quarter]));
        // Not while several scrape at once: it is freed.
        assert!(!worth_keeping(lone_cap, 2, &[]));
        // Small buffers, for gzip and for several scrapes, up to `POOLED`,
        // whatever else the pool holds.
        let mut pool = vec![lone()];
        for _ in 0..POOLED {
            assert!(worth_keeping(small_cap, 3, &pool));
            assert!(worth_keeping(small_cap, 1, &pool));
            pool.push(small());
        }
        assert!(!worth_keeping(small_cap, 3, &pool));
        // A buffer that grew past twice the largest chunk, or a tiny one:
        // never.
        assert!(!worth_keeping(2 * LONE_CHUNK + SLACK + 1, 0, &[]));
        assert!(!worth_keeping(CHUNK - 1, 1, &[]));
        assert!(!worth_keeping(3 * CHUNK, 5, &[]));
    }

    #[test]
    fn a_buffer_fits_chunks_of_its_own_size_only() {
        assert!(fits(CHUNK + SLACK, CHUNK));
        assert!(fits(2 * CHUNK + SLACK, CHUNK));
        assert!(!fits(LONE_CHUNK + SLACK, CHUNK));
        assert!(!fits(CHUNK + SLACK, LONE_CHUNK));
        assert!(fits(LONE_CHUNK + SLACK, LONE_CHUNK));
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
