//! Several parallel tool calls, with arguments split across events and
//! across network writes, assemble into whole calls for both providers.

use bulkhead_model::{Message, ModelEvent, ProviderKind, StopReason, ToolCall};
use bulkhead_tests::model_server::{
    ModelServer, Reply, StreamEnd, Turn, client, collect, plain_request, test_limits,
};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

fn turn() -> Turn {
    Turn::new()
        .text(&["Let me look."])
        .call(
            "call_a",
            "search",
            &[r#"{"pat"#, r#"tern": "fo"#, r#"o", "path": "src"}"#],
        )
        .call("call_b", "read_file", &[r#"{"path""#, r#": "a.rs"}"#])
        .call("call_c", "list", &[])
        .usage(100, 20)
}

fn expected() -> Vec<ToolCall> {
    vec![
        ToolCall {
            id: "call_a".into(),
            name: "search".into(),
            arguments: r#"{"pattern": "foo", "path": "src"}"#.into(),
        },
        ToolCall {
            id: "call_b".into(),
            name: "read_file".into(),
            arguments: r#"{"path": "a.rs"}"#.into(),
        },
        ToolCall {
            id: "call_c".into(),
            name: "list".into(),
            arguments: "{}".into(),
        },
    ]
}

/// The stream's bytes re-cut into 7-byte writes, so events and even UTF-8
/// and JSON tokens are split between reads.
fn recut(events: Vec<Bytes>) -> Vec<Bytes> {
    let all: Vec<u8> = events.concat();
    all.chunks(7).map(Bytes::copy_from_slice).collect()
}

async fn run(provider: ProviderKind, recut_writes: bool) {
    let server = ModelServer::start().await;
    let events = turn().events(provider);
    let events = if recut_writes { recut(events) } else { events };
    server.push(Reply::stream(events, StreamEnd::Finish));
    let c = client(&server, provider, test_limits());
    let messages = [Message::User { text: "go".into() }];
    let req = plain_request(&messages);
    let mut stream = c
        .stream(&req, &CancellationToken::new())
        .await
        .expect("stream");
    let (events, err) = collect(&mut stream).await;
    assert!(err.is_none(), "{err:?}");
    let complete: Vec<ToolCall> = events
        .iter()
        .filter_map(|e| match e {
            ModelEvent::ToolCallComplete { call, .. } => Some(call.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(complete, expected());
    let started: Vec<(usize, &str)> = events
        .iter()
        .filter_map(|e| match e {
            ModelEvent::ToolCallStarted { index, name, .. } => Some((*index, name.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(started, vec![(0, "search"), (1, "read_file"), (2, "list")]);
    // The deltas of each call join to its arguments.
    for (i, call) in expected().iter().enumerate() {
        let joined: String = events
            .iter()
            .filter_map(|e| match e {
                ModelEvent::ToolCallArgumentsDelta { index, delta } if *index == i => {
                    Some(delta.as_str())
                }
                _ => None,
            })
            .collect();
        let want = if call.arguments == "{}" {
            ""
        } else {
            call.arguments.as_str()
        };
        assert_eq!(joined, want);
    }
    assert!(events.contains(&ModelEvent::Stop(StopReason::ToolUse)));
    assert_eq!(events.last(), Some(&ModelEvent::Done));
}

#[tokio::test]
async fn openai_parallel_tool_calls() {
    run(ProviderKind::OpenAi, false).await;
}

#[tokio::test]
async fn openai_parallel_tool_calls_in_tiny_writes() {
    run(ProviderKind::OpenAi, true).await;
}

#[tokio::test]
async fn anthropic_parallel_tool_calls() {
    run(ProviderKind::Anthropic, false).await;
}

#[tokio::test]
async fn anthropic_parallel_tool_calls_in_tiny_writes() {
    run(ProviderKind::Anthropic, true).await;
}
