//! Reading processes from `/proc` and signalling them without hitting a
//! reused pid.
//!
//! A process is identified by `(pid, start time)`: the start time (field 22
//! of `/proc/PID/stat`, clock ticks since boot) differs between two processes
//! that share a pid number one after the other. To signal such an identity
//! without a race we open a pidfd first and only then check the start time:
//! if the check passes, the process behind the pid existed before the pidfd
//! was opened and still exists after, so the pidfd names it, and
//! `pidfd_send_signal` cannot reach anything else even if the process dies
//! and its number is reused a microsecond later.

use std::collections::HashMap;
use std::fs;
use std::sync::OnceLock;

/// What the enforcer needs from one `/proc/PID/stat` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub pid: i32,
    pub ppid: i32,
    /// `R`, `S`, `D`, `T`, `Z`, … (field 3).
    pub state: u8,
    /// Clock ticks since boot (field 22).
    pub start: u64,
    /// `utime + stime` in clock ticks (fields 14 and 15).
    pub cpu_ticks: u64,
    /// Resident pages (field 24). The kernel fills it from the same counter
    /// as `statm`'s `resident`, so reading `stat` alone saves a second
    /// `open`/`read` per process and sample.
    pub rss_pages: u64,
}

impl ProcStat {
    /// Zombies (and the transient `X` state) hold no memory and can no longer
    /// run or fork; everywhere in the enforcer they count as dead.
    pub fn is_dead(&self) -> bool {
        matches!(self.state, b'Z' | b'X')
    }
}

/// Parses one `/proc/PID/stat` line. `comm` (field 2) may contain spaces and
/// parentheses, so the fields after it are found from the *last* `)`.
pub(crate) fn parse_stat(line: &str) -> Option<ProcStat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let pid = line.get(..open)?.trim().parse().ok()?;
    let rest: Vec<&str> = line.get(close + 1..)?.split_ascii_whitespace().collect();
    // `rest[0]` is field 3, so field N is `rest[N - 3]`.
    let field = |n: usize| -> Option<u64> { rest.get(n - 3)?.parse().ok() };
    Some(ProcStat {
        pid,
        state: *rest.first()?.as_bytes().first()?,
        ppid: rest.get(1)?.parse().ok()?,
        cpu_ticks: field(14)?.saturating_add(field(15)?),
        start: field(22)?,
        rss_pages: field(24)?,
    })
}

/// `None` when the process is gone (or `/proc` is unreadable).
pub(crate) fn read_stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Every process visible in `/proc`. Costs one `open`+`read` per process
/// (a whole watchdog sample measured ≈1.2 ms with 80 processes, debug
/// build), which is why the watchdog interval is tens of milliseconds.
pub(crate) fn scan_all() -> Vec<ProcStat> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let name = entry.ok()?.file_name();
        let pid: i32 = name.to_str()?.parse().ok()?;
        read_stat(pid)
    })
    .collect()
}

/// True if `(pid, start)` names a process that exists and is not a zombie.
/// `start == None` accepts any process with that pid.
pub(crate) fn is_alive(pid: i32, start: Option<u64>) -> bool {
    match read_stat(pid) {
        Some(s) => !s.is_dead() && start.is_none_or(|st| st == s.start),
        None => false,
    }
}

pub(crate) fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PAGE.get_or_init(|| match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as u64,
        _ => 4096,
    })
}

pub(crate) fn clock_ticks_per_sec() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *TCK.get_or_init(|| match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as u64,
        _ => 100,
    })
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
/// `utime + stime` observed for it. A process that exits keeps contributing
/// what it had used when last seen, so the figure never goes down. Children
/// reaped by their parent also show up in the parent's `cutime`, which is
/// therefore ignored (it would count them twice). A process that lives and
/// dies entirely between two samples is not counted.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    live: HashMap<(i32, u64), u64>,
    dead_ticks: u64,
    cpu_ms: u64,
    peak_rss: u64,
}

/// One observation, in bytes and milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observed {
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub cpu_ms: u64,
    /// Processes that are neither gone nor zombies.
    pub processes: u32,
}

impl Tracker {
    pub fn observe(&mut self, procs: &[ProcStat]) -> Observed {
        let mut live = HashMap::with_capacity(procs.len());
        let mut rss_pages = 0u64;
        let mut processes = 0u32;
        for p in procs {
            let key = (p.pid, p.start);
            let before = self.live.get(&key).copied().unwrap_or(0);
            live.insert(key, before.max(p.cpu_ticks));
            if !p.is_dead() {
                processes = processes.saturating_add(1);
                rss_pages = rss_pages.saturating_add(p.rss_pages);
            }
        }
        for (key, ticks) in &self.live {
            if !live.contains_key(key) {
                self.dead_ticks = self.dead_ticks.saturating_add(*ticks);
            }
        }
        self.live = live;
        let ticks = self
            .live
            .values()
            .fold(self.dead_ticks, |acc, t| acc.saturating_add(*t));
        let cpu_ms = ticks.saturating_mul(1000) / clock_ticks_per_sec();
        self.cpu_ms = self.cpu_ms.max(cpu_ms);
        let rss_bytes = rss_pages.saturating_mul(page_size());
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
    pub fn raise_cpu_ms(&mut self, ms: u64) {
        self.cpu_ms = self.cpu_ms.max(ms);
    }

    pub fn cpu_ms(&self) -> u64 {
        self.cpu_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comm_with_parens_and_spaces() {
        let line = "42 (a (b) c) S 7 42 42 0 -1 4194560 100 0 0 0 12 3 0 0 20 0 1 0 5555 1000 77 18446744073709551615";
        let s = parse_stat(line).expect("parses");
        assert_eq!((s.pid, s.ppid, s.state), (42, 7, b'S'));
        assert_eq!((s.cpu_ticks, s.start, s.rss_pages), (15, 5555, 77));
    }

    #[test]
    fn own_stat_is_readable() {
        let me = read_stat(std::process::id() as i32).expect("own stat");
        assert!(me.rss_pages > 0 && !me.is_dead());
    }
}
