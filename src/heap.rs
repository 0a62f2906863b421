//! Giving freed heap memory back to the operating system around model loading (glibc only).
//!
//! Loading an ONNX model in ONNX Runtime allocates the parsed protobuf, the initializers, their
//! NCHWc reorders and prepacked copies, and frees much of it again before the first run. glibc's
//! malloc raises its mmap threshold each time a large block is freed (up to 32 MiB), so after
//! the first few frees most of these blocks come from the heap, and freeing them leaves the
//! pages resident: measured, an ORT session on the 198 MB seed-0 weights kept ≈ 270 MiB of
//! freed loading memory (RSS 642 → 369 MiB once released; `bench`, 480×640, 2 threads).
//!
//! [`while_loading`] lets such blocks be returned as they are freed, then fixes malloc's
//! thresholds where glibc's own adaptation ends up in a warmed-up process, so later runs
//! allocate as they would have.
//! [`release_freed`] hands back what is free now (the bench calls it before each runtime, so
//! one runtime's leftovers do not count in the next one's peak). Elsewhere both do nothing.

/// Blocks of at least this size are mapped on their own while a model loads (glibc's initial
/// threshold), so freeing them unmaps them.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const LOADING_MMAP_THRESHOLD: i32 = 128 << 10;

/// glibc's ceiling for its adaptive mmap threshold (`DEFAULT_MMAP_THRESHOLD_MAX` on 64-bit):
/// where the threshold settles once a process has freed large blocks.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const SETTLED_MMAP_THRESHOLD: i32 = 32 << 20;

/// Runs `load` with freed large blocks unmapped at once, then hands back the rest of the
/// free heap and settles malloc's thresholds (the mmap threshold at glibc's adaptive ceiling,
/// the trim threshold at twice that, as glibc's own adaptation sets it).
pub fn while_loading<T>(load: impl FnOnce() -> T) -> T {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt and malloc_trim only tune and trim glibc's allocator; they take its
    // locks and are safe to call from any thread at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, LOADING_MMAP_THRESHOLD);
        let out = load();
        libc::malloc_trim(0);
        libc::mallopt(libc::M_MMAP_THRESHOLD, SETTLED_MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 2 * SETTLED_MMAP_THRESHOLD);
        out
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    load()
}

/// Returns the heap's free pages to the operating system.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: as in `while_loading`.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Resident memory of this process, MiB.
    fn rss_mib() -> f64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<f64>()
            .unwrap()
            / 1024.0
    }

    #[test]
    fn memory_freed_while_loading_leaves_the_process() {
        // A model load's pattern: a large block freed early (glibc then raises its mmap
        // threshold), then many 1 MiB blocks, each followed by a small allocation that stays
        // (so the freed blocks are holes in the heap, not its trimmable top), then the blocks
        // freed. Without `while_loading` glibc keeps these pages resident.
        const BLOCKS: usize = 256;
        let (peak, pins) = while_loading(|| {
            drop(std::hint::black_box(vec![1u8; 4 << 20]));
            let (blocks, pins): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (0..BLOCKS)
                .map(|i| (vec![i as u8 | 1; 1 << 20], vec![1u8; 1024]))
                .unzip();
            let peak = rss_mib();
            drop(std::hint::black_box(blocks));
            (peak, pins)
        });
        let after = rss_mib();
        assert_eq!(pins.len(), BLOCKS, "the closure's value comes back");
        // Other tests of this binary may allocate meanwhile: ask for most, not all, back.
        assert!(
            peak - after > 0.75 * BLOCKS as f64,
            "RSS {peak:.0} MiB with the blocks, {after:.0} MiB after freeing them"
        );
    }
}
