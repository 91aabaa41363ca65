//! A tool result's output: written once, in chunk rows, as it streams; read
//! back in slices.
//!
//! Chunk rows rather than SQLite's incremental blob I/O: a blob must be
//! allocated at its final size before it is written (`zeroblob(N)`), and
//! the size of a tool's output is known only at its end. Preallocating the
//! cap would store every short result at the cap, and shrinking a blob
//! means copying it. A chunk row is committed as it comes, so a crash keeps
//! every chunk written before it, and a slice read touches only the rows it
//! overlaps (found through the `(item_id, offset, len)` index).

use bulkhead_ipc::StreamId;
use rusqlite::{OptionalExtension, params};

use super::error::{Result, StoreError};
use super::items::{ItemKind, check_item_size, insert_item};
use super::result_info::ResultInfo;
use super::{CHUNK_BYTES, Fail, ItemId, MAX_READ_BYTES, SessionId, Store, now_ms};

/// How a tool result ended.
#[derive(Debug, Clone, Default)]
pub struct ResultEnd {
    /// completed, truncated, killed or failed.
    pub status: String,
    pub outcome_json: Option<String>,
    pub usage_json: Option<String>,
    pub enforcement_json: Option<String>,
    pub bytes_seen: u64,
    pub lines_seen: u64,
    /// Written to the result item's meta (see [`super::RecordedLimits`]).
    pub meta_json: Option<String>,
}

impl ResultEnd {
    /// Records the limits the call ran under in the item's meta.
    pub fn with_limits(mut self, limits: &bulkhead_host::CallLimits) -> ResultEnd {
        self.meta_json = Some(super::RecordedLimits::of(limits).to_meta());
        self
    }

    /// The end of a call as the host reported it.
    pub fn from_report(report: &bulkhead_host::CallReport) -> ResultEnd {
        let outcome = serde_json::json!({
            "status": report.outcome.status(),
            "reason": report.outcome.reason(),
            "exit": report.exit,
            "summary": report.summary,
        });
        ResultEnd {
            status: report.outcome.status().to_owned(),
            outcome_json: Some(outcome.to_string()),
            usage_json: serde_json::to_string(&report.usage).ok(),
            enforcement_json: serde_json::to_string(&report.enforcement).ok(),
            bytes_seen: report.usage.bytes_produced,
            lines_seen: report.lines_seen,
            meta_json: None,
        }
    }
}

/// Writes one tool result's output as it arrives. Holds at most
/// [`CHUNK_BYTES`] between commits; borrows the store only during a call,
/// so it can live in an async task and several can be open at once.
#[derive(Debug)]
pub struct ResultWriter {
    item: ItemId,
    session: SessionId,
    /// Bytes committed so far (the offset of the next chunk).
    committed: u64,
    buffer: Vec<u8>,
    buffer_stream: StreamId,
    /// The store's per-result cap, taken at `begin_result`.
    limit: u64,
    dropped: u64,
    /// Set by a failed flush: the buffered bytes were not stored, and the
    /// offsets after them would be wrong, so the writer stops.
    broken: bool,
}

/// A slice of a tool result's output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PayloadSlice {
    pub offset: u64,
    #[serde(serialize_with = "lossy")]
    pub data: Vec<u8>,
}

fn lossy<S: serde::Serializer>(data: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(&String::from_utf8_lossy(data))
}

/// A bounded view of a tool result: its head and its tail, with its size
/// and how it ended. What the model and the TUI show of a large result. A
/// pruned result's head is its stub ([`ResultInfo::pruned_stub`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResultView {
    pub item: ItemId,
    pub info: ResultInfo,
    /// Stored bytes in all.
    pub stored_bytes: u64,
    pub head: PayloadSlice,
    /// Empty when the head already reaches the end.
    pub tail: PayloadSlice,
    /// Stored bytes between head and tail, in neither.
    pub omitted_bytes: u64,
}

