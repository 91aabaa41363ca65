//! Several tool calls in one answer all run, each result is stored under
//! its call id, and the next request answers every call.

use bulkhead_model::ProviderKind;
use bulkhead_tests::agent_chat::ChatSetup;
use bulkhead_tests::model_server::{ModelServer, Turn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_calls_all_run_and_are_answered() {
    let server = ModelServer::start().await;
    let p = ProviderKind::OpenAi;
    let setup = ChatSetup::new(&server.base_url(), "openai", 8000, "");
    server.push(
        Turn::new()
            .call("call_a", "shell", &[r#"{"command":"echo alpha-out"}"#])
            .call("call_b", "shell", &[r#"{"command":"echo beta-out"}"#])
            .call("call_c", "no_such_tool", &[r#"{}"#])
            .reply(p),
    );
    server.push(Turn::new().text(&["done"]).reply(p));
    let out = setup.chat(&["run three"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let second = requests[1].json();
    let tool_msgs: Vec<&serde_json::Value> = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .collect();
    assert_eq!(tool_msgs.len(), 3, "{second}");
    let content_of = |id: &str| {
        tool_msgs
            .iter()
            .find(|m| m["tool_call_id"] == id)
            .and_then(|m| m["content"].as_str())
            .unwrap_or_else(|| panic!("no result for {id}: {second}"))
            .to_owned()
    };
    assert!(content_of("call_a").contains("alpha-out"));
    assert!(content_of("call_b").contains("beta-out"));
    assert!(content_of("call_c").contains("there is no tool \"no_such_tool\""));
    assert!(content_of("call_a").contains("[completed"));
}
