//! `bulkhead mcp wrap` sessions that outlive their server: when the server
//! dies (killed for memory, crashed), the request in flight is answered
//! with why, the server is restarted within its budget and told the
//! client's session again (initialize, initialized, the log level), and
//! the next call on the same session is answered by the new server. An
//! injected process fault acts on the first run only. With `--no-restart`,
//! and once the budget is spent, the session ends as it always did, and no
//! process of the server is left.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use bulkhead_tests::launchers::{output_within, test_venv};
use bulkhead_tests::{bin, marker, peer, pids_with_marker};
use serde_json::{Value, json};

/// The longest a whole SDK session may take: a Python start per run (a
/// second or two each, more on a loaded machine) and a memory kill.
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// A FastMCP server (the `fastmcp` package, as the users' servers are
/// written): `echo` says which process answered, `hog` allocates until the
/// memory cap kills it, `abort` crashes it, `chatter` logs at info and at
/// error (the client's level decides what it gets).
const SERVER: &str = r#"import os
from fastmcp import FastMCP, Context

mcp = FastMCP("restart-test")
# Which run of the server answers (pids repeat in each run's namespace).
RUN = os.urandom(8).hex()


@mcp.tool
def echo(text: str) -> str:
    """Echo, with the answering run's token."""
    return f"{text} from {RUN}"


@mcp.tool
def hog(mib: int) -> str:
    """Allocate and touch MIB MiB."""
    blocks = [bytearray(b"x" * (1 << 20)) for _ in range(mib)]
    return str(len(blocks))


@mcp.tool
def abort() -> str:
    """Crash (SIGABRT)."""
    os.abort()


@mcp.tool
async def chatter(ctx: Context) -> str:
    """Log at info and at error."""
    await ctx.info("probe-info")
    await ctx.error("probe-error")
    return "done"


if __name__ == "__main__":
    mcp.run(show_banner=False)
"#;

/// The official Python SDK as the client, on ONE session: argv[1] is the
/// scenario, the rest the server's command. Prints one JSON object.
const CLIENT: &str = r#"import json
import os
import sys

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

logs = []


async def on_log(params):
    logs.append(params.model_dump(mode="json"))


def text(result):
    return result.model_dump(mode="json")["content"][0]["text"]


async def main() -> None:
    scenario = sys.argv[1]
    params = StdioServerParameters(command=sys.argv[2], args=sys.argv[3:], env=dict(os.environ))
    out = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, logging_callback=on_log) as session:
            await session.initialize()
            if scenario == "crash":
                await session.set_logging_level("error")
            out["before"] = text(await session.call_tool("echo", {"text": "before"}))
            try:
                if scenario == "memory":
                    result = await session.call_tool("hog", {"mib": 4096})
                else:
                    result = await session.call_tool("abort", {})
                out["died"] = {"result": result.model_dump(mode="json")}
            except Exception as e:
                out["died"] = {"error": str(e)}
            out["after"] = text(await session.call_tool("echo", {"text": "after"}))
            if scenario == "crash":
                out["chatter"] = text(await session.call_tool("chatter", {}))
    out["logs"] = logs
    print(json.dumps(out))


anyio.run(main)
"#;

/// Runs the SDK client's `scenario` against the FastMCP server behind
/// `mcp wrap FLAGS`; returns its JSON and wrap's stderr.
fn sdk_session(scenario: &str, flags: &[&str]) -> (Value, String) {
    let venv = test_venv();
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = (dir.path().join("server.py"), dir.path().join("client.py"));
    std::fs::write(&server, SERVER).unwrap();
    std::fs::write(&client, CLIENT).unwrap();
    let python = venv.join("bin/python");
    let mark = marker(&format!("wrap-restart-{scenario}"));
    let mut cmd = Command::new(&python);
    cmd.arg(&client)
        .arg(scenario)
        .arg(bin("bulkhead"))
        .args(["mcp", "wrap"])
        .args(flags)
        .arg("--")
        .arg(&python)
        .arg(&server)
        .arg(&mark)
        .env_remove("BULKHEAD_CONFIG")
        // Each run's start is a few lines of the server's own.
        .env("PYTHONWARNINGS", "ignore");
    let out = output_within(&mut cmd, RUN_LIMIT, "the SDK client through mcp wrap");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the SDK client failed: {stderr}");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    assert!(
        pids_with_marker(&mark).is_empty(),
        "{scenario}: a server process survived the session"
    );
    (v, stderr)
}

