//! The supervisor of one call: from queue to reaped worker.
//!
//! [`run`] takes a call through three phases and sends its one report:
//!
//! 1. **Start** ([`start::start`]): checks the request, waits for a worker
//!    slot, makes the call's cage (and temp dir, if its policy wants one),
//!    spawns the worker into the cage and sends it the call.
//! 2. **Supervise** ([`supervise::supervise`]): relays the worker's
//!    messages, samples the cage, grants output credit and forwards input,
//!    until the worker reports its end, dies, or the host decides the end
//!    (a limit, a protocol violation, a cancel).
//! 3. **Teardown** ([`teardown::teardown`]): kills whatever of the call is
//!    still alive, reaps the worker, decides the outcome and builds the
//!    report.
//!
//! **Architecture invariant:** a call ends in exactly one report, and when
//! it is sent every process of the call is dead and the worker is reaped.
//! The two ways out keep it:
//!
//! - A start that fails returns the call's outcome, which
//!   [`Supervisor::finish_early_with`] turns into the report. Almost every
//!   such failure comes before a worker exists: invalid limits or working
//!   directory, a cancel or a shutdown while queued, no temp dir, cage,
//!   channel or spawn. The one after is a worker that cannot be put in its
//!   cage: `start` kills and reaps it itself, before it has run anything
//!   (a worker waits for the host's `Hello`), and drops the cage, whose
//!   `Drop` kills anything left in it.
//! - Once the worker is in its cage, every end goes through
//!   [`teardown::teardown`]: it kills the whole cage ([`Cage::kill_all`],
//!   skipped when the cage is known to be empty), then kills and reaps the
//!   worker, and only then builds the report ([`Supervisor::finish`]).
//!
//! The cage's empty cgroups and the temp dir are removed after the report
//! is sent, off the caller's path ([`run`]). Should the supervisor task
//! panic (a bug), the cage's and the worker's `Drop` kill what is left, and
//! the handle makes up the report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead_ipc::{Confinement, ToolExit, WorkerStreamValidator};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::enforce::Cage;
use crate::output::CapturedOutput;
use crate::policy::CallPolicy;
use crate::private_tmp::PrivateTmp;
use crate::report::{CallEvent, CallReport, CallState, LiveStatus};
use crate::request::CallRequest;

mod egress;
mod host_shared;
mod inject;
mod off_thread;
mod outcome;
mod start;
mod stream;
mod supervise;
mod teardown;

pub(crate) use host_shared::HostShared;

pub(crate) use stream::CallIo;

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
    inner: Arc<HostShared>,
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

/// The three phases, in order; the report and what to clean up after it.
async fn drive(
    inner: &Arc<HostShared>,
    call_id: u64,
    req: CallRequest,
    events: &mpsc::UnboundedSender<CallEvent>,
    live: &watch::Sender<LiveStatus>,
    cancel: &CancellationToken,
    mut io: CallIo,
) -> (CallReport, Leftovers) {
    let mut sup = Supervisor::new(inner, call_id, &req, live);
    let mut running = match start::start(&mut sup, inner, &req, cancel, &io.shared).await {
        Ok(running) => running,
        Err(outcome) => return sup.finish_early_with(outcome),
    };
    let verdict = supervise::supervise(&mut sup, &mut running, events, cancel, &mut io).await;
    teardown::teardown(sup, running, verdict, events).await
}

/// The state of one call while it runs.
struct Supervisor<'a> {
    inner: &'a HostShared,
    call_id: u64,
    tool: String,
    limits: crate::limits::CallLimits,
    live: &'a watch::Sender<LiveStatus>,
    /// When the call got its worker slot (until then, when it was made):
    /// where its timeout and its wall time start.
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
    /// The call's egress proxy while it runs (an allow list only).
    egress: Option<egress::CallEgress>,
    /// What the proxy did, once it is shut down.
    egress_report: Option<bulkhead_egress::EgressReport>,
    /// Stream mode (see `CallRequest::stream_output`).
    stream: bool,
    streamed_chunks: u64,
    streamed_bytes: u64,
    /// `Input` messages the worker has granted and not yet received.
    input_credit: u64,
    /// The call's faults (`CallRequest::inject`); `None` for a call
    /// without, which then does no fault work.
    inject: Option<Box<inject::Injector>>,
}

impl<'a> Supervisor<'a> {
    fn new(
        inner: &'a HostShared,
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
            egress: None,
            egress_report: None,
            stream: req.stream_output,
            streamed_chunks: 0,
            streamed_bytes: 0,
            input_credit: 0,
            inject: None,
        }
    }

    /// Takes usage figures (a sample of the cage, or the worker's own
    /// report; 0 for a figure it lacks) and publishes them as live status.
    /// The peak and the CPU time only grow, whichever source is ahead.
    fn observe(&mut self, rss: u64, peak: u64, cpu_ms: u64) {
        self.peak_rss = self.peak_rss.max(peak).max(rss);
        self.cpu_ms = self.cpu_ms.max(cpu_ms);
        let (peak, cpu, elapsed) = (self.peak_rss, self.cpu_ms, self.started.elapsed());
        let egress = self.egress.as_ref().map(egress::CallEgress::report);
        self.live.send_modify(|l| {
            if let Some(e) = egress {
                l.egress_allowed = e.allowed;
                l.egress_refused = e.refused;
                l.egress_messages = e.messages.into_iter().map(|m| m.text).collect();
            }
            if rss > 0 {
                l.rss_bytes = rss;
            }
            l.peak_rss_bytes = peak;
            l.cpu_ms = cpu;
            l.elapsed = elapsed;
        });
    }

    /// Output bytes the tool produced: what reached the host, or what the
    /// worker counted, which includes what it cut at the cap.
    fn bytes_seen(&self) -> u64 {
        (self.output.bytes_seen() + self.streamed_bytes).max(self.worker_bytes_seen)
    }
}
