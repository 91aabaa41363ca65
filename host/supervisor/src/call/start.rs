//! The start of a call: from the request to a worker running in its cage,
//! with the call sent to it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bulkhead_ipc::{HostMessage, Invoke, PROTOCOL_VERSION};
use tokio::process::Child;
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::HostShared;
use super::{CREDIT_WINDOW, Supervisor};
use crate::enforce::{Cage, CageLimits, EnforceError};
use crate::handle::Shared;
use crate::outcome::{KillReason, Outcome};
use crate::private_tmp::PrivateTmp;
use crate::report::CallState;
use crate::request::CallRequest;
use crate::spawn::SpawnRequest;
use crate::worker_io::{self, FrameResult};

/// A call whose worker runs in its cage: what the supervise and teardown
/// phases work with.
pub(super) struct Running {
    /// Declared before `child`, so that if the supervisor panics the pid is
    /// withdrawn before the dropped `Child` is killed and reaped.
    pub(super) published_pid: PublishedPid,
    pub(super) child: Child,
    pub(super) cage: Cage,
    /// The worker's attach to its cgroup2 kill cgroup, left to a blocking
    /// thread (see `enforce::DeferredAttach`); `None` when there is none.
    pub(super) kill_attach: Option<JoinHandle<Result<(), EnforceError>>>,
    /// The last bytes of the worker's own stderr, read to its end.
    pub(super) stderr_tail: JoinHandle<String>,
    /// The worker's messages, from the reader task.
    pub(super) frames: mpsc::Receiver<FrameResult>,
    /// Output credit granted so far, which the writer task sends on.
    pub(super) granted: watch::Sender<u64>,
    /// Messages for the writer task to send after the opening (input).
    pub(super) to_worker: mpsc::UnboundedSender<HostMessage>,
    /// The call's worker slot, freed when the call is over.
    pub(super) _permit: OwnedSemaphorePermit,
}

/// The worker's pid as the call's handle sees it
/// ([`crate::CallHandle::worker_pid`]), withdrawn when this is dropped.
pub(super) struct PublishedPid(Arc<Shared>);

impl PublishedPid {
    fn publish(shared: &Arc<Shared>, pid: u32) -> Self {
        shared.publish_pid(pid);
        Self(Arc::clone(shared))
    }
}

impl Drop for PublishedPid {
    fn drop(&mut self) {
        self.0.withdraw_pid();
    }
}

