//! The session store, seen from the UI. Writes happen on one thread that
//! owns the write connection (each commit is an fsync: it must never run
//! on the UI task), fed by a bounded channel, so a call task that streams
//! faster than the disk waits, and through stream-mode credit its worker
//! waits too. Reads (the pager's slices, the session list) use a second
//! connection: WAL readers never wait for the writer.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bulkhead_host::store::{
    ItemId, ItemKind, NewItem, NewSession, ResultEnd, ResultWriter, SessionId, Store, StoreOptions,
};
use bulkhead_host::{CallLimits, CallReport};
use bulkhead_ipc::StreamId;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::events::UiMsg;
use super::pager::PagerSource;

/// Jobs queued for the writer thread. 32 chunks of 64 KiB: 2 MiB in
/// flight at most, whatever the workers send.
const WRITE_QUEUE: usize = 32;

/// The session the app records into. It is created in the store on the
/// first thing recorded, titled with it, so opening and closing the app
/// leaves no empty session behind.
#[derive(Debug, Default)]
pub struct LazySession {
    id: Mutex<Option<SessionId>>,
}

impl LazySession {
    /// A session that already exists (`--continue`, `--session ID`).
    pub fn existing(id: SessionId) -> Arc<Self> {
        Arc::new(Self {
            id: Mutex::new(Some(id)),
        })
    }

    pub fn get(&self) -> Option<SessionId> {
        self.id.lock().ok().and_then(|g| *g)
    }

    fn ensure(&self, store: &Store, title: &str) -> Result<SessionId, String> {
        let mut id = self
            .id
            .lock()
            .map_err(|_| "the session slot was poisoned by a panic".to_owned())?;
        if let Some(id) = *id {
            return Ok(id);
        }
        let created = store
            .create_session(&NewSession {
                title: super::format::clip(title, 80),
                model: None,
                config_json: None,
            })
            .map_err(|e| e.to_string())?;
        *id = Some(created);
        Ok(created)
    }
}

enum Job {
    Append {
        session: Arc<LazySession>,
        item: NewItem,
    },
    Begin {
        key: u64,
        session: Arc<LazySession>,
        tool: String,
        args_json: String,
    },
    Chunk {
        key: u64,
        stream: StreamId,
        data: Bytes,
    },
    Finish {
        key: u64,
        end: ResultEnd,
        reply: oneshot::Sender<Option<(ItemId, u64)>>,
    },
}

/// Names a result being written, between the recorder and the thread.
static NEXT_KEY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The UI's handle on the store.
#[derive(Clone)]
pub struct StoreIo {
    jobs: mpsc::Sender<Job>,
    reader: Arc<Mutex<Store>>,
}

impl StoreIo {
    /// Opens the store twice (writer thread, reader) and starts the thread.
    /// Write failures are reported to the UI as notes.
    pub fn open(
        path: &Path,
        options: StoreOptions,
        wake: mpsc::Sender<UiMsg>,
    ) -> Result<Self, String> {
        let writer = Store::open_with(path, options.clone()).map_err(|e| e.to_string())?;
        let reader = Store::open_with(path, options).map_err(|e| e.to_string())?;
        let (jobs, rx) = mpsc::channel(WRITE_QUEUE);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_thread(writer, rx, wake))
            .map_err(|e| format!("cannot start the store thread: {e}"))?;
        Ok(Self {
            jobs,
            reader: Arc::new(Mutex::new(reader)),
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
        let job = Job::Append {
            session: session.clone(),
            item: NewItem::new(kind, text),
        };
        let jobs = self.jobs.clone();
        tokio::spawn(async move {
            let _ = jobs.send(job).await;
        });
    }

    async fn send(&self, job: Job) {
        // Fails only when the thread has stopped; it said why as a note.
        let _ = self.jobs.send(job).await;
    }

    /// A recorder for one call's output into `session`.
    pub fn recorder(
        &self,
        session: &Arc<LazySession>,
        tool: &str,
        args_json: &str,
        limits: &CallLimits,
    ) -> Recorder {
        let key = NEXT_KEY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let io = self.clone();
        let begin = Job::Begin {
            key,
            session: session.clone(),
            tool: tool.to_owned(),
            args_json: args_json.to_owned(),
        };
        Recorder {
            io,
            key,
            begin: Some(begin),
            limits: limits.clone(),
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

/// Records one call's output as it streams.
pub struct Recorder {
    io: StoreIo,
    key: u64,
    begin: Option<Job>,
    /// Recorded in the result's meta when it ends.
    limits: CallLimits,
}

impl Recorder {
    async fn begin(&mut self) {
        if let Some(job) = self.begin.take() {
            self.io.send(job).await;
        }
    }

    /// Queues a chunk; waits while the writer is behind (backpressure).
    pub async fn chunk(&mut self, stream: StreamId, data: Bytes) {
        self.begin().await;
        self.io
            .send(Job::Chunk {
                key: self.key,
                stream,
                data,
            })
            .await;
    }

    /// Records the end; returns where the output can be paged from.
    pub async fn finish(&mut self, report: &CallReport) -> Option<Arc<dyn PagerSource>> {
        self.begin().await;
        let (reply, rx) = oneshot::channel();
        self.io
            .send(Job::Finish {
                key: self.key,
                end: ResultEnd::from_report(report).with_limits(&self.limits),
                reply,
            })
            .await;
        let (item, len) = rx.await.ok().flatten()?;
        (len > 0).then(|| self.io.source(item, len))
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

fn writer_thread(store: Store, mut jobs: mpsc::Receiver<Job>, wake: mpsc::Sender<UiMsg>) {
    let mut open: HashMap<u64, ResultWriter> = HashMap::new();
    // One note per kind of failure is enough; the log has every one.
    let mut told = false;
    let mut fail = |what: &str, e: String| {
        tracing::warn!(error = %e, "session store: {what}");
        if !told {
            told = true;
            let _ = wake.try_send(UiMsg::Note(format!(
                "**session store**: {what} failed: {e}. Calls still run; their output stays in memory only."
            )));
        }
    };
    while let Some(job) = jobs.blocking_recv() {
        match job {
            Job::Append { session, item } => {
                let r = session
                    .ensure(&store, &item.text)
                    .and_then(|id| store.append(id, &item).map_err(|e| e.to_string()));
                if let Err(e) = r {
                    fail("recording an item", e);
                }
            }
            Job::Begin {
                key,
                session,
                tool,
                args_json,
            } => {
                let r = session
                    .ensure(&store, &format!("{tool} {args_json}"))
                    .and_then(|id| {
                        store
                            .begin_result(id, &tool, None, &args_json)
                            .map_err(|e| e.to_string())
                    });
                match r {
                    Ok(w) => {
                        open.insert(key, w);
                    }
                    Err(e) => fail("starting a result", e),
                }
            }
            Job::Chunk { key, stream, data } => {
                if let Some(w) = open.get_mut(&key)
                    && let Err(e) = w.write(&store, stream, &data)
                {
                    fail("writing output", e.to_string());
                }
            }
            Job::Finish { key, end, reply } => {
                let done = open.remove(&key).and_then(|w| {
                    let len = w.written();
                    match w.finish(&store, &end) {
                        Ok(item) => Some((item, len)),
                        Err(e) => {
                            fail("finishing a result", e.to_string());
                            None
                        }
                    }
                });
                let _ = reply.send(done);
            }
        }
    }
}
