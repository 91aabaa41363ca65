//! `read_tool_result`: one bounded slice of a tool result kept in the
//! session store, for a model that saw only the bounded view of it.
//!
//! The agent loop runs it like any tool, in a worker under a sandbox that
//! may read the store's directory and nothing of the user's. The host
//! fills in `store` and `session`; the model gives only `id`, `offset` and
//! `limit`. The database is opened read-only (`SQLITE_OPEN_READ_ONLY` and
//! `query_only`), and the slice is read chunk row by chunk row, so the
//! worker holds at most one stored chunk and the slice, whatever the
//! result's size.
//!
//! It is an internal tool: the catalogue does not list it, because only a
//! host that owns a session can supply its store and session.

use std::path::PathBuf;
use std::time::Duration;

use bulkhead_ipc::{StreamId, ToolErrorKind, ToolExit};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::args::{ChunkWriter, output_failure};
use super::{OutputSink, Tool, ToolContext, ToolEnd, ToolFailure};

/// Largest slice one call returns. The host asks for at most the agent's
/// view budget (10 KiB by default); 256 KiB bounds what a host bug or a
/// direct caller can make the worker read.
pub const MAX_LIMIT: u64 = 256 << 10;

/// Slice returned when `limit` is not given: the default view budget.
const DEFAULT_LIMIT: u64 = 10 << 10;

/// How long to wait on a writer's lock. The host writes results as they
/// stream; a read waits for one write transaction, never long.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// `PRAGMA application_id` of a bulkhead store ("BKHD"): the tool refuses
/// any other database, whatever path it is handed.
const STORE_APPLICATION_ID: i64 = 0x424b_4844;

/// Arguments of `read_tool_result`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadToolResultArgs {
    /// The session store (added by the host, never by the model).
    pub store: PathBuf,
    /// The session the result must belong to (added by the host).
    pub session: i64,
    /// The result's id, as the cut marker gives it: `r42` or `42`.
    pub id: ResultId,
    /// First byte of the slice, from 0.
    #[serde(default)]
    pub offset: u64,
    /// Bytes to return, at most 262144.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 262144))]
    pub limit: u64,
}

/// A result id: the marker's `r42`, or the bare number.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ResultId {
    Number(i64),
    Text(String),
}

impl ResultId {
    fn item(&self) -> Result<i64, ToolFailure> {
        match self {
            ResultId::Number(n) => Ok(*n),
            ResultId::Text(t) => t.trim().trim_start_matches('r').parse().map_err(|_| {
                ToolFailure::bad_args(format!(
                    "bad argument \"id\": \"{t}\" is not a result id like r42"
                ))
            }),
        }
    }
}

fn default_limit() -> u64 {
    DEFAULT_LIMIT
}

pub struct ReadToolResult;

impl Tool for ReadToolResult {
    type Args = ReadToolResultArgs;
    const NAME: &'static str = "read_tool_result";
    const DESCRIPTION: &'static str = "Returns bytes offset..offset+limit of a stored tool result \
         (the id the cut marker names), read from the session store";