/// Checks the request, waits for a worker slot, makes the call's private
/// temp dir and cage, spawns the worker into the cage and sends it the
/// call. `Err` is the outcome of a call that ends here: no worker exists
/// any more (if one was spawned, it has been killed and reaped).
pub(super) async fn start(
    sup: &mut Supervisor<'_>,
    inner: &Arc<HostShared>,
    req: &CallRequest,
    cancel: &CancellationToken,
    shared: &Arc<Shared>,
) -> Result<Running, Outcome> {
    if let Err(e) = req.limits.validate() {
        return Err(Outcome::Failed {
            error: format!("invalid limits: {e}"),
        });
    }
    // A fault that cannot apply to a tool call is refused, never ignored.
    sup.inject = super::inject::Injector::new(req).map_err(|error| Outcome::Failed { error })?;
    if let Some(cwd) = req.cwd.as_ref().filter(|c| !c.is_dir()) {
        // Checked here because a spawn into a missing directory fails with
        // a bare ENOENT that reads as if the worker binary were missing.
        return Err(Outcome::Failed {
            error: format!("working directory {} is not a directory", cwd.display()),
        });
    }
    let permit = tokio::select! {
        biased;
        _ = cancel.cancelled() => return Err(Outcome::Killed { reason: KillReason::Cancelled }),
        permit = inner.slots.clone().acquire_owned() => match permit {
            Ok(p) => p,
            Err(_) => return Err(Outcome::Failed { error: "tool host is shutting down".into() }),
        },
    };
    sup.started = Instant::now();
    sup.live.send_modify(|l| l.state = CallState::Running);

    let mut sandbox = req.policy.sandbox.clone();
    let mut env = inner.worker_env(&req.policy);
    if req.policy.private_tmp {
        let tmp = PrivateTmp::create(sup.call_id).map_err(|e| Outcome::Failed {
            error: format!("cannot create the call's private temp dir: {e}"),
        })?;
        let dir = tmp.path().display().to_string();
        if let Some(fs) = sandbox.as_mut().and_then(|s| s.filesystem.as_mut()) {
            fs.write.push(dir.clone());
        }
        env.retain(|(k, _)| k != "TMPDIR");
        env.push(("TMPDIR".into(), dir));
        sup.tmp = Some(tmp);
    }
    if let Some(allow) = &req.policy.egress {
        let (egress, relay) = super::egress::CallEgress::start(sup.call_id, allow.clone())
            .map_err(|e| Outcome::Failed {
                error: format!("cannot start the call's egress proxy: {e}"),
            })?;
        if let Some(spec) = sandbox.as_mut() {
            spec.egress = Some(relay);
        }
        sup.egress = Some(egress);
    }

    let cage_limits = CageLimits {
        memory_bytes: Some(req.limits.memory_bytes),
        pids: Some(req.limits.pids),
    };
    let mut cage = inner
        .enforcer
        .cage(sup.call_id, &cage_limits)
        .map_err(|e| Outcome::Failed {
            error: format!("cannot set up limits: {e}"),
        })?;
    let channel = bulkhead_ipc::transport::HostChannel::new().map_err(|e| Outcome::Failed {
        error: format!("cannot create the ipc channel: {e}"),
    })?;
    let spawn = SpawnRequest {
        program: inner.worker.path.clone(),
        stdin: channel.worker_stdin,
        stdout: channel.worker_stdout,
        env,
        cwd: req.cwd.clone(),
        cgroups: cage.spawn_cgroups(),
    };
    let (mut child, carried) = inner.spawner.spawn(spawn).await.map_err(|e| {
        let error = format!("cannot start worker {}: {e}", inner.worker.path.display());
        Outcome::Failed { error }
    })?;
    // The host only waits while the worker starts: build the next call's
    // cage then (see `enforce::spare`).
    if inner.spawned.fetch_add(1, Ordering::Relaxed) > 0 {
        let ahead = Arc::clone(inner);
        tokio::task::spawn_blocking(move || ahead.enforcer.prepare_spare(&cage_limits));
    }
    let pid = child.id().unwrap_or(0);
    // The worker waits for our Hello before it runs anything, so attaching
    // here, before the first write, puts the whole tool inside the cage.
    // A worker born in its v1 cgroups is already there (checked), and its
    // cgroup2 kill cgroup is joined in the background: that write waits for
    // an RCU grace period and only makes the kill atomic (see
    // `enforce::DeferredAttach`).
    let kill_attach = match cage.attach_spawned(pid, carried) {
        Ok(deferred) => deferred.map(|d| tokio::task::spawn_blocking(move || d.run())),
        Err(e) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(Outcome::Failed {
                error: format!("cannot confine worker {pid}: {e}"),
            });
        }
    };
    let published_pid = PublishedPid::publish(shared, pid);
    let stderr_tail = worker_io::spawn_stderr_tail(child.stderr.take());
    let frames = worker_io::spawn_reader(channel.from_worker);
    let (granted, granted_rx) = watch::channel(CREDIT_WINDOW);
    let opening = vec![
        HostMessage::Hello {
            protocol: PROTOCOL_VERSION,
            host_version: crate::VERSION.to_owned(),
        },
        HostMessage::Invoke(Box::new(Invoke {
            call_id: sup.call_id,
            tool: req.tool.clone(),
            args_json: req.args_json.clone(),
            limits: req
                .limits
                .for_worker(inner.enforcer.rlimit_data_backstop(&cage_limits)),
            sandbox,
            start_faults: sup
                .inject
                .as_deref_mut()
                .map(super::inject::Injector::start_faults)
                .unwrap_or_default(),
        })),
    ];
    let (to_worker, extra) = mpsc::unbounded_channel();
    worker_io::spawn_writer(channel.to_worker, opening, granted_rx, extra);
    sup.validator.grant(CREDIT_WINDOW as u32);
    Ok(Running {
        published_pid,
        child,
        cage,
        kill_attach,
        stderr_tail,
        frames,
        granted,
        to_worker,
        _permit: permit,
    })
}
