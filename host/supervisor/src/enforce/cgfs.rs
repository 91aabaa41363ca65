//! Small helpers for cgroupfs files: every error names the path and errno.
//!
//! A *simulated* hierarchy is a directory that is not a cgroupfs (a test's
//! tempdir). There `mkdir` does not populate control files, so writes create
//! the file, and removal deletes the files we created. Whether a hierarchy
//! is simulated is decided once, from `statfs`, when it is probed.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use super::EnforceError;

/// `statfs` magic numbers of cgroup v1 and cgroup2 filesystems
/// (include/uapi/linux/magic.h).
#[cfg(target_os = "linux")]
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
#[cfg(target_os = "linux")]
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// `rmdir` of a cgroup whose last tasks were just killed returns `EBUSY`
/// until they finish exiting; tearing down even a large address space takes
/// milliseconds (killed trees here were gone 2–30 ms after SIGKILL). 250 ms
/// covers that with a wide margin and still keeps `Drop` short.
const RMDIR_PATIENCE: Duration = Duration::from_millis(250);

/// A cgroup directory in one hierarchy.
#[derive(Debug, Clone)]
pub(crate) struct CgDir {
    pub(crate) path: PathBuf,
    /// The path as `/proc/PID/cgroup` shows it (relative to the mount).
    pub(crate) rel: String,
    pub(crate) simulated: bool,
}

impl CgDir {
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub(crate) fn write(&self, name: &str, value: &str) -> Result<(), EnforceError> {
        write(&self.file(name), value, self.simulated)
    }

    /// True if the control file exists (always, in a simulated hierarchy,
    /// where files appear only when written).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.simulated || self.file(name).exists()
    }

    pub(crate) fn read(&self, name: &str) -> Result<String, EnforceError> {
        read(&self.file(name))
    }

    /// The hierarchy's mount point: `path` without the components of `rel`.
    pub(crate) fn mount(&self) -> Option<PathBuf> {
        let depth = self.rel.split('/').filter(|c| !c.is_empty()).count();
        self.path.ancestors().nth(depth).map(Path::to_path_buf)
    }

    /// Pids listed in `cgroup.procs` (an unreadable file reads as empty: the
    /// cgroup is gone).
    pub(crate) fn procs(&self) -> Vec<i32> {
        read_pids(&self.file("cgroup.procs"))
    }

    /// True if `/proc/PID/cgroup` places `pid` in this cgroup or below it.
    /// In a simulated hierarchy nothing can be checked, so it holds.
    pub(crate) fn contains(&self, pid: i32) -> bool {
        if self.simulated {
            return true;
        }
        let Ok(text) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            return false;
        };
        text.lines().any(|line| {
            let path = line.splitn(3, ':').nth(2).unwrap_or("");
            path == self.rel
                || path
                    .strip_prefix(self.rel.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }
}

pub(crate) fn io_err(op: &'static str, path: &Path, source: io::Error) -> EnforceError {
    EnforceError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn write(path: &Path, value: &str, simulated: bool) -> Result<(), EnforceError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(simulated)
        .truncate(simulated)
        .open(path)
        .map_err(|e| io_err("write", path, e))?;
    file.write_all(value.as_bytes())
        .map_err(|e| io_err("write", path, e))
}

pub(crate) fn read(path: &Path) -> Result<String, EnforceError> {
    fs::read_to_string(path).map_err(|e| io_err("read", path, e))
}

pub(crate) fn read_pids(path: &Path) -> Vec<i32> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .split_ascii_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Value of `key` in a flat-keyed file (`oom_kill 3`, `usage_usec 1234`).
pub(crate) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut it = line.split_ascii_whitespace();
        (it.next()? == key).then_some(())?;
        it.next()?.parse().ok()
    })
}

/// Reads a file holding one number (`memory.peak`, `memory.max_usage_in_bytes`).
pub(crate) fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub(crate) fn mkdir_all(path: &Path) -> Result<(), EnforceError> {
    fs::create_dir_all(path).map_err(|e| io_err("create", path, e))
}

pub(crate) fn mkdir(path: &Path) -> Result<(), EnforceError> {
    fs::create_dir(path).map_err(|e| io_err("create", path, e))
}

/// Removes a cgroup directory, retrying while the kernel reports it busy.
/// Sub-cgroups (a tool running as root may create some) go first.
pub(crate) fn remove_cgroup(path: &Path, simulated: bool) -> io::Result<()> {
    if simulated {
        return match fs::remove_dir_all(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
    }
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                // Best effort: a failure shows up as EBUSY on our own rmdir.
                let _ = remove_cgroup(&entry.path(), false);
            }
        }
    }
    let deadline = Instant::now() + RMDIR_PATIENCE;
    let mut pause = Duration::from_millis(1);
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

/// True if `path` is on a cgroup (v1 or v2) filesystem.
#[cfg(target_os = "linux")]
pub(crate) fn is_cgroupfs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into a zeroed struct of the right type.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path, `buf` a valid out-pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut buf) } != 0 {
        return false;
    }
    let magic = buf.f_type as i64;
    magic == CGROUP_SUPER_MAGIC || magic == CGROUP2_SUPER_MAGIC
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn is_cgroupfs(_path: &Path) -> bool {
    false
}
