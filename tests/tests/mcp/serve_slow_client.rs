//! `bulkhead mcp serve` over stdio with a peer that stops reading: a client
//! while a server floods it with notifications, and a server while it
//! floods the gateway with requests of its own. Either way the gateway
//! holds a bounded number of bytes for the peer that does not read (not
//! everything the other side sent), refuses or drops the rest, and says
//! so where the user sees it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bulkhead_tests::{KillOnDrop, bin};
use serde_json::{Value, json};

/// What the gateway may grow by while its client reads nothing and the
/// server sends 512 MiB of 2 MiB log messages: the server's queue of
/// notifications (8 MiB, `note_queue::PENDING_BYTES`), the pipe to the
/// client (64 KiB), a few messages in passing (read from the worker,
/// parsed, serialized, being written: 2 MiB each) and allocator slack
/// (16 MiB). Queued without a bound, as before, the gateway held all of
/// the flood.
const GROWTH_BOUND: u64 = (8 + 4 * 2 + 16) << 20;

/// The flood: 256 log messages of 2 MiB, one call's worth.
const FLOOD_COUNT: u64 = 256;
const FLOOD_SIZE: u64 = 2 << 20;

/// How long the gateway may take over anything here, however loaded
/// the machine: the bound of every wait, so a broken gateway fails the
/// test instead of hanging it.
const BOUND: Duration = Duration::from_secs(120);

/// How long the gateway must use no CPU for the flood to count as over:
/// it spends CPU on every message it takes and drops.
const QUIET: Duration = Duration::from_secs(3);

/// The client's end: lines from the gateway, read only while `reading`.
pub(crate) struct Client {
    stdin: ChildStdin,
    lines: mpsc::Receiver<Value>,
    reading: Arc<AtomicBool>,
}

impl Client {
    pub(crate) fn send(&mut self, msg: &Value) {
        writeln!(self.stdin, "{msg}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// The messages before the answer with `id`, and the answer.
    pub(crate) fn until_answer(&self, id: u64) -> (Vec<Value>, Value) {
        let started = Instant::now();
        let mut before = Vec::new();
        loop {
            let left = BOUND.saturating_sub(started.elapsed());
            let msg = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no answer {id} after {} messages: {e}", before.len()));
            if msg["id"] == id && msg.get("method").is_none() {
                return (before, msg);
            }
            before.push(msg);
        }
    }

    /// The next message within `wait`, if one comes.
    pub(crate) fn next_within(&self, wait: Duration) -> Option<Value> {
        self.lines.recv_timeout(wait).ok()
    }
}

pub(crate) fn call(id: u64, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": args}})
}

/// The gateway's CPU time so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the gateway's stat");
    // Fields after the command's closing parenthesis; utime and stime
    // are the 14th and 15th of the whole line.
    let rest = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// `bulkhead mcp serve` on stdio over `servers`, initialized; its process,
/// its client end, and the file its stderr goes to.
pub(crate) fn start(servers: &Path) -> (KillOnDrop, Client, tempfile::NamedTempFile) {
    start_with(servers, None)
}

/// [`start`], with `config` as the gateway's `BULKHEAD_CONFIG`.
pub(crate) fn start_with(
    servers: &Path,
    config: Option<&Path>,
) -> (KillOnDrop, Client, tempfile::NamedTempFile) {
    let logs = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = Command::new(bin("bulkhead"));
    match config {
        Some(config) => cmd.env("BULKHEAD_CONFIG", config),
        None => cmd.env_remove("BULKHEAD_CONFIG"),
    };
    let mut child = cmd
        .args(["mcp", "serve", "--servers"])
        .arg(servers)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(logs.reopen().unwrap())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let reading = Arc::new(AtomicBool::new(true));
    let (tx, lines) = mpsc::channel();
    let gate = reading.clone();
    std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        loop {
            while !gate.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut line = String::new();
            match stdout.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let Ok(msg) = serde_json::from_str::<Value>(&line) else {
                panic!("not JSON from the gateway: {line:.200}");
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
    });
    let mut client = Client {
        stdin,
        lines,
        reading,
    };
    client.send(
        &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "slow", "version": "0"}}}),
    );
    client.until_answer(0);
    client.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    (KillOnDrop(child), client, logs)
}

/// The gateway's RSS in bytes.
fn rss(pid: u32) -> u64 {
    bulkhead_tests::proc_status_bytes(i32::try_from(pid).unwrap(), "VmRSS:")
        .expect("the gateway's VmRSS")
}

/// Waits until the gateway has been idle for `QUIET` (at most one tick of
/// CPU, 10 ms, in that time: its timers), sampling its RSS; the peak,
/// from `peak` on.
fn peak_until_quiet(pid: u32, mut peak: u64) -> u64 {
    let started = Instant::now();
    let (mut ticks, mut quiet_since) = (cpu_ticks(pid), Instant::now());
    let mut said_at = Instant::now();
    while quiet_since.elapsed() < QUIET {
        assert!(started.elapsed() < BOUND, "the gateway never went quiet");
        std::thread::sleep(Duration::from_millis(200));
        peak = peak.max(rss(pid));
        let now = cpu_ticks(pid);
        if now > ticks + 1 {
            (ticks, quiet_since) = (now, Instant::now());
        }
        if said_at.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "gateway RSS {} KiB (peak {} KiB), CPU {now} ticks",
                rss(pid) >> 10,
                peak >> 10
            );
            said_at = Instant::now();
        }
    }
    eprintln!(
        "the gateway went quiet after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    peak
}

