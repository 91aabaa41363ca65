//! Calls queue behind the concurrency limit; cancelling or dropping a call
//! kills its worker and everything under it.

use std::time::Duration;

use bulkhead_host::{
    CallEvent, CallLimits, CallRequest, CallState, HostConfig, KillReason, Outcome, ToolHost,
};
use bulkhead_tests::{alive, bin};

fn host(max_workers: usize) -> ToolHost {
    ToolHost::new(HostConfig {
        worker: Some(bin("bulkhead-worker")),
        max_workers,
        ..HostConfig::default()
    })
    .expect("host starts")
}

fn shell(cmd: &str) -> CallRequest {
    CallRequest {
        tool: "shell".into(),
        args_json: serde_json::json!({ "command": cmd }).to_string(),
        limits: CallLimits {
            timeout: Duration::from_secs(60),
            ..CallLimits::default()
        },
        cwd: None,
        policy: Default::default(),
        stream_output: false,
        inject: Vec::new(),
        inject_seed: None,
    }
}

/// Reads output until a line "pid N" appears, returning N.
async fn first_pid(call: &mut bulkhead_host::CallHandle) -> i32 {
    let mut text = String::new();
    loop {
        match call.next_event().await.expect("events") {
            CallEvent::Output { data, .. } => {
                text.push_str(&String::from_utf8_lossy(&data));
                if let Some(pid) = text
                    .lines()
                    .find_map(|l| l.strip_prefix("pid ")?.trim().parse().ok())
                {
                    return pid;
                }
            }
            CallEvent::Started(_) => {}
            CallEvent::Finished(r) => panic!("ended before printing a pid: {r:?}"),
        }
    }
}

async fn wait_dead(pid: i32) {
    for _ in 0..200 {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("pid {pid} still alive 2 s after its call was cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_call_waits_for_a_slot_and_cancel_frees_it() {
    let host = host(1);
    let mut first = host.call(shell("sleep 100 & echo pid $!; wait"));
    let tool_pid = first_pid(&mut first).await;
    let second = host.call(shell("echo second"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        second.live().borrow().state,
        CallState::Queued,
        "a second worker ran past the limit of 1"
    );
    assert_eq!(host.running(), 1);

    first.cancel();
    let report = first.wait().await;
    assert_eq!(
        report.outcome,
        Outcome::Killed {
            reason: KillReason::Cancelled
        }
    );
    wait_dead(tool_pid).await;

    let report = second.wait().await;
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!(report.output_text(), "second\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_handle_kills_the_call() {
    let host = host(2);
    let mut call = host.call(shell("sleep 100 & echo pid $!; wait"));
    let tool_pid = first_pid(&mut call).await;
    drop(call);
    wait_dead(tool_pid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_queued_call_never_starts_it() {
    let host = host(1);
    let mut busy = host.call(shell("sleep 100 & echo pid $!; wait"));
    first_pid(&mut busy).await;
    let queued = host.call(shell("echo never"));
    queued.cancel();
    let report = queued.wait().await;
    assert_eq!(
        report.outcome,
        Outcome::Killed {
            reason: KillReason::Cancelled
        }
    );
    assert_eq!(report.output.kept(), 0);
    busy.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_status_reports_usage_while_running() {
    let host = host(1);
    let call = host.call(shell(
        "i=0; while [ $i -lt 30 ]; do echo tick $i; i=$((i+1)); sleep 0.02; done",
    ));
    let mut live = call.live();
    let mut saw_running = false;
    while live.changed().await.is_ok() {
        let s = live.borrow().clone();
        if s.state == CallState::Running && s.bytes_seen > 0 {
            saw_running = true;
        }
        if s.state == CallState::Ended {
            break;
        }
    }
    assert!(saw_running);
    let report = call.wait().await;
    assert_eq!(report.outcome, Outcome::Completed);
    assert!(report.usage.wall_ms >= 500, "{:?}", report.usage);
    assert!(report.usage.peak_rss_bytes > 0);
}
