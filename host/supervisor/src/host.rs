//! [`ToolHost`]: the public face of the supervisor.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::call::HostShared;
use crate::enforce::{Enforcer, MemoryMechanism};
use crate::handle::{CallHandle, Shared};
use crate::report::{Enforcement, LiveStatus};
use crate::request::CallRequest;
use crate::spawn::{DEFAULT_ENV_ALLOWLIST, FindWorkerError, Spawner, WorkerBinary, find_worker};

/// How long `bulkhead-worker --list-tools` may take. It prints static
/// schemas; seconds mean something is badly wrong.
const LIST_TOOLS_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest tool catalogue accepted from the worker. Four schemas are a few
/// KiB; the cap only keeps a broken worker from feeding us without end.
const LIST_TOOLS_MAX_BYTES: usize = 1 << 20;

/// How a [`ToolHost`] is set up.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Workers running at once; more calls wait in a queue.
    pub max_workers: usize,
    /// The worker binary, used as given; `None` searches (see
    /// [`crate::spawn::find_worker`]).
    pub worker: Option<PathBuf>,
    /// The config file's `worker` key: the last place searched.
    pub worker_from_config: Option<PathBuf>,
    /// Variables passed to workers from the host's environment, unless a
    /// call's policy names its own ([`crate::CallPolicy::env_allowlist`]). The
    /// default holds no secrets: `PATH`, `HOME`, `USER`, `LOGNAME`, `LANG`,
    /// `LC_ALL`, `LC_CTYPE`, `TERM`, `TZ`, `TMPDIR`.
    pub env_allowlist: Vec<String>,
    /// Variables set for every worker, whatever the host's environment.
    pub worker_env: Vec<(String, String)>,
    /// Forces a memory mechanism (tests, or a user who distrusts detection).
    pub memory_mechanism: Option<MemoryMechanism>,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            // One worker per CPU: tools are mostly CPU- or IO-bound, and more
            // in flight only adds memory and contention.
            max_workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            worker: None,
            worker_from_config: None,
            env_allowlist: DEFAULT_ENV_ALLOWLIST
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            worker_env: Vec::new(),
            memory_mechanism: None,
        }
    }
}

