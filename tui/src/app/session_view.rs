//! A stored session on screen: the picker's rows, and the conversation
//! rebuilt from a session's last items (their text previews and result
//! metadata; outputs stay in the store and the pager reads them there).

use bulkhead_host::KillReason;
use bulkhead_store::{Item, ItemKind, RecordedLimits, SessionId, SessionSummary};

use super::card::{Card, CardOutcome};
use super::sessions::SessionRow;
use super::state::{App, Entry};
use super::store_io::{LazySession, StoreIo};

/// Sessions the picker lists: a page of the newest.
pub const PICKER_ROWS: u32 = 200;

/// Items shown when a session is opened: a screenful many times over; the
/// rest stays in the store.
const ITEMS_SHOWN: u32 = 100;

/// Bytes of each item's text read to show it: a long message is cut
/// here, never loaded whole.
const PREVIEW_BYTES: u32 = 4096;

/// Stored cards get ids apart from the host's call ids (which count up
/// from 1), so selection never confuses the two.
const STORED_CARD_BIT: u64 = 1 << 63;

pub fn row(s: &SessionSummary) -> SessionRow {
    SessionRow {
        id: s.id.to_string(),
        title: s.title.clone(),
        updated: age(s.updated_ms),
        items: s.item_count,
    }
}

/// `5m ago`, `3h ago`, `2d ago`.
fn age(ms: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let secs = ((now - ms) / 1000).max(0);
    match secs {
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86_400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

/// The newest session, for `--continue`.
pub fn last(store: &StoreIo) -> Result<Option<SessionId>, String> {
    let list = store
        .read(|s| s.list_sessions(None, 1))?
        .map_err(|e| e.to_string())?;
    Ok(list.first().map(|s| s.id))
}

/// Makes `id` the app's session and shows its last items.
pub fn open(app: &mut App, store: &StoreIo, id: &str) -> Result<(), String> {
    let id: SessionId = id.parse()?;
    let summary = store
        .read(|s| s.session(id))?
        .map_err(|e| format!("session {id}: {e}"))?;
    let items = store
        .read(|s| s.last_items(id, ITEMS_SHOWN, PREVIEW_BYTES))?
        .map_err(|e| format!("session {id}: {e}"))?;
    app.entries.clear();
    app.outputs_in_memory.clear();
    app.selected = None;
    app.scroll = 0;
    app.note(&format!(
        "Session **{id}** ({}): {} items{}",
        summary.title,
        summary.item_count,
        if summary.item_count > u64::from(ITEMS_SHOWN) {
            format!(", the last {ITEMS_SHOWN} shown")
        } else {
            String::new()
        }
    ));
    for item in &items {
        show(app, store, item);
    }
    app.session = Some(LazySession::existing(id));
    Ok(())
}

fn show(app: &mut App, store: &StoreIo, item: &Item) {
    match item.kind {
        ItemKind::User => app.push(Entry::User(item.text.clone())),
        ItemKind::Assistant | ItemKind::Notice | ItemKind::System => app.note(&item.text),
        ItemKind::ToolCall => {}
        ItemKind::ToolResult => {
            if let Some(card) = stored_card(store, item) {
                let id = card.call_id;
                app.push(Entry::Card(Box::new(card)));
                app.selected = Some(id);
            }
        }
    }
}

/// A finished card for a stored result, read by its id.
pub fn stored_card_by_id(store: &StoreIo, id: bulkhead_store::ItemId) -> Option<Card> {
    let item = store.read(|s| s.item(id)).ok()?.ok()?;
    stored_card(store, &item)
}

/// A finished card from a stored result's metadata.
fn stored_card(store: &StoreIo, item: &Item) -> Option<Card> {
    let r = item.result.as_ref()?;
    let args: serde_json::Value = serde_json::from_str(&r.args_json).unwrap_or_default();
    let short = ["command", "pattern", "path"]
        .iter()
        .filter_map(|k| args[*k].as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let mut card = Card::new(
        STORED_CARD_BIT | item.id.0 as u64,
        &r.tool,
        &short,
        recorded_limits(item),
    );
    let outcome: serde_json::Value = r
        .outcome_json
        .as_deref()
        .and_then(|o| serde_json::from_str(o).ok())
        .unwrap_or_default();
    let reason = outcome["reason"].as_str().unwrap_or("").to_owned();
    card.outcome = Some(match r.status.as_deref() {
        Some("completed") => CardOutcome::Completed { exit: None },
        Some("truncated") => CardOutcome::Truncated {
            kept: item.payload_bytes,
            seen: r.bytes_seen,
            lines: r.lines_seen,
        },
        Some("killed") => CardOutcome::Killed {
            reason: kill_reason(&reason),
        },
        Some(other) => CardOutcome::Failed {
            error: format!("{other}: {reason}"),
        },
        None => CardOutcome::Failed {
            error: "interrupted: the app ended before the call did".into(),
        },
    });
    let usage: serde_json::Value = r
        .usage_json
        .as_deref()
        .and_then(|u| serde_json::from_str(u).ok())
        .unwrap_or_default();
    let n = |k: &str| usage[k].as_u64().unwrap_or(0);
    card.final_usage = Some((
        n("peak_rss_bytes"),
        n("cpu_ms"),
        std::time::Duration::from_millis(n("wall_ms")),
    ));
    card.live.bytes_seen = r.bytes_seen;
    card.kept_bytes = item.payload_bytes;
    if item.payload_bytes > 0 {
        card.output = Some(store.source(item.id, item.payload_bytes));
    }
    Some(card)
}

/// The limits the call ran under, as its meta recorded them; the
/// defaults for results recorded before meta carried them.
fn recorded_limits(item: &Item) -> bulkhead_host::CallLimits {
    let base = bulkhead_host::CallLimits::default();
    match item
        .meta_json
        .as_deref()
        .and_then(RecordedLimits::from_meta)
    {
        Some(recorded) => recorded.over(base),
        None => base,
    }
}

fn kill_reason(text: &str) -> KillReason {
    match text {
        "memory" => KillReason::Memory,
        "cpu" => KillReason::Cpu,
        "timeout" => KillReason::Timeout,
        "output" => KillReason::Output,
        other => other
            .strip_prefix("signal(")
            .and_then(|n| n.trim_end_matches(')').parse().ok())
            .map_or(KillReason::Cancelled, KillReason::Signal),
    }
}
