//! `bulkhead-bench`: bulkhead's benchmarks, each against a baseline measured
//! in the same run (see BENCHMARKS.md; `scripts/bench` builds and runs it).
//!
//! Usage: `bulkhead-bench [all | overhead | sandbox | mcp | gateway | ipc | rss | kill | search | store | model | agent | tui | egress | launch | wrap-restart | chaos]…`
//!
//! Every result is printed twice on stdout: as a markdown table row
//! (`| … |`) and as one JSON object per line (`{"bench": …}`), so
//! `scripts/bench` can print the table and keep the JSON. Progress goes to
//! stderr. The binaries it drives (`bulkhead`, `bulkhead-worker`, `memhog`)
//! are taken from the directory this executable is in, so a release build of
//! the bench measures release binaries.
//!
//! Setup failures (a missing binary, a call that does not complete) panic
//! with a message: a benchmark that cannot measure what it claims must not
//! print a figure.

mod agent;
mod chaos;
mod egress;
mod gateway;
mod ipc;
mod kill;
mod launch;
mod mcp;
mod model;
mod overhead;
mod rss;
mod sandbox;
mod search;
mod store;
mod tui;
mod wrap_restart;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// The benchmarks, in the order `all` runs them.
const BENCHES: [&str; 16] = [
    "overhead",
    "sandbox",
    "mcp",
    "gateway",
    "ipc",
    "rss",
    "kill",
    "search",
    "store",
    "model",
    "agent",
    "tui",
    "egress",
    "launch",
    "wrap-restart",
    "chaos",
];

/// The header of the results table; every row has these seven cells.
const HEADER: &str = "| benchmark | measured | baseline (same run) | ratio / figure | target | met? | command to reproduce |\n\
                      |---|---|---|---|---|---|---|";

fn main() -> ExitCode {
    let mut names: Vec<String> = std::env::args().skip(1).collect();
    if names.iter().any(|n| n == "-h" || n == "--help") {
        eprintln!("usage: bulkhead-bench [all | {}]…", BENCHES.join(" | "));
        return ExitCode::SUCCESS;
    }
    if names.is_empty() || names.iter().any(|n| n == "all") {
        names = BENCHES.iter().map(|s| (*s).to_owned()).collect();
    }
    if let Some(bad) = names.iter().find(|n| !BENCHES.contains(&n.as_str())) {
        eprintln!(
            "bulkhead-bench: unknown benchmark \"{bad}\" (expected all or one of: {})",
            BENCHES.join(", ")
        );
        return ExitCode::from(2);
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "bulkhead-bench: WARNING: debug build; figures are meaningless (use scripts/bench)"
        );
    }
    println!("{HEADER}");
    for name in &names {
        eprintln!("== {name}");
        match name.as_str() {
            "overhead" => overhead::run(),
            "sandbox" => sandbox::run(),
            "mcp" => mcp::run(),
            "gateway" => gateway::run(),
            "ipc" => ipc::run(),
            "rss" => rss::run(),
            "kill" => kill::run(),
            "search" => search::run(),
            "tui" => tui::run(),
            "store" => store::run(),
            "model" => model::run(),
            "agent" => agent::run(),
            "chaos" => chaos::run(),
            "egress" => egress::run(),
            "launch" => launch::run(),
            "wrap-restart" => wrap_restart::run(),
            _ => unreachable!("names were checked against BENCHES"),
        }
    }
    ExitCode::SUCCESS
}

/// One result: a table row plus the machine-readable figures behind it.
pub struct Row {
    pub bench: &'static str,
    pub name: String,
    pub measured: String,
    pub baseline: String,
    pub figure: String,
    pub target: String,
    /// `None`: an informational row with no target.
    pub met: Option<bool>,
    pub data: serde_json::Value,
}

impl Row {
    /// Prints the row as a markdown line and as a JSON line, and a copy of
    /// the markdown line to stderr as progress.
    pub fn emit(self) {
        let met = match self.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        };
        let line = format!(
            "| {} | {} | {} | {} | {} | {} | `scripts/bench {}` |",
            self.name, self.measured, self.baseline, self.figure, self.target, met, self.bench
        );
        eprintln!("   {line}");
        println!("{line}");
        let json = serde_json::json!({
            "bench": self.bench,
            "row": self.name,
            "met": self.met,
            "target": self.target,
            "data": self.data,
        });
        println!("{json}");
    }
}

/// Summary of a set of timings.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub n: usize,
    pub median: Duration,
    pub p90: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Stats {
    /// Nearest-rank percentiles over `samples` (which must not be empty).
    pub fn of(samples: &[Duration]) -> Stats {
        assert!(!samples.is_empty(), "no samples to summarise");
        let mut s = samples.to_vec();
        s.sort_unstable();
        let rank = |p: f64| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        let total: Duration = s.iter().sum();
        Stats {
            n: s.len(),
            median: rank(0.5),
            p90: rank(0.9),
            max: s[s.len() - 1],
            mean: total / s.len() as u32,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "n": self.n,
            "median_us": self.median.as_micros() as u64,
            "p90_us": self.p90.as_micros() as u64,
            "max_us": self.max.as_micros() as u64,
            "mean_us": self.mean.as_micros() as u64,
        })
    }
}

/// Milliseconds with two decimals, e.g. `1.23 ms`.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Binary sizes in KiB/MiB/GiB, one decimal.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A sibling binary of this executable (`target/<profile>/NAME`).
pub fn sibling(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("cannot locate the running bulkhead-bench");
    let path = exe
        .parent()
        .expect("bulkhead-bench lives in a directory")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the workspace binaries first (`cargo build --release --workspace --bins`, \
         which scripts/bench does)",
        path.display()
    );
    path
}

/// CLOCK_MONOTONIC in nanoseconds: the clock `memhog --trace` prints, shared
/// by every process of the machine.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec we pass; CLOCK_MONOTONIC
    // always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A current-thread tokio runtime, as the `bulkhead` CLI uses.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot start a tokio runtime")
}

/// A scratch directory under the system temp dir, removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("bulkhead-bench-{tag}-{}", std::process::id()));
        // A leftover of an earlier run with the same pid is stale.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
