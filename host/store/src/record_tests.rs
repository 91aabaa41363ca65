//! The call recorder against a real store: inline, lazily, and as jobs on a
//! store thread.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkhead_host::enforce::MemoryMechanism;
use bulkhead_host::{CallLimits, CallReport, CapturedOutput, Enforcement, Outcome, Usage};
use bulkhead_ipc::StreamId;

use super::*;

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("s.db")).expect("open");
    (dir, store)
}

fn completed(bytes_seen: u64) -> ResultEnd {
    ResultEnd {
        status: "completed".into(),
        bytes_seen,
        ..ResultEnd::default()
    }
}

fn report(output: CapturedOutput, bytes_produced: u64) -> CallReport {
    CallReport {
        call_id: 1,
        tool: "shell".into(),
        outcome: Outcome::Completed,
        usage: Usage {
            bytes_produced,
            ..Usage::default()
        },
        output,
        exit: None,
        summary: None,
        enforcement: Enforcement {
            memory: MemoryMechanism::Watchdog,
            kill: "watchdog",
            sample_interval_ms: 50,
            worker: Vec::new(),
            policy: "trusted".into(),
            policy_explained: String::new(),
            sandbox: Vec::new(),
        },
        worker_stderr: String::new(),
        lines_seen: 0,
        streamed_bytes: 0,
        egress: None,
        injected: None,
    }
}

fn page() -> ItemPage {
    ItemPage {
        preview_bytes: 4096,
        ..ItemPage::default()
    }
}

#[test]
fn a_call_is_recorded_after_its_tool_call_item_with_its_limits() {
    let (_dir, store) = temp_store();
    let session = store
        .create_session(&NewSession::default())
        .expect("session");
    let limits = CallLimits {
        memory_bytes: 300 << 20,
        max_output_bytes: 3 << 20,
        timeout: Duration::from_secs(420),
        ..CallLimits::default()
    };
    let call = RecordedCall::new("shell", r#"{"command":"yes"}"#)
        .with_tool_call_item()
        .with_limits(&limits);
    let mut rec = CallRecorder::begin(&store, &session.into(), &call).expect("begin");
    rec.output(&store, StreamId::Stdout, b"y\n")
        .expect("output");
    rec.output(&store, StreamId::Stderr, b"oops\n")
        .expect("output");
    let done = rec.finish(&store, completed(7)).expect("finish");
    assert_eq!(done.session, session);
    assert_eq!(done.stored_bytes, 7);
    assert!(done.complete);

    let items = store.items(session, page()).expect("items");
    let kinds: Vec<ItemKind> = items.iter().map(|i| i.kind).collect();
    assert_eq!(kinds, [ItemKind::ToolCall, ItemKind::ToolResult]);
    let meta: serde_json::Value =
        serde_json::from_str(items[0].meta_json.as_deref().expect("call meta")).expect("json");
    assert_eq!(meta["tool"], "shell");
    assert_eq!(meta["args"], r#"{"command":"yes"}"#);
    assert_eq!(items[1].id, done.item);
    let recorded = items[1]
        .meta_json
        .as_deref()
        .and_then(RecordedLimits::from_meta);
    assert_eq!(recorded, Some(RecordedLimits::of(&limits)));
    let info = items[1].result.as_ref().expect("result");
    assert_eq!(info.state, ResultState::Finished);
    assert_eq!(info.status.as_deref(), Some("completed"));
    let data = store.read_payload(done.item, 0, 100).expect("read").data;
    assert_eq!(data, b"y\noops\n");
}

#[test]
fn a_lazy_session_is_created_by_the_first_call_and_then_reused() {
    let (_dir, store) = temp_store();
    let lazy = Arc::new(LazySession::default());
    assert_eq!(lazy.get(), None);
    let long = format!("{{\"command\":\"{}\"}}", "x".repeat(200));
    let session = RecordSession::from(lazy.clone());
    let first = CallRecorder::begin(&store, &session, &RecordedCall::new("shell", long))
        .expect("begin")
        .finish(&store, completed(0))
        .expect("finish");
    let second = CallRecorder::begin(&store, &session, &RecordedCall::new("shell", "{}"))
        .expect("begin")
        .finish(&store, completed(0))
        .expect("finish");
    assert_eq!(lazy.get(), Some(first.session));
    assert_eq!(second.session, first.session);
    let list = store.list_sessions(None, 10).expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].title.chars().count(), 80);
    assert!(list[0].title.starts_with("shell {\"command\":\"xxx"));
    assert!(list[0].title.ends_with('…'));
}

