//! [`CallHandle`]: the caller's end of one call: its events, its live
//! figures, its input, its worker's pid, faults for it while it runs, and
//! cancel-on-drop.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bulkhead_faults::{Fault, FaultSpec, NotApplicable, Target};
use bytes::Bytes;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::report::{CallEvent, CallReport, CallState, Enforcement, LiveStatus};

/// Faults asked for with [`CallHandle::inject_now`] that the supervisor
/// has not taken yet. It takes each as soon as it is asked for, once the
/// call's worker runs; until then (a call queued for a worker slot) they
/// wait. Four is more than a person pressing keys asks for before a
/// worker starts, and keeps a caller in a loop from growing the queue.
pub const MAX_PENDING_FAULTS: usize = 4;

/// Input for the tool, in the order the caller sent it.
#[derive(Debug)]
pub(crate) enum InputMsg {
    Data(Bytes),
    Close,
}

/// What a call's handle and its supervisor share without a message: how
/// far the caller has taken a streamed call's output, and the worker's pid.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Output events the caller has taken. The supervisor grants the
    /// worker credit only for chunks the caller has taken, so a caller that
    /// stops reading stops the worker, and nothing queues up in between
    /// ([`crate::CallRequest::stream_output`]).
    pub(crate) delivered: AtomicU64,
    /// Woken when the caller takes an output event.
    pub(crate) notify: Notify,
    /// The worker's pid while it may be signalled; 0 before and after (no
    /// child of ours has pid 0). An atomic rather than a channel: the
    /// supervisor stores it twice per call, and only a caller that asks
    /// ever reads it.
    worker_pid: AtomicU32,
    /// Faults asked for while the call runs, oldest first, at most
    /// [`MAX_PENDING_FAULTS`].
    asked: Mutex<Vec<Fault>>,
    /// Woken when a fault is asked for.
    pub(crate) asked_notify: Notify,
}

impl Shared {
    /// Publishes the pid of the worker, which has just been spawned and
    /// put in its cage.
    pub(crate) fn publish_pid(&self, pid: u32) {
        self.worker_pid.store(pid, Ordering::Relaxed);
    }

    /// Withdraws the pid. Called before the worker is reaped, after which
    /// the pid may name another process.
    pub(crate) fn withdraw_pid(&self) {
        self.worker_pid.store(0, Ordering::Relaxed);
    }

