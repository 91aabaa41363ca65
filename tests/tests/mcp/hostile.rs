//! Misbehaving MCP servers (`hostile-mcp MODE`) behind `bulkhead mcp wrap`:
//! each ends with the right outcome, the client always gets an answer, the
//! host's peak RSS stays under 64 MiB, and no process is left behind.

use std::process::{Command, Stdio};

use bulkhead_tests::{WrapSession, bin, drive_wrap, marker, pids_with_marker};
use serde_json::{Value, json};

/// The host's RSS must stay under this while a server misbehaves.
const HOST_RSS_CEILING: u64 = 64 << 20;

/// Runs `hostile-mcp MODE` under wrap with `flags`; sends initialize, then
/// `calls` tools/call requests (ids 1..=calls) and `extra` messages; waits
/// for `expect` answers, closes stdin, and collects the end.
fn session(mode: &str, flags: &[&str], calls: u64, extra: &[Value], expect: usize) -> WrapSession {
    let server = bin("hostile-mcp").display().to_string();
    // A marker of its own, so tests running side by side do not see each
    // other's servers as survivors.
    let mark = marker(&format!("hostile-{mode}"));
    // `--no-restart`: each test is about one run's end, which its `ended`
    // line reports (restarts are `wrap_restart.rs`'s).
    let child = Command::new(bin("bulkhead"))
        .args(["mcp", "wrap", "--no-restart"])
        .args(flags)
        .args(["--", &server, mode, &mark])
        .env_remove("BULKHEAD_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bulkhead mcp wrap");
    let mut messages =
        vec![json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}})];
    for id in 1..=calls {
        messages.push(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "go", "arguments": {}}}));
    }
    messages.extend(extra.iter().cloned());
    let s = drive_wrap(child, &messages, expect);
    let rss = s.ended["host_peak_rss_bytes"].as_u64().unwrap();
    assert!(
        rss > 0 && rss < HOST_RSS_CEILING,
        "host peak RSS {rss} ({mode})"
    );
    assert!(
        pids_with_marker(&mark).is_empty(),
        "{mode}: a server process survived"
    );
    s
}

fn error_of(s: &WrapSession, id: u64) -> String {
    let a = &s
        .answers
        .get(&id)
        .unwrap_or_else(|| panic!("no answer to {id}: {}", s.stderr));
    a["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {a}"))
        .to_owned()
}

#[test]
fn a_2_gib_answer_fails_only_its_request() {
    // Two calls: each answer is 2 GiB; both fail with the limit named, and
    // the initialize answer came through.
    let s = session("huge", &[], 2, &[], 3);
    assert!(s.answers[&0]["result"]["serverInfo"].is_object());
    for id in [1, 2] {
        let e = error_of(&s, id);
        assert!(e.contains("passed the 4194304-byte message limit"), "{e}");
    }
    assert_eq!(s.ended["relay"]["oversize_messages"], 2, "{}", s.ended);
}

#[test]
fn a_line_that_never_ends_fails_its_request_then_stops_the_server() {
    let s = session("endless", &["--max-message", "64K"], 1, &[], 2);
    let e = error_of(&s, 1);
    assert!(e.contains("65536-byte message limit"), "{e}");
    let why = s.ended["relay"]["ended"].to_string();
    assert!(why.contains("does not end"), "{}", s.ended);
}

#[test]
fn a_server_that_allocates_4_gib_is_killed_for_memory() {
    let s = session("alloc", &["--memory", "256M"], 1, &[], 2);
    assert_eq!(s.ended["outcome"], "killed", "{}", s.ended);
    assert!(
        s.ended["why"].as_str().unwrap().contains("memory"),
        "{}",
        s.ended
    );
    let e = error_of(&s, 1);
    assert!(e.contains("killed: memory"), "{e}");
}

#[test]
fn a_crash_answers_every_open_request() {
    let s = session("crash", &[], 3, &[], 4);
    for id in 1..=3 {
        let e = error_of(&s, id);
        assert!(e.contains("the MCP server crashed (signal"), "{e}");
    }
}

#[test]
fn a_server_that_writes_garbage_is_stopped() {
    let s = session("garbage", &[], 1, &[], 2);
    let e = error_of(&s, 1);
    assert!(e.contains("not JSON-RPC"), "{e}");
    assert_eq!(s.ended["relay"]["non_json_lines"], 16, "{}", s.ended);
}

#[test]
fn a_call_whose_cancel_is_ignored_times_out_and_the_session_goes_on() {
    // Call 1 is cancelled by the client: no answer is due. Call 2 is not,
    // and times out. A ping after both is still answered.
    let extra = [
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}),
    ];
    let s = session("deaf", &["--call-timeout", "1s"], 2, &extra, 2);
    assert!(
        !s.answers.contains_key(&1),
        "a cancelled request was answered: {:?}",
        s.answers
    );
    let e = error_of(&s, 2);
    assert!(e.contains("timed out after 1 s"), "{e}");
}

#[test]
fn a_server_stuck_in_a_cancelled_call_is_stopped() {
    // The call times out after 1 s and is cancelled; the server, spinning,
    // cannot answer the ping that follows, and is stopped 5 s later.
    let s = session("stuck", &["--call-timeout", "1s"], 1, &[], 2);
    let e = error_of(&s, 1);
    assert!(e.contains("timed out after 1 s"), "{e}");
    let why = s.ended["relay"]["ended"].to_string();
    assert!(why.contains("ignored the cancellation"), "{}", s.ended);
}
