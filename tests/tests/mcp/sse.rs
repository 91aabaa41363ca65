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
struct Reply {
    status: u16,
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

    fn is_sse(&self) -> bool {
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
    fn answer(mut self, id: u64) -> Value {
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

fn post(port: u16, session: &str, msg: &Value) -> Reply {
    send(port, "POST", Some(session), &[BOTH], Some(msg))
}

/// Initializes a session declaring `capabilities`; its id.
fn initialize(port: u16, capabilities: Value) -> String {
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

fn call(id: u64, tool: &str, arguments: Value) -> Value {
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