    fn run(
        &self,
        args: ReadToolResultArgs,
        sink: &mut dyn OutputSink,
        _ctx: &ToolContext<'_>,
    ) -> Result<ToolEnd, ToolFailure> {
        let item = args.id.item()?;
        if args.limit == 0 || args.limit > MAX_LIMIT {
            return Err(ToolFailure::bad_args(format!(
                "bad argument \"limit\": must be 1 to {MAX_LIMIT}"
            )));
        }
        let conn = open(&args.store)?;
        let found: Option<(i64, Option<i64>)> = conn
            .query_row(
                "SELECT i.session_id, r.pruned_ms FROM results r JOIN items i ON i.id = r.item_id \
                 WHERE r.item_id = ?1",
                params![item],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(store_failure)?;
        match found {
            Some((session, _)) if session != args.session => {
                return Err(no_such_result(item));
            }
            None => return Err(no_such_result(item)),
            Some((_, Some(_))) => {
                return Err(ToolFailure::bad_args(format!(
                    "result r{item} was pruned from the store to keep it under its size limit; \
                     run the tool again to see its output"
                )));
            }
            Some((_, None)) => {}
        }
        let stored: i64 = conn
            .query_row(
                "SELECT coalesce(max(offset + len), 0) FROM chunks WHERE item_id = ?1",
                params![item],
                |r| r.get(0),
            )
            .map_err(store_failure)?;
        let stored = stored.max(0) as u64;
        let (start, end) = char_range(&conn, item, args.offset, args.limit, stored)?;
        let mut out = ChunkWriter::new(sink, StreamId::Stdout);
        copy_slice(&conn, item, start, end, &mut out)?;
        out.flush().map_err(output_failure)?;
        Ok(ToolEnd {
            exit: ToolExit::Finished,
            summary: Some(json!({
                "id": format!("r{item}"),
                "offset": start,
                "returned": end - start,
                "stored_bytes": stored,
                "more": end < stored,
            })),
        })
    }
}

/// `offset..offset+limit` within the stored bytes, each end moved (by at
/// most 3 bytes, the start forward and the end back) onto a character, so
/// the model reads no half of one; reading on from `offset + returned`
/// loses nothing. A range too short to hold one whole character stays as
/// asked, so reading always moves on.
fn char_range(
    conn: &Connection,
    item: i64,
    offset: u64,
    limit: u64,
    stored: u64,
) -> Result<(u64, u64), ToolFailure> {
    use bulkhead_ipc::utf8::{prefix_len, suffix_start};
    let start = offset.min(stored);
    let end = start.saturating_add(limit).min(stored);
    let mut s = start;
    if start > 0 && start < end {
        let ahead = read_bytes(conn, item, start, (start + 4).min(end))?;
        s = start + suffix_start(&ahead, 0) as u64;
    }
    let mut e = end;
    if end < stored && s < end {
        let from = end.saturating_sub(3).max(s);
        let around = read_bytes(conn, item, from, end + 1)?;
        e = from + prefix_len(&around, (end - from) as usize) as u64;
    }
    if e <= s {
        return Ok((start, end));
    }
    Ok((s, e))
}

/// Stored bytes `from..to` of `item` (a few bytes: the ends of a range).
fn read_bytes(conn: &Connection, item: i64, from: u64, to: u64) -> Result<Vec<u8>, ToolFailure> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT offset, data FROM chunks WHERE item_id = ?1 AND offset < ?3 \
             AND offset + len > ?2 ORDER BY offset",
        )
        .map_err(store_failure)?;
    let mut rows = stmt
        .query(params![item, from as i64, to as i64])
        .map_err(store_failure)?;
    let mut out = Vec::with_capacity((to - from) as usize);
    while let Some(row) = rows.next().map_err(store_failure)? {
        let offset = row.get::<_, i64>(0).map_err(store_failure)?.max(0) as u64;
        let data = row.get_ref(1).map_err(store_failure)?;
        let bytes = data.as_blob().map_err(|e| ToolFailure {
            kind: ToolErrorKind::Io,
            message: format!("reading the session store: chunk of r{item}: {e}"),
        })?;
        let a = from.saturating_sub(offset).min(bytes.len() as u64) as usize;
        let b = to.saturating_sub(offset).min(bytes.len() as u64) as usize;
        if a < b {
            out.extend_from_slice(&bytes[a..b]);
        }
    }
    Ok(out)
}

fn open(store: &std::path::Path) -> Result<Connection, ToolFailure> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(store, flags).map_err(|e| ToolFailure {
        kind: ToolErrorKind::Io,
        message: format!("cannot open the session store {}: {e}", store.display()),
    })?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(store_failure)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(store_failure)?;
    let app: i64 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(store_failure)?;
    if app != STORE_APPLICATION_ID {
        return Err(ToolFailure::bad_args(format!(
            "{} is not a bulkhead session store",
            store.display()
        )));
    }
    Ok(conn)
}

