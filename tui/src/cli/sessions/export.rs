//! `bulkhead sessions export ID`: the whole session, streamed. Memory holds
//! one item (≤ 8 MiB of text) and one 64 KiB slice of output at a time.

use std::io::Write;

use anyhow::Context;
use bulkhead_host::units::format_size;
use bulkhead_store::{Item, SessionId, Store};

use super::show::item_line;
use crate::cli::ExportFormat;

/// Output read and written per step: one chunk row.
const SLICE_BYTES: u64 = 64 << 10;

pub fn export(
    store: &Store,
    id: SessionId,
    format: ExportFormat,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let session = store.session(id)?;
    let result = (|| -> anyhow::Result<()> {
        match format {
            ExportFormat::Jsonl => {
                serde_json::to_writer(&mut *out, &serde_json::json!({ "session": session }))?;
                writeln!(out)?;
            }
            ExportFormat::Markdown => writeln!(
                out,
                "# Session {}: {}\n\nmodel {} · {} items\n",
                session.id,
                session.title,
                session.model.as_deref().unwrap_or("-"),
                session.item_count
            )?,
        }
        store.for_each_item(id, 0, |summary| -> anyhow::Result<()> {
            let item = store.item(summary.id)?;
            match format {
                ExportFormat::Jsonl => jsonl_item(store, &item, out),
                ExportFormat::Markdown => markdown_item(store, &item, out),
            }
        })??;
        out.flush()?;
        Ok(())
    })();
    match result {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other.with_context(|| format!("export of session {id}")),
    }
}

/// One JSON object per line: the item's fields, and for a tool result its
/// `output` (a pruned one's stub), escaped slice by slice.
fn jsonl_item(store: &Store, item: &Item, out: &mut impl Write) -> anyhow::Result<()> {
    let object = serde_json::to_string(item)?;
    if item.result.is_none() {
        writeln!(out, "{object}")?;
        return Ok(());
    }
    // `{…}` → `{…,"output":"…"}`: the object is written without its last
    // brace, then the output as a JSON string built piece by piece.
    let open = object.strip_suffix('}').unwrap_or(&object);
    write!(out, "{open},\"output\":\"")?;
    let mut text = Utf8Pieces::default();
    stream_output(store, item, |bytes| {
        let piece = text.push(bytes);
        let escaped = serde_json::to_string(&piece)?;
        out.write_all(&escaped.as_bytes()[1..escaped.len() - 1])?;
        Ok(())
    })?;
    let rest = serde_json::to_string(&text.finish())?;
    out.write_all(&rest.as_bytes()[1..rest.len() - 1])?;
    writeln!(out, "\"}}")?;
    Ok(())
}

/// The fence around outputs; an output holding this line would end the
/// block early, so it is long and unusual.
const FENCE: &str = "``````````";

fn markdown_item(store: &Store, item: &Item, out: &mut impl Write) -> anyhow::Result<()> {
    match &item.result {
        None => {
            writeln!(out, "## #{} {}\n\n{}\n", item.seq, item.kind, item.text)?;
            if let Some(meta) = &item.meta_json {
                writeln!(out, "{FENCE}json\n{meta}\n{FENCE}\n")?;
            }
        }
        Some(r) => {
            writeln!(
                out,
                "## {}\n\narguments: `{}`\n",
                item_line(item),
                r.args_json
            )?;
            writeln!(out, "{FENCE}text")?;
            let mut text = Utf8Pieces::default();
            stream_output(store, item, |bytes| {
                out.write_all(text.push(bytes).as_bytes())?;
                Ok(())
            })?;
            out.write_all(text.finish().as_bytes())?;
            writeln!(out, "\n{FENCE}\n")?;
        }
    }
    Ok(())
}

/// Feeds a result's stored output to `sink` slice by slice, with a marker
/// where the host cut it, or the stub of a pruned result.
fn stream_output(
    store: &Store,
    item: &Item,
    mut sink: impl FnMut(&[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let Some(info) = &item.result else {
        return Ok(());
    };
    if let Some(stub) = info.pruned_stub().filter(|_| item.payload_bytes == 0) {
        return sink(stub.as_bytes());
    }
    let marker = || format!("\n[… {} cut …]\n", format_size(info.cut_bytes));
    let mut marked = info.cut_offset.is_none() || info.cut_bytes == 0;
    let mut offset = 0;
    while offset < item.payload_bytes {
        if !marked && info.cut_offset == Some(offset) {
            sink(marker().as_bytes())?;
            marked = true;
        }
        let mut len = SLICE_BYTES.min(item.payload_bytes - offset);
        if let Some(cut) = info.cut_offset.filter(|&c| c > offset) {
            len = len.min(cut - offset);
        }
        let slice = store.read_payload(item.id, offset, len)?;
        if slice.data.is_empty() {
            break;
        }
        offset += slice.data.len() as u64;
        sink(&slice.data)?;
    }
    if !marked {
        sink(marker().as_bytes())?;
    }
    Ok(())
}

/// Turns a byte stream into text piece by piece: a character split between
/// two pieces is joined, invalid bytes become U+FFFD.
#[derive(Default)]
struct Utf8Pieces {
    /// The start of a character the last piece ended inside (≤ 3 bytes).
    carry: Vec<u8>,
}

impl Utf8Pieces {
    fn push(&mut self, bytes: &[u8]) -> String {
        let mut input = std::mem::take(&mut self.carry);
        input.extend_from_slice(bytes);
        let mut text = String::with_capacity(input.len());
        let mut rest = &input[..];
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    text.push_str(s);
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    text.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            text.push('\u{FFFD}');
                            rest = &after[n..];
                        }
                        None => {
                            self.carry = after.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        text
    }

    /// What is left: an unfinished character, as U+FFFD.
    fn finish(&mut self) -> String {
        if std::mem::take(&mut self.carry).is_empty() {
            String::new()
        } else {
            "\u{FFFD}".into()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn characters_split_across_pieces_are_joined() {
        let mut p = super::Utf8Pieces::default();
        let bytes = "aé€😀z".as_bytes();
        let mut text = String::new();
        for b in bytes {
            text.push_str(&p.push(std::slice::from_ref(b)));
        }
        text.push_str(&p.finish());
        assert_eq!(text, "aé€😀z");
        assert_eq!(p.push(b"x\xffy"), "x\u{FFFD}y");
        assert_eq!(p.push(b"\xe2\x82"), "");
        assert_eq!(p.finish(), "\u{FFFD}");
    }
}
