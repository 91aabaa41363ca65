//! [`CallHandle`]: the caller's end of one call: its events, its live
//! figures, its input, and cancel-on-drop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::report::{CallEvent, CallReport, Enforcement, LiveStatus};

/// Input for the tool, in the order the caller sent it.
#[derive(Debug)]
pub(crate) enum InputMsg {
    Data(Bytes),
    Close,
}

/// How far the caller has taken a streamed call's output. The supervisor
/// grants the worker credit only for chunks the caller has taken, so a
/// caller that stops reading stops the worker, and nothing queues up in
/// between ([`crate::CallRequest::stream_output`]).
#[derive(Debug, Default)]
pub(crate) struct Pacing {
    pub delivered: AtomicU64,
    pub notify: Notify,
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
    pub(crate) pacing: Arc<Pacing>,
    pub(crate) _guard: DropGuard,
}

impl CallHandle {
    pub fn id(&self) -> u64 {
        self.call_id
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
            self.pacing.delivered.fetch_add(1, Ordering::Relaxed);
            self.pacing.notify.notify_one();
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

/// The call has ended; it takes no more input.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the call has ended and takes no more input")]
pub struct InputClosed;
