//! Faults injected into a call ([`CallRequest::inject`]): when each fires,
//! and what the host does then. A call with no fault has no `Injector`
//! (`None`, no allocation), and the supervise loop does no fault work.
//!
//! How each fault is applied, so that the call meets the real failure and
//! ends in the real failure's outcome:
//!
//! - `kill`: the host SIGKILLs the worker and its descendants, as someone
//!   outside would; the call ends `killed: signal(9)` and the teardown
//!   kills whatever else is in the cage.
//! - `hang`: the host SIGSTOPs the worker and its descendants; the call
//!   then ends by its own timeout (or CPU limit, or a cancel).
//! - `crash`, `oom`, `cpu`, `exit:N`, `garbage`, `oversize`, `truncate`:
//!   the host tells the worker ([`HostMessage::Fault`]), which aborts,
//!   really allocates past the cap, spins, exits with N, or breaks the
//!   frame stream, so the cap, the CPU limit or the host's own protocol
//!   check fires. `crash` is an abort (SIGABRT) of the worker alone, not a
//!   kill of its tree: the teardown must find and kill the orphans.
//! - Any of the above due at the start (no trigger, `@on:`, `@p:`) goes
//!   in the worker's `Invoke` instead, and the worker carries it out once
//!   confined, before its tool runs (`kill` and `hang` as a SIGKILL or
//!   SIGSTOP of itself, its whole tree then): from here, after its
//!   `Confined`, it would race a tool that ends within a millisecond.
//! - `delay`, `slow`, `cut`: the host shapes what it delivers to its
//!   caller; `cut:SIZE` stops the tool after SIZE bytes as the output cap
//!   does, and the call is `truncated`.
//!
//! Under `mcp wrap` the stream faults are not the host's: the worker's
//! relay applies them to the server's messages, as if the server had
//! (`mcp_stdio`'s `inject` argument), and the call gets only the process
//! faults.
//!
//! A fault may also be asked for while the call runs
//! ([`CallHandle::inject_now`]): it fires as soon as the supervise loop
//! takes it, applied as above, and is recorded as a time trigger at that
//! moment. A call without faults gets an injector only then.
//!
//! [`CallRequest::inject`]: crate::CallRequest::inject
//! [`CallHandle::inject_now`]: crate::CallHandle::inject_now
//! [`HostMessage::Fault`]: bulkhead_ipc::HostMessage::Fault

use std::time::Duration;

use bulkhead_faults::{Fault, FaultSpec, Injected, SeededRng, Target, Trigger};
use bulkhead_ipc::{HostMessage, WorkerFault, WorkerMessage};
use tokio_util::sync::CancellationToken;

use super::Supervisor;
use super::start::Running;
use crate::handle::Shared;
use crate::outcome::Outcome;
use crate::request::CallRequest;

/// The faults of one call, armed until they fire.
pub(super) struct Injector {
    armed: Vec<FaultSpec>,
    /// Faults due at the start that the worker carries out itself, sent
    /// in its `Invoke` ([`Injector::start_faults`]); recorded as fired
    /// when the worker reports it is confined, just before it obeys.
    preloaded: Vec<FaultSpec>,
    /// The first fault that fired, for the report.
    pub(super) fired: Option<Injected>,
    chunks: u64,
    bytes: u64,
    /// Newlines in the chunks so far.
    lines: u64,
    /// Held back before the next chunk (`delay`).
    pub(super) delay: Option<Duration>,
    /// Bytes a second (`slow`).
    pub(super) rate: Option<u64>,
    /// Bytes still to deliver before the cut (`cut`).
    pub(super) cut_left: Option<u64>,
}

/// What the supervisor does when a fault fires.
pub(super) enum Action {
    /// Signal the worker's tree.
    Signal(libc::c_int),
    /// Tell the worker.
    Tell(HostMessage),
    /// Nothing more: the injector shapes the stream from now on.
    Shape,
}