/// The lines of wrap's own that report a restart.
fn restart_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("bulkhead: mcp wrap: ") && l.contains("; restarting it ("))
        .collect()
}

#[test]
fn wrap_survives_a_memory_kill() {
    let (v, stderr) = sdk_session("memory", &["--memory", "256M"]);
    let error = v["died"]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("the hog's call did not fail: {v}\n{stderr}"));
    assert!(
        error.contains("killed: memory cap 256.0 MiB") && error.contains("restarting it (1 of 3)"),
        "{error}"
    );
    // The same session goes on, answered by another run of the server.
    let (before, after) = (v["before"].as_str().unwrap(), v["after"].as_str().unwrap());
    assert!(
        before.starts_with("before from ") && after.starts_with("after from "),
        "{v}"
    );
    assert_ne!(
        before.split(" from ").nth(1),
        after.split(" from ").nth(1),
        "the same process answered before and after: {v}"
    );
    // The client was told, as a warning log (it set no level).
    let logs = v["logs"].as_array().unwrap();
    assert!(
        logs.iter().any(|l| l["level"] == "warning"
            && l["logger"] == "bulkhead"
            && l["data"]
                .as_str()
                .is_some_and(|d| d.contains("restarted it (1 of 3)"))),
        "{v}"
    );
    let lines = restart_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("1 request(s) in flight"), "{stderr}");
}

#[test]
fn a_crash_answers_the_call_in_flight_and_the_log_level_is_restored() {
    let (v, stderr) = sdk_session("crash", &[]);
    let error = v["died"]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("the crashing call did not fail: {v}\n{stderr}"));
    assert!(
        error.contains("the MCP server crashed (signal")
            && error.contains("restarting it (1 of 3)"),
        "{error}"
    );
    assert!(
        v["after"].as_str().unwrap().starts_with("after from "),
        "{v}"
    );
    assert_eq!(v["chatter"], "done", "{v}");
    // The new server was told the level again: it sends the error, not
    // the info. bulkhead's own warning does not pass the level either.
    let logs: Vec<&Value> = v["logs"].as_array().unwrap().iter().collect();
    let said = |what: &str| logs.iter().any(|l| l["data"].to_string().contains(what));
    assert!(said("probe-error"), "{v}");
    assert!(!said("probe-info"), "the level was lost: {v}");
    assert!(!logs.iter().any(|l| l["logger"] == "bulkhead"), "{v}");
    assert_eq!(restart_lines(&stderr).len(), 1, "{stderr}");
}

/// `bulkhead mcp wrap FLAGS -- hostile-mcp crash MARK` (a server that
/// aborts on every tools/call), driven a request at a time with its
/// stdin kept open: the answers to `calls` tools/calls, in order, until
/// the session ends by itself; then wrap's stderr.
fn crash_session(flags: &[&str], tag: &str, calls: u64) -> (Vec<Value>, String) {
    let mark = marker(tag);
    let mut child = Command::new(bin("bulkhead"))
        .args(["mcp", "wrap"])
        .args(flags)
        .arg("--")
        .arg(bin("hostile-mcp"))
        .args(["crash", &mark])
        .env_remove("BULKHEAD_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bulkhead mcp wrap");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut send = |v: Value| {
        // The session may have ended (the budget spent): then the write
        // fails, and the reads below see the end.
        let _ = writeln!(stdin, "{v}");
    };
    send(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}}));
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    let mut answers = Vec::new();
    let mut next = |want: u64| -> Option<Value> {
        for line in lines.by_ref().map_while(Result::ok) {
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if v["id"] == want {
                return Some(v);
            }
        }
        None
    };
    assert!(next(0).is_some_and(|a| a["result"].is_object()));
    for id in 1..=calls {
        send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "go", "arguments": {}}}));
        match next(id) {
            Some(a) => answers.push(a),
            None => break,
        }
    }
    // The session ends by itself, with stdin still open.
    let out = child.wait_with_output().expect("wait for wrap");
    drop(stdin);
    assert!(
        pids_with_marker(&mark).is_empty(),
        "{tag}: a server process survived"
    );
    (answers, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn message(answer: &Value) -> &str {
    answer["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {answer}"))
}

