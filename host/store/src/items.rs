//! Items: append a message, page through a session, read one item.

use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::error::{Result, StoreError};
use super::result_info::ResultInfo;
use super::{Fail, ItemId, MAX_ITEM_BYTES, MAX_PAGE_ROWS, SessionId, Store, now_ms};

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A system prompt (usually pinned).
    System,
    User,
    /// An assistant message: text, and its tool calls in `meta`.
    Assistant,
    /// One tool call the model asked for: name and arguments in `meta`.
    ToolCall,
    /// A tool's result: output in chunks, see [`ResultInfo`].
    ToolResult,
    /// Something bulkhead tells the user (a cancel, a pruned payload).
    Notice,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::System => "system",
            ItemKind::User => "user",
            ItemKind::Assistant => "assistant",
            ItemKind::ToolCall => "tool_call",
            ItemKind::ToolResult => "tool_result",
            ItemKind::Notice => "notice",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<ItemKind> {
        Some(match s {
            "system" => ItemKind::System,
            "user" => ItemKind::User,
            "assistant" => ItemKind::Assistant,
            "tool_call" => ItemKind::ToolCall,
            "tool_result" => ItemKind::ToolResult,
            "notice" => ItemKind::Notice,
            _ => return None,
        })
    }
}

impl std::fmt::Display for ItemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message item to append (tool results use [`Store::begin_result`]).
#[derive(Debug, Clone)]
pub struct NewItem {
    pub kind: ItemKind,
    pub text: String,
    /// Structured extras as JSON: an assistant's tool calls, a tool call's
    /// name, id and arguments.
    pub meta_json: Option<String>,
    /// Pinned items (the system prompt) are in every history window.
    pub pinned: bool,
}

impl NewItem {
    pub fn new(kind: ItemKind, text: impl Into<String>) -> NewItem {
        NewItem {
            kind,
            text: text.into(),
            meta_json: None,
            pinned: false,
        }
    }

    /// A pinned system prompt.
    pub fn system_prompt(text: impl Into<String>) -> NewItem {
        NewItem {
            pinned: true,
            ..NewItem::new(ItemKind::System, text)
        }
    }

    pub fn with_meta(mut self, meta_json: impl Into<String>) -> NewItem {
        self.meta_json = Some(meta_json.into());
        self
    }
}

/// One item. From [`Store::items`], `text` is a preview (see
/// [`ItemPage::preview_bytes`]) and `text_bytes` its full size; from
/// [`Store::item`] it is whole.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Item {
    pub id: ItemId,
    pub session: SessionId,
    pub seq: u64,
    pub kind: ItemKind,
    pub pinned: bool,
    pub created_ms: i64,
    pub text: String,
    /// Size of the whole text in bytes.
    pub text_bytes: u64,
    /// The meta JSON; `None` in a page when over its preview size.
    pub meta_json: Option<String>,
    /// Bytes of stored tool output (tool results only).
    pub payload_bytes: u64,
    /// A tool result's state and figures (tool results only).
    pub result: Option<ResultInfo>,
}

/// Which items [`Store::items`] returns.
#[derive(Debug, Clone, Copy)]
pub struct ItemPage {
    /// Items with `seq` greater than this (0: from the first).
    pub after_seq: u64,
    /// At most this many (capped at [`MAX_PAGE_ROWS`]).
    pub limit: u32,
    /// Text and meta cut to this many bytes each (on a character boundary).
    pub preview_bytes: u32,
}

impl Default for ItemPage {
    fn default() -> Self {
        ItemPage {
            after_seq: 0,
            limit: 100,
            preview_bytes: 200,
        }
    }
}

/// The columns of `items i LEFT JOIN results r` that make an [`Item`];
/// `?P` is the preview size in bytes (text is cut in SQL, as a blob, so the
/// page never carries whole texts).
pub(crate) const ITEM_COLUMNS: &str = "i.id, i.session_id, i.seq, i.kind, i.pinned, i.created_ms,
     coalesce(substr(CAST(i.text AS BLOB), 1, ?P), x''), length(CAST(i.text AS BLOB)),
     CASE WHEN length(CAST(i.meta_json AS BLOB)) <= ?P THEN i.meta_json END,
     i.payload_bytes, r.state, r.tool, r.call_ref, r.args_json, r.status, r.outcome_json,
     r.usage_json, r.enforcement_json, r.bytes_seen, r.lines_seen, r.cut_offset, r.cut_bytes,
     r.dropped_bytes, r.pruned_ms, r.pruned_bytes";

pub(crate) fn item_row(row: &Row<'_>) -> rusqlite::Result<Item> {
    let kind: String = row.get(3)?;
    let kind = ItemKind::parse(&kind).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            3,
            rusqlite::types::Type::Text,
            format!("unknown item kind \"{kind}\"").into(),
        )
    })?;
    let text: Vec<u8> = row.get(6)?;
    let result = if kind == ItemKind::ToolResult {
        ResultInfo::from_row(row, 10)?
    } else {
        None
    };
    Ok(Item {
        id: ItemId(row.get(0)?),
        session: SessionId(row.get(1)?),
        seq: row.get::<_, i64>(2)? as u64,
        kind,
        pinned: row.get(4)?,
        created_ms: row.get(5)?,
        text: utf8_prefix(text),
        text_bytes: row.get::<_, i64>(7)? as u64,
        meta_json: row.get(8)?,
        payload_bytes: row.get::<_, i64>(9)? as u64,
        result,
    })
}

/// The bytes as text, dropping a character cut at the end.
fn utf8_prefix(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let mut bytes = e.into_bytes();
            bytes.truncate(valid);
            String::from_utf8(bytes).unwrap_or_default()
        }
    }
}

