//! Anthropic Messages streams, shaped like recorded ones (`event:` lines,
//! a `ping`, `input_json_delta` starting with an empty piece).

use bytes::Bytes;
use serde_json::{Value, json};

use super::{Reply, Turn, sse_event};

fn event(data: Value) -> Bytes {
    let kind = data["type"].as_str().unwrap_or("unknown").to_owned();
    sse_event(Some(&kind), &data.to_string())
}

/// The events of `turn`: message_start (input usage), a ping, a text block,
/// one tool_use block per call, message_delta (stop reason, output usage),
/// message_stop.
pub fn events(turn: &Turn) -> Vec<Bytes> {
    let mut out = vec![
        event(json!({"type": "message_start", "message": {
            "id": "msg_test1", "type": "message", "role": "assistant", "content": [],
            "model": "claude-test", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": turn.input_tokens, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0, "output_tokens": 1}}})),
        event(json!({"type": "ping"})),
    ];
    let mut index = 0;
    if !turn.text.is_empty() {
        out.push(event(json!({"type": "content_block_start", "index": index,
                               "content_block": {"type": "text", "text": ""}})));
        for t in &turn.text {
            out.push(event(json!({"type": "content_block_delta", "index": index,
                                   "delta": {"type": "text_delta", "text": t}})));
        }
        out.push(event(json!({"type": "content_block_stop", "index": index})));
        index += 1;
    }
    for call in &turn.calls {
        out.push(event(json!({"type": "content_block_start", "index": index,
            "content_block": {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}})));
        for piece in std::iter::once("").chain(call.pieces.iter().map(String::as_str)) {
            out.push(event(json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta", "partial_json": piece}})));
        }
        out.push(event(json!({"type": "content_block_stop", "index": index})));
        index += 1;
    }
    let stop = if turn.calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    out.push(event(json!({"type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": null},
        "usage": {"output_tokens": turn.output_tokens}})));
    out.push(event(json!({"type": "message_stop"})));
    out
}

/// An `error` event, as the API sends mid-stream.
pub fn error_event(kind: &str, message: &str) -> Bytes {
    event(json!({"type": "error", "error": {"type": kind, "message": message}}))
}

/// An HTTP error with Anthropic's error body.
pub fn error_reply(status: u16, headers: &[(&str, &str)], kind: &str, message: &str) -> Reply {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    Reply::status(status, headers, &body.to_string())
}
