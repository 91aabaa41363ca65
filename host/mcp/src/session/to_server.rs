//! Lines on their way to a server, bounded in bytes.
//!
//! What the session sends a server (its own `initialize`, the gateway's
//! requests, answers to the server's own requests) waits here until the
//! worker has credit for it, which it has only as fast as the server reads
//! its stdin. A server that does not read while it keeps asking (each
//! request answered here, its id echoed, whatever its size) would make that
//! wait grow without end, so it is bounded in bytes. Once something does
//! not fit, the server is *backlogged*: everything is refused until what
//! waits has been taken, so a small request does not slip into the room a
//! large answer left and then wait on a server that reads nothing. The
//! sender says so where a user sees it: the client's request fails naming
//! the backlog, and a server's request left unanswered is the server's
//! status's last error.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bulkhead_host::InputSender;
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::byte_budget::try_charge;

/// Bytes waiting for one server to read them: many times what a client's
/// burst of requests takes (each a few KiB but for large arguments), and
/// twice the default message cap, so one large request still fits whole
/// beside others. A line over the whole budget goes alone, once nothing
/// else waits.
pub(crate) const TO_SERVER_BYTES: usize = 8 << 20;

/// The session's end of one server's input.
#[derive(Clone)]
pub(super) struct ToServer {
    tx: mpsc::UnboundedSender<(Bytes, Charge)>,
    budget: Arc<Budget>,
}

struct Budget {
    bytes: Arc<Semaphore>,
    /// Set when a line did not fit; cleared when nothing waits any more.
    backlogged: AtomicBool,
}

/// One queued line's bytes of the budget, given back on drop: once
/// written to the worker, or dropped unwritten with the queue.
struct Charge {
    permit: Option<OwnedSemaphorePermit>,
    budget: Arc<Budget>,
}

impl Drop for Charge {
    fn drop(&mut self) {
        drop(self.permit.take());
        if self.budget.bytes.available_permits() == TO_SERVER_BYTES {
            self.budget.backlogged.store(false, Ordering::Release);
        }
    }
}

/// The server has not read what was sent to it before.
#[derive(Debug)]
pub(super) struct Backlogged;

impl Backlogged {
    /// Says so, for the server called `name`.
    pub(super) fn message(&self, name: &str) -> String {
        format!(
            "server \"{name}\" is not reading its input: up to {} MiB sent to it still wait, and nothing more is queued for it until it has read them",
            TO_SERVER_BYTES >> 20
        )
    }
}

impl ToServer {
    /// The queue to `input`, and the task that writes it there in order,
    /// each line as the worker gives credit for it.
    pub(super) fn start(input: InputSender) -> Self {
        let (to, mut rx) = Self::queue();
        tokio::spawn(async move {
            while let Some((line, charge)) = rx.recv().await {
                if input.send(line).await.is_err() {
                    return;
                }
                // In the worker's hands: its bytes are the worker's now.
                drop(charge);
            }
        });
        to
    }

    fn queue() -> (Self, mpsc::UnboundedReceiver<(Bytes, Charge)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let budget = Arc::new(Budget {
            bytes: Arc::new(Semaphore::new(TO_SERVER_BYTES)),
            backlogged: AtomicBool::new(false),
        });
        (Self { tx, budget }, rx)
    }

    /// Queues `msg` as one line, unless the server is backlogged or the
    /// line does not fit. A call that has ended takes nothing, and is not
    /// an error here: the session sees its end.
    pub(super) fn send(&self, msg: &Value) -> Result<(), Backlogged> {
        if self.budget.backlogged.load(Ordering::Acquire) {
            return Err(Backlogged);
        }
        let mut line = msg.to_string().into_bytes();
        line.push(b'\n');
        let Some(permit) = try_charge(&self.budget.bytes, TO_SERVER_BYTES, line.len()) else {
            self.budget.backlogged.store(true, Ordering::Release);
            return Err(Backlogged);
        };
        let charge = Charge {
            permit: Some(permit),
            budget: self.budget.clone(),
        };
        let _ = self.tx.send((Bytes::from(line), charge));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// While the server reads nothing, what waits stays within the budget;
    /// once a line does not fit, even a small one is refused until all
    /// that waits has been taken.
    #[test]
    fn a_server_that_does_not_read_is_backlogged_until_it_has_read_everything() {
        let (to, mut rx) = ToServer::queue();
        let big = json!({"id": "x".repeat(1 << 20)});
        let taken = (0..64).filter(|_| to.send(&big).is_ok()).count();
        assert_eq!(
            taken,
            TO_SERVER_BYTES / (1 << 20) - 1,
            "8 MiB, less the JSON around each"
        );
        assert!(to.send(&json!({"id": 1})).is_err(), "backlogged");
        // The server reads all but one: still backlogged.
        for _ in 1..taken {
            drop(rx.try_recv().expect("queued"));
        }
        assert!(to.send(&json!({"id": 2})).is_err(), "one still waits");
        drop(rx.try_recv().expect("the last"));
        assert!(rx.try_recv().is_err(), "nothing refused was queued");
        // All read: taken again, and a line over the whole budget goes
        // alone.
        assert!(
            to.send(&json!({"id": "x".repeat(2 * TO_SERVER_BYTES)}))
                .is_ok()
        );
        assert!(to.send(&json!({"id": 3})).is_err());
        drop(rx.try_recv().expect("the big one"));
        assert!(to.send(&json!({"id": 4})).is_ok());
        assert!(
            Backlogged
                .message("s")
                .contains("server \"s\" is not reading its input")
        );
    }
}
