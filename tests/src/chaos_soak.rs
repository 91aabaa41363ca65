//! A soak of `bulkhead mcp serve --chaos` (stdio): `calls` `tools/call`
//! requests spread over several copies of the reference server, a window
//! of them in flight at once, while chaos mode fails some of them. Shared
//! by the CI test (`mcp/serve_inject.rs`, a few hundred calls) and the
//! bench (`bulkhead-bench chaos`, ten thousand).
//!
//! What it measures and checks:
//! - every request is answered exactly once, except those the chaos log
//!   names as `timeout` or `drop` (their answers never reach the client),
//!   which are answered zero times; no answer comes for an id not asked;
//! - the gateway's RSS (`VmRSS`), sampled as the requests go: first, last,
//!   max and the slope of a least-squares line;
//! - its open fds at the start (after a warm-up) and at the end;
//! - no worker or server process outlives the gateway.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{alive, children_of, marker, peer, pids_with_marker, proc_status_bytes};

/// Requests in flight at once: enough to keep three servers busy, few
/// enough that a restart (which holds its server's requests) does not
/// stall the whole window for long.
const WINDOW: usize = 12;

/// The servers: copies of server-everything, so that a fault on one
/// leaves the others serving.
const SERVERS: [&str; 3] = ["e1", "e2", "e3"];

/// Requests before the first fd count and RSS sample: the servers are up
/// and the gateway's buffers warm.
const WARMUP: u64 = 50;

/// What a soak measured.
#[derive(Debug)]
pub struct Soak {
    pub calls: u64,
    pub answered: u64,
    /// Requests chaos left unanswered (`timeout`, `drop`).
    pub unanswered: u64,
    /// Faults chaos injected, by name.
    pub faults: HashMap<String, u64>,
    /// `VmRSS` samples (KiB), one per `calls / 40` requests.
    pub rss_kib: Vec<u64>,
    /// KiB per thousand requests, least squares over the samples from a
    /// quarter of the way on: the gateway's heap settles (each of its
    /// threads' malloc arenas grows to its working size) in the first
    /// faults and restarts, and a leak is growth after that.
    pub rss_slope_kib_per_1k: f64,
    /// The sample at a quarter of the way, which the last is compared with.
    pub rss_settled_kib: u64,
    pub fds_start: usize,
    pub fds_end: usize,
    /// Processes of the servers or workers alive after the gateway exited.
    pub leftover: Vec<i32>,
    pub seconds: f64,
    /// Problems with the answers (duplicates, answers to the unanswered,
    /// missing answers); empty when all is well.
    pub problems: Vec<String>,
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn slope(samples: &[(u64, u64)]) -> f64 {
    let n = samples.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (sx, sy) = samples
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + *x as f64, b + *y as f64));
    let (mx, my) = (sx / n, sy / n);
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in samples {
        num += (*x as f64 - mx) * (*y as f64 - my);
        den += (*x as f64 - mx).powi(2);
    }
    if den == 0.0 { 0.0 } else { num / den * 1000.0 }
}

/// What the gateway's stderr said: request ids left unanswered by chaos,
/// and every fault line.
enum Log {
    Unanswered(u64),
    Fault(String),
}

