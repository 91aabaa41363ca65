//! Attempts 9, 13 and 14: an fd inherited from the host, terminal input
//! injection, and the kernel's own interfaces (mount, modules).

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;

use crate::{Fixture, applied, attempt, attempt_with};

/// The test opens a file *without* CLOEXEC on purpose and hands it to the
/// host; the worker closes every fd it did not create before the tool
/// runs.
#[test]
fn use_an_fd_inherited_from_the_host() {
    let fx = Fixture::new();
    let leaked = std::fs::File::open(fx.secret_key()).unwrap();
    let fd = leaked.as_raw_fd();
    let a = attempt_with(
        &fx,
        &["inherited_fd", "--fd", &fd.to_string()],
        &[],
        move |cmd| {
            // SAFETY: only clears FD_CLOEXEC on an fd we own, in the child.
            unsafe {
                cmd.pre_exec(move || {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                    Ok(())
                });
            }
        },
    );
    drop(leaked);
    assert!(
        applied(&a, "inherited_fds").starts_with("closed"),
        "{}",
        a.report["enforcement"]
    );
    assert!(!a.escaped(), "{}", a.probe);
    assert_eq!(a.errno_name(), "EBADF", "{}", a.probe);
    println!("| inherited_fd | close_range in the worker | blocked: fcntl EBADF |");
}

/// No controlling terminal (a new session, stdin not a tty) and TIOCSTI
/// refused by seccomp.
#[test]
fn inject_terminal_input() {
    let fx = Fixture::new();
    let a = attempt(&fx, &["tiocsti"], &[]);
    assert!(
        applied(&a, "session").contains("new session"),
        "{}",
        a.report["enforcement"]
    );
    a.assert_stopped_by(&["seccomp"], &["EPERM"]);
}

#[test]
fn mount_something() {
    let fx = Fixture::new();
    let a = attempt(&fx, &["mount", "--dir", "$TMPDIR"], &[]);
    a.assert_stopped_by(&["seccomp"], &["EPERM"]);
}

#[test]
fn load_a_kernel_module() {
    let fx = Fixture::new();
    let a = attempt(&fx, &["load_module"], &[]);
    a.assert_stopped_by(&["seccomp"], &["EPERM"]);
}
