//! `bulkhead mcp serve --inject SERVER:SPEC`, `[servers.NAME] inject` and
//! `--chaos` against the real reference server (`server-everything`): each
//! MCP fault gives the client what it says, a process fault kills the
//! server's worker and the session restarts it, the gateway stays up,
//! each fault is one stderr line, nothing is left running, the same seed
//! gives the same faults, the official Python SDK sees an injected error
//! as an `McpError`, and a chaos soak answers every request once.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bulkhead_tests::launchers::{output_within, test_venv};
use bulkhead_tests::{bin, marker, peer, pids_with_marker};
use serde_json::{Value, json};

/// How long one answer may take: a request may wait for its server's
/// (re)start, a node process that loads in a second or two here.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// A servers file with server-everything under each name, its processes
/// marked with `mark`.
fn servers_file(dir: &Path, names: &[&str], mark: &str) -> PathBuf {
    let servers: serde_json::Map<String, Value> = names
        .iter()
        .map(|n| {
            let args = json!([peer("MCP_EVERYTHING"), "stdio", mark]);
            (
                (*n).to_owned(),
                json!({"command": peer("MCP_NODE"), "args": args}),
            )
        })
        .collect();
    let path = dir.join("servers.json");
    std::fs::write(&path, json!({"mcpServers": servers}).to_string()).unwrap();
    path
}

/// A gateway on stdio, its answers by id and its stderr by line.
struct Gateway {
    child: Child,
    stdin: ChildStdin,
    answers: mpsc::Receiver<Value>,
    seen: HashMap<u64, Vec<Value>>,
    stderr: std::thread::JoinHandle<String>,
}

impl Gateway {
    fn start(servers: &Path, flags: &[&str], config: Option<&Path>) -> Self {
        let mut cmd = Command::new(bin("bulkhead"));
        cmd.args(["mcp", "serve", "--servers"])
            .arg(servers)
            .args(flags)
            .env_remove("BULKHEAD_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(c) = config {
            cmd.env("BULKHEAD_CONFIG", c);
        }
        let mut child = cmd.spawn().expect("spawn bulkhead mcp serve");
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v.get("id").is_some()
                {
                    let _ = tx.send(v);
                }
            }
        });
        let err = BufReader::new(child.stderr.take().unwrap());
        let stderr = std::thread::spawn(move || {
            err.lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
                .join("\n")
        });
        let mut g = Self {
            child,
            stdin,
            answers,
            seen: HashMap::new(),
            stderr,
        };
        g.send(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "serve-inject-test", "version": "1"}}}),
        );
        g.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        g.answer(0);
        g
    }

    fn send(&mut self, v: Value) {
        writeln!(self.stdin, "{v}").expect("write to the gateway");
    }

    fn call(&mut self, id: u64, tool: &str, arguments: Value) {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}}));
    }

    /// Takes answers until `id`'s comes (within the bound).
    fn answer(&mut self, id: u64) -> Value {
        let deadline = std::time::Instant::now() + ANSWER_WITHIN;
        while !self.seen.contains_key(&id) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let v = self
                .answers
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {id} within {ANSWER_WITHIN:?}"));
            let got = v["id"].as_u64().unwrap_or(u64::MAX);
            self.seen.entry(got).or_default().push(v);
        }
        self.seen[&id][0].clone()
    }

    /// Closes stdin; the gateway's exit status and stderr, and every
    /// answer that came.
    fn finish(mut self) -> (std::process::ExitStatus, String, HashMap<u64, Vec<Value>>) {
        drop(self.stdin);
        let status = self.child.wait().expect("wait");
        while let Ok(v) = self.answers.recv_timeout(Duration::from_millis(200)) {
            let got = v["id"].as_u64().unwrap_or(u64::MAX);
            self.seen.entry(got).or_default().push(v);
        }
        (status, self.stderr.join().unwrap_or_default(), self.seen)
    }
}

/// Waits (bounded) until no process carries `mark`.
fn assert_nothing_left(mark: &str) {
    for _ in 0..100 {
        if pids_with_marker(mark).is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "server processes survived the gateway: {:?}",
        pids_with_marker(mark)
    );
}

fn echo(msg: &str) -> Value {
    json!({"message": msg})
}

