//! The bytes SSE streams may hold unread, per stream and for the whole
//! gateway.
//!
//! An event is charged to its stream's budget and to the gateway's before
//! it is queued, as permits of a [`Semaphore`] counted in bytes; the
//! permits travel with its bytes ([`Charged`]) through the stream's
//! channel and the body into hyper's write queue, and are given back when
//! hyper drops them, that is once they have been written to the socket.
//! So what a stream holds unread is bounded whatever size its events are,
//! and a writer that finds the budget spent waits for the client to read,
//! at most [`SLOW_CLIENT_TIMEOUT`], and then the stream is closed. What a
//! closed stream had queued is let go with its connection, which `conn`
//! closes once its client has taken nothing for as long again.
//!
//! An event bigger than a budget (a server whose `max_message` is set
//! above [`STREAM_BYTES`]) is charged the whole budget: it waits until its
//! stream (or, over [`GATEWAY_BYTES`], the gateway) holds nothing else
//! and goes alone, so it is still delivered, and what is queued stays
//! within the larger of the budget and one message.

use std::sync::Arc;

use bytes::{Buf, Bytes};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::hub::{SLOW_CLIENT_TIMEOUT, SSE_QUEUE};

/// Bytes one stream may hold unread: two messages at the default 4 MiB
/// cap on a server's message, so a client reading at its own pace is sent
/// the next capped message while it reads one, and a client that reads
/// nothing costs no more than this.
pub(crate) const STREAM_BYTES: usize = 8 << 20;

/// Bytes all streams together may hold unread: eight full streams, or
/// sixteen capped messages. Without it `MAX_CONNECTIONS` streams could
/// hold `STREAM_BYTES` each (8 GiB); with it a burst of many clients that
/// read slowly makes their writers wait instead of the gateway grow. An
/// event broadcast to the GET streams is one buffer shared by them all,
/// but it is charged to each stream that holds it, so this errs on the
/// side of waiting.
pub(crate) const GATEWAY_BYTES: usize = 64 << 20;

/// The gateway's budget, which every stream's charges come out of too.
#[derive(Clone)]
pub(crate) struct GatewayBudget {
    bytes: Arc<Semaphore>,
    whole: usize,
}

impl Default for GatewayBudget {
    fn default() -> Self {
        Self::with_bytes(GATEWAY_BYTES)
    }
}

impl GatewayBudget {
    fn with_bytes(bytes: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(bytes)),
            whole: bytes,
        }
    }

    /// A new stream: its sending side, with a budget of `STREAM_BYTES`,
    /// and what its body reads.
    pub(crate) fn channel(&self) -> (StreamTx, mpsc::Receiver<Charged>) {
        let (tx, rx) = mpsc::channel(SSE_QUEUE);
        let budget = self.stream();
        (StreamTx { tx, budget }, rx)
    }

    /// A new stream's budget, of `STREAM_BYTES`.
    pub(crate) fn stream(&self) -> StreamBudget {
        self.stream_of(STREAM_BYTES)
    }

    fn stream_of(&self, bytes: usize) -> StreamBudget {
        StreamBudget {
            stream: Arc::new(Semaphore::new(bytes)),
            stream_bytes: bytes,
            gateway: self.bytes.clone(),
            gateway_bytes: self.whole,
        }
    }

    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.bytes.available_permits()
    }
}

/// One stream's budget (clones share it), and the gateway's.
#[derive(Clone)]
pub(crate) struct StreamBudget {
    stream: Arc<Semaphore>,
    stream_bytes: usize,
    gateway: Arc<Semaphore>,
    /// The gateway's whole budget: no charge may ask for more.
    gateway_bytes: usize,
}

impl StreamBudget {
    /// `event`, charged to this stream and to the gateway: waits until
    /// both have room (or an oversized event has its budget to itself).
    /// `None` only if a budget was closed, which this module never does.
    pub(crate) async fn charge(&self, event: Bytes) -> Option<Charged> {
        let len = event.len();
        // The stream first: a writer waiting for its own client holds no
        // bytes of the gateway's that other streams could use.
        let stream = permits(&self.stream, len.min(self.stream_bytes)).await?;
        let gateway = permits(&self.gateway, len.min(self.gateway_bytes)).await?;
        Some(Charged {
            bytes: event,
            _charge: Some((stream, gateway)),
        })
    }

    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.stream.available_permits()
    }
}

async fn permits(s: &Arc<Semaphore>, n: usize) -> Option<OwnedSemaphorePermit> {
    // A budget is at most a few MiB, far below u32::MAX.
    let n = u32::try_from(n).ok()?;
    s.clone().acquire_many_owned(n).await.ok()
}

/// Charges `event` to `budget` and queues it on `tx`, waiting at most
/// `SLOW_CLIENT_TIMEOUT` for both; false if the client did not make room
/// in time or the stream is gone, and the caller then closes the stream.
pub(crate) async fn queue(tx: &mpsc::Sender<Charged>, budget: &StreamBudget, event: Bytes) -> bool {
    let queued = async {
        match budget.charge(event).await {
            Some(charged) => tx.send(charged).await.is_ok(),
            None => false,
        }
    };
    tokio::time::timeout(SLOW_CLIENT_TIMEOUT, queued)
        .await
        .unwrap_or(false)
}

/// A stream's sending side (clones share its budget).
#[derive(Clone)]
pub(crate) struct StreamTx {
    tx: mpsc::Sender<Charged>,
    budget: StreamBudget,
}

