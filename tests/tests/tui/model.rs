//! Model mode in a real terminal: with a model configured, a prompt goes
//! to the agent loop (here a local server speaking Anthropic's streaming
//! wire format); its tool call shows as a card and its answer streams into
//! the conversation, rendered as markdown.

use std::time::Duration;

use bulkhead_model::ProviderKind;
use bulkhead_tests::agent_chat::ChatSetup;
use bulkhead_tests::model_server::{ModelServer, Turn};
use bulkhead_tests::tmux::{Tmux, start_model_mode};

pub(super) const DEADLINE: Duration = Duration::from_secs(60);

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
    in_terminal(&setup, "what is here?", move |t| {
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
    .await;
    assert_eq!(server.requests().len(), 2, "one request per turn");
}

/// The conversation reads in the order things happened: what the model
/// said before a tool call above the call's card, its answer after the
/// call below it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_after_a_tool_call_is_drawn_below_its_card() {
    let server = ModelServer::start().await;
    let p = ProviderKind::Anthropic;
    let setup = ChatSetup::new(&server.base_url(), "anthropic", 8000, "");
    server.push(
        Turn::new()
            .text(&["Looking first."])
            .call("toolu_1", "list_directory", &[r#"{"path":"."}"#])
            .reply(p),
    );
    server.push(Turn::new().text(&["Done looking."]).reply(p));
    in_terminal(&setup, "what is here?", move |t| {
        let screen = t.wait_for("the answer after the call", DEADLINE, |s| {
            s.contains("Done looking.") && s.contains("completed")
        });
        let at = |what: &str| {
            screen
                .find(what)
                .unwrap_or_else(|| panic!("no {what:?} on screen:\n{screen}"))
        };
        assert!(
            at("Looking first.") < at("list_directory")
                && at("list_directory") < at("Done looking."),
            "out of order:\n{screen}"
        );
        assert_eq!(t.quit(DEADLINE), 0);
    })
    .await;
}

/// An agent tool call's card shows its worker's live figures while it runs
/// (RSS against the agent's memory cap, bytes against its `output` limit,
/// elapsed against its timeout), not a bare spinner; Ctrl-C then cancels
/// the turn and its call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_agent_call_shows_live_figures_against_its_limits() {
    use bulkhead_host::units::format_size;
    let server = ModelServer::start().await;
    let setup = sleeping_shell(
        &server,
        "[agents.a.limits]\nmemory = \"300MiB\"\noutput = \"3MiB\"\ntimeout = \"7m\"\n",
    );
    let cap = format!("/{}", format_size(300 << 20));
    let out = format!("/{}", format_size(3 << 20));
    in_terminal(&setup, "sleep a while", move |t| {
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
    .await;
}

/// The kill key on a running agent tool card kills that call alone: the
/// card ends `killed`, the model gets `killed: cancelled` as the call's
/// result, and the turn goes on to the model's next answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_key_kills_one_agent_call_and_the_turn_goes_on() {
    let server = ModelServer::start().await;
    let setup = sleeping_shell(&server, "");
    server.push(
        Turn::new()
            .text(&["The sleep was stopped."])
            .reply(ProviderKind::Anthropic),
    );
    in_terminal(&setup, "sleep a while", move |t| {
        // Live figures mean the worker started, so the call has its cancel.
        t.wait_for("the running card's live figures", DEADLINE, |s| {
            s.lines()
                .any(|l| l.contains("mem ") && !l.contains("mem 0 B"))
        });
        t.keys(&["C-k"]);
        let screen = t.wait_for("the killed card and the next answer", DEADLINE, |s| {
            s.contains("killed") && s.contains("The sleep was stopped.")
        });
        assert!(screen.contains("shell"), "no shell card:\n{screen}");
        assert_eq!(t.quit(DEADLINE), 0);
    })
    .await;
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "the turn did not go on after the kill");
    let second = requests[1].json();
    let result = second["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .find(|b| b["type"] == "tool_result" && b["tool_use_id"] == "toolu_1")
        .unwrap_or_else(|| panic!("no tool result for toolu_1: {second}"));
    assert!(
        result.to_string().contains("killed: cancelled"),
        "the model was not told the call was killed: {result}"
    );
}

/// An agent with `shell` (plus `agent_toml`) whose model first asks for
/// `sleep 600`: the call runs until it is stopped, so no test races it.
pub(super) fn sleeping_shell(server: &ModelServer, agent_toml: &str) -> ChatSetup {
    let setup = ChatSetup::new(
        &server.base_url(),
        "anthropic",
        8000,
        &format!("tools = [\"shell\"]\n{agent_toml}"),
    );
    server.push(
        Turn::new()
            .call("toolu_1", "shell", &[r#"{"command":"sleep 600"}"#])
            .reply(ProviderKind::Anthropic),
    );
    setup
}

/// Starts the app on `setup` in a real terminal, sends `prompt`, and lets
/// `drive` work the screen (on a blocking thread: tmux calls wait).
pub(super) async fn in_terminal(
    setup: &ChatSetup,
    prompt: &str,
    drive: impl FnOnce(&Tmux) + Send + 'static,
) {
    let (dir, config, store) = (
        setup.dir.path().to_path_buf(),
        setup.config.clone(),
        setup.store.clone(),
    );
    let prompt = prompt.to_owned();
    tokio::task::spawn_blocking(move || {
        let t = start_model_mode(&dir, &config, &store, DEADLINE);
        t.line(&prompt);
        drive(&t);
    })
    .await
    .expect("the terminal part");
}
