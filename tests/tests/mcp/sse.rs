//! `bulkhead mcp serve --http` streams: a call whose server sends progress
//! gets it as SSE on its POST, before the answer; the session's GET stream
//! carries the server's logging between calls, with event ids a client
//! resumes from; DELETE ends a session; a server's sampling and
//! elicitation requests reach the client that offers them, over HTTP and
//! over stdio. The server is the reference server-everything over stdio,
//! sandboxed behind the gateway; the client is a few lines of HTTP/1.1
//! here, so what goes over the wire is what is checked.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use bulkhead_tests::{KillOnDrop, bin, free_port, peer, wait_listening};
use serde_json::{Value, json};

/// Every read waits at most this: generous for a loaded machine, and a
/// hung stream fails the test instead of hanging it.
const READ_BOUND: Duration = Duration::from_secs(120);

/// Events read from one stream before the test gives up on it.
const MAX_EVENTS: usize = 200;

fn servers_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("servers.json");
    let doc = json!({"mcpServers": {
        "everything": {"command": peer("MCP_NODE"), "args": [peer("MCP_EVERYTHING"), "stdio"]},
    }});
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

/// The HTTP gateway over server-everything, and its port.
fn http_gateway(dir: &std::path::Path, expose: bool) -> (KillOnDrop, u16) {
    let port = free_port();
    let mut cmd = Command::new(bin("bulkhead"));
    cmd.args(["mcp", "serve", "--servers"])
        .arg(servers_file(dir))
        .args(["--http", &format!("127.0.0.1:{port}")]);
    if expose {
        cmd.args(["--expose", "everything"]);
    }
    let child = KillOnDrop(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(port, READ_BOUND);
    (child, port)
}

/// One HTTP exchange's answer: status, headers (lower-cased names) and
/// the connection, for the body.
pub(crate) struct Reply {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    body: BufReader<TcpStream>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn is_sse(&self) -> bool {
        self.header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream"))
    }

    /// The whole body of a `Content-Length` answer, as JSON.
    fn json(mut self) -> Value {
        let len: usize = self
            .header("content-length")
            .expect("a Content-Length")
            .parse()
            .unwrap();
        let mut buf = vec![0; len];
        self.body.read_exact(&mut buf).unwrap();
        serde_json::from_slice(&buf).unwrap()
    }

    /// The next SSE event (its id, its message); `None` when the stream
    /// ends. Each event is one chunk of its own, so chunk-size lines are
    /// skipped and `id:` / `data:` lines read as they come.
    fn event(&mut self) -> Option<(Option<u64>, Value)> {
        let mut id = None;
        for _ in 0..4 * MAX_EVENTS {
            let mut line = String::new();
            if self.body.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let line = line.trim_end();
            if line == "0" {
                return None; // the last chunk
            }
            if let Some(v) = line.strip_prefix("id: ") {
                id = v.parse().ok();
            } else if let Some(data) = line.strip_prefix("data: ") {
                return Some((id, serde_json::from_str(data).unwrap()));
            }
        }
        panic!("no event in {} lines", 4 * MAX_EVENTS);
    }

    /// The next event, or `None` when the stream ends, however it ends
    /// (a connection closed mid-event, or reset, included).
    pub(crate) fn event_or_end(&mut self) -> Option<(Option<u64>, Value)> {
        let mut id = None;
        loop {
            let mut line = Vec::new();
            match self.body.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let Ok(line) = std::str::from_utf8(&line) else {
                continue; // a chunk cut mid-character by the close
            };
            let line = line.trim_end();
            if line == "0" {
                return None;
            }
            if let Some(v) = line.strip_prefix("id: ") {
                id = v.parse().ok();
            } else if let Some(data) = line.strip_prefix("data: ") {
                // A last event cut short by the close is not one.
                return serde_json::from_str(data).ok().map(|m| (id, m));
            }
        }
    }

    /// Events until the answer with `id`: (what came before, the answer).
    fn until_answer(&mut self, id: u64) -> (Vec<Value>, Value) {
        let mut before = Vec::new();
        for _ in 0..MAX_EVENTS {
            let (_, msg) = self.event().expect("the answer before the stream ends");
            if msg["id"] == id && msg.get("method").is_none() {
                return (before, msg);
            }
            before.push(msg);
        }
        panic!("no answer in {MAX_EVENTS} events: {before:?}");
    }

    /// The answer to request `id`, whether it came as JSON or SSE.
    pub(crate) fn answer(mut self, id: u64) -> Value {
        if self.is_sse() {
            self.until_answer(id).1
        } else {
            self.json()
        }
    }
}

fn send(
    port: u16,
    method: &str,
    session: Option<&str>,
    extra: &[(&str, &str)],
    body: Option<&Value>,
) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(READ_BOUND)).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!(
        "{method} /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(sid) = session {
        head.push_str(&format!("Mcp-Session-Id: {sid}\r\n"));
    }
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(s, "{head}\r\n{body}").unwrap();
    let mut body = BufReader::new(s);
    let mut status_line = String::new();
    body.read_line(&mut status_line).unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        body.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').unwrap();
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    Reply {
        status,
        headers,
        body,
    }
}

