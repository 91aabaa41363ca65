//! The conformance suite's server scenarios against its own reference
//! server (`../shared/peers/conformance-everything/`, which has every
//! fixture the scenarios look for), in both spec versions: directly over
//! its own Streamable HTTP, and through `bulkhead mcp serve --http
//! --expose` with the same server behind it over stdio. Every scenario
//! that passes directly must pass through bulkhead (`CONFORMANCE.md`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use bulkhead_tests::{KillOnDrop, bin, free_port, peer, wait_listening};

/// How long a server may take to listen: node with tsx compiling the
/// server's TypeScript takes seconds; a loaded machine, more.
const LISTEN_BOUND: Duration = Duration::from_secs(60);

/// The reference server's command lines (HTTP, stdio), installed (once:
/// the script is idempotent) under the workspace's `target/`.
fn reference_server() -> (Vec<String>, Vec<String>) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("../shared/peers/conformance-everything/install.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(root.join("target/conf-everything"))
        .env("MCP_NODE", peer("MCP_NODE"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "{} failed", script.display());
    let exports = String::from_utf8(out.stdout).unwrap();
    let var = |name: &str| -> Vec<String> {
        let line = exports
            .lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .unwrap_or_else(|| panic!("{name} missing from {exports}"));
        line.trim_matches('\'')
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    (var("CONF_HTTP"), var("CONF_STDIO"))
}

/// A scenario that fails through bulkhead is run again this many times on
/// its own before the test fails: the suite's scenarios have timeouts of
/// their own, which a loaded machine (the other tests run alongside) can
/// miss directly and through bulkhead alike.
const RETRIES: usize = 2;

/// The scenarios (all of `spec`'s, or just `only`) that pass and those
/// that fail against `port`.
fn scenarios(port: u16, spec: &str, only: Option<&str>) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut cmd = Command::new(peer("MCP_NODE"));
    cmd.arg(peer("MCP_CONFORMANCE"))
        .args(["server", "--url", &format!("http://127.0.0.1:{port}/mcp")])
        .args(["--spec-version", spec]);
    if let Some(scenario) = only {
        cmd.args(["--scenario", scenario]);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let name = |l: &str| l.split(':').next().unwrap_or("").trim().to_owned();
    let pass = text
        .lines()
        .filter_map(|l| l.strip_prefix("✓ "))
        .map(name)
        .collect();
    let fail = text
        .lines()
        .filter_map(|l| l.strip_prefix("✗ "))
        .map(name)
        .collect();
    (pass, fail)
}

#[test]
fn the_reference_servers_scenarios_pass_through_the_gateway() {
    let (http, stdio) = reference_server();
    let direct_port = free_port();
    let _direct = KillOnDrop(
        Command::new(&http[0])
            .args(&http[1..])
            .env("PORT", direct_port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let servers = dir.path().join("servers.json");
    let doc = serde_json::json!({"mcpServers": {"conf": {
        "command": stdio[0], "args": &stdio[1..]}}});
    std::fs::write(&servers, doc.to_string()).unwrap();
    let gateway_port = free_port();
    let _gateway = KillOnDrop(
        Command::new(bin("bulkhead"))
            .args(["mcp", "serve", "--servers", servers.to_str().unwrap()])
            .args([
                "--http",
                &format!("127.0.0.1:{gateway_port}"),
                "--expose",
                "conf",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(direct_port, LISTEN_BOUND);
    wait_listening(gateway_port, LISTEN_BOUND);
    for spec in ["2025-06-18", "2025-11-25"] {
        let (direct, direct_fail) = scenarios(direct_port, spec, None);
        // A sanity floor, not the count (26 and 30 when the machine is
        // idle): below it the set-up, not a scenario, is broken.
        assert!(
            direct.len() >= 20,
            "{spec}: the reference server passes only {direct:?} directly (fails {direct_fail:?})"
        );
        let (through, through_fail) = scenarios(gateway_port, spec, None);
        let mut lost: Vec<&String> = direct.difference(&through).collect();
        for _ in 0..RETRIES {
            lost.retain(|name| !scenarios(gateway_port, spec, Some(name)).0.contains(*name));
        }
        assert!(
            lost.is_empty(),
            "{spec}: pass directly but not through bulkhead: {lost:?} (failed: {through_fail:?})"
        );
    }
}
