//! Linux: `/proc/PID/stat`, one `open`+`read` per process.

use std::fs;
use std::sync::OnceLock;

use super::{ProcStat, page_size};

pub(super) const READER: &str = "/proc/PID/stat";

/// Parses one `/proc/PID/stat` line. `comm` (field 2) may contain spaces and
/// parentheses, so the fields after it are found from the *last* `)`.
fn parse_stat(line: &str) -> Option<ProcStat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let pid = line.get(..open)?.trim().parse().ok()?;
    let rest: Vec<&str> = line.get(close + 1..)?.split_ascii_whitespace().collect();
    // `rest[0]` is field 3, so field N is `rest[N - 3]`.
    let field = |n: usize| -> Option<u64> { rest.get(n - 3)?.parse().ok() };
    // utime + stime (fields 14 and 15), in clock ticks.
    let ticks = field(14)?.saturating_add(field(15)?);
    Some(ProcStat {
        pid,
        state: *rest.first()?.as_bytes().first()?,
        ppid: rest.get(1)?.parse().ok()?,
        cpu_us: ticks.saturating_mul(1_000_000) / clock_ticks_per_sec(),
        // Clock ticks since boot (field 22).
        start: field(22)?,
        // Resident pages (field 24). The kernel fills it from the same
        // counter as `statm`'s `resident`, so reading `stat` alone saves a
        // second `open`/`read` per process and sample.
        rss_bytes: field(24)?.saturating_mul(page_size()),
    })
}

pub(super) fn read_stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Costs one `open`+`read` per process on the machine, which is why the
/// watchdog samples only every `WATCHDOG_INTERVAL`.
pub(super) fn scan_all() -> Vec<ProcStat> {
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

pub(super) fn probe_error() -> Option<String> {
    fs::read_to_string("/proc/self/stat")
        .err()
        .map(|e| format!("cannot read /proc/self/stat: {e}"))
}

fn clock_ticks_per_sec() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *TCK.get_or_init(|| match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as u64,
        _ => 100,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comm_with_parens_and_spaces() {
        let line = "42 (a (b) c) S 7 42 42 0 -1 4194560 100 0 0 0 12 3 0 0 20 0 1 0 5555 1000 77 18446744073709551615";
        let s = parse_stat(line).expect("parses");
        assert_eq!((s.pid, s.ppid, s.state), (42, 7, b'S'));
        assert_eq!(s.start, 5555);
        assert_eq!(s.rss_bytes, 77 * page_size());
        assert_eq!(s.cpu_us, 15 * 1_000_000 / clock_ticks_per_sec());
    }

    #[test]
    fn truncated_line_is_rejected() {
        assert_eq!(parse_stat("42 (x) S 7 42"), None);
        assert_eq!(parse_stat("not a stat line"), None);
    }
}
