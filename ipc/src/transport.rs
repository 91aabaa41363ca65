//! The channel between host and worker: two anonymous pipes, wrapped in the
//! `interprocess` crate's unnamed-pipe types.
//!
//! The worker's ends become its stdin (host → worker) and stdout (worker →
//! host) when it is spawned, so they travel through `posix_spawn`'s file
//! actions and no `pre_exec` is needed. Anonymous pipes have no name, so no
//! other process can connect to them or inject frames; the only way in is to
//! inherit an end, and both ends are created close-on-exec.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// One direction of the channel: `(read end, write end)`, both close-on-exec.
pub fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    #[cfg(not(target_vendor = "apple"))]
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    // macOS has no pipe2: the flag is set right after, which leaves a
    // window in which a concurrent fork elsewhere in the process could
    // inherit the ends (the host spawns from one thread, with posix_spawn).
    #[cfg(target_vendor = "apple")]
    let rc = unsafe {
        let rc = libc::pipe(fds.as_mut_ptr());
        if rc == 0 {
            libc::fcntl(fds[0], libc::F_SETFD, libc::FD_CLOEXEC);
            libc::fcntl(fds[1], libc::F_SETFD, libc::FD_CLOEXEC);
        }
        rc
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the pipe was made, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Capacity asked for the worker → host pipe. The default (64 KiB) holds
/// exactly one chunk, so writer and reader take turns with a wake-up per
/// chunk; 1 MiB (the unprivileged maximum, `/proc/sys/fs/pipe-max-size`)
/// lets the worker run 16 chunks ahead, matching the credit window.
pub const WORKER_PIPE_BYTES: i32 = 1 << 20;

/// Raises a pipe's buffer. Best effort: a lower `pipe-max-size` or a user
/// over its pipe quota keeps the default, which is slower, not wrong.
#[cfg(target_os = "linux")]
fn grow_pipe(fd: &OwnedFd, bytes: i32) {
    use std::os::fd::AsRawFd;
    // SAFETY: F_SETPIPE_SZ on a pipe fd we own; failure changes nothing.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, bytes) };
}

/// Other systems size pipes themselves (macOS grows them to 64 KiB on
/// demand); the channel is slower there, not wrong.
#[cfg(not(target_os = "linux"))]
fn grow_pipe(_fd: &OwnedFd, _bytes: i32) {}

/// The host's half of a fresh channel, plus the two fds to hand the worker.
pub struct HostChannel {
    /// Host reads worker messages here.
    pub from_worker: interprocess::unnamed_pipe::tokio::Recver,
    /// Host writes host messages here.
    pub to_worker: interprocess::unnamed_pipe::tokio::Sender,
    /// Becomes the worker's stdin.
    pub worker_stdin: OwnedFd,
    /// Becomes the worker's stdout.
    pub worker_stdout: OwnedFd,
}

impl HostChannel {
    /// Creates both pipes. Must be called inside a tokio runtime.
    pub fn new() -> io::Result<Self> {
        let (h2w_read, h2w_write) = cloexec_pipe()?;
        let (w2h_read, w2h_write) = cloexec_pipe()?;
        grow_pipe(&w2h_write, WORKER_PIPE_BYTES);
        Ok(Self {
            from_worker: interprocess::unnamed_pipe::tokio::Recver::try_from(w2h_read)?,
            to_worker: interprocess::unnamed_pipe::tokio::Sender::try_from(h2w_write)?,
            worker_stdin: h2w_read,
            worker_stdout: w2h_write,
        })
    }
}

/// The worker's half: blocking pipe ends made from the fds it was given.
pub struct WorkerChannel {
    pub from_host: interprocess::unnamed_pipe::Recver,
    pub to_host: interprocess::unnamed_pipe::Sender,
}

impl WorkerChannel {
    pub fn from_fds(from_host: OwnedFd, to_host: OwnedFd) -> Self {
        Self {
            from_host: from_host.into(),
            to_host: to_host.into(),
        }
    }
}
