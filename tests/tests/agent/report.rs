//! The original report, end to end: a session already holds 160 items, the
//! model asks for a search with 2,000+ matches in 1,000+ files, and three
//! more turns follow. The host stays small, every request stays under the
//! context budget, the model is told what was cut, and the store holds the
//! capped result once.

use bulkhead_model::ProviderKind;
use bulkhead_store::{ItemKind, ItemPage, NewItem, NewSession, SessionId, Store};
use bulkhead_tests::agent_chat::{ChatSetup, needle_tree, reported_peak};
use bulkhead_tests::model_server::{ModelServer, Turn};

/// The host process's RSS must stay under this.
const HOST_RSS_CEILING: u64 = 64 << 20;
const CONTEXT_TOKENS: u64 = 8000;
/// What chat's budget allows a body: (context − answer) tokens at 3 bytes
/// a token (`history::BYTES_PER_TOKEN_ESTIMATE`).
const MAX_BODY: u64 = (CONTEXT_TOKENS - 1024) * 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_search_in_a_long_session_stays_bounded() {
    let server = ModelServer::start().await;
    let p = ProviderKind::OpenAi;
    let setup = ChatSetup::new(
        &server.base_url(),
        "openai",
        CONTEXT_TOKENS,
        "result_budget = \"4KiB\"\nmax_turns = 4\n[agents.a.limits]\noutput = \"128KiB\"\n",
    );
    let tree = setup.dir.path().join("tree");
    needle_tree(&tree, 1100, 2);

    // A session that already holds 160 items.
    let session = {
        let store = Store::open(&setup.store).unwrap();
        let id = store
            .create_session(&NewSession {
                title: "old".into(),
                ..Default::default()
            })
            .unwrap();
        store
            .append(id, &NewItem::system_prompt("You are a test agent."))
            .unwrap();
        for i in 0..160 {
            let kind = if i % 2 == 0 {
                ItemKind::User
            } else {
                ItemKind::Assistant
            };
            store
                .append(
                    id,
                    &NewItem::new(kind, format!("message {i}: {}", "words ".repeat(80))),
                )
                .unwrap();
        }
        id
    };
    let sid = session.0.to_string();

    let args = format!(r#"{{"pattern":"needle","path":"{}"}}"#, tree.display());
    server.push(
        Turn::new()
            .call("call_1", "search_files_content", &[&args])
            .reply(p),
    );
    server.push(Turn::new().text(&["Found a lot."]).usage(5000, 4).reply(p));
    let out = setup.chat(&["--session", &sid, "find the needles"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Found a lot.");
    assert!(stderr.contains("tool search_files_content"), "{stderr}");
    assert!(
        !stderr.contains("sk-test-secret"),
        "the key leaked: {stderr}"
    );
    let mut peaks = vec![reported_peak(&stderr)];

    // Three more turns.
    for n in 0..3 {
        server.push(Turn::new().text(&[&format!("Turn {n} done.")]).reply(p));
        let out = setup
            .chat(&["--session", &sid, &format!("and now {n}?")])
            .await;
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        peaks.push(reported_peak(&stderr));
    }

    for peak in &peaks {
        assert!(
            *peak > 0 && *peak < HOST_RSS_CEILING,
            "host peak {peak} bytes: {peaks:?}"
        );
    }
    let requests = server.requests();
    assert_eq!(requests.len(), 5);
    for (i, r) in requests.iter().enumerate() {
        assert!(
            r.body.len() as u64 <= MAX_BODY,
            "request {i}: {} bytes > {MAX_BODY}",
            r.body.len()
        );
        assert!(!String::from_utf8_lossy(&r.body).contains("sk-test-secret"));
    }
    // The model's view of the result: head, the marker, the outcome.
    let view = String::from_utf8_lossy(&requests[1].body).to_string();
    assert!(view.contains("the needle is here"), "no head in the view");
    assert!(view.contains("lines cut;"), "no marker in: {view}");
    assert!(
        view.contains("read_tool_result(id, offset, limit)"),
        "{view}"
    );
    assert!(
        view.contains("[truncated: output limit 131072 bytes reached"),
        "{view}"
    );
    // Older items fell out of the window; the newest prompt is there.
    assert!(!view.contains("message 0:"));
    assert!(String::from_utf8_lossy(&requests[4].body).contains("and now 2?"));

    // The store holds the capped result once.
    let store = Store::open(&setup.store).unwrap();
    let items = store
        .items(
            SessionId(session.0),
            ItemPage {
                after_seq: 0,
                limit: 1000,
                preview_bytes: 64,
            },
        )
        .unwrap();
    let results: Vec<_> = items
        .iter()
        .filter(|i| i.kind == ItemKind::ToolResult)
        .collect();
    assert_eq!(results.len(), 1);
    let info = results[0].result.as_ref().unwrap();
    assert_eq!(info.status.as_deref(), Some("truncated"));
    assert!(
        results[0].payload_bytes <= 128 << 10,
        "{}",
        results[0].payload_bytes
    );
    assert!(
        results[0].payload_bytes >= 64 << 10,
        "{}",
        results[0].payload_bytes
    );
    let stats_bytes = store.session(SessionId(session.0)).unwrap().payload_bytes;
    assert_eq!(
        stats_bytes, results[0].payload_bytes,
        "payload stored more than once"
    );
    assert_eq!(
        items.len(),
        1 + 160 + 4 * 2 + 2,
        "items: system, 160, 4 prompts+answers, call turn, result"
    );
}
