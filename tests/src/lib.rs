//! Shared helpers for bulkhead's workspace-level tests.
//!
//! The tests drive the real `bulkhead` and `bulkhead-worker` binaries, built
//! by `cargo build --workspace` before `cargo test` (the README's test
//! command does both). They are found beside the test executable's profile
//! directory, so `CARGO_TARGET_DIR` and `--release` both work.

use std::path::PathBuf;
use std::process::{Command, Output};

/// `target/<profile>`, from the running test binary (`target/<profile>/deps/…`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// Path of a workspace binary, checked to exist.
pub fn bin(name: &str) -> PathBuf {
    let p = profile_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --workspace --bins` before the tests (scripts/test does)",
        p.display()
    );
    p
}

/// `bulkhead run TOOL ARGS --json EXTRA…`, parsed.
pub fn run_json(tool: &str, args: &str, extra: &[&str]) -> (serde_json::Value, Output) {
    let out = Command::new(bin("bulkhead"))
        .args(["run", tool, args, "--json"])
        .args(extra)
        .output()
        .expect("spawn bulkhead");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "bulkhead --json printed no JSON object ({e}); stdout: {text:.2000}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, out)
}

/// True if `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_ascii_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Live children of `parent`, from the ppid field of `/proc/PID/stat`.
pub fn children_of(parent: u32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The command may hold spaces and ')': fields start after the last ')'.
            let ppid = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().nth(1));
            ppid == Some(parent.to_string().as_str())
        })
        .filter(|&pid| alive(pid))
        .collect()
}

/// Pids whose command line contains `needle` (a unique marker a test puts
/// in the command it runs), excluding this process.
pub fn pids_with_marker(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .filter(|&pid| alive(pid))
        .collect()
}

/// A marker unique to this test process and call site.
pub fn marker(tag: &str) -> String {
    format!("bulkhead-test-{tag}-{}", std::process::id())
}
