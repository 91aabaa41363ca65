//! The egress relay: every TCP connection accepted on the namespace's
//! `127.0.0.1:port` is joined to a fresh connection to the host proxy's
//! Unix socket, and bytes are copied both ways until both directions end.
//!
//! One thread runs one `poll` loop over every socket, rather than a thread
//! per connection: a tool that starts processes gets a PID namespace, after
//! which the worker may start no thread (see `sandbox`), so the only thread
//! the relay can have is the one started before.
//!
//! Bounds: at most [`Bounds::max_connections`] relayed at once, each with
//! one buffer of [`Bounds::buffer_bytes`] per direction, allocated when
//! the connection is accepted and freed when it ends. A connection beyond
//! the cap is not refused: the listener is left out of `poll` until one
//! ends, so it waits in the kernel's accept queue. A buffer that is full
//! stops reading from its source until the destination takes some, so a
//! slow side slows the other down instead of growing anything.
//!
//! Lifetime: the thread is detached and never joined; it ends with the
//! worker's process. Every socket is close-on-exec (std opens them so, and
//! [`Target::connect`] asks for it), so none reaches a tool's program.
//!
//! # Caveats
//! - When the proxy cannot be reached, the client gets a `502` written
//!   into the fresh connection, then the connection is closed; a client
//!   whose request is still unread may see the close as a reset instead.
//! - A half-close is passed on (`shutdown(SHUT_WR)` on the other side once
//!   the buffer is drained); an error on either side ends both.
//! - A side that waits for nothing is not polled, so a client that resets
//!   a connection whose only traffic left is from the proxy is noticed at
//!   the next write to it; the cap bounds how many such connections linger.

use std::io::{self, Read};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// How much the relay may hold.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max_connections: usize,
    pub buffer_bytes: usize,
}

/// 64 connections: uv downloads up to 50 files at once by default
/// (`UV_CONCURRENT_DOWNLOADS`), the busiest common client, and a few more
/// leave room for the tool's other traffic. 32 KiB each way copies at
/// well over 1 GB/s on loopback and keeps the worst case at 64 × 2 ×
/// 32 KiB = 4 MiB of the worker's memory.
pub const BOUNDS: Bounds = Bounds {
    max_connections: 64,
    buffer_bytes: 32 << 10,
};

/// While `accept` fails for want of fds or memory (EMFILE, ENFILE,
/// ENOBUFS), the listener rests until a relayed connection has something
/// to do (its end may free what the next accept needs) or this long at
/// most, so the loop does not spin on a listener that stays readable.
const ACCEPT_BACKOFF_MS: u16 = 100;

/// The relay's stack. Its buffers live on the heap and the loop keeps no
/// large locals, and a thread's stack counts against `RLIMIT_DATA`, so the
/// default 2 MiB would only take from the tool's budget.
const STACK_BYTES: usize = 256 << 10;

/// The host proxy's socket address, built once.
pub struct Target {
    addr: libc::sockaddr_un,
    len: libc::socklen_t,
}

impl Target {
    /// `path` must be absolute and fit `sun_path` with its NUL.
    pub fn new(path: &str) -> Result<Self, String> {
        if !path.starts_with('/') {
            return Err(format!("the proxy's socket path {path:?} is not absolute"));
        }
        // SAFETY: an all-zero sockaddr_un is valid.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = path.as_bytes();
        if bytes.contains(&0) || bytes.len() >= addr.sun_path.len() {
            return Err(format!(
                "the proxy's socket path {path:?} must be under {} bytes, without NUL",
                addr.sun_path.len()
            ));
        }
        for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
            *dst = *src as libc::c_char;
        }
        let len = std::mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1;
        Ok(Self {
            addr,
            len: len as libc::socklen_t,
        })
    }

    /// A new non-blocking, close-on-exec connection to the proxy. A Unix
    /// stream connects at once or not at all (EAGAIN when the proxy's
    /// accept queue is full), so the loop never waits on it.
    fn connect(&self) -> io::Result<UnixStream> {
        let flags = libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
        // SAFETY: plain socket(2).
        let fd = unsafe { libc::socket(libc::AF_UNIX, flags, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is fresh and owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: `addr` is a valid sockaddr_un of `len` bytes.
        let rc = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&raw const self.addr).cast::<libc::sockaddr>(),
                self.len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(UnixStream::from(fd))
    }
}

/// Starts the relay thread on `listener`, detached.
pub fn spawn(listener: TcpListener, target: Target, bounds: Bounds) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("egress-relay".into())
        .stack_size(STACK_BYTES)
        .spawn(move || run(&listener, &target, bounds))?;
    Ok(())
}

/// One direction of a connection: what was read from one side and not
/// yet written to the other.
struct Pipe {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// The source has ended.
    eof: bool,
    /// The end was passed on: the destination is shut for writing.
    shut: bool,
}

impl Pipe {
    fn new(bytes: usize) -> Self {
        Self {
            buf: vec![0; bytes].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            shut: false,
        }
    }

    fn wants_read(&self) -> bool {
        !self.eof && self.end < self.buf.len()
    }

    fn wants_write(&self) -> bool {
        self.start < self.end
    }

