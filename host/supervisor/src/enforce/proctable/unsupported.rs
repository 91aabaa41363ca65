//! Unix systems without a reader (OpenBSD, NetBSD, illumos, …): the table
//! reads as empty and the probe says why, so the watchdog reports memory as
//! not enforced instead of pretending to cap it.

use super::ProcStat;

pub(super) const READER: &str = "none";

pub(super) fn read_stat(_pid: i32) -> Option<ProcStat> {
    None
}

pub(super) fn scan_all() -> Vec<ProcStat> {
    Vec::new()
}

pub(super) fn probe_error() -> Option<String> {
    Some(format!(
        "no process-table reader for {} (bulkhead has readers for Linux, macOS and FreeBSD)",
        std::env::consts::OS
    ))
}
