//! An endless answer costs the client bounded memory: the worst case,
//! tool-call arguments that never end (they accumulate until the call is
//! complete), stops at the whole-response cap with the peak RSS growth
//! well under a ceiling derived from it.

use bulkhead_model::{CapKind, Message, ModelError, ProviderKind};
use bulkhead_tests::model_server::{
    ModelServer, Reply, client, plain_request, sse_event, test_limits,
};
use tokio_util::sync::CancellationToken;

/// The default whole-response cap is 32 MiB; arguments are most of it, and
/// their `String` may hold up to twice that in capacity. 96 MiB leaves room
/// for the runtime, hyper's buffers and the in-process server.
const CEILING: u64 = 96 << 20;

/// A field of this process's `/proc/self/status`, in bytes.
fn own_status_bytes(field: &str) -> u64 {
    bulkhead_tests::proc_status_bytes(std::process::id() as i32, field)
        .unwrap_or_else(|| panic!("{field} not in /proc/self/status"))
}

/// It measures this process's peak RSS, so it runs in a process of its
/// own: in the shared one, the memory of the other tests' servers and
/// streams, running beside it, would count towards it.
#[test]
fn endless_tool_call_arguments_stop_at_the_response_cap() {
    bulkhead_tests::alone(
        concat!(
            module_path!(),
            "::endless_tool_call_arguments_stop_at_the_response_cap"
        ),
        || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(endless_tool_call_arguments())
        },
    );
}

async fn endless_tool_call_arguments() {
    let server = ModelServer::start().await;
    let start = serde_json::json!({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "write", "arguments": ""}}]}}]});
    let piece = serde_json::json!({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"arguments": "a".repeat(1000)}}]}}]});
    server.push(Reply::Endless {
        head: vec![sse_event(None, &start.to_string())],
        chunk: sse_event(None, &piece.to_string()),
    });

    let c = client(&server, ProviderKind::OpenAi, test_limits());
    let limit = c.limits().max_response_bytes;
    // Reset the peak so VmHWM measures this test only (Linux ≥ 4.0).
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
    let before = own_status_bytes("VmRSS:");
    let messages = [Message::User {
        text: "write".into(),
    }];
    let mut stream = c
        .stream(&plain_request(&messages), &CancellationToken::new())
        .await
        .expect("200");
    let mut events = 0u64;
    let err = loop {
        match stream.next().await {
            Some(Ok(_)) => events += 1,
            Some(Err(e)) => break e,
            None => panic!("an endless stream ended"),
        }
    };
    let peak = own_status_bytes("VmHWM:");
    assert!(
        matches!(err, ModelError::CapExceeded { kind: CapKind::Response, limit: l } if l == limit),
        "{err:?}"
    );
    assert!(events > 1, "the call started and its arguments streamed");
    let growth = peak.saturating_sub(before);
    eprintln!("peak RSS growth {} MiB over {events} events", growth >> 20);
    assert!(growth < CEILING, "peak RSS grew by {} MiB", growth >> 20);
}
