//! A client's `notifications/cancelled` through `bulkhead mcp serve` over
//! stdio: the request it names gets no answer, the server is told (the
//! official Python SDK's server cancels the tool), and the session goes on.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::serve_slow_client::{call, start_with};

/// How long the server may take to see the cancel, however loaded the
/// machine; the tool it cancels would run for a minute.
const CANCEL_BOUND: Duration = Duration::from_secs(30);

#[test]
fn a_cancelled_call_gets_no_answer_and_its_server_is_told() {
    let setup = crate::python_http::Setup::new();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("cancelled");
    // The server may write its marker there, and nowhere else of ours.
    let config = dir.path().join("bulkhead.toml");
    let allow = format!("[servers.a]\nallow_write = [{:?}]\n", dir.path());
    std::fs::write(&config, allow).unwrap();
    let (gw, mut client, _logs) = start_with(&setup.servers(), Some(&config));

    // The server is up, and a call waits in its tool.
    client.send(&call(1, "a__work", json!({"steps": 1})));
    client.until_answer(1);
    client.send(&call(2, "a__wait_cancel", json!({"marker": marker})));
    std::thread::sleep(Duration::from_secs(2));
    client.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 2, "reason": "the user pressed stop"}}),
    );

    let started = Instant::now();
    while !marker.exists() {
        assert!(
            started.elapsed() < CANCEL_BOUND,
            "the server's tool was never cancelled"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // No answer to the cancelled call; the session still serves.
    client.send(&json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}));
    let (before, pong) = client.until_answer(3);
    assert_eq!(pong["result"], json!({}), "{pong}");
    assert!(
        before.iter().all(|m| m["id"] != 2),
        "the cancelled call was answered: {before:?}"
    );
    assert!(
        client
            .next_within(Duration::from_secs(2))
            .is_none_or(|m| m["id"] != 2),
        "the cancelled call was answered late"
    );
    client.send(&call(4, "a__work", json!({"steps": 1})));
    let (_, done) = client.until_answer(4);
    assert_eq!(
        done["result"]["content"][0]["text"], "a: 1 steps done",
        "{done}"
    );
    drop(gw);
}