#[test]
fn a_stdio_client_that_stops_reading_costs_bounded_memory_and_hears_of_the_drops() {
    let setup = crate::python_http::Setup::new();
    let (gw, mut client, logs) = start(&setup.servers());
    let pid = gw.0.id();
    // Warm: the server started, one call through with its logging.
    client.send(&call(1, "a__work", json!({"steps": 2})));
    let (_, warm) = client.until_answer(1);
    assert_eq!(
        warm["result"]["content"][0]["text"], "a: 2 steps done",
        "{warm}"
    );
    let idle = rss(pid);

    // The client stops reading (after at most the line it waits for now),
    // and the server sends 512 MiB of log messages.
    client.reading.store(false, Ordering::Release);
    client.send(&call(
        2,
        "a__flood",
        json!({"count": FLOOD_COUNT, "size": FLOOD_SIZE}),
    ));
    let peak = peak_until_quiet(pid, idle);
    let growth = peak.saturating_sub(idle);
    eprintln!(
        "{FLOOD_COUNT} log messages of {FLOOD_SIZE} bytes to a client that reads nothing: gateway RSS idle {} KiB, peak {} KiB",
        idle >> 10,
        peak >> 10,
    );
    assert!(
        growth < GROWTH_BOUND,
        "the gateway grew by {} MiB for a client that reads nothing (idle {} MiB)",
        growth >> 20,
        idle >> 20
    );

    // Reading again: what was queued, then the answer, short of the flood.
    client.reading.store(true, Ordering::Release);
    let (before, answer) = client.until_answer(2);
    assert_eq!(
        answer["result"]["content"][0]["text"],
        format!("a: flooded {FLOOD_COUNT}"),
        "{answer:.300}"
    );
    // The flood's notes, each over 2 MiB (not a late one of the warm call).
    let heard = before
        .iter()
        .filter(|m| {
            m["method"] == "notifications/message" && m.to_string().len() > FLOOD_SIZE as usize
        })
        .count();
    assert!(
        heard > 0 && (heard as u64) < FLOOD_COUNT,
        "{heard} of {FLOOD_COUNT} log messages reached the client"
    );
    // The next note that fits says how many were dropped before it.
    client.send(&call(3, "a__flood", json!({"count": 2, "size": 10})));
    let (after, _) = client.until_answer(3);
    assert_eq!(after.len(), 2, "both small notes: {after:?}");
    drop(client);
    let stderr = std::fs::read_to_string(logs.path()).unwrap();
    // Said as each note that fits follows some that did not: in all, every
    // note that did not reach the client.
    let said: u64 = stderr
        .lines()
        .filter_map(|l| {
            l.strip_suffix(
                " of server \"a\"'s notifications were dropped: a client was not reading them",
            )
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(said, FLOOD_COUNT - heard as u64, "{stderr}");
    drop(gw);
}

/// What the gateway may grow by while a server that reads nothing sends
/// it 256 MiB of requests, each answered with its 64 KiB id echoed: the
/// answers waiting for the server (8 MiB, `TO_SERVER_BYTES`), the relay's
/// and the pipe's buffers, lines in passing (64 KiB each) and allocator
/// slack (16 MiB). Queued without a bound, as before, the gateway held
/// every answer.
const ASKS_GROWTH_BOUND: u64 = (8 + 8 + 16) << 20;

#[test]
fn a_server_that_asks_without_reading_costs_bounded_memory_and_its_next_call_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let servers = dir.path().join("servers.json");
    let doc = json!({"mcpServers": {"hostile": {"command": bin("hostile-mcp"), "args": ["asks"]}}});
    std::fs::write(&servers, doc.to_string()).unwrap();
    let (gw, mut client, _logs) = start(&servers);
    let pid = gw.0.id();
    client.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    let (_, list) = client.until_answer(1);
    assert!(list.to_string().contains("hostile__go"), "{list:.500}");
    let idle = rss(pid);

    // The server asks 4,096 times (256 MiB of ids) and reads no more.
    client.send(&call(2, "hostile__go", json!({})));
    let peak = peak_until_quiet(pid, idle);
    let growth = peak.saturating_sub(idle);
    eprintln!(
        "4,096 requests of 64 KiB from a server that reads nothing: gateway RSS idle {} KiB, peak {} KiB",
        idle >> 10,
        peak >> 10
    );
    assert!(
        growth < ASKS_GROWTH_BOUND,
        "the gateway grew by {} MiB for a server that reads nothing (idle {} MiB)",
        growth >> 20,
        idle >> 20
    );

    // The next call to it is refused at once, and says why.
    client.send(&call(3, "hostile__go", json!({})));
    let (_, refused) = client.until_answer(3);
    let why = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(
        why.contains("server \"hostile\" is not reading its input"),
        "{refused:.500}"
    );
    // The gateway itself still answers.
    client.send(&json!({"jsonrpc": "2.0", "id": 4, "method": "ping"}));
    let (_, pong) = client.until_answer(4);
    assert_eq!(pong["result"], json!({}), "{pong}");
    drop(gw);
}
