//! `overhead`: what one trivial call costs end to end, against a bare
//! spawn of `/bin/true`.
//!
//! A call here is `ToolHost::call` + `wait` of `read_file` on a one-line
//! file: queue, cage (cgroups or watchdog), spawn of
//! `bulkhead-worker`, attach, handshake, the tool, its report, reap, kill
//! check. Removing the call's cgroups happens after the report, on a
//! blocking thread (see `host/src/call/mod.rs`), so it is outside the per-call
//! figure; the mean (total time / calls) includes whatever of it slows the
//! next call. The baseline is `std::process::Command::new("/bin/true")`
//! spawned and waited for, in the same process, in the same run.
//!
//! `breakdown` then times the parts separately, so a missed target says
//! where the time goes.

mod breakdown;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_host::enforce::MemoryMechanism;
use bulkhead_host::{CallLimits, CallRequest, HostConfig, Outcome, ToolHost};

use crate::{Row, Scratch, Stats, ms, runtime, sibling};

/// Timed repetitions of each measurement: the p90 is then the 180th of 200
/// samples, stable to a few percent, and a configuration takes a few
/// seconds at a few ms per call.
pub const N: usize = 200;

/// Untimed repetitions first, so the page cache holds the binaries, the
/// spawner thread and tokio's blocking pool exist, and the cgroup parents
/// have been touched.
pub const WARMUP: usize = 10;

/// The target: a call costs at most twice a bare spawn + wait.
const TARGET_RATIO: f64 = 2.0;

const BENCH: &str = "overhead";

/// The trivial tool. `read_file` of one line does next to nothing of its
/// own: no regex, no directory walk. (`list_directory` of an empty
/// directory, the trivial tool until `c08aa43`, builds `ignore`'s
/// gitignore matchers first, ~0.3 ms of the tool's own work.)
pub const TRIVIAL_TOOL: &str = "read_file";

pub fn run() {
    let scratch = Scratch::new(BENCH);
    let tiny = scratch.path().join("tiny.txt");
    std::fs::write(&tiny, "one line\n").expect("cannot write the one-line file to read");
    let worker = sibling("bulkhead-worker");
    let rt = runtime();

    let baseline = Stats::of(&repeat(|| {
        spawn_wait(Command::new("/bin/true").stdin(Stdio::null()))
    }));
    Row {
        bench: BENCH,
        name: "overhead: baseline `/bin/true` spawn + wait".into(),
        measured: format!("median {}, p90 {}", ms(baseline.median), ms(baseline.p90)),
        baseline: "—".into(),
        figure: format!("N={N} after {WARMUP} warm-ups"),
        target: "—".into(),
        met: None,
        data: serde_json::json!({ "what": "baseline", "stats": baseline.json() }),
    }
    .emit();

    // The detected mechanism first, then the watchdog forced (unless the
    // watchdog is what was detected).
    let mut mechanisms: Vec<Option<MemoryMechanism>> = vec![None];
    let mut measured = Vec::new();
    while let Some(forced) = mechanisms.pop() {
        let (mechanism, stats) = measure_calls(&rt, &worker, &tiny, forced);
        let ratio = stats.median.as_secs_f64() / baseline.median.as_secs_f64();
        Row {
            bench: BENCH,
            name: format!("overhead: trivial call ({mechanism})"),
            measured: format!(
                "median {}, p90 {}, mean {}",
                ms(stats.median),
                ms(stats.p90),
                ms(stats.mean)
            ),
            baseline: format!("`/bin/true`: median {}", ms(baseline.median)),
            figure: format!("{ratio:.1}× (medians)"),
            target: format!("≤ {TARGET_RATIO}×"),
            met: Some(ratio <= TARGET_RATIO),
            data: serde_json::json!({
                "what": "call", "mechanism": mechanism, "stats": stats.json(),
                "baseline": baseline.json(), "ratio": ratio,
            }),
        }
        .emit();
        if forced.is_none() && mechanism != MemoryMechanism::Watchdog {
            mechanisms.push(Some(MemoryMechanism::Watchdog));
        }
        measured.push((mechanism, stats));
    }
    breakdown::run(&rt, &worker, &tiny, &baseline, &measured);
}

/// `WARMUP + N` sequential calls through one host; the timings of the last N.
fn measure_calls(
    rt: &tokio::runtime::Runtime,
    worker: &Path,
    file: &Path,
    forced: Option<MemoryMechanism>,
) -> (MemoryMechanism, Stats) {
    let _guard = rt.enter();
    let config = HostConfig {
        worker: Some(worker.to_path_buf()),
        memory_mechanism: forced,
        ..HostConfig::default()
    };
    let host = ToolHost::new(config).expect("cannot start a ToolHost");
    let mechanism = host.enforcer().mechanism();
    eprintln!("   {N} calls with memory mechanism {mechanism}…");
    let req = trivial_request(file);
    let samples = repeat(|| {
        let started = Instant::now();
        let report = rt.block_on(host.call(req.clone()).wait());
        let took = started.elapsed();
        assert_eq!(
            report.outcome,
            Outcome::Completed,
            "the trivial call did not complete: {}",
            report.worker_stderr
        );
        took
    });
    (mechanism, Stats::of(&samples))
}

/// The trivial call: `read_file` of a one-line file.
pub fn trivial_request(file: &Path) -> CallRequest {
    CallRequest {
        tool: TRIVIAL_TOOL.into(),
        args_json: serde_json::json!({ "path": file }).to_string(),
        limits: CallLimits::default(),
        cwd: None,
        policy: Default::default(),
        stream_output: false,
        inject: Vec::new(),
        inject_seed: None,
    }
}

/// Runs `f` `WARMUP + N` times; returns the last N results.
pub fn repeat(mut f: impl FnMut() -> Duration) -> Vec<Duration> {
    (0..WARMUP + N).map(|_| f()).skip(WARMUP).collect()
}

/// Spawns `cmd`, waits for it, and checks it succeeded.
pub fn spawn_wait(cmd: &mut Command) -> Duration {
    let started = Instant::now();
    let status = cmd.status().expect("cannot spawn the baseline command");
    let took = started.elapsed();
    assert!(status.success(), "{cmd:?} failed: {status}");
    took
}