const BOTH: (&str, &str) = ("Accept", "application/json, text/event-stream");

pub(crate) fn post(port: u16, session: &str, msg: &Value) -> Reply {
    send(port, "POST", Some(session), &[BOTH], Some(msg))
}

/// Initializes a session declaring `capabilities`; its id.
pub(crate) fn initialize(port: u16, capabilities: Value) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": capabilities,
        "clientInfo": {"name": "sse-test", "version": "0"}}});
    let r = send(port, "POST", None, &[BOTH], Some(&init));
    assert_eq!(r.status, 200);
    let sid = r.header("mcp-session-id").expect("a session id").to_owned();
    assert_eq!(r.json()["result"]["serverInfo"]["name"], "bulkhead");
    let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(port, &sid, &done).status, 202);
    sid
}

pub(crate) fn call(id: u64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
}

#[test]
fn progress_comes_on_the_posts_stream_before_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (_gw, port) = http_gateway(dir.path(), false);
    let sid = initialize(port, json!({}));
    let mut msg = call(
        1,
        "everything__trigger-long-running-operation",
        json!({"duration": 2, "steps": 4}),
    );
    msg["params"]["_meta"] = json!({"progressToken": "tok-1"});
    let mut r = post(port, &sid, &msg);
    assert_eq!(r.status, 200);
    assert!(r.is_sse(), "{:?}", r.headers);
    let (before, answer) = r.until_answer(1);
    let progress: Vec<&Value> = before
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 4, "{before:?}");
    assert!(
        progress
            .iter()
            .all(|p| p["params"]["progressToken"] == "tok-1")
    );
    assert_eq!(progress[3]["params"]["progress"], 4);
    let text = answer["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("completed"), "{answer}");
    // Then the stream ends.
    assert!(r.event().is_none());
}

#[test]
fn the_get_stream_carries_logging_resumes_and_delete_ends_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let (_gw, port) = http_gateway(dir.path(), true);
    let sid = initialize(port, json!({}));
    let on = post(port, &sid, &call(1, "toggle-simulated-logging", json!({}))).answer(1);
    assert!(
        on["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Started"),
        "{on}"
    );
    let sse = [("Accept", "text/event-stream")];
    let mut stream = send(port, "GET", Some(&sid), &sse, None);
    assert_eq!(stream.status, 200);
    assert!(stream.is_sse());
    // Logging every 5 s, between calls: on the GET stream, with ids.
    let (first, msg) = stream.event().expect("a log message");
    assert_eq!(msg["method"], "notifications/message", "{msg}");
    let (second, _) = stream.event().expect("another");
    let (first, second) = (first.expect("an id"), second.expect("an id"));
    assert!(second > first);
    drop(stream);
    // Reconnecting after `first` replays `second` first.
    let last = first.to_string();
    let mut resumed = send(
        port,
        "GET",
        Some(&sid),
        &[sse[0], ("Last-Event-ID", &last)],
        None,
    );
    assert_eq!(resumed.status, 200);
    let (id, _) = resumed.event().expect("the replay");
    assert_eq!(id, Some(second));
    drop(resumed);

    // Another client's (or a made-up) session is unknown: 404.
    assert_eq!(
        send(port, "DELETE", Some("0123abcd"), &[], None).status,
        404
    );
    assert_eq!(send(port, "DELETE", Some(&sid), &[], None).status, 200);
    assert_eq!(send(port, "DELETE", Some(&sid), &[], None).status, 404);
    assert_eq!(send(port, "GET", Some(&sid), &sse, None).status, 404);
    assert_eq!(
        post(
            port,
            &sid,
            &json!({"jsonrpc": "2.0", "id": 9, "method": "ping"})
        )
        .status,
        404
    );
}

