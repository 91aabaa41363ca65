//! `mcp`: what `bulkhead mcp wrap` costs an MCP session.
//!
//! 1. `tools/call` round trip: one session each against the reference
//!    `server-everything` (stdio), bare and through `bulkhead mcp wrap`
//!    (`untrusted`), in the same run; `N` calls of `echo` one after the
//!    other, each timed from writing the request to reading its answer.
//! 2. Host memory while a server streams a 2 GiB result (`hostile-mcp
//!    huge`): the wrap process's own peak RSS (`VmHWM`), which it prints.
//!
//! Needs the MCP peers (`MCP_NODE`, `MCP_EVERYTHING`): `scripts/bench`
//! installs them with `../shared/peers/install-mcp-peers.sh`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::overhead::{N, WARMUP};
use crate::{Row, Stats, ms, sibling, size};

const BENCH: &str = "mcp";

/// The host's RSS must stay under this while a server misbehaves.
const HOST_RSS_CEILING: u64 = 64 << 20;

pub fn run() {
    let (Ok(node), Ok(everything)) = (std::env::var("MCP_NODE"), std::env::var("MCP_EVERYTHING"))
    else {
        panic!(
            "MCP_NODE / MCP_EVERYTHING are not set: run through scripts/bench, which installs the MCP peers"
        );
    };
    let bare = vec![node.clone(), everything.clone(), "stdio".into()];
    let wrapped = bulkhead_tests::wrap_command(&sibling("bulkhead"), &bare);
    // The gateway, serving the same server unchanged (`--expose`).
    let servers = std::env::temp_dir().join(format!(
        "bulkhead-bench-servers-{}.json",
        std::process::id()
    ));
    let doc = serde_json::json!({"mcpServers": {"everything": {"command": node, "args": [everything, "stdio"]}}});
    std::fs::write(&servers, doc.to_string()).expect("cannot write the servers file");
    let served = vec![
        sibling("bulkhead").display().to_string(),
        "mcp".into(),
        "serve".into(),
        "--servers".into(),
        servers.display().to_string(),
        "--expose".into(),
        "everything".into(),
    ];
    eprintln!("   {N} echo calls, bare, wrapped and through the gateway…");
    let direct = Stats::of(&round_trips(&bare));
    let through = Stats::of(&round_trips(&wrapped));
    let gateway = Stats::of(&round_trips(&served));
    let _ = std::fs::remove_file(&servers);
    let added_gw = gateway.median.saturating_sub(direct.median);
    Row {
        bench: BENCH,
        name: "mcp: `tools/call` round trip through `mcp serve` (stdio, `--expose`, server-everything `echo`)".into(),
        measured: format!("median {}, p90 {}", ms(gateway.median), ms(gateway.p90)),
        baseline: format!("bare server: median {}, p90 {}", ms(direct.median), ms(direct.p90)),
        figure: format!("+{} per call", ms(added_gw)),
        target: "—".into(),
        met: None,
        data: serde_json::json!({"direct": direct.json(), "gateway": gateway.json()}),
    }
    .emit();
    let added = through.median.saturating_sub(direct.median);
    Row {
        bench: BENCH,
        name: "mcp: `tools/call` round trip through `mcp wrap` (server-everything `echo`)".into(),
        measured: format!("median {}, p90 {}", ms(through.median), ms(through.p90)),
        baseline: format!(
            "bare server: median {}, p90 {}",
            ms(direct.median),
            ms(direct.p90)
        ),
        figure: format!("+{} per call", ms(added)),
        target: "—".into(),
        met: None,
        data: serde_json::json!({"direct": direct.json(), "wrapped": through.json()}),
    }
    .emit();

    eprintln!("   a 2 GiB tools/call answer through wrap…");
    let (rss, took) = huge_answer();
    Row {
        bench: BENCH,
        name: "mcp: host peak RSS while a server streams a 2 GiB result".into(),
        measured: size(rss),
        baseline: "—".into(),
        figure: format!(
            "the request's error came {} after the call: at the 4 MiB cap, not after 2 GiB",
            ms(took)
        ),
        target: format!("< {}", size(HOST_RSS_CEILING)),
        met: Some(rss < HOST_RSS_CEILING),
        data: serde_json::json!({"host_peak_rss_bytes": rss, "wall_ms": took.as_millis() as u64}),
    }
    .emit();
}

struct Session {
    child: Child,
    stdin: ChildStdin,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Session {
    fn start(command: &[String]) -> Self {
        let mut child = Command::new(&command[0])
            .args(&command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start the MCP server");
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut s = Session {
            child,
            stdin,
            lines,
        };
        s.call(
            0,
            "initialize",
            serde_json::json!({"protocolVersion": "2025-06-18",
            "capabilities": {}, "clientInfo": {"name": "bulkhead-bench", "version": "1"}}),
        );
        writeln!(
            s.stdin,
            r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
        )
        .expect("write");
        s
    }

    /// Sends a request and reads lines until its answer.
    fn call(&mut self, id: u64, method: &str, params: serde_json::Value) -> serde_json::Value {
        let req =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        writeln!(self.stdin, "{req}").expect("write a request");
        loop {
            let line = self.lines.next().expect("the server ended").expect("read");
            let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON answer");
            if v["id"] == id {
                return v;
            }
        }
    }

    fn end(self) {
        drop(self.stdin);
        let mut child = self.child;
        let _ = child.wait();
    }
}

fn round_trips(command: &[String]) -> Vec<Duration> {
    let mut s = Session::start(command);
    let mut samples = Vec::with_capacity(N);
    for i in 0..(WARMUP + N) as u64 {
        let params =
            serde_json::json!({"name": "echo", "arguments": {"message": format!("ping {i}")}});
        let started = Instant::now();
        let answer = s.call(i + 1, "tools/call", params);
        let took = started.elapsed();
        assert!(answer.get("result").is_some(), "echo failed: {answer}");
        if i as usize >= WARMUP {
            samples.push(took);
        }
    }
    s.end();
    samples
}

/// One 2 GiB answer through wrap; the host's peak RSS, from its end line.
fn huge_answer() -> (u64, Duration) {
    let mut child = Command::new(sibling("bulkhead"))
        .args(["mcp", "wrap", "--"])
        .arg(sibling("hostile-mcp"))
        .arg("huge")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start bulkhead mcp wrap");
    let mut stdin = child.stdin.take().expect("stdin");
    let started = Instant::now();
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"go"}}}}"#
    )
    .expect("write");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let answer = lines.next().expect("an answer").expect("read");
    let took = started.elapsed();
    assert!(answer.contains("message limit"), "{answer:.300}");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let end: serde_json::Value = stderr
        .lines()
        .find_map(|l| l.strip_prefix("bulkhead: mcp wrap: ended "))
        .and_then(|j| serde_json::from_str(j).ok())
        .expect("the end line");
    (
        end["host_peak_rss_bytes"]
            .as_u64()
            .expect("host_peak_rss_bytes"),
        took,
    )
}
