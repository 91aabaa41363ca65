//! `rss`: the host's peak RSS does not grow with the output a tool makes.
//!
//! Runs the real CLI, `bulkhead run shell '{"command":"head -c N /dev/zero"}'
//! --max-output 1M --tail 64K --json`, for N from 1 KiB to 10 GiB. Tail mode
//! makes the worker drain the tool to its end, so every byte crosses the IPC
//! channel into the host, which keeps 1 MiB of it (head and tail). The
//! figure is `host_peak_rss_bytes` (the CLI's own `VmHWM`, read as the
//! JSON report is built) and the baseline is the 1 KiB run of the same
//! benchmark run. The CLI is still started through a shell that forks it,
//! which older CLIs (reporting `ru_maxrss`) needed; see `cli`. Further rows: the default stop-at-cap mode on 10 GiB, and
//! 1 KiB against 10 GiB with a 64 KiB cap, which separates what streaming
//! costs from what keeping (and printing) 1 MiB of output costs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Row, ms, sibling, size};

/// Output sizes: one chunk, the cap itself, and two sizes far past any cap
/// (10 GiB is ten times the host's default memory cap for a call).
const SIZES: [u64; 4] = [1 << 10, 1 << 20, 1 << 30, 10 << 30];

/// The target: peak RSS varies by at most 2 MiB over all sizes.
const FLAT_BYTES: u64 = 2 << 20;

/// Wall-clock limit per call: 5 minutes covers 10 GiB at 35 MB/s, far
/// below the rates seen; a slower machine fails loudly.
const TIMEOUT: &str = "5m";

/// What the host keeps: the benchmark's `--max-output` and `--tail`.
const MAIN: Keep = Keep {
    max_output: "1M",
    tail: Some("64K"),
};
const STOP: Keep = Keep {
    max_output: "1M",
    tail: None,
};
/// A cap of one chunk, to see streaming without a large kept output.
const SMALL: Keep = Keep {
    max_output: "64K",
    tail: Some("32K"),
};

const BENCH: &str = "rss";

#[derive(Clone, Copy)]
struct Keep {
    max_output: &'static str,
    tail: Option<&'static str>,
}

struct Run {
    peak: u64,
    bytes_seen: u64,
    wall: Duration,
    status: String,
}

pub fn run() {
    let mut peaks = Vec::new();
    let mut baseline = 0;
    for n in SIZES {
        eprintln!("   {} through the host (tail mode)…", size(n));
        let r = cli(n, MAIN);
        assert_eq!(r.bytes_seen, n, "in tail mode every byte reaches the host");
        if peaks.is_empty() {
            baseline = r.peak;
        }
        row(
            format!("rss: host peak, {} output (tail mode)", size(n)),
            &r,
            baseline,
            MAIN,
        );
        peaks.push(r.peak);
    }
    let spread = |p: &[u64]| p.iter().max().unwrap_or(&0) - p.iter().min().unwrap_or(&0);
    let (all, above_cap) = (spread(&peaks), spread(&peaks[1..]));
    Row {
        bench: BENCH,
        name: "rss: host peak spread, 1 KiB … 10 GiB (tail mode)".into(),
        measured: format!("max − min = {}", size(all)),
        baseline: format!("1 KiB run: {}", size(baseline)),
        figure: format!(
            "{} … {}; among 1 MiB … 10 GiB: {}",
            size(peaks.iter().copied().min().unwrap_or(0)),
            size(peaks.iter().copied().max().unwrap_or(0)),
            size(above_cap)
        ),
        target: format!("≤ {}", size(FLAT_BYTES)),
        met: Some(all <= FLAT_BYTES),
        data: serde_json::json!({ "spread": all, "spread_from_1mib": above_cap, "peaks": peaks }),
    }
    .emit();

    let n = SIZES[SIZES.len() - 1];
    eprintln!("   {} in stop-at-cap mode…", size(n));
    let r = cli(n, STOP);
    assert_eq!(r.status, "truncated", "a 10 GiB flood is cut at the cap");
    row(
        format!(
            "rss: host peak, {} offered, stop at cap (no --tail)",
            size(n)
        ),
        &r,
        baseline,
        STOP,
    );

    eprintln!("   1 KiB and {} with a 64 KiB cap…", size(n));
    let (small, big) = (cli(1 << 10, SMALL), cli(n, SMALL));
    assert_eq!(
        big.bytes_seen, n,
        "in tail mode every byte reaches the host"
    );
    let streaming = big.peak.saturating_sub(small.peak);
    Row {
        bench: BENCH,
        name: format!(
            "rss (info): streaming alone, 1 KiB vs {} with `--max-output 64K --tail 32K`",
            size(n)
        ),
        measured: format!(
            "{} vs {}: +{}",
            size(small.peak),
            size(big.peak),
            size(streaming)
        ),
        baseline: format!("1 KiB run: {}", size(small.peak)),
        figure: format!("10 GiB wall {}", ms(big.wall)),
        target: "—".into(),
        met: None,
        data: serde_json::json!({
            "small_peak": small.peak, "big_peak": big.peak, "streaming": streaming,
            "max_output": SMALL.max_output, "tail": SMALL.tail,
        }),
    }
    .emit();
}

