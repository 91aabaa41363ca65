//! FreeBSD: one `sysctl` of `kern.proc.proc` returns a `kinfo_proc` per
//! process (threads folded in), with parent, state, start time, CPU time
//! and resident pages. No procfs is needed (it is not mounted by default).
//!
//! Compile-checked only (`cargo check --target x86_64-unknown-freebsd`); it
//! has not been run on a real FreeBSD machine.

use std::io;
use std::mem::size_of;

use libc::{c_int, kinfo_proc};

use super::{ProcStat, page_size, start_us};

pub(super) const READER: &str = "sysctl kern.proc.proc (kinfo_proc)";

/// Attempts at reading the table when it grows between the size query and
/// the read (ENOMEM); each retry asks for the size again.
const READ_ATTEMPTS: usize = 4;

/// Extra records allocated beyond the size the kernel reports, for
/// processes started in between (the kernel itself adds some slack too).
const RECORD_SLACK: usize = 32;

fn blank() -> kinfo_proc {
    // SAFETY: kinfo_proc is integers, arrays and raw pointers, all valid
    // when zero.
    unsafe { std::mem::zeroed() }
}

/// Runs the `kern.proc` query `mib` and returns its records.
fn query(mib: &[c_int]) -> io::Result<Vec<kinfo_proc>> {
    let namelen = libc::c_uint::try_from(mib.len()).map_err(io::Error::other)?;
    let record = size_of::<kinfo_proc>();
    for _ in 0..READ_ATTEMPTS {
        let mut len: libc::size_t = 0;
        // SAFETY: a null old buffer asks for the size only.
        let rc = unsafe {
            libc::sysctl(
                mib.as_ptr(),
                namelen,
                std::ptr::null_mut(),
                &mut len,
                std::ptr::null(),
                0,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![blank(); len / record + RECORD_SLACK];
        let mut len = buf.len() * record;
        // SAFETY: the buffer is `len` bytes of kinfo_proc records; the
        // kernel writes at most `len` bytes and stores how many it wrote.
        let rc = unsafe {
            libc::sysctl(
                mib.as_ptr(),
                namelen,
                buf.as_mut_ptr().cast(),
                &mut len,
                std::ptr::null(),
                0,
            )
        };
        if rc == 0 {
            buf.truncate(len / record);
            check_layout(&buf)?;
            return Ok(buf);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ENOMEM) {
            return Err(err);
        }
    }
    Err(io::Error::other(
        "the process table kept growing while it was read",
    ))
}

// `KINFO_PROC_SIZE` in FreeBSD's <sys/user.h> for amd64. Checked when the
// crate is compiled for FreeBSD, the only check this reader gets in CI.
#[cfg(target_arch = "x86_64")]
const _: () = assert!(size_of::<kinfo_proc>() == 1088);

/// The kernel's `kinfo_proc` must be the one `libc` describes; its size has
/// been fixed (1088 bytes on amd64) since FreeBSD 7, so a mismatch means a
/// foreign ABI, which must not be read as if it matched.
fn check_layout(records: &[kinfo_proc]) -> io::Result<()> {
    match records.first() {
        Some(k) if usize::try_from(k.ki_structsize).ok() != Some(size_of::<kinfo_proc>()) => {
            Err(io::Error::other(format!(
                "kinfo_proc is {} bytes in this kernel, {} in the libc crate",
                k.ki_structsize,
                size_of::<kinfo_proc>()
            )))
        }
        _ => Ok(()),
    }
}

fn state(stat: libc::c_char) -> u8 {
    match stat {
        libc::SSTOP => b'T',
        libc::SZOMB => b'Z',
        libc::SRUN | libc::SIDL => b'R',
        _ => b'S',
    }
}

fn convert(k: &kinfo_proc) -> ProcStat {
    let sec = u64::try_from(k.ki_start.tv_sec).unwrap_or(0);
    let usec = u64::try_from(k.ki_start.tv_usec).unwrap_or(0);
    ProcStat {
        pid: k.ki_pid,
        ppid: k.ki_ppid,
        state: state(k.ki_stat),
        start: start_us(sec, usec),
        // ki_runtime is in microseconds.
        cpu_us: k.ki_runtime,
        rss_bytes: u64::try_from(k.ki_rssize)
            .unwrap_or(0)
            .saturating_mul(page_size()),
    }
}

pub(super) fn read_stat(pid: i32) -> Option<ProcStat> {
    let mib = [libc::CTL_KERN, libc::KERN_PROC, libc::KERN_PROC_PID, pid];
    query(&mib).ok()?.first().map(convert)
}

pub(super) fn scan_all() -> Vec<ProcStat> {
    let mib = [libc::CTL_KERN, libc::KERN_PROC, libc::KERN_PROC_PROC];
    query(&mib)
        .map(|all| all.iter().map(convert).collect())
        .unwrap_or_default()
}

pub(super) fn probe_error() -> Option<String> {
    let me = std::process::id() as c_int;
    let mib = [libc::CTL_KERN, libc::KERN_PROC, libc::KERN_PROC_PID, me];
    match query(&mib) {
        Ok(r) if !r.is_empty() => None,
        Ok(_) => Some("sysctl kern.proc.pid returned no record for the host itself".into()),
        Err(e) => Some(format!(
            "sysctl kern.proc.pid on the host itself failed: {e}"
        )),
    }
}
