//! The worker: one process per tool call.
//!
//! `bulkhead-worker` confines itself ([`confine`]), greets the host, receives
//! one `Invoke`, applies the call's rlimits, runs the tool with an
//! [`channel::IpcSink`], reports `Done` or `Error`, kills whatever the tool
//! left behind ([`tree`]), and exits.
//!
//! **Architecture invariant:** tool code exists only in this crate. The host
//! and the `bulkhead` binary never depend on it.

pub mod channel;
pub mod confine;
pub mod input;
pub mod sandbox;
pub mod serve;
pub mod tools;
pub mod tree;

/// Exit code when the host went away (EOF on the channel, or the parent-death
/// signal). Nobody reads it, but it tells a human looking at a core or strace.
pub const EXIT_HOST_GONE: i32 = 70;

/// Kills every descendant and exits at once. Used when the host is gone: no
/// one will read a report, so the only duty left is to leave nothing behind.
pub fn teardown_and_exit(code: i32) -> ! {
    tree::kill_descendants();
    // SAFETY: _exit skips destructors and atexit handlers, which is what we
    // want while other threads may hold locks.
    unsafe { libc::_exit(code) }
}
