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
pub mod fault;
pub mod input;
pub mod sandbox;
pub mod serve;
pub mod termination;
pub mod tools;
pub mod tree;

/// Exit code when the host went away (EOF on the channel, or the parent-death
/// signal). Nobody reads it, but it tells a human looking at a core or strace.
pub const EXIT_HOST_GONE: i32 = 70;

/// Set once [`teardown_and_exit`] has begun: the tool's processes are being
/// killed by it, so a tool that sees them die must not report that as its
/// outcome (see [`hold_if_tearing_down`]).
static TEARING_DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Kills every descendant and exits at once. Used when the host is gone or
/// a termination signal came: no report follows, so the only duty left is
/// to leave nothing behind.
pub fn teardown_and_exit(code: i32) -> ! {
    TEARING_DOWN.store(true, std::sync::atomic::Ordering::SeqCst);
    tree::kill_descendants();
    // SAFETY: _exit skips destructors and atexit handlers, which is what we
    // want while other threads may hold locks.
    unsafe { libc::_exit(code) }
}

/// Called before the final report. If a teardown has begun, the tool's end
/// was caused by it (its child died of the teardown's SIGKILL), and the
/// report would pass that off as the tool's own outcome; wait for the
/// teardown's `_exit` instead, which ends the process within moments.
pub fn hold_if_tearing_down() {
    while TEARING_DOWN.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::park();
    }
}