impl Injector {
    /// The injector of `req`; `Ok(None)` for a call with nothing to inject,
    /// `Err` names a fault that cannot apply to a tool call. Triggers
    /// decided once per call (`@on:TOOL`, `@p:`) are decided here: a fault
    /// whose tool does not match, or whose draw misses, is disarmed.
    pub(super) fn new(req: &CallRequest) -> Result<Option<Box<Self>>, String> {
        if req.inject.is_empty() {
            return Ok(None);
        }
        let mut rng = SeededRng::new(
            req.inject_seed
                .unwrap_or_else(bulkhead_faults::seed_from_clock),
        );
        let mut armed = Vec::with_capacity(req.inject.len());
        for spec in &req.inject {
            spec.check(Target::ToolCall).map_err(|e| e.to_string())?;
            let keep = match &spec.trigger {
                Trigger::On(tool) => *tool == req.tool,
                Trigger::Probability(p) => rng.chance(*p),
                _ => true,
            };
            if keep {
                armed.push(spec.clone());
            }
        }
        Ok(Some(Self::armed_with(armed)))
    }

    /// The earliest time trigger still armed, from the call's start.
    pub(super) fn next_timer(&self) -> Option<Duration> {
        self.armed
            .iter()
            .filter_map(|s| match s.trigger {
                Trigger::After(d) => Some(d),
                _ => None,
            })
            .min()
    }

    /// The faults due at the start that the worker can carry out itself,
    /// taken from the armed ones for its `Invoke`: it obeys them once
    /// confined, before its tool runs, so even a tool that ends within a
    /// millisecond meets them. (From the host, after the worker's
    /// `Confined`, a signal or a message would race such a tool.)
    pub(super) fn start_faults(&mut self) -> Vec<WorkerFault> {
        let mut faults = Vec::new();
        let mut i = 0;
        while i < self.armed.len() {
            let spec = &self.armed[i];
            let at_start = matches!(
                spec.trigger,
                Trigger::Start | Trigger::On(_) | Trigger::Probability(_)
            );
            match worker_fault(&spec.fault).filter(|_| at_start) {
                Some(fault) => {
                    faults.push(fault);
                    self.preloaded.push(self.armed.remove(i));
                }
                None => i += 1,
            }
        }
        faults
    }

    /// The worker is confined and its tool about to run: the faults with
    /// no trigger, or a trigger decided once per call, fire now (those
    /// the worker carries out itself are only recorded).
    pub(super) fn at_start(&mut self, elapsed: Duration) -> Vec<Action> {
        if self.fired.is_none()
            && let Some(first) = self.preloaded.first()
        {
            self.fired = Some(Injected::new(first, elapsed));
        }
        self.preloaded.clear();
        self.fire(elapsed, |t| {
            matches!(t, Trigger::Start | Trigger::On(_) | Trigger::Probability(_))
        })
    }

    /// `elapsed` since the start: the time triggers due fire.
    pub(super) fn at_time(&mut self, elapsed: Duration) -> Vec<Action> {
        self.fire(elapsed, |t| matches!(t, Trigger::After(d) if *d <= elapsed))
    }

    /// A chunk of `len` bytes came: the byte and message triggers it meets
    /// fire (before it is delivered).
    pub(super) fn on_chunk(&mut self, len: u64, elapsed: Duration) -> Vec<Action> {
        self.chunks += 1;
        self.bytes += len;
        let (n, bytes) = (self.chunks, self.bytes);
        self.fire(elapsed, |t| match t {
            Trigger::Bytes(b) => bytes >= *b,
            Trigger::Msg(m) => n == *m,
            // `checked_rem`: `is_multiple_of` is newer than the workspace's rust-version.
            Trigger::Every(e) => n.checked_rem(*e) == Some(0),
            _ => false,
        })
    }