impl Store {
    /// Starts a tool result at the end of the session. Its item id is
    /// known (and listed, as `running`) from now on.
    pub fn begin_result(
        &self,
        session: SessionId,
        tool: &str,
        call_ref: Option<&str>,
        args_json: &str,
    ) -> Result<ResultWriter> {
        check_item_size(
            "the tool's name, call id and arguments",
            tool.len() + call_ref.map_or(0, str::len) + args_json.len(),
        )?;
        let writer = super::liveness::this_process();
        let item = self.write(|tx| {
            let (id, _) = insert_item(tx, session, ItemKind::ToolResult, "", None, false)?;
            tx.prepare_cached(
                "INSERT INTO results (item_id, state, tool, call_ref, args_json, writer)
                 VALUES (?1, 'running', ?2, ?3, ?4, ?5)",
            )?
            .execute(params![id.0, tool, call_ref, args_json, writer])?;
            Ok(id)
        })?;
        Ok(ResultWriter {
            item,
            session,
            committed: 0,
            buffer: Vec::new(),
            buffer_stream: StreamId::Stdout,
            limit: self.options().max_result_bytes,
            dropped: 0,
            broken: false,
        })
    }

    /// Reads up to `len` bytes (capped at [`MAX_READ_BYTES`]) of a result's
    /// output from `offset`. Past the end: empty.
    pub fn read_payload(&self, item: ItemId, offset: u64, len: u64) -> Result<PayloadSlice> {
        self.read(|tx| {
            let kind: Option<String> = tx
                .query_row("SELECT kind FROM items WHERE id = ?1", [item.0], |r| {
                    r.get(0)
                })
                .optional()?;
            match kind.as_deref() {
                None => return Err(StoreError::NoItem(item).into()),
                Some("tool_result") => {}
                Some(_) => return Err(StoreError::NotAResult(item).into()),
            }
            Ok(read_range(tx, item, offset, len.min(MAX_READ_BYTES))?)
        })
    }

    /// The head (`head_bytes`) and tail (`tail_bytes`) of a result, with its
    /// metadata, in one snapshot. Memory: at most the two slices.
    pub fn result_view(
        &self,
        item: ItemId,
        head_bytes: u64,
        tail_bytes: u64,
    ) -> Result<ResultView> {
        self.read(|tx| view_in(tx, item, head_bytes, tail_bytes))
    }
}

/// [`Store::result_view`] inside a transaction.
pub(crate) fn view_in(
    tx: &rusqlite::Transaction<'_>,
    item: ItemId,
    head_bytes: u64,
    tail_bytes: u64,
) -> std::result::Result<ResultView, Fail> {
    let head_bytes = head_bytes.min(MAX_READ_BYTES);
    let tail_bytes = tail_bytes.min(MAX_READ_BYTES);
    let it = super::items::item_in(tx, item, 0)?;
    let info = it.result.ok_or(StoreError::NotAResult(item))?;
    let stored = it.payload_bytes;
    let mut head = read_range(tx, item, 0, head_bytes)?;
    if stored == 0
        && let Some(stub) = info.pruned_stub()
    {
        head.data = stub.into_bytes();
    }
    let head_end = head_bytes.min(stored);
    let tail_start = stored.saturating_sub(tail_bytes).max(head_end);
    let tail = read_range(tx, item, tail_start, stored - tail_start)?;
    Ok(ResultView {
        item,
        info,
        stored_bytes: stored,
        head,
        tail,
        omitted_bytes: tail_start - head_end,
    })
}

