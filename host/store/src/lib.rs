//! The session store: sessions and their items in one SQLite file, with
//! every tool result stored once and every read bounded.
//!
//! # Model
//!
//! - A **session** ([`SessionId`]) has a title, a model, a config snapshot,
//!   and an ordered list of **items** ([`ItemId`], numbered `seq` 1, 2, …
//!   within the session): system prompt, user and assistant messages, tool
//!   calls, tool results and notices ([`ItemKind`]). Messages keep their
//!   text (and a JSON `meta`, e.g. an assistant's tool calls) in the item
//!   row, up to [`MAX_ITEM_BYTES`].
//! - A **tool result** is an item whose output lives in `chunks` rows, each
//!   ≤ [`CHUNK_BYTES`] with its byte offset. A [`ResultWriter`] appends
//!   them as the call streams and, at the end, records outcome, usage,
//!   enforcement, `bytes_seen` and `lines_seen`. Nothing else holds the
//!   output: the message list, the TUI and the model request refer to it by
//!   item id and read slices ([`Store::read_payload`],
//!   [`Store::result_view`]).
//! - A **recorded call** ([`CallRecorder`]) is how every caller that runs a
//!   tool (`bulkhead run --session`, the TUI, the agent loop) fills a tool
//!   result: the result begun (after a tool-call item when asked), its
//!   output chunks written as they stream, its end taken from the host's
//!   report with the limits the call ran under.
//! - The **history window** for a model request ([`Store::history_window`])
//!   is chosen in SQL from small integer columns: the pinned items (the
//!   system prompt), then the newest items within a count and a byte budget,
//!   each tool result counted at its view size, not its full size.
//!
//! # Invariants
//!
//! - One copy: a tool result's bytes exist in the `chunks` rows only. The
//!   writer holds at most one chunk ([`CHUNK_BYTES`]) before it commits it.
//! - Bounded reads: [`Store::list_sessions`] and [`Store::items`] never read
//!   a chunk and return at most a page; a payload read is capped at
//!   [`MAX_READ_BYTES`]; a window holds at most its budget plus the pinned
//!   items.
//! - Nothing committed is lost: WAL with `synchronous=FULL`, so a returned
//!   write survives a process crash *and* a power loss (NORMAL would only
//!   survive the former). Every write is one short `BEGIN IMMEDIATE`
//!   transaction.
//! - A file that is not a bulkhead store (not SQLite, another program's
//!   database, a newer schema) is refused with an error naming it, and never
//!   written to.
//! - Several processes share a store: WAL readers never block, writers
//!   queue on the lock for up to `busy_timeout`, then retry.
//!
//! # Caveats
//!
//! - [`Store`] wraps one `rusqlite::Connection`: it is `Send` but not
//!   `Sync`, and synchronous. Every call is one short transaction (at most
//!   one 64 KiB chunk or one page of rows), but a commit waits for the disk
//!   (`synchronous=FULL`, 3–5 ms here). Async code uses [`StoreThread`] (the
//!   store on a thread of its own, behind a bounded queue) or
//!   `spawn_blocking`. A [`ResultWriter`] is a plain value that borrows the
//!   store only during each call, so many results can stream at once and a
//!   writer can move into a [`StoreThread`] job and back.
//! - A result whose writer died stays `running` until [`Store::gc`] marks
//!   it `interrupted`; its committed chunks are kept.
//! - Item text is counted in bytes, not model tokens.

mod error;
mod items;
mod liveness;
mod path;
mod payload;
mod record;
mod result_info;
mod result_meta;
mod retention;
mod schema;
mod sessions;
mod thread;
mod window;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

pub use error::{Result, StoreError};
pub use items::{Item, ItemKind, ItemPage, NewItem};
pub use path::{STORE_ENV, default_store_path};
pub use payload::{PayloadSlice, ResultEnd, ResultView, ResultWriter};
pub use record::{CallRecorder, LazySession, RecordSession, Recorded, RecordedCall};
pub use result_info::{ResultInfo, ResultState};
pub use result_meta::RecordedLimits;
pub use retention::{
    DEFAULT_MAX_SESSION_BYTES, DEFAULT_MAX_STORE_BYTES, LargePayload, PruneReport, Retention,
    StoreStats,
};
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};
pub use sessions::{NewSession, SessionSummary};
pub use thread::{QUEUE as STORE_THREAD_QUEUE, StoreThread, StoreThreadGone};
pub use window::{HistoryWindow, WindowItem, WindowSpec};

