//! The worker confines itself before it runs anything.
//!
//! The host spawns the worker with a plain `posix_spawn` (no `pre_exec`, which
//! would force a `fork()` whose cost grows with the host's memory), so every
//! restriction that must hold for the tool is applied here, by the worker, to
//! itself. Children inherit all of it.
//!
//! # Caveats
//! - `PR_SET_PDEATHSIG` fires when the host *thread* that spawned us exits,
//!   not the host process. The host spawns from one long-lived thread, and the
//!   worker also tears down on EOF of its IPC channel, so neither signal is
//!   relied on alone.
//! - `RLIMIT_NPROC` counts every process of the real uid, and root is exempt.
//!   For root it is not set; the cgroup `pids` controller is the cap then.
//! - rlimits are per process: a tree of N processes may use N × `RLIMIT_DATA`.
//!   The host's cgroup or watchdog is what caps the whole tree.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use bulkhead_ipc::WorkerLimits;
use rlimit::Resource;

/// The first fd the worker keeps for its own channel. Anything below is
/// stdio, and stdio is pointed at `/dev/null` so a stray print cannot
/// corrupt the protocol.
const FIRST_PRIVATE_FD: i32 = 3;

/// Applies everything that does not depend on the call: a new session,
/// no-new-privs, parent-death signal, child-subreaper, closed fds, and stdio
/// moved off the IPC socket. Returns the IPC fds `(from_host, to_host)` and
/// the list of what was applied, for the `Confined` report.
pub fn confine_process(expected_parent: Option<i32>) -> io::Result<(OwnedFd, OwnedFd, Applied)> {
    let mut applied = Applied::default();

    // A new session detaches us from the user's terminal (no TIOCSTI on it,
    // no SIGINT from its Ctrl-C) and makes us a process group leader, so the
    // host could signal the group. It fails only if we already lead a group,
    // which the host never arranges.
    match nix::unistd::setsid() {
        Ok(_) => applied.push("session", "new session and process group"),
        Err(e) => applied.push("session", format!("not applied: setsid failed: {e}")),
    }

    linux_process_controls(&mut applied)?;
    // The host may have died between our spawn and the parent-death
    // signal being set; then no signal will ever come, so check by hand.
    let parent = nix::unistd::getppid().as_raw();
    if let Some(expected) = expected_parent
        && parent != expected
    {
        return Err(io::Error::other(format!(
            "host {expected} exited before the worker started (parent is now {parent})"
        )));
    }
    applied.push("parent_check", "re-checked getppid after start");

    close_inherited_fds()?;
    applied.push("inherited_fds", "closed all but the ipc channel");

    scrub_environment(&mut applied);

    let from_host = dup_private(0)?;
    let to_host = dup_private(1)?;
    let null = File::options().read(true).write(true).open("/dev/null")?;
    for fd in [0, 1] {
        // SAFETY: dup2 onto stdio fds we own; `null` stays open for the call.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((from_host, to_host, applied))
}

/// no-new-privs, the parent-death signal and child-subreaper: Linux
/// `prctl`s.
#[cfg(target_os = "linux")]
fn linux_process_controls(applied: &mut Applied) -> io::Result<()> {
    nix::sys::prctl::set_no_new_privs().map_err(io::Error::from)?;
    applied.push("no_new_privs", "set");
    // SIGTERM, not SIGKILL: the worker must live long enough to kill its
    // own descendants (see `teardown`).
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM).map_err(io::Error::from)?;
    applied.push("parent_death", "SIGTERM on host death");
    // Orphaned descendants (a daemonised grandchild) are re-parented to us,
    // not to init, so teardown can still find and reap them.
    nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)?;
    applied.push("subreaper", "set");
    Ok(())
}

/// Elsewhere none of the three exists as such; say so, since weaker
/// isolation is never silent. The worker still exits on EOF of its channel
/// when the host dies.
#[cfg(not(target_os = "linux"))]
fn linux_process_controls(applied: &mut Applied) -> io::Result<()> {
    let why = format!(
        "not applied: no equivalent used on {}",
        std::env::consts::OS
    );
    for name in ["no_new_privs", "parent_death", "subreaper"] {
        applied.push(name, why.clone());
    }
    Ok(())
}

/// Variables bulkhead sets for the worker alone; the tool never sees them.
const INTERNAL_ENV: &[&str] = &["BULKHEAD_HOST_PID"];

