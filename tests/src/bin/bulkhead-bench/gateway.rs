//! `gateway`: what `bulkhead mcp serve --http` costs, over Streamable HTTP.
//!
//! 1. `tools/call` round trip: the reference `server-everything`'s `echo`,
//!    [`CALLS`] calls one after the other, through the gateway over HTTP
//!    (one keep-alive connection, `Accept: application/json,
//!    text/event-stream`, as the SDKs send) against the same server bare
//!    over stdio, in the same run; each timed from writing the request to
//!    reading its answer.
//! 2. The gateway's RSS (`VmRSS` of its process) idle, with [`STREAMS`]
//!    sessions each holding its GET stream open, and then with as many
//!    POSTs in progress besides, each an SSE stream carrying the progress
//!    of a long-running operation (`trigger-long-running-operation`).
//!
//! Needs the MCP peers (`MCP_NODE`, `MCP_EVERYTHING`), as `mcp` does.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Row, Scratch, ms, sibling, size};

const BENCH: &str = "gateway";

/// Timed calls per side: the p99 is then the 495th of 500 samples, a
/// figure rather than the single worst call.
const CALLS: usize = 500;

/// Untimed calls first (the server's code warm, the connection open).
const WARMUP: usize = 20;

/// Streams held open at once for the memory row.
const STREAMS: usize = 100;

/// Any one read waits at most this: a hung gateway fails the bench
/// instead of hanging it.
const READ_BOUND: Duration = Duration::from_secs(120);

/// The gateway's own RSS per open stream must stay under this: a stream
/// holds a bounded queue, not what passes through it.
const PER_STREAM_CEILING: u64 = 256 << 10;

pub fn run() {
    let (Ok(node), Ok(everything)) = (std::env::var("MCP_NODE"), std::env::var("MCP_EVERYTHING"))
    else {
        panic!(
            "MCP_NODE / MCP_EVERYTHING are not set: run through scripts/bench, which installs the MCP peers"
        );
    };
    let scratch = Scratch::new("gateway");
    let servers = scratch.path().join("servers.json");
    let doc =
        json!({"mcpServers": {"everything": {"command": node, "args": [everything, "stdio"]}}});
    std::fs::write(&servers, doc.to_string()).expect("cannot write the servers file");

    eprintln!("   {CALLS} echo calls, bare over stdio and through mcp serve --http…");
    let bare = round_trips_stdio(&[node, everything, "stdio".into()]);
    let gateway = Gateway::start(&servers);
    let through = gateway.round_trips();
    let (b50, b99) = (percentile(&bare, 0.5), percentile(&bare, 0.99));
    let (t50, t99) = (percentile(&through, 0.5), percentile(&through, 0.99));
    Row {
        bench: BENCH,
        name: format!(
            "gateway: `tools/call` round trip through `mcp serve --http` (HTTP, keep-alive; server-everything `echo`, {CALLS} calls)"
        ),
        measured: format!("median {}, p99 {}", ms(t50), ms(t99)),
        baseline: format!("bare server over stdio: median {}, p99 {}", ms(b50), ms(b99)),
        figure: format!("+{} per call (median)", ms(t50.saturating_sub(b50))),
        target: "—".into(),
        met: None,
        data: json!({"calls": CALLS, "bare_us": micros(&bare), "gateway_us": micros(&through)}),
    }
    .emit();

    eprintln!("   the gateway's RSS with {STREAMS} GET streams, then {STREAMS} POST streams too…");
    let (idle, with_get, with_both) = gateway.stream_rss();
    let per_stream = with_both.saturating_sub(idle) / (2 * STREAMS as u64);
    Row {
        bench: BENCH,
        name: format!(
            "gateway: `mcp serve --http` RSS with {STREAMS} GET streams open, then {STREAMS} POSTs streaming progress besides"
        ),
        measured: format!("{} with the GET streams, peak {} with both", size(with_get), size(with_both)),
        baseline: format!("idle (one session): {}", size(idle)),
        figure: format!(
            "{} per GET stream; {} per stream with both",
            size(with_get.saturating_sub(idle) / STREAMS as u64),
            size(per_stream)
        ),
        target: format!("< {} per stream", size(PER_STREAM_CEILING)),
        met: Some(per_stream < PER_STREAM_CEILING),
        data: json!({"streams": STREAMS, "idle_rss_bytes": idle, "get_streams_rss_bytes": with_get,
                     "get_and_post_streams_peak_rss_bytes": with_both, "per_stream_bytes": per_stream}),
    }
    .emit();
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut s = samples.to_vec();
    s.sort_unstable();
    s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1]
}

