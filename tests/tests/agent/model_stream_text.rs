//! A text answer streams from both providers as text deltas, usage, stop
//! and done; the request carries the provider's headers and body shape.

use bulkhead_model::{
    ChatRequest, Message, ModelEvent, ProviderKind, StopReason, TokenUsage, ToolCall, ToolSpec,
};
use bulkhead_tests::model_server::{
    ModelServer, TEST_KEY, Turn, client, collect, test_limits, text_of,
};
use tokio_util::sync::CancellationToken;

fn history() -> Vec<Message> {
    vec![
        Message::User {
            text: "find foo".into(),
        },
        Message::Assistant {
            text: "Searching.".into(),
            tool_calls: vec![ToolCall {
                id: "call_1".into(),
                name: "search".into(),
                arguments: r#"{"pattern":"foo"}"#.into(),
            }],
        },
        Message::ToolResult {
            call_id: "call_1".into(),
            content: "a.rs:1: foo".into(),
            is_error: false,
        },
        Message::User {
            text: "and bar?".into(),
        },
    ]
}

fn tools() -> Vec<ToolSpec> {
    vec![ToolSpec {
        name: "search".into(),
        description: "Search files".into(),
        input_schema: serde_json::json!({"type": "object", "properties": {"pattern": {"type": "string"}}}),
    }]
}

async fn text_answer(
    provider: ProviderKind,
) -> (
    Vec<ModelEvent>,
    serde_json::Value,
    Vec<(String, String)>,
    String,
) {
    let server = ModelServer::start().await;
    server.push(
        Turn::new()
            .text(&["Hel", "lo, ", "world"])
            .usage(42, 3)
            .reply(provider),
    );
    let c = client(&server, provider, test_limits());
    let messages = history();
    let tools = tools();
    let req = ChatRequest {
        model: "m-1",
        system: Some("be brief"),
        messages: &messages,
        tools: &tools,
        max_tokens: 256,
        temperature: Some(0.5),
    };
    let mut stream = c
        .stream(&req, &CancellationToken::new())
        .await
        .expect("stream");
    let (events, err) = collect(&mut stream).await;
    assert!(err.is_none(), "{err:?}");
    let got = &server.requests()[0];
    (events, got.json(), got.headers.clone(), got.path.clone())
}

fn check_events(events: &[ModelEvent]) {
    assert_eq!(text_of(events), "Hello, world");
    assert!(
        events.contains(&ModelEvent::Stop(StopReason::EndTurn)),
        "{events:?}"
    );
    assert!(
        events.contains(&ModelEvent::Usage(TokenUsage {
            input_tokens: 42,
            output_tokens: 3
        })),
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&ModelEvent::Done));
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn openai_text_stream() {
    let (events, body, headers, path) = text_answer(ProviderKind::OpenAi).await;
    check_events(&events);
    assert_eq!(path, "/v1/chat/completions");
    assert_eq!(
        header(&headers, "authorization"),
        Some(format!("Bearer {TEST_KEY}").as_str())
    );
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(body["temperature"], 0.5);
    let m = &body["messages"];
    assert_eq!(
        m[0],
        serde_json::json!({"role": "system", "content": "be brief"})
    );
    assert_eq!(
        m[1],
        serde_json::json!({"role": "user", "content": "find foo"})
    );
    assert_eq!(
        m[2]["tool_calls"][0]["function"]["arguments"],
        r#"{"pattern":"foo"}"#
    );
    assert_eq!(
        m[3],
        serde_json::json!({"role": "tool", "tool_call_id": "call_1", "content": "a.rs:1: foo"})
    );
    assert_eq!(m[4]["role"], "user");
    assert_eq!(body["tools"][0]["function"]["parameters"]["type"], "object");
}

#[tokio::test]
async fn anthropic_text_stream() {
    let (events, body, headers, path) = text_answer(ProviderKind::Anthropic).await;
    check_events(&events);
    assert_eq!(path, "/v1/messages");
    assert_eq!(header(&headers, "x-api-key"), Some(TEST_KEY));
    assert_eq!(header(&headers, "anthropic-version"), Some("2023-06-01"));
    assert_eq!(header(&headers, "authorization"), None);
    assert_eq!(body["system"], "be brief");
    assert_eq!(body["stream"], true);
    let m = &body["messages"];
    assert_eq!(
        m.as_array().map(Vec::len),
        Some(3),
        "tool result and user text share one turn: {m}"
    );
    assert_eq!(
        m[1]["content"][1],
        serde_json::json!({"type": "tool_use", "id": "call_1", "name": "search", "input": {"pattern": "foo"}})
    );
    assert_eq!(
        m[2]["content"][0],
        serde_json::json!({"type": "tool_result", "tool_use_id": "call_1", "content": "a.rs:1: foo"})
    );
    assert_eq!(
        m[2]["content"][1],
        serde_json::json!({"type": "text", "text": "and bar?"})
    );
    assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
}
