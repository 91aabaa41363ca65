//! What stream mode adds to a call's supervisor: credit paced by the
//! caller, and answers for the JSON-RPC requests a dead worker left open.

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::{CREDIT_WINDOW, Supervisor};
use std::sync::Arc;

use crate::handle::{InputMsg, Shared};
use crate::outcome::Outcome;
use crate::report::CallEvent;

/// The caller's input, and what the call shares with the caller's handle
/// (its pace through a streamed call's output, the worker's pid).
pub(crate) struct CallIo {
    pub(crate) input: mpsc::Receiver<InputMsg>,
    pub(crate) shared: Arc<Shared>,
}

/// Most input chunks a worker may have granted at once. A worker grants a
/// window (16) and tops it up as it consumes; a larger sum is a broken or
/// lying worker, and is clamped rather than trusted.
pub(super) const MAX_INPUT_CREDIT: u64 = 1024;

impl Supervisor<'_> {
    /// Keeps the worker's output credit at the window. In stream mode,
    /// chunks the caller has not taken yet count against it, so a caller
    /// that stops reading stops the worker.
    pub(super) fn top_up_credit(&mut self, granted: &watch::Sender<u64>, shared: &Shared) {
        let undelivered = if self.stream {
            self.streamed_chunks
                .saturating_sub(shared.delivered.load(std::sync::atomic::Ordering::Relaxed))
        } else {
            0
        };
        let in_flight = self.validator.credit() + undelivered;
        if in_flight < CREDIT_WINDOW / 2 {
            let more = CREDIT_WINDOW - in_flight;
            self.validator.grant(more as u32);
            granted.send_modify(|g| *g += more);
        }
    }

    /// A streamed call that ends with client requests still open (the
    /// server's worker was killed, or crashed) answers each with an error
    /// that says why, so the client is not left waiting.
    pub(super) fn answer_open_requests(
        &self,
        outcome: &Outcome,
        events: &mpsc::UnboundedSender<CallEvent>,
    ) {
        if !self.stream {
            return;
        }
        let why = match outcome {
            Outcome::Killed { reason } => format!("killed: {reason}"),
            Outcome::Failed { error } => format!("failed: {error}"),
            _ => "ended (killed from outside)".to_owned(),
        };
        for id in self.validator.open_requests() {
            let message = serde_json::to_string(&format!(
                "bulkhead: the MCP server was {why} before answering"
            ))
            .unwrap_or_else(|_| "\"bulkhead: the server's worker ended\"".into());
            let line = format!(
                r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32603,"message":{message}}}}}"#
            ) + "\n";
            let _ = events.send(CallEvent::Output {
                stream: bulkhead_ipc::StreamId::Stdout,
                data: Bytes::from(line),
            });
        }
    }
}