    /// Reads once from `from` if there is room, writes what is buffered to
    /// `to` until it would block, and passes the source's end on once all
    /// is written. Non-blocking throughout; `Err` ends the connection.
    fn step(
        &mut self,
        mut from: impl Read,
        to: BorrowedFd<'_>,
        shutdown: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        if self.wants_read() {
            match from.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if retry_later(&e) => {}
                Err(e) => return Err(e),
            }
        }
        while self.wants_write() {
            match send(to, &self.buf[self.start..self.end]) {
                Ok(n) => self.start += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == self.buf.len() && self.start > 0 {
            // Make room at the end for the next read.
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        if self.eof && !self.wants_write() && !self.shut {
            self.shut = true;
            // The other side may be gone already; the other direction
            // then fails on its own and ends the connection.
            let _ = shutdown();
        }
        Ok(())
    }
}

/// One relayed connection.
struct Conn {
    tcp: TcpStream,
    unix: UnixStream,
    /// Tool to proxy.
    up: Pipe,
    /// Proxy to tool.
    down: Pipe,
}

impl Conn {
    /// What each side waits for: (TCP, Unix). A live connection always
    /// waits for something (a full buffer waits to be written, an empty
    /// one to be read), so it never sits out of `poll` for good.
    fn interest(&self) -> (PollFlags, PollFlags) {
        let flags = |read: bool, write: bool| {
            let mut f = PollFlags::empty();
            f.set(PollFlags::POLLIN, read);
            f.set(PollFlags::POLLOUT, write);
            f
        };
        (
            flags(self.up.wants_read(), self.down.wants_write()),
            flags(self.down.wants_read(), self.up.wants_write()),
        )
    }

    /// Moves what can be moved; `Ok(true)` once both directions ended.
    fn step(&mut self) -> io::Result<bool> {
        let Self {
            tcp,
            unix,
            up,
            down,
        } = self;
        up.step(&*tcp, unix.as_fd(), || unix.shutdown(Shutdown::Write))?;
        down.step(&*unix, tcp.as_fd(), || tcp.shutdown(Shutdown::Write))?;
        Ok(up.shut && down.shut)
    }
}

fn run(listener: &TcpListener, target: &Target, bounds: Bounds) {
    let mut conns: Vec<Conn> = Vec::new();
    let mut resting = false;
    loop {
        let listening = !resting && conns.len() < bounds.max_connections;
        let (listener_ready, ready) = match wait(listener, &conns, listening, resting) {
            Ok(r) => r,
            Err(nix::errno::Errno::EINTR) => continue,
            // Nothing left to do but stop relaying: the sockets close with
            // the thread's state, and the tool's connections are refused.
            Err(_) => return,
        };
        let mut ready = ready.into_iter();
        conns.retain_mut(|c| !ready.next().unwrap_or(false) || matches!(c.step(), Ok(false)));
        resting = listener_ready && accept(listener, target, &mut conns, bounds);
    }
}

/// Polls the listener (if `listening`) and every connection's sockets for
/// what they wait for. Returns whether the listener is ready, and for each
/// connection whether either of its sockets is.
fn wait(
    listener: &TcpListener,
    conns: &[Conn],
    listening: bool,
    resting: bool,
) -> Result<(bool, Vec<bool>), nix::errno::Errno> {
    let mut fds = Vec::with_capacity(1 + 2 * conns.len());
    let mut owners = Vec::with_capacity(2 * conns.len());
    if listening {
        fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
    }
    for (i, c) in conns.iter().enumerate() {
        let (tcp, unix) = c.interest();
        // A socket waiting for nothing stays out: `poll` would still
        // report its hang-up, at once and on every round.
        for (fd, flags) in [(c.tcp.as_fd(), tcp), (c.unix.as_fd(), unix)] {
            if !flags.is_empty() {
                fds.push(PollFd::new(fd, flags));
                owners.push(i);
            }
        }
    }
    let timeout = if resting {
        PollTimeout::from(ACCEPT_BACKOFF_MS)
    } else {
        PollTimeout::NONE
    };
    poll(&mut fds, timeout)?;
    let fired = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
    let listener_ready = listening && fired(&fds[0]);
    let mut ready = vec![false; conns.len()];
    for (fd, owner) in fds[usize::from(listening)..].iter().zip(owners) {
        ready[owner] |= fired(fd);
    }
    Ok((listener_ready, ready))
}

/// Accepts what waits, up to the cap. `true`: accepting failed for want of
/// resources, and the listener should rest.
fn accept(listener: &TcpListener, target: &Target, conns: &mut Vec<Conn>, bounds: Bounds) -> bool {
    while conns.len() < bounds.max_connections {
        match listener.accept() {
            Ok((tcp, _)) => conns.extend(open(tcp, target, bounds)),
            Err(e) if retry_later(&e) => return false,
            // The client gave up while queued: nothing to relay.
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(_) => return true,
        }
    }
    false
}

/// Joins an accepted connection to a new one to the proxy, or answers it
/// with a 502 that says why there is none.
fn open(tcp: TcpStream, target: &Target, bounds: Bounds) -> Option<Conn> {
    tcp.set_nonblocking(true).ok()?;
    // Requests and TLS handshakes are small writes that wait for an
    // answer; Nagle would hold each for the peer's delayed ACK.
    let _ = tcp.set_nodelay(true);
    match target.connect() {
        Ok(unix) => Some(Conn {
            tcp,
            unix,
            up: Pipe::new(bounds.buffer_bytes),
            down: Pipe::new(bounds.buffer_bytes),
        }),
        Err(e) => {
            let body = format!("bulkhead: the egress proxy cannot be reached: {e}\n");
            let answer = format!(
                "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            // Best effort into a fresh socket's empty send buffer.
            let _ = send(tcp.as_fd(), answer.as_bytes());
            None
        }
    }
}

/// Nothing to do now; `poll` says when to try again.
fn retry_later(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// `send` without SIGPIPE: a peer that has gone must end its connection,
/// not the worker, whatever the signal's disposition.
fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: send(2) reads `buf.len()` bytes of `buf`.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
