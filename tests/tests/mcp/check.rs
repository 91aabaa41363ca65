//! `bulkhead mcp check`: the real reference server passes under
//! `untrusted`, with its tools listed and a client config that runs it;
//! a command that does not exist fails with exit 5 and says why, and so
//! does a server that floods the check with requests of its own. Either
//! way, no process of the server outlives the command.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use bulkhead_tests::{bin, marker, peer, pids_with_marker};
use serde_json::Value;

fn check(args: &[&str]) -> Output {
    Command::new(bin("bulkhead"))
        .args(["mcp", "check"])
        .args(args)
        .env_remove("BULKHEAD_CONFIG")
        .output()
        .expect("run bulkhead mcp check")
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_reference_server_passes_under_untrusted() {
    let (node, everything) = (peer("MCP_NODE"), peer("MCP_EVERYTHING"));
    let dir = Path::new(&everything)
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let base = ["--policy", "untrusted", "--allow-read", &dir];
    let server = ["--", &node, &everything, "stdio"];
    let out = check(&[&base[..], &["--json"], &server[..]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["tool_count"].as_u64().unwrap() >= 10, "{v}");
    let tools: Vec<&str> = v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tools.contains(&"echo") && tools.contains(&"get-sum"),
        "{tools:?}"
    );
    assert_eq!(v["policy"]["name"], "untrusted", "{v}");
    assert!(v["server"]["name"].as_str().is_some(), "{v}");
    assert!(v["initialize_ms"].as_u64().is_some(), "{v}");
    // The snippet runs the same server, through `mcp wrap`, with the flags
    // of the check.
    let entry = v["client_config"]["mcpServers"]
        .as_object()
        .and_then(|m| m.values().next())
        .unwrap_or_else(|| panic!("no client config: {v}"));
    assert_eq!(entry["command"], "bulkhead");
    let args: Vec<&str> = entry["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut want = vec![
        "mcp",
        "wrap",
        "--policy",
        "untrusted",
        "--allow-read",
        &dir,
        "--",
    ];
    want.extend([node.as_str(), everything.as_str(), "stdio"]);
    assert_eq!(args, want);

    // The text report says the same, for people.
    let out = check(&[&base[..], &server[..]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    for wanted in [
        "PASSED",
        "tools/list answered in",
        "get-sum",
        "policy untrusted",
        "\"command\":\"bulkhead\"",
    ] {
        assert!(
            report.contains(wanted),
            "{wanted:?} missing from:\n{report}"
        );
    }
}

#[test]
fn a_command_that_does_not_exist_fails_with_exit_5_and_says_so() {
    let missing = marker("no-such-server");
    let out = check(&["--", &missing]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    for wanted in [
        "FAILED",
        &format!("cannot start the MCP server \"{missing}\""),
        &format!("`{missing}` could not be started"),
    ] {
        assert!(
            report.contains(wanted),
            "{wanted:?} missing from:\n{report}"
        );
    }
    let out = check(&["--json", "--", &missing]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false, "{v}");
    assert!(v["client_config"].is_null(), "{v}");
}

#[test]
fn a_server_that_never_answers_fails_in_bounded_time_and_leaves_nothing() {
    let mark = marker("check-quiet");
    let out = check(&[
        "--init-timeout",
        "1s",
        "--",
        "sh",
        "-c",
        "echo 'listening on nothing' >&2; sleep 600",
        &mark,
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("did not answer initialize within 1 s"),
        "{report}"
    );
    assert!(
        pids_with_marker(&mark).is_empty(),
        "a server process survived the check"
    );
}

/// A server that sends 256 MiB of requests of its own at `initialize`
/// (each of which the check would answer, echoing its 64 KiB id, into a
/// server that reads nothing) is stopped once it has asked 1 MiB, and the
/// check says why; `bulkhead` itself stays small meanwhile.
#[test]
fn a_server_that_floods_the_check_with_requests_is_stopped_and_named() {
    let mark = marker("check-asks");
    let mut child = Command::new(bin("bulkhead"))
        .args(["mcp", "check", "--"])
        .arg(bin("hostile-mcp"))
        .args(["asks-early", &mark])
        .env_remove("BULKHEAD_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bulkhead mcp check");
    let pid = i32::try_from(child.id()).unwrap();
    // Its peak RSS, sampled until it exits (it ends within seconds).
    let mut peak = 0;
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(started.elapsed().as_secs() < 120, "the check never ended");
        if let Some(hwm) = bulkhead_tests::proc_status_bytes(pid, "VmHWM:") {
            peak = peak.max(hwm);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(
            "before answering initialize: bulkhead stopped it: it sent over 1024 KiB of requests of its own"
        ),
        "{report}"
    );
    assert!(peak < 64 << 20, "bulkhead's peak RSS {} MiB", peak >> 20);
    assert!(
        pids_with_marker(&mark).is_empty(),
        "a server process survived the check"
    );
}
