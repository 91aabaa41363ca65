//! `bulkhead mcp wrap --url`: a remote MCP server (Streamable HTTP),
//! reached from a worker.
//!
//! - Against the reference `server-everything` (its `streamableHttp`
//!   transport, from the npm registry; see `wrap_fidelity.rs`), the
//!   official inspector gets the same answers through bulkhead as from the
//!   URL directly, for the ten methods of `wrap_fidelity.rs`.
//! - Against servers written here (plain `TcpListener`, hand-written
//!   HTTP/1.1), an endless SSE event or a 100 MiB JSON body fails only the
//!   request it answers, with an error naming the limit, while the host's
//!   peak RSS stays under 64 MiB; a broken stream is resumed with
//!   `Last-Event-ID`; the bearer token and headers reach the server.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead_tests::{WrapSession, assert_same_answers, bin, drive_wrap, peer};
use serde_json::{Value, json};

/// The host's RSS must stay under this while a server misbehaves.
const HOST_RSS_CEILING: u64 = 64 << 20;

/// `server-everything` serving Streamable HTTP on a free port; killed on drop.
struct Everything {
    child: Child,
    url: String,
}

impl Everything {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(peer("MCP_NODE"))
            .arg(peer("MCP_EVERYTHING"))
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start server-everything");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "server-everything did not listen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}/mcp"),
        }
    }
}

