//! Model mode in a real terminal: with a model configured, a prompt goes
//! to the agent loop (here a local server speaking Anthropic's streaming
//! wire format); its tool call shows as a card and its answer streams into
//! the conversation, rendered as markdown.

use std::time::Duration;

use bulkhead_host::model::ProviderKind;
use bulkhead_tests::agent_chat::ChatSetup;
use bulkhead_tests::bin;
use bulkhead_tests::model_server::{ModelServer, Turn};
use bulkhead_tests::tmux::{Tmux, tui_env};

const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_streams_an_answer_with_a_tool_card() {
    let server = ModelServer::start().await;
    let p = ProviderKind::Anthropic;
    let setup = ChatSetup::new(&server.base_url(), "anthropic", 8000, "");
    server.push(
        Turn::new()
            .call("toolu_1", "list_directory", &[r#"{"path":"."}"#])
            .reply(p),
    );
    server.push(
        Turn::new()
            .text(&["Found **three** ", "files:\n\n- alpha\n", "- beta\n"])
            .reply(p),
    );
    let config = setup.config.display().to_string();
    let store = setup.store.display().to_string();
    let dir = setup.dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut env = tui_env(&dir);
        env.retain(|(k, _)| *k != "BULKHEAD_STORE");
        env.push(("BULKHEAD_STORE", store));
        env.push(("BULKHEAD_TEST_KEY", "sk-test-secret-do-not-log".into()));
        let argv = [
            bin("bulkhead").display().to_string(),
            "--config".into(),
            config,
        ];
        let t = Tmux::start(&dir, &argv, &env);
        t.wait_for("model mode in the status bar", DEADLINE, |s| {
            s.contains("anthropic:test-model")
        });
        t.line("what is here?");
        let screen = t.wait_for("the streamed answer", DEADLINE, |s| {
            s.contains("Found three files:") && s.contains("• beta")
        });
        assert!(
            screen.contains("list_directory") && screen.contains("completed"),
            "no finished tool card:\n{screen}"
        );
        assert!(!screen.contains("sk-test-secret"), "the key is on screen");
        t.keys(&["C-d"]);
        let until = std::time::Instant::now() + DEADLINE;
        while t.exit_status().is_none() {
            assert!(std::time::Instant::now() < until, "Ctrl-D did not quit");
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .expect("the terminal part");
    assert_eq!(server.requests().len(), 2, "one request per turn");
}
