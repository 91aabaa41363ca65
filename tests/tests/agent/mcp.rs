//! An agent's MCP servers: the reference `server-everything` runs
//! sandboxed in a worker, its tools are offered to the model as
//! `everything__TOOL`, and a call's answer is stored and shown through the
//! same bounded view as a built-in tool's.

use bulkhead_model::ProviderKind;
use bulkhead_store::ItemKind;
use bulkhead_tests::agent_chat::{ChatSetup, session_id};
use bulkhead_tests::model_server::{ModelServer, Turn};
use bulkhead_tests::peer;
use serde_json::json;

/// `[agents.a]` with server-everything, and the servers file it names.
fn agent_toml(dir: &std::path::Path) -> String {
    let servers = dir.join("servers.json");
    let doc = json!({"mcpServers": {
        "everything": {"command": peer("MCP_NODE"), "args": [peer("MCP_EVERYTHING"), "stdio"]},
    }});
    std::fs::write(&servers, doc.to_string()).unwrap();
    format!(
        "mcp_servers = [\"everything\"]\nresult_budget = \"1KiB\"\n\n\
         [mcp]\nservers_file = \"{}\"\n",
        servers.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_servers_tool_is_offered_called_stored_and_viewed_bounded() {
    let server = ModelServer::start().await;
    let p = ProviderKind::OpenAi;
    let scratch = tempfile::tempdir().unwrap();
    let setup = ChatSetup::new(
        &server.base_url(),
        "openai",
        8000,
        &agent_toml(scratch.path()),
    );
    // Long enough that the 1 KiB view must cut it.
    let message: String = (0..400).map(|i| format!("w{i} ")).collect();
    let short = json!({"message": "hello from the model"}).to_string();
    let long = json!({"message": message}).to_string();
    server.push(
        Turn::new()
            .call("call_short", "everything__echo", &[&short])
            .call("call_long", "everything__echo", &[&long])
            .reply(p),
    );
    server.push(Turn::new().text(&["done"]).reply(p));
    let out = setup.chat(&["echo twice"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let requests = server.requests();
    assert_eq!(
        (out.status.code(), requests.len()),
        (Some(0), 2),
        "{stderr}"
    );
    let offered: Vec<String> = requests[0].json()["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        offered.iter().any(|n| n == "everything__echo"),
        "{offered:?}"
    );
    assert!(offered.iter().any(|n| n == "shell"), "{offered:?}");

    let second = requests[1].json();
    let content_of = |id: &str| {
        second["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == "tool" && m["tool_call_id"] == id)
            .and_then(|m| m["content"].as_str())
            .unwrap_or_else(|| panic!("no result for {id}: {second}"))
            .to_owned()
    };
    let short_view = content_of("call_short");
    assert!(
        short_view.contains("Echo: hello from the model"),
        "{short_view}"
    );
    assert!(
        short_view.contains("[completed · MCP server \"everything\"]"),
        "{short_view}"
    );
    let long_view = content_of("call_long");
    assert!(long_view.len() < 1024 + 512, "{} bytes", long_view.len());
    assert!(long_view.starts_with("Echo: w0 w1 "), "{long_view}");
    assert!(long_view.contains("bytes /"), "no cut marker: {long_view}");
    assert!(long_view.contains("read_tool_result"), "{long_view}");

    // Stored once, whole, as the call's result.
    let items = setup.items(&session_id(&stderr));
    let stored: Vec<_> = items
        .iter()
        .filter(|i| i.kind == ItemKind::ToolResult)
        .filter_map(|i| Some((i.payload_bytes, i.result.clone()?)))
        .collect();
    assert_eq!(stored.len(), 2, "{items:?}");
    let (long_bytes, long_info) = stored
        .iter()
        .find(|(_, r)| r.call_ref.as_deref() == Some("call_long"))
        .unwrap();
    assert_eq!(long_info.tool, "everything__echo");
    assert_eq!(long_info.status.as_deref(), Some("completed"));
    assert_eq!(*long_bytes, ("Echo: ".len() + message.len()) as u64);
}
