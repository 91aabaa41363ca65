//! memhog's trace, and memhog's death, seen from the bench side.

use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{CAP_MIB, TIMEOUT};
use crate::{Stats, monotonic_ns};

/// How often the death watcher looks at memhog: 0.5 ms resolves a death
/// well below the latencies measured (tens of ms), at a few µs per look.
const WATCH_PERIOD: Duration = Duration::from_micros(500);

/// Ends the FIFO reader; not a line memhog prints.
const SENTINEL: &str = "end";

/// `(CLOCK_MONOTONIC ns, MiB)` of one trace line; `None` for other lines
/// (memhog's final "allocated" message, the sentinel).
pub fn parse_line(line: &str) -> Option<(u64, u64)> {
    let (ns, mib) = line.split_once(' ')?;
    Some((ns.parse().ok()?, mib.parse().ok()?))
}

/// A named pipe memhog's stdout is redirected to, read by a thread of the
/// bench as lines arrive. Unlike a regular file it puts no dirty page cache
/// in the call's memory cgroup, and unlike the call's own output it does not
/// depend on the host reading frames after it decided to kill.
pub struct TraceFifo {
    path: PathBuf,
    /// Opened read-write, so neither end's open blocks and the reader never
    /// sees EOF between writers; `finish` writes the sentinel through it.
    fd: std::fs::File,
    reader: JoinHandle<Vec<(u64, u64)>>,
}

impl TraceFifo {
    pub fn new(path: &Path) -> TraceFifo {
        let c = CString::new(path.as_os_str().as_bytes()).expect("a path without NUL bytes");
        // SAFETY: mkfifo reads a valid NUL-terminated path.
        let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        let err = std::io::Error::last_os_error();
        assert_eq!(rc, 0, "cannot create the FIFO {}: {err}", path.display());
        let fd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("cannot open the FIFO");
        let read_end = fd.try_clone().expect("cannot duplicate the FIFO's fd");
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(read_end).lines() {
                let line = line.expect("cannot read the FIFO");
                if line == SENTINEL {
                    break;
                }
                lines.extend(parse_line(&line));
            }
            lines
        });
        TraceFifo {
            path: path.to_path_buf(),
            fd,
            reader,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lines memhog wrote. Call once memhog is dead: everything it wrote
    /// is then in the pipe ahead of the sentinel.
    pub fn finish(mut self) -> Vec<(u64, u64)> {
        writeln!(self.fd, "{SENTINEL}").expect("cannot write the sentinel");
        self.reader.join().expect("the FIFO reader panicked")
    }
}

/// How the crossing was timed.
pub struct Crossing {
    /// CLOCK_MONOTONIC ns.
    pub at: u64,
    /// memhog died before printing a total ≥ the cap, so `at` is its last
    /// line plus one step: it died in the step after that line, which is
    /// where the cap as the kernel counts it was met.
    pub estimated: bool,
    /// The median time between trace lines: the uncertainty of `at`.
    pub step: Duration,
}

pub fn crossing(lines: &[(u64, u64)]) -> Crossing {
    let deltas: Vec<Duration> = lines
        .windows(2)
        .map(|w| Duration::from_nanos(w[1].0 - w[0].0))
        .collect();
    assert!(
        !deltas.is_empty(),
        "fewer than two trace lines: no step time to estimate from"
    );
    let step = Stats::of(&deltas).median;
    match lines.iter().find(|l| l.1 >= CAP_MIB) {
        Some(&(at, _)) => Crossing {
            at,
            estimated: false,
            step,
        },
        None => {
            let last = lines[lines.len() - 1].0;
            Crossing {
                at: last + step.as_nanos() as u64,
                estimated: true,
                step,
            }
        }
    }
}

/// Watches for the memhog whose argv holds `marker`, then for its death;
/// returns CLOCK_MONOTONIC when it was first seen dead (exited, or a
/// zombie: killed, not yet reaped by its parent).
pub fn watch_death(marker: String) -> JoinHandle<Option<u64>> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + TIMEOUT;
        let pid = loop {
            if let Some(pid) = find_memhog(&marker) {
                break pid;
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(WATCH_PERIOD);
        };
        while bulkhead_tests::alive(pid) {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(WATCH_PERIOD);
        }
        Some(monotonic_ns())
    })
}

/// The pid of a process whose program is memhog and whose argv holds
/// `marker` (not the shell that starts it, whose argv holds it too).
fn find_memhog(marker: &str) -> Option<i32> {
    let dir = std::fs::read_dir("/proc").ok()?;
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let mut args = cmdline.split(|&b| b == 0).map(String::from_utf8_lossy);
            args.next().is_some_and(|a| a.ends_with("memhog")) && args.any(|a| a == marker)
        })
}
