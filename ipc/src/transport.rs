//! The channel between host and worker: one `socketpair(AF_UNIX,
//! SOCK_STREAM)`, each end held in the `interprocess` crate's Unix
//! local-socket stream (tokio in the host, blocking in the worker).
//!
//! The worker's end becomes both its stdin and its stdout when it is
//! spawned, so it travels through `posix_spawn`'s file actions and no
//! `pre_exec` is needed. The pair has no name, so no other process can
//! connect to it or inject frames: the only way in is to inherit an end,
//! and both ends are created close-on-exec. (Unlike a pipe, a socket cannot
//! be reopened through `/proc/PID/fd` either: `open` on it fails with
//! `ENXIO`.) A token handshake is what a *named* socket would need; an
//! unnamed pair has nothing to guard.
//!
//! Why a socket and not two pipes: on Linux a stream socket moves 64 KiB
//! writes about 1.4× as fast as a pipe, even one raised to 1 MiB, and the
//! frames over it keep ~100% of the bare socket's rate (`scripts/bench
//! ipc`, BENCHMARKS.md).
//!
//! # Caveats
//! - The host's two halves share one socket. Dropping the write half shuts
//!   down the sending direction (`shutdown(SHUT_WR)`), so the worker reads
//!   end-of-stream as it did when the host closed its pipe; the read half
//!   still drains what the worker sent.
//! - The kernel's socket buffer (`net.core.wmem_default`, 208 KiB on
//!   Linux) is what the worker may run ahead of the host's reads; credit,
//!   not the buffer, bounds chunks in flight.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// One direction of an in-process wake-up or relay channel: `(read end,
/// write end)`, both close-on-exec. (The host ↔ worker channel itself is a
/// socket pair, see [`HostChannel`].)
pub fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    cloexec_fd_pair(|fds| {
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        #[cfg(not(target_vendor = "apple"))]
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
        // SAFETY: as above; macOS has no pipe2.
        #[cfg(target_vendor = "apple")]
        let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
        rc
    })
}

/// A connected, unnamed `AF_UNIX` stream pair, both ends close-on-exec and
/// blocking.
pub fn cloexec_socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(not(target_vendor = "apple"))]
    let kind = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    // macOS has no SOCK_CLOEXEC.
    #[cfg(target_vendor = "apple")]
    let kind = libc::SOCK_STREAM;
    cloexec_fd_pair(|fds| {
        // SAFETY: `fds` is a valid array of two ints for socketpair to fill.
        unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) }
    })
}

/// Runs `make` (`pipe2`, `socketpair`: fills two fds, returns 0 or -1) and
/// owns the result. Where `make` could not ask for close-on-exec (macOS),
/// the flag is set right after, which leaves a window in which a concurrent
/// fork elsewhere in the process could inherit the fds (the host spawns
/// from one thread, with posix_spawn).
fn cloexec_fd_pair(
    make: impl FnOnce(&mut [libc::c_int; 2]) -> libc::c_int,
) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    if make(&mut fds) != 0 {
        return Err(io::Error::last_os_error());
    }
    #[cfg(target_vendor = "apple")]
    for fd in fds {
        // SAFETY: F_SETFD on an fd just made and owned by nobody else.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: both fds were just made, are open, and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The host's end, as `interprocess` gives a Unix local socket to tokio.
pub type HostStream = interprocess::os::unix::uds_local_socket::tokio::Stream;

/// The worker's end (blocking). The worker holds two of these, one per
/// direction, on two descriptors of the same socket.
pub type WorkerStream = interprocess::os::unix::uds_local_socket::Stream;

/// The host's reading half. Reads through the shared stream (`&Stream` is
/// `AsyncRead`; tokio keeps separate read and write wakers, so the two
/// halves never steal each other's wake-ups).
#[derive(Debug)]
pub struct HostReadHalf(Arc<HostStream>);

/// The host's writing half; shuts down the sending direction when dropped
/// (see the module's caveats).
#[derive(Debug)]
pub struct HostWriteHalf(Arc<HostStream>);

impl AsyncRead for HostReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for HostWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(shut_write(&self.0))
    }
}

impl Drop for HostWriteHalf {
    fn drop(&mut self) {
        // ENOTCONN once the worker has closed its end: nothing to tell it.
        let _ = shut_write(&self.0);
    }
}