impl Drop for Everything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mcp wrap --url` under `policy` answers the inspector exactly as the
/// URL itself does.
fn assert_wrapped_like_the_url(policy: &str) {
    let server = Everything::start();
    let direct = vec![server.url.clone(), "--transport".into(), "http".into()];
    let wrapped: Vec<String> = [
        &bin("bulkhead").display().to_string(),
        "mcp",
        "wrap",
        "--policy",
        policy,
        "--url",
        &server.url,
    ]
    .map(str::to_owned)
    .to_vec();
    assert_same_answers(&direct, &wrapped);
}

#[test]
fn remote_server_everything_answers_like_the_url_itself() {
    assert_wrapped_like_the_url("trusted");
}

/// Under the default sandboxed policy the worker's only network is the
/// egress proxy, which lets through exactly the URL's host and port: the
/// session answers as under `trusted`.
#[test]
fn a_remote_server_under_untrusted_is_reached_through_the_egress_proxy() {
    assert_wrapped_like_the_url("untrusted");
}

/// One request as the hand-written server read it.
struct Request {
    method: String,
    headers: HashMap<String, String>,
    body: Value,
}

type Handler = fn(&Request, &mut TcpStream) -> std::io::Result<()>;

/// An HTTP/1.1 server on a free port: one thread per connection, one
/// request per connection (it answers `Connection: close`). Returns its URL
/// and every request it saw.
fn http_server(handler: Handler) -> (String, Arc<Mutex<Vec<Request>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let Some(req) = read_request(&mut stream) else {
                    return;
                };
                // A write error is the relay hanging up: what the hostile
                // handlers wait for.
                let _ = handler(&req, &mut stream);
                log.lock().unwrap().push(req);
            });
        }
    });
    (url, seen)
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let method = line.split_whitespace().next()?.to_owned();
    let mut headers = HashMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let Some((k, v)) = line.trim_end().split_once(':') else {
            break;
        };
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let len: usize = headers
        .get("content-length")
        .map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Some(Request {
        method,
        headers,
        body,
    })
}

fn head(stream: &mut TcpStream, content_type: &str) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\nconnection: close\r\n\r\n"
    )
}

fn json_answer(stream: &mut TcpStream, answer: &Value) -> std::io::Result<()> {
    let body = answer.to_string();
    write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A 200 answer of `content_type` that starts with `start`, then has `x`
/// up to `limit` bytes (or until the reader hangs up), then `end`.
/// Without a content-length: the body ends when the connection does, so
/// the relay must count it as it comes.
fn flood(
    s: &mut TcpStream,
    content_type: &str,
    start: &[u8],
    limit: usize,
    end: &[u8],
) -> std::io::Result<()> {
    head(s, content_type)?;
    s.write_all(start)?;
    let block = vec![b'x'; 64 << 10];
    let mut sent = 0;
    while sent < limit {
        s.write_all(&block)?;
        sent += block.len();
    }
    s.write_all(end)
}

/// A `tools/call` result up to its text, which the flood then fills.
const RESULT_START: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"text":""#;

/// `ping` is answered properly, with the headers it came with; every other
/// request gets what `hostile` sends.
fn ping_or(req: &Request, stream: &mut TcpStream, hostile: Handler) -> std::io::Result<()> {
    if req.body["method"] == "ping" {
        let result = json!({
            "authorization": req.headers.get("authorization"),
            "x-test": req.headers.get("x-test"),
        });
        return json_answer(
            stream,
            &json!({"jsonrpc": "2.0", "id": req.body["id"], "result": result}),
        );
    }
    hostile(req, stream)
}

/// Runs `wrap --url` against `url` with `flags` and drives it.
fn session(url: &str, flags: &[&str], messages: &[Value], expect: usize) -> WrapSession {
    let child = Command::new(bin("bulkhead"))
        .args([
            "mcp",
            "wrap",
            "--policy",
            "trusted",
            "--session-timeout",
            "60s",
        ])
        .args(["--max-message", "1MiB", "--url", url])
        .args(flags)
        .env_remove("BULKHEAD_CONFIG")
        .env("BULKHEAD_TEST_TOKEN", "s3cret")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bulkhead mcp wrap --url");
    drive_wrap(child, messages, expect)
}

fn call(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "go", "arguments": {}}})
}

fn ping(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "ping"})
}

/// A hostile answer fails its request with the limit named; the ping after
/// it is answered; the host stays small.
fn assert_contained(url: &str) {
    let WrapSession { answers, ended, .. } = session(url, &[], &[call(1), ping(2)], 2);
    let message = answers[&1]["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("1048576-byte message limit"),
        "{}",
        answers[&1]
    );
    assert!(answers[&2].get("result").is_some(), "{}", answers[&2]);
    let rss = ended["host_peak_rss_bytes"].as_u64().unwrap();
    assert!(rss > 0 && rss < HOST_RSS_CEILING, "host peak RSS {rss}");
    assert_eq!(ended["relay"]["oversize_messages"], 1, "{ended}");
}

#[test]
fn an_endless_sse_event_fails_only_its_request() {
    let (url, _) = http_server(|req, s| {
        ping_or(req, s, |_, s| {
            let start = format!("data: {RESULT_START}");
            // 1 GiB at most: far past the cap, but ends if the relay never
            // hangs up. No blank line: the event never ends.
            flood(s, "text/event-stream", start.as_bytes(), 1 << 30, b"")
        })
    });
    assert_contained(&url);
}

#[test]
fn a_100_mib_json_body_fails_only_its_request() {
    let (url, _) = http_server(|req, s| {
        ping_or(req, s, |_, s| {
            let start = RESULT_START.as_bytes();
            flood(s, "application/json", start, 100 << 20, br#""}]}}"#)
        })
    });
    assert_contained(&url);
}

#[test]
fn a_broken_stream_is_resumed_after_its_last_event_id() {
    let (url, seen) = http_server(|req, s| {
        head(s, "text/event-stream")?;
        if req.method == "POST" {
            // A progress note with an id, then the stream breaks.
            s.write_all(
                b"id: e1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\
                  \"params\":{\"progressToken\":1,\"progress\":1}}\n\n",
            )
        } else {
            s.write_all(
                b"retry: 10\n\nid: e2\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n",
            )
        }
    });
    let answers = session(&url, &[], &[call(1)], 1).answers;
    assert!(answers[&1].get("result").is_some(), "{}", answers[&1]);
    let seen = seen.lock().unwrap();
    let resume = seen
        .iter()
        .find(|r| r.method == "GET")
        .expect("a GET to resume");
    assert_eq!(
        resume.headers.get("last-event-id").map(String::as_str),
        Some("e1")
    );
}

#[test]
fn the_bearer_token_and_headers_reach_the_server() {
    let (url, _) = http_server(|req, s| ping_or(req, s, |_, s| head(s, "text/plain")));
    let flags = [
        "--bearer-env",
        "BULKHEAD_TEST_TOKEN",
        "--header",
        "X-Test: yes",
    ];
    let answers = session(&url, &flags, &[ping(1)], 1).answers;
    let result = &answers[&1]["result"];
    assert_eq!(result["authorization"], "Bearer s3cret", "{}", answers[&1]);
    assert_eq!(result["x-test"], "yes");
}
