//! The supervisor of one call: from queue to reaped worker.
//!
//! **Architecture invariant:** [`drive`] returns exactly one report, and
//! before it returns, every process of the call is dead ([`Cage::kill_all`])
//! and the worker is reaped. Every exit path below goes through
//! [`Supervisor::finish`], which is where that happens.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bulkhead_ipc::{
    Confinement, HostMessage, Invoke, PROTOCOL_VERSION, ToolExit, WorkerMessage,
    WorkerStreamValidator,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::enforce::{Cage, CageLimits};
use crate::handle::InputMsg;
use crate::host::{CallRequest, Inner};
use crate::outcome::{KillReason, Outcome};
use crate::output::CapturedOutput;
use crate::policy::CallPolicy;
use crate::private_tmp::PrivateTmp;
use crate::report::{CallEvent, CallReport, CallState, LiveStatus};
use crate::spawn::SpawnRequest;
use crate::worker_io;

mod off_thread;
mod outcome;
mod stream;

pub(crate) use stream::CallIo;
use stream::MAX_INPUT_CREDIT;

/// Chunks a worker may have in flight. 16 × 64 KiB = 1 MiB: enough to keep
/// the channel busy while the host works, and a hard bound on what the
/// channel holds for one call.
const CREDIT_WINDOW: u64 = 16;

/// How long a worker may take to exit after its final report before it is
/// killed. It only has to reap and return from `main`.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// SIGXCPU: the kernel's signal for a process over RLIMIT_CPU.
const SIGXCPU: i32 = 24;

/// Runs one call and sends its events. Never panics on worker behaviour.
pub(crate) async fn run(
    inner: Arc<Inner>,
    call_id: u64,
    req: CallRequest,
    events: mpsc::UnboundedSender<CallEvent>,
    live: watch::Sender<LiveStatus>,
    cancel: CancellationToken,
    io: CallIo,
) {
    let (report, leftovers) = drive(&inner, call_id, req, &events, &live, &cancel, io).await;
    live.send_modify(|l| l.state = CallState::Ended);
    let _ = events.send(CallEvent::Finished(Box::new(report)));
    // Removing the (now empty) cgroups can take a while on cgroup v1, and a
    // temp dir may hold many files; the caller need not wait for either. A
    // runtime shutting down waits for it, and a host that dies first leaves
    // it to the next host's stale sweep.
    if leftovers.cage.is_some() || leftovers.tmp.is_some() {
        off_thread::detach(move || drop(leftovers));
    }
}

/// What a call leaves to clean up once every process of it is dead.
#[derive(Default)]
struct Leftovers {
    cage: Option<Cage>,
    tmp: Option<PrivateTmp>,
}

