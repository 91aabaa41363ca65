//! Retention: the store's and each session's size limits, enforced by
//! pruning the oldest tool outputs to a stub; `gc` and `vacuum`.
//!
//! Only tool outputs are pruned. Messages, tool calls and a pruned result's
//! metadata (tool, arguments, outcome, sizes) stay, so a session still reads
//! as what happened; the output reads as a stub saying it was pruned, when
//! and how much ([`ResultInfo::pruned_stub`]).
//!
//! Sizes are logical: stored output plus message text. The file itself
//! shrinks only on `vacuum` (SQLite reuses freed pages for new writes
//! first), so a limit on the file would prune without ever getting under it.
//!
//! [`ResultInfo::pruned_stub`]: super::ResultInfo::pruned_stub

use rusqlite::{OptionalExtension, params};

use super::error::Result;
use super::{ItemId, SessionId, Store, now_ms};

/// Size limits of a store. `None`: no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Retention {
    /// All sessions together.
    pub max_store_bytes: Option<u64>,
    /// One session.
    pub max_session_bytes: Option<u64>,
}

/// 2 GiB: the report behind bulkhead gathered 0.7 GB in its year of use,
/// so this is about three such years before anything is pruned, and small
/// enough for any laptop disk.
pub const DEFAULT_MAX_STORE_BYTES: u64 = 2 << 30;

/// 256 MiB: hundreds of full (1 MiB) tool results, far past anything a
/// model's context can hold; the oldest outputs of a longer session go.
pub const DEFAULT_MAX_SESSION_BYTES: u64 = 256 << 20;

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_store_bytes: Some(DEFAULT_MAX_STORE_BYTES),
            max_session_bytes: Some(DEFAULT_MAX_SESSION_BYTES),
        }
    }
}

/// What a prune or `gc` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    pub results_pruned: u64,
    pub bytes_pruned: u64,
    /// Running results whose writer died, now `interrupted`.
    pub results_interrupted: u64,
}

/// What `stats` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreStats {
    pub path: std::path::PathBuf,
    pub schema_version: i64,
    pub sessions: u64,
    pub items: u64,
    pub results: u64,
    pub pruned_results: u64,
    pub chunks: u64,
    pub content_bytes: u64,
    pub payload_bytes: u64,
    /// Database file (pages in use and free), WAL file.
    pub file_bytes: u64,
    pub free_bytes: u64,
    pub wal_bytes: u64,
    pub retention: Retention,
    pub largest: Vec<LargePayload>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LargePayload {
    pub item: ItemId,
    pub session: SessionId,
    pub tool: String,
    pub payload_bytes: u64,
}

/// Results shown by `stats` as the largest.
const LARGEST_SHOWN: u32 = 10;

impl Store {
    /// Prunes oldest tool outputs until every session is within
    /// `max_session_bytes` and the store within `max_store_bytes`. Each
    /// result is pruned in its own short transaction.
    pub fn prune(&self, retention: &Retention) -> Result<PruneReport> {
        let mut report = PruneReport::default();
        if let Some(limit) = retention.max_session_bytes {
            let over: Vec<SessionId> = self.read(|tx| {
                Ok(tx
                    .prepare("SELECT id FROM sessions WHERE content_bytes + payload_bytes > ?1")?
                    .query_map([limit as i64], |r| Ok(SessionId(r.get(0)?)))?
                    .collect::<rusqlite::Result<_>>()?)
            })?;
            for session in over {
                self.prune_while(&mut report, Some(session), limit)?;
            }
        }
        if let Some(limit) = retention.max_store_bytes {
            self.prune_while(&mut report, None, limit)?;
        }
        Ok(report)
    }