#[test]
fn sampling_reaches_the_http_client_that_offers_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_gw, port) = http_gateway(dir.path(), false);
    let sid = initialize(port, json!({"sampling": {}}));
    let mut r = post(
        port,
        &sid,
        &call(
            1,
            "everything__trigger-sampling-request",
            json!({"prompt": "hi", "maxTokens": 10}),
        ),
    );
    assert!(r.is_sse(), "{:?}", r.headers);
    let (_, request) = r.event().expect("the server's request");
    assert_eq!(request["method"], "sampling/createMessage", "{request}");
    let reply = json!({"jsonrpc": "2.0", "id": request["id"], "result": {
        "role": "assistant", "model": "test-model",
        "content": {"type": "text", "text": "sampled by the client"}}});
    assert_eq!(post(port, &sid, &reply).status, 202);
    let (_, answer) = r.until_answer(1);
    assert!(
        answer.to_string().contains("sampled by the client"),
        "{answer}"
    );

    // A client that did not offer sampling: the server is told why.
    let plain = initialize(port, json!({}));
    let answer = post(
        port,
        &plain,
        &call(
            2,
            "everything__trigger-sampling-request",
            json!({"prompt": "hi", "maxTokens": 10}),
        ),
    )
    .answer(2);
    assert!(answer.to_string().contains("did not declare"), "{answer}");
}

#[test]
fn elicitation_reaches_the_stdio_client_that_offers_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        Command::new(bin("bulkhead"))
            .args(["mcp", "serve", "--servers"])
            .arg(servers_file(dir.path()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdin = child.0.stdin.take().unwrap();
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut next = || -> Value {
        let line = lines.next().expect("a line").unwrap();
        serde_json::from_str(&line).unwrap()
    };
    let mut say = |v: Value| writeln!(stdin, "{v}").unwrap();
    say(
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}},
        "clientInfo": {"name": "stdio-test", "version": "0"}}}),
    );
    say(call(
        1,
        "everything__trigger-elicitation-request",
        json!({}),
    ));
    let mut answered = false;
    for _ in 0..MAX_EVENTS {
        let msg = next();
        if msg["method"] == "elicitation/create" {
            say(json!({"jsonrpc": "2.0", "id": msg["id"], "result": {"action": "decline"}}));
            answered = true;
        } else if msg["id"] == 1 {
            assert!(answered, "the answer came before the elicitation: {msg}");
            assert!(msg.to_string().contains("declined"), "{msg}");
            return;
        }
    }
    panic!("no answer in {MAX_EVENTS} messages");
}

/// The status line's code of whatever answers `raw`, sent as is.
fn raw_status(port: u16, raw: &[u8]) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(READ_BOUND)).unwrap();
    // The gateway may answer (and close) before taking all of a big body:
    // a failed write is fine, the answer is what is checked.
    let _ = s.write_all(raw);
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {line:?}"))
}

/// Bad input gets the status that names it: a request that is not HTTP
/// 400, a body that is not JSON 400, a body over the message cap 413
/// (read no further than the cap), an unknown session 404.
/// Only the session id names a session (128 random bits), so one session
/// cannot name, use or end another's without its id: ending one leaves
/// the other as it was.
#[test]
fn bad_input_gets_the_status_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_gw, port) = http_gateway(dir.path(), false);
    assert_eq!(raw_status(port, b"NOT HTTP AT ALL\r\n\r\n"), 400);
    assert_eq!(
        raw_status(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
        400
    );
    let sid = initialize(port, json!({}));
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: {sid}\r\n"
    );
    let not_json = format!("{head}Content-Length: 8\r\n\r\n{{\"jsonrp");
    assert_eq!(raw_status(port, not_json.as_bytes()), 400);
    // 5 MiB, over the 4 MiB cap on one client message.
    let big = 5 << 20;
    let mut oversized = format!("{head}Content-Length: {big}\r\n\r\n").into_bytes();
    oversized.extend(std::iter::repeat_n(b' ', big));
    assert_eq!(raw_status(port, &oversized), 413);
    let ping = json!({"jsonrpc": "2.0", "id": 9, "method": "ping"});
    assert_eq!(
        post(port, "0123456789abcdef0123456789abcdef", &ping).status,
        404
    );

    assert_eq!(sid.len(), 32, "128 bits as hex: {sid}");
    let other = initialize(port, json!({}));
    assert_ne!(sid, other);
    assert_eq!(send(port, "DELETE", Some(&other), &[], None).status, 200);
    assert_eq!(post(port, &other, &ping).status, 404);
    let still = post(port, &sid, &ping);
    assert_eq!(still.status, 200);
    assert_eq!(still.answer(9)["result"], json!({}));
}

/// A client that starts a call whose server floods it with log messages
/// (128 MiB of them, 16 KiB each) and then reads nothing: the gateway
/// holds a bounded amount (its RSS grows by far less than what was sent),
/// stops the stream after its wait, and serves another session
/// meanwhile; what the client finally reads is a stream that has ended
/// without the flood or the answer.
#[test]
fn a_client_that_never_reads_costs_bounded_memory_and_loses_its_stream() {
    never_reading_client(8192, 16 << 10, 48 << 20);
}

