//! macOS: libproc. `proc_listallpids` lists the table, and one
//! `proc_pidinfo(PROC_PIDTASKALLINFO)` per process gives its parent, state,
//! start time, CPU time and resident size in a single call.
//!
//! Compile-checked only (`cargo check --target x86_64-apple-darwin`); it has
//! not been run on a real Mac.
//!
//! Caveats: a zombie has no Mach task, so `PROC_PIDTASKALLINFO` fails for it
//! and the BSD part alone (`PROC_PIDTBSDINFO`) is read, with no memory or
//! CPU. Task information of another user's process is refused without
//! root; such a process is still linked into the tree through its BSD
//! record, with no memory counted. A call's processes run as the host's
//! user, so this only misses a setuid program's memory.

use std::io;
use std::mem::size_of;
use std::sync::OnceLock;

use libc::{c_int, pid_t};

use super::{ProcStat, start_us};

pub(super) const READER: &str = "libproc proc_listallpids + proc_pidinfo(PROC_PIDTASKALLINFO)";

/// Room for processes started between asking libproc how many pids there
/// are and listing them; a fork loop can outgrow it, hence the retries.
const PID_SLACK: usize = 64;

/// Listing attempts, doubling the buffer each time, before a possibly
/// incomplete list is used: a table that doubles faster than one libproc
/// call is a fork bomb, which the next sample sees anyway.
const LIST_ATTEMPTS: usize = 4;

fn list_pids() -> Vec<pid_t> {
    // SAFETY: with a null buffer libproc only returns the number of pids.
    let n = unsafe { libc::proc_listallpids(std::ptr::null_mut(), 0) };
    let Ok(n) = usize::try_from(n) else {
        return Vec::new();
    };
    let mut cap = n.saturating_add(PID_SLACK);
    let mut pids: Vec<pid_t> = Vec::new();
    for _ in 0..LIST_ATTEMPTS {
        pids = vec![0; cap];
        let bytes = c_int::try_from(cap.saturating_mul(size_of::<pid_t>())).unwrap_or(c_int::MAX);
        // SAFETY: the buffer holds `cap` pids, `bytes` bytes; libproc writes
        // at most `bytes` bytes and returns how many pids it wrote.
        let got = unsafe { libc::proc_listallpids(pids.as_mut_ptr().cast(), bytes) };
        let Ok(got) = usize::try_from(got) else {
            return Vec::new();
        };
        pids.truncate(got.min(cap));
        if got < cap {
            break;
        }
        cap = cap.saturating_mul(2);
    }
    pids.retain(|p| *p > 0);
    pids
}

/// `mach_timebase_info_data_t` from `<mach/mach_time.h>`. Declared here
/// because `libc` deprecates its copy in favour of the `mach2` crate, a
/// dependency not worth adding for one call.
#[repr(C)]
struct MachTimebaseInfo {
    numer: u32,
    denom: u32,
}

unsafe extern "C" {
    fn mach_timebase_info(info: *mut MachTimebaseInfo) -> c_int;
}

/// Nanoseconds per Mach absolute time unit, as numerator/denominator: the
/// task's CPU times are in those units (1/1 on Intel, 125/3 on Apple
/// silicon).
fn timebase() -> (u64, u64) {
    static TB: OnceLock<(u64, u64)> = OnceLock::new();
    *TB.get_or_init(|| {
        let mut info = MachTimebaseInfo { numer: 0, denom: 0 };
        // SAFETY: fills the struct it is given.
        let rc = unsafe { mach_timebase_info(&mut info) };
        match (rc, info.numer, info.denom) {
            (0, n, d) if n > 0 && d > 0 => (u64::from(n), u64::from(d)),
            _ => (1, 1),
        }
    })
}

fn cpu_us(mach_units: u64) -> u64 {
    let (numer, denom) = timebase();
    let ns = u128::from(mach_units) * u128::from(numer) / u128::from(denom);
    u64::try_from(ns / 1000).unwrap_or(u64::MAX)
}

fn state(status: u32) -> u8 {
    match status {
        libc::SSTOP => b'T',
        libc::SZOMB => b'Z',
        libc::SRUN | libc::SIDL => b'R',
        _ => b'S',
    }
}

// `PROC_PIDTASKALLINFO_SIZE` and `PROC_PIDTBSDINFO_SIZE` in <sys/proc_info.h>
// are the sizes of these structs, which libproc checks the buffer against.
// Checked when the crate is compiled for macOS, the only check this reader
// gets in CI.
const _: () = assert!(size_of::<libc::proc_bsdinfo>() == 136);
const _: () = assert!(size_of::<libc::proc_taskallinfo>() == 232);

/// `proc_pidinfo` into a zeroed `T`; `Err` unless it filled all of it.
fn pidinfo<T>(pid: pid_t, flavor: c_int) -> io::Result<T> {
    let size =
        c_int::try_from(size_of::<T>()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: only instantiated with libproc's plain-integer info structs,
    // for which all-zero bytes are a valid value.
    let mut out: T = unsafe { std::mem::zeroed() };
    // SAFETY: the buffer is `size` bytes of `out`, which libproc fills.
    let got = unsafe { libc::proc_pidinfo(pid, flavor, 0, (&raw mut out).cast(), size) };
    if got == size {
        Ok(out)
    } else if got <= 0 {
        Err(io::Error::last_os_error())
    } else {
        Err(io::Error::other(format!(
            "proc_pidinfo returned {got} bytes, expected {size}"
        )))
    }
}

fn from_bsd(b: &libc::proc_bsdinfo) -> Option<ProcStat> {
    Some(ProcStat {
        pid: i32::try_from(b.pbi_pid).ok()?,
        ppid: i32::try_from(b.pbi_ppid).ok()?,
        state: state(b.pbi_status),
        start: start_us(b.pbi_start_tvsec, b.pbi_start_tvusec),
        cpu_us: 0,
        rss_bytes: 0,
    })
}

fn read(pid: pid_t) -> io::Result<ProcStat> {
    let bad = || {
        io::Error::other(format!(
            "proc_pidinfo gave an impossible record for pid {pid}"
        ))
    };
    match pidinfo::<libc::proc_taskallinfo>(pid, libc::PROC_PIDTASKALLINFO) {
        Ok(all) => {
            let mut stat = from_bsd(&all.pbsd).ok_or_else(bad)?;
            let t = &all.ptinfo;
            stat.cpu_us = cpu_us(t.pti_total_user.saturating_add(t.pti_total_system));
            stat.rss_bytes = t.pti_resident_size;
            Ok(stat)
        }
        Err(_) => {
            let bsd = pidinfo::<libc::proc_bsdinfo>(pid, libc::PROC_PIDTBSDINFO)?;
            from_bsd(&bsd).ok_or_else(bad)
        }
    }
}

pub(super) fn read_stat(pid: i32) -> Option<ProcStat> {
    read(pid).ok()
}

pub(super) fn scan_all() -> Vec<ProcStat> {
    list_pids().into_iter().filter_map(read_stat).collect()
}

pub(super) fn probe_error() -> Option<String> {
    let me = std::process::id() as pid_t;
    match pidinfo::<libc::proc_taskallinfo>(me, libc::PROC_PIDTASKALLINFO) {
        Ok(_) if !list_pids().is_empty() => None,
        Ok(_) => Some("proc_listallpids listed no processes".into()),
        Err(e) => Some(format!(
            "proc_pidinfo(PROC_PIDTASKALLINFO) on the host itself failed: {e}"
        )),
    }
}
