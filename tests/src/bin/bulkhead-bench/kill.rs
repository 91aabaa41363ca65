//! `kill`: time from a tool crossing its memory cap to its call being over.
//!
//! Through the library: a `shell` call runs `memhog 1024 60 --trace` under a
//! 256 MiB cap, its stdout redirected into a FIFO that a thread of the bench
//! reads (see `trace::TraceFifo`). memhog prints `<CLOCK_MONOTONIC ns> <MiB>`
//! after each 16 MiB step; CLOCK_MONOTONIC is the same clock in every
//! process.
//!
//! - Crossing: the first line whose total is ≥ 256 MiB; if memhog died
//!   before printing one (the cgroup's OOM killer fires during the step that
//!   crosses), the last line's time plus one step (the median time between
//!   lines). Either way it is known to about one step (reported; ~10 ms
//!   here, mostly page faults on fresh memory). memhog's
//!   total is a proxy: the cgroup also charges the worker and the shell (a
//!   few MiB), so the kernel's limit is met a little before memhog's total
//!   says so.
//! - End: when `CallEvent::Finished` arrives. An upper bound on the moment
//!   memhog died: it includes noticing (sampling), killing the tree, reaping
//!   the worker and building the report. A watcher thread also polls
//!   memhog's `/proc` entry every 0.5 ms and notes when it is first dead
//!   (exited or a zombie), which splits the figure into "killed" and
//!   "reported".
//!
//! Baseline, same run: memhog started by the bench itself, killed with
//! SIGKILL as soon as it prints a total ≥ 256 MiB, and reaped: the cost of
//! tearing down such a process, with no detection at all. An informational
//! row repeats the cgroup run with the trace written to a regular file, as a
//! tool writing files while it grows would do.

mod trace;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bulkhead_host::enforce::MemoryMechanism;
use bulkhead_host::{
    CallEvent, CallLimits, CallRequest, HostConfig, KillReason, Outcome, ToolHost,
};

use crate::{Row, Scratch, Stats, monotonic_ns, ms, runtime, sibling, size};

/// The memory cap of the call, as in the memory-bomb tests.
const CAP_MIB: u64 = 256;

/// What memhog tries to reach: four times the cap, so every run crosses it.
const HOG_MIB: u64 = 1024;

/// Runs per configuration: enough for a median and a max that mean
/// something, at well under a second per run.
const REPS: usize = 10;

/// Wall-clock limit of each call; a run that is never killed fails fast.
const TIMEOUT: Duration = Duration::from_secs(60);

const BENCH: &str = "kill";

/// Where memhog's stdout goes.
#[derive(Clone, Copy, PartialEq)]
enum Sink {
    Fifo,
    File,
}

struct Bomb {
    /// Crossing to `Finished`.
    latency: Duration,
    /// Crossing to memhog seen dead; `None` if the watcher never saw it.
    death: Option<Duration>,
    estimated: bool,
    /// memhog's median time per 16 MiB step: how well the crossing is known.
    step: Duration,
    outcome: Outcome,
    last_mib: u64,
    peak_rss: u64,
}

pub fn run() {
    let memhog = sibling("memhog");
    let worker = sibling("bulkhead-worker");
    let scratch = Scratch::new(BENCH);
    let rt = runtime();

    let base = Stats::of(&(0..REPS).map(|_| direct_kill(&memhog)).collect::<Vec<_>>());
    Row {
        bench: BENCH,
        name: format!("kill: baseline, SIGKILL + reap of memhog at {CAP_MIB} MiB (no bulkhead)"),
        measured: format!("median {}, max {}", ms(base.median), ms(base.max)),
        baseline: "—".into(),
        figure: format!("{REPS} runs"),
        target: "—".into(),
        met: None,
        data: serde_json::json!({ "what": "baseline", "stats": base.json() }),
    }
    .emit();

    let _guard = rt.enter();
    let host_with = |forced| {
        let config = HostConfig {
            worker: Some(worker.clone()),
            memory_mechanism: forced,
            ..HostConfig::default()
        };
        ToolHost::new(config).expect("cannot start a ToolHost")
    };
    let detected = host_with(None);
    let mut configs = vec![(detected.clone(), Sink::Fifo)];
    if detected.enforcer().mechanism() != MemoryMechanism::Watchdog {
        configs.push((host_with(Some(MemoryMechanism::Watchdog)), Sink::Fifo));
        configs.push((detected, Sink::File));
    }
    for (host, sink) in configs {
        let mechanism = host.enforcer().mechanism();
        eprintln!(
            "   {REPS} memory bombs with {mechanism}, trace to a {}…",
            sink_name(sink)
        );
        let runs: Vec<Bomb> = (0..REPS)
            .map(|i| {
                let path = scratch
                    .path()
                    .join(format!("{mechanism}-{}-{i}.trace", sink_name(sink)));
                bomb(&rt, &host, &memhog, &path, sink)
            })
            .collect();
        let name = match sink {
            Sink::Fifo => {
                format!("kill: cap crossed → `Finished` ({mechanism}, {CAP_MIB} MiB cap)")
            }
            Sink::File => format!(
                "kill (info): as above ({mechanism}), trace to a regular file (dirty page cache in the cgroup)"
            ),
        };
        bomb_row(name, mechanism, &runs, &base);
    }
}

fn sink_name(sink: Sink) -> &'static str {
    match sink {
        Sink::Fifo => "fifo",
        Sink::File => "file",
    }
}