    /// The faults asked for since the last take, oldest first.
    pub(crate) fn take_asked(&self) -> Vec<Fault> {
        // A poisoned lock only means a panic elsewhere held it; the list
        // itself is always whole.
        std::mem::take(&mut *self.asked.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A running call. Dropping it cancels the call and kills its worker.
pub struct CallHandle {
    pub(crate) call_id: u64,
    pub(crate) events: mpsc::UnboundedReceiver<CallEvent>,
    pub(crate) live: watch::Receiver<LiveStatus>,
    pub(crate) enforcement: Enforcement,
    pub(crate) finished: bool,
    pub(crate) cancel: CancellationToken,
    pub(crate) input: mpsc::Sender<InputMsg>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) _guard: DropGuard,
}

impl CallHandle {
    /// The call's id: unique in this process, and part of its cgroups'
    /// names. The report carries it too ([`CallReport::call_id`]).
    pub fn id(&self) -> u64 {
        self.call_id
    }

    /// The pid of the call's worker process, for tests and diagnostics
    /// that look at it from outside (`/proc`, a signal).
    ///
    /// `None` while the call waits for a worker slot and until its worker
    /// has been spawned and put in its cage, and for good if that never
    /// happens (a call that fails or is cancelled first). `Some` from then
    /// on, so at the latest when [`CallEvent::Started`] arrives, until the
    /// end of the call is decided (the worker's last report, a limit, a
    /// cancel, the worker's death); `None` again from then on. The pid is
    /// withdrawn before the worker is reaped, but a pid read just before
    /// that can outlive it: signal it only while the call cannot end on
    /// its own, or accept that the pid may by then name another process.
    ///
    /// A worker killed from outside ends the call as killed by that signal
    /// ([`KillReason::Signal`](crate::KillReason::Signal)), and the rest of
    /// the call's processes are killed with it. To end a call on purpose,
    /// use [`CallHandle::cancel`].
    pub fn worker_pid(&self) -> Option<u32> {
        match self.shared.worker_pid.load(Ordering::Relaxed) {
            0 => None,
            pid => Some(pid),
        }
    }

    /// The next event; `Finished` comes exactly once, last, and then
    /// `None`. The queue holds at most the output the host keeps (the cap),
    /// plus one report.
    pub async fn next_event(&mut self) -> Option<CallEvent> {
        if self.finished {
            return None;
        }
        let event = match self.events.recv().await {
            Some(e) => e,
            // The supervisor always sends Finished; if it died without,
            // the caller still gets exactly one outcome.
            None => CallEvent::Finished(Box::new(CallReport::lost(
                self.call_id,
                self.enforcement.clone(),
            ))),
        };
        self.finished = matches!(event, CallEvent::Finished(_));
        if matches!(event, CallEvent::Output { .. }) {
            self.shared.delivered.fetch_add(1, Ordering::Relaxed);
            self.shared.notify.notify_one();
        }
        Some(event)
    }

    /// Latest live figures (memory, CPU, bytes, progress).
    pub fn live(&self) -> watch::Receiver<LiveStatus> {
        self.live.clone()
    }

    /// The tool's input (an MCP server's stdin), for another task to feed.
    pub fn input(&self) -> InputSender {
        InputSender(self.input.clone())
    }

    /// Kills the call. Its report says `killed: cancelled`.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Injects `fault` into the call while it runs, as
    /// [`CallRequest::inject`](crate::CallRequest::inject) does from the
    /// start: `Fault::Kill` SIGKILLs the worker's tree (the call ends
    /// `killed: signal(9)`), `Fault::Oom` makes the worker really allocate
    /// past its memory cap (the cage's own mechanism ends it `killed:
    /// memory`), and so on for every process and stream fault. It fires as
    /// soon as the supervisor takes it: at once for a running worker; for
    /// a call still queued for a worker slot, once its worker is in its
    /// cage. The report's [`CallReport::injected`] records it, as the
    /// trigger `@MS` of the moment it fired, unless another fault of the
    /// call fired first.
    ///
    /// `Ok` means the fault was handed to the call's supervisor. A call
    /// that reaches its end meanwhile ends as it would have, and its report
    /// does not name this fault.
    ///
    /// # Errors
    ///
    /// [`InjectNowError::NotApplicable`] for an MCP fault (a tool call has
    /// no JSON-RPC requests), [`InjectNowError::Ended`] once the call has
    /// ended, [`InjectNowError::Full`] when [`MAX_PENDING_FAULTS`] faults
    /// still wait for the worker.
    pub fn inject_now(&self, fault: Fault) -> Result<(), InjectNowError> {
        FaultSpec::new(fault.clone()).check(Target::ToolCall)?;
        if self.finished || self.live.borrow().state == CallState::Ended {
            return Err(InjectNowError::Ended);
        }
        {
            let mut asked = self
                .shared
                .asked
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if asked.len() >= MAX_PENDING_FAULTS {
                return Err(InjectNowError::Full);
            }
            asked.push(fault);
        }
        // A permit is kept when the supervisor is not waiting yet.
        self.shared.asked_notify.notify_one();
        Ok(())
    }

    /// Waits for the report, skipping live output.
    pub async fn wait(mut self) -> CallReport {
        loop {
            if let Some(CallEvent::Finished(report)) = self.next_event().await {
                return *report;
            }
        }
    }
}

/// Feeds a call's input. Sending waits while the tool has not taken what
/// was sent before: the pace is the tool's, and nothing queues in the host.
#[derive(Debug, Clone)]
pub struct InputSender(mpsc::Sender<InputMsg>);

impl InputSender {
    /// Sends bytes, in pieces of at most one chunk. Fails once the call
    /// has ended.
    pub async fn send(&self, mut data: Bytes) -> Result<(), InputClosed> {
        while !data.is_empty() {
            let piece = data.split_to(data.len().min(bulkhead_ipc::MAX_CHUNK_BYTES));
            self.0
                .send(InputMsg::Data(piece))
                .await
                .map_err(|_| InputClosed)?;
        }
        Ok(())
    }

    /// Ends the input (EOF on the server's stdin).
    pub async fn close(&self) -> Result<(), InputClosed> {
        self.0.send(InputMsg::Close).await.map_err(|_| InputClosed)
    }
}

/// Why [`CallHandle::inject_now`] did not take a fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InjectNowError {
    /// The fault cannot apply to a tool call; the reason says why.
    #[error(transparent)]
    NotApplicable(#[from] NotApplicable),
    /// The call has ended: there is no worker to inject into.
    #[error("the call has ended; there is no worker to inject a fault into")]
    Ended,
    /// Too many faults already wait for the call's worker.
    #[error("{MAX_PENDING_FAULTS} faults already wait for this call's worker to start")]
    Full,
}

/// The call has ended; it takes no more input.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the call has ended and takes no more input")]
pub struct InputClosed;
