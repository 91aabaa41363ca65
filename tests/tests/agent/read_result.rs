//! The model pages through a result it saw cut: `read_tool_result` runs in
//! a worker that reads the store read-only, and returns the slice asked for.

use bulkhead_model::ProviderKind;
use bulkhead_tests::agent_chat::ChatSetup;
use bulkhead_tests::model_server::{ModelServer, Turn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_reads_a_slice_of_a_cut_result() {
    let server = ModelServer::start().await;
    let p = ProviderKind::OpenAi;
    let setup = ChatSetup::new(
        &server.base_url(),
        "openai",
        8000,
        "result_budget = \"1KiB\"\n",
    );
    server.push(
        Turn::new()
            .call("c1", "shell", &[r#"{"command":"seq 1 20000"}"#])
            .reply(p),
    );
    // A fresh store numbers items from 1: system, user, assistant, result.
    server.push(
        Turn::new()
            .call(
                "c2",
                "read_tool_result",
                &[r#"{"id":"r4","offset":48888,"limit":24}"#],
            )
            .reply(p),
    );
    server.push(Turn::new().text(&["ok"]).reply(p));
    let out = setup.chat(&["count"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let requests = server.requests();
    let first_view = String::from_utf8_lossy(&requests[1].body).to_string();
    assert!(first_view.contains("stored as result r4"), "{first_view}");
    let third = requests[2].json();
    let slice = third["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["tool_call_id"] == "c2")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_else(|| panic!("{third}"))
        .to_owned();
    // Bytes 48888.. of `seq 1 20000` are the lines from 10000 on.
    assert!(slice.starts_with("10000\n10001\n10002\n10003\n"), "{slice}");
    assert!(slice.contains("[completed"), "{slice}");
}