fn row(name: String, r: &Run, baseline: u64, keep: Keep) {
    let rate = r.bytes_seen as f64 / r.wall.as_secs_f64().max(1e-9) / 1e9;
    Row {
        bench: BENCH,
        name,
        measured: size(r.peak),
        baseline: format!("1 KiB run: {}", size(baseline)),
        figure: format!(
            "bytes_seen {}, wall {} ({rate:.2} GB/s), {}",
            r.bytes_seen,
            ms(r.wall),
            r.status
        ),
        target: "see spread row".into(),
        met: None,
        data: serde_json::json!({
            "host_peak_rss_bytes": r.peak, "bytes_seen": r.bytes_seen,
            "wall_ms": r.wall.as_millis() as u64, "status": r.status,
            "max_output": keep.max_output, "tail": keep.tail,
        }),
    }
    .emit();
}

/// Runs the CLI once; `wall` is the call's own `wall_ms` from the report.
fn cli(n: u64, keep: Keep) -> Run {
    let args = serde_json::json!({ "command": format!("head -c {n} /dev/zero") }).to_string();
    // Through `sh -c 'CMD & wait'`: the shell forks a small child that execs
    // bulkhead. Spawned directly (posix_spawn, a vfork), a CLI reporting
    // `ru_maxrss` would start at this bench's own peak RSS, which Linux
    // carries across exec (checked: a 300 MB parent made bulkhead report
    // 313 MB; through the shell, 4 MB). The CLI now reports `VmHWM`, which
    // exec resets; the shell stays so old and new CLIs compare alike.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "\"$@\" & wait $!", "sh"])
        .arg(sibling("bulkhead"));
    cmd.args([
        "run",
        "shell",
        &args,
        "--max-output",
        keep.max_output,
        "--timeout",
        TIMEOUT,
        "--json",
    ]);
    if let Some(tail) = keep.tail {
        cmd.args(["--tail", tail]);
    }
    let started = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("cannot run bulkhead");
    let elapsed = started.elapsed();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bulkhead --json printed no JSON ({e}): {:.500}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let field = |ptr: &str| v.pointer(ptr).and_then(serde_json::Value::as_u64);
    let status = v["status"].as_str().unwrap_or("?").to_owned();
    assert!(
        status == "completed" || status == "truncated",
        "unexpected outcome {status}: {:?}; process took {elapsed:?}",
        v["reason"]
    );
    Run {
        peak: field("/host_peak_rss_bytes").expect("report without host_peak_rss_bytes"),
        bytes_seen: field("/bytes_seen").expect("report without bytes_seen"),
        wall: Duration::from_millis(field("/usage/wall_ms").expect("report without usage.wall_ms")),
        status,
    }
}
