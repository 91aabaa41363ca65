//! `bulkhead sessions show ID`: the session and its last items, previews
//! only (one page; no output is read).

use std::io::Write;

use bulkhead_host::units::format_size;
use bulkhead_store::{Item, SessionId, Store};

use super::list::one_line;
use super::{json_line, output_result, time::format_ms};

/// Bytes of each item's text shown: a line of a terminal, roughly.
const PREVIEW_BYTES: u32 = 160;

pub fn show(
    store: &Store,
    id: SessionId,
    items: u32,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let session = store.session(id)?;
    let last = store.last_items(id, items, PREVIEW_BYTES)?;
    if json {
        return json_line(
            out,
            &serde_json::json!({ "session": session, "items": last }),
        );
    }
    let mut text = format!(
        "session {} · {}\n  created {} · updated {} · model {} · {} items · {} text · {} outputs\n",
        session.id,
        if session.title.is_empty() {
            "(untitled)"
        } else {
            &session.title
        },
        format_ms(session.created_ms),
        format_ms(session.updated_ms),
        session.model.as_deref().unwrap_or("-"),
        session.item_count,
        format_size(session.content_bytes),
        format_size(session.payload_bytes),
    );
    if (last.len() as u64) < session.item_count {
        text.push_str(&format!(
            "  … {} earlier items (--items N shows more)\n",
            session.item_count - last.len() as u64
        ));
    }
    output_result(out.write_all(text.as_bytes()))?;
    for item in &last {
        output_result(writeln!(out, "{}", item_line(item)))?;
    }
    output_result(out.flush())
}

/// `#12 tool_result shell · completed · 1.2 MiB stored of 3.4 MiB, 5000 lines`.
pub fn item_line(item: &Item) -> String {
    let pin = if item.pinned { " (pinned)" } else { "" };
    match &item.result {
        Some(r) => {
            let status = r.status.as_deref().unwrap_or(r.state.as_str());
            let pruned = if r.pruned_ms.is_some() {
                format!(" · pruned ({} removed)", format_size(r.pruned_bytes))
            } else {
                String::new()
            };
            format!(
                "#{} tool_result {} · {status} · {} stored of {} seen, {} lines{pruned} · item {}",
                item.seq,
                r.tool,
                format_size(item.payload_bytes),
                format_size(r.bytes_seen),
                r.lines_seen,
                item.id
            )
        }
        None => format!(
            "#{} {}{pin}: {}",
            item.seq,
            item.kind,
            one_line(&item.text, PREVIEW_BYTES as usize)
        ),
    }
}
