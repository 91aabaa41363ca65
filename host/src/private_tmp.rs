//! The private temp dir of a sandboxed call: its only writable place
//! besides declared roots, its `$TMPDIR`, removed when the call ends.
//!
//! Named `bulkhead-tmp-<host pid>-<call id>` under the system temp dir, so
//! a host that crashed leaves dirs the next host can recognise as stale
//! (their host pid is dead) and remove.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

const PREFIX: &str = "bulkhead-tmp-";

#[derive(Debug)]
pub struct PrivateTmp {
    path: PathBuf,
}

impl PrivateTmp {
    pub fn create(call_id: u64) -> io::Result<Self> {
        let path = std::env::temp_dir().join(format!("{PREFIX}{}-{call_id}", std::process::id()));
        // Left by an earlier process with our pid (pid reuse after a crash).
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        // 0700: other users must not read a tool's scratch files.
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateTmp {
    fn drop(&mut self) {
        // `remove_dir_all` does not follow symlinks, so a tool that
        // planted one cannot make us delete outside the dir.
        if let Err(e) = std::fs::remove_dir_all(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a call's temp dir");
        }
    }
}

/// Removes temp dirs of hosts that are no longer running. Returns how many.
pub fn sweep_stale() -> usize {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let alive = pid == std::process::id() as i32
            || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if !alive && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}
