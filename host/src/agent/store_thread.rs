//! The session store on a thread of its own, so the async runtime never
//! waits on the disk.
//!
//! Every store write is a `synchronous=FULL` transaction: an fsync per
//! 64 KiB chunk of tool output. On the runtime's threads, a slow disk would
//! stall the model stream, the other tool calls and the timers with it.
//! Here each store call is a job sent over a bounded channel to the one
//! thread that owns the connection; the caller awaits the answer.
//!
//! **Memory:** a caller sends one job and awaits it before it takes its
//! next event, so a tool call has at most one chunk in a job; the channel
//! holds at most [`QUEUE_JOBS`] jobs, and a full one makes senders wait. A
//! streamed call's worker gets credit only for the chunks its caller has
//! taken, so a slow disk pushes back all the way to the tool.

use std::panic::AssertUnwindSafe;

use tokio::sync::{mpsc, oneshot};

use crate::store::{Store, StoreError};

/// Jobs waiting for the store at most. Each running tool call and the loop
/// have at most one job in flight (they await it), so 16 covers the
/// host's default worker limit without making anyone wait; past that,
/// senders queue, and each queued job holds at most one 64 KiB chunk.
pub const QUEUE_JOBS: usize = 16;

type Job = Box<dyn FnOnce(&Store) + Send>;

/// Why a store call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreCallError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the session store's thread lost this call: a store call panicked")]
    Lost,
    #[error("the session store's thread has stopped")]
    Stopped,
}

/// A handle to the store's thread; clones share it. The thread ends when
/// the last handle is dropped, after the jobs already sent.
#[derive(Clone)]
pub struct StoreThread {
    jobs: mpsc::Sender<Job>,
}

impl StoreThread {
    /// Moves `store` to a new thread.
    pub fn spawn(store: Store) -> std::io::Result<Self> {
        let (jobs, mut queue) = mpsc::channel::<Job>(QUEUE_JOBS);
        std::thread::Builder::new()
            .name("bulkhead-store".into())
            .spawn(move || {
                while let Some(job) = queue.blocking_recv() {
                    // A job that panics loses its own answer (its caller
                    // hears `Lost`); SQLite rolled its transaction back, so
                    // the connection serves the next job.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&store)));
                }
            })?;
        Ok(Self { jobs })
    }

    /// Runs `f` on the store's thread and returns what it returns.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> R + Send + 'static,
    ) -> Result<R, StoreCallError> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |store| {
            // The caller may have gone (its task was dropped); the write
            // itself is done either way.
            let _ = answer.send(f(store));
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreCallError::Stopped)?;
        answered.await.map_err(|_| StoreCallError::Lost)
    }

    /// [`call`](Self::call) for a store operation that can fail.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreCallError> {
        Ok(self.call(f).await??)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ItemKind, NewItem, NewSession};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s.db")).unwrap();
        (dir, store)
    }

    /// On a runtime with one thread, a store call that blocks (a slow
    /// disk) must not stop other tasks: they run while it waits.
    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_store_call_does_not_stall_the_runtime() {
        let (_dir, store) = store();
        let thread = StoreThread::spawn(store).unwrap();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let handle = thread.clone();
        let slow = tokio::spawn(async move { handle.call(move |_| blocked.recv().is_ok()).await });
        // Another task makes progress on the only runtime thread while
        // the store thread is blocked.
        let other = tokio::spawn(async { 7 });
        assert_eq!(other.await.unwrap(), 7);
        release.send(()).unwrap();
        assert!(slow.await.unwrap().unwrap());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn calls_run_in_order_and_a_panic_loses_only_its_own_answer() {
        let (_dir, store) = store();
        let thread = StoreThread::spawn(store).unwrap();
        let session = thread
            .run(|s| {
                s.create_session(&NewSession {
                    title: "t".into(),
                    model: None,
                    config_json: None,
                })
            })
            .await
            .unwrap();
        let lost = thread.call(|_| -> u8 { panic!("a bug in a store call") });
        assert!(matches!(lost.await, Err(StoreCallError::Lost)));
        thread
            .run(move |s| s.append(session, &NewItem::new(ItemKind::User, "after")))
            .await
            .unwrap();
        let err = thread.run(|s| s.item(crate::store::ItemId(9999))).await;
        assert!(matches!(err, Err(StoreCallError::Store(_))), "{err:?}");
    }
}