/// Largest message text plus meta JSON of one item. A model's answer is at
/// most a few hundred KB (output tokens are capped); a pasted file can be
/// more. 8 MiB keeps one item read bounded with room for both; bigger
/// content belongs in a tool result, which is stored in chunks.
pub const MAX_ITEM_BYTES: u64 = 8 << 20;

/// One chunk row of a tool result, and the most a writer buffers before it
/// commits: the size of the IPC protocol's chunks, so one incoming chunk is
/// one row and one transaction.
pub const CHUNK_BYTES: usize = 64 << 10;

/// Most bytes one [`Store::read_payload`] returns. A TUI pages far less;
/// the cap keeps a bad (offset, length) from allocating a whole result.
pub const MAX_READ_BYTES: u64 = 4 << 20;

/// Most rows one page of [`Store::list_sessions`] or [`Store::items`]
/// returns, whatever the caller asks.
pub const MAX_PAGE_ROWS: u32 = 1000;

/// How long a write waits for another process's lock before it retries.
/// Writes are single short transactions (one chunk, one row); 5 s covers a
/// `gc` or `rm` of a large session in another process.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Times a busy write is retried after the busy timeout, with a short sleep.
/// SQLite skips the busy handler in a few cases (WAL recovery by another
/// process), so waiting alone is not enough.
const BUSY_RETRIES: u32 = 4;

/// Each connection's page cache, in KiB (`PRAGMA cache_size = -N`). Stated
/// here rather than left to SQLite's default (2,000 KiB) because it is
/// the store's share of the host's memory: the TUI holds two connections,
/// so 4 MiB, reached once the pages it touches exceed it, and never more
/// however large the file grows. 2 MiB holds the sessions and items
/// indexes and the pages of the newest records, which is what the bounded
/// reads touch; a payload read streams its chunks through it.
pub const PAGE_CACHE_KIB: u32 = 2048;

/// A session's id: its row id. Ids are never reused (AUTOINCREMENT), so an
/// id a user wrote down never names a different session after `rm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct SessionId(pub i64);

/// An item's id, unique across the store and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ItemId(pub i64);

// Through the number's own `fmt`, so widths and alignment apply.
impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::fmt::Display for ItemId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::str::FromStr for SessionId {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().parse::<i64>() {
            Ok(n) if n > 0 => Ok(SessionId(n)),
            _ => Err(format!(
                "\"{s}\" is not a session id (a positive number, as `bulkhead sessions list` shows)"
            )),
        }
    }
}

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub busy_timeout: Duration,
    /// Most bytes one tool result keeps; the rest is counted as dropped.
    /// The host caps output before it reaches the store; this is the
    /// store's own bound, whatever a caller sends.
    pub max_result_bytes: u64,
    /// Size limits, enforced as each tool result finishes and by `gc`.
    pub retention: Retention,
    pub durability: Durability,
}

/// How far a returned write is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: the WAL is synced at every commit, so a write
    /// that returned survives a process crash and a power loss. The default.
    #[default]
    Full,
    /// `synchronous=NORMAL`: survives a process crash (the WAL is in the
    /// OS's cache); a power loss may lose the last commits, not the
    /// database. For bulk imports, fixtures and benchmarks.
    Normal,
}

/// A tool result larger than the host's default output cap (1 MiB) by far;
/// an output cap raised past 64 MiB is kept up to here.
pub const DEFAULT_MAX_RESULT_BYTES: u64 = 64 << 20;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            retention: Retention::default(),
            durability: Durability::Full,
        }
    }
}

/// An open session store (one SQLite connection).
pub struct Store {
    conn: Connection,
    path: PathBuf,
    options: StoreOptions,
}

/// A failure inside a transaction: SQLite's, or the store's own (a missing
/// session, a limit).
pub(crate) enum Fail {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Sql(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(path, StoreOptions::default())
    }

