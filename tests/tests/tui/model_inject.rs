//! Fault injection on the model's own tool calls, in a real terminal:
//! `/inject` in model mode arms the model's next worker call, whose card
//! says which fault fired while the model sees only the real failure; the
//! memory key pushes a model's running call over the agent's memory cap.

use bulkhead_model::ProviderKind;
use bulkhead_tests::model_server::{ModelServer, Turn};

use super::model::{DEADLINE, in_terminal, sleeping_shell};

/// [`sleeping_shell`], whose model answers `after` once it has the call's
/// result.
fn sleeping_shell_then(
    server: &ModelServer,
    agent_toml: &str,
    after: &'static str,
) -> bulkhead_tests::agent_chat::ChatSetup {
    let setup = sleeping_shell(server, agent_toml);
    server.push(Turn::new().text(&[after]).reply(ProviderKind::Anthropic));
    setup
}

/// The model's `shell` result as the second request carries it.
fn tool_result(server: &ModelServer) -> String {
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "the turn did not go on after the call");
    let second = requests[1].json();
    second["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .find(|b| b["type"] == "tool_result" && b["tool_use_id"] == "toolu_1")
        .unwrap_or_else(|| panic!("no tool result for toolu_1: {second}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inject_in_model_mode_arms_the_models_next_call() {
    let server = ModelServer::start().await;
    let setup = sleeping_shell_then(&server, "", "The call failed.");
    // The first line typed arms the fault; the prompt comes after.
    in_terminal(&setup, "/inject exit:3", |t| {
        t.wait_for("armed", DEADLINE, |s| {
            s.contains("Armed for") && s.contains("model's next") && s.contains("exit:3")
        });
        t.line("sleep a while");
        let screen = t.wait_for("the injected exit and the next answer", DEADLINE, |s| {
            s.contains("injected exit:3") && s.contains("The call failed.")
        });
        assert!(
            screen.contains("exit status: 3"),
            "not the exit outcome:\n{screen}"
        );
        // Taken by that call: nothing is armed any more.
        t.line("/inject");
        t.wait_for("nothing armed", DEADLINE, |s| {
            s.contains("No faults are armed")
        });
        assert_eq!(t.quit(DEADLINE), 0);
    })
    .await;
    let result = tool_result(&server);
    // The model meets the real failure, not a note that it was staged.
    assert!(
        result.contains("exit status: 3") || result.contains("failed"),
        "{result}"
    );
    assert!(!result.contains("injected"), "the model was told: {result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_key_pushes_a_models_running_call_over_its_cap() {
    let server = ModelServer::start().await;
    let setup = sleeping_shell_then(
        &server,
        "[agents.a.limits]\nmemory = \"64MiB\"\n",
        "Out of memory.",
    );
    in_terminal(&setup, "sleep a while", |t| {
        // Live figures mean the worker runs, so the fault has one to reach.
        t.wait_for("the running card's live figures", DEADLINE, |s| {
            s.lines()
                .any(|l| l.contains("mem ") && !l.contains("mem 0 B"))
        });
        t.keys(&["C-o"]);
        let screen = t.wait_for("the memory kill and the next answer", DEADLINE, |s| {
            s.contains("killed: memory") && s.contains("Out of memory.")
        });
        assert!(
            screen.contains("injected oom"),
            "the card does not say so:\n{screen}"
        );
        assert_eq!(t.quit(DEADLINE), 0);
    })
    .await;
    assert!(tool_result(&server).contains("memory"));
}
