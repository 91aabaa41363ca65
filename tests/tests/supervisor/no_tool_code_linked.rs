//! What each binary and library links, read from `cargo metadata`'s normal
//! (non-dev, non-build) dependency tree:
//! - invariant 1: no search crate and no worker crate is in the tree of
//!   `bulkhead` or `bulkhead-host`;
//! - the supervisor (`bulkhead-host`), the part every embedder needs,
//!   links no SQLite, HTTP client, TOML parser or terminal UI.

use std::collections::{HashMap, HashSet};
use std::process::Command;

fn normal_closure(meta: &serde_json::Value, root_name: &str) -> HashSet<String> {
    let packages: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &serde_json::Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let root = packages
        .iter()
        .find(|(_, name)| **name == root_name)
        .map(|(id, _)| *id)
        .unwrap();
    let mut seen = HashSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().unwrap() {
            // Only normal dependencies: `kind` null. Dev and build
            // dependencies do not end up in the binary.
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            if normal {
                stack.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    seen.into_iter().map(|id| packages[id].to_owned()).collect()
}

/// The workspace's resolved dependency graph for this machine's target.
fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Resolve for this machine's target only: that is what the binary
    // links, and it spares downloading other platforms' crates.
    let rustc = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc -vV");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc -vV names the host triple");
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--filter-platform",
            &host,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn bulkhead_binary_links_no_tool_code() {
    let meta = metadata();
    for root in ["bulkhead", "bulkhead-host"] {
        let deps = normal_closure(&meta, root);
        assert!(
            deps.contains("tokio"),
            "{root}: closure looks wrong, no tokio: {deps:?}"
        );
        let tool_code: Vec<_> = deps
            .iter()
            .filter(|n| n.starts_with("grep-") || *n == "ignore" || *n == "bulkhead-worker")
            .collect();
        assert!(
            tool_code.is_empty(),
            "{root} links tool code: {tool_code:?}"
        );
    }
    // And the worker does link it, so the check above is meaningful.
    let worker = normal_closure(&meta, "bulkhead-worker");
    assert!(worker.contains("grep-searcher") && worker.contains("ignore"));
}

#[test]
fn supervisor_links_no_sqlite_http_toml_or_tui() {
    let deps = normal_closure(&metadata(), "bulkhead-host");
    assert!(deps.contains("tokio") && deps.contains("bulkhead-ipc"));
    let heavy: Vec<_> = [
        "rusqlite",
        "reqwest",
        "toml",
        "ratatui",
        "crossterm",
        "hyper",
    ]
    .into_iter()
    .filter(|n| deps.contains(*n))
    .collect();
    assert!(heavy.is_empty(), "bulkhead-host links {heavy:?}");
}
