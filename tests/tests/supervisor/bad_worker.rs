//! A worker that sends malformed, oversized, truncated or out-of-order
//! frames is killed, and its call fails with a reason naming the violation.

use bulkhead_host::{
    CallLimits, CallReport, CallRequest, HostConfig, KillReason, Outcome, ToolHost,
};

/// Far below the default 5 min: a host that failed to kill a violator
/// fails the test in seconds instead of hanging the suite.
const TEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

async fn run_fake(mode: &str) -> String {
    let report = report_of(mode).await;
    match report.outcome {
        Outcome::Failed { error } => error,
        other => panic!("{mode}: expected failed, got {other:?}"),
    }
}

async fn report_of(mode: &str) -> CallReport {
    let host = ToolHost::new(HostConfig {
        worker: Some(std::path::PathBuf::from(env!("CARGO_BIN_EXE_fake-worker"))),
        worker_env: vec![("BULKHEAD_FAKE_MODE".into(), mode.into())],
        ..HostConfig::default()
    })
    .unwrap();
    let started = std::time::Instant::now();
    let report = host
        .call(CallRequest {
            tool: "shell".into(),
            args_json: "{}".into(),
            limits: CallLimits {
                timeout: TEST_TIMEOUT,
                ..CallLimits::default()
            },
            cwd: None,
            policy: Default::default(),
            stream_output: false,
            inject: Vec::new(),
            inject_seed: None,
        })
        .wait()
        .await;
    // The fake worker would sleep 30 s; the host must kill it, not wait.
    assert!(
        started.elapsed().as_secs() < 10,
        "{mode}: host waited for the violator"
    );
    report
}

#[tokio::test]
async fn malformed_frame() {
    let e = run_fake("malformed").await;
    assert!(
        e.contains("protocol violation") && e.contains("malformed"),
        "{e}"
    );
}

#[tokio::test]
async fn oversized_frame() {
    let e = run_fake("oversized").await;
    assert!(
        e.contains("protocol violation") && e.contains("exceeds the cap"),
        "{e}"
    );
}

#[tokio::test]
async fn truncated_frame() {
    let e = run_fake("truncated").await;
    assert!(
        e.contains("protocol violation") && e.contains("closed inside a frame"),
        "{e}"
    );
}

#[tokio::test]
async fn stalled_frame_body() {
    let e = run_fake("stalled").await;
    assert!(
        e.contains("protocol violation") && e.contains("stalled"),
        "{e}"
    );
}

#[tokio::test]
async fn out_of_order_chunk() {
    let e = run_fake("out-of-order").await;
    assert!(e.contains("out of order"), "{e}");
}

#[tokio::test]
async fn chunk_over_the_chunk_cap() {
    let e = run_fake("big-chunk").await;
    assert!(e.contains("chunk cap"), "{e}");
}

/// A worker that ignores credit and the cap cannot make the host buffer:
/// the host reads at its own pace (the pipe pushes back), keeps only the
/// cap, and kills the worker for output once it sends past it.
#[tokio::test]
async fn blind_flood_past_the_cap() {
    let report = report_of("flood").await;
    assert_eq!(
        report.outcome,
        Outcome::Killed {
            reason: KillReason::Output
        },
        "{report:?}"
    );
    assert_eq!(report.output.kept(), 1 << 20);
}

#[tokio::test]
async fn no_hello() {
    let e = run_fake("no-hello").await;
    assert!(e.contains("expected Hello"), "{e}");
}

#[tokio::test]
async fn version_mismatch_names_both_versions() {
    let e = run_fake("wrong-version").await;
    assert!(
        e.contains("0.0.0-other") && e.contains(bulkhead_host::VERSION),
        "{e}"
    );
}
