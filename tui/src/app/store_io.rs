//! The session store, seen from the UI. Writes run on the store's own
//! thread ([`StoreThread`], which owns the write connection: each commit is
//! an fsync and must never run on the UI task), behind a bounded queue, so
//! a call task that streams faster than the disk waits, and through
//! stream-mode credit its worker waits too. Reads (the pager's slices, the
//! session list) use a second connection: WAL readers never wait for the
//! writer.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bulkhead_host::{CallLimits, CallReport};
use bulkhead_ipc::StreamId;
pub use bulkhead_store::LazySession;
use bulkhead_store::{
    CallRecorder, ItemId, ItemKind, NewItem, RecordedCall, ResultEnd, Store, StoreOptions,
    StoreThread,
};
use bytes::Bytes;
use tokio::sync::mpsc;

use super::events::UiMsg;
use super::pager::PagerSource;

/// Jobs queued for the store thread. 32 chunks of 64 KiB: 2 MiB in
/// flight at most, whatever the workers send.
const WRITE_QUEUE: usize = 32;

/// The UI's handle on the store.
#[derive(Clone)]
pub struct StoreIo {
    writer: StoreThread,
    reader: Arc<Mutex<Store>>,
    failures: Arc<Failures>,
}

/// Write failures, told to the UI as one note (the first): the calls run
/// on, and one note says so; the log has every failure.
struct Failures {
    wake: mpsc::Sender<UiMsg>,
    told: AtomicBool,
}

impl Failures {
    fn report(&self, what: &str, e: impl std::fmt::Display) {
        tracing::warn!(error = %e, "session store: {what}");
        if !self.told.swap(true, Ordering::Relaxed) {
            let _ = self.wake.try_send(UiMsg::Note(format!(
                "**session store**: {what} failed: {e}. Calls still run; their output stays in memory only."
            )));
        }
    }
}

impl StoreIo {
    /// Opens the store twice (store thread, reader) and starts the thread.
    /// Write failures are reported to the UI as notes.
    pub fn open(
        path: &Path,
        options: StoreOptions,
        wake: mpsc::Sender<UiMsg>,
    ) -> Result<Self, String> {
        let writer = Store::open_with(path, options.clone()).map_err(|e| e.to_string())?;
        let reader = Store::open_with(path, options).map_err(|e| e.to_string())?;
        let writer = StoreThread::spawn_with_queue(writer, WRITE_QUEUE)
            .map_err(|e| format!("cannot start the store thread: {e}"))?;
        Ok(Self {
            writer,
            reader: Arc::new(Mutex::new(reader)),
            failures: Arc::new(Failures {
                wake,
                told: AtomicBool::new(false),
            }),
        })
    }

    /// Runs `f` on the read connection (short reads only: a page of rows,
    /// one slice).
    pub fn read<T>(&self, f: impl FnOnce(&Store) -> T) -> Result<T, String> {
        let store = self
            .reader
            .lock()
            .map_err(|_| "the store reader was poisoned by a panic".to_owned())?;
        Ok(f(&store))
    }

    /// Appends an item (user line, notice) without waiting for it.
    pub fn append(&self, session: &Arc<LazySession>, kind: ItemKind, text: &str) {
        let (session, item) = (session.clone(), NewItem::new(kind, text));
        let failures = self.failures.clone();
        let io = self.clone();
        tokio::spawn(async move {
            io.send(move |store| {
                let appended = session
                    .ensure(store, &item.text)
                    .and_then(|id| store.append(id, &item));
                if let Err(e) = appended {
                    failures.report("recording an item", e);
                }
            })
            .await;
        });
    }

    /// Queues a job; waits only while the queue is full (backpressure).
    async fn send(&self, job: impl FnOnce(&Store) + Send + 'static) {
        // Fails only when the thread has stopped (a job panicked); calls
        // then run on without being recorded.
        let _ = self.writer.send(job).await;
    }

    /// A recorder for one call's output into `session`.
    pub fn recorder(
        &self,
        session: &Arc<LazySession>,
        tool: &str,
        args_json: &str,
        limits: &CallLimits,
    ) -> Recorder {
        Recorder {
            io: self.clone(),
            begin: Some((
                session.clone(),
                RecordedCall::new(tool, args_json).with_limits(limits),
            )),
            call: Arc::default(),
        }
    }

