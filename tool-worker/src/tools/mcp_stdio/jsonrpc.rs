//! Just enough JSON-RPC for the relay: what a message is, its id, an error
//! answer, and a `tools/call` result cut to size. Messages are passed on as
//! the bytes they came as; these helpers only look.

use serde_json::Value;

/// JSON-RPC's "internal error": the server could not produce the answer.
const INTERNAL_ERROR: i64 = -32603;

#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    /// Has an id and a method: expects an answer.
    Request {
        id: String,
        method: String,
    },
    Notification {
        method: String,
    },
    /// Has an id and no method.
    Response {
        id: String,
    },
    Invalid,
}

/// The id as JSON text (`7`, `"abc"`), the form it is keyed and echoed in.
fn id_text(v: &Value) -> Option<String> {
    match v.get("id")? {
        id @ (Value::Number(_) | Value::String(_)) => serde_json::to_string(id).ok(),
        _ => None,
    }
}

pub fn classify(v: &Value) -> Kind {
    if !v.is_object() {
        return Kind::Invalid;
    }
    let method = v.get("method").and_then(Value::as_str).map(str::to_owned);
    match (id_text(v), method) {
        (Some(id), Some(method)) => Kind::Request { id, method },
        (None, Some(method)) => Kind::Notification { method },
        (Some(id), None) => Kind::Response { id },
        (None, None) => Kind::Invalid,
    }
}

/// An error answer to request `id` (JSON text), one line with its newline.
pub fn error_response(id: &str, message: &str) -> Vec<u8> {
    let message = serde_json::to_string(message).unwrap_or_else(|_| "\"error\"".into());
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{INTERNAL_ERROR},"message":{message}}}}}"#
    )
    .into_bytes()
    .into_iter()
    .chain(*b"\n")
    .collect()
}

/// The request a `notifications/cancelled` names, as JSON id text.
pub fn cancelled_id(v: &Value) -> Option<String> {
    match v.get("params")?.get("requestId")? {
        id @ (Value::Number(_) | Value::String(_)) => serde_json::to_string(id).ok(),
        _ => None,
    }
}

/// A `notifications/cancelled` for request `id` (JSON text), one line.
pub fn cancel_notification(id: &str, reason: &str) -> Vec<u8> {
    let reason = serde_json::to_string(reason).unwrap_or_else(|_| "\"\"".into());
    format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{id},"reason":{reason}}}}}"#
    )
    .into_bytes()
    .into_iter()
    .chain(*b"\n")
    .collect()
}

/// A `ping` request with id `id` (JSON text), one line.
pub fn ping(id: &str) -> Vec<u8> {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#)
        .into_bytes()
        .into_iter()
        .chain(*b"\n")
        .collect()
}

/// The id of the answer an oversized line began, if its first bytes show
/// it: `"id":` followed by a number or a string.
pub fn id_in_prefix(prefix: &[u8]) -> Option<String> {
    let at = memchr::memmem::find(prefix, b"\"id\":")? + 5;
    let rest = std::str::from_utf8(&prefix[at..]).ok().or_else(|| {
        // The prefix may end inside a UTF-8 character; the id is ASCII or
        // a short string well before that.
        std::str::from_utf8(&prefix[at..prefix.len().min(at + 256)]).ok()
    })?;
    let rest = rest.trim_start();
    let end = if let Some(s) = rest.strip_prefix('"') {
        s.find('"')? + 2
    } else {
        rest.find(|c: char| !(c.is_ascii_digit() || c == '-'))?
    };
    let token = &rest[..end];
    serde_json::from_str::<Value>(token)
        .ok()
        .filter(|v| v.is_number() || v.is_string())
        .map(|_| token.to_owned())
}

