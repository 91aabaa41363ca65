//! `bulkhead run --allow-net HOST[:PORT]`: the tool's only way out is
//! bulkhead's egress proxy, which lets the listed hosts through and refuses,
//! and names, everything else.
//!
//! Real `curl` inside the real sandbox (`untrusted`), against tiny HTTP
//! servers this test starts on 127.0.0.1. Nothing leaves the machine: the
//! one name that is not `localhost` (`evil.example`) is refused by the
//! allow list before anything would resolve it.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bulkhead_tests::bin;

/// Connections one server answers before its thread ends: more than any
/// test here makes, so a leak past the proxy is counted, not hung on.
const MAX_ACCEPTS: usize = 64;

/// A local HTTP server that answers every request with `body` and counts
/// the connections it accepted.
struct Server {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl Server {
    fn start(body: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&connections);
        std::thread::spawn(move || {
            for stream in listener.incoming().take(MAX_ACCEPTS) {
                let Ok(mut stream) = stream else { continue };
                // Counted before the answer is written, so a client that
                // got the answer has been counted.
                seen.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { port, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// `bulkhead run shell {"command": COMMAND} --policy untrusted EXTRA…`.
fn run_shell(command: &str, extra: &[&str]) -> Output {
    let args = serde_json::json!({ "command": command }).to_string();
    Command::new(bin("bulkhead"))
        .args(["run", "shell", &args, "--policy", "untrusted"])
        .args(extra)
        .output()
        .expect("spawn bulkhead")
}

/// [`run_shell`] with `--json`, parsed.
fn run_shell_json(command: &str, extra: &[&str]) -> (serde_json::Value, Output) {
    let mut all = extra.to_vec();
    all.push("--json");
    let out = run_shell(command, &all);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON from bulkhead --json ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, out)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The status line (`bulkhead: completed · …`) and the lines after it.
fn status_and_after(err: &str) -> (String, Vec<String>) {
    let lines: Vec<&str> = err.lines().collect();
    let at = lines
        .iter()
        .rposition(|l| l.starts_with("bulkhead: completed"))
        .unwrap_or_else(|| panic!("no status line: {err}"));
    (
        lines[at].to_owned(),
        lines[at + 1..].iter().map(|l| (*l).to_owned()).collect(),
    )
}

#[test]
fn a_listed_host_is_reached_through_the_proxy() {
    let p1 = Server::start("hello from p1\n");
    let allow = format!("localhost:{}", p1.port);
    let cmd = format!(
        "curl -sS http://localhost:{}/; echo \"proxy=$HTTP_PROXY\"",
        p1.port
    );

    let (v, out) = run_shell_json(&cmd, &["--allow-net", &allow]);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(v["exit"]["code"], 0, "{v}");
    let output = v["output"].as_str().expect("output");
    assert!(output.starts_with("hello from p1\n"), "{output}");
    // The tool is told where the proxy is: only the proxy leads out.
    assert!(output.contains("proxy=http://127.0.0.1:"), "{output}");
    assert_eq!(v["egress"]["allowed"], 1, "{v}");
    assert_eq!(v["egress"]["refused"], 0, "{v}");
    assert_eq!(v["egress"]["failed"], 0, "{v}");
    assert_eq!(v["egress"]["messages"], serde_json::json!([]), "{v}");
    assert_eq!(p1.connections(), 1, "the one request reached p1 once");

    // Text mode: the body on stdout, the egress figures on the status line.
    let out = run_shell(
        &format!("curl -sS http://localhost:{}/", p1.port),
        &["--allow-net", &allow],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from p1\n");
    let (status, after) = status_and_after(&stderr(&out));
    assert!(
        status.ends_with(" · egress 1 allowed, 0 refused"),
        "{status}"
    );
    assert!(after.is_empty(), "nothing was refused: {after:?}");
    assert_eq!(p1.connections(), 2);
}

/// Each way past the allow list is refused, by name, on stderr after the
/// status line and in `--json`, and the servers never see a connection.
#[test]
fn everything_else_is_refused_and_named() {
    let p1 = Server::start("p1\n");
    let p2 = Server::start("p2\n");
    let allow = format!("localhost:{}", p1.port);
    let cases = [
        // Another port of a listed host.
        (
            format!("curl -sSf http://localhost:{}/", p2.port),
            22,
            format!(
                "egress to localhost:{0} refused: port {0} is not in the allow list for this host",
                p2.port
            ),
        ),
        // The same port through a CONNECT tunnel (https): refused the same.
        (
            format!("curl -sS https://localhost:{}/", p2.port),
            56,
            format!(
                "egress to localhost:{0} refused: port {0} is not in the allow list for this host",
                p2.port
            ),
        ),
        // The listed host's address, as an IP literal: not what was listed.
        (
            format!("curl -sSf http://127.0.0.1:{}/", p1.port),
            22,
            format!(
                "egress to 127.0.0.1:{} refused: an IP literal not in the allow list",
                p1.port
            ),
        ),
        // A host listed nowhere: refused by the list, before any lookup (a
        // lookup of this reserved name would fail, which would count as
        // `failed`, not `refused`).
        (
            "curl -sSf http://evil.example/".to_owned(),
            22,
            "egress to evil.example:80 refused: not in the allow list".to_owned(),
        ),
    ];
    for (cmd, curl_exit, message) in &cases {
        let (v, out) = run_shell_json(cmd, &["--allow-net", &allow]);
        assert_eq!(out.status.code(), Some(0), "{cmd}: the call completed: {v}");
        assert_eq!(v["status"], "completed", "{cmd}: {v}");
        assert_eq!(v["exit"]["code"], *curl_exit, "{cmd}: curl's exit: {v}");
        let egress = &v["egress"];
        assert_eq!(egress["allowed"], 0, "{cmd}: {egress}");
        assert_eq!(egress["refused"], 1, "{cmd}: {egress}");
        assert_eq!(
            egress["failed"], 0,
            "{cmd}: nothing was looked up or dialled: {egress}"
        );
        assert_eq!(
            egress["messages"],
            serde_json::json!([{ "text": message, "count": 1 }]),
            "{cmd}"
        );

        let out = run_shell(cmd, &["--allow-net", &allow]);
        assert_eq!(out.status.code(), Some(0), "{cmd}: {}", stderr(&out));
        let (status, after) = status_and_after(&stderr(&out));
        assert!(
            status.ends_with(" · egress 0 allowed, 1 refused"),
            "{cmd}: {status}"
        );
        assert_eq!(after, vec![format!("bulkhead: {message}")], "{cmd}");
    }
    assert_eq!(p1.connections(), 0, "a refused request reached p1");
    assert_eq!(p2.connections(), 0, "a refused request reached p2");

    // Several refusals in one call: each named once, with its count.
    let cmd = format!(
        "curl -sS http://localhost:{0}/; curl -sS http://localhost:{0}/; curl -sS http://evil.example/",
        p2.port
    );
    let (v, out) = run_shell_json(&cmd, &["--allow-net", &allow]);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["egress"]["refused"], 3, "{v}");
    assert_eq!(
        v["egress"]["messages"],
        serde_json::json!([
            { "text": cases[0].2, "count": 2 },
            { "text": cases[3].2, "count": 1 },
        ]),
        "{v}"
    );
    let out = run_shell(&cmd, &["--allow-net", &allow]);
    let (status, after) = status_and_after(&stderr(&out));
    assert!(
        status.ends_with(" · egress 0 allowed, 3 refused"),
        "{status}"
    );
    assert_eq!(
        after,
        vec![
            format!("bulkhead: {} (2 times)", cases[0].2),
            format!("bulkhead: {}", cases[3].2),
        ]
    );
    assert_eq!(p2.connections(), 0);
}

/// Going around the proxy finds nothing: the tool's network namespace has
/// its own loopback, where no server listens, and no route out.
#[test]
fn there_is_no_route_around_the_proxy() {
    let p1 = Server::start("p1\n");
    let allow = format!("localhost:{}", p1.port);
    for url in [
        format!("http://127.0.0.1:{}/", p1.port),
        format!("http://localhost:{}/", p1.port),
    ] {
        let cmd = format!("curl -sS --noproxy '*' --max-time 60 {url}");
        let (v, out) = run_shell_json(&cmd, &["--allow-net", &allow]);
        assert_eq!(out.status.code(), Some(0), "{v}");
        // 7: could not connect (nothing listens on the namespace's lo).
        assert_eq!(v["exit"]["code"], 7, "{cmd}: {v}");
        let output = v["output"].as_str().expect("output");
        assert!(output.contains("Failed to connect"), "{cmd}: {output}");
        // Not through the proxy, so not counted by it either.
        assert_eq!(v["egress"]["allowed"], 0, "{v}");
        assert_eq!(v["egress"]["refused"], 0, "{v}");
    }
    assert_eq!(
        p1.connections(),
        0,
        "a connection that bypassed the proxy reached the host's loopback"
    );
    // The listed host is still reachable the proper way.
    let (v, _) = run_shell_json(
        &format!("curl -sS http://localhost:{}/", p1.port),
        &["--allow-net", &allow],
    );
    assert_eq!(v["output"], "p1\n", "{v}");
    assert_eq!(p1.connections(), 1);
}

#[test]
fn a_malformed_allow_net_is_a_usage_error_naming_the_entry() {
    for bad in ["https://x.com", "localhost:99999", "x.com:"] {
        let out = run_shell("true", &["--allow-net", bad]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "--allow-net {bad}: {err}");
        assert!(err.contains(bad), "the entry {bad} is named: {err}");
        assert!(err.contains("--allow-net"), "{err}");
    }
    // `mcp wrap` takes the same flag and says the same.
    let out = Command::new(bin("bulkhead"))
        .args(["mcp", "wrap", "--allow-net", "https://x.com", "--", "true"])
        .output()
        .expect("spawn bulkhead");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("https://x.com"), "{err}");
}

#[test]
fn allow_net_without_a_sandbox_is_refused() {
    let out = Command::new(bin("bulkhead"))
        .args([
            "run",
            "shell",
            r#"{"command":"true"}"#,
            "--allow-net",
            "localhost",
            "--policy",
            "trusted",
        ])
        .output()
        .expect("spawn bulkhead");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("trusted") && err.contains("--allow-net"),
        "the policy and the flag are named: {err}"
    );
}

/// A tool that needs no network pays nothing for the feature: no proxy
/// variables, no egress report, no egress figures on the status line.
#[test]
fn without_allow_net_there_is_no_proxy() {
    let (v, out) = run_shell_json("env", &[]);
    assert_eq!(out.status.code(), Some(0), "{v}");
    let env = v["output"].as_str().expect("output");
    assert!(env.contains("PATH="), "{env}");
    let lower = env.to_ascii_lowercase();
    for var in [
        "http_proxy=",
        "https_proxy=",
        "all_proxy=",
        "npm_config_proxy=",
    ] {
        assert!(
            !lower.contains(var),
            "{var} is set without --allow-net: {env}"
        );
    }
    assert!(
        v.get("egress").is_none(),
        "an egress field without --allow-net: {v}"
    );
    let out = run_shell("true", &[]);
    let (status, after) = status_and_after(&stderr(&out));
    assert!(!status.contains("egress"), "{status}");
    assert!(after.is_empty(), "{after:?}");
}