    fn fire(&mut self, elapsed: Duration, due: impl Fn(&Trigger) -> bool) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut i = 0;
        while i < self.armed.len() {
            if !due(&self.armed[i].trigger) {
                i += 1;
                continue;
            }
            let spec = self.armed.remove(i);
            if self.fired.is_none() {
                self.fired = Some(Injected::new(&spec, elapsed));
            }
            actions.push(self.action(&spec.fault));
        }
        actions
    }

    fn action(&mut self, fault: &Fault) -> Action {
        let tell = |f| Action::Tell(HostMessage::Fault(f));
        match fault {
            Fault::Kill => Action::Signal(libc::SIGKILL),
            Fault::Hang => Action::Signal(libc::SIGSTOP),
            Fault::Crash => tell(WorkerFault::Crash),
            Fault::Oom => tell(WorkerFault::Oom),
            Fault::Cpu => tell(WorkerFault::Cpu),
            Fault::Exit(n) => tell(WorkerFault::Exit(*n)),
            Fault::Garbage => tell(WorkerFault::Garbage),
            Fault::Oversize => tell(WorkerFault::Oversize),
            Fault::Truncate => tell(WorkerFault::Truncate),
            Fault::Delay(d) => {
                self.delay = Some(*d);
                Action::Shape
            }
            Fault::Slow(rate) => {
                self.rate = Some(*rate);
                Action::Shape
            }
            Fault::Cut(n) => {
                self.cut_left = Some(*n);
                Action::Shape
            }
            // MCP faults are refused in `new`; one that got here (a fault
            // added later) shapes nothing rather than firing wrongly.
            _ => Action::Shape,
        }
    }

    /// How long to hold a chunk of `len` bytes before delivering it:
    /// a pending delay, then the rate.
    pub(super) fn hold(&mut self, len: u64) -> Duration {
        let delay = self.delay.take().unwrap_or_default();
        let paced = self
            .rate
            .map(|r| Duration::from_secs_f64(len as f64 / r as f64))
            .unwrap_or_default();
        delay + paced
    }

    /// Of a chunk of `len` bytes, how many may be delivered, and whether
    /// the cut comes with it.
    pub(super) fn cut(&mut self, len: u64) -> (u64, bool) {
        match self.cut_left.as_mut() {
            None => (len, false),
            Some(left) if len < *left => {
                *left -= len;
                (len, false)
            }
            Some(left) => (*left, true),
        }
    }
}

/// The fault as the worker carries it out at its start, where it can:
/// every process fault, and the ones that break its frame stream.
fn worker_fault(fault: &Fault) -> Option<WorkerFault> {
    Some(match fault {
        Fault::Kill => WorkerFault::Kill,
        Fault::Hang => WorkerFault::Stop,
        Fault::Crash => WorkerFault::Crash,
        Fault::Oom => WorkerFault::Oom,
        Fault::Cpu => WorkerFault::Cpu,
        Fault::Exit(n) => WorkerFault::Exit(*n),
        Fault::Garbage => WorkerFault::Garbage,
        Fault::Oversize => WorkerFault::Oversize,
        Fault::Truncate => WorkerFault::Truncate,
        _ => return None,
    })
}

