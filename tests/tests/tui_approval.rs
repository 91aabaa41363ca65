//! Approvals in model mode: a tool the agent marks `confirm` asks before
//! it runs. Allowed once, it runs; denied, the model is told why; both
//! answers are recorded in the session.

use std::time::Duration;

use bulkhead_host::model::ProviderKind;
use bulkhead_host::store::{ItemKind, Store};
use bulkhead_tests::agent_chat::ChatSetup;
use bulkhead_tests::bin;
use bulkhead_tests::model_server::{ModelServer, Turn};
use bulkhead_tests::tmux::{Tmux, tui_env};

const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_tools_ask_and_the_answer_is_recorded() {
    let server = ModelServer::start().await;
    let p = ProviderKind::Anthropic;
    let setup = ChatSetup::new(
        &server.base_url(),
        "anthropic",
        8000,
        "confirm = [\"list_directory\"]\n",
    );
    for (id, text) in [("toolu_1", "listed."), ("toolu_2", "not listed.")] {
        server.push(
            Turn::new()
                .call(id, "list_directory", &[r#"{"path":"."}"#])
                .reply(p),
        );
        server.push(Turn::new().text(&[text]).reply(p));
    }
    let config = setup.config.display().to_string();
    let store = setup.store.clone();
    let dir = setup.dir.path().to_path_buf();
    let store_env = store.display().to_string();
    tokio::task::spawn_blocking(move || {
        let mut env = tui_env(&dir);
        env.retain(|(k, _)| *k != "BULKHEAD_STORE");
        env.push(("BULKHEAD_STORE", store_env));
        env.push(("BULKHEAD_TEST_KEY", "sk-test".into()));
        let argv = [
            bin("bulkhead").display().to_string(),
            "--config".into(),
            config,
        ];
        let t = Tmux::start(&dir, &argv, &env);
        t.wait_for("model mode", DEADLINE, |s| {
            s.contains("anthropic:test-model")
        });

        t.line("list it");
        t.wait_for("the approval prompt", DEADLINE, |s| {
            s.contains("The model wants to run list_directory")
        });
        t.keys(&["y"]);
        t.wait_for("the answer after the allowed call", DEADLINE, |s| {
            s.contains("listed.")
        });

        t.line("list it again");
        t.wait_for("the second prompt", DEADLINE, |s| {
            s.contains("The model wants to run list_directory")
        });
        t.keys(&["n"]);
        t.wait_for("the answer after the denied call", DEADLINE, |s| {
            s.contains("not listed.")
        });
        t.keys(&["C-d"]);
        let until = std::time::Instant::now() + DEADLINE;
        while t.exit_status().is_none() {
            assert!(std::time::Instant::now() < until, "Ctrl-D did not quit");
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .expect("the terminal part");

    // The denied call's result told the model so, in its second request.
    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    let last = requests[3].json().to_string();
    assert!(last.contains("denied by the user"), "{last:.2000}");

    let store = Store::open(&store).expect("store");
    let sessions = store.list_sessions(None, 10).expect("list");
    assert_eq!(sessions.len(), 1);
    let items = store.last_items(sessions[0].id, 50, 400).expect("items");
    let notices: Vec<&str> = items
        .iter()
        .filter(|i| i.kind == ItemKind::Notice)
        .map(|i| i.text.as_str())
        .collect();
    assert!(
        notices
            .iter()
            .any(|n| n.contains("allowed once by the user")),
        "{notices:?}"
    );
    assert!(
        notices.iter().any(|n| n.contains("denied by the user")),
        "{notices:?}"
    );
}
