//! Where control sockets live, and which of them are live.
//!
//! The directory is `$XDG_RUNTIME_DIR/bulkhead/gateways`, else
//! `$XDG_CACHE_HOME/bulkhead/gateways`, else `~/.cache/bulkhead/gateways`.
//! It is the user's alone (mode 0700, owned by the user): the socket's own
//! mode (0600) is not honoured by every system, the directory's is.

use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::ControlError;

/// The suffix of a control socket's file name: `NAME.sock`.
pub const SOCKET_SUFFIX: &str = ".sock";

/// The control sockets' directory from the environment, not created.
pub fn socket_dir() -> Result<PathBuf, ControlError> {
    let var = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let base = var("XDG_RUNTIME_DIR")
        .or_else(|| var("XDG_CACHE_HOME"))
        .or_else(|| var("HOME").map(|h| h.join(".cache")))
        .ok_or(ControlError::NoDir)?;
    Ok(base.join("bulkhead").join("gateways"))
}

/// Creates `dir` (and its parents) if needed, and makes sure it is the
/// user's alone: owned by the effective uid, no access for anyone else.
/// A directory of another user is refused, not changed.
pub fn private_dir(dir: &Path) -> Result<(), ControlError> {
    let io = |e: std::io::Error| ControlError::Dir(dir.to_owned(), e.to_string());
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    let meta = std::fs::symlink_metadata(dir).map_err(io)?;
    if !meta.is_dir() {
        return Err(ControlError::Dir(dir.to_owned(), "not a directory".into()));
    }
    let uid = nix::unistd::geteuid().as_raw();
    if meta.uid() != uid {
        return Err(ControlError::Dir(
            dir.to_owned(),
            format!("owned by uid {}, not by this user (uid {uid})", meta.uid()),
        ));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

/// What is at a socket's path.
#[derive(Debug, PartialEq, Eq)]
pub enum Probe {
    /// A gateway accepts connections there.
    Live,
    /// A socket file nobody listens on: its gateway was killed.
    Stale,
    /// Nothing.
    Absent,
}

/// Tries to connect to `path`. Only "connection refused" (a socket file
/// with no listener) makes it stale; any other failure is an error, so a
/// file that is not ours to judge is never removed.
pub fn probe(path: &Path) -> Result<Probe, ControlError> {
    match UnixStream::connect(path) {
        Ok(_) => Ok(Probe::Live),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Ok(Probe::Stale),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Probe::Absent),
        Err(e) => Err(ControlError::Socket(path.to_owned(), e.to_string())),
    }
}

/// Whether `path` is `PID.sock` for a process that exists (this user's
/// or another's: `EPERM` means it exists too).
pub(crate) fn named_by_live_pid(path: &Path) -> bool {
    let pid = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(SOCKET_SUFFIX))
        .and_then(|n| n.parse::<i32>().ok())
        .filter(|&p| p > 0);
    pid.is_some_and(|p| {
        !matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None),
            Err(nix::errno::Errno::ESRCH)
        )
    })
}

/// Removes the socket at `path` if it is stale. `Ok(true)`: it was.
pub fn remove_if_stale(path: &Path) -> Result<bool, ControlError> {
    if probe(path)? != Probe::Stale {
        return Ok(false);
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(true),
        Err(e) => Err(ControlError::Socket(path.to_owned(), e.to_string())),
    }
}

/// The control sockets in `dir`, by name (`NAME.sock`), sorted. A missing
/// directory has none.
pub fn sockets(dir: &Path) -> Result<Vec<PathBuf>, ControlError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ControlError::Dir(dir.to_owned(), e.to_string())),
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(SOCKET_SUFFIX))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Checks a gateway's `--name`: it becomes a file name, so it is limited
/// to letters, digits, `-`, `_` and `.`, and not `.`-led.
pub fn check_name(name: &str) -> Result<(), ControlError> {
    // A socket path is at most 108 bytes (sun_path); a name this long
    // still leaves room for the directory.
    const MAX_NAME: usize = 32;
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ControlError::Name(name.to_owned(), MAX_NAME))
    }
}
