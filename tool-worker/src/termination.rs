//! SIGTERM (the parent-death signal), SIGHUP and SIGINT end the call: the
//! worker kills its descendants, then exits. A default SIGTERM would not do
//! the first part, so the three are blocked in every thread and taken by
//! one place that tears the call down.
//!
//! On Linux that place is the host-reader thread, which already waits on
//! the host's socket: it waits on a `signalfd` of the three as well
//! (`Watch::wait_frame`). Elsewhere a thread of its own waits in
//! `sigwait`. One thread fewer is measurable here: creating a thread and
//! having `exit_group` stop it cost ~0.07 ms of a ~1.3 ms call (see
//! BENCHMARKS.md, overhead).
//!
//! # Caveats
//! - The signals are blocked from [`Termination::block`] on; one that
//!   comes before [`Termination::start`] stays pending and is taken then.
//!   The gap is deliberate: the sandbox's user namespace must be created
//!   while the process has one thread (see `sandbox`).
//! - A signal is noticed between frames. A frame is read whole once its
//!   first byte is there, and the host writes frames whole, so the wait
//!   is at most one frame's transfer; a host that stalls mid-frame is gone
//!   anyway (its socket then reaches end of stream, and the call is torn
//!   down too).

use std::io;

use nix::sys::signal::{SigSet, Signal};

/// The blocked termination signals, and how they are waited for.
pub struct Termination {
    set: SigSet,
}

/// What the host-reader thread polls besides the host's socket: the
/// termination signalfd on Linux, nothing elsewhere.
pub struct Watch {
    #[cfg(target_os = "linux")]
    signals: nix::sys::signalfd::SignalFd,
}

impl Termination {
    /// Blocks the three signals in the calling thread, and so in every
    /// thread it starts from now on.
    pub fn block() -> io::Result<Self> {
        let mut set = SigSet::empty();
        for sig in [Signal::SIGTERM, Signal::SIGHUP, Signal::SIGINT] {
            set.add(sig);
        }
        set.thread_block().map_err(io::Error::from)?;
        Ok(Self { set })
    }

    /// Starts taking the signals: a signalfd for the reader thread to
    /// watch (Linux), or a thread that waits for them.
    #[cfg(target_os = "linux")]
    pub fn start(self) -> io::Result<Watch> {
        use nix::sys::signalfd::{SfdFlags, SignalFd};
        let signals =
            SignalFd::with_flags(&self.set, SfdFlags::SFD_CLOEXEC).map_err(io::Error::from)?;
        Ok(Watch { signals })
    }

    #[cfg(not(target_os = "linux"))]
    pub fn start(self) -> io::Result<Watch> {
        let set = self.set;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if set.wait().is_ok() {
                    crate::teardown_and_exit(crate::EXIT_HOST_GONE);
                }
            })?;
        Ok(Watch {})
    }
}

impl Watch {
    /// Returns once `host` has something to read (a frame, EOF or an
    /// error, which the caller's read then reports). A termination signal
    /// that comes first tears the call down and does not return.
    #[cfg(target_os = "linux")]
    pub fn wait_frame(&self, host: std::os::fd::BorrowedFd<'_>) {
        use nix::errno::Errno;
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        loop {
            let mut fds = [
                PollFd::new(host, PollFlags::POLLIN),
                PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(Errno::EINTR) => continue,
                // Whatever poll failed on, the read will fail on too, and
                // say why.
                Err(_) => return,
                Ok(_) => {}
            }
            if fds[1]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLIN))
            {
                crate::teardown_and_exit(crate::EXIT_HOST_GONE);
            }
            return;
        }
    }

    /// Elsewhere the signals thread watches; the reader just reads.
    #[cfg(not(target_os = "linux"))]
    pub fn wait_frame(&self, _host: std::os::fd::BorrowedFd<'_>) {}
}
