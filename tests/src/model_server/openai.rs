//! OpenAI Chat Completions streams, shaped like recorded ones (every chunk
//! carries the envelope: id, object, created, model, fingerprint).

use bytes::Bytes;
use serde_json::{Value, json};

use super::{Reply, Turn, sse_event};

fn chunk(choices: Value, usage: Value) -> Bytes {
    let c = json!({
        "id": "chatcmpl-test1",
        "object": "chat.completion.chunk",
        "created": 1_732_000_000,
        "model": "gpt-test",
        "system_fingerprint": "fp_test",
        "choices": choices,
        "usage": usage,
    });
    sse_event(None, &c.to_string())
}

fn delta(delta: Value, finish: Value) -> Bytes {
    chunk(
        json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]),
        Value::Null,
    )
}

/// The events of `turn`: role, text deltas, each call's first delta (id,
/// name, empty arguments) and argument deltas (calls one after another, by
/// index, as OpenAI sends them), finish, usage chunk, `[DONE]`.
pub fn events(turn: &Turn) -> Vec<Bytes> {
    let mut out = vec![delta(
        json!({"role": "assistant", "content": "", "refusal": null}),
        Value::Null,
    )];
    for t in &turn.text {
        out.push(delta(json!({"content": t}), Value::Null));
    }
    for (i, call) in turn.calls.iter().enumerate() {
        out.push(delta(
            json!({"tool_calls": [{"index": i, "id": call.id, "type": "function",
                   "function": {"name": call.name, "arguments": ""}}]}),
            Value::Null,
        ));
        for piece in &call.pieces {
            out.push(delta(
                json!({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}),
                Value::Null,
            ));
        }
    }
    let finish = if turn.calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    out.push(delta(json!({}), json!(finish)));
    out.push(chunk(
        json!([]),
        json!({"prompt_tokens": turn.input_tokens, "completion_tokens": turn.output_tokens,
               "total_tokens": turn.input_tokens + turn.output_tokens}),
    ));
    out.push(done());
    out
}

pub fn done() -> Bytes {
    sse_event(None, "[DONE]")
}

/// An error object sent in place of a chunk (as OpenAI does mid-stream).
pub fn error_event(message: &str) -> Bytes {
    sse_event(
        None,
        &json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}})
            .to_string(),
    )
}

/// An HTTP error with OpenAI's error body.
pub fn error_reply(status: u16, headers: &[(&str, &str)], message: &str) -> Reply {
    let body =
        json!({"error": {"message": message, "type": "requests", "param": null, "code": null}});
    Reply::status(status, headers, &body.to_string())
}
