//! One task per tool call: it drives the host's `CallHandle`, keeps a
//! bounded capture and preview, and publishes the latest figures in a
//! shared slot. The UI is told that something changed through a bounded
//! channel with `try_send`: when the channel is full the wake is dropped,
//! because the slot already holds the newest state and the wake that is
//! queued will make the UI read it (latest figures win; nothing blocks).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead_host::{
    CallEvent, CallReport, CallRequest, CapturedOutput, Fault, LiveStatus, Outcome,
};
use bulkhead_ipc::ToolExit;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::card::CardOutcome;
use super::events::UiMsg;
use super::pager::{PagerSource, PiecesSource};
use super::store_io::Recorder;

/// Output the UI keeps per call for its pager when the store does not hold
/// it: the first 960 KiB and the last 64 KiB. The worker's own cap may be
/// far larger (a flood test streams gigabytes); this keeps host memory per
/// call at about 1 MiB whatever the policy allows.
const UI_CAPTURE_BYTES: u64 = 1 << 20;
const UI_CAPTURE_TAIL_BYTES: u64 = 64 << 10;

/// Bytes of the most recent output kept for the card's preview lines.
const PREVIEW_BYTES: usize = 1024;

/// Faults a call's task may have yet to hand to the host (the kill and
/// memory keys): the host's own queue holds as many
/// ([`bulkhead_host::MAX_PENDING_FAULTS`]), and a key pressed beyond that
/// is refused with a note rather than queued.
const FAULT_QUEUE: usize = bulkhead_host::MAX_PENDING_FAULTS;

/// Wakes from one call are at most one per frame (~60 fps): a worker
/// sending 16k chunks a second must not send 16k wakes.
const WAKE_INTERVAL: Duration = Duration::from_millis(16);

/// The end of a call, as the card needs it.
pub struct Finished {
    pub outcome: CardOutcome,
    pub peak_rss: u64,
    pub cpu_ms: u64,
    pub wall: Duration,
    pub bytes_seen: u64,
    pub kept: u64,
    pub source: Option<Arc<dyn PagerSource>>,
    /// The source is the in-memory capture (not the store): the UI lets
    /// go of old ones.
    pub source_in_memory: bool,
    /// The injected fault that fired (`injected kill @200ms at 201 ms`).
    pub injected: Option<String>,
}

/// The newest state of a call; the call task writes it, the UI reads it.
#[derive(Default)]
pub struct Snapshot {
    pub live: LiveStatus,
    pub preview: Vec<u8>,
    pub finished: Option<Finished>,
}

/// The UI's link to a running call.
pub struct CallSlot {
    pub call_id: u64,
    pub snapshot: Mutex<Snapshot>,
    pub cancel: CancellationToken,
    /// Faults for the running call, handed to its host handle by its task.
    pub faults: mpsc::Sender<Fault>,
}

impl CallSlot {
    /// Asks the call to stop; it ends as `killed: cancelled`.
    pub fn kill(&self) {
        self.cancel.cancel();
    }

    /// Injects `fault` into the running call (`CallHandle::inject_now`):
    /// `kill` SIGKILLs its worker's tree, `oom` makes the worker allocate
    /// past its memory cap. Never waits.
    pub fn inject(&self, fault: Fault) -> Result<(), String> {
        self.faults.try_send(fault).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                "faults sent to this call are still on their way; try again".to_owned()
            }
            mpsc::error::TrySendError::Closed(_) => "the call has ended".to_owned(),
        })
    }
}

/// Starts a call and its task. The request should be in stream mode: the
/// task keeps its own bounded capture.
pub fn start(ctx: &super::Ctx, req: CallRequest, recorder: Option<Recorder>) -> Arc<CallSlot> {
    // The call's supervisor and its task run on the calls runtime.
    let _on_calls = ctx.calls.as_ref().map(tokio::runtime::Handle::enter);
    let wake = ctx.wake.clone();
    let handle = ctx.host.call(req);
    let (faults, faults_rx) = mpsc::channel(FAULT_QUEUE);
    let slot = Arc::new(CallSlot {
        call_id: handle.id(),
        snapshot: Mutex::new(Snapshot::default()),
        cancel: CancellationToken::new(),
        faults,
    });
    tokio::spawn(drive(handle, slot.clone(), wake, recorder, faults_rx));
    slot
}

