//! Sessions: create, list (a page of small columns), get, retitle, delete.

use rusqlite::{OptionalExtension, Row, params};

use super::error::{Result, StoreError};
use super::{MAX_ITEM_BYTES, MAX_PAGE_ROWS, SessionId, Store, now_ms};

/// What a new session starts with.
#[derive(Debug, Clone, Default)]
pub struct NewSession {
    pub title: String,
    pub model: Option<String>,
    /// The configuration the session runs under, as JSON, kept so a
    /// resumed session can show what it ran with.
    pub config_json: Option<String>,
}

/// One session, as listed: no item content, no payload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionSummary {
    pub id: SessionId,
    pub title: String,
    pub model: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub item_count: u64,
    /// Bytes of message text and meta JSON.
    pub content_bytes: u64,
    /// Bytes of stored tool output.
    pub payload_bytes: u64,
}

const SUMMARY_COLUMNS: &str =
    "id, title, model, created_ms, updated_ms, item_count, content_bytes, payload_bytes";

fn summary(row: &Row<'_>) -> rusqlite::Result<SessionSummary> {
    Ok(SessionSummary {
        id: SessionId(row.get(0)?),
        title: row.get(1)?,
        model: row.get(2)?,
        created_ms: row.get(3)?,
        updated_ms: row.get(4)?,
        item_count: row.get::<_, i64>(5)? as u64,
        content_bytes: row.get::<_, i64>(6)? as u64,
        payload_bytes: row.get::<_, i64>(7)? as u64,
    })
}

impl Store {
    pub fn create_session(&self, new: &NewSession) -> Result<SessionId> {
        let size = new.title.len()
            + new.model.as_deref().map_or(0, str::len)
            + new.config_json.as_deref().map_or(0, str::len);
        if size as u64 > MAX_ITEM_BYTES {
            return Err(StoreError::TooLarge {
                what: "the session's title, model and config",
                size: size as u64,
                limit: MAX_ITEM_BYTES,
            });
        }
        let now = now_ms();
        self.write(|tx| {
            tx.execute(
                "INSERT INTO sessions (created_ms, updated_ms, title, model, config_json)
                 VALUES (?1, ?1, ?2, ?3, ?4)",
                params![now, new.title, new.model, new.config_json],
            )?;
            Ok(SessionId(tx.last_insert_rowid()))
        })
    }

    /// One session's summary.
    pub fn session(&self, id: SessionId) -> Result<SessionSummary> {
        self.read(|tx| {
            tx.query_row(
                &format!("SELECT {SUMMARY_COLUMNS} FROM sessions WHERE id = ?1"),
                [id.0],
                summary,
            )
            .optional()?
            .ok_or(StoreError::NoSession(id).into())
        })
    }

    /// The config snapshot a session was created with.
    pub fn session_config(&self, id: SessionId) -> Result<Option<String>> {
        self.read(|tx| {
            tx.query_row(
                "SELECT config_json FROM sessions WHERE id = ?1",
                [id.0],
                |r| r.get(0),
            )
            .optional()?
            .ok_or(StoreError::NoSession(id).into())
        })
    }

    /// Sessions, most recently updated first, `limit` (≤ [`MAX_PAGE_ROWS`])
    /// at a time. `before`: the last row of the previous page, to continue
    /// after it. Reads only the `sessions` table.
    pub fn list_sessions(
        &self,
        before: Option<&SessionSummary>,
        limit: u32,
    ) -> Result<Vec<SessionSummary>> {
        let limit = limit.min(MAX_PAGE_ROWS);
        let (updated, id) = before.map_or((i64::MAX, i64::MAX), |s| (s.updated_ms, s.id.0));
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {SUMMARY_COLUMNS} FROM sessions
                 WHERE (updated_ms, id) < (?1, ?2)
                 ORDER BY updated_ms DESC, id DESC LIMIT ?3"
            ))?;
            let rows = stmt.query_map(params![updated, id, limit], summary)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Visits every session, most recently updated first, a page at a
    /// time: memory holds one page, whatever the store's size.
    pub fn for_each_session(
        &self,
        mut f: impl FnMut(&SessionSummary) -> std::io::Result<()>,
    ) -> Result<std::io::Result<()>> {
        /// Rows per page: small enough to be nothing in memory, large
        /// enough that 1,200 sessions take a few queries.
        const PAGE: u32 = 256;
        let mut last: Option<SessionSummary> = None;
        loop {
            let page = self.list_sessions(last.as_ref(), PAGE)?;
            for s in &page {
                if let Err(e) = f(s) {
                    return Ok(Err(e));
                }
            }
            if page.len() < PAGE as usize {
                return Ok(Ok(()));
            }
            last = page.into_iter().last();
        }
    }

    pub fn set_title(&self, id: SessionId, title: &str) -> Result<()> {
        if title.len() as u64 > MAX_ITEM_BYTES {
            return Err(StoreError::TooLarge {
                what: "the title",
                size: title.len() as u64,
                limit: MAX_ITEM_BYTES,
            });
        }
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE sessions SET title = ?2, updated_ms = ?3 WHERE id = ?1",
                params![id.0, title, now_ms()],
            )?;
            if n == 0 {
                return Err(StoreError::NoSession(id).into());
            }
            Ok(())
        })
    }

    /// Deletes a session with its items and payloads.
    ///
    /// Payload chunks go first, in batches of their own short transactions,
    /// so deleting a 700 MB session does not hold the write lock (and every
    /// other bulkhead) for the whole delete.
    pub fn delete_session(&self, id: SessionId) -> Result<()> {
        /// Chunks per transaction: ≤ 256 × 64 KiB = 16 MiB of pages freed
        /// per commit, a few ms of lock each.
        const BATCH: i64 = 256;
        self.session(id)?;
        loop {
            let deleted = self.write(|tx| {
                Ok(tx.execute(
                    "DELETE FROM chunks WHERE id IN (
                         SELECT c.id FROM items i JOIN chunks c ON c.item_id = i.id
                         WHERE i.session_id = ?1 LIMIT ?2)",
                    params![id.0, BATCH],
                )?)
            })?;
            if deleted == 0 {
                break;
            }
        }
        self.write(|tx| {
            let n = tx.execute("DELETE FROM sessions WHERE id = ?1", [id.0])?;
            if n == 0 {
                return Err(StoreError::NoSession(id).into());
            }
            Ok(())
        })
    }
}