#[test]
fn the_report_adds_its_head_its_cut_and_its_tail() {
    let (_dir, store) = temp_store();
    let session = store
        .create_session(&NewSession::default())
        .expect("session");
    // Ten bytes kept of twenty: a head of six and a tail of four.
    let mut output = CapturedOutput::new(10, 4);
    output.push(StreamId::Stdout, b"0123456789abcdefghij".to_vec().into());
    let report = report(output, 20);
    let mut rec = CallRecorder::begin(&store, &session.into(), &RecordedCall::new("shell", "{}"))
        .expect("begin");
    rec.report(&store, &report, true).expect("report");
    let done = rec
        .finish(&store, ResultEnd::from_report(&report))
        .expect("finish");
    let data = store.read_payload(done.item, 0, 100).expect("read").data;
    assert_eq!(data, b"012345ghij");
    let info = store.item(done.item).expect("item").result.expect("result");
    assert_eq!(info.cut_offset, Some(6));
    assert_eq!(info.cut_bytes, 10);
    assert_eq!(info.bytes_seen, 20);
}

#[test]
fn an_abandoned_call_is_interrupted_and_keeps_what_was_committed() {
    let (_dir, store) = temp_store();
    let session = store
        .create_session(&NewSession::default())
        .expect("session");
    let mut rec = CallRecorder::begin(&store, &session.into(), &RecordedCall::new("shell", "{}"))
        .expect("begin");
    let item = rec.item();
    rec.output(&store, StreamId::Stdout, &vec![b'a'; CHUNK_BYTES + 10])
        .expect("output");
    rec.abandon(&store).expect("abandon");
    let it = store.item(item).expect("item");
    assert_eq!(it.result.expect("result").state, ResultState::Interrupted);
    assert_eq!(it.payload_bytes, CHUNK_BYTES as u64);
}

/// As the TUI records: the recorder lives with the store thread's jobs,
/// chunks are queued without waiting for their commit, and the end is
/// awaited. Jobs run in the order they were queued, so the end sees every
/// chunk.
#[tokio::test(flavor = "current_thread")]
async fn queued_chunks_are_stored_in_order_before_the_end() {
    let (_dir, store) = temp_store();
    let thread = StoreThread::spawn_with_queue(store, 2).expect("thread");
    let lazy = Arc::new(LazySession::default());
    let slot: Arc<Mutex<Option<CallRecorder>>> = Arc::default();
    let (session, begun) = (RecordSession::from(lazy.clone()), slot.clone());
    thread
        .send(move |s| {
            let call = RecordedCall::new("shell", "{}");
            *begun.lock().unwrap() = Some(CallRecorder::begin(s, &session, &call).unwrap());
        })
        .await
        .expect("thread");
    for n in 0..20u8 {
        let slot = slot.clone();
        thread
            .send(move |s| {
                let mut rec = slot.lock().unwrap();
                rec.as_mut()
                    .unwrap()
                    .output(s, StreamId::Stdout, &[b'a' + n])
                    .unwrap();
            })
            .await
            .expect("thread");
    }
    let done = thread
        .call(move |s| {
            slot.lock()
                .unwrap()
                .take()
                .unwrap()
                .finish(s, completed(20))
        })
        .await
        .expect("thread")
        .expect("finish");
    assert_eq!(done.stored_bytes, 20);
    let data = thread
        .call(move |s| s.read_payload(done.item, 0, 100))
        .await
        .expect("thread")
        .expect("read")
        .data;
    assert_eq!(data, b"abcdefghijklmnopqrst");
    assert_eq!(lazy.get(), Some(done.session));
}
