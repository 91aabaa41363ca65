//! The soak: one tool call a second through the TUI's event loop, with
//! mixed outputs (small, truncated at the cap, killed by the timeout, a
//! search, a listing), for `BULKHEAD_SOAK_SECS` (default one hour). The
//! process's RSS is sampled 360 times (every 10 s in an hour); the figure is its slope over the
//! second half of the run (after the conversation has reached its entry
//! cap), in bytes per call. Target: flat (under 1 KiB per call).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::harness::{self, rss_bytes};
use crate::{Row, size};

/// An hour: the TUI's memory must stay flat over an hour of calls.
const DEFAULT_SECS: u64 = 3600;

/// RSS samples: 360 over the run (every 10 s in an hour), at least a
/// second apart.
const SAMPLES: u64 = 360;

/// Mixed calls, one a second, in turn.
const CALLS: [&str; 5] = ["!seq 1 2000", "!yes", "!sleep 3", "/search fn .", "/ls ."];

pub async fn run() {
    let secs = std::env::var("BULKHEAD_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECS);
    eprintln!("   soak: {secs} s, one call a second");
    let samples: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let calls = Arc::new(Mutex::new(0u64));
    {
        let (samples, calls) = (samples.clone(), calls.clone());
        harness::run(2, move |keys, _metrics| async move {
            // `sleep 3` is killed by the timeout; `yes` truncated at 1 MiB.
            keys.line("/limits timeout=2s").await;
            let every = Duration::from_secs(secs / SAMPLES).max(Duration::from_secs(1));
            let started = Instant::now();
            let mut next_sample = started;
            let mut n = 0u64;
            while started.elapsed() < Duration::from_secs(secs) {
                keys.line(CALLS[n as usize % CALLS.len()]).await;
                n += 1;
                if Instant::now() >= next_sample {
                    if let Ok(mut s) = samples.lock() {
                        s.push((n, rss_bytes()));
                    }
                    next_sample += every;
                }
                harness::pause(Duration::from_secs(1)).await;
            }
            harness::pause(Duration::from_secs(3)).await;
            if let Ok(mut c) = calls.lock() {
                *c = n;
            }
        })
        .await;
    }
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    let calls = calls.lock().map(|c| *c).unwrap_or(0);
    let half = &samples[samples.len() / 2..];
    let slope = slope(half);
    let first = samples.first().map_or(0, |s| s.1);
    let last = samples.last().map_or(0, |s| s.1);
    let max = samples.iter().map(|s| s.1).max().unwrap_or(0);
    Row {
        bench: "tui",
        name: format!("soak: {calls} calls in {secs} s, RSS slope (second half)"),
        measured: format!("{slope:.0} B/call"),
        baseline: format!("RSS {} → {} (max {})", size(first), size(last), size(max)),
        figure: format!("{} samples", samples.len()),
        target: "< 1 KiB/call".into(),
        met: Some(slope < 1024.0),
        data: serde_json::json!({"secs": secs, "calls": calls, "samples": samples, "slope_bytes_per_call": slope}),
    }
    .emit();
}

/// Least-squares slope of RSS against the call count.
fn slope(points: &[(u64, u64)]) -> f64 {
    if points.len() < 2 {
        return 0.0;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0 as f64).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1 as f64).sum::<f64>() / n;
    let num: f64 = points
        .iter()
        .map(|p| (p.0 as f64 - mx) * (p.1 as f64 - my))
        .sum();
    let den: f64 = points.iter().map(|p| (p.0 as f64 - mx).powi(2)).sum();
    if den == 0.0 { 0.0 } else { num / den }
}
