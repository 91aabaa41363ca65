//! The MCP relay's JSON-RPC cutter (`cut_tool_result`) and the id finder
//! for oversized lines (`id_in_prefix`): a cut result is valid JSON-RPC for
//! the same request, within the limit, keeping a prefix of the text on a
//! character boundary; an id found in a prefix is one the prefix holds.

use bulkhead_worker::tools::mcp_stdio::jsonrpc::{classify, cut_tool_result, id_in_prefix};
use serde_json::Value;

use super::Params;

/// What the cut line says after the kept text.
const NOTE_START: &str = "\n[bulkhead cut this tools/call result";

pub fn cut(data: &[u8]) {
    let mut p = Params::new(data);
    let limit = usize::from(p.u16());
    let line = p.rest();

    if let Some(id) = id_in_prefix(line) {
        let v: Value =
            serde_json::from_str(&id).unwrap_or_else(|e| panic!("id {id:?} is not JSON: {e}"));
        assert!(
            v.is_number() || v.is_string(),
            "id {id:?} is neither a number nor a string"
        );
        assert!(
            line.windows(id.len()).any(|w| w == id.as_bytes()),
            "id {id:?} is not in the prefix"
        );
    }

    let Ok(mut msg) = serde_json::from_slice::<Value>(line) else {
        return;
    };
    let _ = classify(&msg);
    let original = msg.clone();
    let Some(out) = cut_tool_result(&mut msg, line, limit) else {
        let is_result = original.get("result").is_some_and(Value::is_object);
        assert!(
            line.len() <= limit || !is_result,
            "a {}-byte result over a {limit}-byte limit was not cut",
            line.len()
        );
        return;
    };
    assert!(
        line.len() > limit,
        "a {}-byte line within {limit} was cut",
        line.len()
    );
    assert_eq!(out.last(), Some(&b'\n'), "a cut line ends with its newline");
    let cut: Value = serde_json::from_slice(&out[..out.len() - 1])
        .unwrap_or_else(|e| panic!("a cut result is not JSON: {e}"));
    assert_eq!(
        cut.get("id"),
        original.get("id"),
        "the cut result answers another id"
    );
    assert_eq!(cut.get("jsonrpc"), original.get("jsonrpc"));
    let text = cut["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("a cut result has no text: {cut}"));
    let Some(at) = text.rfind(NOTE_START) else {
        panic!("a cut result does not say it was cut: {text:?}");
    };
    let kept = &text[..at];
    // The kept text is the start of the original texts joined by newlines.
    let joined: Vec<&str> = original["result"]["content"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let joined = joined.join("\n");
    assert!(
        joined.starts_with(kept),
        "the kept text is not a prefix of the original"
    );
    // Within the limit, unless what the line must keep (its id, its other
    // fields, the note) is over it alone: then no text is kept.
    assert!(
        out.len() <= limit || kept.is_empty(),
        "a cut line of {} bytes keeps {} bytes of text over a {limit}-byte limit",
        out.len(),
        kept.len()
    );
}
