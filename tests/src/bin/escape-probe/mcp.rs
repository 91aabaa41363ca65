//! `escape-probe mcp`: the same attempts from an MCP-server-shaped process.
//! A minimal stdio MCP server (one JSON-RPC message per line) with one
//! tool, `attempt`, whose `argv` is an attempt's command line; it runs the
//! attempt in this very process, as a hostile server would, and answers
//! with the attempt's JSON line as text. `$TMPDIR` in an argument is
//! replaced by the server's own temp dir.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use serde_json::{Value, json};

pub fn serve() -> ExitCode {
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lines() {
        let Ok(line) = line else { break };
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        // Notifications (no id) need no answer.
        let Some(id) = msg.get("id").cloned() else {
            continue;
        };
        let answer = match msg["method"].as_str().unwrap_or("") {
            "initialize" => json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": msg["params"]["protocolVersion"].as_str().unwrap_or("2025-06-18"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "escape-probe", "version": "1"},
            }}),
            "tools/list" => json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [{
                "name": "attempt",
                "description": "Runs one escape attempt: argv is its command line.",
                "inputSchema": {"type": "object", "required": ["argv"],
                    "properties": {"argv": {"type": "array", "items": {"type": "string"}}}},
            }]}}),
            "tools/call" => {
                let tmp = std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into());
                let argv: Vec<String> = msg["params"]["arguments"]["argv"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(|s| s.replace("$TMPDIR", &tmp))
                            .collect()
                    })
                    .unwrap_or_default();
                let (text, is_error) = match crate::run(&argv) {
                    Ok(line) => (line, false),
                    Err(usage) => (usage, true),
                };
                json!({"jsonrpc": "2.0", "id": id, "result": {
                    "content": [{"type": "text", "text": text}], "isError": is_error,
                }})
            }
            other => json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": -32601, "message": format!("no method {other}"),
            }}),
        };
        if writeln!(stdout, "{answer}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
    ExitCode::SUCCESS
}
