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
///
/// The line is at most `limit` bytes as written, escapes included: text
/// full of quotes or control characters takes up to six bytes per byte
/// once escaped, so the text is measured as JSON, and the room for it is
/// what the rest of the line (its id, other fields, the note) leaves. A
/// line whose rest alone is over the limit keeps no text.
///
/// `line` is the answer as the server wrote it (`msg` parsed): its id is
/// written back as it came, since a number that does not fit 64 bits
/// parses as a float and would print as another number, answering no
/// request.
pub fn cut_tool_result(msg: &mut Value, line: &[u8], limit: usize) -> Option<Vec<u8>> {
    let line_len = line.len();
    if line_len <= limit {
        return None;
    }
    let raw_id = raw_id(line);
    let result = msg.get_mut("result")?.as_object_mut()?;
    let is_error = result.get("isError").cloned().unwrap_or(Value::Bool(false));
    let texts: Vec<String> = match result.remove("content") {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::Object(mut o) => match o.remove("text") {
                    Some(Value::String(t)) => Some(t),
                    _ => None,
                },
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    result.clear();
    result.insert("isError".into(), is_error);
    result.insert(
        "content".into(),
        serde_json::json!([{ "type": "text", "text": "" }]),
    );
    // The id goes back as the server wrote it, in front of the rest.
    let id = match raw_id {
        Some(raw) => {
            msg.as_object_mut()?.remove("id");
            Some(raw)
        }
        None => None,
    };
    let write = |msg: &Value| -> Option<Vec<u8>> {
        let body = serde_json::to_vec(msg).ok()?;
        let Some(id) = &id else { return Some(body) };
        // `msg` still holds `result`, so its object is not empty.
        let mut line = Vec::with_capacity(body.len() + id.len() + 8);
        line.extend_from_slice(b"{\"id\":");
        line.extend_from_slice(id.as_bytes());
        line.push(b',');
        line.extend_from_slice(body.get(1..)?);
        Some(line)
    };
    // Everything but the text, as written, and the note at its longest
    // (the kept byte count can have no more digits than the limit).
    let rest = write(msg)?.len() + 1;
    let budget = limit
        .saturating_sub(rest)
        .saturating_sub(json_len(&cut_note(line_len, limit, limit)));
    let mut text = String::new();
    let mut used = 0;
    for t in &texts {
        if !text.is_empty() {
            if used + json_len("\n") > budget {
                break;
            }
            text.push('\n');
            used += json_len("\n");
        }
        let mut end = 0;
        for c in t.chars() {
            let n = escaped_len(c);
            if used + n > budget {
                break;
            }
            used += n;
            end += c.len_utf8();
        }
        text.push_str(&t[..end]);
        if end < t.len() {
            break;
        }
    }
    let note = cut_note(line_len, limit, text.len());
    text.push_str(&note);
    let content = serde_json::json!([{ "type": "text", "text": text }]);
    msg.get_mut("result")?
        .as_object_mut()?
        .insert("content".into(), content);
    let mut line = write(msg)?;
    line.push(b'\n');
    Some(line)
}

/// The id of a JSON-RPC message as written, if it has exactly one.
fn raw_id(line: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(borrow)]
        id: Option<&'a serde_json::value::RawValue>,
    }
    let id: Id<'_> = serde_json::from_slice(line).ok()?;
    id.id.map(|raw| raw.get().to_owned())
}

/// What a cut result's text says after the text it kept.
fn cut_note(line_len: usize, limit: usize, kept: usize) -> String {
    format!(
        "\n[bulkhead cut this tools/call result: it was {line_len} bytes, over the \
         {limit}-byte limit; kept the first {kept} bytes of its text; images, resources and \
         structured content were dropped]"
    )
}

/// Bytes `s` takes inside a JSON string as serde_json writes it.
fn json_len(s: &str) -> usize {
    s.chars().map(escaped_len).sum()
}

