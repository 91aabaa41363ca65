//! Signalling processes without hitting a reused pid, and accounting a
//! call's usage over samples. The records come from [`super::proctable`],
//! whatever the OS.
//!
//! A process is identified by `(pid, start time)`: the start time differs
//! between two processes that share a pid number one after the other. To
//! signal such an identity without a race on Linux we open a pidfd first and
//! only then check the start time:
//! if the check passes, the process behind the pid existed before the pidfd
//! was opened and still exists after, so the pidfd names it, and
//! `pidfd_send_signal` cannot reach anything else even if the process dies
//! and its number is reused a microsecond later. Elsewhere (no pidfds) the
//! identity is checked right before `kill`, which leaves only a reuse within
//! microseconds able to misfire.

use std::collections::HashMap;

pub(crate) use super::proctable::{ProcStat, read_stat, scan_all};

/// True if `(pid, start)` names a process that exists and is not a zombie.
/// `start == None` accepts any process with that pid.
pub(crate) fn is_alive(pid: i32, start: Option<u64>) -> bool {
    match read_stat(pid) {
        Some(s) => !s.is_dead() && start.is_none_or(|st| st == s.start),
        None => false,
    }
}

/// Start time of the calling process (the host), used in cgroup names.
pub(crate) fn self_start_time() -> u64 {
    read_stat(std::process::id() as i32).map_or(0, |s| s.start)
}

/// Outcome of [`signal_exact`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signalled {
    Sent,
    /// The process is gone, a zombie, or the pid now belongs to another
    /// process (or, for `check`, is no longer ours).
    NotOurs,
}

/// Sends `sig` to `pid` if it is still the process started at `start` and
/// `check(pid)` still holds (both checked after a pidfd pins the process).
pub(crate) fn signal_exact(
    pid: i32,
    start: Option<u64>,
    check: impl Fn(i32) -> bool,
    sig: libc::c_int,
) -> Signalled {
    if pid <= 1 || pid as u32 == std::process::id() {
        // Never signal init, whole groups (pid 0/-1), or the host itself:
        // the host is never a member of a call, so seeing it listed means a
        // misconfigured (or simulated) hierarchy, not a process to kill.
        return Signalled::NotOurs;
    }
    let pidfd = pidfd::open(pid);
    if pidfd
        .as_ref()
        .is_err_and(|e| e.raw_os_error() == Some(libc::ESRCH))
    {
        return Signalled::NotOurs;
    }
    if !is_alive(pid, start) || !check(pid) {
        return Signalled::NotOurs;
    }
    let sent = match &pidfd {
        Ok(fd) => pidfd::send_signal(fd, sig),
        // No pidfd (kernel < 5.3, or fd exhaustion): the identity was just
        // checked, so only a reuse in the last microseconds could misfire.
        // SAFETY: kill has no memory-safety preconditions; pid > 1.
        Err(_) => match unsafe { libc::kill(pid, sig) } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        },
    };
    match sent {
        Ok(()) => Signalled::Sent,
        Err(_) => Signalled::NotOurs,
    }
}

/// Holds a pidfd for a process the cage must keep identifying even after its
/// number could be reused (the worker: once the supervisor reaps it).
pub(crate) use pidfd::Pidfd;

mod pidfd {
    use std::io;
    use std::os::fd::OwnedFd;
    #[cfg(target_os = "linux")]
    use std::os::fd::{AsRawFd, FromRawFd};

    pub(crate) type Pidfd = OwnedFd;

    #[cfg(target_os = "linux")]
    pub(crate) fn open(pid: i32) -> io::Result<OwnedFd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the syscall returned a fresh fd that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }

    #[cfg(target_os = "linux")]
    pub(crate) fn send_signal(fd: &OwnedFd, sig: libc::c_int) -> io::Result<()> {
        let null = std::ptr::null::<libc::siginfo_t>();
        // SAFETY: a valid pidfd, a signal number, a null siginfo and 0 flags.
        let rc =
            unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), sig, null, 0) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn open(_pid: i32) -> io::Result<OwnedFd> {
        Err(io::Error::from_raw_os_error(libc::ENOSYS))
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn send_signal(_fd: &OwnedFd, _sig: libc::c_int) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::ENOSYS))
    }
}

pub(crate) fn open_pidfd(pid: i32) -> Option<Pidfd> {
    pidfd::open(pid).ok()
}

/// Sends `sig` through a pidfd; false if the process is gone.
pub(crate) fn pidfd_signal(fd: &Pidfd, sig: libc::c_int) -> bool {
    pidfd::send_signal(fd, sig).is_ok()
}

