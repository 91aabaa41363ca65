//! Model mode in a real terminal: with a model configured, a prompt goes
//! to the agent loop (here a local server speaking Anthropic's streaming
//! wire format); its tool call shows as a card and its answer streams into
//! the conversation, rendered as markdown.

use std::time::Duration;

use bulkhead_host::model::ProviderKind;
use bulkhead_tests::agent_chat::ChatSetup;
use bulkhead_tests::model_server::{ModelServer, Turn};
use bulkhead_tests::tmux::start_model_mode;

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
    let (dir, config, store) = (
        setup.dir.path().to_path_buf(),
        setup.config.clone(),
        setup.store.clone(),
    );
    tokio::task::spawn_blocking(move || {
        let t = start_model_mode(&dir, &config, &store, DEADLINE);
        t.line("what is here?");
        let screen = t.wait_for("the streamed answer", DEADLINE, |s| {
            s.contains("Found three files:") && s.contains("• beta")
        });
        assert!(
            screen.contains("list_directory") && screen.contains("completed"),
            "no finished tool card:\n{screen}"
        );
        assert!(!screen.contains("sk-test-secret"), "the key is on screen");
        assert_eq!(t.quit(DEADLINE), 0);
    })
    .await
    .expect("the terminal part");
    assert_eq!(server.requests().len(), 2, "one request per turn");
}

/// An agent tool call's card shows its worker's live figures while it runs
/// (RSS against the agent's memory cap, bytes against its `output` limit,
/// elapsed against its timeout), not a bare spinner; Ctrl-C then cancels
/// the turn and its call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_agent_call_shows_live_figures_against_its_limits() {
    use bulkhead_host::units::format_size;
    let server = ModelServer::start().await;
    let p = ProviderKind::Anthropic;
    let setup = ChatSetup::new(
        &server.base_url(),
        "anthropic",
        8000,
        "tools = [\"shell\"]\n[agents.a.limits]\nmemory = \"300MiB\"\noutput = \"3MiB\"\ntimeout = \"7m\"\n",
    );
    // The call runs until it is cancelled, so the test never races it.
    server.push(
        Turn::new()
            .call("toolu_1", "shell", &[r#"{"command":"sleep 600"}"#])
            .reply(p),
    );
    let (dir, config, store) = (
        setup.dir.path().to_path_buf(),
        setup.config.clone(),
        setup.store.clone(),
    );
    let cap = format!("/{}", format_size(300 << 20));
    let out = format!("/{}", format_size(3 << 20));
    tokio::task::spawn_blocking(move || {
        let t = start_model_mode(&dir, &config, &store, DEADLINE);
        t.line("sleep a while");
        let screen = t.wait_for("the running card's live figures", DEADLINE, |s| {
            s.lines().any(|l| {
                l.contains("mem ")
                    && !l.contains("mem 0 B")
                    && l.contains(&cap)
                    && l.contains(&out)
                    && l.contains("/7m00s")
            })
        });
        assert!(screen.contains("shell"), "no shell card:\n{screen}");
        t.keys(&["C-c"]);
        t.wait_for("the cancelled call", DEADLINE, |s| s.contains("killed"));
        assert_eq!(t.quit(DEADLINE), 0);
    })
    .await
    .expect("the terminal part");
}
