//! Fault injection from the TUI, in a real terminal (tmux): `/inject`
//! arms faults for the next call and its card says which fired; a bad
//! spec is a note that names it; the kill key SIGKILLs a running call's
//! worker tree and nothing of it is left; the memory key makes the worker
//! cross its cap and the cage's own mechanism kills it for memory.

use std::time::Duration;

use bulkhead_tests::tmux::{Tmux, tui_env};
use bulkhead_tests::{bin, marker, pids_with_marker};

/// Generous: CI machines are slow and loaded; the tests poll, so a fast
/// machine does not wait this long.
const DEADLINE: Duration = Duration::from_secs(60);

/// The TUI in direct mode on a scratch home and store, at its empty state.
fn start(dir: &std::path::Path) -> Tmux {
    let env = tui_env(dir);
    let t = Tmux::start(dir, &[bin("bulkhead").display().to_string()], &env);
    t.wait_for("the empty state", DEADLINE, |s| s.contains("direct mode"));
    t
}

/// Starts `!sleep 30 # MARK` and waits until its card runs with live
/// figures and its shell is alive, so a key reaches a running worker.
fn sleeping_call(t: &Tmux, mark: &str) {
    t.line(&format!("!sleep 30 # {mark}"));
    t.wait_for("the sleep running", DEADLINE, |s| {
        s.lines().any(|l| l.trim_start().starts_with("mem "))
    });
    let until = std::time::Instant::now() + DEADLINE;
    while pids_with_marker(mark).is_empty() {
        assert!(
            std::time::Instant::now() < until,
            "the call's shell never started; the screen:\n{}",
            t.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The screen from the last line holding `line` on: what the newest
/// entries show, whatever older ones are still on screen.
fn after_last<'a>(screen: &'a str, line: &str) -> &'a str {
    screen.rfind(line).map_or("", |at| &screen[at..])
}

#[test]
fn inject_exit_then_a_call_shows_the_exit_outcome_with_the_injected_note() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = start(dir.path());

    t.line("/inject");
    t.wait_for("nothing armed", DEADLINE, |s| {
        s.contains("No faults are armed")
    });
    t.line("/inject exit:3");
    t.wait_for("armed", DEADLINE, |s| {
        s.contains("Armed for the next tool call") && s.contains("exit:3")
    });
    t.line("/inject");
    t.wait_for("shown armed", DEADLINE, |s| {
        s.contains("Armed for the next tool call: exit:3.")
    });

    // The tool outlives the fault's delivery (it fires as the tool
    // starts), so the outcome is the worker's exit, whatever the load.
    t.line("!echo hi; sleep 30");
    let screen = t.wait_for("the injected exit", DEADLINE, |s| {
        s.contains("exit status: 3") && s.contains("↯ injected exit:3 @start at")
    });
    assert!(screen.contains("failed:"), "{screen}");

    // The faults went with that call alone: the next one runs clean.
    t.line("/inject");
    t.wait_for("disarmed after the call", DEADLINE, |s| {
        after_last(s, "› /inject").contains("No faults are armed")
    });
    t.line("!echo clean-run");
    let screen = t.wait_for("the clean call", DEADLINE, |s| {
        after_last(s, "› !echo clean-run").contains("completed (exit 0)")
    });
    let clean = after_last(&screen, "› !echo clean-run");
    assert!(!clean.contains('↯'), "{clean}");

    // Armed and disarmed: nothing fires.
    t.line("/inject kill");
    t.line("/inject off");
    t.wait_for("disarmed", DEADLINE, |s| s.contains("Disarmed: kill."));
    assert_eq!(t.quit(DEADLINE), 0, "{}", t.screen());
}

#[test]
fn a_bad_inject_names_the_bad_part_and_an_mcp_fault_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = start(dir.path());

    t.line("/inject nosuch");
    let screen = t.wait_for("the parse error", DEADLINE, |s| {
        s.contains("unknown fault \"nosuch\"")
    });
    assert!(
        screen.contains("kill, crash, hang, oom"),
        "the valid faults are not listed:\n{screen}"
    );
    t.line("/inject kill@soon");
    t.wait_for("the trigger error", DEADLINE, |s| {
        s.contains("unknown trigger \"@soon\"")
    });
    t.line("/inject drop");
    t.wait_for("the refusal", DEADLINE, |s| {
        s.contains("/inject drop is refused: drop is an MCP fault")
    });
    // None of it armed anything, and the app is alive.
    t.line("/inject");
    t.wait_for("nothing armed", DEADLINE, |s| {
        s.contains("No faults are armed")
    });
    assert_eq!(t.quit(DEADLINE), 0, "{}", t.screen());
}

