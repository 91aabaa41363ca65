//! Attempts on the kernel's privileged interfaces: inject keystrokes into
//! the terminal (TIOCSTI), mount a filesystem, load a module.

use std::ffi::CString;

use crate::args::Args;
use crate::report::{Report, errno_name, last_errno, strerror};

/// One TIOCSTI try: Ok(()) if a byte was pushed into a terminal's input.
fn push_byte(fd: libc::c_int) -> Result<(), i32> {
    let byte: libc::c_char = b'x' as libc::c_char;
    // SAFETY: TIOCSTI reads one char from the pointer we pass.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCSTI, &byte as *const libc::c_char) };
    if rc == 0 { Ok(()) } else { Err(last_errno()) }
}

/// `tiocsti`: on fds 0, 1, 2 and on /dev/tty. A tool that can push bytes into
/// the user's terminal can type commands into the shell that launched us.
pub fn tiocsti(_args: &Args) -> Result<Report, String> {
    const ATTEMPT: &str = "tiocsti";
    // (target, stage, result) for each try.
    let mut tries: Vec<(String, &str, Result<(), i32>)> = Vec::new();
    for fd in 0..=2 {
        tries.push((format!("fd {fd}"), "ioctl", push_byte(fd)));
    }
    let tty = c"/dev/tty";
    // SAFETY: valid path; O_NOCTTY so we never acquire a controlling tty.
    let fd = unsafe {
        libc::open(
            tty.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        tries.push(("/dev/tty".into(), "open", Err(last_errno())));
    } else {
        tries.push(("/dev/tty".into(), "ioctl", push_byte(fd)));
        // SAFETY: closing the fd we opened.
        unsafe { libc::close(fd) };
    }
    let detail = tries
        .iter()
        .map(|(target, stage, r)| match r {
            Ok(()) => format!("{target}: pushed a byte"),
            Err(e) => format!("{target}: {stage} {} ({})", errno_name(*e), strerror(*e)),
        })
        .collect::<Vec<_>>()
        .join("; ");
    if tries.iter().any(|(_, _, r)| r.is_ok()) {
        return Ok(Report::escaped(ATTEMPT, detail));
    }
    // The headline errno: the first refusal that is about permission, not
    // "this is no terminal" (ENOTTY on a pipe, EBADF on a closed fd, ENXIO
    // from /dev/tty without a controlling terminal): a seccomp filter answers
    // EPERM even for a pipe, the kernel's legacy_tiocsti=0 gives EIO.
    let not_a_tty = [libc::ENOTTY, libc::EBADF, libc::ENXIO];
    let headline = tries
        .iter()
        .find(|(_, _, r)| matches!(r, Err(e) if !not_a_tty.contains(e)))
        .or_else(|| tries.first());
    let (stage, errno) = match headline {
        Some((_, stage, Err(e))) => (*stage, Some(*e)),
        _ => ("ioctl", None),
    };
    Ok(Report::failure(ATTEMPT, stage, detail).with_errno(errno))
}

/// `mount --dir D`: a tmpfs over D; unmounted again if it worked.
pub fn mount(args: &Args) -> Result<Report, String> {
    const ATTEMPT: &str = "mount";
    let dir = args.required("dir")?;
    let target = CString::new(dir).map_err(|_| "--dir contains a NUL byte".to_string())?;
    // SAFETY: valid C strings; tmpfs takes no data.
    let rc = unsafe {
        libc::mount(
            c"none".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Ok(Report::os_failure(
            ATTEMPT,
            "mount",
            last_errno(),
            &format!("mount tmpfs on {dir}"),
        ));
    }
    // SAFETY: unmounting what we just mounted.
    let umount = if unsafe { libc::umount2(target.as_ptr(), 0) } == 0 {
        "unmounted again".to_string()
    } else {
        format!("umount failed: {}", strerror(last_errno()))
    };
    Ok(Report::escaped(
        ATTEMPT,
        format!("mounted tmpfs on {dir}; {umount}"),
    ))
}

/// `load_module`: init_module on 16 zero bytes, which no kernel would load.
/// EPERM means the call was refused before the loader looked at the image
/// (seccomp, or no CAP_SYS_MODULE); anything else (ENOEXEC: "not an ELF")
/// means it reached the loader, which a sandboxed tool must never do.
pub fn load_module(_args: &Args) -> Result<Report, String> {
    const ATTEMPT: &str = "load_module";
    let image = [0u8; 16];
    // SAFETY: image is valid for 16 bytes; params is an empty C string.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_init_module,
            image.as_ptr() as *const libc::c_void,
            image.len() as libc::c_ulong,
            c"".as_ptr(),
        )
    };
    if rc == 0 {
        return Ok(Report::escaped(
            ATTEMPT,
            "init_module accepted 16 zero bytes (!)",
        ));
    }
    let e = last_errno();
    let what = "init_module(16 zero bytes)";
    if e == libc::EPERM {
        return Ok(Report::os_failure(ATTEMPT, "init_module", e, what));
    }
    let mut detail = format!(
        "{what}: {} -- not EPERM, so the call was not blocked",
        strerror(e)
    );
    if e == libc::ENOSYS {
        detail.push_str(" (ENOSYS: a kernel without module support, or a filter answering ENOSYS)");
    }
    Ok(Report::escaped(ATTEMPT, detail).with_errno(Some(e)))
}
