//! `rm`, `gc`, `vacuum`, `stats`.

use std::io::Write;

use anyhow::Context;
use bulkhead_host::units::format_size;
use bulkhead_store::{Retention, SessionId, Store};

use super::{json_line, output_result};

pub fn rm(store: &Store, id: SessionId) -> anyhow::Result<()> {
    store.delete_session(id)?;
    eprintln!("bulkhead: removed session {id}");
    Ok(())
}

pub fn gc(
    store: &Store,
    retention: &Retention,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let report = store.gc(retention)?;
    if json {
        json_line(out, &report)
    } else {
        output_result(writeln!(
            out,
            "gc: {} outputs pruned ({}), {} interrupted results marked",
            report.results_pruned,
            format_size(report.bytes_pruned),
            report.results_interrupted
        ))
    }
}

pub fn vacuum(store: &Store, retention: &Retention) -> anyhow::Result<()> {
    let before = store.stats(retention)?.file_bytes;
    store.vacuum().with_context(|| {
        format!(
            "vacuum of {} failed; the store is unchanged",
            store.path().display()
        )
    })?;
    let after = store.stats(retention)?.file_bytes;
    eprintln!(
        "bulkhead: vacuum: {} → {}",
        format_size(before),
        format_size(after)
    );
    Ok(())
}

pub fn stats(
    store: &Store,
    retention: &Retention,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let s = store.stats(retention)?;
    if json {
        return json_line(out, &s);
    }
    let limit = |l: Option<u64>| l.map_or_else(|| "off".to_owned(), format_size);
    let mut text = format!(
        "store {} (schema {})\n\
         file {} ({} free) · wal {}\n\
         {} sessions · {} items · {} tool results ({} pruned) in {} chunks\n\
         message text {} · tool outputs {}\n\
         limits: store {} · session {}\n",
        s.path.display(),
        s.schema_version,
        format_size(s.file_bytes),
        format_size(s.free_bytes),
        format_size(s.wal_bytes),
        s.sessions,
        s.items,
        s.results,
        s.pruned_results,
        s.chunks,
        format_size(s.content_bytes),
        format_size(s.payload_bytes),
        limit(s.retention.max_store_bytes),
        limit(s.retention.max_session_bytes),
    );
    if !s.largest.is_empty() {
        text.push_str("largest outputs:\n");
        for p in &s.largest {
            text.push_str(&format!(
                "  {:>9}  item {} (session {}) {}\n",
                format_size(p.payload_bytes),
                p.item,
                p.session,
                p.tool
            ));
        }
    }
    output_result(out.write_all(text.as_bytes()))
}
