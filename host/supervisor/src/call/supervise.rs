//! The supervision of a running call: the loop that waits on the worker,
//! the clock, the cage's samples, the caller's cancel and input, until the
//! call's end is known.

use bulkhead_ipc::{HostMessage, WorkerMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::start::Running;
use super::stream::MAX_INPUT_CREDIT;
use super::{CallIo, Supervisor};
use crate::handle::InputMsg;
use crate::outcome::{KillReason, Outcome};
use crate::report::CallEvent;

/// What one worker message means for the call.
enum Step {
    Continue,
    /// The worker reported the end (`Done` or `Error`).
    Ended,
    /// The message breaks the call's rules: kill it with this outcome.
    Kill(Outcome),
}

/// Runs the call until its end is known: relays the worker's messages,
/// samples the cage every `Enforcer::sample_interval`, keeps the output
/// credit topped up, and forwards the caller's input against the worker's
/// input credit. Returns the host's verdict: `Some` when the host ends the
/// call (timeout, memory, CPU, an output overrun, a protocol violation, a
/// version mismatch, a cancel), `None` when the worker does (its last
/// report, or EOF because it died); teardown then decides from what the
/// worker said and how it exited. Nothing is killed here.
pub(super) async fn supervise(
    sup: &mut Supervisor<'_>,
    run: &mut Running,
    events: &mpsc::UnboundedSender<CallEvent>,
    cancel: &CancellationToken,
    io: &mut CallIo,
) -> Option<Outcome> {
    let mut input_open = true;
    let deadline = tokio::time::Instant::from_std(sup.started + sup.limits.timeout);
    // The first sample one interval in: at the start there is only a
    // worker that has just been exec'd (and in watchdog mode a sample is a
    // process-table walk). A shorter call is sampled once, at its end.
    let period = sup.inner.enforcer.sample_interval();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let cpu_limit_ms = sup.limits.cpu.map(|d| d.as_millis() as u64);

    loop {
        // Only a call with a fault on a timer has one; the arm below is
        // disabled (never polled) for every other call.
        let fault_at = sup.inject_timer();
        tokio::select! {
            frame = run.frames.recv() => match frame {
                Some(Ok(Some(mut msg))) => {
                    if let Err(v) = sup.validator.accept(&msg) {
                        break Some(Outcome::Failed { error: format!("protocol violation by the worker: {v}") });
                    }
                    let cut = sup.inject.is_some() && sup.inject_on(&mut msg, run, cancel, deadline).await;
                    match sup.handle(msg, events) {
                        Step::Continue => {}
                        Step::Ended => break None,
                        Step::Kill(outcome) => break Some(outcome),
                    }
                    if cut {
                        break Some(sup.cut_outcome());
                    }
                    sup.top_up_credit(&run.granted, &io.shared);
                }
                Some(Err(e)) => break Some(Outcome::Failed { error: format!("protocol violation by the worker: {e}") }),
                // EOF before a final report: the worker died or gave up.
                Some(Ok(None)) | None => break None,
            },
            _ = tokio::time::sleep_until(deadline) => break Some(Outcome::Killed { reason: KillReason::Timeout }),
            _ = ticks.tick() => {
                let s = run.cage.sample();
                sup.observe(s.rss_bytes, s.peak_rss_bytes, s.cpu_ms);
                if s.memory_exceeded {
                    break Some(Outcome::Killed { reason: KillReason::Memory });
                }
                if cpu_limit_ms.is_some_and(|lim| s.cpu_ms > lim) {
                    break Some(Outcome::Killed { reason: KillReason::Cpu });
                }
            }
            _ = cancel.cancelled() => break Some(Outcome::Killed { reason: KillReason::Cancelled }),
            // Faults the caller asks for while the call runs (`inject_now`).
            () = io.shared.asked_notify.notified() => sup.inject_asked(run, &io.shared).await,
            () = sleep_until_some(fault_at), if fault_at.is_some() => sup.inject_timed(run).await,
            // A streamed call's caller took output: credit may follow.
            _ = io.shared.notify.notified(), if sup.stream => sup.top_up_credit(&run.granted, &io.shared),
            // Input goes out only against the worker's input credit; the
            // unbounded writer queue thus holds at most that window.
            msg = io.input.recv(), if input_open && sup.input_credit > 0 => match msg {
                Some(InputMsg::Data(data)) => {
                    sup.input_credit -= 1;
                    let _ = run.to_worker.send(HostMessage::Input { data: data.to_vec() });
                }
                Some(InputMsg::Close) | None => {
                    input_open = false;
                    let _ = run.to_worker.send(HostMessage::CloseInput);
                }
            },
        }
    }
}

impl Supervisor<'_> {
    /// Takes one message of the worker, already checked by the validator.
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
}

/// Sleeps until `at`; never without one (its arm is disabled then).
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
