//! Finding the worker binary ([`find_worker`]), and starting workers: from
//! one long-lived thread, with a plain `posix_spawn`.
//!
//! **Architecture invariant:** the host never sets `pre_exec`. With it,
//! `std::process::Command` must `fork()`, which copies the host's page
//! tables and so costs more the more memory the host maps; without it,
//! `Command` uses `posix_spawn`, whose cost does not depend on the host's
//! size. Everything the worker needs is applied by the worker itself.
//!
//! All spawns happen on one dedicated thread that lives as long as the
//! host. The worker asks for `PR_SET_PDEATHSIG`, which fires when the
//! *thread* that forked it exits, so spawning from a tokio blocking-pool
//! thread, which retires when idle, would kill workers at random.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::enforce::{Carried, SpawnCgroups, own_cgroups};

/// Environment variables a worker receives by default. No secrets: API keys
/// and tokens of the host never reach a worker unless configured.
pub(crate) const DEFAULT_ENV_ALLOWLIST: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ", "TMPDIR",
];

/// Where the worker binary is, and how it was found.
#[derive(Debug, Clone)]
pub struct WorkerBinary {
    /// The binary, made canonical when it could be.
    pub path: PathBuf,
    /// How it was found, as a phrase (`next to the bulkhead executable`,
    /// `through BULKHEAD_WORKER`), for `bulkhead --version` and `doctor`.
    pub found_by: &'static str,
}

/// Environment variable naming the worker binary when none sits next to
/// `bulkhead`.
pub(crate) const WORKER_ENV: &str = "BULKHEAD_WORKER";

/// Why [`find_worker`] has no worker to give. The messages say where it
/// looked and how to point it at one, and carry the OS error when there is
/// one (so no variant has a separate `source()` to print twice).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FindWorkerError {
    /// The running executable's path, where the search starts, is unknown.
    #[error("cannot locate the running executable: {0}")]
    CurrentExe(std::io::Error),
    /// No candidate exists: not next to the executable, no `BULKHEAD_WORKER`,
    /// no config file key.
    #[error(
        "bulkhead-worker not found: not next to {} (looked for {}), {WORKER_ENV} is not set, and \
         the config file names no worker; install both binaries side by side, or set \
         {WORKER_ENV} (or `worker = \"PATH\"` in the config file) to its path",
        .exe.display(),
        join_paths(.candidates)
    )]
    NotFound {
        /// The running executable.
        exe: PathBuf,
        /// The paths looked at next to it.
        candidates: Vec<PathBuf>,
    },
    /// The chosen path exists but is not an executable file.
    #[error("worker {} (from {found_by}) is not an executable file", .path.display())]
    NotExecutable {
        /// The path as given.
        path: PathBuf,
        /// Where the path came from, as in [`WorkerBinary::found_by`].
        found_by: &'static str,
    },
    /// The chosen path cannot be examined (most often: it does not exist).
    #[error("worker {} (from {found_by}): {error}", .path.display())]
    Unreadable {
        /// The path as given.
        path: PathBuf,
        /// Where the path came from, as in [`WorkerBinary::found_by`].
        found_by: &'static str,
        /// Why `stat` failed. Part of the message, so not a `source()`.
        error: std::io::Error,
    },
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|c| c.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Finds `bulkhead-worker`, in this order:
/// 1. `explicit`: a path the embedding program chose (`HostConfig::worker`);
/// 2. next to the running executable (and one level up, where `cargo test`
///    binaries live): the worker installed with this `bulkhead`, so a stray
///    `BULKHEAD_WORKER` in the environment cannot pair it with another
///    release's worker;
/// 3. the `BULKHEAD_WORKER` environment variable;
/// 4. `from_config`: the config file's `worker` key.
///
/// Whichever is found, the handshake of every call still refuses a worker
/// of another version, naming both.
pub fn find_worker(
    explicit: Option<&Path>,
    from_config: Option<&Path>,
) -> Result<WorkerBinary, FindWorkerError> {
    if let Some(p) = explicit {
        return check(p, "configuration");
    }
    let exe = std::env::current_exe().map_err(FindWorkerError::CurrentExe)?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let candidates = [dir.join("bulkhead-worker"), dir.join("../bulkhead-worker")];
    if let Some(c) = candidates.iter().find(|c| c.is_file()) {
        return check(c, "next to the bulkhead executable");
    }
    if let Some(p) = std::env::var_os(WORKER_ENV).filter(|p| !p.is_empty()) {
        return check(Path::new(&p), "through BULKHEAD_WORKER");
    }
    if let Some(p) = from_config {
        return check(p, "through the config file's worker key");
    }
    Err(FindWorkerError::NotFound {
        exe,
        candidates: candidates.into(),
    })
}

