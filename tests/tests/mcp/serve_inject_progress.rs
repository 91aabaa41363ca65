//! The official Python SDK client against `mcp serve --inject` while a
//! tool reports progress: when the injected `kill` takes the server's
//! worker, the progress stops, the call ends in an error that gives the
//! reason, and the client's session goes on (the gateway restarts the
//! server within its budget).

use std::process::Command;
use std::time::Duration;

use bulkhead_tests::launchers::{output_within, test_venv};
use bulkhead_tests::{bin, marker, pids_with_marker};
use serde_json::{Value, json};

/// The whole client run: the server's start, ~3 s of progress, the kill,
/// a restart and a ping; generous for a loaded machine.
const CLIENT_WITHIN: Duration = Duration::from_secs(180);

/// A FastMCP server whose `slow_work` reports progress every 100 ms for
/// 60 s: far longer than the 3 s the fault waits, so the kill, not the
/// tool's end, is what stops it.
const SERVER: &str = r#"
import asyncio
from fastmcp import Context, FastMCP

mcp = FastMCP("slow")

@mcp.tool
async def slow_work(ctx: Context) -> str:
    for i in range(1, 601):
        await ctx.report_progress(i, 600, f"step {i}")
        await asyncio.sleep(0.1)
    return "done"

if __name__ == "__main__":
    mcp.run()
"#;

/// Calls `slow__slow_work` with a progress callback; after the call ends,
/// waits 2 s more to see whether any progress still comes; then pings.
const CLIENT: &str = r#"
import asyncio, json, os, sys, time
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
try:
    from mcp.shared.exceptions import McpError
except ImportError:
    from mcp.shared.exceptions import MCPError as McpError

async def main():
    params = StdioServerParameters(command=sys.argv[1], args=sys.argv[2:], env=dict(os.environ))
    progress = []
    async def on_progress(p, total, message):
        progress.append(time.monotonic())
    out = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            try:
                r = await session.call_tool("slow__slow_work", {}, progress_callback=on_progress)
                out["result"] = r.model_dump(mode="json")
            except McpError as e:
                out["mcp_error"] = {"code": e.error.code, "message": e.error.message}
            ended = time.monotonic()
            out["progress_before_end"] = sum(1 for t in progress if t <= ended)
            await asyncio.sleep(2)
            out["progress_after_end"] = sum(1 for t in progress if t > ended)
            await session.send_ping()
            out["ping"] = "ok"
    print(json.dumps(out))

asyncio.run(main())
"#;

#[test]
fn an_injected_kill_stops_the_progress_and_the_call_gets_the_reason() {
    let venv = test_venv();
    let dir = tempfile::tempdir().unwrap();
    let mark = marker("serve-inject-progress");
    let server = dir.path().join("slow.py");
    std::fs::write(&server, SERVER).unwrap();
    let servers = dir.path().join("servers.json");
    let python = venv.join("bin/python").display().to_string();
    let doc = json!({"mcpServers": {"slow": {
        "command": python,
        "args": [server.display().to_string(), mark.clone()],
    }}});
    std::fs::write(&servers, doc.to_string()).unwrap();
    let client = dir.path().join("client.py");
    std::fs::write(&client, CLIENT).unwrap();

    let mut py = Command::new(venv.join("bin/python"));
    py.arg(&client)
        .arg(bin("bulkhead"))
        .args(["mcp", "serve", "--servers"])
        .arg(&servers)
        .args(["--inject", "slow:kill@3s"])
        .env_remove("BULKHEAD_CONFIG");
    let out = output_within(&mut py, CLIENT_WITHIN, "the SDK client");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the SDK client failed: {stderr}");
    let got: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));

    let before = got["progress_before_end"].as_u64().unwrap_or(0);
    assert!(
        (1..600).contains(&before),
        "progress came, then stopped short of the end: {got}"
    );
    assert_eq!(
        got["progress_after_end"], 0,
        "progress after the call ended: {got}"
    );
    let message = got["mcp_error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("signal(9)") || message.contains("killed"),
        "the call's error gives the kill as its reason: {got}"
    );
    assert_eq!(got["ping"], "ok", "the session goes on: {got}");
    assert!(
        stderr.contains("injected kill"),
        "the fault is logged on stderr: {stderr}"
    );
    let left = pids_with_marker(&mark);
    assert!(left.is_empty(), "processes left: {left:?}");
}