fn micros(samples: &[Duration]) -> Value {
    json!({"median": percentile(samples, 0.5).as_micros() as u64,
           "p90": percentile(samples, 0.9).as_micros() as u64,
           "p99": percentile(samples, 0.99).as_micros() as u64})
}

fn echo(id: usize) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "echo", "arguments": {"message": format!("ping {id}")}}})
}

/// The bare server over stdio: one session, `CALLS` timed echoes.
fn round_trips_stdio(command: &[String]) -> Vec<Duration> {
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start the MCP server");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut call = |msg: &Value, then: Option<&Value>| -> Value {
        writeln!(stdin, "{msg}").expect("write a request");
        let answer = loop {
            let line = lines.next().expect("the server ended").expect("read");
            let v: Value = serde_json::from_str(&line).expect("a JSON line");
            if v["id"] == msg["id"] && v.get("method").is_none() {
                break v;
            }
        };
        if let Some(next) = then {
            writeln!(stdin, "{next}").expect("write a notification");
        }
        answer
    };
    let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    call(&initialize(0), Some(&done));
    let mut samples = Vec::with_capacity(CALLS);
    for i in 1..=WARMUP + CALLS {
        let msg = echo(i);
        let started = Instant::now();
        let answer = call(&msg, None);
        let took = started.elapsed();
        assert!(answer.get("result").is_some(), "echo failed: {answer}");
        if i > WARMUP {
            samples.push(took);
        }
    }
    drop(stdin);
    let _ = child.wait();
    samples
}

fn initialize(id: usize) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "bulkhead-bench", "version": "1"}}})
}

/// `bulkhead mcp serve --http` over server-everything, killed on drop.
struct Gateway {
    child: Child,
    port: u16,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 connection to the gateway, kept alive between requests.
struct Conn {
    reader: BufReader<TcpStream>,
    port: u16,
}

/// An answer's head: status, session id, whether the body is SSE.
struct Head {
    status: u16,
    session: Option<String>,
    sse: bool,
    length: Option<usize>,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the gateway");
        s.set_read_timeout(Some(READ_BOUND))
            .expect("set a read timeout");
        s.set_nodelay(true).expect("TCP_NODELAY");
        Conn {
            reader: BufReader::new(s),
            port,
        }
    }

    /// Writes one request; `body` `None` is a GET of the session's stream.
    fn send(&mut self, session: Option<&str>, body: Option<&Value>) {
        let port = self.port;
        let (method, body) = match body {
            Some(b) => ("POST", b.to_string()),
            None => ("GET", String::new()),
        };
        let mut head = format!(
            "{method} /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(sid) = session {
            head.push_str(&format!("Mcp-Session-Id: {sid}\r\n"));
        }
        // One write: the request goes out in one segment.
        let request = format!("{head}\r\n{body}");
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .expect("write a request");
    }

    fn head(&mut self) -> Head {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("read a status line");
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer: {line:?}"));
        let mut head = Head {
            status,
            session: None,
            sse: false,
            length: None,
        };
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("read a header");
            let Some((k, v)) = line.trim_end().split_once(':') else {
                return head;
            };
            let v = v.trim();
            match k.to_ascii_lowercase().as_str() {
                "mcp-session-id" => head.session = Some(v.to_owned()),
                "content-type" => head.sse = v.starts_with("text/event-stream"),
                "content-length" => head.length = v.parse().ok(),
                _ => {}
            }
        }
    }

    /// The next SSE message of a chunked stream; `None` at its end.
    fn event(&mut self) -> Option<Value> {
        let mut line = String::new();
        // Chunk sizes, ids and blank lines around each `data:` line.
        for _ in 0..64 {
            line.clear();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let l = line.trim_end();
            if l == "0" {
                // The last chunk, and the blank line after it.
                line.clear();
                let _ = self.reader.read_line(&mut line);
                return None;
            }
            if let Some(data) = l.strip_prefix("data: ") {
                return serde_json::from_str(data).ok();
            }
        }
        panic!("no SSE event in 64 lines");
    }

    /// The answer to the request just sent, as JSON or at the end of its
    /// SSE stream (read to the end, so the connection can be reused).
    fn answer(&mut self, id: usize) -> (Head, Value) {
        let head = self.head();
        if !head.sse {
            let mut body = vec![0; head.length.expect("a Content-Length")];
            self.reader.read_exact(&mut body).expect("read a body");
            let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
            return (head, v);
        }
        let mut answer = Value::Null;
        while let Some(msg) = self.event() {
            if msg["id"] == id && msg.get("method").is_none() {
                answer = msg;
            }
        }
        (head, answer)
    }

    /// A new session: its id.
    fn initialize(&mut self) -> String {
        self.send(None, Some(&initialize(0)));
        let (head, answer) = self.answer(0);
        assert_eq!(head.status, 200, "initialize: {answer}");
        let sid = head.session.expect("a session id");
        let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        self.send(Some(&sid), Some(&done));
        let h = self.head();
        let mut rest = vec![0; h.length.unwrap_or(0)];
        self.reader.read_exact(&mut rest).expect("read");
        sid
    }
}