fn check(p: &Path, found_by: &'static str) -> Result<WorkerBinary, FindWorkerError> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(WorkerBinary {
            path: p.canonicalize().unwrap_or_else(|_| p.to_path_buf()),
            found_by,
        }),
        Ok(_) => Err(FindWorkerError::NotExecutable {
            path: p.to_path_buf(),
            found_by,
        }),
        Err(error) => Err(FindWorkerError::Unreadable {
            path: p.to_path_buf(),
            found_by,
            error,
        }),
    }
}

/// What the spawner thread needs for one worker.
pub(crate) struct SpawnRequest {
    pub(crate) program: PathBuf,
    pub(crate) stdin: OwnedFd,
    pub(crate) stdout: OwnedFd,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) cwd: Option<PathBuf>,
    /// Cgroups the spawner thread joins for the spawn, so that the worker
    /// is born in them (see `enforce::carry`).
    pub(crate) cgroups: SpawnCgroups,
}

/// A started worker, and whether it was born in the request's `cgroups`
/// (false: they were empty, or entering them failed; attach it instead).
pub(crate) type Spawned = (tokio::process::Child, bool);

type Reply = oneshot::Sender<std::io::Result<Spawned>>;

/// Handle to the spawner thread. Cloning shares the thread.
#[derive(Clone)]
pub(crate) struct Spawner {
    tx: mpsc::Sender<(SpawnRequest, Reply)>,
}

impl Spawner {
    /// Starts the thread. Must be called inside a tokio runtime, whose
    /// process driver then reaps the workers.
    pub(crate) fn start() -> std::io::Result<Self> {
        let handle = tokio::runtime::Handle::current();
        let (tx, rx) = mpsc::channel::<(SpawnRequest, Reply)>();
        std::thread::Builder::new()
            .name("bulkhead-spawner".into())
            .spawn(move || {
                let _guard = handle.enter();
                let home = own_cgroups();
                for (req, reply) in rx {
                    let (spawned, carried) = spawn_one(req, &home);
                    let _ = reply.send(spawned);
                    // After the hand-over: the caller need not wait for it
                    // (see `enforce::carry`).
                    if let Some(carried) = carried {
                        carried.leave();
                    }
                }
            })?;
        Ok(Self { tx })
    }

    pub(crate) async fn spawn(&self, req: SpawnRequest) -> std::io::Result<Spawned> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((req, reply))
            .map_err(|_| std::io::Error::other("spawner thread is gone"))?;
        rx.await
            .map_err(|_| std::io::Error::other("spawner thread dropped the request"))?
    }
}

/// Spawns one worker; also returns the call cgroups the thread is still
/// in, to leave once the worker is handed over.
fn spawn_one(req: SpawnRequest, home: &str) -> (std::io::Result<Spawned>, Option<Carried>) {
    let mut cmd = tokio::process::Command::new(&req.program);
    cmd.env_clear()
        .envs(req.env)
        .env("BULKHEAD_HOST_PID", std::process::id().to_string())
        .stdin(Stdio::from(req.stdin))
        .stdout(Stdio::from(req.stdout))
        .stderr(Stdio::piped())
        // The last resort if the supervisor's own kill path is skipped
        // (a panic unwinding through it): the worker dies with its handle.
        .kill_on_drop(true);
    if let Some(cwd) = req.cwd {
        cmd.current_dir(cwd);
    }
    // Everything is built before entering: the thread spends as little as
    // possible inside the call's cgroups.
    let carried = req.cgroups.enter(home);
    let born_inside = carried.is_some();
    (cmd.spawn().map(|child| (child, born_inside)), carried)
}
