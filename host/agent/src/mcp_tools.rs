//! MCP servers' tools as agent tools. An agent's `mcp_servers` run as
//! [`ServerSession`]s (each server sandboxed in its own capped worker,
//! restarted within its budget, its messages capped by the worker's relay
//! before the host reads them); their tools are offered to the model as
//! `server__tool`, and a call's result is stored like a built-in tool's,
//! so the model sees it through the same bounded view.
//!
//! **Memory:** the host holds one answer per running MCP call, at most the
//! server's `max_message` (4 MiB by default; a `tools/call` result over
//! `max_result`, 1 MiB by default, is cut by the relay), and its text once
//! more while it is stored. Both are set by configuration, not by the
//! server.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use bulkhead_mcp::{NAMESPACE_SEPARATOR, ServerSession};
use bulkhead_model::ToolSpec;
use bulkhead_store::{ResultEnd, StoreThread};

use crate::call::{Dispatched, One};
use crate::store_call::{StoreCallError, StoreRun};

/// How long the tool set waits for a server to start and list its tools.
/// Node servers start in a second or two; this leaves room for a loaded
/// machine, not for `npx` fetching a package (install it first).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A call for a server's tool, checked.
pub struct McpCall {
    pub session: ServerSession,
    /// The server's own name for the tool.
    pub tool: String,
    pub arguments: Value,
}

/// The tools of `sessions`, named `server__tool`, once each is ready. A
/// server that fails to start is an error naming it and why.
pub async fn specs(sessions: &[ServerSession]) -> Result<Vec<ToolSpec>, (String, String)> {
    let mut out = Vec::new();
    for session in sessions {
        let fail = |reason: String| (session.name().to_owned(), reason);
        match tokio::time::timeout(READY_TIMEOUT, session.ready()).await {
            Err(_) => return Err(fail(format!("not ready after {READY_TIMEOUT:?}"))),
            Ok(Err(e)) => return Err(fail(e.to_string())),
            Ok(Ok(())) => {}
        }
        for tool in session.status().tools {
            let Some(name) = tool.get("name").and_then(Value::as_str) else {
                continue;
            };
            out.push(ToolSpec {
                name: format!("{}{NAMESPACE_SEPARATOR}{name}", session.name()),
                description: tool
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                input_schema: tool
                    .get("inputSchema")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object"})),
            });
        }
    }
    Ok(out)
}

/// Runs one call on its server and stores the answer as the call's
/// result. When `cancel` fires the request is abandoned (the server's own
/// worker lives on with the session) and the result says `killed:
/// cancelled`.
pub(crate) async fn run(
    store: &StoreThread,
    one: One<'_>,
    call: McpCall,
    cancel: &CancellationToken,
) -> Result<Dispatched, StoreCallError> {
    let mut recorder = one.begin(store, None).await?;
    let params = json!({"name": call.tool, "arguments": call.arguments});
    let answer = tokio::select! {
        biased;
        () = cancel.cancelled() => None,
        answer = call.session.request("tools/call", params) => Some(answer),
    };
    let (status, line, text) = match answer {
        None => ("killed", "[killed: cancelled]".to_owned(), String::new()),
        Some(Err(e)) => ("failed", format!("[failed: {e}]"), e.to_string()),
        Some(Ok(result)) => {
            let text = content_text(&result);
            if result.get("isError").and_then(Value::as_bool) == Some(true) {
                let line = "[failed: the server reported an error]".to_owned();
                ("failed", line, text)
            } else {
                let line = format!("[completed · MCP server \"{}\"]", call.session.name());
                ("completed", line, text)
            }
        }
    };
    let bytes = text.len() as u64;
    let end = ResultEnd {
        status: status.to_owned(),
        outcome_json: Some(json!({"status": status, "line": line}).to_string()),
        bytes_seen: bytes,
        lines_seen: text.lines().count() as u64,
        ..ResultEnd::default()
    };
    let done = store
        .run(move |s| {
            recorder.output(s, bulkhead_ipc::StreamId::Stdout, text.as_bytes())?;
            recorder.finish(s, end)
        })
        .await?;
    Ok(Dispatched {
        index: one.index,
        item: done.item,
        outcome_line: line,
        bytes_seen: bytes,
        injected: None,
    })
}

/// A `tools/call` result as text: text blocks as they are, other blocks
/// named (an image's bytes mean nothing to a text model), and structured
/// content when there is nothing else.
fn content_text(result: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    for block in result
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = |k: &str| block.get(k).and_then(Value::as_str).unwrap_or("");
        parts.push(match field("type") {
            "text" => field("text").to_owned(),
            "image" | "audio" => format!(
                "[{} ({}), {} bytes of base64, not shown]",
                field("type"),
                field("mimeType"),
                field("data").len()
            ),
            "resource_link" => format!("[resource link: {}]", field("uri")),
            "resource" => match block.pointer("/resource/text").and_then(Value::as_str) {
                Some(text) => text.to_owned(),
                None => format!(
                    "[resource {}, binary, not shown]",
                    block
                        .pointer("/resource/uri")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                ),
            },
            other => format!("[a \"{other}\" block, not shown]"),
        });
    }
    if parts.is_empty()
        && let Some(structured) = result.get("structuredContent")
    {
        return structured.to_string();
    }
    parts.join("\n")
}

#[cfg(test)]
mod tests {
    use super::content_text;
    use serde_json::json;

    #[test]
    fn content_blocks_become_text() {
        let result = json!({"content": [
            {"type": "text", "text": "Echo: hi"},
            {"type": "image", "mimeType": "image/png", "data": "iVBORw0KGgo="},
            {"type": "resource", "resource": {"uri": "file:///a", "text": "body"}},
        ]});
        assert_eq!(
            content_text(&result),
            "Echo: hi\n[image (image/png), 12 bytes of base64, not shown]\nbody"
        );
        let structured = json!({"content": [], "structuredContent": {"sum": 42}});
        assert_eq!(content_text(&structured), r#"{"sum":42}"#);
    }
}
