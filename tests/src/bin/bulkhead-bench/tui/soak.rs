//! The soak: one tool call a second through the TUI's event loop, with
//! mixed outputs (small, truncated at the cap, killed by the timeout, a
//! search, a listing), for `BULKHEAD_SOAK_SECS` (default one hour). Every
//! 10 s of an hour (360 samples) it records, besides the process's RSS,
//! what could make it grow: the live Rust heap (a counting allocator, see
//! `alloc.rs`), SQLite's own memory and its page caches (the bundled
//! SQLite runs in this process and allocates outside the Rust heap), and
//! the conversation's entries, running calls and outputs held in memory.
//! The figure is each one's slope over the second half of the run (after
//! the conversation has reached its entry cap), in bytes per call. Target:
//! flat RSS (under 1 KiB per call).
//!
//! The loop's own latency record (`LoopMetrics`, a duration per frame) is
//! the bench's, not the app's: `bulkhead` runs without it. The soak drains
//! it at every sample, so it does not count as the app's growth.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead_tui::app::events::LoopMetrics;
use rusqlite::ffi;

use super::alloc::live_bytes;
use super::harness::{self, rss_bytes};
use crate::{Row, size};

/// An hour: the TUI's memory must stay flat over an hour of calls.
const DEFAULT_SECS: u64 = 3600;

/// Samples: 360 over the run (every 10 s in an hour), at least a second
/// apart.
const SAMPLES: u64 = 360;

/// Mixed calls, one a second, in turn.
const CALLS: [&str; 5] = ["!seq 1 2000", "!yes", "!sleep 3", "/search fn .", "/ls ."];

/// One sample of everything that could grow.
#[derive(Clone, Copy, Default)]
struct Sample {
    calls: u64,
    rss: u64,
    /// The live Rust heap.
    heap: u64,
    /// All memory SQLite holds (`sqlite3_memory_used`).
    sqlite: u64,
    /// Of which its page caches (`SQLITE_STATUS_PAGECACHE_OVERFLOW`: with
    /// no page-cache buffer configured, all of it comes from `malloc`).
    sqlite_cache: u64,
    entries: usize,
    running: usize,
    outputs_in_memory: usize,
    /// Frames drawn since the previous sample (from the drained metrics).
    frames: usize,
}

impl Sample {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "calls": self.calls, "rss": self.rss, "heap": self.heap,
            "sqlite": self.sqlite, "sqlite_cache": self.sqlite_cache,
            "entries": self.entries, "running": self.running,
            "outputs_in_memory": self.outputs_in_memory, "frames": self.frames,
        })
    }
}

/// SQLite's current figure for `op` (an `SQLITE_STATUS_*`), process-wide.
fn sqlite_status(op: i32) -> u64 {
    let (mut current, mut highwater) = (0i64, 0i64);
    // SAFETY: plain out-parameters; `sqlite3_status64` only reads counters.
    let rc = unsafe { ffi::sqlite3_status64(op, &mut current, &mut highwater, 0) };
    if rc == ffi::SQLITE_OK {
        current.max(0) as u64
    } else {
        0
    }
}

fn sample(calls: u64, metrics: &Mutex<LoopMetrics>) -> Sample {
    let mut s = Sample {
        calls,
        rss: rss_bytes(),
        heap: live_bytes(),
        // SAFETY: reads a process-wide counter.
        sqlite: unsafe { ffi::sqlite3_memory_used() }.max(0) as u64,
        sqlite_cache: sqlite_status(ffi::SQLITE_STATUS_PAGECACHE_OVERFLOW),
        ..Sample::default()
    };
    if let Ok(mut m) = metrics.lock() {
        s.entries = m.entries;
        s.running = m.running;
        s.outputs_in_memory = m.outputs_in_memory;
        s.frames = m.render.len();
        // Dropped, not cleared: their capacity is the bench's growth too.
        m.render = Vec::new();
        m.key_to_frame = Vec::new();
    }
    s
}

pub async fn run() {
    let secs = std::env::var("BULKHEAD_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECS);
    eprintln!("   soak: {secs} s, one call a second");
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    {
        let samples = samples.clone();
        harness::run(2, move |keys, metrics| async move {
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
                    let s = sample(n, &metrics);
                    if let Ok(mut v) = samples.lock() {
                        v.push(s);
                    }
                    next_sample += every;
                }
                harness::pause(Duration::from_secs(1)).await;
            }
            harness::pause(Duration::from_secs(3)).await;
            // The last sample: the calls have ended.
            let s = sample(n, &metrics);
            if let Ok(mut v) = samples.lock() {
                v.push(s);
            }
        })
        .await;
    }
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    report(secs, &samples);
}

fn report(secs: u64, samples: &[Sample]) {
    let calls = samples.last().map_or(0, |s| s.calls);
    let half = &samples[samples.len() / 2..];
    let of = |f: fn(&Sample) -> u64| -> f64 {
        slope(&half.iter().map(|s| (s.calls, f(s))).collect::<Vec<_>>())
    };
    let rss = of(|s| s.rss);
    let heap = of(|s| s.heap);
    let sqlite = of(|s| s.sqlite);
    let sqlite_cache = of(|s| s.sqlite_cache);
    let (first, last) = match (samples.first(), samples.last()) {
        (Some(f), Some(l)) => (*f, *l),
        _ => (Sample::default(), Sample::default()),
    };
    let max = |f: fn(&Sample) -> u64| samples.iter().map(f).max().unwrap_or(0);
    let max_entries = samples.iter().map(|s| s.entries).max().unwrap_or(0);
    let max_outputs = samples
        .iter()
        .map(|s| s.outputs_in_memory)
        .max()
        .unwrap_or(0);
    let frames: usize = samples.iter().map(|s| s.frames).sum();
    Row {
        bench: "tui",
        name: format!("soak: {calls} calls in {secs} s, RSS slope (second half)"),
        measured: format!("{rss:.0} B/call"),
        baseline: format!(
            "RSS {} → {} (max {})",
            size(first.rss),
            size(last.rss),
            size(max(|s| s.rss))
        ),
        figure: format!(
            "second half: heap {heap:.0} B/call, SQLite {sqlite:.0} B/call \
             (page caches {sqlite_cache:.0}); SQLite {} → {} (max {}, caches {}); \
             heap {} → {}; entries max {max_entries}, outputs in memory max {max_outputs}; \
             {} samples",
            size(first.sqlite),
            size(last.sqlite),
            size(max(|s| s.sqlite)),
            size(last.sqlite_cache),
            size(first.heap),
            size(last.heap),
            samples.len()
        ),
        target: "< 1 KiB/call".into(),
        met: Some(rss < 1024.0),
        data: serde_json::json!({
            "secs": secs, "calls": calls, "frames": frames,
            "slope_bytes_per_call": {"rss": rss, "heap": heap, "sqlite": sqlite,
                                     "sqlite_page_cache": sqlite_cache},
            "samples": samples.iter().map(Sample::json).collect::<Vec<_>>(),
        }),
    }
    .emit();
}

/// Least-squares slope of a figure against the call count.
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