/// Bytes `c` takes inside a JSON string as serde_json writes it: a quote,
/// a backslash and the five control characters with short escapes take
/// two, the other control characters six (`\u00XX`), the rest their UTF-8.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
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
        let raw = serde_json::to_vec(&msg).unwrap();
        let line = cut_tool_result(&mut msg, &raw, 8192).unwrap();
        assert!(line.len() <= 8192, "{}", line.len());
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["id"], 3);
        let text = v["result"]["content"][0]["text"].as_str().unwrap();
        assert!(text.starts_with("yyyy") && text.contains("bulkhead cut this tools/call result"));
        assert!(v["result"].get("structuredContent").is_none());
        assert_eq!(v["result"]["isError"], false);
    }

    #[test]
    fn a_cut_result_keeps_the_id_as_the_server_wrote_it() {
        // Past 64 bits a number parses as a float, which prints as
        // another number: the client would match the answer to nothing.
        for id in [
            "222222222222222222222222222222222222226",
            "1.50",
            "-0",
            "\"\\u0041\"",
        ] {
            let text = "z".repeat(9000);
            let line = format!(
                r#"{{"jsonrpc":"2.0","id": {id},"result":{{"content":[{{"type":"text","text":"{text}"}}]}}}}"#
            );
            let mut msg: Value = serde_json::from_str(&line).unwrap();
            let cut = cut_tool_result(&mut msg, line.as_bytes(), 4096).unwrap();
            let written = String::from_utf8(cut).unwrap();
            assert!(
                written.starts_with(&format!("{{\"id\":{id},")),
                "{written:.80}"
            );
            assert!(written.len() <= 4096);
            let v: Value = serde_json::from_str(&written).unwrap();
            assert_eq!(v["jsonrpc"], "2.0");
        }
    }

    #[test]
    fn text_that_escapes_to_more_bytes_is_cut_within_the_limit_as_written() {
        // A quote is two bytes written, a control character six, and a
        // long id leaves less room: the limit holds for the line as sent.
        for unit in ["\"", "\u{1}", "a\\"] {
            let mut msg = serde_json::json!({
                "jsonrpc": "2.0", "id": "x".repeat(500),
                "result": {"content": [{"type": "text", "text": unit.repeat(20_000)}]}
            });
            let raw = serde_json::to_vec(&msg).unwrap();
            let line = cut_tool_result(&mut msg, &raw, 4096).unwrap();
            assert!(line.len() <= 4096, "{unit:?}: {} bytes", line.len());
            let v: Value = serde_json::from_slice(&line).unwrap();
            assert_eq!(v["id"], "x".repeat(500));
            let text = v["result"]["content"][0]["text"].as_str().unwrap();
            assert!(text.starts_with(unit), "{unit:?}: some text is kept");
        }
        // An envelope over the limit by itself keeps no text.
        let mut msg = serde_json::json!({
            "jsonrpc": "2.0", "id": "x".repeat(5000),
            "result": {"content": [{"type": "text", "text": "y".repeat(9000)}]}
        });
        let raw = serde_json::to_vec(&msg).unwrap();
        let line = cut_tool_result(&mut msg, &raw, 4096).unwrap();
        let v: Value = serde_json::from_slice(&line).unwrap();
        let text = v["result"]["content"][0]["text"].as_str().unwrap();
        assert!(text.starts_with("\n[bulkhead cut"), "{text:.40}");
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
                let raw = serde_json::to_vec(&msg).unwrap();
                let line = cut_tool_result(&mut msg, &raw, 8192).unwrap();
                let v: Value = serde_json::from_slice(&line).unwrap();
                let kept = v["result"]["content"][0]["text"].as_str().unwrap();
                let (body, _note) = kept.split_once("\n[bulkhead cut").unwrap();
                assert!(!body.contains('\u{fffd}'));
                assert!(body.trim_start_matches('a').chars().all(|c| c == ch));
                // The longest whole prefix that fits: one more character
                // would pass the limit.
                assert!(line.len() <= 8192, "{ch} {extra}: {}", line.len());
                assert!(
                    line.len() + ch.len_utf8() > 8192,
                    "{ch} {extra}: {}",
                    line.len()
                );
            }
        }
    }
}