    /// Opens the store at `path`, creating it and its directory if needed,
    /// and migrates it to [`SCHEMA_VERSION`]. Refuses, without writing, a
    /// file that is not SQLite, another program's database, or a newer
    /// schema.
    pub fn open_with(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        }
        schema::check_file(&path)?;
        let sql = |e| StoreError::from_sqlite(&path, e);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(sql)?;
        conn.busy_timeout(options.busy_timeout).map_err(sql)?;
        // Identify the file before any pragma that writes (journal_mode
        // rewrites the header): a foreign file must stay as it was.
        schema::identify(&conn, &path)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(sql)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::BadValue {
                path,
                detail: format!("SQLite refused WAL mode (journal_mode is {mode})"),
            });
        }
        let synchronous = match options.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", synchronous)
            .map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql)?;
        // Negative: a size in KiB, not in pages, so the bound holds
        // whatever the file's page size.
        conn.pragma_update(None, "cache_size", -i64::from(PAGE_CACHE_KIB))
            .map_err(sql)?;
        let store = Store {
            conn,
            path,
            options,
        };
        store.with_busy_retry(|| schema::migrate(&store.conn, &store.path))?;
        Ok(store)
    }

    /// Runs one statement outside the transaction helpers (pragmas that
    /// cannot run in a transaction), with the busy retry.
    pub(crate) fn with_conn<T>(&self, f: impl Fn(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        self.with_busy_retry(|| f(&self.conn).map_err(|e| self.sql(e)))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction and commits it,
    /// retrying the whole transaction when the lock stays busy.
    pub(crate) fn write<T>(
        &self,
        f: impl FnMut(&Transaction<'_>) -> std::result::Result<T, Fail>,
    ) -> Result<T> {
        self.transaction(TransactionBehavior::Immediate, f)
    }

    /// Runs `f` in one read transaction (a consistent snapshot).
    pub(crate) fn read<T>(
        &self,
        f: impl FnMut(&Transaction<'_>) -> std::result::Result<T, Fail>,
    ) -> Result<T> {
        self.transaction(TransactionBehavior::Deferred, f)
    }

    fn transaction<T>(
        &self,
        behavior: TransactionBehavior,
        mut f: impl FnMut(&Transaction<'_>) -> std::result::Result<T, Fail>,
    ) -> Result<T> {
        self.with_busy_retry(|| {
            let tx = Transaction::new_unchecked(&self.conn, behavior).map_err(|e| self.sql(e))?;
            let value = f(&tx).map_err(|e| self.fail(e))?;
            tx.commit().map_err(|e| self.sql(e))?;
            Ok(value)
        })
    }

    fn with_busy_retry<T>(&self, mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
        let started = std::time::Instant::now();
        let mut tries = 0;
        loop {
            match attempt() {
                Err(StoreError::Sqlite { source, .. })
                    if StoreError::is_busy(&source) && tries < BUSY_RETRIES =>
                {
                    tries += 1;
                    // A short, growing pause lets the holder finish.
                    std::thread::sleep(Duration::from_millis(10 << tries));
                }
                Err(StoreError::Sqlite { source, .. }) if StoreError::is_busy(&source) => {
                    return Err(StoreError::Busy {
                        path: self.path.clone(),
                        waited_ms: started.elapsed().as_millis() as u64,
                    });
                }
                other => return other,
            }
        }
    }

    pub(crate) fn sql(&self, e: rusqlite::Error) -> StoreError {
        StoreError::from_sqlite(&self.path, e)
    }

    fn fail(&self, e: Fail) -> StoreError {
        match e {
            Fail::Sql(e) => self.sql(e),
            Fail::Store(e) => e,
        }
    }

    /// `PRAGMA integrity_check`: `Ok(())` or the problems SQLite lists (at
    /// most 100).
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA integrity_check(100)")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.sql(e))?;
        let mut problems = Vec::new();
        for row in rows {
            let line = row.map_err(|e| self.sql(e))?;
            if line != "ok" {
                problems.push(line);
            }
        }
        Ok(problems)
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod record_tests;
#[cfg(test)]
mod retention_tests;
#[cfg(test)]
mod tests;