impl Gateway {
    fn start(servers: &std::path::Path) -> Gateway {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(sibling("bulkhead"))
            .args(["mcp", "serve", "--servers"])
            .arg(servers)
            .args([
                "--http",
                &format!("127.0.0.1:{port}"),
                "--expose",
                "everything",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start bulkhead mcp serve");
        let gateway = Gateway { child, port };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < READ_BOUND, "the gateway never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        gateway
    }

    fn rss(&self) -> u64 {
        bulkhead_tests::proc_status_bytes(self.child.id() as i32, "VmRSS:")
            .expect("the gateway's VmRSS")
    }

    fn round_trips(&self) -> Vec<Duration> {
        let mut conn = Conn::open(self.port);
        let sid = conn.initialize();
        let mut samples = Vec::with_capacity(CALLS);
        for i in 1..=WARMUP + CALLS {
            let msg = echo(i);
            let started = Instant::now();
            conn.send(Some(&sid), Some(&msg));
            let (_, answer) = conn.answer(i);
            let took = started.elapsed();
            assert!(answer.get("result").is_some(), "echo failed: {answer}");
            if i > WARMUP {
                samples.push(took);
            }
        }
        samples
    }

    /// RSS idle (after the round trips: one session, warm), with STREAMS
    /// GET streams, and the peak with STREAMS POSTs streaming besides.
    fn stream_rss(&self) -> (u64, u64, u64) {
        std::thread::sleep(Duration::from_secs(1));
        let idle = self.rss();
        let mut gets = Vec::with_capacity(STREAMS);
        let mut sessions = Vec::with_capacity(STREAMS);
        for _ in 0..STREAMS {
            let sid = Conn::open(self.port).initialize();
            let mut get = Conn::open(self.port);
            get.send(Some(&sid), None);
            let head = get.head();
            assert!(head.status == 200 && head.sse, "GET {}", head.status);
            gets.push(get);
            sessions.push(sid);
        }
        std::thread::sleep(Duration::from_secs(1));
        let with_get = self.rss();
        // Each POST runs 5 s and sends 10 progress notifications; a thread
        // each reads its stream to the answer.
        let port = self.port;
        let readers: Vec<_> = sessions
            .into_iter()
            .enumerate()
            .map(|(i, sid)| {
                std::thread::spawn(move || {
                    let mut conn = Conn::open(port);
                    let msg = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                        "name": "trigger-long-running-operation", "arguments": {"duration": 5, "steps": 10},
                        "_meta": {"progressToken": format!("bench-{i}")}}});
                    conn.send(Some(&sid), Some(&msg));
                    let head = conn.head();
                    assert!(head.sse, "the call's answer is not a stream");
                    let mut progress = 0;
                    while let Some(m) = conn.event() {
                        progress += usize::from(m["method"] == "notifications/progress");
                    }
                    progress
                })
            })
            .collect();
        let mut peak = with_get;
        while readers.iter().any(|r| !r.is_finished()) {
            peak = peak.max(self.rss());
            std::thread::sleep(Duration::from_millis(100));
        }
        for r in readers {
            let progress = r.join().expect("a reader panicked");
            assert_eq!(
                progress, 10,
                "a POST got {progress} of its 10 progress notifications"
            );
        }
        drop(gets);
        (idle, with_get, peak)
    }
}