async fn drive(
    inner: &Arc<Inner>,
    call_id: u64,
    req: CallRequest,
    events: &mpsc::UnboundedSender<CallEvent>,
    live: &watch::Sender<LiveStatus>,
    cancel: &CancellationToken,
    mut io: CallIo,
) -> (CallReport, Leftovers) {
    let mut sup = Supervisor::new(inner, call_id, &req, live);
    if let Err(e) = req.limits.validate() {
        return sup.finish_early_with(Outcome::Failed {
            error: format!("invalid limits: {e}"),
        });
    }
    if let Some(cwd) = req.cwd.as_ref().filter(|c| !c.is_dir()) {
        // Checked here because a spawn into a missing directory fails with
        // a bare ENOENT that reads as if the worker binary were missing.
        return sup.finish_early_with(Outcome::Failed {
            error: format!("working directory {} is not a directory", cwd.display()),
        });
    }
    let _permit = tokio::select! {
        biased;
        _ = cancel.cancelled() => return sup.finish_early_with(Outcome::Killed { reason: KillReason::Cancelled }),
        permit = inner.slots.clone().acquire_owned() => match permit {
            Ok(p) => p,
            Err(_) => return sup.finish_early_with(Outcome::Failed { error: "tool host is shutting down".into() }),
        },
    };
    sup.started = Instant::now();
    live.send_modify(|l| l.state = CallState::Running);

    let mut sandbox = req.policy.sandbox.clone();
    let mut env = inner.worker_env(&req.policy);
    if req.policy.private_tmp {
        match PrivateTmp::create(call_id) {
            Ok(tmp) => {
                let dir = tmp.path().display().to_string();
                if let Some(fs) = sandbox.as_mut().and_then(|s| s.filesystem.as_mut()) {
                    fs.write.push(dir.clone());
                }
                env.retain(|(k, _)| k != "TMPDIR");
                env.push(("TMPDIR".into(), dir));
                sup.tmp = Some(tmp);
            }
            Err(e) => {
                return sup.finish_early_with(Outcome::Failed {
                    error: format!("cannot create the call's private temp dir: {e}"),
                });
            }
        }
    }

    let cage_limits = CageLimits {
        memory_bytes: Some(req.limits.memory_bytes),
        pids: Some(req.limits.pids),
    };
    let cage = match inner.enforcer.cage(call_id, &cage_limits) {
        Ok(c) => c,
        Err(e) => {
            return sup.finish_early_with(Outcome::Failed {
                error: format!("cannot set up limits: {e}"),
            });
        }
    };
    let channel = match bulkhead_ipc::transport::HostChannel::new() {
        Ok(c) => c,
        Err(e) => {
            return sup.finish_early_with(Outcome::Failed {
                error: format!("cannot create the ipc channel: {e}"),
            });
        }
    };
    let spawn = SpawnRequest {
        program: inner.worker.path.clone(),
        stdin: channel.worker_stdin,
        stdout: channel.worker_stdout,
        env,
        cwd: req.cwd.clone(),
        cgroups: cage.spawn_cgroups(),
    };
    let (mut child, carried) = match inner.spawner.spawn(spawn).await {
        Ok(c) => c,
        Err(e) => {
            let error = format!("cannot start worker {}: {e}", inner.worker.path.display());
            return sup.finish_early_with(Outcome::Failed { error });
        }
    };
    // The worker takes about a millisecond to start, during which the host
    // only waits: build the next call's cage then (see `enforce::spare`).
    if inner.spawned.fetch_add(1, Ordering::Relaxed) > 0 {
        let ahead = Arc::clone(inner);
        tokio::task::spawn_blocking(move || ahead.enforcer.prepare_spare(&cage_limits));
    }
    let mut cage = cage;
    let pid = child.id().unwrap_or(0);
    // The worker waits for our Hello before it runs anything, so attaching
    // here, before the first write, puts the whole tool inside the cage.
    // A worker born in its v1 cgroups is already there (checked), and its
    // cgroup2 kill cgroup is joined in the background: that write waits for
    // an RCU grace period (ms) and only makes the kill atomic (see
    // `enforce::DeferredAttach`).
    let kill_attach = match cage.attach_spawned(pid, carried) {
        Ok(deferred) => deferred.map(|d| tokio::task::spawn_blocking(move || d.run())),
        Err(e) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return sup.finish_early_with(Outcome::Failed {
                error: format!("cannot confine worker {pid}: {e}"),
            });
        }
    };
    let stderr_tail = worker_io::spawn_stderr_tail(child.stderr.take());
    let mut frames = worker_io::spawn_reader(channel.from_worker);
    let (granted, granted_rx) = watch::channel(CREDIT_WINDOW);
    let opening = vec![
        HostMessage::Hello {
            protocol: PROTOCOL_VERSION,
            host_version: crate::VERSION.to_owned(),
        },
        HostMessage::Invoke(Box::new(Invoke {
            call_id,
            tool: req.tool.clone(),
            args_json: req.args_json.clone(),
            limits: req
                .limits
                .for_worker(inner.enforcer.rlimit_data_backstop(&cage_limits)),
            sandbox,
        })),
    ];
    let (to_worker, extra) = mpsc::unbounded_channel();
    worker_io::spawn_writer(channel.to_worker, opening, granted_rx, extra);
    sup.validator.grant(CREDIT_WINDOW as u32);
    let mut input_open = true;

    let deadline = tokio::time::Instant::from_std(sup.started + req.limits.timeout);
    // The first sample one interval in: at the start there is only a
    // worker that has just been exec'd (and in watchdog mode a sample is a
    // process-table walk). A shorter call is sampled once, at its end.
    let period = inner.enforcer.sample_interval();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let cpu_limit_ms = req.limits.cpu.map(|d| d.as_millis() as u64);

    // Some(outcome): the host decided; None: the worker's report decides.
    let verdict: Option<Outcome> = loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(Ok(Some(msg))) => {
                    if let Err(v) = sup.validator.accept(&msg) {
                        break Some(Outcome::Failed { error: format!("protocol violation by the worker: {v}") });
                    }
                    match sup.handle(msg, events) {
                        Step::Continue => {}
                        Step::Ended => break None,
                        Step::Kill(outcome) => break Some(outcome),
                    }
                    sup.top_up_credit(&granted, &io.pacing);
                }
                Some(Err(e)) => break Some(Outcome::Failed { error: format!("protocol violation by the worker: {e}") }),
                // EOF before a final report: the worker died or gave up.
                Some(Ok(None)) | None => break None,
            },
            _ = tokio::time::sleep_until(deadline) => break Some(Outcome::Killed { reason: KillReason::Timeout }),
            _ = ticks.tick() => {
                let s = cage.sample();
                sup.observe(s.rss_bytes, s.peak_rss_bytes, s.cpu_ms);
                if s.memory_exceeded {
                    break Some(Outcome::Killed { reason: KillReason::Memory });
                }
                if cpu_limit_ms.is_some_and(|lim| s.cpu_ms > lim) {
                    break Some(Outcome::Killed { reason: KillReason::Cpu });
                }
            }
            _ = cancel.cancelled() => break Some(Outcome::Killed { reason: KillReason::Cancelled }),
            // A streamed call's caller took output: credit may follow.
            _ = io.pacing.notify.notified(), if sup.stream => sup.top_up_credit(&granted, &io.pacing),
            // Input goes out only against the worker's input credit; the
            // unbounded writer queue thus holds at most that window.
            msg = io.input.recv(), if input_open && sup.input_credit > 0 => match msg {
                Some(InputMsg::Data(data)) => {
                    sup.input_credit -= 1;
                    let _ = to_worker.send(HostMessage::Input { data: data.to_vec() });
                }
                Some(InputMsg::Close) | None => {
                    input_open = false;
                    let _ = to_worker.send(HostMessage::CloseInput);
                }
            },
        }
    };

    // The background attach writes the worker's pid: it must be done
    // before anything below reaps the worker and frees that pid.
    if let Some(task) = kill_attach {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "worker not in its kill cgroup; killing it member by member")
            }
            Err(e) => tracing::warn!(error = %e, "the kill cgroup attach did not finish"),
        }
    }
    // Let a worker that reported exit on its own; kill anything else.
    let status = if verdict.is_none() && sup.validator.ended() {
        tokio::time::timeout(EXIT_GRACE, child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    } else {
        None
    };
    let final_sample = cage.sample();
    sup.observe(
        final_sample.rss_bytes,
        final_sample.peak_rss_bytes,
        final_sample.cpu_ms,
    );
    let memory_hit = cage.memory_limit_hit();
    // Killing may block (it polls until the cgroup is empty), so it runs
    // on a blocking thread; it is awaited, because no process of the call
    // may outlive its report.
    // If the kill panicked, the cage went down with it, and its Drop has
    // killed again; there is nothing left to remove. It runs on a thread of
    // its own even where tokio's pool could not get one (see `off_thread`).
    // A cage known empty (the usual end: the worker exited after its
    // report, and its own teardown killed what it started) skips the hop.
    let cage = if cage.known_empty() {
        Some(cage)
    } else {
        off_thread::run("bulkhead-kill", move || {
            cage.kill_all();
            cage
        })
        .await
    };
    let _ = child.start_kill();
    let status = match status {
        Some(s) => Some(s),
        None => child.wait().await.ok(),
    };
    // A worker that died on its own (EOF with no report) may have been
    // killed by the kernel: the OOM killer on a cgroup, or RLIMIT_CPU.
    let outcome = match verdict {
        Some(o) => o,
        None => sup.outcome_from_worker(status, memory_hit),
    };
    let stderr = stderr_tail.await.unwrap_or_default();
    sup.answer_open_requests(&outcome, events);
    let tmp = sup.tmp.take();
    (sup.finish(outcome, stderr), Leftovers { cage, tmp })
}

