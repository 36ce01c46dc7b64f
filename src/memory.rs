//! How the process gives memory back.
//!
//! glibc serves a large allocation with its own `mmap` and unmaps it when
//! freed, but after each such free it raises that threshold to the freed
//! size ("dynamic mmap threshold"). So once a 16 MiB answer has been read
//! and freed, the next one comes from the heap and stays resident after
//! the poll: a process that read one big answer kept ~17 MiB it no longer
//! used. Fixing the threshold turns the adjustment off: every block of a
//! megabyte or more is returned to the system when freed, and smaller ones
//! (scrape chunks are 256 KiB) are unaffected.

/// Allocations at least this large get their own mapping.
const MMAP_THRESHOLD: i32 = 1024 * 1024;

/// Call once, first thing in `main`.
pub fn give_large_blocks_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before
    // any thread is started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}
