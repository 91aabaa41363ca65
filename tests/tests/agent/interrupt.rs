//! Ctrl-C in `bulkhead chat`: SIGINT cancels the run. A model stream is
//! dropped mid-answer, running tools are killed (no worker outlives the
//! run), a notice is stored in the session (`bulkhead sessions show` lists
//! it), and the exit code is 130.

use bulkhead_model::ProviderKind;
use bulkhead_store::{Item, ItemKind};
use bulkhead_tests::agent_chat::{ChatSetup, session_id};
use bulkhead_tests::model_server::{ModelServer, Reply, StreamEnd, Turn};
use bulkhead_tests::{alive, children_of, pids_with_marker};

const EXIT_INTERRUPTED: i32 = 130;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_mid_stream_stores_the_answer_so_far_and_a_notice() {
    let server = ModelServer::start().await;
    let p = ProviderKind::OpenAi;
    let setup = ChatSetup::new(&server.base_url(), "openai", 8000, "");
    // The role event and two text deltas, then the stream stays open.
    let events = Turn::new()
        .text(&["Half an ", "answer\n"])
        .events(p)
        .into_iter()
        .take(3)
        .collect();
    server.push(Reply::stream(events, StreamEnd::Hang));
    let chat = setup.spawn(&["say something long"]);
    chat.wait_until("the first text on stdout", |out, _| {
        out.contains("Half an answer")
    })
    .await;
    chat.interrupt();
    let done = chat.finish().await;
    assert_eq!(done.code, Some(EXIT_INTERRUPTED), "{}", done.stderr);
    assert!(
        done.stderr.contains("interrupted in turn 1"),
        "{}",
        done.stderr
    );
    assert_eq!(server.requests().len(), 1);

    let sid = session_id(&done.stderr);
    let shown = setup.sessions_show(&sid);
    assert!(
        shown.contains("notice: cancelled by the user during turn 1"),
        "{shown}"
    );
    let items = setup.items(&sid);
    let answer = items
        .iter()
        .find(|i| i.kind == ItemKind::Assistant)
        .expect("the answer so far is stored");
    assert!(answer.text.starts_with("Half an answer"), "{}", answer.text);
    assert!(
        answer.text.contains("cancelled by the user"),
        "{}",
        answer.text
    );
    assert_last_notice(&items, "cancelled by the user during turn 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_a_tool_call_kills_its_worker_and_records_it() {
    let server = ModelServer::start().await;
    let p = ProviderKind::Anthropic;
    let setup = ChatSetup::new(&server.base_url(), "anthropic", 8000, "");
    // A unique sleep, so its process can be found (and not confused with
    // another test's).
    let needle = format!("1000.{}", std::process::id());
    let args = serde_json::json!({ "command": format!("echo started; sleep {needle}") });
    server.push(
        Turn::new()
            .call("toolu_1", "shell", &[&args.to_string()])
            .reply(p),
    );
    let chat = setup.spawn(&["run the long thing"]);
    chat.wait_until("the tool's process", |_, _| {
        !pids_with_marker(&needle).is_empty()
    })
    .await;
    let workers = children_of(chat.pid() as u32);
    assert!(!workers.is_empty(), "no worker under the chat process");
    chat.interrupt();
    let done = chat.finish().await;
    assert_eq!(done.code, Some(EXIT_INTERRUPTED), "{}", done.stderr);
    assert_eq!(
        pids_with_marker(&needle),
        Vec::<i32>::new(),
        "the tool survived"
    );
    let survivors: Vec<i32> = workers.into_iter().filter(|&w| alive(w)).collect();
    assert!(survivors.is_empty(), "workers survived: {survivors:?}");
    // The stream of turn 1 had ended; no second request went out.
    assert_eq!(server.requests().len(), 1);

    let sid = session_id(&done.stderr);
    let shown = setup.sessions_show(&sid);
    assert!(shown.contains("tool_result shell · killed"), "{shown}");
    assert!(shown.contains("notice: cancelled by the user"), "{shown}");
    let items = setup.items(&sid);
    let result = items
        .iter()
        .find(|i| i.kind == ItemKind::ToolResult)
        .and_then(|i| i.result.clone())
        .expect("the call's result is stored");
    assert_eq!(result.status.as_deref(), Some("killed"), "{result:?}");
    assert!(
        result
            .outcome_json
            .as_deref()
            .unwrap_or("")
            .contains("cancelled"),
        "{result:?}"
    );
    assert_last_notice(&items, "running tools were stopped");
}

/// The session ends with the cancel notice.
fn assert_last_notice(items: &[Item], wanted: &str) {
    let last = items.last().expect("items");
    assert_eq!(last.kind, ItemKind::Notice, "{items:?}");
    assert!(last.text.contains(wanted), "{}", last.text);
}
