//! glibc's malloc, set for a long-running server on few cores.
//!
//! - Two arenas. By default a thread that finds the arena in use gets one
//!   of its own (up to 8 per core), and what is freed in one arena is never
//!   reused by another: a scrape's buffers, made on whichever blocking
//!   thread renders it, left 2-3 MB behind in each of 8 arenas (a third of
//!   the resident memory at 1,000 instances). Two are enough for the two
//!   async workers and the renders.
//! - A fixed mmap threshold of 64 KiB. glibc serves a large allocation with
//!   its own mapping and unmaps it when freed, but after each such free it
//!   raises the threshold to the freed size, so the next block that large
//!   comes from the heap and stays resident: a process that had read one
//!   16 MiB answer kept ~17 MiB it no longer used, and the rendered series
//!   (megabytes, replaced whole) stayed in the heap. Fixed, every block of
//!   64 KiB or more goes back to the kernel when freed: a scrape's chunks
//!   and compressor, made and dropped by the hundred, no longer leave
//!   touched pages free in the heap (ten scrapers at 10,000 instances
//!   allocated 2.7 MB of their own but grew the heap by about 5 MB). The
//!   chunks most often needed are kept by the scrape's pool instead of
//!   being mapped anew. Measured against 1 MiB: peak with ten scrapers
//!   38.58 against 39.05 MB at 10,000 instances, no more CPU per identity
//!   scrape; a gzip scrape that compresses maps its compressor (a few
//!   hundred KiB) anew each time: 1.45 against 0.95 ms of CPU at 1,000.

//! - Freed memory given back. What a long-running process frees in the
//!   middle of its heap stays resident until malloc is told to look for
//!   it: a first pass over 10,000 instances, whose answers were read and
//!   dropped among the instances' long-lived state, left ~10 MB free but
//!   resident. `give_back` returns the free pages to the kernel
//!   (`malloc_trim`); the poller calls it while it publishes (at most once
//!   a second), and `/metrics` after it replaced its rendered series.

/// Allocations at least this large get their own mapping.
const MMAP_THRESHOLD: i32 = 64 * 1024;
const ARENAS: i32 = 2;

/// Call once, first thing in `main`, before any thread starts.
pub fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets malloc's parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Gives the free pages of malloc's heaps back to the kernel. It walks the
/// free lists (a millisecond or so for tens of megabytes): not on a hot
/// path, and better off the async workers.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory malloc holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}