/// Reads `[offset, offset + len)` of an item's chunks into one buffer.
fn read_range(
    tx: &rusqlite::Transaction<'_>,
    item: ItemId,
    offset: u64,
    len: u64,
) -> rusqlite::Result<PayloadSlice> {
    let end = offset.saturating_add(len);
    let mut data = Vec::with_capacity(len.min(MAX_READ_BYTES) as usize);
    if len > 0 {
        // A chunk overlaps when it starts before `end` and ends after
        // `offset`; the index holds both, so only those rows' data is read.
        let mut stmt = tx.prepare_cached(
            "SELECT offset, data FROM chunks
             WHERE item_id = ?1 AND offset < ?3 AND offset + len > ?2 ORDER BY offset",
        )?;
        let mut rows = stmt.query(params![item.0, offset as i64, end as i64])?;
        while let Some(row) = rows.next()? {
            let start = row.get::<_, i64>(0)? as u64;
            let bytes = row.get_ref(1)?.as_blob()?;
            let from = offset.saturating_sub(start) as usize;
            let to = ((end - start) as usize).min(bytes.len());
            if from < to {
                data.extend_from_slice(&bytes[from..to]);
            }
        }
    }
    Ok(PayloadSlice { offset, data })
}

impl ResultWriter {
    pub fn item(&self) -> ItemId {
        self.item
    }

    pub fn session(&self) -> SessionId {
        self.session
    }

    /// Bytes accepted so far (committed or buffered).
    pub fn written(&self) -> u64 {
        self.committed + self.buffer.len() as u64
    }

    /// Appends output. Commits a chunk each time [`CHUNK_BYTES`] of one
    /// stream have gathered (or the stream changes); call [`flush`] to
    /// commit the rest now. Bytes past the store's per-result cap are
    /// counted as dropped.
    ///
    /// [`flush`]: ResultWriter::flush
    pub fn write(&mut self, store: &Store, stream: StreamId, mut data: &[u8]) -> Result<()> {
        self.check(store)?;
        let room = self.limit.saturating_sub(self.written());
        if data.len() as u64 > room {
            self.dropped += data.len() as u64 - room;
            data = &data[..room as usize];
        }
        while !data.is_empty() {
            if stream != self.buffer_stream && !self.buffer.is_empty() {
                self.flush(store)?;
            }
            self.buffer_stream = stream;
            if self.buffer.capacity() == 0 {
                // Exactly one chunk, never grown by doubling past it.
                self.buffer.reserve_exact(CHUNK_BYTES);
            }
            let take = (CHUNK_BYTES - self.buffer.len()).min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buffer.len() == CHUNK_BYTES {
                self.flush(store)?;
            }
        }
        Ok(())
    }

