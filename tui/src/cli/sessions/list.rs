//! `bulkhead sessions list`: streamed a page at a time.

use std::io::Write;

use bulkhead_host::units::format_size;
use bulkhead_store::{SessionSummary, Store};

use super::{output_result, time::format_ms};

pub fn list(store: &Store, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let mut first = true;
    if !json {
        output_result(writeln!(
            out,
            "{:>6}  {:<16}  {:>6}  {:>9}  {:<12}  TITLE",
            "ID", "UPDATED (UTC)", "ITEMS", "SIZE", "MODEL"
        ))?;
    } else {
        output_result(write!(out, "["))?;
    }
    let visited = store.for_each_session(|s| {
        if json {
            if !first {
                write!(out, ",")?;
            }
            first = false;
            serde_json::to_writer(&mut *out, s)?;
            Ok(())
        } else {
            writeln!(out, "{}", row(s))
        }
    })?;
    output_result(visited)?;
    if json {
        output_result(writeln!(out, "]"))?;
    }
    output_result(out.flush())
}

fn row(s: &SessionSummary) -> String {
    format!(
        "{:>6}  {:<16}  {:>6}  {:>9}  {:<12}  {}",
        s.id,
        format_ms(s.updated_ms),
        s.item_count,
        format_size(s.content_bytes + s.payload_bytes),
        s.model.as_deref().unwrap_or("-"),
        one_line(&s.title, 60)
    )
}

/// The first line of `text`, at most `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    let mut s: String = line.chars().take(max).collect();
    if line.chars().count() > max || text.lines().nth(1).is_some() {
        s.push('…');
    }
    s
}
