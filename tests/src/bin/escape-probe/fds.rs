//! `inherited_fd`: is a descriptor the host had open (its IPC socket, a log
//! file) still open in the tool? Only zero-length reads and writes are
//! tried: they report the access mode (EBADF if not readable/writable)
//! without consuming or injecting bytes on a host channel, and never block.

use crate::args::Args;
use crate::report::{Report, last_errno, strerror};

fn access_mode(flags: libc::c_int) -> &'static str {
    match flags & libc::O_ACCMODE {
        libc::O_RDONLY => "O_RDONLY",
        libc::O_WRONLY => "O_WRONLY",
        libc::O_RDWR => "O_RDWR",
        _ => "O_PATH/other",
    }
}

/// `ok` or the error name of a 0-byte read or write.
fn zero_io(fd: libc::c_int, write: bool) -> String {
    let mut byte = [0u8; 1];
    let p = byte.as_mut_ptr() as *mut libc::c_void;
    // SAFETY: a zero-length transfer touches no memory.
    let rc = unsafe {
        if write {
            libc::write(fd, p, 0)
        } else {
            libc::read(fd, p, 0)
        }
    };
    if rc < 0 {
        strerror(last_errno())
    } else {
        "ok".into()
    }
}

/// `inherited_fd --fd N`
pub fn inherited_fd(args: &Args) -> Result<Report, String> {
    const ATTEMPT: &str = "inherited_fd";
    let fd: libc::c_int = args.required_parsed("fd")?;
    if fd < 0 {
        return Err(format!("--fd {fd}: must be non-negative"));
    }
    // First thing that touches the fd table: nothing the probe opened itself
    // can be mistaken for an inherited descriptor.
    // SAFETY: F_GETFD only reads descriptor flags.
    let fd_flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if fd_flags < 0 {
        return Ok(Report::os_failure(
            ATTEMPT,
            "fcntl",
            last_errno(),
            &format!("fcntl({fd}, F_GETFD)"),
        ));
    }
    // SAFETY: as above, for status flags.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    let mode = if fl < 0 {
        "unknown".into()
    } else {
        access_mode(fl).to_string()
    };
    let target = match std::fs::read_link(format!("/proc/self/fd/{fd}")) {
        Ok(t) => t.display().to_string(),
        Err(e) => format!("(readlink failed: {e})"),
    };
    Ok(Report::escaped(
        ATTEMPT,
        format!(
            "fd {fd} is open -> {target}; {mode}; read(0 bytes): {}; write(0 bytes): {}",
            zero_io(fd, false),
            zero_io(fd, true)
        ),
    ))
}