/// `bulkhead: mcp serve: chaos: injected timeout at 12 ms: server e1,
/// request 17 (tools/call echo)`.
fn parse_log(line: &str) -> Option<Vec<Log>> {
    let rest = line.strip_prefix("bulkhead: mcp serve: chaos: injected ")?;
    let fault = rest.split([' ', ':']).next()?.to_owned();
    let id = rest
        .split(", request ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|id| id.parse::<u64>().ok());
    let mut out = vec![Log::Fault(fault.clone())];
    if let (true, Some(id)) = (matches!(fault.as_str(), "timeout" | "drop"), id) {
        out.push(Log::Unanswered(id));
    }
    Some(out)
}

/// Runs the soak: `calls` requests under `--chaos seed=SEED,rate=RATE`
/// to the gateway of the `bulkhead` binary at `bulkhead`. `dir` holds the
/// servers file and config.
pub fn run(bulkhead: &Path, dir: &Path, calls: u64, seed: u64, rate: f64) -> Soak {
    let mark = marker(&format!("chaos-soak-{seed}"));
    let servers: serde_json::Map<String, Value> = SERVERS
        .iter()
        .map(|s| {
            let args = json!([peer("MCP_EVERYTHING"), "stdio", mark]);
            (
                (*s).to_owned(),
                json!({"command": peer("MCP_NODE"), "args": args}),
            )
        })
        .collect();
    let file = dir.join("servers.json");
    std::fs::write(&file, json!({"mcpServers": servers}).to_string()).expect("servers file");
    // Kills and disconnects restart servers many times in a soak: a
    // budget that a crash loop would still exhaust, but a soak does not.
    let config = dir.join("bulkhead.toml");
    let budget: String = SERVERS
        .iter()
        .map(|s| format!("[servers.{s}]\nmax_restarts = 100000\nrestart_window = \"1s\"\n"))
        .collect();
    std::fs::write(&config, budget).expect("config");
    let chaos =
        format!("seed={seed},rate={rate},faults=error|drop|timeout|malformed|disconnect|kill");
    let mut child = Command::new(bulkhead)
        .args(["mcp", "serve", "--servers"])
        .arg(&file)
        .args(["--chaos", &chaos])
        .env("BULKHEAD_CONFIG", &config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bulkhead mcp serve");
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("stdin");
    let (tx, rx) = mpsc::channel::<Result<Value, Log>>();
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let answers = tx.clone();
    let reader = std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && answers.send(Ok(v)).is_err()
            {
                return;
            }
        }
    });
    let err = BufReader::new(child.stderr.take().expect("stderr"));
    let logger = std::thread::spawn(move || {
        let mut tail = Vec::new();
        for line in err.lines().map_while(Result::ok) {
            match parse_log(&line) {
                Some(logs) => {
                    for l in logs {
                        let _ = tx.send(Err(l));
                    }
                }
                None => {
                    tail.push(line);
                    if tail.len() > 50 {
                        tail.remove(0);
                    }
                }
            }
        }
        tail
    });
    let send = |stdin: &mut std::process::ChildStdin, v: Value| {
        writeln!(stdin, "{v}").expect("write to the gateway");
    };
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "chaos-soak", "version": "1"}}}),
    );
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );

    let started = Instant::now();
    let mut answered: HashMap<u64, u32> = HashMap::new();
    let mut unanswered: HashSet<u64> = HashSet::new();
    let mut faults: HashMap<String, u64> = HashMap::new();
    let mut problems = Vec::new();
    let mut rss = Vec::new();
    let mut fds_start = 0;
    let sample_every = (calls / 40).max(1);
    let mut next = 1u64;
    // Generous: a request may wait for its server's restart (a node
    // server starts in about a second), and the machine is shared.
    let deadline = started + Duration::from_secs(120 + calls / 10);
    let done = |answered: &HashMap<u64, u32>, unanswered: &HashSet<u64>| {
        answered.keys().filter(|id| **id >= 1).count()
            + unanswered
                .iter()
                .filter(|id| !answered.contains_key(id))
                .count()
    };
    let mut init = false;
    loop {
        let settled = done(&answered, &unanswered);
        while init && next <= calls && (next - 1) as usize - settled < WINDOW {
            let server = SERVERS[(next % SERVERS.len() as u64) as usize];
            send(
                &mut stdin,
                json!({"jsonrpc": "2.0", "id": next, "method": "tools/call", "params": {
                    "name": format!("{server}__echo"), "arguments": {"message": format!("m{next}")}}}),
            );
            if next == WARMUP {
                fds_start = fds(pid);
            }
            // `checked_rem`: `is_multiple_of` is newer than the
            // workspace's rust-version.
            if next >= WARMUP
                && next.checked_rem(sample_every) == Some(0)
                && let Some(kib) = proc_status_bytes(pid as i32, "VmRSS:").map(|b| b / 1024)
            {
                rss.push((next, kib));
            }
            next += 1;
        }
        if next > calls && settled as u64 >= calls {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            problems.push(format!(
                "{} of {calls} requests settled within the time bound",
                settled
            ));
            break;
        }
        match rx.recv_timeout(left) {
            Ok(Ok(v)) => {
                let Some(id) = v["id"].as_u64() else { continue };
                if id == 0 {
                    init = true;
                    continue;
                }
                if id > calls {
                    problems.push(format!("an answer to {id}, never asked"));
                }
                *answered.entry(id).or_default() += 1;
            }
            Ok(Err(Log::Unanswered(id))) => {
                unanswered.insert(id);
            }
            Ok(Err(Log::Fault(name))) => *faults.entry(name).or_default() += 1,
            Err(_) => {}
        }
    }
    // Answers still on their way (a late duplicate would show here).
    let grace = Instant::now() + Duration::from_millis(500);
    while let Ok(m) = rx.recv_timeout(grace.saturating_duration_since(Instant::now())) {
        match m {
            Ok(v) => {
                if let Some(id) = v["id"].as_u64() {
                    *answered.entry(id).or_default() += 1;
                }
            }
            Err(Log::Unanswered(id)) => {
                unanswered.insert(id);
            }
            Err(Log::Fault(name)) => *faults.entry(name).or_default() += 1,
        }
    }
    let fds_end = fds(pid);
    let last_rss = proc_status_bytes(pid as i32, "VmRSS:").map(|b| b / 1024);
    if let Some(kib) = last_rss {
        rss.push((calls, kib));
    }
    let workers = children_of(pid);
    let seconds = started.elapsed().as_secs_f64();
    drop(stdin);
    let status = child.wait().expect("wait for the gateway");
    let _ = reader.join();
    let tail = logger.join().unwrap_or_default();
    if !status.success() {
        problems.push(format!("the gateway exited {status}: {}", tail.join("\n")));
    }
    for id in 1..=calls {
        let n = answered.get(&id).copied().unwrap_or(0);
        let silent = unanswered.contains(&id);
        match (silent, n) {
            (false, 1) | (true, 0) => {}
            (true, n) => problems.push(format!("{id}: chaos left it unanswered, answered {n}×")),
            (false, n) => problems.push(format!("{id}: answered {n}×")),
        }
    }
    // The server processes carry the marker; the workers were the
    // gateway's children. Given a moment to be reaped after its exit.
    let mut leftover = Vec::new();
    for _ in 0..50 {
        leftover = pids_with_marker(&mark);
        leftover.extend(workers.iter().copied().filter(|p| alive(*p)));
        if leftover.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Soak {
        calls,
        answered: answered.values().map(|n| u64::from(*n)).sum::<u64>()
            - u64::from(answered.contains_key(&0)),
        unanswered: unanswered.len() as u64,
        faults,
        rss_slope_kib_per_1k: slope(&rss[rss.len() / 4..]),
        rss_settled_kib: rss.get(rss.len() / 4).map_or(0, |(_, k)| *k),
        rss_kib: rss.into_iter().map(|(_, k)| k).collect(),
        fds_start,
        fds_end,
        leftover,
        seconds,
        problems,
    }
}