    /// Prunes the oldest finished result of `session` (or of the store)
    /// while its size is over `limit`.
    fn prune_while(
        &self,
        report: &mut PruneReport,
        session: Option<SessionId>,
        limit: u64,
    ) -> Result<()> {
        loop {
            let pruned = self.write(|tx| {
                let size: i64 = tx.query_row(
                    "SELECT coalesce(sum(content_bytes + payload_bytes), 0) FROM sessions
                     WHERE ?1 IS NULL OR id = ?1",
                    [session.map(|s| s.0)],
                    |r| r.get(0),
                )?;
                if size as u64 <= limit {
                    return Ok(None);
                }
                // Oldest first: item ids grow with time across sessions.
                let victim: Option<(i64, i64, i64)> = tx
                    .query_row(
                        "SELECT i.id, i.session_id, i.payload_bytes FROM items i
                         JOIN results r ON r.item_id = i.id
                         WHERE (?1 IS NULL OR i.session_id = ?1) AND i.payload_bytes > 0
                           AND r.state != 'running'
                         ORDER BY i.id LIMIT 1",
                        [session.map(|s| s.0)],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?;
                let Some((item, owner, bytes)) = victim else {
                    return Ok(None);
                };
                tx.execute("DELETE FROM chunks WHERE item_id = ?1", [item])?;
                tx.execute(
                    "UPDATE results SET pruned_ms = ?2, pruned_bytes = pruned_bytes + ?3
                     WHERE item_id = ?1",
                    params![item, now_ms(), bytes],
                )?;
                tx.execute("UPDATE items SET payload_bytes = 0 WHERE id = ?1", [item])?;
                tx.execute(
                    "UPDATE sessions SET payload_bytes = payload_bytes - ?2 WHERE id = ?1",
                    params![owner, bytes],
                )?;
                Ok(Some(bytes as u64))
            })?;
            match pruned {
                Some(bytes) => {
                    report.results_pruned += 1;
                    report.bytes_pruned += bytes;
                }
                None => return Ok(()),
            }
        }
    }

    /// Marks results whose writer died `interrupted`, prunes to
    /// `retention`, and checkpoints the WAL into the database file.
    pub fn gc(&self, retention: &Retention) -> Result<PruneReport> {
        let running: Vec<(i64, Option<String>)> = self.read(|tx| {
            Ok(tx
                .prepare("SELECT item_id, writer FROM results WHERE state = 'running'")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?)
        })?;
        let mut interrupted = 0;
        for (item, writer) in running {
            // A result from before writers were recorded has no writer;
            // gc cannot know, so it leaves it.
            if writer
                .as_deref()
                .is_some_and(|w| !super::liveness::is_alive(w))
            {
                interrupted += self.write(|tx| {
                    Ok(tx.execute(
                        "UPDATE results SET state = 'interrupted'
                         WHERE item_id = ?1 AND state = 'running'",
                        [item],
                    )? as u64)
                })?;
            }
        }
        let mut report = self.prune(retention)?;
        report.results_interrupted = interrupted;
        self.with_conn(|c| {
            // A checkpoint that cannot finish (a reader holds old pages)
            // is not an error; the next one continues it.
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            c.execute_batch("PRAGMA optimize")
        })?;
        Ok(report)
    }

    /// Rewrites the database file without its free pages. Needs free disk
    /// about the size of the store, and holds the write lock throughout.
    pub fn vacuum(&self) -> Result<()> {
        self.with_conn(|c| c.execute_batch("VACUUM"))?;
        self.with_conn(|c| c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())))
    }

    /// Counts and sizes. Reads counters and indexes, plus one scan of the
    /// items' integer columns for the largest payloads.
    pub fn stats(&self, retention: &Retention) -> Result<StoreStats> {
        let wal_bytes = std::fs::metadata(wal_path(self.path()))
            .map(|m| m.len())
            .unwrap_or(0);
        self.read(|tx| {
            let count = |sql: &str| -> rusqlite::Result<u64> {
                tx.query_row(sql, [], |r| r.get::<_, i64>(0))
                    .map(|v| v as u64)
            };
            let (content, payload): (i64, i64) = tx.query_row(
                "SELECT coalesce(sum(content_bytes), 0), coalesce(sum(payload_bytes), 0)
                 FROM sessions",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let page_size = count("PRAGMA page_size")?;
            let largest = tx
                .prepare(
                    "SELECT i.id, i.session_id, r.tool, i.payload_bytes FROM items i
                     JOIN results r ON r.item_id = i.id
                     WHERE i.payload_bytes > 0 ORDER BY i.payload_bytes DESC LIMIT ?1",
                )?
                .query_map([LARGEST_SHOWN], |r| {
                    Ok(LargePayload {
                        item: ItemId(r.get(0)?),
                        session: SessionId(r.get(1)?),
                        tool: r.get(2)?,
                        payload_bytes: r.get::<_, i64>(3)? as u64,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(StoreStats {
                path: self.path().to_path_buf(),
                schema_version: count("PRAGMA user_version")? as i64,
                sessions: count("SELECT count(*) FROM sessions")?,
                items: count("SELECT count(*) FROM items")?,
                results: count("SELECT count(*) FROM results")?,
                pruned_results: count("SELECT count(*) FROM results WHERE pruned_ms IS NOT NULL")?,
                chunks: count("SELECT count(*) FROM chunks")?,
                content_bytes: content as u64,
                payload_bytes: payload as u64,
                file_bytes: count("PRAGMA page_count")? * page_size,
                free_bytes: count("PRAGMA freelist_count")? * page_size,
                wal_bytes,
                retention: *retention,
                largest,
            })
        })
    }
}

fn wal_path(db: &std::path::Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}