#[test]
fn no_restart_ends_the_session_as_before() {
    let (answers, stderr) = crash_session(&["--no-restart"], "wrap-no-restart", 3);
    assert_eq!(answers.len(), 1, "{answers:?}\n{stderr}");
    let m = message(&answers[0]);
    assert!(
        m.contains("the MCP server crashed (signal")
            && m.ends_with(") before answering")
            && !m.contains("restart"),
        "{m}"
    );
    assert!(restart_lines(&stderr).is_empty(), "{stderr}");
    assert!(stderr.contains("bulkhead: mcp wrap: ended "), "{stderr}");
}

#[test]
fn a_spent_budget_ends_the_session_with_the_reason() {
    let (answers, stderr) = crash_session(&["--max-restarts", "2"], "wrap-budget", 6);
    // Two restarts, so three crashes; the third ends the session.
    assert_eq!(answers.len(), 3, "{answers:?}\n{stderr}");
    for (i, a) in answers[..2].iter().enumerate() {
        let m = message(a);
        assert!(
            m.contains("crashed (signal") && m.contains(&format!("restarting it ({} of 2)", i + 1)),
            "{m}"
        );
    }
    let last = message(&answers[2]);
    assert!(
        last.contains("crashed (signal")
            && last.contains("it was restarted 2 times in 60 s, the budget: the session ends"),
        "{last}"
    );
    assert_eq!(restart_lines(&stderr).len(), 2, "{stderr}");
    let ended: Value = stderr
        .lines()
        .find_map(|l| l.strip_prefix("bulkhead: mcp wrap: ended "))
        .map(|j| serde_json::from_str(j).expect("the ended line is JSON"))
        .unwrap_or_else(|| panic!("no end line: {stderr}"));
    assert_eq!(ended["restarts"], 2, "{ended}");
    assert!(
        stderr.contains("the budget: the session ends\n")
            && stderr.contains("bulkhead: mcp wrap: ended "),
        "{stderr}"
    );
}

#[test]
fn a_process_fault_fires_on_the_first_run_and_the_session_survives_it() {
    let mark = marker("wrap-restart-kill");
    let mut child = Command::new(bin("bulkhead"))
        .args(["mcp", "wrap", "--inject", "kill@2s", "--"])
        .args([peer("MCP_NODE"), peer("MCP_EVERYTHING")])
        .args(["stdio", &mark])
        .env_remove("BULKHEAD_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bulkhead mcp wrap");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut errors = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut next = |want: u64| -> Value {
        for line in lines.by_ref().map_while(Result::ok) {
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if v["id"] == want {
                return v;
            }
        }
        panic!("no answer to {want}")
    };
    writeln!(
        stdin,
        "{}",
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "restart-test", "version": "1"}}})
    )
    .unwrap();
    assert!(next(0)["result"].is_object());
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
    )
    .unwrap();
    // The fault kills the first run at 2 s; the restart says so on stderr.
    let mut seen = Vec::new();
    for line in errors.by_ref().map_while(Result::ok) {
        let restarted = line.contains("; restarting it (1 of 3)");
        seen.push(line);
        if restarted {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.contains("killed: signal(9)")),
        "{seen:#?}"
    );
    // The restarted run has no fault: the next call, and one later, are
    // its answers.
    for id in [1, 2] {
        writeln!(
            stdin,
            "{}",
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"message": "after"}}})
        )
        .unwrap();
        let a = next(id);
        assert_eq!(a["result"]["content"][0]["text"], "Echo: after", "{a}");
        std::thread::sleep(Duration::from_secs(1));
    }
    drop(stdin);
    let rest: Vec<String> = errors.map_while(Result::ok).collect();
    assert!(child.wait().expect("wait").code().is_some());
    let ended: Value = rest
        .iter()
        .find_map(|l| l.strip_prefix("bulkhead: mcp wrap: ended "))
        .map(|j| serde_json::from_str(j).expect("JSON"))
        .unwrap_or_else(|| panic!("no end line: {rest:#?}"));
    assert_eq!(ended["restarts"], 1, "{ended}");
    assert_eq!(ended["injected"]["fault"], "kill", "{ended}");
    assert!(
        pids_with_marker(&mark).is_empty(),
        "a server process survived"
    );
}
