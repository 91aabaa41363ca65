//! A worker SIGKILLed in the middle of its output ends as
//! `killed: signal(9)`, and the output received so far is kept.

use bulkhead_host::{
    CallEvent, CallLimits, CallRequest, HostConfig, KillReason, Outcome, ToolHost,
};
use bulkhead_tests::{bin, children_of};

/// Children of this process that are workers (`comm` holds at most 15
/// bytes, so match a prefix that survives the cut).
fn worker_children() -> Vec<i32> {
    children_of(std::process::id())
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("bulkhead-worke"))
        })
        .collect()
}

/// It SIGKILLs every worker among this process's children, so it runs in a
/// process of its own: in the shared one, those would include the workers
/// of other tests' calls (`cancel_and_queue`'s).
#[test]
fn sigkill_mid_stream_keeps_partial_output() {
    bulkhead_tests::alone(
        concat!(module_path!(), "::sigkill_mid_stream_keeps_partial_output"),
        || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(sigkill_mid_stream())
        },
    );
}

async fn sigkill_mid_stream() {
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
            // Short, so a test that fails to find the worker fails in
            // seconds instead of waiting out the default 5 minutes.
            limits: CallLimits {
                timeout: std::time::Duration::from_secs(30),
                ..CallLimits::default()
            },
            cwd: None,
            policy: Default::default(),
            stream_output: false,
            inject: Vec::new(),
            inject_seed: None,
        });
    let mut received = 0usize;
    let mut killed = 0usize;
    let report = loop {
        match call.next_event().await.expect("events end with Finished") {
            CallEvent::Output { data, .. } => {
                received += data.len();
                if received > 100 {
                    for pid in worker_children() {
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                        killed += 1;
                    }
                }
            }
            CallEvent::Started(_) => {}
            CallEvent::Finished(r) => break r,
        }
    };
    assert!(killed > 0, "no worker process found to kill");
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
