//! The conformance suite's server scenarios against its own reference
//! server (`../shared/peers/conformance-everything/`, which has every
//! fixture the scenarios look for), in both spec versions: directly over
//! its own Streamable HTTP, and through `bulkhead mcp serve --http` with
//! the same server behind it over stdio, both `--expose`d and in the
//! namespaced mode. Every scenario that passes directly must pass through
//! `--expose`, and through the namespaced mode unless it calls a fixture
//! by the name the namespaced mode prefixes (`CONFORMANCE.md`).

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

/// The scenarios that call a tool or prompt by its fixture's own name
/// (`test_simple_text`, `test_prompt_with_arguments`): the namespaced mode
/// serves them as `conf__test_simple_text`, so there they get "no such
/// tool" and cannot pass. Every other scenario runs there.
const NEED_FIXTURE_NAMES: &[&str] = &[
    "completion-complete",
    "tools-call-simple-text",
    "tools-call-image",
    "tools-call-audio",
    "tools-call-embedded-resource",
    "tools-call-mixed-content",
    "tools-call-with-logging",
    "tools-call-error",
    "tools-call-with-progress",
    "tools-call-sampling",
    "tools-call-elicitation",
    "elicitation-sep1034-defaults",
    "elicitation-sep1330-enums",
    "prompts-get-simple",
    "prompts-get-with-args",
    "prompts-get-embedded-resource",
    "prompts-get-with-image",
];

/// `bulkhead mcp serve --http` over `servers` on a port of its own, with
/// `--expose conf` if `expose`.
fn gateway(servers: &std::path::Path, expose: bool) -> (KillOnDrop, u16) {
    let port = free_port();
    let mut cmd = Command::new(bin("bulkhead"));
    cmd.args(["mcp", "serve", "--servers"])
        .arg(servers)
        .args(["--http", &format!("127.0.0.1:{port}")]);
    if expose {
        cmd.args(["--expose", "conf"]);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (KillOnDrop(child), port)
}

/// The scenarios that pass directly and not against `port` (each failure
/// retried alone, see [`RETRIES`]), leaving out `skip`.
fn lost(
    port: u16,
    spec: &str,
    direct: &BTreeSet<String>,
    skip: &[&str],
) -> (Vec<String>, BTreeSet<String>) {
    let (through, through_fail) = scenarios(port, spec, None);
    let mut lost: Vec<String> = direct
        .difference(&through)
        .filter(|name| !skip.contains(&name.as_str()))
        .cloned()
        .collect();
    for _ in 0..RETRIES {
        lost.retain(|name| !scenarios(port, spec, Some(name)).0.contains(name));
    }
    (lost, through_fail)
}

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
    let (_exposed, exposed_port) = gateway(&servers, true);
    let (_namespaced, namespaced_port) = gateway(&servers, false);
    wait_listening(direct_port, LISTEN_BOUND);
    wait_listening(exposed_port, LISTEN_BOUND);
    wait_listening(namespaced_port, LISTEN_BOUND);
    for spec in ["2025-06-18", "2025-11-25"] {
        let (direct, direct_fail) = scenarios(direct_port, spec, None);
        // A sanity floor, not the count (26 and 30 when the machine is
        // idle): below it the set-up, not a scenario, is broken.
        assert!(
            direct.len() >= 20,
            "{spec}: the reference server passes only {direct:?} directly (fails {direct_fail:?})"
        );
        let (lost_exposed, fail) = lost(exposed_port, spec, &direct, &[]);
        assert!(
            lost_exposed.is_empty(),
            "{spec}: pass directly but not through bulkhead --expose: {lost_exposed:?} (failed: {fail:?})"
        );
        let (lost_namespaced, fail) = lost(namespaced_port, spec, &direct, NEED_FIXTURE_NAMES);
        assert!(
            lost_namespaced.is_empty(),
            "{spec}: pass directly but not through bulkhead's namespaced mode: {lost_namespaced:?} (failed: {fail:?})"
        );
        // What the namespaced mode runs is most of the suite, not a
        // remnant: at least the scenarios not in the list above.
        let ran = direct
            .iter()
            .filter(|n| !NEED_FIXTURE_NAMES.contains(&n.as_str()))
            .count();
        assert!(ran >= 10, "{spec}: only {ran} scenarios ran namespaced");
    }
}
