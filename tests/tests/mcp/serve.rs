//! `bulkhead mcp serve`: bulkhead's built-in tools and every configured
//! server's tools behind one MCP server, each call sandboxed; a server that
//! keeps crashing is restarted within its budget, then marked failed; and
//! `bulkhead mcp status` reports on the configured servers.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use bulkhead_tests::{bin, inspect, peer};
use serde_json::{Value, json};

/// A servers file with server-everything and a server that crashes on
/// every call.
fn servers_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("servers.json");
    let doc = json!({"mcpServers": {
        "everything": {"command": peer("MCP_NODE"), "args": [peer("MCP_EVERYTHING"), "stdio"]},
        "crashy": {"command": bin("hostile-mcp"), "args": ["crash"]},
    }});
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

/// `bulkhead mcp serve` on stdio over `servers`, and its stdin.
fn gateway(servers: &std::path::Path) -> (std::process::Child, std::process::ChildStdin) {
    let mut child = Command::new(bin("bulkhead"))
        .args(["mcp", "serve", "--servers", servers.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}

/// The inspector's answer for `method` from `bulkhead mcp serve ARGS…`.
fn inspect_gateway(args: &[&str], method: &[&str]) -> Value {
    let mut server = vec![
        bin("bulkhead").display().to_string(),
        "mcp".into(),
        "serve".into(),
    ];
    server.extend(args.iter().map(|a| (*a).to_owned()));
    inspect(&server, method)
}

#[test]
fn the_gateway_offers_builtin_and_namespaced_server_tools() {
    let dir = tempfile::tempdir().unwrap();
    let servers = servers_file(dir.path());
    let servers = servers.to_str().unwrap();
    let list = inspect_gateway(&["--servers", servers], &["tools/list"]);
    let names: Vec<&str> = list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for wanted in [
        "shell",
        "read_file",
        "everything__echo",
        "everything__get-sum",
        "crashy__go",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    let sum = inspect_gateway(
        &["--servers", servers],
        &[
            "tools/call",
            "--tool-name",
            "everything__get-sum",
            "--tool-arg",
            "a=19",
            "b=23",
        ],
    );
    assert_eq!(
        sum["content"][0]["text"], "The sum of 19 and 23 is 42.",
        "{sum}"
    );
    let builtin = inspect_gateway(
        &[],
        &[
            "tools/call",
            "--tool-name",
            "shell",
            "--tool-arg",
            "command=echo sandboxed",
        ],
    );
    assert_eq!(builtin["content"][0]["text"], "sandboxed\n", "{builtin}");
    assert!(
        builtin["content"][1]["text"]
            .as_str()
            .unwrap()
            .contains("policy workspace"),
        "{builtin}"
    );
}

#[test]
fn a_crash_looping_server_is_restarted_then_marked_failed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut stdin) = gateway(&servers_file(dir.path()));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut ask = |id: u64, method: &str, params: Value| -> Value {
        writeln!(
            stdin,
            "{}",
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
        )
        .unwrap();
        // Notifications from the servers may come in between.
        loop {
            let line = lines.next().expect("an answer").unwrap();
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == id {
                return v;
            }
        }
    };
    let init = ask(0, "initialize", json!({"protocolVersion": "2025-06-18"}));
    assert_eq!(init["result"]["serverInfo"]["name"], "bulkhead");
    // The default budget: 3 restarts in 60 s. Each call that reaches a
    // running server crashes it (a call sent while it is going down fails
    // with it); the fourth crash spends the budget, and from then on every
    // call is answered with the failure.
    let mut messages = Vec::new();
    for id in 1..=16 {
        let a = ask(
            id,
            "tools/call",
            json!({"name": "crashy__go", "arguments": {}}),
        );
        let m = a["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{a}"))
            .to_owned();
        let failed = m.contains("marked failed");
        messages.push(m);
        if failed {
            break;
        }
    }
    let (last, before) = messages.split_last().unwrap();
    assert!(
        last.contains("marked failed") && last.contains("restarted 3 times"),
        "{messages:?}"
    );
    assert!(
        before.len() >= 4 && before.iter().all(|m| m.contains("crashed")),
        "{messages:?}"
    );
    // The other server is untouched.
    let sum = ask(
        9,
        "tools/call",
        json!({"name": "everything__get-sum", "arguments": {"a": 1, "b": 2}}),
    );
    assert_eq!(
        sum["result"]["content"][0]["text"], "The sum of 1 and 2 is 3.",
        "{sum}"
    );
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn status_lists_each_server_with_its_state_and_tools() {
    let dir = tempfile::tempdir().unwrap();
    let servers = servers_file(dir.path());
    let out = Command::new(bin("bulkhead"))
        .args([
            "mcp",
            "status",
            "--json",
            "--servers",
            servers.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let everything = v
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "everything")
        .unwrap();
    assert_eq!(everything["state"], "ready", "{everything}");
    assert_eq!(everything["policy"], "untrusted");
    assert!(everything["tools"].as_array().unwrap().len() >= 10);
    assert!(everything["peak_rss_bytes"].as_u64().unwrap() > 0);
    assert!(
        everything["stderr_tail"]
            .as_str()
            .unwrap()
            .contains("Starting"),
        "{everything}"
    );
}

#[test]
fn a_bad_servers_file_names_the_line_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("servers.json");
    std::fs::write(
        &path,
        "{\"mcpServers\": {\n  \"x\": {\"command\": [\"not\", \"a string\"]}\n}}",
    )
    .unwrap();
    let out = Command::new(bin("bulkhead"))
        .args(["mcp", "status", "--servers", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("servers.json") && e.contains("line 2") && e.contains("mcpServers.x.command"),
        "{e}"
    );
}

/// A server's progress notifications reach the client through the gateway,
/// with the client's own token.
#[test]
fn progress_goes_through_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut stdin) = gateway(&servers_file(dir.path()));
    let send = |stdin: &mut std::process::ChildStdin, v: Value| writeln!(stdin, "{v}").unwrap();
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}}),
    );
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "everything__trigger-long-running-operation",
            "arguments": {"duration": 1, "steps": 2},
            "_meta": {"progressToken": "mine"}}}),
    );
    let mut progress = 0;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if v["method"] == "notifications/progress" {
            assert_eq!(v["params"]["progressToken"], "mine", "{v}");
            progress += 1;
        }
        if v["id"] == 1 {
            assert!(
                v["result"]["content"][0]["text"]
                    .as_str()
                    .unwrap()
                    .contains("completed"),
                "{v}"
            );
            break;
        }
    }
    assert_eq!(progress, 2, "both steps' progress");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

