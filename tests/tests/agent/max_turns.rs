//! A model that keeps calling tools is stopped at `max_turns`, with a
//! notice on stderr and in the session, and a non-zero exit.

use bulkhead_model::ProviderKind;
use bulkhead_tests::agent_chat::ChatSetup;
use bulkhead_tests::model_server::{ModelServer, Turn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_model_stops_at_max_turns() {
    let server = ModelServer::start().await;
    let p = ProviderKind::Anthropic;
    let setup = ChatSetup::new(&server.base_url(), "anthropic", 8000, "max_turns = 3\n");
    for i in 0..3 {
        let id = format!("toolu_{i}");
        server.push(
            Turn::new()
                .call(&id, "list_directory", &[r#"{"path":"."}"#])
                .reply(p),
        );
    }
    let out = setup.chat(&["loop forever"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(
            "stopped: the model still asked for tools after 3 turns (agents.a.max_turns)"
        ),
        "{stderr}"
    );
    assert_eq!(server.requests().len(), 3, "a fourth request was made");
    assert_eq!(server.pending(), 0);
}