async fn drive(
    mut handle: bulkhead_host::CallHandle,
    slot: Arc<CallSlot>,
    wake: mpsc::Sender<UiMsg>,
    mut recorder: Option<Recorder>,
    mut faults: mpsc::Receiver<Fault>,
) {
    let mut live = handle.live();
    let mut capture = CapturedOutput::new(UI_CAPTURE_BYTES, UI_CAPTURE_TAIL_BYTES);
    let mut last_wake = Instant::now() - WAKE_INTERVAL;
    let mut cancelled = false;
    let mut live_open = true;
    let id = slot.call_id;
    let notify = |last: &mut Instant, force: bool| {
        if force || last.elapsed() >= WAKE_INTERVAL {
            *last = Instant::now();
            // Full: a wake is already queued, and the slot has the news.
            let _ = wake.try_send(UiMsg::Call(id));
        }
    };
    loop {
        tokio::select! {
            event = handle.next_event() => match event {
                Some(CallEvent::Output { stream, data }) => {
                    if let Some(r) = recorder.as_mut() {
                        // Waits while the store is behind: the worker
                        // then waits for credit, nothing piles up here.
                        r.chunk(stream, data.clone()).await;
                    }
                    push_preview(&slot, &data);
                    capture.push(stream, data);
                    notify(&mut last_wake, false);
                }
                Some(CallEvent::Started(_)) => {}
                Some(CallEvent::Finished(report)) => {
                    let stored = match recorder.as_mut() {
                        Some(r) => r.finish(&report).await,
                        None => None,
                    };
                    let in_memory = stored.is_none();
                    let source = stored.or_else(|| capture_source(&capture, &report));
                    let mut finished = finish(&report, &capture, source);
                    finished.source_in_memory = in_memory;
                    if let Ok(mut s) = slot.snapshot.lock() {
                        s.live.bytes_seen = report.usage.bytes_produced;
                        s.finished = Some(finished);
                    }
                    notify(&mut last_wake, true);
                    return;
                }
                // `next_event` yields `Finished` before it ends; should it
                // not, the result is marked interrupted, not left running.
                None => {
                    if let Some(r) = recorder.take() {
                        r.abandon().await;
                    }
                    return;
                }
            },
            changed = live.changed(), if live_open => {
                if changed.is_ok() {
                    let figures = live.borrow_and_update().clone();
                    if let Ok(mut s) = slot.snapshot.lock() {
                        s.live = figures;
                    }
                    notify(&mut last_wake, false);
                } else {
                    // The sender is gone; the report follows as an event.
                    live_open = false;
                }
            }
            () = slot.cancel.cancelled(), if !cancelled => {
                cancelled = true;
                handle.cancel();
            }
            Some(fault) = faults.recv() => {
                let name = fault.name();
                if let Err(e) = handle.inject_now(fault) {
                    // Rare (the call ended as the key was pressed); a full
                    // channel loses the note, never a key.
                    let _ = wake.try_send(UiMsg::Note(format!("cannot inject `{name}`: {e}")));
                }
            }
        }
    }
}

fn push_preview(slot: &CallSlot, data: &[u8]) {
    let Ok(mut s) = slot.snapshot.lock() else {
        return;
    };
    let tail = &data[data.len().saturating_sub(PREVIEW_BYTES)..];
    s.preview.extend_from_slice(tail);
    let excess = s.preview.len().saturating_sub(PREVIEW_BYTES);
    if excess > 0 || tail.len() < data.len() {
        // Cut: the preview starts on a character, not in the rest of one.
        let start = bulkhead_ipc::utf8::suffix_start(&s.preview, excess);
        s.preview.drain(..start);
    }
}

/// The pager's view of the bounded capture: head, a cut marker, tail.
fn capture_source(capture: &CapturedOutput, report: &CallReport) -> Option<Arc<dyn PagerSource>> {
    if capture.kept() == 0 {
        return None;
    }
    let mut pieces: Vec<Bytes> = capture.head().iter().map(|s| s.data.clone()).collect();
    let cut = report.usage.bytes_produced.saturating_sub(capture.kept());
    if cut > 0 {
        pieces.push(Bytes::from(format!(
            "\n[… {cut} bytes not shown: the pager keeps {} of the {} bytes produced …]\n",
            capture.kept(),
            report.usage.bytes_produced
        )));
    }
    pieces.extend(capture.tail().map(|s| s.data.clone()));
    Some(Arc::new(PiecesSource::new(pieces)))
}

fn finish(
    report: &CallReport,
    capture: &CapturedOutput,
    source: Option<Arc<dyn PagerSource>>,
) -> Finished {
    let outcome = match &report.outcome {
        Outcome::Completed => CardOutcome::Completed {
            exit: match report.exit {
                Some(ToolExit::Code(c)) => Some(format!("exit {c}")),
                Some(ToolExit::Signal(s)) => Some(format!("signal {s}")),
                _ => None,
            },
        },
        Outcome::Truncated { bytes_seen, .. } => CardOutcome::Truncated {
            kept: report.delivered(),
            seen: *bytes_seen,
            lines: report.lines_seen,
        },
        Outcome::Killed { reason } => CardOutcome::Killed { reason: *reason },
        Outcome::Failed { error } => CardOutcome::Failed {
            error: error.clone(),
        },
    };
    Finished {
        outcome,
        peak_rss: report.usage.peak_rss_bytes,
        cpu_ms: report.usage.cpu_ms,
        wall: Duration::from_millis(report.usage.wall_ms),
        bytes_seen: report.usage.bytes_produced,
        kept: capture.kept(),
        source,
        source_in_memory: true,
        injected: report.injected.as_ref().map(ToString::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_preview_starts_on_two_three_and_four_byte_characters() {
        for ch in ['é', '€', '🦀'] {
            let text: String = std::iter::repeat_n(ch, 2 * PREVIEW_BYTES).collect();
            for piece in [1, 7, 100, PREVIEW_BYTES + 1, text.len()] {
                let slot = CallSlot {
                    call_id: 1,
                    snapshot: Mutex::new(Snapshot::default()),
                    cancel: CancellationToken::new(),
                    faults: mpsc::channel(1).0,
                };
                for chunk in text.as_bytes().chunks(piece) {
                    push_preview(&slot, chunk);
                }
                let preview = slot
                    .snapshot
                    .lock()
                    .map(|s| s.preview.clone())
                    .unwrap_or_default();
                let shown = String::from_utf8_lossy(&preview);
                assert!(!shown.contains('\u{fffd}'), "{ch} in pieces of {piece}");
                assert!(preview.len() + 3 >= PREVIEW_BYTES, "{}", preview.len());
            }
        }
    }
}