impl StreamTx {
    /// Queues `event` (see [`queue`]); false: the stream is to be closed.
    pub(crate) async fn send(&self, event: Bytes) -> bool {
        queue(&self.tx, &self.budget, event).await
    }

    pub(crate) fn same_channel(&self, other: &Self) -> bool {
        self.tx.same_channel(&other.tx)
    }

    pub(crate) fn budget(&self) -> &StreamBudget {
        &self.budget
    }
}

/// An event's bytes and the budget they hold until hyper has written them
/// to the socket and drops them.
pub(crate) struct Charged {
    bytes: Bytes,
    _charge: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
}

impl Charged {
    /// Bytes that hold no budget: a whole body (at most one capped
    /// message, sent once), or a replay from the buffer, which is bounded
    /// on its own.
    pub(crate) fn free(bytes: Bytes) -> Self {
        Self {
            bytes,
            _charge: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> &Bytes {
        &self.bytes
    }
}

impl Buf for Charged {
    fn remaining(&self) -> usize {
        self.bytes.remaining()
    }

    fn chunk(&self) -> &[u8] {
        self.bytes.chunk()
    }

    fn advance(&mut self, cnt: usize) {
        self.bytes.advance(cnt);
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        self.bytes.copy_to_bytes(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::Instant;

    fn event(len: usize) -> Bytes {
        Bytes::from(vec![b'x'; len])
    }

    /// A stream whose client reads nothing holds at most its budget: the
    /// writer of the event that does not fit waits the slow-client
    /// timeout and gives up; an event read (its bytes written out and
    /// dropped) makes room again, and the budget comes back whole.
    #[tokio::test(start_paused = true)]
    async fn a_stream_holds_at_most_its_bytes() {
        let gateway = GatewayBudget::default();
        let budget = gateway.stream();
        let (tx, mut rx) = mpsc::channel(64);
        let mb = 1 << 20;
        for _ in 0..2 {
            let before = Instant::now();
            assert!(queue(&tx, &budget, event(3 * mb)).await);
            assert!(before.elapsed() < Duration::from_secs(1));
        }
        assert_eq!(budget.available(), STREAM_BYTES - 6 * mb);
        // 6 MiB held; 3 more do not fit.
        let before = Instant::now();
        assert!(!queue(&tx, &budget, event(3 * mb)).await);
        assert!(before.elapsed() >= SLOW_CLIENT_TIMEOUT);
        assert_eq!(budget.available(), STREAM_BYTES - 6 * mb);
        // The client reads one: the next fits at once.
        let read = rx.recv().await.expect("an event");
        assert_eq!(read.bytes().len(), 3 * mb);
        drop(read);
        let before = Instant::now();
        assert!(queue(&tx, &budget, event(3 * mb)).await);
        assert!(before.elapsed() < Duration::from_secs(1));
        while let Ok(e) = rx.try_recv() {
            drop(e);
        }
        assert_eq!(budget.available(), STREAM_BYTES);
        assert_eq!(gateway.available(), GATEWAY_BYTES);
    }

    /// An event over the stream's budget still goes, alone: it waits
    /// until the stream holds nothing, and nothing is queued behind it
    /// until it is read.
    #[tokio::test(start_paused = true)]
    async fn an_oversized_event_goes_alone() {
        let gateway = GatewayBudget::default();
        let budget = gateway.stream();
        let (tx, mut rx) = mpsc::channel(64);
        assert!(queue(&tx, &budget, event(10)).await);
        let big = STREAM_BYTES * 2;
        let (tx2, budget2) = (tx.clone(), budget.clone());
        let sending = tokio::spawn(async move { queue(&tx2, &budget2, event(big)).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!sending.is_finished(), "it waits for the small one");
        drop(rx.recv().await.expect("the small one"));
        assert!(sending.await.expect("joined"));
        assert_eq!(budget.available(), 0);
        assert!(!queue(&tx, &budget, event(1)).await, "nothing behind it");
        assert_eq!(rx.recv().await.expect("the big one").bytes().len(), big);
        assert!(queue(&tx, &budget, event(1)).await);
    }

    /// All streams together hold at most the gateway's budget: once it is
    /// spent a stream with room of its own waits too, and a stream that
    /// gives up keeps nothing of it.
    #[tokio::test(start_paused = true)]
    async fn all_streams_hold_at_most_the_gateways_bytes() {
        let gateway = GatewayBudget::default();
        let full = GATEWAY_BYTES / STREAM_BYTES;
        let mut held = Vec::new();
        for _ in 0..full {
            let budget = gateway.stream();
            let (tx, rx) = mpsc::channel(64);
            assert!(queue(&tx, &budget, event(STREAM_BYTES)).await);
            held.push(rx);
        }
        assert_eq!(gateway.available(), 0);
        let budget = gateway.stream();
        let (tx, mut rx) = mpsc::channel(64);
        let before = Instant::now();
        assert!(!queue(&tx, &budget, event(1)).await);
        assert!(before.elapsed() >= SLOW_CLIENT_TIMEOUT);
        assert_eq!(budget.available(), STREAM_BYTES, "its charge was returned");
        // One stream read: the waiting one goes.
        drop(held.pop());
        assert!(queue(&tx, &budget, event(1)).await);
        drop(rx.recv().await);
        drop(held);
        assert_eq!(gateway.available(), GATEWAY_BYTES);
    }
}
