//! A server's notifications on their way to a client, bounded in bytes:
//! the one queue both gateways (`mcp serve` over stdio, and over HTTP)
//! put between a server session and their clients.
//!
//! A server session hands its notifications out through a `broadcast`
//! channel, which never makes the session wait: whatever its subscriber
//! has not taken yet stays in the channel, up to a count of messages of
//! up to the message cap each. Delivering one notification may wait on a
//! client that does not read (a stdio client's full pipe; over HTTP, up
//! to `SLOW_CLIENT_TIMEOUT`); if that wait were spent with the channel
//! unread, or with what it gave queued without a bound, the host would
//! hold the server's whole output meanwhile. So each server's
//! notifications are taken from the channel at once, serialized (a parsed
//! message can take several times its bytes), and queued under
//! [`PENDING_BYTES`]; each queued one holds its bytes of the budget until
//! it has been delivered. What does not fit while a client does not read
//! is dropped, as the channel itself drops what its subscriber lags behind
//! on, and the count is said on stderr.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, broadcast, mpsc};

use crate::byte_budget::try_charge;
use crate::session::ServerSession;

/// Bytes of one server's notifications queued for routing: two messages
/// at the default 4 MiB cap, so a burst goes through whole while the hub
/// delivers, and a server whose notifications wait on a client that does
/// not read (for up to `SLOW_CLIENT_TIMEOUT`) costs no more than this.
pub(crate) const PENDING_BYTES: usize = 8 << 20;

/// Notifications queued for routing, whatever their size: the count the
/// session's channel holds, so a burst of small ones (progress, short log
/// lines) is not dropped here either.
pub(crate) const PENDING_NOTES: usize = 256;

/// How long a call's answer waits for the notifications its server sent
/// before it to be routed: they are in passing through two tasks, which
/// take microseconds; a hub stuck on another client's full stream is not
/// waited out for long, and the answer goes without what is still queued.
pub(crate) const FLUSH_BOUND: Duration = Duration::from_secs(2);

/// How far one server's notifications have got: counted as each is routed
/// (or dropped), so a call's answer can wait for the ones sent before it.
pub(crate) struct Routed {
    count: AtomicU64,
    moved: Notify,
}

impl Routed {
    pub(crate) fn add(&self, n: u64) {
        self.count.fetch_add(n, Ordering::Release);
        self.moved.notify_waiters();
    }

    /// Waits, at most [`FLUSH_BOUND`], until `sent` notifications have
    /// been routed or dropped.
    pub(crate) async fn reached(&self, sent: u64) {
        let wait = async {
            loop {
                let moved = self.moved.notified();
                if self.count.load(Ordering::Acquire) >= sent {
                    return;
                }
                moved.await;
            }
        };
        let _ = tokio::time::timeout(FLUSH_BOUND, wait).await;
    }
}

/// The servers a request reached, and how far their notifications have
/// got: once its answer is here, what they sent before it is waited for,
/// so that it goes out after them although they travel apart from it.
pub(crate) struct Flush(Vec<(ServerSession, Arc<Routed>)>);

impl Flush {
    /// The sessions the request reached (`reached(i)` for `sessions[i]`),
    /// each with its [`Routed`] (`routed[i]` is `sessions[i]`'s).
    pub(crate) fn new(
        sessions: &[ServerSession],
        routed: &[Arc<Routed>],
        reached: impl Fn(usize) -> bool,
    ) -> Self {
        Self(
            (sessions.iter().zip(routed))
                .enumerate()
                .filter(|(i, _)| reached(*i))
                .map(|(_, (s, r))| (s.clone(), r.clone()))
                .collect(),
        )
    }

    /// Waits, at most [`FLUSH_BOUND`] a server, until the notifications
    /// each server had sent by now have been delivered or dropped.
    pub(crate) async fn wait(&self) {
        for (session, routed) in &self.0 {
            routed.reached(session.notes_sent()).await;
        }
    }
}