fn shut_write(stream: &HostStream) -> io::Result<()> {
    // SAFETY: shutdown on a socket fd the stream owns and keeps open.
    let rc = unsafe { libc::shutdown(stream.as_fd().as_raw_fd(), libc::SHUT_WR) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The host's half of a fresh channel, plus the two fds to hand the worker.
pub struct HostChannel {
    /// Host reads worker messages here.
    pub from_worker: HostReadHalf,
    /// Host writes host messages here.
    pub to_worker: HostWriteHalf,
    /// Becomes the worker's stdin.
    pub worker_stdin: OwnedFd,
    /// Becomes the worker's stdout: the same socket as `worker_stdin`, a
    /// second descriptor so that each stdio slot owns one.
    pub worker_stdout: OwnedFd,
}

impl HostChannel {
    /// Creates the socket pair. Must be called inside a tokio runtime.
    pub fn new() -> io::Result<Self> {
        let (host, worker) = cloexec_socketpair()?;
        size_buffers(&host, &worker);
        set_nonblocking(&host)?;
        // tokio requires a non-blocking fd; interprocess' conversion
        // registers it as it is.
        let host = Arc::new(HostStream::try_from(host)?);
        Ok(Self {
            from_worker: HostReadHalf(Arc::clone(&host)),
            to_worker: HostWriteHalf(host),
            worker_stdout: worker.try_clone()?,
            worker_stdin: worker,
        })
    }
}

/// Buffer asked for on systems whose `AF_UNIX` stream sockets start at
/// 8 KiB (macOS, FreeBSD: `net.local.stream.sendspace`), where every
/// 64 KiB chunk would take eight wake-ups. 256 KiB holds four chunks, as
/// Linux's default (`net.core.wmem_default`, 208 KiB) about does.
#[cfg(not(target_os = "linux"))]
const OTHER_UNIX_SOCKET_BYTES: libc::c_int = 256 << 10;

/// Linux's default buffer already holds several chunks; the frames reach
/// the bare socket's rate with it (BENCHMARKS.md, ipc).
#[cfg(target_os = "linux")]
fn size_buffers(_host: &OwnedFd, _worker: &OwnedFd) {}

/// Best effort: a system maximum below the ask keeps its default, which is
/// slower, not wrong.
#[cfg(not(target_os = "linux"))]
fn size_buffers(host: &OwnedFd, worker: &OwnedFd) {
    let set = |fd: &OwnedFd, option: libc::c_int| {
        let bytes = OTHER_UNIX_SOCKET_BYTES;
        // SAFETY: setsockopt on a socket we own, with a c_int option value
        // of the size given.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&bytes as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    };
    // Each direction: the sender's send buffer, the receiver's receive one.
    for fd in [host, worker] {
        set(fd, libc::SO_SNDBUF);
        set(fd, libc::SO_RCVBUF);
    }
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL on an fd we own only change its status flags.
    let rc = unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFL);
        if flags < 0 {
            flags
        } else {
            libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK)
        }
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The worker's half: blocking streams made from the fds it was given.
pub struct WorkerChannel {
    pub from_host: WorkerStream,
    pub to_host: WorkerStream,
}

impl WorkerChannel {
    pub fn from_fds(from_host: OwnedFd, to_host: OwnedFd) -> Self {
        Self {
            from_host: from_host.into(),
            to_host: to_host.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn both_directions_carry_bytes() {
        let rt = runtime();
        rt.block_on(async {
            let host = HostChannel::new().expect("channel");
            let worker = WorkerChannel::from_fds(host.worker_stdin, host.worker_stdout);
            let (mut from_worker, mut to_worker) = (host.from_worker, host.to_worker);
            to_worker.write_all(b"to worker").await.expect("write");
            let mut got = [0u8; 9];
            (&worker.from_host).read_exact(&mut got).expect("read");
            assert_eq!(&got, b"to worker");
            (&worker.to_host).write_all(b"to host").expect("write");
            let mut got = [0u8; 7];
            from_worker.read_exact(&mut got).await.expect("read");
            assert_eq!(&got, b"to host");
        });
    }

    #[test]
    fn dropping_the_write_half_is_end_of_stream_for_the_worker_only() {
        let rt = runtime();
        rt.block_on(async {
            let host = HostChannel::new().expect("channel");
            let worker = WorkerChannel::from_fds(host.worker_stdin, host.worker_stdout);
            let mut from_worker = host.from_worker;
            drop(host.to_worker);
            let mut rest = Vec::new();
            (&worker.from_host).read_to_end(&mut rest).expect("read");
            assert!(rest.is_empty(), "the worker sees end of stream");
            // The other direction still works.
            (&worker.to_host).write_all(b"late").expect("write");
            drop(worker);
            let mut got = Vec::new();
            from_worker.read_to_end(&mut got).await.expect("read");
            assert_eq!(got, b"late");
        });
    }

    #[test]
    fn both_ends_are_close_on_exec() {
        let (a, b) = cloexec_socketpair().expect("pair");
        for fd in [&a, &b] {
            // SAFETY: F_GETFD on an fd we own.
            let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
            assert_ne!(flags & libc::FD_CLOEXEC, 0);
        }
    }
}
