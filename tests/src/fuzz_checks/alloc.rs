//! A counting allocator for the checks' allocation bounds.
//!
//! Counts are kept per thread, so a measurement sees only what the decoder
//! on this thread allocates, even in a test binary whose other tests run at
//! the same time on other threads. A binary that installs [`Counting`] as its
//! `#[global_allocator]` gets the bounds checked; in one that does not,
//! [`counting`] is false and the checks skip the bound (and say so nowhere
//! else: every fuzz target installs it, and so does the replay test).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Forwards to [`System`] and counts live bytes on the calling thread.
pub struct Counting;

thread_local! {
    // `const` and without `Drop`: reading them never allocates and works
    // while the thread is being torn down, which an allocator requires.
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn grew(n: usize) {
    let n = isize::try_from(n).unwrap_or(isize::MAX);
    let now = CURRENT.with(|c| {
        let v = c.get().saturating_add(n);
        c.set(v);
        v
    });
    PEAK.with(|p| p.set(p.get().max(now)));
}

fn shrank(n: usize) {
    let n = isize::try_from(n).unwrap_or(isize::MAX);
    // Memory freed here may have been allocated on another thread, so the
    // count may go below where a measurement started; that is harmless.
    CURRENT.with(|c| c.set(c.get().saturating_sub(n)));
}

// SAFETY: every call is forwarded to `System` unchanged; the counters are
// only bookkeeping and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // The new block is counted before the old one is freed: a
            // moving realloc holds both for a moment.
            grew(new_size);
            shrank(layout.size());
        }
        p
    }
}

/// Bytes live on this thread now (relative to an arbitrary origin).
pub fn current() -> isize {
    CURRENT.with(Cell::get)
}

/// Whether [`Counting`] is this binary's global allocator.
pub fn counting() -> bool {
    static COUNTING: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *COUNTING.get_or_init(|| {
        let before = current();
        let probe = std::hint::black_box(Box::new([0u8; 64]));
        let seen = current() - before;
        drop(probe);
        seen >= 64
    })
}

/// Runs `f`; returns its result and the peak number of bytes allocated on
/// this thread on top of what was live when it started (its result's own
/// heap included).
pub fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = current();
    PEAK.with(|p| p.set(base));
    let r = f();
    let peak = PEAK.with(Cell::get) - base;
    (r, usize::try_from(peak).unwrap_or(0))
}

/// Asserts `peak` is within `bound` when allocations are counted.
#[track_caller]
pub fn assert_within(peak: usize, bound: usize, what: &str) {
    if counting() {
        assert!(
            peak <= bound,
            "{what}: allocated {peak} bytes, over the bound of {bound}"
        );
    }
}