    /// Commits what is buffered as one chunk row.
    pub fn flush(&mut self, store: &Store) -> Result<()> {
        self.check(store)?;
        if self.buffer.is_empty() {
            return Ok(());
        }
        let len = self.buffer.len() as i64;
        let stream = stream_code(self.buffer_stream);
        let (item, session, offset) = (self.item.0, self.session.0, self.committed as i64);
        let buffer = &self.buffer;
        let result = store.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO chunks (item_id, offset, len, stream, data) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![item, offset, len, stream, buffer])?;
            tx.prepare_cached("UPDATE items SET payload_bytes = payload_bytes + ?2 WHERE id = ?1")?
                .execute(params![item, len])?;
            tx.prepare_cached(
                "UPDATE sessions SET payload_bytes = payload_bytes + ?2, updated_ms = ?3
                 WHERE id = ?1",
            )?
            .execute(params![session, len, now_ms()])?;
            Ok(())
        });
        match result {
            Ok(()) => {
                self.committed += len as u64;
                self.buffer.clear();
                Ok(())
            }
            Err(e) => {
                self.broken = true;
                Err(e)
            }
        }
    }

    /// Records that `cut_bytes` of output were left out here (between the
    /// head written so far and the tail written next).
    pub fn mark_cut(&mut self, store: &Store, cut_bytes: u64) -> Result<()> {
        self.flush(store)?;
        let (item, at) = (self.item.0, self.committed as i64);
        store.write(|tx| {
            tx.execute(
                "UPDATE results SET cut_offset = ?2, cut_bytes = ?3 WHERE item_id = ?1",
                params![item, at, cut_bytes as i64],
            )?;
            Ok(())
        })
    }

    /// Commits the rest and the result's end. The result is complete once
    /// this returns.
    /// After a failed write, `finish` still records the end; the bytes that
    /// were buffered then are counted in `dropped_bytes`.
    pub fn finish(mut self, store: &Store, end: &ResultEnd) -> Result<ItemId> {
        if self.broken {
            self.dropped += self.buffer.len() as u64;
            self.buffer = Vec::new();
        } else {
            self.flush(store)?;
        }
        check_item_size(
            "the result's outcome, usage and enforcement",
            end.status.len()
                + end.outcome_json.as_deref().map_or(0, str::len)
                + end.usage_json.as_deref().map_or(0, str::len)
                + end.enforcement_json.as_deref().map_or(0, str::len)
                + end.meta_json.as_deref().map_or(0, str::len),
        )?;
        let (item, dropped) = (self.item.0, self.dropped as i64);
        store.write(|tx| {
            let n = tx.execute(
                "UPDATE results SET state = 'finished', status = ?2, outcome_json = ?3,
                     usage_json = ?4, enforcement_json = ?5, bytes_seen = ?6, lines_seen = ?7,
                     dropped_bytes = ?8
                 WHERE item_id = ?1 AND state = 'running'",
                params![
                    item,
                    end.status,
                    end.outcome_json,
                    end.usage_json,
                    end.enforcement_json,
                    end.bytes_seen as i64,
                    end.lines_seen as i64,
                    dropped
                ],
            )?;
            if n == 0 {
                return Err(StoreError::Finished(self.item).into());
            }
            if let Some(meta) = &end.meta_json {
                tx.execute(
                    "UPDATE items SET meta_json = ?2 WHERE id = ?1",
                    params![item, meta],
                )?;
            }
            Ok(())
        })?;
        // The limits are checked as each result ends; a failure here
        // leaves the store over its limit until the next one, or `gc`.
        if let Err(e) = store.prune(&store.options().retention) {
            tracing::warn!("session store retention: {e}");
        }
        Ok(self.item)
    }

    /// Writes what the host's report adds to the output streamed so far:
    /// the head (when `head_in_report`: the output was not streamed through
    /// [`write`](ResultWriter::write)), the cut, the tail.
    pub fn write_report_output(
        &mut self,
        store: &Store,
        report: &bulkhead_host::CallReport,
        head_in_report: bool,
    ) -> Result<()> {
        if head_in_report {
            for seg in report.output.head() {
                self.write(store, seg.stream, &seg.data)?;
            }
        }
        if report.cut_bytes() > 0 {
            self.mark_cut(store, report.cut_bytes())?;
        }
        for seg in report.output.tail() {
            self.write(store, seg.stream, &seg.data)?;
        }
        Ok(())
    }

    /// Ends the result as `interrupted` (its call never reported an end,
    /// e.g. it could not start). What was committed stays.
    pub fn abandon(self, store: &Store) -> Result<()> {
        let item = self.item.0;
        store.write(|tx| {
            tx.execute(
                "UPDATE results SET state = 'interrupted', dropped_bytes = dropped_bytes + ?2
                 WHERE item_id = ?1 AND state = 'running'",
                params![item, self.buffer.len() as i64 + self.dropped as i64],
            )?;
            Ok(())
        })
    }

    fn check(&self, store: &Store) -> Result<()> {
        if self.broken {
            return Err(StoreError::BadValue {
                path: store.path().to_path_buf(),
                detail: format!(
                    "the writer of result {} failed earlier; its buffered bytes were not stored",
                    self.item
                ),
            });
        }
        Ok(())
    }
}

pub(crate) fn stream_code(s: StreamId) -> i64 {
    match s {
        StreamId::Stdout => 0,
        StreamId::Stderr => 1,
    }
}
