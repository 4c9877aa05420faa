//! Hands memory the allocator keeps, but no longer uses, back to the system.
//!
//! moim allocates through the C library's `malloc` (Rust's default
//! allocator). glibc's keeps what a burst freed (a wave of joins or
//! sign-ins, a large meeting ending, the HTTP connections of page loads
//! closing) in its per-thread arenas for reuse, and gives back only what
//! lies at the very top of an arena: live memory falls, the process's
//! resident size does not. That size is what an operator's monitoring, a
//! container's memory limit and the kernel's OOM killer go by. Measured
//! with `scripts/bench.sh connections` (2-CPU machine, 2026-11-30): once
//! 5,000 call sockets had joined and closed again, the server stayed at
//! 123 MiB resident, more than with them open (121 MiB); with this trim
//! (and the smaller sockets of the same change), 35 to 71 MiB over four
//! runs (1,000 sockets: 48 MiB, and 31 to 37 MiB; 28 MiB before they came).
//!
//! `malloc_trim(0)` returns every whole free page in every arena
//! (`madvise(MADV_DONTNEED)`; glibc 2.8 and later), keeping the chunks
//! themselves for reuse. Done every few seconds from a blocking thread, it
//! works like jemalloc's and mimalloc's decay of unused pages, without
//! another allocator in the build (both were tried: see the README's
//! `connections` benchmark). A page freed and reused within one period is
//! not touched; one freed for longer costs a page fault when next used.
//!
//! Other C libraries (musl) have no `malloc_trim`: there this does nothing.

use std::time::Duration;

/// How long freed memory may sit in the allocator before it is returned:
/// the same order as jemalloc's default decay (10 s), short enough that a
/// burst's memory is back before the next one's.
pub const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Starts the periodic trim, for the life of the process. Called once, by
/// `main` (the allocator is the process's, not one application's: the
/// tests start many applications in one process).
pub fn spawn_trimmer(every: Duration) {
    if !SUPPORTED {
        return;
    }
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate; nothing is worth trimming yet.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            // A trim walks every arena's free lists under the arena's lock
            // (a millisecond or so for a heap of tens of MiB): off the
            // runtime's workers, so no connection's task waits behind it.
            match tokio::task::spawn_blocking(trim).await {
                Ok(Some(took)) => {
                    tracing::debug!(
                        took_us = took.as_micros() as u64,
                        "returned freed memory to the system"
                    );
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %err, "the memory trim did not run"),
            }
        }
    });
}

/// Whether this build can trim (glibc on Linux).
pub const SUPPORTED: bool = cfg!(all(target_os = "linux", target_env = "gnu"));

/// Returns the allocator's whole free pages to the system; when some were
/// returned, how long it took.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() -> Option<Duration> {
    let started = std::time::Instant::now();
    // SAFETY: malloc_trim takes no pointers and only touches the
    // allocator's own state, under its own locks; it is safe to call from
    // any thread at any time (glibc's manual, `malloc_trim`: MT-Safe).
    let released = unsafe { libc::malloc_trim(0) } == 1;
    released.then(|| started.elapsed())
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() -> Option<Duration> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process's resident size (`VmRSS`, in KiB whatever the page
    /// size), from /proc (Linux).
    fn resident_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Memory freed in the middle of an arena (pinned by a live block
    /// above it, so glibc's own top-of-heap trim cannot return it) is
    /// resident until `trim` runs, and not after.
    #[test]
    fn trim_returns_freed_pages_the_allocator_kept() {
        if !SUPPORTED {
            return;
        }
        // In a thread of its own: its allocations come from one arena,
        // away from whatever the other tests allocate meanwhile.
        let (before, after) = std::thread::spawn(|| {
            // Blocks under glibc's mmap threshold (128 KiB), so they come
            // from the arena rather than a mapping of their own.
            let blocks: Vec<Vec<u8>> = (0..1_024).map(|_| vec![1u8; 32 * 1024]).collect();
            let pin = vec![1u8; 32 * 1024];
            drop(blocks);
            let before = resident_kib();
            let trimmed = trim();
            let after = resident_kib();
            drop(pin);
            assert!(trimmed.is_some(), "malloc_trim released nothing");
            (before, after)
        })
        .join()
        .expect("trim thread");
        // 32 MiB were freed; most of it must leave the resident set.
        assert!(
            before.saturating_sub(after) > 16 * 1024,
            "resident {before} KiB before the trim, {after} KiB after"
        );
    }
}
