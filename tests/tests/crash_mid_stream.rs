//! A worker SIGKILLed in the middle of its output ends as
//! `killed: signal(9)`, and the output received so far is kept.

use bulkhead_host::{
    CallEvent, CallLimits, CallRequest, HostConfig, KillReason, Outcome, ToolHost,
};
use bulkhead_tests::bin;

/// Children of this process whose executable is the worker.
fn worker_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let after = stat.rfind(')').map(|i| &stat[i + 2..]).unwrap_or("");
            let ppid = after.split_whitespace().nth(1).unwrap_or("");
            ppid == me && stat.contains("(bulkhead-worke")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_keeps_partial_output() {
    let host = ToolHost::new(HostConfig {
        worker: Some(bin("bulkhead-worker")),
        ..HostConfig::default()
    })
    .unwrap();
    // Slow, endless output: a line every 10 ms.
    let mut call =
        host.call(CallRequest {
            tool: "shell".into(),
            args_json:
                r#"{"command":"i=0; while true; do i=$((i+1)); echo line $i; sleep 0.01; done"}"#
                    .into(),
            limits: CallLimits::default(),
            cwd: None,
        });
    let mut received = 0usize;
    let report = loop {
        match call.next_event().await.expect("events end with Finished") {
            CallEvent::Output { data, .. } => {
                received += data.len();
                if received > 100 {
                    for pid in worker_children() {
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
            CallEvent::Finished(r) => break r,
        }
    };
    assert_eq!(
        report.outcome,
        Outcome::Killed {
            reason: KillReason::Signal(9)
        },
        "{report:?}"
    );
    let text = report.output_text();
    assert!(
        text.starts_with("line 1\nline 2\n"),
        "partial output lost: {text:?}"
    );
    assert!(report.output.kept() as usize >= received.min(100));
}
