//! [`StoreThread`]: the store on a thread of its own, for async code.
//!
//! Each store call is short but synchronous, and with `synchronous=FULL` a
//! commit waits for the disk (3–5 ms here). On a current-thread
//! runtime that would stall every other task, so async callers send
//! closures to one dedicated thread that owns the [`Store`], and await
//! their answers (or, with [`StoreThread::send`], only their place in the
//! queue). The queue is bounded ([`QUEUE`]): a caller that outpaces
//! the disk waits in `call`, and what is queued is at most `QUEUE` jobs
//! (each holding what it captured, e.g. one 64 KiB chunk).

use tokio::sync::{mpsc, oneshot};

use super::Store;

/// Jobs waiting for the store thread. 64 jobs of at most one 64 KiB chunk
/// each: ≤ 4 MiB queued, and enough slack that a burst of small writes does
/// not wait on each commit.
pub const QUEUE: usize = 64;

type Job = Box<dyn FnOnce(&Store) + Send>;

/// The store thread has ended (its store was dropped after a panic in a
/// job, or the thread could not start).
#[derive(Debug, thiserror::Error)]
#[error("the session store's thread has stopped")]
pub struct StoreThreadGone;

/// A handle to a [`Store`] owned by a dedicated thread. Cloning it shares
/// the thread; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct StoreThread {
    jobs: mpsc::Sender<Job>,
}

impl StoreThread {
    /// Moves `store` to a new thread named `bulkhead-store`, behind a
    /// queue of [`QUEUE`] jobs.
    pub fn spawn(store: Store) -> std::io::Result<StoreThread> {
        StoreThread::spawn_with_queue(store, QUEUE)
    }

    /// As [`spawn`](StoreThread::spawn), with room for `queue` jobs (at
    /// least one): a caller whose jobs each hold a chunk sets how much
    /// output can wait for the disk.
    pub fn spawn_with_queue(store: Store, queue: usize) -> std::io::Result<StoreThread> {
        let (jobs, mut queue) = mpsc::channel::<Job>(queue.max(1));
        std::thread::Builder::new()
            .name("bulkhead-store".into())
            .spawn(move || {
                while let Some(job) = queue.blocking_recv() {
                    job(&store);
                }
            })?;
        Ok(StoreThread { jobs })
    }

    /// Runs `f` on the store thread and returns what it returns.
    ///
    /// ```ignore
    /// let id = thread.call(move |s| s.append(session, &item)).await??;
    /// let w = thread.call(move |s| { w.write(s, stream, &chunk).map(|()| w) }).await??;
    /// ```
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> Result<T, StoreThreadGone> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |store| {
            // The caller may have stopped waiting; the work is done anyway.
            let _ = answer.send(f(store));
        });
        self.jobs.send(job).await.map_err(|_| StoreThreadGone)?;
        answered.await.map_err(|_| StoreThreadGone)
    }

    /// Queues `f` without waiting for it to run: waits only while the
    /// queue is full. Jobs run in the order they were queued, so a caller
    /// that streams chunks this way keeps its writes in order and overlaps
    /// them with the tool's next output; `f` reports its own failures.
    pub async fn send(
        &self,
        f: impl FnOnce(&Store) + Send + 'static,
    ) -> Result<(), StoreThreadGone> {
        self.jobs
            .send(Box::new(f))
            .await
            .map_err(|_| StoreThreadGone)
    }
}

#[cfg(test)]
mod tests {
    use bulkhead_ipc::StreamId;

    use super::super::{ItemKind, NewItem, NewSession, ResultEnd};
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn async_callers_write_and_read_through_the_thread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("s.db")).expect("open");
        let thread = StoreThread::spawn(store).expect("thread");
        let session = thread
            .call(|s| s.create_session(&NewSession::default()))
            .await
            .expect("thread")
            .expect("session");
        let mut w = thread
            .call(move |s| s.begin_result(session, "shell", None, "{}"))
            .await
            .expect("thread")
            .expect("begin");
        for n in 0..10u8 {
            w = thread
                .call(move |s| w.write(s, StreamId::Stdout, &[b'0' + n; 1000]).map(|()| w))
                .await
                .expect("thread")
                .expect("write");
        }
        let item = thread
            .call(move |s| w.finish(s, &ResultEnd::default()))
            .await
            .expect("thread")
            .expect("finish");
        let user = thread
            .call(move |s| s.append(session, &NewItem::new(ItemKind::User, "next")))
            .await
            .expect("thread")
            .expect("append");
        let view = thread
            .call(move |s| s.result_view(item, 3, 3))
            .await
            .expect("thread")
            .expect("view");
        assert_eq!(view.stored_bytes, 10_000);
        assert_eq!(view.head.data, b"000");
        assert_eq!(view.tail.data, b"999");
        assert!(user > item);
    }
}