/// A `tools/call` answer over `limit` bytes, rewritten as a valid result
/// that keeps the first text and says what was cut. `None` if it fits or
/// is not a result.
pub fn cut_tool_result(msg: &mut Value, line_len: usize, limit: usize) -> Option<Vec<u8>> {
    if line_len <= limit {
        return None;
    }
    let result = msg.get_mut("result")?.as_object_mut()?;
    let is_error = result.get("isError").cloned().unwrap_or(Value::Bool(false));
    // Room for the text: the limit less the envelope and the note.
    let budget = limit.saturating_sub(1024);
    let mut text = String::new();
    if let Some(items) = result.get("content").and_then(Value::as_array) {
        for item in items {
            if let Some(t) = item.get("text").and_then(Value::as_str) {
                if !text.is_empty() {
                    text.push('\n');
                }
                let room = budget.saturating_sub(text.len());
                // The text is a `str`, so the cut lands on a character.
                let end = bulkhead_ipc::utf8::prefix_len(t.as_bytes(), room);
                text.push_str(t.get(..end).unwrap_or_default());
                if text.len() >= budget {
                    break;
                }
            }
        }
    }
    text.push_str(&format!(
        "\n[bulkhead cut this tools/call result: it was {line_len} bytes, over the \
         {limit}-byte limit; kept the first {} bytes of its text; images, resources and \
         structured content were dropped]",
        text.len()
    ));
    result.clear();
    result.insert(
        "content".into(),
        serde_json::json!([{ "type": "text", "text": text }]),
    );
    result.insert("isError".into(), is_error);
    let mut line = serde_json::to_vec(msg).ok()?;
    line.push(b'\n');
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let v = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        assert_eq!(
            classify(&v(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#)),
            Kind::Request {
                id: "1".into(),
                method: "tools/call".into()
            }
        );
        assert_eq!(
            classify(&v(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#)),
            Kind::Response { id: "\"a\"".into() }
        );
        assert_eq!(
            classify(&v(r#"{"jsonrpc":"2.0","method":"notifications/progress"}"#)),
            Kind::Notification {
                method: "notifications/progress".into()
            }
        );
        assert_eq!(classify(&v("[1,2]")), Kind::Invalid);
    }

    #[test]
    fn ids_are_found_in_a_prefix() {
        assert_eq!(
            id_in_prefix(br#"{"jsonrpc":"2.0","id":42,"result":{"con"#),
            Some("42".into())
        );
        assert_eq!(
            id_in_prefix(br#"{"id": "req-7", "result""#),
            Some("\"req-7\"".into())
        );
        assert_eq!(
            id_in_prefix(br#"{"result":{"content":[{"text":"xxxx"#),
            None
        );
    }

    #[test]
    fn error_responses_are_valid_json_rpc() {
        let line = error_response("\"x\"", "too \"big\"");
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["id"], "x");
        assert_eq!(v["error"]["message"], "too \"big\"");
        assert_eq!(line.last(), Some(&b'\n'));
    }

    #[test]
    fn a_large_result_is_cut_to_a_valid_result_under_the_limit() {
        let big = "y".repeat(100_000);
        let mut msg = serde_json::json!({
            "jsonrpc": "2.0", "id": 3,
            "result": {"content": [{"type": "text", "text": big}], "structuredContent": {"a": 1}}
        });
        let len = serde_json::to_vec(&msg).unwrap().len();
        let line = cut_tool_result(&mut msg, len, 8192).unwrap();
        assert!(line.len() <= 8192, "{}", line.len());
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["id"], 3);
        let text = v["result"]["content"][0]["text"].as_str().unwrap();
        assert!(text.starts_with("yyyy") && text.contains("bulkhead cut this tools/call result"));
        assert!(v["result"].get("structuredContent").is_none());
        assert_eq!(v["result"]["isError"], false);
    }

    #[test]
    fn a_cut_result_keeps_whole_two_three_and_four_byte_characters() {
        for ch in ['é', '€', '🦀'] {
            for extra in 0..4 {
                // `extra` ASCII bytes move the cut through each byte of a character.
                let text = format!("{}{}", "a".repeat(extra), ch.to_string().repeat(20_000));
                let mut msg = serde_json::json!({
                    "jsonrpc": "2.0", "id": 1,
                    "result": {"content": [{"type": "text", "text": text}]}
                });
                let len = serde_json::to_vec(&msg).unwrap().len();
                let line = cut_tool_result(&mut msg, len, 8192).unwrap();
                let v: Value = serde_json::from_slice(&line).unwrap();
                let kept = v["result"]["content"][0]["text"].as_str().unwrap();
                let (body, _note) = kept.split_once("\n[bulkhead cut").unwrap();
                assert!(!body.contains('\u{fffd}'));
                assert!(body.trim_start_matches('a').chars().all(|c| c == ch));
                // The longest whole prefix within the budget.
                assert!(8192 - 1024 - body.len() < ch.len_utf8(), "{ch} {extra}");
            }
        }
    }
}
