//! `bulkhead mcp wrap --inject` with the stream faults, against the real
//! reference server (`server-everything`): the worker's relay applies each
//! to the server's output as if the server had done it, and the session
//! ends (or goes on) as it would with a server that really did; `injected`
//! says which fired, and nothing of the server is left.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_tests::{WrapSession, bin, drive_wrap, marker, pids_with_marker};
use serde_json::{Value, json};

/// Starts `bulkhead mcp wrap --inject SPEC FLAGS -- node everything stdio
/// MARK`; the marker (an argument the server ignores) finds its processes.
fn wrap(spec: &str, flags: &[&str], mark: &str) -> std::process::Child {
    super::inject::wrap(&[&["--inject", spec], flags].concat(), mark)
}

/// initialize (0), initialized, tools/list (1), tools/call echo (2),
/// ping (3).
fn messages() -> Vec<Value> {
    vec![
        super::inject::initialize(),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "echo", "arguments": {"message": "hi"}}}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}),
    ]
}

/// A session under `--inject SPEC` until every request is answered; checks
/// `injected`, its stderr line, and that no server process is left.
fn session(spec: &str, flags: &[&str]) -> WrapSession {
    let mark = marker(&format!("stream-{}", spec.replace([':', '@', '/'], "-")));
    let s = drive_wrap(wrap(spec, flags, &mark), &messages(), 4);
    let (fault, trigger) = spec.split_once('@').unwrap_or((spec, "start"));
    assert_eq!(
        s.ended["injected"]["fault"]
            .as_str()
            .map(|f| f.split(':').next()),
        Some(fault.split(':').next()),
        "{spec}: {}",
        s.stderr
    );
    assert_eq!(s.ended["injected"]["trigger"], trigger, "{spec}");
    assert!(s.ended["injected"]["at_ms"].is_u64(), "{spec}: {}", s.ended);
    assert!(
        s.stderr.contains("bulkhead: mcp wrap: injected "),
        "{spec}: no stderr line: {}",
        s.stderr
    );
    assert!(
        pids_with_marker(&mark).is_empty(),
        "{spec}: a server process survived"
    );
    s
}

fn error_message(s: &WrapSession, id: u64) -> &str {
    s.answers[&id]["error"]["message"]
        .as_str()
        .unwrap_or_else(|| {
            panic!(
                "request {id} was not answered with an error: {:?}",
                s.answers.get(&id)
            )
        })
}

#[test]
fn garbage_is_a_line_the_relay_drops_and_counts() {
    let s = session("garbage@msg:2", &[]);
    // The client sees what a server that printed a stray line gives: its
    // real messages, all answered.
    assert!(
        s.answers[&1]["result"]["tools"].is_array(),
        "{:?}",
        s.answers
    );
    assert_eq!(s.answers[&2]["result"]["content"][0]["text"], "Echo: hi");
    assert_eq!(s.ended["relay"]["non_json_lines"], 1, "{}", s.ended);
    // One before each of the server's messages: at least its four answers.
    let s = session("garbage@every:1", &[]);
    assert_eq!(s.answers[&2]["result"]["content"][0]["text"], "Echo: hi");
    let lines = s.ended["relay"]["non_json_lines"].as_u64().unwrap_or(0);
    assert!(lines >= 4, "{}", s.ended);
}

#[test]
fn oversize_fails_only_the_request_it_answers() {
    let s = session("oversize@on:tools/call", &["--max-message", "256K"]);
    let message = error_message(&s, 2);
    assert!(message.contains("262144-byte message limit"), "{message}");
    // The session goes on: the requests around it are answered.
    assert!(s.answers[&1]["result"]["tools"].is_array());
    assert!(s.answers[&3]["result"].is_object(), "{:?}", s.answers);
    assert_eq!(s.ended["relay"]["oversize_messages"], 1);
    assert_eq!(s.ended["outcome"], "completed", "{}", s.ended);
    // By bytes: past initialize's answer (about 2 KiB), on tools/list's.
    let s = session("oversize@bytes:3072", &["--max-message", "256K"]);
    assert!(error_message(&s, 1).contains("message limit"));
    assert_eq!(s.answers[&2]["result"]["content"][0]["text"], "Echo: hi");
}

#[test]
fn truncate_ends_the_server_mid_message() {
    // The answer never came whole: the request in flight gets the
    // server's end, and the session goes on with a restarted server.
    let s = session("truncate@on:tools/call", &[]);
    let message = error_message(&s, 2);
    assert!(
        message.contains("crashed (signal 9) before answering; restarting it"),
        "{message}"
    );
    assert!(s.answers[&1]["result"]["tools"].is_array());
    // Without restarts the session ends there, as the relay says.
    let s = session("truncate@on:tools/call", &["--no-restart"]);
    let message = error_message(&s, 2);
    assert!(
        message.contains("crashed (signal 9) before answering"),
        "{message}"
    );
    assert_eq!(
        s.ended["relay"]["ended"],
        "the MCP server crashed (signal 9)"
    );
}