enum Step {
    Continue,
    Ended,
    Kill(Outcome),
}

/// The state of one call while it runs.
struct Supervisor<'a> {
    inner: &'a Inner,
    call_id: u64,
    tool: String,
    limits: crate::limits::CallLimits,
    live: &'a watch::Sender<LiveStatus>,
    started: Instant,
    validator: WorkerStreamValidator,
    output: CapturedOutput,
    peak_rss: u64,
    cpu_ms: u64,
    worker_bytes_seen: u64,
    worker_lines_seen: u64,
    exit: Option<ToolExit>,
    summary: Option<serde_json::Value>,
    worker_error: Option<String>,
    confinement: Confinement,
    policy: CallPolicy,
    tmp: Option<PrivateTmp>,
    /// Stream mode (see `CallRequest::stream_output`).
    stream: bool,
    streamed_chunks: u64,
    streamed_bytes: u64,
    /// `Input` messages the worker has granted and not yet received.
    input_credit: u64,
}

impl<'a> Supervisor<'a> {
    fn new(
        inner: &'a Inner,
        call_id: u64,
        req: &CallRequest,
        live: &'a watch::Sender<LiveStatus>,
    ) -> Self {
        Self {
            inner,
            call_id,
            tool: req.tool.clone(),
            limits: req.limits.clone(),
            live,
            started: Instant::now(),
            validator: WorkerStreamValidator::new(),
            output: CapturedOutput::new(req.limits.max_output_bytes, req.limits.tail_bytes),
            peak_rss: 0,
            cpu_ms: 0,
            worker_bytes_seen: 0,
            worker_lines_seen: 0,
            exit: None,
            summary: None,
            worker_error: None,
            confinement: Confinement::default(),
            policy: req.policy.clone(),
            tmp: None,
            stream: req.stream_output,
            streamed_chunks: 0,
            streamed_bytes: 0,
            input_credit: 0,
        }
    }

