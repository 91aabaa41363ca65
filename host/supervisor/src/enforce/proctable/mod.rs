//! The machine's process table as a snapshot of [`ProcStat`] records, one
//! reader per OS. Everything above this module (the tree walk, usage
//! tracking, signalling) only sees records, so it is the same code on every
//! OS and is unit-tested on Linux over hand-made snapshots.
//!
//! | OS | Reader | Resident memory from |
//! |----|--------|----------------------|
//! | Linux | `/proc/PID/stat` (`linux.rs`) | field 24, pages |
//! | macOS | libproc `proc_listallpids` + `proc_pidinfo(PROC_PIDTASKALLINFO)` (`macos.rs`) | `pti_resident_size`, bytes |
//! | FreeBSD | `sysctl` `kern.proc.proc` → `kinfo_proc` (`freebsd.rs`) | `ki_rssize`, pages |
//! | other | none (`unsupported.rs`): the probe names the gap | — |
//!
//! Only the Linux reader runs in CI; the macOS and FreeBSD readers are
//! compile-checked (`cargo check --target …`), never run here.

#[cfg(target_os = "freebsd")]
mod freebsd;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "freebsd")))]
mod unsupported;

#[cfg(target_os = "freebsd")]
use freebsd as os;
#[cfg(target_os = "linux")]
use linux as os;
#[cfg(target_os = "macos")]
use macos as os;
#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "freebsd")))]
use unsupported as os;

/// What the enforcer needs to know about one process, whatever the OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub(crate) pid: i32,
    pub(crate) ppid: i32,
    /// Linux's one-letter state: `R`, `S`, `D`, `T`, `t`, `Z`, `X`. The BSD
    /// readers translate their `p_stat` (`SSTOP` → `T`, `SZOMB` → `Z`, …).
    pub(crate) state: u8,
    /// Identifies the process together with its pid, so a reused pid is
    /// never mistaken for it. Opaque: clock ticks since boot on Linux,
    /// microseconds since the epoch on macOS and FreeBSD. Only compared for
    /// equality, and only with values from the same reader.
    pub(crate) start: u64,
    /// User + system CPU time in microseconds.
    pub(crate) cpu_us: u64,
    /// Resident memory in bytes.
    pub(crate) rss_bytes: u64,
}

impl ProcStat {
    /// Zombies (and the transient `X` state) hold no memory and can no longer
    /// run or fork; everywhere in the enforcer they count as dead.
    pub(crate) fn is_dead(&self) -> bool {
        matches!(self.state, b'Z' | b'X')
    }
}

/// Names the reader, for `bulkhead doctor`.
pub(crate) const READER: &str = os::READER;

/// One process, `None` when it is gone (or the table is unreadable).
pub(crate) fn read_stat(pid: i32) -> Option<ProcStat> {
    os::read_stat(pid)
}

/// Every process on the machine (as far as this user may see), empty when
/// the table cannot be read.
pub(crate) fn scan_all() -> Vec<ProcStat> {
    os::scan_all()
}

/// Why the process table cannot be read, or `None` if it can. Reads the
/// host's own record: every reader that works can do that.
pub(crate) fn probe_error() -> Option<String> {
    os::probe_error()
}

#[cfg(any(target_os = "linux", target_os = "freebsd"))]
fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PAGE.get_or_init(|| match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as u64,
        _ => 4096,
    })
}

/// Microseconds of a `timeval`-like pair, as a start-time identity.
#[cfg(any(target_os = "macos", target_os = "freebsd"))]
fn start_us(sec: u64, usec: u64) -> u64 {
    sec.saturating_mul(1_000_000).saturating_add(usec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_record_is_readable() {
        let me = read_stat(std::process::id() as i32).expect("own record");
        assert!(me.rss_bytes > 0 && !me.is_dead());
        assert_eq!(probe_error(), None);
    }

    #[test]
    fn own_record_is_in_the_scan() {
        let me = std::process::id() as i32;
        let all = scan_all();
        let found = all.iter().find(|p| p.pid == me).expect("host in scan");
        assert_eq!(found.start, read_stat(me).expect("own record").start);
    }
}