/// A request the server never answers, of a method the worker's relay sets
/// no deadline on, ends after the server's `call_timeout` (plus the grace
/// the relay's own answer to a `tools/call` gets) with the reason, instead
/// of holding its task for as long as the server lives.
#[test]
fn a_request_the_server_never_answers_ends_after_its_call_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let servers = dir.path().join("servers.json");
    let doc = json!({"mcpServers": {"mute": {"command": bin("hostile-mcp"), "args": ["mute"]}}});
    std::fs::write(&servers, doc.to_string()).unwrap();
    let config = dir.path().join("bulkhead.toml");
    std::fs::write(&config, "[servers.mute]\ncall_timeout = \"1s\"\n").unwrap();
    let mut child = Command::new(bin("bulkhead"))
        .args(["mcp", "serve", "--servers", servers.to_str().unwrap()])
        .env("BULKHEAD_CONFIG", &config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    for msg in [
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "prompts/get", "params": {"name": "mute__any"}}),
    ] {
        writeln!(stdin, "{msg}").unwrap();
    }
    let started = std::time::Instant::now();
    let answer = loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "the gateway ended");
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["id"] == 1 {
            break v;
        }
    };
    let waited = started.elapsed();
    let why = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        why.contains("server \"mute\" did not answer `prompts/get` within 6 s"),
        "{answer}"
    );
    assert!(waited >= std::time::Duration::from_secs(6), "{waited:?}");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}
