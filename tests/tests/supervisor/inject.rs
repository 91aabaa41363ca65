//! `bulkhead run --inject` and `CallRequest::inject`: every process and
//! stream fault ends in the outcome the real fault gives, the report says
//! which fault fired (`injected`), the host lives on, and nothing of the
//! call is left running. Bad input is a usage error that names it.

use std::process::Command;
use std::time::Duration;

use bulkhead_host::{CallRequest, HostConfig, KillReason, Outcome, ToolHost};
use bulkhead_tests::{alive, bin, marker, pids_with_marker, run_json};

/// Each call's wall-clock limit: far above what any fault here needs
/// (the slowest, `hang`, waits out a shorter `--timeout` of its own).
const TIMEOUT: &str = "60s";

/// Runs `command` (which carries a marker) under `--inject SPEC`, returns
/// the JSON report, and checks what every injected call must give: a
/// report (the host did not die), the `injected` field naming the fault,
/// and no process of the call left.
fn injected(spec: &str, command: &str, tag: &str, extra: &[&str]) -> serde_json::Value {
    let mark = marker(tag);
    let args = serde_json::json!({ "command": format!("{command} # {mark}") }).to_string();
    let mut flags = vec!["--inject", spec, "--timeout", TIMEOUT];
    flags.extend_from_slice(extra);
    let (report, out) = run_json("shell", &args, &flags);
    let fault = spec.split(['@', ':']).next().unwrap_or(spec);
    assert_eq!(
        report["injected"]["fault"]
            .as_str()
            .map(|f| f.split(':').next()),
        Some(Some(fault)),
        "{spec}: no injected field in {report}; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = pids_with_marker(&mark);
    assert!(left.is_empty(), "{spec}: processes left: {left:?}");
    report
}

fn status(r: &serde_json::Value) -> (&str, &str) {
    (
        r["status"].as_str().unwrap_or(""),
        r["reason"].as_str().unwrap_or(""),
    )
}

#[test]
fn kill_at_a_time_is_a_sigkill_from_outside() {
    let r = injected("kill@200ms", "sleep 30", "kill", &[]);
    assert_eq!(status(&r), ("killed", "signal(9)"), "{r}");
    assert_eq!(r["injected"]["trigger"], "200ms");
    assert!(r["injected"]["at_ms"].as_u64().unwrap() >= 200, "{r}");
}

#[test]
fn crash_is_an_abort_of_the_worker() {
    let r = injected("crash", "sleep 30", "crash", &[]);
    assert_eq!(status(&r), ("killed", "signal(6)"), "{r}");
}

#[test]
fn hang_after_bytes_ends_by_the_timeout() {
    // The tree is stopped after 64 KiB; the call's own (shorter) timeout
    // ends it, and the stopped processes are killed.
    let mark = marker("hang");
    let args = serde_json::json!({ "command": format!("yes {mark}") }).to_string();
    let (r, _) = run_json(
        "shell",
        &args,
        &["--inject", "hang@bytes:64K", "--timeout", "2s"],
    );
    assert_eq!(status(&r), ("killed", "timeout"), "{r}");
    assert_eq!(r["injected"]["trigger"], "bytes:65536");
    assert!(pids_with_marker(&mark).is_empty());
}

#[test]
fn oom_is_killed_for_memory_by_the_real_cap() {
    let r = injected("oom", "sleep 30", "oom", &["--memory", "64M"]);
    assert_eq!(status(&r), ("killed", "memory"), "{r}");
    assert!(
        r["usage"]["peak_rss_bytes"].as_u64().unwrap() > 32 << 20,
        "{r}"
    );
}

#[test]
fn cpu_is_killed_by_the_cpu_limit() {
    let r = injected("cpu", "sleep 30", "cpu", &["--cpu", "1"]);
    assert_eq!(status(&r), ("killed", "cpu"), "{r}");
}

#[test]
fn exit_n_is_a_worker_that_exits_without_a_report() {
    let r = injected("exit:3", "sleep 30", "exit", &[]);
    let (s, reason) = status(&r);
    assert_eq!(s, "failed", "{r}");
    assert!(reason.contains("exit status: 3"), "{r}");
}

#[test]
fn garbage_oversize_and_truncate_meet_the_hosts_protocol_check() {
    for (spec, says) in [
        ("garbage", "malformed frame"),
        ("oversize", "exceeds the cap"),
        ("truncate", "inside a frame"),
    ] {
        let r = injected(spec, "sleep 30", spec, &[]);
        let (s, reason) = status(&r);
        assert_eq!(s, "failed", "{spec}: {r}");
        assert!(
            reason.contains("protocol violation") && reason.contains(says),
            "{spec}: {r}"
        );
    }
}

/// A fault with no trigger fires before the tool runs, so a tool that
/// ends within a millisecond meets it every time: the worker carries it
/// out once confined, instead of racing the tool for it.
#[test]
fn a_fault_at_the_start_fires_even_on_a_tool_that_ends_at_once() {
    for (spec, want) in [
        ("exit:3", ("failed", "")),
        ("kill", ("killed", "signal(9)")),
        ("crash", ("killed", "signal(6)")),
    ] {
        for round in 0..10 {
            let r = injected(spec, "echo hi", &format!("quick-{round}"), &[]);
            let (got_status, got_reason) = status(&r);
            assert_eq!(got_status, want.0, "{spec}, round {round}: {r}");
            if !want.1.is_empty() {
                assert_eq!(got_reason, want.1, "{spec}, round {round}: {r}");
            }
            assert_eq!(r["injected"]["trigger"], "start", "{r}");
        }
    }
}

#[test]
fn delay_holds_the_first_byte() {
    let r = injected("delay:500ms", "echo hi", "delay", &[]);
    assert_eq!(status(&r).0, "completed", "{r}");
    assert_eq!(r["output"], "hi\n");
    assert!(r["usage"]["wall_ms"].as_u64().unwrap() >= 500, "{r}");
}

#[test]
fn slow_paces_the_output() {
    // 4 KiB at 2 KiB a second: two seconds of holding.
    let r = injected(
        "slow:2K",
        "head -c 4096 /dev/zero | tr '\\0' x",
        "slow",
        &[],
    );
    assert_eq!(status(&r).0, "completed", "{r}");
    assert_eq!(r["output_bytes_kept"], 4096);
    assert!(r["usage"]["wall_ms"].as_u64().unwrap() >= 1500, "{r}");
}

#[test]
fn cut_stops_after_size_bytes_as_a_cap_does() {
    let r = injected("cut:100", "seq 1 100000", "cut", &[]);
    assert_eq!(status(&r).0, "truncated", "{r}");
    assert_eq!(r["output_bytes_kept"], 100, "{r}");
    assert!(r["bytes_seen"].as_u64().unwrap() > 100, "{r}");
}

#[test]
fn without_inject_the_report_has_no_injected_field() {
    let (r, _) = run_json("shell", r#"{"command":"echo hi"}"#, &[]);
    assert_eq!(status(&r).0, "completed");
    assert!(r.get("injected").is_none(), "{r}");
}

#[test]
fn a_trigger_that_does_not_match_leaves_the_call_alone() {
    let (r, _) = run_json(
        "shell",
        r#"{"command":"echo hi"}"#,
        &["--inject", "kill@on:read_file"],
    );
    assert_eq!(status(&r).0, "completed", "{r}");
    assert!(r.get("injected").is_none(), "{r}");
}

/// A usage error (exit 2) whose message holds each of `says`.
fn usage_error(spec: &str, says: &[&str]) {
    let out = Command::new(bin("bulkhead"))
        .args(["run", "shell", r#"{"command":"true"}"#, "--inject", spec])
        .output()
        .expect("spawn bulkhead");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{spec}: {err}");
    for s in says {
        assert!(err.contains(s), "{spec}: {s:?} not in {err}");
    }
}

#[test]
fn bad_faults_and_triggers_are_usage_errors_that_name_them() {
    usage_error("explode", &["\"explode\"", "kill, crash, hang"]);
    usage_error("kill@soon", &["\"@soon\"", "@bytes:SIZE", "@p:PROBABILITY"]);
    usage_error("hang@bytes:64Q", &["\"64Q\""]);
    usage_error("kill@20parsecs", &["\"20parsecs\""]);
    usage_error("kill@p:1.5", &["\"1.5\"", "from 0 to 1"]);
    usage_error("exit:x", &["\"x\"", "exit code"]);
    // An MCP fault cannot apply to a tool call: refused, with the reason.
    usage_error("error@on:tools/call", &["MCP fault", "mcp wrap"]);
}

#[test]
fn the_same_seed_gives_the_same_draws() {
    for seed in 0..8u64 {
        let expected = bulkhead_faults::SeededRng::new(seed).chance(0.5);
        for _ in 0..2 {
            let (r, _) = run_json(
                "shell",
                r#"{"command":"sleep 30"}"#,
                &[
                    "--inject",
                    "kill@p:0.5",
                    "--inject-seed",
                    &seed.to_string(),
                    "--timeout",
                    "1s",
                ],
            );
            assert_eq!(r.get("injected").is_some(), expected, "seed {seed}: {r}");
            let want = if expected { "signal(9)" } else { "timeout" };
            assert_eq!(status(&r), ("killed", want), "seed {seed}: {r}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_host_lives_on_after_an_injected_fault() {
    let host = ToolHost::new(HostConfig {
        worker: Some(bin("bulkhead-worker")),
        ..HostConfig::default()
    })
    .expect("host");
    let call = host.call(
        CallRequest::new("shell", r#"{"command":"sleep 30"}"#)
            .inject("kill@300ms".parse().expect("spec")),
    );
    // The pid, while the call cannot end on its own (it sleeps 30 s).
    let mut pid = None;
    for _ in 0..200 {
        pid = call.worker_pid();
        if pid.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = pid.expect("the worker started") as i32;
    let report = call.wait().await;
    assert_eq!(
        report.outcome,
        Outcome::Killed {
            reason: KillReason::Signal(9)
        }
    );
    let injected = report.injected.as_ref().expect("injected");
    assert_eq!(
        (injected.fault.as_str(), injected.trigger.as_str()),
        ("kill", "300ms")
    );
    assert!(
        report.status_line().contains("injected kill @300ms"),
        "{}",
        report.status_line()
    );
    assert!(!alive(pid), "the worker outlived its report");
    // The same host serves the next call, with no fault.
    let next = host
        .call(CallRequest::new("shell", r#"{"command":"echo ok"}"#))
        .wait()
        .await;
    assert_eq!(next.outcome, Outcome::Completed);
    assert!(next.injected.is_none());
    // An MCP fault cannot apply to a tool call: the call fails and says why.
    let refused = host
        .call(
            CallRequest::new("shell", r#"{"command":"echo ok"}"#)
                .inject("drop".parse().expect("spec")),
        )
        .wait()
        .await;
    match refused.outcome {
        Outcome::Failed { error } => assert!(error.contains("MCP fault"), "{error}"),
        other => panic!("an MCP fault on a tool call ran: {other:?}"),
    }
}