/// Inserts an item row at the session's next `seq` and updates the
/// session's counters. Returns the id and the seq.
pub(crate) fn insert_item(
    tx: &Transaction<'_>,
    session: SessionId,
    kind: ItemKind,
    text: &str,
    meta_json: Option<&str>,
    pinned: bool,
) -> std::result::Result<(ItemId, u64), Fail> {
    let seq: i64 = tx
        .query_row(
            "SELECT next_seq FROM sessions WHERE id = ?1",
            [session.0],
            |r| r.get(0),
        )
        .optional()?
        .ok_or(StoreError::NoSession(session))?;
    let content = (text.len() + meta_json.map_or(0, str::len)) as i64;
    let now = now_ms();
    tx.prepare_cached(
        "INSERT INTO items (session_id, seq, kind, pinned, created_ms, content_bytes, text, meta_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        session.0,
        seq,
        kind.as_str(),
        pinned,
        now,
        content,
        text,
        meta_json
    ])?;
    let id = ItemId(tx.last_insert_rowid());
    tx.prepare_cached(
        "UPDATE sessions SET next_seq = next_seq + 1, item_count = item_count + 1,
             content_bytes = content_bytes + ?2, updated_ms = ?3 WHERE id = ?1",
    )?
    .execute(params![session.0, content, now])?;
    Ok((id, seq as u64))
}

pub(crate) fn check_item_size(what: &'static str, size: usize) -> Result<()> {
    if size as u64 > MAX_ITEM_BYTES {
        return Err(StoreError::TooLarge {
            what,
            size: size as u64,
            limit: MAX_ITEM_BYTES,
        });
    }
    Ok(())
}

impl Store {
    /// Appends a message item at the end of the session. Returns once it
    /// is committed.
    pub fn append(&self, session: SessionId, item: &NewItem) -> Result<ItemId> {
        if item.kind == ItemKind::ToolResult {
            return Err(StoreError::BadValue {
                path: self.path().to_path_buf(),
                detail: "a tool result is written with begin_result, not append".into(),
            });
        }
        check_item_size(
            "the item's text and meta",
            item.text.len() + item.meta_json.as_deref().map_or(0, str::len),
        )?;
        self.write(|tx| {
            let (id, _) = insert_item(
                tx,
                session,
                item.kind,
                &item.text,
                item.meta_json.as_deref(),
                item.pinned,
            )?;
            Ok(id)
        })
    }

    /// A page of a session's items in order, with previews of their text:
    /// never a payload, never more than `page.limit` rows.
    pub fn items(&self, session: SessionId, page: ItemPage) -> Result<Vec<Item>> {
        let limit = page.limit.min(MAX_PAGE_ROWS);
        self.read(|tx| {
            let exists: Option<i64> = tx
                .query_row("SELECT 1 FROM sessions WHERE id = ?1", [session.0], |r| {
                    r.get(0)
                })
                .optional()?;
            if exists.is_none() {
                return Err(StoreError::NoSession(session).into());
            }
            let sql = format!(
                "SELECT {} FROM items i LEFT JOIN results r ON r.item_id = i.id
                 WHERE i.session_id = ?1 AND i.seq > ?2 ORDER BY i.seq LIMIT ?3",
                ITEM_COLUMNS.replace("?P", "?4")
            );
            let mut stmt = tx.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                params![session.0, page.after_seq as i64, limit, page.preview_bytes],
                item_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Visits every item of a session in order, a page at a time, with
    /// previews of `preview_bytes`: memory holds one page, whatever the
    /// session's size. Stops at the first error `f` returns.
    pub fn for_each_item<E>(
        &self,
        session: SessionId,
        preview_bytes: u32,
        mut f: impl FnMut(&Item) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<(), E>> {
        /// Items per page: small rows (previews), a few queries per
        /// thousand items.
        const PAGE: u32 = 256;
        let mut after = 0;
        loop {
            let page = self.items(
                session,
                ItemPage {
                    after_seq: after,
                    limit: PAGE,
                    preview_bytes,
                },
            )?;
            for item in &page {
                if let Err(e) = f(item) {
                    return Ok(Err(e));
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE as usize => after = last.seq,
                _ => return Ok(Ok(())),
            }
        }
    }

    /// The last `n` items of a session (≤ [`MAX_PAGE_ROWS`]), in order.
    pub fn last_items(&self, session: SessionId, n: u32, preview_bytes: u32) -> Result<Vec<Item>> {
        let next: i64 = self.read(|tx| {
            Ok(tx
                .query_row(
                    "SELECT next_seq FROM sessions WHERE id = ?1",
                    [session.0],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or(StoreError::NoSession(session))?)
        })?;
        let n = n.min(MAX_PAGE_ROWS);
        let after = (next - 1 - i64::from(n)).max(0) as u64;
        self.items(
            session,
            ItemPage {
                after_seq: after,
                limit: n,
                preview_bytes,
            },
        )
    }

    /// One item, with its whole text and meta (bounded by
    /// [`MAX_ITEM_BYTES`]); a tool result's output is read separately.
    pub fn item(&self, id: ItemId) -> Result<Item> {
        self.read(|tx| item_in(tx, id, MAX_ITEM_BYTES))
    }
}

/// One item inside a transaction, its text cut to `text_bytes`.
pub(crate) fn item_in(
    tx: &Transaction<'_>,
    id: ItemId,
    text_bytes: u64,
) -> std::result::Result<Item, Fail> {
    let sql = format!(
        "SELECT {} FROM items i LEFT JOIN results r ON r.item_id = i.id WHERE i.id = ?1",
        ITEM_COLUMNS.replace("?P", "?2")
    );
    Ok(tx
        .prepare_cached(&sql)?
        .query_row(params![id.0, text_bytes as i64], item_row)
        .optional()?
        .ok_or(StoreError::NoItem(id))?)
}