/// The same with log messages of 2 MiB each (512 MiB of them): what the
/// gateway holds for a client that does not read is bounded in bytes,
/// not in events, so its RSS grows by those bounds plus slack, however
/// large each event is.
#[test]
fn large_events_to_a_client_that_never_reads_cost_bounded_bytes() {
    never_reading_client(256, 2 << 20, GROWTH_BOUND_LARGE);
}

/// What the gateway may grow by for 2 MiB events to a client that reads
/// nothing: the stalled stream's bytes (8 MiB, `budget::STREAM_BYTES`),
/// the server's notifications waiting to be routed (8 MiB,
/// `note_queue::PENDING_BYTES`), a few events in passing (being parsed,
/// serialized, routed: 2 MiB each) and allocator slack (16 MiB). Counted
/// in events as before, the same flood held all 512 MiB.
const GROWTH_BOUND_LARGE: u64 = (8 + 8 + 4 * 2 + 16) << 20;

/// Floods a POST's stream with `count` log messages of `size` bytes that
/// its client never reads; the gateway's RSS must grow by less than
/// `bound`.
fn never_reading_client(count: u64, size: u64, bound: u64) {
    use std::os::fd::AsRawFd;
    let setup = crate::python_http::Setup::new();
    let (gw, port) = setup.gateway(false);
    let pid = i32::try_from(gw.0.id()).unwrap();
    let rss = || bulkhead_tests::proc_status_bytes(pid, "VmRSS:").expect("the gateway's VmRSS");
    let sid = initialize(port, json!({}));
    // Warm: the server started, one call through with its logging.
    let warm = post(port, &sid, &call(1, "a__work", json!({"steps": 2}))).answer(1);
    assert_eq!(warm["result"]["content"][0]["text"], "a: 2 steps done");
    let idle = rss();

    let stalled = post(
        port,
        &sid,
        &call(2, "a__flood", json!({"count": count, "size": size})),
    );
    assert!(stalled.is_sse(), "{:?}", stalled.headers);
    // Until the bytes waiting for us stop growing: the gateway's writer
    // is then blocked on us. Sampled, the gateway's RSS meanwhile.
    let fd = stalled.body.get_ref().as_raw_fd();
    let waiting = || {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int through the pointer.
        unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
        n
    };
    let mut peak = idle;
    let (mut last, mut same_for) = (-1, 0);
    for _ in 0..(READ_BOUND.as_millis() / 200) {
        std::thread::sleep(Duration::from_millis(200));
        peak = peak.max(rss());
        let now = waiting();
        same_for = if now == last { same_for + 1 } else { 0 };
        last = now;
        if same_for >= 15 {
            break;
        }
    }
    assert!(same_for >= 15, "the stream never stalled");
    // Past the gateway's wait for a slow client (30 s), with room.
    for _ in 0..(45_000 / 200) {
        std::thread::sleep(Duration::from_millis(200));
        peak = peak.max(rss());
    }
    let growth = peak.saturating_sub(idle);
    eprintln!(
        "{count} events of {size} bytes: gateway RSS idle {} KiB, peak {} KiB",
        idle >> 10,
        peak >> 10
    );
    assert!(
        growth < bound,
        "the gateway grew by {} MiB for a client that reads nothing (idle {} MiB)",
        growth >> 20,
        idle >> 20
    );

    // Another session is served, its progress with it.
    let other = initialize(port, json!({}));
    let mut msg = call(3, "a__work", json!({"steps": 3}));
    msg["params"]["_meta"] = json!({"progressToken": "other"});
    let mut r = post(port, &other, &msg);
    let (before, answer) = r.until_answer(3);
    assert_eq!(answer["result"]["content"][0]["text"], "a: 3 steps done");
    let progress = before
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .count();
    assert_eq!(progress, 3, "{before:?}");

    // What the stalled client reads now ends, short of the flood.
    let mut stalled = stalled;
    let (mut events, mut ended) = (0, false);
    for _ in 0..count {
        let Some((_, msg)) = stalled.event_or_end() else {
            ended = true;
            break;
        };
        assert_ne!(
            msg["id"], 2,
            "the answer came: the stream was never stopped"
        );
        events += 1;
    }
    assert!(ended, "the stream went on past {events} events");
    eprintln!(
        "gateway RSS idle {} KiB, peak {} KiB; {events} of {count} events reached the stalled client",
        idle >> 10,
        peak >> 10
    );
}