/// Why the host could not start, or could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// No usable `bulkhead-worker` binary ([`crate::spawn::find_worker`]).
    #[error(transparent)]
    WorkerNotFound(#[from] FindWorkerError),
    /// The memory mechanism forced by [`HostConfig::memory_mechanism`] or
    /// `BULKHEAD_MEMORY_MECHANISM` is unknown or unavailable here.
    #[error("limits cannot be enforced: {0}")]
    Enforcement(#[from] crate::enforce::EnforceError),
    /// The thread that spawns workers could not be started.
    #[error("cannot start the spawner thread: {0}")]
    Spawner(std::io::Error),
    /// The worker's answer to `--list-tools` or `--probe-sandbox` was
    /// missing, too large, late or not JSON.
    #[error("cannot ask the worker: {0}")]
    ListTools(String),
}

/// Call ids are unique in the process, not per host: they name cgroups,
/// and several hosts in one process (tests, an embedder) must not collide.
static NEXT_CALL_ID: AtomicU64 = AtomicU64::new(1);

/// Runs tool calls in capped worker processes.
#[derive(Clone)]
pub struct ToolHost {
    inner: Arc<HostShared>,
    max_workers: usize,
}

impl ToolHost {
    /// Detects the enforcement mechanisms, clears cgroups left by crashed
    /// hosts, finds the worker and starts the spawner thread. Must be called
    /// inside a tokio runtime.
    pub fn new(config: HostConfig) -> Result<Self, HostError> {
        let worker = find_worker(
            config.worker.as_deref(),
            config.worker_from_config.as_deref(),
        )?;
        let enforcer = Enforcer::detect(config.memory_mechanism)?;
        let stale = enforcer.clear_stale();
        if stale > 0 {
            tracing::info!(stale, "removed cgroups left by hosts that died");
        }
        let stale_tmp = crate::private_tmp::sweep_stale();
        if stale_tmp > 0 {
            tracing::info!(stale_tmp, "removed temp dirs left by hosts that died");
        }
        let mut env: Vec<(String, String)> = config
            .env_allowlist
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
            .collect();
        env.extend(config.worker_env.iter().cloned());
        let extra_env = config.worker_env.clone();
        let max_workers = config.max_workers.max(1);
        Ok(Self {
            inner: Arc::new(HostShared {
                enforcer,
                spawner: Spawner::start().map_err(HostError::Spawner)?,
                slots: Arc::new(Semaphore::new(max_workers)),
                worker,
                env,
                extra_env,
                spawned: AtomicU64::new(0),
            }),
            max_workers,
        })
    }

    /// Starts a call. It waits for a worker slot in the background; the
    /// handle streams its events and ends with exactly one report.
    pub fn call(&self, req: CallRequest) -> CallHandle {
        let call_id = NEXT_CALL_ID.fetch_add(1, Ordering::Relaxed);
        let enforcement = Enforcement::new(&self.inner.enforcer, &req.policy, Default::default());
        let (events_tx, events) = mpsc::unbounded_channel();
        let (live_tx, live) = watch::channel(LiveStatus::default());
        let cancel = CancellationToken::new();
        // One message in the queue: input waits for the tool's credit in
        // the caller, not in the host.
        let (input_tx, input_rx) = mpsc::channel(1);
        let shared = Arc::new(Shared::default());
        tokio::spawn(crate::call::run(
            self.inner.clone(),
            call_id,
            req,
            events_tx,
            live_tx,
            cancel.clone(),
            crate::call::CallIo {
                input: input_rx,
                shared: shared.clone(),
            },
        ));
        CallHandle {
            call_id,
            events,
            live,
            enforcement,
            finished: false,
            cancel: cancel.clone(),
            input: input_tx,
            shared,
            _guard: cancel.drop_guard(),
        }
    }

    /// The enforcer this host detected: its mechanism, its report for
    /// `doctor`.
    pub fn enforcer(&self) -> &Enforcer {
        &self.inner.enforcer
    }

    /// The worker binary this host runs, and how it was found.
    pub fn worker(&self) -> &WorkerBinary {
        &self.inner.worker
    }

    /// Workers that may run at once ([`HostConfig::max_workers`], at
    /// least 1).
    pub fn max_workers(&self) -> usize {
        self.max_workers
    }

    /// Workers running now.
    pub fn running(&self) -> usize {
        self.max_workers - self.inner.slots.available_permits()
    }

    /// The tools the worker offers, with their schemas, as JSON
    /// (`[{"name", "description", "schema"}]`). Asked of the worker binary:
    /// the host holds no tool code.
    pub async fn list_tools(&self) -> Result<serde_json::Value, HostError> {
        self.ask_worker("--list-tools", "catalogue").await
    }

    /// Which sandbox mechanisms this kernel offers, each tried for real by
    /// the worker in a throwaway process (`[{"mechanism", "available",
    /// "detail"}]`). The host itself never makes a namespace or filter.
    pub async fn probe_sandbox(&self) -> Result<serde_json::Value, HostError> {
        self.ask_worker("--probe-sandbox", "sandbox probe").await
    }

    /// Runs the worker with one informational flag and parses its JSON.
    async fn ask_worker(&self, flag: &str, what: &str) -> Result<serde_json::Value, HostError> {
        use tokio::io::AsyncReadExt;
        let fail = |m: String| HostError::ListTools(format!("{what}: {m}"));
        let mut child = tokio::process::Command::new(&self.inner.worker.path)
            .arg(flag)
            .env_clear()
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("{}: {e}", self.inner.worker.path.display())))?;
        let mut out = Vec::new();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| fail("no stdout".into()))?;
        let mut limited = stdout.take(LIST_TOOLS_MAX_BYTES as u64 + 1);
        let read = limited.read_to_end(&mut out);
        match tokio::time::timeout(LIST_TOOLS_TIMEOUT, read).await {
            Ok(Ok(_)) if out.len() <= LIST_TOOLS_MAX_BYTES => {}
            Ok(Ok(_)) => return Err(fail("larger than 1 MiB".into())),
            Ok(Err(e)) => return Err(fail(e.to_string())),
            Err(_) => return Err(fail("worker did not answer within 10 s".into())),
        }
        let _ = child.wait().await;
        serde_json::from_slice(&out).map_err(|e| fail(format!("bad JSON: {e}")))
    }
}