    fn handle(&mut self, msg: WorkerMessage, events: &mpsc::UnboundedSender<CallEvent>) -> Step {
        match msg {
            WorkerMessage::Hello { worker_version, .. } if worker_version != crate::VERSION => {
                return Step::Kill(Outcome::Failed {
                    error: format!(
                        "version mismatch: bulkhead {} cannot use bulkhead-worker {worker_version}; \
                         install both from the same release",
                        crate::VERSION
                    ),
                });
            }
            WorkerMessage::Hello { .. } => {}
            WorkerMessage::Confined(c) => {
                self.confinement = c;
                let _ = events.send(CallEvent::Started(Box::new(self.enforcement())));
            }
            WorkerMessage::InputCredit { chunks } => {
                self.input_credit = (self.input_credit + u64::from(chunks)).min(MAX_INPUT_CREDIT);
            }
            // The validator keeps the set of open requests.
            WorkerMessage::Request { .. } => {}
            WorkerMessage::Chunk(chunk) if self.stream => {
                // As below: in stop mode the worker stops at the cap.
                if self.limits.tail_bytes == 0
                    && self.streamed_bytes >= self.limits.max_output_bytes
                {
                    return Step::Kill(Outcome::Killed {
                        reason: KillReason::Output,
                    });
                }
                self.streamed_chunks += 1;
                self.streamed_bytes += chunk.data.len() as u64;
                let _ = events.send(CallEvent::Output {
                    stream: chunk.stream,
                    data: chunk.data,
                });
                let seen = self.streamed_bytes;
                self.live.send_modify(|l| l.bytes_seen = seen);
            }
            WorkerMessage::Chunk(chunk) => {
                // The worker stops at the cap by itself; one that keeps
                // sending in stop mode is ignoring its limits.
                let overrun = self.limits.tail_bytes == 0
                    && self.output.bytes_seen() >= self.limits.max_output_bytes;
                if overrun {
                    return Step::Kill(Outcome::Killed {
                        reason: KillReason::Output,
                    });
                }
                let data = chunk.data;
                if let Some(kept) = self.output.push(chunk.stream, data) {
                    // The receiver may be gone (a caller that only awaits
                    // the report); the bytes are in `output` either way.
                    let _ = events.send(CallEvent::Output {
                        stream: chunk.stream,
                        data: kept,
                    });
                }
                let seen = self.output.bytes_seen();
                self.live.send_modify(|l| l.bytes_seen = seen);
            }
            WorkerMessage::Progress(p) => self.live.send_modify(|l| l.progress = Some(p.message)),
            WorkerMessage::Usage(u) => {
                self.worker_bytes_seen = self.worker_bytes_seen.max(u.bytes_seen);
                self.observe(0, u.max_rss_bytes, u.cpu_ms);
            }
            WorkerMessage::Done(done) => {
                self.worker_bytes_seen = self.worker_bytes_seen.max(done.bytes_seen);
                self.worker_lines_seen = done.lines_seen;
                self.observe(0, done.usage.max_rss_bytes, done.usage.cpu_ms);
                self.exit = Some(done.exit);
                self.summary = done
                    .summary_json
                    .and_then(|s| serde_json::from_str(&s).ok());
                return Step::Ended;
            }
            WorkerMessage::Error(e) => {
                self.worker_error = Some(e.message);
                return Step::Ended;
            }
        }
        Step::Continue
    }

    fn observe(&mut self, rss: u64, peak: u64, cpu_ms: u64) {
        self.peak_rss = self.peak_rss.max(peak).max(rss);
        self.cpu_ms = self.cpu_ms.max(cpu_ms);
        let (peak, cpu, elapsed) = (self.peak_rss, self.cpu_ms, self.started.elapsed());
        self.live.send_modify(|l| {
            if rss > 0 {
                l.rss_bytes = rss;
            }
            l.peak_rss_bytes = peak;
            l.cpu_ms = cpu;
            l.elapsed = elapsed;
        });
    }

    fn bytes_seen(&self) -> u64 {
        (self.output.bytes_seen() + self.streamed_bytes).max(self.worker_bytes_seen)
    }
}