#[test]
fn each_mcp_fault_gives_its_outcome_and_the_gateway_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let mark = marker("serve-inject-mcp");
    let servers = servers_file(dir.path(), &["e1", "e2"], &mark);
    // e1's requests one by one: error (1st), malformed (2nd), pass (3rd);
    // e2's by tool, as they may reach it in any order: get-env never
    // answered, get-sum's answer dropped, get-tiny-image closes its
    // session, echo passes (before and after the restart).
    let mut g = Gateway::start(
        &servers,
        &[
            "--inject",
            "e1:error:-32000@msg:1",
            "--inject",
            "e1:malformed@msg:2",
            "--inject",
            "e2:timeout@on:get-env",
            "--inject",
            "e2:drop@on:get-sum",
            "--inject",
            "e2:disconnect@on:get-tiny-image",
        ],
        None,
    );
    g.call(1, "e1__echo", echo("one"));
    let a = g.answer(1);
    assert_eq!(a["error"]["code"], -32000, "{a}");
    assert_eq!(
        a["error"]["data"]["bulkhead"]["injected"],
        "error:-32000@msg:1"
    );
    g.call(2, "e1__echo", echo("two"));
    let a = g.answer(2);
    assert!(
        a["result"].is_object() && a["result"]["content"].is_string(),
        "malformed: {a}"
    );
    g.call(3, "e1__echo", echo("three"));
    assert_eq!(g.answer(3)["result"]["content"][0]["text"], "Echo: three");

    g.call(10, "e2__get-env", json!({}));
    g.call(11, "e2__get-sum", json!({"a": 1, "b": 2}));
    g.call(12, "e2__echo", echo("after"));
    assert_eq!(g.answer(12)["result"]["content"][0]["text"], "Echo: after");
    g.call(13, "e2__get-tiny-image", json!({}));
    let a = g.answer(13);
    let says = a["error"]["message"].as_str().unwrap_or_default();
    assert!(says.contains("injected disconnect"), "{a}");
    // The session closed the server's input; it restarts within its
    // budget and answers again.
    g.call(14, "e2__echo", echo("back"));
    let a = g.answer(14);
    assert_eq!(a["result"]["content"][0]["text"], "Echo: back", "{a}");

    let (status, stderr, seen) = g.finish();
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        !seen.contains_key(&10),
        "timeout was answered: {:?}",
        seen.get(&10)
    );
    assert!(
        !seen.contains_key(&11),
        "drop was answered: {:?}",
        seen.get(&11)
    );
    for id in [1, 2, 3, 12, 13, 14] {
        assert_eq!(seen[&id].len(), 1, "{id} answered more than once");
    }
    for (fault, request) in [
        (
            "injected error:-32000 @msg:1",
            "server e1, request 1 (tools/call echo)",
        ),
        (
            "injected malformed @msg:2",
            "server e1, request 2 (tools/call echo)",
        ),
        (
            "injected timeout @on:get-env",
            "server e2, request 10 (tools/call get-env)",
        ),
        (
            "injected drop @on:get-sum",
            "server e2, request 11 (tools/call get-sum)",
        ),
        (
            "injected disconnect @on:get-tiny-image",
            "server e2, request 13 (tools/call get-tiny-image)",
        ),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("bulkhead: mcp serve: ")
                    && l.contains(fault)
                    && l.contains(request)),
            "no line for {fault} on {request}:\n{stderr}"
        );
    }
    assert_nothing_left(&mark);
}