/// The host spawns the worker with a cleared environment plus its
/// allowlist. The worker removes bulkhead's own variables on top, so the
/// tool sees exactly the allowlist, and reports which names it kept (never
/// their values) so the report shows what reached the tool.
fn scrub_environment(applied: &mut Applied) {
    for name in INTERNAL_ENV {
        // SAFETY: called before the worker starts any thread, so nothing
        // reads the environment concurrently.
        unsafe { std::env::remove_var(name) };
    }
    let mut kept: Vec<String> = std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect();
    kept.sort();
    applied.push("environment", format!("allowlist only: {}", kept.join(" ")));
}

/// Closes every fd from 3 up. The host already creates its fds close-on-exec,
/// but a host embedding bulkhead may not, and a leaked fd is a way out.
fn close_inherited_fds() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: close_range only closes fds; none above 2 is in use yet.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                FIRST_PRIVATE_FD as u32,
                u32::MAX,
                0u32,
            )
        };
        if rc == 0 {
            return Ok(());
        }
    }
    // Kernels before 5.9, and other systems: close what the fd directory
    // lists. Collect first, because reading the directory opens an fd.
    let dir = if cfg!(target_os = "linux") {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    };
    let fds: Vec<i32> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= FIRST_PRIVATE_FD)
        .collect();
    for fd in fds {
        // SAFETY: closing an fd we do not use; EBADF for the dir's own fd is fine.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

fn dup_private(fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new fd or -1.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, FIRST_PRIVATE_FD) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// What was applied, in order, with a note for each mechanism.
#[derive(Debug, Default)]
pub struct Applied(pub Vec<(String, String)>);

impl Applied {
    pub fn push(&mut self, name: &str, note: impl Into<String>) {
        self.0.push((name.to_owned(), note.into()));
    }
}

/// Sets the per-call rlimits. Soft and hard are equal, except CPU, where the
/// hard limit is one second higher so a tool gets SIGXCPU (catchable,
/// reported as `cpu`) before the kernel's SIGKILL.
pub fn apply_limits(limits: &WorkerLimits, applied: &mut Applied) -> io::Result<()> {
    set(Resource::CORE, Some(0), "RLIMIT_CORE", applied)?;
    if let Some(secs) = limits.cpu_seconds {
        rlimit::setrlimit(Resource::CPU, secs, secs.saturating_add(1))?;
        applied.push("RLIMIT_CPU", format!("{secs} s per process"));
    }
    set(
        Resource::NOFILE,
        Some(limits.open_files),
        "RLIMIT_NOFILE",
        applied,
    )?;
    set(
        Resource::FSIZE,
        limits.file_size_bytes,
        "RLIMIT_FSIZE",
        applied,
    )?;
    set(Resource::DATA, limits.data_bytes, "RLIMIT_DATA", applied)?;
    set(
        Resource::AS,
        limits.address_space_bytes,
        "RLIMIT_AS",
        applied,
    )?;
    if let Some(procs) = limits.processes {
        if nix::unistd::getuid().is_root() {
            applied.push(
                "RLIMIT_NPROC",
                "not set: root is exempt from it; the pids cap comes from the host",
            );
        } else {
            // The limit counts every process of this uid, so grant the
            // call's budget on top of what the user already runs.
            let already = count_own_processes();
            let cap = already.saturating_add(procs);
            set(Resource::NPROC, Some(cap), "RLIMIT_NPROC", applied)?;
        }
    }
    Ok(())
}

fn set(res: Resource, value: Option<u64>, name: &str, applied: &mut Applied) -> io::Result<()> {
    let Some(value) = value else {
        applied.push(name, "unlimited");
        return Ok(());
    };
    let (_, hard) = rlimit::getrlimit(res)?;
    // An unprivileged process cannot raise its hard limit; clamp instead of
    // failing, and say so.
    let value = value.min(hard);
    rlimit::setrlimit(res, value, value)
        .map_err(|e| io::Error::new(e.kind(), format!("{name}={value}: {e}")))?;
    applied.push(name, value.to_string());
    Ok(())
}

fn count_own_processes() -> u64 {
    let uid = nix::unistd::getuid().as_raw();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter(|e| {
            use std::os::unix::fs::MetadataExt;
            e.metadata().is_ok_and(|m| m.uid() == uid)
        })
        .count() as u64
}