/// Takes `session`'s notifications into a queue bounded by
/// [`PENDING_BYTES`] until the session ends. The caller delivers what the
/// receiver gives, in order, dropping each one's permit once delivered
/// and counting it in the [`Routed`].
pub(crate) fn spawn(session: &ServerSession) -> (mpsc::Receiver<Pending>, Arc<Routed>) {
    let notes = session.notifications();
    // Subscribed first: notifications sent meanwhile are both received
    // and in the base, so the count may run ahead, never behind.
    let routed = Arc::new(Routed {
        count: AtomicU64::new(session.notes_sent()),
        moved: Notify::new(),
    });
    let (tx, rx) = mpsc::channel(PENDING_NOTES);
    let budget = Arc::new(Semaphore::new(PENDING_BYTES));
    let name = session.name().to_owned();
    tokio::spawn(take(notes, tx, budget, name, routed.clone()));
    (rx, routed)
}

/// One queued notification, serialized, and its bytes of the budget:
/// dropping the permit gives them back.
pub(crate) type Pending = (Bytes, OwnedSemaphorePermit);

/// Takes every notification as it comes, and queues it if it fits.
async fn take(
    mut notes: broadcast::Receiver<Value>,
    tx: mpsc::Sender<Pending>,
    budget: Arc<Semaphore>,
    name: String,
    routed: Arc<Routed>,
) {
    // Notes dropped since the last one that got through.
    let mut dropped = 0u64;
    loop {
        let note = match notes.recv().await {
            Ok(note) => note,
            Err(RecvError::Lagged(n)) => {
                dropped += n;
                routed.add(n);
                continue;
            }
            Err(RecvError::Closed) => break,
        };
        if enqueue(&tx, &budget, &note) {
            if dropped > 0 {
                eprintln!(
                    "bulkhead: mcp serve: {dropped} of server \"{name}\"'s notifications were dropped: a client was not reading them"
                );
            }
            dropped = 0;
        } else {
            dropped += 1;
            routed.add(1);
        }
    }
    if dropped > 0 {
        eprintln!(
            "bulkhead: mcp serve: {dropped} of server \"{name}\"'s last notifications were dropped: a client was not reading them"
        );
    }
}

/// Queues `note` if its bytes and one more note fit; false if not.
fn enqueue(tx: &mpsc::Sender<Pending>, budget: &Arc<Semaphore>, note: &Value) -> bool {
    let Ok(bytes) = serde_json::to_vec(note) else {
        return false;
    };
    // One note bigger than the whole budget (a `max_message` set above
    // it) goes through alone.
    let Some(permit) = try_charge(budget, PENDING_BYTES, bytes.len()) else {
        return false;
    };
    tx.try_send((Bytes::from(bytes), permit)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn log(len: usize) -> Value {
        json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": "x".repeat(len)}})
    }

    /// While nothing is routed, what is queued stays within the bytes;
    /// more is refused, and room comes back as notes are routed.
    #[test]
    fn what_waits_for_routing_is_bounded_in_bytes() {
        let (tx, mut rx) = mpsc::channel(PENDING_NOTES);
        let budget = Arc::new(Semaphore::new(PENDING_BYTES));
        let mb = 1 << 20;
        let mut taken = 0;
        for _ in 0..64 {
            if enqueue(&tx, &budget, &log(mb)) {
                taken += 1;
            }
        }
        assert_eq!(
            taken,
            PENDING_BYTES / mb - 1,
            "8 MiB, less the JSON around each"
        );
        assert!(budget.available_permits() < mb);
        drop(rx.try_recv().expect("one"));
        assert!(enqueue(&tx, &budget, &log(mb)), "room again");
        // A note over the whole budget goes alone, once the queue is empty.
        while rx.try_recv().is_ok() {}
        assert!(enqueue(&tx, &budget, &log(2 * PENDING_BYTES)));
        assert!(!enqueue(&tx, &budget, &log(1)));
        drop(rx.try_recv().expect("the big one"));
        assert_eq!(budget.available_permits(), PENDING_BYTES);
    }
}