/// When each answer came, by id, with its size.
struct Timed {
    started: Instant,
    came: Vec<(u64, Instant, usize)>,
}

impl Timed {
    fn at(&self, id: u64) -> (Instant, usize) {
        self.came
            .iter()
            .find(|(i, _, _)| *i == id)
            .map(|(_, t, len)| (*t, *len))
            .unwrap_or_else(|| panic!("no answer to {id}"))
    }
}

/// A session under `--inject SPEC` that notes when each answer came,
/// until every request is answered; checks `injected` and that no server
/// process is left.
fn timed(spec: &str) -> Timed {
    let mark = marker(&format!(
        "stream-timed-{}",
        spec.replace([':', '@', '/'], "-")
    ));
    let started = Instant::now();
    let mut child = wrap(spec, &[], &mark);
    let mut stdin = child.stdin.take().expect("stdin");
    for m in messages() {
        writeln!(stdin, "{m}").expect("write");
    }
    let mut came = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    while came.len() < 4 {
        let Some(Ok(line)) = lines.next() else { break };
        let v: Value = serde_json::from_str(&line).expect("a JSON line");
        if let Some(id) = v["id"].as_u64() {
            came.push((id, Instant::now(), line.len() + 1));
        }
    }
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(came.len(), 4, "{spec}: {stderr}");
    let ended: Value = stderr
        .lines()
        .find_map(|l| l.strip_prefix("bulkhead: mcp wrap: ended "))
        .map(|j| serde_json::from_str(j).expect("the ended line is JSON"))
        .unwrap_or_else(|| panic!("no end line: {stderr}"));
    let fault = spec.split([':', '@']).next().unwrap_or(spec);
    assert!(
        ended["injected"]["fault"]
            .as_str()
            .is_some_and(|f| f.starts_with(fault)),
        "{spec}: {ended}"
    );
    assert!(
        pids_with_marker(&mark).is_empty(),
        "{spec}: a server process survived"
    );
    Timed { started, came }
}

#[test]
fn delay_holds_the_answer_back() {
    let t = timed("delay:2s@on:tools/call");
    let (list, _) = t.at(1);
    let (call, _) = t.at(2);
    // Held at least the delay after the server wrote it, which is after
    // the session started.
    assert!(call - t.started >= Duration::from_secs(2));
    // tools/list and tools/call are sent together: without the fault their
    // answers come within milliseconds of each other. The margin is for
    // the host's own pace in passing the first one on.
    assert!(call - list >= Duration::from_secs(1), "{:?}", call - list);
}

#[test]
fn slow_paces_the_servers_output() {
    const RATE: u64 = 2 << 10;
    let t = timed("slow:2K");
    // The answers to initialize and tools/list (about 2 and 7.5 KiB) go on
    // no sooner than their bytes would have come at RATE from the
    // server's start, which is after the session's.
    let ((_, init), (list_at, list)) = (t.at(0), t.at(1));
    let least = Duration::from_secs_f64((init + list) as f64 / RATE as f64);
    let took = list_at - t.started;
    assert!(took >= least, "{} bytes in {took:?}", init + list);
}

#[test]
fn cut_stops_the_server_as_an_output_cap() {
    const WHY: &str = "stopped as at an output cap (--inject cut:100, after 0 bytes";
    // The answer to tools/list is over the cut: it never comes, and the
    // requests in flight are answered with why.
    let s = session("cut:100@on:tools/list", &["--no-restart"]);
    assert!(s.answers[&0]["result"].is_object(), "initialize went on");
    let message = error_message(&s, 1);
    assert!(message.contains(WHY), "{message}");
    let ended = s.ended["relay"]["ended"].as_str().unwrap_or_default();
    assert!(ended.contains(WHY), "{}", s.ended);
    let answered = s.ended["relay"]["answered_by_bulkhead"].as_u64();
    assert!(answered >= Some(1), "{}", s.ended);
}

#[test]
fn triggers_a_relay_cannot_apply_are_refused_with_the_reason() {
    for (spec, target, says) in [
        (
            "garbage@p:0.5",
            &["--", "true"][..],
            "draws no seeded numbers",
        ),
        ("truncate@every:2", &["--", "true"][..], "cannot repeat"),
        // The remote relay applies no stream fault.
        (
            "delay:1s",
            &["--url", "http://127.0.0.1:9/mcp"][..],
            "with --url",
        ),
    ] {
        let out = Command::new(bin("bulkhead"))
            .args(["mcp", "wrap", "--inject", spec])
            .args(target)
            .env_remove("BULKHEAD_CONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("spawn");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{spec}: {err}");
        assert!(err.contains(says), "{spec}: {err}");
    }
}