impl Supervisor<'_> {
    /// A worker message of a call with faults: the faults it triggers
    /// fire, and a chunk is held back (`delay`, `slow`) or shortened
    /// (`cut`). True when the cut comes with this chunk: the call then
    /// ends as truncated once the chunk is delivered.
    pub(super) async fn inject_on(
        &mut self,
        msg: &mut WorkerMessage,
        run: &mut Running,
        cancel: &CancellationToken,
        deadline: tokio::time::Instant,
    ) -> bool {
        let elapsed = self.started.elapsed();
        let Some(inj) = self.inject.as_deref_mut() else {
            return false;
        };
        match msg {
            WorkerMessage::Confined(_) => {
                let actions = inj.at_start(elapsed);
                self.apply(run, actions).await;
                false
            }
            WorkerMessage::Chunk(chunk) => {
                let len = chunk.data.len() as u64;
                // Lines too, for a cut: a streamed call counts none itself.
                inj.lines += memchr::memchr_iter(b'\n', &chunk.data).count() as u64;
                let actions = inj.on_chunk(len, elapsed);
                let (produced, lines) = (inj.bytes, inj.lines);
                let hold = inj.hold(len);
                let (keep, cut) = inj.cut(len);
                self.apply(run, actions).await;
                if !hold.is_zero() {
                    let until = (tokio::time::Instant::now() + hold).min(deadline);
                    // Held no longer than the call may live; a cancel is
                    // taken by the loop right after.
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        () = cancel.cancelled() => {}
                    }
                }
                if keep < len {
                    chunk.data = chunk.data.slice(..keep as usize);
                }
                if cut {
                    // What the tool produced, cut part included, as the
                    // worker's own count would say at an output cap.
                    self.worker_bytes_seen = self.worker_bytes_seen.max(produced);
                    self.worker_lines_seen = self.worker_lines_seen.max(lines);
                }
                cut
            }
            _ => false,
        }
    }

    /// The time triggers due now fire.
    pub(super) async fn inject_timed(&mut self, run: &mut Running) {
        let elapsed = self.started.elapsed();
        if let Some(inj) = self.inject.as_deref_mut() {
            let actions = inj.at_time(elapsed);
            self.apply(run, actions).await;
        }
    }

    /// When the next time trigger is due, if one is armed.
    pub(super) fn inject_timer(&self) -> Option<tokio::time::Instant> {
        let after = self.inject.as_deref()?.next_timer()?;
        Some(tokio::time::Instant::from_std(self.started + after))
    }

    /// The outcome of a `cut`: truncated, as at an output cap of what was
    /// delivered.
    pub(super) fn cut_outcome(&self) -> Outcome {
        Outcome::Truncated {
            limit: self.output.bytes_seen() + self.streamed_bytes,
            bytes_seen: self.bytes_seen(),
        }
    }

    async fn apply(&mut self, run: &mut Running, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Signal(sig) => {
                    let Some(pid) = run.child.id() else { continue };
                    // A walk of the process table: off the async threads.
                    let walk =
                        tokio::task::spawn_blocking(move || crate::enforce::signal_tree(pid, sig));
                    if let Ok(0) | Err(_) = walk.await {
                        tracing::warn!(pid, sig, "injected signal reached no process");
                    }
                }
                Action::Tell(msg) => {
                    let _ = run.to_worker.send(msg);
                }
                Action::Shape => {}
            }
        }
    }
}

impl Injector {
    /// An injector with nothing armed: that of a call without faults that
    /// is asked for one while it runs.
    fn idle() -> Box<Self> {
        Self::armed_with(Vec::new())
    }

    fn armed_with(armed: Vec<FaultSpec>) -> Box<Self> {
        Box::new(Self {
            armed,
            preloaded: Vec::new(),
            fired: None,
            chunks: 0,
            bytes: 0,
            lines: 0,
            delay: None,
            rate: None,
            cut_left: None,
        })
    }

    /// Fires `fault` now, `elapsed` into the call: recorded as the time
    /// trigger of this moment (`oom@5123ms`), as if it had been armed so.
    fn fire_now(&mut self, fault: Fault, elapsed: Duration) -> Action {
        let spec = FaultSpec::new(fault).on(Trigger::After(elapsed));
        if self.fired.is_none() {
            self.fired = Some(Injected::new(&spec, elapsed));
        }
        self.action(&spec.fault)
    }
}

impl Supervisor<'_> {
    /// The faults the caller asked for while the call runs
    /// ([`crate::CallHandle::inject_now`]) fire now. The handle refused
    /// the MCP faults already.
    pub(super) async fn inject_asked(&mut self, run: &mut Running, shared: &Shared) {
        let asked = shared.take_asked();
        if asked.is_empty() {
            return;
        }
        let elapsed = self.started.elapsed();
        let inj = self.inject.get_or_insert_with(Injector::idle);
        let actions = asked
            .into_iter()
            .map(|fault| inj.fire_now(fault, elapsed))
            .collect();
        self.apply(run, actions).await;
    }
}
