//! `outlive`: leave a process behind that survives the tool call. The
//! classic daemon escape: fork, setsid (leave the tool's session and process
//! group, so killing the group misses it), fork again and let the middle
//! child exit (so the survivor is reparented away from the tool). Only the
//! sandbox killing the whole tree (cgroup, PID namespace) catches it; the
//! test checks later that no process with the marker in its cmdline is left.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use crate::args::Args;
use crate::report::{Report, last_errno, strerror};
use crate::sock::wait_for;

/// Message kinds the children send back on the pipe, as (kind, value) i32s.
const MSG_GRANDCHILD: i32 = 1;
const MSG_FORK_FAILED: i32 = 2;
const MSG_EXEC_FAILED: i32 = 3;
const MSG_SETSID_FAILED: i32 = 4;
/// How long to wait for the children's news before reporting what we have.
const NEWS_TIMEOUT_MS: i32 = 5000;

/// `linger --marker M`: sleep forever. `outlive` execs this so the marker is
/// in /proc/PID/cmdline; the marker is otherwise unused.
pub fn linger(args: &Args) -> Result<std::convert::Infallible, String> {
    args.required("marker")?;
    loop {
        // SAFETY: pause only waits for a signal.
        unsafe { libc::pause() };
    }
}

fn send(fd: libc::c_int, kind: i32, value: i32) {
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&kind.to_ne_bytes());
    msg[4..].copy_from_slice(&value.to_ne_bytes());
    // SAFETY: msg is valid for 8 bytes; a pipe write of 8 bytes is atomic.
    unsafe { libc::write(fd, msg.as_ptr() as *const libc::c_void, msg.len()) };
}

/// The grandchild: detach from the probe's stdio (the host must not wait on
/// our stdout), become `escape-probe linger --marker M`. Never returns.
fn grandchild(
    exe: &CString,
    argv: &[*const libc::c_char],
    devnull: &CString,
    news: libc::c_int,
) -> ! {
    // SAFETY: only async-signal-safe calls after fork, on prepared buffers.
    unsafe {
        // Drop every other inherited fd too (keeping only the news pipe):
        // a leftover that holds a host pipe open would make the host wait
        // for EOF, and the test must see a surviving process, not a hang.
        // close_range needs Linux 5.9; if it fails we linger with them.
        let last = libc::c_uint::MAX;
        let news_u = news as libc::c_uint;
        if news_u > 3 {
            libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                news_u - 1,
                0 as libc::c_uint,
            );
        }
        libc::syscall(libc::SYS_close_range, news_u + 1, last, 0 as libc::c_uint);
        libc::close(0);
        libc::close(1);
        libc::close(2);
        // Lowest free fd: 0, then copied to 1 and 2.
        if libc::open(devnull.as_ptr(), libc::O_RDWR) == 0 {
            libc::dup2(0, 1);
            libc::dup2(0, 2);
        }
        libc::execv(exe.as_ptr(), argv.as_ptr());
        // exec failed: say so, then linger as we are. Our cmdline is the
        // probe's own, `outlive --marker M`, so the marker is there anyway.
        send(news, MSG_EXEC_FAILED, last_errno());
        libc::close(news);
        loop {
            libc::pause();
        }
    }
}

/// `outlive --marker M`
pub fn outlive(args: &Args) -> Result<Report, String> {
    const ATTEMPT: &str = "outlive";
    let marker = args.required("marker")?;
    // Everything the children need is built before fork: they must not
    // allocate.
    let exe = std::env::current_exe()
        .ok()
        .map(|p| p.as_os_str().as_bytes().to_vec())
        .or_else(|| std::env::args_os().next().map(|a| a.as_bytes().to_vec()))
        .ok_or("cannot find the probe's own executable")?;
    let c = |b: &[u8]| CString::new(b).map_err(|_| "argument contains a NUL byte".to_string());
    let exe = c(&exe)?;
    let words = [
        exe.clone(),
        c(b"linger")?,
        c(b"--marker")?,
        c(marker.as_bytes())?,
    ];
    let mut argv: Vec<*const libc::c_char> = words.iter().map(|w| w.as_ptr()).collect();
    argv.push(std::ptr::null());
    let devnull = c(b"/dev/null")?;

    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors. CLOEXEC: a successful exec
    // closes the grandchild's end, which is how we learn it worked.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Ok(Report::os_failure(ATTEMPT, "pipe", last_errno(), "pipe2"));
    }
    // SAFETY: both fds were just created and are ours.
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let w = writer.as_raw_fd();

    // SAFETY: the child runs only async-signal-safe code (see below).
    let middle = unsafe { libc::fork() };
    if middle < 0 {
        return Ok(Report::os_failure(
            ATTEMPT,
            "fork",
            last_errno(),
            "fork (first)",
        ));
    }
    if middle == 0 {
        // SAFETY: setsid/fork/_exit are async-signal-safe.
        unsafe {
            libc::close(reader.as_raw_fd());
            if libc::setsid() < 0 {
                send(w, MSG_SETSID_FAILED, last_errno());
            }
            match libc::fork() {
                -1 => send(w, MSG_FORK_FAILED, last_errno()),
                0 => grandchild(&exe, &argv, &devnull, w),
                pid => send(w, MSG_GRANDCHILD, pid),
            }
            libc::_exit(0);
        }
    }
    drop(writer);
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(middle, std::ptr::null_mut(), 0) };

    // Read the news until EOF (the grandchild exec'd or gave up).
    let mut news = Vec::new();
    let mut file = std::fs::File::from(reader);
    let mut timed_out = false;
    loop {
        let ready = wait_for(&file, libc::POLLIN, NEWS_TIMEOUT_MS);
        if !matches!(ready, Ok(r) if r != 0) {
            timed_out = true;
            break;
        }
        let mut buf = [0u8; 64];
        match file.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => news.extend_from_slice(&buf[..n]),
        }
    }
    Ok(summarize(&news, marker, timed_out))
}

fn summarize(news: &[u8], marker: &str, timed_out: bool) -> Report {
    const ATTEMPT: &str = "outlive";
    let mut grandchild = None;
    let mut notes = Vec::new();
    for msg in news.chunks_exact(8) {
        let kind = i32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]);
        let value = i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
        match kind {
            MSG_GRANDCHILD => grandchild = Some(value),
            MSG_FORK_FAILED => {
                return Report::os_failure(ATTEMPT, "fork", value, "fork (second, after setsid)");
            }
            MSG_EXEC_FAILED => notes.push(format!(
                "exec of linger failed ({}), lingering as a fork",
                strerror(value)
            )),
            MSG_SETSID_FAILED => notes.push(format!("setsid failed ({})", strerror(value))),
            _ => {}
        }
    }
    if timed_out {
        notes.push("no EOF from the children within 5 s".into());
    }
    let Some(pid) = grandchild else {
        return Report::failure(
            ATTEMPT,
            "fork",
            format!("no grandchild pid reported; {}", notes.join("; ")),
        );
    };
    let mut detail =
        format!("grandchild pid {pid} lingering with marker {marker:?} in its cmdline");
    for n in notes {
        detail.push_str("; ");
        detail.push_str(&n);
    }
    // Not escaped yet: whether it survives the tool call is the test's call.
    Report::failure(ATTEMPT, "spawned", detail)
}
