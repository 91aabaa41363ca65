//! The official MCP conformance suite's server scenarios, against the
//! reference server-everything over its own Streamable HTTP transport, and
//! against `bulkhead mcp serve --http --expose everything` with the same
//! server behind it over stdio, sandboxed. Both runs use one baseline of
//! the scenarios that fail directly (`tests/conformance/server-baseline.yml`):
//! the suite exits non-zero on any failure outside it, so whatever passes
//! directly must pass through bulkhead.

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use bulkhead_tests::{KillOnDrop, bin, free_port, peer, wait_listening};

fn conformance(port: u16) -> (bool, String) {
    let baseline = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/conformance/server-baseline.yml"
    );
    let out = Command::new(peer("MCP_NODE"))
        .arg(peer("MCP_CONFORMANCE"))
        .args(["server", "--url", &format!("http://127.0.0.1:{port}/mcp")])
        .args([
            "--spec-version",
            "2025-06-18",
            "--expected-failures",
            baseline,
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn what_passes_directly_passes_through_the_gateway() {
    let direct_port = free_port();
    let _direct = KillOnDrop(
        Command::new(peer("MCP_NODE"))
            .args([peer("MCP_EVERYTHING"), "streamableHttp".into()])
            .env("PORT", direct_port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(direct_port, Duration::from_secs(30));
    let (ok, text) = conformance(direct_port);
    assert!(
        ok,
        "the baseline no longer matches server-everything itself:\n{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let servers = dir.path().join("servers.json");
    let doc = serde_json::json!({"mcpServers": {"everything": {
        "command": peer("MCP_NODE"), "args": [peer("MCP_EVERYTHING"), "stdio"]}}});
    std::fs::write(&servers, doc.to_string()).unwrap();
    let gateway_port = free_port();
    let _gateway = KillOnDrop(
        Command::new(bin("bulkhead"))
            .args(["mcp", "serve", "--servers", servers.to_str().unwrap()])
            .args([
                "--http",
                &format!("127.0.0.1:{gateway_port}"),
                "--expose",
                "everything",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(gateway_port, Duration::from_secs(30));
    let (ok, text) = conformance(gateway_port);
    assert!(
        ok,
        "a scenario that passes directly fails through bulkhead:\n{text}"
    );
}

/// DNS-rebinding protection: a request whose Host or Origin is not the
/// gateway's own address is refused before anything else happens.
#[test]
fn foreign_host_or_origin_is_refused() {
    use std::io::{Read, Write};
    let port = free_port();
    let _gateway = KillOnDrop(
        Command::new(bin("bulkhead"))
            .args(["mcp", "serve", "--http", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(port, Duration::from_secs(30));
    let send = |host: &str, origin: Option<&str>| -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        let origin = origin
            .map(|o| format!("Origin: {o}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "POST /mcp HTTP/1.1\r\nHost: {host}\r\n{origin}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(send("evil.example", None).starts_with("HTTP/1.1 403"));
    let own = format!("127.0.0.1:{port}");
    assert!(send(&own, Some("http://evil.example")).starts_with("HTTP/1.1 403"));
    // Its own name gets through to the protocol (which wants initialize first).
    assert!(send(&own, None).starts_with("HTTP/1.1 400"));
}

/// The suite's client scenarios with `bulkhead mcp call` as the client:
/// the harness runs `CLIENT SERVER_URL` with the scenario in
/// `MCP_CONFORMANCE_SCENARIO`, and a small script picks the call, as the
/// SDKs' own conformance clients do.
#[test]
fn bulkhead_passes_the_client_scenarios() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("client.sh");
    let bulkhead = bin("bulkhead").display().to_string();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$MCP_CONFORMANCE_SCENARIO\" in\n  \
             tools_call) exec '{bulkhead}' mcp call --url \"$1\" add_numbers '{{\"a\":2,\"b\":3}}' ;;\n  \
             sse-retry) exec '{bulkhead}' mcp call --url \"$1\" test_reconnection ;;\n  \
             *) exec '{bulkhead}' mcp call --url \"$1\" ;;\nesac\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    for scenario in ["initialize", "tools_call", "sse-retry"] {
        let out = Command::new(peer("MCP_NODE"))
            .arg(peer("MCP_CONFORMANCE"))
            .args([
                "client",
                "--command",
                script.to_str().unwrap(),
                "--scenario",
                scenario,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "client scenario {scenario} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
