//! Namespaces the worker enters before it runs the tool: a user namespace
//! (so the rest needs no privilege, and root inside has no power outside),
//! then network, PID, IPC and UTS namespaces.
//!
//! Every `unshare` here must run while the worker is single-threaded: the
//! kernel refuses `CLONE_NEWUSER` in a multi-threaded process. `serve`
//! starts its threads only after the sandbox is built.
//!
//! # Caveats
//! - `CLONE_NEWPID` moves the worker's *children* into the new namespace,
//!   not the worker. In-process tools (search, read) run outside it; they
//!   are bulkhead's own code. A spawned tool becomes PID 1 there, and when
//!   it exits the kernel kills everything left in the namespace.
//! - `/proc` is not remounted, so the tool still lists the host's processes
//!   in `/proc`. Their `environ`, `mem` and the like stay closed to it:
//!   Landlock forbids ptrace-class access to processes outside its domain.

use std::io;

use nix::sched::{CloneFlags, unshare};

/// Enters a user namespace that maps our uid and gid to themselves. Root
/// maps to root, which inside has capabilities over the new namespaces only.
pub fn enter_user_ns() -> Result<(), String> {
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    unshare(CloneFlags::CLONE_NEWUSER)
        .map_err(|e| format!("unshare(CLONE_NEWUSER): {e}{}", userns_hint()))?;
    // `setgroups` must be denied before an unprivileged process may write
    // its gid_map; for root it is harmless and keeps the tool from
    // dropping supplementary groups to bypass a deny-by-group permission.
    write_proc("/proc/self/setgroups", "deny")?;
    write_proc("/proc/self/uid_map", &format!("{uid} {uid} 1"))?;
    write_proc("/proc/self/gid_map", &format!("{gid} {gid} 1"))?;
    Ok(())
}

fn write_proc(path: &str, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("write {path}: {e}"))
}

/// Says which sysctl most likely refused the user namespace.
pub fn userns_hint() -> String {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return " (sysctl kernel.unprivileged_userns_clone = 0)".into();
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return " (sysctl kernel.apparmor_restrict_unprivileged_userns = 1)".into();
    }
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return " (sysctl user.max_user_namespaces = 0)".into();
    }
    String::new()
}

/// Enters an empty network namespace: no interface but a `lo` that is down.
pub fn enter_net_ns() -> Result<(), String> {
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))
}

/// Enters PID, IPC and UTS namespaces (for the worker's children).
pub fn enter_pid_ipc_uts_ns() -> Result<(), String> {
    unshare(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS)
        .map_err(|e| format!("unshare(CLONE_NEWPID|CLONE_NEWIPC|CLONE_NEWUTS): {e}"))
}

/// Brings up `lo` in our (new) network namespace.
pub fn loopback_up() -> Result<(), String> {
    let fail = |what: &str, e: io::Error| format!("bring up lo: {what}: {e}");
    // SAFETY: plain socket(2); the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(fail("socket", io::Error::last_os_error()));
    }
    // SAFETY: an all-zero ifreq is valid; the name fits with its NUL.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    let result = (|| {
        // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write `req` only.
        // (The request's type is `c_ulong` in glibc and `c_int` in musl,
        // hence the cast to libc's alias.)
        if unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS as libc::Ioctl, &mut req) } < 0 {
            return Err(fail("SIOCGIFFLAGS", io::Error::last_os_error()));
        }
        // SAFETY: the flags member of the union is the one SIOCGIFFLAGS set.
        unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
        if unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS as libc::Ioctl, &req) } < 0 {
            return Err(fail("SIOCSIFFLAGS", io::Error::last_os_error()));
        }
        Ok(())
    })();
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(fd) };
    result
}
