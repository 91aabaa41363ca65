//! `chaos`: a soak of `bulkhead mcp serve --chaos` (stdio): ten thousand
//! `tools/call` requests over three copies of the reference
//! `server-everything`, a dozen in flight, chaos failing 1% of them
//! (error, drop, timeout, malformed, disconnect, kill). Figures: the
//! gateway's RSS (first, last, max sample and the least-squares slope),
//! its fds at the start and the end, the processes left after it exits,
//! and whether every request was answered exactly once (those chaos left
//! unanswered, zero times). The soak itself is `bulkhead_tests::chaos_soak`,
//! which the CI test runs with 400 calls.
//!
//! Needs the MCP peers (`MCP_NODE`, `MCP_EVERYTHING`).

use crate::{Row, sibling};

const BENCH: &str = "chaos";

/// Requests in the soak: enough that a leak of a few hundred bytes a
/// request shows as megabytes.
const CALLS: u64 = 10_000;

/// Chaos's rate: a fault every hundred requests, so a kill or disconnect
/// (a node restart, which holds that server's requests for seconds on a
/// loaded machine) comes every ~300 requests.
const RATE: f64 = 0.01;

const SEED: u64 = 2026;

pub fn run() {
    assert!(
        std::env::var("MCP_NODE").is_ok() && std::env::var("MCP_EVERYTHING").is_ok(),
        "MCP_NODE / MCP_EVERYTHING are not set: run through scripts/bench, which installs the MCP peers"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    eprintln!("   {CALLS} calls under --chaos seed={SEED},rate={RATE}…");
    let soak = bulkhead_tests::chaos_soak::run(&sibling("bulkhead"), dir.path(), CALLS, SEED, RATE);
    let (first, last) = (
        soak.rss_kib.first().copied().unwrap_or(0),
        soak.rss_kib.last().copied().unwrap_or(0),
    );
    let max = soak.rss_kib.iter().copied().max().unwrap_or(0);
    let mut faults: Vec<String> = soak
        .faults
        .iter()
        .map(|(f, n)| format!("{f} {n}"))
        .collect();
    faults.sort();
    let ok = soak.problems.is_empty()
        && soak.leftover.is_empty()
        && soak.fds_end <= soak.fds_start + 8
        && soak.rss_slope_kib_per_1k.abs() < 100.0;
    for p in soak.problems.iter().take(20) {
        eprintln!("   problem: {p}");
    }
    Row {
        bench: BENCH,
        name: format!(
            "mcp serve --chaos: {CALLS} `tools/call` over 3 server-everything, rate {RATE} ({}), {:.0} s",
            faults.join(", "),
            soak.seconds
        ),
        measured: format!(
            "RSS first {first} KiB, settled {} KiB, last {last} KiB, max {max} KiB, slope {:.1} KiB/1k calls after settling; fds {} → {}; {} left running; {} answered once, {} unanswered (timeout/drop), {} problems",
            soak.rss_settled_kib,
            soak.rss_slope_kib_per_1k,
            soak.fds_start,
            soak.fds_end,
            soak.leftover.len(),
            soak.answered,
            soak.unanswered,
            soak.problems.len()
        ),
        baseline: "—".into(),
        figure: format!("{:.0} calls/s", CALLS as f64 / soak.seconds.max(0.001)),
        target: "flat RSS (|slope| < 100 KiB/1k), no fd growth, nothing left, each answered once".into(),
        met: Some(ok),
        data: serde_json::json!({
            "calls": CALLS, "rate": RATE, "seed": SEED,
            "rss_kib": soak.rss_kib, "rss_settled_kib": soak.rss_settled_kib,
            "rss_slope_kib_per_1k": soak.rss_slope_kib_per_1k,
            "fds_start": soak.fds_start, "fds_end": soak.fds_end,
            "leftover": soak.leftover, "answered": soak.answered, "unanswered": soak.unanswered,
            "faults": soak.faults, "problems": soak.problems.len(), "seconds": soak.seconds,
        }),
    }
    .emit();
}
