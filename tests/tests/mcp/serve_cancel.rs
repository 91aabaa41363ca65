//! A client's `notifications/cancelled` through `bulkhead mcp serve`, over
//! stdio and over HTTP: the request it names gets no answer, the server is
//! told (the official Python SDK's server cancels the tool), and the
//! session goes on.

use std::path::{Path, PathBuf};
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
    let (config, marker) = writable_marker(dir.path());
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

    wait_for(&marker);
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

/// A config that lets server `a` write in `dir`, and the marker its
/// `wait_cancel` tool writes there when cancelled.
fn writable_marker(dir: &Path) -> (PathBuf, PathBuf) {
    let config = dir.join("bulkhead.toml");
    std::fs::write(&config, format!("[servers.a]\nallow_write = [{dir:?}]\n")).unwrap();
    (config, dir.join("cancelled"))
}

/// Until the server's tool has marked its cancellation.
fn wait_for(marker: &Path) {
    let started = Instant::now();
    while !marker.exists() {
        assert!(
            started.elapsed() < CANCEL_BOUND,
            "the server's tool was never cancelled"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn over_http_a_cancelled_call_ends_its_stream_without_an_answer_and_its_server_is_told() {
    use crate::sse::{call, initialize, post};
    let setup = crate::python_http::Setup::new();
    let dir = tempfile::tempdir().unwrap();
    let (config, marker) = writable_marker(dir.path());
    let (_gw, port) = setup.gateway_with(false, Some(&config));
    let sid = initialize(port, json!({}));
    let warm = post(port, &sid, &call(1, "a__work", json!({"steps": 1}))).answer(1);
    assert_eq!(
        warm["result"]["content"][0]["text"], "a: 1 steps done",
        "{warm}"
    );

    // The call's POST waits (its stream has nothing to say yet) while the
    // client cancels it on another.
    let waiting = {
        let (sid, marker) = (sid.clone(), marker.clone());
        std::thread::spawn(move || {
            let mut r = post(
                port,
                &sid,
                &call(2, "a__wait_cancel", json!({"marker": marker})),
            );
            (r.status, r.is_sse(), r.event_or_end())
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 2, "reason": "the user pressed stop"}});
    assert_eq!(post(port, &sid, &cancel).status, 202);
    wait_for(&marker);
    let (status, sse, event) = waiting.join().unwrap();
    assert_eq!((status, sse), (200, true));
    assert!(
        event.is_none(),
        "the cancelled call's stream said {event:?}"
    );
    // The session goes on.
    let next = post(port, &sid, &call(3, "a__work", json!({"steps": 1}))).answer(3);
    assert_eq!(
        next["result"]["content"][0]["text"], "a: 1 steps done",
        "{next}"
    );
}
