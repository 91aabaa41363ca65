//! The private temp dir of a sandboxed call: its only writable place
//! besides declared roots, its `$TMPDIR`, removed when the call ends.
//!
//! Named `<host pid>-<call id>` inside `bulkhead-<uid>` under the system
//! temp dir, so a host that crashed leaves dirs the next host can recognise
//! as stale (their host pid is dead) and remove. The sweep lists only that
//! one folder: listing the whole system temp dir at every host start would
//! cost a `readdir` entry for each of the tens of thousands a busy `/tmp`
//! can hold.
//!
//! # Caveats
//! - The parent is created 0700 and must stay ours: a `bulkhead-<uid>` that
//!   is a symlink, belongs to another user, or is open to others is refused
//!   with an error that names it, and sandboxed calls cannot start until it
//!   is removed. Another user of a shared `/tmp` can cause that, as with
//!   `tmux-<uid>`; setting `TMPDIR` to a private folder avoids it.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub(crate) struct PrivateTmp {
    path: PathBuf,
}

impl PrivateTmp {
    pub(crate) fn create(call_id: u64) -> io::Result<Self> {
        Self::create_named(&format!("{}-{call_id}", std::process::id()))
    }

    /// A second private dir of the call, for the host's own use (the
    /// egress proxy's socket): `<host pid>-<call id>-<purpose>`, so the
    /// stale sweep recognises it by the same host pid.
    pub(crate) fn create_for(call_id: u64, purpose: &str) -> io::Result<Self> {
        Self::create_named(&format!("{}-{call_id}-{purpose}", std::process::id()))
    }

    fn create_named(name: &str) -> io::Result<Self> {
        let path = private_parent(true)?.join(name);
        // Left by an earlier process with our pid (pid reuse after a crash).
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        // 0700, like its parent: other users must not read a tool's
        // scratch files.
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(Self { path })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// `$TMPDIR/bulkhead-<uid>`, checked to be a real directory of ours that no
/// one else may enter; created first when `create` is set.
fn private_parent(create: bool) -> io::Result<PathBuf> {
    private_parent_in(&std::env::temp_dir(), create)
}

fn private_parent_in(tmp: &Path, create: bool) -> io::Result<PathBuf> {
    let uid = nix::unistd::geteuid().as_raw();
    let path = tmp.join(format!("bulkhead-{uid}"));
    if create {
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    // `symlink_metadata`: a link planted in a shared `/tmp` must not lead
    // our calls' files elsewhere.
    let meta = std::fs::symlink_metadata(&path)?;
    let open_to_others = meta.permissions().mode() & 0o077 != 0;
    if !meta.is_dir() || meta.uid() != uid || open_to_others {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a private directory of uid {uid} (a symlink, another user's, \
                 or open to others); remove it, or set TMPDIR to a private folder",
                path.display()
            ),
        ));
    }
    Ok(path)
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
pub(crate) fn sweep_stale() -> usize {
    sweep_stale_in(&std::env::temp_dir())
}

fn sweep_stale_in(tmp: &Path) -> usize {
    // No parent yet (or not a private one) means nothing of ours to sweep.
    let Ok(parent) = private_parent_in(tmp, false) else {
        return 0;
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.split('-').next())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parent_name() -> String {
        format!("bulkhead-{}", nix::unistd::geteuid().as_raw())
    }

    #[test]
    fn the_parent_is_created_private_and_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let p = private_parent_in(tmp.path(), true).unwrap();
        assert_eq!(p, tmp.path().join(parent_name()));
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(private_parent_in(tmp.path(), true).unwrap(), p);
    }

    #[test]
    fn a_parent_open_to_others_is_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join(parent_name());
        std::fs::DirBuilder::new().mode(0o777).create(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = private_parent_in(tmp.path(), true).unwrap_err();
        assert!(err.to_string().contains(&*p.to_string_lossy()), "{err}");
    }

    #[test]
    fn the_sweep_removes_dirs_of_dead_hosts_only() {
        let tmp = tempfile::tempdir().unwrap();
        let parent = private_parent_in(tmp.path(), true).unwrap();
        // A pid that was ours to reap is dead (reuse within the test is
        // possible but would only make the test pass vacuously less).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let ours = std::process::id();
        for name in [format!("{dead}-1"), format!("{ours}-2"), "notes".into()] {
            std::fs::create_dir(parent.join(&name)).unwrap();
        }
        std::fs::write(parent.join(format!("{dead}-1/file")), "x").unwrap();
        assert_eq!(sweep_stale_in(tmp.path()), 1);
        let mut left: Vec<_> = std::fs::read_dir(&parent)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [format!("{ours}-2"), "notes".into()]);
    }

    #[test]
    fn a_symlinked_parent_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&elsewhere)
            .unwrap();
        std::os::unix::fs::symlink(&elsewhere, tmp.path().join(parent_name())).unwrap();
        assert!(private_parent_in(tmp.path(), true).is_err());
    }
}
