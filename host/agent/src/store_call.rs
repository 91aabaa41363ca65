//! The loop's store calls, through the store's own thread
//! ([`StoreThread`]), so the async runtime never waits on the disk.
//!
//! Every store write is a `synchronous=FULL` transaction: an fsync per
//! 64 KiB chunk of tool output. On the runtime's threads, a slow disk would
//! stall the model stream, the other tool calls and the timers with it.
//!
//! **Memory:** a caller sends one job and awaits it before it takes its
//! next event, so a tool call has at most one chunk in a job; the thread's
//! queue is bounded ([`bulkhead_store::STORE_THREAD_QUEUE`]), and a full one
//! makes senders wait. A streamed call's worker gets credit only for the
//! chunks its caller has taken, so a slow disk pushes back all the way to
//! the tool.

use std::future::Future;

use bulkhead_store::{Store, StoreError, StoreThread, StoreThreadGone};

/// Why a store call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreCallError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Stopped(#[from] StoreThreadGone),
}

/// [`StoreThread::call`] for a store operation that can fail, with both
/// failures in one error.
pub trait StoreRun {
    fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
    ) -> impl Future<Output = Result<R, StoreCallError>> + Send;
}

impl StoreRun for StoreThread {
    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreCallError> {
        Ok(self.call(f).await??)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_store::{ItemId, NewSession};

    fn thread() -> (tempfile::TempDir, StoreThread) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s.db")).unwrap();
        (dir, StoreThread::spawn(store).unwrap())
    }

    /// On a runtime with one thread, a store call that blocks (a slow
    /// disk) must not stop other tasks: they run while it waits. (Were the
    /// call run on the runtime's thread, this test would hang.)
    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_store_call_does_not_stall_the_runtime() {
        let (_dir, thread) = thread();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let handle = thread.clone();
        let slow = tokio::spawn(async move { handle.call(move |_| blocked.recv().is_ok()).await });
        let other = tokio::spawn(async { 7 });
        assert_eq!(other.await.unwrap(), 7);
        release.send(()).unwrap();
        assert!(slow.await.unwrap().unwrap());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_store_error_and_an_answer_come_back_through_run() {
        let (_dir, thread) = thread();
        let session = thread
            .run(|s| s.create_session(&NewSession::default()))
            .await
            .unwrap();
        assert!(thread.run(move |s| s.session(session)).await.is_ok());
        let err = thread.run(|s| s.item(ItemId(9999))).await;
        assert!(matches!(err, Err(StoreCallError::Store(_))), "{err:?}");
    }
}
