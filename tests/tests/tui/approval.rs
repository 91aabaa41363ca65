//! Approvals in model mode: a tool the agent marks `confirm` asks before
//! it runs. Allowed once, it runs; denied, the model is told why; both
//! answers are recorded in the session.

use std::time::Duration;

use bulkhead_model::ProviderKind;
use bulkhead_store::{ItemKind, Store};
use bulkhead_tests::agent_chat::ChatSetup;
use bulkhead_tests::model_server::{ModelServer, Turn};
use bulkhead_tests::tmux::start_model_mode;

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
    let (dir, config, store) = (
        setup.dir.path().to_path_buf(),
        setup.config.clone(),
        setup.store.clone(),
    );
    let store_path = store.clone();
    tokio::task::spawn_blocking(move || {
        let t = start_model_mode(&dir, &config, &store_path, DEADLINE);
        for (prompt, key, answer) in [
            ("list it", "y", "listed."),
            ("list again", "n", "not listed."),
        ] {
            t.line(prompt);
            t.wait_for("the approval prompt", DEADLINE, |s| {
                s.contains("The model wants to run list_directory")
            });
            t.keys(&[key]);
            t.wait_for("the answer", DEADLINE, |s| s.contains(answer));
        }
        assert_eq!(t.quit(DEADLINE), 0);
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
