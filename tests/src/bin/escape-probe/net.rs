//! `tcp_connect`: reach a listener on the host's loopback. An isolated
//! network namespace has its own (down) loopback, so the expected failure is
//! ENETUNREACH at connect; a seccomp filter on socket() fails earlier.
//!
//! `abstract_connect`: reach a host process's abstract Unix socket, which
//! has no file for Landlock's filesystem rules to guard. A network
//! namespace has its own abstract names (ECONNREFUSED: nothing listens
//! there); Landlock's scoping refuses the connect (EPERM).

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use crate::args::Args;
use crate::report::{Report, last_errno};
use crate::sock::{sockaddr, socket_error, socket_for, wait_for};

const TIMEOUT_MS: i32 = 3000;

/// `tcp_connect --addr IP:PORT`
pub fn tcp_connect(args: &Args) -> Result<Report, String> {
    const ATTEMPT: &str = "tcp_connect";
    let addr: SocketAddr = args.required_parsed("addr")?;
    let fd = match socket_for(&addr, libc::SOCK_STREAM) {
        Ok(fd) => fd,
        Err(e) => return Ok(Report::os_failure(ATTEMPT, "socket", e, "socket")),
    };
    let what = format!("connect {addr}");
    let (sa, len) = sockaddr(&addr);
    // SAFETY: sa/len describe a valid sockaddr for the socket's family.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            &sa as *const _ as *const libc::sockaddr,
            len,
        )
    };
    if rc == 0 {
        return Ok(Report::escaped(ATTEMPT, format!("connected to {addr}")));
    }
    let e = last_errno();
    if e != libc::EINPROGRESS {
        return Ok(Report::os_failure(ATTEMPT, "connect", e, &what));
    }
    // Non-blocking connect in flight: writable means it finished one way or
    // the other, and SO_ERROR says which.
    match wait_for(&fd, libc::POLLOUT, TIMEOUT_MS) {
        Err(e) => Ok(Report::os_failure(
            ATTEMPT,
            "connect",
            e,
            &format!("poll during {what}"),
        )),
        Ok(0) => Ok(Report::failure(
            ATTEMPT,
            "connect",
            format!("{what}: timeout after {TIMEOUT_MS} ms (no errno)"),
        )),
        Ok(_) => match socket_error(&fd) {
            Ok(0) => Ok(Report::escaped(ATTEMPT, format!("connected to {addr}"))),
            Ok(e) => Ok(Report::os_failure(ATTEMPT, "connect", e, &what)),
            Err(e) => Ok(Report::os_failure(
                ATTEMPT,
                "connect",
                e,
                &format!("getsockopt after {what}"),
            )),
        },
    }
}

/// `abstract_connect --name N`
pub fn abstract_connect(args: &Args) -> Result<Report, String> {
    use std::os::linux::net::SocketAddrExt;
    const ATTEMPT: &str = "abstract_connect";
    let name = args.required("name")?;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| format!("--name: {e}"))?;
    match std::os::unix::net::UnixStream::connect_addr(&addr) {
        Ok(_) => Ok(Report::escaped(ATTEMPT, format!("connected to @{name}"))),
        Err(e) => Ok(Report::os_failure(
            ATTEMPT,
            "connect",
            crate::report::io_errno(&e),
            &format!("connect @{name}"),
        )),
    }
}
