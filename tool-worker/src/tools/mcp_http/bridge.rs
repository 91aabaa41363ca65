//! What passes between the relay (the tool's thread, which owns the sink
//! and the client's input) and the HTTP thread (a tokio runtime running
//! one task per POST).
//!
//! Commands go down an unbounded channel: they are bounded by the input
//! credit the relay grants, and by its cap on exchanges in flight. Events
//! come up a *bounded* channel, so a server sending faster than the client
//! reads makes its task wait in `send`, stop reading the body, and the TCP
//! window close: back-pressure reaches the server. Each event also writes a
//! byte to a wake pipe, which the relay `poll`s next to the input's.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use tokio::sync::mpsc;

/// Events queued for the relay. Each may be a whole message (up to the
/// message cap), so this many bound the queue's memory: 4 × 4 MiB at the
/// default cap. More would only buffer what the client has not read.
pub(super) const EVENT_QUEUE: usize = 4;

/// From the relay to the HTTP thread.
#[derive(Debug)]
pub(super) enum Command {
    /// POST one client message. `id` is its JSON-RPC id if it is a request
    /// (then the exchange fails that request if it cannot answer it).
    Post {
        seq: u64,
        body: Vec<u8>,
        id: Option<String>,
    },
    /// Drop the exchange `seq` (a timed-out or cancelled request).
    Abort { seq: u64 },
    /// The protocol version `initialize` settled on, sent as
    /// `MCP-Protocol-Version` from now on.
    ProtocolVersion(String),
}

/// From the HTTP thread to the relay.
#[derive(Debug)]
pub(super) enum Event {
    /// One message from the server, at most the cap, no newline in it.
    Message(Vec<u8>),
    /// The exchange could not answer request `id`; bulkhead answers it.
    /// `oversize`: because the answer passed the message cap.
    Failed {
        id: String,
        message: String,
        oversize: bool,
    },
    /// Something for the session's stderr (a notification the server
    /// refused, a lost stream).
    Log(String),
    /// The exchange `seq` is over.
    Done { seq: u64 },
}

/// The HTTP thread's end: sends events and wakes the relay.
#[derive(Clone)]
pub(super) struct Outbox {
    tx: mpsc::Sender<Event>,
    wake: Arc<OwnedFd>,
}

impl Outbox {
    /// Waits for room (back-pressure). Returns false once the relay is
    /// gone, so the exchange can stop.
    pub(super) async fn send(&self, event: Event) -> bool {
        if self.tx.send(event).await.is_err() {
            return false;
        }
        // A full wake pipe already says "look"; EAGAIN is fine.
        let _ = nix::unistd::write(self.wake.as_fd(), &[1]);
        true
    }
}

/// The relay's end.
pub(super) struct Inbox {
    rx: mpsc::Receiver<Event>,
    wake: OwnedFd,
}

impl Inbox {
    pub(super) fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// Empties the wake pipe, then takes every queued event. In that order:
    /// an event sent after the queue was emptied leaves a byte to wake on.
    pub(super) fn take(&mut self) -> Vec<Event> {
        let mut buf = [0u8; 64];
        while matches!(nix::unistd::read(&self.wake, &mut buf), Ok(n) if n > 0) {}
        let mut events = Vec::new();
        while let Ok(e) = self.rx.try_recv() {
            events.push(e);
        }
        events
    }
}

pub(super) fn events() -> std::io::Result<(Outbox, Inbox)> {
    // The portable close-on-exec pipe (macOS has no pipe2), then
    // non-blocking ends: the relay polls the read end, and a full pipe
    // already holds a wake-up, so a writer never has to wait.
    let (rx_fd, tx_fd) = bulkhead_ipc::transport::cloexec_pipe()?;
    crate::input::set_nonblocking(&rx_fd)?;
    crate::input::set_nonblocking(&tx_fd)?;
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    Ok((
        Outbox {
            tx,
            wake: Arc::new(tx_fd),
        },
        Inbox { rx, wake: rx_fd },
    ))
}

pub(super) type Commands = mpsc::UnboundedSender<Command>;
