//! Times N trivial calls through one [`ToolHost`] and prints one line of
//! figures: the instrument of `scripts/ab-overhead`, which builds this same
//! file at two commits and runs the two builds in turn.
//!
//! It is a binary of its own, with nothing but this crate in it, so that
//! an A/B compares the call path and not whatever else a bigger binary
//! carries (the benchmark program's other benchmarks, its counting
//! allocator, their effect on code layout). It uses only API that has been
//! stable since the crate split, so it builds at older commits too.
//!
//! ```text
//! trivial_calls WORKER auto|watchdog N
//! cgroup-v1 median_us 1303 mean_us 1346 p10_us 1195 p90_us 1587
//! ```

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use bulkhead_host::enforce::MemoryMechanism;
use bulkhead_host::{CallRequest, HostConfig, Outcome, ToolHost};

/// Untimed calls first, so the page cache holds the worker and tokio's
/// blocking pool and the cgroup parents exist, as in `bulkhead-bench
/// overhead`.
const WARMUP: usize = 10;

const USAGE: &str = "usage: trivial_calls WORKER auto|watchdog N";

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [worker, mechanism, n] = args.as_slice() else {
        return Err(USAGE.into());
    };
    let forced = match mechanism.as_str() {
        "auto" => None,
        "watchdog" => Some(MemoryMechanism::Watchdog),
        other => return Err(format!("unknown mechanism {other:?}; {USAGE}").into()),
    };
    let n: usize = n.parse().map_err(|e| format!("N {n:?}: {e}; {USAGE}"))?;
    if n == 0 {
        return Err(format!("N must be at least 1; {USAGE}").into());
    }

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("one-line.txt");
    std::fs::write(&file, "one line\n")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _guard = rt.enter();
    let host = ToolHost::new(HostConfig {
        worker: Some(PathBuf::from(worker)),
        memory_mechanism: forced,
        ..HostConfig::default()
    })?;
    // `read_file` of one line: the tool itself does next to nothing.
    let request = CallRequest::new("read_file", serde_json::json!({ "path": file }).to_string());

    let mut micros = Vec::with_capacity(n);
    for i in 0..WARMUP + n {
        let started = Instant::now();
        let report = rt.block_on(host.call(request.clone()).wait());
        let took = started.elapsed();
        if report.outcome != Outcome::Completed {
            return Err(format!(
                "a trivial call ended {:?}: {}",
                report.outcome, report.worker_stderr
            )
            .into());
        }
        if i >= WARMUP {
            micros.push(u64::try_from(took.as_micros())?);
        }
    }
    let mean = micros.iter().sum::<u64>() / n as u64;
    micros.sort_unstable();
    println!(
        "{} median_us {} mean_us {mean} p10_us {} p90_us {}",
        host.enforcer().mechanism(),
        micros[n / 2],
        micros[n / 10],
        micros[n * 9 / 10],
    );
    Ok(())
}