fn bomb_row(name: String, mechanism: MemoryMechanism, runs: &[Bomb], base: &Stats) {
    let stats = Stats::of(&runs.iter().map(|r| r.latency).collect::<Vec<_>>());
    let memory = Outcome::Killed {
        reason: KillReason::Memory,
    };
    let for_memory = runs.iter().filter(|r| r.outcome == memory).count();
    let estimated = runs.iter().filter(|r| r.estimated).count();
    let step = Stats::of(&runs.iter().map(|r| r.step).collect::<Vec<_>>()).median;
    let top_mib = runs.iter().map(|r| r.last_mib).max().unwrap_or(0);
    let peak = runs.iter().map(|r| r.peak_rss).max().unwrap_or(0);
    let deaths: Vec<Duration> = runs.iter().filter_map(|r| r.death).collect();
    let death = match deaths.is_empty() {
        true => "memhog never seen dead by the watcher".to_owned(),
        false => {
            let d = Stats::of(&deaths);
            format!(
                "memhog seen dead after median {} (max {})",
                ms(d.median),
                ms(d.max)
            )
        }
    };
    let outcomes: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{}{}",
                r.outcome.status(),
                r.outcome
                    .reason()
                    .map(|x| format!(": {x}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    Row {
        bench: BENCH,
        name,
        measured: format!("median {}, max {}", ms(stats.median), ms(stats.max)),
        baseline: format!("SIGKILL + reap: median {}", ms(base.median)),
        figure: format!(
            "{death}; killed for memory {for_memory}/{REPS}; memhog printed ≤ {top_mib} MiB; \
             peak RSS ≤ {}; crossing estimated (+1 step) in {estimated}/{REPS}; \
             one step (the crossing's uncertainty) {}",
            size(peak),
            ms(step)
        ),
        target: "— (none set)".into(),
        met: None,
        data: serde_json::json!({
            "mechanism": mechanism, "stats": stats.json(), "baseline": base.json(),
            "killed_for_memory": for_memory, "estimated_crossings": estimated,
            "step_us": step.as_micros() as u64,
            "max_memhog_mib": top_mib, "max_peak_rss_bytes": peak, "outcomes": outcomes,
            "latencies_us": runs.iter().map(|r| r.latency.as_micros() as u64).collect::<Vec<_>>(),
            "deaths_us": runs.iter().map(|r| r.death.map(|d| d.as_micros() as u64)).collect::<Vec<_>>(),
        }),
    }
    .emit();
}

/// One memory bomb through `host`; `path` is the trace FIFO or file.
fn bomb(
    rt: &tokio::runtime::Runtime,
    host: &ToolHost,
    memhog: &Path,
    path: &Path,
    sink: Sink,
) -> Bomb {
    let fifo = (sink == Sink::Fifo).then(|| trace::TraceFifo::new(path));
    // The trace path doubles as a marker in memhog's argv (memhog ignores
    // arguments after `--trace`), so the death watcher finds this memhog.
    let marker = fifo
        .as_ref()
        .map_or(path, |f| f.path())
        .display()
        .to_string();
    let command = format!(
        "'{}' {HOG_MIB} 60 --trace '{marker}' > '{marker}'",
        memhog.display()
    );
    let watcher = trace::watch_death(marker.clone());
    let limits = CallLimits {
        memory_bytes: CAP_MIB << 20,
        timeout: TIMEOUT,
        ..CallLimits::default()
    };
    let args_json = serde_json::json!({ "command": command }).to_string();
    let mut call = host.call(CallRequest {
        tool: "shell".into(),
        args_json,
        limits,
        cwd: None,
        policy: Default::default(),
        stream_output: false,
        inject: Vec::new(),
        inject_seed: None,
    });
    let (report, finished) = rt.block_on(async {
        loop {
            match call.next_event().await {
                Some(CallEvent::Finished(report)) => return (report, monotonic_ns()),
                Some(CallEvent::Output { .. } | CallEvent::Started(_)) => {}
                None => panic!("the call ended without Finished"),
            }
        }
    });
    let died = watcher.join().expect("the death watcher panicked");
    let lines = match fifo {
        Some(f) => f.finish(),
        None => {
            let text = std::fs::read_to_string(path).expect("cannot read memhog's trace");
            text.lines().filter_map(trace::parse_line).collect()
        }
    };
    let crossing = trace::crossing(&lines);
    let crossed = crossing.at;
    Bomb {
        latency: Duration::from_nanos(finished.saturating_sub(crossed)),
        death: died.map(|ns| Duration::from_nanos(ns.saturating_sub(crossed))),
        estimated: crossing.estimated,
        step: crossing.step,
        outcome: report.outcome.clone(),
        last_mib: lines.last().map_or(0, |l| l.1),
        peak_rss: report.usage.peak_rss_bytes,
    }
}

/// The baseline: memhog killed by the bench the moment it reports ≥ the cap.
fn direct_kill(memhog: &Path) -> Duration {
    let mut child = Command::new(memhog)
        .args([&HOG_MIB.to_string(), "60", "--trace"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot spawn memhog");
    let stdout = child.stdout.take().expect("memhog's stdout is piped");
    let mut crossed = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("cannot read memhog's trace");
        if let Some((ns, mib)) = trace::parse_line(&line)
            && mib >= CAP_MIB
        {
            crossed = Some(ns);
            break;
        }
    }
    child.kill().expect("cannot kill memhog");
    child.wait().expect("cannot reap memhog");
    let dead = monotonic_ns();
    let crossed = crossed.expect("memhog ended before reaching the cap");
    Duration::from_nanos(dead - crossed)
}
