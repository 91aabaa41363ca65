//! `bulkhead mcp serve --http --inject SERVER:SPEC`: an injected `timeout`
//! holds the POST open without an answer until the client cancels the
//! request, and an injected `disconnect` cuts the POST's stream and ends
//! the client's session (its next request is 404), while the gateway goes
//! on serving.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use bulkhead_tests::{KillOnDrop, bin, free_port, marker, peer, pids_with_marker, wait_listening};
use serde_json::{Value, json};

/// How long a read may wait: a request may wait for the server's start.
const READ_BOUND: Duration = Duration::from_secs(60);

/// Status, headers (lower-cased) and the rest of the connection.
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

    /// The body to its end: a JSON body's text, or an SSE stream's lines.
    fn rest(mut self) -> String {
        let mut text = String::new();
        let _ = self.body.read_to_string(&mut text);
        text
    }

    /// The JSON-RPC message in the body, plain or as an SSE event.
    fn message(self) -> Value {
        let text = self.rest();
        text.lines()
            .find_map(|l| l.strip_prefix("data: "))
            .or(Some(text.trim()).filter(|t| t.starts_with('{')))
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_else(|| panic!("no message in {text:?}"))
    }
}

fn post(port: u16, session: Option<&str>, msg: &Value) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(READ_BOUND)).unwrap();
    let body = msg.to_string();
    let mut head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(sid) = session {
        head.push_str(&format!("Mcp-Session-Id: {sid}\r\n"));
    }
    write!(s, "{head}\r\n{body}").unwrap();
    let mut body = BufReader::new(s);
    let mut status = String::new();
    body.read_line(&mut status).unwrap();
    let status = status.split(' ').nth(1).unwrap().parse().unwrap();
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

fn call(id: u64, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": format!("everything__{tool}"), "arguments": {"message": "x"}}})
}

#[test]
fn timeout_holds_the_post_until_cancelled_and_disconnect_ends_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let mark = marker("serve-inject-http");
    let servers = dir.path().join("servers.json");
    let doc = json!({"mcpServers": {"everything": {"command": peer("MCP_NODE"),
        "args": [peer("MCP_EVERYTHING"), "stdio", mark]}}});
    std::fs::write(&servers, doc.to_string()).unwrap();
    let port = free_port();
    let gateway = KillOnDrop(
        Command::new(bin("bulkhead"))
            .args(["mcp", "serve", "--servers"])
            .arg(&servers)
            .args(["--http", &format!("127.0.0.1:{port}")])
            .args(["--inject", "everything:timeout@on:get-env"])
            .args(["--inject", "everything:disconnect@on:get-tiny-image"])
            .env_remove("BULKHEAD_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(port, READ_BOUND);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "serve-inject-http", "version": "0"}}});
    let r = post(port, None, &init);
    let sid = r.header("mcp-session-id").expect("a session id").to_owned();
    assert_eq!(r.message()["id"], 0);

    // The held request: its POST gets no answer until the cancel.
    let held = {
        let sid = sid.clone();
        std::thread::spawn(move || post(port, Some(&sid), &call(1, "get-env")).rest())
    };
    assert_eq!(post(port, Some(&sid), &call(2, "echo")).message()["id"], 2);
    assert!(!held.is_finished(), "the timed-out request was answered");
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": 1, "reason": "the client gave up"}});
    // The cancel may come before the gateway has taken the request (two
    // connections): sent again until the POST ends, a bounded number of
    // times.
    for _ in 0..30 {
        assert_eq!(post(port, Some(&sid), &cancel).status, 202);
        if held.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(held.is_finished(), "the cancel did not let the request go");
    let rest = held.join().unwrap();
    assert!(!rest.contains("data: "), "an answer came: {rest}");

    // Disconnect: the POST's stream is cut, the session is gone.
    let cut = post(port, Some(&sid), &call(3, "get-tiny-image"));
    assert_eq!(cut.status, 200);
    let rest = cut.rest();
    assert!(!rest.contains("data: "), "an answer came: {rest}");
    assert_eq!(post(port, Some(&sid), &call(4, "echo")).status, 404);
    // A new session is served.
    let r = post(port, None, &init);
    let sid = r.header("mcp-session-id").expect("a session id").to_owned();
    let _ = r.rest();
    assert_eq!(
        post(port, Some(&sid), &call(5, "echo")).message()["result"]["content"][0]["text"],
        "Echo: x"
    );
    drop(gateway);
    for _ in 0..100 {
        if pids_with_marker(&mark).is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("left running: {:?}", pids_with_marker(&mark));
}