/// Streams stored bytes `start..end` of `item`, one chunk row at a time.
/// The first row is the one holding `start`, found through the
/// `(item_id, offset)` index.
fn copy_slice(
    conn: &Connection,
    item: i64,
    start: u64,
    end: u64,
    out: &mut ChunkWriter<'_>,
) -> Result<(), ToolFailure> {
    if start >= end {
        return Ok(());
    }
    let first: i64 = conn
        .query_row(
            "SELECT coalesce(max(offset), 0) FROM chunks WHERE item_id = ?1 AND offset <= ?2",
            params![item, start as i64],
            |r| r.get(0),
        )
        .map_err(store_failure)?;
    let mut stmt = conn
        .prepare(
            "SELECT offset, data FROM chunks WHERE item_id = ?1 AND offset >= ?2 AND offset < ?3 \
             ORDER BY offset",
        )
        .map_err(store_failure)?;
    let mut rows = stmt
        .query(params![item, first, end as i64])
        .map_err(store_failure)?;
    while let Some(row) = rows.next().map_err(store_failure)? {
        let offset: i64 = row.get(0).map_err(store_failure)?;
        let data = row.get_ref(1).map_err(store_failure)?;
        let bytes = data.as_blob().map_err(|e| ToolFailure {
            kind: ToolErrorKind::Io,
            message: format!("reading the session store: chunk of r{item}: {e}"),
        })?;
        let offset = offset.max(0) as u64;
        let from = start.saturating_sub(offset).min(bytes.len() as u64) as usize;
        let to = end.saturating_sub(offset).min(bytes.len() as u64) as usize;
        if from < to && !out.push(&bytes[from..to]).map_err(output_failure)? {
            break;
        }
    }
    Ok(())
}

fn no_such_result(item: i64) -> ToolFailure {
    ToolFailure::bad_args(format!(
        "there is no tool result r{item} in this session; use the id the cut marker gives"
    ))
}

fn store_failure(e: rusqlite::Error) -> ToolFailure {
    ToolFailure {
        kind: ToolErrorKind::Io,
        message: format!("reading the session store: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `chunks` table holding `text` in rows of `row` bytes.
    fn stored(text: &str, row: usize) -> Connection {
        let conn = Connection::open_in_memory().expect("memory db");
        conn.execute_batch(
            "CREATE TABLE chunks (item_id INTEGER, offset INTEGER, len INTEGER, data BLOB)",
        )
        .expect("table");
        for (i, piece) in text.as_bytes().chunks(row).enumerate() {
            conn.execute(
                "INSERT INTO chunks VALUES (1, ?1, ?2, ?3)",
                params![(i * row) as i64, piece.len() as i64, piece],
            )
            .expect("row");
        }
        conn
    }

    #[test]
    fn a_read_starts_and_ends_on_two_three_and_four_byte_characters() {
        for ch in ['é', '€', '🦀'] {
            let text: String = std::iter::repeat_n(ch, 40).collect();
            let n = text.len() as u64;
            let conn = stored(&text, 7);
            // Every range here holds a whole character, wherever it starts.
            for offset in 0..n - 14 {
                for limit in 7..14 {
                    let (s, e) = char_range(&conn, 1, offset, limit, n).expect("range");
                    let case = format!("{ch} offset {offset} limit {limit}: {s}..{e}");
                    assert!(text.is_char_boundary(s as usize), "{case}");
                    assert!(text.is_char_boundary(e as usize), "{case}");
                    assert!(s >= offset && s - offset <= 3, "{case}");
                    assert!(e <= offset + limit && e > s, "{case}");
                }
            }
        }
    }

    #[test]
    fn a_read_too_short_for_one_character_stays_as_asked() {
        let text: String = std::iter::repeat_n('🦀', 4).collect();
        let conn = stored(&text, 5);
        assert_eq!(char_range(&conn, 1, 1, 2, 16).expect("range"), (1, 3));
    }
}