    /// A pager source over a stored result.
    pub fn source(&self, item: ItemId, len: u64) -> Arc<dyn PagerSource> {
        Arc::new(StoredOutput {
            reader: self.reader.clone(),
            item,
            len,
        })
    }
}

/// Records one call's output as it streams, through the store's
/// [`CallRecorder`]. The result is begun by the first chunk or the end,
/// from the call's task: the UI task that makes the recorder must never
/// wait for room in the queue.
pub struct Recorder {
    io: StoreIo,
    /// What begins the result, until it is queued.
    begin: Option<(Arc<LazySession>, RecordedCall)>,
    /// The call's recorder. Chunks are queued without waiting for their
    /// commit, so it lives with the jobs rather than in this task; only
    /// jobs on the store thread touch it, one at a time and in the order
    /// they were queued, and the mutex only lets them share it. `None`
    /// until begun, and when beginning failed (the output is then not
    /// recorded).
    call: Arc<Mutex<Option<CallRecorder>>>,
}

/// The call's recorder. Only store-thread jobs lock it, and a job that
/// panics ends that thread, so no job ever finds the lock poisoned; its
/// value is taken as it is rather than unwrapped.
fn lock(call: &Mutex<Option<CallRecorder>>) -> MutexGuard<'_, Option<CallRecorder>> {
    call.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Recorder {
    async fn begin(&mut self) {
        let Some((session, call)) = self.begin.take() else {
            return;
        };
        let (slot, failures) = (self.call.clone(), self.io.failures.clone());
        self.io
            .send(
                move |store| match CallRecorder::begin(store, &session.into(), &call) {
                    Ok(recorder) => *lock(&slot) = Some(recorder),
                    Err(e) => failures.report("starting a result", e),
                },
            )
            .await;
    }

    /// Queues a chunk; waits while the writer is behind (backpressure).
    pub async fn chunk(&mut self, stream: StreamId, data: Bytes) {
        self.begin().await;
        let (slot, failures) = (self.call.clone(), self.io.failures.clone());
        self.io
            .send(move |store| {
                if let Some(recorder) = lock(&slot).as_mut()
                    && let Err(e) = recorder.output(store, stream, &data)
                {
                    failures.report("writing output", e);
                }
            })
            .await;
    }

    /// Records the end; returns where the output can be paged from.
    pub async fn finish(&mut self, report: &CallReport) -> Option<Arc<dyn PagerSource>> {
        self.begin().await;
        let end = ResultEnd::from_report(report);
        let (slot, failures) = (self.call.clone(), self.io.failures.clone());
        let done = self
            .io
            .writer
            .call(move |store| {
                let recorder = lock(&slot).take()?;
                recorder
                    .finish(store, end)
                    .inspect_err(|e| failures.report("finishing a result", e))
                    .ok()
            })
            .await
            .ok()
            .flatten()?;
        (done.stored_bytes > 0).then(|| self.io.source(done.item, done.stored_bytes))
    }

    /// Ends a call that gave no report: its result, if begun, is marked
    /// interrupted rather than left running.
    pub async fn abandon(self) {
        if self.begin.is_some() {
            return;
        }
        let (slot, failures) = (self.call.clone(), self.io.failures.clone());
        self.io
            .send(move |store| {
                if let Some(recorder) = lock(&slot).take()
                    && let Err(e) = recorder.abandon(store)
                {
                    failures.report("ending a result", e);
                }
            })
            .await;
    }
}

/// A stored result, read in slices through the reader connection.
struct StoredOutput {
    reader: Arc<Mutex<Store>>,
    item: ItemId,
    len: u64,
}

impl PagerSource for StoredOutput {
    fn len(&self) -> u64 {
        self.len
    }

    fn read(&self, offset: u64, max: usize) -> Result<Vec<u8>, String> {
        let store = self
            .reader
            .lock()
            .map_err(|_| "the store reader was poisoned by a panic".to_owned())?;
        store
            .read_payload(self.item, offset, max as u64)
            .map(|s| s.data)
            .map_err(|e| e.to_string())
    }
}
