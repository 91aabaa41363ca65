//! `hostile-mcp MODE [MARKER]`: a small MCP server (stdio, one JSON-RPC message per
//! line) that answers `initialize` and `tools/list` like a good one, then
//! misbehaves on `tools/call` in the way MODE names:
//!
//! - `huge`: answers with a 2 GiB text;
//! - `endless`: starts an answer and never ends the line;
//! - `alloc`: allocates and touches 4 GiB before answering;
//! - `crash`: aborts (SIGABRT);
//! - `garbage`: writes lines that are not JSON-RPC, and never answers;
//! - `deaf`: never answers, and ignores `notifications/cancelled` (but
//!   still answers other requests, such as `ping`);
//! - `stuck`: spins in the call forever, reading nothing more;
//! - `mute`: answers nothing but `initialize` and `tools/list` (and so
//!   never a `prompts/get`, which the relay sets no deadline on);
//! - `asks`: sends 4,096 requests of its own (`roots/list`, each with an id
//!   of 64 KiB: 256 MiB of them), then sleeps, reading nothing more;
//! - `asks-early`: the same, at `initialize` instead of a call.
//!
//! Used by `tests/tests/mcp/hostile.rs`; each mode must end with the right
//! outcome, with the host's memory flat and no process left.

use std::io::{BufRead, Write};

const GIB: usize = 1 << 30;

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let stdin = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    for line in stdin.lines() {
        let Ok(line) = line else { return };
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let Some(id) = msg.get("id").cloned() else {
            continue;
        };
        if mode == "asks-early" && msg["method"] == "initialize" {
            misbehave("asks", &id, &mut out);
        }
        let result = match msg["method"].as_str().unwrap_or("") {
            "initialize" => serde_json::json!({
                "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                "serverInfo": {"name": format!("hostile-{mode}"), "version": "1"}}),
            "tools/list" => serde_json::json!({"tools": [{"name": "go",
                "inputSchema": {"type": "object"}}]}),
            "tools/call" => {
                misbehave(&mode, &id, &mut out);
                continue;
            }
            _ if mode == "mute" => continue,
            _ => serde_json::json!({}),
        };
        let answer = serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result});
        if writeln!(out, "{answer}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
    }
}

fn misbehave(mode: &str, id: &serde_json::Value, out: &mut impl Write) {
    match mode {
        "huge" => {
            let block = vec![b'x'; 1 << 20];
            let _ = write!(
                out,
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":""#
            );
            for _ in 0..(2 * GIB / block.len()) {
                if out.write_all(&block).is_err() {
                    return;
                }
            }
            let _ = writeln!(out, r#""}}]}}}}"#);
            let _ = out.flush();
        }
        "endless" => {
            let block = vec![b'x'; 1 << 20];
            let _ = write!(
                out,
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":""#
            );
            while out.write_all(&block).is_ok() {}
        }
        "alloc" => {
            let mut hog: Vec<Vec<u8>> = Vec::new();
            for _ in 0..4 * 1024 {
                // 1 MiB at a time, each page touched, so it is resident.
                hog.push(vec![1u8; 1 << 20]);
            }
            let _ = writeln!(
                out,
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[]}}}}"#
            );
        }
        "crash" => std::process::abort(),
        "asks" => {
            let pad = "x".repeat(64 << 10);
            for i in 0..4096 {
                let ask = format!(r#"{{"jsonrpc":"2.0","id":"{pad}{i}","method":"roots/list"}}"#);
                if writeln!(out, "{ask}").is_err() {
                    return;
                }
            }
            let _ = out.flush();
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        "stuck" => loop {
            std::hint::spin_loop();
        },
        "garbage" => {
            for i in 0..64 {
                let _ = writeln!(out, "this is not JSON-RPC, line {i}");
            }
            let _ = out.flush();
        }
        // "deaf" and anything else: never answer.
        _ => {}
    }
}