/// Accumulates a cage's usage over samples.
///
/// CPU: the sum, over every `(pid, start)` ever seen, of the last
/// user + system time observed for it. A process that exits keeps contributing
/// what it had used when last seen, so the figure never goes down. Children
/// reaped by their parent also show up in the parent's `cutime`, which is
/// therefore ignored (it would count them twice). A process that lives and
/// dies entirely between two samples is not counted.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// Last CPU microseconds of each live process.
    live: HashMap<(i32, u64), u64>,
    dead_us: u64,
    cpu_ms: u64,
    peak_rss: u64,
}

/// One observation, in bytes and milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observed {
    pub(crate) rss_bytes: u64,
    pub(crate) peak_rss_bytes: u64,
    pub(crate) cpu_ms: u64,
    /// Processes that are neither gone nor zombies.
    pub(crate) processes: u32,
}

impl Tracker {
    pub(crate) fn observe(&mut self, procs: &[ProcStat]) -> Observed {
        let mut live = HashMap::with_capacity(procs.len());
        let mut rss_bytes = 0u64;
        let mut processes = 0u32;
        for p in procs {
            let key = (p.pid, p.start);
            let before = self.live.get(&key).copied().unwrap_or(0);
            live.insert(key, before.max(p.cpu_us));
            if !p.is_dead() {
                processes = processes.saturating_add(1);
                rss_bytes = rss_bytes.saturating_add(p.rss_bytes);
            }
        }
        for (key, us) in &self.live {
            if !live.contains_key(key) {
                self.dead_us = self.dead_us.saturating_add(*us);
            }
        }
        self.live = live;
        let us = self
            .live
            .values()
            .fold(self.dead_us, |acc, t| acc.saturating_add(*t));
        self.cpu_ms = self.cpu_ms.max(us / 1000);
        self.peak_rss = self.peak_rss.max(rss_bytes);
        Observed {
            rss_bytes,
            peak_rss_bytes: self.peak_rss,
            cpu_ms: self.cpu_ms,
            processes,
        }
    }

    /// Raises the CPU figure to an externally measured total (cgroup v2
    /// `cpu.stat`), which also covers processes too short-lived to sample.
    pub(crate) fn raise_cpu_ms(&mut self, ms: u64) {
        self.cpu_ms = self.cpu_ms.max(ms);
    }

    pub(crate) fn cpu_ms(&self) -> u64 {
        self.cpu_ms
    }
}

/// Sends `sig` to the process `pid` and every descendant of it found in
/// one snapshot of the process table (an injected `kill` or `hang`, which
/// act as someone outside the call would). Returns how many were signalled.
/// Each is signalled by its identity, so a pid reused meanwhile is spared.
pub(crate) fn signal_tree(pid: u32, sig: libc::c_int) -> usize {
    let Ok(pid) = i32::try_from(pid) else {
        return 0;
    };
    let Some(root) = read_stat(pid) else {
        return 0;
    };
    let known = HashMap::from([(pid, root.start)]);
    super::treewalk::members(&scan_all(), &known)
        .iter()
        .filter(|p| !p.is_dead())
        .filter(|p| signal_exact(p.pid, Some(p.start), |_| true, sig) == Signalled::Sent)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: i32, start: u64, state: u8, cpu_us: u64, rss_bytes: u64) -> ProcStat {
        ProcStat {
            pid,
            ppid: 1,
            state,
            start,
            cpu_us,
            rss_bytes,
        }
    }

    #[test]
    fn tracker_keeps_the_cpu_of_exited_processes_and_the_peak_rss() {
        let mut t = Tracker::default();
        let o = t.observe(&[p(10, 1, b'S', 2_000, 100), p(11, 1, b'R', 3_000, 50)]);
        assert_eq!((o.cpu_ms, o.rss_bytes, o.processes), (5, 150, 2));
        // 11 exited; 12 reuses nothing; 10 became a zombie holding no memory.
        let o = t.observe(&[p(10, 1, b'Z', 2_500, 0), p(12, 1, b'S', 1_000, 20)]);
        assert_eq!((o.cpu_ms, o.rss_bytes, o.processes), (6, 20, 1));
        assert_eq!(o.peak_rss_bytes, 150);
        // The same pid with another start time is another process.
        let o = t.observe(&[p(12, 2, b'S', 1_000, 20)]);
        assert_eq!(o.cpu_ms, 7);
    }
}
