//! `bulkhead -V` and `bulkhead --version`.
//!
//! `-V` is one static line. `--version` adds the build (commit, target,
//! features) and asks the worker that discovery picks for its own line, so
//! one command shows whether the installed pair matches; a mismatched
//! worker is refused at the handshake of every call, with both versions
//! named.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `bulkhead -V`.
pub const SHORT: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("BULKHEAD_GIT_COMMIT"),
    ")"
);

/// How long `bulkhead-worker --version` may take: it prints one line and
/// exits (1.3 ms measured, see BENCHMARKS.md); a worker that takes longer
/// is broken, and `--version` must not hang on it.
const WORKER_VERSION_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest worker version line read; the real one is under 100 bytes.
const WORKER_VERSION_MAX: u64 = 4096;

/// Cargo features of this binary. `bulkhead` has none: every optional part
/// (remote MCP) lives in the worker, whose line lists its own.
const FEATURES: &str = "none (tool features are the worker's, below)";

/// `bulkhead --version` (everything after the program name).
pub fn long() -> String {
    format!(
        "{}\ncommit:   {}\ntarget:   {}\nfeatures: {FEATURES}\nworker:   {}",
        env!("CARGO_PKG_VERSION"),
        env!("BULKHEAD_GIT_COMMIT"),
        env!("BULKHEAD_TARGET"),
        worker_line()
    )
}

fn worker_line() -> String {
    let worker = match bulkhead_host::spawn::find_worker(None, None) {
        Ok(w) => w,
        Err(e) => return format!("NOT FOUND: {e}"),
    };
    let place = format!("{} (found {})", worker.path.display(), worker.found_by);
    match ask_version(&worker.path) {
        Ok(line) => {
            let expected = format!("bulkhead-worker {} ", env!("CARGO_PKG_VERSION"));
            let verdict = if line.starts_with(&expected) {
                ""
            } else {
                "\n          VERSION MISMATCH: bulkhead refuses to run calls with this worker"
            };
            format!("{line}\n          at {place}{verdict}")
        }
        Err(e) => format!("{place}: cannot ask its version: {e}"),
    }
}

fn ask_version(path: &std::path::Path) -> Result<String, String> {
    let mut child = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + WORKER_VERSION_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "no answer within {} s",
                    WORKER_VERSION_TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    let mut out = String::new();
    if let Some(stdout) = child.stdout.take() {
        stdout
            .take(WORKER_VERSION_MAX)
            .read_to_string(&mut out)
            .map_err(|e| e.to_string())?;
    }
    match out.lines().next() {
        Some(line) if !line.trim().is_empty() => Ok(line.trim().to_owned()),
        _ => Err("it printed nothing".into()),
    }
}
