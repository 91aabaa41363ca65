//! The command line's contract: exit codes, errors that name the problem,
//! the tool catalogue, and doctor.

use std::process::Command;

use bulkhead_tests::{bin, run_json};

fn bulkhead(args: &[&str]) -> std::process::Output {
    Command::new(bin("bulkhead")).args(args).output().unwrap()
}

#[test]
fn completed_call_exits_zero_with_the_exit_code_reported() {
    let (v, out) = run_json("shell", r#"{"command":"echo hi; exit 7"}"#, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"], "hi\n");
    assert_eq!(v["exit"]["code"], 7);
    assert!(v["reason"].is_null());
    for key in ["peak_rss_bytes", "cpu_ms", "wall_ms"] {
        assert!(v["usage"][key].is_u64(), "usage.{key} missing: {v}");
    }
    assert!(v["enforcement"]["memory"].is_string());
    assert!(v["host_peak_rss_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn text_mode_prints_output_then_a_status_line() {
    let out = bulkhead(&["run", "shell", r#"{"command":"echo out; echo err >&2"}"#]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("err\n"), "{err}");
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with("bulkhead: completed"),
        "{err}"
    );
}

/// Text mode streams (the host keeps no copy): what is printed is exactly
/// the cap, and the marker says how much of what was produced that is.
#[test]
fn text_mode_truncation_prints_the_head_and_a_marker_that_adds_up() {
    let out = bulkhead(&[
        "run",
        "shell",
        r#"{"command":"seq 1 200000"}"#,
        "--max-output",
        "64K",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    let (head, marker) = text.split_once("\n[… bulkhead cut ").expect("a cut marker");
    assert_eq!(head.len(), 65536, "the head is the cap");
    assert!(head.starts_with("1\n2\n3\n"));
    assert!(marker.contains("kept 65536 of the"), "{marker}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bulkhead: truncated"), "{err}");
}

#[test]
fn bad_tool_arguments_name_the_field() {
    let (v, out) = run_json(
        "search_files_content",
        r#"{"pattern": 3, "path": "."}"#,
        &[],
    );
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(v["status"], "failed");
    assert!(v["reason"].as_str().unwrap().contains("pattern"), "{v}");
    let (v, _) = run_json("search_files_content", r#"{"path": "."}"#, &[]);
    assert!(v["reason"].as_str().unwrap().contains("pattern"), "{v}");
    let (v, _) = run_json("read_file", r#"{"path": "x", "limt": 3}"#, &[]);
    assert!(v["reason"].as_str().unwrap().contains("limt"), "{v}");
}

#[test]
fn unknown_tool_lists_the_tools() {
    let (v, out) = run_json("grep", "{}", &[]);
    assert_eq!(out.status.code(), Some(5));
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains("unknown tool \"grep\"") && reason.contains("search_files_content"),
        "{reason}"
    );
}

#[test]
fn usage_errors_exit_two_and_say_what_is_wrong() {
    let out = bulkhead(&["run", "shell", "{not json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ARGS_JSON must be a JSON object"));
    let out = bulkhead(&["run", "shell", "{}", "--memory", "12Q"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown unit \"Q\""));
    let out = bulkhead(&["run", "shell", "{}", "--timeout", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    let out = bulkhead(&["run", "shell", "{}", "--cwd", "/nonexistent/dir"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--cwd /nonexistent/dir: not a directory")
    );
    let out = bulkhead(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_documents_exit_codes() {
    let out = bulkhead(&["run", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "0  completed",
        "3  truncated",
        "4  killed",
        "5  failed",
        "2  usage",
    ] {
        assert!(text.contains(line), "--help lacks {line:?}");
    }
}

#[test]
fn tools_lists_every_tool_with_a_schema() {
    let out = bulkhead(&["tools", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "search_files_content",
            "shell",
            "read_file",
            "list_directory"
        ]
    );
    for t in v.as_array().unwrap() {
        assert_eq!(t["schema"]["type"], "object", "{t}");
        assert!(t["schema"]["properties"].is_object(), "{t}");
    }
    let text = bulkhead(&["tools"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("pattern"));
}

#[test]
fn doctor_reports_mechanisms() {
    let out = bulkhead(&["doctor", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mech = v["memory_mechanism"].as_str().unwrap();
    assert!(["cgroup-v2", "cgroup-v1", "watchdog"].contains(&mech));
    let rows = v["mechanisms"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["used"] == true));
    assert!(
        rows.iter()
            .all(|r| r["why"].as_str().is_some_and(|w| !w.is_empty()))
    );
    // One probe row per sandbox mechanism, each with its reason.
    let sandbox = v["sandbox"].as_array().unwrap();
    for name in ["user_ns", "net_ns", "pid_ns", "landlock_fs", "seccomp"] {
        let row = sandbox.iter().find(|r| r["mechanism"] == name);
        let row = row.unwrap_or_else(|| panic!("no {name} row in {sandbox:?}"));
        assert!(row["available"].is_boolean() && !row["detail"].as_str().unwrap().is_empty());
    }
    // A verdict for every preset, from a trial call.
    let policies = v["policies"].as_array().unwrap();
    for name in ["untrusted", "workspace", "trusted"] {
        let p = policies.iter().find(|p| p["policy"] == name).unwrap();
        let verdict = p["verdict"].as_str().unwrap();
        assert!(
            ["fully enforced", "partly enforced", "refused"].contains(&verdict),
            "{name}: {p}"
        );
        assert_eq!(
            verdict == "fully enforced",
            p["missing"].as_array().unwrap().is_empty()
        );
        assert!(p["explained"].as_str().unwrap().starts_with(name));
    }
    let text = bulkhead(&["doctor"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("policies (verdict from a trial call under each):"),
        "{text}"
    );
}