#[test]
fn a_process_fault_kills_the_servers_worker_and_the_session_restarts_it() {
    let dir = tempfile::tempdir().unwrap();
    let mark = marker("serve-inject-kill");
    let servers = servers_file(dir.path(), &["e1", "e2"], &mark);
    // e1: killed at its second request; e2: its worker exits with 3 at
    // 1 s (its first run only), by the worker's own fault path.
    let mut g = Gateway::start(
        &servers,
        &["--inject", "e1:kill@every:2", "--inject", "e2:exit:3@1s"],
        None,
    );
    g.call(1, "e1__echo", echo("one"));
    assert_eq!(g.answer(1)["result"]["content"][0]["text"], "Echo: one");
    g.call(2, "e1__echo", echo("two"));
    let a = g.answer(2);
    let says = a["error"]["message"].as_str().unwrap_or_default();
    assert!(says.contains("killed") && says.contains("signal(9)"), "{a}");
    g.call(3, "e1__echo", echo("three"));
    assert_eq!(g.answer(3)["result"]["content"][0]["text"], "Echo: three");
    // e2 died at 1 s and was restarted: it answers.
    std::thread::sleep(Duration::from_secs(2));
    g.call(4, "e2__echo", echo("four"));
    assert_eq!(g.answer(4)["result"]["content"][0]["text"], "Echo: four");
    let (status, stderr, _) = g.finish();
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("injected kill @every:2") && stderr.contains("server e1, request 2"),
        "{stderr}"
    );
    assert!(
        stderr.contains("injected exit:3 @1000ms") && stderr.contains("server e2, its worker"),
        "{stderr}"
    );
    assert_nothing_left(&mark);
}

#[test]
fn config_faults_apply_and_bad_ones_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mark = marker("serve-inject-config");
    let servers = servers_file(dir.path(), &["everything"], &mark);
    let config = dir.path().join("bulkhead.toml");
    std::fs::write(
        &config,
        "[servers.everything]\ninject = [\"error:-32001@on:echo\"]\n",
    )
    .unwrap();
    let mut g = Gateway::start(&servers, &[], Some(&config));
    g.call(1, "everything__echo", echo("x"));
    assert_eq!(g.answer(1)["error"]["code"], -32001);
    let (status, stderr, _) = g.finish();
    assert!(status.success(), "{stderr}");
    assert_nothing_left(&mark);

    let serve = |flags: &[&str], config: Option<&Path>| {
        let mut cmd = Command::new(bin("bulkhead"));
        cmd.args(["mcp", "serve", "--servers"])
            .arg(&servers)
            .args(flags)
            .env_remove("BULKHEAD_CONFIG")
            .stdin(Stdio::null());
        if let Some(c) = config {
            cmd.env("BULKHEAD_CONFIG", c);
        }
        let out = output_within(&mut cmd, ANSWER_WITHIN, "bulkhead mcp serve");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (flags, says) in [
        (
            &["--inject", "nosuch:error"][..],
            &["no server \"nosuch\"", "the servers are: everything"][..],
        ),
        (&["--inject", "everything:slow:1K"], &["stream fault"]),
        (&["--inject", "everything:hang"], &["hang stops a server"]),
        (&["--inject", "everything:oom@on:echo"], &["kill or crash"]),
        (&["--inject", "everything:error@200ms"], &["@on:"]),
        (&["--inject", "everything:explode"], &["the faults are"]),
        (
            &["--chaos", "seed=1"],
            &["rate is missing", "seed=S", "error, drop, timeout"],
        ),
        (
            &["--chaos", "seed=1,rate=0.1,faults=oom"],
            &["fault \"oom\"", "kill, crash"],
        ),
    ] {
        let (code, err) = serve(flags, None);
        assert_eq!(code, Some(2), "{flags:?}: {err}");
        for s in says {
            assert!(err.contains(s), "{flags:?}: wanted {s}: {err}");
        }
    }
    std::fs::write(
        &config,
        "[servers.everything]\ninject = [\"boom@on:echo\"]\n",
    )
    .unwrap();
    let (code, err) = serve(&[], Some(&config));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("line 2") && err.contains("inject \"boom@on:echo\""),
        "{err}"
    );
    assert_nothing_left(&mark);
}

/// Which of `n` sequential calls chaos failed, under `seed`.
fn chaos_picks(dir: &Path, seed: u64, n: u64) -> Vec<bool> {
    let mark = marker(&format!("serve-chaos-seed-{seed}"));
    let servers = servers_file(dir, &["a", "b"], &mark);
    let chaos = format!("seed={seed},rate=0.4,faults=error");
    let mut g = Gateway::start(&servers, &["--chaos", &chaos], None);
    let picks: Vec<bool> = (1..=n)
        .map(|id| {
            let server = if id % 2 == 0 { "a" } else { "b" };
            g.call(id, &format!("{server}__echo"), echo("x"));
            g.answer(id)["error"]["data"]["bulkhead"]["injected"].is_string()
        })
        .collect();
    let (status, stderr, _) = g.finish();
    assert!(status.success(), "{stderr}");
    let logged = stderr
        .lines()
        .filter(|l| l.contains("mcp serve: chaos: injected error"))
        .count();
    assert_eq!(logged, picks.iter().filter(|p| **p).count(), "{stderr}");
    assert_nothing_left(&mark);
    picks
}