#[test]
fn the_kill_key_sigkills_a_running_call_and_nothing_of_it_is_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = start(dir.path());
    let mark = marker("tui-kill-key");
    sleeping_call(&t, &mark);

    t.keys(&["C-x"]);
    let screen = t.wait_for("the killed card", DEADLINE, |s| {
        s.contains("killed: signal(9)")
    });
    assert!(screen.contains("↯ injected kill @"), "{screen}");
    // The outcome is sent once every process of the call is dead.
    let left = pids_with_marker(&mark);
    assert!(left.is_empty(), "processes left: {left:?}");
    assert_eq!(t.quit(DEADLINE), 0, "{}", t.screen());
}

#[test]
fn the_memory_key_pushes_a_running_call_over_its_cap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = start(dir.path());
    // A small cap: the worker crosses it in a few 8 MiB steps.
    t.line("/limits memory=64M");
    t.wait_for("the new limits", DEADLINE, |s| {
        s.contains("memory 64.0 MiB")
    });
    let mark = marker("tui-memory-key");
    sleeping_call(&t, &mark);

    t.keys(&["C-o"]);
    let screen = t.wait_for("the card killed for memory", DEADLINE, |s| {
        s.contains("killed: memory")
    });
    assert!(screen.contains("↯ injected oom @"), "{screen}");
    // Its peak is the worker's real allocation, past half the cap.
    assert!(
        screen
            .lines()
            .any(|l| l.contains("peak ") && l.contains(" MiB/64.0 MiB")),
        "figures missing:\n{screen}"
    );
    assert!(pids_with_marker(&mark).is_empty());
    assert_eq!(t.quit(DEADLINE), 0, "{}", t.screen());
}

/// The host API behind the keys (`CallHandle::inject_now`), without a
/// terminal: a fault sent to a running call fires at once and is recorded
/// as the trigger of that moment; an MCP fault and a fault after the end
/// are refused with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inject_now_fires_into_a_running_call_and_refuses_what_cannot_apply() {
    use bulkhead_host::{
        CallEvent, CallRequest, Fault, HostConfig, InjectNowError, KillReason, Outcome, ToolHost,
    };

    let host = ToolHost::new(HostConfig {
        worker: Some(bin("bulkhead-worker")),
        ..HostConfig::default()
    })
    .expect("host");
    let mark = marker("inject-now");
    let args = serde_json::json!({ "command": format!("sleep 30 # {mark}") }).to_string();
    let mut call = host.call(CallRequest::new("shell", args));
    // Sent once the tool runs: the worker is then in its cage.
    loop {
        match call.next_event().await {
            Some(CallEvent::Started(_)) => break,
            Some(CallEvent::Finished(r)) => panic!("ended before it started: {r:?}"),
            Some(_) => {}
            None => panic!("no events"),
        }
    }
    let refused = call.inject_now(Fault::Drop).expect_err("an MCP fault");
    assert!(
        matches!(&refused, InjectNowError::NotApplicable(n) if n.reason.contains("MCP fault")),
        "{refused}"
    );
    call.inject_now(Fault::Kill).expect("taken");
    let report = loop {
        match call.next_event().await {
            Some(CallEvent::Finished(r)) => break r,
            Some(_) => {}
            None => panic!("no report"),
        }
    };
    assert_eq!(
        report.outcome,
        Outcome::Killed {
            reason: KillReason::Signal(9)
        }
    );
    let injected = report.injected.as_ref().expect("injected");
    assert_eq!(injected.fault, "kill");
    assert_eq!(injected.trigger, format!("{}ms", injected.at_ms));
    assert!(pids_with_marker(&mark).is_empty());
    assert_eq!(call.inject_now(Fault::Oom), Err(InjectNowError::Ended));
}
