//! `wrap-restart`: how long an `mcp wrap` session is without a server when
//! its server dies: from the server's death (a SIGKILL of the reference
//! `server-everything` from here) to the answer of the client's next
//! `tools/call`, which the restarted server gives. It covers noticing the
//! death, the first restart's back-off (100 ms), node's start, and the
//! replayed `initialize`.
//!
//! One session per sample, so each sample is a window's first restart.
//! Needs the MCP peers (`MCP_NODE`, `MCP_EVERYTHING`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{Row, Stats, ms, sibling};

const BENCH: &str = "wrap-restart";

/// Sessions measured: each starts node twice, about two seconds here.
const SAMPLES: usize = 10;

/// The longest any one step may take before the bench gives up: a node
/// start on a loaded machine is seconds, not this.
const STEP_LIMIT: Duration = Duration::from_secs(60);

pub fn run() {
    let (Ok(node), Ok(everything)) = (std::env::var("MCP_NODE"), std::env::var("MCP_EVERYTHING"))
    else {
        panic!(
            "MCP_NODE / MCP_EVERYTHING are not set: run through scripts/bench, which installs the MCP peers"
        );
    };
    eprintln!("   {SAMPLES} sessions: kill the server, time the next call…");
    let samples: Vec<Duration> = (0..SAMPLES)
        .map(|i| one_restart(&node, &everything, i))
        .collect();
    let stats = Stats::of(&samples);
    Row {
        bench: BENCH,
        name: "mcp wrap: a server's death (SIGKILL) to the next answered `tools/call` (server-everything `echo`, restarted)".into(),
        measured: format!("median {}, p90 {}", ms(stats.median), ms(stats.p90)),
        baseline: "—".into(),
        figure: format!("{SAMPLES} sessions, first restart each (100 ms back-off)"),
        target: "—".into(),
        met: None,
        data: serde_json::json!({"death_to_answer": stats.json()}),
    }
    .emit();
}

/// One session: initialize, one call, the server killed, the next call
/// timed from the kill to its answer.
fn one_restart(node: &str, everything: &str, i: usize) -> Duration {
    let mark = format!("bulkhead-bench-wrap-restart-{}-{i}", std::process::id());
    let mut child = Command::new(sibling("bulkhead"))
        .args(["mcp", "wrap", "--policy", "untrusted", "--"])
        .args([node, everything, "stdio", &mark])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start bulkhead mcp wrap");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let (out_tx, out) = mpsc::channel::<String>();
    let (err_tx, err) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = out_tx.send(l);
        }
    });
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = err_tx.send(l);
        }
    });
    let mut call = |id: u64, method: &str, params: serde_json::Value| -> serde_json::Value {
        let req =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        writeln!(stdin, "{req}").expect("write a request");
        loop {
            let line = out.recv_timeout(STEP_LIMIT).expect("no answer in time");
            let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
            if v["id"] == id {
                return v;
            }
        }
    };
    call(
        0,
        "initialize",
        serde_json::json!({"protocolVersion": "2025-06-18",
            "capabilities": {}, "clientInfo": {"name": "bulkhead-bench", "version": "1"}}),
    );
    let echo = |text: &str| serde_json::json!({"name": "echo", "arguments": {"message": text}});
    let first = call(1, "tools/call", echo("before"));
    assert!(first.get("result").is_some(), "echo failed: {first}");
    // The server's, not wrap's own (its command line has the marker too).
    let wrap_pid = child.id() as i32;
    let pids: Vec<i32> = bulkhead_tests::pids_with_marker(&mark)
        .into_iter()
        .filter(|p| *p != wrap_pid)
        .collect();
    assert!(!pids.is_empty(), "the server's process was not found");
    let died = Instant::now();
    for pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    // The next call goes out once wrap has seen the death: sent before, it
    // would have gone to the dead run, and been answered with its end.
    loop {
        let line = err
            .recv_timeout(STEP_LIMIT)
            .expect("wrap did not restart the server");
        if line.contains("; restarting it (") {
            break;
        }
    }
    let next = call(2, "tools/call", echo("after"));
    let took = died.elapsed();
    assert!(
        next.get("result").is_some(),
        "the call after the restart failed: {next}"
    );
    drop(stdin);
    let _ = child.wait();
    took
}
