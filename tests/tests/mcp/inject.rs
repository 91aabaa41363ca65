//! `bulkhead mcp wrap --inject` against the real reference server
//! (`server-everything`): each MCP fault does to the session what it says,
//! a process fault ends the server's worker as the real fault would, the
//! `ended` line carries `injected`, nothing of the server is left, and the
//! same seed picks the same requests.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use bulkhead_tests::{WrapSession, bin, drive_wrap, marker, peer, pids_with_marker};
use serde_json::{Value, json};

/// Starts `bulkhead mcp wrap FLAGS -- node everything stdio MARK`; the
/// marker (an argument the server ignores) finds its processes after.
pub(super) fn wrap(flags: &[&str], mark: &str) -> std::process::Child {
    Command::new(bin("bulkhead"))
        .args(["mcp", "wrap"])
        .args(flags)
        .arg("--")
        .args([peer("MCP_NODE"), peer("MCP_EVERYTHING")])
        .args(["stdio", mark])
        .env_remove("BULKHEAD_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bulkhead mcp wrap")
}

pub(super) fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "inject-test", "version": "1"}}})
}

/// initialize (0), initialized, tools/list (1), tools/call echo (2).
fn messages() -> Vec<Value> {
    vec![
        initialize(),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "echo", "arguments": {"message": "hi"}}}),
    ]
}

/// A session under `--inject SPEC` that waits for `expect` answers; checks
/// the `injected` field and that no server process is left.
fn session(spec: &str, expect: usize) -> WrapSession {
    let mark = marker(&format!("inject-{}", spec.replace([':', '@', '/'], "-")));
    let s = drive_wrap(wrap(&["--inject", spec], &mark), &messages(), expect);
    let fault = spec.split('@').next().unwrap_or(spec);
    assert_eq!(
        s.ended["injected"]["fault"]
            .as_str()
            .map(|f| f.split(':').next()),
        Some(fault.split(':').next()),
        "{spec}: {}",
        s.stderr
    );
    assert!(
        pids_with_marker(&mark).is_empty(),
        "{spec}: a server process survived"
    );
    s
}

#[test]
fn error_answers_the_matching_request_in_the_servers_stead() {
    let s = session("error@on:tools/call", 3);
    assert_eq!(s.answers[&2]["error"]["code"], -32603, "{:?}", s.answers);
    assert!(
        s.answers[&1]["result"]["tools"].is_array(),
        "tools/list passed"
    );
    assert_eq!(s.ended["injected"]["trigger"], "on:tools/call");
    assert!(
        s.stderr.contains("injected error:-32603 @on:tools/call"),
        "{}",
        s.stderr
    );
    let s = session("error:-32000@on:echo", 3);
    assert_eq!(s.answers[&2]["error"]["code"], -32000);
}

#[test]
fn drop_swallows_the_answer() {
    let s = session("drop@msg:2", 2);
    assert!(!s.answers.contains_key(&1), "the answer to tools/list came");
    assert_eq!(s.answers[&2]["result"]["content"][0]["text"], "Echo: hi");
}

#[test]
fn timeout_never_answers() {
    let s = session("timeout@on:tools/list", 2);
    assert!(!s.answers.contains_key(&1), "tools/list was answered");
    assert!(s.answers.contains_key(&2));
}

#[test]
fn malformed_breaks_the_results_schema() {
    let s = session("malformed@on:tools/call", 3);
    let result = &s.answers[&2]["result"];
    assert!(
        result.is_object() && !result["content"].is_array(),
        "{result}"
    );
}

#[test]
fn disconnect_ends_the_session() {
    let s = session("disconnect@msg:2", 1);
    assert!(s.answers.contains_key(&0));
    assert!(!s.answers.contains_key(&1) && !s.answers.contains_key(&2));
    assert_eq!(s.ended["outcome"], "completed", "{}", s.stderr);
}

/// A wrap whose client keeps its stdin open until the session ends by
/// itself (a process fault, under `--no-restart`: a restarted server would
/// run on), with the `ended` line.
fn until_it_ends(flags: &[&str], tag: &str) -> Value {
    let mark = marker(tag);
    let flags = [&["--no-restart"][..], flags].concat();
    let mut child = wrap(&flags, &mark);
    let mut stdin = child.stdin.take().expect("stdin");
    for m in messages() {
        writeln!(stdin, "{m}").expect("write");
    }
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    // Read to the end: the fault ends the session; stdin stays open.
    let answers = stdout.lines().map_while(Result::ok).count();
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(answers >= 1, "no answer before the fault: {stderr}");
    assert!(
        pids_with_marker(&mark).is_empty(),
        "{tag}: a server process survived"
    );
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("bulkhead: mcp wrap: ended "))
        .map(|j| serde_json::from_str(j).expect("JSON"))
        .unwrap_or_else(|| panic!("no end line: {stderr}"))
}

#[test]
fn process_faults_end_the_servers_worker_as_the_real_fault() {
    // Two seconds: after the server's start and answers, well before any
    // other end of the session (none comes while stdin is open).
    let ended = until_it_ends(&["--inject", "kill@2s"], "inject-kill");
    assert_eq!(
        (ended["outcome"].as_str(), ended["why"].as_str()),
        (Some("killed"), Some("killed: signal(9)")),
        "{ended}"
    );
    assert_eq!(ended["injected"]["fault"], "kill");
    let ended = until_it_ends(&["--inject", "oom@2s", "--memory", "256M"], "inject-oom");
    assert_eq!(ended["why"], "killed: memory", "{ended}");
}

#[test]
fn faults_that_cannot_apply_are_refused_with_the_reason() {
    for (spec, says) in [
        ("slow:1K@p:0.5", "draws no seeded numbers"),
        ("error@200ms", "@on:"),
        ("explode", "the faults are"),
    ] {
        let out = Command::new(bin("bulkhead"))
            .args(["mcp", "wrap", "--inject", spec, "--", "true"])
            .stdin(Stdio::null())
            .output()
            .expect("spawn");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{spec}: {err}");
        assert!(err.contains(says), "{spec}: {err}");
    }
}

#[test]
fn the_same_seed_picks_the_same_requests() {
    const PINGS: u64 = 8;
    let run = |seed: u64| {
        let mut msgs = vec![
            initialize(),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        ];
        msgs.extend((1..=PINGS).map(|id| json!({"jsonrpc": "2.0", "id": id, "method": "ping"})));
        let mark = marker(&format!("inject-seed-{seed}"));
        let flags = [
            "--inject",
            "error@p:0.5",
            "--inject-seed",
            &seed.to_string(),
        ];
        let s = drive_wrap(wrap(&flags, &mark), &msgs, PINGS as usize + 1);
        (0..=PINGS)
            .map(|id| s.answers[&id]["error"]["data"]["bulkhead"]["injected"].is_string())
            .collect::<Vec<_>>()
    };
    for seed in [3u64, 11] {
        let mut rng = bulkhead_faults::SeededRng::new(seed);
        let expected: Vec<bool> = (0..=PINGS).map(|_| rng.chance(0.5)).collect();
        assert_eq!(run(seed), expected, "seed {seed}");
        assert_eq!(run(seed), expected, "seed {seed}, again");
    }
}
