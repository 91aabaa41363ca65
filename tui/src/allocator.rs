//! Process-wide settings of the C allocator, made once at start.

/// Freed memory glibc keeps at the top of the heap instead of returning it
/// to the kernel at once.
///
/// Why: a call's output crosses the host as 64 KiB chunks, each a fresh
/// allocation freed as soon as it is written out. With glibc's default
/// (128 KiB, adjusted upward only by freed mmap chunks) nearly every drain
/// of the chunk queue trims the heap, and the next chunks fault the same
/// pages back in, zeroed and charged to the memory cgroup again: ~650 page
/// faults and ~4 ms of host CPU on a 28 MiB search (BENCHMARKS.md,
/// "search").
///
/// Why this value: it covers the chunks a call can have in flight (the
/// credit window, 16 × 64 KiB) several times over, and it is a fixed bound,
/// so host memory stays bounded by configuration (invariant 2). It only
/// keeps pages the host has already used; it never raises the peak, which
/// is set by what is in flight at once.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD_BYTES: libc::c_int = 4 << 20;

/// Applies the settings above. Where the C library is not glibc there is
/// nothing to tune: the setting is glibc's own.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of the allocator; called once,
    // before any thread starts. It returns 0 on failure, and failing only
    // leaves glibc's default in place, so the result is not checked.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES);
    }
}
