//! Cleaning up cgroups left by dead hosts, and retrying our own removals.
//!
//! A call cgroup is named `h<host pid>-<host start time>-c<call id>` (a
//! spare one, built ahead, `…-s<n>`). It is
//! stale when no process with that pid and start time is alive: the host
//! died (or was SIGKILLed) before its cages were dropped. The start time
//! makes a recycled host pid harmless: a different process with the same
//! pid has a different start time.

use std::collections::HashSet;
use std::fs;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::KILL_PATIENCE;
use super::cgfs::{self, CgDir};
use super::proctree::{self, Signalled};

/// Parses `h<pid>-<start>-c<call>`, or `h<pid>-<start>-s<n>` for a spare
/// cage (built ahead for a call to come, see `spare`).
pub(crate) fn parse_name(name: &str) -> Option<(i32, u64, u64)> {
    let rest = name.strip_prefix('h')?;
    let (pid, rest) = rest.split_once('-')?;
    let (start, call) = rest.split_once("-c").or_else(|| rest.split_once("-s"))?;
    Some((pid.parse().ok()?, start.parse().ok()?, call.parse().ok()?))
}

pub(crate) fn host_alive(pid: i32, start: u64) -> bool {
    proctree::is_alive(pid, Some(start))
}

/// Removes the stale call cgroups directly under each of `parents`.
/// Returns how many directories were removed.
pub(crate) fn clear(parents: &[CgDir]) -> usize {
    let mut removed = 0;
    for parent in parents {
        let Ok(entries) = fs::read_dir(&parent.path) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = entry.file_name();
            let Some((pid, start, _)) = name.to_str().and_then(parse_name) else {
                continue;
            };
            if host_alive(pid, start) {
                continue;
            }
            let dir = CgDir {
                path: entry.path(),
                rel: format!(
                    "{}/{}",
                    parent.rel.trim_end_matches('/'),
                    name.to_string_lossy()
                ),
                simulated: parent.simulated,
            };
            kill_everything_in(&dir);
            match cgfs::remove_cgroup(&dir.path, dir.simulated) {
                Ok(()) => {
                    tracing::info!(cgroup = %dir.path.display(), "removed stale call cgroup");
                    removed += 1;
                }
                Err(e) => tracing::warn!(
                    cgroup = %dir.path.display(),
                    error = %e,
                    "cannot remove stale call cgroup"
                ),
            }
        }
    }
    removed
}

/// Every cgroup at or below `dir` (a tool running as root may nest some).
fn subtree(dir: &CgDir, out: &mut Vec<CgDir>) {
    out.push(dir.clone());
    let Ok(entries) = fs::read_dir(&dir.path) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let name = entry.file_name();
            let child = CgDir {
                path: entry.path(),
                rel: format!("{}/{}", dir.rel, name.to_string_lossy()),
                simulated: dir.simulated,
            };
            subtree(&child, out);
        }
    }
}

/// SIGKILLs every process in `dir` and below until none is left (or
/// [`KILL_PATIENCE`] runs out). `cgroup.kill` first where there is one.
pub(crate) fn kill_everything_in(dir: &CgDir) {
    let mut dirs = Vec::new();
    subtree(dir, &mut dirs);
    let alive = |dirs: &[CgDir]| -> Vec<(i32, usize)> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, d) in dirs.iter().enumerate() {
            for pid in d.procs() {
                if seen.insert(pid) && proctree::is_alive(pid, None) {
                    out.push((pid, i));
                }
            }
        }
        out
    };
    let mut members = alive(&dirs);
    if members.is_empty() {
        return;
    }
    if !dir.simulated && dir.file("cgroup.kill").exists() {
        let _ = dir.write("cgroup.kill", "1");
    }
    let deadline = Instant::now() + KILL_PATIENCE;
    let mut pause = Duration::from_millis(1);
    while !members.is_empty() && Instant::now() < deadline {
        for (pid, i) in &members {
            let d = &dirs[*i];
            let _: Signalled = proctree::signal_exact(*pid, None, |p| d.contains(p), libc::SIGKILL);
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
        members = alive(&dirs);
    }
    if !members.is_empty() {
        tracing::warn!(
            cgroup = %dir.path.display(),
            survivors = members.len(),
            "processes of a stale call cgroup survived SIGKILL"
        );
    }
}

/// Call cgroups whose removal failed (still busy when the cage was
/// dropped). Retried, once each and without waiting, whenever a cage is
/// created or stale cgroups are cleared, so a long-lived host does not
/// accumulate them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Graveyard(Arc<Mutex<Vec<CgDir>>>);

impl Graveyard {
    pub(crate) fn bury(&self, dir: CgDir) {
        if let Ok(mut g) = self.0.lock() {
            g.push(dir);
        }
    }

    /// Returns how many directories were removed.
    pub(crate) fn retry(&self) -> usize {
        let Ok(mut g) = self.0.lock() else {
            return 0;
        };
        let before = g.len();
        g.retain(|dir| {
            let result = if dir.simulated {
                fs::remove_dir_all(&dir.path)
            } else {
                fs::remove_dir(&dir.path)
            };
            match result {
                Ok(()) => false,
                Err(e) => e.kind() != std::io::ErrorKind::NotFound,
            }
        });
        before - g.len()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_name;

    #[test]
    fn names_of_call_and_spare_cgroups_parse() {
        assert_eq!(parse_name("h123-456-c7"), Some((123, 456, 7)));
        assert_eq!(parse_name("h123-456-s8"), Some((123, 456, 8)));
        assert_eq!(parse_name("h123-456-x8"), None);
        assert_eq!(parse_name("user.slice"), None);
        assert_eq!(parse_name("h123-456-c"), None);
    }
}