#[test]
fn the_same_chaos_seed_gives_the_same_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let first = chaos_picks(dir.path(), 5, 24);
    assert!(
        first.iter().any(|p| *p) && first.iter().any(|p| !*p),
        "{first:?}"
    );
    assert_eq!(first, chaos_picks(dir.path(), 5, 24));
    assert_ne!(first, chaos_picks(dir.path(), 6, 24));
}

/// The official Python SDK client over stdio: the result of one
/// `tools/call`, or the `McpError` it raised.
const SDK_CLIENT: &str = r#"
import asyncio, json, os, sys
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
try:  # the SDK's 1.x name, and 2.x's
    from mcp.shared.exceptions import McpError
except ImportError:
    from mcp.shared.exceptions import MCPError as McpError

async def main():
    params = StdioServerParameters(command=sys.argv[1], args=sys.argv[2:], env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            try:
                r = await session.call_tool("everything__echo", {"message": "hi"})
                out = {"result": r.model_dump(mode="json")}
            except McpError as e:
                out = {"mcp_error": {"code": e.error.code, "message": e.error.message}}
            # The session survives: the gateway still answers.
            await session.send_ping()
            out["ping"] = "ok"
            print(json.dumps(out))

asyncio.run(main())
"#;

#[test]
fn the_python_sdk_sees_an_injected_error_and_a_closed_session() {
    let venv = test_venv();
    let dir = tempfile::tempdir().unwrap();
    let mark = marker("serve-inject-sdk");
    let servers = servers_file(dir.path(), &["everything"], &mark);
    let client = dir.path().join("client.py");
    std::fs::write(&client, SDK_CLIENT).unwrap();
    let sdk = |spec: &str| -> Value {
        let mut py = Command::new(venv.join("bin/python"));
        py.arg(&client)
            .arg(bin("bulkhead"))
            .args(["mcp", "serve", "--servers"])
            .arg(&servers)
            .args(["--inject", spec])
            .env_remove("BULKHEAD_CONFIG");
        let out = output_within(&mut py, ANSWER_WITHIN * 2, "the SDK client");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{spec}: the SDK client failed: {stderr}"
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)))
    };
    let got = sdk("everything:error@on:tools/call");
    assert_eq!(got["mcp_error"]["code"], -32603, "{got}");
    assert!(
        got["mcp_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("injected error")),
        "{got}"
    );
    assert_eq!(got["ping"], "ok");
    let got = sdk("everything:disconnect@on:tools/call");
    assert!(
        got["mcp_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("session was closed")),
        "{got}"
    );
    assert_eq!(
        got["ping"], "ok",
        "the gateway outlives the server's session"
    );
    assert_nothing_left(&mark);
}

#[test]
fn a_chaos_soak_answers_every_request_once_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let soak = bulkhead_tests::chaos_soak::run(&bin("bulkhead"), dir.path(), 400, 11, 0.1);
    eprintln!("{soak:?}");
    assert!(soak.problems.is_empty(), "{:#?}", soak.problems);
    assert!(
        soak.leftover.is_empty(),
        "left running: {:?}",
        soak.leftover
    );
    let faults: u64 = soak.faults.values().sum();
    assert!(
        faults >= 15,
        "chaos at 0.1 over 400 calls fired {faults}: {soak:?}"
    );
    assert_eq!(soak.answered + soak.unanswered, soak.calls, "{soak:?}");
    // The window of a dozen requests in flight holds a few fds at most.
    assert!(
        soak.fds_end <= soak.fds_start + 8,
        "fds {} -> {}",
        soak.fds_start,
        soak.fds_end
    );
    // No growth with the requests once settled (see `rss_settled_kib`):
    // under 4 MiB more at the end than a quarter of the way in.
    let last = *soak.rss_kib.last().unwrap();
    assert!(
        last < soak.rss_settled_kib + 4096,
        "RSS {} KiB (settled) -> {last} KiB: {soak:?}",
        soak.rss_settled_kib
    );
}
