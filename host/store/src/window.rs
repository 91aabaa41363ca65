//! The history window of a model request, chosen in SQL.
//!
//! Selection reads only integer columns of the last `max_items` rows
//! (`content_bytes`, `payload_bytes`): a running sum over them, newest
//! first, stops at the budget. Only the chosen items are then loaded, each
//! tool result as its head + tail view. Memory is the budget plus the
//! pinned items, whatever the session's size.
//!
//! The window is contiguous (the newest items, none skipped) but may begin
//! with a tool result whose call fell outside it; model APIs that pair
//! calls with results want such a leading orphan dropped, which is the
//! caller's rule to apply.

use rusqlite::params;

use super::error::Result;
use super::items::{Item, item_in};
use super::payload::{ResultView, view_in};
use super::{Fail, ItemId, MAX_PAGE_ROWS, SessionId, Store};

/// What a window may hold.
#[derive(Debug, Clone, Copy)]
pub struct WindowSpec {
    /// Newest items considered (capped at [`MAX_PAGE_ROWS`]).
    pub max_items: u32,
    /// Bytes of text, meta and result views the window may hold, pinned
    /// items included.
    pub budget_bytes: u64,
    /// Head and tail of each tool result in the window.
    pub view_head: u64,
    pub view_tail: u64,
}

/// Most pinned items a window carries. A session pins its system prompt
/// (and perhaps a few notes); a caller pinning everything must not make the
/// window unbounded.
pub const MAX_PINNED: u32 = 16;

/// One item of a window: the item, whole, and for a tool result its view.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WindowItem {
    pub item: Item,
    pub view: Option<ResultView>,
    /// What the item counted against the budget.
    pub cost: u64,
}

/// The items of a model request, oldest first.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryWindow {
    /// Pinned items (the system prompt), in session order.
    pub pinned: Vec<WindowItem>,
    /// The newest items that fit, in session order.
    pub items: Vec<WindowItem>,
    /// Items of the session older than the window (not pinned).
    pub omitted_items: u64,
    /// Bytes counted against the budget.
    pub used_bytes: u64,
}

impl Store {
    /// The pinned items and the newest items within `spec`, loaded.
    pub fn history_window(&self, session: SessionId, spec: &WindowSpec) -> Result<HistoryWindow> {
        self.read(|tx| {
            // Existence check: a bad id is an error, not an empty window.
            let count: i64 = tx
                .query_row(
                    "SELECT item_count FROM sessions WHERE id = ?1",
                    [session.0],
                    |r| r.get(0),
                )
                .map_err(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => {
                        Fail::Store(super::StoreError::NoSession(session))
                    }
                    e => Fail::Sql(e),
                })?;
            let view = spec.view_head.saturating_add(spec.view_tail) as i64;
            let pinned_ids: Vec<(ItemId, u64)> = tx
                .prepare_cached(
                    "SELECT id, content_bytes + min(payload_bytes, ?2) FROM items
                     WHERE session_id = ?1 AND pinned = 1 ORDER BY seq LIMIT ?3",
                )?
                .query_map(params![session.0, view, MAX_PINNED], |r| {
                    Ok((ItemId(r.get(0)?), r.get::<_, i64>(1)? as u64))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let pinned_cost: u64 = pinned_ids.iter().map(|(_, c)| c).sum();
            let left = spec.budget_bytes.saturating_sub(pinned_cost) as i64;
            let max_items = spec.max_items.min(MAX_PAGE_ROWS);
            // The CTE takes at most `max_items` rows of three integers; the
            // running sum runs over those only.
            let chosen: Vec<(ItemId, u64)> = tx
                .prepare_cached(
                    "WITH last AS (
                         SELECT id, seq, content_bytes + min(payload_bytes, ?2) AS cost
                         FROM items WHERE session_id = ?1 AND pinned = 0
                         ORDER BY seq DESC LIMIT ?3),
                     summed AS (
                         SELECT id, seq, cost,
                                sum(cost) OVER (ORDER BY seq DESC ROWS UNBOUNDED PRECEDING) AS run
                         FROM last)
                     SELECT id, cost FROM summed WHERE run <= ?4 ORDER BY seq",
                )?
                .query_map(params![session.0, view, max_items, left], |r| {
                    Ok((ItemId(r.get(0)?), r.get::<_, i64>(1)? as u64))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let pinned_count: i64 = tx.query_row(
                "SELECT count(*) FROM items WHERE session_id = ?1 AND pinned = 1",
                [session.0],
                |r| r.get(0),
            )?;
            let load = |ids: &[(ItemId, u64)]| -> std::result::Result<Vec<WindowItem>, Fail> {
                ids.iter()
                    .map(|&(id, cost)| {
                        let item = item_in(tx, id, super::MAX_ITEM_BYTES)?;
                        let view = match item.result {
                            Some(_) => Some(view_in(tx, id, spec.view_head, spec.view_tail)?),
                            None => None,
                        };
                        Ok(WindowItem { item, view, cost })
                    })
                    .collect()
            };
            let items = load(&chosen)?;
            let used = pinned_cost + chosen.iter().map(|(_, c)| c).sum::<u64>();
            Ok(HistoryWindow {
                pinned: load(&pinned_ids)?,
                omitted_items: (count - pinned_count - chosen.len() as i64).max(0) as u64,
                items,
                used_bytes: used,
            })
        })
    }
}
